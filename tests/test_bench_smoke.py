"""The bench machinery at a tiny size: fakes, server, load generator and report fit together.

Speed is the bench's business, not the tests': nothing here asserts on a latency.
"""

from __future__ import annotations

from pathlib import Path

import psutil
from rich.console import Console

from bench.cloud import CloudOptions, run_cloud
from bench.report import render, targets


def test_cloud_sweep_reports_every_field(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    results = run_cloud(CloudOptions(streams=(2,), seconds=3.0), tmp_path, log=lambda _: None)
    (run,) = results["runs"]
    assert run["streams"] == 2
    for kind in ("interim", "final"):
        assert set(run["added_ms"][kind]) == {"p50", "p99", "max", "count"}
        assert run["added_ms"][kind]["count"] > 0, "events were matched across the two paths"
    assert run["finals_received"] == run["finals_expected_per_stream"] * 2 > 0
    assert run["first_token_added_ms"]["count"] > 0
    assert run["pace"]["statuses"] == ["OK"]
    assert run["server_rss_per_stream_mb"] is not None
    assert run["server_cpu_ms_per_stream_s"] is not None
    assert {t["target"] for t in targets({"cloud": results})} >= {
        "concurrent real-time streams, cloud engines, none behind"
    }
    # Where the CPU went, in both phases: every process the bench started is accounted for.
    for phase, roles in (("direct", ("fake_speech", "fake_openai", "loadgen")), ("tongyeok", ("server",))):
        split = run["cpu"][phase]
        for role in (*roles, "bench", "other", "machine"):
            assert split["cores"][role] is not None, (phase, role)
    assert run["cpu"]["direct"]["cores"]["server"] is None
    console = Console(record=True, width=200)
    render({"cloud": results}, console)
    assert "Where the CPU went" in console.export_text()
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before, "the bench left processes behind"


def test_record_comparison_counts_what_each_store_kept(tmp_path: Path) -> None:
    from bench.record import RecordOptions, run_record
    from bench.report_record import record_table, record_targets

    results = run_record(
        CloudOptions(seconds=3.0),
        RecordOptions(streams=2, stores=("none", "sqlite"), cost_sessions=20),
        tmp_path,
        log=lambda _: None,
    )
    off, sqlite = results["runs"]
    assert (off["store"], off["stored"]) == ("none", None)
    assert sqlite["store"] == "sqlite" and sqlite["finals_received"] > 0
    # Every measured stream's finals and translations are in the record; the warm-up asked for none.
    assert sqlite["stored"] == {
        "sessions": 2,
        "ended": 2,
        "incomplete": 0,
        "utterances": sqlite["finals_received"],
        "translations": sqlite["translations_complete"],
    }
    assert results["writer_cost"]["sqlite"]["writes"] == 20 * 20 * 3  # each utterance: final, translation, speech
    assert results["writer_cost"]["sqlite"]["cpu_ms_per_write"] > 0
    names = {t["target"] for t in record_targets(results)}
    assert "record on sqlite: every final stored, none twice" in names
    assert "record on sqlite: CPU per write in-process (submit to commit)" in names
    console = Console(record=True, width=200)
    console.print(record_table(results))
    assert "Meeting record at 2 streams" in console.export_text()


def test_scale_part_measures_nginx_event_by_event(tmp_path: Path) -> None:
    from bench.report_scale import scale_tables, scale_targets
    from bench.scale import ScaleOptions, run_scale

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    options = ScaleOptions(streams=(), balancer_streams=2, metrics_streams=0)
    results = run_scale(CloudOptions(seconds=3.0), options, tmp_path, log=lambda _: None)
    added = results["balancer"]["added"]
    for kind in ("interim", "final"):
        assert added["added_ms"][kind]["count"] > 0, "events matched between straight and through nginx"
    assert added["pace"]["statuses"] == ["OK"] and added["unpaired_events"] == 0
    assert results["balancer"]["nginx_cpu_cores"] is not None
    assert any("nginx" in t["target"] for t in scale_targets(results))
    console = Console(record=True, width=200)
    for table in scale_tables(results):
        console.print(table)
    assert "nginx in front" in console.export_text()
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before, "the bench left processes behind"
