"""Chaos faults in full simulations: each kind with stated tolerances and fixed seeds.

Most checks compare a run with a fault against the same scenario without it: the
arrival and service-time streams do not depend on the chaos block (common random
numbers), so many differences are exact rather than statistical.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.queueing import mmc_metrics
from meshsim.config import apply_overrides, load_scenario, parse_scenario
from meshsim.sim import simulate
from meshsim.sim._engine import Simulation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def scenario(services: dict, traffic: list | None = None, **top) -> object:
    data = {"name": "chaos", "seed": 5, "duration": 20.0, "network": {"latency": "0.5ms"}, "services": services,
            "traffic": traffic or [{"name": "users", "to": next(iter(services)), "rate": "100/s"}]}
    data.update(top)
    return parse_scenario(data)


def _run(scn) -> tuple[Simulation, object]:
    sim = Simulation(scn)
    return sim, sim.run()


def _assert_drained(sim: Simulation) -> None:
    """After the drain: no worker busy, nothing in flight or queued, nothing tracked."""
    for v in sim.versions:
        assert v.busy == 0 and v.in_flight == 0, (v.service.name, v.name, v.busy, v.in_flight)
        for h in v.hosts:
            assert h.busy == 0 and not h.queue and not h.live


def _assert_consistent(sim: Simulation) -> None:
    """Busy workers and requests in flight add up, host by host (work may outlast the drain)."""
    for v in sim.versions:
        assert v.busy == sum(h.busy for h in v.hosts) and v.in_flight >= 0
        for h in v.hosts:
            assert 0 <= h.busy <= h.workers
            if h.live is not None:  # a crash target: it knows the attempts it holds
                assert all(a in h.live for a in h.queue)
                assert h.busy == sum(1 for a in h.live if a.holding)
        if all(h.live is not None for h in v.hosts):
            assert v.in_flight == sum(len(h.live) for h in v.hosts)


def _front_back(back: dict | None = None, mesh: dict | None = None, chaos: list | None = None, **top):
    services = {"front": {"latency": "1ms", "workers": 200, "script": [{"call": "back"}]},
                "back": {"latency": {"type": "exponential", "mean": "40ms"}, "workers": 4, "replicas": 3,
                         **(back or {})}}
    return scenario(services, traffic=[{"name": "users", "to": "front", "rate": "200/s"}], mesh=mesh or {},
                    chaos=chaos or [], **top)


RETRY_RESET = {"retries": {"retry_on": "reset,connect-failure", "num_retries": 2,
                           "retry_host_predicate": ["previous_hosts"]},
               "circuit_breakers": {"max_retries": 1000}}


# --------------------------------------------------------------------------- crash


def test_crash_loses_in_flight_work_and_retry_on_reset_finishes_it_on_another_replica():
    crash = {"kind": "crash", "target": {"service": "back", "replica": 0}, "start": "10.5s", "duration": "4s"}
    sim, res = _run(_front_back(mesh={"back": RETRY_RESET}, chaos=[crash]))
    att = res.attempts
    back = att[att["service"] == "back"]
    lost = back[back["flags"] == "UC"]
    # back at ~67 % utilization: a few requests are at replica 0 (queued or working) when it crashes,
    # and more are on their way there; each caller hears the reset one network leg later
    assert len(lost) >= res.faults.loc[0, "requests"] > 0
    assert (lost["replica"] == 0).all() and (lost["status"] == 503).all()
    assert lost["end_s"].between(10.5 + 0.0005 - 1e-9, 10.5 + 0.0015 + 1e-9).all()
    assert (lost["end_s"] == 10.5005).sum() >= res.faults.loc[0, "requests"]
    # each lost request was retried on another replica and succeeded
    for rid in lost["request_id"]:
        tries = back[back["request_id"] == rid].sort_values("attempt")
        assert tries["status"].iloc[-1] == 200 and tries["replica"].iloc[-1] != 0
    refused = back[back["flags"] == "UF"]
    assert len(refused) > 0 and (refused["replica"] == 0).all()
    # refused: a reset one round trip after the connection was opened, never later than one round trip
    assert (refused["latency_s"] <= 0.001 + 1e-9).all()
    assert refused["start_s"].between(10.5, 14.5).all()
    assert (res.requests["status"] == 200).all()
    # the replica is back after the restart, with an empty queue
    after = back[(back["replica"] == 0) & (back["start_s"] >= 14.6)]
    assert len(after) > 0 and (after["status"] == 200).all()
    assert after["wait_s"].iloc[0] == 0.0
    s = res.summary["stats"]["back|default"]
    assert s["upstream_rq_rx_reset"] == len(lost) and s["upstream_cx_connect_fail"] >= len(refused) > 0
    # the timeseries: 2 replicas up while it is down, 2.5 in the second it crashed
    ts = res.timeseries[res.timeseries["service"] == "back"].set_index("t_s")["up"]
    assert ts[9] == 3.0 and ts[10] == pytest.approx(2.5) and ts[12] == 2.0 and ts[14] == pytest.approx(2.5)
    assert ts[15] == 3.0
    _assert_drained(sim)


def test_crash_without_retries_answers_503_uc_to_the_caller():
    crash = {"kind": "crash", "target": {"service": "back", "replica": 0}, "start": "10.5s", "duration": "4s"}
    _, res = _run(_front_back(mesh={"back": {"circuit_breakers": {"max_requests": 1000}}}, chaos=[crash]))
    back = res.attempts[res.attempts["service"] == "back"]
    lost = back[back["flags"] == "UC"]
    refused = back[back["flags"] == "UF"]
    assert len(lost) > 0 and len(refused) > 0
    failed = res.requests[res.requests["status"] != 200]
    assert set(failed["request_id"]) == set(lost["request_id"]) | set(refused["request_id"])
    assert (failed["status"] == 500).all()  # front's required call failed


@pytest.mark.parametrize("concurrency", ["blocking", "async"])
def test_crash_on_the_plain_path_answers_uc_for_lost_work_and_uf_while_down(concurrency):
    """No mesh policies: the lost work is answered 503 UC one leg later, a request to the down replica
    503 UF after one round trip; a lost request's own calls finish but their answers are dropped."""
    services = {"front": {"latency": "1ms", "workers": 200, "script": [{"call": "back"}]},
                "back": {"latency": {"type": "exponential", "mean": "20ms"}, "workers": 4, "replicas": 2,
                         "concurrency": concurrency, "script": ["work", {"call": "db"}]},
                "db": {"latency": {"type": "exponential", "mean": "20ms"}, "workers": 8}}
    crash = {"kind": "crash", "target": {"service": "back", "replica": 1}, "start": "5.25s", "duration": "2s"}
    sim, res = _run(scenario(services, traffic=[{"to": "front", "rate": "150/s"}], chaos=[crash], duration=10.0))
    back = res.attempts[res.attempts["service"] == "back"]
    lost, refused = back[back["flags"] == "UC"], back[back["flags"] == "UF"]
    assert len(lost) == res.faults.loc[0, "requests"] > 0 and (lost["status"] == 503).all()
    np.testing.assert_allclose(lost["end_s"], 5.25 + 0.0005, atol=1e-9)
    assert len(refused) > 0 and (refused["replica"] == 1).all()
    np.testing.assert_allclose(refused["latency_s"], 0.001, atol=1e-9)
    # every request ends once; the failed ones are exactly the lost and refused ones
    req = res.requests
    assert req["request_id"].is_unique and (req["status"] != 0).all()
    bad = set(req.loc[req["status"] != 200, "request_id"])
    assert bad == set(lost["request_id"]) | set(refused["request_id"])
    # lost requests that were waiting for db: db answered after the crash, and nobody used the answer
    db = res.attempts[(res.attempts["service"] == "db") & res.attempts["request_id"].isin(lost["request_id"])]
    assert len(db) > 0 and (db["status"] == 200).all() and (db["end_s"] > 5.25).all()
    _assert_drained(sim)


