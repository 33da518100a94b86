"""The meeting record's part of the bench table: latency and CPU with the store on each backend against off."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _worst(run: dict[str, Any], key: str) -> float:
    return max(run["added_ms"][k][key] or 0.0 for k in ("interim", "final"))


def _stored(run: dict[str, Any]) -> tuple[int, int] | None:
    """(utterances stored, finals the callers got), or None with the store off."""
    stored = run.get("stored")
    return None if stored is None else (stored["utterances"], run["finals_received"])


def record_targets(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The record's targets: what each backend adds to latency and CPU against the store off, and nothing lost."""
    if not record:
        return []
    runs = {r["store"]: r for r in record["runs"]}
    off = runs.get("none")
    out: list[dict[str, Any]] = []
    n = record["streams"]
    for store, run in runs.items():
        if store == "none" or off is None:
            continue
        d50 = _worst(run, "p50") - _worst(off, "p50")
        d99 = _worst(run, "p99") - _worst(off, "p99")
        out.append(
            {
                "target": f"record on {store}: added latency per event vs store off, {n} streams (p50 / p99)",
                "required": "< 1 ms / < 5 ms",
                "measured": f"{d50:+.2f} / {d99:+.2f} ms",
                "met": d50 < 1.0 and d99 < 5.0,
            }
        )
        cpu, cpu_off = run["server_cpu_ms_per_stream_s"], off["server_cpu_ms_per_stream_s"]
        if cpu is not None and cpu_off:
            extra = cpu - cpu_off
            out.append(
                {
                    "target": f"record on {store}: server CPU per stream-second vs store off",
                    "required": "< +10 %",
                    "measured": f"{cpu:.2f} vs {cpu_off:.2f} ms ({extra / cpu_off:+.0%})",
                    "met": extra / cpu_off < 0.10,
                }
            )
        counts = _stored(run)
        if counts is not None:
            stored, finals = counts
            out.append(
                {
                    "target": f"record on {store}: every final stored, none twice",
                    "required": "stored = finals",
                    "measured": f"{stored} stored, {finals} finals",
                    "met": stored == finals and run["stored"]["incomplete"] == 0,
                }
            )
    for store, cost in (record.get("writer_cost") or {}).items():
        per = cost["cpu_ms_per_write"]
        out.append(
            {
                "target": f"record on {store}: CPU per write in-process (submit to commit)",
                "required": "< 0.1 ms",
                "measured": f"{per:.3f} ms ({cost['writes']} writes)",
                "met": per < 0.1,
            }
        )
    return out


def record_table(record: dict[str, Any]) -> Table:
    """The cloud path at N streams with the meeting record off and on each backend."""
    table = Table(
        title=(
            f"Meeting record at {record['streams']} streams ({record['seconds']:.0f} s each): added = through Tongyeok "
            "- direct, per matched event (ms); the store's cost is the difference to --store none"
        ),
        title_justify="left",
    )
    for col in (
        "--store",
        "interim +p50/p99",
        "final +p50/p99",
        "1st token +p50/p99",
        "behind",
        "server CPU ms/s/stream",
        "RSS MB/stream",
        "sessions / ended / incomplete",
        "utterances stored / finals",
        "translations stored / complete",
    ):
        table.add_column(col, justify="right")
    for r in record["runs"]:
        a, tok, stored = r["added_ms"], r["first_token_added_ms"], r.get("stored")
        table.add_row(
            r["store"],
            f"{_f(a['interim']['p50'])}/{_f(a['interim']['p99'])}",
            f"{_f(a['final']['p50'])}/{_f(a['final']['p99'])}",
            f"{_f(tok['p50'])}/{_f(tok['p99'])}",
            str(r["pace"]["streams_behind"]) if r.get("pace") else "-",
            _f(r["server_cpu_ms_per_stream_s"]),
            _f(r["server_rss_per_stream_mb"], 3),
            "-" if stored is None else f"{stored['sessions']} / {stored['ended']} / {stored['incomplete']}",
            "-" if stored is None else f"{stored['utterances']} / {r['finals_received']}",
            "-" if stored is None else f"{stored['translations']} / {r['translations_complete']}",
        )
    return table
