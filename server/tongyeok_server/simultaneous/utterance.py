"""One utterance's simultaneous translation into one language: re-translations while it is spoken, then its end.

While the sentence is spoken, each time its translatable prefix (the
stable words minus the held-back tail, ``source``) grows, the prefix is
translated again, at most one request at a time:

- a **local engine** (no request budget) re-translates as soon as the last
  pass is done, with the newest prefix, and translates the interim's whole
  text beside it (the witness ``Agreement.offer`` commits a step sooner
  with);
- an engine **paid per request** re-translates when the budget allows one
  (``pacing.RequestBudget``: a sentence's opening requests first). A
  request in flight that has not begun to answer is then stale, and is
  cancelled (its HTTP stream closed) for one with the longer prefix; one
  that is answering is left to finish (its answer is moments away) and the
  next starts when it is done. So that a slow engine still answers
  something, a sentence's first request is never cancelled and no more than
  ``MAX_CANCELLED_IN_A_ROW`` are cancelled in a row. While the budget is
  spent, nothing new is asked: the request in flight is still the newest
  answer there is.

Each answer goes through the ``Agreement``: what it commits is sent as
tokens, the rest as tentative text. A failed or restarted re-translation
costs nothing but its lag: the final's translation does the work.

With echo suppression, nothing is committed before the audio behind the
utterance is judged to be a person's (``judged``, from each interim's
``echo.base.Verdict``): while it is undecided, re-translations go on and
count towards the agreement but commit nothing (``Agreement.offer(hold=)``),
and the moment it is judged a person's, what they agree on is committed;
while it is judged the session's own speech coming back, nothing is
translated. The final transcript then decides for good: a final judged echo
is never translated, and one that is not was never held back by more than
the verdict's wait.

When the final transcript comes, ``finish`` cancels the re-translation in
flight and translates the whole sentence, continuing the committed text
(an engine that ``continues_committed`` is told it and answers the rest,
streamed as it comes; another translates the sentence whole, and the part
after the committed words is aligned and sent). The committed text is then
the complete translation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import replace

from tongyeok_server.echo.base import Verdict
from tongyeok_server.errors import ServiceError
from tongyeok_server.session import events as ev
from tongyeok_server.session.translation_job import report_failure
from tongyeok_server.simultaneous import source
from tongyeok_server.simultaneous.agreement import Agreement, Step
from tongyeok_server.simultaneous.pacing import OPENING_REQUESTS, Pacing, RequestBudget
from tongyeok_server.translation.base import TokenDelta, TranslationRequest, TranslationRestart, Translator

log = logging.getLogger(__name__)

_PIECE = re.compile(r"\s*\S+")
#: Stale requests cancelled one after another before the next one is left to answer.
MAX_CANCELLED_IN_A_ROW = 2


class UtteranceTranslation:
    """The simultaneous translation of utterance ``utterance_id`` into ``request.target_language``.

    ``request`` is the template of its requests (languages, options,
    context, session id); ``may_send`` says whether its tokens may go out
    now (not while an earlier utterance's translation into the same
    language is still finishing). On the event loop only.
    """

    def __init__(
        self,
        utterance_id: int,
        request: TranslationRequest,
        pacing: Pacing,
        budget: RequestBudget,
        translator: Translator,
        emit: Callable[[ev.SessionEvent], None],
        *,
        tentative: bool,
        may_send: Callable[[], bool],
        committed: str = "",
    ) -> None:
        self.utterance_id = utterance_id
        self.request = request
        self.pacing = pacing
        self._budget = budget
        self._translator = translator
        self._emit = emit
        self._tentative = tentative
        self._may_send = may_send
        self.agreement = Agreement(pacing.agreement)
        if committed:  # a session that moved here mid-sentence: what the caller already has
            self.agreement.commit(committed)
        self._latest = ""  # the newest translatable prefix
        self._hypothesis = ""  # the newest interim's whole text
        self._requested_units = 0  # units of the prefix last asked for
        self._task: asyncio.Task[None] | None = None
        self._answering = False  # the request in flight has begun to answer
        self._pending = False  # a longer prefix waits for the request in flight to finish
        self._cancelled_in_a_row = 0
        self._shown = ""  # the tentative text the caller has
        self._closed = False
        #: What the audio behind the utterance is, as far as known (``judged``); a person's unless told otherwise.
        self.verdict = Verdict.SPEECH
        #: Figures: re-translations asked for, cancelled as stale, answered.
        self.requests = 0
        self.stale_cancelled = 0
        self.answers = 0

    @property
    def committed(self) -> str:
        """What this translation's tokens add up to so far."""
        return self.agreement.committed

    @property
    def source_language(self) -> str:
        """The language the utterance is spoken in."""
        return self.request.source_language

    def stable(self, stable_text: str, hypothesis: str = "") -> None:
        """An interim came (its stable text may have grown): re-translate if there is more to translate.

        ``hypothesis`` is the interim's whole text, the unstable words
        included: a local engine translates it too, as the witness of what
        the words after the prefix do to its translation (``Agreement.offer``).
        """
        if self._closed:
            return
        self._hypothesis = hypothesis
        prefix = source.translatable(stable_text, self.pacing.holdback)
        prefix = source.without_open_terms(prefix, [t.source for t in self.request.glossary_for_target()])
        if source.unit_count(prefix) > source.unit_count(self._latest):
            self._latest = prefix
        self._maybe_request()

    def judged(self, verdict: Verdict) -> None:
        """What the audio behind the utterance is now judged to be (echo suppression; see the module docstring)."""
        if self._closed or verdict is self.verdict:
            return
        self.verdict = verdict
        if verdict is Verdict.ECHO:  # the session's own speech: nothing of it goes to the translator
            self._drop_request()
            if self._shown:
                self._shown = ""
                self._emit(ev.Tentative(self.utterance_id, self.source_language, self.request.target_language, ""))
        elif verdict is Verdict.SPEECH:  # a person's: what the held re-translations agree on is committed now
            self._show(self.agreement.release())
            self._maybe_request()

    def _drop_request(self) -> None:
        """Cancel the re-translation in flight; the next one asks for the whole prefix again."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self.stale_cancelled += 1
        self._pending = self._answering = False
        self._requested_units = 0

    def _maybe_request(self) -> None:
        if self._closed or self.verdict is Verdict.ECHO or not self._may_send():
            return
        if source.unit_count(self._latest) <= self._requested_units:
            return  # nothing new since the last request
        running = self._task is not None and not self._task.done()
        if running and (
            self._budget.unlimited or self._answering or self._cancelled_in_a_row >= MAX_CANCELLED_IN_A_ROW
        ):
            self._pending = True  # the next one starts when the one in flight is done
            return
        if running and not self.answers:
            self._pending = True  # the sentence's first answer is worth waiting for: nothing to agree with yet
            return
        if not self._budget.take(opening=self.answers < OPENING_REQUESTS):
            return  # the budget refills with speech; the request in flight (if any) is still the newest
        if running and self._task is not None:
            self._task.cancel()  # stale: it has not begun to answer, and a longer prefix is asked for
            self.stale_cancelled += 1
            self._cancelled_in_a_row += 1
        self._pending = self._answering = False
        self._requested_units = source.unit_count(self._latest)
        self.requests += 1
        self._task = asyncio.get_running_loop().create_task(
            self._retranslate(self._latest), name=f"retranslate-{self.request.session_id}-{self.utterance_id}"
        )

    async def _retranslate(self, prefix: str) -> None:
        committed = self.agreement.committed
        # A local engine also translates the whole hypothesis (it costs a pass of a few milliseconds): the
        # witness that lets the prefix's words be committed without waiting for the next re-translation.
        hypothesis = self._hypothesis if self._budget.unlimited else ""
        try:
            answer = await self._ask(prefix, committed)
            witness = None
            if source.unit_count(hypothesis) > source.unit_count(prefix):
                witness = await self._ask(hypothesis, committed)
        except ServiceError as error:
            log.debug(
                "session %s: a re-translation failed (%s); the final will do", self.request.session_id, error.message
            )
        else:
            self.answers += 1
            self._take(answer, witness)
        self._answering = False
        self._cancelled_in_a_row = 0
        if self._pending:  # a longer prefix came meanwhile
            self._pending = False
            asyncio.get_running_loop().call_soon(self._maybe_request)

    async def _ask(self, text: str, committed: str) -> str:
        """The translation of the partial ``text``, as a whole (a continuation put after ``committed``)."""
        request = replace(self.request, text=text, partial=True, committed=committed)
        parts: list[str] = []
        async with contextlib.aclosing(self._translator.translate(request)) as chunks:
            async for chunk in chunks:
                self._answering = True
                if isinstance(chunk, TokenDelta):
                    parts.append(chunk.text)
                elif isinstance(chunk, TranslationRestart):
                    parts.clear()
        answer = "".join(parts)
        return self._after(committed, answer) if self._translator.continues_committed else answer

    @staticmethod
    def _after(committed: str, answer: str) -> str:
        """A continuation answer as the whole translation it continues."""
        scratch = Agreement()
        scratch.commit(committed)
        scratch.commit(answer)
        return scratch.committed

    def _take(self, translation: str, witness: str | None = None) -> None:
        if self._closed:
            return
        self._show(self.agreement.offer(translation, witness, hold=self.verdict is not Verdict.SPEECH))

    def _show(self, step: Step) -> None:
        """Send what a step committed, and its tentative rest (only once the utterance is known to be a person's)."""
        if step.committed:
            self._send(step.committed)
        if self._tentative and self.verdict is Verdict.SPEECH and step.tentative != self._shown:
            self._shown = step.tentative
            self._emit(
                ev.Tentative(self.utterance_id, self.source_language, self.request.target_language, step.tentative)
            )

    def _send(self, text: str) -> None:
        """Committed text out as tokens, a word each (the token protocol speech output cuts clauses from)."""
        target = self.request.target_language
        for piece in _PIECE.findall(text):
            self._emit(ev.Token(self.utterance_id, self.source_language, target, piece))

    async def stop(self) -> None:
        """Stop re-translating (the final is here, or the session ends); returns once nothing more is sent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self.stale_cancelled += 1
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def cancel(self) -> None:
        """The session ends: cancel at once, without waiting."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    async def finish(self, request: TranslationRequest) -> str | None:
        """Translate the final sentence after the committed text; the complete translation, or None if it failed.

        Sends the rest as tokens, then ``Complete``; a failure is a
        TRANSLATION_FAILED notice, as in consecutive mode. ``request`` is
        the final's (its text, language and context).
        """
        await self.stop()
        self._budget.charge()
        committed = self.agreement.committed
        request = replace(request, partial=False, committed=committed)
        continues = self._translator.continues_committed
        streamed = True  # a continuing engine's pieces go out as they come, until it restarts
        parts: list[str] = []
        try:
            async with contextlib.aclosing(self._translator.translate(request)) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, TranslationRestart):
                        streamed = False  # what went out stays; the new attempt is aligned to it at the end
                        parts.clear()
                    elif chunk.text:
                        if continues and streamed:
                            self._stream_piece(chunk.text, first=not parts)
                        parts.append(chunk.text)
        except ServiceError as error:
            report_failure(request, self.utterance_id, error, self._emit)
            return None
        answer = "".join(parts)
        if not continues:
            self._send(self.agreement.commit(self.agreement.rest_of(answer)))
        elif not streamed:
            self._send(self.agreement.commit(self.agreement.rest_of(self._after(committed, answer))))
        text = self.agreement.committed.strip()
        self._emit(ev.Complete(self.utterance_id, request.source_language, request.target_language, text))
        return text

    def _stream_piece(self, piece: str, *, first: bool) -> None:
        """One piece of a streamed continuation, committed and sent as it came (the first spaced against the rest)."""
        if first:
            piece = self.agreement.commit(piece)
        else:
            self.agreement.append(piece)
        if piece:
            self._emit(ev.Token(self.utterance_id, self.source_language, self.request.target_language, piece))
