"""Arms of unequal size: per-minute quantiles of a small arm read low, so the judge matches sizes or refuses.

A p99 of 30 requests sits near their maximum and reads lower than the p99 of 570: with a 5 %
canary an unchanged canary looked ~20 % faster at p99, and a tail-only regression was PROMOTEd.
From raw requests the judge estimates the larger arm's per-minute quantiles at the smaller arm's
size; from per-minute aggregates it refuses the side of the test the bias favours.
"""

from __future__ import annotations

import numpy as np

from meshsim.canary import ArmData, Decision, judge
from meshsim.canary._judge import _analyze, decision_path, minute_series
from meshsim.canary._synthetic import SyntheticSpec, generate
from meshsim.canary.config import parse_judge_config

CFG = parse_judge_config({"metrics": [{"name": "latency", "quantiles": ["p50", "p90", "p99"], "margin": "10%"}]})
SMALL = SyntheticSpec(minutes=90).with_(canary_share=0.05)  # 570 vs 30 requests a minute


def _raw(run) -> tuple[ArmData, ArmData]:
    return ArmData("baseline", requests=run.baseline.requests), ArmData("canary", requests=run.canary.requests)


def _mean_log_ratio(tests, label: str) -> float:
    t = next(t for t in tests if t.label == label)
    return float(np.log(t.estimate[-1]))


def test_raw_arms_are_compared_at_equal_sizes() -> None:
    """A/A, seeds 31-34: the matched per-minute p99 log ratio averages within 0.06 of 0; computed
    naively from each arm's own requests it is about -0.2 (the bias this guards against)."""
    matched, naive = [], []
    for seed in range(31, 35):
        run = generate(SMALL, seed, raw=True)
        b, c = _raw(run)
        tests, T, _ = _analyze(b, c, CFG)
        matched.append(_mean_log_ratio(tests, "latency.p99"))
        sb = minute_series(b, ["latency_p99_s"], T)["latency_p99_s"]
        sc = minute_series(c, ["latency_p99_s"], T)["latency_p99_s"]
        ok = np.isfinite(sb) & np.isfinite(sc)
        naive.append(float(np.mean(np.log(sc[ok]) - np.log(sb[ok]))))
    assert abs(np.mean(matched)) < 0.06
    assert np.mean(naive) < -0.12


def test_small_canary_tail_regression_is_never_promoted() -> None:
    """p99 +20 % (tail only) on a 5 % canary, seeds 41-46: no PROMOTE from aggregates or raw requests."""
    spec = SMALL.with_(effect="tail", effect_size=1.2)
    for seed in range(41, 47):
        run = generate(spec, seed, raw=True)
        t1 = decision_path(ArmData("baseline", minutes=run.baseline.minutes),
                           ArmData("canary", minutes=run.canary.minutes), CFG)[0]
        t2 = decision_path(*_raw(run), CFG)[0]
        assert t1 is not Decision.PROMOTE and t2 is not Decision.PROMOTE


def test_aggregates_of_unequal_arms_say_why_they_cannot_promote() -> None:
    run = generate(SMALL, 51)
    j = judge(ArmData("baseline", minutes=run.baseline.minutes), ArmData("canary", minutes=run.canary.minutes), CFG)
    assert j.decision is Decision.INCONCLUSIVE
    p99 = next(r for r in j.metrics if r.name == "latency.p99")
    assert "are not comparable (a small sample reads low)" in p99.reason
    # the same data as raw requests: matched sizes, no refusal
    raw = judge(*_raw(generate(SMALL, 51, raw=True)), CFG)
    assert all("not comparable" not in r.reason for r in raw.metrics)


def test_equal_arms_are_untouched() -> None:
    """With equal arms no minute is re-estimated: raw input gives the naive per-minute quantiles."""
    run = generate(SyntheticSpec(minutes=30), 61, raw=True)
    b, c = _raw(run)
    tests, T, _ = _analyze(b, c, CFG)
    sb = minute_series(b, ["latency_p99_s"], T)["latency_p99_s"]
    sc = minute_series(c, ["latency_p99_s"], T)["latency_p99_s"]
    ok = np.isfinite(sb) & np.isfinite(sc)
    t = next(t for t in tests if t.label == "latency.p99")
    assert np.isclose(np.log(t.estimate[-1]), np.mean(np.log(sc[ok]) - np.log(sb[ok])))
