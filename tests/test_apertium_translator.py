"""The Apertium translator against the real Debian packages (apertium + apertium-eng-spa).

The engine runs on one event loop, as in the server: the module shares one
(``asyncio.Runner``) and one warmed-up translator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import psutil
import pytest

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.settings import OpenAISettings, TranslationSettings
from tongyeok_server.translation import apertium_engine
from tongyeok_server.translation.apertium_engine import (
    CONTEXT_IGNORED,
    STYLE_IGNORED,
    ApertiumTranslator,
    discover_modes,
)
from tongyeok_server.translation.apertium_pipeline import escape, unescape
from tongyeok_server.translation.base import (
    GlossaryTerm,
    Style,
    TokenDelta,
    TranslationChunk,
    TranslationOptions,
    TranslationRequest,
    TranslationStream,
)

MODES = Path("/usr/share/apertium/modes")
pytestmark = [
    pytest.mark.skipif(
        shutil.which("lt-proc") is None or not (MODES / "eng-spa.mode").exists(),
        reason="needs the Debian packages apertium and apertium-eng-spa",
    ),
    pytest.mark.timeout(60),
]


T = TypeVar("T")
_runner: list[asyncio.Runner] = []


@pytest.fixture(scope="module", autouse=True)
def _loop() -> Iterator[None]:
    with asyncio.Runner() as runner:
        _runner.append(runner)
        yield
        _runner.clear()


def run(work: Awaitable[T]) -> T:
    """Run ``work`` on the module's loop."""
    return _runner[0].run(work)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def translator(_loop: None) -> Iterator[ApertiumTranslator]:
    t = ApertiumTranslator()
    run(t.warm_up())
    yield t
    run(t.close())


async def _collect(stream: TranslationStream) -> list[TranslationChunk]:
    async with contextlib.aclosing(stream) as chunks:
        return [chunk async for chunk in chunks]


def request(text: str, source: str = "en", target: str = "es", **options: object) -> TranslationRequest:
    return TranslationRequest(text, source, target, TranslationOptions(**options))  # type: ignore[arg-type]


def tokens(translator: ApertiumTranslator, req: TranslationRequest) -> list[str]:
    chunks = run(_collect(translator.translate(req)))
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
    with pytest.raises(StartError, match=r"no language pair installed.*apt-get install apertium apertium-eng-spa"):
        ApertiumTranslator(modes_dir=tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(StartError, match=r"lt-proc.*not found.*apt-get install apertium apertium-eng-spa"):
        apertium_engine.create(TranslationSettings(), OpenAISettings())


def test_unsupported_pair_is_invalid_argument(translator):
    with pytest.raises(ServiceError) as info:
        run(_collect(translator.translate(request("Hello", "en", "ko"))))
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
    """Requests of many sessions are pipelined through one pipeline per pair: each gets its own answer."""
    failures: list[str] = []

    async def session(w: int) -> None:
        for i in range(10):
            n = 100 + w * 10 + i
            source, target, text, word = (
                ("en", "es", f"I have {n} apples.", "manzanas")
                if (w + i) % 2
                else ("es", "en", f"Tengo {n} manzanas.", "apples")
            )
            chunks = await _collect(translator.translate(request(text, source, target)))
            out = "".join(c.text for c in chunks if isinstance(c, TokenDelta))
            numbers = re.findall(r"\d+", out)
            if numbers != [str(n)] or word not in out:
                failures.append(f"{text!r} -> {out!r}")

    async def sessions() -> None:
        await asyncio.gather(*(session(w) for w in range(8)))

    run(sessions())
    assert not failures, failures


def test_a_stream_never_iterated_starts_nothing(translator):
    pipeline = translator.pipeline("en", "es")
    starts = pipeline.starts
    run(translator.translate(request("Good morning.")).aclose())
    assert pipeline.starts == starts
    assert "Buenos días" in translate(translator, "Good morning.")


def test_cancel_mid_stream(translator):
    async def first_then_cancel() -> list[TranslationChunk]:
        got: list[TranslationChunk] = []
        stream = translator.translate(request("Good morning, everyone. The report is ready."))

        async def consume() -> None:
            async for chunk in stream:
                got.append(chunk)
                await asyncio.sleep(10)  # a slow consumer, cancelled here

        task = asyncio.create_task(consume())
        while not got:
            await asyncio.sleep(0.001)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return got

    got = run(first_then_cancel())
    assert len(got) == 1 and isinstance(got[0], TokenDelta)
    assert "Buenos días" in translate(translator, "Good morning.")


def test_answer_of_an_abandoned_request_is_skipped(translator: ApertiumTranslator) -> None:
    """A request cancelled while its long answer is in the pipeline: the next request gets its own answer."""
    pipeline = translator.pipeline("en", "es")

    async def abandon_then_ask() -> str:
        long = asyncio.create_task(pipeline.translate("The report is ready and the meeting starts tomorrow. " * 40))
        await asyncio.sleep(0.005)  # written, not yet answered
        assert not long.done()
        long.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await long
        return await pipeline.translate("Good morning.")

    assert run(abandon_then_ask()) == "Buenos días."


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
    timings = run(t.warm_up())
    start_s = time.perf_counter() - started
    pids = [pid for pair in t.language_pairs() for pid in t.pipeline(*pair).pids]
    assert len(pids) >= 2 * 10
    mem = [psutil.Process(pid).memory_full_info() for pid in t.pipeline("en", "es").pids]
    print(
        f"\napertium warm_up {start_s * 1000:.0f} ms ({', '.join(f'{m} {s * 1000:.0f} ms' for m, s in timings.items())}); "
        f"eng-spa pipeline: {len(mem)} processes, RSS {sum(m.rss for m in mem) / 2**20:.0f} MiB, "
        f"USS {sum(m.uss for m in mem) / 2**20:.0f} MiB"
    )
    run(t.close())
    assert not [p for p in pids if psutil.pid_exists(p)], "pipeline processes left behind (or zombies)"
    assert {p.pid for p in me.children(recursive=True)} - before == set()
    with pytest.raises(ServiceError) as info:
        run(_collect(t.translate(request("Good morning."))))
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


def test_warm_sentence_latency(translator):
    sentences = [f"I will present the report number {i} to the team tomorrow morning." for i in range(30)]
    first_token: list[float] = []
    whole: list[float] = []

    async def one(text: str) -> None:
        began = time.perf_counter()
        async with contextlib.aclosing(translator.translate(request(text))) as chunks:
            async for _ in chunks:
                if len(first_token) < len(whole) + 1:
                    first_token.append(time.perf_counter() - began)
        whole.append(time.perf_counter() - began)

    for text in sentences:
        run(one(text))
    median_first = statistics.median(first_token)
    print(
        f"\napertium warm en->es: first token median {median_first * 1000:.2f} ms, "
        f"max {max(first_token) * 1000:.2f} ms; whole sentence median {statistics.median(whole) * 1000:.2f} ms"
    )
    # Loose on purpose: catches a process start per sentence (~300 ms), not a slow machine.
    assert median_first < 0.1
