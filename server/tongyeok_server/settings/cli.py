"""Settings from the command line and the environment: one parser, grouped ``--help``, one line per bad value.

A flag wins over its ``TONGYEOK_*`` variable, which wins over the default.
Values are parsed and checked by the groups' pydantic models, so a flag and
its variable are held to the same rules and get the same message. Flags and
variables are ours rather than pydantic-settings' because their names are a
published interface (README, deploy/kubernetes, users' scripts) with a
``--x``/``--no-x`` form for switches and ``_s``-less names for seconds.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tongyeok_server.settings.fields import Group, choices, env_name, flag_name, is_bool
from tongyeok_server.settings.root import Settings, SettingsError, build_group, make_settings

PROG = "tongyeok-server"
# Credentials the server reads from the environment, which may instead name a file holding them
# (``OPENAI_API_KEY_FILE=/run/secrets/openai/api-key``): a Kubernetes or Docker secret mounted as
# a file stays out of the pod spec, ``docker inspect`` and the process's initial environment.
SECRET_VARIABLES = ("OPENAI_API_KEY", "PGPASSWORD")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are ``SettingsError``s: one line, exit status 2, no usage block."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"{message} (see --help)")


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The parser of every setting, one argument group per settings group."""
    result = _Parser(
        prog=prog,
        usage="%(prog)s [flags]  (--help lists them by group)",
        description="Tongyeok real-time interpretation server.",
        epilog="Every flag can also be set as TONGYEOK_<FLAG> in the environment, e.g. TONGYEOK_PORT=50051. "
        "Secrets are never flags: OPENAI_API_KEY (or OPENAI_API_KEY_FILE), PGPASSWORD (or PGPASSWORD_FILE), "
        "Google's Application Default Credentials.",
    )
    defaults = Settings()
    for group_name, group_info in Settings.model_fields.items():
        kind: type[Group] = group_info.annotation  # type: ignore[assignment]
        title = (kind.__doc__ or group_name).splitlines()[0].rstrip(".").replace("``", "")
        section = result.add_argument_group(f"{group_name}: {title}")
        default_group = getattr(defaults, group_name)
        for name, info in kind.model_fields.items():
            help_text = f"{info.description} [{env_name(name)}, default {getattr(default_group, name)}]"
            options = choices(info)
            if is_bool(info):
                action: Any = argparse.BooleanOptionalAction
                section.add_argument(
                    flag_name(name), dest=name, action=action, default=argparse.SUPPRESS, help=help_text
                )
            else:
                metavar = "{" + ",".join(options) + "}" if options else name.removesuffix("_s").upper()
                section.add_argument(
                    flag_name(name), dest=name, default=argparse.SUPPRESS, metavar=metavar, help=help_text
                )
    return result


def from_args(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str = PROG,
    rules: bool = True,
) -> Settings:
    """Flags, then ``TONGYEOK_*`` variables, then defaults; ``SettingsError`` naming the first bad value.

    ``rules`` False: each group is checked, not the rules that tie groups together (tools that use a few groups).
    """
    env = os.environ if environ is None else environ
    given = vars(parser(prog).parse_args(argv))
    groups: dict[str, Group] = {}
    for group_name, group_info in Settings.model_fields.items():
        kind: type[Group] = group_info.annotation  # type: ignore[assignment]
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for name, info in kind.model_fields.items():
            if name in given:
                values[name] = given[name]
            elif env_name(name) in env:
                raw = env[env_name(name)]
                # An empty switch variable is off, as a shell's VAR= reads; pydantic alone would refuse it.
                values[name] = _switch(raw) if is_bool(info) else raw
                origins[name] = env_name(name)
        groups[group_name] = build_group(kind, _cloud_defaults(group_name, values, env), origins)
    return make_settings(groups) if rules else Settings.model_construct(None, **groups)


def _switch(raw: str) -> bool | str:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return raw  # left for the model to refuse with the variable's name


def _cloud_defaults(group: str, values: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The cloud SDKs' own variables, where no flag or TONGYEOK_ variable says otherwise."""
    if group == "google" and not values.get("google_project"):
        values["google_project"] = env.get("GOOGLE_CLOUD_PROJECT", "")
    if group == "openai" and not values.get("openai_base_url"):
        values["openai_base_url"] = env.get("OPENAI_BASE_URL", "")
    return values


def load_secret_files(environ: MutableMapping[str, str] | None = None) -> None:
    """Set each of ``SECRET_VARIABLES`` from the file its ``_FILE`` variable names; ``SettingsError`` on a problem."""
    env = os.environ if environ is None else environ
    for var in SECRET_VARIABLES:
        path = env.get(f"{var}_FILE", "")
        if not path:
            continue
        if env.get(var):
            raise SettingsError(f"set {var} or {var}_FILE, not both")
        try:
            value = Path(path).read_text().strip()
        except OSError as e:
            raise SettingsError(f"{var}_FILE={path}: cannot read it ({e.strerror})") from None
        if not value:
            raise SettingsError(f"{var}_FILE={path} is empty")
        env[var] = value
