"""The ``tongyeok`` command: interpret an audio file, translate a text, list languages.

Usage::

    tongyeok interpret FILE --source en-US [--source ko-KR] [--target es --target ...]
                            [--no-interim] [--style business|neutral|literal]
                            [--glossary TERM=RENDERING ...] [--keep TERM ...]
                            [--realtime | --fast] [--json] [--server HOST:PORT]
    tongyeok translate "text" --source en --target es [...] [--json]
    tongyeok languages [--json]
    tongyeok sessions list [--since DATE] [--until DATE] [--lang es] [--limit N] [--json]
    tongyeok sessions show ID [--json]
    tongyeok sessions export ID --format srt|vtt|md|txt|json [--lang es] [--both] [-o FILE]
    tongyeok sessions delete ID
    tongyeok expenses scan IMAGE [--trip NAME] [--dry-run] [--json]
    tongyeok expenses list [--from DAY] [--to DAY] [--trip NAME] [--currency KRW] [--category meals] [--json]
    tongyeok expenses show ID | delete ID
    tongyeok expenses correct ID FIELD=VALUE ... (merchant, date, total, currency, tax, category ...)
    tongyeok expenses report --from DAY --to DAY [--trip NAME] --currency KRW --format csv|xlsx|pdf -o FILE

The server is ``--server``, else ``$TONGYEOK_SERVER``, else ``localhost:50051``.
Exit status: 0 done, 1 failure, 2 invalid input (bad arguments, unreadable
audio, or the server's INVALID_ARGUMENT), 130 interrupted.

One module per command (``interpret``, ``translate``, ``languages``,
``sessions``, ``expenses``), each with ``add_parser`` and ``run``; ``connect`` builds the
client from the connection flags, ``render`` is the human output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

import grpc
from rich.console import Console

from .. import __version__
from ..client import TongyeokError
from . import expenses, interpret, languages, sessions, translate
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    UsageError,
    translation_parent,
)
from .connect import client_from_args, connection_parent
from .speak import speech_parent

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    common = connection_parent()
    translation = translation_parent()
    speaking = speech_parent()
    parser = argparse.ArgumentParser(prog="tongyeok", description="Real-time speech interpretation client.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    interpret.add_parser(sub, [common, translation, speaking])
    translate.add_parser(sub, [common, translation, speaking])
    languages.add_parser(sub, [common])
    sessions.add_parser(sub, [common])
    expenses.add_parser(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tongyeok`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        with client_from_args(args) as client:
            status: int = args.run(args, client, console)
            return status
    except TongyeokError as e:
        print(f"error: {e.code.name}: {e.details}", file=sys.stderr)
        return EXIT_INVALID if e.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILURE
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:
        # The reader went away (`tongyeok ... | head`); the stream was cancelled on the way out.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (OSError, RuntimeError) as e:  # the audio failed to read mid-stream
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        # The interpret generator was closed on the way out, which cancelled the call.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
