"""Sampling a running server with py-spy, summarised as the functions where its threads spend time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The py-spy executable next to the interpreter, or on PATH."""
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def profile_process(pid: int, seconds: float, out_prefix: Path, top: int = 12) -> dict[str, Any]:
    """Record ``pid`` for ``seconds`` (active threads only) and summarise the stacks.

    ``self``: the innermost frame of each sample (where the CPU is spent);
    ``inclusive``: every function on the stack once per sample. Shares are
    fractions of all samples of threads that were running (py-spy drops
    idle threads), so they show what keeps the cores busy.
    """
    exe = py_spy()
    if exe is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    raw = out_prefix.with_suffix(".folded")
    # --subprocesses: with --server-processes the pid is the supervisor, and the servers are its children.
    cmd = [
        exe,
        "record",
        "-p",
        str(pid),
        "-d",
        str(max(1, round(seconds))),
        "-r",
        "50",
        "--nonblocking",
        "--subprocesses",
    ]
    cmd += ["--format", "raw", "-o", str(raw)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed: {done.stderr.strip()[-300:]}"}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return {
        "samples": total,
        "file": str(raw),
        "self": [[name, round(c / total, 3)] for name, c in own.most_common(top)] if total else [],
        "inclusive": [[name, round(c / total, 3)] for name, c in inclusive.most_common(top * 2)] if total else [],
    }


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: lines vary, modules tell the story."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({file})" if file else name
