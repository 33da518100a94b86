"""A fake OpenAI chat-completions server: SSE streaming over real HTTP on 127.0.0.1.

The real ``openai`` client reaches it through ``base_url``. It records every
request body, streams at a configurable speed, and follows scripted
misbehaviour (``Rule``): answer an HTTP error N times or always, or cut a
stream after k chunks. It notices a client that disconnects, even while it is
stalling before the first token, and records it.

Its "translation" is deterministic and derived from the request, so tests
can compute the expected tokens with ``fake_translation``: the words of the
text inside ``<sentence>`` in reverse order, labelled with the target
language read from the system prompt's ``Target language: Name (tag)`` line::

    fake_translation("good morning everyone", "ko") == "[ko] everyone morning good"

Simultaneous requests (a ``<committed>`` block before the sentence, which is
marked ``partial="true"`` while it is being spoken) get what a model told to
continue a committed translation would answer (``fake_continuation``): the
words in the source's order, labelled, except that a Korean verb (a word
ending in 다 or 요, which ends its clause) moves to the second place of its
clause when the target is not Korean, as English puts its verb after the
subject; and of that, only the words the committed text does not already
have. So a partial translation is extended by the next one until a clause's
verb arrives and reorders that clause, as a real model's would be, and a
continuation never repeats the committed words.

It also serves text-to-speech (``/v1/audio/speech``, ``response_format`` pcm):
24 kHz 16-bit mono PCM streamed in chunks of ``speech_chunk_s`` every
``speech_chunk_s / speech_speed`` seconds, deterministic from the input text
(``fake_speech_pcm``: each word a 0.1 s run of one sample value derived from
the word, 20 ms of silence after it), noticing a client that goes away.

It also reads receipts, as far as a fake can (vision with structured output):
a chat completion whose user message carries an ``image_url`` (a ``data:``
URL) and whose ``response_format`` is a strict ``json_schema`` is answered,
not streamed, with the JSON a test registered for that image's bytes
(``register_receipt``), after checking what OpenAI checks: the data URL
decodes to an image type it takes, the schema is strict (every object lists
all its properties in ``required`` and sets ``additionalProperties: false``)
and the answer fits it; an image it does not know gets a refusal. Requests
without an image go the chat path above, unchanged.

Run on its own (for the benchmark)::

    python -m tests.support.fake_openai --port 8089 --ttft-ms 300 --tokens-per-s 40
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import select
import socket
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

_SENTENCE = re.compile(r"<sentence( partial=\"true\")?>(.*?)</sentence>", re.DOTALL)
_COMMITTED = re.compile(r"<committed>(.*?)</committed>", re.DOTALL)
_TARGET = re.compile(r"Target language: [^\n]*\(([A-Za-z0-9-]+)\)\s*$", re.MULTILINE)
_SOURCE = re.compile(r"^Source language: [^\n]*\(([A-Za-z0-9-]+)\)\s*$", re.MULTILINE)


def fake_translation(text: str, target_language: str) -> str:
    """What the fake answers for ``text`` into ``target_language``."""
    return " ".join([f"[{target_language}]", *reversed(text.split())])


def fake_tokens(text: str, target_language: str) -> list[str]:
    """The content deltas the fake streams, in order (they concatenate to ``fake_translation``)."""
    words = fake_translation(text, target_language).split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def _korean_verb(word: str) -> bool:
    return word.endswith(("다", "요"))


def fake_continuation(text: str, source_language: str, target_language: str, committed: str) -> str:
    """What the fake answers a simultaneous request for ``text`` after ``committed`` (see the module docstring)."""
    words = text.split()
    if source_language.split("-")[0] == "ko" and target_language.split("-")[0] != "ko":
        reordered: list[str] = []
        clause: list[str] = []
        for word in words:
            if _korean_verb(word):
                clause = [*clause[:1], word, *clause[1:]]  # subject, verb, the rest of the clause
                reordered += clause
                clause = []
            else:
                clause.append(word)
        words = reordered + clause
    owed = Counter(committed.split())
    out = []
    for word in [f"[{target_language}]", *words]:
        if owed[word] > 0:
            owed[word] -= 1
        else:
            out.append(word)
    return " ".join(out)


SPEECH_RATE_HZ = 24000
_WORD_SAMPLES = 2400
_GAP_SAMPLES = 480


def fake_speech_value(word: str) -> int:
    """The sample value the fake speaks ``word`` with."""
    return 1000 + zlib.crc32(word.encode()) % 20000


def fake_speech_pcm(text: str) -> bytes:
    """What the fake's text-to-speech answers for ``text`` (24 kHz 16-bit mono PCM)."""
    pieces = []
    for word in text.split():
        pieces.append(np.full(_WORD_SAMPLES, fake_speech_value(word), dtype="<i2"))
        pieces.append(np.zeros(_GAP_SAMPLES, dtype="<i2"))
    return b"".join(p.tobytes() for p in pieces)


