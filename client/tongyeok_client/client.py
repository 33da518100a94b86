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

from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypeAlias, cast

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message

from .audio import AudioFormat, normalize_encoding
from .proto import interpreter_pb2 as pb
from .proto import interpreter_pb2_grpc as pb_grpc

__all__ = [
    "DEFAULT_TARGET",
    "Engine",
    "Event",
    "FinalTranscript",
    "InterimTranscript",
    "InterpreterClient",
    "Languages",
    "Notice",
    "SessionStarted",
    "TongyeokError",
    "TranslationComplete",
    "TranslationEvent",
    "TranslationReset",
    "TranslationToken",
    "VoiceActivity",
    "config",
    "translation_options",
]

#: Where the server listens unless told otherwise.
DEFAULT_TARGET = "localhost:50051"


class TongyeokError(Exception):
    """A call failed: the gRPC status code and the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        #: The gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        self.code = code
        #: The server's human-readable message.
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> TongyeokError:
        """Build from a ``grpc.RpcError`` (which, for calls, is also a ``grpc.Call``)."""
        if isinstance(error, grpc.Call):
            return cls(error.code(), error.details() or "")
        return cls(grpc.StatusCode.UNKNOWN, str(error))


# ---------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Engine:
    """An engine behind the service, e.g. ``Engine("pocketsphinx", "en-us model")``."""

    name: str
    detail: str = ""


@dataclass(frozen=True)
class SessionStarted:
    """The first event of a session: its id, the effective config and the engines."""

    session_id: str
    effective_config: pb.InterpretConfig
    recognizer: Engine
    translator: Engine
    #: Options the translator cannot honour, each with the reason.
    ignored_options: tuple[str, ...]
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class InterimTranscript:
    """A hypothesis for the utterance being spoken; a later one replaces it."""

    utterance_id: int
    text: str
    language_code: str
    stability: float
    audio_start_s: float
    audio_end_s: float
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class FinalTranscript:
    """The final text of one utterance; translations into ``target_language_codes`` follow."""

    utterance_id: int
    text: str
    language_code: str
    confidence: float
    audio_start_s: float
    audio_end_s: float
    target_language_codes: tuple[str, ...]
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationToken:
    """The next piece of a translation (with its leading space, if any)."""

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationComplete:
    """The whole translation of one utterance into one language."""

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationReset:
    """Discard the tokens received so far for this translation; it starts again."""

    utterance_id: int
    target_language_code: str
    reason: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class VoiceActivity:
    """Speech began or ended at ``audio_offset_s``."""

    kind: Literal["begin", "end", "unspecified"]
    audio_offset_s: float
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class Notice:
    """Something non-fatal the caller should know; ``code`` is e.g. ``"TRANSLATION_FAILED"``."""

    code: str
    message: str
    #: The utterance concerned, or 0.
    utterance_id: int
    #: The translation language concerned, or "".
    target_language_code: str
    raw: Message = field(repr=False, compare=False)


#: What :meth:`InterpreterClient.interpret` yields.
Event: TypeAlias = (
    SessionStarted
    | InterimTranscript
    | FinalTranscript
    | TranslationToken
    | TranslationComplete
    | TranslationReset
    | VoiceActivity
    | Notice
)
#: What :meth:`InterpreterClient.translate_text` yields.
TranslationEvent: TypeAlias = TranslationToken | TranslationComplete | TranslationReset | Notice


@dataclass(frozen=True)
class Languages:
    """What the running engines support (the answer of ``ListLanguages``)."""

    recognizer: Engine
    translator: Engine
    recognition_language_codes: tuple[str, ...]
    #: ``(source, target)`` translation directions.
    translation_pairs: tuple[tuple[str, str], ...]
    max_source_languages: int
    raw: Message = field(repr=False, compare=False)


def _seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _engine(e: pb.EngineInfo) -> Engine:
    return Engine(e.name, e.detail)


def _notice(n: pb.Notice, raw: Message) -> Notice:
    name = pb.NoticeCode.Name(n.code) if n.code in pb.NoticeCode.values() else str(n.code)
    return Notice(name.removeprefix("NOTICE_CODE_"), n.message, n.utterance_id, n.target_language_code, raw)


def _translation_event(kind: str | None, msg: Message, raw: Message) -> TranslationEvent | None:
    if kind == "translation_token":
        t = cast(pb.TranslationToken, msg)
        return TranslationToken(t.utterance_id, t.source_language_code, t.target_language_code, t.text, raw)
    if kind == "translation_complete":
        c = cast(pb.TranslationComplete, msg)
        return TranslationComplete(c.utterance_id, c.source_language_code, c.target_language_code, c.text, raw)
    if kind == "translation_reset":
        r = cast(pb.TranslationReset, msg)
        return TranslationReset(r.utterance_id, r.target_language_code, r.reason, raw)
    if kind == "notice":
        return _notice(cast(pb.Notice, msg), raw)
    return None


def event_from_proto(response: pb.InterpretResponse) -> Event | None:
    """Convert one ``InterpretResponse`` to its event; ``None`` for an event kind this client does not know."""
    kind = response.WhichOneof("event")
    if kind == "session_started":
        s = response.session_started
        return SessionStarted(
            s.session_id,
            s.effective_config,
            _engine(s.recognizer),
            _engine(s.translator),
            tuple(s.ignored_options),
            response,
        )
    if kind == "interim_transcript":
        i = response.interim_transcript
        return InterimTranscript(
            i.utterance_id,
            i.text,
            i.language_code,
            i.stability,
            _seconds(i.audio_start_offset),
            _seconds(i.audio_end_offset),
            response,
        )
    if kind == "final_transcript":
        f = response.final_transcript
        return FinalTranscript(
            f.utterance_id,
            f.text,
            f.language_code,
            f.confidence,
            _seconds(f.audio_start_offset),
            _seconds(f.audio_end_offset),
            tuple(f.target_language_codes),
            response,
        )
    if kind == "voice_activity":
        v = response.voice_activity
        kinds: dict[int, Literal["begin", "end"]] = {
            pb.VOICE_ACTIVITY_TYPE_SPEECH_BEGIN: "begin",
            pb.VOICE_ACTIVITY_TYPE_SPEECH_END: "end",
        }
        return VoiceActivity(kinds.get(v.type, "unspecified"), _seconds(v.audio_offset), response)
    if kind is None:
        return None
    return _translation_event(kind, getattr(response, kind), response)


# ---------------------------------------------------------------------------
# Config builders

_STYLES: dict[str, pb.TranslationStyle] = {
    "business": pb.TRANSLATION_STYLE_BUSINESS,
    "neutral": pb.TRANSLATION_STYLE_NEUTRAL,
    "literal": pb.TRANSLATION_STYLE_LITERAL,
}

#: A glossary: ``{term: rendering}`` ("" = keep the term), or a list of terms to keep,
#: ``(term, rendering)`` / ``(term, rendering, target_language)`` tuples, or ``GlossaryEntry`` protos.
Glossary: TypeAlias = Mapping[str, str] | Iterable["str | tuple[str, str] | tuple[str, str, str] | pb.GlossaryEntry"]


def _glossary_entries(glossary: Glossary | None) -> list[pb.GlossaryEntry]:
    if glossary is None:
        return []
    if isinstance(glossary, Mapping):
        return [pb.GlossaryEntry(source_term=k, target_term=v) for k, v in glossary.items()]
    entries = []
    for item in glossary:
        if isinstance(item, pb.GlossaryEntry):
            entries.append(item)
        elif isinstance(item, str):
            entries.append(pb.GlossaryEntry(source_term=item))
        elif len(item) == 2:
            entries.append(pb.GlossaryEntry(source_term=item[0], target_term=item[1]))
        elif len(item) == 3:
            entries.append(pb.GlossaryEntry(source_term=item[0], target_term=item[1], target_language_code=item[2]))
        else:
            raise ValueError(f"glossary entry must be a term, (term, rendering) or (term, rendering, lang): {item!r}")
    return entries


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def translation_options(
    *,
    style: str | None = None,
    glossary: Glossary | None = None,
    context_sentences: int = 0,
) -> pb.TranslationOptions:
    """Build ``TranslationOptions``.

    Args:
        style: ``"business"`` (the server's default), ``"neutral"`` or ``"literal"``; ``None`` = server default.
        glossary: Terms with a fixed rendering; see :data:`Glossary`.
        context_sentences: Preceding sentences sent as context; 0 = server default, negative = none.

    Raises:
        ValueError: unknown style or malformed glossary entry.

    """
    opts = pb.TranslationOptions(glossary=_glossary_entries(glossary), context_sentences=context_sentences)
    if style is not None:
        key = style.strip().lower().removeprefix("translation_style_")
        if key not in _STYLES:
            raise ValueError(f"unknown translation style {style!r}; use one of {', '.join(_STYLES)}")
        opts.style = _STYLES[key]
    return opts


def config(
    *,
    source: str | Sequence[str],
    target: str | Sequence[str] | None = None,
    audio: AudioFormat | None = None,
    encoding: str = "LINEAR16",
    sample_rate_hertz: int = 16000,
    channel_count: int = 1,
    interim: bool = True,
    style: str | None = None,
    glossary: Glossary | None = None,
    context_sentences: int = 0,
    voice_activity: bool = False,
) -> pb.InterpretConfig:
    """Build the ``InterpretConfig`` that opens an ``Interpret`` stream.

    Args:
        source: The language spoken (``"en-US"``), or two for a two-way conversation.
        target: Language(s) to translate into; with two sources, ``None`` means "the other one".
        audio: The audio format, e.g. ``open_audio(path).format``; overrides the next three.
        encoding: ``"linear16"``, ``"mulaw"`` or ``"alaw"`` (any case).
        sample_rate_hertz: Samples per second per channel (the service takes 8000-48000).
        channel_count: 1 or 2.
        interim: Whether to receive interim transcripts.
        style: ``"business"``, ``"neutral"`` or ``"literal"``; ``None`` = server default (business).
        glossary: Terms with a fixed rendering; see :data:`Glossary`.
        context_sentences: Preceding sentences sent with each translation; 0 = server default.
        voice_activity: Whether to receive speech begin/end events.

    Raises:
        ValueError: unknown encoding or style, malformed glossary.

    """
    if audio is not None:
        encoding, sample_rate_hertz, channel_count = audio.encoding, audio.sample_rate_hertz, audio.channel_count
    enc = normalize_encoding(encoding)
    return pb.InterpretConfig(
        audio_format=pb.AudioFormat(
            encoding=f"AUDIO_ENCODING_{enc}",
            sample_rate_hertz=sample_rate_hertz,
            channel_count=channel_count,
        ),
        source_language_codes=_as_list(source),
        target_language_codes=_as_list(target),
        interim_results=interim,
        translation_options=translation_options(style=style, glossary=glossary, context_sentences=context_sentences),
        voice_activity_events=voice_activity,
    )


# ---------------------------------------------------------------------------
# The client


class _AudioFailure:
    """Carries an exception raised by the caller's audio iterator out of gRPC's request thread."""

    def __init__(self) -> None:
        self.error: Exception | None = None


class InterpreterClient:
    """A connection to a Tongyeok server; use it as a context manager to close the channel.

    Args:
        target: ``host:port`` of the server.
        secure: Use TLS with the system's root certificates.
        credentials: Explicit channel credentials (implies TLS); overrides ``secure``.
        metadata: ``(key, value)`` pairs sent with every call (e.g. an API key for a gateway).
        timeout: Deadline in seconds for ``translate_text`` and ``list_languages``; ``None`` = none.
            ``interpret`` streams have no deadline unless given one per call, since a
            meeting lasts an hour.
        options: Extra gRPC channel options.

    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        if credentials is None and secure:
            credentials = grpc.ssl_channel_credentials()
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=list(options))
        else:
            self._channel = grpc.insecure_channel(target, options=list(options))
        self._stub = pb_grpc.InterpreterStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self.target = target

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
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Generator[Event, None, None]:
        """Stream ``audio_chunks`` to the server and yield its events as they come.

        The config goes first, then every chunk, from gRPC's request thread: pass a
        :func:`~tongyeok_client.audio.paced` iterator to send at real-time speed. The
        server ends the stream once the audio is exhausted and the last translations
        are done. Closing the generator early (``break``, Ctrl-C) cancels the call.

        Raises:
            TongyeokError: the call failed (bad config, server unavailable, ...).
            Exception: whatever ``audio_chunks`` raised, re-raised here rather than
                being turned by gRPC into an opaque UNKNOWN status.

        """
        failure = _AudioFailure()
        call = self._stub.Interpret(
            _requests(config, audio_chunks, failure),
            timeout=timeout,
            metadata=self._call_metadata(metadata),
        )
        try:
            for response in call:
                event = event_from_proto(response)
                if event is not None:
                    yield event
        except grpc.RpcError as e:
            if failure.error is not None:
                raise failure.error from None
            raise TongyeokError.from_rpc_error(e) from None
        finally:
            # Idempotent after a normal end; on an early exit it stops the server's work for us.
            call.cancel()

    def translate_text(
        self,
        text: str,
        *,
        source: str,
        target: str | Sequence[str],
        style: str | None = None,
        glossary: Glossary | None = None,
        context: Sequence[str] = (),
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Generator[TranslationEvent, None, None]:
        """Translate ``text``, yielding tokens and the complete translation per target language.

        Raises:
            TongyeokError: the call failed.
            ValueError: unknown style or malformed glossary.

        """
        request = pb.TranslateTextRequest(
            text=text,
            source_language_code=source,
            target_language_codes=_as_list(target),
            translation_options=translation_options(style=style, glossary=glossary),
            context=list(context),
        )
        call = self._stub.TranslateText(
            request,
            timeout=self._timeout if timeout is None else timeout,
            metadata=self._call_metadata(metadata),
        )
        try:
            for response in call:
                kind = response.WhichOneof("event")
                event = _translation_event(kind, getattr(response, kind), response) if kind else None
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
        return Languages(
            _engine(r.recognizer),
            _engine(r.translator),
            tuple(r.recognition_language_codes),
            tuple((p.source_language_code, p.target_language_code) for p in r.translation_pairs),
            r.max_source_languages,
            r,
        )


def _requests(
    config: pb.InterpretConfig, audio_chunks: Iterable[bytes], failure: _AudioFailure
) -> Iterator[pb.InterpretRequest]:
    yield pb.InterpretRequest(config=config)
    try:
        for chunk in audio_chunks:
            if chunk:  # an empty chunk carries nothing and some servers count it as a message
                yield pb.InterpretRequest(audio=chunk)
    except Exception as e:
        # gRPC would log this and cancel the call as UNKNOWN; keep it for interpret() to re-raise.
        # (Written before gRPC cancels the call, read only after the response iterator raises.)
        failure.error = e
        raise
