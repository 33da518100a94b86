"""What the recogniser heard, per 10 ms of the caller's audio: its energy, and whether it was echo.

A final's span is then judged by how much of what the recogniser heard in
it was the session's own speech: frames that passed before the delay was
found and turned out to hold the speech (``leaked``), and frames the guard
found to be echo (``residual.ResidualGate``: no louder than the echo
expected, or taken down by the canceller by more than ``ECHO_ONLY_DB``). A
person talking over the speech is louder than its echo, and what the
canceller leaves of them is far louder than what it leaves of the echo:
those frames count as theirs.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

ECHO_ONLY_DB = 10.0
#: Frames remembered (10 ms each): two minutes, longer than any utterance.
RING = 12000


class FrameLog:
    """A ring of per-frame figures by position in the caller's audio; written by one thread, read by any."""

    def __init__(self, frame: int) -> None:
        self.frame = frame
        self._heard = np.zeros(RING, dtype=np.float64)  # energy passed to the recogniser
        self._echo = np.zeros(RING, dtype=bool)  # that energy was (mostly) the session's speech
        self._index = np.full(RING, -1, dtype=np.int64)  # which frame each slot holds
        # Frames found afterwards to have carried the speech uncancelled (kept apart: they may be marked
        # before the canceller's output for them is added).
        self._leaked = np.full(RING, -1, dtype=np.int64)
        self._lock = threading.Lock()
        # The end of the last call that is not a whole frame yet (the writer's only).
        self._carry = np.zeros(0, dtype=np.int16)
        self._carry_echo = np.zeros(0, dtype=bool)
        self._carry_at = 0

    def add(self, start: int, heard: npt.NDArray[np.int16], echo: npt.NDArray[np.bool_] | None = None) -> None:
        """Samples from ``start`` on: what the recogniser got, and (per sample) whether it was echo.

        Calls follow each other (each ``start`` where the last ended); a
        frame split between two calls is logged when it is whole.
        """
        flags = echo if echo is not None else np.zeros(len(heard), dtype=bool)
        if self._carry_at + len(self._carry) == start and len(self._carry):
            start = self._carry_at
            heard = np.concatenate([self._carry, heard])
            flags = np.concatenate([self._carry_echo, flags])
        f = self.frame
        first = -(-start // f)  # whole frames only
        skip = first * f - start
        n = max(0, (len(heard) - skip) // f)
        done = skip + n * f
        self._carry, self._carry_echo, self._carry_at = heard[done:], flags[done:], start + done
        if n <= 0:
            return
        x = heard[skip:done].astype(np.float64).reshape(n, f)
        energy = (x * x).sum(axis=1)
        frame_echo = flags[skip:done].reshape(n, f).mean(axis=1) > 0.5
        slots = np.arange(first, first + n) % RING
        with self._lock:
            self._heard[slots] = energy
            self._echo[slots] = frame_echo
            self._index[slots] = np.arange(first, first + n)

    def mark_leaked(self, start: int, end: int, reference_energy: npt.NDArray[np.float64]) -> None:
        """Frames in [start, end) that passed uncancelled while the speech (``reference_energy`` per frame) played."""
        f = self.frame
        first = -(-start // f)
        frames = np.arange(first, first + len(reference_energy))
        voiced = reference_energy[: len(frames)] > 0
        frames = frames[(frames * f < end) & voiced[: len(frames)]]
        with self._lock:
            self._leaked[frames % RING] = frames

    def echo_share(self, start: int, end: int, unknown_from: int | None = None) -> float:
        """Of the energy the recogniser heard in [start, end), the share that was the session's speech (0 if none).

        ``unknown_from``: frames from there on count as the speech whatever
        is known of them (the most they could turn out to be).
        """
        f = self.frame
        frames = np.arange(max(0, start // f), max(0, end // f))
        if not len(frames):
            return 0.0
        frames = frames[-RING:]
        with self._lock:
            slots = frames % RING
            held = self._index[slots] == frames
            heard = self._heard[slots][held]
            echo = (self._echo[slots] | (self._leaked[slots] == frames))[held]
        if unknown_from is not None:
            echo |= frames[held] * f >= unknown_from
        total = float(heard.sum())
        if total <= 0.0:  # the recogniser heard nothing there: echo if the guard took it all
            return 1.0 if echo.any() else 0.0
        return float(heard[echo].sum()) / total
