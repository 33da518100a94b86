"""Tongyeok client: stubs, a high-level client and the ``tongyeok`` CLI."""

__version__ = "0.1.0"

from .audio import AudioFormat, AudioStream, open_audio, open_raw, paced, read_audio_file
from .client import (
    DEFAULT_TARGET,
    Engine,
    Event,
    FinalTranscript,
    InterimTranscript,
    InterpreterClient,
    Languages,
    Notice,
    SessionStarted,
    TongyeokError,
    TranslateTextStarted,
    TranslationAudio,
    TranslationComplete,
    TranslationEvent,
    TranslationReset,
    TranslationToken,
    VoiceActivity,
    config,
    translation_options,
)
from .transcripts import ExportedSession, TranscriptsClient

__all__ = [
    "DEFAULT_TARGET",
    "AudioFormat",
    "AudioStream",
    "Engine",
    "Event",
    "ExportedSession",
    "FinalTranscript",
    "InterimTranscript",
    "InterpreterClient",
    "Languages",
    "Notice",
    "SessionStarted",
    "TongyeokError",
    "TranscriptsClient",
    "TranslateTextStarted",
    "TranslationAudio",
    "TranslationComplete",
    "TranslationEvent",
    "TranslationReset",
    "TranslationToken",
    "VoiceActivity",
    "__version__",
    "config",
    "open_audio",
    "open_raw",
    "paced",
    "read_audio_file",
    "translation_options",
]
