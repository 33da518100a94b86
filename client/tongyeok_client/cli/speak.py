"""The speech flags of ``interpret`` and ``translate``: ``--speak LANG``, ``--speak-to FILE`` and friends.

``--speak-to FILE`` writes each spoken language to a WAV file (``FILE`` itself
for one language, ``FILE`` with ``-<lang>`` for several). ``--speak LANG``
without ``--speak-to`` plays LANG on the local audio device; where there is
none (or no PortAudio), the CLI says so and goes on with the text.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..events import Event, TranslationEvent
from ..proto import interpreter_pb2 as pb
from ..speech import NoAudioDevice, SpeechPlayer, SpeechWriter, speech_output
from .common import UsageError

__all__ = ["Speech", "speech_parent"]


def speech_parent() -> argparse.ArgumentParser:
    """The flags that ask for the translations to be spoken."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("speech output")
    g.add_argument("--speak", action="append", default=[], metavar="LANG", help="speak the translation into LANG")
    g.add_argument("--speak-to", metavar="FILE.wav", help="write the speech to WAV (FILE-<lang>.wav for several)")
    g.add_argument("--voice", action="append", default=[], metavar="LANG=NAME", help="voice for LANG (see languages)")
    g.add_argument("--speaking-rate", type=float, default=0.0, help="0.5-2.0 (default: the voice's pace)")
    g.add_argument(
        "--speech-encoding",
        default="linear16",
        choices=("linear16", "ogg_opus", "mulaw", "alaw"),
        help=argparse.SUPPRESS,
    )
    g.add_argument("--speech-rate", type=int, default=24000, metavar="HZ", help="sample rate of the speech")
    return p


class Speech:
    """What the speech flags asked for: the config to send, and where the audio goes."""

    def __init__(self, args: argparse.Namespace, targets: Sequence[str], output_device: str | None = None) -> None:
        voices = dict(_voice(v) for v in args.voice)
        languages = list(dict.fromkeys([*args.speak, *voices]))
        if args.speak_to and not languages:
            languages = list(targets)
            if not languages:
                raise UsageError("--speak-to FILE needs a language to speak: add --speak LANG (or --target LANG)")
        self.config: pb.SpeechOutputConfig | None = None
        self.writer: SpeechWriter | None = None
        self.players: list[SpeechPlayer] = []
        if not languages:
            return
        if args.speak_to:
            self.writer = SpeechWriter(args.speak_to, languages)
        else:
            if args.speech_encoding != "linear16":
                raise UsageError("playing needs --speech-encoding linear16; use --speak-to FILE for other encodings")
            try:
                self.players = [SpeechPlayer(lang, args.speech_rate, output_device) for lang in languages]
            except NoAudioDevice as e:
                print(f"warning: {e}; going on with the text only", file=sys.stderr)
                return
        try:
            self.config = speech_output(
                voices={lang: voices.get(lang, "") for lang in languages},
                encoding=args.speech_encoding,
                sample_rate_hertz=args.speech_rate,
                speaking_rate=args.speaking_rate,
            )
        except ValueError as e:
            raise UsageError(str(e)) from None

    def speaking(self) -> bool:
        """Whether a player is playing (or its echo is dying away): a half-duplex microphone is held."""
        return any(player.speaking for player in self.players)

    def handle(self, event: Event | TranslationEvent) -> None:
        """Pass one event to the writer and players."""
        if self.writer is not None:
            self.writer.handle(event)
        for player in self.players:
            player.handle(event)

    def close(self) -> None:
        """Finish the files, let the players play what is queued; say where the speech went."""
        if self.writer is not None:
            self.writer.close()
            for lang, path in self.writer.paths.items():
                print(f"speech {lang}: {self.writer.seconds[lang]:.1f} s -> {path}", file=sys.stderr)
        for player in self.players:
            player.close()


def _voice(item: str) -> tuple[str, str]:
    lang, sep, name = item.partition("=")
    if not sep or not lang.strip():
        raise UsageError(f"--voice wants LANG=NAME, got {item!r}")
    return lang.strip(), name.strip()
