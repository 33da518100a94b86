"""A session's translations: each final's targets queued on that language's lane, in order, with context.

One ``SerialLane`` per target language runs the session's translation jobs
as one task on the loop while it has work, sentence after sentence, so a
language's translations reach the caller in the order their finals did.
Each job takes as context the sentences said before it (``History``,
including the translations finished since the job was queued). In
simultaneous mode (``simultaneous/``) the utterance was already being
translated while it was spoken; the final's job finishes that translation
after the words already committed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from tongyeok_server.session import events as ev
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.end_gate import EndGate
from tongyeok_server.session.history import History, Sentence
from tongyeok_server.session.serial_lane import SerialLane
from tongyeok_server.session.stats import SessionStats
from tongyeok_server.session.translation_job import run_translation
from tongyeok_server.simultaneous.session_part import SimultaneousPart
from tongyeok_server.translation.base import TranslationRequest, Translator


class Translations:
    """The translation side of one session (see the module docstring); on the session's loop."""

    def __init__(
        self,
        session_id: str,
        config: SessionConfig,
        translator: Translator,
        emit: Callable[[ev.SessionEvent], None],
        gate: EndGate,
        stats: SessionStats,
        start: Continuation,
        ended: Callable[[], bool],
    ) -> None:
        """``gate`` hears each translation's end; ``ended`` says whether the session has ended (jobs then stop)."""
        self._session_id = session_id
        self._config = config
        self._translator = translator
        self._emit = emit
        self._gate = gate
        self._stats = stats
        self._ended = ended
        #: The sentences said, with their translations: context for the next, and what a moved session takes along.
        self.history = History.restore(start.history)
        self._lanes = {target: SerialLane() for target in config.target_languages}
        #: Simultaneous mode: the utterance in progress translated while it is spoken (None in consecutive mode).
        self.simultaneous = SimultaneousPart.for_session(
            session_id, config, translator, emit, self.history, lambda target: not self._lanes[target].busy, start
        )

    def submit(self, utterance_id: int, text: str, language: str, targets: tuple[str, ...]) -> None:
        """Translate the final ``utterance_id`` into each of ``targets`` (expected at the gate by the caller)."""
        context = self.history.context(self._config.translation.context_sentences)
        entry = self.history.add(utterance_id, text, language)
        if self.simultaneous is not None:
            self.simultaneous.final(utterance_id, targets)
        for target in targets:
            request = TranslationRequest(
                text, language, target, self._config.translation, context, session_id=self._session_id
            )
            self._lanes[target].submit(functools.partial(self._translate, entry, request))

    def cancel(self) -> None:
        """Drop what is queued and cancel what runs (its backend connection closed), simultaneous ones too."""
        for lane in self._lanes.values():
            lane.cancel()
        if self.simultaneous is not None:
            self.simultaneous.cancel()

    async def _translate(self, entry: Sentence, request: TranslationRequest) -> None:
        try:
            if self._ended():
                return
            # Context gets the translations finished since the job was queued.
            request = self.history.with_translations(request)
            if self.simultaneous is not None:
                text = await self.simultaneous.finish(entry.utterance_id, request)
            else:
                text = await run_translation(self._translator, request, entry.utterance_id, self._emit)
            if text is not None:
                entry.translations[request.target_language] = text
                self._stats.translations += 1
            else:
                self._stats.translation_failures += 1
        finally:
            self._gate.translation_done()  # on the loop: after the Complete it emitted
