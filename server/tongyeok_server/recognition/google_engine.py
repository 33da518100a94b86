"""Google Cloud Speech-to-Text v2 streaming recognition, behind the ``Recognizer`` interface.

Selected with ``--recognizer google``. Credentials come from Google's
Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS`` or
``gcloud auth application-default login``); the project from
``--google-project`` or the credentials. ``--google-insecure`` with
``--google-endpoint`` talks plaintext to a local fake (tests, benchmark);
``--google-ca-file`` trusts another CA than the system's for the endpoint.

The restart, pause and retry policy lives in ``google_stream`` (with
``google_sender``: what one call carries, and ``google_retries``: the retry
budget), what each status means in ``google/status.py``, and the renewal of
the credential (before each call, by the engine rather than by gRPC's plugin)
in ``google/auth.py``.

Every stream runs on the server's asyncio event loop over ``grpc.aio`` (no
thread per stream, and no loop or thread of the engine's own):
``open_stream`` must be called on that loop, which it pins the engine to.
Its channels are created on that loop, lazily, because a ``grpc.aio``
channel belongs to the loop it was made on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import grpc
import grpc.aio
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud.speech_v2 import SpeechAsyncClient
from google.cloud.speech_v2.services.speech.transports import SpeechGrpcAsyncIOTransport
from google.cloud.speech_v2.services.speech.transports.base import DEFAULT_CLIENT_INFO
from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server import languages
from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import ServiceError
from tongyeok_server.google.auth import (
    CredentialKeeper,
    ca_file_credentials,
    load_credentials,
    transport_factory,
)
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionListener,
    Recognizer,
    RecognizerStream,
)
from tongyeok_server.recognition.google_call import StreamPolicy
from tongyeok_server.recognition.google_stream import GoogleRecognizerStream
from tongyeok_server.settings import GoogleSettings, RecognitionSettings

log = logging.getLogger(__name__)

_ENCODINGS = {
    Encoding.LINEAR16: cloud_speech.ExplicitDecodingConfig.AudioEncoding.LINEAR16,
    Encoding.MULAW: cloud_speech.ExplicitDecodingConfig.AudioEncoding.MULAW,
    Encoding.ALAW: cloud_speech.ExplicitDecodingConfig.AudioEncoding.ALAW,
}

# A bare language asked for by a caller ("ko") -> the locale Google recognises.
DEFAULT_LOCALES = {
    "ko": "ko-KR", "en": "en-US", "ja": "ja-JP", "zh": "cmn-Hans-CN", "cmn": "cmn-Hans-CN", "es": "es-ES",
    "fr": "fr-FR", "de": "de-DE", "it": "it-IT", "pt": "pt-BR", "ru": "ru-RU", "vi": "vi-VN", "th": "th-TH",
    "id": "id-ID", "hi": "hi-IN", "ar": "ar-EG", "nl": "nl-NL", "pl": "pl-PL", "tr": "tr-TR", "uk": "uk-UA",
    "sv": "sv-SE", "ca": "ca-ES", "gl": "gl-ES",
}  # fmt: skip

MISSING_PROJECT = (
    "no Google Cloud project for Speech-to-Text: start the server with --google-project "
    "(or TONGYEOK_GOOGLE_PROJECT / GOOGLE_CLOUD_PROJECT)"
)

# HTTP/2 servers cap concurrent streams per connection (Google: about 100);
# beyond this many calls a new channel is opened.
STREAMS_PER_CHANNEL = 80

# gRPC shares one connection between channels with equal arguments (its global
# subchannel pool), which would put every pooled channel's calls on one
# HTTP/2 connection; a local pool gives each channel its own.
_OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


# The method the transport's ``streaming_recognize`` calls.
STREAMING_RECOGNIZE = "/google.cloud.speech.v2.Speech/StreamingRecognize"
_RESPONSE_FROM_BYTES = cloud_speech.StreamingRecognizeResponse.pb().FromString


class _Channel:
    """One pooled channel: its transport (made on the loop at first use) and how many streams use it."""

    __slots__ = ("_pool", "_rpc", "load", "transport")

    def __init__(self, pool: _ChannelPool) -> None:
        self._pool = pool
        self.transport: SpeechGrpcAsyncIOTransport | None = None
        self._rpc: Any = None
        self.load = 0

    def rpc(self) -> Any:
        """StreamingRecognize on this channel, raw protobuf on the wire (call on the loop).

        The transport's own channel (endpoint, TLS, credentials) and method,
        as its ``streaming_recognize`` callable has them, but without
        proto-plus: requests go out as the bytes the stream serialised
        (``request_serializer`` None passes them through) and responses come
        back as protobuf messages. The transport's callable wraps and unwraps
        every message.
        """
        rpc = self._rpc
        if rpc is None:
            transport = self.transport = self._pool.make_transport()
            rpc = self._rpc = transport.grpc_channel.stream_stream(
                STREAMING_RECOGNIZE, request_serializer=None, response_deserializer=_RESPONSE_FROM_BYTES
            )
        return rpc


class _ChannelPool:
    """``grpc.aio`` channels (one connection each), handed out to the least-loaded one."""

    def __init__(self, make_transport: Callable[[], SpeechGrpcAsyncIOTransport]) -> None:
        self.make_transport = make_transport
        self._channels: list[_Channel] = []
        self._lock = threading.Lock()

    def acquire(self) -> tuple[_Channel, Callable[[], None]]:
        """A channel and the function that gives it back (any thread; makes no connection)."""
        with self._lock:
            channel = min(self._channels, key=lambda c: c.load, default=None)
            if channel is None or channel.load >= STREAMS_PER_CHANNEL:
                channel = _Channel(self)
                self._channels.append(channel)
            channel.load += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    channel.load -= 1

        return channel, release

    def take_all(self) -> list[SpeechGrpcAsyncIOTransport]:
        """Forget every channel; their transports, to be closed on their loop."""
        with self._lock:
            channels, self._channels = self._channels, []
        return [c.transport for c in channels if c.transport is not None]


async def _close_transports(transports: list[SpeechGrpcAsyncIOTransport]) -> None:
    # Closing a grpc.aio channel cancels its calls at once.
    await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)  # type: ignore[no-untyped-call]


class GoogleRecognizer(Recognizer):
    """Streams each Interpret stream's audio into Google Speech-to-Text v2."""

    def __init__(
        self,
        settings: RecognitionSettings,
        google: GoogleSettings,
        policy: StreamPolicy | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        """``credentials``: use these instead of Application Default Credentials (not with ``--google-insecure``)."""
        self._settings = settings
        self._insecure = google.google_insecure
        self._policy = policy or StreamPolicy()
        self._location = settings.google_location or "global"
        self._project = google.google_project
        self._keeper: CredentialKeeper | None = None
        self._ssl_credentials: grpc.ChannelCredentials | None = None
        self._problem: ServiceError | None = None
        if self._insecure:  # settings/ checked that --google-endpoint is given with it
            self._project = self._project or "local"
            self._endpoint = settings.google_endpoint
        else:
            self._endpoint = settings.google_endpoint or (
                "speech.googleapis.com" if self._location == "global" else f"{self._location}-speech.googleapis.com"
            )
            self._ssl_credentials = ca_file_credentials(google.google_ca_file)
            self._load_credentials(credentials)
        self._recognizer_path = (
            f"projects/{self._project}/locations/{self._location}/recognizers/{settings.google_recognizer or '_'}"
        )
        self._pool = _ChannelPool(self._make_transport)
        self._metadata = (DEFAULT_CLIENT_INFO.to_grpc_metadata(),)  # type: ignore[no-untyped-call]
        self._loop: asyncio.AbstractEventLoop | None = None  # where every stream runs (pinned at first use)
        self._closing: asyncio.Task[None] | None = None

    def _load_credentials(self, credentials: Credentials | None) -> None:
        """Application Default Credentials (or ``credentials``); a problem is reported on every stream, not as a crash."""
        self._keeper, adc_project, self._problem = load_credentials(credentials, "google recognizer")
        if self._problem is not None:
            return
        self._project = self._project or adc_project
        if not self._project:
            log.warning("google recognizer: %s", MISSING_PROJECT)
            self._problem = ServiceError(grpc.StatusCode.FAILED_PRECONDITION, MISSING_PROJECT)

    def _make_transport(self) -> SpeechGrpcAsyncIOTransport:
        """A transport over a new ``grpc.aio`` channel; called on the streams' loop."""
        if self._insecure:
            channel = grpc.aio.insecure_channel(self._endpoint, options=[_OWN_CONNECTION])
            return SpeechGrpcAsyncIOTransport(channel=channel)
        assert self._keeper is not None  # else open_stream raised self._problem
        client = SpeechAsyncClient(
            credentials=self._keeper.credentials,
            client_options=ClientOptions(api_endpoint=self._endpoint),
            transport=transport_factory(SpeechGrpcAsyncIOTransport, self._ssl_credentials, [_OWN_CONNECTION]),
        )
        transport = client.transport
        assert isinstance(transport, SpeechGrpcAsyncIOTransport)
        return transport

    def _stream_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (the server's), which every stream and channel of the engine lives on."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("GoogleRecognizer.open_stream() must be called on the server's event loop") from None
        if self._loop is not loop:
            if self._loop is not None:  # another loop's channels cannot serve this one (tests; a restarted server)
                self._pool.take_all()
            self._loop = loop
        return loop

    @property
    def description(self) -> EngineDescription:
        """Engine name and model/location (never the credential or project)."""
        return EngineDescription(
            "google", f"Cloud Speech-to-Text v2, model {self._settings.google_model}, location {self._location}"
        )

    @property
    def max_source_languages(self) -> int:
        """Google's multi-language recognition takes up to three ``language_codes``."""
        return 3

    def language_codes(self) -> Sequence[str]:
        """Common locales; ``resolve_language`` also passes any other well-formed locale to Google."""
        return sorted(set(DEFAULT_LOCALES.values()))

    def resolve_language(self, code: str) -> str | None:
        """A locale (``ko-KR``) as given; a bare language (``ko``) mapped to its usual locale."""
        if not languages.is_well_formed(code):
            return None
        tag = languages.normalize(code)
        if "-" in tag:
            return tag  # Google validates it and answers INVALID_ARGUMENT with its own words
        return DEFAULT_LOCALES.get(tag)

    def check_audio(self, audio: AudioSpec) -> None:
        """Google takes LINEAR16, MULAW and ALAW at 8-48 kHz, which is all the service accepts."""
        if audio.encoding not in _ENCODINGS:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"Google cannot decode {audio.encoding.value}")

    def first_request(self, config: RecognitionConfig) -> cloud_speech.StreamingRecognizeRequest:
        """The config request that opens every Google call of a stream."""
        audio = config.audio
        return cloud_speech.StreamingRecognizeRequest(
            recognizer=self._recognizer_path,
            streaming_config=cloud_speech.StreamingRecognitionConfig(
                config=cloud_speech.RecognitionConfig(
                    explicit_decoding_config=cloud_speech.ExplicitDecodingConfig(
                        encoding=_ENCODINGS[audio.encoding],
                        sample_rate_hertz=audio.sample_rate_hz,
                        audio_channel_count=audio.channels,
                    ),
                    language_codes=list(config.language_codes[: self.max_source_languages]),
                    model=self._settings.google_model,
                    # Punctuated sentences translate better.
                    features=cloud_speech.RecognitionFeatures(enable_automatic_punctuation=True),
                ),
                streaming_features=cloud_speech.StreamingRecognitionFeatures(
                    interim_results=config.interim_results,
                    enable_voice_activity_events=config.voice_activity_events,
                ),
            ),
        )

    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        """Start proxying one stream; ``ServiceError`` if credentials or project are missing."""
        if self._problem is not None:
            raise self._problem
        self.check_audio(config.audio)
        loop = self._stream_loop()
        channel, release = self._pool.acquire()
        metadata = self._metadata

        def open_call() -> Any:
            # The channel's own callable, not the client's wrapper: the wrapper
            # waits for Google's first response before it returns the call, and
            # until then a departed caller could not cancel it. The metadata is
            # what the wrapper adds (x-goog-api-client; StreamingRecognize has no
            # routing header). No request iterator: the stream writes each
            # request itself.
            return channel.rpc()(metadata=metadata)

        return GoogleRecognizerStream(
            config,
            listener,
            open_call,
            self.first_request(config),
            loop,
            self._policy,
            on_close=release,
            before_call=self._keeper.ensure_valid if self._keeper is not None else None,
        )

    def close(self) -> None:
        """Close the channels (cancelling any call still open), on the streams' loop.

        On that loop (the server closes engines there) it schedules the
        closing and returns; from another thread it waits up to 5 s.
        """
        loop, self._loop = self._loop, None
        transports = self._pool.take_all()
        if loop is None or loop.is_closed() or not transports:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        closing: Coroutine[Any, Any, None] = _close_transports(transports)
        if on_loop:
            self._closing = loop.create_task(closing)
        elif loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(closing, loop).result(timeout=5)
            except Exception as exc:  # shutdown goes on
                log.warning("google recognizer: closing channels failed (%s)", type(exc).__name__)
        else:
            closing.close()


def create(settings: RecognitionSettings, google: GoogleSettings) -> Recognizer:
    """Factory used by the registry (``--recognizer google``)."""
    return GoogleRecognizer(settings, google)
