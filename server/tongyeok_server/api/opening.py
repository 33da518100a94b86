"""Sessions opened, restored and released for Interpret streams: a slot, an admission, the extensions, the log.

``SessionOpener`` is the half of ``InterpretFlow`` that deals with a session
rather than a stream: it checks a config against the engines, starts the
session with its extensions attached (giving back the stream's slot and the
caller's admission when anything fails half-way), builds what the caller is
told first (``session_started``, with the extensions' notes), restores a
session that moved here, and releases a session the registry lets go of,
writing the session's start and end lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import grpc
from google.protobuf import json_format

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import validation, wire
from tongyeok_server.api.resume import ResumeDesk
from tongyeok_server.auth.caller import Caller, current_caller
from tongyeok_server.auth.limits import CallerLimits, StreamAdmission
from tongyeok_server.errors import ServiceError
from tongyeok_server.observability import logs
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.extension import SessionExtension, SessionHeader, StartNotes
from tongyeok_server.session.registry import Managed, SessionRegistry
from tongyeok_server.session.session import Session
from tongyeok_server.simultaneous.options import ServerDefaults
from tongyeok_server.translation.base import Translator

log = logging.getLogger("tongyeok_server.api.interpret")  # the session lines keep the logger operators filter on


class SessionOpener:
    """Opens and releases the sessions of Interpret streams (see the module docstring)."""

    def __init__(
        self,
        recognizer: Recognizer,
        translator: Translator,
        max_streams: int,
        extensions: Sequence[SessionExtension],
        limits: CallerLimits,
        desk: ResumeDesk,
        simultaneous: ServerDefaults | None = None,
    ) -> None:
        self._recognizer = recognizer
        self._translator = translator
        self._max_streams = max_streams
        self._extensions = tuple(extensions)
        self._limits = limits
        self._desk = desk
        self._simultaneous = simultaneous or ServerDefaults()
        #: The sessions held, attached to a stream or waiting for a resume; released through ``released``.
        self.registry = SessionRegistry(desk.window_s, self.released)
        self._admissions: dict[str, StreamAdmission] = {}

    def admission(self, session_id: str) -> StreamAdmission:
        """The caller's admission that ``session_id`` holds (the feeder counts its audio against it)."""
        return self._admissions[session_id]

    def config_from(self, config: pb.InterpretConfig) -> SessionConfig:
        """``config`` checked against the engines (``ServiceError`` INVALID_ARGUMENT naming the field)."""
        return validation.interpret_config(config, self._recognizer, self._translator, self._simultaneous)

    def open(
        self,
        wire_config: pb.InterpretConfig,
        config: SessionConfig,
        *,
        session_id: str | None = None,
        caller: Caller | None = None,
        continuation: Continuation | None = None,
    ) -> Managed:
        """A new session (or one continued from another server), started and held.

        Whatever fails half-way (a refusal, an extension's bug, an engine
        that cannot start) gives back what was taken: the stream's slot and
        the caller's admission.
        """
        caller = caller or current_caller()
        if len(self.registry) >= self._max_streams:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this server is at its limit of {self._max_streams} concurrent streams; try again later",
            )
        admission = self._limits.admit(caller)  # raises RESOURCE_EXHAUSTED naming the caller's limit
        try:
            session = Session(
                config,
                self._recognizer,
                self._translator,
                session_id=session_id,
                caller=caller,
                continuation=continuation,
            )
        except BaseException:
            admission.release()
            raise
        managed = self.registry.add(session, wire_config.resumption.enabled)
        managed.extra["config"] = wire_config.SerializeToString()
        self._admissions[session.id] = admission
        try:
            for extension in self._extensions:
                observer = extension.attach(session)
                if observer is not None:
                    session.add_observer(observer)
            session.start()
        except BaseException:
            self.registry.release(managed)  # closes the session, frees the slot and the admission
            raise
        log.info(
            "session %s %s: caller=%s %s -> %s, %s %d Hz x%d, recognizer=%s translator=%s%s",
            session.id,
            "continues here" if continuation else "start",
            session.caller.id,
            "+".join(config.source_languages),
            "+".join(config.target_languages),
            config.audio.encoding.value,
            config.audio.sample_rate_hz,
            config.audio.channels,
            self._recognizer.description.name,
            self._translator.description.name,
            f", moved from another server at utterance {continuation.next_utterance_id}" if continuation else "",
            extra=logs.session_start_fields(
                session, self._recognizer.description.name, self._translator.description.name, moved=bool(continuation)
            ),
        )
        return managed

    def started(self, managed: Managed) -> pb.SessionStarted:
        """What the caller is told first: the effective config, the engines, what the extensions note."""
        session = managed.session
        started = pb.SessionStarted(
            session_id=session.id,
            effective_config=wire.effective_config(
                session.config, self._translator.effective_options(session.config.translation)
            ),
            recognizer=wire.engine(self._recognizer.description),
            translator=wire.engine(self._translator.description),
            ignored_options=self._translator.ignored_options(session.config.translation),
            simultaneous_directions=wire.simultaneous_directions(session.config),
        )
        if managed.resumable:
            started.effective_config.resumption.enabled = True
            started.resume_token = self._desk.live_token(session)
            started.resume_window.CopyFrom(wire.duration(self._desk.window_s))
        notes = StartNotes()
        for extension in self._extensions:
            extension.started(session, notes)
        wire.add_start_notes(started, session.config.speech, notes)
        header = SessionHeader(
            json_format.MessageToJson(started.effective_config, preserving_proto_field_name=True, indent=None),
            self._recognizer.description,
            self._translator.description,
        )
        for extension in self._extensions:
            extension.opened(session, header)  # e.g. the record's header
        return started

    def restore(self, claims_config: bytes, session_id: str, caller: Caller, continuation: Continuation) -> Managed:
        """A session that moved here from a server that shut down (``ResumeDesk`` checked its token)."""
        wire_config = pb.InterpretConfig.FromString(claims_config)
        try:
            config = self.config_from(wire_config)
        except ServiceError as error:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the session cannot continue on this server: its config does not fit the engines here ({error.message})",
            ) from None
        return self.open(wire_config, config, session_id=session_id, caller=caller, continuation=continuation)

    def released(self, managed: Managed) -> None:
        """The registry let go of a session: stop what it runs, free its slot, write its log line."""
        session = managed.session
        session.close()
        admission = self._admissions.pop(session.id, None)
        if admission is not None:
            admission.release()
        s = session.stats
        duration_s = time.monotonic() - session.started_at
        audio_s = session.config.audio.duration_s(s.audio_bytes)
        log.info(
            "session %s end: %s after %.1fs, audio %.1fs in %d chunks, %d interim, %d final, "
            "%d translations, %d failed, %d resumes, caller=%s",
            session.id,
            session.outcome,
            duration_s,
            audio_s,
            s.chunks,
            s.interims,
            s.finals,
            s.translations,
            s.translation_failures,
            managed.resumes,
            session.caller.id,
            extra=logs.session_end_fields(session, duration_s, audio_s, resumes=managed.resumes),
        )
