"""Live recognition on the default recogniser: the table (figures beside targets and floors) and the targets."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.live_asr import FINAL_P95_AT_4_S, FINAL_TARGET_S, FIRST_INTERIM_TARGET_S, LANGUAGE_TARGET


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _pair(summary: dict[str, Any]) -> str:
    return f"{_ms(summary['p50'])} / {_ms(summary['p95'])}"


def _met(summary: dict[str, Any], target: tuple[float, float]) -> bool | None:
    p50, p95 = summary["p50"], summary["p95"]
    return None if p50 is None or p95 is None else p50 <= target[0] and p95 <= target[1]


def live_targets(live: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per step and measure, plus the two-way labels and the refusal beyond capacity."""
    out: list[dict[str, Any]] = []
    if not live:
        return out

    def add(name: str, required: str, measured: str, met: bool | None) -> None:
        out.append({"target": name, "required": required, "measured": measured, "met": met})

    first_req = f"p50 <= {FIRST_INTERIM_TARGET_S[0] * 1000:.0f}, p95 <= {FIRST_INTERIM_TARGET_S[1] * 1000:.0f} ms"
    final_req = f"p50 <= {FINAL_TARGET_S[0] * 1000:.0f}, p95 <= {FINAL_TARGET_S[1] * 1000:.0f} ms"
    for step in live["steps"]:
        label = f"live, {step['streams']} stream(s), {step['sentences_kind']} sentences"
        if step["streams"] <= 2:
            add(f"{label}: speech start -> first interim", first_req, _pair(step["first_interim_s"]) + " ms",
                _met(step["first_interim_s"], FIRST_INTERIM_TARGET_S))  # fmt: skip
            add(f"{label}: speech end -> final", final_req, _pair(step["final_s"]) + " ms",
                _met(step["final_s"], FINAL_TARGET_S))  # fmt: skip
        else:
            p95 = step["final_s"]["p95"]
            add(f"{label}: speech end -> final (p95)", f"<= {FINAL_P95_AT_4_S * 1000:.0f} ms", f"{_ms(p95)} ms",
                None if p95 is None else p95 <= FINAL_P95_AT_4_S)  # fmt: skip
        stable = step["stable"]
        breaches = stable["not_prefix"] + stable["shrank"] + stable["final_differs"]
        add(f"{label}: stable_text kept (prefix of the text, never shorter, final starts with it)", "0 breaches",
            f"{breaches} breaches; {stable['with_stable']}/{stable['interims']} interims carry one", breaches == 0)  # fmt: skip
        refused = step.get("refused_beyond_capacity")
        if refused is not None and step["streams"] >= 4:
            add(f"{label}: one more stream", "RESOURCE_EXHAUSTED", refused, refused == "RESOURCE_EXHAUSTED")
    two_way = live.get("two_way")
    if two_way:
        add("live two-way en/es: finals labelled with the language spoken", f">= {LANGUAGE_TARGET:.0%}",
            f"{two_way['labelled_right']}/{two_way['utterances']}", two_way["share"] >= LANGUAGE_TARGET)  # fmt: skip
    return out


def _one_core(live: dict[str, Any], step: dict[str, Any]) -> str:
    """The simulated figures for this step's streams per worker (``bench.live_sim``)."""
    per_worker = -(-step["streams"] // live.get("workers", 1))
    sim = next(
        (
            s
            for s in live.get("one_core", [])
            if (s["streams"], s["sentences_kind"]) == (per_worker, step["sentences_kind"])
        ),
        None,
    )
    if sim is None:
        return "-"
    return f"{_pair(sim['first_interim_s'])}; {_pair(sim['final_s'])}"


def live_table(live: dict[str, Any]) -> Table:
    """Per step: latencies (ms, p50 / p95) beside the segmenter's floor, WER, stable_text, load."""
    table = Table(
        title=f"Live recognition, flagless server ({live.get('recognizer', 'default')}): ms p50 / p95; "
        f"start-up {live['startup_s']} s, {live['server_rss_mb']} MB",
        title_justify="left",
    )
    for column in (
        "streams, sentences",
        "first interim",
        f"target {FIRST_INTERIM_TARGET_S[0] * 1000:.0f} / {FIRST_INTERIM_TARGET_S[1] * 1000:.0f}",
        "floor (VAD start)",
        "final",
        f"target {FINAL_TARGET_S[0] * 1000:.0f} / {FINAL_TARGET_S[1] * 1000:.0f} (4: p95 {FINAL_P95_AT_4_S * 1000:.0f})",
        "floor (VAD end)",
        "one core (sim): first / final p50, p95",
        "no interim",
        "words / interim",
        "paced WER",
        "cores / stream",
        "load avg",
    ):
        table.add_column(column, justify="right")
    for step in live["steps"]:
        words = step["words_per_interim"]
        table.add_row(
            f"{step['streams']}, {step['sentences_kind']}",
            _pair(step["first_interim_s"]),
            "met" if _met(step["first_interim_s"], FIRST_INTERIM_TARGET_S) else "missed",
            _pair(step["floor_first_interim_s"]),
            _pair(step["final_s"]),
            "met"
            if (
                _met(step["final_s"], FINAL_TARGET_S)
                if step["streams"] <= 2
                else (step["final_s"]["p95"] or 99) <= FINAL_P95_AT_4_S
            )
            else "missed",
            _pair(step["floor_final_s"]),
            _one_core(live, step),
            f"{step['sentences_without_interim']}/{step['sentences']}",
            "-" if words["mean"] is None else f"{words['mean']:.1f}",
            f"{step['wer']:.1%}",
            f"{step.get('cpu_cores_per_stream', 0):.2f}",
            " -> ".join(f"{v:.1f}" for v in step["load_average"]),
        )
    return table
