"""Bring a record database to the newest schema (Alembic), safely when several servers start at once.

The server runs ``upgrade`` at start; ``python -m tongyeok_server.store
migrate`` runs it alone (for deployments that migrate before rolling out).
Concurrent upgrades are serialised: PostgreSQL by an advisory lock held for
the migration's transaction, SQLite by ``BEGIN IMMEDIATE`` (one writer at a
time). Migrations are transactional on both, so a failed one leaves the
previous schema and every row in place.

On SQLite, foreign keys are off while migrating: Alembic's batch mode may
copy a table to alter it, and dropping the old copy must not cascade to the
rows that refer to it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL

from tongyeok_server.store.database import describe, open_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_ID = 0x746F6E67  # "tong": any constant all Tongyeok servers agree on


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision the code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(url: URL, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` to ``revision``; returns the revision it was at (None: empty)."""
    alembic_log = logging.getLogger("alembic")
    if alembic_log.level == logging.NOTSET:
        alembic_log.setLevel(logging.WARNING)  # its INFO lines at every start say nothing; ours says what changed
    engine = open_engine(url, pool=False)
    try:
        with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if not sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
                before = MigrationContext.configure(conn).get_current_revision()
                config = _config()
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                after = MigrationContext.configure(conn).get_current_revision()
        if before != after:
            log.info("record store %s: schema %s -> %s", describe(url), before or "(empty)", after)
        return before
    finally:
        engine.dispose()


def current(url: URL) -> str | None:
    """The revision the database at ``url`` is at (None: no schema yet)."""
    engine = open_engine(url, pool=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
