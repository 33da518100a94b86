"""The Google Speech-to-Text v2 recogniser, over the wire against the fake server.

The real ``SpeechClient`` (its gRPC transport) talks to ``tests.support.fake_speech``
on 127.0.0.1. The fake recognises words from the audio content (see its
docstring), so resent audio yields the same words and a test can prove that
no word is lost or repeated across restarts and retries.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest

from tests.support.fake_speech import (
    DURATION_MESSAGE,
    KOREAN_BASE,
    FakeSpeech,
    StreamRecord,
    synthesize,
    utterance_ends_s,
    word_for_id,
)
from tests.support.loop_thread import LoopThread, loop_thread
from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    RecognizerNotice,
    RecognizerNoticeKind,
    RecognizerStream,
    SpeechActivity,
    Transcript,
)
from tongyeok_server.recognition.google_call import StreamPolicy, audio_request
from tongyeok_server.recognition.google_engine import GoogleRecognizer
from tongyeok_server.recognition.google_stream import GoogleRecognizerStream
from tongyeok_server.settings import (
    GoogleSettings,
    RecognitionSettings,
    Settings,
)

RATE = 16000
PCM16 = AudioSpec(Encoding.LINEAR16, RATE, 1)
CHUNK = 3200  # 100 ms, like a typical caller


class Collector:
    """A listener that records events and lets a test wait for the end."""

    def __init__(self) -> None:
        self.events: list[RecognitionEvent] = []
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, event: RecognitionEvent) -> None:
        with self._lock:
            assert not self.ended.is_set(), f"event after RecognitionEnded: {event}"
            self.events.append(event)
        if isinstance(event, RecognitionEnded):
            self.ended.set()

    def of(self, kind: type) -> list[Any]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

    @property
    def finals(self) -> list[Transcript]:
        return [t for t in self.of(Transcript) if t.is_final]

    def notices(self, kind: RecognizerNoticeKind) -> list[RecognizerNotice]:
        return [n for n in self.of(RecognizerNotice) if n.kind is kind]

    def end(self, timeout: float = 20) -> RecognitionEnded:
        assert self.ended.wait(timeout), "no RecognitionEnded"
        (ended,) = self.of(RecognitionEnded)
        assert isinstance(ended, RecognitionEnded)
        return ended


@pytest.fixture
def fake() -> Iterator[FakeSpeech]:
    with FakeSpeech() as server:
        yield server


_loop: list[LoopThread] = []


@pytest.fixture(autouse=True)
def _server_loop() -> Iterator[None]:
    """The engine's streams live on an event loop, as on the server's: one per test, on a thread of its own."""
    with loop_thread() as thread:
        _loop.append(thread)
        yield
        _loop.clear()


def open_stream(recognizer: GoogleRecognizer, cfg: RecognitionConfig, listener: Any) -> RecognizerStream:
    """``recognizer.open_stream`` on the test's loop, as the server calls it on its own."""
    return _loop[0].call(recognizer.open_stream, cfg, listener)


def _groups(settings: Settings) -> tuple[RecognitionSettings, GoogleSettings]:
    return settings.recognition, settings.google


def recognizer_for(fake: FakeSpeech, **policy: float) -> GoogleRecognizer:
    settings = Settings.of(
        recognizer="google", google_endpoint=fake.address, google_insecure=True, google_project="test-project"
    )
    return GoogleRecognizer(settings.recognition, settings.google, StreamPolicy(**policy) if policy else None)  # type: ignore[arg-type]


def config(languages: Sequence[str] = ("en-US",), audio: AudioSpec = PCM16, **kw: Any) -> RecognitionConfig:
    return RecognitionConfig(audio=audio, language_codes=tuple(languages), **kw)


def feed(stream: object, audio: bytes, chunk: int = CHUNK) -> None:
    assert isinstance(stream, GoogleRecognizerStream)
    for i in range(0, len(audio), chunk):
        stream.write(audio[i : i + chunk])


def script(n_utterances: int, words_per: int = 5, first_id: int = 1) -> list[list[int]]:
    """Unique word ids, so order and multiplicity are checkable."""
    ids = iter(range(first_id, first_id + n_utterances * words_per))
    return [[next(ids) for _ in range(words_per)] for _ in range(n_utterances)]


def expected_words(utterances: Sequence[Sequence[int]]) -> list[str]:
    return [word_for_id(w)[0] for u in utterances for w in u]


