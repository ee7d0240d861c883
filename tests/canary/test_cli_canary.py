"""`meshsim canary judge|watch` end to end: exit codes 0/1/3/2, report files, determinism, run directories."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import meshsim.cli
from meshsim.canary import Decision, Judgement, MetricResult, WatchResult
from meshsim.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "canary"
BASE, CANARY = EXAMPLES / "baseline.csv", EXAMPLES / "canary.csv"

KAYENTA_30M = """\
mode: kayenta
kayenta: {lifetime: 30m, interval: 10m}
metrics:
  - name: latency
    quantiles: [p50, p99]
    flagger: {max: 2000}
  - name: errors
    flagger: {min: 98}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "judge.yaml"
    p.write_text(KAYENTA_30M)
    return p


def _judge(*args: str):
    return runner.invoke(app, ["canary", "judge", *map(str, args)])


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------- exit codes


def test_rollback_exits_1(cfg):
    result = _judge("-b", BASE, "-c", CANARY, "--config", cfg)
    assert result.exit_code == 1, result.output
    assert "ROLLBACK  (exit 1)  Kayenta-compatible judge  score" in result.stdout


def test_promote_exits_0(cfg):
    result = _judge("-b", BASE, "-c", BASE, "--config", cfg)
    assert result.exit_code == 0, result.output
    assert "PROMOTE" in result.stdout


def test_inconclusive_exits_3(cfg, tmp_path):
    long = tmp_path / "long.yaml"
    long.write_text(KAYENTA_30M.replace("lifetime: 30m, interval: 10m", "lifetime: 3h, interval: 1h"))
    result = _judge("-b", BASE, "-c", BASE, "--config", long)
    assert result.exit_code == 3, result.output
    assert "no complete Kayenta interval" in result.stdout


@pytest.mark.parametrize("args, fragments", [
    (["-b", "nope.csv", "-c", str(CANARY)], ["nope.csv: no such file or directory"]),
    (["-b", str(BASE), "-c", str(CANARY), "--config", "missing.yaml"], ["missing.yaml", "no such file"]),
    (["-b", str(BASE), "-c", str(CANARY), "--format", "run"], ["not a meshsim run directory"]),
])
def test_bad_input_exits_2_with_one_line(args, fragments):
    _assert_one_line_error(_judge(*args), *fragments)


def test_bad_csv_and_bad_config_exit_2(tmp_path, cfg):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,latency_ms,status\n2024-05-01T12:00:00Z,-3,200\n")
    _assert_one_line_error(_judge("-b", BASE, "-c", bad, "--config", cfg), "bad.csv", "'latency_ms'", "negative")
    typo = tmp_path / "typo.yaml"
    typo.write_text("metrics: [{name: latency, margn: 5%}]\n")
    _assert_one_line_error(_judge("-b", BASE, "-c", CANARY, "--config", typo), "unknown key 'margn'")
    no_range = tmp_path / "noflagger.yaml"
    no_range.write_text("metrics: [latency]\n")
    _assert_one_line_error(_judge("-b", BASE, "-c", CANARY, "--config", no_range, "--mode", "flagger"),
                           "no metric has a flagger range")


def test_flagger_mode_and_mode_override(cfg):
    result = _judge("-b", BASE, "-c", CANARY, "--config", cfg, "--mode", "flagger")
    assert result.exit_code in (0, 1, 3) and "Flagger-style thresholds" in result.stdout


# --------------------------------------------------------------------------------------- outputs


def test_report_files_and_json_to_stdout(tmp_path, cfg):
    out = tmp_path / "out"
    result = _judge("-b", BASE, "-c", CANARY, "--config", cfg, "--json", out / "v.json", "--junit", out / "v.xml",
                    "--markdown", out / "v.md", "--quiet")
    assert result.exit_code == 1 and result.stdout == ""
    doc = json.loads((out / "v.json").read_text())
    assert doc["decision"] == "ROLLBACK" and doc["mode"] == "kayenta" and doc["score"] is not None
    root = ET.parse(out / "v.xml").getroot()
    assert root.tag == "testsuites" and int(root.get("failures")) >= 1
    assert {c.get("name") for c in root.iter("testcase")} == {"latency.p50", "latency.p99", "errors", "verdict"}
    md = (out / "v.md").read_text()
    assert md.startswith("### Canary analysis: ❌ **ROLLBACK**") and "| latency.p50 |" in md
    piped = _judge("-b", BASE, "-c", CANARY, "--config", cfg, "--json", "-")
    assert piped.exit_code == 1 and json.loads(piped.stdout)["decision"] == "ROLLBACK"
    assert "ROLLBACK  (exit 1)" in piped.stderr  # the table goes to stderr when stdout carries JSON
    # ... as wide as on stdout: in a CI log each metric's row stays on one line
    rows = {ln.split()[0]: ln for ln in piped.stderr.splitlines() if ln.strip()}
    for m in json.loads(piped.stdout)["metrics"]:
        assert m["decision"] in rows[m["name"]], piped.stderr


def test_same_input_same_bytes(tmp_path, cfg):
    outs = []
    for name in ("one", "two"):
        d = tmp_path / name
        result = _judge("-b", BASE, "-c", CANARY, "--config", cfg, "--json", d / "v.json", "--junit", d / "v.xml",
                        "--markdown", d / "v.md", "-q")
        assert result.exit_code == 1
        outs.append([(d / f).read_bytes() for f in ("v.json", "v.xml", "v.md")])
    assert outs[0] == outs[1]


def test_plots(tmp_path, cfg):
    result = _judge("-b", BASE, "-c", CANARY, "--config", cfg, "--plots", tmp_path / "plots", "-q")
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["ecdf.png", "qq.png", "series.png"]


