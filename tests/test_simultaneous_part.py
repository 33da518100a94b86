"""A session's simultaneous translations on the event loop, with scripted async engines (no server, no network).

The engines here answer on the loop as the real ones do after the async
seam: ``translate`` returns an async generator of chunks, and closing it
(a cancel) is seen in their ``cancelled`` list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence

import grpc

from tongyeok_server.echo.base import Verdict
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import Transcript
from tongyeok_server.session import events as ev
from tongyeok_server.simultaneous.options import ServerDefaults, SimultaneousConfig
from tongyeok_server.simultaneous.pacing import Latency
from tongyeok_server.simultaneous.session_part import RECHECK_S, SimultaneousPart
from tongyeok_server.translation.base import (
    TokenDelta,
    TranslationChunk,
    TranslationRequest,
    TranslationRestart,
    Translator,
)


def upper(request: TranslationRequest) -> str:
    """A monotone 'translation': the words in capitals, each translated on its own (so prefixes agree)."""
    return " ".join(w.upper() for w in request.text.split())


class Scripted(Translator):
    """Answers ``answer(request)`` a word per chunk after ``delay_s``; records requests and cancels."""

    def __init__(
        self,
        answer: Callable[[TranslationRequest], str] = upper,
        *,
        delay_s: float = 0.0,
        continues: bool = False,
        paid: bool = False,
        pieces: Callable[[str], Sequence[TranslationChunk]] | None = None,
    ) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.continues_committed = continues
        self.paid_per_request = paid
        self.pieces = pieces
        self.requests: list[TranslationRequest] = []
        self.cancelled: list[TranslationRequest] = []

    @property
    def description(self) -> EngineDescription:
        return EngineDescription("scripted")

    def language_pairs(self) -> Sequence[tuple[str, str]]:
        return [("en", "es"), ("ko", "en")]

    def translate(self, request: TranslationRequest) -> AsyncGenerator[TranslationChunk, None]:
        return self._stream(request)

    async def _stream(self, request: TranslationRequest) -> AsyncGenerator[TranslationChunk, None]:
        self.requests.append(request)
        done = False
        try:
            await asyncio.sleep(self.delay_s)
            text = self.answer(request)
            if self.continues_committed and request.committed:
                # A model told to continue: the words after the committed ones.
                text = " ".join(text.split()[len(request.committed.split()) :])
            chunks = (
                self.pieces(text)
                if self.pieces
                else [TokenDelta(w if i == 0 else " " + w) for i, w in enumerate(text.split())]
            )
            for chunk in chunks:
                yield chunk
            done = True
        finally:
            if not done:
                self.cancelled.append(request)


def config(
    latency: Latency = Latency.BALANCED, *, paid: bool = False, tentative: bool = True, rate: float = 1.5
) -> SimultaneousConfig:
    return SimultaneousConfig.build(
        latency, tentative, [("en-US", "es"), ("ko-KR", "en")], ServerDefaults(request_rate=rate), paid_per_request=paid
    )


def prefixes_asked(translator: Scripted) -> list[str]:
    """The texts of the re-translations of an engine held to a budget (no witness translations)."""
    assert translator.paid_per_request
    return [r.text for r in translator.requests if r.partial]


class Harness:
    """A SimultaneousPart with its events collected and the lanes' state scripted."""

    def __init__(self, translator: Scripted, cfg: SimultaneousConfig | None = None) -> None:
        self.events: list[ev.SessionEvent] = []
        self.busy: set[str] = set()
        self.translator = translator
        self.part = SimultaneousPart(
            cfg or config(paid=translator.paid_per_request),
            translator,
            self.events.append,
            lambda source, target: TranslationRequest("", source, target, session_id="s-test"),
            lambda language: ("en",) if language.startswith("ko") else ("es",),
            lambda target: target not in self.busy,
        )

    async def speak(self, words: list[str], *, uid: int = 1, language: str = "en-US", word_s: float = 0.35) -> None:
        """Interims as Google sends them: every word but the newest stable, one interim per word."""
        for n in range(1, len(words) + 1):
            self.part.interim(
                uid,
                Transcript(" ".join(words[:n]), language, False, 0.0, n * word_s, stable_text=" ".join(words[: n - 1])),
            )
            await asyncio.sleep(0.01)  # the loop runs the re-translations (a local engine answers at once)

    async def final(self, words: list[str], *, uid: int = 1, language: str = "en-US", target: str = "es") -> str | None:
        self.part.final(uid, (target,))
        return await self.part.finish(uid, TranslationRequest(" ".join(words), language, target, session_id="s-test"))

    def tokens(self, uid: int = 1) -> list[str]:
        return [e.text for e in self.events if isinstance(e, ev.Token) and e.utterance_id == uid]

    def completes(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, ev.Complete)]