def test_a_crash_of_a_busy_replica_frees_its_workers_and_empties_its_queue():
    """Overloaded replica (queue growing): at the crash its workers and queue go, the version's busy
    and in-flight accounting drops with them, and after the restart it starts from an empty queue."""
    services = {"api": {"latency": {"type": "exponential", "mean": "50ms"}, "workers": 2, "replicas": 1}}
    crash = {"kind": "crash", "target": "api", "start": "10s", "duration": "1s"}
    sim = Simulation(scenario(services, traffic=[{"to": "api", "rate": "60/s"}], chaos=[crash], duration=12.0))
    seen = {}

    def look(_t):
        v = sim.versions[0]
        seen["busy"], seen["in_flight"], seen["queue"] = v.busy, v.in_flight, len(v.hosts[0].queue)

    from meshsim.sim._runtime import Timer

    t = Timer()
    t.callbacks = [look]
    sim.env.schedule(t, 1, 10.0 + 1e-6)  # just after the crash
    res = sim.run()
    assert seen == {"busy": 0, "in_flight": 0, "queue": 0}
    assert res.faults.loc[0, "requests"] > 20  # the queue had grown (rho = 1.5)
    ts = res.timeseries.set_index("t_s")
    # (the queue length is sampled at the end of each second: second 9's sample is taken after the crash)
    assert ts.loc[8, "queue_len"] > 20 and ts.loc[9, "queue_len"] == 0 and ts.loc[10, "up"] == 0.0
    _assert_drained(sim)


