"""The server's settings: typed, validated groups built once by ``main`` and handed out one group per component.

- ``fields``: how a setting is declared; its flag, variable and accepted values derived from its name and type.
- ``groups``: the service's groups (serving, security, sessions, resumption, record, web, observability,
  simultaneous interpretation).
- ``engines``: the engines' groups (recognition, translation, speech output, receipts) and the clouds' connections.
- ``root``: ``Settings``, every group, and the rules that tie groups together.
- ``cli``: flags and ``TONGYEOK_*`` variables in, ``Settings`` or one ``SettingsError`` line out; secret files.
"""

from __future__ import annotations

from tongyeok_server.settings.cli import from_args, load_secret_files, parser
from tongyeok_server.settings.engines import (
    ExpensesSettings,
    GoogleSettings,
    OpenAISettings,
    RecognitionSettings,
    SynthesisSettings,
    TranslationSettings,
)
from tongyeok_server.settings.groups import (
    ObservabilitySettings,
    ResumeSettings,
    SecuritySettings,
    ServingSettings,
    SessionSettings,
    SimultaneousSettings,
    StoreSettings,
    WebSettings,
    usable_cores,
)
from tongyeok_server.settings.root import Settings, SettingsError

#: Set by the supervisor of --processes in each server process it starts: that process serves, it does not supervise.
PROCESS_INDEX_ENV = "TONGYEOK_PROCESS_INDEX"

__all__ = [
    "PROCESS_INDEX_ENV",
    "ExpensesSettings",
    "GoogleSettings",
    "ObservabilitySettings",
    "OpenAISettings",
    "RecognitionSettings",
    "ResumeSettings",
    "SecuritySettings",
    "ServingSettings",
    "SessionSettings",
    "Settings",
    "SettingsError",
    "SimultaneousSettings",
    "StoreSettings",
    "SynthesisSettings",
    "TranslationSettings",
    "WebSettings",
    "from_args",
    "load_secret_files",
    "parser",
    "usable_cores",
]
