"""The CLI and client speech helpers against a real server: --speak-to writes WAV, --speak degrades clearly."""

from __future__ import annotations

import soundfile

from tests.support.speech import Speech
from tongyeok_client import cli
from tongyeok_client.client import InterpreterClient
from tongyeok_client.speech import SpeechWriter, speech_output
from tongyeok_server.app import TongyeokServer


def test_translate_speak_to_writes_a_wav_at_the_rate_asked(capsys, offline_server: TongyeokServer, tmp_path) -> None:
    out = tmp_path / "x.wav"
    code = cli.main(
        ["translate", "Good morning everyone. Thank you for your time.", "--source", "en", "--target", "es",
         "--speak-to", str(out), "--speech-rate", "16000", "--server", f"127.0.0.1:{offline_server.port}"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    info = soundfile.info(str(out))
    assert info.samplerate == 16000 and info.channels == 1 and info.duration > 1.0
    assert f"speech es: {info.duration:.1f} s -> {out}" in captured.err


def test_interpret_speak_without_an_audio_device_says_so_and_goes_on(
    capsys, offline_server: TongyeokServer, speech: Speech
) -> None:
    code = cli.main(
        ["interpret", str(speech.path), "--source", "en-US", "--target", "es", "--speak", "es", "--fast",
         "--server", f"127.0.0.1:{offline_server.port}"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "cannot play audio here" in captured.err or "no audio output device" in captured.err
    assert "--speak-to FILE" in captured.err
    assert "done:" in captured.out  # the text went on


def test_speech_writer_keeps_one_file_per_language_and_decodes_ogg(offline_server: TongyeokServer, tmp_path) -> None:
    with InterpreterClient(f"127.0.0.1:{offline_server.port}", timeout=60) as client:
        events = list(
            client.translate_text(
                "We would like to discuss the contract today.",
                source="en",
                target="es",
                speech=speech_output(encoding="ogg_opus", sample_rate_hertz=48000),
            )
        )
    with SpeechWriter(tmp_path / "s.wav", ["es", "ko"]) as writer:
        for event in events:
            writer.handle(event)
    assert writer.paths == {"es": tmp_path / "s-es.wav"}
    info = soundfile.info(str(writer.paths["es"]))
    assert info.samplerate == 48000 and abs(info.duration - writer.seconds["es"]) < 0.01 and info.duration > 1.0


def test_two_way_interpret_speak_to_alone_writes_the_speech(capsys, whisper_server: TongyeokServer, tmp_path) -> None:
    # It used to write nothing, silently: a two-way stream has no --target, so no language was spoken.
    from tests.support.speech import synthesize

    english = synthesize(["Thank you for your time."])
    out = tmp_path / "meeting.wav"
    code = cli.main(
        ["interpret", str(english.path), "--source", "en-US", "--source", "es-ES", "--speak-to", str(out),
         "--fast", "--no-interim", "--server", f"127.0.0.1:{whisper_server.port}"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    spanish = tmp_path / "meeting-es-ES.wav"
    assert soundfile.info(str(spanish)).duration > 0.5, captured.err
    assert f"-> {spanish}" in captured.err
