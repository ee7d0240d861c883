"""The Flagger-style judge (meshsim.canary.flagger): ramp, cumulative failed checks, NaN = failure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from meshsim import CanaryError
from meshsim.canary import ArmData, Decision
from meshsim.canary.flagger import FlaggerAction, FlaggerRollout, judge_flagger, replay_flagger


def _arm(name: str, minutes: int, *, p99_ms: float = 100.0, errors: list[float] | None = None,
         requests: list[float] | None = None) -> ArmData:
    req = np.asarray(requests if requests is not None else [1000.0] * minutes, float)
    err = np.asarray(errors if errors is not None else [0.0] * minutes, float)
    p99 = np.where(req > 0, p99_ms / 1000.0, np.nan)
    frames = [pd.DataFrame({"minute": np.arange(minutes), "metric": k, "value": v, "count": req})
              for k, v in (("requests", req), ("errors", err), ("latency_p99_s", p99))]
    return ArmData(name, minutes=pd.concat(frames, ignore_index=True))


def _cfg(**flagger):
    return {"metrics": [{"name": "latency", "quantiles": ["p99"], "flagger": {"max": 500}},
                        {"name": "errors", "flagger": {"min": 99}}],
            "flagger": {"threshold": 5, "step_weight": 2, "max_weight": 50, **flagger}}


def test_rollout_linear_ramp_takes_25_checks():
    r = FlaggerRollout(threshold=5, step_weight=2, max_weight=50)
    assert r.start() is FlaggerAction.START and r.weight == 2
    actions = [r.tick(True) for _ in range(25)]
    assert actions[:-1] == [FlaggerAction.ADVANCE] * 24 and actions[-1] is FlaggerAction.PROMOTE
    assert r.weight == 50
    with pytest.raises(RuntimeError):
        r.tick(True)


def test_rollout_step_weights_and_cumulative_failures():
    r = FlaggerRollout(threshold=2, step_weights=(5, 10, 25, 50))
    r.start()
    assert r.weight == 5 and r.max_weight == 50
    assert [r.tick(ok).value for ok in (True, False, True, True)] == ["advance", "halt", "advance", "advance"]
    assert r.weight == 50 and r.failed_checks == 1  # passing checks do not reset the count
    assert r.tick(False) is FlaggerAction.HALT and r.rollback_due
    assert r.tick(True) is FlaggerAction.ROLLBACK  # rolled back at the next tick, whatever the check says


def test_explicit_step_weight_wins_over_step_weights():
    from meshsim.canary.config import parse_judge_config

    both = parse_judge_config(_cfg(step_weights=[5, 10, 25, 50], step_weight=10)).flagger
    assert FlaggerRollout.from_config(both).step_weight == 10
    steps = parse_judge_config({**_cfg(), "flagger": {"step_weights": [5, 10, 25, 50]}}).flagger
    assert FlaggerRollout.from_config(steps).step_weight is None


def test_clean_canary_is_promoted_at_minute_25():
    w = replay_flagger(_arm("baseline", 40), _arm("canary", 40), _cfg())
    assert w.decision is Decision.PROMOTE and w.decided_at == 25.0
    assert len(w.looks) == 25 and w.final.mode == "flagger"
    assert w.looks[0][1].details["weight"] == 2 and w.looks[-1][1].details["weight"] == 50
    assert judge_flagger(_arm("baseline", 40), _arm("canary", 40), _cfg()).decision is Decision.PROMOTE


def test_failing_canary_is_rolled_back_after_threshold_checks():
    w = replay_flagger(_arm("baseline", 40), _arm("canary", 40, p99_ms=800.0), _cfg())
    assert w.decision is Decision.ROLLBACK and w.decided_at == 6.0  # 5 failed checks at minutes 1-5, rollback at 6
    halt = w.looks[0][1]
    lat = next(m for m in halt.metrics if m.name == "latency.p99")
    assert lat.decision is Decision.ROLLBACK and lat.effect == pytest.approx(800.0) and "> max 500ms" in lat.reason
    assert halt.details["action"] == "halt" and halt.details["weight"] == 2


def test_success_rate_is_percent_and_no_traffic_fails_the_check():
    errors = [0.0] * 40
    errors[3] = 20.0  # 98 % success in minute 3, checked at minute 4
    requests = [1000.0] * 40
    requests[6] = 0.0  # no canary traffic in minute 6: no value, a failed check at minute 7
    w = replay_flagger(_arm("b", 40), _arm("c", 40, errors=errors, requests=requests), _cfg(threshold=2))
    assert w.decision is Decision.ROLLBACK and w.decided_at == 8.0
    reasons = {m: j.reason for m, j in w.looks}
    assert "errors 98% < min 99%" in reasons[4.0]
    assert "no values found" in reasons[7.0]
    err = next(m for m in w.looks[3][1].metrics if m.name == "errors")
    assert err.effect == pytest.approx(98.0) and err.effect_kind == "value"


def test_data_ending_early_is_inconclusive():
    w = replay_flagger(_arm("b", 10), _arm("c", 10), _cfg())
    assert w.decision is Decision.INCONCLUSIVE and w.decided_at is None and len(w.looks) == 10
    assert "weight 22%" in w.final.reason and w.final.exit_code == 3


def test_raw_requests_give_p99_in_milliseconds():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 600, 6000))
    lat = rng.lognormal(np.log(0.1), 0.3, 6000)
    req = pd.DataFrame({"t": t, "latency_s": lat, "status": 200})
    from meshsim.canary.io import minutes_from_requests

    arm = ArmData("canary", requests=req, minutes=minutes_from_requests(req, 10))
    w = replay_flagger(arm, arm, _cfg())
    first = next(m for m in w.looks[0][1].metrics if m.name == "latency.p99")
    in_minute0 = lat[t < 60]
    assert first.effect == pytest.approx(np.quantile(in_minute0, 0.99) * 1000.0)


def test_without_flagger_ranges_is_a_clear_error():
    with pytest.raises(CanaryError, match=r"no metric has a flagger range"):
        replay_flagger(_arm("b", 5), _arm("c", 5), {"metrics": ["latency", "errors"]})


def test_interval_of_two_minutes_checks_every_other_minute():
    w = replay_flagger(_arm("b", 12), _arm("c", 12), _cfg(interval="2m"))
    assert [m for m, _ in w.looks] == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert all(j.details["window_minute"] == m - 1 for m, j in w.looks)
    assert not math.isnan(w.looks[0][1].metrics[0].effect)
