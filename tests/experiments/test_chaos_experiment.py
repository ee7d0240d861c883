"""meshsim.experiments.chaos: the experiment file, window judging, verdicts, comparisons, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from meshsim import ConfigError
from meshsim.cli import app
from meshsim.experiments.chaos import (
    Verdict,
    _recovery,
    _verdict,
    compare_variants,
    load_experiment,
    load_variant,
    parse_experiment,
    run_experiment,
    write_report,
)

SCENARIO = {
    "name": "small", "seed": 4, "duration": "40s", "warmup": "2s", "drain": "5s",
    "services": {
        "front": {"replicas": 2, "workers": 8, "latency": "2ms", "script": [{"call": "back"}]},
        "back": {"replicas": 2, "workers": 8, "latency": {"type": "exponential", "mean": "5ms"}},
    },
    "traffic": [{"name": "users", "to": "front", "rate": "100/s"}],
    "mesh": {"back": {"retries": {"retry_on": "5xx", "num_retries": 2}, "circuit_breakers": {"max_retries": 1000}}},
}


def _experiment(**changes):
    data = {
        "name": "small-exp",
        "scenario": SCENARIO,
        "hypothesis": {"window": "4s", "slos": [{"name": "users", "success_rate": "99%", "p99": "200ms"},
                                                {"target": "back", "success_rate": "99%"}]},
        "method": [{"kind": "errors", "target": "back", "rate": "100%", "start": "14s", "duration": "6s"}],
    }
    data.update(changes)
    return data


def _error(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_experiment(data, source="exp.yaml")
    return str(info.value)


# ------------------------------------------------------------------------------- validation
def test_errors_name_the_field_the_value_and_what_is_allowed():
    msg = _error(_experiment(hypothesis={"slos": [{"success_rate": "99.9 parsecs"}]}))
    assert msg.startswith("exp.yaml: hypothesis.slos[0].success_rate: ")
    msg = _error(_experiment(hypothesis={"slos": [{"p99": "-3ms"}]}))
    assert "hypothesis.slos[0].p99" in msg
    msg = _error(_experiment(hypothesis={"slos": [{"sucess_rate": "99%"}]}))
    assert "unknown key 'sucess_rate'; did you mean 'success_rate'?" in msg
    msg = _error(_experiment(hypothesis={"slos": [{"name": "x"}]}))
    assert "hypothesis.slos[0]: an SLO needs success_rate" in msg
    msg = _error(_experiment(hypothesis={"slos": [{"target": "bak", "success_rate": "99%"}]}))
    assert "hypothesis.slos[0].target.service: 'bak' is not a service; did you mean 'back'?" in msg
    msg = _error(_experiment(hypothesis={"window": {"size": "5s", "step": "6s"}, "slos": [{"p99": "1s"}]}))
    assert "hypothesis.window.step" in msg and "longer than the window" in msg
    msg = _error(_experiment(hypothesis={"slos": [{"p99": "1s"}], "during": "maybe"}))
    assert "hypothesis.during: 'maybe' is not one of" in msg


def test_method_faults_are_checked_against_the_scenario_and_named_as_method():
    msg = _error(_experiment(method=[{"kind": "crsh", "target": "back"}]))
    assert msg.startswith("exp.yaml: method[0].kind: 'crsh' is not a fault kind; did you mean 'crash'?")
    msg = _error(_experiment(method=[{"kind": "crash", "target": "bakc", "start": "14s"}]))
    assert msg.startswith("exp.yaml: method[0].target: 'bakc' is not a service; did you mean 'back'?")
    with_own = {**SCENARIO, "chaos": [{"kind": "crash", "target": "back", "start": "14s", "duration": "2s"}]}
    msg = _error(_experiment(scenario=with_own, method=[{"kind": "crash", "target": "back", "start": "15s"}]))
    assert msg.startswith("exp.yaml: method[0]: overlaps chaos[0]")


def test_windows_must_fit_before_and_after_the_faults():
    msg = _error(_experiment(method=[{"kind": "crash", "target": "back", "start": "4s", "duration": "1s"}]))
    assert "hypothesis.window.size" in msg and "before it" in msg
    msg = _error(_experiment(method=[{"kind": "crash", "target": "back", "start": "20s", "duration": "18s"}]))
    assert "to judge the recovery" in msg
    msg = _error(_experiment(method=[]))
    assert "method: no faults" in msg


def test_scenario_files_are_found_next_to_the_experiment(tmp_path: Path):
    (tmp_path / "scn.yaml").write_text(yaml.safe_dump(SCENARIO))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(_experiment(scenario="scn.yaml", set={"traffic.users.rate": "50/s"})))
    loaded = load_experiment(exp)
    assert loaded.scenario.traffic[0].rate == 50.0
    assert loaded.scenario.record == "full"
    assert [f.kind for f in loaded.scenario.chaos] == ["errors"]
    exp.write_text(yaml.safe_dump(_experiment(scenario="nope.yaml")))
    with pytest.raises(ConfigError, match="scenario: 'nope.yaml': no such file"):
        load_experiment(exp)


# ------------------------------------------------------------------------------- judging
@pytest.fixture(scope="module")
def violated():
    return run_experiment(parse_experiment(_experiment(), source="exp"))


def test_a_dependency_failure_violates_during_and_recovers_after(violated):
    (o,) = violated.outcomes
    assert o.held == {"before": True, "during": False, "after": True}
    assert o.recovered is True and o.recovery_s == 0.0
    assert violated.verdict is Verdict.VIOLATED and violated.exit_code == 1
    w = o.windows
    assert set(w["phase"]) == {"before", "during", "after"}
    assert w["start_s"].min() == 2.0 and (w["end_s"] - w["start_s"] == 4.0).all()
    bad = w[w["meets"] == False]  # noqa: E712
    assert (bad["phase"] == "during").all()
    assert set(bad["failed"]) >= {"success_rate"}
    br = violated.blast_radius().set_index("slo")
    assert br.loc["back", "hit_directly"] and not br.loc["users", "hit_directly"]
    assert br.loc["users", "violated"] == 1 and br.loc["back", "violated"] == 1
    assert br.loc["users", "first_violation_s"] == 14.0
    # 3 tries at back per user request while it fails everything
    assert br.loc["back", "amplification"] == pytest.approx(3.0, rel=0.05)


def test_tolerated_violations_during_the_faults_hold_when_the_system_recovers():
    data = _experiment()
    data["hypothesis"] = {**data["hypothesis"], "during": "tolerated"}
    res = run_experiment(parse_experiment(data))
    assert res.verdict is Verdict.HELD and res.exit_code == 0
    data["hypothesis"]["slos"] = [{"success_rate": "99%"}, {"target": "back", "success_rate": "99%",
                                                            "enforce": False}]
    res = run_experiment(parse_experiment(data))
    assert res.verdict is Verdict.HELD
    assert "(watched)" in res.blast_radius().set_index("slo").loc["back", "objective"]


def test_a_run_that_holds():
    held = run_experiment(parse_experiment(_experiment(method=[
        {"kind": "latency", "target": "back", "add": "1ms", "start": "14s", "duration": "6s"}])))
    assert held.verdict is Verdict.HELD
    assert held.outcomes[0].held == {"before": True, "during": True, "after": True}


def test_recovery_is_the_start_of_the_last_run_of_good_windows():
    assert _recovery([], 30.0) == (None, None)
    assert _recovery([(30.0, True), (31.0, True)], 30.0) == (True, 0.0)
    assert _recovery([(30.0, False), (31.0, True), (32.0, False), (33.0, True), (34.0, True)], 30.0) == (True, 3.0)
    assert _recovery([(30.0, True), (31.0, False)], 30.0) == (False, None)


def test_verdict_rules():
    from meshsim.experiments.chaos import Hypothesis

    req = Hypothesis.model_validate({"slos": [{"success_rate": "99%"}]})
    tol = Hypothesis.model_validate({"slos": [{"success_rate": "99%"}], "during": "tolerated"})
    ok = {"before": True, "during": True, "after": True}
    assert _verdict(req, ok, True, 0.0)[0] is Verdict.HELD
    assert _verdict(req, {**ok, "during": False}, True, 0.0)[0] is Verdict.VIOLATED
    assert _verdict(tol, {**ok, "during": False, "after": False}, True, 5.0)[0] is Verdict.HELD
    assert _verdict(tol, {**ok, "before": False}, True, 0.0)[0] is Verdict.VIOLATED
    verdict, reasons = _verdict(tol, {**ok, "after": False}, False, None)
    assert verdict is Verdict.NOT_RECOVERED and "did not recover by the end of the run" in reasons[-1]
    assert _verdict(req, {**ok, "during": False}, None, None)[0] is Verdict.VIOLATED  # open-ended fault


def test_same_seed_same_result_and_replications_give_intervals():
    a = run_experiment(parse_experiment(_experiment()), replications=2)
    b = run_experiment(parse_experiment(_experiment()), replications=2)
    assert a.to_dict() == b.to_dict()
    pt = a.phase_table()
    row = pt[(pt["slo"] == "users") & (pt["phase"] == "before")].iloc[0]
    assert row["n"] == 2 and row["success_rate_low"] <= row["success_rate"] <= row["success_rate_high"]
    assert json.dumps(a.to_dict())  # JSON-ready


# ------------------------------------------------------------------------------- comparisons
def test_variants_run_with_common_random_numbers(tmp_path: Path):
    exp = parse_experiment(_experiment(), source=str(tmp_path / "exp.yaml"), base_dir=tmp_path)
    (tmp_path / "no-retries.yaml").write_text("name: no-retries\nmesh:\n  back: null\n")
    (tmp_path / "same.yaml").write_text("set: {}\n")
    (tmp_path / "bad.yaml").write_text("mesj: {}\n")
    base, same, off = (load_variant(tmp_path / n, exp) for n in ("same.yaml", "same.yaml", "no-retries.yaml"))
    assert off.label == "no-retries" and same.label == "same"
    assert "back" not in off.experiment.scenario.mesh
    with pytest.raises(ConfigError, match="unknown key 'mesj'; did you mean 'mesh'"):
        load_variant(tmp_path / "bad.yaml", exp)
    with pytest.raises(ConfigError, match="two variants are called 'same'"):
        compare_variants(exp, [base, same])
    cmp = compare_variants(exp, [base, off], replications=2)
    d = {x.metric: x for x in cmp.differences}
    # before the faults the two are the same runs; during, retries hide nothing from a 100 % failure,
    # and the same seeds make the paired difference of the two identical arrivals exact
    assert d["during.success_rate"].n == 2
    assert d["after.success_rate"].mean == 0.0
    assert cmp.exit_code == 1
    scenario_variant = tmp_path / "scenario.yaml"
    scenario_variant.write_text(yaml.safe_dump({**SCENARIO, "name": "other"}))
    v = load_variant(scenario_variant, exp)
    assert v.label == "scenario" and v.experiment.scenario.name == "other"
    assert len(v.experiment.scenario.chaos) == 1


# ------------------------------------------------------------------------------- outputs and CLI
def test_report_writes_markdown_json_csv_and_plots(violated, tmp_path: Path):
    paths = write_report(violated, tmp_path / "out")
    names = {p.name for p in paths}
    assert names == {"report.md", "result.json", "windows.csv", "success_rate.png", "latency.png", "goodput.png"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "# Chaos experiment: small-exp" in md
    assert "### Blast radius" in md and "![success_rate](success_rate.png)" in md
    assert "**NO** (success_rate" in md
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert data["verdict"] == "violated" and data["exit_code"] == 1
    for p in paths:
        if p.suffix == ".png":
            assert p.stat().st_size > 5000


def test_plots_shade_the_faults_and_draw_the_slo():
    import matplotlib

    matplotlib.use("Agg", force=True)
    from meshsim.report import Series, time_figure

    fig = time_figure({"users": Series([1, 2, 3], [100, 50, 100])}, faults=[("crash", 1.5, 2.5)],
                      threshold=99, threshold_label="SLO", ylabel="success rate (%)")
    ax = fig.axes[0]
    assert [p.get_gid() for p in ax.patches] == ["fault:crash"]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["users", "SLO"]
    assert ax.get_ylabel() == "success rate (%)"


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_exit_codes_and_outputs(tmp_path: Path):
    runner = CliRunner()
    path = _write(tmp_path, _experiment())
    res = runner.invoke(app, ["chaos", str(path)])
    assert res.exit_code == 1, res.output
    assert "verdict: VIOLATED" in res.stdout and "blast radius" in res.stdout
    res = runner.invoke(app, ["chaos", str(path), "--json", "--set", "mesh.back=null"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["verdict"] == "violated"
    tolerant = _experiment()
    tolerant["hypothesis"]["during"] = "tolerated"
    res = runner.invoke(app, ["chaos", str(_write(tmp_path, tolerant)), "-q", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0 and res.stdout == ""
    assert (tmp_path / "r" / "report.md").is_file()
    bad = _experiment(hypothesis={"slos": [{"p99": "soon"}]})
    res = runner.invoke(app, ["chaos", str(_write(tmp_path, bad))])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "hypothesis.slos[0].p99" in res.stderr
    res = runner.invoke(app, ["chaos", str(path), str(path)])
    assert res.exit_code == 2 and "--compare" in res.stderr
    res = runner.invoke(app, ["chaos", str(path), "--compare", str(path)])
    assert res.exit_code == 2 and "at least two variant files" in res.stderr


def test_cli_compare(tmp_path: Path):
    path = _write(tmp_path, _experiment())
    (tmp_path / "on.yaml").write_text("name: retries-on\n")
    (tmp_path / "off.yaml").write_text("name: retries-off\nmesh: {back: null}\n")
    res = CliRunner().invoke(app, ["chaos", str(path), "--compare", str(tmp_path / "on.yaml"),
                                   str(tmp_path / "off.yaml"), "--replications", "2"])
    assert res.exit_code == 1, res.output
    assert "retries-off − retries-on" in res.stdout and "paired by replication" in res.stdout
    assert math.isfinite(0.0)
