"""How the CLI reaches the server: address and transport security, from flags and the environment."""

from __future__ import annotations

import argparse
import os

from ..client import DEFAULT_TARGET, InterpreterClient


def connection_parent() -> argparse.ArgumentParser:
    """The connection flags every command takes (and ``--json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("TONGYEOK_SERVER") or DEFAULT_TARGET,
        help="HOST:PORT of the server (default: $TONGYEOK_SERVER or %(default)s)",
    )
    common.add_argument("--secure", action="store_true", help="connect with TLS (system root certificates)")
    common.add_argument("--json", action="store_true", help="print one JSON object per event/answer, nothing else")
    return common


def client_from_args(args: argparse.Namespace) -> InterpreterClient:
    """An ``InterpreterClient`` for the parsed connection flags."""
    return InterpreterClient(args.server, secure=args.secure)
