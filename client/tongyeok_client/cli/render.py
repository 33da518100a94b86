"""Human output of the CLI: readable lines, with in-progress lines in a small live region on a terminal."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from ..client import (
    Event,
    FinalTranscript,
    InterimTranscript,
    Notice,
    Reconnecting,
    SessionResumed,
    SessionStarted,
    TranslateTextStarted,
    TranslationComplete,
    TranslationReset,
    TranslationTentative,
    TranslationToken,
    VoiceActivity,
)

__all__ = ["HumanRenderer"]

# Finals whose translations are still streaming are held in the live region so that the
# scrollback reads "sentence, its translations, next sentence". Past this many, the oldest
# is printed as it stands and its late translations are printed labelled with its id.
_MAX_HELD_BLOCKS = 3


def _span(start: float, end: float) -> str:
    return f"{start:.2f}–{end:.2f}s"


@dataclass
class _Block:
    """One final transcript and its translations, until all of them are in."""

    utterance_id: int
    header: Text | None
    targets: list[str]
    partial: dict[str, str] = field(default_factory=dict)
    tentative: dict[str, str] = field(default_factory=dict)  # simultaneous: the greyed rest after the tokens
    done: dict[str, Text] = field(default_factory=dict)
    header_printed: bool = False

    @property
    def complete(self) -> bool:
        return all(lang in self.done for lang in self.targets)

    def finish(self, lang: str, line: Text) -> None:
        self.done[lang] = line
        self.partial.pop(lang, None)
        self.tentative.pop(lang, None)
        if lang not in self.targets:
            self.targets.append(lang)


class HumanRenderer:
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
        self.reconnecting: Reconnecting | None = None

    # -- live region

    def __enter__(self) -> HumanRenderer:
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
                    lines.append(
                        self._translation_line(
                            block, lang, block.partial.get(lang, ""), partial=True, tentative=block.tentative.get(lang)
                        )
                    )
        if self.reconnecting is not None:
            lines.append(Text(f"reconnecting… (attempt {self.reconnecting.attempt})", "yellow"))
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

    @property
    def simultaneous(self) -> bool:
        """Whether the session interprets simultaneously (its tokens are committed, never taken back)."""
        return self.session is not None and self.session.simultaneous

    def _translation_line(
        self, block: _Block, lang: str, text: str, *, partial: bool = False, tentative: str | None = None
    ) -> Text:
        line = Text("   ")
        if block.header_printed and self.label:
            line.append(f"#{block.utterance_id} ", style="cyan")
        line.append(f"{lang:<6}", style="green")
        line.append(" ")
        # Simultaneous tokens are committed: shown as final text, with the tentative rest greyed after them.
        line.append(text.strip(), style="dim" if partial and not self.simultaneous else "")
        if tentative:
            line.append(tentative if text.strip() else tentative.lstrip(), style="dim italic")
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

    def expect_translation(self, utterance_id: int, lang: str) -> None:
        """Show a translation line for ``lang`` before its first token (keeps request order)."""
        self._block(utterance_id, lang)

    def _block(self, uid: int, lang: str) -> _Block:
        block = self.blocks.get(uid) or self.stragglers.get(uid)
        if block is None:
            # A translation with no final seen (translate_text, or an out-of-contract server).
            block = self.blocks[uid] = _Block(uid, None, [])
        if lang and lang not in block.targets:
            block.targets.append(lang)
        return block

    # -- events

    def handle(self, event: Event | TranslateTextStarted) -> None:
        """Show one event."""
        if isinstance(event, SessionStarted):
            self.session = event
            record = " · record kept" if event.transcript_stored else ""
            mode = ""
            if event.simultaneous:
                paced = ", ".join(
                    f"{d.source_language_code}→{d.target_language_code} {d.latency} (holds {d.holdback_words})"
                    for d in event.simultaneous_directions
                )
                mode = f" · simultaneous: {paced}" if paced else " · simultaneous"
            line = Text(
                f"session {event.session_id} · {event.recognizer.name} → {event.translator.name}{record}{mode}", "dim"
            )
            self._print(line)
            for opt in event.ignored_options:
                self._print(Text(f"note: {opt}", "yellow"))
        elif isinstance(event, TranslateTextStarted):
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
        elif isinstance(event, TranslationTentative):
            block = self._block(event.utterance_id, event.target_language_code)
            if event.target_language_code not in block.done:
                block.tentative[event.target_language_code] = event.text
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
        elif isinstance(event, Reconnecting):
            self.reconnecting = event
            if not self.tty:  # on a terminal the live line says it
                self._print(
                    Text(f"· connection lost ({event.reason}); reconnecting (attempt {event.attempt})", "yellow")
                )
        elif isinstance(event, SessionResumed):
            self.reconnecting = None
            where = " on another server" if event.moved else ""
            self._print(Text(f"· reconnected{where} after {event.detached_s:.1f} s; nothing was lost", "dim"))
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
