"""Client library and audio helpers against an in-process fake Interpreter server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
import soundfile
from google.protobuf import duration_pb2

from tongyeok_client import (
    FinalTranscript,
    InterimTranscript,
    InterpreterClient,
    Notice,
    SessionStarted,
    TongyeokError,
    TranslationComplete,
    TranslationReset,
    TranslationToken,
    VoiceActivity,
    config,
    open_audio,
    paced,
    read_audio_file,
)
from tongyeok_client.audio import open_raw
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

# ---------------------------------------------------------------------------
# A tiny scripted fake server (also used by test_cli.py)


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def scripted_events() -> list[pb.InterpretResponse]:
    """A plausible session: interim, final, streamed translation, a notice."""
    return [
        pb.InterpretResponse(
            session_started=pb.SessionStarted(
                session_id="s-1",
                recognizer=pb.EngineInfo(name="fake-asr"),
                translator=pb.EngineInfo(name="fake-mt", detail="v0"),
                ignored_options=["translation_options.style: fake translates literally"],
            )
        ),
        pb.InterpretResponse(
            interim_transcript=pb.InterimTranscript(
                utterance_id=1,
                text="hello",
                language_code="en-US",
                stability=0.5,
                audio_start_offset=dur(0.25),
                audio_end_offset=dur(0.75),
            )
        ),
        pb.InterpretResponse(
            final_transcript=pb.FinalTranscript(
                utterance_id=1,
                text="hello world",
                language_code="en-US",
                confidence=0.9,
                audio_start_offset=dur(0.25),
                audio_end_offset=dur(1.5),
                target_language_codes=["es"],
            )
        ),
        pb.InterpretResponse(
            translation_token=pb.TranslationToken(
                utterance_id=1, source_language_code="en-US", target_language_code="es", text="Hola"
            )
        ),
        pb.InterpretResponse(
            translation_reset=pb.TranslationReset(utterance_id=1, target_language_code="es", reason="retry")
        ),
        pb.InterpretResponse(
            translation_token=pb.TranslationToken(
                utterance_id=1, source_language_code="en-US", target_language_code="es", text="Hola"
            )
        ),
        pb.InterpretResponse(
            translation_token=pb.TranslationToken(
                utterance_id=1, source_language_code="en-US", target_language_code="es", text=" mundo"
            )
        ),
        pb.InterpretResponse(
            translation_complete=pb.TranslationComplete(
                utterance_id=1, source_language_code="en-US", target_language_code="es", text="Hola mundo"
            )
        ),
        pb.InterpretResponse(
            voice_activity=pb.VoiceActivity(type=pb.VOICE_ACTIVITY_TYPE_SPEECH_END, audio_offset=dur(1.5))
        ),
        pb.InterpretResponse(notice=pb.Notice(code=pb.NOTICE_CODE_RECOGNITION_BEHIND, message="results will be late")),
    ]


@dataclass
class FakeServicer(pb_grpc.InterpreterServicer):
    """Records what it receives and replays scripted events, or aborts with a status."""

    events: list[pb.InterpretResponse] = field(default_factory=scripted_events)
    abort: tuple[grpc.StatusCode, str] | None = None
    # Send events only after the request stream ends (like a real server finishing up).
    reply_after_input: bool = True
    # Block after the first event until the caller goes away (for cancellation tests).
    hang: bool = False
    requests: list[pb.InterpretRequest] = field(default_factory=list)
    metadata: list[tuple[str, str]] = field(default_factory=list)
    translate_requests: list[pb.TranslateTextRequest] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def Interpret(self, request_iterator, context):
        self.metadata = [(m.key, m.value) for m in context.invocation_metadata()]
        context.add_callback(self.cancelled.set)
        try:
            if self.abort is not None:
                first = next(request_iterator, None)
                if first is not None:
                    self.requests.append(first)
                context.abort(*self.abort)
            if self.hang:
                yield self.events[0]
                for req in request_iterator:
                    self.requests.append(req)
                return
            if self.reply_after_input:
                self.requests.extend(request_iterator)
            yield from self.events
        finally:
            self.done.set()

    def TranslateText(self, request, context):
        self.translate_requests.append(request)
        if self.abort is not None:
            context.abort(*self.abort)
        for lang in request.target_language_codes:
            yield pb.TranslateTextResponse(
                translation_token=pb.TranslationToken(
                    source_language_code=request.source_language_code, target_language_code=lang, text="Hola"
                )
            )
            yield pb.TranslateTextResponse(
                translation_complete=pb.TranslationComplete(
                    source_language_code=request.source_language_code, target_language_code=lang, text=f"Hola [{lang}]"
                )
            )

    def ListLanguages(self, request, context):
        if self.abort is not None:
            context.abort(*self.abort)
        return pb.ListLanguagesResponse(
            recognizer=pb.EngineInfo(name="fake-asr"),
            translator=pb.EngineInfo(name="fake-mt"),
            recognition_language_codes=["en-US"],
            translation_pairs=[
                pb.LanguagePair(source_language_code="en", target_language_code="es"),
                pb.LanguagePair(source_language_code="en", target_language_code="ca"),
            ],
            max_source_languages=2,
        )


@contextmanager
def serve(servicer: FakeServicer) -> Iterator[str]:
    """Run ``servicer`` on 127.0.0.1 on a free port; yield its target."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_InterpreterServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture
