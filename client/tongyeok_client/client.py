"""High-level Python client for the Tongyeok ``Interpreter`` service.

Example::

    from tongyeok_client import InterpreterClient, FinalTranscript, TranslationComplete, config, open_audio, paced

    audio = open_audio("meeting.wav")
    cfg = config(source="en-US", target="es", audio=audio.format)
    with InterpreterClient("localhost:50051") as client:
        for event in client.interpret(cfg, paced(audio.chunks, audio.chunk_duration_s)):
            match event:
                case FinalTranscript(utterance_id=uid, text=text):
                    print(uid, text)
                case TranslationComplete(utterance_id=uid, target_language_code=lang, text=text):
                    print(uid, lang, text)

Events are small frozen dataclasses (offsets in float seconds); each keeps the
proto message it came from in ``raw`` (the whole ``InterpretResponse`` /
``TranslateTextResponse``) for callers who want the wire form, e.g. as JSON.
Every gRPC failure is raised as :class:`TongyeokError` with the server's message.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType

import grpc

from .channel import bearer, channel_credentials, open_channel
from .configs import Glossary, as_list, config, translation_options
from .errors import TongyeokError
from .events import (
    Engine,
    Event,
    FinalTranscript,
    InterimTranscript,
    Languages,
    Notice,
    Reconnecting,
    SessionResumed,
    SessionStarted,
    SimultaneousDirection,
    TranslateTextStarted,
    TranslationAudio,
    TranslationComplete,
    TranslationEvent,
    TranslationReset,
    TranslationTentative,
    TranslationToken,
    VoiceActivity,
    languages_from_proto,
    translation_event_from_proto,
)
from .expenses import ExpensesClient
from .proto import interpreter_pb2 as pb
from .proto import interpreter_pb2_grpc as pb_grpc
from .resume import ResumingStream
from .transcripts import TranscriptsClient

__all__ = [
    "DEFAULT_TARGET",
    "Engine",
    "Event",
    "FinalTranscript",
    "InterimTranscript",
    "InterpreterClient",
    "Languages",
    "Notice",
    "Reconnecting",
    "SessionResumed",
    "SessionStarted",
    "SimultaneousDirection",
    "TongyeokError",
    "TranslateTextStarted",
    "TranslationAudio",
    "TranslationComplete",
    "TranslationEvent",
    "TranslationReset",
    "TranslationTentative",
    "TranslationToken",
    "VoiceActivity",
    "config",
    "translation_options",
]

#: The header a gRPC-aware balancer can hash on to keep a session's calls on one replica.
AFFINITY_HEADER = "x-tongyeok-affinity"

#: Where the server listens unless told otherwise.
DEFAULT_TARGET = "localhost:50051"


class InterpreterClient:
    """A connection to a Tongyeok server; use it as a context manager to close the channel.

    Args:
        target: ``host:port`` of the server.
        token: An API key or JWT, sent as ``authorization: Bearer <token>`` with every call.
        secure: Use TLS with the system's root certificates.
        ca_file: PEM file of the CA that signed the server's certificate (implies TLS).
        client_cert: PEM client certificate for mutual TLS (with ``client_key``; implies TLS).
        client_key: PEM private key of ``client_cert``.
        credentials: Explicit channel credentials (implies TLS); overrides the four above.
        metadata: ``(key, value)`` pairs sent with every call (e.g. a gateway's own header).
        timeout: Deadline in seconds for ``translate_text`` and ``list_languages``; ``None`` = none.
            ``interpret`` streams have no deadline unless given one per call, since a
            meeting lasts an hour.
        options: Extra gRPC channel options (they override the keepalive defaults,
            :data:`~tongyeok_client.channel.KEEPALIVE_OPTIONS`).

    Raises:
        ValueError: a certificate file cannot be read, or the token is malformed.

    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        secure: bool = False,
        ca_file: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        if credentials is None:
            credentials = channel_credentials(
                secure=secure, ca_file=ca_file, client_cert=client_cert, client_key=client_key
            )
        self._metadata = (*bearer(token), *metadata)
        self._channel = open_channel(target, credentials, options)
        self._stub = pb_grpc.InterpreterStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout
        self.target = target
        #: The server's meeting records (``Transcripts``), on the same channel and metadata.
        self.transcripts = TranscriptsClient(
            self._channel,
            metadata=self._metadata,
            timeout=30.0 if timeout is None else timeout,
            error=TongyeokError.from_rpc_error,
        )
        #: Expenses from receipts and trip reports (``Expenses``), on the same channel and metadata.
        self.expenses = ExpensesClient(
            self._channel,
            metadata=self._metadata,
            timeout=120.0 if timeout is None else timeout,
            error=TongyeokError.from_rpc_error,
        )

    def __enter__(self) -> InterpreterClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in progress are cancelled."""
        self._channel.close()

    def _call_metadata(self, extra: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
        return [*self._metadata, *(extra or ())]

    def interpret(
        self,
        config: pb.InterpretConfig,
        audio_chunks: Iterable[bytes],
        *,
        resume: bool = True,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Generator[Event, None, None]:
        """Stream ``audio_chunks`` to the server and yield its events as they come.

        The config goes first, then every chunk: pass a
        :func:`~tongyeok_client.audio.paced` iterator to send at real-time speed
        (it is read by a thread of the client's own). When the audio ends the
        client sends ``end``; the server finishes the last sentence and its
        translations, then ends the stream. Closing the generator early
        (``break``, Ctrl-C) cancels the call.

        With ``resume`` (the default) the session survives a broken connection
        (see :mod:`tongyeok_client.resume`): the client yields a
        :class:`Reconnecting` event, reconnects with backoff, resends the audio
        the server had not acknowledged (at most the server's resume window of
        it is kept), yields the server's :class:`SessionResumed`, and the
        events simply continue, none lost or repeated. ``resume=False`` makes
        a broken connection end the stream with an error, as a cancel does.

        Raises:
            TongyeokError: the call failed (bad config, server unavailable, a
                resume that could not be made within the window, ...).
            Exception: whatever ``audio_chunks`` raised, re-raised here rather than
                being turned by gRPC into an opaque UNKNOWN status.

        """
        # The same value on every call of this session, resumes included: a balancer that hashes on it
        # (deploy/nginx) sends a resume to the replica that holds the session.
        call_metadata = [*self._call_metadata(metadata), (AFFINITY_HEADER, secrets.token_hex(8))]
        stream = ResumingStream(
            lambda requests, wait: self._stub.Interpret(
                requests, timeout=timeout, metadata=call_metadata, wait_for_ready=wait
            ),
            config,
            audio_chunks,
            resume=resume,
        )
        try:
            yield from stream.events()
        except grpc.RpcError as e:
            raise TongyeokError.from_rpc_error(e) from None

    def translate_text(
        self,
        text: str,
        *,
        source: str,
        target: str | Sequence[str],
        style: str | None = None,
        glossary: Glossary | None = None,
        context: Sequence[str] = (),
        speech: pb.SpeechOutputConfig | None = None,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Generator[TranslationEvent, None, None]:
        """Translate ``text``, yielding tokens and the complete translation per target language.

        With ``speech`` (see :func:`tongyeok_client.speech.speech_output`) the
        translations are spoken too: :class:`TranslationAudio` events.

        Raises:
            TongyeokError: the call failed.
            ValueError: unknown style or malformed glossary.

        """
        request = pb.TranslateTextRequest(
            text=text,
            source_language_code=source,
            target_language_codes=as_list(target),
            translation_options=translation_options(style=style, glossary=glossary),
            context=list(context),
            speech_output=speech,
        )
        call = self._stub.TranslateText(
            request,
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._call_metadata(metadata),
        )
        try:
            for response in call:
                kind = response.WhichOneof("event")
                event = translation_event_from_proto(kind, getattr(response, kind), response) if kind else None
                if event is not None:
                    yield event
        except grpc.RpcError as e:
            raise TongyeokError.from_rpc_error(e) from None
        finally:
            call.cancel()

    def list_languages(
        self, *, timeout: float | None = None, metadata: Sequence[tuple[str, str]] | None = None
    ) -> Languages:
        """Ask what the running engines can recognise and translate.

        Raises:
            TongyeokError: the call failed.

        """
        try:
            r: pb.ListLanguagesResponse = self._stub.ListLanguages(
                pb.ListLanguagesRequest(),
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._call_metadata(metadata),
            )
        except grpc.RpcError as e:
            raise TongyeokError.from_rpc_error(e) from None
        return languages_from_proto(r)
