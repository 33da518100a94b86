"""The client's side of simultaneous mode: ``config(simultaneous=True)``, its events, ``interpret --simultaneous``."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile
from rich.console import Console

from tests.test_cli import complete, final, token
from tests.test_client_audio import FakeServicer, serve
from tongyeok_client import SessionStarted, SimultaneousDirection, TranslationTentative, cli, config
from tongyeok_client.events import event_from_proto
from tongyeok_client.proto import interpreter_pb2 as pb


def tentative(uid: int, lang: str, text: str) -> pb.InterpretResponse:
    return pb.InterpretResponse(
        translation_tentative=pb.TranslationTentative(
            utterance_id=uid, source_language_code="en-US", target_language_code=lang, text=text
        )
    )


def started() -> pb.InterpretResponse:
    return pb.InterpretResponse(
        session_started=pb.SessionStarted(
            session_id="s-sim",
            effective_config=pb.InterpretConfig(
                translation_options=pb.TranslationOptions(
                    mode=pb.INTERPRETATION_MODE_SIMULTANEOUS, latency=pb.SIMULTANEOUS_LATENCY_BALANCED
                )
            ),
            simultaneous_directions=[
                pb.SimultaneousDirection(
                    source_language_code="en-US",
                    target_language_code="es",
                    latency=pb.SIMULTANEOUS_LATENCY_BALANCED,
                    holdback_words=1,
                    agreement=2,
                )
            ],
        )
    )


@pytest.fixture
def fake() -> Iterator[tuple[FakeServicer, str]]:
    servicer = FakeServicer()
    servicer.events = [
        started(),
        token(1, "es", "Nos"),
        tentative(1, "es", " gustaría hablar"),
        token(1, "es", " gustaría"),
        tentative(1, "es", " hablar del"),
        final(1, "we would like to discuss the contract", 0, 2, ["es"]),
        token(1, "es", " hablar del contrato."),
        complete(1, "es", "Nos gustaría hablar del contrato."),
    ]
    with serve(servicer) as target:
        yield servicer, target


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "speech.wav"
    soundfile.write(path, np.zeros((8000, 1), dtype=np.int16), 16000, subtype="PCM_16")
    return path


def test_config_asks_for_simultaneous_mode_with_tentative_text_by_default() -> None:
    options = config(source="en-US", target="es", simultaneous=True).translation_options
    assert options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS
    assert options.latency == pb.SIMULTANEOUS_LATENCY_UNSPECIFIED  # the server's default
    assert options.tentative_translations is True
    cfg = config(source="ko-KR", target="en", simultaneous=True, latency="Accurate", tentative=False)
    options = cfg.translation_options
    assert options.latency == pb.SIMULTANEOUS_LATENCY_ACCURATE
    assert options.tentative_translations is False
    consecutive = config(source="en-US", target="es").translation_options
    assert consecutive.mode == pb.INTERPRETATION_MODE_UNSPECIFIED and not consecutive.tentative_translations
    with pytest.raises(ValueError, match="unknown latency"):
        config(source="en", target="es", simultaneous=True, latency="instant")
    with pytest.raises(ValueError, match="simultaneous=True"):
        config(source="en", target="es", latency="low")


def test_events_carry_the_chosen_pacing_and_tentative_text() -> None:
    opening = event_from_proto(started())
    assert isinstance(opening, SessionStarted) and opening.simultaneous
    assert opening.simultaneous_directions == (SimultaneousDirection("en-US", "es", "balanced", 1, 2, 0.0),)
    grey = event_from_proto(tentative(1, "es", " hablar"))
    assert isinstance(grey, TranslationTentative) and grey.text == " hablar" and grey.utterance_id == 1


def test_interpret_simultaneous_sends_the_mode_and_prints_committed_text(capsys, fake, wav) -> None:
    servicer, target = fake
    code = cli.main(
        [
            *("interpret", str(wav), "--source", "en-US", "--target", "es"),
            "--simultaneous",
            "--latency",
            "low",
            "--fast",
            "--server",
            target,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    options = servicer.requests[0].config.translation_options
    assert options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS
    assert options.latency == pb.SIMULTANEOUS_LATENCY_LOW
    assert options.tentative_translations
    lines = out.splitlines()
    assert "simultaneous: en-US→es balanced (holds 1)" in lines[0]
    assert lines[1:3] == [
        "#1 en-US 0.00–2.00s  we would like to discuss the contract",
        "   es     Nos gustaría hablar del contrato.",
    ]
    assert "gustaría hablar del contrato" not in out.replace(
        "Nos gustaría hablar del contrato.", ""
    )  # no tentative on a pipe


def test_on_a_terminal_committed_text_is_plain_and_the_tentative_rest_greyed(monkeypatch, capsys, fake, wav) -> None:
    _, target = fake
    buf = io.StringIO()
    monkeypatch.setattr(cli, "Console", lambda **kw: Console(file=buf, force_terminal=True, width=120, **kw))
    code = cli.main(
        ["interpret", str(wav), "--source", "en-US", "--target", "es", "--simultaneous", "--fast", "--server", target]
    )
    assert code == 0, capsys.readouterr().err
    screen = buf.getvalue()
    # The live region drew "Nos" plain, then " gustaría hablar" dim and italic (SGR 2 and 3) after it.
    assert " Nos\x1b[2;3m gustaría hablar\x1b[0m" in screen
    assert "Nos gustaría hablar del contrato." in screen


def test_latency_without_simultaneous_is_a_usage_error(capsys, fake, wav) -> None:
    _, target = fake
    code = cli.main(["interpret", str(wav), "--source", "en", "--target", "es", "--latency", "low", "--server", target])
    assert code == 2
    assert "--latency and --no-tentative need --simultaneous" in capsys.readouterr().err
