"""Proto messages -> the client's event dataclasses, derived from the messages' descriptors.

A dataclass in ``events.py`` says which message it mirrors (``@mirrors``);
its fields are found in the message by name, and each value is converted by
the proto field's type, so there is no second, hand-written copy of the
schema to keep in step:

- a field ``x`` reads proto field ``x``; ``x_s`` (seconds) reads ``x_s``,
  ``x`` or ``x_offset``, a ``google.protobuf.Duration`` turned into float
  seconds; ``field(metadata={"proto": "name"})`` names another;
- an enum value becomes its name without the enum's common prefix
  (``NOTICE_CODE_TRANSLATION_FAILED`` -> ``"TRANSLATION_FAILED"``; an
  unknown number, its digits); a message that another dataclass mirrors
  becomes that dataclass (``EngineInfo`` -> ``Engine``); any other message
  stays a message; a repeated field becomes a tuple;
- ``metadata={"convert": f}`` applies ``f`` to each converted value
  (``"SPEECH_BEGIN"`` -> ``"begin"``).

A field that matches nothing fails at import, not at a caller's first
event; ``omitted`` on the class names the proto fields left to ``.raw`` on
purpose (``tests/test_client_events.py`` checks both lists cover the message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

T = TypeVar("T")
DURATION = "google.protobuf.Duration"
RAW = "raw"

#: Message full name -> the dataclass that mirrors it.
MIRRORS: dict[str, type[Any]] = {}


@dataclasses.dataclass(frozen=True)
class _Plan:
    name: str  # the dataclass field
    proto: FieldDescriptor
    convert: Callable[[Any], Any] | None


_PLANS: dict[type[Any], tuple[_Plan, ...]] = {}


def mirrors(message: type[Message], *, omitted: tuple[str, ...] = ()) -> Callable[[type[T]], type[T]]:
    """Register the decorated dataclass as the client's form of ``message`` (see the module docstring)."""
    descriptor = message.DESCRIPTOR

    def register(cls: type[T]) -> type[T]:
        plans = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == RAW:
                continue
            proto = _proto_field(descriptor, f)
            if proto is None:
                raise TypeError(f"{cls.__name__}.{f.name} matches no field of {descriptor.full_name}")
            plans.append(_Plan(f.name, proto, f.metadata.get("convert")))
        cls.omitted = omitted  # type: ignore[attr-defined]
        cls.mirrored = descriptor.full_name  # type: ignore[attr-defined]
        _PLANS[cls] = tuple(plans)
        MIRRORS[descriptor.full_name] = cls
        return cls

    return register


def _proto_field(descriptor: Descriptor | Any, f: dataclasses.Field[Any]) -> FieldDescriptor | None:
    names = [f.metadata["proto"]] if "proto" in f.metadata else [f.name]
    if f.name.endswith("_s") and "proto" not in f.metadata:
        base = f.name.removesuffix("_s")
        names += [base, f"{base}_offset"]
    for name in names:
        if name in descriptor.fields_by_name:
            return descriptor.fields_by_name[name]
    return None


def plan_of(cls: type[Any]) -> tuple[str, ...]:
    """The proto fields ``cls`` reads (for the tests)."""
    return tuple(plan.proto.name for plan in _PLANS[cls])


def from_message(cls: type[T], message: Message, raw: Message | None) -> T:
    """``message`` as ``cls`` (registered with ``mirrors``); ``raw`` is kept in its ``raw`` field, if it has one."""
    values: dict[str, Any] = {}
    for plan in _PLANS[cls]:
        value = getattr(message, plan.proto.name)
        if plan.proto.is_repeated:
            values[plan.name] = tuple(_apply(plan, _value(plan.proto, item)) for item in value)
        else:
            values[plan.name] = _apply(plan, _value(plan.proto, value))
    if any(f.name == RAW for f in dataclasses.fields(cls)):  # type: ignore[arg-type]
        values[RAW] = raw
    return cls(**values)


def _apply(plan: _Plan, value: Any) -> Any:
    return plan.convert(value) if plan.convert is not None else value


def _value(proto: FieldDescriptor, value: Any) -> Any:
    if proto.type == FieldDescriptor.TYPE_ENUM and proto.enum_type is not None:
        return _enum_name(proto.enum_type, value)
    if proto.type != FieldDescriptor.TYPE_MESSAGE or proto.message_type is None:
        return value
    name = proto.message_type.full_name
    if name == DURATION:
        return value.seconds + value.nanos / 1e9
    mirror = MIRRORS.get(name)
    return from_message(mirror, value, None) if mirror is not None else value


def _enum_name(enum: EnumDescriptor, number: int) -> str:
    known = enum.values_by_number.get(number)
    if known is None:
        return str(number)
    # The words every value's name starts with (NOTICE_CODE_, by proto style the enum's own name).
    words = [v.name.split("_") for v in enum.values]
    common = 0
    while len(words) > 1 and all(len(w) > common + 1 and w[common] == words[0][common] for w in words):
        common += 1
    return "_".join(known.name.split("_")[common:])
