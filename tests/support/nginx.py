"""A real nginx in front of Tongyeok servers on loopback, with the deploy/ configuration the project ships.

The test's nginx.conf is the minimum around ``deploy/nginx/tongyeok-affinity.conf``,
``tongyeok-upstream.conf`` and ``tongyeok-grpc.conf`` (included as they are): an
upstream of the test's servers, hashed on the affinity header as in production,
and a plaintext HTTP/2 listener on a free port. nginx runs in the foreground in
a temp dir of its own (config, logs, pid file, temp paths), so it needs no root.
``Nginx(..., deploy=False)`` leaves the deploy files out and keeps nginx's own
defaults (plus ``location_extra``): the balancer tests' controls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"

_CONF = """
{user}
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {deploy}/tongyeok-affinity.conf;
    upstream tongyeok {{
        hash $tongyeok_affinity consistent;
{servers}
{upstream}
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
{location}
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str | None:
    """The nginx to run (the Debian package puts it in /usr/sbin, often not on a user's PATH)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return binary if os.path.exists(binary) else None


class Nginx:
    """nginx balancing gRPC over ``upstream_ports`` on 127.0.0.1; ``start()`` returns once it listens."""

    def __init__(
        self,
        upstream_ports: Sequence[int],
        *,
        deploy: bool = True,
        location_extra: str = "",
        fail_timeout_s: float = 2.0,
    ) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is missing: run `make test` (it installs the Debian package)")
        self.binary = binary
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="tongyeok-nginx-")
        self.dir = Path(self._tmp.name)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout={fail_timeout_s:g}s;" for p in upstream_ports
        )
        if deploy:
            upstream = f"        include {DEPLOY}/tongyeok-upstream.conf;"
            location = f"            include {DEPLOY}/tongyeok-grpc.conf;"
        else:
            upstream = ""
            location = f"            grpc_pass grpc://tongyeok;\n            {location_extra}"
        # As root nginx would hand its workers to `nobody`, who cannot use this private temp dir.
        user = "user root;" if os.geteuid() == 0 else ""
        self.config = self.dir / "nginx.conf"
        self.config.write_text(
            _CONF.format(
                user=user,
                dir=self.dir,
                deploy=DEPLOY,
                servers=servers,
                upstream=upstream,
                location=location,
                port=self.port,
            )
        )
        self._process: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        """Where callers connect."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The master process's id (its worker is its child)."""
        assert self._process is not None, "not started"
        return self._process.pid

    def command(self, *extra: str) -> list[str]:
        """nginx's command line for this config (``-e``: no default error log to open before reading it)."""
        return [self.binary, "-p", str(self.dir), "-c", str(self.config), "-e", str(self.dir / "error.log"), *extra]

    def start(self, timeout_s: float = 10.0) -> Nginx:
        """Run it in the foreground; raises with its error log if it does not listen in time."""
        self._process = subprocess.Popen(
            self.command("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._process.stderr.read() if self._process.stderr else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of its error log."""
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / "error.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Stop it (SIGTERM: fast shutdown, then SIGKILL) and remove its directory."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._tmp.cleanup()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def nginx_in_front_of(upstream_ports: Sequence[int]) -> Iterator[int]:
    """nginx balancing gRPC over ``upstream_ports`` on loopback with the deploy configuration; yields its port."""
    with Nginx(upstream_ports) as nginx:
        yield nginx.port
