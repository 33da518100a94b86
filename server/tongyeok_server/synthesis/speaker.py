"""Speaking the translations of one stream (or one TranslateText request) as their tokens arrive.

The ``Speaker`` is fed the caller's events in order, on the server's event
loop (it is the body of the session observer). For every spoken language it
keeps a lane: a queue of utterances, each spoken by one task that runs
``Synthesizer.speak`` over the clauses the segmenter cuts from the tokens.
Lanes run in parallel; within a lane an utterance is spoken only after the
one before it has ended, so audio never interleaves within a language.

- A clause goes to the engine as soon as the segmenter has it, long before
  ``translation_complete``. In simultaneous mode the tokens are committed
  text that arrives while the sentence is still spoken, usually without a
  comma for a long while, so a clause is also cut at a word once it has
  ``SIMULTANEOUS_MAX_CLAUSE_CHARS``: committed words are spoken as they
  commit, not at the end of the sentence.
- ``Reset``: the utterance's task is cancelled (its engine call closed) and a
  fresh one takes its place in the lane; sequence numbers start again at 0.
  Everything runs on the loop, so no chunk of the old task can follow the
  ``Reset`` the caller was sent.
- A synthesis failure becomes a ``SYNTHESIS_FAILED`` notice for that
  utterance and language; a failed translation ends its audio (``last``).
- While a lane has work, the speaker holds the session open (``hold``), so
  a stream that ends normally ends after its last audio chunk.
- ``close``: every task is cancelled at once (the caller went away).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tongyeok_server.engines import Voice
from tongyeok_server.errors import ServiceError
from tongyeok_server.session import events as ev
from tongyeok_server.session.speech import SpeechEncoding, SpeechOutput
from tongyeok_server.synthesis.base import SpeechRequest, Synthesizer
from tongyeok_server.synthesis.encoder import PassThrough, SpeechEncoder
from tongyeok_server.synthesis.segmenter import MAX_CLAUSE_CHARS, ClauseSegmenter

log = logging.getLogger(__name__)

# Simultaneous mode: committed text is spoken once this much of it is waiting (about five words; white space
# not counted), cut at a word, even without a comma; a consecutive translation keeps the segmenter's own limit.
SIMULTANEOUS_MAX_CLAUSE_CHARS = 28
# Raw audio (PCM, G.711) is sent in chunks of at most this many bytes; a
# long clause at 48 kHz is several hundred kB, and a player starts sooner
# on smaller pieces. Ogg chunks are not split (each holds whole pages).
MAX_RAW_CHUNK_BYTES = 32 * 1024


class SpeechSink(Protocol):
    """Where a speaker's events go (a ``Session``, or a TranslateText request)."""

    def emit(self, event: ev.SessionEvent) -> None:
        """Send ``event`` to the caller after the events already sent."""

    def hold(self) -> Callable[[], None]:
        """Keep the stream from ending until the returned function is called."""


@dataclass(eq=False)
class _Job:
    """One utterance's translation into one language, to be spoken."""

    utterance_id: int
    clauses: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    segmenter: ClauseSegmenter = field(default_factory=ClauseSegmenter)
    text_done: bool = False
    task: asyncio.Task[None] | None = None

    def add(self, clauses: list[str]) -> None:
        for clause in clauses:
            self.clauses.put_nowait(clause)

    def end_text(self) -> None:
        if not self.text_done:
            self.text_done = True
            self.clauses.put_nowait(None)

    async def iter_clauses(self) -> AsyncIterator[str]:
        while True:
            clause = await self.clauses.get()
            if clause is None:
                return
            yield clause


@dataclass(eq=False)
class _Lane:
    """The utterances of one language, spoken one after another."""

    language: str
    voice: Voice
    jobs: deque[_Job] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    # Translations reach a lane in utterance order (one at a time per
    # language), so one number says which utterances' speech is over: late
    # tokens of one whose synthesis failed must not start it again.
    ended_through: int = -1

    def find(self, utterance_id: int) -> _Job | None:
        for job in self.jobs:
            if job.utterance_id == utterance_id:
                return job
        return None


