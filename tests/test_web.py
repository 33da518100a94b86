"""The meeting page in a real browser: headless Debian Chromium driven by Playwright, a WAV file as its microphone.

One server (Whisper + Apertium, API keys on, the web port open) and one
browser for the whole module. The microphone says an English sentence and
then a Spanish one, over and over (Chromium loops the file); each test opens
a page, as a person would, and waits for the words on the screen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import srt
from playwright import sync_api as playwright_api

from tests.conftest import running_server
from tests.support.metrics import free_port
from tests.support.speech import Speech, synthesize
from tongyeok_server.app import TongyeokServer
from tongyeok_server.auth.api_keys import hash_key, new_key
from tongyeok_server.auth.caller import Caller, CallerKind, Scope
from tongyeok_server.auth.single_use import SingleUse
from tongyeok_server.gateway.tickets import StreamTickets

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
KEY = new_key()
WAIT_MS = 90_000  # Whisper on a shared 2-core machine, behind other tests
# Where the screenshot goes; `TONGYEOK_WEB_SCREENSHOT=docs/web-page.png` refreshes the README's.
SCREENSHOT = os.environ.get("TONGYEOK_WEB_SCREENSHOT", "")


@pytest.fixture(scope="module")
def microphone() -> Speech:
    return synthesize(
        ["Good morning everyone.", "El contrato está listo para firmar."], pause_s=1.2, voice=["hts", "espeak:es"]
    )


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TongyeokServer]:
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(f"traveller {hash_key(KEY)} interpret,transcripts\n")
    with running_server(
        recognizer="whisper",
        offline_workers=1,
        whisper_streams_per_worker=2,
        web_port=free_port(),
        api_keys=str(keys),
        caller_max_streams=4,
        caller_streams_per_minute=0,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def browser(microphone: Speech) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make test` (it installs deploy/packages/dev.txt)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone.path}",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, web_server: TongyeokServer) -> Iterator[Any]:
    # bypass_csp: Playwright evaluates its own scripts in the page; the page itself allows only its own files.
    context = browser.new_context(permissions=["microphone"], viewport={"width": 900, "height": 640}, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


def open_page(page: Any, server: TongyeokServer, query: str) -> None:
    page.goto(f"http://127.0.0.1:{server.web_port}/?{query}")
    page.fill("#credential", KEY)
    page.dispatch_event("#credential", "change")
    page.wait_for_function("document.querySelector('#source-1').options.length > 0")


def said(page: Any, lang: str, words: str) -> Any:
    """The final transcript in ``lang`` containing ``words``, once it is on the page."""
    selector = f"li:has(.said.final[data-lang^='{lang}']:has-text('{words}'))"
    page.wait_for_selector(selector, timeout=WAIT_MS)
    return page.locator(selector).first


def translated(row: Any, lang: str) -> str:
    el = row.locator(f".translation.complete[data-lang^='{lang}']")
    el.wait_for(timeout=WAIT_MS)
    return str(el.inner_text())


def test_the_page_shows_the_spoken_words_and_their_translation(page: Any, web_server: TongyeokServer) -> None:
    open_page(page, web_server, "source=en&target=es")
    assert page.input_value("#target") == "es"
    page.click("#start")
    row = said(page, "en", "Good morning")
    assert "Buenos días" in translated(row, "es")
    page.screenshot(path=SCREENSHOT or str(Path(os.environ.get("TMPDIR", "/tmp")) / "tongyeok-web-page.png"))
    page.click("#start")  # Stop: the last sentence is finished, then the server closes the socket normally
    page.wait_for_selector("#status:has-text('Ended')", timeout=WAIT_MS)
    page.wait_for_selector("#exports:not([hidden])")
    with page.expect_download() as download:
        page.click("#export-srt")
    subtitles = list(srt.parse(Path(download.value.path()).read_text()))
    assert any("Good morning" in s.content for s in subtitles), [s.content for s in subtitles]


def test_the_simultaneous_switch_interprets_while_the_speaker_talks(page: Any, web_server: TongyeokServer) -> None:
    received: list[dict[str, Any]] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda f: received.append(json.loads(f)) if isinstance(f, str) else None),
    )
    open_page(page, web_server, "source=en&target=es")
    assert page.is_visible("#simultaneous-label")
    page.check("#simultaneous")
    page.click("#start")
    row = said(page, "en", "Good morning")
    assert "Buenos días" in translated(row, "es")
    page.click("#start")
    page.wait_for_selector("#status:has-text('Ended')", timeout=WAIT_MS)
    (started,) = [m["sessionStarted"] for m in received if "sessionStarted" in m]
    assert started["effectiveConfig"]["translationOptions"]["mode"] == "INTERPRETATION_MODE_SIMULTANEOUS"
    assert started["simultaneousDirections"][0]["targetLanguageCode"] == "es"
    # Committed tokens only, never reset: per utterance they add up to the complete translation.
    assert not [m for m in received if "translationReset" in m]
    tokens: dict[str, str] = {}
    for m in received:
        if "translationToken" in m:
            t = m["translationToken"]
            tokens[t["utteranceId"]] = tokens.get(t["utteranceId"], "") + t["text"]
    completes = {
        m["translationComplete"]["utteranceId"]: m["translationComplete"]["text"]
        for m in received
        if "translationComplete" in m
    }
    assert completes and all(tokens[u] == text for u, text in completes.items())


def test_two_way_each_side_is_translated_into_the_other(page: Any, web_server: TongyeokServer) -> None:
    open_page(page, web_server, "source=en&source=es")
    assert page.is_hidden("#target-label")  # two-way: each side goes into the other
    page.click("#start")
    english = said(page, "en", "morning")
    spanish = said(page, "es", "contrato")
    assert "Buenos" in translated(english, "es")
    assert any(word in translated(spanish, "en").lower() for word in ("contract", "agreement"))
    page.click("#start")


# -- tickets and hostile sockets, from the same browser --------------------------------------------------

PROBE = """async ([ticket, frames, waitForStart]) => {
  let url = `ws://${location.host}/v1/interpret`;
  if (ticket === null) {
    const r = await fetch('/v1/tickets', {method: 'POST', headers: {Authorization: 'Bearer %KEY%'}});
    ticket = (await r.json()).ticket;
  }
  if (ticket) url += '?ticket=' + encodeURIComponent(ticket);
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const texts = [];
  let started;
  const startedP = new Promise((r) => (started = r));
  ws.onmessage = (e) => { if (typeof e.data === 'string') { texts.push(JSON.parse(e.data)); if (texts.at(-1).sessionStarted) started(); } };
  const closed = new Promise((r) => (ws.onclose = (e) => r({code: e.code, reason: e.reason})));
  await new Promise((r) => (ws.onopen = r, ws.onclose = (e) => r()));
  ws.onclose = null;
  const done = new Promise((r) => (ws.onclose = (e) => r({code: e.code, reason: e.reason})));
  for (const f of frames) {
    if (ws.readyState !== 1) break;
    if (f.text !== undefined) ws.send(f.text);
    else ws.send(new Uint8Array(f.bytes));
    if (waitForStart && texts.length === 0 && f.text !== undefined) await Promise.race([startedP, done]);
  }
  const result = await done;
  return {...result, ticket, errors: texts.filter((t) => t.error).map((t) => t.error), started: texts.some((t) => t.sessionStarted)};
}"""
CONFIG = json.dumps(
    {
        "audioFormat": {"encoding": "AUDIO_ENCODING_LINEAR16", "sampleRateHertz": 16000, "channelCount": 1},
        "sourceLanguageCodes": ["en"],
        "targetLanguageCodes": ["es"],
        "storeTranscript": False,
    }
)


def probe(page: Any, ticket: str | None, frames: list[dict[str, Any]], wait_for_start: bool = False) -> dict[str, Any]:
    """Open a socket from the page (a fresh ticket when ``ticket`` is None), send ``frames``, return how it closed."""
    result: dict[str, Any] = page.evaluate(PROBE.replace("%KEY%", KEY), [ticket, frames, wait_for_start])
    return result


def test_a_ticket_used_twice_or_late_is_refused(page: Any, web_server: TongyeokServer) -> None:
    page.goto(f"http://127.0.0.1:{web_server.web_port}/")
    first = probe(page, None, [{"text": CONFIG}, {"text": '{"end": {}}'}], wait_for_start=True)
    assert first["started"] and first["code"] == 1000, first
    again = probe(page, first["ticket"], [{"text": CONFIG}])
    assert again["code"] == 4016 and "already used" in again["reason"], again  # UNAUTHENTICATED
    caller = Caller("key:traveller", CallerKind.API_KEY, frozenset({Scope.INTERPRET}))
    late = StreamTickets(web_server.resumption.secret, SingleUse("ticket", 90), ttl_s=-5).mint(caller, "").value
    expired = probe(page, late, [{"text": CONFIG}])
    assert expired["code"] == 4016 and "expired" in expired["reason"], expired
    missing = probe(page, "", [{"text": CONFIG}])
    assert missing["code"] == 4016 and "ticket" in missing["errors"][0]["message"], missing


def test_a_hostile_socket_gets_a_clear_close_and_no_traceback(
    page: Any, web_server: TongyeokServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    page.goto(f"http://127.0.0.1:{web_server.web_port}/")
    bad_json = probe(page, None, [{"text": "{config: nope"}])
    assert bad_json["code"] == 4003 and "not JSON" in bad_json["reason"], bad_json  # INVALID_ARGUMENT
    not_a_request = probe(page, None, [{"text": '{"config": {"sourceLanguageCodes": 7}}'}])
    assert not_a_request["code"] == 4003 and "InterpretRequest" in not_a_request["errors"][0]["message"]
    binary_first = probe(page, None, [{"bytes": [0, 0, 0, 0]}])
    assert binary_first["code"] == 4003 and "first frame must be text" in binary_first["reason"], binary_first
    huge = probe(page, None, [{"text": CONFIG}, {"bytes": [0] * (1536 * 1024)}], wait_for_start=True)
    assert huge["code"] == 4008 and "larger than 1 MiB" in huge["reason"], huge  # RESOURCE_EXHAUSTED, as on gRPC
    flood = probe(page, None, [{"text": CONFIG}, *([{"bytes": [0, 0]}] * 1000)], wait_for_start=True)
    assert flood["code"] == 4008 and "frames in a second" in flood["reason"], flood  # RESOURCE_EXHAUSTED
    odd = probe(page, None, [{"text": CONFIG}, {"bytes": [0, 0, 0]}], wait_for_start=True)
    assert odd["code"] == 4003 and "whole" in odd["errors"][0]["message"], odd  # half a 16-bit sample
    # A page of another site may not open a stream, whatever credential it holds.
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        assert thread.submit(asyncio.run, _foreign_origin(web_server.web_port)).result() == 4007  # PERMISSION_DENIED
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    assert web_server.interpret.open_streams == 0 or _settles(web_server)


async def _foreign_origin(port: int) -> int:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"http://127.0.0.1:{port}/v1/interpret", headers={"Origin": "https://evil.example"})
        await ws.receive()
        await ws.close()
        return int(ws.close_code or 0)


def _settles(server: TongyeokServer) -> bool:
    from tests.support.waiting import wait_until

    return wait_until(lambda: server.interpret.open_streams == 0, 20)
