"""What every ``tongyeok`` command shares: exit codes, usage errors, JSON output, glossary flags."""

from __future__ import annotations

import argparse
import json
import sys

from google.protobuf import json_format
from google.protobuf.message import Message

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a C tool killed by the pipe would report


class UsageError(Exception):
    """Input the CLI cannot use (file, glossary syntax ...): exit 2 with the message."""


def print_json(message: Message) -> None:
    """Print one proto message as a JSON line (field names as in the proto)."""
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False))
    sys.stdout.flush()  # a consumer reading the pipe wants each event when it happens


def translation_parent() -> argparse.ArgumentParser:
    """The translation flags shared by ``interpret`` and ``translate``."""
    translation = argparse.ArgumentParser(add_help=False)
    translation.add_argument(
        "--style", choices=("business", "neutral", "literal"), help="translation register (server default: business)"
    )
    translation.add_argument(
        "--glossary",
        action="append",
        default=[],
        metavar="TERM=RENDERING",
        help="translate TERM as RENDERING (repeatable)",
    )
    translation.add_argument(
        "--keep", action="append", default=[], metavar="TERM", help="leave TERM untranslated, e.g. a product name"
    )
    return translation


def glossary(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The ``--glossary``/``--keep`` flags as (term, rendering) pairs."""
    entries: list[tuple[str, str]] = []
    for item in args.glossary:
        term, sep, rendering = item.partition("=")
        if not sep or not term.strip():
            raise UsageError(f"--glossary wants TERM=RENDERING, got {item!r} (use --keep TERM to keep a term)")
        entries.append((term.strip(), rendering.strip()))
    entries.extend((term, "") for term in args.keep)
    return entries
