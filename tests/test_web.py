"""The meeting page in a real browser: headless Debian Chromium driven by Playwright, a WAV file as its microphone.

One server (Whisper + Apertium, API keys on, the web port open) and one
browser for the whole module. The microphone says an English sentence and
then a Spanish one, over and over (Chromium loops the file); each test opens
a page, as a person would, and waits for the words on the screen. One opens
it through a TCP proxy (``tests/support/tcp_proxy.py``) and cuts it
mid-meeting, as a dropped Wi-Fi would.
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
from tests.support.tcp_proxy import proxy_to
from tests.support.waiting import wait_until
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


def open_page(page: Any, server: TongyeokServer, query: str, port: int = 0) -> None:
    """The page at ``port`` (the server's web port unless given: a proxy's), the key entered, languages loaded."""
    page.goto(f"http://127.0.0.1:{port or server.web_port}/?{query}")
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


# Each time a translation shows tentative text: its committed text, the greyed rest, and both colours.
TENTATIVE = """
window.__tentative = [];
new MutationObserver(() => {
  for (const rest of document.querySelectorAll('.translation > span.tentative')) {
    const el = rest.parentElement;
    const committed = el.dataset.text, tentative = rest.textContent;
    const seen = window.__tentative.at(-1);
    if (tentative && !(seen && seen.committed === committed && seen.tentative === tentative))
      window.__tentative.push({committed, tentative, grey: getComputedStyle(rest).color,
                               ink: getComputedStyle(el).color, text: el.textContent});
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_the_simultaneous_switch_interprets_while_the_speaker_talks(page: Any, web_server: TongyeokServer) -> None:
    received: list[dict[str, Any]] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda f: received.append(json.loads(f)) if isinstance(f, str) else None),
    )
    page.add_init_script(TENTATIVE)
    open_page(page, web_server, "source=en&target=es")
    assert page.is_visible("#simultaneous-label")
    page.check("#simultaneous")
    page.click("#start")
    row = said(page, "en", "Good morning")
    assert "Buenos días" in translated(row, "es")
    assert row.locator(".translation span.tentative").count() == 0  # the complete translation replaced it
    # While a sentence is being said: its committed words, then the tentative rest greyed after them (the
    # microphone goes on talking, so a sentence whose words all came at once is followed by another).
    page.wait_for_function("window.__tentative.some((t) => t.committed.trim() && t.tentative.trim())", timeout=WAIT_MS)
    page.click("#start")
    page.wait_for_selector("#status:has-text('Ended')", timeout=WAIT_MS)
    shown = [t for t in page.evaluate("window.__tentative") if t["committed"].strip() and t["tentative"].strip()]
    assert all(t["text"].endswith(t["committed"] + t["tentative"]) for t in shown), shown
    assert all(t["grey"] == "rgb(138, 143, 152)" != t["ink"] for t in shown), shown  # style.css's --grey
    tentative = [m["translationTentative"]["text"] for m in received if "translationTentative" in m]
    assert all(t["tentative"] in tentative for t in shown), (shown, tentative)
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


# -- a dropped connection, and the translation spoken ------------------------------------------------------

# Every piece of audio the page schedules, seen from outside the page: Web Audio's own method, wrapped.
PLAYED = """
window.__played = [];
const start = AudioBufferSourceNode.prototype.start;
AudioBufferSourceNode.prototype.start = function (when, ...rest) {
  const data = this.buffer.getChannelData(0);
  let energy = 0;
  for (const x of data) energy += x * x;
  window.__played.push({seconds: this.buffer.duration, rate: this.buffer.sampleRate,
    rms: Math.sqrt(energy / Math.max(1, data.length)), context: this.context.state});
  return start.call(this, when, ...rest);
};
"""


class Frames:
    """What the page's sockets received, in order, as Chromium saw it (text as JSON, binary as its length)."""

    def __init__(self, page: Any) -> None:
        self.sockets: list[list[Any]] = []
        page.on("websocket", self._opened)

    def _opened(self, ws: Any) -> None:
        frames: list[Any] = []
        self.sockets.append(frames)
        ws.on("framereceived", lambda f: frames.append(json.loads(f) if isinstance(f, str) else len(f)))

    def events(self) -> list[dict[str, Any]]:
        """The numbered events received whole (a piece of speech with its audio frame after it), in order."""
        out = []
        for frames in self.sockets:
            for i, frame in enumerate(frames):
                if not isinstance(frame, dict) or "sequenceNumber" not in frame:
                    continue
                if "translationAudio" in frame and not (i + 1 < len(frames) and isinstance(frames[i + 1], int)):
                    continue  # cut before its audio: the page asks for it again
                out.append(frame)
        return out


def test_a_dropped_connection_is_resumed_with_nothing_lost_or_repeated_and_the_translation_is_spoken(
    page: Any, web_server: TongyeokServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tongyeok_server")
    frames = Frames(page)
    page.add_init_script(PLAYED)
    with proxy_to(web_server.web_port) as network:  # the page and its sockets come through it
        open_page(page, web_server, "source=en&target=es", port=network.port)
        page.check("#speak")
        page.click("#start")
        said(page, "en", "Good morning")
        page.wait_for_function("window.__played.length > 0", timeout=WAIT_MS)
        finals_then = page.locator(".said.final").count()
        network.cut()  # mid-meeting, the microphone still talking: Wi-Fi drops
        page.wait_for_function("window.tongyeok.reconnects === 1", timeout=WAIT_MS)
        page.wait_for_selector("#status:has-text('Listening')", timeout=WAIT_MS)
        # The meeting goes on: two more sentences (the one cut, if any, and one said wholly after).
        page.wait_for_function(f"document.querySelectorAll('.said.final').length >= {finals_then + 2}", timeout=WAIT_MS)
        page.click("#start")
        page.wait_for_selector("#status:has-text('Ended')", timeout=WAIT_MS)
    assert len(frames.sockets) == 2 and network.connections >= 2
    events = frames.events()
    # Every event once, in order, across both sockets: the page resumed after the last one it had whole.
    numbers = [int(e["sequenceNumber"]) for e in events]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    resumed = [f["sessionResumed"] for f in frames.sockets[1] if isinstance(f, dict) and "sessionResumed" in f]
    assert len(resumed) == 1, frames.sockets[1][:3]
    # Every sentence on the page once, as the server recognised it.
    finals = {
        str(e["finalTranscript"]["utteranceId"]): e["finalTranscript"]["text"] for e in events if "finalTranscript" in e
    }
    rows = page.eval_on_selector_all(
        "#transcript li[data-utterance]",
        "els => els.map(li => [li.dataset.utterance, li.querySelector('.said').textContent])",
    )
    rows = [(u, text) for u, text in rows if u.isdigit()]
    assert [u for u, _ in rows] == [str(i) for i in range(1, len(rows) + 1)] == sorted(finals, key=int)
    assert all(text.endswith(finals[u]) for u, text in rows), (rows, finals)
    # Every byte of the microphone's audio reached the session once (resent from where the server asked).
    session_id = page.evaluate("window.tongyeok.sessionId")

    def session_end() -> list[dict[str, Any]]:
        lines = [vars(r) for r in caplog.records if getattr(r, "event", "") == "session_end"]
        return [line for line in lines if line["session_id"] == session_id]

    assert wait_until(lambda: bool(session_end()), 10)
    end = session_end()[0]
    captured_s = page.evaluate("window.tongyeok.capturedBytes") / 32000  # 16 kHz, 16-bit
    assert abs(end["audio_s"] - captured_s) < 0.002 and end["resumes"] == 1, (end, captured_s, resumed)
    # The translation was spoken: each piece of speech scheduled once in a running context, not silence.
    played = page.evaluate("window.__played")
    speech = [e for e in events if "translationAudio" in e]
    assert len(played) == len(speech) > 0
    assert all(p["context"] == "running" and p["rate"] == 24000 for p in played), played
    seconds = sum(p["seconds"] for p in played)
    loudness = (sum(p["rms"] ** 2 * p["seconds"] for p in played) / seconds) ** 0.5  # a piece may end in a pause
    assert seconds > 0.5 and loudness > 0.02, played


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
    return wait_until(lambda: server.interpret.open_streams == 0, 20)
