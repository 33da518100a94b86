"""A ``TongyeokServer`` on an event loop of the test's own, started and stopped from blocking test code.

``main`` runs the server under ``asyncio.run``; a test that talks to it with
blocking gRPC stubs runs it on a ``LoopThread`` instead (a thread named
``test-loop``), which stands for the process's main thread.
"""

from __future__ import annotations

import weakref

from tests.support.loop_thread import LoopThread
from tongyeok_server.app import TongyeokServer

_LOOPS: weakref.WeakKeyDictionary[TongyeokServer, LoopThread] = weakref.WeakKeyDictionary()
# A start that loads models (Whisper) and starts worker processes takes seconds on a busy machine.
START_TIMEOUT_S = 300.0


def start(server: TongyeokServer) -> TongyeokServer:
    """Start ``server`` on a new loop thread; its ``StartError`` (a port in use ...) is raised here."""
    thread = LoopThread()
    try:
        thread.run(server.start(), timeout=START_TIMEOUT_S)
    except BaseException:
        thread.close()
        raise
    _LOOPS[server] = thread
    return server


def stop(server: TongyeokServer, grace_s: float | None = None) -> None:
    """Stop ``server`` on its loop (idempotent), then end the loop thread."""
    thread = _LOOPS.pop(server, None)
    if thread is None:
        return
    try:
        grace = server.settings.server.grace_period_s if grace_s is None else grace_s
        thread.run(server.stop(grace_s), timeout=grace + 60)
    finally:
        thread.close()


def loop_of(server: TongyeokServer) -> LoopThread:
    """The loop thread ``server`` runs on (to call what must run there)."""
    return _LOOPS[server]
