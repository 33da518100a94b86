"""``tongyeok-health``: ask a server's gRPC health service; exit 0 when SERVING.

For container health checks and scripts (Kubernetes' own ``grpc`` probes
need no binary). It is installed with the server, so an image needs no
downloaded ``grpc_health_probe``. By default it asks
``127.0.0.1:$TONGYEOK_HEALTH_PORT`` (or ``$TONGYEOK_PORT``, then 50051),
so ``tongyeok-health`` alone checks the server of the same container.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _default_address() -> str:
    port = os.environ.get("TONGYEOK_HEALTH_PORT") or os.environ.get("TONGYEOK_PORT") or "50051"
    if port == "0":
        port = os.environ.get("TONGYEOK_PORT") or "50051"
    return f"127.0.0.1:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    """Check once; 0 SERVING, 1 anything else (printed on stderr)."""
    parser = argparse.ArgumentParser(prog="tongyeok-health", description=__doc__.split("\n")[0])
    parser.add_argument("--address", default=_default_address(), help="host:port (default: %(default)s)")
    parser.add_argument(
        "--service", default="", help="'' (ready for new streams, the default), liveness, tongyeok.v1.Interpreter"
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default: %(default)s)")
    parser.add_argument("--tls", action="store_true", help="the port speaks TLS")
    parser.add_argument("--ca-file", default="", help="PEM CA to trust with --tls (default: the system's)")
    parser.add_argument("--server-name", default="", help="the name the certificate must carry, with --tls")
    args = parser.parse_args(argv)
    if args.tls:
        roots = Path(args.ca_file).read_bytes() if args.ca_file else None
        options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
        channel = grpc.secure_channel(args.address, grpc.ssl_channel_credentials(roots), options=options)
    else:
        channel = grpc.insecure_channel(args.address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"tongyeok-health: {args.address}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"tongyeok-health: {args.address} service {args.service!r}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
