"""JSON: the record as the ``Session`` message (FULL view) in proto3 JSON, so it parses back into one."""

from __future__ import annotations

from google.protobuf import json_format

from tongyeok_server.store.messages import session_message
from tongyeok_server.store.records import SessionRecord


def json_text(record: SessionRecord, language_code: str = "") -> str:
    """The record as indented JSON (field names as in the proto; translations into ``language_code`` only, if set)."""
    message = session_message(record, full=True, language_code=language_code)
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2, ensure_ascii=False) + "\n"
