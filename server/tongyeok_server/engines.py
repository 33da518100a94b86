"""What every engine (recogniser, translator, synthesizer) tells callers about itself, and a synthesizer's voices.

Neutral ground: ``recognition/``, ``translation/``, ``synthesis/``, the
edge and observability all name engines, so the description lives beside
none of them (it sat in ``recognition/base.py``, and ten modules outside
recognition imported it from there).
"""

from __future__ import annotations

from dataclasses import dataclass

from tongyeok_server import languages


@dataclass(frozen=True)
class EngineDescription:
    """Name and detail of an engine, as shown to callers (never a credential, an address or a project)."""

    name: str
    detail: str = ""


@dataclass(frozen=True)
class Voice:
    """A voice: its name (what callers select), the languages it speaks (BCP-47 tags), a description."""

    name: str
    language_codes: tuple[str, ...]
    description: str = ""

    def speaks(self, language: str) -> bool:
        """Whether this voice speaks ``language`` (regions ignored)."""
        return any(languages.same_language(code, language) for code in self.language_codes)
