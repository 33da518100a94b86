"""The OpenAI engine's HTTP client against the SDK it replaced, in one run: client CPU per translation.

Both talk to the fake OpenAI in a process of its own (plain HTTP on
loopback, the bench's TTFT and token rate), ``rounds`` x ``translations``
translations of 10 tokens, ``concurrency`` at a time, on one event loop in
this process; the figure is this process's CPU time per translation
(``time.process_time``), so the fake's work is not in it. The two clients
alternate round by round, so a busy machine weighs on both alike.

- ``engine``: the engine as it is (``OpenAITranslator.translate``:
  ``aiohttp`` and our SSE reader, our retry loop, the same prompts).
- ``sdk``: the engine's previous request path, kept here only as the
  reference: ``AsyncOpenAI.chat.completions.with_streaming_response.create``
  (the SDK builds and sends the request) and the body read by hand (the
  engine did not use the SDK's stream parser either).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from bench import stats
from bench.procs import LOOPBACK, Children, free_port, python, wait_for_tcp
from tongyeok_server.settings import Settings
from tongyeok_server.translation import openai_engine, prompts
from tongyeok_server.translation.base import TranslationRequest

TEXT = "we would like to discuss the delivery schedule of the order today"  # 10 words: 11 tokens back


async def _engine_round(translator: openai_engine.OpenAITranslator, n: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            async for _ in translator.translate(TranslationRequest(f"{TEXT} {i}", "en", "ko")):
                pass

    await asyncio.gather(*(one(i) for i in range(n)))


async def _sdk_round(client: Any, model: str, n: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        messages = [
            {"role": m.role, "content": m.content}
            for m in prompts.build_messages(TranslationRequest(f"{TEXT} {i}", "en", "ko"))
        ]
        async with (
            gate,
            client.chat.completions.with_streaming_response.create(
                model=model, messages=messages, stream=True, temperature=0.2
            ) as response,
        ):
            tail = b""
            async for piece in response.http_response.aiter_bytes():
                events = (tail + piece).split(b"\n\n")
                tail = events.pop()
                for event in events:
                    data = event.removeprefix(b"data: ")
                    if data != b"[DONE]":
                        json.loads(data)

    await asyncio.gather(*(one(i) for i in range(n)))


async def _measure(base_url: str, rounds: int, translations: int, concurrency: int) -> dict[str, list[float]]:
    import openai

    os.environ.setdefault("OPENAI_API_KEY", "bench-not-a-secret")
    settings = Settings.of(translator="openai", openai_model="gpt-bench", openai_base_url=base_url)
    translator = openai_engine.create(settings.translation, settings.openai)
    limits = openai.DEFAULT_CONNECTION_LIMITS
    sdk = openai.AsyncOpenAI(
        api_key="bench-not-a-secret",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(
            limits=type(limits)(
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=30.0,
            )
        ),
    )
    per: dict[str, list[float]] = {"engine": [], "sdk": []}
    try:
        # A warm-up round each: imports, first connections.
        await _engine_round(translator, concurrency, concurrency)
        await _sdk_round(sdk, "gpt-bench", concurrency, concurrency)
        for _ in range(rounds):
            for name in ("engine", "sdk"):
                began = time.process_time()
                if name == "engine":
                    await _engine_round(translator, translations, concurrency)
                else:
                    await _sdk_round(sdk, "gpt-bench", translations, concurrency)
                per[name].append((time.process_time() - began) * 1000 / translations)
    finally:
        await translator.close()
        await sdk.close()
    return per


def run_openai_client(
    work_dir: Path,
    log: Any = print,
    *,
    rounds: int = 5,
    translations: int = 200,
    concurrency: int = 16,
    ttft_ms: float = 100.0,
    tokens_per_s: float = 50.0,
) -> dict[str, Any]:
    """Client CPU per translation, the engine against the SDK, with the fake OpenAI in its own process."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log(f"openai client: {rounds} x {translations} translations each, the engine and the SDK alternating ...")
    with Children() as children:
        port = free_port()
        fake = children.start(
            "fake-openai",
            [
                python(), "-m", "tests.support.fake_openai", "--port", str(port),
                "--ttft-ms", str(ttft_ms), "--tokens-per-s", str(tokens_per_s),
            ],
            work_dir,
        )  # fmt: skip
        wait_for_tcp(fake, port, 30)
        per = asyncio.run(_measure(f"http://{LOOPBACK}:{port}/v1", rounds, translations, concurrency))
    return {
        "rounds": rounds,
        "translations": translations,
        "concurrency": concurrency,
        "cpu_ms_per_translation": {name: stats.summary(values) for name, values in per.items()},
        "raw": per,
    }


def openai_client_targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The engine's client must cost less CPU per translation than the SDK did (medians of the rounds)."""
    if not result:
        return []
    cpu = result["cpu_ms_per_translation"]
    now, sdk = cpu["engine"]["p50"], cpu["sdk"]["p50"]
    return [
        {
            "target": "OpenAI engine: client CPU per translation, aiohttp vs the SDK it replaced (same run, medians)",
            "required": "< the SDK's",
            "measured": f"{now:.2f} ms vs {sdk:.2f} ms ({now / sdk:.0%})",
            "met": now < sdk,
        }
    ]