def heard_words(finals: Sequence[Transcript]) -> list[str]:
    return [w for t in finals for w in t.text.split()]


def client_threads(exclude: set[threading.Thread]) -> set[threading.Thread]:
    """Live threads not in ``exclude`` and not the in-process fake server's."""
    return {t for t in threading.enumerate() if t not in exclude and not t.name.startswith("fake-speech")}


def run_script(
    recognizer: GoogleRecognizer,
    utterances: list[list[int]],
    cfg: RecognitionConfig | None = None,
    chunk: int = CHUNK,
    audio: bytes | None = None,
) -> Collector:
    events = Collector()
    stream = open_stream(recognizer, cfg or config(), events)
    feed(stream, synthesize(utterances, RATE) if audio is None else audio, chunk)
    stream.finish()
    ended = events.end(60)
    assert ended.error is None, ended.error
    return events


def assert_exactly_once(events: Collector, utterances: list[list[int]]) -> None:
    finals = events.finals
    assert heard_words(finals) == expected_words(utterances)
    ends = [f.end_offset_s for f in finals]
    assert ends == sorted(ends), "final offsets must grow"
    assert all(f.start_offset_s <= f.end_offset_s for f in finals)


# ---------------------------------------------------------------------------------------------- tests


def test_twelve_minute_stream_restarts_and_loses_no_word(fake: FakeSpeech) -> None:
    """12 min of audio through several Google streams: every word once, in order, offsets from our start."""
    utterances = script(255, words_per=6)  # 6 words + pauses = ~2.9 s per utterance
    timing_ends = utterance_ends_s(utterances)
    assert timing_ends[-1][1] > 12 * 60
    recognizer = recognizer_for(fake)
    t0 = time.monotonic()
    events = run_script(recognizer, utterances)
    elapsed = time.monotonic() - t0

    assert_exactly_once(events, utterances)
    finals = events.finals
    # Offsets are the caller's: each final ends between its last word and the next utterance.
    for final, (word_end, next_start) in zip(finals, timing_ends, strict=True):
        assert word_end - 0.01 <= final.end_offset_s <= next_start + 0.01, (final, word_end)
    restarts = events.notices(RecognizerNoticeKind.RESTARTED)
    assert len(restarts) >= 2
    assert len(fake.streams) == len(restarts) + 1
    assert all(s.audio_s < 305 for s in fake.streams)
    assert all(s.status is not grpc.StatusCode.OUT_OF_RANGE for s in fake.streams)
    print(
        f"\n12-min stream: {len(finals)} finals, {len(heard_words(finals))} words, "
        f"{len(restarts)} restarts, {len(fake.streams)} Google streams, {elapsed:.1f} s wall"
    )


def test_out_of_range_from_google_resends_after_last_final(fake: FakeSpeech) -> None:
    """When Google cuts a stream mid-utterance (its duration cap), unfinalised audio is resent."""
    fake.max_stream_audio_s = 40.0  # short cap so the test stays fast
    utterances = script(60, words_per=7)  # ~3.4 s per utterance: the cap falls mid-utterance
    recognizer = recognizer_for(fake, soft_limit_s=1000, hard_limit_s=1000)
    events = run_script(recognizer, utterances)

    assert_exactly_once(events, utterances)
    cut = [s for s in fake.streams if s.status is grpc.StatusCode.OUT_OF_RANGE]
    assert len(cut) >= 4
    assert len(events.notices(RecognizerNoticeKind.RESTARTED)) == len(cut)
    # The fake heard some words twice (resent audio), the caller none.
    assert sum(len(t.split()) for s in fake.streams for t in s.final_texts) == len(expected_words(utterances))


