"""How the CLI reaches the server: address and transport security, from flags and the environment."""

from __future__ import annotations

import argparse
import os

from ..client import DEFAULT_TARGET, InterpreterClient
from .common import UsageError


def connection_parent() -> argparse.ArgumentParser:
    """The connection flags every command takes (and ``--json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("TONGYEOK_SERVER") or DEFAULT_TARGET,
        help="HOST:PORT of the server (default: $TONGYEOK_SERVER or %(default)s)",
    )
    common.add_argument("--secure", action="store_true", help="connect with TLS (system root certificates)")
    common.add_argument(
        "--token",
        default=os.environ.get("TONGYEOK_TOKEN") or None,
        help="API key or JWT to send as the bearer token (default: $TONGYEOK_TOKEN; prefer the variable, "
        "a flag shows in the process list)",
    )
    common.add_argument(
        "--ca-file",
        default=os.environ.get("TONGYEOK_CA_FILE") or None,
        metavar="PEM",
        help="CA that signed the server's certificate, instead of the system roots (implies TLS; $TONGYEOK_CA_FILE)",
    )
    common.add_argument(
        "--cert",
        default=os.environ.get("TONGYEOK_CLIENT_CERT") or None,
        metavar="PEM",
        help="client certificate for mutual TLS, with --key ($TONGYEOK_CLIENT_CERT)",
    )
    common.add_argument(
        "--key",
        default=os.environ.get("TONGYEOK_CLIENT_KEY") or None,
        metavar="PEM",
        help="private key of --cert ($TONGYEOK_CLIENT_KEY)",
    )
    common.add_argument("--json", action="store_true", help="print one JSON object per event/answer, nothing else")
    return common


def client_from_args(args: argparse.Namespace) -> InterpreterClient:
    """An ``InterpreterClient`` for the parsed connection flags; ``UsageError`` if they do not fit together."""
    try:
        return InterpreterClient(
            args.server,
            token=args.token,
            secure=args.secure,
            ca_file=args.ca_file,
            client_cert=args.cert,
            client_key=args.key,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
