"""The speech-output part of the bench's table: figures, and targets beside them."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# First audio byte within this long of the final (warm): a listener hears the
# translation start about when a human interpreter would.
FIRST_AUDIO_AFTER_FINAL_MS = 500.0
PIPER_FIRST_AUDIO_MS = 500.0  # the neural voice's first clause, once the text is there
PIPER_RTF = 0.5  # per clause, one core: leaves room for the recogniser
ESPEAK_RTF = 0.1  # per clause, the process start included (p50 is ~0.01)
# What speaking adds to a stream's server CPU, through the fakes (the server's own work: segmenting,
# encoding, one more call per clause or utterance).
SPEECH_ADDED_CORES_PER_STREAM = 0.02


def _ms(summary: dict[str, Any] | None, key: str = "p50") -> str:
    value = (summary or {}).get(key)
    return "-" if value is None else f"{value:.0f}"


def _triple(summary: dict[str, Any] | None) -> str:
    return f"{_ms(summary)}/{_ms(summary, 'p99')}/{_ms(summary, 'max')}"


def speech_table(speech: dict[str, Any]) -> Table:
    """Latency to the first audio byte and what the synthesizers cost."""
    load = f"load average {speech['load_before']} before, {speech['load_after']} after"
    table = Table(
        title=f"Speech output (ms p50/p99/max; {load}; machine busy {speech['machine_busy_cores']} cores)",
        title_justify="left",
    )
    table.add_column("path")
    for col in ("sentence end -> final", "final -> 1st token", "final -> 1st audio", "sentence end -> 1st audio"):
        table.add_column(col, justify="right")
    table.add_column("server cores/stream", justify="right")
    emb = speech["embedded"]
    for name, run in (("embedded, speech off", emb["speech_off"]), ("embedded, espeak-ng (es)", emb["speech_on"])):
        table.add_row(
            f"{name} ({run['spoken']}/{run['sentences']} spoken)",
            _triple(run["sentence_end_to_final_ms"]),
            _triple(run["final_to_first_token_ms"]),
            _triple(run["final_to_first_audio_ms"]),
            _triple(run["sentence_end_to_first_audio_ms"]),
            f"{run['server_cores_per_stream']:.3f}",
        )
    fakes = speech["fakes"]
    for name, key in (
        ("fakes, speech off", "speech_off"),
        ("fakes, OpenAI TTS", "openai"),
        ("fakes, Google TTS", "google"),
    ):
        run = fakes[key]
        table.add_row(
            f"{name} ({run['streams']} streams, {run['spoken']}/{run['utterances']} spoken)",
            f"(trigger) {_triple(run['trigger_to_final_ms'])}",
            _triple(run["final_to_first_token_ms"]),
            _triple(run["final_to_first_audio_ms"]),
            "-",
            f"{run['server_cores_per_stream']:.4f}",
        )
    piper = emb["translate_piper"]
    table.add_row(
        f"TranslateText es->en, Piper ({piper['runs']} runs): last token -> 1st audio",
        "-",
        "-",
        _triple(piper["last_token_before_audio_to_first_audio_ms"]),
        f"(request) {_triple(piper['request_to_first_audio_ms'])}",
        "-",
    )
    synth = speech["synthesizers"]
    for name in ("piper", "piper_2_threads", "espeak-ng"):
        run = synth.get(name)
        if run:
            rtf = run["rtf_per_clause"]
            table.add_row(
                f"real-time factor, {name} (per clause p50/p99/max; overall)",
                "-",
                "-",
                f"{rtf['p50']:.3f}/{rtf['p99']:.3f}/{rtf['max']:.3f}",
                f"overall {run['rtf_overall']:.3f}",
                "-",
            )
    if "piper_thread_speedup" in synth:
        table.add_row("Piper: 2 threads / 1, throughput", "-", "-", f"{synth['piper_thread_speedup']:.2f}x", "-", "-")
    return table


def speech_targets(speech: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The speech-output targets with their figures."""
    if not speech:
        return []
    out: list[dict[str, Any]] = []

    def add(name: str, required: str, measured: str, met: bool | None) -> None:
        out.append({"target": name, "required": required, "measured": measured, "met": met})

    on = speech["embedded"]["speech_on"]
    p50 = on["final_to_first_audio_ms"].get("p50")
    floor = on["sentence_end_to_final_ms"].get("p50")
    add(
        "embedded (pocketsphinx + Apertium + espeak-ng), warm: final -> first audio byte, p50",
        f"<= {FIRST_AUDIO_AFTER_FINAL_MS:.0f} ms, every sentence spoken",
        f"{_ms(on['final_to_first_audio_ms'])} ms after a floor of {_ms(on['sentence_end_to_final_ms'])} ms "
        f"(sentence end -> final); {on['spoken']}/{on['sentences']} spoken",
        None if p50 is None or floor is None else p50 <= FIRST_AUDIO_AFTER_FINAL_MS and on["spoken"] == on["sentences"],
    )
    piper = speech["embedded"]["translate_piper"]["last_token_before_audio_to_first_audio_ms"].get("p50")
    add(
        "Piper, warm: translation text -> first audio byte, p50",
        f"<= {PIPER_FIRST_AUDIO_MS:.0f} ms",
        "-" if piper is None else f"{piper:.0f} ms",
        None if piper is None else piper <= PIPER_FIRST_AUDIO_MS,
    )
    fakes = speech["fakes"]
    for key, label in (("openai", "OpenAI TTS"), ("google", "Google TTS")):
        run = fakes[key]
        value = run["final_to_first_audio_ms"].get("p50")
        token = run["final_to_first_token_ms"].get("p50")
        add(
            f"through the fakes ({label}): final -> first audio byte, p50",
            f"<= {FIRST_AUDIO_AFTER_FINAL_MS:.0f} ms, every utterance spoken",
            f"{_ms(run['final_to_first_audio_ms'])} ms (first token {_ms(run['final_to_first_token_ms'])} ms); "
            f"{run['spoken']}/{run['utterances']} spoken",
            None
            if value is None or token is None
            else value <= FIRST_AUDIO_AFTER_FINAL_MS and run["spoken"] == run["utterances"],
        )
        added = run["server_cores_per_stream"] - fakes["speech_off"]["server_cores_per_stream"]
        add(
            f"server CPU per stream, speech on ({label}) - off, through the fakes",
            f"<= {SPEECH_ADDED_CORES_PER_STREAM} cores",
            f"{added:+.4f} cores ({run['server_cores_per_stream']:.4f} against "
            f"{fakes['speech_off']['server_cores_per_stream']:.4f})",
            added <= SPEECH_ADDED_CORES_PER_STREAM,
        )
    synth = speech["synthesizers"]
    for name, bound in (("piper", PIPER_RTF), ("espeak-ng", ESPEAK_RTF)):
        run = synth.get(name)
        if run:
            value = run["rtf_per_clause"]["p99"]
            add(f"real-time factor, {name}, per clause p99", f"<= {bound}", f"{value:.3f}", value <= bound)
    if "piper_thread_speedup" in synth:
        add(
            "Piper: 2 synthesis threads / 1, throughput",
            "reported (about 2 on an idle 2-core machine)",
            f"{synth['piper_thread_speedup']:.2f}x (load {speech['load_before']})",
            None,
        )
    return out
