"""A small fixed-seed slice of the canary benchmark (analysis/canary_benchmark.py), so CI sees calibration drift.

Seeds 1000.. for every cell (common random numbers across cells). Tolerances are set from the
binomial spread at these run counts around the full-size results in reports/canary.md:

* A/A, regime R1, 300 req/min per arm, 120 min, latency + errors, 1 % family-wise: at most 2 of 80
  runs ROLLBACK (full size: about 0.5 %; P(>= 3 of 80 | 1 %) < 0.01);
* +20 % latency: every one of 25 runs ROLLBACK, median time <= 15 min (full size: 8 min);
* errors 0.1 % -> 0.5 %: >= 23 of 25 ROLLBACK, median <= 30 min (full size: ~16 min);
* clean canary, latency only (10 % margin): >= 60 % PROMOTE within 60 min of 40 runs (full size: ~80 %);
* separate instances with slow drift (AR(1) rho 0.95, sd 5 %): at most 4 of 60 A/A runs ROLLBACK;
  +10 % latency on a shared fleet: >= 23 of 25 ROLLBACK within 60 min.

Unequal traffic splits (protocol 6.2) and the size-matched operating point (6.1 point 4) of the
benchmark are exercised on a few short runs: the generator's split, the error count test on
observed shares (a test that assumed equal shares would roll back every A/A run with the canary
at 90 % and never see a 5x error rate with the canary at 10 %), and the script end to end. So are
the multi-metric variant (the generator's ``extra_gauges`` leave every other series of a run
unchanged), the coverage measurement (protocol 6.5; the benchmark's replay decides exactly as
``decision_path``) and the ``instance_noise`` row (R2 cells only).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from meshsim.canary import Decision
from meshsim.canary._judge import decision_path
from meshsim.canary._synthetic import SyntheticSpec, generate

CFG = {"metrics": [{"name": "latency", "margin": "10%"}, {"name": "errors", "margin": "0.1pp"}]}
LAT = {"metrics": [{"name": "latency", "margin": "10%"}]}
SEED = 1000


def _runs(spec: SyntheticSpec, n: int, cfg: dict) -> tuple[list[Decision], np.ndarray]:
    decs, at = [], []
    for i in range(n):
        run = generate(spec, SEED + i)
        d, t, _ = decision_path(run.baseline, run.canary, cfg)
        decs.append(d)
        at.append(t if (t is not None and d is Decision.ROLLBACK) else np.inf)
    return decs, np.asarray(at)


def test_aa_false_alarms() -> None:
    decs, _ = _runs(SyntheticSpec(minutes=120), 80, CFG)
    assert sum(d is Decision.ROLLBACK for d in decs) <= 2


def test_latency_regression_power_and_speed() -> None:
    decs, at = _runs(SyntheticSpec(minutes=60, effect="scale", effect_size=1.2), 25, CFG)
    assert all(d is Decision.ROLLBACK for d in decs)
    assert np.median(at) <= 15


def test_error_regression_power_and_speed() -> None:
    decs, at = _runs(SyntheticSpec(minutes=90, canary_error_rate=0.005), 25, CFG)
    assert sum(d is Decision.ROLLBACK for d in decs) >= 23
    assert np.median(at) <= 30


def test_slow_instance_drift_false_alarms() -> None:
    """Separate instances with slow drift (per-arm AR(1) rho 0.95, sd 5 %), 180 min: the drift check
    holds A/A ROLLBACK to at most 4 of 60 runs (full size: about 3-5 %; without the check about
    17 %, i.e. about 10 of 60)."""
    spec = SyntheticSpec(minutes=180, regime="R2", ar_rho=0.95, ar_sd=0.05)
    decs, _ = _runs(spec, 60, CFG)
    assert sum(d is Decision.ROLLBACK for d in decs) <= 4


def test_ten_percent_regression_within_an_hour() -> None:
    """+10 % latency on a shared fleet: at least 23 of 25 runs ROLLBACK within 60 min (full size:
    about 97 %, the drift check's price is time, median about 35 min)."""
    _, at = _runs(SyntheticSpec(minutes=60, effect="scale", effect_size=1.1), 25, CFG)
    assert int(np.sum(at <= 60)) >= 23


def test_clean_canary_promotes() -> None:
    ok = 0
    for i in range(40):
        run = generate(SyntheticSpec(minutes=60), SEED + i)
        d, t, _ = decision_path(run.baseline, run.canary, LAT)
        ok += d is Decision.PROMOTE and t is not None and t <= 60
    assert ok >= 24


# --------------------------------------------------------------------------------------------------
# unequal traffic splits

ERR = {"metrics": [{"name": "errors", "margin": "0.1pp"}]}


def _total(arm, metric: str) -> float:
    m = arm.minutes
    return float(m.loc[m["metric"] == metric, "value"].sum())


def test_equal_split_runs_unchanged() -> None:
    """``canary_share`` left at 0.5 keeps the generator's output (same seed, same run) as before it existed."""
    run = generate(SyntheticSpec(minutes=30, regime="R2"), SEED)
    got = [(_total(a, "requests"), _total(a, "errors"), round(_total(a, "latency_p99_s"), 9))
           for a in (run.baseline, run.canary)]
    assert got == [(11012.0, 8.0, 12.248903751), (10961.0, 7.0, 12.099673495)]


def test_unequal_split_traffic() -> None:
    run = generate(SyntheticSpec(minutes=60, canary_share=0.1), SEED)
    nb, nc = _total(run.baseline, "requests"), _total(run.canary, "requests")
    assert 0.09 < nc / (nb + nc) < 0.11
    assert 500 < nb / 60 / 1.0 < 700  # 540/min times the load factor (mean about 1.1)
    with pytest.raises(ValueError):
        SyntheticSpec(canary_share=1.0)


def test_count_test_uses_observed_shares() -> None:
    decs, _ = _runs(SyntheticSpec(minutes=90, canary_share=0.9), 20, ERR)
    assert sum(d is Decision.ROLLBACK for d in decs) <= 1
    decs, at = _runs(SyntheticSpec(minutes=120, canary_share=0.1, canary_error_rate=0.005), 15, ERR)
    assert sum(d is Decision.ROLLBACK for d in decs) >= 12
    assert np.median(at) <= 90


# --------------------------------------------------------------------------------------------------
# the benchmark script: size-matched thresholds and split cells, end to end on a few runs

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("analysis.canary_benchmark")


def test_size_matched_tuning() -> None:
    cb = _bench()
    tuned = cb.tune(("meshsim", "kayenta", "flagger"), runs=16, iters=2, minutes=60, seed=SEED, jobs=1)
    for j, t in tuned.items():
        k = cb.KNOBS[j]
        assert t.rate <= cb.SIZE_TARGET and t.n == 16
        assert min(k.value(k.lo), k.value(k.hi)) <= t.value <= max(k.value(k.lo), k.value(k.hi))
        # the tuning-run rate falls as the threshold gets more conservative
        rates = [r for _, r in sorted(t.curve, key=lambda vr: k.x_of(vr[0]))]
        assert rates == sorted(rates)
    assert dict(tuned["flagger"].curve)[1.2] > 0.2  # T = 1.2 x the true p99 fails many clean canaries
    assert dict(tuned["meshsim"].curve)[0.001] == 0.0


def test_benchmark_script_subset(tmp_path: Path) -> None:
    cb = _bench()
    out = tmp_path / "canary.md"
    cb.main(["--cells", "A/A R1 300/min,A/A R1 canary 5%,+20% latency R1,errors 0.1%->0.5% R1 canary 10%,"
             "A/A R1 10 metrics,A/A R2 rho=.7 sd=5%,CPU +30% 10 metrics R2",
             "--runs", "3", "--aa-runs", "3", "--tune-runs", "12", "--tune-iters", "2", "--minutes", "60",
             "--jobs", "1", "--seed", str(SEED), "--out", str(out), "--records", str(tmp_path / "r.pkl")])
    text = out.read_text()
    assert "## Size-matched comparison" in text
    for row in ("| A/A R1 canary 5% (570/30 per min) | meshsim | T1 | 3 |",
                "| +20% latency R1 canary 10% (540/60 per min) | regression | kayenta | T1 | 3 |",
                "| errors 0.1%->0.5% R1 canary 10% (540/60 per min) | regression | flagger | T1 | 3 |",
                "| +20% latency R1 | meshsim | 3 |",  # size-matched table
                "| A/A R1 300/min | flagger | 3 |",
                "| A/A R1 10 metrics | meshsim | T1 | 3 |", "| A/A R1 10 metrics | kayenta | T1 | 3 |",
                "| A/A R2 rho=.7 sd=5% | meshsim (instance_noise 5%) | T1 | 3 |",
                "| A/A R2 rho=.7 sd=5% | meshsim (no ROLLBACK-side prior) | T1 | 3 |",
                "| CPU +30% 10 metrics R2 | regression | meshsim (instances: shared) | T1 | 3 |",
                "| +20% latency R1 | regression | meshsim-latency | T2 | 3 |",
                "* **Gauge regressions**",
                "| +20% latency R1 | 1.2 | latency.p99 | 3 |",  # coverage table
                "| A/A ROLLBACK <= 5 % family-wise with 10 metrics",
                "| time-uniform coverage of the reported effect interval >= 95 %"):
        assert row in text, row
    sized = text.split("## Size-matched comparison")[1].split("## Reading the results")[0]
    assert "canary 5%" not in sized  # split cells are not run with the size-matched thresholds
    assert "| A/A R1 300/min | meshsim (instance_noise 5%)" not in text  # R2 cells only
    assert "| CPU +30% 10 metrics R2 | regression | flagger" not in text  # no gauge: not run
    assert "(**R2: truth = version effect only" in text
    # the report can be rewritten from the saved records alone
    again = tmp_path / "again.md"
    cb.main(["--from-records", str(tmp_path / "r.pkl"), "--out", str(again)])
    assert again.read_text().split("## Targets")[1] == text.split("## Targets")[1]


def test_extra_gauges_leave_the_run_unchanged() -> None:
    from meshsim.canary._synthetic import GAUGES

    spec = SyntheticSpec(minutes=30, regime="R2", missing_frac=0.1)
    plain, multi = generate(spec, SEED), generate(spec.with_(extra_gauges=6), SEED)
    names = [g.name for g in GAUGES[:6]]
    for a, b in ((plain.baseline, multi.baseline), (plain.canary, multi.canary)):
        rest = b.minutes[~b.minutes["metric"].isin(names)].reset_index(drop=True)
        assert rest.equals(a.minutes)
        g = b.minutes[b.minutes["metric"].isin(names)]
        assert sorted(g["metric"].unique()) == sorted(names) and len(g) == 6 * 30
        v = g["value"].to_numpy()
        assert np.all(v[np.isfinite(v)] > 0)
        missing = a.minutes.loc[(a.minutes["metric"] == "requests") & a.minutes["value"].isna(), "minute"]
        assert g.loc[g["minute"].isin(missing), "value"].isna().all()  # a missing scrape misses the gauges too
    with pytest.raises(ValueError):
        SyntheticSpec(extra_gauges=len(GAUGES) + 1)



def test_gauge_effect_changes_one_canary_gauge_from_the_onset() -> None:
    spec = SyntheticSpec(minutes=40, regime="R2", extra_gauges=6)
    plain = generate(spec, SEED)
    bad = generate(spec.with_(effect="gauge", effect_size=1.3, effect_gauge="gc_pause_s", onset_min=10), SEED)

    def series(arm: object, name: str) -> np.ndarray:
        m = arm.minutes  # type: ignore[attr-defined]
        return m[m["metric"] == name].sort_values("minute")["value"].to_numpy()

    assert bad.baseline.minutes.equals(plain.baseline.minutes)
    ratio = series(bad.canary, "gc_pause_s") / series(plain.canary, "gc_pause_s")
    assert np.allclose(ratio[:10], 1.0) and np.allclose(ratio[10:], 1.3)
    rest = bad.canary.minutes[bad.canary.minutes["metric"] != "gc_pause_s"].reset_index(drop=True)
    assert rest.equals(plain.canary.minutes[plain.canary.minutes["metric"] != "gc_pause_s"].reset_index(drop=True))
    assert bad.bad_per_minute[:10].sum() == 0 and bad.bad_per_minute[10:].sum() == series(bad.canary, "requests")[10:].sum()
    with pytest.raises(ValueError, match="effect_gauge"):
        SyntheticSpec(effect="gauge", extra_gauges=1, effect_gauge="gc_pause_s")

def test_benchmark_replay_matches_decision_path_and_records_coverage() -> None:
    cb = _bench()
    cell = {c.name: c for c in cb.cells()}["+20% latency R1"]
    truth = cb.coverage_truth(cell)
    assert truth == 1.2
    spec = SyntheticSpec(minutes=60).with_(**cell.spec)
    cfg = cb.parse_judge_config(cb._meshsim_cfg(spec=spec))
    for i in range(3):
        run = generate(spec, SEED + i)
        d, t, _ = decision_path(run.baseline, run.canary, cfg)
        d2, t2, info = cb.meshsim_path(run.baseline, run.canary, cfg, truth)
        assert (d, t) == (d2, t2) and d is Decision.ROLLBACK
        assert info.rollback_tests and set(info.cover) == {"latency.p50", "latency.p90", "latency.p99"}
        # a ratio far from the truth is outside the interval at some look
        _, _, far = cb.meshsim_path(run.baseline, run.canary, cfg, 3.0)
        assert not any(v[0] for v in far.cover.values())


def test_drift_frontier_study(tmp_path: Path) -> None:
    """analysis/drift_frontier.py end to end on a few short runs: its baseline variant is the judge itself."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    fr = importlib.import_module("analysis.drift_frontier")
    from meshsim.canary import _judge as J
    from meshsim.canary import sequential as Sq

    saved = J._DRIFT_GATE, Sq.DRIFT_PRIOR_SD, Sq.DRIFT_PRIOR_P
    spec_kw = {c.name: c.spec for c in _bench().cells()}["A/A R2 rho=.95 sd=10%"]
    name, out = fr._run_one(("A/A R2 rho=.95 sd=10%", spec_kw, SEED, 60, 0.003))
    assert (J._DRIFT_GATE, Sq.DRIFT_PRIOR_SD, Sq.DRIFT_PRIOR_P) == saved  # every swap undone
    assert len(out) == len(fr.VARIANTS)
    spec = SyntheticSpec(minutes=60).with_(**spec_kw)
    run = generate(spec, SEED)
    d, at, _ = decision_path(run.baseline, run.canary, _bench().parse_judge_config(_bench()._meshsim_cfg(spec=spec)))
    assert out[0] == ({"INCONCLUSIVE": 0, "PROMOTE": 1, "ROLLBACK": 2}[d.value], at)
    # a stricter Bayes-factor threshold can only hold back more
    bf = [(v.log_bf, o) for v, o in zip(fr.VARIANTS, out, strict=True) if v.bf == "grid"]
    rolled = [code == 2 for _, (code, _) in sorted(bf)]
    assert rolled == sorted(rolled, reverse=True)
    md = tmp_path / "f.md"
    fr.main(["--runs", "1", "--aa-runs", "2", "--minutes", "40", "--jobs", "1", "--seed", str(SEED),
             "--out", str(md), "--records", str(tmp_path / "f.pkl")])
    text = md.read_text()
    for v in fr.VARIANTS:
        assert f"| {v.name} |" in text
    again = tmp_path / "g.md"
    fr.main(["--from-records", str(tmp_path / "f.pkl"), "--out", str(again)])
    assert again.read_text() == text
