"""WebRTC's echo canceller (AEC3), through LiveKit's Python SDK, on a stream with a constant latency.

Why AEC3 and this binding: it is the canceller every Chromium-based browser
runs (adaptive linear filter, its own fine delay estimator, a residual echo
suppressor that keeps a near-end talker); ``livekit`` ships it prebuilt in
a maintained wheel (``rtc.AudioProcessingModule``), so nothing is compiled
here. Measured against Speex's canceller (Debian libspeexdsp through
``speexaec``) on the same aligned speech: Speex removed 9-13 dB of echo
over a sentence (it converges slowly), AEC3 55-65 dB in a digital mix and
25-30 dB through a simulated room, leaving the overlapping talker intact.

What AEC3 needs, measured (``tests/test_echo.py`` keeps the first two):

- The reference ``HEADROOM_S`` ahead of the echo: its filter is causal;
  fed exactly in step, it cancelled a few dB.
- The same alignment from one utterance to the next: AEC3 learns the echo
  path, and a reference that moves by even a millisecond is a new path it
  takes seconds to learn again (60 dB of cancellation fell to 15-30). So the
  guard aligns each utterance to the sample and ``restart`` gives AEC3 a fresh
  filter when the alignment changes anyway (a fresh one converges within
  half a second).
- The module delays what it returns by a few milliseconds (its resamplers
  and filter banks: 8 ms at 16 kHz, 11 at 8 kHz). Audio that bypasses it is
  delayed as much, and a module (re)started mid-stream is first fed the
  frames just passed, so it can start, restart and stop without a seam in
  the audio the recogniser hears; the stream's whole latency is ``latency``
  samples (that, and one frame to take chunks of any length).
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

#: How far ahead of the echo the reference is fed to the canceller.
HEADROOM_S = 0.06
#: A module (re)started mid-stream is first fed this much of the audio just passed (with the reference
#: that went with it): it lines its output up with the bypass, and a fresh AEC3 fed less than ~0.25 s
#: before the echo cancelled 35 dB of a digital echo instead of 60.
PRIME_S = 0.3


def available() -> bool:
    """Whether the canceller can run here (the ``livekit`` package imports)."""
    try:
        from livekit import rtc  # noqa: F401
    except ImportError:
        return False
    return True


def supports_rate(rate_hz: int) -> bool:
    """Whether the canceller takes audio at ``rate_hz`` (whole 10 ms frames)."""
    return rate_hz % 100 == 0


class _Module:
    """One AudioProcessingModule with echo cancellation only, fed 10 ms frames."""

    def __init__(self, rate_hz: int) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self.rate_hz = rate_hz
        self.frame = rate_hz // 100

    def process(self, mic: Int16Array, reference: Int16Array) -> Int16Array:
        """One frame: ``reference`` is what plays (``HEADROOM_S`` ahead of its echo), ``mic`` what was heard."""
        rtc, f = self._rtc, self.frame
        self._apm.process_reverse_stream(rtc.AudioFrame(reference.tobytes(), self.rate_hz, 1, f))
        frame = rtc.AudioFrame(mic.tobytes(), self.rate_hz, 1, f)
        self._apm.set_stream_delay_ms(0)
        self._apm.process_stream(frame)
        return np.frombuffer(bytes(frame.data), dtype=np.int16)


@functools.cache
def module_latency(rate_hz: int) -> int:
    """How many samples the module delays its output at ``rate_hz`` (measured once, on noise)."""
    module = _Module(rate_hz)
    f = module.frame
    noise = (np.random.default_rng(0).standard_normal(40 * f) * 3000).astype(np.int16)
    silence = np.zeros(f, dtype=np.int16)
    out = np.concatenate([module.process(noise[i : i + f], silence) for i in range(0, len(noise), f)])
    probe = out[20 * f : 30 * f].astype(np.float64)
    lags = range(0, 10 * f)
    return max(lags, key=lambda lag: float(np.dot(probe, noise[20 * f - lag : 30 * f - lag].astype(np.float64))))


class Canceller:
    """AEC3 over one stream of caller audio, ``latency`` samples behind it; one call at a time.

    ``process`` takes a chunk of any length and returns as many samples: the
    audio ``latency`` samples earlier, cancelled where a reference was given.
    The module learns the echo path across utterances; between them (no
    reference) the audio bypasses it, and it picks up where it was.
    """

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.frame = f = rate_hz // 100
        self._module_latency = module_latency(rate_hz)
        #: Samples between the audio taken and the audio returned.
        self.latency = self._module_latency + f
        prime_frames = max(-(-self._module_latency // f) + 1, round(PRIME_S * 100))
        self._history = np.zeros(prime_frames * f, dtype=np.int16)  # the last whole frames taken
        self._pending = np.zeros(0, dtype=np.int16)  # taken, not yet a whole frame
        self._pending_reference = np.zeros(0, dtype=np.int16)
        # Processed, not yet returned: a frame's worth at first, so that chunks of any length come back whole.
        self._ready = np.zeros(f, dtype=np.int16)
        self._ready_before = np.zeros(f, dtype=np.int16)
        self._history_reference: Int16Array | None = None  # what played with the history, for a restart
        self._taken = 0  # samples taken in whole frames so far
        self._module: _Module | None = None
        self._active = False  # the module has been fed every frame since it was (re)primed
        self._lock = threading.Lock()
        #: How many times a fresh filter was started.
        self.starts = 0

    @property
    def history_span(self) -> tuple[int, int]:
        """The stretch of the audio taken (sample positions) a restart replays to the fresh module."""
        return self._taken - len(self._history), self._taken

    def restart(self, reference: Int16Array | None = None) -> None:
        """A fresh filter from the next reference on (the echo path changed: it would take seconds to follow).

        ``reference`` is what played during ``history_span`` (``HEADROOM_S``
        ahead, as ``process`` takes it): the fresh module learns from it.
        """
        with self._lock:
            self._module = None
            self._active = False
            self._history_reference = reference

    def process(self, mic: Int16Array, reference: Int16Array | None) -> tuple[Int16Array, Int16Array]:
        """``mic`` -> (the audio ``latency`` samples earlier, cancelled; the same, uncancelled), as long as ``mic``.

        ``reference`` (as long as ``mic``, ``HEADROOM_S`` ahead of its echo)
        runs the canceller on this chunk; None lets it bypass.
        """
        with self._lock:
            f = self.frame
            taken = np.concatenate([self._pending, mic])
            ref = np.zeros(len(taken), dtype=np.int16)
            ref[: len(self._pending_reference)] = self._pending_reference
            if reference is not None:
                ref[len(self._pending) :] = reference
                if not self._active:
                    self._prime()
            else:
                self._active = False
            whole = len(taken) // f * f
            lag, kept = self._module_latency, len(self._history)
            joined = np.concatenate([self._history, taken[:whole]])
            passed = joined[kept - lag : len(joined) - lag]  # the audio, ``lag`` samples late
            module = self._module if self._active else None
            if module is None:
                processed = passed
            else:
                processed = np.concatenate(
                    [module.process(taken[i : i + f], ref[i : i + f]) for i in range(0, whole, f)]
                    or [np.zeros(0, dtype=np.int16)]
                )
            self._history = joined[len(joined) - kept :]
            outs, befores = [self._ready, processed], [self._ready_before, passed]
            self._taken += whole
            self._pending, self._pending_reference = taken[whole:], ref[whole:]
            out, before = np.concatenate(outs), np.concatenate(befores)
            n = len(mic)
            self._ready, self._ready_before = out[n:], before[n:]
            return out[:n], before[:n]

    def flush(self) -> tuple[Int16Array, Int16Array]:
        """The last ``latency`` samples taken (the stream's end), bypassing the canceller."""
        return self.process(np.zeros(self.latency, dtype=np.int16), None)

    def _prime(self) -> None:
        """(Re)start feeding the module: first the frames just passed, so its output lines up with the bypass."""
        if self._module is None:
            self._module = _Module(self.rate_hz)
            self.starts += 1
        f = self.frame
        reference = self._history_reference
        if reference is None or len(reference) != len(self._history):
            reference = np.zeros(len(self._history), dtype=np.int16)
        self._history_reference = None
        for i in range(0, len(self._history), f):
            self._module.process(self._history[i : i + f], reference[i : i + f])
        self._active = True
