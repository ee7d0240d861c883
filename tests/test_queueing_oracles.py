"""The outside-truth oracles (analysis/queueing.py) and the peer engines (analysis/baselines.py).

The oracles are checked against each other and against published numbers
before anything in meshsim is checked against them:

* closed forms: Erlang C worked example, large-c stability, Little's law, P-K limits;
* sample-path recursions: KW(c=1) = Lindley, KW numpy = KW pure Python bit for bit;
* statistics: vectorised KW replications cover Erlang C; Lindley batch means cover P-K;
* peers: Ciw, SimPy, heapq and KW give identical waits on the two streams.
"""

from __future__ import annotations

import doctest
import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `analysis/` is a plain directory of scripts, not an installed package
    sys.path.insert(0, str(ROOT))

q = importlib.import_module("analysis.queueing")
baselines = importlib.import_module("analysis.baselines")


# ---------------------------------------------------------------------------- closed forms
def test_erlang_c_worked_example():
    """simulation.md Part 2: c=4, lam=3.6, mu=1."""
    assert q.erlang_c(4, 3.6) == pytest.approx(0.787753, abs=5e-7)
    m = q.mmc_metrics(3.6, 1.0, 4)
    assert m["rho"] == pytest.approx(0.9)
    assert m["p_wait"] == pytest.approx(0.787753, abs=5e-7)
    assert m["Wq"] == pytest.approx(1.969383, abs=5e-7)
    assert m["Lq"] == pytest.approx(7.0898, abs=5e-5)


@pytest.mark.parametrize("c, rho", [(1, 0.5), (8, 0.7), (50, 0.95), (300, 0.9), (800, 0.99)])
def test_erlang_c_stable_for_many_servers(c, rho):
    """Against an independent log-space form: B(c, a) = Poisson pmf(c; a) / Poisson cdf(c; a)."""
    a = rho * c
    b = math.exp(stats.poisson.logpmf(c, a) - stats.poisson.logcdf(c, a))
    expected = b / (1.0 - rho * (1.0 - b))
    got = q.erlang_c(c, a)
    assert 0.0 < got < 1.0
    assert got == pytest.approx(expected, rel=1e-9)


def test_erlang_c_one_server_is_utilisation():
    for rho in (0.1, 0.5, 0.9, 0.999):
        assert q.erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)


@pytest.mark.parametrize("lam, mu, c", [(3.6, 1.0, 4), (0.5, 2.0, 1), (45.0, 1.0, 50), (7.0, 0.3, 30)])
def test_mmc_littles_law(lam, mu, c):
    m = q.mmc_metrics(lam, mu, c)
    assert m["L"] == pytest.approx(lam * m["W"], rel=1e-12)
    assert m["Lq"] == pytest.approx(lam * m["Wq"], rel=1e-12)
    assert m["W"] == pytest.approx(m["Wq"] + 1.0 / mu, rel=1e-12)
    assert m["L"] - m["Lq"] == pytest.approx(lam / mu, rel=1e-12)  # mean busy servers = offered load
    assert m["rho"] == pytest.approx(lam / (c * mu), rel=1e-12)


def test_mm1_closed_form():
    lam, mu = 0.7, 1.3
    rho = lam / mu
    m = q.mm1_metrics(lam, mu)
    assert m["W"] == pytest.approx(1.0 / (mu - lam), rel=1e-12)
    assert m["Wq"] == pytest.approx(rho / (mu - lam), rel=1e-12)
    assert m["L"] == pytest.approx(rho / (1.0 - rho), rel=1e-12)