def test_googles_status_survives_a_failed_write(fake: FakeSpeech) -> None:
    """Google ends a call while audio is still being written and its last responses are unread.

    grpc.aio fails the write and reports its own INTERNAL (grpc/grpc#36066);
    Google's status comes only after those responses are read. The stream
    must still see OUT_OF_RANGE and renew the stream at once, not tell the
    caller that Google failed and back off (the flake of the test above:
    3 renewals and a retry where 4 Google cut-offs were).
    """
    stalled = threading.Event()

    def stall_engine_loop() -> None:
        # Google's last responses and its status arrive while the engine's loop is busy, as on a busy
        # server: then the engine has 200 responses to read and writes audio into a call that has ended.
        stalled.set()
        assert fake.streams[0].done.wait(10)
        time.sleep(0.2)  # the status crosses loopback to the client's gRPC Core

    def hold_the_client_back() -> None:
        _loop[0].loop.call_soon_threadsafe(stall_engine_loop)
        assert stalled.wait(10)

    fake.fail_once(
        grpc.StatusCode.OUT_OF_RANGE,
        after_audio_s=3.0,
        message=DURATION_MESSAGE,
        responses_first=200,
        before_status=hold_the_client_back,
    )
    utterances = script(6)  # ~15 s: audio still to write when the call ends
    events = run_script(recognizer_for(fake), utterances)

    assert_exactly_once(events, utterances)
    assert fake.streams[0].status is grpc.StatusCode.OUT_OF_RANGE
    assert [n.kind for n in events.of(RecognizerNotice)] == [RecognizerNoticeKind.RESTARTED]


def test_two_way_korean_english_finals_carry_language(fake: FakeSpeech) -> None:
    ko = [KOREAN_BASE + i for i in range(4)]
    en = [1, 2, 3, 4, 5]
    ko2 = [KOREAN_BASE + 4 + i for i in range(3)]
    utterances = [ko, en, ko2]
    events = run_script(recognizer_for(fake), utterances, config(("ko-KR", "en-US")))

    finals = events.finals
    assert [f.language_code for f in finals] == ["ko-KR", "en-US", "ko-KR"]
    assert finals[0].text == " ".join(word_for_id(w)[0] for w in ko)
    assert finals[1].text == "good morning thank you for"
    sent = fake.streams[0].config
    assert sent is not None
    assert list(sent.config.language_codes) == ["ko-KR", "en-US"]
    # Interims come too, labelled the same way.
    assert {t.language_code for t in events.of(Transcript) if not t.is_final} == {"ko-KR", "en-US"}


def test_interims_carry_googles_stable_results_as_stable_text(fake: FakeSpeech) -> None:
    """Two results per response (0.9 stable, 0.01 newest, sometimes misheard): stable_text is the stable one."""
    utterances = script(3, words_per=6)
    events = run_script(recognizer_for(fake), utterances, config(interim_results=True))
    interims = [t for t in events.of(Transcript) if not t.is_final]
    finals = events.finals
    assert len(finals) == 3
    revised = 0
    for final, words in zip(finals, utterances, strict=True):
        mine = [t for t in interims if final.start_offset_s <= t.end_offset_s <= final.end_offset_s]
        assert [len(t.text.split()) for t in mine] == list(range(1, len(words) + 1))  # one per word, growing
        spoken = [word_for_id(w)[0] for w in words]
        for n, interim in enumerate(mine, start=1):
            assert interim.text.startswith(interim.stable_text)
            assert interim.stable_text == " ".join(spoken[: n - 1])  # every word but the newest
            assert interim.stability == pytest.approx(0.01)  # the least stable of its results
            revised += interim.text.split()[-1] != spoken[n - 1]
        assert [t.stable_text for t in mine] == sorted((t.stable_text for t in mine), key=len)
    assert revised, "the fake should mishear some newest words (Google revises them)"


def test_config_mapping(fake: FakeSpeech) -> None:
    recognizer = recognizer_for(fake)
    cfg = config(("en-US",), AudioSpec(Encoding.MULAW, 8000, 2), interim_results=False, voice_activity_events=True)
    events = Collector()
    stream = open_stream(recognizer, cfg, events)
    stream.write(b"\xff" * 1600)
    stream.finish()
    assert events.end().error is None
    (record,) = fake.streams
    assert record.recognizer == "projects/test-project/locations/global/recognizers/_"
    assert record.config is not None
    decoding = record.config.config.explicit_decoding_config
    assert decoding.encoding.name == "MULAW"
    assert (decoding.sample_rate_hertz, decoding.audio_channel_count) == (8000, 2)
    assert record.config.config.model == "long"
    assert record.config.streaming_features.interim_results is False
    assert record.config.streaming_features.enable_voice_activity_events is True
    assert record.audio_bytes == 1600


def test_oversized_chunks_are_split_into_whole_frames(fake: FakeSpeech) -> None:
    utterances = script(4)
    events = run_script(recognizer_for(fake), utterances, chunk=100_000)  # ~3 s per write
    assert_exactly_once(events, utterances)
    (record,) = fake.streams
    assert max(record.request_sizes) <= 15360
    assert all(size % 2 == 0 for size in record.request_sizes)


