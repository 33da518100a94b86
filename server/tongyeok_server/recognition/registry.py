"""Which recogniser a name selects. Adding an engine is one line here."""

from __future__ import annotations

from tongyeok_server.engine_loader import load_engine
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.settings import GoogleSettings, RecognitionSettings

# name -> "module:factory"; the factory takes the recognition settings and Google's connection.
RECOGNIZERS = {
    "pocketsphinx": "tongyeok_server.recognition.pocketsphinx_engine:create",
    "whisper": "tongyeok_server.recognition.whisper_engine:create",
    "google": "tongyeok_server.recognition.google_engine:create",
}


def create_recognizer(settings: RecognitionSettings, google: GoogleSettings) -> Recognizer:
    """Build the recogniser ``settings.recognizer`` names."""
    recognizer: Recognizer = load_engine("recognizer", RECOGNIZERS, settings.recognizer, settings, google)
    return recognizer
