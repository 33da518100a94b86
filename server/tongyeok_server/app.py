"""Assembling and running the gRPC server: engines, servicer, health, reflection, shutdown.

The server is gRPC's asyncio server on the caller's event loop: ``main``
runs it under ``asyncio.run`` (the loop is the process's main thread), and
tests run it on a loop of their own (``tests/support/server_loop.py``).
``start`` and ``stop`` are coroutines on that loop; engines, sessions and
the web gateway all live there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import _async as health_aio  # grpc_health.v1.health.aio, which mypy cannot see
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import handlers
from tongyeok_server.api.expenses import SERVICE_NAME as EXPENSES_SERVICE
from tongyeok_server.api.expenses_setup import expenses_component
from tongyeok_server.api.interpret import InterpretFlow
from tongyeok_server.api.resume_setup import ResumeSetup
from tongyeok_server.api.servicer import InterpreterServicer
from tongyeok_server.api.transcripts import SERVICE_NAME as TRANSCRIPTS_SERVICE
from tongyeok_server.api.transcripts import TranscriptsServicer
from tongyeok_server.api.validation import MAX_AUDIO_CHUNK_BYTES
from tongyeok_server.auth.server_security import ServerSecurity, keepalive_options
from tongyeok_server.auth.single_use import SingleUse
from tongyeok_server.errors import StartError
from tongyeok_server.expenses.readers.base import ReceiptReader
from tongyeok_server.gateway.origins import OriginPolicy
from tongyeok_server.gateway.server import GatewayParts, WebGateway
from tongyeok_server.gateway.tickets import KEEP_USED_S, StreamTickets
from tongyeok_server.observability.assembly import Observability
from tongyeok_server.observability.metrics import Metrics
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.recognition.registry import create_recognizer
from tongyeok_server.session.extension import SessionExtension
from tongyeok_server.session.watchdog import StreamWatchdog
from tongyeok_server.settings import Settings, WebSettings
from tongyeok_server.simultaneous.options import ServerDefaults
from tongyeok_server.store import RecordExtension, record_extension
from tongyeok_server.translation.base import Translator
from tongyeok_server.translation.registry import create_translator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Interpreter"].full_name
# The largest message is an InterpretRequest with 1 MiB of audio: a tag byte and a 3-byte length, then the audio.
# Anything larger is refused by gRPC itself (RESOURCE_EXHAUSTED), as the proto says.
MAX_MESSAGE_BYTES = MAX_AUDIO_CHUNK_BYTES + 4
_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
# How long streams ended at the end of the grace get to send their status before gRPC cancels them.
CUT_MARGIN_S = 1.0
# The health service's names: "" and the Interpreter's say whether to send new streams here (readiness:
# NOT_SERVING from the first moment of a shutdown); LIVENESS says the process still serves (it stays
# SERVING while open streams drain, so a liveness probe does not kill a pod that is finishing its meetings).
LIVENESS = "liveness"


class TongyeokServer:
    """The whole service in one object: start it, stop it."""

    def __init__(
        self,
        settings: Settings,
        recognizer: Recognizer | None = None,
        translator: Translator | None = None,
        extensions: list[SessionExtension] | None = None,
        *,
        receipt_reader: ReceiptReader | None = None,
        serve_metrics: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Engines and extensions as given, or as ``settings`` say; each component gets its group of them.

        ``serve_metrics`` False: a process of a ``--processes`` supervisor,
        which serves the metrics of all of them; ``tracer_provider``: trace
        into this provider (tests) rather than as ``--otel`` says.
        """
        self.settings = settings
        self.observability = Observability(
            settings.observability,
            host=settings.server.host,
            serve_metrics=serve_metrics,
            tracer_provider=tracer_provider,
        )
        # First: a wrong certificate or keys file should fail the start before engines load.
        self.security = ServerSecurity.from_settings(settings.security, self.observability.refusals)
        # First: a record store that cannot be opened stops the start before any engine has started.
        self.extensions = [
            *(_extensions(settings, self.observability.metrics) if extensions is None else extensions),
            *self.observability.extensions,
        ]
        self.translator = translator or create_translator(settings.translation, settings.openai)
        self.recognizer = recognizer or create_recognizer(settings.recognition, settings.google)
        authenticator = self.security.authenticator
        self.watchdog = StreamWatchdog(
            settings.session.idle_timeout_s,
            settings.session.max_stream_duration_s,
            settings.session.first_message_timeout_s,
            authenticator.revoked if authenticator is not None else None,
        )
        self.resumption = ResumeSetup.from_settings(
            settings.resume, tls=self.security.tls is not None, runtime_dir=settings.server.runtime_dir
        )
        recognizer_seen = self.observability.recognizer(self.recognizer)
        translator_seen = self.observability.translator(self.translator)
        #: The Interpret session layer, which the gRPC servicer and the WebSocket gateway both drive.
        self.interpret = InterpretFlow(
            recognizer_seen,
            translator_seen,
            settings.server.max_streams,
            self.extensions,
            self.security.limits,
            self.watchdog,
            self.resumption.desk,
            ServerDefaults.from_settings(settings.simultaneous),
        )
        self.servicer = InterpreterServicer(self.interpret, recognizer_seen, translator_seen, self.extensions)
        #: The meeting record (None with --store none, or when the test's extensions leave it out).
        self.record = next((e.record for e in self.extensions if isinstance(e, RecordExtension)), None)
        self.transcripts = TranscriptsServicer(self.record)
        #: Expenses from receipts, in the record's database (``expenses/``).
        self.expenses = expenses_component(
            settings.expenses,
            self.record,
            self.security.limits,
            receipt_reader,
            google=settings.google,
            openai=settings.openai,
        )
        #: The web page and WebSocket gateway (--web-port), driving the same session layer.
        self.web = _web_gateway(settings.web, settings.server.runtime_dir, self) if settings.web.web_port else None
        self.web_port = 0
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._start_error = ""
        self._stopped = False
        self.port = 0

    async def start(self) -> int:
        """Bind and start serving on the running loop; returns the port (useful with port 0).

        Raises ``StartError`` with the reason when a port cannot be bound or
        an engine cannot start, after releasing what had started.
        """
        try:
            self.observability.start()  # /metrics (raises StartError if its port is taken)
            self.port = await self._start()
        except StartError as error:  # an engine's or extension's start refused, with its message
            self._start_error = str(error)
        if not self.port:
            await self.stop(0)
            raise StartError(self._start_error)
        return self.port

    async def _start(self) -> int:
        # Blocking work behind async interfaces runs here: speech synthesis clauses (Piper, espeak-ng), Apertium's
        # process start and stop, host name lookups, RecognizerStream.write_async's default.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="offload"))
        await self.translator.warm_up()  # the first sentence should not pay for starting the engine
        for extension in self.extensions:
            await extension.start()  # on the loop: e.g. Google's voices listed here, not on a private loop
        # gRPC lets a second server bind a port already in use (SO_REUSEPORT)
        # unless told not to: then two servers started by mistake would share
        # callers silently. Only --processes asks for it.
        serving = self.settings.server
        reuse_port = ("grpc.so_reuseport", 1 if serving.processes > 1 else 0)
        keepalive = keepalive_options(serving, self.settings.session.max_stream_duration_s)
        server = grpc.aio.server(
            options=[*_OPTIONS, *keepalive, reuse_port],
            interceptors=[*self.observability.interceptors, *self.security.interceptors(self.resumption.relays.caller)],
        )
        self._health = health_aio.HealthServicer()
        handlers.add_interpreter(self.servicer, server)
        handlers.add_transcripts(self.transcripts, server)
        handlers.add_expenses(self.expenses.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if serving.reflection:
            reflection.enable_server_reflection(
                (
                    SERVICE_NAME,
                    TRANSCRIPTS_SERVICE,
                    EXPENSES_SERVICE,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                server,
            )
        try:
            port = self.security.add_port(server, f"{serving.host}:{serving.port}")
        except RuntimeError:
            port = 0
        if not port:
            # start() says so; a StartError raised here would skip releasing what started
            self._start_error = f"cannot listen on {serving.host}:{serving.port}: is the port in use?"
            return 0
        if self.resumption.process_socket:
            # Where the other processes of --processes relay resumes of this process's sessions.
            server.add_insecure_port(self.resumption.process_socket)
        if serving.health_port and not await self._start_health_port(reuse_port):
            return 0
        if self.web is not None and not await self._start_web(reuse_port[1] == 1):
            return 0
        await server.start()
        self.security.warn_if_exposed(serving.host)
        self._server = server
        for service in ("", SERVICE_NAME, TRANSCRIPTS_SERVICE, EXPENSES_SERVICE, LIVENESS):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return port

    async def _start_web(self, reuse_port: bool) -> bool:
        assert self.web is not None
        host = self.settings.web.web_host or self.settings.server.host
        port = self.settings.web.web_port
        tls = self.security.tls.ssl_context() if self.security.tls is not None else None
        self.web_port = await self.web.start(host, port, reuse_port=reuse_port, tls=tls)
        if not self.web_port:
            self._start_error = f"cannot listen on {host}:{port} (--web-port): is the port in use?"
            return False
        return True

    async def _start_health_port(self, reuse_port: tuple[str, int]) -> bool:
        """The health service alone, in plaintext, on --health-port (Kubernetes' gRPC probes speak no TLS)."""
        assert self._health is not None
        health_server = grpc.aio.server(options=[reuse_port])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, health_server)
        address = f"{self.settings.server.host}:{self.settings.server.health_port}"
        try:
            bound = health_server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            self._start_error = f"cannot listen on {address} (--health-port): is the port in use?"
            return False
        await health_server.start()
        self._health_server = health_server
        return True

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuse new streams, let open ones finish their sentence within ``grace_s``, release engines.

        On the loop ``start`` ran on. Idempotent: a second call returns at once.
        """
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.server.grace_period_s if grace_s is None else grace_s
        if self._server is not None:
            await self._drain(grace)
        # The engines' and extensions' close() are blocking calls (threads joined, processes reaped, records
        # flushed) that may wait for work of their own on this loop: a worker thread calls them, as the
        # thread that ran ``main`` used to, while the loop keeps turning.
        await asyncio.to_thread(self.recognizer.close)
        await self.translator.close()
        await asyncio.to_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        self.expenses.close()
        for extension in self.extensions:
            extension.close()
        self.observability.close()

    async def _drain(self, grace: float) -> None:
        assert self._server is not None and self._health is not None
        for service in ("", SERVICE_NAME, TRANSCRIPTS_SERVICE, EXPENSES_SERVICE):  # readiness off; liveness stays
            await self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        draining = self.interpret.drain()
        if draining:
            log.info("draining %d open streams (grace %.1fs)", draining, grace)
        # New RPCs are refused from here on; open ones get ``grace`` to end. Those
        # still open then are ended by the servicer with the shutdown's UNAVAILABLE
        # (gRPC itself would cancel them with "Cancelling all calls"), and gRPC's
        # own cut comes CUT_MARGIN_S later, once that status is out.
        stopping = asyncio.ensure_future(self._server.stop(grace + CUT_MARGIN_S))
        await self._until_closed(grace)
        cut = self.interpret.cut()
        if cut:
            log.warning("%d streams were still open when the grace period ran out; ended them", cut)
        await stopping
        if self.web is not None:
            await self.web.stop()  # sockets still open are closed GOING_AWAY (their sessions have ended or been cut)
        await self._until_closed(1.0)  # cancelled streams' cleanup runs on this loop
        await self.watchdog.close()
        if self.resumption.forwarder is not None:
            await self.resumption.forwarder.close()
        if self._health_server is not None:
            await self._health_server.stop(0)

    async def _until_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.interpret.open_streams and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def reload(self) -> None:
        """Re-read certificates, keys and exchange-rates files (SIGHUP); open streams are not touched."""
        self.security.reload()
        self.expenses.reload()


def _extensions(settings: Settings, metrics: Metrics | None = None) -> list[SessionExtension]:
    """The capabilities that follow every session, as configured (each package builds its own).

    ``metrics`` (None when off) is for those that have figures of their own
    to report (the meeting record's write lag and failures).
    """
    from tongyeok_server.echo.extension import EchoExtension
    from tongyeok_server.synthesis.extension import SpeechExtension
    from tongyeok_server.synthesis.registry import create_synthesizer

    extensions: list[SessionExtension] = [
        SpeechExtension(create_synthesizer(settings.synthesis, settings.google, settings.openai)),
        EchoExtension(settings.synthesis.echo_suppression, settings.synthesis.echo_max_delay_s),
        record_extension(settings.store, metrics.store_observer() if metrics is not None else None),
    ]
    return extensions


def _web_gateway(settings: WebSettings, runtime_dir: str, server: TongyeokServer) -> WebGateway:
    """The gateway of ``--web-port``: the server's session layer, servicers and security, tickets of its own.

    Used tickets are remembered by this process, by the processes of its
    supervisor (``runtime_dir``) and by the replicas' ``--limits-storage``.
    """
    used_dir = Path(runtime_dir) / "tickets" if runtime_dir else None
    used = SingleUse("ticket", KEEP_USED_S, used_dir, shared=server.security.limits.windows)
    return WebGateway(
        GatewayParts(
            server.interpret,
            server.servicer,
            server.transcripts,
            server.security.authenticator,
            StreamTickets(server.resumption.secret, used),
            OriginPolicy(settings.web_allowed_origins),
            server.security.refusals,
        )
    )
