"""Assembling and running the gRPC server: engines, servicer, health, reflection, shutdown."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.api.servicer import InterpreterServicer
from tongyeok_server.api.validation import MAX_AUDIO_CHUNK_BYTES
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.recognition.registry import create_recognizer
from tongyeok_server.settings import ServerSettings
from tongyeok_server.translation.base import Translator
from tongyeok_server.translation.registry import create_translator

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Interpreter"].full_name
# Threads for RPCs other than Interpret streams (TranslateText, ListLanguages, health).
_SPARE_RPC_THREADS = 32


class TongyeokServer:
    """The whole service in one object: start it, stop it."""

    def __init__(
        self,
        settings: ServerSettings,
        recognizer: Recognizer | None = None,
        translator: Translator | None = None,
    ) -> None:
        self.settings = settings
        self.translator = translator or create_translator(settings)
        warm_up = getattr(self.translator, "warm_up", None)
        if callable(warm_up):
            warm_up()  # the first sentence should not pay for starting the engine
        self.recognizer = recognizer or create_recognizer(settings)
        self._translation_executor = ThreadPoolExecutor(settings.translation_threads, thread_name_prefix="translate")
        self.servicer = InterpreterServicer(
            self.recognizer, self.translator, self._translation_executor, settings.max_streams
        )
        self._health = health.HealthServicer()
        self._server = grpc.server(
            ThreadPoolExecutor(settings.max_streams + _SPARE_RPC_THREADS, thread_name_prefix="rpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_AUDIO_CHUNK_BYTES + 64 * 1024),
                # Mobile callers sit behind NATs that drop idle flows; let them
                # ping during long silences without being told off.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        pb_grpc.add_InterpreterServicer_to_server(self.servicer, self._server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if settings.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                self._server,
            )
        self.port = 0

    def start(self) -> int:
        """Bind and start serving; returns the port (useful with port 0)."""
        address = f"{self.settings.host}:{self.settings.port}"
        self.port = self._server.add_insecure_port(address)
        if not self.port:
            raise SystemExit(f"cannot listen on {address}: is the port in use?")
        self._server.start()
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new streams, let open ones finish their sentence within ``grace_s``, release engines."""
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        self._health.enter_graceful_shutdown()
        stopped = self._server.stop(grace)
        draining = self.servicer.drain()
        if draining:
            log.info("draining %d open streams (grace %.1fs)", draining, grace)
        deadline = time.monotonic() + grace
        while self.servicer.open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped.wait()
        self._translation_executor.shutdown(wait=True, cancel_futures=True)
        self.recognizer.close()
        self.translator.close()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()
