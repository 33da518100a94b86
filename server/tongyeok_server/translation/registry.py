"""Which translator a name selects. Adding an engine is one line here."""

from __future__ import annotations

from tongyeok_server.engine_loader import load_engine
from tongyeok_server.settings import OpenAISettings, TranslationSettings
from tongyeok_server.translation.base import Translator

# name -> "module:factory"; the factory takes the translation settings and OpenAI's connection.
TRANSLATORS = {
    "apertium": "tongyeok_server.translation.apertium_engine:create",
    "openai": "tongyeok_server.translation.openai_engine:create",
}


def create_translator(settings: TranslationSettings, openai: OpenAISettings) -> Translator:
    """Build the translator ``settings.translator`` names."""
    translator: Translator = load_engine("translator", TRANSLATORS, settings.translator, settings, openai)
    return translator
