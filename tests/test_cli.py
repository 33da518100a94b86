"""The ``tongyeok`` CLI against an in-process fake Interpreter server."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import soundfile
from rich.console import Console

from tests.test_client_audio import FakeServicer, dur, serve
from tongyeok_client import cli
from tongyeok_client.cli import interpret as cli_interpret
from tongyeok_client.cli import render
from tongyeok_client.proto import interpreter_pb2 as pb


@pytest.fixture
def fake() -> Iterator[tuple[FakeServicer, str]]:
    servicer = FakeServicer()
    with serve(servicer) as target:
        yield servicer, target


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "speech.wav"
    soundfile.write(path, np.zeros((8000, 1), dtype=np.int16), 16000, subtype="PCM_16")  # 0.5 s
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------
# interpret


def test_interpret_json_is_one_event_per_line_and_sends_the_config(capsys, fake, wav):
    servicer, target = fake
    code, out, err = run(
        capsys,
        "interpret",
        str(wav),
        "--source",
        "en-US",
        "--target",
        "es",
        "--target",
        "fr",
        "--style",
        "literal",
        "--glossary",
        "Q3=tercer trimestre",
        "--keep",
        "Tongyeok",
        "--no-interim",
        "--fast",
        "--json",
        "--server",
        target,
    )
    assert code == 0, err
    lines = out.splitlines()
    objs = [json.loads(line) for line in lines]
    assert len(objs) == len(servicer.events)
    assert objs[0]["session_started"]["session_id"] == "s-1"
    final = objs[2]["final_transcript"]
    assert final["utterance_id"] == "1"  # proto3 JSON: int64 as a string
    assert final["audio_end_offset"] == "1.500s"
    assert final["text"] == "hello world"
    assert objs[7]["translation_complete"]["text"] == "Hola mundo"

    cfg = servicer.requests[0].config
    assert cfg.audio_format.encoding == pb.AUDIO_ENCODING_LINEAR16
    assert (cfg.audio_format.sample_rate_hertz, cfg.audio_format.channel_count) == (16000, 1)
    assert list(cfg.source_language_codes) == ["en-US"]
    assert list(cfg.target_language_codes) == ["es", "fr"]
    assert cfg.interim_results is False
    assert cfg.translation_options.style == pb.TRANSLATION_STYLE_LITERAL
    glossary = [(g.source_term, g.target_term) for g in cfg.translation_options.glossary]
    assert glossary == [("Q3", "tercer trimestre"), ("Tongyeok", "")]
    assert cfg.resumption.enabled  # the client resumes by itself
    audio = b"".join(r.audio for r in servicer.requests[1:])
    assert len(audio) == 16000  # all 0.5 s of the file, nothing else
    assert [len(r.audio) for r in servicer.requests[1:-1]] == [3200] * 5
    assert servicer.requests[-1].WhichOneof("request") == "end"  # an ending, not a broken stream


def test_interpret_human_output_on_a_pipe_prints_finals_translations_and_summary(capsys, fake, wav):
    _, target = fake
    code, out, err = run(
        capsys, "interpret", str(wav), "--source", "en-US", "--target", "es", "--fast", "--server", target
    )
    assert code == 0, err
    lines = out.splitlines()
    assert "#1 en-US 0.25–1.50s  hello world" in lines
    final_at = lines.index("#1 en-US 0.25–1.50s  hello world")
    assert lines[final_at + 1].split() == ["es", "Hola", "mundo"]
    assert "note: translation_options.style: fake translates literally" in lines
    assert "notice RECOGNITION_BEHIND: results will be late" in lines
    assert not any(line.endswith("hello") for line in lines)  # no interim on a non-TTY
    assert lines[-1].startswith("done: 1 final · translations: 1 es · 1 notice · 0.5 s of audio in ")


def final(uid: int, text: str, start: float, end: float, targets: list[str]) -> pb.InterpretResponse:
    return pb.InterpretResponse(
        final_transcript=pb.FinalTranscript(
            utterance_id=uid,
            text=text,
            language_code="en-US",
            audio_start_offset=dur(start),
            audio_end_offset=dur(end),
            target_language_codes=targets,
        )
    )


def complete(uid: int, lang: str, text: str) -> pb.InterpretResponse:
    return pb.InterpretResponse(
        translation_complete=pb.TranslationComplete(
            utterance_id=uid, source_language_code="en-US", target_language_code=lang, text=text
        )
    )


def token(uid: int, lang: str, text: str) -> pb.InterpretResponse:
    return pb.InterpretResponse(
        translation_token=pb.TranslationToken(
            utterance_id=uid, source_language_code="en-US", target_language_code=lang, text=text
        )
    )


def test_translations_stay_under_their_sentence_when_the_next_final_comes_first(capsys, fake, wav):
    servicer, target = fake
    servicer.events = [
        pb.InterpretResponse(session_started=pb.SessionStarted(session_id="s")),
        final(1, "one", 0, 1, ["es", "fr"]),
        token(1, "es", "uno"),
        final(2, "two", 1, 2, ["es", "fr"]),  # sentence 2 is final before 1 is translated
        complete(1, "es", "uno"),
        complete(2, "es", "dos"),
        complete(2, "fr", "deux"),
        pb.InterpretResponse(
            notice=pb.Notice(
                code=pb.NOTICE_CODE_TRANSLATION_FAILED, message="engine down", utterance_id=1, target_language_code="fr"
            )
        ),
    ]
    code, out, err = run(
        capsys, "interpret", str(wav), "--source", "en-US", "--target", "es", "--fast", "--server", target
    )
    assert code == 0, err
    body = [line.split() for line in out.splitlines()[1:-1]]
    assert body == [
        ["#1", "en-US", "0.00–1.00s", "one"],
        ["es", "uno"],
        ["fr", "translation", "failed:", "engine", "down"],
        ["#2", "en-US", "1.00–2.00s", "two"],
        ["es", "dos"],
        ["fr", "deux"],
    ]
    assert "1 failed" in out.splitlines()[-1]


def test_interpret_on_a_terminal_uses_the_live_region(monkeypatch, capsys, fake, wav):
    _, target = fake
    buf = io.StringIO()
    monkeypatch.setattr(cli, "Console", lambda **kw: Console(file=buf, force_terminal=True, width=100, **kw))
    code = cli.main(["interpret", str(wav), "--source", "en-US", "--target", "es", "--fast", "--server", target])
    assert code == 0, capsys.readouterr().err
    screen = buf.getvalue()
    assert "hello world" in screen
    assert "Hola mundo" in screen
    assert "…" in screen  # the interim line / partial translation were drawn in the live region
    assert "done: 1 final" in screen


def test_interpret_missing_file_is_a_usage_error(capsys, fake, tmp_path):
    _, target = fake
    code, out, err = run(capsys, "interpret", str(tmp_path / "nope.wav"), "--source", "en-US", "--server", target)
    assert code == 2
    assert out == ""
    assert err.strip() == f"error: no such file: {tmp_path / 'nope.wav'}"


def test_bad_glossary_syntax_is_a_usage_error(capsys, fake, wav):
    _, target = fake
    code, _, err = run(capsys, "interpret", str(wav), "--source", "en", "--glossary", "Q3", "--server", target)
    assert code == 2
    assert "--glossary wants TERM=RENDERING" in err


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [(grpc.StatusCode.INVALID_ARGUMENT, 2), (grpc.StatusCode.RESOURCE_EXHAUSTED, 1), (grpc.StatusCode.UNAVAILABLE, 1)],
)
def test_interpret_grpc_error_prints_code_and_message(capsys, fake, wav, status, exit_code):
    servicer, target = fake
    servicer.abort = (status, "target language 'xx' is not available; available: es, ca")
    code, out, err = run(
        capsys, "interpret", str(wav), "--source", "en-US", "--target", "xx", "--json", "--server", target
    )
    assert code == exit_code
    assert out == ""
    assert err.strip() == f"error: {status.name}: target language 'xx' is not available; available: es, ca"


def test_no_server_is_unavailable_exit_1(capsys, wav):
    code, _, err = run(capsys, "languages", "--server", "127.0.0.1:1")
    assert code == 1
    assert err.startswith("error: UNAVAILABLE: ")


def test_ctrl_c_cancels_the_stream_and_exits_130(monkeypatch, capsys, fake, tmp_path):
    servicer, target = fake
    servicer.hang = True
    long_wav = tmp_path / "long.wav"
    soundfile.write(long_wav, np.zeros((16000 * 30, 1), dtype=np.int16), 16000, subtype="PCM_16")

    def interrupt(self, event):
        raise KeyboardInterrupt

    monkeypatch.setattr(render.HumanRenderer, "handle", interrupt)
    start = time.monotonic()
    code, _, err = run(capsys, "interpret", str(long_wav), "--source", "en-US", "--target", "es", "--server", target)
    assert code == 130
    assert "interrupted" in err
    assert servicer.cancelled.wait(5), "the server never saw the cancellation"
    assert time.monotonic() - start < 10  # not the file's 30 s


def test_a_closed_stdout_ends_quietly_and_cancels(monkeypatch, capsys, fake, tmp_path):
    servicer, target = fake
    servicer.hang = True
    long_wav = tmp_path / "long.wav"
    soundfile.write(long_wav, np.zeros((16000 * 30, 1), dtype=np.int16), 16000, subtype="PCM_16")

    def broken_pipe(message):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_interpret, "print_json", broken_pipe)
    code, _, err = run(capsys, "interpret", str(long_wav), "--source", "en-US", "--json", "--server", target)
    assert code == 141
    assert err == ""
    assert servicer.cancelled.wait(5)


# ---------------------------------------------------------------------------
# translate, languages, server selection


def test_translate_json_and_human(capsys, fake):
    servicer, target = fake
    code, out, err = run(
        capsys, "translate", "hello", "--source", "en", "--target", "es", "--target", "ca", "--json", "--server", target
    )
    assert code == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert [next(iter(o)) for o in objs] == ["translation_token", "translation_complete"] * 2
    assert objs[1]["translation_complete"] == {
        "source_language_code": "en",
        "target_language_code": "es",
        "text": "Hola [es]",
    }

    code, out, err = run(capsys, "translate", "hello", "--source", "en", "--target", "es", "--server", target)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [["es", "Hola", "[es]"]]
    assert servicer.translate_requests[-1].text == "hello"


def test_languages_json_and_human_and_env_server(monkeypatch, capsys, fake):
    _, target = fake
    monkeypatch.setenv("TONGYEOK_SERVER", target)
    code, out, err = run(capsys, "languages", "--json")
    assert code == 0, err
    (line,) = out.splitlines()
    obj = json.loads(line)
    assert obj["recognition_language_codes"] == ["en-US"]
    assert obj["max_source_languages"] == 2

    code, out, err = run(capsys, "languages")
    assert code == 0, err
    assert "translation  en → es, ca" in out.splitlines()
    assert "recognition  en-US" in out.splitlines()
