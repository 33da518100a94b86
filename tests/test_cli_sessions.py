"""``tongyeok sessions ...`` against a real server: a meeting interpreted from a file, then listed, shown, exported, deleted."""

from __future__ import annotations

import json

import pytest
import srt

from tests.support.speech import Speech
from tongyeok_client import cli

pytestmark = pytest.mark.speech


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def interpret(capsys, speech: Speech, target: str, *extra: str) -> tuple[int, str, str]:
    argv = ["interpret", str(speech.path), "--source", "en-US", "--target", "es", "--fast", "--json", *extra]
    return run(capsys, *argv, "--server", target)


def test_a_meeting_from_file_to_srt_and_gone(capsys, server_factory, speech: Speech, tmp_path) -> None:
    server = server_factory()
    target = f"127.0.0.1:{server.port}"
    code, out, _ = interpret(capsys, speech, target)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    started = events[0]["session_started"]
    assert started["transcript_stored"] is True
    session_id = started["session_id"]
    finals = [e["final_transcript"] for e in events if "final_transcript" in e]
    assert server.record is not None and server.record.writer.wait_idle(30)

    code, out, _ = run(capsys, "sessions", "list", "--server", target)
    assert code == 0 and session_id in out and f"{len(finals)} utterances" in out and "complete" in out
    code, out, _ = run(capsys, "sessions", "list", "--lang", "fr", "--server", target)
    assert code == 0 and out.strip() == "no sessions"

    code, out, _ = run(capsys, "sessions", "show", session_id, "--server", target)
    assert code == 0 and all(f["text"] in out for f in finals) and "en-US → es" in out

    srt_file = tmp_path / "meeting.srt"
    code, _, err = run(
        capsys, "sessions", "export", session_id, "--format", "srt", "-o", str(srt_file), "--server", target
    )
    assert code == 0 and "application/x-subrip" in err
    assert [c.content for c in srt.parse(srt_file.read_text())] == [f["text"] for f in finals]

    code, out, _ = run(
        capsys, "sessions", "export", session_id, "--format", "vtt", "--lang", "es", "--both", "--server", target
    )
    assert code == 0 and out.startswith("WEBVTT") and "Buenos días" in out and finals[0]["text"] in out
    code, out, _ = run(capsys, "sessions", "export", session_id, "--format", "json", "--server", target)
    assert code == 0 and json.loads(out)["session_id"] == session_id

    code, _, err = run(capsys, "sessions", "export", session_id, "--format", "md", "--both", "--server", target)
    assert code == 2 and "--both is for subtitles" in err

    code, out, _ = run(capsys, "sessions", "delete", session_id, "--server", target)
    assert code == 0 and f"deleted {session_id}" in out
    code, _, err = run(capsys, "sessions", "show", session_id, "--server", target)
    assert code == 1 and f"NOT_FOUND: no meeting record sessions/{session_id}" in err


def test_no_record_is_asked_for_with_no_record(capsys, server_factory, speech: Speech) -> None:
    server = server_factory()
    target = f"127.0.0.1:{server.port}"
    code, out, _ = interpret(capsys, speech, target, "--no-record")
    assert code == 0
    assert "transcript_stored" not in json.loads(out.splitlines()[0])["session_started"]  # false: omitted in JSON
    code, out, _ = run(capsys, "sessions", "list", "--json", "--server", target)
    assert code == 0 and out == ""
