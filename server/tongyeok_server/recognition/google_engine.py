"""Google Cloud Speech-to-Text v2 streaming recognition, behind the ``Recognizer`` interface.

Selected with ``--recognizer google``. Credentials come from Google's
Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS`` or
``gcloud auth application-default login``); the project from
``--google-project`` or the credentials. ``--google-insecure`` with
``--google-endpoint`` talks plaintext to a local fake (tests, benchmark).

The restart, pause and retry policy lives in ``google_stream``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.api_core.client_options import ClientOptions
from google.cloud.speech_v2 import SpeechClient
from google.cloud.speech_v2.services.speech.transports import SpeechGrpcTransport
from google.cloud.speech_v2.services.speech.transports.base import DEFAULT_CLIENT_INFO
from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server import languages
from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import (
    EngineDescription,
    RecognitionConfig,
    RecognitionListener,
    Recognizer,
    RecognizerStream,
)
from tongyeok_server.recognition.google_stream import GoogleRecognizerStream, StreamPolicy
from tongyeok_server.settings import ServerSettings

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

MISSING_CREDENTIALS = (
    "Google Cloud credentials are not set up on the server: set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file, or run `gcloud auth application-default login` on the server host, "
    "then restart the server"
)
MISSING_PROJECT = (
    "no Google Cloud project for Speech-to-Text: start the server with --google-project "
    "(or TONGYEOK_GOOGLE_PROJECT / GOOGLE_CLOUD_PROJECT)"
)

# HTTP/2 servers cap concurrent streams per connection (Google: about 100);
# beyond this many calls a new channel is opened.
STREAMS_PER_CHANNEL = 80


class _ChannelPool:
    """SpeechClients (one gRPC channel each), handed out to the least-loaded one."""

    def __init__(self, make_client: Any) -> None:
        self._make_client = make_client
        self._clients: list[SpeechClient] = []
        self._load: list[int] = []
        self._lock = threading.Lock()

    def acquire(self) -> tuple[SpeechClient, Any]:
        """A client and the function that gives it back."""
        with self._lock:
            best = min(range(len(self._clients)), key=self._load.__getitem__, default=-1)
            if best < 0 or self._load[best] >= STREAMS_PER_CHANNEL:
                self._clients.append(self._make_client())
                self._load.append(0)
                best = len(self._clients) - 1
            self._load[best] += 1
            client = self._clients[best]
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._load[best] -= 1

        return client, release

    def close(self) -> None:
        with self._lock:
            clients, self._clients, self._load = self._clients, [], []
        for client in clients:
            client.transport.close()  # type: ignore[no-untyped-call]


class GoogleRecognizer(Recognizer):
    """Streams each Interpret stream's audio into Google Speech-to-Text v2."""

    def __init__(self, settings: ServerSettings, policy: StreamPolicy | None = None) -> None:
        self._settings = settings
        self._policy = policy or StreamPolicy()
        self._location = settings.google_location or "global"
        self._project = settings.google_project
        self._credentials: Any = None
        self._problem: ServiceError | None = None
        if settings.google_insecure:
            if not settings.google_endpoint:
                raise SystemExit("--google-insecure needs --google-endpoint host:port")
            self._project = self._project or "local"
            self._endpoint = settings.google_endpoint
        else:
            self._endpoint = settings.google_endpoint or (
                "speech.googleapis.com" if self._location == "global" else f"{self._location}-speech.googleapis.com"
            )
            self._load_credentials()
        self._recognizer_path = (
            f"projects/{self._project}/locations/{self._location}/recognizers/{settings.google_recognizer or '_'}"
        )
        self._pool = _ChannelPool(self._make_client)
        self._metadata = (DEFAULT_CLIENT_INFO.to_grpc_metadata(),)  # type: ignore[no-untyped-call]

    def _load_credentials(self) -> None:
        """Application Default Credentials; a problem is reported on every stream, not as a crash."""
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, adc_project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except DefaultCredentialsError as exc:
            # The exception text can quote a key file; log only its type.
            log.warning("google recognizer: %s (%s)", MISSING_CREDENTIALS, type(exc).__name__)
            self._problem = ServiceError(grpc.StatusCode.UNAUTHENTICATED, MISSING_CREDENTIALS)
            return
        self._credentials = credentials
        self._project = self._project or adc_project or ""
        if not self._project:
            log.warning("google recognizer: %s", MISSING_PROJECT)
            self._problem = ServiceError(grpc.StatusCode.FAILED_PRECONDITION, MISSING_PROJECT)

    def _make_client(self) -> SpeechClient:
        if self._settings.google_insecure:
            channel = grpc.insecure_channel(self._endpoint)
            return SpeechClient(transport=SpeechGrpcTransport(channel=channel))
        return SpeechClient(credentials=self._credentials, client_options=ClientOptions(api_endpoint=self._endpoint))

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
        client, release = self._pool.acquire()
        rpc: Any = client.transport.streaming_recognize
        metadata = self._metadata

        def open_call(requests: Iterator[Any]) -> Any:
            # The transport's own callable, not the client's wrapper: the wrapper
            # waits for Google's first response before it returns the call, and
            # until then a departed caller could not cancel it.
            return rpc(requests, metadata=metadata)

        return GoogleRecognizerStream(
            config, listener, open_call, self.first_request(config), self._policy, on_close=release
        )

    def close(self) -> None:
        """Close the channels at server shutdown."""
        self._pool.close()


def create(settings: ServerSettings) -> Recognizer:
    """Factory used by the registry (``--recognizer google``)."""
    return GoogleRecognizer(settings)
