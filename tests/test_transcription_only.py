"""Transcription-only streams: one source language and no target (captions, the minutes of a one-language meeting).

Every recogniser serves them (pocketsphinx and Whisper on synthesised
speech, Google through its fake); nothing is translated, the session ends
OK and is recorded like any other; the CLI takes ``--source`` alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.conftest import stub_for
from tests.support import fake_speech
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.fake_speech import FakeSpeech
from tests.support.speech import Speech, word_error_rate
from tongyeok_client import cli
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc
from tongyeok_server.app import TongyeokServer

TRANSLATION_EVENTS = ("translation_token", "translation_complete", "translation_reset", "translation_audio")


def transcribe(server: TongyeokServer, pcm: bytes) -> list[tuple[str, Any]]:
    channel, stub = stub_for(server)
    with channel:
        requests = itertools.chain([config(targets=())], audio_requests(pcm, 3200))
        return events_of(stub.Interpret(requests, timeout=120))


def assert_transcribed_only(events: list[tuple[str, Any]], sentences: list[str] | tuple[str, ...]) -> None:
    (started,) = of_kind(events, "session_started")
    assert list(started.effective_config.target_language_codes) == []
    finals = of_kind(events, "final_transcript")
    assert len(finals) == len(sentences), [f.text for f in finals]
    assert all(list(f.target_language_codes) == [] for f in finals)
    assert not [kind for kind, _ in events if kind in TRANSLATION_EVENTS]
    assert word_error_rate(" ".join(sentences), " ".join(f.text for f in finals)) <= 0.2


@pytest.mark.speech
def test_pocketsphinx_transcribes_and_records_the_session(offline_server: TongyeokServer, speech: Speech) -> None:
    events = transcribe(offline_server, speech.pcm())
    assert_transcribed_only(events, speech.sentences)
    (started,) = of_kind(events, "session_started")
    record = offline_server.record
    assert record is not None and record.writer.wait_idle(30)
    channel, _ = stub_for(offline_server)
    with channel:
        transcripts = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]
        name = "sessions/" + started.session_id
        session = transcripts.GetSession(tpb.GetSessionRequest(name=name), timeout=30)
        exports = {
            fmt: transcripts.ExportSession(tpb.ExportSessionRequest(name=name, format=fmt), timeout=30).content
            for fmt in (tpb.EXPORT_FORMAT_SRT, tpb.EXPORT_FORMAT_MARKDOWN)
        }
    assert list(session.target_language_codes) == []
    assert [u.text for u in session.utterances] == [f.text for f in of_kind(events, "final_transcript")]
    assert all(not u.translations for u in session.utterances)
    # Captions and minutes of what was said.
    first = session.utterances[0].text
    assert first in exports[tpb.EXPORT_FORMAT_SRT] and first in exports[tpb.EXPORT_FORMAT_MARKDOWN]


@pytest.mark.speech
def test_whisper_transcribes(whisper_server: TongyeokServer, speech: Speech) -> None:
    assert_transcribed_only(transcribe(whisper_server, speech.pcm()), speech.sentences)


def test_google_transcribes(server_factory: Callable[..., TongyeokServer], speech_fake: FakeSpeech) -> None:
    server = server_factory(
        recognizer="google", google_endpoint=speech_fake.address, google_insecure=True, google_project="p"
    )
    utterances = [[1, 2, 3, 4], [19, 20, 21, 22]]
    sentences = [" ".join(fake_speech.word_for_id(i)[0] for i in words) for words in utterances]
    assert_transcribed_only(transcribe(server, fake_speech.synthesize(utterances)), sentences)


def test_speech_output_without_a_target_is_refused(offline_server: TongyeokServer) -> None:
    request = config(targets=())
    request.config.speech_output.SetInParent()
    channel, stub = stub_for(offline_server)
    with channel, pytest.raises(grpc.RpcError) as info:
        events_of(stub.Interpret(iter([request]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speech_output needs a language to speak" in str(info.value.details())


@pytest.mark.speech
def test_the_cli_transcribes_with_a_source_alone(capsys, offline_server: TongyeokServer, speech: Speech) -> None:
    code = cli.main(
        ["interpret", str(speech.path), "--source", "en-US", "--fast", "--server", f"127.0.0.1:{offline_server.port}"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Good morning" in captured.out and "Buenos" not in captured.out
