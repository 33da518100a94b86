"""How sessions reach the record: a ``SessionExtension`` that decides, and an observer per kept session.

The observer runs on the event loop and only turns events into write
operations for the ``RecordWriter`` (a few microseconds); interims and
tokens are not recorded, the final text and each complete translation are,
and of speech output what each spoken translation was (``spoken.py``).
The session's header is written from ``opened``, which sees what the caller
was told: the effective config and the engines.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tongyeok_server.engines import EngineDescription
from tongyeok_server.session import events as ev
from tongyeok_server.session.extension import SessionExtension, SessionHeader, StartNotes
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.session import Session
from tongyeok_server.store import ops
from tongyeok_server.store.recorder import MeetingRecord, RecordOptions
from tongyeok_server.store.spoken import SpokenTally
from tongyeok_server.store.writer import RecordWriter, SessionLog

AUDIO_BLOCK_S = 5  # the caller's audio is stored in blocks this long


class RecordExtension(SessionExtension):
    """Keeps the record of every session that asks for it (or does not say, by default).

    With ``record`` None (``--store none``) it keeps nothing and tells
    callers who asked for a record that it is not kept.
    """

    def __init__(self, record: MeetingRecord | None, options: RecordOptions | None = None) -> None:
        self.record = record
        self.options = record.options if record is not None else options or RecordOptions()
        self._observers: dict[str, RecordObserver] = {}

    def keeps(self, session: Session) -> bool:
        """Whether ``session``'s record is kept."""
        wanted = session.config.store_transcript
        return self.record is not None and (self.options.transcripts_default if wanted is None else wanted)

    def attach(self, session: Session) -> SessionObserver | None:
        if self.record is None or not self.keeps(session):
            return None
        entry = self.record.writer.track(session.id, session.emit)
        observer = RecordObserver(self.record.writer, entry, session, self.options.store_audio, self._observers)
        self._observers[session.id] = observer
        return observer

    def started(self, session: Session, notes: StartNotes) -> None:
        notes.transcript_stored = self.keeps(session)
        if self.record is None and session.config.store_transcript:
            notes.ignored_options.append("store_transcript: this server keeps no meeting records (--store none)")

    def opened(self, session: Session, header: SessionHeader) -> None:
        observer = self._observers.get(session.id)
        if observer is not None:
            observer.opened(header)

    def close(self) -> None:
        if self.record is not None:
            self.record.close()


class RecordObserver(SessionObserver):
    """Turns one session's events into record writes."""

    def __init__(
        self,
        writer: RecordWriter,
        entry: SessionLog,
        session: Session,
        store_audio: bool,
        registry: dict[str, RecordObserver],
    ) -> None:
        self._writer = writer
        self._entry = entry
        self._session = session
        self._registry = registry
        self._opened = False
        self._languages: dict[int, str] = {}
        self._spoken = SpokenTally(session.id)
        self._audio: bytearray | None = bytearray() if store_audio else None
        self._audio_seq = 0
        self._audio_sent = 0
        self._block_bytes = session.config.audio.bytes_per_second * AUDIO_BLOCK_S

    def opened(self, header: SessionHeader) -> None:
        """Write the header: called once the ``session_started`` event is built."""
        if self._opened:
            return
        self._opened = True
        config = self._session.config
        self._writer.submit(
            self._entry,
            ops.OpenSession(
                session_id=self._session.id,
                caller_id=self._session.caller.id,
                started_at=datetime.now(UTC),
                config_json=header.effective_config_json,
                source_languages=config.source_languages,
                target_languages=config.target_languages,
                recognizer=_engine(header.recognizer),
                translator=_engine(header.translator),
                audio_stored=self._audio is not None,
            ),
        )

    def on_event(self, event: ev.SessionEvent) -> None:
        sid = self._session.id
        if isinstance(event, ev.Final) and event.echo_of:
            return  # the session's own speech heard again: not something anyone said
        if isinstance(event, ev.Final):
            t = event.transcript
            self._languages[event.utterance_id] = t.language_code
            self._spoken.final(event.utterance_id)
            self._writer.submit(
                self._entry,
                ops.AddUtterance(
                    session_id=sid,
                    utterance_id=event.utterance_id,
                    text=t.text.strip(),
                    language_code=t.language_code,
                    confidence=t.confidence,
                    start_ms=round(t.start_offset_s * 1000),
                    end_ms=round(t.end_offset_s * 1000),
                    final_at=datetime.now(UTC),
                    target_languages=event.target_languages,
                ),
            )
        elif isinstance(event, ev.Complete):
            self._translation(event.utterance_id, event.target_language, event.source_language, event.text, "")
        elif isinstance(event, ev.Audio):
            spoken = self._spoken.audio(event)
            if spoken is not None:
                self._writer.submit(self._entry, spoken)
        elif isinstance(event, ev.Reset):
            self._spoken.dropped(event.utterance_id, event.target_language)
        elif isinstance(event, ev.Notice) and event.utterance_id:
            if event.code is ev.NoticeCode.TRANSLATION_FAILED:
                source = self._languages.get(event.utterance_id, "")
                self._translation(event.utterance_id, event.target_language, source, "", event.message or "failed")
            elif event.code is ev.NoticeCode.SYNTHESIS_FAILED:
                self._spoken.dropped(event.utterance_id, event.target_language)

    def _translation(self, utterance_id: int, language: str, source: str, text: str, failure: str) -> None:
        self._writer.submit(
            self._entry,
            ops.AddTranslation(
                session_id=self._session.id,
                utterance_id=utterance_id,
                language_code=language,
                source_language=source,
                text=text,
                failed=bool(failure),
                failure_message=failure,
                created_at=datetime.now(UTC),
            ),
        )

    def on_audio(self, audio: bytes) -> None:
        if self._audio is None:
            return
        self._audio += audio
        if len(self._audio) >= self._block_bytes:
            self._flush_audio()

    def _flush_audio(self) -> None:
        if not self._audio:
            return
        data, self._audio = bytes(self._audio), bytearray()
        start_ms = round(self._session.config.audio.duration_s(self._audio_sent) * 1000)
        self._writer.submit(self._entry, ops.AddAudio(self._session.id, self._audio_seq, start_ms, data))
        self._audio_seq += 1
        self._audio_sent += len(data)

    def on_close(self) -> None:
        self._registry.pop(self._session.id, None)
        if self._opened:
            self._flush_audio()
            audio_s = self._session.config.audio.duration_s(self._session.stats.audio_bytes)
            self._writer.submit(
                self._entry,
                ops.EndSession(self._session.id, datetime.now(UTC), self._session.outcome, round(audio_s * 1000)),
            )
        self._writer.finish(self._entry)


def _engine(info: EngineDescription) -> str:
    return f"{info.name} ({info.detail})" if info.detail else info.name