def test_watch_reports_when_the_decision_was_reached(tmp_path, cfg):
    result = runner.invoke(app, ["canary", "watch", "-b", str(BASE), "-c", str(CANARY), "--config", str(cfg),
                                 "--json", str(tmp_path / "w.json")])
    assert result.exit_code == 1, result.output
    assert "ROLLBACK reached at minute 10  (exit 1)" in result.stdout
    doc = json.loads((tmp_path / "w.json").read_text())
    assert doc["watch"]["decided_at"] == 10.0 and doc["watch"]["looks"][0]["minute"] == 10.0
    flagger = runner.invoke(app, ["canary", "watch", "-b", str(BASE), "-c", str(BASE), "--config", str(cfg),
                                  "--mode", "flagger", "--every", "5"])
    assert flagger.exit_code == 0 and "PROMOTE reached at minute 26" in flagger.stdout


# --------------------------------------------------------------------------------------- meshsim mode


def _standin_functions(monkeypatch):
    """A tiny stand-in for meshsim's own judge: ROLLBACK when the canary's mean latency is 10 % higher."""
    import numpy as np

    def judge(b, c, config):
        ratio = float(np.nanmean(c.requests["latency_s"]) / np.nanmean(b.requests["latency_s"]))
        dec = Decision.ROLLBACK if ratio > 1.1 else Decision.PROMOTE if ratio < 1.05 else Decision.INCONCLUSIVE
        m = MetricResult("latency.mean", "latency", dec, ratio, ratio * 0.95, ratio * 1.05, 1.1, reason="stand-in")
        return Judgement(dec, (m,), f"stand-in ratio {ratio:.3f}", minutes=30.0)

    def watch(b, c, config):
        j = judge(b, c, config)
        return WatchResult(((30.0, j),), j.decision, None if j.decision is Decision.INCONCLUSIVE else 30.0)

    real = meshsim.cli._canary_functions
    monkeypatch.setattr(meshsim.cli, "_canary_functions",
                        lambda mode: (judge, watch) if mode == "meshsim" else real(mode))


def test_meshsim_mode_dispatches_to_the_judge(monkeypatch, tmp_path):
    _standin_functions(monkeypatch)
    result = _judge("-b", BASE, "-c", CANARY, "--junit", tmp_path / "j.xml")
    assert result.exit_code == 1 and "stand-in ratio" in result.stdout and "meshsim judge" in result.stdout
    assert _judge("-b", BASE, "-c", BASE).exit_code == 0
    w = runner.invoke(app, ["canary", "watch", "-b", str(BASE), "-c", str(CANARY)])
    assert w.exit_code == 1 and "ROLLBACK reached at minute 30" in w.stdout


def test_meshsim_judge_rolls_back_the_example_regression():
    config = ["--config", EXAMPLES / "judge.yaml"]
    result = _judge("-b", BASE, "-c", CANARY, *config)
    assert result.exit_code == 1, result.output  # 25 % slower, 1.5 % errors against 0.2 %
    assert "meshsim judge" in result.stdout


# --------------------------------------------------------------------------------------- run directories


def test_run_directory_end_to_end(tmp_path, cfg):
    from meshsim.config import parse_scenario
    from meshsim.sim import run, write_run

    scn = parse_scenario({
        "name": "canary-e2e", "seed": 3, "duration": "3m",
        "services": {"reviews": {"workers": 8, "latency": {"p50": "20ms", "p99": "80ms"},
                                 "versions": {"v1": {"replicas": 2},
                                              "v3": {"replicas": 1, "latency": {"p50": "30ms", "p99": "120ms"}}}}},
        "traffic": [{"to": "reviews", "rate": "10/s"}],
        "mesh": {"reviews": {"routes": [{"route": {"v1": 50, "v3": 50}}]}},
    })
    result = run(scn)
    write_run(tmp_path / "run", tables=result.tables(), summary=result.summary, fmt="csv")
    short = tmp_path / "short.yaml"
    short.write_text(KAYENTA_30M.replace("lifetime: 30m, interval: 10m", "lifetime: 3m, interval: 3m"))
    args = ["-b", tmp_path / "run", "-c", tmp_path / "run", "--config", short]
    out = _judge(*args, "--service", "reviews", "--baseline-version", "v1", "--canary-version", "v3")
    assert out.exit_code == 1, out.output  # v3 is 50 % slower
    assert "latency.p50" in out.stdout
    _assert_one_line_error(_judge(*args, "--service", "ratings"), "--service 'ratings' is not a service")
    shutil.rmtree(tmp_path / "run")


def test_spinnaker_config_json_and_per_minute_input(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    for name, scale in (("b", 1.0), ("c", 1.4)):
        rows = [(m, "cpu", 0.5 * scale * (1 + 0.05 * rng.standard_normal())) for m in range(60)]
        pd.DataFrame(rows, columns=["minute", "metric", "value"]).to_csv(tmp_path / f"{name}.csv", index=False)
    spin = tmp_path / "canary-config.json"
    spin.write_text(json.dumps({"name": "cpu-check", "metrics": [{"name": "cpu", "groups": ["system"],
                                "analysisConfigurations": {"canary": {"direction": "increase"}}}],
                                "classifier": {"groupWeights": {"system": 100}}, "lifetime": "60m"}))
    result = _judge("-b", tmp_path / "b.csv", "-c", tmp_path / "c.csv", "--config", spin)
    assert result.exit_code == 1, result.output
    assert "score 0" in result.stdout and "cpu" in result.stdout
