"""A person talking under the echo, heard through a linear estimate of the echo where AEC3 mutes them.

AEC3's suppressor holds a person who starts talking under the speech's echo
until it is sure (0.2-0.5 s): their first word is lost to the recogniser.
Its linear filter had the echo; the suppressor then mutes everything. This
module keeps a linear estimate of its own: a short filter (``TAPS``) around
the echo's exact lag, fitted by least squares on recent stretches the
canceller found to be echo only (it removed more than ``CANCELLED``). Where
AEC3 mutes a frame that the estimate leaves well above the echo's residue
(``TALK`` times what the fit left on echo alone), a person is talking: the
frame is given as the microphone minus the estimated echo.

The estimate is only used while it is good (it removed at least ``GOOD``
of the echo on the stretches it learnt from): in a digital mix or a dry
room; in a reverberant room a short filter cannot follow the echo and AEC3
is left alone.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]

#: The filter's length (samples at the caller's rate), around the lag.
TAPS = 32
#: How far (seconds) the echo's lag is looked for around the delay the guard uses.
SEARCH_S = 0.03
#: A chunk AEC3 took down by this much (energy ratio) in most frames is echo only: the fit learns from it.
CANCELLED = 100.0
#: Echo-only chunks kept to fit on, and how many new ones make a new fit.
KEEP = 4
REFIT = 10
#: The fit is used only if it removed at least this much (energy ratio) of the echo it learnt from.
GOOD = 100.0
#: A frame the estimate leaves this many times above the fit's residue is a person talking ...
TALK = 20.0
#: ... if AEC3 took it down by more than this (energy ratio), and so are the frames around it.
MUTED = 4.0
RUN = 3


class LinearEstimate:
    """One stream's linear echo estimate; reset when the echo path moves."""

    def __init__(self, rate_hz: int) -> None:
        self.frame = rate_hz // 100
        self.pad = int(SEARCH_S * rate_hz) + TAPS
        self._training: deque[tuple[FloatArray, FloatArray]] = deque(maxlen=KEEP)
        self._filter: FloatArray | None = None  # the taps, applied to the padded reference from ``_start``
        self._start = 0
        self._residue = 0.0  # the fit's leftover energy over the reference's, on echo alone
        self._since = 0  # echo-only chunks since the last fit
        self._failed = False  # the last fit was poor: wait for REFIT more chunks
        #: Frames given back (a person AEC3 muted), for the log line and the bench.
        self.given_back = 0

    def reset(self) -> None:
        """The echo path moved (another delay): learn again."""
        self._training.clear()
        self._filter = None
        self._failed = False
        self._since = 0

    def apply(
        self, out: Int16Array, before: Int16Array, reference: FloatArray
    ) -> tuple[Int16Array, npt.NDArray[np.bool_]]:
        """Give back the frames of ``out`` where AEC3 muted a person (``before``: what it got).

        ``reference`` is the echo expected at those samples, with ``pad``
        samples more on each side. Returns the audio and, per frame, whether
        it was given back.
        """
        f = self.frame
        n = len(out) // f
        o = _energy(out, f, n)
        b = _energy(before, f, n)
        heard = b > float(f)  # frames with something in them (above about 1 in 32768)
        # AEC3 took it all down: echo alone, or a person it mutes (whom the estimate, once it has one, sees).
        cancelled = heard.sum() >= n / 2 and np.mean((o * CANCELLED < b)[heard]) >= 0.9 and np.any(reference)
        given = np.zeros(n, dtype=bool)
        candidate = self._talking(out, before, reference, o, b) if self._filter is not None else None
        if cancelled and (candidate is None or not candidate[0].any()):
            self._learn(before, reference)
        if candidate is None:
            return out, given
        found, residual = candidate
        edges = np.flatnonzero(np.diff(np.concatenate([[0], found.astype(np.int8), [0]])))
        for lo, hi in zip(edges[::2], edges[1::2], strict=True):
            if hi - lo >= RUN:  # a person talks for longer than a blip: runs of RUN frames or more
                given[lo:hi] = True
        if not given.any():
            return out, given
        result = out.copy()
        for k in np.flatnonzero(given):
            frame = slice(k * f, (k + 1) * f)
            result[frame] = np.clip(residual[frame], -32768, 32767).astype(np.int16)
        self.given_back += int(given.sum())
        return result, given

    def _talking(
        self, out: Int16Array, before: Int16Array, reference: FloatArray, o: FloatArray, b: FloatArray
    ) -> tuple[npt.NDArray[np.bool_], FloatArray] | None:
        """Per frame, whether a person is under the echo AEC3 took down; and the microphone less the estimate."""
        assert self._filter is not None
        f = self.frame
        n = len(o)
        taps = reference[self._start : self._start + len(before) + TAPS - 1]
        if len(taps) < len(before) + TAPS - 1:
            return None
        estimate = np.convolve(taps, self._filter[::-1], mode="valid")
        residual = before.astype(np.float64) - estimate
        e = _energy(residual, f, n)
        r = _energy(reference[self.pad : self.pad + len(before)], f, n)
        floor = self._residue * np.maximum(r, float(r.max(initial=0.0)) * 0.01) + 1.0
        predicted = _energy(estimate, f, n)
        # A person under the echo: the microphone heard the echo predicted (not a delay guessed wrong: then
        # the "residual" is the prediction itself), AEC3 muted the frame, and much is left past the echo.
        found = (e > TALK * floor) & (o * MUTED < e) & (b >= 0.5 * predicted) & (predicted > 0)
        return found, residual

    def _learn(self, before: Int16Array, reference: FloatArray) -> None:
        self._training.append((before.astype(np.float64), reference.copy()))
        self._since += 1
        first = self._filter is None and not self._failed and len(self._training) >= 2
        if not first and self._since < REFIT:
            return
        self._since = 0
        mic = np.concatenate([m for m, _ in self._training])
        # Where the echo is in the padded reference: the lag whose stretch matches the microphone best.
        span = 2 * self.pad - TAPS + 1
        corr = np.zeros(span)
        energy = np.zeros(span)
        for m, r in self._training:
            window = r[: len(m) + span - 1]
            size = 1 << int(np.ceil(np.log2(len(window) + len(m))))
            full = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(m, size)), size)
            corr += full[:span]
            cumulative = np.concatenate([[0.0], np.cumsum(window * window)])
            energy += (cumulative[len(m) :] - cumulative[: -len(m)])[:span]
        if not np.any(energy > 0):
            return
        best = int(np.argmax(corr / np.sqrt(np.maximum(energy, 1.0))))
        start = int(max(0, min(best - TAPS // 2, 2 * self.pad - TAPS)))
        columns = [np.concatenate([r[start + k : start + k + len(m)] for m, r in self._training]) for k in range(TAPS)]
        x = np.stack(columns, axis=1)
        gram = x.T @ x  # normal equations, lightly regularised: a 32 x 32 solve, not an SVD of the stretch
        gram[np.diag_indices(TAPS)] += 1e-6 * float(np.trace(gram)) / TAPS + 1e-9
        g = np.linalg.solve(gram, x.T @ mic)
        left = mic - x @ g
        echo = float(np.dot(mic, mic))
        if echo <= 0 or float(np.dot(left, left)) * GOOD > echo:
            log.debug("linear echo estimate: the fit left %.1f dB, not used", _db(float(np.dot(left, left)), echo))
            if self._filter is None:  # a short filter cannot follow this echo: leave AEC3 alone
                self._failed = True
            else:  # keep the one that worked; this stretch was not echo alone
                self._training.pop()
            return
        log.debug(
            "linear echo estimate: lag %d, the fit left %.1f dB", best - self.pad, _db(float(np.dot(left, left)), echo)
        )
        self._filter, self._start = g, start
        played = sum(
            float(np.dot(r[self.pad : self.pad + len(m)], r[self.pad : self.pad + len(m)])) for m, r in self._training
        )
        self._residue = float(np.dot(left, left)) / max(played, 1.0)


def _db(part: float, whole: float) -> float:
    return float(10 * np.log10(max(part, 1e-12) / max(whole, 1e-12)))


def _energy(samples: npt.NDArray[np.generic], f: int, n: int) -> FloatArray:
    x = np.asarray(samples[: n * f], dtype=np.float64).reshape(n, f)
    result: FloatArray = (x * x).sum(axis=1)
    return result
