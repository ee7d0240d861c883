"""Simulated rollouts: the route-weight schedule in the engine, the plan, the judged steps, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from meshsim import ConfigError
from meshsim.cli import app
from meshsim.config import parse_scenario
from meshsim.experiments.rollout import parse_plan, run_rollout, simulate_rollout, wilson_interval
from meshsim.policies.routing import Router, RoutingPolicy
from meshsim.sim import simulate

#: one service with two identical versions behind a route; 3 minutes of traffic
SCENARIO = {
    "name": "rollout-small", "seed": 11, "duration": "20s", "warmup": "2s",
    "services": {"api": {"workers": 8, "latency": {"p50": "10ms", "p99": "40ms"},
                         "versions": {"v1": {"replicas": 2}, "v2": {"replicas": 2}}}},
    "mesh": {"api": {"routes": [{"name": "main", "route": {"v1": 100}}]}},
    "traffic": [{"name": "users", "to": "api", "rate": "100/s"}],
}
JUDGE = {"metrics": ["latency", "errors"], "decision": {"min_duration": "1m"}}


def plan_data(**changes):
    data = {"name": "small", "scenario": SCENARIO, "service": "api", "baseline": "v1", "canary": "v2",
            "steps": [10, 20, 30, 40, 50], "interval": "1m", "judge": JUDGE, "regression": None}
    data.update(changes)
    return data


# ---------------------------------------------------------------------------------------------- Router


def test_set_weights_replaces_the_picker_only():
    policy = RoutingPolicy.model_validate({"routes": [
        {"match": {"headers": {"end-user": {"exact": "jason"}}}, "route": "v2"},
        {"route": {"v1": 90, "v3": 10}}]})
    r = Router(policy, ["v1", "v2", "v3"])
    assert r.select("/", "GET", {}, 0.5) == "v1"
    r.set_weights(1, {"v1": 50, "v3": 50})
    assert r.weights(1) == {"v1": 50, "v3": 50}
    assert [r.select("/", "GET", {}, u) for u in (0.49, 0.5)] == ["v1", "v3"]
    assert r.select("/", "GET", {"end-user": "jason"}, 0.9) == "v2"  # matching unchanged
    r.set_weights(1, {"v3": 100})
    assert r.pick(1, 0.0) == "v3"
    assert r.routes[1].destinations[0].weight == 90  # the configured route is untouched


def test_set_weights_first_unconditional_route():
    r = Router(RoutingPolicy.model_validate({"routes": [{"route": {"v1": 100}}]}), ["v1", "v2"])
    r.set_weights(0, {"v1": 0, "v2": 1})
    assert r.select("/", "GET", {}, 0.0) == "v2"


@pytest.mark.parametrize("index, weights, words", [
    (0, {"v9": 10}, "'v9' is not a version"),
    (0, {"v1": -1}, "whole number >= 0"),
    (0, {"v1": 0}, "positive sum"),
    (3, {"v1": 1}, "out of range"),
])
def test_set_weights_refuses(index, weights, words):
    r = Router(RoutingPolicy.model_validate({"routes": [{"route": {"v1": 100}}]}), ["v1", "v2"])
    with pytest.raises(ConfigError, match=words):
        r.set_weights(index, weights)


# ---------------------------------------------------------------------------------------------- engine


def _small(duration="20s"):
    return parse_scenario({**SCENARIO, "duration": duration}, source="small")


def test_weights_change_exactly_at_the_given_times():
    changes = [(5.0, "api", 0, {"v1": 50, "v2": 50}), (12.5, "api", 0, {"v2": 100})]
    att = simulate(_small(), weight_changes=changes).attempts
    v, t = att["version"].astype(str).to_numpy(), att["start_s"].to_numpy()
    assert (v[t < 5.0] == "v1").all()
    mid = v[(t >= 5.0) & (t < 12.5)]
    assert 0.4 < (mid == "v2").mean() < 0.6
    assert (v[t >= 12.5] == "v2").all()
    assert t[v == "v2"].min() >= 5.0 and t[(v == "v2")].min() < 5.2  # the change took effect at once


def test_weight_schedule_is_deterministic_and_free_when_a_no_op():
    changes = [(5.0, "api", 0, {"v1": 70, "v2": 30})]
    a = simulate(_small(), seed=3, weight_changes=changes).attempts
    b = simulate(_small(), seed=3, weight_changes=changes).attempts
    pd.testing.assert_frame_equal(a, b)
    same = simulate(_small(), seed=3, weight_changes=[(5.0, "api", 0, {"v1": 100})]).attempts
    none = simulate(_small(), seed=3).attempts
    pd.testing.assert_frame_equal(same, none)  # common random numbers: the schedule draws nothing


@pytest.mark.parametrize("change, words", [
    ((5.0, "nope", 0, {"v1": 1}), "has no mesh routes"),
    ((5.0, "api", 0, {"v7": 1}), "'v7' is not a version"),
    ((99.0, "api", 0, {"v1": 1}), "outside the run"),
    ((5.0, "api"), "expected \\(time_s, service, route_index, weights\\)"),
])
def test_weight_changes_are_checked_before_the_run(change, words):
    with pytest.raises(ConfigError, match=words):
        simulate(_small(), weight_changes=[change])


# ---------------------------------------------------------------------------------------------- plans


def test_plan_schedule_and_run_length():
    plan = parse_plan(plan_data(steps=None, step_weight=20, max_weight=60))
    assert plan.spec.weights == (20, 40, 60)
    assert [(t, w) for t, _, _, w in plan.weight_changes] == [
        (0.0, {"v1": 100}), (2.0, {"v1": 80, "v2": 20}), (62.0, {"v1": 60, "v2": 40}), (122.0, {"v1": 40, "v2": 60})]
    assert float(plan.scenario.duration) == 182.0 and plan.scenario.record == "full"
    assert plan.step_ends == (1.0, 2.0, 3.0)


def test_regression_becomes_canary_faults():
    plan = parse_plan(plan_data(regression={"latency": "+30%", "errors": "1%"}))
    faults = {f.kind: f for f in plan.scenario.chaos}
    assert set(faults) == {"latency", "errors"}
    assert faults["latency"].multiply == pytest.approx(1.3)
    assert faults["errors"].rate == pytest.approx(0.01)


@pytest.mark.parametrize("changes, words", [
    ({"steps": [50, 10]}, "steps"),
    ({"steps": [5, 150]}, "150"),
    ({"interval": "90s"}, "whole number of minutes"),
    ({"canary": "v9"}, "canary: 'v9' is not a version of api; allowed: v1, v2"),
    ({"regression": {"latency": 0.5}}, "multiplier >= 1"),
    ({"regression": {"errors": "0%"}}, "regression.errors"),
    ({"steps": None}, "give the canary weights"),
    ({"service": "db"}, "service: 'db' is not a service"),
    ({"judge": {"mode": "kayenta", "metrics": ["latency"]}}, "allowed: meshsim"),
    ({"stepz": [1]}, "stepz"),
])
def test_bad_plans_are_refused_in_one_line(changes, words):
    with pytest.raises(ConfigError, match=words) as info:
        parse_plan(plan_data(**changes))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- judged rollouts


def test_clean_canary_is_not_rolled_back():
    out = simulate_rollout(parse_plan(plan_data()), replication=0)
    assert out.decision != "ROLLBACK", out.reason
    assert [s.weight for s in out.steps] == [10, 20, 30, 40, 50][:len(out.steps)]
    assert out.canary_errors == 0 and out.canary_requests > 0


def test_large_latency_regression_is_rolled_back_before_the_last_step():
    # minute-paired latency tests need a few minutes: the judge confirms +100 % at minute 4 of 5
    out = simulate_rollout(parse_plan(plan_data(regression={"latency": 2.0})), replication=0)
    assert out.decision == "ROLLBACK" and out.step <= 4, out.steps
    assert "latency" in out.reason
    assert 0 < out.bad_requests <= out.canary_requests
    assert out.canary_slow == out.bad_requests  # no errors: every bad one is slow


def test_error_regression_is_rolled_back_and_counts_errors():
    out = simulate_rollout(parse_plan(plan_data(regression={"errors": "5%"})), replication=0)
    assert out.decision == "ROLLBACK" and out.step == 1, out.steps  # the count test needs one minute
    assert out.bad_requests == out.canary_errors > 0
    # served before the decision only: the steps judged so far
    assert out.canary_requests == sum(s.canary_requests for s in out.steps)


def test_plan_power_over_seeds_with_wilson_interval():
    study = run_rollout(parse_plan(plan_data(regression={"latency": 1.5})), seeds=3, workers=1)
    assert study.seeds == 3 and len(study.outcomes) == 3
    assert 0.0 <= study.power_low <= study.power <= study.power_high <= 1.0
    assert study.power + study.promoted + study.inconclusive == pytest.approx(1.0)
    assert len({o.replication for o in study.outcomes}) == 3
    assert study.median_bad_requests >= 0 and np.isfinite(study.median_canary_requests)


def test_wilson_interval():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


# ---------------------------------------------------------------------------------------------- CLI


def _write_plan(tmp_path, **changes):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_data(**changes)), encoding="utf-8")
    return path


def test_cli_rollback_exit_code_json_and_outputs(tmp_path):
    path = _write_plan(tmp_path, regression={"errors": "5%"})
    res = CliRunner().invoke(app, ["rollout", str(path), "--json", "-o", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data["outcomes"][0]["decision"] == "ROLLBACK" and data["seeds"] == 1
    assert (tmp_path / "out" / "rollout.json").is_file() and (tmp_path / "out" / "outcomes.csv").is_file()


def test_cli_bad_plan_exits_2_with_one_line(tmp_path):
    path = _write_plan(tmp_path, steps=[30, 10])
    res = CliRunner().invoke(app, ["rollout", str(path)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "steps" in lines[0]
    res = CliRunner().invoke(app, ["rollout", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_bundled_plan_loads():
    from meshsim.experiments.rollout import load_plan

    plan = load_plan("experiments/rollout-reviews-v3.yaml")
    assert plan.spec.weights == (5, 10, 25, 50) and plan.route_index == 1
    assert plan.spec.regression.latency == pytest.approx(1.3)
