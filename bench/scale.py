"""Scale-out figures: streams per core with ``--processes 2`` against one process, what nginx adds, what metrics cost.

Three parts on the cloud path (fake Google recogniser, fake OpenAI, load
generators in processes of their own, all on this machine):

- **capacity**: at each N, one direct phase (the floor), then the same
  streams through ``tongyeok-server --processes 1`` and ``--processes 2``;
  the largest N that kept pace with each is its capacity, per core the
  capacity over the processes;
- **balancer**: one server, the same N streams straight to it and through
  nginx with deploy/nginx's files (``tests/support/nginx.py``); events are
  matched across the two phases, so the difference is nginx's own, per
  event;
- **metrics**: one server without and one with ``--metrics-port``, at N
  streams: server CPU per stream-second and latency; and, because that
  difference drowns in a shared machine's noise, the observer's CPU per
  event measured in a process of its own (``bench/metrics_cost.py``), single
  process and multiprocess (``--processes``) values.

The fakes and load generators share the server's two cores (and the
machine is shared with other work): the CPU table says how busy it was.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from bench.cloud import CloudOptions, analyse, phase, serving, start_fakes, through_server
from bench.procs import Children, free_port, python
from tests.support.nginx import Nginx


@dataclass(frozen=True)
class ScaleOptions:
    """What the scale part measures."""

    streams: tuple[int, ...] = (150, 250, 350, 450)
    processes: tuple[int, ...] = (1, 2)
    balancer_streams: int = 100  # 0: no balancer part
    metrics_streams: int = 200  # 0: no metrics part


def run_scale(cloud: CloudOptions, options: ScaleOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the three parts; returns the JSON-able results."""
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"seconds": cloud.seconds, "options": options.__dict__, "capacity": []}
    with Children() as children:
        fakes = start_fakes(children, cloud, work_dir)
        for n in options.streams:
            log(f"scale: {n} streams, direct path (the floor) ...")
            direct = phase(children, cloud, n, "direct", fakes.speech_address, work_dir, None, fakes.pids)
            for processes in options.processes:
                log(f"scale: {n} streams through tongyeok-server --processes {processes} ...")
                run_options = replace(cloud, server_processes=processes)
                through = through_server(children, run_options, n, fakes, work_dir / f"p{processes}")
                run = analyse(run_options, n, direct, through)
                run["processes"] = processes
                results["capacity"].append(run)
        if options.balancer_streams:
            results["balancer"] = _balancer(
                children, cloud, options.balancer_streams, fakes, work_dir / "balancer", log
            )
        if options.metrics_streams:
            results["metrics"] = _metrics(children, cloud, options.metrics_streams, fakes, work_dir / "metrics", log)
        for child in (fakes.openai, fakes.speech):
            children.stop(child)
    return results


def _balancer(children: Children, cloud: CloudOptions, n: int, fakes: Any, work_dir: Path, log: Any) -> dict[str, Any]:
    """The same streams straight to one server, then through nginx in front of it."""
    with (
        serving(children, cloud, n, fakes, work_dir) as (server, address),
        Nginx([int(address.rsplit(":", 1)[1])]) as nginx,
    ):
        log(f"scale: {n} streams straight to the server ...")
        straight = phase(children, cloud, n, "tongyeok", address, work_dir, server, fakes.pids)
        log(f"scale: {n} streams through nginx ...")
        workers = {f"nginx_{i}": p.pid for i, p in enumerate(psutil.Process(nginx.pid).children())}
        via = phase(children, cloud, n, "tongyeok", nginx.address, work_dir, server, fakes.pids | workers)
    added = analyse(cloud, n, straight, via)  # matched event by event: what nginx adds
    nginx_cores = sum(((via.get("cpu") or {}).get("roles") or {}).get(role) or 0.0 for role in workers)
    return {
        "streams": n,
        "added": added,
        "straight_pace": added["direct_pace"],
        "nginx_cpu_cores": round(nginx_cores, 3),
    }


def _metrics(children: Children, cloud: CloudOptions, n: int, fakes: Any, work_dir: Path, log: Any) -> dict[str, Any]:
    """One server without metrics, one with, at ``n`` streams."""
    log(f"scale: {n} streams, direct path (the floor) ...")
    direct = phase(children, cloud, n, "direct", fakes.speech_address, work_dir, None, fakes.pids)
    out: dict[str, Any] = {"streams": n}
    for label, extra in (("off", ()), ("on", ("--metrics-port", str(free_port())))):
        log(f"scale: {n} streams through tongyeok-server, metrics {label} ...")
        options = replace(cloud, extra_args=extra)
        through = through_server(children, options, n, fakes, work_dir / label)
        events = sum(len(s["events"]) for s in through["streams"])
        run = analyse(options, n, direct, through)
        run["transcript_events_per_stream_s"] = round(events / (n * cloud.seconds), 3)
        # Every event the server sent: transcripts, and each translation's tokens (the fake's: a word each
        # and the language tag) and its complete.
        tokens = sum(len(f[3].split()) + 2 for s in through["streams"] for f in s["finals"])
        run["events_per_stream_s"] = round((events + tokens) / (n * cloud.seconds), 3)
        out[label] = run
    # In-process, per event: what the A/B above cannot resolve on a shared machine.
    out["observer_cost"] = {
        mode: json.loads(
            subprocess.run(
                [python(), "-m", "bench.metrics_cost", *flags], capture_output=True, text=True, check=True, timeout=300
            ).stdout
        )
        for mode, flags in (("single", ()), ("multiprocess", ("--multiprocess",)))
    }
    return out
