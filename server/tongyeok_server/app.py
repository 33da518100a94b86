"""Assembling and running the gRPC server: engines, servicer, health, reflection, shutdown.

The server is gRPC's asyncio server, on an event loop in a thread of its own
("tongyeok-loop"), so that ``TongyeokServer`` keeps a plain blocking API
(``start``/``stop``) for ``main`` and for tests that embed it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import _async as health_aio  # grpc_health.v1.health.aio, which mypy cannot see
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import handlers
from tongyeok_server.api.extension import SessionExtension
from tongyeok_server.api.resume_setup import ResumeSetup
from tongyeok_server.api.servicer import InterpreterServicer
from tongyeok_server.api.transcripts import SERVICE_NAME as TRANSCRIPTS_SERVICE
from tongyeok_server.api.transcripts import TranscriptsServicer
from tongyeok_server.api.validation import MAX_AUDIO_CHUNK_BYTES
from tongyeok_server.auth.server_security import ServerSecurity, keepalive_options
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.recognition.registry import create_recognizer
from tongyeok_server.session.watchdog import StreamWatchdog
from tongyeok_server.settings import ServerSettings
from tongyeok_server.store import RecordExtension, record_extension
from tongyeok_server.translation.base import Translator
from tongyeok_server.translation.registry import create_translator

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Interpreter"].full_name
# The largest message is an InterpretRequest with 1 MiB of audio: a tag byte and a 3-byte length, then the audio.
# Anything larger is refused by gRPC itself (RESOURCE_EXHAUSTED), as the proto says.
MAX_MESSAGE_BYTES = MAX_AUDIO_CHUNK_BYTES + 4
_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
T = TypeVar("T")
# How long streams ended at the end of the grace get to send their status before gRPC cancels them.
CUT_MARGIN_S = 1.0


class TongyeokServer:
    """The whole service in one object: start it, stop it."""

    def __init__(
        self,
        settings: ServerSettings,
        recognizer: Recognizer | None = None,
        translator: Translator | None = None,
        extensions: list[SessionExtension] | None = None,
    ) -> None:
        self.settings = settings
        # First: a wrong certificate or keys file should fail the start before engines load.
        self.security = ServerSecurity.from_settings(settings)
        # First: a record store that cannot be opened stops the start before any engine has started.
        self.extensions = _extensions(settings) if extensions is None else extensions
        self.translator = translator or create_translator(settings)
        self.translator.warm_up()  # the first sentence should not pay for starting the engine
        self.recognizer = recognizer or create_recognizer(settings)
        self._translation_executor = ThreadPoolExecutor(settings.translation_threads, thread_name_prefix="translate")
        self.watchdog = StreamWatchdog(settings.idle_timeout_s, settings.max_stream_duration_s)
        self.resumption = ResumeSetup.from_settings(settings, tls=self.security.tls is not None)
        self.servicer = InterpreterServicer(
            self.recognizer,
            self.translator,
            self._translation_executor,
            settings.max_streams,
            self.extensions,
            caller_limits=self.security.limits,
            watchdog=self.watchdog,
            resume_desk=self.resumption.desk,
        )
        #: The meeting record (None with --store none, or when the test's extensions leave it out).
        self.record = next((e.record for e in self.extensions if isinstance(e, RecordExtension)), None)
        self.transcripts = TranscriptsServicer(self.record)
        self._loop = asyncio.new_event_loop()
        # OpenAI's engine then needs no loop of its own: first tokens ~10x sooner under load (make bench).
        self.translator.attach_loop(self._loop)
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="tongyeok-loop", daemon=True)
        self._server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._stopped = threading.Event()
        self.port = 0

    def start(self) -> int:
        """Bind and start serving; returns the port (useful with port 0)."""
        self._loop_thread.start()
        self.port = self._on_loop(self._start())
        if not self.port:
            self.stop(0)
            raise SystemExit(f"cannot listen on {self.settings.host}:{self.settings.port}: is the port in use?")
        return self.port

    async def _start(self) -> int:
        # Engines whose write() may block (pocketsphinx) write from these threads (see RecognizerStream.write_async).
        self._loop.set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="offload"))
        # gRPC lets a second server bind a port already in use (SO_REUSEPORT)
        # unless told not to: then two servers started by mistake would share
        # callers silently. Only --processes asks for it.
        reuse_port = ("grpc.so_reuseport", 1 if self.settings.processes > 1 else 0)
        server = grpc.aio.server(
            options=[*_OPTIONS, *keepalive_options(self.settings), reuse_port],
            interceptors=self.security.interceptors,
        )
        self._health = health_aio.HealthServicer()
        handlers.add_interpreter(self.servicer, server)
        handlers.add_transcripts(self.transcripts, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self.settings.reflection:
            reflection.enable_server_reflection(
                (
                    SERVICE_NAME,
                    TRANSCRIPTS_SERVICE,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                server,
            )
        try:
            port = self.security.add_port(server, f"{self.settings.host}:{self.settings.port}")
        except RuntimeError:
            port = 0
        if not port:
            return 0  # start() says so; SystemExit raised on the loop would kill the loop instead
        if self.resumption.process_socket:
            # Where the other processes of --processes relay resumes of this process's sessions.
            server.add_insecure_port(self.resumption.process_socket)
        await server.start()
        self.security.warn_if_exposed(self.settings.host)
        self._server = server
        for service in ("", SERVICE_NAME, TRANSCRIPTS_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return port

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new streams, let open ones finish their sentence within ``grace_s``, release engines.

        Idempotent: a second call returns at once.
        """
        if self._stopped.is_set():
            return
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        if self._server is not None:
            self._on_loop(self._stop(grace))
        self._translation_executor.shutdown(wait=True, cancel_futures=True)
        # Before the loop stops: an engine on the loop closes its channels there.
        self.recognizer.close()
        self.translator.close()
        for extension in self.extensions:
            extension.close()
        if self._loop_thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join()
        self._loop.close()
        self._stopped.set()

    async def _stop(self, grace: float) -> None:
        assert self._server is not None and self._health is not None
        await self._health.enter_graceful_shutdown()
        draining = self.servicer.drain()
        if draining:
            log.info("draining %d open streams (grace %.1fs)", draining, grace)
        # New RPCs are refused from here on; open ones get ``grace`` to end. Those
        # still open then are ended by the servicer with the shutdown's UNAVAILABLE
        # (gRPC itself would cancel them with "Cancelling all calls"), and gRPC's
        # own cut comes CUT_MARGIN_S later, once that status is out.
        stopping = asyncio.ensure_future(self._server.stop(grace + CUT_MARGIN_S))
        await self._until_closed(grace)
        cut = self.servicer.cut()
        if cut:
            log.warning("%d streams were still open when the grace period ran out; ended them", cut)
        await stopping
        await self._until_closed(1.0)  # cancelled streams' cleanup runs on this loop
        await self.watchdog.close()
        if self.resumption.forwarder is not None:
            await self.resumption.forwarder.close()

    async def _until_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.servicer.open_streams and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def reload(self) -> None:
        """Re-read certificates and keys files (SIGHUP); open streams are not touched."""
        self.security.reload()

    def wait(self) -> None:
        """Block until ``stop`` has finished."""
        self._stopped.wait()


def _extensions(settings: ServerSettings) -> list[SessionExtension]:
    """The capabilities that follow every session, as configured (each package builds its own)."""
    from tongyeok_server.synthesis.extension import SpeechExtension
    from tongyeok_server.synthesis.registry import create_synthesizer

    extensions: list[SessionExtension] = [SpeechExtension(create_synthesizer(settings)), record_extension(settings)]
    return extensions
