"""Echo in simultaneous mode: nothing of the session's own speech is committed, translated or spoken.

Simultaneous mode speaks a translation while people still speak, and
commits words before the final: a final judged echo could not be dropped
once words of its translation went out, so each interim is judged before
anything of it is committed (``EchoGuard.judge``). Here the guard's verdicts
on their own, quickly, and the room (``tests/support/room.py``) at
real-time pace in simultaneous mode, the speech played as its chunks come
(as a client plays them), back at -6/0 dB 1-3 s later, with and without a
person speaking over its end, through Whisper and Apertium:

- a two-way stream at 16 kHz, where the canceller removes the echo before
  the recogniser and what it leaks is judged;
- a one-way stream at 22.05 kHz, a rate the canceller cannot run at: the
  echo reaches the recogniser whole (Whisper makes English of the Spanish
  speech), and only the judgement before commitment keeps it from being
  translated while it is heard.

Every sentence a person said is translated once; no echo is translated,
shown as a tentative translation, or spoken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import soxr

from tests.conftest import stub_for
from tests.support.calls import config
from tests.support.room import RoomRun, Turn, run_room, run_together
from tests.support.word_errors import word_error_rate
from tests.test_echo import SENTENCES, WER_BOUND, _Sink, _tts_like, _turns
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.app import TongyeokServer
from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.echo import aec
from tongyeok_server.echo.base import Verdict
from tongyeok_server.echo.guard import SETTLE_S, EchoGuard
from tongyeok_server.recognition.base import Transcript
from tongyeok_server.session import events as ev

NO_CANCELLER_HZ = 22050  # not a multiple of 100 Hz: WebRTC's processing cannot run on it


def _uncancelled_turns() -> list[Turn]:
    """The room at 22.05 kHz, each next person after the speech (nothing removes the echo under their voice)."""
    return [
        replace(
            t,
            pcm=soxr.resample(t.pcm.astype(np.float32), 16000, NO_CANCELLER_HZ).astype(np.int16),
            over_s=0.0,
            gap_s=max(t.gap_s, 0.5),
        )
        for t in _turns()
    ]


@pytest.fixture(scope="module")
def rooms(whisper_server: TongyeokServer) -> Iterator[dict[str, RoomRun]]:
    """The two simultaneous streams, run once at the same time for every test of this module."""

    def room(sources: tuple[str, ...], targets: tuple[str, ...], rate: int, turns: list[Turn]) -> Callable[[], RoomRun]:
        def run() -> RoomRun:
            channel, stub = stub_for(whisper_server)
            with channel:
                cfg = config(
                    sources=sources,
                    targets=targets,
                    rate=rate,
                    mode=pb.INTERPRETATION_MODE_SIMULTANEOUS,
                    tentative_translations=True,
                ).config
                cfg.speech_output.CopyFrom(pb.SpeechOutputConfig(voices=[pb.VoiceSelection(language_code="es")]))
                return run_room(stub, cfg, turns, language="es", as_it_comes=True)

        return run

    yield run_together(
        {
            "two-way": room(("en-US", "es-ES"), (), 16000, _turns()),
            "one-way": room(("en-US",), ("es",), NO_CANCELLER_HZ, _uncancelled_turns()),
        }
    )


@pytest.mark.speech
@pytest.mark.parametrize("mode", ["two-way", "one-way"])
def test_every_sentence_translated_once_and_nothing_of_the_echo_committed_shown_or_spoken(
    rooms: dict[str, RoomRun], mode: str
) -> None:
    run = rooms[mode]
    said = [(f.text, f.language_code, run.turn_of(f)) for f in run.people]
    print(f"{mode}: heard {said}; echo {[f.text for f in run.echoes]}; echo at {run.echo_spans_s}")
    assert len(run.echo_spans_s) == len(SENTENCES), f"{mode}: every translation was spoken and came back: {said}"
    assert all(turn is not None for *_, turn in said), f"{mode}: a final made of echo was not flagged: {said}"
    assert all(f.language_code.startswith("en") for f in run.people), f"{mode}: echo reached the translator: {said}"
    assert sorted(turn for *_, turn in said if turn is not None) == list(range(len(SENTENCES))), said
    completes = run.of_kind("translation_complete")
    assert sorted(c.utterance_id for c in completes) == sorted(f.utterance_id for f in run.people), "translated once"
    people = {f.utterance_id for f in run.people}
    for kind in ("translation_token", "translation_audio", "translation_complete"):
        strays = {e.utterance_id for e in run.of_kind(kind)} - people
        assert not strays, f"{mode}: {kind} for utterances that were no person's sentence: {strays}"
    shown = {e.utterance_id for e in run.of_kind("translation_tentative") if e.text} - people
    assert not shown, f"{mode}: the echo's translation was shown as tentative text: {shown}"
    wer = word_error_rate(" ".join(SENTENCES), " ".join(f.text for f in run.people))
    assert wer <= WER_BOUND, f"{mode}: WER {wer:.1%}: {said}"


@pytest.mark.skipif(not aec.available(), reason="livekit (the canceller) is a server dependency")
def test_interims_are_judged_before_anything_is_committed() -> None:
    """Simultaneous mode: the span behind an interim is echo, a person's, or not known yet (the delay not found)."""
    guard = EchoGuard(AudioSpec(Encoding.LINEAR16, 16000), _Sink(), ("es",), max_delay_s=4.0)
    speech, person = _tts_like(2.0, 3), _tts_like(1.5, 4)
    mic = np.zeros(7 * 16000, dtype=np.float32)
    echo_at, person_at = 16000 + 24000, 16000 + 24000 + 40000  # echo 1.5 s after the speech was sent; then a person
    mic[echo_at : echo_at + len(speech)] += speech
    mic[person_at : person_at + len(person)] += person
    pcm = np.clip(mic, -32768, 32767).astype(np.int16)

    def interim(start: int, end: int, stable: str = "", language: str = "en-US") -> Transcript:
        return Transcript(stable, language, False, start / 16000, end / 16000, stable_text=stable)

    async def stream(until: int) -> None:
        while guard_at[0] < until:
            i = guard_at[0]
            if i == 16000:  # the speech is sent: it can play from here on (a committed clause, then the rest)
                guard.on_event(ev.Token(7, "en", "es", "Nos gustaría"))
                guard.on_event(ev.Audio(7, "es", 0, speech.astype("<i2").tobytes(), True, "LINEAR16", 16000))
                guard.on_event(ev.Token(7, "en", "es", " hablar del contrato hoy"))
            await guard.clean(pcm[i : i + 1600].tobytes())
            guard_at[0] += 1600

    guard_at = [0]
    before = interim(0, 16000, "we would")
    assert asyncio.run(_judged(guard, stream, 16000, before)) is Verdict.SPEECH, "nothing was playing: at once"
    # Just before the echo: the speech may be heard there, and whether it was is not known yet (the delay is
    # found once the echo is heard, and what passed before is then marked as the echo heard uncancelled).
    early = interim(echo_at - 8000, echo_at)
    assert asyncio.run(_judged(guard, stream, echo_at, early)) is Verdict.PENDING
    assert asyncio.run(_judged(guard, stream, echo_at + 16000, interim(echo_at, echo_at + 16000))) is Verdict.ECHO
    assert guard.stats.delay_ms == 1500
    # In a two-way stream the echo heard as Spanish repeats the words the session committed and spoke.
    assert guard.judge(interim(echo_at, echo_at + 16000, "nos gustaría hablar", "es-ES")) is Verdict.ECHO
    theirs = interim(person_at, person_at + 16000, "the delivery")
    assert asyncio.run(_judged(guard, stream, person_at + 16000, theirs)) is Verdict.SPEECH
    # A Spanish reply while the speech may still be heard: one word proves nothing, two of its own do.
    reply = (person_at, person_at + 16000)
    assert guard.judge(interim(*reply, "sí", "es-ES")) is Verdict.PENDING
    assert guard.judge(interim(*reply, "sí claro", "es-ES")) is Verdict.SPEECH


