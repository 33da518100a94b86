"""Settings: a bad value of each kind exits 2 with one line naming the flag and what it accepts, no traceback."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from tongyeok_server import main as server_main
from tongyeok_server.expenses.readers.registry import ENGINES
from tongyeok_server.recognition.registry import RECOGNIZERS
from tongyeok_server.settings import Settings, SettingsError, from_args, parser
from tongyeok_server.settings.engines import RecognizerName, SynthesizerName, TranslatorName
from tongyeok_server.synthesis.registry import SYNTHESIZERS
from tongyeok_server.translation.registry import TRANSLATORS

# (argv, environment, what the one line must say): one case per kind of bad value.
BAD = [
    (["--port", "70000"], {}, "--port '70000': expected an integer from 0 to 65535"),
    (["--max-streams", "-1"], {}, "--max-streams '-1': expected an integer of at least 1"),
    (["--idle-timeout", "-5"], {}, "--idle-timeout '-5': expected a number of seconds of at least 0"),
    (["--openai-timeout", "0"], {}, "--openai-timeout '0': expected a number of seconds above 0"),
    (["--port", "fifty"], {}, "--port 'fifty': expected an integer from 0 to 65535"),
    (["--translation-threads", "-2"], {}, "--translation-threads '-2': expected an integer of at least 0"),
    (["--processes", "0"], {}, "--processes '0': expected a number of processes of at least 1, or auto"),
    (["--recognizer", "siri"], {}, "--recognizer 'siri': expected one of whisper, pocketsphinx, google"),
    (["--log-format", "xml"], {}, "--log-format 'xml': expected one of text, json"),
    (["--whisper-model-sha256", "abc"], {}, "--whisper-model-sha256 'abc': expected 64 hexadecimal digits"),
    (["--advertise-address", "nowhere"], {}, "--advertise-address 'nowhere': expected HOST:PORT"),
    ([], {"TONGYEOK_PORT": "-1"}, "TONGYEOK_PORT='-1' (the variable of --port): expected an integer from 0 to 65535"),
    ([], {"TONGYEOK_REFLECTION": "maybe"}, "TONGYEOK_REFLECTION='maybe' (the variable of --reflection): expected true"),
    (["--tls-cert", "a.crt"], {}, "--tls-cert and --tls-key go together"),
    (["--jwt-issuer", "me"], {}, "--jwt-issuer/--jwt-audience need --jwt-jwks"),
    (["--processes", "2", "--port", "0"], {}, "--processes needs a fixed --port"),
    (["--google-insecure", "--recognizer", "google"], {}, "--google-insecure needs --google-endpoint"),
    (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    (["--port"], {}, "argument --port: expected one argument"),
]


@pytest.mark.parametrize(("argv", "env", "message"), BAD, ids=[" ".join(a) or next(iter(e)) for a, e, _ in BAD])
def test_a_bad_value_exits_2_with_one_line(argv, env, message, monkeypatch, capsys) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert server_main.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("tongyeok-server: ") and message in err, err


def test_the_installed_command_says_it_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tongyeok_server", "--idle-timeout", "-5"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr == "tongyeok-server: --idle-timeout '-5': expected a number of seconds of at least 0\n"


def test_a_flag_wins_over_its_variable_and_the_variable_over_the_default() -> None:
    env = {"TONGYEOK_PORT": "6000", "TONGYEOK_IDLE_TIMEOUT": "7", "TONGYEOK_STORE_AUDIO": "yes"}
    settings = from_args(["--port", "7000"], env)
    assert settings.server.port == 7000
    assert settings.session.idle_timeout_s == 7.0
    assert settings.store.store_audio is True
    assert from_args([], {"TONGYEOK_REFLECTION": ""}).server.reflection is False  # VAR= reads as off
    assert from_args(["--no-reflection"], {"TONGYEOK_REFLECTION": "true"}).server.reflection is False
    assert from_args([], {"TONGYEOK_LOG_LEVEL": "debug"}).observability.log_level == "DEBUG"


def test_the_clouds_own_variables_are_defaults() -> None:
    settings = from_args([], {"GOOGLE_CLOUD_PROJECT": "acme", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert settings.google.google_project == "acme"
    assert settings.openai.openai_base_url == "http://127.0.0.1:9/v1"
    assert from_args(["--google-project", "mine"], {"GOOGLE_CLOUD_PROJECT": "acme"}).google.google_project == "mine"


def test_replace_validates_like_a_flag_and_keeps_the_rest() -> None:
    settings = Settings.of(port=0, recognizer="pocketsphinx")
    assert settings.server.port == 0 and settings.recognition.recognizer == "pocketsphinx"
    assert settings.replace(max_streams=5).server.port == 0
    with pytest.raises(SettingsError, match="--max-streams '0'"):
        settings.replace(max_streams=0)
    with pytest.raises(TypeError, match="no setting named 'colour'"):
        settings.replace(colour="red")


def test_every_engine_name_a_setting_accepts_has_an_engine() -> None:
    assert set(typing.get_args(RecognizerName)) == set(RECOGNIZERS)
    assert set(typing.get_args(TranslatorName)) == set(TRANSLATORS)
    assert set(typing.get_args(SynthesizerName)) == {*SYNTHESIZERS, "none"}
    assert ENGINES == ("embedded", "tesseract", "rapidocr", "documentai", "openai")


def test_help_lists_every_flag_by_group_with_its_variable() -> None:
    text = parser().format_help()
    for heading in ("server:", "security:", "recognition:", "translation:", "store:", "web:", "observability:"):
        assert f"\n{heading}" in text
    for name in Settings.WHERE:
        flag = "--" + name.removesuffix("_s").replace("_", "-")
        assert flag in text and "TONGYEOK_" + name.removesuffix("_s").upper() in text


def test_what_only_a_start_can_find_exits_1_with_one_line(tmp_path) -> None:
    missing = tmp_path / "nowhere.pem"
    done = subprocess.run(
        [sys.executable, "-m", "tongyeok_server", "--port", "0", "--tls-cert", str(missing), "--tls-key", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("tongyeok-server: ")]
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in done.stderr, done.stderr