WORDS = ["we", "would", "like", "to", "discuss", "the", "contract", "today"]


def test_committed_tokens_come_while_speaking_and_add_up_to_the_complete_translation() -> None:
    async def main() -> Harness:
        h = Harness(Scripted())
        await h.speak(WORDS)
        early = "".join(h.tokens())
        assert early.startswith("WE WOULD LIKE"), early  # committed before the final, in order
        assert await h.final(WORDS) == "WE WOULD LIKE TO DISCUSS THE CONTRACT TODAY"
        return h

    h = asyncio.run(main())
    assert "".join(h.tokens()) == h.completes()[0]
    # Tentative text: the latest re-translation beyond the committed words, replaced as it changes.
    tentatives = [e.text for e in h.events if isinstance(e, ev.Tentative)]
    assert tentatives and all(t.startswith(" ") or t == "" for t in tentatives[1:])
    # A local engine re-translates every time the translatable prefix grows (English holds no stable word back
    # at the default level; the newest word is not stable yet), and translates the whole interim beside it.
    partials = [r.text for r in h.translator.requests if r.partial]
    prefixes = [" ".join(WORDS[:n]) for n in range(1, len(WORDS))]
    assert [t for t in partials if t in prefixes[:1]] == prefixes[:1]
    assert set(partials) == set(prefixes) | {" ".join(WORDS)}  # the witnesses: every interim's whole text
    assert all(r.committed is not None for r in h.translator.requests)  # simultaneous prompts throughout
    final = h.translator.requests[-1]
    assert not final.partial and final.committed and h.completes()[0].startswith(final.committed)


def test_the_holdback_keeps_the_last_stable_words_out_of_the_requests() -> None:
    async def main() -> Scripted:
        # en at the accurate level: 2 words held back, 3 agreeing passes (a budget big enough to ask at every word)
        h = Harness(Scripted(paid=True), config(Latency.ACCURATE, paid=True, rate=100))
        await h.speak(WORDS)
        return h.translator

    texts = prefixes_asked(asyncio.run(main()))
    assert texts[0] == "we" and texts[-1] == " ".join(WORDS[: len(WORDS) - 1 - 2])  # stable minus the newest minus 2


def test_a_paid_engine_keeps_to_its_budget_and_cancels_stale_requests() -> None:
    async def main() -> Harness:
        # Speech at ten times real time (the budget counts the audio's seconds, not the wall clock's); the
        # engine answers slower than the budget's pace (0.09 s against a request due every ~0.067 s).
        h = Harness(Scripted(delay_s=0.09, paid=True))
        words = [f"w{i}" for i in range(30)]
        for n in range(1, len(words) + 1):
            h.part.interim(
                1, Transcript(" ".join(words[:n]), "en-US", False, 0.0, n * 0.35, stable_text=" ".join(words[: n - 1]))
            )
            await asyncio.sleep(0.035)  # 30 words, 10.5 s of speech
        await h.final(words)
        return h

    h = asyncio.run(main())
    speech_s = 30 * 0.35
    requests = len(h.translator.requests)
    assert requests <= 1.5 * speech_s + 2  # the budget (1.5 per second of speech) and its burst
    assert requests >= 0.5 * 1.5 * speech_s  # and it is used
    assert h.part.figures.requests == requests
    # Requests that had not begun to answer when a longer prefix came were cancelled (their stream closed) ...
    assert h.translator.cancelled
    assert all(r.partial for r in h.translator.cancelled)
    assert h.part.figures.stale_cancelled == len(h.translator.cancelled)
    # ... but never so many in a row that nothing answers: text was committed before the final.
    final = h.translator.requests[-1]
    assert not final.partial and final.committed
    assert "".join(h.tokens()) == h.completes()[0]


