"""Echo on the words: a final that repeats, in order, what the session just spoke in that language.

The canceller removes most echo from the signal; what gets through (the
first instants before the delay is found, a loud room) may still be
recognised. In a two-way stream that text is in a language the session
spoke, and it is (nearly) the words of a translation it sent shortly
before. A final is echo when at least ``MIN_SHARE`` of its words, and at
least ``MIN_WORDS`` of them, appear in that order in one spoken translation
of its language whose playback window it falls in. A person who answers
with a word or two of the translation ("Gracias") is never echo by words
alone; one who repeats a whole sentence of it inside the window would be
(and a UI still shows the flagged text).
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from dataclasses import dataclass

from tongyeok_server import languages

MIN_SHARE = 0.6
MIN_WORDS = 2
_WORD = re.compile(r"\w+", re.UNICODE)


def words_of(text: str) -> list[str]:
    """Lower-case words, accents and punctuation aside (recognisers and translators differ in both)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return _WORD.findall(plain)


def shared_words(heard: list[str], spoken: list[str]) -> int:
    """How many words of ``heard`` appear in ``spoken`` in the same order."""
    matcher = difflib.SequenceMatcher(a=heard, b=spoken, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


@dataclass
class _Spoken:
    utterance_id: int
    language: str
    words: list[str]
    start: int  # where its speech could start playing (caller's samples)
    end: int  # where it ends, as placed; grows while its audio comes


class SpokenWords:
    """The translations a session spoke, by playback window; fed on the loop, asked from any thread."""

    def __init__(self, max_delay: int, keep: int) -> None:
        self._max_delay = max_delay
        self._keep = keep
        self._spoken: dict[tuple[int, str], _Spoken] = {}
        self._lock = threading.Lock()

    def spoken(self, utterance_id: int, language: str, text: str, start: int, end: int) -> None:
        """Remember (or update) what was spoken of ``utterance_id`` in ``language`` and where it plays."""
        with self._lock:
            entry = self._spoken.get((utterance_id, language))
            if entry is None:
                entry = self._spoken[(utterance_id, language)] = _Spoken(utterance_id, language, [], start, end)
                self._forget(start)
            if text:
                entry.words = words_of(text)
            entry.start = min(entry.start, start)
            entry.end = max(entry.end, end)

    def match(self, text: str, language: str, start: int, end: int) -> int:
        """The utterance whose spoken words ``text`` (heard at [start, end)) repeats, or 0."""
        heard = words_of(text)
        if len(heard) < MIN_WORDS:
            return 0
        best, best_id = 0, 0
        with self._lock:
            candidates = list(self._spoken.values())
        for entry in candidates:
            if not entry.words or not languages.same_language(entry.language, language):
                continue
            if end < entry.start or start > entry.end + self._max_delay:
                continue
            shared = shared_words(heard, entry.words)
            if shared >= MIN_WORDS and shared >= MIN_SHARE * len(heard) and shared > best:
                best, best_id = shared, entry.utterance_id
        return best_id

    def _forget(self, now: int) -> None:
        horizon = now - self._keep
        for key in [k for k, e in self._spoken.items() if e.end + self._max_delay < horizon]:
            del self._spoken[key]
