"""The embedded recognisers' part of the bench table: Whisper and pocketsphinx side by side, with the issue's targets."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.offline_asr import LATENCY_TARGET_S, WER_TARGETS


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def asr_targets(asr: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per engine: WER at 16 kHz and 8 kHz G.711, final and first-interim latency, capacity."""
    out: list[dict[str, Any]] = []

    def add(name: str, required: str, measured: str, met: bool | None) -> None:
        out.append({"target": name, "required": required, "measured": measured, "met": met})

    for engine, figures in (asr or {}).items():
        if engine in ("options", "sentences"):
            continue
        for fmt, bound in WER_TARGETS.items():
            wer = figures["wer"][fmt]
            label = "16 kHz" if fmt == "16k" else "8 kHz G.711"
            add(f"{engine}: WER through the service, {label}", f"<= {bound:.0%}", f"{wer:.1%}", wer <= bound)
        lat = figures["latency"]
        p95 = lat["final_s"]["p95"]
        add(
            f"{engine}: sentence end -> final (p95)",
            "<= 1000 ms",
            f"{_f(p95, 0)} ms",
            None if p95 is None else p95 <= LATENCY_TARGET_S * 1000,
        )
        first = lat["first_interim_s"]["p95"]
        missing = lat["sentences_without_interim"]
        add(
            f"{engine}: speech start -> first interim (p95)",
            "<= 1000 ms, every sentence",
            f"{_f(first, 0)} ms ({missing} of {lat['sentences']} sentences without one)",
            None if first is None else first <= LATENCY_TARGET_S * 1000 and missing == 0,
        )
        ratio = figures.get("capacity_ratio")
        cap = figures["capacity"]
        add(
            f"{engine}: real-time streams, 1 worker (core) / 2, ratio",
            "reported",
            f"{' / '.join(str(c['streams']) for c in cap.values())}, ratio {_f(ratio)}",
            None,
        )
    return out


def asr_table(asr: dict[str, Any]) -> Table:
    """The embedded recognisers side by side."""
    engines = [e for e in asr if e not in ("options", "sentences")]
    voices = ", ".join(asr["options"]["voices"])
    table = Table(
        title=f"Embedded recognisers side by side ({len(asr['sentences'])} sentences x voices {voices})",
        title_justify="left",
    )
    table.add_column("measure")
    for engine in engines:
        table.add_column(engine, justify="right")

    def row(label: str, cell: Any) -> None:
        table.add_row(label, *(cell(asr[e]) for e in engines))

    row("WER through the service, 16 kHz", lambda f: f"{f['wer']['16k']:.1%}")
    row("WER through the service, 8 kHz G.711 mu-law", lambda f: f"{f['wer']['8k']:.1%}")
    row(
        "sentence end -> final, ms p50/p95/max",
        lambda f: "/".join(_f(f["latency"]["final_s"][k], 0) for k in ("p50", "p95", "max")),
    )
    row(
        "speech start -> first interim, ms p50/p95/max",
        lambda f: "/".join(_f(f["latency"]["first_interim_s"][k], 0) for k in ("p50", "p95", "max")),
    )
    row(
        "sentences without an interim",
        lambda f: f"{f['latency']['sentences_without_interim']}/{f['latency']['sentences']}",
    )
    row(
        "interim flicker: shown words later changed",
        lambda f: f"{_f(f['flicker']['rate'], 3)} ({f['flicker']['changed']}/{f['flicker']['words_shown']})",
    )
    row("CPU cores per paced stream", lambda f: _f(f["cpu_cores_per_stream"], 3))
    row("machine load average after the paced run (2 cores)", lambda f: _f(f.get("load_average")))
    for workers in asr["options"]["workers"]:
        row(
            f"real-time streams, {workers} worker(s)",
            lambda f, w=workers: str(f["capacity"][str(w)]["streams"]),
        )
    row("capacity ratio 2 / 1", lambda f: _f(f["capacity_ratio"]))
    return table
