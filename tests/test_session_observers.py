"""Session observers (the seam the record, speech output and metrics hang on) see what the caller sees."""

from __future__ import annotations

import itertools
import threading

from tests.conftest import stub_for
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api.extension import SessionExtension
from tongyeok_server.auth.caller import ANONYMOUS
from tongyeok_server.session import events as ev
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

    def annotate_started(self, session: Session, started: pb.SessionStarted) -> None:
        started.ignored_options.append("annotated by the extension")

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
    server.stop(1.0)
    assert extension.closed
