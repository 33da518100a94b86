"""The ``tongyeok`` command: interpret an audio file, translate a text, list languages.

Usage::

    tongyeok interpret FILE --source en-US [--source ko-KR] --target es [--target ...]
                            [--no-interim] [--style business|neutral|literal]
                            [--glossary TERM=RENDERING ...] [--keep TERM ...]
                            [--realtime | --fast] [--json] [--server HOST:PORT]
    tongyeok translate "text" --source en --target es [...] [--json]
    tongyeok languages [--json]

The server is ``--server``, else ``$TONGYEOK_SERVER``, else ``localhost:50051``.
Exit status: 0 done, 1 failure, 2 invalid input (bad arguments, unreadable
audio, or the server's INVALID_ARGUMENT), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from . import __version__
from .audio import AudioStream, open_audio, paced
from .client import (
    DEFAULT_TARGET,
    Event,
    FinalTranscript,
    InterimTranscript,
    InterpreterClient,
    Languages,
    Notice,
    SessionStarted,
    TongyeokError,
    TranslationComplete,
    TranslationReset,
    TranslationToken,
    VoiceActivity,
    config,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a C tool killed by the pipe would report

# Finals whose translations are still streaming are held in the live region so that the
# scrollback reads "sentence, its translations, next sentence". Past this many, the oldest
# is printed as it stands and its late translations are printed labelled with its id.
_MAX_HELD_BLOCKS = 3


class _UsageError(Exception):
    """Input the CLI cannot use (file, glossary syntax ...): exit 2 with the message."""


# ---------------------------------------------------------------------------
# Argument parsing


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("TONGYEOK_SERVER") or DEFAULT_TARGET,
        help="HOST:PORT of the server (default: $TONGYEOK_SERVER or %(default)s)",
    )
    common.add_argument("--secure", action="store_true", help="connect with TLS (system root certificates)")
    common.add_argument("--json", action="store_true", help="print one JSON object per event/answer, nothing else")

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

    parser = argparse.ArgumentParser(prog="tongyeok", description="Real-time speech interpretation client.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "interpret",
        parents=[common, translation],
        help="interpret an audio file (or '-' for raw audio on stdin)",
        description="Stream an audio file to the server and show transcripts and translations as they come.",
    )
    p.add_argument("file", metavar="FILE", help="WAV/FLAC/OGG/MP3..., a headerless .raw/.ulaw/.alaw file, or '-'")
    p.add_argument("--source", action="append", required=True, metavar="LANG", help="language spoken; twice = two-way")
    p.add_argument("--target", action="append", default=[], metavar="LANG", help="translate into LANG (repeatable)")
    p.add_argument("--no-interim", dest="interim", action="store_false", help="do not ask for interim transcripts")
    p.add_argument("--context", type=int, default=0, metavar="N", help="preceding sentences sent as context")
    p.add_argument("--voice-activity", action="store_true", help="ask for speech begin/end events")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        default=None,
        help="send at real-time speed (default for files)",
    )
    pace.add_argument(
        "--fast", dest="realtime", action="store_false", help="send as fast as possible (default for stdin)"
    )
    p.add_argument("--speed", type=float, default=1.0, help="pacing speed factor with --realtime (default 1.0)")
    p.add_argument("--chunk-ms", type=float, default=100.0, help="audio chunk length in ms (default 100)")
    raw = p.add_argument_group("headerless audio")
    raw.add_argument("--encoding", help="linear16, mulaw or alaw (makes FILE headerless)")
    raw.add_argument("--rate", type=int, help="sample rate in Hz (required for headerless linear16)")
    raw.add_argument("--channels", type=int, help="1 or 2 (default 1)")

    t = sub.add_parser(
        "translate",
        parents=[common, translation],
        help="translate a text",
        description="Translate a text, streaming the translation as it is written.",
    )
    t.add_argument("text", metavar="TEXT")
    t.add_argument("--source", required=True, metavar="LANG", help="language of TEXT")
    t.add_argument("--target", action="append", required=True, metavar="LANG", help="translate into LANG")
    t.add_argument(
        "--context", action="append", default=[], metavar="SENTENCE", help="a sentence said before TEXT (repeatable)"
    )

    sub.add_parser(
        "languages",
        parents=[common],
        help="list what the server can recognise and translate",
        description="List the server's engines, recognition languages and translation pairs.",
    )
    return parser


def _glossary(args: argparse.Namespace) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for item in args.glossary:
        term, sep, rendering = item.partition("=")
        if not sep or not term.strip():
            raise _UsageError(f"--glossary wants TERM=RENDERING, got {item!r} (use --keep TERM to keep a term)")
        entries.append((term.strip(), rendering.strip()))
    entries.extend((term, "") for term in args.keep)
    return entries


# ---------------------------------------------------------------------------
# Human output


def _span(start: float, end: float) -> str:
    return f"{start:.2f}–{end:.2f}s"


@dataclass
class _Block:
    """One final transcript and its translations, until all of them are in."""

    utterance_id: int
    header: Text | None
    targets: list[str]
    partial: dict[str, str] = field(default_factory=dict)
    done: dict[str, Text] = field(default_factory=dict)
    header_printed: bool = False

    @property
    def complete(self) -> bool:
        return all(lang in self.done for lang in self.targets)

    def finish(self, lang: str, line: Text) -> None:
        self.done[lang] = line
        self.partial.pop(lang, None)
        if lang not in self.targets:
            self.targets.append(lang)


class _HumanRenderer:
    """Turns events into readable lines; on a terminal, in-progress lines live in a small region."""

    def __init__(self, console: Console, *, label_utterances: bool = True) -> None:
        self.console = console
        self.tty = console.is_terminal
        self.label = label_utterances
        self.blocks: dict[int, _Block] = {}  # held, in utterance order
        self.stragglers: dict[int, _Block] = {}  # printed early; completes print labelled
        self.interim: InterimTranscript | None = None
        self.live: Live | None = None
        self.finals = 0
        self.translations: dict[str, int] = {}
        self.failed = 0
        self.notices = 0
        self.session: SessionStarted | None = None

    # -- live region

    def __enter__(self) -> _HumanRenderer:
        if self.tty:
            self.live = Live(console=self.console, auto_refresh=False, transient=True)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Whatever is still held (interrupted stream, translation that never ended) goes out as it is.
        for block in [*self.blocks.values(), *self.stragglers.values()]:
            self._print_block(block, partial=True)
        self.blocks.clear()
        self.stragglers.clear()
        if self.live is not None:
            self.live.update(Text(""), refresh=True)
            self.live.stop()

    def _refresh(self) -> None:
        if self.live is None:
            return
        lines: list[RenderableType] = []
        for block in [*self.stragglers.values(), *self.blocks.values()]:
            if not block.header_printed and block.header is not None:
                lines.append(block.header)
            for lang in block.targets:
                if lang in block.done:
                    lines.append(block.done[lang])
                else:
                    lines.append(self._translation_line(block, lang, block.partial.get(lang, ""), partial=True))
        if self.interim is not None:
            i = self.interim
            line = Text()
            line.append(f"#{i.utterance_id} ", style="dim cyan")
            line.append(f"{i.language_code} … ", style="dim")
            line.append(i.text, style="italic dim")
            lines.append(line)
        self.live.update(Group(*lines), refresh=True)

    def _print(self, line: RenderableType) -> None:
        # Live.console.print puts the line above the live region.
        self.console.print(line, highlight=False, soft_wrap=True)

    # -- formatting

    def _translation_line(self, block: _Block, lang: str, text: str, *, partial: bool = False) -> Text:
        line = Text("   ")
        if block.header_printed and self.label:
            line.append(f"#{block.utterance_id} ", style="cyan")
        line.append(f"{lang:<6}", style="green")
        line.append(" ")
        line.append(text.strip(), style="dim" if partial else "")
        if partial:
            line.append(" …", style="dim")
        return line

    def _print_block(self, block: _Block, *, partial: bool = False) -> None:
        if not block.header_printed and block.header is not None:
            self._print(block.header)
        for lang in block.targets:
            if lang in block.done:
                self._print(block.done[lang])
            elif partial and block.partial.get(lang):
                self._print(self._translation_line(block, lang, block.partial[lang], partial=True))
        block.done.clear()
        block.header_printed = True

    def _flush(self) -> None:
        # Print completed blocks in utterance order; keep the live region small.
        while self.blocks:
            uid, block = next(iter(self.blocks.items()))
            if block.complete:
                self._print_block(block)
                del self.blocks[uid]
            elif len(self.blocks) > _MAX_HELD_BLOCKS:
                self._print_block(block)
                del self.blocks[uid]
                self.stragglers[uid] = block
            else:
                break
        for uid in [u for u, b in self.stragglers.items() if b.complete]:
            self._print_block(self.stragglers.pop(uid))

    def _block(self, uid: int, lang: str) -> _Block:
        block = self.blocks.get(uid) or self.stragglers.get(uid)
        if block is None:
            # A translation with no final seen (translate_text, or an out-of-contract server).
            block = self.blocks[uid] = _Block(uid, None, [])
        if lang and lang not in block.targets:
            block.targets.append(lang)
        return block

    # -- events

    def handle(self, event: Event) -> None:
        """Show one event."""
        if isinstance(event, SessionStarted):
            self.session = event
            line = Text(f"session {event.session_id} · {event.recognizer.name} → {event.translator.name}", "dim")
            self._print(line)
            for opt in event.ignored_options:
                self._print(Text(f"note: {opt}", "yellow"))
        elif isinstance(event, InterimTranscript):
            if self.tty:
                self.interim = event
        elif isinstance(event, FinalTranscript):
            self.finals += 1
            if self.interim is not None and self.interim.utterance_id <= event.utterance_id:
                self.interim = None
            header = Text()
            header.append(f"#{event.utterance_id} ", style="bold cyan")
            header.append(f"{event.language_code} {_span(event.audio_start_s, event.audio_end_s)}  ", style="dim")
            header.append(event.text, style="bold")
            old = self.blocks.get(event.utterance_id)
            block = _Block(event.utterance_id, header, list(event.target_language_codes))
            if old is not None:  # translation events came before the final: keep them
                block.partial, block.done = old.partial, old.done
                block.targets += [lang for lang in old.targets if lang not in block.targets]
            self.blocks[event.utterance_id] = block
        elif isinstance(event, TranslationToken):
            block = self._block(event.utterance_id, event.target_language_code)
            lang = event.target_language_code
            block.partial[lang] = block.partial.get(lang, "") + event.text
        elif isinstance(event, TranslationReset):
            self._block(event.utterance_id, event.target_language_code).partial.pop(event.target_language_code, None)
        elif isinstance(event, TranslationComplete):
            lang = event.target_language_code
            self.translations[lang] = self.translations.get(lang, 0) + 1
            block = self._block(event.utterance_id, lang)
            block.finish(lang, self._translation_line(block, lang, event.text))
        elif isinstance(event, Notice):
            self.notices += 1
            if event.code == "TRANSLATION_FAILED" and event.target_language_code:
                self.failed += 1
                block = self._block(event.utterance_id, event.target_language_code)
                line = self._translation_line(block, event.target_language_code, "")
                line.append(f"translation failed: {event.message}", style="yellow")
                block.finish(event.target_language_code, line)
            else:
                self._print(Text(f"notice {event.code}: {event.message}", "yellow"))
        elif isinstance(event, VoiceActivity):
            self._print(Text(f"· speech {event.kind} at {event.audio_offset_s:.2f}s", "dim"))
        self._flush()
        self._refresh()

    def summary(self, audio_s: float, wall_s: float) -> None:
        """Print the end-of-stream figures."""
        langs = ", ".join(f"{n} {lang}" for lang, n in sorted(self.translations.items())) or "none"
        parts = [f"{self.finals} final{'s' if self.finals != 1 else ''}", f"translations: {langs}"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.notices:
            parts.append(f"{self.notices} notice{'s' if self.notices != 1 else ''}")
        parts.append(f"{audio_s:.1f} s of audio in {wall_s:.1f} s")
        self._print(Text("done: " + " · ".join(parts), "dim"))


# ---------------------------------------------------------------------------
# Commands


def _print_json(message: Message) -> None:
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False))
    sys.stdout.flush()  # a consumer reading the pipe wants each event when it happens


def _open_input(args: argparse.Namespace) -> AudioStream:
    if args.file != "-" and not os.path.exists(args.file):
        raise _UsageError(f"no such file: {args.file}")
    try:
        return open_audio(
            args.file,
            encoding=args.encoding,
            sample_rate_hertz=args.rate,
            channel_count=args.channels,
            chunk_ms=args.chunk_ms,
        )
    except (OSError, RuntimeError, ValueError) as e:  # soundfile's errors are RuntimeErrors
        raise _UsageError(f"cannot read {args.file}: {e}") from None


class _Counter:
    """Counts the audio bytes actually handed to gRPC, for the summary."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


