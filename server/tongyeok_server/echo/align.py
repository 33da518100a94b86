"""Finding the playback delay on the signal: where the speech the session sent shows up in the microphone.

The delay between sending speech and hearing it is unknown and varies
(network, the client's buffers and queue, the audio device), so it is
measured: the last ``window`` of the caller's audio is correlated with the
session's speech over every lag up to the longest delay looked for
(normalised cross-correlation through FFTs, at 8 kHz, which is enough for
speech and halves the work). A lag whose score passes ``MIN_SCORE`` is the
delay. Measured on synthesised speech: a digital mix scores ~1.0, the same
through a simulated room (reverberation, a clipping loudspeaker) ~0.4, a
person's unrelated speech at most ~0.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

Float32Array = npt.NDArray[np.float32]

#: Correlation above which a lag is taken as the echo's.
MIN_SCORE = 0.3
#: Correlation is computed at this rate.
ALIGN_RATE_HZ = 8000
#: Reference windows weaker than this share of the strongest one are scored as if they had that share,
#: so near-silent stretches of the speech cannot score high on a little noise.
ENERGY_FLOOR = 0.1


@dataclass(frozen=True)
class Delay:
    """A delay found: in samples at the caller's rate, and how well it matched (0-1)."""

    samples: int
    score: float


def find_delay(mic: Float32Array, reference: Float32Array, rate_hz: int) -> Delay | None:
    """The lag of ``mic`` (the last window of the caller's audio) within ``reference`` (the speech before it).

    ``reference`` ends where ``mic`` ends and starts ``len(reference) -
    len(mic)`` samples (the longest delay looked for) earlier. Returns the
    best lag (0 = the speech plays at once), to the sample, if it scores at
    least ``MIN_SCORE``, else None. The search runs at ``ALIGN_RATE_HZ``;
    the lag found is then refined at the caller's rate, since the canceller
    needs the same alignment to the sample from one utterance to the next.
    """
    if len(mic) == 0 or len(reference) < len(mic):
        return None
    factor = rate_hz / ALIGN_RATE_HZ
    low_mic, low_reference = mic, reference
    if rate_hz != ALIGN_RATE_HZ:
        low_mic = soxr.resample(mic, rate_hz, ALIGN_RATE_HZ, quality="LQ").astype(np.float32)
        low_reference = soxr.resample(reference, rate_hz, ALIGN_RATE_HZ, quality="LQ").astype(np.float32)
    coarse = _best_lag(low_mic, low_reference)
    if coarse is None:
        return None
    lag, score = coarse
    if score < MIN_SCORE:
        return None
    if rate_hz == ALIGN_RATE_HZ:
        return Delay(lag, score)
    around = round(lag * factor)
    reach = int(np.ceil(factor)) + 1
    fine = _scores_at(mic, reference, range(max(0, around - reach), around + reach + 1))
    if not fine:
        return Delay(around, score)
    best = max(fine, key=lambda lag_score: lag_score[1])
    return Delay(best[0], score)


def _best_lag(mic: Float32Array, reference: Float32Array) -> tuple[int, float] | None:
    """The lag (samples before the window's end) whose reference best matches ``mic``, and its score."""
    w = len(mic)
    if len(reference) < w or not np.any(reference):
        return None
    m = mic.astype(np.float64) - float(mic.mean())
    r = reference.astype(np.float64)
    mic_energy = float(np.dot(m, m))
    if mic_energy <= 0.0:
        return None
    n = 1 << int(np.ceil(np.log2(len(r) + w)))
    corr = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(m, n)), n)[: len(r) - w + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(r * r)])
    window_energy = cumulative[w:] - cumulative[:-w]
    floor = ENERGY_FLOOR * float(window_energy.max())
    if floor <= 0.0:
        return None
    score = corr / np.sqrt(np.maximum(window_energy, floor) * mic_energy)
    best = int(np.argmax(score))
    return len(r) - w - best, float(score[best])


def _scores_at(mic: Float32Array, reference: Float32Array, lags: range) -> list[tuple[int, float]]:
    """The normalised correlation of ``mic`` with ``reference`` at each lag (as ``_best_lag`` counts them)."""
    w = len(mic)
    m = mic.astype(np.float64) - float(mic.mean())
    mic_energy = float(np.dot(m, m))
    out = []
    for lag in lags:
        at = len(reference) - w - lag
        if at < 0 or lag < 0:
            continue
        r = reference[at : at + w].astype(np.float64)
        energy = float(np.dot(r, r)) * mic_energy
        if energy > 0.0:
            out.append((lag, float(np.dot(r, m)) / float(np.sqrt(energy))))
    return out