def test_transient_unavailable_is_retried(fake: FakeSpeech) -> None:
    fake.fail_once(grpc.StatusCode.UNAVAILABLE, after_audio_s=7.3)
    utterances = script(8)
    events = run_script(recognizer_for(fake, backoff_initial_s=0.05), utterances)
    assert_exactly_once(events, utterances)
    (retrying,) = events.notices(RecognizerNoticeKind.RETRYING)
    assert "UNAVAILABLE" in retrying.message
    assert [s.status for s in fake.streams] == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]


def test_retries_are_bounded(fake: FakeSpeech) -> None:
    fake.fail_once(grpc.StatusCode.UNAVAILABLE, times=100, message="backend down")
    events = Collector()
    stream = open_stream(recognizer_for(fake, backoff_initial_s=0.01, max_retries=3), config(), events)
    stream.write(synthesize(script(1), RATE))
    ended = events.end()
    assert ended.error is not None
    assert ended.error.code is grpc.StatusCode.UNAVAILABLE
    assert "after 3 retries" in ended.error.message
    # Google's own words are for the server's log, not for the caller.
    assert "backend down" not in ended.error.message
    assert "backend down" in ended.error.detail
    assert len(events.notices(RecognizerNoticeKind.RETRYING)) == 3
    assert len(fake.streams) == 4


@pytest.mark.parametrize("code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED])
def test_rejected_credential_is_reported_clearly(fake: FakeSpeech, code: grpc.StatusCode) -> None:
    fake.refuse_all(code, "Permission 'speech.recognizers.recognize' denied on resource (or it may not exist).")
    events = Collector()
    stream = open_stream(recognizer_for(fake), config(), events)
    stream.write(synthesize(script(1), RATE))
    ended = events.end()
    assert isinstance(ended.error, ServiceError)
    assert ended.error.code is code
    assert code.name in ended.error.message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in ended.error.message
    assert "speech.recognizers.recognize' denied" not in ended.error.message
    assert "speech.recognizers.recognize' denied" in ended.error.detail
    assert len(fake.streams) == 1  # not retried
    assert not events.notices(RecognizerNoticeKind.RETRYING)


def test_missing_credentials_fail_the_stream_not_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account", "private_key": "SECRET-KEY-MATERIAL"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    recognizer = GoogleRecognizer(*_groups(Settings.of(recognizer="google", google_project="p")))
    with pytest.raises(ServiceError) as info:
        open_stream(recognizer, config(), Collector())
    assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "GOOGLE_APPLICATION_CREDENTIALS" in info.value.message
    assert "gcloud auth application-default login" in info.value.message
    assert "SECRET" not in info.value.message

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ServiceError) as info:
        open_stream(GoogleRecognizer(*_groups(Settings.of(recognizer="google"))), config(), Collector())
    assert info.value.code is grpc.StatusCode.UNAUTHENTICATED


