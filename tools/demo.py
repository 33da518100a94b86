"""`make demo`: the service end to end on the embedded engines.

Synthesises a short English meeting with Festival and an English/Spanish
conversation (Festival and espeak-ng), starts ``tongyeok-server`` on the
embedded engines a flagless server runs (Whisper + Apertium) on a free port, and uses the
``tongyeok`` CLI as a caller would: interpret the meeting at real-time pace
as a phone line carries it (8 kHz G.711 mu-law; interim line rewritten in
place, finals, Spanish translations streaming), interpret the conversation
two-way (each sentence labelled with the language spoken and translated into
the other), and translate a text. Then stops the server with SIGTERM and
shows its session log lines.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.speech import convert, synthesize  # noqa: E402 - the repo root is on the path only now

SENTENCES = [
    "Good morning everyone.",
    "Thank you for coming to our office today.",
    "We would like to discuss the contract.",
    "The delivery date is next Friday.",
    "We can offer a better price for a larger order.",
]
# Two people in turn: English (Festival) and Spanish (espeak-ng).
CONVERSATION = [
    ("We would like to discuss the contract today.", "hts"),
    ("El contrato está listo para firmar.", "espeak:es"),
    ("Thank you for your time.", "hts"),
    ("Gracias por su tiempo.", "espeak:es"),
]


def main() -> int:
    bin_dir = Path(sys.executable).parent
    tongyeok = str(bin_dir / "tongyeok")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(os.environ.get("DEMO_PORT", s.getsockname()[1]))
    print("Synthesising a short meeting (Festival) and a conversation (Festival, espeak-ng) ...", flush=True)
    speech = synthesize(SENTENCES)
    phone = speech.path.with_suffix(".ulaw")
    convert(speech, phone, rate_hz=8000, encoding="mu-law", bits=8)
    conversation = synthesize([t for t, _ in CONVERSATION], voice=[v for _, v in CONVERSATION])
    log_path = ROOT / ".cache" / "demo-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TONGYEOK_SERVER": f"127.0.0.1:{port}"}
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(bin_dir / "tongyeok-server"), "--host", "127.0.0.1", "--port", str(port)],
            stderr=log,
            env=env,
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
            interpret = [tongyeok, "interpret", "--source", "en-US", "--target", "es"]
            print(
                f"\n$ tongyeok interpret {phone.name} --encoding mulaw --rate 8000 --source en-US --target es"
                "   (a phone line, real-time pace)",
                flush=True,
            )
            subprocess.run([*interpret, "--encoding", "mulaw", "--rate", "8000", str(phone)], check=True, env=env)
            print(f"\n$ tongyeok interpret {conversation.path.name} --source en-US --source es   (two-way)", flush=True)
            subprocess.run(
                [tongyeok, "interpret", "--source", "en-US", "--source", "es", str(conversation.path)],
                check=True,
                env=env,
            )
            text = "Good morning, Tongyeok will present the new contract on Friday."
            print(f'\n$ tongyeok translate "{text}" --source en --target es --keep Tongyeok', flush=True)
            subprocess.run(
                [tongyeok, "translate", text, "--source", "en", "--target", "es", "--keep", "Tongyeok"],
                check=True,
                env=env,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=30)
    print(f"\nServer stopped with SIGTERM (exit status {status}); its log:")
    for line in log_path.read_text().splitlines():
        if " session " in line or "listening" in line or "stopp" in line:
            print("  " + line)
    if shutil.which("grpcurl") is None and (bin_dir / "grpcurl").exists():
        print(f"\ngrpcurl is in {bin_dir}; try: make run, then {bin_dir}/grpcurl -plaintext localhost:50051 list")
    return status


if __name__ == "__main__":
    sys.exit(main())
