"""The speaker: when synthesis starts, resets, failures, order and cancel, with a scripted engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.errors import ServiceError
from tongyeok_server.session import events as ev
from tongyeok_server.session.speech import SpeechOutput
from tongyeok_server.synthesis.base import ClauseSynthesizer, SpeechRequest
from tongyeok_server.synthesis.speaker import Speaker

VOICE = Voice("v", ("es",), "test voice")


class Scripted(ClauseSynthesizer):
    """Each clause becomes its UTF-8 bytes (padded to whole samples); a clause containing "FAIL" fails."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.clauses: list[str] = []
        self.cancelled: list[str] = []

    @property
    def description(self) -> EngineDescription:
        return EngineDescription("scripted")

    def voices(self) -> Sequence[Voice]:
        return [VOICE]

    def output_rate(self, request: SpeechRequest) -> int:
        return request.sample_rate_hz

    async def speak_clause(self, request: SpeechRequest, text: str) -> AsyncIterator[bytes]:
        self.clauses.append(text)
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled.append(text)
            raise
        if "FAIL" in text:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the engine broke")
        data = text.encode()
        yield data + b"\0" * (len(data) % 2)


class Sink:
    def __init__(self) -> None:
        self.events: list[ev.SessionEvent] = []
        self.holds = 0

    def emit(self, event: ev.SessionEvent) -> None:
        self.events.append(event)

    def hold(self) -> Callable[[], None]:
        self.holds += 1

        def release() -> None:
            self.holds -= 1

        return release

    def audio(self, uid: int) -> bytes:
        return b"".join(e.audio for e in self.events if isinstance(e, ev.Audio) and e.utterance_id == uid)


def tokens(uid: int, text: str) -> list[ev.Token]:
    return [ev.Token(uid, "en", "es", w if i == 0 else " " + w) for i, w in enumerate(text.split(" "))]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def run(test: Callable[[], object]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def make(delay_s: float = 0.0) -> tuple[Scripted, Sink, Speaker]:
    engine, sink = Scripted(delay_s), Sink()
    speaker = Speaker(engine, SpeechOutput((("es", "v"),), sample_rate_hz=16000), {"es": VOICE}, sink, "test")
    return engine, sink, speaker


def test_speech_starts_at_the_first_clause_not_at_complete() -> None:
    async def body() -> None:
        engine, sink, speaker = make()
        for token in tokens(1, "Buenos días a todos. Nos gustaría"):
            speaker.on_event(token)
        await settle()
        assert engine.clauses == ["Buenos días a todos."]
        assert any(isinstance(e, ev.Audio) for e in sink.events), "audio before the translation is complete"
        assert sink.holds == 1
        for token in tokens(1, " hablar del contrato hoy."):
            speaker.on_event(token)
        speaker.on_event(ev.Complete(1, "en", "es", "..."))
        await settle()
        assert engine.clauses == ["Buenos días a todos.", "Nos gustaría hablar del contrato hoy."]
        chunks = [e for e in sink.events if isinstance(e, ev.Audio)]
        assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
        assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert sink.holds == 0, "the session may end once its speech is out"

    run(body)


def test_utterances_are_spoken_in_order_never_interleaved() -> None:
    async def body() -> None:
        _engine, sink, speaker = make(delay_s=0.01)
        for uid in (1, 2, 3):
            for token in tokens(uid, f"Frase número {uid} con bastante texto. Y una segunda parte."):
                speaker.on_event(token)
            speaker.on_event(ev.Complete(uid, "en", "es", ""))
        while sink.holds:
            await asyncio.sleep(0.01)
        order = [e.utterance_id for e in sink.events if isinstance(e, ev.Audio)]
        assert order == sorted(order) and set(order) == {1, 2, 3}

    run(body)


def test_a_reset_cancels_the_engine_call_and_speaks_the_new_text_from_zero() -> None:
    async def body() -> None:
        engine, sink, speaker = make(delay_s=0.05)
        for token in tokens(1, "Primer intento de la frase. Sigue"):
            speaker.on_event(token)
        await asyncio.sleep(0.01)  # the first clause is being synthesized
        speaker.on_event(ev.Reset(1, "es", "cut"))
        await settle()  # the cancel reaches the engine on the loop's next turn
        assert engine.cancelled == ["Primer intento de la frase."]
        for token in tokens(1, "Segundo intento de la frase."):
            speaker.on_event(token)
        speaker.on_event(ev.Complete(1, "en", "es", "Segundo intento de la frase."))
        while sink.holds:
            await asyncio.sleep(0.01)
        chunks = [e for e in sink.events if isinstance(e, ev.Audio)]
        assert chunks[0].sequence_number == 0 and chunks[-1].last
        assert b"Primer" not in sink.audio(1) and b"Segundo" in sink.audio(1)

    run(body)


def test_a_failure_is_a_notice_for_that_utterance_and_the_next_one_is_spoken() -> None:
    async def body() -> None:
        engine, sink, speaker = make()
        for uid, text in ((1, "Esto va a FAIL ahora mismo. Y esto no se dice."), (2, "La siguiente frase sí.")):
            for token in tokens(uid, text):
                speaker.on_event(token)
            speaker.on_event(ev.Complete(uid, "en", "es", text))
        await settle()
        notices = [e for e in sink.events if isinstance(e, ev.Notice)]
        assert [(n.code, n.utterance_id, n.target_language) for n in notices] == [
            (ev.NoticeCode.SYNTHESIS_FAILED, 1, "es")
        ]
        assert "the engine broke" in notices[0].message
        assert not sink.audio(1) and sink.audio(2) == "La siguiente frase sí.".encode() + b"\0"
        assert "Y esto no se dice." not in engine.clauses
        assert sink.holds == 0

    run(body)


def test_a_failed_translation_ends_its_audio() -> None:
    async def body() -> None:
        _engine, sink, speaker = make()
        for token in tokens(1, "Lo que se dijo antes del fallo. Y algo"):
            speaker.on_event(token)
        speaker.on_event(ev.Notice(ev.NoticeCode.TRANSLATION_FAILED, "gone", 1, "es"))
        await settle()
        chunks = [e for e in sink.events if isinstance(e, ev.Audio)]
        assert chunks and chunks[-1].last and sink.holds == 0

    run(body)


def test_close_cancels_at_once() -> None:
    async def body() -> None:
        engine, sink, speaker = make(delay_s=10)
        for token in tokens(1, "Una frase que nunca termina. Nunca"):
            speaker.on_event(token)
        await asyncio.sleep(0.01)
        speaker.close()
        await settle()
        assert engine.cancelled == ["Una frase que nunca termina."]
        assert sink.holds == 0 and not any(isinstance(e, ev.Audio) for e in sink.events)

    run(body)
