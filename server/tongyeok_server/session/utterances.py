"""The recognition side of a session: what the recogniser heard, as the session's numbered utterances.

The engine's offsets are moved to the session's time (a session continued
from another server starts after the audio taken there; an echo filter
delays what the recogniser hears by its latency). An interim identical to
the previous one is dropped. Each final is numbered (its interims share its
id), acknowledged (the audio up to its end is never needed again, wherever
the session continues), judged (the session's own speech heard again is
shown for what it is and never translated) and handed to the translation
side (``translations.py``). In simultaneous mode the interims' stable text is
translated while it is spoken, and the final settles what was committed.

On the session's loop, like the rest of the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tongyeok_server.echo.base import EchoFilter
from tongyeok_server.recognition.base import RecognitionEvent, SpeechActivity, Transcript
from tongyeok_server.session import events as ev
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.end_gate import EndGate
from tongyeok_server.session.stats import SessionStats
from tongyeok_server.session.translations import Translations


class Utterances:
    """Transcripts in, numbered interims and finals out (see the module docstring)."""

    def __init__(
        self,
        config: SessionConfig,
        stats: SessionStats,
        emit: Callable[[ev.SessionEvent], None],
        gate: EndGate,
        translations: Translations,
        start: Continuation,
        audio_bytes_taken: Callable[[], int],
        takes_finals: Callable[[], bool],
    ) -> None:
        """``takes_finals`` is False once a final no longer counts (the session ended or is moving elsewhere)."""
        self._config = config
        self._stats = stats
        self._emit = emit
        self._gate = gate
        self._translations = translations
        self._simultaneous = translations.simultaneous
        self._audio_bytes_taken = audio_bytes_taken
        self._takes_finals = takes_finals
        #: The id the next final will get (its interims carry it already).
        self.next_id = start.next_utterance_id
        self._last_interim = ("", "")  # text, stable text
        self._floor_s = config.audio.duration_s(start.audio_bytes)  # where this server's audio starts
        self._offset_s = self._floor_s
        #: Audio the session will never need again, wherever it continues: up to the end of the last final.
        self.acknowledged_bytes = start.audio_bytes
        self._echo: EchoFilter | None = None

    def set_echo_filter(self, echo: EchoFilter) -> None:
        """Judge finals (and, in simultaneous mode, interims) against the session's own speech."""
        self._echo = echo
        # The recogniser hears the audio that much later: its offsets are brought back to the caller's.
        self._offset_s -= echo.latency_s
        if self._simultaneous is not None:  # nothing of an interim is committed before it is judged
            self._simultaneous.judge_with(echo.judge)

    def shifted(self, event: RecognitionEvent) -> RecognitionEvent:
        """An engine's event with its offsets moved to the session's time."""
        if not self._offset_s:
            return event
        floor = self._floor_s
        if isinstance(event, Transcript):
            return replace(
                event,
                start_offset_s=max(floor, event.start_offset_s + self._offset_s),
                end_offset_s=max(floor, event.end_offset_s + self._offset_s),
            )
        if isinstance(event, SpeechActivity):
            return replace(event, offset_s=max(floor, event.offset_s + self._offset_s))
        return event

    def interim(self, transcript: Transcript) -> None:
        """A hypothesis (already ``shifted``): shown if asked for and new; simultaneous mode translates it."""
        if not transcript.text or (transcript.text, transcript.stable_text) == self._last_interim:
            return
        self._last_interim = (transcript.text, transcript.stable_text)
        if self._config.interim_results:
            self._stats.interims += 1
            self._emit(ev.Interim(self.next_id, transcript))
        if self._simultaneous is not None:
            self._simultaneous.interim(self.next_id, transcript)

    def final(self, transcript: Transcript) -> None:
        """A final (already ``shifted``): acknowledged, numbered, judged, shown, translated."""
        text = transcript.text.strip()
        end_bytes = min(self._config.audio.bytes_at(transcript.end_offset_s), self._audio_bytes_taken())
        # A final after a hand-over or the end does not count: it was not acknowledged and is not numbered.
        if not self._takes_finals():
            return
        self.acknowledged_bytes = max(self.acknowledged_bytes, end_bytes)
        committed: tuple[str, ...] = ()  # simultaneous: targets whose text went out, completed whatever happens
        if self._simultaneous is not None:
            transcript, committed = self._simultaneous.settle(self.next_id, transcript, self._last_interim[0])
            text = transcript.text.strip()
        if not text:
            return
        # The session's own speech heard again is not translated. In simultaneous mode words of a translation
        # were committed only once its interims were judged a person's (``EchoFilter.judge``): those are
        # finished as promised (README: echo).
        echo_of = self._echo.echo_of(transcript) if self._echo is not None and not committed else 0
        targets = self._config.targets_for(transcript.language_code) if not echo_of else ()
        targets += tuple(t for t in committed if t not in targets)
        utterance_id = self.next_id
        self.next_id += 1
        # Before the final is emitted, so that no check of the end can run between the final and its translations.
        self._gate.expect_translations(len(targets))
        self._last_interim = ("", "")
        if echo_of:  # its own speech heard again: shown for what it is, never translated, spoken or recorded
            self._stats.echo_finals += 1
            if self._simultaneous is not None:
                self._simultaneous.final(utterance_id, ())  # its tentative re-translations stop
            self._emit(ev.Final(utterance_id, transcript, (), echo_of))
            return
        self._stats.finals += 1
        self._emit(ev.Final(utterance_id, transcript, targets))
        self._translations.submit(utterance_id, text, transcript.language_code, targets)
