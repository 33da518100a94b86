"""The simultaneous part's table: each figure beside its target, with the floor from the same run."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# Issue 19's targets (seconds; requests per second of speech).
TARGETS = {
    "embedded": {"al_s": 3.5, "first_word_s": 3.0, "end_p50_s": 1.5, "end_p95_s": 3.0, "chrf_drop": 3.0},
    "fakes": {"al_s": 2.5, "first_word_s": 2.0, "end_p50_s": 1.0, "end_p95_s": 2.0, "requests_per_speech_s": 1.5},
}


def _s(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rows(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(path, direction and mode, figures, the path's targets) for every phase measured."""
    out = []
    embedded = results.get("embedded")
    if embedded:
        for mode in _modes(embedded):
            path = f"embedded, {embedded.get('recognizer', 'whisper')}"
            out.append((path, f"en->es {mode}", embedded[mode], TARGETS["embedded"]))
    fakes = results.get("fakes")
    if fakes:
        for direction in fakes.get("simultaneous", {}):
            for mode in _modes(fakes):
                figures = fakes.get(mode, {}).get(direction)
                if figures:
                    out.append(("fakes", f"{direction} {mode}", figures, TARGETS["fakes"]))
    return out


def _modes(path: dict[str, Any]) -> list[str]:
    """consecutive, simultaneous, then the other levels measured, as the path's results name them."""
    return [m for m in path if m == "consecutive" or (m.startswith("simultaneous") and isinstance(path[m], dict))]


def simultaneous_table(results: dict[str, Any]) -> Table:
    """Consecutive against simultaneous, per path and direction."""
    load = f"load average {results['load_before']} before, {results['load_after']} after"
    table = Table(
        title=(
            f"Simultaneous interpretation (seconds; \\[floor: what the recogniser allowed, same run]; {load}; machine "
            f"busy {results['machine_busy_cores']} cores)"
        ),
        title_justify="left",
    )
    for col in (
        "path",
        "direction, mode",
        "AL \\[floor] / target",
        "1st word p50 (max) \\[floor] / target",
        "end offset p50/p95 \\[floor] / target",
        "retracted chars, resets",
        "erasure",
        "chrF ref (vs consecutive; vs its finals translated whole)",
        "requests / speech-s (cancelled)",
        "server cores / stream",
    ):
        table.add_column(col, justify="right")
    embedded = results.get("embedded") or {}
    for path, name, f, target in _rows(results):
        chrf = "-"
        if path.startswith("embedded"):
            versus = None
            if name.endswith(" simultaneous"):
                versus = embedded.get("chrf_simultaneous_vs_consecutive")
            elif "simultaneous-" in name:
                versus = f.get("chrf_vs_consecutive")
            chrf = _s(f.get("chrf_reference"))
            if versus is not None:
                chrf += f" ({_s(versus)}; {_s(f.get('chrf_same_finals'))})"
        requests = "-"
        if "requests_per_speech_s" in f:
            requests = f"{f['requests_per_speech_s']:.2f} ({f['cancelled']})"
            if "simultaneous" in name:
                requests += f" / {target['requests_per_speech_s']}"
        first = f["first_word_s"]
        end = f["end_offset_s"]
        floor_end = f["floor_end_offset_s"]
        table.add_row(
            f"{path} ({f['translated']}/{f['sentences']})",
            name + ("" if f["statuses"] == ["OK"] else " " + ",".join(f["statuses"])[:40]),
            f"{_s(f['al_s'])} \\[{_s(f['floor_al_s'])}] / {target['al_s']}",
            f"{_s(first['p50'])} ({_s(first['max'])}) \\[{_s(f['floor_first_word_s'])}] / {target['first_word_s']}",
            f"{_s(end['p50'])}/{_s(end['p95'])} \\[{_s(floor_end['p50'])}/{_s(floor_end['p95'])}] / "
            f"{target['end_p50_s']}/{target['end_p95_s']}",
            f"{f['retracted_chars']}, {f['resets']}",
            _s(f["erasure"]),
            chrf,
            requests,
            f"{f['server_cores_per_stream']:.3f}",
        )
    return table


def simultaneous_targets(results: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's targets for the simultaneous phases, met or not (``None``: not measured)."""
    if not results:
        return []
    out: list[dict[str, Any]] = []

    def add(name: str, required: str, value: float | None, limit: float, unit: str = " s") -> None:
        measured = "-" if value is None else f"{value:.2f}{unit}"
        out.append(
            {
                "target": name,
                "required": required,
                "measured": measured,
                "met": None if value is None else value <= limit,
            }
        )

    embedded = results.get("embedded") or {}
    for path, name, f, target in _rows(results):
        if not name.endswith(" simultaneous"):
            continue  # the targets are the default level's; other levels are for comparison
        label = f"{path} {name.replace(' simultaneous', '')} simultaneous"
        add(f"{label}: average lagging", f"<= {target['al_s']} s", f["al_s"], target["al_s"])
        add(
            f"{label}: first committed word (p50)",
            f"<= {target['first_word_s']} s",
            f["first_word_s"]["p50"],
            target["first_word_s"],
        )
        add(f"{label}: end offset p50", f"<= {target['end_p50_s']} s", f["end_offset_s"]["p50"], target["end_p50_s"])
        add(f"{label}: end offset p95", f"<= {target['end_p95_s']} s", f["end_offset_s"]["p95"], target["end_p95_s"])
        add(
            f"{label}: retracted committed text",
            "0 chars, 0 resets",
            float(f["retracted_chars"] + f["resets"]),
            0.0,
            "",
        )
        if path.startswith("embedded"):
            consecutive = embedded.get("consecutive", {}).get("chrf_reference")
            mine = f.get("chrf_reference")
            drop = None if consecutive is None or mine is None else consecutive - mine
            add(
                f"{label}: chrF against references, below consecutive's",
                f"<= {target['chrf_drop']}",
                drop,
                target["chrf_drop"],
                "",
            )
        else:
            add(
                f"{label}: translation requests per second of speech",
                f"<= {target['requests_per_speech_s']}",
                f["requests_per_speech_s"],
                target["requests_per_speech_s"],
                "",
            )
    out.extend(_echo_cost(results))
    return out


def _echo_cost(results: dict[str, Any]) -> list[dict[str, Any]]:
    """With speech output, echo suppression on against off: the default level's targets still met, and the cost."""
    out: list[dict[str, Any]] = []
    phases = {(path, name): f for path, name, f, _ in _rows(results)}
    for path, name, f, target in _rows(results):
        if not name.endswith(" simultaneous-spoken"):
            continue
        direction = name.removesuffix(" simultaneous-spoken")
        off = phases.get((path, f"{direction} simultaneous-spoken-unsuppressed"))
        if off is None:
            continue
        label = f"{path} {direction} simultaneous, speech output, echo suppression on"
        for key, what, limit in (
            ("al_s", "average lagging", target["al_s"]),
            ("first_word_s", "first committed word (p50)", target["first_word_s"]),
        ):
            on_value, off_value = f[key], off[key]
            if key == "first_word_s":
                on_value, off_value = on_value["p50"], off_value["p50"]
            measured = "-" if on_value is None else f"{on_value:.2f} s"
            if on_value is not None and off_value is not None:
                measured += f" (suppression off {off_value:.2f} s: {on_value - off_value:+.2f})"
            out.append(
                {
                    "target": f"{label}: {what}",
                    "required": f"<= {limit} s",
                    "measured": measured,
                    "met": None if on_value is None else on_value <= limit,
                }
            )
    return out
