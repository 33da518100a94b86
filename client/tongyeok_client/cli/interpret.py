"""``tongyeok interpret FILE``: stream an audio file and show transcripts and translations as they come."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from rich.console import Console

from ..audio import AudioStream, open_audio, paced
from ..client import InterpreterClient, config
from ..configs import LATENCIES
from ..events import Event
from ..microphone import Microphone, input_devices
from ..speech import NoAudioDevice, echo_cancelling_devices
from .common import EXIT_OK, UsageError, glossary, print_json
from .render import HumanRenderer
from .speak import Speech


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register the command and its flags."""
    p = sub.add_parser(
        "interpret",
        parents=parents,
        help="interpret an audio file (or '-' for raw audio on stdin)",
        description="Stream an audio file to the server and show transcripts and translations as they come.",
    )
    p.add_argument(
        "file", metavar="FILE", nargs="?", help="WAV/FLAC/OGG/MP3..., a headerless .raw/.ulaw/.alaw file, or '-'"
    )
    mic = p.add_argument_group("microphone")
    mic.add_argument("--mic", action="store_true", help="interpret the microphone live (Ctrl-C ends the meeting)")
    mic.add_argument("--mic-device", metavar="NAME", help="the input device, by (part of its) name or index")
    mic.add_argument("--list-mics", action="store_true", help="list the input devices and exit")
    mic.add_argument(
        "--half-duplex",
        action="store_true",
        help="with --mic and --speak: hold the microphone (send silence) while the speech plays, so it is never "
        "heard back; the people wait for it to end",
    )
    p.add_argument(
        "--echo-suppression",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask the server to keep its own speech, heard back by the microphone, out of the recognition "
        "(default: the server's choice, on); --no-echo-suppression with headphones",
    )
    p.add_argument("--source", action="append", metavar="LANG", help="language spoken; twice = two-way (required)")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="LANG",
        help="translate into LANG (repeatable); none with one --source: transcription only",
    )
    p.add_argument("--no-interim", dest="interim", action="store_false", help="do not ask for interim transcripts")
    p.add_argument("--context", type=int, default=0, metavar="N", help="preceding sentences sent as context")
    p.add_argument("--voice-activity", action="store_true", help="ask for speech begin/end events")
    simultaneous = p.add_argument_group("simultaneous interpretation")
    simultaneous.add_argument(
        "--simultaneous",
        action="store_true",
        help="translate while the speaker is still talking, a few seconds behind (committed text, then the "
        "tentative rest greyed); default: consecutive, each sentence once it is finished",
    )
    simultaneous.add_argument(
        "--latency",
        choices=LATENCIES,
        default=None,
        help="with --simultaneous: lag against quality (default: the server's, balanced)",
    )
    simultaneous.add_argument(
        "--no-tentative",
        dest="tentative",
        action="store_false",
        default=None,
        help="with --simultaneous: committed text only, no greyed tentative text",
    )
    p.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask the server to keep (or, --no-record, not keep) the meeting record (default: the server's choice)",
    )
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
    p.set_defaults(run=run)


def _open_input(args: argparse.Namespace) -> AudioStream:
    if args.file != "-" and not os.path.exists(args.file):
        raise UsageError(f"no such file: {args.file}")
    try:
        return open_audio(
            args.file,
            encoding=args.encoding,
            sample_rate_hertz=args.rate,
            channel_count=args.channels,
            chunk_ms=args.chunk_ms,
        )
    except (OSError, RuntimeError, ValueError) as e:  # soundfile's errors are RuntimeErrors
        raise UsageError(f"cannot read {args.file}: {e}") from None


class _Counter:
    """Counts the audio bytes actually handed to gRPC, for the summary."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


def _source(args: argparse.Namespace, device: str | None) -> tuple[AudioStream, Microphone | None]:
    if args.mic or args.mic_device:
        if args.file:
            raise UsageError("give a FILE or --mic, not both")
        try:
            microphone = Microphone(args.mic_device or device, args.chunk_ms)
            return microphone.stream(), microphone
        except NoAudioDevice as e:
            raise UsageError(str(e)) from None
    if not args.file:
        raise UsageError("give a FILE to interpret, '-' for stdin, or --mic for the microphone")
    return _open_input(args), None


def run(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Interpret ``args.file`` (or the microphone); returns the exit status."""
    if args.list_mics:
        try:
            for name in input_devices():
                console.print(name, markup=False, highlight=False)
        except NoAudioDevice as e:
            raise UsageError(str(e)) from None
        return EXIT_OK
    if not args.source:
        raise UsageError("name the language spoken with --source LANG (twice for a two-way conversation)")
    live = bool(args.mic or args.mic_device)
    if args.half_duplex and not live:
        raise UsageError("--half-duplex holds the microphone while the speech plays: it needs --mic")
    # Playing and recording in one room: the system's echo canceller, where it has one, takes the speech
    # out of the microphone before it is sent (PulseAudio/PipeWire module-echo-cancel).
    canceller = echo_cancelling_devices() if live and args.speak and not args.speak_to else None
    audio, microphone = _source(args, canceller[0] if canceller else None)
    try:
        return _interpret(args, client, console, audio, microphone, canceller[1] if canceller else None)
    finally:
        if microphone is not None:
            microphone.stop()


