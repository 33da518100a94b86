"""Running load-generator processes and sampling a server process while they run."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.procs import Children, python


@dataclass
class Sample:
    """One reading of a process tree: monotonic time, CPU seconds (user+system), RSS bytes, threads."""

    at: float
    cpu_s: float
    rss: int
    threads: int


@dataclass
class Sampler:
    """Samples a process (and its children) every ``interval_s`` on a thread of its own."""

    pid: int
    interval_s: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> Sample | None:
        """One sample now (``None`` if the process is gone)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
            cpu, rss, threads = 0.0, 0, 0
            for p in procs:
                with p.oneshot():
                    t = p.cpu_times()
                    cpu += t.user + t.system
                    rss += p.memory_info().rss
                    threads += p.num_threads()
            return Sample(time.monotonic(), cpu, rss, threads)
        except psutil.Error:
            return None

    def start(self) -> Sampler:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                sample = self.read()
                if sample is not None:
                    self.samples.append(sample)

        self._thread = threading.Thread(target=loop, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def window(self, begin: float, end: float) -> dict[str, float] | None:
        """CPU seconds per second, peak RSS and peak threads between ``begin`` and ``end`` (monotonic)."""
        inside = [s for s in self.samples if begin <= s.at <= end]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        span = last.at - first.at
        return {
            "seconds": span,
            "cpu_cores": (last.cpu_s - first.cpu_s) / span if span > 0 else 0.0,
            "rss_peak": float(max(s.rss for s in inside)),
            "threads_peak": float(max(s.threads for s in inside)),
        }


def machine_cpu_window(samples: list[tuple[float, float]], begin: float, end: float) -> float | None:
    """Mean whole-machine busy fraction (0..1) from (monotonic, busy seconds) readings in a window."""
    inside = [s for s in samples if begin <= s[0] <= end]
    if len(inside) < 2:
        return None
    cores = psutil.cpu_count() or 1
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) / cores


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def run_loadgen(
    children: Children,
    spec: dict[str, Any],
    processes: int,
    work_dir: Path,
    name: str,
    timeout_s: float,
) -> tuple[list[dict[str, Any]], list[float]]:
    """Run ``spec``'s streams split over ``processes`` load-generator processes.

    Returns the streams' results (ordered by stream index) and each load
    generator's CPU seconds (to show whether the generator itself was busy).
    """
    n = spec["streams"]
    processes = max(1, min(processes, n))
    work_dir.mkdir(parents=True, exist_ok=True)
    kids = []
    base = 0
    for p in range(processes):
        count = n // processes + (1 if p < n % processes else 0)
        part = dict(spec, streams=count, first_stream=base, total_streams=n)
        base += count
        spec_path = work_dir / f"{name}-{p}.spec.json"
        out_path = work_dir / f"{name}-{p}.out.json"
        out_path.unlink(missing_ok=True)
        spec_path.write_text(json.dumps(part))
        child = children.start(
            f"{name}-{p}", [python(), "-m", "bench.loadgen", str(spec_path), str(out_path)], work_dir
        )
        kids.append((child, out_path))
    deadline = time.monotonic() + timeout_s
    cpu: list[float] = []
    results: list[dict[str, Any]] = []
    for child, out_path in kids:
        last_cpu = 0.0
        while child.alive() and time.monotonic() < deadline:
            try:
                t = psutil.Process(child.pid).cpu_times()
                last_cpu = t.user + t.system
            except psutil.Error:
                pass
            time.sleep(0.2)
        cpu.append(last_cpu)
        if child.alive():
            children.stop(child)
            raise RuntimeError(f"load generator {child.name} did not finish within {timeout_s:.0f} s")
        children.stop(child)
        if not out_path.exists():
            raise RuntimeError(f"load generator {child.name} failed:\n{child.log_tail()}")
        results.extend(json.loads(out_path.read_text())["streams"])
    results.sort(key=lambda r: r["index"])
    return results, cpu
