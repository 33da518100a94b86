"""``tongyeok translate TEXT``: translate a text, streaming the translation as it is written."""

from __future__ import annotations

import argparse
import contextlib

from rich.console import Console

from ..client import InterpreterClient
from .common import EXIT_OK, UsageError, glossary, print_json
from .render import HumanRenderer
from .speak import Speech


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register the command and its flags."""
    t = sub.add_parser(
        "translate",
        parents=parents,
        help="translate a text",
        description="Translate a text, streaming the translation as it is written.",
    )
    t.add_argument("text", metavar="TEXT")
    t.add_argument("--source", required=True, metavar="LANG", help="language of TEXT")
    t.add_argument("--target", action="append", required=True, metavar="LANG", help="translate into LANG")
    t.add_argument(
        "--context", action="append", default=[], metavar="SENTENCE", help="a sentence said before TEXT (repeatable)"
    )
    t.set_defaults(run=run)


def run(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Translate ``args.text``; returns the exit status."""
    speech = Speech(args, args.target)
    try:
        stream = client.translate_text(
            args.text,
            source=args.source,
            target=args.target,
            style=args.style,
            glossary=glossary(args),
            context=args.context,
            speech=speech.config,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    with contextlib.closing(stream) as events, contextlib.closing(speech):
        if args.json:
            for event in events:
                speech.handle(event)
                print_json(event.raw)
            return EXIT_OK
        renderer = HumanRenderer(console, label_utterances=False)
        with renderer:
            for lang in args.target:
                renderer.expect_translation(0, lang)  # show requested languages in request order
            for translation_event in events:
                speech.handle(translation_event)
                renderer.handle(translation_event)
    return EXIT_OK
