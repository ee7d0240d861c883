"""The Kayenta-compatible judge against Kayenta's own test vectors and the user reports of canary.md §1.7.

``data/kayenta_suites.json`` holds the inputs and expected outcomes of Kayenta's
``ClassifierSuite`` and ``MannWhitneySuite`` (kayenta commit a69573be).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meshsim import CanaryError
from meshsim.canary import ArmData, Decision
from meshsim.canary.config import parse_judge_config
from meshsim.canary.kayenta import (
    Label,
    ScoredMetric,
    brent_root,
    classify,
    classify_score,
    cles,
    iqr_outliers,
    judge_kayenta,
    mann_whitney,
    mean_ratio,
    round_half_up,
    score,
    watch_kayenta,
    wilcoxon_diff,
)

SUITES = json.loads((Path(__file__).parent / "data" / "kayenta_suites.json").read_text())
E = 1e-6


def _mw_case(name: str) -> dict:
    return next(c for c in SUITES["mann_whitney"] if c["test"] == name)


# --------------------------------------------------------------------------------------- ClassifierSuite


@pytest.mark.parametrize("case", SUITES["classifier"], ids=[c["test"] for c in SUITES["classifier"]])
def test_classifier_suite(case):
    measure = case.get("effectSizeMeasure", "meanRatio")
    dec, inc = case.get("effectSizeThresholds", [1.0, 1.0])
    cdec, cinc = case.get("criticalThresholds", [1.0, 1.0])
    result = classify(case["control"], case["experiment"], direction=case["direction"],
                      nan_strategy=case["nanStrategy"], critical=case["critical"], tolerance=case["tolerance"],
                      conf_level=case["confLevel"], allowed_decrease=dec, allowed_increase=inc,
                      critical_decrease=cdec, critical_increase=cinc, effect_size_measure=measure)
    if case["expected"] is not None:
        assert result.label.value == case["expected"]
    if case["expected_critical"] is not None:
        assert result.critical is case["expected_critical"]
    if case["deviation_nan"]:
        assert math.isnan(result.deviation)
    if case["deviation"] is not None:
        assert result.deviation == case["deviation"]
    if case["reason_nonempty"]:
        assert result.reason


def test_classifier_suite_is_complete():
    assert len(SUITES["classifier"]) == 34  # every Mann-Whitney case of ClassifierSuite


# --------------------------------------------------------------------------------------- MannWhitneySuite


def test_wilcoxon_diff_values():
    c = _mw_case("Wilcoxon Diff Function")
    x, y = np.array(c["x"]), np.array(c["y"])
    assert wilcoxon_diff(0.0, 0.0, x, y) == pytest.approx(-1.229416, abs=E)
    assert wilcoxon_diff(5.0, 0.0, x, y) == pytest.approx(-35.80606, abs=E)


def test_small_interval_and_estimate():
    mw = mann_whitney([10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0])
    assert (mw.low, mw.high, mw.estimate) == pytest.approx((6.0, 39.0, 22.5), abs=E)


@pytest.mark.parametrize("name, expected", [
    ("Mann-Whitney Confidence Interval & Estimate: Problem Case",
     (-1.4808028936386108e-5, 1.808255910873413e-5, 1.808255910873413e-5)),
    ("Mann-Whitney Confidence Interval & Estimate: Tie out with R Version",
     (-0.500002521696696, -3.486287505871302e-5, -0.4999393907180323)),
    ("Mann-Whitney Confidence Interval & Estimate: Tie out with R Version (Large)",
     (-0.4999173250549087, -6.912685789769486e-6, -3.45044082729315e-5)),
])
def test_interval_ties_out_with_kayenta_and_r(name, expected):
    c = _mw_case(name)
    mw = mann_whitney(c["x"], c["y"], c["conf_level"])
    assert mw.low == pytest.approx(expected[0], abs=E)
    assert mw.high == pytest.approx(expected[1], abs=E)
    tol = E if "Problem" in name else 1e-4  # Kayenta's own tolerance for the R estimates
    assert mw.estimate == pytest.approx(expected[2], abs=tol)


def test_intermediate_values():
    c = _mw_case("Mann-Whitney Intermediate Values / Variables")
    r = c["r_values"]
    x, y = np.array(c["x"]), np.array(c["y"])
    mu_min, mu_max = x.min() - y.max(), x.max() - y.min()
    assert (mu_min, mu_max) == pytest.approx((r["rMumin"], r["rMumax"]), abs=E)
    zq = 1.959963984540054
    assert wilcoxon_diff(mu_min, zq, x, y) == pytest.approx(r["rFlower1"], abs=E)
    assert wilcoxon_diff(mu_max, zq, x, y) == pytest.approx(r["rFupper1"], abs=E)
    assert wilcoxon_diff(mu_min, -zq, x, y) == pytest.approx(r["rFlower2"], abs=E)
    assert wilcoxon_diff(mu_max, -zq, x, y) == pytest.approx(r["rFupper2"], abs=E)
    # the root finder used directly, without the bracket checks (the suite's last three asserts)
    roots = [brent_root(lambda m, q=q: wilcoxon_diff(m, q, x, y), mu_min, mu_max,
                        wilcoxon_diff(mu_min, q, x, y), wilcoxon_diff(mu_max, q, x, y)) for q in (zq, -zq, 0.0)]
    assert roots == pytest.approx([r["rCil"], r["rCiu"], r["rEst"]], abs=E)


def test_brent_root_finds_a_simple_root():
    assert brent_root(lambda v: 2.0 - v, 0.0, 5.0, 2.0, -3.0) == pytest.approx(2.0, abs=1e-4)
    assert brent_root(lambda v: v**3 - 8.0, 0.0, 5.0, -8.0, 117.0) == pytest.approx(2.0, abs=1e-4)


# --------------------------------------------------------------------------------------- user reports (canary.md §1.7)


def test_spinnaker_6278_seven_hundreds_pass_eight_fail():
    r = classify([1.0] * 10, [100.0] * 7 + [1.0] * 3)
    assert r.label is Label.PASS
    assert r.interval.low == pytest.approx(0.0, abs=1e-3) and r.interval.high == pytest.approx(99.0)
    assert r.interval.estimate == pytest.approx(99.0, abs=1e-3)
    assert classify([1.0] * 10, [100.0] * 8 + [1.0] * 2).label is Label.HIGH


def test_kayenta_426_sparse_errors_against_zeros_pass():
    assert classify([0.0] * 6, [0.0, 1.0, 2.0, 1.0, 0.0, 0.0]).label is Label.PASS


def test_spinnaker_5622_half_the_canary_minutes_with_errors_pass():
    canary = [0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 3.0, 0.0, 1.0]
    assert classify([0.0] * 10, canary, nan_strategy="replace").label is Label.PASS


# --------------------------------------------------------------------------------------- pieces


def test_effect_sizes():
    assert mean_ratio([1.0, 3.0], [4.0, 4.0]) == 2.0
    assert math.isnan(mean_ratio([0.0, 0.0], [1.0]))
    assert cles([1.0, 2.0], [3.0, 4.0]) == 1.0 and cles([3.0, 4.0], [1.0, 2.0]) == 0.0


@pytest.mark.parametrize("data, truth", [
    ([21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0], [False, False, False, False, True, False, False, False]),
    ([1.0, 1.0, 1.0, 5.0, -1.0, -1.0, -1.0, -5.0], [False, False, False, True, False, False, False, True]),
    ([], []),
])
def test_iqr_detector_suite(data, truth):
    assert iqr_outliers(data, factor=1.5, reduce_sensitivity=False).tolist() == truth


def test_iqr_detector_nist_case():
    data = [30, 171, 184, 201, 212, 250, 265, 270, 272, 289, 305, 306, 322, 322, 336, 346, 351, 370, 390, 404,
            409, 411, 436, 437, 439, 441, 444, 448, 451, 453, 470, 480, 482, 487, 494, 495, 499, 503, 514, 521,
            522, 527, 548, 550, 559, 560, 570, 572, 574, 578, 585, 592, 592, 607, 616, 618, 621, 629, 637, 638,
            640, 656, 668, 707, 709, 719, 737, 739, 752, 758, 766, 792, 792, 794, 802, 818, 830, 832, 843, 858,
            860, 869, 918, 925, 953, 991, 1000, 1005, 1068, 1441]
    assert iqr_outliers(data, factor=1.5, reduce_sensitivity=False).tolist() == [False] * 89 + [True]


def _scored(label, group="test-group", critical=False):
    return ScoredMetric("m", label, (group,), critical=critical, reason=f"m was {label.value}")


@pytest.mark.parametrize("metrics, weights, expected", [
    ([_scored(Label.PASS)], {}, 100.0),
    ([_scored(Label.HIGH)], {}, 0.0),
    ([_scored(Label.NODATA)], {}, 0.0),
    ([_scored(Label.PASS, "p"), _scored(Label.PASS, "p"), _scored(Label.NODATA, "n")], {}, 100.0),
    ([_scored(Label.PASS), _scored(Label.HIGH)], {}, 50.0),
    ([_scored(Label.PASS), _scored(Label.HIGH), _scored(Label.LOW)], {}, 33.33),
    ([_scored(Label.PASS, "group-1"), _scored(Label.PASS, "group-1"), _scored(Label.HIGH, "group-2")],
     {"group-1": 75.0, "group-2": 25.0}, 75.0),
    ([_scored(Label.PASS, "group-1"), _scored(Label.HIGH, "group-1"), _scored(Label.HIGH, "group-2")],
     {"group-1": 50.0, "group-2": 50.0}, 25.0),
    ([_scored(Label.PASS, "group-1"), _scored(Label.NODATA, "group-1"), _scored(Label.HIGH, "group-2")],
     {"group-1": 50.0, "group-2": 50.0}, 50.0),
    ([_scored(Label.PASS), _scored(Label.HIGH, critical=True)], {}, 0.0),
    ([_scored(Label.LOW), _scored(Label.PASS, critical=True)], {}, 50.0),
    ([_scored(Label.PASS, "a"), _scored(Label.HIGH, "b"), _scored(Label.PASS, "c")], {"a": 50.0}, 75.0),
])
def test_scorer_suite(metrics, weights, expected):
    assert score(metrics, weights).score == expected


def test_score_overrides_and_classification():
    crit = score([_scored(Label.PASS), _scored(Label.NODATA, critical=True)])
    assert crit.score == 0.0 and crit.reason == "Canary Failed: m was Nodata"
    nodata = score([_scored(Label.PASS), _scored(Label.NODATA)])
    assert nodata.score == 0.0 and "50% or more metrics returned NODATA" in nodata.reason
    muted = score([_scored(Label.PASS), ScoredMetric("x", Label.HIGH, muted=True)])
    assert muted.score == 100.0
    assert [classify_score(s, 95, 75) for s in (95.0, 94.99, 75.0, 74.99)] == ["Pass", "Marginal", "Marginal", "Fail"]
    assert round_half_up(2 / 3 * 100) == 66.67 and round_half_up(0.005) == 0.01


# --------------------------------------------------------------------------------------- the judge


def _arm(name: str, series: dict[str, list[float]]) -> ArmData:
    frames = [pd.DataFrame({"minute": np.arange(len(v)), "metric": k, "value": np.asarray(v, float),
                            "count": np.nan}) for k, v in series.items()]
    return ArmData(name, minutes=pd.concat(frames, ignore_index=True))


def _latency_arms(minutes: int, scale: float, seed: int = 0, error_scale: float = 1.0):
    rng = np.random.default_rng(seed)
    load = 1.0 + 0.2 * np.sin(np.arange(minutes) / 10)

    def arm(name, s, es):
        p99 = 0.2 * load * s * np.exp(rng.normal(0, 0.05, minutes))
        req = np.full(minutes, 1000.0)
        err = rng.poisson(2.0 * es, minutes).astype(float)
        return _arm(name, {"latency_p99_s": p99, "requests": req, "errors": err})

    return arm("baseline", 1.0, 1.0), arm("canary", scale, error_scale)


CFG = {"mode": "kayenta", "metrics": [{"name": "latency", "quantiles": ["p99"]}, "errors"],
       "kayenta": {"lifetime": "180m", "interval": "60m"}}


def test_regression_is_rolled_back_at_the_first_interval():
    base, can = _latency_arms(180, 1.3)
    w = watch_kayenta(base, can, CFG)
    assert w.decision is Decision.ROLLBACK and w.decided_at == 60.0 and len(w.looks) == 1
    j = judge_kayenta(base, can, CFG)
    assert j.mode == "kayenta" and j.decision is Decision.ROLLBACK and j.exit_code == 1
    assert j.score == 50.0 and j.details["classification"] == "Fail" and j.details["window"] == [0, 60]
    lat = next(m for m in j.metrics if m.name == "latency.p99")
    assert lat.details["classification"] == "High" and lat.decision is Decision.ROLLBACK
    assert lat.ci_low > lat.margin > 0 and lat.effect_kind == "difference" and lat.test == "mann-whitney"
    assert lat.details["ratio"] == pytest.approx(1.3, rel=0.05) and lat.n_baseline == lat.n_canary == 60


def test_clean_canary_is_promoted_after_the_last_interval():
    base, can = _latency_arms(180, 1.0, seed=0)
    w = watch_kayenta(base, can, CFG)
    assert [m for m, _ in w.looks] == [60.0, 120.0, 180.0]
    assert w.decision is Decision.PROMOTE and w.decided_at == 180.0
    assert w.final.score == 100.0 and w.final.details["window"] == [0, 180]  # cumulative windows
    assert [j.decision for _, j in w.looks[:2]] == [Decision.INCONCLUSIVE] * 2


def test_marginal_final_score_is_inconclusive_and_lookback_slides():
    base, can = _latency_arms(120, 1.3, seed=2)
    cfg = {**CFG, "metrics": [{"name": "latency", "quantiles": ["p99"]}, "errors", "requests", "cpu"],
           "kayenta": {"lifetime": "120m", "interval": "60m", "pass": 95, "marginal": 50, "lookback": "30m"}}
    base = _arm("baseline", {**{k: per for k, per in _series(base).items()}, "cpu": [1.0] * 120})
    can = _arm("canary", {**{k: per for k, per in _series(can).items()}, "cpu": [1.0] * 120})
    w = watch_kayenta(base, can, cfg)
    assert w.final.score == 75.0 and w.decision is Decision.INCONCLUSIVE and w.decided_at is None
    assert w.final.details["window"] == [90, 120] and w.final.details["spinnaker_stage"] == "failed"


def _series(arm: ArmData) -> dict[str, np.ndarray]:
    return {m: g["value"].to_numpy() for m, g in arm.minutes.groupby("metric", sort=False)}


def test_short_data_is_inconclusive_with_a_partial_judgement():
    base, can = _latency_arms(30, 1.3)
    j = judge_kayenta(base, can, CFG)
    assert j.decision is Decision.INCONCLUSIVE and j.details["partial"]
    assert "no complete Kayenta interval" in j.reason and j.score == 50.0
    base, can = _latency_arms(100, 1.0)
    j = judge_kayenta(base, can, CFG)
    assert j.decision is Decision.INCONCLUSIVE and "lifetime not reached: 1 of 3" in j.reason


def test_error_rate_defaults_to_nan_replace_and_critical_nodata_fails():
    base = _arm("baseline", {"requests": [0.0] * 60, "errors": [0.0] * 60, "latency_p99_s": [np.nan] * 60})
    can = _arm("canary", {"requests": [0.0] * 60, "errors": [0.0] * 60, "latency_p99_s": [np.nan] * 60})
    cfg = {"mode": "kayenta", "metrics": [{"name": "latency", "quantiles": ["p99"], "critical": True}, "errors"],
           "kayenta": {"lifetime": "60m", "interval": "60m"}}
    j = judge_kayenta(base, can, cfg)
    by = {m.name: m for m in j.metrics}
    assert by["errors"].details["nan_strategy"] == "replace" and by["errors"].details["classification"] == "Pass"
    assert by["latency.p99"].details["classification"] == "Nodata" and by["latency.p99"].critical
    assert j.score == 0.0 and j.decision is Decision.ROLLBACK and "Missing data for latency.p99" in j.reason


def test_constant_arms_get_seeded_noise():
    base = _arm("baseline", {"cpu": [1.0] * 60})
    can = _arm("canary", {"cpu": [2.0] * 60})
    cfg = {"mode": "kayenta", "metrics": ["cpu"], "kayenta": {"lifetime": "60m", "interval": "60m", "seed": 7}}
    one, two = judge_kayenta(base, can, cfg), judge_kayenta(base, can, cfg)
    assert one == two and one.metrics[0].details["noise_added"]
    assert one.decision is Decision.ROLLBACK


def test_muted_metrics_group_weights_and_metric_weights():
    base, can = _latency_arms(60, 1.3)
    cfg = {"mode": "kayenta", "kayenta": {"lifetime": "60m", "interval": "60m", "marginal": 10, "pass": 60,
                                          "group_weights": {"latency": 25}},
           "metrics": [{"name": "latency", "quantiles": ["p99"], "kayenta": {"group": "latency"}},
                       {"name": "errors", "kayenta": {"group": "errors"}}]}
    assert judge_kayenta(base, can, cfg).score == 75.0  # latency High (weight 25), errors Pass (the other 75)
    cfg["metrics"][0]["kayenta"]["muted"] = True
    assert judge_kayenta(base, can, cfg).score == 75.0  # as in Kayenta, a muted group's weight is not shared out
    cfg2 = {"mode": "kayenta", "kayenta": {"lifetime": "60m", "interval": "60m"},
            "metrics": [{"name": "latency", "quantiles": ["p99"], "weight": 3}, "errors"]}
    assert judge_kayenta(base, can, cfg2).score == 25.0  # weights count inside the group: 1 of 4 passes


def test_unknown_series_is_a_clear_error():
    base, can = _latency_arms(60, 1.0)
    with pytest.raises(CanaryError, match=r"metric 'cpu': series 'cpu' is not in the input; available: error_rate, errors, "):
        judge_kayenta(base, can, {"mode": "kayenta", "metrics": ["cpu"]})


def test_config_object_is_accepted():
    base, can = _latency_arms(60, 1.0)
    cfg = parse_judge_config({**CFG, "kayenta": {"lifetime": "60m"}})
    assert judge_kayenta(base, can, cfg).decision is Decision.PROMOTE


def test_spinnaker_canary_config_is_translated():
    from meshsim.canary.kayenta import from_spinnaker

    doc = {"name": "my-canary", "judge": {"name": "NetflixACAJudge-v1.0"},
           "metrics": [{"name": "latency_p99_s", "groups": ["latency"], "analysisConfigurations": {"canary": {
               "direction": "increase", "nanStrategy": "none", "outliers": {"strategy": "remove", "outlierFactor": 2},
               "critical": True}}},
               {"name": "errors", "groups": ["errors"], "analysisConfigurations": {"canary": {
                   "nanStrategy": "replace", "effectSize": {"allowedIncrease": 1.2}}}}],
           "classifier": {"groupWeights": {"latency": 70, "errors": 30}},
           "scoreThresholds": {"pass": 90, "marginal": 60}, "lifetime": "60m", "interval": "60m"}
    cfg = parse_judge_config(from_spinnaker(doc))
    lat, err = cfg.metrics
    assert (lat.kind, lat.series, lat.direction, lat.critical) == ("gauge", "latency_p99_s", "increase", True)
    assert lat.kayenta.nan_strategy == "remove" and lat.kayenta.outlier_strategy == "remove"
    assert lat.kayenta.outlier_factor == 2 and lat.kayenta.group == "latency"
    assert err.direction == "either" and err.kayenta.nan_strategy == "replace"
    assert err.kayenta.allowed_increase_value == 1.2
    assert cfg.kayenta.group_weights == {"latency": 70.0, "errors": 30.0}
    assert (cfg.kayenta.pass_threshold, cfg.kayenta.marginal_threshold, cfg.kayenta.lifetime_s) == (90, 60, 3600)
    base, can = _latency_arms(60, 1.3)
    j = judge_kayenta(base, can, cfg)
    assert j.decision is Decision.ROLLBACK and j.score == 0.0 and "(Critical)" in j.reason