def test_a_continuing_engine_streams_the_rest_piece_by_piece() -> None:
    def subwords(text: str) -> list[TranslationChunk]:
        return [TokenDelta(text[i : i + 3]) for i in range(0, len(text), 3)]  # pieces inside words, no spaces

    async def main() -> Harness:
        h = Harness(Scripted(continues=True, pieces=subwords))
        await h.speak(WORDS[:5])
        await h.final(WORDS[:5])
        return h

    h = asyncio.run(main())
    assert h.completes() == ["WE WOULD LIKE TO DISCUSS"]
    assert "".join(h.tokens()) == "WE WOULD LIKE TO DISCUSS"
    final = h.translator.requests[-1]
    assert final.committed and "WE WOULD LIKE TO DISCUSS".startswith(final.committed)


def test_a_restart_in_the_final_never_takes_committed_text_back() -> None:
    attempts = []

    def restarting(text: str) -> list[TranslationChunk]:
        attempts.append(text)
        if len(attempts) == 1:
            first = text.split()[:1]
            return (
                [TokenDelta(" " + w) for w in first]
                + [TranslationRestart("the stream broke")]
                + [TokenDelta(w if i == 0 else " " + w) for i, w in enumerate(text.split())]
            )
        return [TokenDelta(w if i == 0 else " " + w) for i, w in enumerate(text.split())]

    async def main() -> Harness:
        h = Harness(Scripted(continues=True))
        await h.speak(WORDS[:4])
        h.translator.pieces = restarting
        await h.final(WORDS[:6])
        return h

    h = asyncio.run(main())
    assert not [e for e in h.events if isinstance(e, ev.Reset)]
    assert "".join(h.tokens()) == h.completes()[0] == "WE WOULD LIKE TO DISCUSS THE"


def test_a_failed_final_is_a_notice_and_the_committed_text_stands() -> None:
    class Failing(Scripted):
        async def _stream(self, request: TranslationRequest) -> AsyncGenerator[TranslationChunk, None]:
            if not request.partial:
                raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the translation server is down")
            async for chunk in super()._stream(request):
                yield chunk

    async def main() -> Harness:
        h = Harness(Failing())
        await h.speak(WORDS[:5])
        assert await h.final(WORDS[:5]) is None
        return h

    h = asyncio.run(main())
    assert h.tokens() and not h.completes()
    (notice,) = [e for e in h.events if isinstance(e, ev.Notice)]
    assert notice.code is ev.NoticeCode.TRANSLATION_FAILED and notice.utterance_id == 1


def test_nothing_is_sent_while_the_language_lane_finishes_an_earlier_utterance() -> None:
    async def main() -> Harness:
        h = Harness(Scripted())
        h.busy.add("es")
        await h.speak(WORDS, uid=2)
        assert not h.translator.requests and not h.tokens(2)
        h.busy.clear()
        for n in (7, 8):  # two more interims: two re-translations to agree
            h.part.interim(2, Transcript(" ".join(WORDS), "en-US", False, 0.0, 3.0, stable_text=" ".join(WORDS[:n])))
            await asyncio.sleep(0.05)
        return h

    h = asyncio.run(main())
    assert h.tokens(2)


