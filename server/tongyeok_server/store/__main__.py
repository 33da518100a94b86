"""``python -m tongyeok_server.store migrate|current|relabel-jwt-callers``: the record, without a server.

The server migrates at start anyway; ``migrate`` is for deployments that
migrate before they roll out, ``current`` shows which revision a database
is at. ``relabel-jwt-callers`` gives the records made before issue 24 under
the old JWT caller ids to today's (``store/relabel.py``; needs
``--jwt-issuer``). ``--store`` and ``--data-dir`` (and their ``TONGYEOK_*``
variables) mean what they mean to the server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from tongyeok_server.settings import SettingsError, from_args
from tongyeok_server.store import migrate
from tongyeok_server.store.database import StoreUrlError, database_url, describe, open_engine
from tongyeok_server.store.relabel import relabel_jwt_callers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tongyeok_server.store", description=__doc__)
    parser.add_argument(
        "command",
        choices=("migrate", "current", "relabel-jwt-callers"),
        help="upgrade to the newest schema, show it, or give records of old JWT caller ids to today's",
    )
    args, rest = parser.parse_known_args(argv)
    try:
        # The server's flags, each group checked; not the rules between groups (--jwt-issuer alone is fine here).
        settings = from_args(rest, prog="python -m tongyeok_server.store", rules=False)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        url = database_url(settings.store.store, settings.store.data_dir)
    except StoreUrlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if url is None:
        print("error: --store none: there is no record to migrate", file=sys.stderr)
        return 2
    if args.command == "relabel-jwt-callers" and not settings.security.jwt_issuer:
        print(
            "error: relabel-jwt-callers needs --jwt-issuer: the issuer the records' callers came from", file=sys.stderr
        )
        return 2
    try:
        if args.command == "relabel-jwt-callers":
            return _relabel(url, settings.security.jwt_issuer)
        if args.command == "migrate":
            migrate.upgrade(url)
        print(f"{describe(url)}: schema {migrate.current(url) or '(empty)'} (newest {migrate.head()})")
    except SQLAlchemyError as error:
        print(f"error: {describe(url)}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def _relabel(url: URL, issuer: str) -> int:
    migrate.upgrade(url)
    engine = open_engine(url, pool=False)
    try:
        done = relabel_jwt_callers(engine, issuer)
    finally:
        engine.dispose()
    print(f"{describe(url)}: {sum(done.moved.values())} records of {len(done.moved)} JWT callers relabelled")
    if done.left:
        print(
            f"{sum(done.left.values())} records of {len(done.left)} old JWT caller ids that several subjects "
            "shared are left as they are (readable with transcripts:admin): " + ", ".join(sorted(done.left))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
