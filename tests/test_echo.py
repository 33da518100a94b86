"""The interpreter never interprets itself: its speech, heard again by the microphone, is not translated.

At real-time pace (``tests/support/room.py``): a person says a sentence; the
server's spoken translation comes back into the microphone 1-3 s after the
final, at -6 dB and at 0 dB; the next person speaks right after it, or over
its end. Whisper (multilingual, so in a two-way stream it recognises the
Spanish echo as Spanish) and Apertium on the shared Whisper server; a
one-way stream and a two-way stream run at the same time. Every sentence
the person said must be recognised and translated exactly once, and the
echo must never be translated (nor spoken, nor recorded).

Without suppression the same room makes the server translate its own
Spanish back into English (``make bench`` measures both ways); here the
guard's parts are also checked on their own, quickly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tests.conftest import running_server, stub_for
from tests.support import fake_speech
from tests.support.calls import config
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech
from tests.support.fake_tts import FakeTextToSpeech
from tests.support.room import RoomRun, Turn, run_room, run_together
from tests.support.speech import synthesize
from tests.support.word_errors import word_error_rate
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.app import TongyeokServer
from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.echo import aec
from tongyeok_server.echo.align import find_delay
from tongyeok_server.echo.guard import EchoGuard
from tongyeok_server.echo.linear import LinearEstimate
from tongyeok_server.echo.words import SpokenWords
from tongyeok_server.recognition.base import Transcript
from tongyeok_server.session import events as ev

SENTENCES = [
    "We would like to discuss the contract today.",
    "The delivery date is next Friday.",
    "Thank you for your time.",
]
# How each sentence's speech comes back, and how the next person starts.
ROOM = [
    dict(gain_db=-6.0, delay_s=1.0, gap_s=0.3),  # the next person speaks right after the speech
    dict(gain_db=0.0, delay_s=2.5, over_s=0.5),  # ... over its end, at full loudness
    dict(gain_db=-6.0, delay_s=3.0),
]
# Whisper base hears these sentences with 1 error in 19 words when there is no echo ("next for ID");
# AEC3 mutes the first ~0.2 s of a person talking over the speech's end (README: echo suppression).
WER_BOUND = 0.15


def _turns() -> list[Turn]:
    speech = synthesize(SENTENCES, pause_s=0.0)
    pcm = np.frombuffer(speech.pcm(), dtype="<i2")
    ends = [0.0, *speech.sentence_end_s]
    return [
        Turn(pcm[int(ends[i] * 16000) : int(ends[i + 1] * 16000)], text, **ROOM[i]) for i, text in enumerate(SENTENCES)
    ]


@pytest.fixture(scope="module")
def rooms(whisper_server: TongyeokServer) -> Iterator[dict[str, RoomRun]]:
    """The two streams, run once at the same time for every test of this module."""
    turns = _turns()

    def room(sources: tuple[str, ...], targets: tuple[str, ...]) -> Callable[[], RoomRun]:
        def run() -> RoomRun:
            channel, stub = stub_for(whisper_server)
            with channel:
                cfg = config(sources=sources, targets=targets).config
                cfg.speech_output.CopyFrom(pb.SpeechOutputConfig(voices=[pb.VoiceSelection(language_code="es")]))
                return run_room(stub, cfg, turns, language="es")

        return run

    yield run_together({"two-way": room(("en-US", "es-ES"), ()), "one-way": room(("en-US",), ("es",))})


@pytest.mark.speech
@pytest.mark.parametrize("mode", ["two-way", "one-way"])
def test_every_sentence_translated_once_and_no_echo_translated(rooms: dict[str, RoomRun], mode: str) -> None:
    run = rooms[mode]
    people = run.people
    said = [(f.text, f.language_code, run.turn_of(f)) for f in people]
    print(f"{mode}: heard {said}; echo {[f.text for f in run.echoes]}; echo at {run.echo_spans_s}")
    assert len(run.echo_spans_s) == len(SENTENCES), f"{mode}: every translation was spoken and came back: {said}"
    # Every final not flagged as echo is a person's sentence: none is the speech heard again.
    assert all(turn is not None for *_, turn in said), f"{mode}: a final made of echo was not flagged: {said}"
    assert all(f.language_code.startswith("en") for f in people), f"{mode}: echo reached the translator: {said}"
    turns = sorted(turn for *_, turn in said if turn is not None)
    assert turns == list(range(len(SENTENCES))), f"{mode}: one final per sentence: {said}"
    completes = run.of_kind("translation_complete")
    assert sorted(c.utterance_id for c in completes) == sorted(f.utterance_id for f in people), "each translated once"
    echo_ids = {f.utterance_id for f in run.echoes}
    spoken = {a.utterance_id for a in run.of_kind("translation_audio")}
    assert not echo_ids & ({c.utterance_id for c in completes} | spoken), "an echo was translated or spoken"
    wer = word_error_rate(" ".join(SENTENCES), " ".join(f.text for f in people))
    assert wer <= WER_BOUND, f"{mode}: WER {wer:.1%}: {said}"


@pytest.mark.speech
def test_the_session_says_echo_suppression_is_on(rooms: dict[str, RoomRun]) -> None:
    for mode, run in rooms.items():
        (started,) = run.of_kind("session_started")
        assert started.effective_config.echo_suppression, mode
        assert started.echo_suppression.name == "webrtc-aec3", mode
        notices = [n for n in run.of_kind("notice") if n.code == pb.NOTICE_CODE_ECHO_HEARD]
        assert len(notices) == 1, f"{mode}: one ECHO_HEARD notice, got {notices}"


# -- the parts, quickly ---------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.events: list[ev.SessionEvent] = []

    def emit(self, event: ev.SessionEvent) -> None:
        self.events.append(event)

    def hold(self):
        return lambda: None


def _tts_like(seconds: float, seed: int) -> np.ndarray:
    """Speech-like noise (bursts of coloured noise), int16 scale."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    envelope = (np.sin(np.arange(n) / 16000 * 2 * np.pi * 3) > -0.2).astype(float)
    result: np.ndarray = (noise * envelope * 8000).astype(np.float32)
    return result


