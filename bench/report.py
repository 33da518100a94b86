"""The bench's table (targets beside figures) and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.openai_client import openai_client_targets
from bench.report_asr import asr_table, asr_targets
from bench.report_engines import engine_targets, engines_table
from bench.report_live import live_table, live_targets
from bench.report_record import record_table, record_targets
from bench.report_resume import resume_table, resume_targets
from bench.report_scale import scale_tables, scale_targets
from bench.report_security import security_table, security_targets
from bench.report_simultaneous import simultaneous_table, simultaneous_targets
from bench.report_speech import speech_table, speech_targets


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue with its measured figure and whether it was met (``None``: not measured)."""
    out: list[dict[str, Any]] = []
    # Direct-only runs measure the fakes and load generators, not Tongyeok.
    every = results.get("cloud", {}).get("runs", [])
    runs = {r["streams"]: r for r in every if r.get("pace") is not None}
    missing = "not run (direct path only)" if every and not runs else "not run (no N=200)"

    def add(name: str, required: str, measured: str, met: bool | None) -> None:
        out.append({"target": name, "required": required, "measured": measured, "met": met})

    at200 = runs.get(200)
    if at200 is not None:
        p50 = max(at200["added_ms"][k]["p50"] or 0.0 for k in ("interim", "final"))
        p99 = max(at200["added_ms"][k]["p99"] or 0.0 for k in ("interim", "final"))
        add("added latency at 200 streams, p50 (worst of interim/final)", "< 1 ms", f"{p50:.2f} ms", p50 < 1.0)
        add("added latency at 200 streams, p99 (worst of interim/final)", "< 5 ms", f"{p99:.2f} ms", p99 < 5.0)
    else:
        add("added latency at 200 streams", "p50 < 1 ms, p99 < 5 ms", missing, None)
    if runs:
        kept = [n for n, r in runs.items() if r["pace"]["kept_pace"]]
        largest = max(kept, default=0)
        tried = max(runs)
        add(
            "concurrent real-time streams, cloud engines, none behind",
            ">= 500",
            f"{largest} kept pace (largest tried {tried})",
            largest >= 500,
        )
        big = runs[tried]
        per = big["server_rss_per_stream_mb"]
        add(
            f"server memory per open stream (at {tried})",
            "< 2 MB",
            f"{_f(per, 3)} MB",
            None if per is None else per < 2,
        )
    out.extend(engine_targets(every))
    out.extend(openai_client_targets(results.get("openai_client")))
    out.extend(security_targets(every))
    out.extend(record_targets(results.get("record")))
    out.extend(speech_targets(results.get("speech")))
    out.extend(simultaneous_targets(results.get("simultaneous")))
    out.extend(resume_targets(results.get("resume")))
    out.extend(scale_targets(results.get("scale")))
    offline = results.get("offline")
    if offline:
        lat = offline["latency"]
        worst = lat["sentence_end_to_final_ms"]["max"]
        add(
            "embedded: sentence end -> final (max)",
            "< 500 ms",
            f"{_f(worst, 0)} ms (p50 {_f(lat['sentence_end_to_final_ms']['p50'], 0)})",
            None if worst is None else worst < 500,
        )
        tok = lat["final_to_first_token_ms"]["max"]
        add(
            "embedded: final -> first translation token (max)",
            "< 50 ms",
            f"{_f(tok, 1)} ms (p50 {_f(lat['final_to_first_token_ms']['p50'], 1)})",
            None if tok is None else tok < 50,
        )
        ratio = offline.get("capacity_ratio")
        cap = offline["capacity"]
        add(
            "embedded: offline capacity, 2 workers / 1 worker",
            ">= 1.8",
            f"{_f(ratio)} ({' vs '.join(_f(c['realtime_streams'], 1) for c in cap.values())} real-time streams)",
            None if ratio is None else ratio >= 1.8,
        )
    out.extend(asr_targets(results.get("asr")))
    out.extend(live_targets(results.get("live")))
    return out


