"""``tongyeok interpret --mic``: a live microphone (a stand-in PortAudio device playing speech) to the real server."""

from __future__ import annotations

import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.support.speech import Speech
from tongyeok_client import cli
from tongyeok_client.cli import interpret
from tongyeok_client.microphone import Microphone
from tongyeok_client.speech import echo_cancelling_devices
from tongyeok_server.app import TongyeokServer


@pytest.fixture(autouse=True)
def _sigint_as_in_a_terminal() -> Iterator[None]:
    """SIGINT handled as in a terminal: a suite started in the background by a non-interactive shell
    inherits it ignored (and Python keeps it so), and then no Ctrl-C could reach the CLI at all."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class FakeDevice:
    """``sounddevice`` as the CLI uses it: one input device that says ``speech`` at real time, then Ctrl-C."""

    def __init__(self, pcm: bytes, speed: float = 4.0) -> None:
        self.pcm = pcm
        self.speed = speed  # times real time
        self.opened: dict[str, Any] = {}
        self.played: list[tuple[float, float]] = []  # (start, end) of each write to the output device

    def query_devices(self, kind: str | None = None) -> Any:
        devices = [
            {"name": "Built-in Microphone", "max_input_channels": 1, "max_output_channels": 0},
            {"name": "Speakers", "max_input_channels": 0, "max_output_channels": 2},
        ]
        return devices[1] if kind == "output" else devices

    def RawInputStream(self, **kwargs: Any) -> Any:
        self.opened = kwargs
        device = self

        class Stream:
            def start(self) -> None:
                threading.Thread(target=self.run, daemon=True).start()

            def run(self) -> None:
                block = kwargs["blocksize"] * 2
                for i in range(0, len(device.pcm), block):
                    kwargs["callback"](device.pcm[i : i + block], block // 2, None, None)
                    time.sleep(block / 2 / kwargs["samplerate"] / device.speed)  # faster than real time: short test
                # The person presses Ctrl-C as the audio ends: a real SIGINT to the main thread, as a terminal
                # sends it (the CLI still has the second sentence to finish).
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

            def stop(self) -> None:
                pass

            def close(self) -> None:
                pass

        return Stream()

    def RawOutputStream(self, **kwargs: Any) -> Any:
        device = self

        class Stream:
            latency = 0.05

            def start(self) -> None:
                pass

            def write(self, data: bytes) -> None:
                start = time.monotonic()
                time.sleep(len(data) / 2 / kwargs["samplerate"])  # plays in real time
                device.played.append((start, time.monotonic()))

            def stop(self) -> None:
                pass

            def close(self) -> None:
                pass

        return Stream()


def test_mic_interprets_live_audio_until_ctrl_c_then_finishes_the_sentence(
    monkeypatch, capsys, offline_server: TongyeokServer, speech: Speech
) -> None:
    pcm = speech.pcm()[: int(speech.sentence_end_s[1] * 16000 + 8000) * 2]  # two sentences and a pause
    device = FakeDevice(pcm)
    fake: dict[str, Any] = {"query_devices": device.query_devices, "RawInputStream": device.RawInputStream}
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(**fake))
    server = f"127.0.0.1:{offline_server.port}"
    code = cli.main(["interpret", "--mic", "--mic-device", "Built-in", "--source", "en-US", "--target", "es",
                     "--server", server])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert device.opened["samplerate"] == 16000 and device.opened["dtype"] == "int16"
    assert device.opened["device"] == "Built-in"
    assert "Good morning" in out and "Buenos días" in out, out
    assert "contract" in out, out  # the second sentence, finished after Ctrl-C
    assert np.frombuffer(pcm, dtype=np.int16).any()


def test_list_mics_names_the_input_devices(monkeypatch, capsys) -> None:
    device = FakeDevice(b"")
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=device.query_devices))
    assert cli.main(["interpret", "--list-mics"]) == 0
    assert capsys.readouterr().out.split("\n")[:1] == ["Built-in Microphone"]


def test_half_duplex_holds_the_microphone_while_the_speech_plays(
    monkeypatch, capsys, offline_server: TongyeokServer, speech: Speech
) -> None:
    first = speech.pcm()[: int(speech.sentence_end_s[0] * 16000) * 2]
    room = (np.random.default_rng(0).standard_normal(6 * 16000) * 30).astype("<i2").tobytes()  # the room, quietly
    device = FakeDevice(first + room, speed=1.0)
    fake: dict[str, Any] = {
        "query_devices": device.query_devices,
        "RawInputStream": device.RawInputStream,
        "RawOutputStream": device.RawOutputStream,
    }
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(**fake))
    blocks: list[tuple[float, bool]] = []  # (when recorded, sent as silence)
    microphones: list[Any] = []

    class Spy(Microphone):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            microphones.append(self)

        def _callback(self, data: Any, frames: int, when: Any, status: Any) -> None:
            held = self.held_blocks
            super()._callback(data, frames, when, status)
            blocks.append((time.monotonic(), self.held_blocks > held))

    monkeypatch.setattr(interpret, "Microphone", Spy)
    server = f"127.0.0.1:{offline_server.port}"
    code = cli.main(["interpret", "--mic", "--source", "en-US", "--target", "es", "--speak", "es", "--half-duplex",
                     "--server", server])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "half-duplex" in err and "Buenos días" in out, (out, err)
    assert device.played, "the translation was spoken"
    (mic,) = microphones
    assert mic.held_blocks > 0
    start, end = device.played[0][0], device.played[-1][1]
    during = [held for at, held in blocks if start + 0.05 < at < end]  # recorded while the speech played
    assert during and all(during), "every block recorded while the speech played went out as silence"
    assert not any(held for at, held in blocks if at < start), "the person's sentence before it went out whole"


def test_the_systems_echo_canceller_is_found_by_its_devices(monkeypatch) -> None:
    devices = [
        {"name": "Built-in Microphone", "max_input_channels": 1, "max_output_channels": 0},
        {"name": "Echo-Cancel Source", "max_input_channels": 1, "max_output_channels": 0},
        {"name": "Echo-Cancel Sink", "max_input_channels": 0, "max_output_channels": 2},
    ]
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=lambda: devices))
    assert echo_cancelling_devices() == ("Echo-Cancel Source", "Echo-Cancel Sink")
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=lambda: devices[:2]))
    assert echo_cancelling_devices() is None  # a source alone is not a canceller the player can use