def test_regional_endpoint_and_recognizer_path(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.of(
        recognizer="google", google_location="eu", google_project="acme", google_recognizer="r1", google_model="chirp_2"
    )
    recognizer = GoogleRecognizer.__new__(GoogleRecognizer)
    monkeypatch.setattr(GoogleRecognizer, "_load_credentials", lambda self, credentials: None)
    GoogleRecognizer.__init__(recognizer, settings.recognition, settings.google)
    assert recognizer._endpoint == "eu-speech.googleapis.com"
    request = recognizer.first_request(config(("ko-KR", "en-US", "ja-JP", "fr-FR")))
    assert request.recognizer == "projects/acme/locations/eu/recognizers/r1"
    assert request.streaming_config.config.model == "chirp_2"
    assert list(request.streaming_config.config.language_codes) == ["ko-KR", "en-US", "ja-JP"]
    assert recognizer.resolve_language("ko") == "ko-KR"
    assert recognizer.resolve_language("en-gb") == "en-GB"
    assert recognizer.resolve_language("x!") is None
    assert recognizer.max_source_languages == 3


def test_cancel_closes_the_google_stream_and_threads(fake: FakeSpeech) -> None:
    recognizer = recognizer_for(fake)
    before = set(threading.enumerate())
    warm_up = open_stream(recognizer, config(), Collector())
    warm_up.cancel()
    assert isinstance(warm_up, GoogleRecognizerStream) and warm_up.join(2)
    # The engine runs on the loop it is opened on (the server's): no thread of its own.
    assert not [t.name for t in client_threads(before) if t.name.startswith("google")]
    baseline = set(threading.enumerate())
    events = Collector()
    stream = open_stream(recognizer, config(), events)
    assert isinstance(stream, GoogleRecognizerStream)
    audio = synthesize(script(3), RATE)
    feed(stream, audio[: len(audio) // 2])
    deadline = time.monotonic() + 5
    while not (fake.streams and fake.streams[0].audio_bytes) and time.monotonic() < deadline:
        time.sleep(0.01)
    # A stream is tasks on the engine's loop: no thread of its own, none of grpc's.
    started = client_threads(baseline)
    assert not started, sorted(t.name for t in started)
    n_events = len(events.events)
    t0 = time.monotonic()
    stream.cancel()
    record: StreamRecord = fake.streams[0]
    assert record.done.wait(2), "the fake did not see the call end"
    observed = time.monotonic() - t0
    assert record.cancelled
    assert stream.join(2)
    stream.write(audio[len(audio) // 2 :])  # a late write is ignored
    time.sleep(0.1)
    assert len(events.events) == n_events, "no event after cancel()"
    assert len(fake.streams) == 1
    assert not client_threads(baseline)
    _loop[0].call(recognizer.close)  # on the loop, as the server closes it
    print(f"\nper stream: no thread; cancel seen by the fake after {observed * 1000:.1f} ms")


def test_open_stream_off_the_loop_is_refused(fake: FakeSpeech) -> None:
    """No private loop thread: an engine opened outside an event loop says where it must be opened."""
    with pytest.raises(RuntimeError, match="event loop"):
        recognizer_for(fake).open_stream(config(), Collector())


def test_cancel_before_any_audio(fake: FakeSpeech) -> None:
    events = Collector()
    stream = open_stream(recognizer_for(fake), config(), events)
    stream.cancel()
    assert isinstance(stream, GoogleRecognizerStream) and stream.join(2)
    assert not events.events
    assert not fake.streams


@pytest.mark.parametrize("encoding", [Encoding.MULAW, Encoding.ALAW])
def test_telephone_audio_is_heard_under_its_own_law_only(fake: FakeSpeech, encoding: Encoding) -> None:
    """G.711 words reach the fake whole; the fake decodes by the config, so the other law hears other words."""
    utterances = script(2, words_per=4)  # word ids 1..8: G.711 carries 1..127
    audio = synthesize(utterances, 8000, encoding=encoding.name)
    events = run_script(recognizer_for(fake), utterances, config(audio=AudioSpec(encoding, 8000, 1)), audio=audio)
    assert heard_words(events.finals) == expected_words(utterances)
    other = Encoding.ALAW if encoding is Encoding.MULAW else Encoding.MULAW
    mislabelled = run_script(recognizer_for(fake), utterances, config(audio=AudioSpec(other, 8000, 1)), audio=audio)
    assert heard_words(mislabelled.finals) != expected_words(utterances)


def test_audio_timeout_is_on_by_default_and_ends_an_idle_call(fake: FakeSpeech) -> None:
    """Google ends a call that gets no audio for ~10 s (the engine half-closes after 2 s of no audio, first)."""
    assert fake.audio_timeout_s == 10.0  # on, as Google's
    fake.audio_timeout_s = 0.6
    recognizer = recognizer_for(fake, idle_close_s=5.0)  # an engine that waited too long would be cut
    events = Collector()
    stream = open_stream(recognizer, config(), events)
    feed(stream, synthesize(script(1), RATE)[:3200])
    ended = events.end(10)
    assert ended.error is not None, "a call idle past the audio timeout is ended by the fake"
    assert any(s.status is grpc.StatusCode.OUT_OF_RANGE for s in fake.streams)


def test_caller_pause_longer_than_audio_timeout(fake: FakeSpeech) -> None:
    fake.audio_timeout_s = 0.6
    recognizer = recognizer_for(fake, idle_close_s=0.2)
    first, second = script(3), script(3, first_id=100)
    events = Collector()
    stream = open_stream(recognizer, config(), events)
    feed(stream, synthesize(first, RATE))
    time.sleep(1.5)  # caller pauses for longer than Google's audio timeout
    feed(stream, synthesize(second, RATE))
    stream.finish()
    assert events.end().error is None
    assert heard_words(events.finals) == expected_words(first + second)
    assert all(s.status is grpc.StatusCode.OK for s in fake.streams), [s.status for s in fake.streams]
    assert len(fake.streams) == 2
    ends = [f.end_offset_s for f in events.finals]
    assert ends == sorted(ends)
    # The pause is not audio: offsets count the caller's audio only.
    assert ends[-1] == pytest.approx(2 * utterance_ends_s(first)[-1][1] - 0.8 + 0.5, abs=0.05)


def test_a_caller_back_from_a_break_is_away_until_its_audio_goes_on(fake: FakeSpeech) -> None:
    """The wait for a resumed caller's audio is no pause: the sentence it resends into is not finalised in halves."""
    recognizer = recognizer_for(fake, idle_close_s=0.2)
    utterance = script(1, words_per=4)
    audio = synthesize(utterance, RATE)
    cut = round(0.87 * RATE) * 2  # between the second and the third word
    events = Collector()
    stream = open_stream(recognizer, config(), events)
    feed(stream, audio[:cut])
    stream.caller_away(True)  # the connection broke
    stream.caller_away(False)  # resumed at once, before the idle rule would have closed the call
    time.sleep(1.0)  # the resent audio is slow to come (a relay, a busy machine): longer than idle_close_s
    feed(stream, audio[cut:])
    stream.finish()
    assert events.end().error is None
    assert [f.text for f in events.finals] == [" ".join(expected_words(utterance))]


def test_voice_activity_events(fake: FakeSpeech) -> None:
    utterances = script(2)
    events = run_script(recognizer_for(fake), utterances, config(voice_activity_events=True))
    activity = events.of(SpeechActivity)
    assert [a.began for a in activity] == [True, False, True, False]
    assert activity[0].offset_s == pytest.approx(0.2, abs=0.01)
    offsets = [a.offset_s for a in activity]
    assert offsets == sorted(offsets)


def test_finish_without_audio_ends_at_once(fake: FakeSpeech) -> None:
    events = Collector()
    stream = open_stream(recognizer_for(fake), config(), events)
    stream.finish()
    assert events.end(2).error is None
    assert not fake.streams


def test_fake_enforces_google_limits(fake: FakeSpeech) -> None:
    """The fake refuses what Google refuses, so the tests above can fail."""
    from google.cloud.speech_v2 import SpeechClient
    from google.cloud.speech_v2.services.speech.transports import SpeechGrpcTransport
    from google.cloud.speech_v2.types import cloud_speech

    client = SpeechClient(transport=SpeechGrpcTransport(channel=grpc.insecure_channel(fake.address)))
    rpc: Any = client.transport.streaming_recognize
    recognizer = recognizer_for(fake)
    first = recognizer.first_request(config())

    def status_of(requests: list[cloud_speech.StreamingRecognizeRequest]) -> str:
        try:
            list(rpc(iter(requests)))
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return "OK"

    audio = cloud_speech.StreamingRecognizeRequest(audio=b"\0" * 3200)
    assert status_of([audio]).startswith("INVALID_ARGUMENT")
    assert status_of([first, cloud_speech.StreamingRecognizeRequest(audio=b"\0" * 15362)]).startswith(
        "INVALID_ARGUMENT"
    )
    assert status_of([first, audio]) == "OK"
    fake.max_stream_audio_s = 0.15
    assert status_of([first, audio, audio]) == "OUT_OF_RANGE: Exceeded maximum allowed stream duration of 305 seconds."
    fake.max_stream_audio_s = 305
    fake.audio_timeout_s = 0.2

    def slow() -> Iterator[cloud_speech.StreamingRecognizeRequest]:
        yield first
        time.sleep(0.5)
        yield audio

    try:
        list(rpc(slow()))
        raise AssertionError("no audio timeout")
    except grpc.RpcError as exc:
        assert exc.code() is grpc.StatusCode.OUT_OF_RANGE
        assert "Audio Timeout" in (exc.details() or "")


def test_fake_runs_as_its_own_process() -> None:
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_speech", "--port", "0", "--latency-ms", "1"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        address = line.split()[-1]
        holder = FakeSpeech()
        holder.port = int(address.rsplit(":", 1)[1])
        events = run_script(recognizer_for(holder), script(2))
        assert heard_words(events.finals) == expected_words(script(2))
    finally:
        proc.terminate()
        proc.wait(5)


def test_memory_bounded_by_cap(fake: FakeSpeech) -> None:
    """Unfinalised audio is bounded: a 70-second monologue without a final is cut, not buffered."""
    words = [[i + 1 for i in range(200)]]  # 70 s without a final
    cap = 512 * 1024  # 16 s of audio
    events = Collector()
    recognizer = recognizer_for(fake, max_unfinalised_bytes=cap, idle_close_s=0.2)
    stream = open_stream(recognizer, config(), events)
    assert isinstance(stream, GoogleRecognizerStream)
    peak = 0
    audio = synthesize(words, RATE)
    for i in range(0, len(audio), CHUNK):
        stream.write(audio[i : i + CHUNK])
        peak = max(peak, len(stream._audio))
    stream.finish()
    assert events.end().error is None
    assert peak <= cap + CHUNK
    assert len(fake.streams) >= 4  # forced cuts
    # A forced cut can split a word in two (Google would mishear it too); none is lost.
    heard = heard_words(events.finals)
    assert [w for i, w in enumerate(heard) if i == 0 or w != heard[i - 1]] == expected_words(words)


class RawRecorder:
    """A StreamingRecognize server that keeps each call's metadata and raw request bytes, and answers nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], list[bytes]]] = []

    def handle(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.calls.append((metadata, list(requests)))
        return iter(())


def test_wire_is_the_real_clients() -> None:
    """Method, metadata and request bytes are those of ``SpeechAsyncClient.streaming_recognize``.

    The engine calls the channel with raw protobuf instead of the transport's
    proto-plus callable; Google must not see the difference.
    """
    import asyncio
    from collections.abc import AsyncIterator
    from concurrent.futures import ThreadPoolExecutor

    import grpc.aio
    from google.cloud.speech_v2 import SpeechAsyncClient
    from google.cloud.speech_v2.services.speech.transports import SpeechGrpcAsyncIOTransport
    from google.cloud.speech_v2.types import cloud_speech

    recorder = RawRecorder()
    server = grpc.server(ThreadPoolExecutor(2))
    handler = grpc.stream_stream_rpc_method_handler(recorder.handle)  # no (de)serialisers: bytes
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("google.cloud.speech.v2.Speech", {"StreamingRecognize": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    holder = FakeSpeech()
    holder.port = port
    recognizer = recognizer_for(holder)
    cfg = config(("ko-KR", "en-US"), voice_activity_events=True)
    first = recognizer.first_request(cfg)
    chunks = [bytes([i + 1]) * CHUNK for i in range(3)]
    try:
        # The real client, with the same requests.
        async def real_client() -> None:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            client = SpeechAsyncClient(transport=SpeechGrpcAsyncIOTransport(channel=channel))

            async def requests() -> AsyncIterator[cloud_speech.StreamingRecognizeRequest]:
                yield first
                for chunk in chunks:
                    yield cloud_speech.StreamingRecognizeRequest(audio=chunk)

            async for _ in await client.streaming_recognize(requests=requests()):
                pass
            await channel.close(None)

        asyncio.run(real_client())
        # The engine.
        events = Collector()
        stream = open_stream(recognizer, cfg, events)
        assert isinstance(stream, GoogleRecognizerStream)
        for chunk in chunks:
            stream.write(chunk)
        stream.finish()
        assert events.end().error is None
        recognizer.close()
    finally:
        server.stop(None)

    (real_metadata, real_requests), (our_metadata, our_requests) = recorder.calls
    assert "x-goog-api-client" in real_metadata
    print(f"\nmetadata: {our_metadata}, requests: {[len(r) for r in our_requests]}")
    assert our_metadata == real_metadata
    assert our_requests[0] == real_requests[0]
    # The stream may pack chunks that queued up into one request; each is encoded as protobuf would.
    audio = [cloud_speech.StreamingRecognizeRequest.deserialize(r).audio for r in our_requests[1:]]
    assert our_requests[1:] == [
        cloud_speech.StreamingRecognizeRequest.serialize(cloud_speech.StreamingRecognizeRequest(audio=a)) for a in audio
    ]
    assert b"".join(audio) == b"".join(chunks)
    assert real_requests[1:] == [audio_request(chunk) for chunk in chunks]  # and so does the real client
