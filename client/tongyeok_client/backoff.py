"""The one back-off policy of Tongyeok: exponential, capped, with one jitter.

Every retry loop uses it: the client's reconnects, the Google engines'
retries (Speech-to-Text and Text-to-Speech), the OpenAI translator's and the
meeting record's writer; the web page's reconnects (``gateway/static/app.js``)
use the same numbers in JavaScript. Its own rather than tenacity's: each loop has rules
of its own around the wait (a server's Retry-After, "no retry once audio was
sent", a restart event to the caller before the wait, a condition variable
that a stop wakes), so only the delay is shared, and a formula is not worth
a dependency. It lives in the client package because the client's
reconnects use it and the server already depends on this package (its
protos); the client must not depend on the server.

Jitter: +-20 % around the exponential value. Why not "full jitter" (0 to
the value): a live interpreter wants each wait bounded below as well (a
retry 5 ms after an outage began only finds the outage again), and +-20 %
is enough to keep sessions that failed together from retrying in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: The spread of every delay: uniform in [1 - JITTER, 1 + JITTER] x the exponential value.
JITTER = 0.2


@dataclass(frozen=True)
class Backoff:
    """``initial_s`` doubling (``factor``) up to ``max_s``, each with the one jitter."""

    initial_s: float
    max_s: float
    factor: float = 2.0

    def base_s(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1, 2, ...), without jitter."""
        return min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (1, 2, ...), jittered."""
        return self.base_s(attempt) * (rng or random).uniform(1 - JITTER, 1 + JITTER)
