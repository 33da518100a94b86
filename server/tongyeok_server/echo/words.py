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

In simultaneous mode the words are known as they are committed (``said``:
a translation is spoken clause by clause before it is complete), and the
stable text of an interim is judged before anything of it is committed
(``judge``): echo by the same rule; a person's once it has ``MIN_WORDS``
words that the translation does not have in that order; undecided before.
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from dataclasses import dataclass

from tongyeok_server import languages
from tongyeok_server.echo.base import Verdict

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
    text: str  # what was said so far, token by token (``said``)
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
            entry = self._entry(utterance_id, language, start, end)
            if text:
                entry.text = text
                entry.words = words_of(text)

    def said(self, utterance_id: int, language: str, piece: str, start: int, end: int) -> None:
        """One more committed piece (a token) of what ``utterance_id`` says in ``language``; "" voids it (a reset)."""
        with self._lock:
            entry = self._entry(utterance_id, language, start, end)
            entry.text = entry.text + piece if piece else ""
            entry.words = words_of(entry.text)

    def _entry(self, utterance_id: int, language: str, start: int, end: int) -> _Spoken:
        entry = self._spoken.get((utterance_id, language))
        if entry is None:
            entry = self._spoken[(utterance_id, language)] = _Spoken(utterance_id, language, [], "", start, end)
            self._forget(start)
        entry.start = min(entry.start, start)
        entry.end = max(entry.end, end)
        return entry

    def match(self, text: str, language: str, start: int, end: int) -> int:
        """The utterance whose spoken words ``text`` (heard at [start, end)) repeats, or 0."""
        heard = words_of(text)
        if len(heard) < MIN_WORDS:
            return 0
        shared, utterance_id = self._best(heard, language, start, end)
        return utterance_id if shared >= MIN_WORDS and shared >= MIN_SHARE * len(heard) else 0

    def judge(self, stable_text: str, language: str, start: int, end: int) -> Verdict:
        """An interim's stable text (heard at [start, end)) judged before it is committed (see the module docstring)."""
        heard = words_of(stable_text)
        shared, utterance_id = self._best(heard, language, start, end, windows_only=True)
        if utterance_id == 0:
            return Verdict.SPEECH  # nothing spoken in its language could be heard there
        if shared >= MIN_WORDS and shared >= MIN_SHARE * len(heard):
            return Verdict.ECHO
        return Verdict.SPEECH if len(heard) - shared >= MIN_WORDS else Verdict.PENDING

    def _best(
        self, heard: list[str], language: str, start: int, end: int, *, windows_only: bool = False
    ) -> tuple[int, int]:
        """The most words of ``heard`` one translation in ``language`` heard at [start, end) has in order, and its id.

        ``windows_only``: any translation of the language playing there
        counts (with 0 words shared), even before its words are known.
        """
        best, best_id = -1, 0
        with self._lock:
            candidates = [(e.utterance_id, e.language, list(e.words), e.start, e.end) for e in self._spoken.values()]
        for utterance_id, spoken_language, words, spoken_start, spoken_end in candidates:
            if not languages.same_language(spoken_language, language):
                continue
            if end < spoken_start or start > spoken_end + self._max_delay:
                continue
            if not words and not windows_only:
                continue
            shared = shared_words(heard, words) if heard and words else 0
            if shared > best:
                best, best_id = shared, utterance_id
        return max(best, 0), best_id

    def _forget(self, now: int) -> None:
        horizon = now - self._keep
        for key in [k for k, e in self._spoken.items() if e.end + self._max_delay < horizon]:
            del self._spoken[key]
