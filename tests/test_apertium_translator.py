"""The Apertium translator against the real Debian packages (apertium + apertium-eng-spa)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from tongyeok_server.errors import ServiceError
from tongyeok_server.settings import ServerSettings
from tongyeok_server.translation import apertium_engine
from tongyeok_server.translation.apertium_engine import (
    CONTEXT_IGNORED,
    STYLE_IGNORED,
    ApertiumTranslator,
    discover_modes,
)
from tongyeok_server.translation.apertium_pipeline import Cancelled, escape, unescape
from tongyeok_server.translation.base import (
    GlossaryTerm,
    Style,
    TokenDelta,
    TranslationOptions,
    TranslationRequest,
)

MODES = Path("/usr/share/apertium/modes")
pytestmark = [
    pytest.mark.skipif(
        shutil.which("lt-proc") is None or not (MODES / "eng-spa.mode").exists(),
        reason="needs the Debian packages apertium and apertium-eng-spa",
    ),
    pytest.mark.timeout(60),
]


@pytest.fixture(scope="module")
def translator() -> Iterator[ApertiumTranslator]:
    t = ApertiumTranslator()
    t.warm_up()
    yield t
    t.close()


def request(text: str, source: str = "en", target: str = "es", **options: object) -> TranslationRequest:
    return TranslationRequest(text, source, target, TranslationOptions(**options))  # type: ignore[arg-type]


def tokens(translator: ApertiumTranslator, req: TranslationRequest) -> list[str]:
    chunks = list(translator.translate(req))
    assert all(isinstance(c, TokenDelta) for c in chunks)
    return [c.text for c in chunks if isinstance(c, TokenDelta)]


def translate(
    translator: ApertiumTranslator, text: str, source: str = "en", target: str = "es", **options: object
) -> str:
    return "".join(tokens(translator, request(text, source, target, **options)))


# -- discovery and options -----------------------------------------------------


def test_discovers_installed_pairs(translator):
    assert set(translator.language_pairs()) >= {("en", "es"), ("es", "en")}
    # The plain spa-eng mode serves es->en, not the spa-eng_US variant.
    assert translator.pipeline("es", "en").mode == "spa-eng"
    assert translator.supports("en-US", "es-MX")
    assert not translator.supports("en", "ko")
    assert translator.description.name == "apertium"


def test_variant_mode_only_when_no_plain_one(tmp_path):
    for name in ["spa-eng_US.mode", "eng-spa.mode", "eng-spa-tagger.mode", "README", "eng-spa_debug.txt"]:
        (tmp_path / name).write_text("")
    modes = discover_modes(tmp_path)
    assert {pair: m.mode for pair, m in modes.items()} == {("en", "es"): "eng-spa", ("es", "en"): "spa-eng_US"}
    (tmp_path / "spa-eng.mode").write_text("")
    assert discover_modes(tmp_path)[("es", "en")].mode == "spa-eng"


def test_missing_apertium_exits_with_install_hint(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match=r"no language pair installed.*apt-get install apertium apertium-eng-spa"):
        ApertiumTranslator(modes_dir=tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match=r"lt-proc.*not found.*apt-get install apertium apertium-eng-spa"):
        apertium_engine.create(ServerSettings())


def test_unsupported_pair_is_invalid_argument(translator):
    with pytest.raises(ServiceError) as info:
        translator.translate(request("Hello", "en", "ko"))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "en->es" in info.value.message and "es->en" in info.value.message


def test_ignored_options_are_exact(translator):
    # Defaults the caller did not ask for are not "ignored"; what is applied shows in effective_options.
    assert translator.ignored_options(TranslationOptions()) == []
    asked = TranslationOptions(requested=frozenset({"style", "context_sentences"}))
    assert translator.ignored_options(asked) == [STYLE_IGNORED, CONTEXT_IGNORED]
    applied = translator.effective_options(asked)
    assert (applied.style, applied.context_sentences) == (Style.LITERAL, 0)
    literal = TranslationOptions(style=Style.LITERAL, context_sentences=0, glossary=(GlossaryTerm("Acme", "X"),))
    assert translator.ignored_options(literal) == []
    assert STYLE_IGNORED == (
        "translation_options.style: apertium translates literally (rule-based); "
        "BUSINESS/NEUTRAL styles need an LLM engine such as --translator openai"
    )
    assert CONTEXT_IGNORED == "translation_options.context_sentences: apertium translates each sentence on its own"


# -- translation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source", "target", "expected"),
    [
        ("Good morning, everyone.", "en", "es", "Buenos días"),
        ("I have three apples.", "en-US", "es", "manzanas"),
        ("The report is ready.", "en", "es-ES", "informe"),
        ("Buenos días, el informe está listo.", "es", "en", "Good morning"),
        ("Tengo dos manzanas.", "es-MX", "en-GB", "apples"),
    ],
)
def test_translates_sentences(translator, text, source, target, expected):
    out = translate(translator, text, source, target)
    assert expected in out, out
    assert not re.search(r"(^|\s)[*#@]\w", out), f"unknown-word mark left in {out!r}"


def test_tokens_are_words_with_leading_whitespace(translator):
    toks = tokens(translator, request("Good morning, everyone. The report is ready."))
    assert len(toks) >= 5
    assert not toks[0][0].isspace()
    assert all(t[0] == " " and t.strip() for t in toks[1:])


def test_unknown_words_carry_no_marks(translator):
    out = translate(translator, "The xyzzyq report is ready.")
    assert "xyzzyq" in out and "*" not in out and "#" not in out and "@" not in out


def test_stream_format_characters_survive(translator):
    specials = "[ ] { } ^ $ / \\ @ < >"
    out = translate(translator, f"Send it now {specials} please.")
    for ch in specials.split():
        assert ch in out, (ch, out)
    assert unescape(escape(specials)) == specials
    # The next request still gets its own answer (the pipeline stayed in step).
    assert "Buenos días" in translate(translator, "Good morning.")


def test_nul_and_newlines_do_not_derail_the_pipeline(translator):
    out = translate(translator, "Good morning\x00 everyone.\nThe report\r\nis ready.\x00")
    assert "Buenos días" in out and "informe" in out
    assert "manzanas" in translate(translator, "I have apples.")


def test_empty_and_blank_text_give_no_tokens(translator):
    assert tokens(translator, request("")) == []
    assert tokens(translator, request("  \n ")) == []


def test_very_long_text(translator):
    text = "The report is ready and the meeting starts tomorrow. " * 95  # ~5000 characters
    assert len(text) >= 5000
    out = translate(translator, text)
    assert out.count("informe") == 95
    assert "manzanas" in translate(translator, "I have apples.")


def test_glossary_keep_and_target_terms(translator):
    text = "Good morning, blue sky will present the cloud report tomorrow."
    # Without the glossary both terms are translated word by word.
    plain = translate(translator, text)
    assert "cielo" in plain.lower() and "informe de nube" in plain, plain
    glossary = (GlossaryTerm("Blue Sky"), GlossaryTerm("cloud report", "Informe Nube"))
    out = translate(translator, text, glossary=glossary)
    assert "blue sky" in out and "Informe Nube" in out, out
    assert "cielo" not in out.lower() and "ZQXGLOS" not in out, out


def test_glossary_entry_for_another_language_is_not_applied(translator):
    glossary = (GlossaryTerm("report", "RAPPORT", target_language="fr"),)
    out = translate(translator, "The report is ready.", glossary=glossary)
    assert "RAPPORT" not in out and "informe" in out


# -- concurrency, cancellation, failures ----------------------------------------


def test_concurrent_sessions_get_their_own_answers(translator):
    failures: list[str] = []

    def worker(w: int) -> None:
        for i in range(10):
            n = 100 + w * 10 + i
            source, target, text, word = (
                ("en", "es", f"I have {n} apples.", "manzanas")
                if (w + i) % 2
                else ("es", "en", f"Tengo {n} manzanas.", "apples")
            )
            out = translate(translator, text, source, target)
            numbers = re.findall(r"\d+", out)
            if numbers != [str(n)] or word not in out:
                failures.append(f"{text!r} -> {out!r}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures


def test_cancel_before_iterating(translator):
    stream = translator.translate(request("Good morning."))
    stream.cancel()
    stream.cancel()  # idempotent
    assert list(stream) == []


def test_cancel_mid_stream(translator):
    stream = translator.translate(request("Good morning, everyone. The report is ready."))
    it = iter(stream)
    assert isinstance(next(it), TokenDelta)
    stream.cancel()
    assert list(it) == []


def test_cancel_while_waiting_for_the_pipeline(translator):
    pipeline = translator.pipeline("en", "es")
    stream = translator.translate(request("Good morning."))
    got: list[object] = []
    done = threading.Event()

    def consume() -> None:
        got.extend(stream)
        done.set()

    # Hold the pipeline as a long request would, so the stream has to wait.
    with pipeline._lock:
        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(0.1)
        assert not done.is_set()
        began = time.monotonic()
        stream.cancel()
        assert done.wait(1.0), "cancel did not stop a stream waiting for the pipeline"
        waited = time.monotonic() - began
    thread.join(1)
    assert got == []
    assert waited < 0.5
    assert "Buenos días" in translate(translator, "Good morning.")


def test_answer_of_an_abandoned_request_is_skipped(translator):
    pipeline = translator.pipeline("en", "es")
    calls = 0

    def cancelled_once_sent() -> bool:
        # False before the request is written, True while its answer is awaited.
        nonlocal calls
        calls += 1
        return calls > 1

    with pytest.raises(Cancelled):
        pipeline.translate("The report is ready and the meeting starts tomorrow. " * 40, cancelled=cancelled_once_sent)
    out = translate(translator, "Good morning.")
    assert out == "Buenos días.", out


def test_killed_pipeline_is_restarted(translator):
    pipeline = translator.pipeline("en", "es")
    assert "Buenos días" in translate(translator, "Good morning.")
    starts, old_pids = pipeline.starts, pipeline.pids
    victim = old_pids[len(old_pids) // 2]  # a middle stage
    os.kill(victim, signal.SIGKILL)
    psutil.Process(victim).wait(timeout=5) if psutil.pid_exists(victim) else None
    assert "Buenos días" in translate(translator, "Good morning.")
    assert pipeline.starts == starts + 1
    assert not set(pipeline.pids) & set(old_pids)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in old_pids)


def test_close_leaves_no_processes():
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    t = ApertiumTranslator()
    started = time.perf_counter()
    timings = t.warm_up()
    start_s = time.perf_counter() - started
    pids = [pid for pair in t.language_pairs() for pid in t.pipeline(*pair).pids]
    assert len(pids) >= 2 * 10
    mem = [psutil.Process(pid).memory_full_info() for pid in t.pipeline("en", "es").pids]
    print(
        f"\napertium warm_up {start_s * 1000:.0f} ms ({', '.join(f'{m} {s * 1000:.0f} ms' for m, s in timings.items())}); "
        f"eng-spa pipeline: {len(mem)} processes, RSS {sum(m.rss for m in mem) / 2**20:.0f} MiB, "
        f"USS {sum(m.uss for m in mem) / 2**20:.0f} MiB"
    )
    t.close()
    assert not [p for p in pids if psutil.pid_exists(p)], "pipeline processes left behind (or zombies)"
    assert {p.pid for p in me.children(recursive=True)} - before == set()
    with pytest.raises(ServiceError) as info:
        t.translate(request("Good morning."))
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


def test_warm_sentence_latency(translator):
    sentences = [f"I will present the report number {i} to the team tomorrow morning." for i in range(30)]
    first_token: list[float] = []
    whole: list[float] = []
    for text in sentences:
        began = time.perf_counter()
        it = iter(translator.translate(request(text)))
        next(it)
        first_token.append(time.perf_counter() - began)
        list(it)
        whole.append(time.perf_counter() - began)
    median_first = statistics.median(first_token)
    print(
        f"\napertium warm en->es: first token median {median_first * 1000:.2f} ms, "
        f"max {max(first_token) * 1000:.2f} ms; whole sentence median {statistics.median(whole) * 1000:.2f} ms"
    )
    # Loose on purpose: catches a process start per sentence (~300 ms), not a slow machine.
    assert median_first < 0.1