def test_the_delay_is_found_on_the_signal_and_unrelated_speech_matches_nothing() -> None:
    speech = _tts_like(2.0, 1)
    reference = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(16000, np.float32)])
    # The mic hears the speech 1.7 s after it was placed, at half the amplitude.
    mic = np.zeros_like(reference)
    mic[16000 + 27200 :] += 0.5 * speech[: len(mic) - 16000 - 27200]
    end = 16000 + 27200 + 8000
    found = find_delay(mic[end - 4800 : end], reference[max(0, end - 4800 - 64000) : end], 16000)
    assert found is not None and abs(found.samples - 27200) <= 4, found
    other = _tts_like(0.3, 2)
    assert find_delay(other, reference[: 4800 + 40000], 16000) is None


@pytest.mark.skipif(not aec.available(), reason="livekit (the canceller) is a server dependency")
def test_the_guard_cancels_its_speech_and_keeps_a_person_talking_over_it() -> None:
    sink = _Sink()
    guard = EchoGuard(AudioSpec(Encoding.LINEAR16, 16000), sink, ("es",), max_delay_s=4.0)
    speech, person = _tts_like(2.0, 3), _tts_like(1.5, 4)
    mic = np.zeros(6 * 16000, dtype=np.float32)
    echo_at, person_at = 16000 + 24000, 16000 + 24000 + 24000  # the person starts 0.5 s before the speech ends
    mic[echo_at : echo_at + len(speech)] += speech  # as loud as the person
    mic[person_at : person_at + len(person)] += person
    pcm = np.clip(mic, -32768, 32767).astype(np.int16)

    async def stream() -> np.ndarray:
        out = []
        for i in range(0, len(pcm), 1600):
            if i == 16000:  # the speech is sent: it can play from here on
                guard.on_event(ev.Audio(7, "es", 0, speech.astype("<i2").tobytes(), True, "LINEAR16", 16000))
                guard.on_event(ev.Complete(7, "en", "es", "nos gustaría hablar del contrato hoy"))
            out.append(np.frombuffer(await guard.clean(pcm[i : i + 1600].tobytes()), dtype=np.int16))
        return np.asarray(np.concatenate(out), dtype=np.float32)

    out = asyncio.run(stream())

    def db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(x * x) + 1))

    latency = round(guard.latency_s * 16000)
    out = out[latency:]  # the canceller's constant delay
    echo_only = slice(echo_at + 3200, person_at)  # two windows agree on the delay: within 0.2 s
    assert db(mic[echo_only]) - db(out[echo_only]) > 25, "the speech is cancelled"
    talker = slice(person_at + 8000, person_at + len(person))
    assert abs(db(out[talker]) - db(person[8000:])) < 2, "the person talking over its end is kept"
    onset = slice(person_at, person_at + 4800)  # their first 0.3 s, under the echo: AEC3 alone mutes it
    assert abs(db(out[onset]) - db(person[:4800])) < 3, "the person's first words, under the echo, are kept"
    assert guard.stats.delay_ms == 1500
    # A final where the recogniser heard (what is left of) the speech is echo; the person's is not.
    residue = Transcript("mm", "en-US", True, start_offset_s=echo_at / 16000, end_offset_s=(echo_at + 6000) / 16000)
    assert guard.echo_of(residue) == 7
    theirs = Transcript("the delivery date", "en-US", True, person_at / 16000, (person_at + len(person)) / 16000)
    assert guard.echo_of(theirs) == 0
    assert [e.code for e in sink.events if isinstance(e, ev.Notice)] == [ev.NoticeCode.ECHO_HEARD]