def _interpret(
    args: argparse.Namespace,
    client: InterpreterClient,
    console: Console,
    audio: AudioStream,
    microphone: Microphone | None,
    output_device: str | None = None,
) -> int:
    # A two-way stream translates each sentence into the other language: those are what can be spoken.
    spoken = args.target or (args.source if len(args.source) == 2 else [])
    speech = Speech(args, spoken, output_device)
    if not args.simultaneous and (args.latency is not None or args.tentative is not None):
        raise UsageError("--latency and --no-tentative need --simultaneous")
    if microphone is not None and speech.players:
        _echo_advice(args, microphone, speech, output_device)
    try:
        cfg = config(
            source=args.source,
            target=args.target,
            audio=audio.format,
            interim=args.interim,
            style=args.style,
            glossary=glossary(args),
            context_sentences=args.context,
            voice_activity=args.voice_activity,
            speech=speech.config,
            store_transcript=args.record,
            simultaneous=args.simultaneous,
            latency=args.latency,
            tentative=args.tentative,
            echo_suppression=args.echo_suppression,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    # A microphone is real time already; a file is paced to it unless --fast; stdin goes as it comes.
    realtime = microphone is None and (args.realtime if args.realtime is not None else args.file != "-")
    chunks: Iterable[bytes] = audio.chunks
    if realtime:
        if args.speed <= 0:
            raise UsageError(f"--speed must be positive, got {args.speed}")
        chunks = paced(chunks, audio.chunk_duration_s, args.speed)
    counter = _Counter(chunks)
    started = time.monotonic()
    with contextlib.closing(client.interpret(cfg, counter)) as events, contextlib.closing(speech):
        if args.json:

            def as_json(event: Event) -> None:
                speech.handle(event)
                print_json(event.raw)

            _each(events, microphone, as_json)
            return EXIT_OK
        renderer = HumanRenderer(console)
        with renderer:
            if microphone is not None:
                console.print("Listening; Ctrl-C ends the meeting (its last sentence is still finished)", style="dim")

            def shown(event: Event) -> None:
                speech.handle(event)
                renderer.handle(event)

            _each(events, microphone, shown)
        renderer.summary(audio.format.duration_s(counter.bytes), time.monotonic() - started)
    return EXIT_OK


def _echo_advice(args: argparse.Namespace, microphone: Microphone, speech: Speech, device: str | None) -> None:
    """The microphone will hear the speech: hold it (--half-duplex), or say what is done about it."""
    if args.half_duplex:
        microphone.hold = speech.speaking
        print("half-duplex: the microphone is held while the speech plays", file=sys.stderr)
    elif device is not None:
        print(f"playing and recording through the system's echo canceller ({device})", file=sys.stderr)
    else:
        print(
            "note: the microphone hears the speech; the server removes it, but headphones, --half-duplex or the "
            "system's echo canceller (pactl load-module module-echo-cancel) work better",
            file=sys.stderr,
        )


def _each(events: Iterable[Event], microphone: Microphone | None, handle: Callable[[Event], None]) -> None:
    """``handle`` every event; with the microphone, Ctrl-C ends the audio and the rest of the events still come."""
    with _ctrl_c_ends_the_audio(microphone) if microphone is not None else contextlib.nullcontext():
        for event in events:
            handle(event)


@contextlib.contextmanager
def _ctrl_c_ends_the_audio(microphone: Microphone) -> Iterator[None]:
    """While the block runs, the first Ctrl-C stops ``microphone``; a second one interrupts as usual.

    The audio ends, the server finishes the last sentence and its
    translations, and the stream ends by itself. A handler, not ``except
    KeyboardInterrupt``: the interrupt is raised wherever the main thread is,
    which is mostly inside the client's event generator (it would end there,
    cancelling the call and losing the last sentence) or in a finaliser that
    swallows it. A SIGINT the process inherited as ignored stays ignored.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or threading.current_thread() is not threading.main_thread():
        yield
        return
    second = signal.default_int_handler if previous is None else previous

    def on_ctrl_c(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, second)
        microphone.stop()

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
