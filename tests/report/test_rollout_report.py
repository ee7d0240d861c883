"""Tests of meshsim.report rollout reports: the timeline, decision times and plan power, headless (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from meshsim.cli import app  # noqa: E402
from meshsim.experiments.rollout import RolloutOutcome, RolloutStudy, StepResult, wilson_interval  # noqa: E402
from meshsim.report import (  # noqa: E402
    build_rollout_report,
    decision_times_figure,
    rollout_power_figure,
    rollout_timeline_figure,
    write_rollout_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
WEIGHTS = (10, 20, 30, 40, 50)


def _outcome(replication: int, decision: str, step: int) -> RolloutOutcome:
    """A seed decided at the end of ``step`` (1-based, steps of one minute); earlier looks inconclusive."""
    steps = tuple(StepResult(k, WEIGHTS[k - 1], float(k), decision if k == step else "INCONCLUSIVE", "why", 100)
                  for k in range(1, step + 1))
    return RolloutOutcome(seed=11, replication=replication, decision=decision, step=step, weight=WEIGHTS[step - 1],
                          minute=float(step), canary_requests=100 * step, canary_errors=3, canary_slow=0,
                          bad_requests=3, baseline_p99_s=0.04, reason="why", steps=steps)


def _study(outcomes) -> RolloutStudy:
    n, k = len(outcomes), sum(o.decision == "ROLLBACK" for o in outcomes)
    lo, hi = wilson_interval(k, n)
    return RolloutStudy(plan="small", regression="errors 5%", seeds=n, outcomes=tuple(outcomes), power=k / n,
                        power_low=lo, power_high=hi,
                        promoted=sum(o.decision == "PROMOTE" for o in outcomes) / n,
                        inconclusive=sum(o.decision == "INCONCLUSIVE" for o in outcomes) / n,
                        median_minute=2.0, median_bad_requests=3.0, median_canary_requests=200.0)


SEEDS = [_outcome(0, "ROLLBACK", 2), _outcome(1, "ROLLBACK", 3), _outcome(2, "PROMOTE", 5), _outcome(3, "ROLLBACK", 2)]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_timeline_steps_looks_and_decision_line():
    fig = rollout_timeline_figure(_outcome(0, "ROLLBACK", 3))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "minutes after the warm-up" and ax.get_ylabel() == "canary weight (%)"
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["canary weight", "after rollback", "decision: ROLLBACK at 3 min"]
    weight = ax.lines[0]
    assert list(weight.get_ydata()) == [10, 20, 30, 30] and weight.get_drawstyle() == "steps-post"
    decision = ax.lines[-1]
    assert list(decision.get_xdata()) == [3.0, 3.0]
    looks = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert looks == {"look: ROLLBACK": 1, "look: INCONCLUSIVE": 2}


def test_timeline_with_plan_dots_the_steps_not_reached():
    class Spec:
        weights = WEIGHTS

    class Plan:
        spec = Spec()
        step_ends = (1.0, 2.0, 3.0, 4.0, 5.0)

    ax = rollout_timeline_figure(_outcome(0, "ROLLBACK", 2), Plan()).axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert "planned (not reached)" in labels and ax.get_xlim()[1] >= 5.0


def test_decision_times_and_power_bar():
    ax = decision_times_figure(SEEDS).axes[0]
    assert ax.get_ylabel() == "seeds"
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    assert bars["ROLLBACK"] == [2, 1, 0] and bars["PROMOTE"] == [0, 0, 1]
    assert any(line.get_label().startswith("median decision") for line in ax.lines)
    study = _study(SEEDS)
    ax = rollout_power_figure(study).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rolled back (power)", "promoted", "inconclusive"]
    assert [p.get_width() for p in ax.patches] == [0.75, 0.25, 0.0]
    err = ax.containers[-1]
    seg = err.lines[2][0].get_segments()[0]
    assert seg[0][0] == pytest.approx(study.power_low) and seg[1][0] == pytest.approx(study.power_high)
    assert "Wilson" in ax.get_legend_handles_labels()[1][0]


def test_report_one_seed_and_many(tmp_path):
    one = build_rollout_report(_study([_outcome(0, "PROMOTE", 5)]))
    assert list(one.figures) == ["rollout-timeline.png"]
    many = build_rollout_report(_study(SEEDS))
    assert list(many.figures) == ["rollout-power.png", "rollout-decision-times.png", "rollout-timeline.png"]
    assert all(png.startswith(PNG) for png in many.figures.values())
    assert build_rollout_report(_study(SEEDS)).figures == many.figures  # deterministic bytes
    html = many.html()
    assert html.count('src="data:image/png;base64,') == 3 and "<script" not in html
    assert "Rolled back in 75.0% of 4 seeds" in many.markdown()
    paths = write_rollout_report(_study(SEEDS), tmp_path)
    assert {p.name for p in paths} >= {"rollout.md", "rollout.html", "rollout-timeline.png"}


def test_cli_rollout_writes_the_report(tmp_path):
    plan = {"name": "small", "service": "api", "baseline": "v1", "canary": "v2", "steps": [10, 20, 30],
            "interval": "1m", "judge": {"metrics": ["errors"], "decision": {"min_duration": "1m"}},
            "regression": {"errors": "5%"},
            "scenario": {"name": "rollout-small", "seed": 11, "duration": "20s", "warmup": "2s",
                         "services": {"api": {"workers": 8, "latency": {"p50": "10ms", "p99": "40ms"},
                                              "versions": {"v1": {"replicas": 2}, "v2": {"replicas": 2}}}},
                         "mesh": {"api": {"routes": [{"name": "main", "route": {"v1": 100}}]}},
                         "traffic": [{"name": "users", "to": "api", "rate": "100/s"}]}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    res = CliRunner().invoke(app, ["rollout", str(path), "-q", "-o", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    out = tmp_path / "out"
    assert (out / "rollout.json").is_file() and (out / "rollout.md").is_file()
    assert (out / "plots" / "rollout-timeline.png").is_file()
    assert (out / "rollout.html").read_text().count("data:image/png;base64,") == 1
