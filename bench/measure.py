"""Running load-generator processes and sampling a server process while they run."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.procs import Children, python


class _Ticker:
    """Calls ``tick`` every ``interval_s`` on a daemon thread of its own, until ``stop``."""

    def __init__(self, name: str, interval_s: float, tick: Callable[[], object]) -> None:
        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                tick()

        self._thread = threading.Thread(target=loop, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


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
    _ticker: _Ticker | None = None

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
        def tick() -> None:
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)

        self._ticker = _Ticker("bench-sampler", self.interval_s, tick)
        return self

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

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


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


@dataclass
class CpuSampler:
    """Where the machine's CPU goes: CPU seconds of each role's processes and of the whole machine.

    Roles are named groups of processes (``server``, ``fake_speech``,
    ``loadgen``...), each process read with its children unless watched with
    ``tree=False`` (the bench's own process, whose children are the other
    roles). One thread reads
    every role and the machine at the same instants, so a window's figures add
    up: what the roles do not account for is ``other`` (the rest of the box).
    """

    interval_s: float = 0.25
    roles: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)  # role -> [(pid, with children)]
    # (monotonic, machine busy seconds, {role: {pid: CPU seconds of the process and its children}})
    samples: list[tuple[float, float, dict[str, dict[int, float]]]] = field(default_factory=list)
    _ticker: _Ticker | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, role: str, pid: int, tree: bool = True) -> None:
        """Count ``pid`` (and, with ``tree``, its children) as ``role`` from now on."""
        with self._lock:
            self.roles.setdefault(role, []).append((pid, tree))

    def read(self) -> None:
        """Take one sample now."""
        with self._lock:
            roles = {role: list(pids) for role, pids in self.roles.items()}
        readings: dict[str, dict[int, float]] = {}
        for role, pids in roles.items():
            readings[role] = {}
            for pid, tree in pids:
                cpu = _cpu_s(pid, tree)
                if cpu is not None:
                    readings[role][pid] = cpu
        self.samples.append((time.monotonic(), machine_busy_s(), readings))

    def start(self) -> CpuSampler:
        self.read()
        self._ticker = _Ticker("bench-cpu", self.interval_s, self.read)
        return self

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def window(self, begin: float, end: float) -> dict[str, Any] | None:
        """Cores (CPU seconds per second) used by each role, the machine, and the rest, between two instants.

        ``machine`` is busy cores of the whole box (of ``cores``); ``other`` is
        ``machine`` minus the roles: other work on a shared box, the kernel's
        share not charged to a process, and sampling error.
        """
        inside = [s for s in self.samples if begin <= s[0] <= end]
        if len(inside) < 2:
            return None
        span = inside[-1][0] - inside[0][0]
        if span <= 0:
            return None
        roles: dict[str, float | None] = {}
        for role in self.roles:
            first: dict[int, float] = {}
            last: dict[int, float] = {}
            for _, _, readings in inside:
                for pid, cpu in readings.get(role, {}).items():
                    first.setdefault(pid, cpu)
                    last[pid] = cpu
            roles[role] = sum(last[pid] - first[pid] for pid in first) / span if first else None
        machine = (inside[-1][1] - inside[0][1]) / span
        return {
            "seconds": span,
            "cores": psutil.cpu_count() or 1,
            "machine": machine,
            "roles": roles,
            "other": machine - sum(v for v in roles.values() if v is not None),
        }


def _cpu_s(pid: int, tree: bool) -> float | None:
    """CPU seconds (user + system) of a process (and its live children); ``None`` if it is gone."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in (root, *root.children(recursive=True)) if tree else (root,):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total
    except psutil.Error:
        return None


def run_loadgen(
    children: Children,
    spec: dict[str, Any],
    processes: int,
    work_dir: Path,
    name: str,
    timeout_s: float,
    cpu: CpuSampler | None = None,
) -> tuple[list[dict[str, Any]], list[float]]:
    """Run ``spec``'s streams split over ``processes`` load-generator processes.

    Returns the streams' results (ordered by stream index) and each load
    generator's CPU seconds over its whole life, start-up included (to show
    whether the generator itself was busy). With ``cpu``, each load generator
    is also watched there as the role ``loadgen``, for figures over a window.
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
        if cpu is not None:
            cpu.watch("loadgen", child.pid, tree=False)
    deadline = time.monotonic() + timeout_s
    # Every generator is read on every round (the last reading before it exits is its CPU time).
    lifetime_cpu = [0.0] * len(kids)
    while time.monotonic() < deadline and any(child.alive() for child, _ in kids):
        for i, (child, _) in enumerate(kids):
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(child.pid).cpu_times()
                lifetime_cpu[i] = t.user + t.system
        time.sleep(0.2)
    results: list[dict[str, Any]] = []
    for child, out_path in kids:
        if child.alive():
            children.stop(child)
            raise RuntimeError(f"load generator {child.name} did not finish within {timeout_s:.0f} s")
        children.stop(child)
        if not out_path.exists():
            raise RuntimeError(f"load generator {child.name} failed:\n{child.log_tail()}")
        results.extend(json.loads(out_path.read_text())["streams"])
    results.sort(key=lambda r: r["index"])
    return results, lifetime_cpu
