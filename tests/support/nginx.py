"""A real nginx in front of Tongyeok servers on loopback, with the deploy/ configuration the project ships.

The test's nginx.conf is the minimum around ``deploy/nginx/tongyeok-affinity.conf``
and ``deploy/nginx/tongyeok-grpc.conf`` (included as they are): an upstream
of the test's servers, hashed on the affinity header as in production, and
a plaintext HTTP/2 listener on a free port. nginx runs in the foreground in
a temp dir of its own.
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
events {{ worker_connections 1024; }}
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
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            include {deploy}/tongyeok-grpc.conf;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nginx_in_front_of(upstream_ports: Sequence[int]) -> Iterator[int]:
    """nginx balancing gRPC over ``upstream_ports`` on loopback; yields its port."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise RuntimeError("nginx is missing: run `make test` (it installs the Debian package)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tongyeok-nginx-") as tmp:
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports)
        conf = Path(tmp) / "nginx.conf"
        # As root nginx would hand its workers to `nobody`, who cannot use this private temp dir.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(_CONF.format(user=user, dir=tmp, deploy=DEPLOY, servers=servers, port=port))
        process = subprocess.Popen(
            [binary, "-p", tmp, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"nginx exited: {process.stderr.read() if process.stderr else ''}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
