"""The web gateway's cost: the same N streams over gRPC and over the WebSocket gateway, event by event.

One server (fake Google recogniser, fake OpenAI, ``--web-port`` on), two
phases in turn: N streams over gRPC (the floor), then the same N streams
over ``/v1/interpret`` (config in proto3 JSON, audio in binary frames,
events back in proto3 JSON). The fake's results are fixed by the audio, so
each transcript of the second phase is matched to the same one of the
first: the difference is what the gateway adds per event (JSON, the
WebSocket framing, aiohttp's loop work), on top of the same session layer.
The server's CPU per stream-second is compared too.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.cloud import CloudOptions, analyse, phase, serving, start_fakes
from bench.procs import Children, free_port


def run_web(cloud: CloudOptions, n: int, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run both phases at ``n`` streams; returns the JSON-able results."""
    work_dir.mkdir(parents=True, exist_ok=True)
    web_port = free_port()
    options = replace(cloud, extra_args=(*cloud.extra_args, "--web-port", str(web_port)))
    with Children() as children:
        fakes = start_fakes(children, options, work_dir)
        with serving(children, options, n, fakes, work_dir) as (server, address):
            log(f"web: {n} streams over gRPC (the floor) ...")
            over_grpc = phase(children, options, n, "tongyeok", address, work_dir, server, fakes.pids)
            log(f"web: {n} streams over the WebSocket gateway ...")
            over_web = phase(children, options, n, "web", f"http://127.0.0.1:{web_port}", work_dir, server, fakes.pids)
    gateway = analyse(options, n, over_grpc, over_web)
    grpc_alone = analyse(options, n, over_grpc, over_grpc)
    return {
        "streams": n,
        "added_ms": gateway["added_ms"],
        "web_ms": gateway["tongyeok_ms"],
        "grpc_ms": gateway["direct_ms"],
        "unpaired_events": gateway["unpaired_events"],
        "web_pace": gateway["pace"],
        "grpc_pace": gateway["direct_pace"],
        "server_cpu_ms_per_stream_s": {
            "grpc": grpc_alone["server_cpu_ms_per_stream_s"],
            "web": gateway["server_cpu_ms_per_stream_s"],
        },
        "machine_busy": {"grpc": over_grpc.get("machine_busy"), "web": over_web.get("machine_busy")},
    }


def render_web(result: dict[str, Any]) -> str:
    """The table: what the gateway adds per event, beside its target and the gRPC floor of the same run."""
    n = result["streams"]
    lines = [
        f"Web gateway: {n} streams, WebSocket against gRPC on the same server (events matched one by one)",
        "| figure | gRPC (floor) | WebSocket | added | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in ("interim", "final"):
        floor, web, added = result["grpc_ms"][kind], result["web_ms"][kind], result["added_ms"][kind]
        for q in ("p50", "p99"):
            lines.append(
                f"| {kind} latency {q} (ms) | {floor.get(q, '-')} | {web.get(q, '-')} | {added.get(q, '-')} | "
                f"added {'< 5' if q == 'p50' else '< 20'} |"
            )
    cpu = result["server_cpu_ms_per_stream_s"]
    lines.append(f"| server CPU per stream-second (ms) | {cpu['grpc']} | {cpu['web']} | | |")
    pace = result["web_pace"] or {}
    lines.append(f"| streams behind | {result['grpc_pace']['streams_behind']} | {pace.get('streams_behind')} | | 0 |")
    busy = result["machine_busy"]
    lines.append(f"machine busy (share of all cores): gRPC phase {busy['grpc']}, WebSocket phase {busy['web']}")
    return "\n".join(lines)
