"""The session's recognition side on its own: offsets in the session's time, interims, numbered finals."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.recognition.base import SpeechActivity, Transcript
from tongyeok_server.session import events as ev
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.end_gate import EndGate
from tongyeok_server.session.stats import SessionStats
from tongyeok_server.session.translations import Translations
from tongyeok_server.session.utterances import Utterances
from tongyeok_server.translation.base import TranslationOptions

AUDIO = AudioSpec(Encoding.LINEAR16, 16000)
CONFIG = SessionConfig(AUDIO, ("en-US",), ("es", "en"), True, False, TranslationOptions())


class Submitted:
    """Stands in for the translation side: what was submitted, consecutive mode."""

    simultaneous = None

    def __init__(self) -> None:
        self.jobs: list[tuple[int, str, str, tuple[str, ...]]] = []

    def submit(self, utterance_id: int, text: str, language: str, targets: tuple[str, ...]) -> None:
        self.jobs.append((utterance_id, text, language, targets))


def heard(text: str, final: bool, start_s: float, end_s: float, stable: str = "") -> Transcript:
    return Transcript(text, "en-US", final, start_s, end_s, stable_text=stable)


def shifted(utterances: Utterances, transcript: Transcript) -> Transcript:
    moved = utterances.shifted(transcript)
    assert isinstance(moved, Transcript)
    return moved


def run(scenario: Any) -> None:
    async def main() -> None:
        scenario(asyncio.get_running_loop())

    asyncio.run(main())


def test_a_continued_session_numbers_and_acknowledges_in_its_own_time() -> None:
    def scenario(loop: asyncio.AbstractEventLoop) -> None:
        emitted: list[ev.SessionEvent] = []
        translations = Submitted()
        taken = [AUDIO.bytes_at(12.0)]
        counts = [True]
        start = Continuation(7, 40, AUDIO.bytes_at(10.0))  # 10 s of audio on the server before
        utterances = Utterances(
            CONFIG,
            SessionStats(),
            emitted.append,
            EndGate(loop, lambda: None),
            cast(Translations, translations),
            start,
            lambda: taken[0],
            lambda: counts[0],
        )
        # The engine counts from this server's first byte: offsets move by 10 s, never before the session's floor.
        interim = shifted(utterances, heard("good", False, 0.5, 1.0))
        assert (interim.start_offset_s, interim.end_offset_s) == (10.5, 11.0)
        activity = utterances.shifted(SpeechActivity(True, 0.25))
        assert isinstance(activity, SpeechActivity) and activity.offset_s == 10.25
        utterances.interim(interim)
        utterances.interim(interim)  # the same again: dropped
        utterances.interim(heard("", False, 0.0, 0.0))  # nothing heard: dropped
        utterances.final(shifted(utterances, heard(" good morning ", True, 0.5, 1.5)))
        assert [type(e).__name__ for e in emitted] == ["Interim", "Final"]
        assert cast(ev.Interim, emitted[0]).utterance_id == cast(ev.Final, emitted[1]).utterance_id == 7
        assert translations.jobs == [(7, "good morning", "en-US", ("es",))]  # not into its own language
        assert utterances.next_id == 8
        assert utterances.acknowledged_bytes == AUDIO.bytes_at(11.5)
        # Past the audio taken, a final acknowledges only what was taken.
        utterances.final(shifted(utterances, heard("thanks", True, 1.5, 3.0)))
        assert utterances.acknowledged_bytes == taken[0]
        # Once finals no longer count (ended, or moving elsewhere), one is neither numbered nor acknowledged.
        counts[0] = False
        taken[0] = AUDIO.bytes_at(20.0)
        utterances.final(shifted(utterances, heard("late", True, 3.0, 9.0)))
        assert utterances.next_id == 9 and utterances.acknowledged_bytes == AUDIO.bytes_at(12.0)
        assert len(translations.jobs) == 2

    run(scenario)
