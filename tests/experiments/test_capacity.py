"""meshsim.experiments.capacity: SLOs, the knee, the search against a brute-force grid and Erlang C.

The queueing checks run the bundled M/M/4 station (``scenarios/mmc.yaml``: no network legs, no
route timeout, 1 ms exponential service) for 3 s with a 0.5 s warmup, seed 12345 (the scenario's),
replications 0..11 on common random numbers. Each SLO target sits between the exact answers of
two neighbouring candidates with at least 15 % room on both sides, so with the search's 95 %
one-sided bounds the found value must *equal* the queueing-theory answer, not just be near it.
"""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from analysis.queueing import erlang_c, mmc_metrics
from meshsim import ConfigError
from meshsim.cli import app
from meshsim.config import apply_overrides
from meshsim.experiments.capacity import _judge, find_capacity, knee, parse_slo
from meshsim.experiments.sweep import sweep

runner = CliRunner()
MU = 1000.0  # 1 ms mean service


# ---------------------------------------------------------------------------- the oracle
def mmc_response_sf(t: float, c: int, lam: float, mu: float) -> float:
    """P(T > t) for the response time T = W + S of a FCFS M/M/c queue (lam < c mu).

    W is 0 with probability 1 - C and Exp(c mu - lam) with probability C (Erlang C);
    S ~ Exp(mu) is independent of W, and the sum of two exponentials is hypoexponential.
    """
    if lam >= c * mu:
        return 1.0
    C = erlang_c(c, lam / mu)
    theta = c * mu - lam
    if abs(theta - mu) < 1e-9 * mu:
        hypo = (1 + mu * t) * math.exp(-mu * t)
    else:
        hypo = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - C) * math.exp(-mu * t) + C * hypo


def mmc_response_quantile(q: float, c: int, lam: float, mu: float) -> float:
    from scipy.optimize import brentq

    if lam >= c * mu:
        return math.inf
    return brentq(lambda t: mmc_response_sf(t, c, lam, mu) - (1 - q), 0.0, 100.0 / mu)


def erlang_answer(values, ok) -> int:
    return next(v for v in values if ok(v))


def test_oracle_matches_the_closed_form_mean():
    from scipy.integrate import quad

    mean = quad(lambda t: mmc_response_sf(t, 4, 3600.0, MU), 0, 1)[0]
    assert mean == pytest.approx(mmc_metrics(3600.0, MU, 4)["W"], rel=1e-6)


# ---------------------------------------------------------------------------- SLOs and the knee
@pytest.mark.parametrize("text, metric, op, target", [
    ("p99<=200ms", "p99", "<=", 0.2),
    ("p50 < 1.5s", "p50", "<", 1.5),
    ("success>=99.9%", "success", ">=", 0.999),
    ("utilization<=0.8", "utilization", "<=", 0.8),
    ("rps>=1k/s", "rps", ">=", 1000.0),
    ("mean<=2ms", "mean", "<=", 0.002),
])
def test_parse_slo(text, metric, op, target):
    slo = parse_slo(text)
    assert (slo.metric, slo.op) == (metric, op) and slo.target == pytest.approx(target)


@pytest.mark.parametrize("text, says", [
    ("p98<=200ms", "unknown metric 'p98'"),
    ("p99=200ms", "not an objective"),
    ("p99<=fast", "is not a duration"),
    ("success>=120%", "outside [0, 1]"),
])
def test_bad_slo_names_it_and_what_is_allowed(text, says):
    with pytest.raises(ConfigError) as err:
        parse_slo(text)
    assert str(err.value).startswith(f"--slo {text!r}") and says in str(err.value)


def test_knee_is_where_the_curve_bends_most():
    assert knee([1, 2, 3, 4, 5, 6], [100, 40, 15, 10, 9.5, 9.2]) == 2  # falling (replicas)
    assert knee([1, 2, 3, 4, 5, 6], [5, 5.1, 5.3, 6, 10, 20]) == 3     # rising (rate)
    assert knee([1, 2, 3], [1, 2, 3]) is None                          # a line has none
    assert knee([1, 2], [5, 1]) is None


def test_bad_arguments(mmc):
    with pytest.raises(ConfigError, match="--scope 'nope'"):
        find_capacity(mmc, "services.station.workers", "1..4", ["p99<=8ms"], scope="nope")
    with pytest.raises(ConfigError, match="has no version 'v9'"):
        find_capacity(mmc, "services.station.workers", "1..4", ["p99<=8ms"], scope="station/v9")
    with pytest.raises(ConfigError, match="utilization is per service"):
        find_capacity(mmc, "services.station.workers", "1..4", ["utilization<=80%"])
    with pytest.raises(ConfigError, match="values must increase"):
        find_capacity(mmc, "services.station.workers", [4, 2], ["p99<=8ms"])
    with pytest.raises(ConfigError, match=r"--vary services.station.workers=0: "):
        find_capacity(mmc, "services.station.workers", "0..4", ["p99<=8ms"], workers=1, progress=False)
    with pytest.raises(ConfigError, match="no --slo"):
        find_capacity(mmc, "services.station.workers", "1..4", [])