def test_zone_outage_with_locality_failover_keeps_success_high():
    scn = load_scenario(SCENARIOS / "zone-outage.yaml")
    res = simulate(scn)
    req = res.requests
    during = req[(req["start_s"] >= 30) & (req["start_s"] < 60)]
    assert (during["status"] == 200).mean() > 0.995
    assert res.summary["end_to_end"]["success_rate"] > 0.995
    fault = res.faults.iloc[0]
    assert (fault["kind"], fault["target"], fault["replicas"], fault["start_s"], fault["end_s"]) == \
        ("crash", "zone zone-b", 3, 30.0, 60.0)
    # locality failover: zone b serves the frontends of zones b and c before and after, none during
    cat = res.attempts[res.attempts["service"] == "catalog"]
    share_b = {phase: (part["zone"] == "zone-b").mean()
               for phase, part in (("before", cat[cat["start_s"] < 30]), ("during", cat[cat["start_s"].between(31, 60)]),
                                   ("after", cat[cat["start_s"] >= 62]))}
    # (an ejection reaches the load balancer within Envoy's 1 s merge window: a try or two gets through)
    assert abs(share_b["before"] - 2 / 3) < 0.03 and share_b["during"] < 1e-3 and abs(share_b["after"] - 2 / 3) < 0.03
    ts = res.timeseries.set_index(["service", "t_s"])["up"]
    assert ts[("frontend", 29)] == 3 and ts[("frontend", 45)] == 2 and ts[("catalog", 45)] == 2
    assert ts[("catalog", 61)] == 4
    # without the mesh's failover policies a third of the requests succeed during the outage
    bare = simulate(apply_overrides(scn, {"mesh.frontend": None, "mesh.catalog": None, "duration": "45s"}))
    r = bare.requests
    ok = (r.loc[r["start_s"].between(30, 45), "status"] == 200).mean()
    assert abs(ok - 1 / 3) < 0.05


# --------------------------------------------------------------------------- latency, slowdown, errors


def _window(att, service: str, t0: float, t1: float):
    a = att[att["service"] == service].set_index("request_id")
    return a[(a["start_s"] >= t0) & (a["start_s"] < t1)]


