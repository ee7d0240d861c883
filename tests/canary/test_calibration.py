"""A small fixed-seed slice of the canary benchmark (analysis/canary_benchmark.py), so CI sees calibration drift.

Seeds 1000.. for every cell (common random numbers across cells). Tolerances are set from the
binomial spread at these run counts around the full-size results in reports/canary.md:

* A/A, regime R1, 300 req/min per arm, 120 min, latency + errors, 1 % family-wise: at most 2 of 80
  runs ROLLBACK (full size: about 0.5 %; P(>= 3 of 80 | 1 %) < 0.01);
* +20 % latency: every one of 25 runs ROLLBACK, median time <= 15 min (full size: 8 min);
* errors 0.1 % -> 0.5 %: >= 23 of 25 ROLLBACK, median <= 30 min (full size: ~16 min);
* clean canary, latency only (10 % margin): >= 60 % PROMOTE within 60 min of 40 runs (full size: ~80 %).
"""

from __future__ import annotations

import numpy as np

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


def test_clean_canary_promotes() -> None:
    ok = 0
    for i in range(40):
        run = generate(SyntheticSpec(minutes=60), SEED + i)
        d, t, _ = decision_path(run.baseline, run.canary, LAT)
        ok += d is Decision.PROMOTE and t is not None and t <= 60
    assert ok >= 24
