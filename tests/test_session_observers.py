"""Session observers (the seam the record, speech output and metrics hang on) see what the caller sees."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable

from tests.conftest import stub_for
from tests.support import server_loop
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech
from tongyeok_server.auth.caller import ANONYMOUS
from tongyeok_server.engines import EngineDescription
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionListener,
    Recognizer,
    RecognizerStream,
)
from tongyeok_server.session import events as ev
from tongyeok_server.session.extension import SessionExtension, StartNotes
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.session import Session


class Recorder(SessionObserver):
    def __init__(self, session: Session, echo: bool) -> None:
        self.session = session
        self.echo = echo
        self.events: list[ev.SessionEvent] = []
        self.closed = 0
        self.threads: set[int] = set()

    def on_event(self, event: ev.SessionEvent) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)
        if self.echo and isinstance(event, ev.Final):
            # An observer may add events; they come after the one observed.
            self.session.emit(ev.Notice(ev.NoticeCode.RECOGNITION_BEHIND, f"seen {event.utterance_id}"))

    def on_close(self) -> None:
        self.closed += 1


class Broken(SessionObserver):
    def on_event(self, event: ev.SessionEvent) -> None:
        raise RuntimeError("observer bug")


class Extension(SessionExtension):
    def __init__(self) -> None:
        self.recorders: list[Recorder] = []
        self.closed = False

    def attach(self, session: Session) -> SessionObserver | None:
        recorder = Recorder(session, echo=True)
        self.recorders.append(recorder)
        return recorder

    def started(self, session: Session, notes: StartNotes) -> None:
        notes.ignored_options.append("annotated by the extension")

    def close(self) -> None:
        self.closed = True


class BrokenExtension(SessionExtension):
    def attach(self, session: Session) -> SessionObserver | None:
        return Broken()


def test_observers_see_every_event_once_in_order_and_can_add_their_own(server_factory, speech: Speech) -> None:
    extension = Extension()
    server = server_factory(extensions=[BrokenExtension(), extension])
    channel, stub = stub_for(server)
    with channel:
        events = events_of(stub.Interpret(itertools.chain([config()], audio_requests(speech.pcm(), 3200)), timeout=60))
    (started,) = of_kind(events, "session_started")
    assert "annotated by the extension" in started.ignored_options
    finals = of_kind(events, "final_transcript")
    assert len(finals) >= 3
    # The broken observer was detached; the stream and the other observer went on.
    (recorder,) = extension.recorders
    assert recorder.session.caller is ANONYMOUS
    seen = recorder.events
    assert isinstance(seen[-1], ev.End) and seen[-1].error is None
    assert sum(isinstance(e, ev.End) for e in seen) == 1
    caller_kinds = [kind for kind, _ in events if kind != "session_started"]
    observed_kinds = [type(e).__name__ for e in seen[:-1]]
    expected = {
        "interim_transcript": "Interim",
        "final_transcript": "Final",
        "translation_token": "Token",
        "translation_complete": "Complete",
        "notice": "Notice",
    }
    assert observed_kinds == [expected[k] for k in caller_kinds]
    # Each echo notice follows its final.
    for final in finals:
        i = next(i for i, e in enumerate(seen) if isinstance(e, ev.Final) and e.utterance_id == final.utterance_id)
        assert any(isinstance(e, ev.Notice) and e.message == f"seen {final.utterance_id}" for e in seen[i + 1 :]), (
            final.utterance_id
        )
    assert len(recorder.threads) == 1, "observers run on the server's event loop only"
    assert recorder.closed == 1
    server_loop.stop(server, 1.0)
    assert extension.closed


class _ThreadedEndStream(RecognizerStream):
    """At ``finish``, runs ``script`` on a thread of its own while the event loop is held busy.

    So everything the script does that reaches the loop is queued there in the
    order the script did it, and runs only once the script is done.
    """

    def __init__(self, listener: RecognitionListener, script: Callable[[RecognitionListener], None]) -> None:
        self._listener = listener
        self._script = script
        self._loop = asyncio.get_running_loop()
        self.thread: threading.Thread | None = None

    def write(self, audio: bytes) -> None:
        pass

    def finish(self) -> None:
        self.thread = threading.Thread(target=self._run, name="threaded-end")
        self.thread.start()

    def _run(self) -> None:
        busy, go_on = threading.Event(), threading.Event()

        def hold_the_loop() -> None:
            busy.set()
            go_on.wait(10)

        self._loop.call_soon_threadsafe(hold_the_loop)
        assert busy.wait(10)
        try:
            self._script(self._listener)
        finally:
            go_on.set()

    def cancel(self) -> None:
        pass


class _ThreadedEndRecognizer(Recognizer):
    def __init__(self, script: Callable[[RecognitionListener], None]) -> None:
        self.script = script
        self.streams: list[_ThreadedEndStream] = []

    @property
    def description(self) -> EngineDescription:
        return EngineDescription("threaded-end")

    def language_codes(self) -> list[str]:
        return ["en-US"]

    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        stream = _ThreadedEndStream(listener, self.script)
        self.streams.append(stream)
        return stream


class _TwoHolds(SessionExtension):
    """Holds each session open twice from its start (as speech output does for two languages being spoken)."""

    def __init__(self) -> None:
        self.sessions: list[tuple[Session, Callable[[], None], Callable[[], None]]] = []

    def attach(self, session: Session) -> SessionObserver | None:
        self.sessions.append((session, session.hold(), session.hold()))
        return None


def test_what_a_thread_emits_before_releasing_its_hold_reaches_the_caller(server_factory) -> None:
    # On one thread: recognition ends, one hold is released, a last event is emitted, the other hold
    # is released. Each of those counts towards the session's end only on the loop, after what was
    # queued before it; counted on the thread itself (as it was), the first of them found nothing
    # left to wait for and ended the stream before the last event reached the caller.
    holds = _TwoHolds()
    last_words = "the Korean translation could not be spoken (a test's last event)"

    def script(listener: RecognitionListener) -> None:
        session, release_first, release_second = holds.sessions[-1]
        listener(RecognitionEnded())
        release_first()
        session.emit(ev.Notice(ev.NoticeCode.SYNTHESIS_FAILED, last_words))
        release_second()

    recognizer = _ThreadedEndRecognizer(script)
    server = server_factory(recognizer=recognizer, extensions=[holds])
    channel, stub = stub_for(server)
    with channel:
        events = events_of(stub.Interpret(iter([config()]), timeout=30))
    (stream,) = recognizer.streams
    assert stream.thread is not None
    stream.thread.join(10)
    assert [n.message for n in of_kind(events, "notice")] == [last_words]