def fake() -> Iterator[tuple[FakeServicer, str]]:
    servicer = FakeServicer()
    with serve(servicer) as target:
        yield servicer, target


# ---------------------------------------------------------------------------
# config()


def test_config_builder_maps_plain_python_arguments():
    cfg = config(
        source=["en-US", "ko-KR"],
        target="es",
        encoding="ulaw",
        sample_rate_hertz=8000,
        channel_count=2,
        interim=False,
        style="Neutral",
        glossary={"Q3": "tercer trimestre", "Tongyeok": ""},
        context_sentences=3,
        voice_activity=True,
    )
    assert cfg.audio_format.encoding == pb.AUDIO_ENCODING_MULAW
    assert cfg.audio_format.sample_rate_hertz == 8000
    assert cfg.audio_format.channel_count == 2
    assert list(cfg.source_language_codes) == ["en-US", "ko-KR"]
    assert list(cfg.target_language_codes) == ["es"]
    assert cfg.interim_results is False
    assert cfg.voice_activity_events is True
    opts = cfg.translation_options
    assert opts.style == pb.TRANSLATION_STYLE_NEUTRAL
    assert opts.context_sentences == 3
    assert [(g.source_term, g.target_term) for g in opts.glossary] == [("Q3", "tercer trimestre"), ("Tongyeok", "")]


def test_config_glossary_forms_and_defaults():
    cfg = config(source="en-US", target=["es", "fr"], glossary=["Acme", ("CEO", "director general", "es")])
    assert cfg.audio_format.encoding == pb.AUDIO_ENCODING_LINEAR16
    assert cfg.audio_format.sample_rate_hertz == 16000
    assert cfg.interim_results is True
    assert cfg.translation_options.style == pb.TRANSLATION_STYLE_UNSPECIFIED  # server default
    g = cfg.translation_options.glossary
    assert (g[0].source_term, g[0].target_term) == ("Acme", "")
    assert (g[1].source_term, g[1].target_term, g[1].target_language_code) == ("CEO", "director general", "es")


@pytest.mark.parametrize("kwargs", [{"encoding": "mp3"}, {"style": "poetic"}])
def test_config_rejects_unknown_names(kwargs):
    with pytest.raises(ValueError, match="unknown"):
        config(source="en-US", target="es", **kwargs)


# ---------------------------------------------------------------------------
# interpret() / translate_text() / list_languages()


