"""All the settings, as groups, checked together once: what ``main`` builds and hands out piece by piece."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tongyeok_server.settings.engines import (
    ExpensesSettings,
    GoogleSettings,
    OpenAISettings,
    RecognitionSettings,
    SynthesisSettings,
    TranslationSettings,
)
from tongyeok_server.settings.fields import Group, accepts, env_name, flag_name
from tongyeok_server.settings.groups import (
    ObservabilitySettings,
    ResumeSettings,
    SecuritySettings,
    ServingSettings,
    SessionSettings,
    SimultaneousSettings,
    StoreSettings,
    WebSettings,
)


class SettingsError(Exception):
    """A setting's value is not one the server can run with; ``str()`` is the one line a person reads."""


class Settings(BaseModel):
    """Every group, in the order ``--help`` shows them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: ServingSettings = Field(default_factory=ServingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    resume: ResumeSettings = Field(default_factory=ResumeSettings)
    recognition: RecognitionSettings = Field(default_factory=RecognitionSettings)
    translation: TranslationSettings = Field(default_factory=TranslationSettings)
    simultaneous: SimultaneousSettings = Field(default_factory=SimultaneousSettings)
    synthesis: SynthesisSettings = Field(default_factory=SynthesisSettings)
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    expenses: ExpensesSettings = Field(default_factory=ExpensesSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    #: field name -> the group attribute it lives in (``"port"`` -> ``"server"``).
    WHERE: ClassVar[dict[str, str]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """The rules that tie settings together (each names the flags involved)."""
        sec = self.security
        if bool(sec.tls_cert) != bool(sec.tls_key):
            raise SettingsError("--tls-cert and --tls-key go together: give both or neither")
        if sec.tls_client_ca and not sec.tls_cert:
            raise SettingsError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
        if (sec.jwt_issuer or sec.jwt_audience) and not sec.jwt_jwks:
            raise SettingsError("--jwt-issuer/--jwt-audience need --jwt-jwks (the keys that sign the JWTs)")
        if sec.jwt_jwks and not (sec.jwt_issuer and sec.jwt_audience):
            raise SettingsError("--jwt-jwks needs --jwt-issuer and --jwt-audience (whose tokens to accept)")
        if self.server.processes > 1 and self.server.port == 0:
            raise SettingsError("--processes needs a fixed --port: with port 0 each process would listen elsewhere")
        if self.google.google_insecure:
            if self.recognition.recognizer == "google" and not self.recognition.google_endpoint:
                raise SettingsError("--google-insecure needs --google-endpoint host:port")
            if self.synthesis.synthesizer == "google" and not self.synthesis.google_tts_endpoint:
                raise SettingsError("--synthesizer google with --google-insecure needs --google-tts-endpoint host:port")
        return self

    def replace(self, **values: Any) -> Settings:
        """A copy with some settings changed by field name (``port=0``), validated as flags are."""
        groups: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if name not in self.WHERE:
                raise TypeError(f"no setting named {name!r}")
            groups.setdefault(self.WHERE[name], {})[name] = value
        changed = {
            group: build_group(type(getattr(self, group)), {**getattr(self, group).model_dump(), **updates}, {})
            for group, updates in groups.items()
        }
        return make_settings({name: getattr(self, name) for name in type(self).model_fields} | changed)

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """The defaults with ``values`` changed (tests and tools): ``Settings.of(port=0, recognizer="google")``."""
        return cls().replace(**values)


def build_group(kind: type[Group], values: Mapping[str, Any], origins: Mapping[str, str]) -> Group:
    """Validate one group; a bad value raises ``SettingsError`` naming where it came from and what it accepts.

    ``origins`` maps a field to the environment variable its value came from
    (absent: a flag, or the code's own value).
    """
    try:
        return kind.model_validate(dict(values))
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        info = kind.model_fields.get(name)
        if info is None:
            raise SettingsError(first["msg"]) from None
        value = values.get(name)
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        if name in origins:
            where = f"{origins[name]}={shown!r} (the variable of {flag_name(name)})"
        else:
            where = f"{flag_name(name)} {shown!r}" if shown else flag_name(name)
        raise SettingsError(f"{where}: expected {accepts(name, info)}") from None


def make_settings(groups: Mapping[str, Group]) -> Settings:
    """``Settings`` from validated groups, with the rules that tie them checked."""
    try:
        return Settings(**groups)  # type: ignore[arg-type]
    except ValidationError as error:  # a rule raising ValueError instead of SettingsError: still one line
        raise SettingsError(error.errors()[0]["msg"]) from None


def _index() -> None:
    for group, info in Settings.model_fields.items():
        kind = info.annotation
        assert isinstance(kind, type) and issubclass(kind, Group)
        for name in kind.model_fields:
            assert name not in Settings.WHERE, f"setting {name} is in two groups"
            Settings.WHERE[name] = group


_index()

__all__ = ["Settings", "SettingsError", "build_group", "env_name", "make_settings"]
