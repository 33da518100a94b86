"""How far a simultaneous translation trails the speaker, per direction, and what it may spend.

Two figures set the lag of a direction (source language into target):

- **holdback**: how many of the last stable words wait for the words after
  them before they are translated (``source``);
- **agreement**: how many successive re-translations must agree before a
  word is committed (``agreement``).

Korean, Japanese, Turkish, Hindi and the other verb-final (SOV) languages
put the verb that carries the meaning last, and particles and modifiers
before the word they belong to, so their words need more of what follows
before they can be translated: a verb-final *source* gets one more word of
holdback. A verb-final *target* needs nothing extra: the agreement of
successive re-translations already waits when the target's word order is
still open (en→ko commits the subject, then waits for the object and verb).

========  =====================  =====================  =========
level     holdback (SVO source)  holdback (SOV source)  agreement
========  =====================  =====================  =========
low       0                      0                      2
balanced  0                      1                      2
accurate  2                      3                      3
========  =====================  =====================  =========

Why these, measured by ``make bench`` (the simultaneous part, a loaded
2-core machine): on the fakes, holding one more English word back cost
0.3 s of average lag and 0.35 s to the first word (en->es AL 2.05 -> 2.37 s)
for no gain the fake can show; on the embedded path (Whisper + Apertium,
en->es) holdback 0 and 1 scored within 1.5 chrF of each other and both at
least as well as consecutive, the erasure of tentative text 0.20 against
0.15. Korean with one word held back met the fakes' first-word target
(1.8 s) and with two did not (2.2 s); the agreement of re-translations
already waits where the verb reorders a clause (ko->en lags en->ko by
0.45 s at the same holdback).

The operator moves the balanced holdback per source language or direction
(``--simultaneous-holdback ko=2,en-ko=1``; low is one less, accurate two
more) and chooses the level callers get by default
(``--simultaneous-latency``); a caller chooses its level per stream
(``TranslationOptions.latency``).

Engines paid per request (OpenAI) are also held to a budget: at most
``--simultaneous-request-rate`` requests per second of speech on average,
the final's included (``RequestBudget``). Local engines (Apertium, 1-4 ms a
pass) re-translate whenever the stable text grows.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tongyeok_server import languages


class Latency(enum.Enum):
    """The caller's choice between lag and quality (mirrors ``tongyeok.v1.SimultaneousLatency``)."""

    LOW = "low"
    BALANCED = "balanced"
    ACCURATE = "accurate"


#: Languages whose sentences put the verb last (subject-object-verb): their words wait longer.
VERB_FINAL = frozenset(
    "ko ja tr hi ur bn fa ta te kn ml mr gu pa ne si my mn az uz kk ky tk am eu hy ka la".split()  # noqa: SIM905
)
BALANCED_HOLDBACK = 0
BALANCED_HOLDBACK_VERB_FINAL = 1
_LEVEL_OFFSET = {Latency.LOW: -1, Latency.BALANCED: 0, Latency.ACCURATE: 2}
_LEVEL_AGREEMENT = {Latency.LOW: 2, Latency.BALANCED: 2, Latency.ACCURATE: 3}
#: Requests per second of speech for engines paid per request, the final's included.
DEFAULT_REQUESTS_PER_SPEECH_S = 1.5
#: Requests a direction may have saved up (the budget's bucket).
REQUEST_BURST = 4.0
#: The first re-translations of a sentence, which go as soon as the budget has a request: two answers are
#: what the first agreement needs, and the first committed words are what a listener waits for most.
OPENING_REQUESTS = 2
#: Requests the later re-translations of a sentence leave in the bucket: the final's, and the next sentence's
#: first one.
STEADY_RESERVE = 2.0

_OVERRIDE = re.compile(r"^([a-z]{2,3})(?:-([a-z]{2,3}))?=(\d{1,2})$")


@dataclass(frozen=True)
class Pacing:
    """How one direction of a session is paced (``session_started`` reports it)."""

    latency: Latency
    holdback: int
    agreement: int
    #: 0: no limit (the engine is local and cheap).
    max_requests_per_speech_s: float


def parse_holdback(spec: str) -> dict[tuple[str, str], int]:
    """``"ko=3,en-ko=0"`` -> ``{("ko", ""): 3, ("en", "ko"): 0}`` (balanced holdback per source or direction).

    Raises ``ValueError`` with what is wrong.
    """
    out: dict[tuple[str, str], int] = {}
    for item in (part.strip().lower() for part in spec.split(",")):
        if not item:
            continue
        found = _OVERRIDE.match(item)
        if found is None:
            raise ValueError(
                f"{item!r}: expected SOURCE=WORDS or SOURCE-TARGET=WORDS with language subtags, e.g. ko=3,en-ko=0"
            )
        out[(found.group(1), found.group(2) or "")] = int(found.group(3))
    return out


def balanced_holdback(source: str, target: str, overrides: Mapping[tuple[str, str], int]) -> int:
    """The balanced level's holdback for ``source`` -> ``target`` (an operator's override first)."""
    src, tgt = languages.primary(source), languages.primary(target)
    for key in ((src, tgt), (src, "")):
        if key in overrides:
            return overrides[key]
    return BALANCED_HOLDBACK_VERB_FINAL if src in VERB_FINAL else BALANCED_HOLDBACK


def pacing(
    source: str,
    target: str,
    latency: Latency,
    *,
    overrides: Mapping[tuple[str, str], int] | None = None,
    max_requests_per_speech_s: float = 0.0,
) -> Pacing:
    """The pacing of one direction at ``latency``."""
    holdback = max(0, balanced_holdback(source, target, overrides or {}) + _LEVEL_OFFSET[latency])
    return Pacing(latency, holdback, _LEVEL_AGREEMENT[latency], max_requests_per_speech_s)


class RequestBudget:
    """At most ``rate`` requests per second of speech on average, ``burst`` saved up (a token bucket).

    The bucket fills with speech, not wall time: a pause in the conversation
    earns nothing. It starts with the two requests a first sentence opens
    with and holds at most ``burst``. Re-translations ``take`` a request
    when one is available: a sentence's opening ones as soon as there is
    one, the later ones only while ``STEADY_RESERVE`` more stay in the
    bucket, so that a sentence leaves what its final and the next
    sentence's first request need (without the reserve the final emptied
    the bucket and every sentence's first words waited for speech to refill
    it). The final's translation is always made and ``charge``s one (the
    bucket may go below zero, and the next re-translations wait). A rate of
    0 means no limit.
    """

    def __init__(self, rate: float, burst: float = REQUEST_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(OPENING_REQUESTS)
        #: Requests made, and seconds of speech heard (for figures).
        self.requests = 0
        self.speech_s = 0.0

    @property
    def unlimited(self) -> bool:
        """Whether there is no limit."""
        return self.rate <= 0

    def add_speech(self, seconds: float) -> None:
        """``seconds`` more of speech were heard."""
        if seconds > 0:
            self.speech_s += seconds
            self._tokens = min(self.burst, self._tokens + seconds * self.rate)

    def take(self, *, opening: bool = False) -> bool:
        """Spend one request if one is available for a re-translation (``opening``: one of a sentence's first)."""
        if self.unlimited:
            self.requests += 1
            return True
        if self._tokens < 1.0 + (0.0 if opening else STEADY_RESERVE):
            return False
        self._tokens -= 1.0
        self.requests += 1
        return True

    def charge(self) -> None:
        """Spend one request whatever the balance (the final's translation is always made)."""
        self.requests += 1
        if not self.unlimited:
            self._tokens -= 1.0
