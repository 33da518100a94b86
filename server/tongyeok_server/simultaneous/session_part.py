"""A session's simultaneous translations: the utterance in progress, per target language.

The session hands every interim of the utterance in progress to
``interim`` (on the loop) and, for each final, awaits ``finish`` for each
target language in that language's lane (after the finals before it). This
object keeps an ``UtteranceTranslation`` per (utterance, target), created
at the utterance's first interim, and per direction the request budget,
which fills with the speech heard.

Within one language an utterance's tokens never interleave with another's:
the session's ``may_send(target)`` says whether the lane of that language is
idle (no earlier utterance's translation still finishing); until it is, the
next utterance is not re-translated.

With echo suppression (``judge_with``), each interim is judged before
anything of its utterance is committed (``echo.base.Verdict``), and a
verdict that cannot be made yet is made again ``RECHECK_S`` later, without
waiting for the next interim (the guard may find the speech's delay
meanwhile). Once something is committed the utterance is a person's: its
words were promised a ``Complete``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from tongyeok_server import languages
from tongyeok_server.echo.base import Verdict
from tongyeok_server.recognition.base import Transcript
from tongyeok_server.session import events as ev
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.history import History
from tongyeok_server.simultaneous.options import SimultaneousConfig
from tongyeok_server.simultaneous.pacing import RequestBudget
from tongyeok_server.simultaneous.utterance import UtteranceTranslation
from tongyeok_server.translation.base import TranslationRequest, Translator

log = logging.getLogger(__name__)

#: An interim whose verdict could not be made yet is judged again this much later (about a chunk of audio).
RECHECK_S = 0.1


@dataclass
class Figures:
    """What the session's log line and the bench read."""

    requests: int = 0
    stale_cancelled: int = 0
    speech_s: float = 0.0
    committed_early: int = 0  # translations that had committed text before their final


@dataclass
class _Utterance:
    """The utterance in progress: its translations by target, and how far its audio reached."""

    utterance_id: int
    heard_to_s: float
    translations: dict[str, UtteranceTranslation] = field(default_factory=dict)
    last: Transcript | None = None  # its newest interim
    recheck: asyncio.TimerHandle | None = None  # an undecided verdict, judged again soon

    @property
    def committed(self) -> bool:
        """Whether any of its translations has committed text (it is then finished whatever its final is)."""
        return any(t.committed for t in self.translations.values())

    def stop_recheck(self) -> None:
        if self.recheck is not None:
            self.recheck.cancel()
            self.recheck = None


