"""What TLS and authentication cost: the same streams through a plaintext server and a TLS + API-key one."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# What the secure path may add over plaintext, per event (p50 of the worst of interim/final).
ADDED_P50_TARGET_MS = 0.5


def _p(run: dict[str, Any], kind: str, q: str) -> float:
    if kind == "token":
        return float(run["first_token_added_ms"][q] or 0.0)
    return float(run["added_ms"][kind][q] or 0.0)


def security_table(runs: list[dict[str, Any]]) -> Table | None:
    """Plaintext vs TLS + API key at each N that measured both; None when none did."""
    pairs = [(r, r["secure"]) for r in runs if r.get("secure") and r.get("pace")]
    if not pairs:
        return None
    table = Table(
        title="TLS + API key on every call vs plaintext (added ms over the direct path, per matched event)",
        title_justify="left",
    )
    for col in (
        "streams",
        "server",
        "interim +p50/p99",
        "final +p50/p99",
        "1st token +p50/p99",
        "behind",
        "server CPU ms/s/stream",
    ):
        table.add_column(col, justify="right")
    for plain, secure in pairs:
        for label, run in (("plaintext", plain), ("TLS + key", secure)):
            table.add_row(
                str(plain["streams"]),
                label,
                f"{_p(run, 'interim', 'p50'):.2f}/{_p(run, 'interim', 'p99'):.2f}",
                f"{_p(run, 'final', 'p50'):.2f}/{_p(run, 'final', 'p99'):.2f}",
                f"{_p(run, 'token', 'p50'):.2f}/{_p(run, 'token', 'p99'):.2f}",
                str(run["pace"]["streams_behind"]),
                "-" if run["server_cpu_ms_per_stream_s"] is None else f"{run['server_cpu_ms_per_stream_s']:.2f}",
            )
        table.add_row(
            str(plain["streams"]),
            "difference",
            f"{_p(secure, 'interim', 'p50') - _p(plain, 'interim', 'p50'):+.2f}",
            f"{_p(secure, 'final', 'p50') - _p(plain, 'final', 'p50'):+.2f}",
            f"{_p(secure, 'token', 'p50') - _p(plain, 'token', 'p50'):+.2f}",
            "",
            "-"
            if None in (secure["server_cpu_ms_per_stream_s"], plain["server_cpu_ms_per_stream_s"])
            else f"{secure['server_cpu_ms_per_stream_s'] - plain['server_cpu_ms_per_stream_s']:+.2f}",
        )
    return table


def security_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The target for what TLS and authentication add, per N that measured it."""
    out = []
    for r in runs:
        secure = r.get("secure")
        if not secure or not r.get("pace"):
            continue
        worst = max(_p(secure, k, "p50") - _p(r, k, "p50") for k in ("interim", "final"))
        out.append(
            {
                "target": f"TLS + API key: added latency over plaintext at {r['streams']} streams, p50",
                "required": f"<= {ADDED_P50_TARGET_MS} ms",
                "measured": f"{worst:+.2f} ms ({secure['pace']['streams_behind']} streams behind)",
                "met": worst <= ADDED_P50_TARGET_MS and secure["pace"]["kept_pace"],
            }
        )
    return out
