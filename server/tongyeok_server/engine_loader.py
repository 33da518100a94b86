"""Loading an engine by name from a registry table.

Engines are imported only when chosen, so the embedded engines run without
the cloud client libraries installed, and the other way round.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from tongyeok_server.settings import ServerSettings


def load_engine(kind: str, table: Mapping[str, str], name: str, settings: ServerSettings) -> Any:
    """Import ``table[name]`` ("module:factory") and call the factory with ``settings``."""
    try:
        target = table[name]
    except KeyError:
        raise SystemExit(f"unknown {kind} {name!r}; choose one of {', '.join(table)}") from None
    module, factory = target.split(":")
    return getattr(importlib.import_module(module), factory)(settings)