@dataclass
class Rule:
    """Scripted misbehaviour for requests whose sentence contains ``match`` and whose target is ``target``.

    ``None`` for either matches every request.

    ``status``: answer this HTTP error instead of streaming. ``cut_after``:
    stream this many content chunks, then drop the connection (or, with
    ``clean_cut``, end the body properly but with no finish_reason and no
    ``[DONE]``, as some proxies do; or, with ``event``, send an event with
    that data instead and end the body properly, as OpenAI does with an
    ``{"error": ...}`` event). ``linger_s``: after ``[DONE]``, wait this
    long before ending the body (a server that keeps it open). ``times``: how
    many matching requests the rule applies to (``None``: all of them).
    ``finish_reason``: how the model's answer ends: ``stop``, or as OpenAI ends
    one its content filter stopped (``content_filter``, after part of the
    answer) or one cut at the output limit (``length``, after ``max_tokens``
    content chunks when set, else the whole answer). ``raw_body``: send this
    body instead (its SSE framing exactly as written).
    """

    status: int | None = None
    cut_after: int | None = None
    clean_cut: bool = False
    event: str | None = None
    linger_s: float = 0.0
    finish_reason: str = "stop"
    max_tokens: int | None = None
    raw_body: str | None = None
    times: int | None = 1
    match: str | None = None
    target: str | None = None  # only requests into this language (primary subtag or full tag)
    retry_after_s: float | None = None
    message: str = ""
    path: str | None = None  # only requests to this path, e.g. "/v1/audio/speech"
    hits: int = 0


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    index: int
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    sentence: str
    target_language: str
    outcome: str = "pending"  # completed, cut, stream error, error <status>, disconnected
    source_language: str = ""
    #: Simultaneous requests: the committed translation the answer continues (None: a consecutive request).
    committed: str | None = None
    #: Simultaneous requests: the sentence is still being spoken.
    partial: bool = False
    client_port: int = 0  # the client's end of the TCP connection: equal for requests on one connection
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float = 0.0

    @property
    def kind(self) -> str:
        """``"sentence"`` (consecutive), ``"partial"`` or ``"final"`` (simultaneous), ``"speech"``."""
        if self.path.rstrip("/").endswith("/audio/speech"):
            return "speech"
        if self.committed is None:
            return "sentence"
        return "partial" if self.partial else "final"

    @property
    def system_prompt(self) -> str:
        """The content of the first system message ("" if none)."""
        for m in self.body.get("messages", []):
            if m.get("role") in {"system", "developer"}:
                return str(m.get("content", ""))
        return ""

    @property
    def user_prompt(self) -> str:
        """The content of the last user message ("" if none)."""
        for m in reversed(self.body.get("messages", [])):
            if m.get("role") == "user":
                return str(m.get("content", ""))
        return ""


