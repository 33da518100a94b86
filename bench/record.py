"""What the meeting record costs: the cloud path at N streams with the store off, on SQLite, on PostgreSQL.

One direct phase (the floor) is shared; then one server per backend, each
fresh, with ``--store`` set, the same load through it. Latency is compared
event by event against the floor as in the sweep, CPU per stream-second in
the steady window; the difference to the ``none`` run is the record's cost.
After each server has stopped (it writes out what is pending), the rows in
its database are counted against the finals the callers got, so a store
that fell behind or lost writes shows up as missing rows, not as speed.
The PostgreSQL server is the tests' one (tests/support/postgres.py), on
loopback, started for the run.

Because those differences drown on a busy machine, ``writer_cost`` also
measures the record's own CPU in this process: 200 sessions' worth of
writes submitted to a ``RecordWriter`` on each backend, process CPU per
write from submit to commit (a CPU-time figure, which other processes'
load disturbs far less than latency).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from bench.cloud import CloudOptions, analyse, phase, start_fakes, through_server
from bench.procs import Children
from tests.support.postgres import PostgresServer, postgres_server
from tongyeok_server.store import schema
from tongyeok_server.store.database import database_url

BACKENDS = ("none", "sqlite", "postgres")


@dataclass(frozen=True)
class RecordOptions:
    """Which backends, at how many streams."""

    streams: int = 200
    stores: tuple[str, ...] = BACKENDS
    cost_sessions: int = 200  # sessions of the in-process writer_cost figure (20 utterances each)


def run_record(cloud: CloudOptions, options: RecordOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the comparison; returns the JSON-able results."""
    work_dir.mkdir(parents=True, exist_ok=True)
    n = options.streams
    results: dict[str, Any] = {"streams": n, "seconds": cloud.seconds, "runs": []}
    with Children() as children, _postgres("postgres" in options.stores) as pg:
        fakes = start_fakes(children, cloud, work_dir)
        log(f"record: {n} streams, direct path (the floor) ...")
        direct = phase(children, cloud, n, "direct", fakes.speech_address, work_dir, None, fakes.pids)
        for store in options.stores:
            url = {"none": "none", "sqlite": "sqlite", "postgres": pg.create_database() if pg else ""}[store]
            log(f"record: {n} streams through tongyeok-server --store {store} ...")
            run_dir = work_dir / store
            through = through_server(children, replace(cloud, store=url), n, fakes, run_dir)
            run = analyse(cloud, n, direct, through)
            run["store"] = store
            run["stored"] = _count(url, run_dir / f"data-{n}") if store != "none" else None
            results["runs"].append(run)
        for child in (fakes.openai, fakes.speech):
            children.stop(child)
        for store in options.stores:
            if store != "none":
                url = pg.create_database() if store == "postgres" and pg else f"sqlite:///{work_dir}/cost.db"
                results.setdefault("writer_cost", {})[store] = writer_cost(url, sessions=options.cost_sessions)
    return results


def writer_cost(store: str, sessions: int = 200, utterances: int = 20) -> dict[str, float]:
    """Process CPU per record write (submit on this thread, the writer thread's batch and commit)."""
    from tests.support.records import meeting_ops, open_record

    with open_record(store) as record:
        writer = record.writer
        entries = [writer.track(f"s{i}", lambda _e: None) for i in range(sessions)]
        writes = [meeting_ops(f"s{i}", utterances=utterances) for i in range(sessions)]
        for entry, ops in zip(entries, writes, strict=True):
            writer.submit(entry, ops[0])
        writer.wait_idle(60)
        body = [(entry, op) for entry, ops in zip(entries, writes, strict=True) for op in ops[1:-1]]
        started = time.process_time()
        for entry, op in body:
            writer.submit(entry, op)
        writer.wait_idle(120)
        cpu_ms = (time.process_time() - started) * 1000
    return {"writes": len(body), "cpu_ms_per_write": round(cpu_ms / len(body), 4)}


@contextlib.contextmanager
def _postgres(wanted: bool) -> Iterator[PostgresServer | None]:
    if not wanted:
        yield None
        return
    with postgres_server() as server:
        yield server


def _count(store: str, data_dir: Path) -> dict[str, int]:
    """Rows of the record after the server stopped: sessions, utterances, translations, incomplete sessions."""
    url = database_url(store, str(data_dir))
    assert url is not None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:

            def count(table: Any, *where: Any) -> int:
                return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

            return {
                "sessions": count(schema.sessions),
                "ended": count(schema.sessions, schema.sessions.c.ended_at.is_not(None)),
                "incomplete": count(schema.sessions, schema.sessions.c.incomplete_reason != ""),
                "utterances": count(schema.utterances),
                "translations": count(schema.translations, schema.translations.c.failed.is_(False)),
            }
    finally:
        engine.dispose()