def test_words_match_what_was_spoken_in_that_language_within_its_window() -> None:
    words = SpokenWords(max_delay=4 * 16000, keep=60 * 16000)
    words.spoken(3, "es", "La fecha de entrega es el próximo viernes.", 10 * 16000, 12 * 16000)
    inside = (13 * 16000, 15 * 16000)
    assert words.match("la fecha de entrega es el proximo", "es-ES", *inside) == 3  # accents aside
    assert words.match("la fecha de entrega es el próximo viernes", "en-US", *inside) == 0  # another language
    assert words.match("la fecha de entrega es el próximo viernes", "es", 20 * 16000, 21 * 16000) == 0  # too late
    assert words.match("gracias", "es", *inside) == 0  # a word or two is an answer, not an echo
    assert words.match("el viernes no podemos firmar el contrato", "es", *inside) == 0  # a real reply


# -- the cloud engines' path, through the fakes -------------------------------------------------


@pytest.fixture(scope="module")
def cloud_room() -> Iterator[tuple[RoomRun, FakeSpeech, list[str]]]:
    """A one-way stream at real-time pace through fake Google STT, fake OpenAI and fake Google TTS (Ogg Opus).

    The fake recogniser hears words only as runs of identical samples, which
    no canceller leaves intact; the next person therefore speaks once the
    speech and its window are over, and the test checks the signal the fake
    received: the speech's echo cancelled, the people's words untouched.
    """
    # Spanish words: their ids are loud samples (English ids are near-silent ones, which a final's
    # energy could not tell from the echo around them).
    base = fake_speech.SPANISH_BASE
    sentences = [[base, base + 1, base + 2], [base + 3, base + 4, base + 5, base + 6]]
    timing = fake_speech.Timing(lead_in_s=0.0, utterance_gap_s=0.0)
    turns = [
        Turn(
            np.frombuffer(fake_speech.synthesize([ids], 16000, timing), dtype="<i2"),
            "",
            gain_db=g,
            delay_s=d,
            gap_s=1.0,
        )
        for ids, g, d in zip(sentences, (0.0, -6.0), (1.0, 2.5), strict=True)
    ]
    with (
        FakeSpeech(keep_audio=True) as stt,
        FakeTextToSpeech() as tts,
        FakeOpenAI() as openai,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("OPENAI_API_KEY", "sk-test-echo")
        with running_server(
            recognizer="google",
            google_endpoint=stt.address,
            google_insecure=True,
            google_project="test-project",
            translator="openai",
            openai_base_url=openai.base_url,
            synthesizer="google",
            google_tts_endpoint=tts.address,
        ) as server:
            channel, stub = stub_for(server)
            with channel:
                cfg = config(sources=("es-ES",), targets=("en",)).config
                cfg.speech_output.CopyFrom(
                    pb.SpeechOutputConfig(
                        voices=[pb.VoiceSelection(language_code="en")], encoding=pb.SPEECH_ENCODING_OGG_OPUS
                    )
                )
                run = run_room(stub, cfg, turns, language="en")
        yield run, stt, [" ".join(fake_speech.word_for_id(i)[0] for i in ids) for ids in sentences]


@pytest.mark.speech
def test_cloud_engines_the_echo_is_cancelled_before_google_and_every_sentence_translated_once(
    cloud_room: tuple[RoomRun, FakeSpeech, list[str]],
) -> None:
    run, stt, expected = cloud_room
    assert [f.text for f in run.of_kind("final_transcript")] == expected, "the people's words, and nothing else"
    completes = run.of_kind("translation_complete")
    assert sorted(c.utterance_id for c in completes) == sorted(f.utterance_id for f in run.people)
    assert len(run.echo_spans_s) == len(expected), "every translation was spoken and came back"
    (stream,) = stt.streams
    assert stream.audio is not None and run.mic is not None
    received = np.frombuffer(bytes(stream.audio), dtype="<i2").astype(np.float64)

    def db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(x * x) + 1))

    for start_s, end_s in run.echo_spans_s:
        span = slice(int(start_s * 16000) + 1600, int(end_s * 16000))  # after the first 100 ms (the delay is found)
        heard, sent = db(run.mic[span].astype(np.float64)), db(received[span])
        assert heard - sent > 20, f"echo at {start_s:.1f}-{end_s:.1f} s: {heard:.0f} dB in, {sent:.0f} dB to Google"
    notices = [n for n in run.of_kind("notice") if n.code == pb.NOTICE_CODE_ECHO_HEARD]
    assert len(notices) == 1