@pytest.mark.parametrize("fault", [{"add": "200ms"}, {"multiply": 3}])
def test_latency_injection_adds_exactly_its_delay_and_leaves_the_work_alone(fault):
    chaos = [{"kind": "latency", "target": "back", "start": "5s", "duration": "5s", **fault}]
    _, base = _run(_front_back(duration=15.0))
    _, hit = _run(_front_back(chaos=chaos, duration=15.0))
    a0, a1 = _window(base.attempts, "back", 5.5, 9.5), _window(hit.attempts, "back", 5.5, 9.5)
    assert a0.index.equals(a1.index) and len(a0) > 500
    # same arrivals, same work: the replica's side is unchanged (no worker is used by the delay)
    np.testing.assert_allclose(a1["server_s"], a0["server_s"], atol=1e-12)
    expected = 0.2 if "add" in fault else 2.0 * a0["server_s"]
    np.testing.assert_allclose(a1["latency_s"] - a0["latency_s"], expected, atol=1e-9)
    u0 = base.summary["services"]["back"]["utilization"]
    assert hit.summary["services"]["back"]["utilization"] == pytest.approx(u0, abs=1e-12)
    before = _window(base.attempts, "back", 0, 5)
    before = before[before["end_s"] < 5.0]  # answered before the fault started
    np.testing.assert_allclose(_window(hit.attempts, "back", 0, 5).loc[before.index, "latency_s"], before["latency_s"])


def test_slowdown_is_the_same_run_with_a_slower_service_and_matches_mmc():
    """A slowdown by 2 over the whole run gives the run of a service twice as slow (the same draws,
    scaled), and that M/M/2 queue's utilization and mean time in system (Erlang C)."""
    lam, mean, c = 40.0, 0.02, 2
    svc = {"api": {"latency": {"type": "exponential", "mean": f"{mean * 1000:g}ms"}, "workers": c}}
    traffic = [{"to": "api", "rate": f"{lam:g}/s"}]
    top = {"duration": 2000.0, "warmup": 50.0, "network": {"latency": 0}, "record": "summary"}
    slow = simulate(scenario(svc, traffic, chaos=[{"kind": "slowdown", "target": "api", "factor": 2}], **top))
    svc2 = {"api": {**svc["api"], "latency": {"type": "exponential", "mean": f"{2 * mean * 1000:g}ms"}}}
    twice = simulate(scenario(svc2, traffic, **top))
    a, b = slow.summary["services"]["api"], twice.summary["services"]["api"]
    assert a["utilization"] == pytest.approx(b["utilization"], rel=1e-9)
    assert a["latency_s"]["mean"] == pytest.approx(b["latency_s"]["mean"], rel=1e-6)
    m = mmc_metrics(lam, 1 / (2 * mean), c)
    assert a["utilization"] == pytest.approx(m["rho"], rel=0.03)  # rho = 0.8
    # ~78k requests at rho 0.8: the mean's relative standard error is about 3 %
    assert a["latency_s"]["mean"] == pytest.approx(m["W"], rel=0.12)


def test_slowdown_raises_utilization_and_latency_while_it_lasts():
    chaos = [{"kind": "slowdown", "target": "back", "factor": 1.3, "start": "5s", "duration": "5s"}]
    _, base = _run(_front_back(duration=15.0))
    _, hit = _run(_front_back(chaos=chaos, duration=15.0))
    ts0 = base.timeseries[base.timeseries["service"] == "back"].set_index("t_s")
    ts1 = hit.timeseries[hit.timeseries["service"] == "back"].set_index("t_s")
    u0, u1 = ts0.loc[6:9, "utilization"].mean(), ts1.loc[6:9, "utilization"].mean()
    assert u1 == pytest.approx(1.3 * u0, rel=0.1)  # 0.67 -> 0.87
    lat0 = _window(base.attempts, "back", 6, 10)["server_s"].mean()
    lat1 = _window(hit.attempts, "back", 6, 10)["server_s"].mean()
    assert lat1 > 1.5 * lat0  # queueing grows faster than the work
    np.testing.assert_allclose(ts1.loc[:4, "utilization"], ts0.loc[:4, "utilization"])


