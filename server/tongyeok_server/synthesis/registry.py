"""Which synthesizer a name selects. Adding an engine is one line here."""

from __future__ import annotations

from tongyeok_server.engine_loader import load_engine
from tongyeok_server.settings import GoogleSettings, OpenAISettings, SynthesisSettings
from tongyeok_server.synthesis.base import Synthesizer

# name -> "module:factory"; the factory takes the synthesis settings and both clouds' connections. "none" turns speech output off.
SYNTHESIZERS = {
    "embedded": "tongyeok_server.synthesis.embedded_engine:create",
    "espeak": "tongyeok_server.synthesis.espeak_engine:create",
    "piper": "tongyeok_server.synthesis.piper_engine:create",
    "openai": "tongyeok_server.synthesis.openai_engine:create",
    "google": "tongyeok_server.synthesis.google_engine:create",
}


def create_synthesizer(
    settings: SynthesisSettings, google: GoogleSettings, openai: OpenAISettings
) -> Synthesizer | None:
    """Build the synthesizer ``settings.synthesizer`` names (None for "none")."""
    if settings.synthesizer == "none":
        return None
    synthesizer: Synthesizer = load_engine("synthesizer", SYNTHESIZERS, settings.synthesizer, settings, google, openai)
    return synthesizer
