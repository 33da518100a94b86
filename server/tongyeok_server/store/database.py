"""Which database keeps the record, and connections to it that behave the same on SQLite and PostgreSQL.

SQLite (the default) is one file under ``--data-dir``, in WAL mode so that
readers never wait for the writer and several ``--processes`` can share the
file; every connection waits up to ``SQLITE_BUSY_TIMEOUT_MS`` for another
process's write instead of failing. Transactions that write begin with
``BEGIN IMMEDIATE`` (the ``write`` helper), so that two processes never both
hold a read snapshot and then race to upgrade it, which SQLite would refuse
at once rather than wait.

PostgreSQL goes through psycopg 3. Pooled connections are checked before use
(``pool_pre_ping``), so a database that restarted costs one failed write,
not a broken pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

SQLITE_FILE = "tongyeok.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 5
_DISABLED = {"none", "off", "false", "no", ""}


class StoreUrlError(ValueError):
    """``--store`` names no database this server can use."""


def database_url(store: str, data_dir: str) -> URL | None:
    """``--store`` and ``--data-dir`` as a SQLAlchemy URL; None when the record is turned off.

    Raises:
        StoreUrlError: with what is accepted.

    """
    value = store.strip()
    if value.lower() in _DISABLED:
        return None
    if value.lower() == "sqlite":
        return URL.create("sqlite+pysqlite", database=os.path.join(data_dir, SQLITE_FILE))
    try:
        url = make_url(value)
    except ArgumentError:
        raise StoreUrlError(
            f"--store {value!r} is not a database URL; use sqlite, sqlite:///PATH, postgresql://USER@HOST:PORT/DB or none"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreUrlError("--store sqlite:// needs a file (sqlite:///PATH): an in-memory record would vanish")
        return url.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        if url.password:
            raise StoreUrlError(
                "--store: keep the PostgreSQL password out of the URL (flags and variables show in ps and logs); "
                "put it in PGPASSWORD or ~/.pgpass"
            )
        return url.set(drivername="postgresql+psycopg")
    raise StoreUrlError(f"--store {url.drivername}://...: supported are sqlite and postgresql")


def describe(url: URL) -> str:
    """The URL for logs (no password, which ``database_url`` refuses anyway)."""
    return url.render_as_string(hide_password=True)


def open_engine(url: URL, *, pool: bool = True) -> Engine:
    """An engine for ``url`` with the settings above; creates the SQLite file's directory."""
    if url.get_backend_name() == "sqlite":
        assert url.database
        directory = os.path.dirname(os.path.abspath(url.database))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        engine = create_engine(url, poolclass=None if pool else NullPool)
        _sqlite_behaviour(engine)
        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    if pool:
        kwargs.update(pool_size=4, max_overflow=8, pool_timeout=CONNECT_TIMEOUT_S)
    else:
        kwargs["poolclass"] = NullPool
    return create_engine(url, **kwargs)


def _sqlite_behaviour(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL stays consistent after a crash; a power cut may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@contextlib.contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: committed at the end, rolled back on an exception."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn
