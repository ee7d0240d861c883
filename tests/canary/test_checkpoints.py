"""PROMOTE checkpoints (``decision.promote_at``): group-sequential bounds, their error rate, config, verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from meshsim import ConfigError
from meshsim.canary import ArmData, Decision, judge, watch
from meshsim.canary.config import parse_judge_config
from meshsim.canary.sequential import checkpoint_bounds, checkpoint_z


def _arm(name: str, v: np.ndarray) -> ArmData:
    rows = [(m, "latency_p99_s", float(x), np.nan) for m, x in enumerate(v)]
    return ArmData(name, minutes=pd.DataFrame(rows, columns=["minute", "metric", "value", "count"]))


def _arms(shift: float, n: int, sd: float, seed: int = 0) -> tuple[ArmData, ArmData]:
    rng = np.random.default_rng(seed)
    return _arm("baseline", 0.1 * np.exp(rng.normal(0, sd, n))), _arm("canary", 0.1 * np.exp(rng.normal(shift, sd, n)))


def test_checkpoint_z_between_one_look_and_bonferroni() -> None:
    z1 = checkpoint_z((60,), 0.05)
    z4 = checkpoint_z((30, 60, 120, 180), 0.05)
    bonf = 2.4977  # Phi^-1(1 - 0.05/4)
    assert z1 == pytest.approx(1.6449, abs=1e-3)
    assert z1 < z4 < bonf
    # only the ratios of the times matter
    assert checkpoint_z((1, 2, 4, 6), 0.05) == pytest.approx(z4, abs=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        checkpoint_z((60, 30), 0.05)


def test_checkpoint_z_matches_simulated_crossing() -> None:
    """Monte Carlo (seed 5, 200k paths): P(any standardised look >= z) = 0.05 within 0.003 (3.1 SE)."""
    ts = np.array([30.0, 60.0, 120.0, 180.0])
    z = checkpoint_z(tuple(ts), 0.05)
    rng = np.random.default_rng(5)
    inc = rng.standard_normal((200_000, 4)) * np.sqrt(np.diff(np.r_[0.0, ts]))
    zs = np.cumsum(inc, axis=1) / np.sqrt(ts)
    assert abs(float((zs >= z).any(axis=1).mean()) - 0.05) < 0.003


def test_checkpoint_bounds_hold_their_error_rate() -> None:
    """White minutes with mean 0: the upper bound falls below 0 at some checkpoint in at most
    5 % (+1.4 pp, 3 SE at 2000 runs, seed 8) of runs; before the first checkpoint it is infinite."""
    rng = np.random.default_rng(8)
    misses = 0
    for _ in range(2000):
        d = rng.normal(0.0, 0.25, 180)
        lo, hi = checkpoint_bounds(d, [30, 60, 120, 180], alpha_lower=0.05, alpha_upper=0.05)
        misses += bool(hi[-1] < 0.0)
    assert misses / 2000 <= 0.05 + 0.014
    d = rng.normal(0.0, 0.25, 45)
    lo, hi = checkpoint_bounds(d, [30, 60, 120, 180], alpha_lower=0.05, alpha_upper=0.05)
    assert np.isinf(hi[:29]).all() and np.isfinite(hi[29:]).all() and (hi[29:] == hi[29]).all()


def test_promote_waits_for_a_checkpoint_and_says_so() -> None:
    b, c = _arms(0.0, 40, 0.02)
    cfg = {"metrics": [{"name": "latency_p99_s", "margin": "10%"}]}
    early = judge(ArmData("baseline", minutes=b.minutes[b.minutes.minute < 20]),
                  ArmData("canary", minutes=c.minutes[c.minutes.minute < 20]), cfg)
    assert early.decision is Decision.INCONCLUSIVE
    assert "PROMOTE is judged at minutes 30, 60, 120, 180 (next: 30)" in early.reason
    assert np.isfinite(early.metrics[0].ci_high)  # the every-look bound is shown meanwhile
    j = judge(b, c, cfg)
    assert j.decision is Decision.PROMOTE and j.details["decided_at"] == 30.0
    every = judge(b, c, {**cfg, "decision": {"promote_at": "every-look"}})
    assert every.decision is Decision.PROMOTE and every.details["decided_at"] < 30.0
    custom = judge(b, c, {**cfg, "decision": {"promote_at": ["10m", "40m"]}})
    assert custom.details["decided_at"] == 10.0


def test_acceptable_change_waits_instead_of_rolling_back() -> None:
    """+3 % with little noise: confirmed worse (lower bound > 0) within minutes, but the every-look bound
    already puts it inside the 10 % margin, so the judge waits for the checkpoint and promotes."""
    b, c = _arms(np.log(1.03), 60, 0.01)
    w = watch(b, c, {"metrics": [{"name": "latency_p99_s", "margin": "10%"}]})
    assert w.decision is Decision.PROMOTE and w.decided_at == 30.0
    assert all(j.decision is Decision.INCONCLUSIVE for _, j in w.looks[:-1])


def test_default_checkpoints_follow_the_horizon() -> None:
    d = parse_judge_config({"metrics": ["latency"], "decision": {"horizon": "1h"}}).decision
    assert d.promote_checkpoints_min() == (10, 20, 40, 60)
    assert parse_judge_config({"metrics": ["latency"]}).decision.promote_checkpoints_min() == (30, 60, 120, 180)
    assert parse_judge_config({"metrics": ["latency"], "decision": {"promote_at": "every-look"}}
                              ).decision.promote_checkpoints_min() is None


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("soon", "decision.promote_at: 'soon' is neither a list of durations"),
        (["1h", "30m"], "checkpoints must be positive and increasing"),
        ([], "expected a non-empty list of durations"),
        (["abc"], "decision.promote_at"),
    ],
)
def test_bad_checkpoints_are_one_line_errors(value: object, part: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_judge_config({"metrics": ["latency"], "decision": {"promote_at": value}})
    msg = str(exc.value)
    assert "\n" not in msg and part in msg
