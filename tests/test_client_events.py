"""The client's events: derived from the proto descriptors, covering the schema, matched as the README shows."""

from __future__ import annotations

import pytest

from tongyeok_client import events
from tongyeok_client.event_mapping import MIRRORS, plan_of
from tongyeok_client.proto import interpreter_pb2 as pb

# Response events the resuming client consumes itself (acknowledgements, token updates): no event of their own.
HANDLED_BY_THE_CLIENT = {"tongyeok.v1.AudioAcknowledged", "tongyeok.v1.ResumeTokenUpdate"}


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_each_event_reads_or_deliberately_omits_every_field_of_its_message(name: str) -> None:
    cls = MIRRORS[name]
    descriptor = pb.DESCRIPTOR.pool.FindMessageTypeByName(name)
    read, omitted = set(plan_of(cls)), set(cls.omitted)
    proto = {f.name for f in descriptor.fields}
    assert read | omitted == proto, f"{cls.__name__}: add a field for {proto - read - omitted} or list it in omitted"
    assert not read & omitted


@pytest.mark.parametrize("response", [pb.InterpretResponse, pb.TranslateTextResponse])
def test_every_kind_of_response_event_has_its_dataclass(response) -> None:
    for member in response.DESCRIPTOR.oneofs_by_name["event"].fields:
        name = member.message_type.full_name
        assert name in MIRRORS or name in HANDLED_BY_THE_CLIENT, f"{response.__name__}.{member.name} has no event"


def test_an_event_is_matched_by_its_fields_and_keeps_its_message() -> None:
    response = pb.InterpretResponse(
        final_transcript=pb.FinalTranscript(
            utterance_id=3, text="Good morning.", language_code="en-US", target_language_codes=["es"]
        )
    )
    response.final_transcript.audio_start_offset.FromMilliseconds(1250)
    match events.event_from_proto(response):
        case events.FinalTranscript(utterance_id=3, text=text, audio_start_s=start, target_language_codes=targets):
            assert (text, start, targets) == ("Good morning.", 1.25, ("es",))
        case other:
            pytest.fail(f"not a final: {other}")
    assert events.event_from_proto(response).raw is response  # type: ignore[union-attr]


def test_enums_read_as_words_and_unknown_numbers_as_digits() -> None:
    activity = pb.InterpretResponse(voice_activity=pb.VoiceActivity(type=pb.VOICE_ACTIVITY_TYPE_SPEECH_BEGIN))
    assert events.event_from_proto(activity) == events.VoiceActivity("begin", 0.0, activity)
    notice = pb.InterpretResponse(notice=pb.Notice(code=pb.NOTICE_CODE_RECOGNITION_BEHIND, utterance_id=2))
    assert events.event_from_proto(notice) == events.Notice("RECOGNITION_BEHIND", "", 2, "", notice)
    future = pb.InterpretResponse(notice=pb.Notice(code=99))  # type: ignore[arg-type]
    assert events.event_from_proto(future).code == "99"  # type: ignore[union-attr]


def test_nested_messages_become_their_dataclasses() -> None:
    started = pb.InterpretResponse(
        session_started=pb.SessionStarted(
            session_id="s1",
            recognizer=pb.EngineInfo(name="pocketsphinx", detail="en-us"),
            simultaneous_directions=[
                pb.SimultaneousDirection(
                    source_language_code="en", latency=pb.SIMULTANEOUS_LATENCY_BALANCED, agreement=2
                )
            ],
        )
    )
    event = events.event_from_proto(started)
    assert isinstance(event, events.SessionStarted)
    assert event.recognizer == events.Engine("pocketsphinx", "en-us")
    assert event.simultaneous_directions[0].latency == "balanced"
    languages = pb.ListLanguagesResponse(
        translation_pairs=[pb.LanguagePair(source_language_code="en", target_language_code="ko")]
    )
    assert events.languages_from_proto(languages).translation_pairs == (("en", "ko"),)


def test_a_translate_text_event_is_not_an_interpret_event_and_back() -> None:
    started = pb.TranslateTextResponse(started=pb.TranslateTextStarted(target_language_codes=["es"]))
    event = events.translation_event_from_proto("started", started.started, started)
    assert isinstance(event, events.TranslateTextStarted) and event.target_language_codes == ("es",)
    acknowledged = pb.InterpretResponse(audio_acknowledged=pb.AudioAcknowledged(acknowledged_bytes=10))
    assert events.event_from_proto(acknowledged) is None
    assert events.event_from_proto(pb.InterpretResponse()) is None


def test_a_field_that_matches_nothing_fails_at_import() -> None:
    from dataclasses import dataclass

    from tongyeok_client.event_mapping import mirrors

    with pytest.raises(TypeError, match=r"Stale\.wording matches no field of tongyeok\.v1\.Notice"):

        @mirrors(pb.Notice)
        @dataclass(frozen=True)
        class Stale:
            wording: str
