"""Which translator a name selects. Adding an engine is one line here.

Engines are imported only when chosen, so each runs without the others'
dependencies installed.
"""

from __future__ import annotations

import importlib

from tongyeok_server.settings import ServerSettings
from tongyeok_server.translation.base import Translator

# name -> "module:factory"; the factory takes ServerSettings.
TRANSLATORS = {
    "apertium": "tongyeok_server.translation.apertium_engine:create",
    "openai": "tongyeok_server.translation.openai_engine:create",
}


def create_translator(settings: ServerSettings) -> Translator:
    """Build the translator ``settings.translator`` names."""
    try:
        target = TRANSLATORS[settings.translator]
    except KeyError:
        raise SystemExit(
            f"unknown translator {settings.translator!r}; choose one of {', '.join(TRANSLATORS)}"
        ) from None
    module, factory = target.split(":")
    translator: Translator = getattr(importlib.import_module(module), factory)(settings)
    return translator