def render(results: dict[str, Any], console: Console | None = None) -> None:
    """Print the tables."""
    console = console or Console(width=200)
    machine = results.get("machine", {})
    console.print(
        f"[bold]Tongyeok bench[/bold] - {machine.get('cpus')} CPUs ({machine.get('cpu_model', '?')}), "
        f"{machine.get('memory_gb')} GB, Python {machine.get('python')}, {results.get('elapsed_s', 0):.0f} s"
    )
    cloud = results.get("cloud")
    if cloud:
        opts = cloud["options"]
        table = Table(
            title=(
                f"Cloud engines on the fakes: added latency = through Tongyeok - direct to the fake, per matched event "
                f"(ms); fake TTFT {opts['ttft_ms']:.0f} ms subtracted; {opts['seconds']:.0f} s of audio per stream"
            ),
            title_justify="left",
        )
        for col in (
            "streams",
            "interim +p50/p99/max",
            "final +p50/p99/max",
            "1st token +p50/p99/max",
            "direct final p50/p99",
            "send late p99/max",
            "behind",
            "finals",
            "server CPU ms/s/stream",
            "RSS MB/stream",
            "threads",
            "machine busy",
        ):
            table.add_column(col, justify="right")
        for r in cloud["runs"]:
            if r.get("pace") is None:
                continue
            a = r["added_ms"]
            tok = r["first_token_added_ms"]
            late = r["pace"]["lateness_ms"]
            behind = r["pace"]["streams_behind"]
            table.add_row(
                str(r["streams"]),
                f"{_f(a['interim']['p50'])}/{_f(a['interim']['p99'])}/{_f(a['interim']['max'], 0)}",
                f"{_f(a['final']['p50'])}/{_f(a['final']['p99'])}/{_f(a['final']['max'], 0)}",
                f"{_f(tok['p50'])}/{_f(tok['p99'])}/{_f(tok['max'], 0)}",
                f"{_f(r['direct_ms']['final']['p50'])}/{_f(r['direct_ms']['final']['p99'])}",
                f"{_f(late['p99'], 1)}/{_f(late['max'], 0)}",
                f"{behind}" + ("" if r["pace"]["statuses"] == ["OK"] else " " + ",".join(r["pace"]["statuses"])[:40]),
                f"{r['finals_received']}/{r['finals_expected_per_stream'] * r['streams']}",
                _f(r["server_cpu_ms_per_stream_s"]),
                _f(r["server_rss_per_stream_mb"], 3),
                _f(r["server_threads"], 0),
                _f(r["machine_busy_tongyeok"]),
            )
        if any(r.get("pace") is not None for r in cloud["runs"]):
            console.print(table)
        console.print(cpu_table(cloud["runs"]))
        engines = engines_table(cloud["runs"])
        if engines is not None:
            console.print(engines)
        secure = security_table(cloud["runs"])
        if secure is not None:
            console.print(secure)
    if results.get("record"):
        console.print(record_table(results["record"]))
    offline = results.get("offline")
    if offline:
        table = Table(title="Embedded engines (pocketsphinx + Apertium eng-spa)", title_justify="left")
        table.add_column("measure")
        table.add_column("figure", justify="right")
        lat = offline["latency"]
        s2f = lat["sentence_end_to_final_ms"]
        f2t = lat["final_to_first_token_ms"]
        table.add_row(
            "sentence end -> final, ms p50/p99/max",
            f"{_f(s2f['p50'], 0)}/{_f(s2f['p99'], 0)}/{_f(s2f['max'], 0)} ({lat['sentences_matched']}/{lat['sentences']} sentences)",
        )
        table.add_row(
            "final -> first translation token, ms p50/p99/max", f"{_f(f2t['p50'])}/{_f(f2t['p99'])}/{_f(f2t['max'])}"
        )
        table.add_row("real-time factor, one stream (wall / audio)", _f(offline["rtf"]["rtf_per_stream"], 3))
        for workers, cap in offline["capacity"].items():
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in cap["cpu_s"].items())
            table.add_row(
                f"capacity, {workers} worker(s): real-time streams ({cap['streams']} unpaced streams)",
                f"{_f(cap['realtime_streams'], 1)}  [CPU s: {cpu}; wall {cap['wall_s']:.1f} s]",
            )
        table.add_row("capacity ratio 2 / 1", _f(offline["capacity_ratio"]))
        console.print(table)
    asr = results.get("asr")
    if asr:
        console.print(asr_table(asr))
    live = results.get("live")
    if live:
        console.print(live_table(live))
    if results.get("speech"):
        console.print(speech_table(results["speech"]))
    if results.get("simultaneous"):
        console.print(simultaneous_table(results["simultaneous"]))
    if results.get("resume"):
        console.print(resume_table(results["resume"]))
    for table in scale_tables(results["scale"]) if results.get("scale") else ():
        console.print(table)
    table = Table(title="Targets", title_justify="left")
    for col in ("target", "required", "measured", "met"):
        table.add_column(col)
    for t in results.get("targets", []):
        met = "n/a" if t["met"] is None else "[green]yes[/green]" if t["met"] else "[red]NO[/red]"
        table.add_row(t["target"], t["required"], t["measured"], met)
    console.print(table)


CPU_COLUMNS = (
    ("server", "server"),
    ("fake_speech", "fake speech"),
    ("fake_openai", "fake openai"),
    ("loadgen", "load gen"),
    ("bench", "bench"),
    ("other", "other"),
)


def cpu_table(runs: list[dict[str, Any]]) -> Table:
    """Where the machine's CPU went in each phase of each N: is a missed target the server's or the box's?"""
    cores = next((p["machine_cores"] for r in runs for p in (r.get("cpu") or {}).values() if p), "?")
    table = Table(
        title=(
            "Where the CPU went, steady window: cores (ms of CPU per stream-second); "
            f"machine = busy cores of {cores}; other = the rest of the box (other work, kernel, sampling error)"
        ),
        title_justify="left",
    )
    for col in ("streams", "phase", "kept pace", *(label for _, label in CPU_COLUMNS), "machine"):
        table.add_column(col, justify="right")
    for r in runs:
        for phase, pace in (("direct", r.get("direct_pace")), ("tongyeok", r.get("pace"))):
            split = (r.get("cpu") or {}).get(phase)
            if pace is None and split is None:
                continue
            kept = "-" if pace is None else "yes" if pace["kept_pace"] else f"NO ({pace['streams_behind']} behind)"
            cells = []
            for key, _ in CPU_COLUMNS:
                value = None if split is None else split["cores"].get(key)
                per = None if split is None else split["ms_per_stream_s"].get(key)
                cells.append("-" if value is None else f"{value:.2f} ({per:.2f})" if key != "other" else f"{value:.2f}")
            machine = None if split is None else split["cores"]["machine"]
            table.add_row(str(r["streams"]), phase, kept, *cells, _f(machine))
    return table


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results (raw per-run figures included) as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))
