"""How one setting is declared, and what its flag, its variable and its accepted values are called.

A setting is a field of a settings group (a pydantic model). Its flag and
its ``TONGYEOK_*`` variable are derived from the field's name, so they
cannot drift apart: ``idle_timeout_s`` is ``--idle-timeout`` and
``TONGYEOK_IDLE_TIMEOUT`` (a ``_s`` suffix says "seconds" to the code and is
left out of the names people type). What a bad value is told ("an integer
from 0 to 65535") is derived from the same constraints pydantic checks.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

ENV_PREFIX = "TONGYEOK_"


class Group(BaseModel):
    """A settings group: immutable, unknown names refused, defaults validated like given values."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def option(
    default: Any = ...,
    help: str = "",
    *,
    accepts: str = "",
    default_factory: Callable[[], Any] | None = None,
    **constraints: Any,
) -> Any:
    """A setting with its ``--help`` text, constraints (``ge``, ``le``, ``gt`` ...) and, optionally, ``accepts``.

    ``accepts`` overrides the description of valid values derived from the
    type and constraints, for settings whose rule is not a range or a list.
    """
    extra: JsonDict | None = {"accepts": accepts} if accepts else None
    if default_factory is not None:
        return Field(default_factory=default_factory, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


def flag_name(name: str) -> str:
    """``idle_timeout_s`` -> ``--idle-timeout``."""
    return "--" + name.removesuffix("_s").replace("_", "-")


def env_name(name: str) -> str:
    """``idle_timeout_s`` -> ``TONGYEOK_IDLE_TIMEOUT``."""
    return ENV_PREFIX + name.removesuffix("_s").upper()


def is_bool(info: FieldInfo) -> bool:
    """Whether the setting is a switch (``--x`` / ``--no-x``)."""
    return info.annotation is bool


def choices(info: FieldInfo) -> tuple[str, ...]:
    """The values a ``Literal`` setting takes, in declaration order (empty for other types)."""
    if typing.get_origin(info.annotation) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(info.annotation))
    return ()


def accepts(name: str, info: FieldInfo) -> str:
    """What the setting accepts, in words, for the one line a bad value gets."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and extra.get("accepts"):
        return str(extra["accepts"])
    options = choices(info)
    if options:
        return "one of " + ", ".join(options)
    kind = info.annotation
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if kind is bool:
        return "true or false"
    low, high, strict_low = _bounds(info)
    noun = "an integer" if kind is int else "a number" if kind is float else "text"
    if name.endswith("_s") and kind in (int, float):
        noun = "a number of seconds"
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    if low is not None:
        return f"{noun} {'above' if strict_low else 'of at least'} {low}"
    return noun


def _bounds(info: FieldInfo) -> tuple[Any, Any, bool]:
    low = high = None
    strict_low = False
    for item in info.metadata:
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low, strict_low = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
    return low, high, strict_low