def test_errors_at_a_rate_within_binomial_tolerance_answered_before_any_work():
    chaos = [{"kind": "errors", "target": {"service": "back", "replica": 1}, "rate": "25%", "status": 503,
              "start": "2s", "duration": "15s"}]
    _, res = _run(_front_back(chaos=chaos))
    b = _window(res.attempts, "back", 2.01, 16.9)
    at1 = b[b["replica"] == 1]
    failed = at1[at1["status"] == 503]
    assert stats.binomtest(len(failed), len(at1), 0.25).pvalue > 1e-3
    assert (b.loc[b["replica"] != 1, "status"] == 200).all()
    assert (failed["server_s"] == 0).all() and (failed["flags"] == "").all()
    injected = res.attempts[(res.attempts["service"] == "back") & (res.attempts["status"] == 503)]
    assert res.faults.loc[0, "requests"] == len(injected)
    # no retries: front answers 500 exactly for the requests whose call got the injected error
    assert set(res.requests.loc[res.requests["status"] == 500, "request_id"]) == set(injected["request_id"])


def test_brownout_is_errors_and_slowdown_together():
    chaos = [{"kind": "brownout", "target": "back", "rate": "10%", "factor": 1.2, "start": "5s", "duration": "5s"}]
    _, base = _run(_front_back(duration=15.0))
    _, hit = _run(_front_back(chaos=chaos, duration=15.0))
    b = _window(hit.attempts, "back", 5.1, 9.9)
    k = int((b["status"] == 503).sum())
    assert stats.binomtest(k, len(b), 0.10).pvalue > 1e-3
    ok0 = _window(base.attempts, "back", 6, 9.9)
    ok1 = b[(b["status"] == 200) & (b["start_s"] >= 6)]
    # the survivors' own work is 1.2 x longer (common random numbers do not hold across the failed ones)
    assert ok1["server_s"].mean() > 1.1 * ok0["server_s"].mean()


# --------------------------------------------------------------------------- partitions and resets


def test_partition_costs_the_connect_timeout_and_503_uf_and_black_holes_open_connections():
    """Callers of front cannot reach back replica 0: new connections time out after connect_timeout
    (503 UF), requests on open connections hang until their per-try timeout (504 UT); retries with
    the previous-hosts predicate finish everything elsewhere; after the partition heals replica 0
    serves again."""
    mesh = {"back": {"retries": {"retry_on": "connect-failure,reset", "num_retries": 2, "per_try_timeout": "1s",
                                 "retry_host_predicate": ["previous_hosts"]},
                     "circuit_breakers": {"max_retries": 1000, "connect_timeout": "250ms"}}}
    chaos = [{"kind": "partition", "from": "front", "to": {"service": "back", "replica": 0},
              "start": "5s", "duration": "5s"}]
    sim, res = _run(_front_back(mesh=mesh, chaos=chaos, duration=15.0))
    back = res.attempts[res.attempts["service"] == "back"]
    uf = back[back["flags"] == "UF"]
    assert len(uf) > 50 and (uf["replica"] == 0).all() and (uf["status"] == 503).all()
    assert uf["latency_s"].max() == pytest.approx(0.25, abs=1e-9)
    ut = back[back["flags"] == "UT"]
    assert len(ut) > 0 and (ut["replica"] == 0).all()
    np.testing.assert_allclose(ut["latency_s"], 1.0, atol=1e-9)
    assert (res.requests["status"] == 200).all()
    s = res.summary["stats"]["back|default"]
    assert s["upstream_cx_connect_timeout"] > 0 and s["upstream_rq_per_try_timeout"] == len(ut)
    healed = back[(back["replica"] == 0) & (back["start_s"] > 11)]
    assert len(healed) > 0 and (healed["status"] == 200).all()
    assert res.faults.loc[0, "target"] == "front <-> back/0"
    _assert_drained(sim)


