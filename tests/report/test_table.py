"""Tests of meshsim.report.render_summary: the summary as text on a recorded console."""

from __future__ import annotations

import math

from rich.console import Console

from meshsim.report import render_summary


def _block(n, rps, ok, status, lat, **extra):
    return {"requests": n, "throughput_rps": rps, "success_rate": ok, "status": status, "latency_s": lat, **extra}


LAT = {"mean": 0.031, "p50": 0.025, "p90": 0.05, "p99": 0.12, "p999": 0.2}


def _summary(**over):
    s = {
        "scenario": "bookinfo", "seed": 7, "replications": 1, "duration_s": 60.0, "warmup_s": 5.0, "window_s": 55.0,
        "end_to_end": _block(11000, 200.0, 0.998, {"200": 10978, "503": 22}, LAT),
        "sources": {"users": _block(11000, 200.0, 0.998, {"200": 10978, "503": 22}, LAT)},
        "services": {
            "productpage": _block(11000, 200.0, 1.0, {"200": 11000}, LAT, utilization=0.2,
                                  versions={"v1": _block(11000, 200.0, 1.0, {"200": 11000}, LAT, utilization=0.2,
                                                         replicas=3, workers=8)}),
            "reviews": _block(11000, 200.0, 0.998, {"200": 10978, "503": 22}, LAT, utilization=0.41, versions={
                "v1": _block(5500, 100.0, 1.0, {"200": 5500}, LAT, utilization=0.4, replicas=2, workers=4),
                "v2": _block(5500, 100.0, 0.996, {"200": 5478, "503": 22},
                             {"p50": None, "p90": math.nan, "p99": 0.0123, "p999": 1.5},
                             utilization=0.42, replicas=2, workers=4)}),
        },
        "stats": {"reviews|v1": {"upstream_rq_total": 123, "upstream_rq_200": 120, "upstream_rq_retry": 0},
                  "ratings|v1": {"upstream_rq_total": 0}},
    }
    s.update(over)
    return s


def _render(summary, width=160) -> str:
    console = Console(record=True, width=width)
    render_summary(summary, console)
    return console.export_text()


def _line(text: str, start: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(start)]
    return line.split()


def test_rows_values_and_units():
    text = _render(_summary())
    assert text.splitlines()[0] == "bookinfo · seed 7 · 1 replication · window 55s after 5s warm-up · latency in ms"
    assert _line(text, "end-to-end") == ["end-to-end", "11,000", "200.0", "99.80%", "25.0", "50.0", "120", "200",
                                         "–", "503×22"]
    assert _line(text, "productpage") == ["productpage", "11,000", "200.0", "100%", "25.0", "50.0", "120", "200",
                                          "20.0%", "3×8"]
    assert _line(text, "  v2") == ["v2", "5,500", "100.0", "99.60%", "–", "–", "12.3", "1,500", "42.0%", "2×4",
                                   "503×22"]
    assert "source users" not in text  # a single source repeats end-to-end
    assert not any(ln.startswith("  v1") and "3×8" in ln for ln in text.splitlines())  # one version: no sub-row


def test_several_sources_get_a_row_each():
    s = _summary(sources={"users": _block(10000, 181.8, 0.99999, {"200": 10000}, LAT),
                          "bots": _block(1000, 18.2, 0.98, {"200": 980, "429": 20}, LAT)})
    text = _render(s)
    assert _line(text, "  source users")[3:5] == ["181.8", "99.999%"]
    assert _line(text, "  source bots")[-1] == "429×20"


def test_confidence_intervals_are_shown_with_the_value():
    s = _summary(replications=5, ci={"end_to_end.latency_s.p99": [0.11, 0.13],
                                     "end_to_end.throughput_rps": [195.0, 205.0],
                                     "services.reviews.versions.v1.latency_s.p50": [0.020, 0.026],
                                     "end_to_end.success_rate": [0.9975, 0.9985]})
    text = _render(s)
    row = " ".join(_line(text, "end-to-end"))
    assert "200.0 ± 5.0" in row and "120 ± 10" in row and "99.800 ± 0.050%" in row
    assert "25.0 [20.0, 26.0]" in " ".join(_line(text, "  v1"))
    assert "95% confidence interval over 5 replications" in text


def test_envoy_stats_table_lists_non_zero_counters_only():
    text = _render(_summary())
    assert "Envoy stats (non-zero)" in text
    assert _line(text, "reviews|v1") == ["reviews|v1", "upstream_rq_total", "123"]
    assert "upstream_rq_retry" not in text and "ratings|v1" not in text
    assert "Envoy stats" not in _render(_summary(stats={"ratings|v1": {"upstream_rq_total": 0}}))
    assert "Envoy stats" not in _render(_summary(stats=None))


def test_an_80_column_terminal_keeps_every_number_whole():
    text = _render(_summary(), width=80)
    assert "…" not in text
    assert _line(text, "end-to-end")[1] == "11,000"


def test_markup_in_names_is_printed_as_is():
    s = _summary(services={"[bold]x": _block(1, 1.0, 1.0, {"200": 1}, LAT)})
    assert "[bold]x" in _render(s)


def test_empty_summary_says_so():
    text = _render({"scenario": "t"})
    assert "no requests" in text