def _cmd_interpret(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    audio = _open_input(args)
    try:
        cfg = config(
            source=args.source,
            target=args.target,
            audio=audio.format,
            interim=args.interim,
            style=args.style,
            glossary=_glossary(args),
            context_sentences=args.context,
            voice_activity=args.voice_activity,
        )
    except ValueError as e:
        raise _UsageError(str(e)) from None
    realtime = args.realtime if args.realtime is not None else args.file != "-"
    chunks: Iterable[bytes] = audio.chunks
    if realtime:
        if args.speed <= 0:
            raise _UsageError(f"--speed must be positive, got {args.speed}")
        chunks = paced(chunks, audio.chunk_duration_s, args.speed)
    counter = _Counter(chunks)
    started = time.monotonic()
    with contextlib.closing(client.interpret(cfg, counter)) as events:
        if args.json:
            for event in events:
                _print_json(event.raw)
            return EXIT_OK
        renderer = _HumanRenderer(console)
        with renderer:
            for event in events:
                renderer.handle(event)
        renderer.summary(audio.format.duration_s(counter.bytes), time.monotonic() - started)
    return EXIT_OK


def _cmd_translate(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    try:
        glossary = _glossary(args)
        stream = client.translate_text(
            args.text, source=args.source, target=args.target, style=args.style, glossary=glossary, context=args.context
        )
    except ValueError as e:
        raise _UsageError(str(e)) from None
    with contextlib.closing(stream) as events:
        if args.json:
            for event in events:
                _print_json(event.raw)
            return EXIT_OK
        renderer = _HumanRenderer(console, label_utterances=False)
        with renderer:
            for lang in args.target:
                renderer._block(0, lang)  # show requested languages in request order
            for translation_event in events:
                renderer.handle(translation_event)
    return EXIT_OK


def _cmd_languages(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    langs: Languages = client.list_languages()
    if args.json:
        _print_json(langs.raw)
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


_COMMANDS = {"interpret": _cmd_interpret, "translate": _cmd_translate, "languages": _cmd_languages}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tongyeok`` command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        with InterpreterClient(args.server, secure=args.secure) as client:
            return _COMMANDS[args.command](args, client, console)
    except TongyeokError as e:
        print(f"error: {e.code.name}: {e.details}", file=sys.stderr)
        return EXIT_INVALID if e.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILURE
    except _UsageError as e:
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


if __name__ == "__main__":
    sys.exit(main())