def test_zone_partition_cuts_the_clients_of_that_zone_off_on_the_plain_path():
    services = {"api": {"latency": "5ms", "workers": 50, "replicas": 2, "zones": ["a", "b"]}}
    traffic = [{"name": "in-a", "to": "api", "rate": "50/s", "zone": "a"},
               {"name": "in-b", "to": "api", "rate": "50/s", "zone": "b"}]
    chaos = [{"kind": "partition", "from": {"zone": "a"}, "to": {"zone": "b"}, "start": "2s", "duration": "3s"}]
    _, res = _run(scenario(services, traffic, chaos=chaos, duration=8.0))
    att = res.attempts
    cut = att[att["flags"] == "UF"]
    # a client of zone a sending to the replica in zone b (and the other way round) during the cut
    assert len(cut) > 100 and (cut["status"] == 503).all()
    np.testing.assert_allclose(cut["latency_s"], 5.0, atol=1e-9)  # Envoy's default connect_timeout
    req = res.requests.set_index("request_id")
    crossing = att.set_index("request_id")["zone"] != req["source"].map({"in-a": "a", "in-b": "b"})
    during = att.set_index("request_id")["start_s"].between(2 - 0.0005, 5 - 0.0005)  # arriving in [2, 5)
    assert set(cut["request_id"]) == set(crossing[crossing & during].index)


@pytest.mark.parametrize("retries", [0, 2])
def test_resets_answer_503_uc_and_retry_on_reset_retries_them(retries):
    mesh = {"back": {"retries": {"retry_on": "reset", "num_retries": retries},
                     "circuit_breakers": {"max_retries": 1000}}} if retries else {}
    chaos = [{"kind": "resets", "target": "back", "rate": "10%", "start": "2s", "duration": "16s"}]
    _, res = _run(_front_back(mesh=mesh, chaos=chaos))
    b = _window(res.attempts, "back", 2.01, 17.9)
    uc = b[b["flags"] == "UC"]
    assert stats.binomtest(len(uc), len(b), 0.10).pvalue > 1e-3
    assert (uc["status"] == 503).all() and uc["server_s"].isna().all()
    req = res.requests[res.requests["start_s"].between(2.01, 17.9)]
    fail = int((req["status"] != 200).sum())
    p_fail = 0.1 ** (1 + retries)  # each try is reset independently
    assert stats.binomtest(fail, len(req), p_fail).pvalue > 1e-3


# --------------------------------------------------------------------------- accounting and determinism

_KINDS = st.sampled_from(["crash", "latency", "errors", "slowdown", "resets", "brownout", "partition"])
_TARGETS = st.sampled_from([{"service": "mid"}, {"service": "mid", "replica": 1}, {"zone": "b"},
                            {"service": "leaf"}, {"service": "leaf", "zone": "a"}])


@st.composite
def _timelines(draw):
    faults = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(_KINDS)
        f = {"kind": kind, "start": draw(st.sampled_from([0.0, 0.3, 0.75, 1.2])),
             "duration": draw(st.sampled_from([0.2, 0.5, 1.0, None]))}
        if kind == "partition":
            f.update({"from": {"zone": "a"}, "to": {"zone": "b"}})
        else:
            f["target"] = draw(_TARGETS)
        if kind in ("errors", "brownout", "resets"):
            f["rate"] = draw(st.sampled_from([0.2, 1.0]))
        if kind in ("slowdown", "brownout"):
            f["factor"] = draw(st.sampled_from([1.5, 4.0]))
        if kind == "latency":
            f.update(draw(st.sampled_from([{"add": "50ms"}, {"multiply": 2}])))
        faults.append(f)
    return faults


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chaos=_timelines(), mesh=st.booleans(), conc=st.sampled_from(["blocking", "async"]),
       seed=st.integers(0, 2**20))
