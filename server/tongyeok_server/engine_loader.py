"""Loading an engine by name from a registry table.

Engines are imported only when chosen, so the embedded engines run without
the cloud client libraries installed, and the other way round. The names a
setting accepts are checked by ``settings/`` (``tests/test_settings.py``
keeps them and the tables equal), so a name missing here is a bug.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def load_engine(kind: str, table: Mapping[str, str], name: str, *groups: Any) -> Any:
    """Import ``table[name]`` ("module:factory") and call the factory with the settings ``groups``."""
    module, factory = table[name].split(":")
    return getattr(importlib.import_module(module), factory)(*groups)