def test_a_person_the_canceller_mutes_under_the_echo_is_given_back_and_nothing_else() -> None:
    rate, n = 16000, 1600
    linear = LinearEstimate(rate)
    pad = linear.pad
    speech = _tts_like(3.0, 5)
    person = _tts_like(0.1, 6)

    def chunk(i: int) -> tuple[np.ndarray, np.ndarray]:
        """The padded reference of chunk i, and its echo as the microphone hears it (0.7x, 5 samples late)."""
        reference = speech[i * n : (i + 1) * n + 2 * pad].astype(np.float64)
        echo = 0.7 * reference[pad - 5 : pad - 5 + n]
        return reference, echo

    muted = np.zeros(n, dtype=np.int16)  # AEC3's output: all taken down
    for i in range(10):  # echo alone: the estimate learns it
        reference, echo = chunk(i)
        out, given = linear.apply(muted, echo.astype(np.int16), reference)
        assert not given.any() and out is muted
    reference, echo = chunk(10)  # (the speech has no pause in this one)
    talking = echo + person  # a person starts under the echo, and AEC3 mutes them
    out, given = linear.apply(muted, talking.astype(np.int16), reference)
    assert given.all(), "the person is given back"
    assert np.abs(out.astype(np.float64) - person).max() < 40, "as the microphone heard them, less the echo"
    reference, _ = chunk(11)  # the speech is expected, but not heard (a delay guessed wrong): nothing to give
    out, given = linear.apply(muted, np.zeros(n, dtype=np.int16), reference)
    assert not given.any()


@pytest.mark.skipif(not aec.available(), reason="livekit (the canceller) is a server dependency")
def test_the_canceller_delays_everything_alike_so_starting_and_stopping_leave_no_seam() -> None:
    canceller = aec.Canceller(16000)
    latency = canceller.latency
    audio = (np.random.default_rng(7).standard_normal(48000) * 2000).astype(np.int16)
    out: list[np.ndarray] = []
    i, sizes = 0, [1600, 333, 77, 2000, 160, 1]  # chunks of any length
    while i < len(audio):
        chunk = audio[i : i + sizes[len(out) % len(sizes)]]
        playing = 1.0 <= i / 16000 < 2.0  # the canceller runs in the middle second only
        out.append(canceller.process(chunk, np.zeros(len(chunk), np.int16) if playing else None)[0])
        i += len(chunk)
    out.append(canceller.flush()[0])
    heard = np.concatenate(out)[latency:]
    assert len(heard) == len(audio), "as many samples back as taken, once the held-back ones are flushed"
    bypassed = np.r_[0:15000, 33000:48000]  # away from where it starts and stops
    assert np.array_equal(heard[bypassed], audio[bypassed]), "bypassed audio is the audio, delayed"
    running = slice(17000, 31000)  # with nothing playing, the canceller leaves a person as they were
    assert np.corrcoef(heard[running].astype(float), audio[running].astype(float))[0, 1] > 0.9