def test_random_chaos_keeps_the_accounting_and_ends_every_request_once(chaos, mesh, conc, seed):
    from meshsim._exceptions import ConfigError

    services = {"top": {"latency": "1ms", "workers": 20, "replicas": 2, "zones": ["a", "b"],
                        "script": [{"call": "mid"}]},
                "mid": {"latency": {"type": "exponential", "mean": "5ms"}, "workers": 2, "replicas": 2,
                        "zones": ["a", "b"], "concurrency": conc, "queue": 20,
                        "script": ["work", {"parallel": [{"call": "leaf"}, {"call": "leaf"}]}]},
                "leaf": {"latency": {"type": "exponential", "mean": "3ms"}, "workers": 2, "replicas": 2,
                         "zones": ["a", "b"]}}
    policy = {"timeout": "500ms", "retries": {"retry_on": "5xx,reset,connect-failure", "num_retries": 1,
                                              "per_try_timeout": "200ms"},
              "circuit_breakers": {"connect_timeout": "100ms"}}
    try:
        scn = scenario(services, traffic=[{"to": "top", "rate": "150/s", "zone": "a"}], chaos=chaos,
                       mesh={"mid": policy, "leaf": policy} if mesh else {}, duration=2.0, drain="20s", seed=seed)
    except ConfigError as exc:  # overlapping faults of one kind on one replica: refused, as documented
        assert "overlaps" in str(exc)
        return
    sim = Simulation(scn)
    lows = []

    def watch(_t):  # every 50 ms: no counter below zero, no host over its workers
        for v in sim.versions:
            lows.append(min(v.busy, v.in_flight))
        _assert_consistent(sim)
        if sim.env.now < 3.0:
            t.callbacks = [watch]
            sim.env.schedule(t, 1, 0.05)

    from meshsim.sim._runtime import Timer

    t = Timer()
    t.callbacks = [watch]
    sim.env.schedule(t, 1, 0.05)
    res = sim.run()
    assert min(lows) >= 0
    req = res.requests
    assert req["request_id"].is_unique and len(req) == res.summary["end_to_end"]["requests"]
    assert (req["status"] != 0).all()  # every request ended (20 s of drain is plenty)
    assert (res.timeseries["in_flight"] >= 0).all()
    _assert_consistent(sim)
    again = Simulation(scn).run()
    assert again.summary == res.summary


def test_same_seed_same_summary_and_a_fault_leaves_arrivals_and_work_unchanged():
    chaos = [{"kind": "crash", "target": {"service": "back", "replica": 2}, "start": "3s", "duration": "2s"},
             {"kind": "errors", "target": "back", "rate": "5%", "start": "1s"}]
    a = simulate(_front_back(chaos=chaos, duration=8.0))
    b = simulate(_front_back(chaos=chaos, duration=8.0))
    assert a.summary == b.summary
    assert a.faults.equals(b.faults)
    base = simulate(_front_back(duration=8.0))
    np.testing.assert_array_equal(np.sort(a.requests["start_s"]), np.sort(base.requests["start_s"]))


def test_chaos_targets_take_the_general_path_with_identical_results():
    """Hosts a fault targets lose the single-work-step fast path; the general path gives the same run."""
    scn = _front_back(duration=5.0)
    fast = simulate(scn)
    sim = Simulation(scn)
    for h in sim.hosts:
        h.simple = False
    slow = sim.run()
    assert slow.summary == fast.summary
    np.testing.assert_array_equal(slow.attempts["end_s"], fast.attempts["end_s"])


def test_faults_table_summary_and_run_directory(tmp_path):
    from meshsim.sim import write_run

    chaos = [{"name": "b-down", "kind": "crash", "target": {"service": "back", "replica": 0}, "start": "1s",
              "duration": "1s"},
             {"kind": "latency", "target": "back", "add": "5ms", "start": "2s"}]
    res = simulate(_front_back(chaos=chaos, duration=4.0))
    f = res.faults
    assert list(f.columns) == ["name", "kind", "target", "detail", "replicas", "start_s", "end_s", "requests"]
    assert f["name"].tolist() == ["b-down", "latency-1"]
    assert f["end_s"].tolist() == [2.0, res.summary["end_s"]]
    assert f.loc[1, "detail"] == "add 5ms"
    assert [x["name"] for x in res.summary["faults"]] == ["b-down", "latency-1"]
    written = write_run(tmp_path, tables=res.tables(), summary=res.summary, fmt="csv")
    assert tmp_path / "faults.csv" in written
    plain = simulate(_front_back(duration=2.0))
    assert plain.faults.empty and "faults" not in plain.summary and "faults" not in plain.tables()
    assert math.isclose(plain.timeseries["up"].max(), 3.0)