class SimultaneousPart:
    """The simultaneous side of one session (see the module docstring). On the event loop only."""

    def __init__(
        self,
        config: SimultaneousConfig,
        translator: Translator,
        emit: Callable[[ev.SessionEvent], None],
        request_for: Callable[[str, str], TranslationRequest],
        targets_for: Callable[[str], tuple[str, ...]],
        may_send: Callable[[str], bool],
    ) -> None:
        self._config = config
        self._translator = translator
        self._emit = emit
        self._request_for = request_for  # (source language, target) -> a request with context, text empty
        self._targets_for = targets_for
        self._may_send = may_send
        self._budgets: dict[tuple[str, str], RequestBudget] = {}
        self._current: _Utterance | None = None
        self._finishing: dict[tuple[int, str], UtteranceTranslation] = {}
        self._seeded: dict[str, str] = {}  # target -> committed text of the utterance a moved session was in
        self._judge: Callable[[Transcript], Verdict] | None = None
        self.figures = Figures()

    @classmethod
    def for_session(
        cls,
        session_id: str,
        config: SessionConfig,
        translator: Translator,
        emit: Callable[[ev.SessionEvent], None],
        history: History,
        may_send: Callable[[str], bool],
        start: Continuation,
    ) -> SimultaneousPart | None:
        """The part of a session with ``config`` (None when it is consecutive), continuing ``start``'s sentence.

        Requests carry the session's options and the context of its
        ``history`` (with the translations known when they are made).
        """
        if config.simultaneous is None:
            return None

        def request_for(language: str, target: str) -> TranslationRequest:
            context = history.context(config.translation.context_sentences)
            request = TranslationRequest("", language, target, config.translation, context, session_id=session_id)
            return history.with_translations(request)

        part = cls(config.simultaneous, translator, emit, request_for, config.targets_for, may_send)
        part.seed(start.committed)
        return part

    def seed(self, committed: Mapping[str, str]) -> None:
        """A session that moved here mid-sentence: the text already committed for the utterance in progress."""
        self._seeded = {target: text for target, text in committed.items() if text}

    def judge_with(self, judge: Callable[[Transcript], Verdict]) -> None:
        """Judge each interim before anything of its utterance is committed (echo suppression, ``echo.base``)."""
        self._judge = judge

    def interim(self, utterance_id: int, transcript: Transcript) -> None:
        """An interim of the utterance in progress: re-translate what became stable."""
        current = self._current
        if current is None or current.utterance_id != utterance_id:
            if current is not None:
                current.stop_recheck()
            # Speech is counted from the first interim on: the pause before an utterance earns no request,
            # and neither does its first word (the budget errs on the side of fewer requests).
            current = self._current = _Utterance(utterance_id, transcript.end_offset_s)
        heard = max(0.0, transcript.end_offset_s - current.heard_to_s)
        current.heard_to_s = max(current.heard_to_s, transcript.end_offset_s)
        current.last = transcript
        self.figures.speech_s += heard
        verdict = self._verdict(current)
        for target in self._targets_for(transcript.language_code):
            translation = current.translations.get(target)
            if translation is None:
                translation = current.translations[target] = self._start(utterance_id, transcript.language_code, target)
            elif not languages.same_language(translation.source_language, transcript.language_code):
                continue  # the recogniser changed its mind about the language; the final decides
            translation.judged(verdict)
            budget = self._budget(transcript.language_code, target)
            budget.add_speech(heard)
            translation.request = self._request_for(transcript.language_code, target)
            translation.stable(transcript.stable_text, transcript.text)

    def _verdict(self, current: _Utterance) -> Verdict:
        """What the audio behind the utterance's newest interim is; an undecided verdict is made again soon."""
        if self._judge is None or current.last is None or current.committed:
            return Verdict.SPEECH
        verdict = self._judge(current.last)
        if verdict is Verdict.PENDING and current.recheck is None:
            current.recheck = asyncio.get_running_loop().call_later(RECHECK_S, self._recheck, current)
        return verdict

    def _recheck(self, current: _Utterance) -> None:
        current.recheck = None
        if self._current is not current:
            return
        verdict = self._verdict(current)
        for translation in current.translations.values():
            translation.judged(verdict)

    def _start(self, utterance_id: int, language: str, target: str) -> UtteranceTranslation:
        return UtteranceTranslation(
            utterance_id,
            self._request_for(language, target),
            self._config.pacing(language, target),
            self._budget(language, target),
            self._translator,
            self._emit,
            tentative=self._config.tentative,
            may_send=lambda: self._may_send(target),
            committed=self._seeded.pop(target, ""),
        )

    def _budget(self, language: str, target: str) -> RequestBudget:
        key = (languages.primary(language), languages.primary(target))
        budget = self._budgets.get(key)
        if budget is None:
            rate = self._config.pacing(language, target).max_requests_per_speech_s
            budget = self._budgets[key] = RequestBudget(rate)
        return budget

    def committed_targets(self, utterance_id: int) -> tuple[str, ...]:
        """Targets the utterance already has committed text in (each must get its ``Complete``)."""
        current = self._current
        if current is None or current.utterance_id != utterance_id:
            return ()
        return tuple(t for t, tr in current.translations.items() if tr.committed)

    def settle(self, utterance_id: int, final: Transcript, last_interim: str) -> tuple[Transcript, tuple[str, ...]]:
        """The final as the session must treat it, and the targets it must be completed in whatever its language.

        Text committed for the utterance went out, so an empty final takes
        the recogniser's last interim text (the caller gets the final and
        ``Complete`` its tokens promised); a final without text and nothing
        committed stops the utterance's re-translations. The targets with
        committed text are completed even if the final's language would not
        be translated into them (the recogniser changed its mind).
        """
        committed = self.committed_targets(utterance_id)
        if not final.text.strip() and committed:
            final = replace(final, text=last_interim.strip())
        if not final.text.strip():
            self.dropped(utterance_id)
        return final, committed

    def final(self, utterance_id: int, targets: tuple[str, ...]) -> None:
        """The utterance's final is here, to be translated into ``targets``: set its translations aside for ``finish``.

        Re-translations into other targets (the final's language was not
        the interims') are cancelled. Call before queueing the ``finish``
        jobs, on the loop.
        """
        current, self._current = self._current, None
        if current is None or current.utterance_id != utterance_id:
            return
        current.stop_recheck()
        for target, translation in current.translations.items():
            if target in targets:
                self._finishing[(utterance_id, target)] = translation
            else:
                translation.cancel()

    def dropped(self, utterance_id: int) -> None:
        """The utterance ended without a final (nothing recognised): stop its re-translations."""
        if self._current is not None and self._current.utterance_id == utterance_id:
            self._current.stop_recheck()
            for translation in self._current.translations.values():
                translation.cancel()
            self._current = None

    async def finish(self, utterance_id: int, request: TranslationRequest) -> str | None:
        """Translate the final ``request`` after what the utterance committed in its language; the whole text."""
        target = request.target_language
        translation = self._finishing.pop((utterance_id, target), None)
        if translation is None:  # no interim reached it: a translation with nothing committed yet
            translation = self._start(utterance_id, request.source_language, target)
        elif translation.committed:
            self.figures.committed_early += 1
            if languages.same_language(request.source_language, target):
                # The interims were heard in another language than the final's, and committed text into
                # this one: it is completed from the language it was being translated from.
                request = replace(request, source_language=translation.source_language)
        try:
            return await translation.finish(request)
        finally:
            self.figures.requests += translation.requests + 1
            self.figures.stale_cancelled += translation.stale_cancelled

    def in_progress(self) -> dict[str, str]:
        """The committed text of the utterance in progress, per target (what a session that moves carries)."""
        if self._current is None:
            return {}
        return {t: tr.committed for t, tr in self._current.translations.items() if tr.committed}

    def cancel(self) -> None:
        """The session ends: every re-translation stops now."""
        if self._current is not None:
            self._current.stop_recheck()
            for translation in self._current.translations.values():
                translation.cancel()
        for translation in self._finishing.values():
            translation.cancel()
