"""meshsim's judge (meshsim.canary._judge): verdict boundaries, critical metrics, family-wise split, pathologies."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from meshsim import CanaryError
from meshsim.canary import ArmData, Decision, judge, watch
from meshsim.canary._judge import _tests_of, minute_series
from meshsim.canary._synthetic import SyntheticSpec, generate
from meshsim.canary.config import parse_judge_config

CFG = {"metrics": [{"name": "latency", "margin": "10%"}, {"name": "errors", "margin": "0.1pp"}]}


def _arm(name: str, series: dict[str, np.ndarray]) -> ArmData:
    rows = []
    for metric, v in series.items():
        for m, x in enumerate(v):
            rows.append((m, metric, float(x), np.nan))
    return ArmData(name, minutes=pd.DataFrame(rows, columns=["minute", "metric", "value", "count"]))


def _gauge_arms(shift: float, n: int = 120, sd: float = 0.02, seed: int = 0) -> tuple[ArmData, ArmData]:
    rng = np.random.default_rng(seed)
    load = 1 + 0.3 * np.sin(np.arange(n) / 20)
    b = 0.1 * load * np.exp(rng.normal(0, sd, n))
    c = 0.1 * load * np.exp(rng.normal(shift, sd, n))
    return _arm("baseline", {"latency_p99_s": b}), _arm("canary", {"latency_p99_s": c})


def test_verdict_boundaries_on_a_clean_signal() -> None:
    cfg = {"metrics": [{"name": "latency_p99_s", "margin": "10%"}]}
    assert judge(*_gauge_arms(0.0), cfg).decision is Decision.PROMOTE
    assert judge(*_gauge_arms(np.log(1.3)), cfg).decision is Decision.ROLLBACK
    # +3 %: confirmed worse but inside the margin -> PROMOTE wins when both bounds agree
    j = judge(*_gauge_arms(np.log(1.03), sd=0.01), cfg)
    assert j.decision is Decision.PROMOTE and j.metrics[0].ci_high < 1.10
    # +10 % exactly, noisy: cannot promote (upper bound above the margin)
    assert judge(*_gauge_arms(np.log(1.10), sd=0.2, n=30), cfg).decision is not Decision.PROMOTE


def test_rollback_above_margin_only() -> None:
    strict = {"metrics": [{"name": "latency_p99_s", "margin": "10%", "rollback_above": "margin"}]}
    j = judge(*_gauge_arms(np.log(1.06), sd=0.01), strict)
    assert j.decision is not Decision.ROLLBACK
    assert judge(*_gauge_arms(np.log(1.4), sd=0.01), strict).decision is Decision.ROLLBACK


def test_direction_decrease_and_either() -> None:
    b, c = _gauge_arms(np.log(0.7))
    assert judge(b, c, {"metrics": [{"name": "latency_p99_s"}]}).decision is Decision.PROMOTE
    assert judge(b, c, {"metrics": [{"name": "latency_p99_s", "direction": "either"}]}).decision is Decision.ROLLBACK
    assert judge(b, c, {"metrics": [{"name": "latency_p99_s", "direction": "decrease"}]}).decision is Decision.ROLLBACK


def test_family_wise_split_by_weight() -> None:
    cfg = parse_judge_config({"metrics": [{"name": "latency", "weight": 1}, {"name": "errors", "weight": 3},
                                          {"name": "cpu", "direction": "either"}],
                              "decision": {"family_wise_error_rate": "2%"}})
    tests = _tests_of(cfg)
    alphas = {t.label: t.alpha for t in tests}
    assert alphas["errors"] == pytest.approx(0.02 * 3 / 5)
    assert alphas["latency.p99"] == pytest.approx(0.02 / 5 / 3)
    assert sum(alphas.values()) == pytest.approx(0.02)


def test_regressions_on_synthetic_runs() -> None:
    for eff, expect in (({"effect": "scale", "effect_size": 1.3}, "latency"),
                        ({"canary_error_rate": 0.01}, "errors"),
                        ({"effect": "spread", "effect_size": 1.4}, "latency")):
        run = generate(SyntheticSpec(minutes=60).with_(**eff), 1)
        j = judge(run.baseline, run.canary, CFG)
        assert j.decision is Decision.ROLLBACK, eff
        assert any(m.decision is Decision.ROLLBACK and m.name.startswith(expect) for m in j.metrics)
        assert j.details["decided_at"] <= 40


def test_watch_matches_judge_and_looks_only_at_the_past() -> None:
    run = generate(SyntheticSpec(minutes=90, effect="scale", effect_size=1.2), 2)
    w = watch(run.baseline, run.canary, CFG)
    j = judge(run.baseline, run.canary, CFG)
    assert w.decision is j.decision is Decision.ROLLBACK
    assert w.decided_at == j.details["decided_at"] == w.looks[-1][0]
    assert [m for m, _ in w.looks] == [float(i) for i in range(1, len(w.looks) + 1)]
    assert all(look.decision is Decision.INCONCLUSIVE for _, look in w.looks[:-1])
    # the look at minute k equals judging the data cut at minute k
    k = int(w.decided_at)
    cut = judge(run.baseline.until(k), run.canary.until(k), CFG)
    assert cut.decision is Decision.ROLLBACK and cut.minutes == k
    assert watch(run.baseline, run.canary, CFG, every_minutes=5).decided_at % 5 == 0


def test_watch_is_fast() -> None:
    run = generate(SyntheticSpec(minutes=180), 3)
    cfg = {**CFG, "decision": {"min_duration": "170m"}}  # no early stop: all 180 looks
    t0 = time.perf_counter()
    w = watch(run.baseline, run.canary, cfg)
    assert time.perf_counter() - t0 < 1.0 and len(w.looks) >= 170


def test_raw_requests_and_minutes_agree() -> None:
    run = generate(SyntheticSpec(minutes=40, effect="scale", effect_size=1.3), 4, raw=True)
    t1 = judge(run.baseline, run.canary, CFG)
    raw_b, raw_c = ArmData("b", requests=run.baseline.requests), ArmData("c", requests=run.canary.requests)
    t2 = judge(raw_b, raw_c, CFG)
    assert t1.decision is t2.decision is Decision.ROLLBACK
    s1 = minute_series(run.baseline, ["latency_p99_s", "errors"], 40)
    s2 = minute_series(raw_b, ["latency_p99_s", "errors"], 40)
    np.testing.assert_allclose(s1["errors"], s2["errors"])
    np.testing.assert_allclose(s1["latency_p99_s"], s2["latency_p99_s"], rtol=1e-9)


def test_histograms_are_read() -> None:
    rng = np.random.default_rng(5)
    les = [0.05, 0.1, 0.2, 0.4, 0.8, np.inf]
    rows_b, rows_c = [], []
    for m in range(60):
        for rows, scale in ((rows_b, 1.0), (rows_c, 1.6)):
            x = 0.1 * scale * rng.lognormal(0, 0.5, 300)
            for le in les:
                rows.append((m, le, float((x <= le).sum())))
    cols = ["minute", "le", "count"]
    b = ArmData("b", histograms=pd.DataFrame(rows_b, columns=cols))
    c = ArmData("c", histograms=pd.DataFrame(rows_c, columns=cols))
    j = judge(b, c, {"metrics": [{"name": "latency", "quantiles": ["p50"]}]})
    assert j.decision is Decision.ROLLBACK


# ---- pathologies: a clear verdict or a clear CanaryError, never a crash, never an automatic pass


def test_empty_arms_are_errors() -> None:
    run = generate(SyntheticSpec(minutes=20), 6)
    with pytest.raises(CanaryError, match="baseline arm has no data"):
        judge(ArmData("b"), run.canary, CFG)
    with pytest.raises(CanaryError, match="baseline arm has no data"):
        judge(ArmData("b", minutes=run.baseline.minutes.iloc[:0]), run.canary, CFG)


def test_unknown_series_is_an_error_with_suggestion() -> None:
    run = generate(SyntheticSpec(minutes=20), 6)
    with pytest.raises(CanaryError, match="neither arm has the series 'latency_mean'.*did you mean 'latency_mean_s'"):
        judge(run.baseline, run.canary, {"metrics": [{"name": "latency_mean", "kind": "gauge"}]})


def test_canary_without_data() -> None:
    run = generate(SyntheticSpec(minutes=30), 7)
    empty_canary = ArmData("c", minutes=run.canary.minutes.assign(value=np.nan, count=np.nan))
    j = judge(run.baseline, empty_canary, CFG)
    assert j.decision is Decision.INCONCLUSIVE  # never a pass
    crit = {"metrics": [{"name": "latency", "critical": True}, "errors"]}
    j = judge(run.baseline, empty_canary, crit)
    assert j.decision is Decision.ROLLBACK and "no canary data" in j.reason


def test_all_zero_errors_is_not_an_instant_pass() -> None:
    run = generate(SyntheticSpec(minutes=180, error_rate=0.0), 8)
    w = watch(run.baseline, run.canary, {"metrics": ["errors"]})
    # zero errors in both arms: PROMOTE only once enough requests bound the rate below the margin
    assert w.decision is Decision.PROMOTE and w.decided_at > 5
    first = w.looks[4][1].metrics[0]
    assert first.ci_high > 0.001


def test_zero_baseline_errors_regression_is_caught() -> None:
    run = generate(SyntheticSpec(minutes=120, error_rate=0.0, canary_error_rate=0.005), 9)
    j = judge(run.baseline, run.canary, {"metrics": ["errors"]})
    assert j.decision is Decision.ROLLBACK and j.metrics[0].e_value >= 100


def test_nan_minutes_and_idle_canary() -> None:
    run = generate(SyntheticSpec(minutes=120, missing_frac=0.2, idle_frac=0.1), 10)
    j = judge(run.baseline, run.canary, CFG)
    assert j.decision is not Decision.ROLLBACK
    assert all(np.isfinite(m.effect) for m in j.metrics)


def test_nonpositive_gauge_with_relative_margin() -> None:
    b = _arm("b", {"temp": np.linspace(-1, 1, 30)})
    c = _arm("c", {"temp": np.linspace(-1, 1, 30)})
    with pytest.raises(CanaryError, match="relative margin"):
        judge(b, c, {"metrics": [{"name": "temp", "margin": "10%"}]})
    assert judge(b, c, {"metrics": [{"name": "temp", "margin": 0.5}]}).decision is Decision.PROMOTE


def test_deterministic() -> None:
    run = generate(SyntheticSpec(minutes=60), 11)
    assert judge(run.baseline, run.canary, CFG) == judge(run.baseline, run.canary, CFG)
    assert generate(SyntheticSpec(minutes=30), 3).canary.minutes.equals(generate(SyntheticSpec(minutes=30), 3).canary.minutes)


def test_kayenta_mode_dispatches() -> None:
    run = generate(SyntheticSpec(minutes=60), 12)
    j = judge(run.baseline, run.canary, {"mode": "kayenta", "metrics": ["latency", "errors"],
                                         "kayenta": {"lifetime": "1h", "interval": "1h"}})
    assert j.mode == "kayenta" and j.score is not None