class FakeOpenAI:
    """The fake server. Use as a context manager, or ``start()`` / ``stop()``.

    ``ttft_s`` is the delay before the first content chunk (headers go out at
    once, as real servers do), ``tokens_per_s`` the pace after it (0: as fast
    as possible). ``headers_delay_s`` holds back the response headers too (a
    server or proxy that answers nothing until the model starts). ``api_key``,
    when set, must match the bearer token or the fake answers 401 with a
    message quoting a masked key, as OpenAI does.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttft_s: float = 0.0,
        tokens_per_s: float = 0.0,
        headers_delay_s: float = 0.0,
        api_key: str | None = None,
        model: str = "fake-model",
        speech_chunk_s: float = 0.1,
        speech_speed: float = 20.0,
    ) -> None:
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.headers_delay_s = headers_delay_s
        self.api_key = api_key
        self.model = model
        self.speech_chunk_s = speech_chunk_s
        self.speech_speed = speech_speed  # times real time
        self.requests: list[RecordedRequest] = []
        self.rules: list[Rule] = []
        self.receipts: dict[str, dict[str, Any]] = {}  # sha256 of an image -> the JSON answer
        self.active = 0
        self.max_active = 0
        self.connections = 0  # TCP connections accepted: fewer than requests when clients reuse them
        self._cond = threading.Condition()
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The ``base_url`` for the openai client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        """Serve in a background thread."""
        # A short poll interval: stop() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------

    def add_rule(self, rule: Rule) -> Rule:
        """Apply ``rule`` to the next matching requests (first added wins)."""
        with self._cond:
            self.rules.append(rule)
        return rule

    def fail(self, status: int, *, times: int | None = 1, match: str | None = None, **kw: Any) -> Rule:
        """Answer ``status`` to the next ``times`` matching requests (``None``: always)."""
        return self.add_rule(Rule(status=status, times=times, match=match, **kw))

    def cut(self, after_chunks: int, *, times: int | None = 1, clean: bool = False, **kw: Any) -> Rule:
        """Drop the connection after ``after_chunks`` content chunks, for ``times`` matching requests."""
        return self.add_rule(Rule(cut_after=after_chunks, times=times, clean_cut=clean, **kw))

    def stream_error(self, after_chunks: int, message: str, *, times: int | None = 1, **kw: Any) -> Rule:
        """After ``after_chunks`` content chunks, send an ``{"error": ...}`` event and end the body."""
        error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return self.add_rule(Rule(cut_after=after_chunks, event=json.dumps(error), times=times, **kw))

    def register_receipt(self, image: bytes, answer: dict[str, Any]) -> None:
        """Answer ``answer`` (the structured output) for a vision request carrying ``image``."""
        with self._cond:
            self.receipts[hashlib.sha256(image).hexdigest()] = answer

    def reset(self) -> None:
        """Forget rules and recorded requests."""
        with self._cond:
            self.rules.clear()
            self.requests.clear()
            self.max_active = self.active

    # -- observation -------------------------------------------------------

    @property
    def disconnects(self) -> list[RecordedRequest]:
        """Requests whose client went away before the stream ended."""
        with self._cond:
            return [r for r in self.requests if r.outcome == "disconnected"]

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` holds (re-checked whenever a request changes state)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in progress (a client may read the last byte before the fake records it)."""
        return self.wait_for(lambda f: f.active == 0, timeout)

    # -- used by the handler -----------------------------------------------

    def _record(self, req: RecordedRequest) -> Rule | None:
        with self._cond:
            req.index = len(self.requests)
            self.requests.append(req)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            rule = None
            for r in self.rules:
                if (
                    (r.times is None or r.hits < r.times)
                    and (r.match is None or r.match in req.sentence)
                    and (r.path is None or req.path.rstrip("/") == r.path)
                    and (r.target is None or req.target_language.split("-")[0] == r.target.split("-")[0])
                ):
                    r.hits += 1
                    rule = r
                    break
            self._cond.notify_all()
            return rule

    def _finish(self, req: RecordedRequest, outcome: str) -> None:
        with self._cond:
            req.outcome = outcome
            req.ended_at = time.monotonic()
            self.active -= 1
            self._cond.notify_all()


