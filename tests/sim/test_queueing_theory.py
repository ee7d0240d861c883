"""The engine against outside truth: exact recursions and queueing closed forms.

Tolerances are statistical: each check builds a 99 % confidence interval from
independent replications (or batch means) and asserts that it covers the
closed form and is narrow enough to mean something. Seeds are fixed, so the
outcome is deterministic; the intervals say how lucky a seed would need to be.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.queueing import (
    batch_means_ci,
    kiefer_wolfowitz_waits,
    md1_metrics,
    mg1_metrics,
    mmc_metrics,
    replication_ci,
)
from meshsim.config import parse_scenario
from meshsim.latency import Exponential
from meshsim.sim import Streams, simulate


def station(*, rate: float, c: int, latency: dict | str, duration: float, warmup: float = 0.0,
            seed: int = 1, record: str = "full", replicas: int = 1, queue=None) -> object:
    svc = {"replicas": replicas, "workers": c, "latency": latency}
    if queue is not None:
        svc["queue"] = queue
    return parse_scenario({
        "name": "station", "seed": seed, "duration": duration, "warmup": warmup, "record": record,
        "network": {"latency": 0},
        "services": {"station": svc},
        "traffic": [{"name": "poisson", "to": "station", "rate": rate}],
    })


def test_fcfs_station_reproduces_kiefer_wolfowitz_waits_exactly():
    """Same arrival and service draws -> the same waits as the KW recursion, to 1e-9."""
    scn = station(rate=3.6, c=4, latency={"type": "exponential", "mean": 1.0}, duration=3000.0, seed=12345)
    att = simulate(scn).attempts.sort_values("start_s")
    arrivals = att["start_s"].to_numpy()
    services = (att["server_s"] - att["wait_s"]).to_numpy()
    inter = np.diff(np.concatenate([[0.0], arrivals]))
    waits = kiefer_wolfowitz_waits(inter, services, 4)
    assert len(att) > 10_000
    np.testing.assert_allclose(att["wait_s"].to_numpy(), waits, rtol=0, atol=1e-9)


def test_engine_uses_the_named_streams_in_order():
    """The two streams are the documented ones: arrivals/<source> and service/<service>/<version>."""
    scn = station(rate=3.6, c=4, latency={"type": "exponential", "mean": 1.0}, duration=500.0, seed=99)
    att = simulate(scn).attempts.sort_values("start_s")
    n = len(att)
    streams = Streams(99)
    gaps = streams.get("arrivals", "poisson").standard_exponential(4096)[:n] / 3.6
    services = Exponential(mean=1.0).sample(streams.get("service", "station", "default"), 4096)[:n]
    waits = kiefer_wolfowitz_waits(gaps, services, 4)
    np.testing.assert_allclose(att["start_s"].to_numpy(), np.cumsum(gaps), rtol=1e-12)
    np.testing.assert_allclose(att["wait_s"].to_numpy(), waits, atol=1e-9)


def _replicated_waits(scn, reps: int) -> tuple[np.ndarray, np.ndarray]:
    waits, utils = [], []
    for r in range(reps):
        res = simulate(scn, replication=r)
        a = res.attempts
        a = a[a["start_s"] >= scn.warmup]
        waits.append(a["wait_s"].mean())
        utils.append(res.summary["services"]["station"]["utilization"])
    return np.array(waits), np.array(utils)


def test_mmc_mean_wait_and_utilization_match_erlang_c():
    """M/M/2 at rho = 0.7: 99 % CI of Wq over 20 replications covers Erlang C and is < 3 % wide (half-width)."""
    lam, mu, c = 1400.0, 1000.0, 2  # times in seconds; service mean 1 ms
    theory = mmc_metrics(lam, mu, c)
    scn = station(rate=lam, c=c, latency={"type": "exponential", "mean": 1 / mu}, duration=60.0, warmup=2.0)
    waits, utils = _replicated_waits(scn, 20)
    ci = replication_ci(waits, confidence=0.99)
    assert ci.covers(theory["Wq"]), (ci, theory["Wq"])
    assert ci.half_width / theory["Wq"] < 0.03
    uci = replication_ci(utils, confidence=0.99)
    assert uci.covers(theory["rho"]), (uci, theory["rho"])


@pytest.mark.parametrize(
    "lam, latency, scv, duration",
    [
        (500.0, {"type": "exponential", "mean": "1ms"}, 1.0, 800.0),  # M/M/1, rho 0.5
        (600.0, {"type": "constant", "value": "1ms"}, 0.0, 500.0),  # M/D/1, rho 0.6
        (600.0, {"type": "uniform", "low": 0, "high": "2ms"}, 1.0 / 3.0, 500.0),  # M/G/1, SCV of U(0, 2m) = 1/3
        (500.0, {"type": "gamma", "shape": 0.5, "scale": "2ms"}, 2.0, 1400.0),  # M/G/1, SCV = 1/shape = 2
    ],
    ids=["M/M/1", "M/D/1", "M/U/1", "M/Gamma/1"],
)
def test_single_server_mean_wait_matches_pollaczek_khinchine(lam, latency, scv, duration):
    """99 % batch-means CI (30 batches, seed 3) covers P-K's Wq and its half-width is < 3 % of it."""
    theory = md1_metrics(lam, 1e-3) if scv == 0 else mg1_metrics(lam, 1e-3, scv)
    scn = station(rate=lam, c=1, latency=latency, duration=duration, warmup=2.0, seed=3)
    a = simulate(scn).attempts
    a = a[a["start_s"] >= 2.0].sort_values("start_s")
    ci = batch_means_ci(a["wait_s"].to_numpy(), n_batches=30, confidence=0.99)
    assert ci.covers(theory["Wq"]), (ci, theory["Wq"])
    assert ci.half_width / theory["Wq"] < 0.03


def test_littles_law_holds_for_every_service_of_a_multi_service_run():
    """L = lambda * W for each service.

    L is measured independently of the rows, from the in-flight count sampled
    once a second (289 samples, about independent since responses take
    milliseconds); it must agree with lambda * W from the attempt rows within
    4 standard errors of the sampled mean.
    """
    scn = parse_scenario({
        "name": "chain", "seed": 5, "duration": 300.0, "warmup": 10.0, "network": {"latency": "1ms"},
        "services": {
            "front": {"replicas": 2, "workers": 8, "latency": "2ms",
                      "script": [{"call": "mid"}, {"parallel": [{"call": "leaf"}, {"call": "leaf"}]}]},
            "mid": {"replicas": 2, "workers": 4, "latency": {"type": "exponential", "mean": "5ms"}},
            "leaf": {"replicas": 3, "workers": 2, "latency": {"p50": "3ms", "p99": "20ms"}},
        },
        "traffic": [{"to": "front", "rate": "300/s"}],
    })
    res = simulate(scn)
    ts = res.timeseries
    a = res.attempts
    for svc in ("front", "mid", "leaf"):
        s = ts[(ts["service"] == svc) & (ts["t_s"] >= 10) & (ts["t_s"] < 299)]
        L = s["in_flight"].mean()
        se = s["in_flight"].std(ddof=1) / np.sqrt(len(s))
        rows = a[(a["service"] == svc) & (a["start_s"] >= 10) & (a["start_s"] < 299)]
        lam = len(rows) / 289.0
        W = rows["server_s"].mean()
        assert abs(L - lam * W) < 4 * se, (svc, L, lam * W, se)
        assert se < 0.1 * L  # the check has teeth: the sampled L is known to 10 %
