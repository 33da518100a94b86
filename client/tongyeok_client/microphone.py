"""A live microphone as an :class:`~tongyeok_client.audio.AudioStream`, through ``sounddevice`` (PortAudio).

The device records 16-bit mono PCM at 16 kHz (PortAudio resamples where the
device cannot) in blocks of ``chunk_ms``; its callback only queues each
block, and the chunk iterator hands them to the stream until :meth:`stop`
(the CLI calls it on Ctrl-C, so the last sentence is still finished and
translated). ``sounddevice`` is the ``tongyeok[speak]`` extra's library.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import Any

from .audio import AudioFormat, AudioStream
from .speech import NoAudioDevice

__all__ = ["Microphone", "input_devices"]

RATE_HZ = 16000
_STOP = b""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: the PortAudio library is missing
        raise NoAudioDevice(
            f"cannot record here ({e}); install the tongyeok[speak] extra and PortAudio (Debian: libportaudio2)"
        ) from None
    return sounddevice


def input_devices() -> list[str]:
    """The names of the input devices PortAudio sees (for ``--mic-device``)."""
    sd = _sounddevice()
    return [str(d["name"]) for d in sd.query_devices() if int(d.get("max_input_channels", 0)) > 0]


class Microphone:
    """One recording; ``stream()`` starts it, ``stop()`` ends the chunks (whole blocks only)."""

    def __init__(
        self, device: str | None = None, chunk_ms: float = 100.0, hold: Callable[[], bool] | None = None
    ) -> None:
        """``device``: a name (or part of one) or an index as ``sounddevice`` takes it; None is the default input.

        ``hold``: while it returns True the microphone sends silence instead of
        what it hears (half-duplex: hold it while the speech plays, e.g.
        ``lambda: player.speaking``). Silence, not nothing: the server's
        timeline, the sentence's end and the stream's pace stay as they are.
        """
        self._sd = _sounddevice()
        self._device: str | int | None = int(device) if device and device.isdigit() else device
        #: Held (sends silence) while this returns True; may be set after the microphone is made.
        self.hold = hold
        #: Blocks sent as silence because the microphone was held.
        self.held_blocks = 0
        self._blocks: queue.Queue[bytes] = queue.Queue()
        self._frames = max(1, round(RATE_HZ * chunk_ms / 1000))
        self._input: Any = None
        self.overflows = 0

    def stream(self) -> AudioStream:
        """Start recording; the stream's chunks follow the device until ``stop``."""
        try:
            self._input = self._sd.RawInputStream(
                samplerate=RATE_HZ,
                channels=1,
                dtype="int16",
                blocksize=self._frames,
                device=self._device,
                callback=self._callback,
            )
            self._input.start()
        except Exception as e:  # PortAudioError, ValueError for an unknown device name
            raise NoAudioDevice(f"cannot open the microphone {self._device or '(default)'}: {e}") from None
        audio_format = AudioFormat("LINEAR16", RATE_HZ, 1)
        return AudioStream(audio_format, self._chunks(), self._frames / RATE_HZ)

    def stop(self) -> None:
        """End the recording: the chunks end after the blocks already recorded."""
        device, self._input = self._input, None  # once, even if a Ctrl-C handler calls it again meanwhile
        if device is not None:
            device.stop()
            device.close()
        self._blocks.put(_STOP)

    def _callback(self, data: Any, _frames: int, _time: Any, status: Any) -> None:
        if status:
            self.overflows += 1  # the stream fell behind the device: audio was lost (the summary says so)
        if self.hold is not None and self.hold():  # decided as it is recorded: the speech plays now
            self.held_blocks += 1
            self._blocks.put(bytes(len(data)))
        else:
            self._blocks.put(bytes(data))

    def _chunks(self) -> Iterator[bytes]:
        while True:
            block = self._blocks.get()
            if block is _STOP or not block:
                return
            yield block