def test_interpret_sends_config_first_then_chunks_and_yields_typed_events(fake):
    servicer, target = fake
    chunks = [b"\x01\x00" * 800, b"", b"\x02\x00" * 800, b"\x03\x00" * 10]
    cfg = config(source="en-US", target="es")
    with InterpreterClient(target, metadata=[("x-api-key", "k")]) as client:
        events = list(client.interpret(cfg, iter(chunks), metadata=[("x-call", "1")]))

    kinds = [r.WhichOneof("request") for r in servicer.requests]
    assert kinds == ["config", "audio", "audio", "audio", "end"]  # the empty chunk is not sent; `end` says done
    sent = servicer.requests[0].config
    assert sent.resumption.enabled  # the client asks for resumption by default...
    sent.ClearField("resumption")
    assert sent == cfg  # ...and sends the config otherwise as given
    assert [r.audio for r in servicer.requests[1:-1]] == [c for c in chunks if c]
    assert ("x-api-key", "k") in servicer.metadata
    assert ("x-call", "1") in servicer.metadata

    assert [type(e) for e in events] == [
        SessionStarted,
        InterimTranscript,
        FinalTranscript,
        TranslationToken,
        TranslationReset,
        TranslationToken,
        TranslationToken,
        TranslationComplete,
        VoiceActivity,
        Notice,
    ]
    started = events[0]
    assert isinstance(started, SessionStarted)
    assert started.session_id == "s-1"
    assert started.translator.name == "fake-mt" and started.translator.detail == "v0"
    assert started.ignored_options == ("translation_options.style: fake translates literally",)
    final = events[2]
    assert isinstance(final, FinalTranscript)
    assert (final.utterance_id, final.text, final.language_code) == (1, "hello world", "en-US")
    assert final.audio_start_s == pytest.approx(0.25)
    assert final.audio_end_s == pytest.approx(1.5)
    assert final.confidence == pytest.approx(0.9)
    assert final.target_language_codes == ("es",)
    assert final.raw.WhichOneof("event") == "final_transcript"  # the wire form is kept
    interim = events[1]
    assert isinstance(interim, InterimTranscript)
    assert interim.audio_end_s == pytest.approx(0.75)
    activity = events[8]
    assert isinstance(activity, VoiceActivity)
    assert activity.kind == "end"
    assert activity.audio_offset_s == pytest.approx(1.5)
    notice = events[9]
    assert isinstance(notice, Notice)
    assert notice.code == "RECOGNITION_BEHIND"


def test_interpret_error_is_a_tongyeok_error_with_the_servers_message(fake):
    servicer, target = fake
    servicer.abort = (grpc.StatusCode.INVALID_ARGUMENT, "source language 'xx' is not supported; available: en-US")
    with InterpreterClient(target) as client, pytest.raises(TongyeokError) as info:
        list(client.interpret(config(source="xx", target="es"), iter([b"\0\0"])))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details == "source language 'xx' is not supported; available: en-US"
    assert str(info.value) == "INVALID_ARGUMENT: source language 'xx' is not supported; available: en-US"


def test_interpret_reraises_the_audio_iterators_own_exception(fake):
    _, target = fake

    def broken() -> Iterator[bytes]:
        yield b"\0\0"
        raise OSError("disk went away")

    with InterpreterClient(target) as client, pytest.raises(OSError, match="disk went away"):
        list(client.interpret(config(source="en-US", target="es"), broken()))


def test_leaving_the_event_loop_early_cancels_the_call(fake):
    servicer, target = fake
    servicer.hang = True

    def endless() -> Iterator[bytes]:
        while not servicer.cancelled.is_set():
            yield b"\0\0" * 160
            servicer.cancelled.wait(0.01)

    with InterpreterClient(target) as client:
        for event in client.interpret(config(source="en-US", target="es"), endless()):
            assert isinstance(event, SessionStarted)
            break  # the generator is closed here
        assert servicer.cancelled.wait(5), "the server never saw the cancellation"
        assert servicer.done.wait(5)