def test_the_documented_chaos_example_runs_with_every_kind():
    import re

    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "scenario.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S) if "name: chaos-demo" in b)
    res = simulate(parse_scenario(yaml.safe_load(block)))
    f = res.faults.set_index("name")
    assert list(f["kind"]) == ["crash", "crash", "latency", "latency", "errors", "slowdown", "partition", "resets",
                               "brownout"]
    assert f.loc["zone-b-outage", "target"] == "zone zone-b" and f.loc["zone-b-outage", "replicas"] == 4
    assert f.loc["partition-6", "target"] == "zone zone-a <-> ratings in zone-b"
    assert f.loc["brownout-8", "end_s"] == res.summary["end_s"]  # open-ended: until the run stops
    for name in ("latency-2", "latency-3", "errors-4", "resets-7", "brownout-8"):
        assert f.loc[name, "requests"] > 0, name
    up = res.timeseries.set_index(["service", "version", "t_s"])["up"]
    assert up[("reviews", "v3", 12)] == 1 and up[("reviews", "v3", 35)] == 1 and up[("reviews", "v1", 35)] == 1
    assert up[("reviews", "v3", 55)] == 2


def test_a_short_partition_delays_requests_on_open_connections_until_it_heals():
    """HTTP/2: one connection per caller and replica, open before the cut. Requests sent over it
    during a 300 ms partition are black-holed, then delivered when it heals (no timeout fired)."""
    mesh = {"back": {"circuit_breakers": {"protocol": "http2"}}}
    chaos = [{"kind": "partition", "from": "front", "to": {"service": "back", "replica": 0},
              "start": "5s", "duration": "300ms"}]
    sim, res = _run(_front_back(mesh=mesh, chaos=chaos, duration=8.0))
    back = res.attempts[res.attempts["service"] == "back"]
    held = back[(back["replica"] == 0) & back["start_s"].between(5 - 0.0005, 5.3 - 0.0005)]
    assert len(held) > 10 and (held["status"] == 200).all()
    # each waited until the partition healed, then queued and was served as usual
    assert ((held["end_s"] - held["server_s"] - 0.0005) >= 5.3 - 1e-9).all()
    assert res.faults.loc[0, "requests"] >= len(held)
    assert (res.requests["status"] == 200).all()
    _assert_drained(sim)


def test_active_health_checks_take_a_crashed_replica_out_and_back_in():
    """A crashed replica fails its probes (connection refused): after unhealthy_threshold probes the
    load balancer stops sending to it; after the restart one good probe brings it back."""
    hc = {"timeout": "100ms", "interval": "500ms", "unhealthy_threshold": 2, "healthy_threshold": 1,
          "path": "/healthz"}
    chaos = [{"kind": "crash", "target": {"service": "back", "replica": 0}, "start": "5s", "duration": "5s"}]
    _, res = _run(_front_back(mesh={"back": {"health_check": hc}}, chaos=chaos, duration=15.0))
    back = res.attempts[res.attempts["service"] == "back"]
    on0 = back[back["replica"] == 0]
    failed = on0[on0["status"] != 200]
    assert len(failed) > 0 and failed["flags"].isin(["UC", "UF"]).all()
    assert failed["start_s"].max() < 5 + 2 * 0.5 + 0.1  # out of rotation after two failed probes
    assert not on0["start_s"].between(6.2, 10.0).any()
    back_in = on0[on0["start_s"] > 10]
    assert len(back_in) > 100 and back_in["start_s"].min() < 10.6 and (back_in["status"] == 200).all()
    s = res.summary["stats"]["back|default"]
    assert s["health_check.failure"] > 0
