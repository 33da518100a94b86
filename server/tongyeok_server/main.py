"""``tongyeok-server``: run the server until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from tongyeok_server.app import TongyeokServer
from tongyeok_server.settings import ServerSettings

log = logging.getLogger("tongyeok_server")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    settings = ServerSettings.from_args(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = TongyeokServer(settings)
    port = server.start()
    log.info(
        "listening on %s:%d (recognizer=%s, translator=%s, max %d streams)",
        settings.host,
        port,
        server.recognizer.description.name,
        server.translator.description.name,
        settings.max_streams,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping (grace %.1fs)", signal.Signals(signum).name, settings.grace_period_s)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        pass
    server.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
