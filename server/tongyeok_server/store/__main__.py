"""``python -m tongyeok_server.store migrate|current``: the record's schema, without starting a server.

The server migrates at start anyway; this is for deployments that migrate
before they roll out, and to see which revision a database is at. ``--store``
and ``--data-dir`` (and their ``TONGYEOK_*`` variables) mean what they mean
to the server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from tongyeok_server.settings import ServerSettings
from tongyeok_server.store import migrate
from tongyeok_server.store.database import StoreUrlError, database_url, describe


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tongyeok_server.store", description=__doc__)
    parser.add_argument("command", choices=("migrate", "current"), help="upgrade to the newest schema, or show it")
    args, rest = parser.parse_known_args(argv)
    settings = ServerSettings.from_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        url = database_url(settings.store, settings.data_dir)
    except StoreUrlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if url is None:
        print("error: --store none: there is no record to migrate", file=sys.stderr)
        return 2
    try:
        if args.command == "migrate":
            migrate.upgrade(url)
        print(f"{describe(url)}: schema {migrate.current(url) or '(empty)'} (newest {migrate.head()})")
    except SQLAlchemyError as error:
        print(f"error: {describe(url)}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