def test_a_moved_session_continues_the_committed_text_of_its_sentence() -> None:
    async def main() -> Harness:
        h = Harness(Scripted())
        h.part.seed({"es": "WE WOULD"})
        await h.speak(WORDS[:5])
        await h.final(WORDS[:5])
        return h

    h = asyncio.run(main())
    assert h.completes() == ["WE WOULD LIKE TO DISCUSS"]
    assert "WE WOULD" + "".join(h.tokens()) == h.completes()[0]  # the first server sent "WE WOULD"


def test_korean_waits_for_more_words_than_english() -> None:
    async def main() -> tuple[Scripted, Scripted]:
        cfg = config(paid=True, rate=100)
        en, ko = Harness(Scripted(paid=True), cfg), Harness(Scripted(paid=True), cfg)
        await en.speak(WORDS[:6])
        await ko.speak(["저희는", "다음", "주에", "계약서에", "서명하고", "싶습니다", "감사합니다"], language="ko-KR")
        return en.translator, ko.translator

    en, ko = asyncio.run(main())
    # The newest word is not stable; of the stable ones English holds back none, Korean 1.
    assert max(len(t.split()) for t in prefixes_asked(en)) == 6 - 1 - 0
    assert max(len(t.split()) for t in prefixes_asked(ko)) == 7 - 1 - 1


# -- echo suppression: nothing is committed before the audio behind it is judged a person's -----------------


def test_nothing_is_committed_until_the_interims_are_judged_a_persons_speech_then_at_once() -> None:
    verdict = [Verdict.PENDING]
    judged: list[str] = []

    def judge(transcript: Transcript) -> Verdict:
        judged.append(transcript.stable_text)
        return verdict[0]

    async def main() -> Harness:
        h = Harness(Scripted())
        h.part.judge_with(judge)
        await h.speak(WORDS[:5])
        # Undecided (the speech's delay not found yet): translated, but nothing committed or shown.
        assert h.translator.requests and not h.tokens()
        assert not [e for e in h.events if isinstance(e, ev.Tentative)]
        verdict[0] = Verdict.SPEECH
        asked = len(h.translator.requests)
        await asyncio.sleep(3 * RECHECK_S)  # judged again without waiting for the next interim
        # What the held re-translations agreed on is committed the moment the verdict is made.
        assert "".join(h.tokens()) == "WE WOULD LIKE TO"
        assert len(h.translator.requests) == asked, "no new request was needed to commit it"
        verdict[0] = Verdict.ECHO  # once committed, the utterance is a person's: it is not judged again
        calls = len(judged)
        await h.speak(WORDS)
        assert len(judged) == calls
        await h.final(WORDS)
        return h

    h = asyncio.run(main())
    assert "".join(h.tokens()) == h.completes()[0] == "WE WOULD LIKE TO DISCUSS THE CONTRACT TODAY"


def test_an_utterance_judged_echo_is_never_translated_and_its_request_in_flight_is_cancelled() -> None:
    verdict = [Verdict.PENDING]

    async def main() -> Harness:
        h = Harness(Scripted(delay_s=0.5, paid=True))
        h.part.judge_with(lambda transcript: verdict[0])
        await h.speak(WORDS[:3])
        assert h.translator.requests, "undecided: its prefix is re-translated"
        verdict[0] = Verdict.ECHO
        await h.speak(WORDS[:4])
        await asyncio.sleep(0.05)
        assert h.translator.cancelled == h.translator.requests, "the request in flight is cancelled"
        asked = len(h.translator.requests)
        await h.speak(WORDS)
        assert len(h.translator.requests) == asked, "nothing more of the echo goes to the translator"
        h.part.final(1, ())  # the session judges the final echo too: no targets
        await asyncio.sleep(0.6)
        return h

    h = asyncio.run(main())
    assert not h.tokens() and not h.completes()
    assert not [e for e in h.events if isinstance(e, ev.Tentative) and e.text]
