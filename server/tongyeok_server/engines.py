"""What every engine (recogniser, translator, synthesizer) tells callers about itself.

Neutral ground: ``recognition/``, ``translation/``, ``synthesis/``, the
edge and observability all name engines, so the description lives beside
none of them (it sat in ``recognition/base.py``, and ten modules outside
recognition imported it from there).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineDescription:
    """Name and detail of an engine, as shown to callers (never a credential, an address or a project)."""

    name: str
    detail: str = ""
