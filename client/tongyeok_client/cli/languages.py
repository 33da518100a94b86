"""``tongyeok languages``: the server's engines, recognition languages and translation pairs."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

from ..client import InterpreterClient, Languages
from .common import EXIT_OK, print_json


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register the command."""
    p = sub.add_parser(
        "languages",
        parents=parents,
        help="list what the server can recognise and translate",
        description="List the server's engines, recognition languages and translation pairs.",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Print what the server supports; returns the exit status."""
    langs: Languages = client.list_languages()
    if args.json:
        print_json(langs.raw)
        return EXIT_OK

    def engine(name: str, detail: str) -> str:
        return f"{name} ({detail})" if detail else name or "?"

    console.print(Text(f"recognizer   {engine(langs.recognizer.name, langs.recognizer.detail)}"), highlight=False)
    console.print(Text(f"translator   {engine(langs.translator.name, langs.translator.detail)}"), highlight=False)
    console.print(Text(f"recognition  {', '.join(langs.recognition_language_codes) or '-'}"), highlight=False)
    by_source: dict[str, list[str]] = {}
    for src, dst in langs.translation_pairs:
        by_source.setdefault(src, []).append(dst)
    label = "translation  "
    for src, dsts in sorted(by_source.items()):
        console.print(Text(f"{label}{src} → {', '.join(dsts)}"), highlight=False)
        label = " " * len(label)
    if not by_source:
        console.print(Text(f"{label}-"), highlight=False)
    console.print(Text(f"max sources  {langs.max_source_languages}"), highlight=False)
    return EXIT_OK