def test_unavailable_server_gives_unavailable():
    with InterpreterClient("127.0.0.1:1") as client, pytest.raises(TongyeokError) as info:
        client.list_languages(timeout=5)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_translate_text_and_list_languages(fake):
    servicer, target = fake
    with InterpreterClient(target, timeout=5) as client:
        events = list(
            client.translate_text(
                "hello", source="en", target=["es", "ca"], style="literal", glossary={"Acme": ""}, context=["Hi."]
            )
        )
        langs = client.list_languages()
    req = servicer.translate_requests[0]
    assert (req.text, req.source_language_code, list(req.target_language_codes)) == ("hello", "en", ["es", "ca"])
    assert req.translation_options.style == pb.TRANSLATION_STYLE_LITERAL
    assert list(req.context) == ["Hi."]
    done = [e for e in events if isinstance(e, TranslationComplete)]
    assert [(e.target_language_code, e.text) for e in done] == [("es", "Hola [es]"), ("ca", "Hola [ca]")]
    assert langs.recognition_language_codes == ("en-US",)
    assert langs.translation_pairs == (("en", "es"), ("en", "ca"))
    assert langs.max_source_languages == 2


# ---------------------------------------------------------------------------
# Audio files


def _tone(rate: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    cols = [np.sin(2 * np.pi * (220 * (c + 1)) * t) * 0.5 * 32767 for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.int16)


def test_wav_16k_mono_is_read_and_chunked_in_100ms_frames(tmp_path):
    samples = _tone(16000, 1.05, 1)
    path = tmp_path / "a.wav"
    soundfile.write(path, samples, 16000, subtype="PCM_16")
    audio = open_audio(path)
    assert (audio.format.encoding, audio.format.sample_rate_hertz, audio.format.channel_count) == ("LINEAR16", 16000, 1)
    assert audio.chunk_duration_s == pytest.approx(0.1)
    assert audio.duration_s == pytest.approx(1.05)
    chunks = list(audio.chunks)
    assert [len(c) for c in chunks] == [3200] * 10 + [1600]
    assert b"".join(chunks) == samples.astype("<i2").tobytes()


def test_wav_48k_stereo_stays_stereo_and_interleaved(tmp_path):
    samples = _tone(48000, 0.5, 2)
    path = tmp_path / "s.wav"
    soundfile.write(path, samples, 48000, subtype="PCM_16")
    audio = open_audio(path, chunk_ms=20)
    assert (audio.format.sample_rate_hertz, audio.format.channel_count) == (48000, 2)
    assert audio.format.bytes_per_frame == 4
    chunks = list(audio.chunks)
    assert [len(c) for c in chunks] == [960 * 4] * 25
    assert b"".join(chunks) == samples.astype("<i2").tobytes()  # L R L R ...


def test_flac_is_decoded_to_the_same_pcm(tmp_path):
    samples = _tone(22050, 0.3, 1)
    path = tmp_path / "a.flac"
    soundfile.write(path, samples, 22050, format="FLAC", subtype="PCM_16")
    audio = read_audio_file(path)
    assert audio.format.sample_rate_hertz == 22050
    assert b"".join(audio.chunks) == samples.tobytes()


def test_more_than_two_channels_are_downmixed_to_mono(tmp_path):
    rate = 8000
    frames = 800
    data = np.zeros((frames, 4), dtype=np.int16)
    data[:, 0] = 4000
    data[:, 1] = 8000
    data[:, 2] = -4000
    data[:, 3] = 12000  # mean 5000
    path = tmp_path / "quad.wav"
    soundfile.write(path, data, rate, subtype="PCM_16")
    audio = open_audio(path)
    assert audio.format.channel_count == 1
    pcm = np.frombuffer(b"".join(audio.chunks), dtype="<i2")
    assert len(pcm) == frames
    assert np.all(np.abs(pcm.astype(int) - 5000) <= 1)


def test_undecodable_file_fails_on_open(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"not audio at all")
    with pytest.raises(RuntimeError):
        open_audio(path)


def test_headerless_files_and_stdin(tmp_path, monkeypatch):
    ulaw = tmp_path / "call.ulaw"
    ulaw.write_bytes(bytes(range(256)) * 7)  # 1792 bytes
    audio = open_audio(ulaw)
    assert (audio.format.encoding, audio.format.sample_rate_hertz, audio.format.channel_count) == ("MULAW", 8000, 1)
    chunks = list(audio.chunks)
    assert [len(c) for c in chunks] == [800, 800, 192]
    assert b"".join(chunks) == ulaw.read_bytes()

    raw = tmp_path / "x.raw"
    raw.write_bytes(b"\1\2" * 1000 + b"\3")  # a trailing half frame
    with pytest.raises(ValueError, match="--rate"):
        open_audio(raw)
    audio = open_audio(raw, sample_rate_hertz=16000, channel_count=2)
    assert audio.format.bytes_per_frame == 4
    data = b"".join(audio.chunks)
    assert data == b"\1\2" * 1000  # whole frames only

    import io

    class FakeStdin:
        buffer = io.BytesIO(b"\x55" * 1000)

    monkeypatch.setattr("sys.stdin", FakeStdin)
    audio = open_audio("-", encoding="alaw")
    assert audio.format.encoding == "ALAW"
    assert audio.duration_s is None
    assert b"".join(audio.chunks) == b"\x55" * 1000


def test_raw_reader_loops_over_short_pipe_reads():
    class Trickle:
        def __init__(self, data: bytes):
            self.data = data

        def read(self, n: int) -> bytes:
            out, self.data = self.data[: min(n, 7)], self.data[min(n, 7) :]
            return out

    audio = open_raw(Trickle(b"\0\1" * 500), encoding="linear16", sample_rate_hertz=8000)  # type: ignore[arg-type]
    assert [len(c) for c in audio.chunks] == [1000]


# ---------------------------------------------------------------------------
# paced()


class FakeClock:
    """A clock that only moves when slept on (plus optional overshoot / work per chunk)."""

    def __init__(self, overshoot: float = 0.0):
        self.now = 100.0
        self.overshoot = overshoot
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.overshoot


def test_paced_releases_chunks_on_a_real_time_schedule():
    clock = FakeClock()
    released = []
    for chunk in paced([b"a", b"b", b"c", b"d"], 0.1, clock=clock, sleep=clock.sleep):
        released.append((chunk, clock.now - 100.0))
    assert [c for c, _ in released] == [b"a", b"b", b"c", b"d"]
    assert [t for _, t in released] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_paced_does_not_accumulate_drift():
    clock = FakeClock(overshoot=0.004)  # every sleep oversleeps by 4 ms
    times = [clock.now - 100.0 for _ in paced([b"x"] * 50, 0.1, clock=clock, sleep=clock.sleep)]
    # Each release is at most one overshoot late, not 49 overshoots late.
    assert times[-1] == pytest.approx(4.9 + 0.004)
    assert all(s < 0.1 for s in clock.sleeps[1:])  # later sleeps shrink to compensate


def test_paced_catches_up_without_sleeping_when_the_consumer_is_slow():
    clock = FakeClock()
    gen = paced([b"x"] * 5, 0.1, clock=clock, sleep=clock.sleep)
    next(gen)
    clock.now += 0.35  # the consumer was busy for 3.5 chunks
    next(gen)
    next(gen)
    next(gen)
    assert clock.sleeps == []
    next(gen)  # chunk 4 is due at 0.4
    assert clock.sleeps == [pytest.approx(0.05)]


def test_paced_speed_and_validation():
    clock = FakeClock()
    list(paced([b"x"] * 3, 0.1, speed=2.0, clock=clock, sleep=clock.sleep))
    assert clock.now - 100.0 == pytest.approx(0.1)
    with pytest.raises(ValueError):
        list(paced([b"x"], 0.1, speed=0))


def test_paced_really_sleeps_with_the_default_clock():
    import time

    start = time.monotonic()
    list(paced([b"x"] * 4, 0.02))
    assert 0.055 <= time.monotonic() - start < 0.5
