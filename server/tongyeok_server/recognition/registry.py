"""Which recogniser a name selects. Adding an engine is one line here.

Engines are imported only when chosen, so the embedded engines run without
the cloud client libraries installed, and the other way round.
"""

from __future__ import annotations

import importlib

from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.settings import ServerSettings

# name -> "module:factory"; the factory takes ServerSettings.
RECOGNIZERS = {
    "pocketsphinx": "tongyeok_server.recognition.pocketsphinx_engine:create",
    "google": "tongyeok_server.recognition.google_engine:create",
}


def create_recognizer(settings: ServerSettings) -> Recognizer:
    """Build the recogniser ``settings.recognizer`` names."""
    try:
        target = RECOGNIZERS[settings.recognizer]
    except KeyError:
        raise SystemExit(
            f"unknown recognizer {settings.recognizer!r}; choose one of {', '.join(RECOGNIZERS)}"
        ) from None
    module, factory = target.split(":")
    recognizer: Recognizer = getattr(importlib.import_module(module), factory)(settings)
    return recognizer
