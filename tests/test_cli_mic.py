"""``tongyeok interpret --mic``: a live microphone (a stand-in PortAudio device playing speech) to the real server."""

from __future__ import annotations

import _thread
import sys
import threading
import time
import types
from typing import Any

import numpy as np

from tests.support.speech import Speech
from tongyeok_client import cli
from tongyeok_server.app import TongyeokServer


class FakeDevice:
    """``sounddevice`` as the CLI uses it: one input device that says ``speech`` at real time, then Ctrl-C."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.opened: dict[str, Any] = {}

    def query_devices(self) -> list[dict[str, Any]]:
        return [{"name": "Built-in Microphone", "max_input_channels": 1}, {"name": "Speakers", "max_input_channels": 0}]

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
                    time.sleep(block / 2 / kwargs["samplerate"] / 4)  # 4x real time: the test is short
                time.sleep(1.0)
                _thread.interrupt_main()  # the person presses Ctrl-C

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
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(**{
        "query_devices": device.query_devices, "RawInputStream": device.RawInputStream,
    }))  # fmt: skip
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