# ---------------------------------------------------------------------------- search vs grid
def test_search_answer_equals_the_brute_force_grid_with_fewer_runs(mmc):
    values, slos, reps = list(range(1, 9)), [parse_slo("p99<=8ms")], 6
    found = find_capacity(mmc, "services.station.workers", values, slos, min_replications=3,
                          max_replications=reps, knee_points=0, workers=2, progress=False)
    grid = sweep(mmc, {"services.station.workers": values}, replications=reps, workers=2, progress=False)
    verdicts = [_judge(s, slos, "end_to_end", 0.95)[0] for s in grid.summaries]
    brute = next(v for v, verdict in zip(values, verdicts, strict=True) if verdict == "pass")
    assert found.answer == brute == 5
    assert found.grid_runs == grid.runs == len(values) * reps
    assert found.search_runs < grid.runs / 2 and found.runs == found.search_runs
    # every value the search judged got the brute force's verdict
    for _, row in found.evaluations.iterrows():
        assert row.verdict == verdicts[values.index(row.value)]


# ---------------------------------------------------------------------------- Erlang C
@pytest.mark.parametrize("rate, slo, expected", [
    (3600.0, "p99<=8ms", 5),    # exact p99: c=4 12.2 ms, c=5 5.25 ms
    (3600.0, "mean<=1.7ms", 5),  # exact mean: c=4 2.97 ms, c=5 1.29 ms
    (2000.0, "mean<=1.25ms", 4),  # exact mean: c=3 1.44 ms, c=4 1.09 ms
])
def test_fewest_workers_matches_erlang_c(mmc, rate, slo, expected):
    scn = apply_overrides(mmc, {"traffic.poisson.rate": rate})
    target = parse_slo(slo).target
    workers = list(range(1, 17))
    if slo.startswith("p99"):
        exact = erlang_answer(workers, lambda c: mmc_response_quantile(0.99, c, rate, MU) <= target)
    else:
        exact = erlang_answer(workers, lambda c: rate < c * MU and mmc_metrics(rate, MU, c)["W"] <= target)
    assert exact == expected
    res = find_capacity(scn, "services.station.workers", workers, [slo], workers=2, progress=False)
    assert res.answer == exact, res.render()
    assert res.search_runs < res.grid_runs / 4
    assert res.utilization["station"] == pytest.approx(rate / (exact * MU), rel=0.05)


def test_largest_rate_matches_erlang_c(mmc):
    scn = apply_overrides(mmc, {"services.station.workers": 4})
    rates = list(range(1400, 3801, 400))
    exact = [r for r in rates if mmc_response_quantile(0.99, 4, r, MU) <= 0.0072][-1]
    assert exact == 3000  # p99 6.0 ms at 3,000/s, 8.6 ms at 3,400/s
    res = find_capacity(scn, "traffic.poisson.rate", [f"{r}/s" for r in rates], ["p99<=7.2ms"], maximize=True,
                        workers=2, progress=False)
    assert res.answer == f"{exact}/s", res.render()
    assert res.summary["end_to_end"]["throughput_rps"] == pytest.approx(exact, rel=0.05)
    # the knee of a rising curve lies below the saturation point and the bend is before rho = 0.95
    assert res.knee_value is not None and res.knee_utilization < 0.95


def test_answer_knee_and_report(mmc):
    res = find_capacity(mmc, "services.station.workers", "1..16", ["p99<=8ms", "success>=99%"], workers=2,
                        progress=False)
    assert res.answer == 5 and res.knee_runs > 0
    assert res.knee_value in range(5, 10)  # past the answer, where the p99 curve flattens out
    text = res.render()
    assert "answer: 5" in text and "full grid (16 values x 12 replications)" in text
    assert "knee of the p99 curve" in text and "utilization at the answer: station" in text
    ev = res.evaluations
    assert set(ev.phase) == {"search", "knee"} and {"p99", "p99_bound", "success", "busiest"} <= set(ev.columns)


def test_none_in_range_and_everything_passes(mmc):
    res = find_capacity(mmc, "services.station.workers", "1..4", ["p99<=8ms"], knee_points=0, workers=1,
                        progress=False)
    assert res.answer is None and any("extend the range" in n for n in res.notes)
    res = find_capacity(mmc, "traffic.poisson.rate", "100/s,200/s", ["p99<=8ms"], maximize=True,
                        knee_points=0, workers=1, progress=False)
    assert res.answer == "200/s" and any("may be higher" in n for n in res.notes)


# ---------------------------------------------------------------------------- CLI
def test_cli_capacity(tmp_path):
    out = tmp_path / "ev.csv"
    args = ["capacity", "scenarios/mmc.yaml", "--slo", "p99<=8ms", "--vary", "services.station.workers=1..8",
            "--set", "duration=3s", "--set", "warmup=0.5s", "--knee-points", "0", "--workers", "2", "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "answer: 5" in res.stdout and out.exists()
    res = runner.invoke(app, [*args[:5], "services.station.workers=1..3", *args[6:]])
    assert res.exit_code == 1 and "none in the range" in res.stdout


@pytest.mark.parametrize("extra, says", [
    (["--slo", "p99<=8 parsecs", "--vary", "services.station.workers=1..4"], "--slo 'p99<=8 parsecs'"),
    (["--slo", "p99<=8ms", "--vary", "services.station.workers=4..1"], "the range is empty"),
    (["--slo", "p99<=8ms", "--vary", "services.station.workers=1..4", "--scope", "db"], "--scope 'db'"),
])
def test_cli_capacity_errors_are_one_line_exit_2(extra, says):
    res = runner.invoke(app, ["capacity", "scenarios/mmc.yaml", *extra])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], res.stderr
