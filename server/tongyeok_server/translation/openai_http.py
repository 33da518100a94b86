"""The HTTP side of the OpenAI engine: one streamed chat completion over ``aiohttp``.

Why not the OpenAI SDK, or httpx: a chat completion is one POST with a JSON
body and an SSE answer, and the client's CPU per translation is most of
what a translation costs the server. Measured on this machine against the
fake (``bench/openai_client.py``; ``/tmp``-free, 100 translations of 11
tokens, 16 at a time): aiohttp 1.2 ms per translation, the SDK's own HTTP
library (httpx2) read by hand 2.7-3.2 ms, httpx 0.28 3.7-4.2 ms (httpx-sse
on top adds its text decoding and a generator per line), and the SDK's
request building on top of httpx2 more again (about a fifth of the server's
CPU at 100 cloud streams, py-spy). aiohttp parses HTTP in C (llhttp) and
reads a body without a timeout scope and reader registration per chunk.
The SSE framing is ours (``openai_sse.SSEEvents``, a few lines, tested
with every split of a body).

Errors come out as ``openai_errors``' ``Retry`` or ``ServiceError``; the
key is never in either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from tongyeok_server.translation.openai_errors import Failures, Retry
from tongyeok_server.translation.openai_sse import ChunkReader, SSEEvents

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Idle connections are kept 30 s, so that a pause in the conversation does
# not cost the next sentence a new TCP and TLS handshake. A server that
# closes one sooner is noticed before reuse and the connection is replaced.
KEEPALIVE_S = 30.0
# Enough for the translations in flight at a peak (the SDK's figure).
MAX_CONNECTIONS = 1000
# How long the rest of a body is read after [DONE] (as the SDK does), so the
# connection can be reused; a server still sending then loses it.
DRAIN_S = 0.1
# An error body is read for its message only: this much of it.
_ERROR_BODY_BYTES = 8192
# The body broke off: the connection dropped, a chunk was malformed, TLS failed mid-way.
_BODY_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, ssl.SSLError, ConnectionError)


class ChatStream:
    """Streams chat completions from one server with one key; one connection pool for every session.

    Made outside a loop; the pool is made on the loop of the first request
    (the server's) and closed there by ``close()``.
    """

    def __init__(self, base_url: str, api_key: str, failures: Failures, timeout_s: float) -> None:
        self.url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._failures = failures
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
        }
        # connect: a server that does not answer a SYN is gone; sock_read: per read, so a stall mid-stream counts.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=min(5.0, timeout_s), sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        # HTTPS_PROXY / NO_PROXY read once here. aiohttp's trust_env would also look in ~/.netrc on an
        # executor thread per request: a thread hand-off per translation (py-spy found it at 100 streams).
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        with contextlib.suppress(LookupError):  # no proxy for this URL
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self.url))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, headers=self._headers)
        return self._session

    async def contents(self, body: Mapping[str, Any]) -> AsyncGenerator[str, None]:
        """The content deltas of one completion of ``body``; raises ``Retry`` or ``ServiceError`` at the end.

        Cancelling the caller (or closing this generator) leaves the
        response unread, which closes its connection wherever it waits.
        """
        failures = self._failures
        reader = ChunkReader(failures)
        events = SSEEvents()
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            post = self._client().post(self.url, data=data, proxy=self._proxy, proxy_auth=self._proxy_auth)
            async with post as response:
                # aiohttp logs no line per request: ours, at DEBUG (the level where the libraries' lines show).
                log.debug("HTTP Request: POST %s %d", self.url, response.status)
                if response.status >= 400:
                    raise failures.status(response.status, response.headers, await _error_message(response))
                try:
                    async for piece in response.content.iter_any():
                        for event in events.feed(piece):
                            text = reader.event(event)
                            if text:
                                yield text
                        if reader.done:
                            break
                except TimeoutError:
                    raise Retry(failures.timeout()) from None
                except _BODY_ERRORS as err:  # the connection dropped mid-body
                    raise Retry(failures.broke_off(f"{type(err).__name__}: {err}")) from None
                if reader.done:
                    # Whatever follows [DONE] is ignored, but the body must end for
                    # the connection to be reused. Usually it already has.
                    with contextlib.suppress(TimeoutError, *_BODY_ERRORS):
                        async with asyncio.timeout(DRAIN_S):
                            await response.read()
        except TimeoutError:
            raise Retry(failures.timeout()) from None
        except _BODY_ERRORS as err:  # before a response: refused, reset, DNS, TLS
            raise Retry(failures.unreachable(f"{type(err).__name__}: {err}")) from None
        reader.check_finish()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The message of an error answer (``{"error": {"message": ...}}`` or its text), for the log."""
    raw = b""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        raw = await response.content.read(_ERROR_BODY_BYTES)
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message
    except (ValueError, AttributeError):
        pass
    return raw[:300].decode("utf-8", "replace")
