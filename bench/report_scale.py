"""The scale part's tables and targets: processes per core, what nginx adds per event, what metrics cost."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# nginx in front may add, per event (p50 / p99 of the worst of interim and final), like the server itself.
BALANCER_P50_MS = 1.0
BALANCER_P99_MS = 5.0
# Metrics may cost this share of the server's CPU.
METRICS_CPU_SHARE = 0.05

SHARED = "2 cores shared with the fakes, the load generators and other work"


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _worst(run: dict[str, Any], q: str) -> float:
    return max(float(run["added_ms"][k][q] or 0.0) for k in ("interim", "final"))


def capacity(scale: dict[str, Any]) -> dict[int, int]:
    """The largest N that kept pace, per number of processes (0: none did)."""
    out: dict[int, int] = {}
    for run in scale.get("capacity", []):
        p = run["processes"]
        kept = run["pace"] is not None and run["pace"]["kept_pace"]
        out[p] = max(out.get(p, 0), run["streams"] if kept else 0)
    return out


def scale_tables(scale: dict[str, Any]) -> list[Table]:
    """The three tables."""
    tables = []
    cap = capacity(scale)
    table = Table(
        title=(
            f"Streams per core: tongyeok-server --processes 1 vs 2, {scale['seconds']:.0f} s of real-time audio per "
            f"stream ({SHARED}); largest N kept pace: "
            + ", ".join(f"{p} process(es) {n} ({n / p:.0f} per process)" for p, n in sorted(cap.items()))
        ),
        title_justify="left",
    )
    for col in (
        "streams",
        "processes",
        "kept pace",
        "added +p50/p99 ms",
        "1st token +p50",
        "server cores",
        "machine busy",
    ):
        table.add_column(col, justify="right")
    for run in scale.get("capacity", []):
        pace = run["pace"]
        table.add_row(
            str(run["streams"]),
            str(run["processes"]),
            "yes" if pace["kept_pace"] else f"NO ({pace['streams_behind']} behind)",
            f"{_worst(run, 'p50'):.2f}/{_worst(run, 'p99'):.2f}",
            _f(run["first_token_added_ms"]["p50"]),
            _f(run["server_cpu_cores"]),
            _f(run["machine_busy_tongyeok"]),
        )
    tables.append(table)
    balancer = scale.get("balancer")
    if balancer:
        added = balancer["added"]
        table = Table(
            title=(
                f"nginx in front (deploy/nginx), {balancer['streams']} streams: through nginx - straight to the "
                f"server, per matched event, ms ({SHARED})"
            ),
            title_justify="left",
        )
        for col in ("event", "p50", "p99", "max", "events"):
            table.add_column(col, justify="right")
        for kind in ("interim", "final"):
            s = added["added_ms"][kind]
            table.add_row(kind, _f(s["p50"]), _f(s["p99"]), _f(s["max"]), str(s.get("count", "-")))
        table.add_row("nginx CPU (cores)", _f(balancer["nginx_cpu_cores"], 3), "", "", "")
        table.add_row(
            "streams behind (straight / through)",
            str(balancer["straight_pace"]["streams_behind"]),
            str(added["pace"]["streams_behind"]),
            "",
            "",
        )
        tables.append(table)
    metrics = scale.get("metrics")
    if metrics:
        off, on = metrics["off"], metrics["on"]
        table = Table(
            title=f"Metrics (--metrics-port) off vs on, {metrics['streams']} streams ({SHARED})", title_justify="left"
        )
        for col in ("metrics", "server CPU ms/s/stream", "added +p50/p99 ms", "transcript events/s/stream"):
            table.add_column(col, justify="right")
        for label, run in (("off", off), ("on", on)):
            table.add_row(
                label,
                _f(run["server_cpu_ms_per_stream_s"], 3),
                f"{_worst(run, 'p50'):.2f}/{_worst(run, 'p99'):.2f}",
                _f(run["transcript_events_per_stream_s"]),
            )
        cost = metrics_cost(metrics)
        table.add_row(
            "difference (A/B)",
            "-" if cost is None else f"{cost['ms_per_stream_s']:+.3f} ({cost['share']:+.1%})",
            "",
            "-" if cost is None else f"{cost['us_per_event']:+.1f} us per transcript event",
        )
        for mode, measured in (metrics.get("observer_cost") or {}).items():
            share = observer_share(metrics, mode)
            table.add_row(
                f"observer in-process, {mode}",
                f"{measured['us_per_event']:.2f} us/event x {off['events_per_stream_s']:.1f} events/s",
                "-" if share is None else f"{share:.2%} of the server's CPU",
                f"flush {measured['flush_us']:.1f} us per stream per 5 s",
            )
        tables.append(table)
    return tables


def metrics_cost(metrics: dict[str, Any]) -> dict[str, float] | None:
    """CPU the metrics added in the A/B: per stream-second, as a share of the server's, per transcript event."""
    off, on = metrics["off"]["server_cpu_ms_per_stream_s"], metrics["on"]["server_cpu_ms_per_stream_s"]
    events = metrics["on"]["transcript_events_per_stream_s"]
    if off is None or on is None or not off:
        return None
    diff = on - off
    return {"ms_per_stream_s": diff, "share": diff / off, "us_per_event": diff * 1000 / events if events else 0.0}


def observer_share(metrics: dict[str, Any], mode: str = "multiprocess") -> float | None:
    """The observer's measured CPU per event x the events a stream gets per second, over the server's CPU."""
    cost = (metrics.get("observer_cost") or {}).get(mode)
    off = metrics["off"]
    if not cost or not off.get("server_cpu_ms_per_stream_s"):
        return None
    per_stream_ms = cost["us_per_event"] * off["events_per_stream_s"] / 1000
    return float(per_stream_ms / off["server_cpu_ms_per_stream_s"])


def scale_targets(scale: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The scale part's targets."""
    if not scale:
        return []
    out: list[dict[str, Any]] = []
    cap = capacity(scale)
    if cap:
        out.append(
            {
                "target": "real-time cloud streams, --processes 2 vs 1 (per process)",
                "required": f"reported ({SHARED})",
                "measured": ", ".join(f"{p}: {n} ({n / p:.0f} per process)" for p, n in sorted(cap.items())),
                "met": None,
            }
        )
    balancer = scale.get("balancer")
    if balancer:
        added = balancer["added"]
        p50, p99 = _worst(added, "p50"), _worst(added, "p99")
        out.append(
            {
                "target": f"nginx's added latency per event at {balancer['streams']} streams, p50 / p99",
                "required": f"< {BALANCER_P50_MS:g} ms / < {BALANCER_P99_MS:g} ms",
                "measured": f"{p50:.2f} / {p99:.2f} ms",
                "met": p50 < BALANCER_P50_MS and p99 < BALANCER_P99_MS,
            }
        )
    metrics = scale.get("metrics")
    share = observer_share(metrics) if metrics else None
    if metrics and share is not None:
        cost = metrics_cost(metrics)
        ab = "" if cost is None else f"; server A/B {cost['share']:+.1%}, within the noise"
        per_event = metrics["observer_cost"]["multiprocess"]["us_per_event"]
        out.append(
            {
                "target": f"metrics' CPU at {metrics['streams']} streams (multiprocess values)",
                "required": f"<= {METRICS_CPU_SHARE:.0%} of the server's",
                "measured": f"{share:.2%} ({per_event:.2f} us per event{ab})",
                "met": share <= METRICS_CPU_SHARE,
            }
        )
    return out
