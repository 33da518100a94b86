"""A TCP proxy on loopback that a test can cut, stall and restore, to play a phone's bad network.

``cut()`` closes every connection at once (a reset, as when Wi-Fi drops);
``stall()`` keeps the connections open but stops moving bytes (a lift, a
tunnel: the peer sees nothing, not even a close); ``restore()`` moves bytes
again and accepts new connections; while ``refusing`` new connections are
closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port`` on loopback, in a thread of its own."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted so far
        self.refusing = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection cut at close() ends quietly (asyncio would log a cancelled handler as an error).
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(reader, writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            while not self._flowing.is_set():
                await asyncio.sleep(0.01)
            if writer.transport.is_closing():
                break
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    def cut(self) -> None:
        """Reset every open connection (new ones are still accepted unless ``refusing``)."""

        def abort_all() -> None:
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(abort_all)

    def stall(self) -> None:
        """Stop moving bytes; connections stay open and silent."""
        self._flowing.clear()

    def restore(self) -> None:
        """Move bytes again and accept new connections."""
        self.refusing = False
        self._flowing.set()

    def close(self) -> None:
        self.restore()
        self.cut()

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@contextlib.contextmanager
def proxy_to(port: int) -> Iterator[TcpProxy]:
    """A started proxy to ``port``, closed afterwards."""
    proxy = TcpProxy(port).start()
    try:
        yield proxy
    finally:
        proxy.close()