class Speaker:
    """Speaks the translations one sink receives; create and feed it on the event loop."""

    def __init__(
        self,
        synthesizer: Synthesizer,
        output: SpeechOutput,
        voices: Mapping[str, Voice],
        sink: SpeechSink,
        label: str = "",
        *,
        simultaneous: bool = False,
    ) -> None:
        self._max_clause = SIMULTANEOUS_MAX_CLAUSE_CHARS if simultaneous else MAX_CLAUSE_CHARS
        self._synthesizer = synthesizer
        self._output = output
        self._sink = sink
        self._label = label
        self._lanes = {language: _Lane(language, voice) for language, voice in voices.items()}
        self._closed = False
        #: Figures for logs and the benchmark.
        self.chunks_sent = 0
        self.failures = 0

    def on_event(self, event: ev.SessionEvent) -> None:
        """One event the caller was sent (on the loop, in order)."""
        if self._closed:
            return
        if isinstance(event, ev.Token):
            lane = self._lanes.get(event.target_language)
            job = self._job(lane, event.utterance_id) if lane is not None else None
            if job is not None:
                job.add(job.segmenter.add(event.text))
        elif isinstance(event, ev.Complete):
            lane = self._lanes.get(event.target_language)
            job = self._job(lane, event.utterance_id) if lane is not None else None
            if job is not None:
                if not job.segmenter.fed.strip() and event.text:
                    job.add(job.segmenter.add(event.text))  # a translation that came without tokens
                job.add(job.segmenter.finish())
                job.end_text()
        elif isinstance(event, ev.Reset):
            self._reset(event.utterance_id, event.target_language)
        elif isinstance(event, ev.Notice) and event.code is ev.NoticeCode.TRANSLATION_FAILED:
            lane = self._lanes.get(event.target_language)
            job = lane.find(event.utterance_id) if lane is not None else None
            if job is not None:
                job.add(job.segmenter.finish())
                job.end_text()
        elif isinstance(event, ev.End) and event.error is not None:
            self.close()

    def close(self) -> None:
        """Stop everything now (the caller went away). Idempotent."""
        self._closed = True
        for lane in self._lanes.values():
            for job in lane.jobs:
                if job.task is not None:
                    job.task.cancel()
            lane.jobs.clear()
            if lane.worker is not None:
                lane.worker.cancel()

    # -- lanes -------------------------------------------------------------

    def _job(self, lane: _Lane, utterance_id: int) -> _Job | None:
        """The job of ``utterance_id`` whose text is still coming, created (and the lane started) if new.

        None if that utterance's speech is already over (failed).
        """
        if utterance_id <= lane.ended_through:
            return None
        job = lane.find(utterance_id)
        if job is not None and not job.text_done:
            return job
        job = _Job(utterance_id, segmenter=ClauseSegmenter(max_clause=self._max_clause))
        lane.jobs.append(job)
        if lane.worker is None:
            release = self._sink.hold()
            lane.worker = asyncio.get_running_loop().create_task(
                self._work(lane, release), name=f"speak-{self._label}-{lane.language}"
            )
        return job

    def _reset(self, utterance_id: int, language: str) -> None:
        lane = self._lanes.get(language)
        if lane is None:
            return
        job = lane.find(utterance_id)
        if job is None:
            if utterance_id <= lane.ended_through:
                lane.ended_through = utterance_id - 1  # its synthesis failed; the new text is spoken afresh
            return
        if job.task is not None:
            job.task.cancel()  # closes its engine call; the worker moves on to the replacement
        lane.jobs[lane.jobs.index(job)] = _Job(utterance_id, segmenter=ClauseSegmenter(max_clause=self._max_clause))

    async def _work(self, lane: _Lane, release: Callable[[], None]) -> None:
        try:
            while lane.jobs:
                job = lane.jobs[0]
                job.task = asyncio.get_running_loop().create_task(self._speak(lane, job))
                await asyncio.wait([job.task])
                if lane.jobs and lane.jobs[0] is job:
                    lane.jobs.popleft()
                    lane.ended_through = max(lane.ended_through, job.utterance_id)
        finally:
            lane.worker = None
            release()

    async def _speak(self, lane: _Lane, job: _Job) -> None:
        out = self._output
        request = SpeechRequest(lane.language, lane.voice, out.speaking_rate, out.sample_rate_hz, out.encoding)
        sequence = 0

        def send(audio: bytes, last: bool) -> None:
            nonlocal sequence
            self._sink.emit(
                ev.Audio(
                    job.utterance_id,
                    lane.language,
                    sequence,
                    audio,
                    last,
                    out.encoding.value,
                    out.sample_rate_hz,
                    lane.voice.name,
                )
            )
            sequence += 1
            self.chunks_sent += 1

        try:
            engine = self._synthesizer
            encoder: SpeechEncoder | PassThrough = (
                PassThrough()
                if engine.output_encoding(request) is not SpeechEncoding.LINEAR16
                else SpeechEncoder(out.encoding, out.sample_rate_hz, engine.output_rate(request))
            )
            async for pcm in self._synthesizer.speak(request, job.iter_clauses()):
                for piece in self._pieces(encoder.encode(pcm)):
                    send(piece, False)
            send(encoder.finish(), True)
        except ServiceError as error:
            self._failed(job, lane.language, f"{error.code.name}: {error.message}", error.detail)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: speaking utterance %d in %s failed", self._label, job.utterance_id, lane.language)
            self._failed(job, lane.language, "internal error in the synthesizer")

    def _pieces(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        if self._output.encoding is SpeechEncoding.OGG_OPUS or len(data) <= MAX_RAW_CHUNK_BYTES:
            return [data]
        return [data[i : i + MAX_RAW_CHUNK_BYTES] for i in range(0, len(data), MAX_RAW_CHUNK_BYTES)]

    def _failed(self, job: _Job, language: str, reason: str, detail: str = "") -> None:
        """A notice for the caller (``reason``); the log also gets ``detail`` (the service's inside)."""
        self.failures += 1
        inside = f" ({detail})" if detail else ""
        log.warning(
            "%s: speech of utterance %d in %s failed: %s%s", self._label, job.utterance_id, language, reason, inside
        )
        self._sink.emit(
            ev.Notice(
                ev.NoticeCode.SYNTHESIS_FAILED,
                f"speaking the translation into {language} failed ({reason}); the text goes on",
                job.utterance_id,
                language,
            )
        )
