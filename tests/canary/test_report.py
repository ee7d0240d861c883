"""Report writers (meshsim.canary.report): JUnit XML, Markdown, JSON, terminal tables, plots; determinism."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from meshsim.canary import ArmData, Decision, Judgement, MetricResult, WatchResult, report
from meshsim.canary.io import minutes_from_requests


def _metric(name, kind, decision, effect, lo, hi, margin, effect_kind="ratio", **kw):
    return MetricResult(name=name, kind=kind, decision=decision, effect=effect, ci_low=lo, ci_high=hi, margin=margin,
                        effect_kind=effect_kind, **kw)


JUDGEMENT = Judgement(
    decision=Decision.ROLLBACK,
    metrics=(
        _metric("latency.p99", "latency", Decision.ROLLBACK, 1.23, 1.12, 1.35, 1.05, p_value=1e-4,
                baseline=0.2, canary=0.246, n_baseline=6000, n_canary=600, critical=True, sequential=True,
                test="cs-quantile", reason="p99 +23% (interval +12% to +35%) beyond the 5% margin"),
        _metric("errors", "error_rate", Decision.INCONCLUSIVE, 0.0004, -0.001, 0.0021, 0.001, "difference",
                baseline=0.001, canary=0.0014, n_baseline=6000, n_canary=600, reason="interval crosses the margin"),
        _metric("latency.p50", "latency", Decision.PROMOTE, 1.01, 0.98, 1.03, 1.05, e_value=0.5,
                baseline=0.08, canary=0.0808, n_baseline=6000, n_canary=600, reason="within | margin"),
    ),
    reason="latency.p99 is worse than its margin with 95% confidence",
    minutes=30.0,
    details={"alpha": 0.01, "array": np.array([1.0, np.nan]), "nan": math.nan},
)
WATCH = WatchResult(looks=((5.0, JUDGEMENT), (6.0, JUDGEMENT)), decision=Decision.ROLLBACK, decided_at=6.0)


def _arms():
    rng = np.random.default_rng(0)
    arms = []
    for name, scale in (("baseline", 1.0), ("canary", 1.2)):
        t = np.sort(rng.uniform(0, 1800, 3000))
        req = pd.DataFrame({"t": t, "latency_s": rng.lognormal(np.log(0.1 * scale), 0.4, 3000),
                            "status": np.where(rng.random(3000) < 0.01, 503, 200)})
        arms.append(ArmData(name, requests=req, minutes=minutes_from_requests(req, 30)))
    return arms


def test_formatting_in_the_metrics_terms():
    p99, errors, _ = JUDGEMENT.metrics
    assert report.format_effect(p99) == "+23%" and report.format_interval(p99) == "[+12%, +35%]"
    assert report.format_margin(p99) == "+5%" and report.format_value(p99, p99.baseline) == "200 ms"
    assert report.format_effect(errors) == "+0.04pp" and report.format_interval(errors) == "[-0.1pp, +0.21pp]"
    assert report.format_value(errors, errors.canary) == "0.14%" and report.format_margin(errors) == "0.1pp"
    nan = _metric("x", "gauge", Decision.INCONCLUSIVE, math.nan, math.nan, math.nan, math.nan)
    assert report.format_effect(nan) == report.format_interval(nan) == "–"


def test_junit_xml_is_valid_and_maps_decisions():
    text = report.junit_xml(JUDGEMENT, watch=WATCH)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["latency.p99", "errors", "latency.p50", "verdict"]
    for el in (root, suite):
        assert el.get("tests") == "4" and el.get("failures") == "2" and el.get("skipped") == "1"
        assert el.get("errors") == "0" and el.get("time") == "0"
    p99, errors, p50, verdict = cases
    assert p99.find("failure").get("type") == "ROLLBACK" and "beyond the 5% margin" in p99.find("failure").get("message")
    assert "interval: [+12%, +35%]" in p99.find("failure").text
    assert errors.find("skipped").get("message").startswith("INCONCLUSIVE: ")
    assert p50.find("failure") is None and p50.find("skipped") is None
    assert verdict.find("failure") is not None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["decision"] == "ROLLBACK" and props["exit_code"] == "1" and props["decided_at"] == "6"
    for case in cases:  # the attributes CI systems read
        assert case.get("classname") and case.get("name") and case.get("time") == "0"


def test_markdown_has_decision_effects_intervals_reasons_and_volume():
    b, c = _arms()
    md = report.markdown(JUDGEMENT, baseline=b, canary=c, watch=WATCH)
    assert md.startswith("### Canary analysis: ❌ **ROLLBACK**")
    assert "> latency.p99 is worse than its margin with 95% confidence" in md
    assert "| latency.p99 (critical) | ❌ ROLLBACK | 200 ms | 246 ms | +23% | [+12%, +35%] | +5% | 6,000 / 600 |" in md
    assert "| errors | ⏸️ INCONCLUSIVE |" in md and "+0.04pp" in md
    assert "within \\| margin" in md  # table cells are escaped
    assert "decided at minute 6" in md
    assert "**Data:** baseline: 3,000 requests, 30 minutes with data; canary: 3,000 requests" in md


def test_json_round_trips_with_nan_as_null():
    text = report.judgement_json(JUDGEMENT, WATCH)
    doc = json.loads(text)
    assert doc["decision"] == "ROLLBACK" and doc["exit_code"] == 1 and doc["mode"] == "meshsim"
    assert doc["metrics"][0]["ci_low"] == 1.12 and doc["metrics"][1]["p_value"] is None
    assert doc["details"] == {"alpha": 0.01, "array": [1.0, None], "nan": None}
    assert doc["watch"]["decided_at"] == 6.0 and len(doc["watch"]["looks"]) == 2
    assert doc["watch"]["looks"][0]["metrics"]["errors"] == "INCONCLUSIVE"
    assert text == report.judgement_json(JUDGEMENT, WATCH) and text.endswith("}\n")


def test_terminal_tables():
    con = Console(width=200, record=True)
    report.render_judgement(JUDGEMENT, con)
    report.render_watch(WATCH, con)
    out = con.export_text()
    assert "ROLLBACK  (exit 1)  meshsim judge  over 30 min" in out
    assert "latency.p99 *" in out and "[+12%, +35%]" in out and "6000/600" in out.replace(",", "")
    assert "ROLLBACK reached at minute 6  (exit 1)" in out


def test_files_are_written_atomically_and_deterministically(tmp_path):
    paths = [report.write_json(tmp_path / "v.json", JUDGEMENT, WATCH),
             report.write_junit(tmp_path / "v.xml", JUDGEMENT),
             report.write_markdown(tmp_path / "sub" / "v.md", JUDGEMENT)]
    first = [p.read_bytes() for p in paths]
    report.write_json(tmp_path / "v.json", JUDGEMENT, WATCH)
    report.write_junit(tmp_path / "v.xml", JUDGEMENT)
    report.write_markdown(tmp_path / "sub" / "v.md", JUDGEMENT)
    assert [p.read_bytes() for p in paths] == first
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["v.json", "v.md", "v.xml"]  # no temp files


@pytest.mark.parametrize("with_requests", [True, False])
def test_plots_are_written_and_identical_for_the_same_input(tmp_path, with_requests):
    b, c = _arms()
    if not with_requests:
        b, c = ArmData("baseline", minutes=b.minutes), ArmData("canary", minutes=c.minutes)
    one = report.write_plots(tmp_path / "one", b, c, JUDGEMENT, WATCH)
    assert [p.name for p in one] == ["ecdf.png", "series.png", "qq.png"]
    for p in one:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    if with_requests:  # same input, same bytes
        two = report.write_plots(tmp_path / "two", b, c, JUDGEMENT, WATCH)
        assert [p.read_bytes() for p in one] == [q.read_bytes() for q in two]
