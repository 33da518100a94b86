"""The expenses part of ``make bench``: the embedded receipt reader on rendered, photographed receipts.

``--receipts N`` receipts (default 40; Korean for even seeds, English for
odd) from ``tests/support/receipts.py``, photographed as a phone would, are
read one after another on this process's thread (one core: the reader's
``read_blocking``, Tesseract's child process included in the CPU time).
Per language and field, the share read exactly (merchant: ignoring case and
spaces) beside the issue's targets; CPU seconds per receipt beside the 2 s
target and a floor measured in the same run (decoding and preparing the
photo alone, which every reader pays). Timings taken on a shared machine
are noisy: CPU time, not wall time, is the figure.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.receipts import make_receipt
from tongyeok_server.expenses import images
from tongyeok_server.expenses.model import ReceiptImage
from tongyeok_server.expenses.ocr.preprocess import prepare

FIELDS = ("total", "date", "currency", "merchant")
TARGETS = {"total": 0.95, "date": 0.95, "currency": 0.95, "merchant": 0.85}
CPU_TARGET_S = 2.0


@dataclass(frozen=True)
class ExpensesOptions:
    """How many receipts, and which reader (``embedded``, the server's default, ``tesseract`` or ``rapidocr``)."""

    receipts: int = 40
    engine: str = "embedded"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_expenses(options: ExpensesOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """Read the receipts; per-field accuracy per language, CPU per receipt, and the misses."""
    from tongyeok_server.expenses.readers.registry import create_reader
    from tongyeok_server.settings import ExpensesSettings

    reader = create_reader(ExpensesSettings.model_validate({"receipt_engine": options.engine, "receipt_threads": 1}))
    read_blocking = reader.read_blocking  # type: ignore[attr-defined]
    reader.warm_up()  # type: ignore[attr-defined]  # model loads are not reads
    rows: list[dict[str, Any]] = []
    floor: list[float] = []
    log(f"expenses: reading {options.receipts} photographed receipts with {options.engine}")
    try:
        for seed in range(options.receipts):
            truth = make_receipt(seed)
            image = ReceiptImage(truth.jpeg(seed=seed), "image/jpeg")
            start = _cpu()
            prepare(images.decode(image))
            floor.append(_cpu() - start)
            start, wall = _cpu(), time.monotonic()
            got = read_blocking(image)
            cpu, wall = _cpu() - start, time.monotonic() - wall
            ok = {
                "total": got.total == truth.total,
                "date": got.date == truth.date,
                "currency": got.currency == truth.currency,
                "merchant": got.merchant.replace(" ", "").lower() == truth.merchant.replace(" ", "").lower(),
            }
            rows.append(
                {
                    "seed": seed,
                    "language": truth.language,
                    "layout": truth.layout,
                    "ok": ok,
                    "cpu_s": round(cpu, 3),
                    "wall_s": round(wall, 3),
                    "read": {
                        "total": str(got.total),
                        "date": str(got.date),
                        "currency": got.currency,
                        "merchant": got.merchant,
                    },
                    "truth": {
                        "total": str(truth.total),
                        "date": str(truth.date),
                        "currency": truth.currency,
                        "merchant": truth.merchant,
                    },
                }
            )
    finally:
        reader.close()
    summary: dict[str, Any] = {"engine": options.engine, "receipts": len(rows), "rows": rows}
    for language in ("ko", "en", "all"):
        mine = [r for r in rows if language == "all" or r["language"] == language]
        if mine:
            summary[language] = {f: sum(r["ok"][f] for r in mine) / len(mine) for f in FIELDS} | {"n": len(mine)}
    cpus = sorted(r["cpu_s"] for r in rows)
    summary["cpu_s_mean"] = sum(cpus) / len(cpus)
    summary["cpu_s_p95"] = cpus[min(len(cpus) - 1, int(0.95 * len(cpus)))]
    summary["cpu_s_max"] = cpus[-1]
    summary["floor_cpu_s_mean"] = sum(floor) / len(floor)
    return summary


def render_expenses(summary: dict[str, Any]) -> list[str]:
    """The table: accuracy per language beside the targets, CPU per receipt beside 2 s and the floor."""
    lines = [
        f"Expenses: {summary['receipts']} photographed receipts, engine {summary['engine']} (one core)",
        f"  {'field':<10} {'Korean':>8} {'English':>8} {'all':>8} {'target':>8}  met",
    ]
    for field in FIELDS:
        cells = [summary.get(lang, {}).get(field) for lang in ("ko", "en", "all")]
        shown = [f"{c:>8.1%}" if c is not None else f"{'-':>8}" for c in cells]
        met = "yes" if (cells[2] or 0) >= TARGETS[field] else "NO"
        lines.append(f"  {field:<10} {' '.join(shown)} {TARGETS[field]:>8.0%}  {met}")
    met = "yes" if summary["cpu_s_mean"] <= CPU_TARGET_S else "NO"
    lines.append(
        f"  CPU per receipt: mean {summary['cpu_s_mean']:.2f} s, p95 {summary['cpu_s_p95']:.2f} s, "
        f"max {summary['cpu_s_max']:.2f} s (target <= {CPU_TARGET_S:.0f} s: {met}; floor, decode + prepare only: "
        f"{summary['floor_cpu_s_mean']:.2f} s)"
    )
    misses = [r for r in summary["rows"] if not all(r["ok"].values())]
    for r in misses:
        wrong = ", ".join(f"{f} {r['read'][f]!r} for {r['truth'][f]!r}" for f in FIELDS if not r["ok"][f])
        lines.append(f"  miss: seed {r['seed']} ({r['layout']}): {wrong}")
    return lines