def test_pollaczek_khinchine_limits():
    lam, es = 0.8, 1.0
    mm1 = q.mm1_metrics(lam, 1.0 / es)
    exp = q.mg1_metrics(lam, es, 1.0)
    det = q.md1_metrics(lam, es)
    for key in ("rho", "Wq", "W", "Lq", "L"):
        assert exp[key] == pytest.approx(mm1[key], rel=1e-12)
    assert det["Wq"] == pytest.approx(exp["Wq"] / 2.0, rel=1e-12)
    # Erlang-4 service: (1 + 1/4) / 2 of the M/M/1 wait
    assert q.mg1_metrics(lam, es, 0.25)["Wq"] == pytest.approx(exp["Wq"] * 0.625, rel=1e-12)
    for m in (exp, det):
        assert m["L"] == pytest.approx(lam * m["W"], rel=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: q.mmc_metrics(4.0, 1.0, 4),
        lambda: q.mmc_metrics(3.6, 1.0, 0),
        lambda: q.mmc_metrics(-1.0, 1.0, 2),
        lambda: q.erlang_c(2, 2.5),
        lambda: q.mg1_metrics(1.0, 1.0, 0.5),
        lambda: q.mg1_metrics(0.5, 1.0, -0.1),
        lambda: q.batch_means_ci([1.0, 2.0], n_batches=30),
        lambda: q.replication_ci([1.0]),
        lambda: q.replication_ci([1.0, 2.0], confidence=1.0),
        lambda: q.kiefer_wolfowitz_waits([1.0, 2.0], [1.0], 1),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------- recursions
def test_kw_one_server_equals_lindley():
    rng = np.random.default_rng(20240601)
    n = 100_000
    gaps = rng.exponential(1 / 0.9, n)
    svc = rng.exponential(1.0, n)
    kw = q.kiefer_wolfowitz_waits(gaps, svc, 1)
    lindley = q.lindley_waits(gaps, svc)
    assert kw.shape == lindley.shape == (n,)
    np.testing.assert_allclose(kw, lindley, rtol=0, atol=1e-8)
    assert kw.mean() > 1.0  # the path is not trivially empty


def test_kw_with_enough_servers_never_waits():
    rng = np.random.default_rng(1)
    gaps, svc = rng.exponential(1.0, 500), rng.exponential(1.0, 500)
    assert not q.kiefer_wolfowitz_waits(gaps, svc, 500).any()


def test_kw_numpy_replications_equal_pure_python_bit_for_bit():
    rng = np.random.default_rng(7)
    gaps = rng.exponential(1 / 3.6, (5, 3000))
    svc = rng.exponential(1.0, (5, 3000))
    many = q.kiefer_wolfowitz_waits_many(gaps, svc, 4)
    for r in range(5):
        assert np.array_equal(many[r], q.kiefer_wolfowitz_waits(gaps[r], svc[r], 4))


def test_kw_mmc_waits_equal_kw_oracle_on_the_two_streams():
    gaps, svc = baselines.two_streams(20_000, 3.6, 1.0, 12345)
    _, waits = baselines.kw_mmc(20_000, 3.6, 1.0, 4, 12345, return_waits=True)
    assert np.array_equal(waits, q.kiefer_wolfowitz_waits(gaps, svc, 4))


def test_two_stream_anchor_from_simulation_md():
    """Every DES on these streams reported 2.0694367955 (simulation.md Part 2, n=200k, seed 12345)."""
    assert baselines.kw_mmc(200_000, 3.6, 1.0, 4, 12345) == pytest.approx(2.0694367955, abs=1e-10)


# ---------------------------------------------------------------------------- statistics
def test_kw_replications_cover_erlang_c():
    """200 replications x 20k customers of M/M/4 at rho = 0.8; the 99% CI must cover Erlang C."""
    lam, mu, c = 3.2, 1.0, 4
    reps, n, warmup = 200, 20_000, 1_000
    rng = np.random.default_rng(8675309)
    waits = q.kiefer_wolfowitz_waits_many(rng.exponential(1 / lam, (reps, n)), rng.exponential(1 / mu, (reps, n)), c)
    theory = q.mmc_metrics(lam, mu, c)
    ci = q.replication_ci(waits[:, warmup:].mean(axis=1), confidence=0.99)
    assert ci.covers(theory["Wq"]), (ci, theory["Wq"])
    assert ci.half_width < 0.03 * theory["Wq"]  # the check has teeth: +-3% at most
    p_ci = q.replication_ci((waits[:, warmup:] > 0).mean(axis=1), confidence=0.99)
    assert p_ci.covers(theory["p_wait"]), (p_ci, theory["p_wait"])


def test_lindley_batch_means_cover_pollaczek_khinchine():
    """M/D/1 at rho = 0.5 over 2M customers: the batch-means 99% CI covers the P-K wait."""
    lam, s, n = 0.5, 1.0, 2_000_000
    rng = np.random.default_rng(31337)
    waits = q.lindley_waits(rng.exponential(1 / lam, n), np.full(n, s))
    ci = q.batch_means_ci(waits[10_000:], n_batches=30, confidence=0.99)
    wq = q.md1_metrics(lam, s)["Wq"]
    assert ci.covers(wq), (ci, wq)
    assert ci.half_width < 0.02 * wq


def test_replication_ci_matches_scipy():
    x = np.array([2.1, 1.9, 2.4, 2.0, 2.2, 1.7])
    ci = q.replication_ci(x, confidence=0.9)
    low, high = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (ci.mean, ci.low, ci.high) == pytest.approx((x.mean(), low, high), rel=1e-12)
    mean, lo, hi = ci  # unpacks as a tuple
    assert lo < mean < hi


def test_batch_means_drops_the_oldest_remainder():
    x = np.concatenate(([1e6], np.arange(30.0)))  # 31 points, 30 batches of 1: the outlier is dropped
    ci = q.batch_means_ci(x, n_batches=30)
    assert ci.mean == pytest.approx(14.5)


def test_batch_means_coverage_on_iid_data():
    """About 99% of 99% intervals on iid normal data cover the true mean (binomial 3-sigma band)."""
    rng = np.random.default_rng(5)
    trials = 400
    hits = sum(q.batch_means_ci(rng.normal(3.0, 1.0, 600), n_batches=30, confidence=0.99).covers(3.0)
               for _ in range(trials))
    assert hits >= trials * 0.99 - 3 * math.sqrt(trials * 0.99 * 0.01)


# ---------------------------------------------------------------------------- peers
def test_peer_engines_agree_bit_for_bit():
    """simulation.md A1: every FCFS engine on the two streams follows the same sample path."""
    n, lam, mu, c, seed = 5_000, 3.6, 1.0, 4, 12345
    ref_mean, ref = baselines.kw_mmc(n, lam, mu, c, seed, return_waits=True)
    engines = [baselines.heapq_mmc, baselines.simpy_process_mmc]
    try:
        import ciw  # noqa: F401
    except ImportError:  # pragma: no cover - ciw is the optional [bench] extra
        pass
    else:
        engines.append(baselines.ciw_mmc)
    for engine in engines:
        mean, waits = engine(n, lam, mu, c, seed, return_waits=True)
        assert mean == ref_mean, engine.__name__
        assert np.array_equal(waits[: n - baselines.TAIL], ref[: n - baselines.TAIL]), engine.__name__


def test_peer_engines_reject_too_few_customers():
    with pytest.raises(ValueError):
        baselines.heapq_mmc(baselines.TAIL, 3.6, 1.0, 4, 1)


# ---------------------------------------------------------------------------- docstrings
@pytest.mark.parametrize("module", [q, baselines], ids=["queueing", "baselines"])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
