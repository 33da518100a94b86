"""After the canceller, per 10 ms frame: what is left of the echo is brought down, and counted as echo.

The recogniser is not a listener: it hears words in whatever is left, and
its voice detector opens on a residual a listener would not notice. What
AEC3 leaves of a loud or reverberant echo is judged against the echo the
microphone should hear in each frame: the reference's energy there, held
and decaying as a room's reverberation does, times the echo's loudness in
this room (``erl``, learnt from frames the canceller removed almost
entirely). A frame the microphone heard no louder than ``ECHO_MARGIN`` times
that is echo: it is brought down by ``GATE_DB`` and counted as echo (a
final made mostly of such frames is the session's own speech). A person
talking over the speech is louder than its echo: those frames are left as
AEC3 gives them.

A person AEC3 mutes under the echo is given back before this gate
(``linear.LinearEstimate``), and its frames are left alone here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]

#: A frame whose energy is at most this many times the echo expected is echo ...
ECHO_MARGIN = 2.0
#: ... and is brought down by this much.
GATE_DB = 30.0
#: Frames the canceller took down by this much (energy ratio) while the speech played teach ``erl``.
CANCELLED = 100.0
#: How fast the echo expected decays after the reference does (the room's reverberation: 60 dB in 0.3 s).
DECAY_DB_PER_FRAME = 2.0
#: How fast ``erl`` follows (share of each new frame in the log-domain average): a few frames.
LEARN = 0.2
#: A frame whose ratio is this far from ``erl`` (ln, about 6 dB) does not teach it (a person talking: the
#: suppressor mutes them too), except among the first ``FREE_FRAMES`` learnt after a silence of the
#: speech (the speech starts, people listen; its loudness may have changed).
LEARN_RANGE = 1.4
FREE_FRAMES = 10


class ResidualGate:
    """One stream's gate, frame by frame, in order."""

    def __init__(self, rate_hz: int) -> None:
        self.frame = rate_hz // 100
        self._decay = 10 ** (-DECAY_DB_PER_FRAME / 10)
        self._envelope = 0.0  # the reference's energy, held and decaying as a room's echo does
        self._log_erl: float | None = None  # ln(echo energy / reference energy)
        self._free = FREE_FRAMES  # frames that may still teach ``erl`` whatever their ratio
        #: Frames brought down, for the log line and the bench.
        self.gated = 0

    @property
    def erl(self) -> float | None:
        """The echo's energy over the reference's in this room, once learnt."""
        return None if self._log_erl is None else float(np.exp(self._log_erl))

    def apply(
        self,
        out: Int16Array,
        before: Int16Array,
        reference: Int16Array,
        talking: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[Int16Array, FloatArray]:
        """Gate ``out`` (the canceller's, from ``before``); ``reference`` is the echo expected, unscaled.

        All three are the same samples; ``talking`` marks frames known to
        hold a person (``linear.LinearEstimate``), left alone. Returns the
        gated audio and, per whole frame, 1 where it was echo (else 0).
        """
        f = self.frame
        n = len(out) // f
        o = _energy(out, f, n)
        b = _energy(before, f, n)
        r = _energy(reference, f, n)
        result = out.copy()
        echo = np.zeros(n)
        gain = 10 ** (-GATE_DB / 20)
        for i in range(n):
            self._envelope = max(r[i], self._envelope * self._decay)
            envelope = self._envelope
            if envelope <= 1.0:  # nothing played here
                self._free = FREE_FRAMES
                continue
            if r[i] >= 0.5 * envelope and o[i] * CANCELLED < b[i]:
                self._learn(b[i] / r[i])
            if talking is not None and i < len(talking) and talking[i]:
                continue
            if self._log_erl is not None and b[i] <= ECHO_MARGIN * float(np.exp(self._log_erl)) * envelope:
                echo[i] = 1.0
                frame = slice(i * f, (i + 1) * f)
                result[frame] = (out[frame] * gain).astype(np.int16)
                self.gated += 1
        return result, echo

    def measured(self, echo_energy: float, reference_energy: float) -> None:
        """The echo's loudness, measured where it was heard alone (no canceller: the window its delay was found in).

        Taken as it is: each utterance may play at another volume (a client,
        a person at the phone's volume keys), and this is a measurement of
        the one now heard, not one frame's guess.
        """
        if reference_energy > 0.0 and echo_energy > 0.0:
            self._log_erl = float(np.log(echo_energy / reference_energy))

    def _learn(self, ratio: float) -> None:
        value = float(np.log(max(ratio, 1e-12)))
        if self._log_erl is None:
            self._log_erl = value
            return
        deviation = value - self._log_erl
        if self._free > 0:
            self._free -= 1
        elif abs(deviation) > LEARN_RANGE:
            return  # a person talking (the suppressor mutes them too), not the echo
        self._log_erl += LEARN * deviation


def _energy(samples: Int16Array, f: int, n: int) -> FloatArray:
    x = samples[: n * f].astype(np.float64).reshape(n, f)
    result: FloatArray = (x * x).sum(axis=1)
    return result