class _ClientGone(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # An async client connects many streams at once; socketserver's backlog
    # of 5 would drop SYNs and delay them by a 1 s retransmit.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping idle keep-alive connections (or cancelling) are
        # normal here, not worth a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with chunked bodies: keep-alive like the real API, and a cut
    # (no terminating chunk) is a protocol error the client must notice.
    protocol_version = "HTTP/1.1"
    server_fake: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # As real servers do: without it, a small write that follows another
        # waits for the client's delayed ACK, adding ~40 ms to responses on a
        # reused (keep-alive) connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fake = self.server_fake
        with fake._cond:
            fake.connections += 1

    def do_POST(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_error(400, "invalid JSON body")
            return
        if self.path.rstrip("/") == "/v1/audio/speech":
            self._speech_request(body)
            return
        if self.path.rstrip("/") == "/v1/chat/completions" and _image_urls(body):
            self._vision_request(body)
            return
        user = ""
        system = ""
        for m in body.get("messages", []):
            if m.get("role") == "user":
                user = str(m.get("content", ""))
            elif m.get("role") in {"system", "developer"}:
                system = str(m.get("content", ""))
        found = _SENTENCE.search(user)
        sentence = found.group(2) if found else user
        target = _TARGET.search(system)
        source = _SOURCE.search(system)
        committed = _COMMITTED.search(user)
        req = RecordedRequest(
            index=-1,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            sentence=sentence,
            target_language=target.group(1) if target else "xx",
            client_port=int(self.client_address[1]),
            source_language=source.group(1) if source else "",
            committed=committed.group(1) if committed else None,
            partial=bool(found and found.group(1)),
        )
        rule = fake._record(req)
        outcome = "error"
        try:
            if fake.headers_delay_s > 0:
                self._wait(fake.headers_delay_s)
            if self.path.rstrip("/") != "/v1/chat/completions":
                outcome = "error 404"
                self._send_error(404, f"unknown path {self.path}")
                return
            if fake.api_key is not None and req.headers.get("authorization") != f"Bearer {fake.api_key}":
                outcome = "error 401"
                given = req.headers.get("authorization", "").removeprefix("Bearer ")
                masked = given[:3] + "*" * max(0, len(given) - 6) + given[-3:] if given else ""
                self._send_error(
                    401, f"Incorrect API key provided: {masked}. You can find your API key at https://example.invalid."
                )
                return
            if rule is not None and rule.status is not None:
                outcome = f"error {rule.status}"
                self._send_error(rule.status, rule.message or f"fake error {rule.status}", rule.retry_after_s)
                return
            if not body.get("stream"):
                outcome = "error 400"
                self._send_error(400, "the fake only serves stream=true")
                return
            outcome = self._stream(req, rule)
        except (BrokenPipeError, ConnectionResetError, _ClientGone):
            outcome = "disconnected"
            self.close_connection = True
        finally:
            fake._finish(req, outcome)

    def _speech_request(self, body: dict[str, Any]) -> None:
        fake = self.server_fake
        req = RecordedRequest(
            index=-1,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            sentence=str(body.get("input", "")),
            target_language=str(body.get("voice", "")),
            client_port=int(self.client_address[1]),
        )
        rule = fake._record(req)
        outcome = "error"
        try:
            if rule is not None and rule.status is not None:
                outcome = f"error {rule.status}"
                self._send_error(rule.status, rule.message or f"fake error {rule.status}", rule.retry_after_s)
                return
            if body.get("response_format") != "pcm" or not body.get("voice") or not body.get("model"):
                outcome = "error 400"
                self._send_error(400, "the fake speaks response_format=pcm and needs model and voice")
                return
            self.send_response(200)
            self.send_header("Content-Type", "audio/pcm")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pcm = fake_speech_pcm(req.sentence)
            step = round(SPEECH_RATE_HZ * fake.speech_chunk_s) * 2
            for i in range(0, len(pcm), step):
                self._wait(fake.speech_chunk_s / fake.speech_speed)
                if rule is not None and rule.cut_after is not None and i // step >= rule.cut_after:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    outcome = "cut"
                    return
                self._write_chunk(pcm[i : i + step])
            self._write_chunk(b"")
            outcome = "completed"
        except (BrokenPipeError, ConnectionResetError, _ClientGone):
            outcome = "disconnected"
            self.close_connection = True
        finally:
            fake._finish(req, outcome)

    def _vision_request(self, body: dict[str, Any]) -> None:
        fake = self.server_fake
        req = RecordedRequest(
            index=-1,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            sentence="",
            target_language="vision",
            client_port=int(self.client_address[1]),
        )
        rule = fake._record(req)
        outcome = "error"
        try:
            if rule is not None and rule.status is not None:
                outcome = f"error {rule.status}"
                self._send_error(rule.status, rule.message or f"fake error {rule.status}", rule.retry_after_s)
                return
            if fake.api_key is not None and req.headers.get("authorization") != f"Bearer {fake.api_key}":
                outcome = "error 401"
                self._send_error(401, "Incorrect API key provided.")
                return
            problem, image = _vision_problem(body)
            if problem:
                outcome = "error 400"
                self._send_error(400, problem)
                return
            schema = body["response_format"]["json_schema"]["schema"]
            with fake._cond:
                answer = fake.receipts.get(hashlib.sha256(image).hexdigest())
            message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
            if answer is None:
                message["refusal"] = "I'm sorry, I can't find a receipt in this image."
            else:
                import jsonschema

                jsonschema.validate(answer, schema)  # a registered answer that does not fit is the test's bug
                message["content"] = json.dumps(answer, ensure_ascii=False)
            payload = json.dumps(
                {
                    "id": f"chatcmpl-fake{req.index}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            outcome = "completed"
        except (BrokenPipeError, ConnectionResetError):
            outcome = "disconnected"
            self.close_connection = True
        finally:
            fake._finish(req, outcome)

    def _send_error(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        payload = json.dumps(
            {"error": {"message": message, "type": "fake_error", "param": None, "code": str(status)}}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", "req_fake")
        if retry_after_s is not None:
            self.send_header("retry-after-ms", str(int(retry_after_s * 1000)))
            self.send_header("retry-after", str(int(retry_after_s)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _stream(self, req: RecordedRequest, rule: Rule | None) -> str:
        fake = self.server_fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", f"req_fake_{req.index}")
        self.end_headers()
        self.wfile.flush()
        self._wait(fake.ttft_s)
        if rule is not None and rule.raw_body is not None:
            self._write_chunk(rule.raw_body.encode())
            self._write_chunk(b"")
            return "completed"
        interval = 1.0 / fake.tokens_per_s if fake.tokens_per_s > 0 else 0.0
        created = int(time.time())
        chunk_id = f"chatcmpl-fake{req.index}"
        for i, chunk in enumerate(self._chunks(req, chunk_id, created, rule)):
            if rule is not None and rule.cut_after is not None and i > rule.cut_after:
                if rule.event is not None:
                    self._write_chunk(f"data: {rule.event}\n\n".encode())
                    self._write_chunk(b"")
                    return "stream error"
                if rule.clean_cut:
                    self._write_chunk(b"")
                    return "cut"
                # Drop the connection mid-body: no terminating chunk, no [DONE].
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return "cut"
            is_token = bool(chunk["choices"] and chunk["choices"][0]["delta"].get("content"))
            if is_token and i > 1:  # the role chunk and the first token go out together after ttft
                self._wait(interval)
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        if rule is not None and rule.linger_s > 0:
            self._wait(rule.linger_s)
        self._write_chunk(b"")
        return "completed"

    def _chunks(self, req: RecordedRequest, chunk_id: str, created: int, rule: Rule | None) -> Iterator[dict[str, Any]]:
        base = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": self.server_fake.model}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        if req.committed is None:
            tokens = fake_tokens(req.sentence, req.target_language)
        else:
            answer = fake_continuation(req.sentence, req.source_language, req.target_language, req.committed)
            tokens = [w if i == 0 else " " + w for i, w in enumerate(answer.split())]
        finish = "stop" if rule is None else rule.finish_reason
        if finish == "content_filter":
            tokens = tokens[: len(tokens) // 2]  # the filter stops the answer part-way
        elif finish == "length" and rule is not None and rule.max_tokens is not None:
            tokens = tokens[: rule.max_tokens]
        for token in tokens:
            yield {**base, "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        # As with stream_options.include_usage: a last chunk with no choices.
        yield {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _wait(self, seconds: float) -> None:
        # Sleep, but watch the socket: a readable socket that reads EOF means
        # the client closed the connection, which is what cancellation does.
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self.connection], [], [], max(0.0, min(left, 0.05)))
            if readable:
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data:
                    raise _ClientGone()
            if left <= 0:
                return


_VISION_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}


def _image_urls(body: dict[str, Any]) -> list[str]:
    """The image URLs of a chat request's messages (none for a translation)."""
    urls = []
    for m in body.get("messages", []):
        content = m.get("content")
        if isinstance(content, list):
            urls += [str(p.get("image_url", {}).get("url", "")) for p in content if p.get("type") == "image_url"]
    return urls


def _strict(schema: dict[str, Any], where: str = "()") -> str:
    """What OpenAI's strict structured output would refuse in ``schema`` ("" if nothing)."""
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return f"Invalid schema: In context={where}, 'additionalProperties' is required to be supplied and to be false."
        if sorted(schema.get("required", [])) != sorted(props):
            return f"Invalid schema: In context={where}, 'required' is required to be supplied and to be an array including every key in properties."
        for name, sub in props.items():
            if problem := _strict(sub, f"{where}, {name}"):
                return problem
    if "items" in schema:
        return _strict(schema["items"], f"{where}, items")
    return ""


def _vision_problem(body: dict[str, Any]) -> tuple[str, bytes]:
    """What OpenAI would answer 400 for in a vision request with structured output, and the image."""
    if body.get("stream"):
        return "the fake reads receipts without stream", b""
    if not body.get("model"):
        return "you must provide a model parameter", b""
    fmt = body.get("response_format") or {}
    if fmt.get("type") != "json_schema" or not fmt.get("json_schema", {}).get("strict"):
        return "the fake reads receipts with response_format json_schema, strict", b""
    if problem := _strict(fmt["json_schema"].get("schema", {})):
        return problem, b""
    urls = _image_urls(body)
    if len(urls) != 1:
        return "the fake reads one image per request", b""
    header, _, data = urls[0].partition(",")
    mime = header.removeprefix("data:").removesuffix(";base64")
    if not header.startswith("data:") or not header.endswith(";base64") or mime not in _VISION_TYPES:
        return f"Invalid image URL: expected a base64 data URL of {sorted(_VISION_TYPES)}", b""
    try:
        image = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return "Invalid base64 image data", b""
    return "", image


def main(argv: list[str] | None = None) -> None:
    """Run the fake as its own process until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_openai", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first token, milliseconds")
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="pace after the first token (0: no delay)")
    parser.add_argument("--api-key", default=None, help="require this bearer token (default: accept any)")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(port=args.port, ttft_s=args.ttft_ms / 1000, tokens_per_s=args.tokens_per_s, api_key=args.api_key)
    # The first line tells a parent process where to connect (useful with --port 0).
    print(f"fake OpenAI listening on {fake.base_url}", flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()