@pytest.mark.skipif(not aec.available(), reason="livekit (the canceller) is a server dependency")
def test_with_headphones_a_person_heard_while_the_speech_plays_waits_only_while_it_could_be_echo() -> None:
    guard = EchoGuard(AudioSpec(Encoding.LINEAR16, 16000), _Sink(), ("es",), max_delay_s=4.0)
    person = _tts_like(3.0, 4)
    pcm = np.zeros(5 * 16000, dtype=np.int16)
    pcm[16000 : 16000 + len(person)] = person.astype(np.int16)
    at = [0]

    async def stream(until: int) -> None:
        while at[0] < until:
            if at[0] == 0:  # the session speaks; the microphone never hears it
                guard.on_event(ev.Audio(3, "es", 0, _tts_like(2.0, 3).astype("<i2").tobytes(), True, "LINEAR16", 16000))
            await guard.clean(pcm[at[0] : at[0] + 1600].tobytes())
            at[0] += 1600

    # Their first half second, just heard: all of it could still turn out to be the speech.
    first = Transcript("we", "en-US", False, 1.0, 1.5, stable_text="we")
    assert asyncio.run(_judged(guard, stream, 24000, first)) is Verdict.PENDING
    settled = 24000 + int(SETTLE_S * 16000) + 1600
    assert asyncio.run(_judged(guard, stream, settled, first)) is Verdict.SPEECH, "no delay found: their speech"
    # A longer span is decided as it comes: what is still unknown of it could not make it echo.
    longer = Transcript("we would like", "en-US", False, 1.0, 3.0, stable_text="we would like")
    assert asyncio.run(_judged(guard, stream, 3 * 16000, longer)) is Verdict.SPEECH


async def _judged(guard: EchoGuard, stream: Any, until: int, transcript: Transcript) -> Verdict:
    """Stream the microphone up to ``until``, then judge ``transcript`` as the session would."""
    await stream(until)
    return guard.judge(transcript)
