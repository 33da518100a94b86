"""A record as its ``tongyeok.v1.Session`` message (the Transcripts service and the JSON export)."""

from __future__ import annotations

import re
from datetime import datetime

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_server.store.records import RecordState, SessionRecord, TranslationRecord, UtteranceRecord

NAME_PREFIX = "sessions/"
_ENGINE = re.compile(r"^(\S+) \((.*)\)$")
_STATES = {
    RecordState.OPEN: tpb.RECORD_STATE_OPEN,
    RecordState.COMPLETE: tpb.RECORD_STATE_COMPLETE,
    RecordState.INCOMPLETE: tpb.RECORD_STATE_INCOMPLETE,
}


def duration(seconds: float) -> Duration:
    """Seconds -> ``google.protobuf.Duration``, to the millisecond (what the record keeps)."""
    value = Duration()
    value.FromMilliseconds(max(0, round(seconds * 1000)))
    return value


def session_message(record: SessionRecord, *, full: bool = True, language_code: str = "") -> tpb.Session:
    """The record as a ``Session``; utterances only if ``full``, translations only into ``language_code`` if set."""
    config = pb.InterpretConfig()
    json_format.Parse(record.config_json, config, ignore_unknown_fields=True)
    message = tpb.Session(
        name=NAME_PREFIX + record.session_id,
        session_id=record.session_id,
        caller_id=record.caller_id,
        start_time=timestamp(record.started_at),
        outcome=record.outcome,
        config=config,
        source_language_codes=record.source_languages,
        target_language_codes=record.target_languages,
        recognizer=engine_info(record.recognizer),
        translator=engine_info(record.translator),
        record_state=_STATES[record.state],
        record_note=record.incomplete_reason,
        utterance_count=record.utterance_count,
        audio_stored=record.audio_stored,
    )
    if record.ended_at is not None:
        message.end_time.CopyFrom(timestamp(record.ended_at))
    if record.audio_duration_s is not None:
        message.audio_duration.CopyFrom(duration(record.audio_duration_s))
    if full:
        message.utterances.extend(utterance_message(u, language_code) for u in record.utterances)
    return message


def utterance_message(u: UtteranceRecord, language_code: str = "") -> tpb.Utterance:
    """One utterance and its translations (into ``language_code`` only, if set)."""
    chosen = [u.translation(language_code)] if language_code else list(u.translations)
    message = tpb.Utterance(
        utterance_id=u.utterance_id,
        text=u.text,
        language_code=u.language_code,
        confidence=u.confidence,
        audio_start_offset=duration(u.start_s),
        audio_end_offset=duration(u.end_s),
        translations=[translation_message(t) for t in chosen if t is not None],
    )
    if u.final_at is not None:
        message.final_time.CopyFrom(timestamp(u.final_at))
    return message


def translation_message(t: TranslationRecord) -> tpb.Translation:
    """One translation, with how it was spoken if it was."""
    message = tpb.Translation(
        language_code=t.language_code, text=t.text, failed=t.failed, failure_message=t.failure_message
    )
    if t.speech is not None:
        s = t.speech
        message.speech.CopyFrom(
            tpb.SpokenTranslation(
                voice=s.voice,
                encoding=f"SPEECH_ENCODING_{s.encoding}",
                sample_rate_hertz=s.sample_rate_hz,
                audio_bytes=s.audio_bytes,
                chunks=s.chunks,
            )
        )
        if s.duration_s is not None:
            message.speech.duration.CopyFrom(duration(s.duration_s))
        if s.first_audio_after_final_s is not None:
            message.speech.first_audio_after_final.CopyFrom(duration(s.first_audio_after_final_s))
    return message


def timestamp(value: datetime) -> Timestamp:
    """An aware datetime as a ``Timestamp``."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def engine_info(stored: str) -> pb.EngineInfo:
    """``name (detail)`` as the record keeps it, back to an ``EngineInfo``."""
    match = _ENGINE.match(stored)
    if match is None:
        return pb.EngineInfo(name=stored)
    return pb.EngineInfo(name=match.group(1), detail=match.group(2))
