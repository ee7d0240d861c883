"""Envoy's policies in full simulations: emergent behaviour with stated tolerances.

Each test names the Envoy behaviour it pins; seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from meshsim.config import parse_scenario
from meshsim.sim import simulate


def scenario(services: dict, traffic: list | None = None, **top) -> object:
    data = {"name": "p", "seed": 3, "duration": 20.0, "network": {"latency": 0}, "services": services,
            "traffic": traffic or [{"name": "users", "to": next(iter(services)), "rate": "100/s"}]}
    data.update(top)
    return parse_scenario(data)


def test_default_route_timeout_is_envoys_15s_and_the_upstream_keeps_working():
    scn = scenario({"front": {"latency": "1ms", "workers": 10, "script": [{"call": "slow"}]},
                    "slow": {"latency": "20s", "workers": 10}},
                   traffic=[{"to": "front", "rate": "1/s"}], duration=3.0, drain="30s")
    res = simulate(scn)
    calls = res.attempts[res.attempts["service"] == "slow"]
    assert (calls["status"] == 504).all() and (calls["flags"] == "UT").all()
    np.testing.assert_allclose(calls["latency_s"], 15.0, atol=1e-9)
    # the callee still did the 20 s of work: its workers were busy
    assert res.timeseries.query("service == 'slow'")["utilization"].max() > 0


def test_route_timeout_answers_504_ut():
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "slow"}]},
                    "slow": {"latency": "300ms", "workers": 100}},
                   mesh={"slow": {"timeout": "100ms"}}, duration=2.0)
    res = simulate(scn)
    calls = res.attempts[res.attempts["service"] == "slow"]
    assert (calls["status"] == 504).all()
    np.testing.assert_allclose(res.requests["latency_s"], 0.101, atol=1e-9)
    assert res.summary["stats"]["slow|default"]["upstream_rq_timeout"] == len(res.requests)


def test_retries_two_on_a_host_failing_30_percent_give_one_minus_0_3_cubed():
    """num_retries 2 with the retry breaker out of reach: success ~ 1 - 0.3^3 = 0.973."""
    scn = scenario({"front": {"latency": "1ms", "workers": 50, "script": [{"call": "flaky"}]},
                    "flaky": {"latency": "1ms", "workers": 50, "errors": {"rate": 0.3, "status": 503}}},
                   mesh={"flaky": {"retries": {"retry_on": "5xx", "num_retries": 2},
                                   "circuit_breakers": {"max_retries": 1000}}},
                   traffic=[{"to": "front", "rate": "50/s"}], duration=200.0)
    res = simulate(scn)
    ok = (res.requests["status"] == 200).mean()
    n = len(res.requests)
    # binomial 4-sigma band around 0.973
    assert abs(ok - (1 - 0.3**3)) < 4 * math.sqrt(0.973 * 0.027 / n)
    s = res.summary["stats"]["flaky|default"]
    assert s.get("upstream_rq_retry_overflow", 0) == 0
    assert s["upstream_rq_retry"] > 0


def test_default_max_retries_breaker_caps_retries_at_high_concurrency():
    """Same policy under heavy concurrency: the default max_retries 3 overflows (UO) and success drops."""
    services = {"front": {"latency": "1ms", "workers": 400, "script": [{"call": "flaky"}]},
                "flaky": {"latency": "50ms", "workers": 400, "errors": {"rate": 0.3, "status": 503}}}
    low = simulate(scenario(services, mesh={"flaky": {"retries": {"retry_on": "5xx", "num_retries": 2}}},
                            traffic=[{"to": "front", "rate": "2000/s"}], duration=10.0))
    ok = (low.requests["status"] == 200).mean()
    s = low.summary["stats"]["flaky|default"]
    assert s["upstream_rq_retry_overflow"] > 0
    assert ok < 0.9  # far below 0.973
    uo = low.requests["flags"].astype(str).str.contains("UO")
    assert (low.requests.loc[uo, "status"] == 503).all()  # the upstream's own 503 goes back


def test_retry_amplification_is_k_to_the_l_at_the_bottom():
    """3 tries per layer over 3 layers, bottom failing 100 %: 27 attempts reach the bottom per request."""
    retry = {"retries": {"retry_on": "5xx", "num_retries": 2, "retry_back_off": {"base_interval": "1ms"}}}
    scn = scenario({"l1": {"latency": "1ms", "workers": 100, "script": [{"call": "l2"}]},
                    "l2": {"latency": "1ms", "workers": 100, "script": [{"call": "l3"}]},
                    "l3": {"latency": "1ms", "workers": 100, "errors": 1.0}},
                   traffic=[{"to": "l1", "rate": "1/s", "arrivals": "uniform"}],
                   mesh={"l1": retry, "l2": retry, "l3": retry}, duration=10.0)
    res = simulate(scn)
    bottom = res.attempts[res.attempts["service"] == "l3"].groupby("request_id").size()
    assert len(bottom) == len(res.requests) == 10
    assert (bottom == 27).all()


def test_outlier_ejects_the_bad_host_at_its_fifth_consecutive_5xx_and_returns_on_the_tick():
    scn = scenario({"front": {"latency": "1ms", "workers": 50, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 50, "replicas": 5,
                             "versions": {"good": {"replicas": 4}, "bad": {"replicas": 1, "errors": 1.0}}}},
                   traffic=[{"to": "front", "rate": "100/s", "arrivals": "uniform"}],
                   mesh={"back": {"outlier_detection": {"consecutive_5xx": 5, "interval": "1s",
                                                        "base_ejection_time": "5s", "max_ejection_percent": 50}}},
                   duration=30.0)
    res = simulate(scn)
    ev = res.outlier_events
    ejections = ev[ev["action"] == "eject"]
    assert len(ejections) >= 2
    bad = res.attempts[(res.attempts["version"] == "bad")]
    first = ejections["time_s"].iloc[0]
    # exactly five failures before the first ejection
    assert (bad["end_s"] <= first + 1e-12).sum() == 5
    # un-ejected on the first 1 s interval tick at or after 5 s of ejection
    unejections = ev[ev["action"] == "uneject"]
    back = unejections["time_s"].iloc[0]
    assert back >= first + 5.0 and back - (first + 5.0) <= 1.0 + 1e-9
    assert back == pytest.approx(round(back))  # ticks fall on whole seconds from the start
    # the second ejection lasts twice the base ejection time
    second = ejections["time_s"].iloc[1]
    back2 = unejections["time_s"].iloc[1]
    assert back2 >= second + 10.0 and back2 - (second + 10.0) <= 1.0 + 1e-9
    # the ejection shows in the timeseries (ejections_active)
    ts = res.timeseries[res.timeseries["version"] == "bad"]
    assert ts["ejected"].max() == 1 and ts["ejected"].sum() >= 10


def test_max_ejection_percent_default_never_ejects_with_fewer_than_ten_hosts_and_says_so():
    from meshsim import MeshsimWarning

    scn = scenario({"front": {"latency": "1ms", "workers": 50, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 50,
                             "versions": {"good": {"replicas": 4}, "bad": {"replicas": 1, "errors": 1.0}}}},
                   mesh={"back": {"outlier_detection": {"consecutive_5xx": 5}}}, duration=10.0)
    with pytest.warns(MeshsimWarning, match="max_ejection_percent: 10 % of 5 hosts can never eject"):
        res = simulate(scn)
    assert any("at least 10 hosts" in w for w in res.summary["warnings"])
    ev = res.outlier_events
    assert (ev["action"] == "eject").sum() == 0
    # the cluster without a route is the whole service: Envoy's outbound|80||back
    assert res.summary["stats"]["back|*"].get("outlier_detection.ejections_overflow", 0) > 0


def test_circuit_breaker_overflow_answers_503_uo():
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "slow"}]},
                    "slow": {"latency": "100ms", "workers": 100}},
                   mesh={"slow": {"circuit_breakers": {"max_requests": 1, "max_pending_requests": 1}}},
                   traffic=[{"to": "front", "rate": "50/s"}], duration=10.0)
    res = simulate(scn)
    calls = res.attempts[res.attempts["service"] == "slow"]
    uo = calls[calls["flags"] == "UO"]
    assert len(uo) > 0 and (uo["status"] == 503).all() and (uo["replica"] == -1).all()
    s = res.summary["stats"]["slow|default"]
    # max_requests is the limit hit here: Envoy 1.40 counts it as active overflow
    assert s["upstream_rq_active_overflow"] == len(uo)
    assert s["upstream_rq_503"] == len(uo) and s["upstream_rq_total"] == len(calls) - len(uo)
    assert len(calls) == len(res.requests)  # one row per call: reached the host, or overflowed
    # at most one request active and one pending at any time: the slow service never has 3 in flight
    assert res.timeseries.query("service == 'slow'")["in_flight"].max() <= 1
    assert (res.requests["status"] == 500).sum() == len(uo)  # the caller fails when its call overflows


def test_fault_abort_percentage_within_binomial_tolerance():
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 100}},
                   mesh={"back": {"fault": {"abort": {"http_status": 503, "percentage": 20}}}},
                   duration=50.0)
    res = simulate(scn)
    st = res.requests["status"]
    k = int((st == 500).sum())
    assert stats.binomtest(k, len(st), 0.20).pvalue > 1e-3


def test_local_rate_limit_answers_429_rl_beyond_the_bucket():
    scn = scenario({"api": {"latency": "1ms", "workers": 100}},
                   traffic=[{"to": "api", "rate": "100/s", "arrivals": "uniform"}],
                   mesh={"api": {"rate_limit": {"token_bucket": {"max_tokens": 10, "tokens_per_fill": 10,
                                                                 "fill_interval": "1s"},
                                                "filter_enabled": 100, "filter_enforced": 100}}},
                   duration=10.0)
    res = simulate(scn)
    st = res.requests["status"]
    # 10 tokens a second (plus the initial burst of 10) out of 100 requests a second
    assert (st == 200).sum() == pytest.approx(110, abs=12)
    assert (st == 429).sum() > 0


def test_mirroring_sends_shadow_copies_whose_responses_nobody_waits_for():
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 100,
                             "versions": {"v1": {}, "v2": {"latency": "200ms", "errors": 1.0}}}},
                   mesh={"back": {"routes": [{"route": "v1", "mirror": {"version": "v2", "percentage": 50}}]}},
                   duration=20.0)
    res = simulate(scn)
    a = res.attempts
    shadow = a[a["version"] == "v2"]
    n = len(res.requests)
    assert stats.binomtest(len(shadow), n, 0.5).pvalue > 1e-3
    assert (res.requests["status"] == 200).all()  # the failing, slow shadow never reaches the caller
    assert res.requests["latency_s"].max() < 0.05


# ---------------------------------------------------------------------- properties over random policies
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

policy_blocks = st.fixed_dictionaries({}, optional={
    "timeout": st.sampled_from(["50ms", "200ms", "2s"]),
    "retries": st.fixed_dictionaries({"retry_on": st.sampled_from(["5xx", "gateway-error,reset", "reset"]),
                                      "num_retries": st.integers(0, 3)},
                                     optional={"per_try_timeout": st.sampled_from(["20ms", "100ms"])}),
    "circuit_breakers": st.fixed_dictionaries({"max_requests": st.integers(1, 20),
                                               "max_pending_requests": st.integers(0, 5),
                                               "max_retries": st.integers(0, 5)}),
    "outlier_detection": st.fixed_dictionaries({"consecutive_5xx": st.integers(1, 5),
                                                "interval": st.sampled_from(["100ms", "1s"]),
                                                "base_ejection_time": st.sampled_from(["200ms", "1s"]),
                                                "max_ejection_percent": st.integers(0, 100)}),
    "load_balancer": st.fixed_dictionaries({"lb_policy": st.sampled_from(
        ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"])}),
    "fault": st.fixed_dictionaries({"abort": st.fixed_dictionaries({"http_status": st.just(503),
                                                                     "percentage": st.integers(0, 30)})}),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(front=policy_blocks, back=policy_blocks, seed=st.integers(0, 2**31 - 1),
       err=st.sampled_from([0.0, 0.2, 1.0]))
def test_random_policies_keep_every_request_once_and_respect_the_retry_limit(front, back, seed, err):
    scn = scenario({"front": {"latency": {"type": "exponential", "mean": "2ms"}, "workers": 8, "replicas": 2,
                              "script": [{"call": "back"}]},
                    "back": {"latency": {"type": "exponential", "mean": "5ms"}, "workers": 4, "replicas": 3,
                             "errors": {"rate": err, "status": 503}}},
                   traffic=[{"to": "front", "rate": "200/s"}], mesh={"front": front, "back": back},
                   duration=2.0, seed=seed)
    a, b = simulate(scn), simulate(scn)
    r = a.requests
    assert r["request_id"].is_unique and len(r) == a.summary["end_to_end"]["requests"]
    assert (r.loc[r["status"] != 0, "latency_s"] >= 0).all()
    att = a.attempts
    assert (att["latency_s"] >= -1e-12).all()
    max_tries = 1 + int(back.get("retries", {}).get("num_retries", 1)) if "retries" in back else 1
    tries = att[att["service"] == "back"]["attempt"]
    assert len(tries) == 0 or tries.max() <= max_tries
    # a fixed seed gives identical results
    assert a.summary == b.summary


def test_hedging_on_per_try_timeout_cuts_the_tail_and_keeps_the_slow_try_running():
    """90 % 5 ms / 10 % 500 ms upstream, per-try timeout 50 ms: with hedging the slow try runs on next
    to a new one and the first good response wins; without it the slow try is reset and retried."""
    slow = {"type": "mixture", "components": [{"weight": 0.9, "type": "constant", "value": "5ms"},
                                              {"weight": 0.1, "type": "constant", "value": "500ms"}]}

    def run(hedge: bool):
        retries = {"retry_on": "5xx,reset", "num_retries": 1, "per_try_timeout": "50ms",
                   "hedge_on_per_try_timeout": hedge}
        scn = scenario({"front": {"latency": {"type": "constant", "value": 0}, "workers": 200,
                                  "script": [{"call": "back"}]},
                        "back": {"latency": slow, "workers": 200, "replicas": 2}},
                       mesh={"back": {"retries": retries}}, duration=30.0)
        return simulate(scn)

    hedged, plain = run(True), run(False)
    n = len(hedged.requests)
    for res in (hedged, plain):
        assert res.requests["latency_s"].quantile(0.98) < 0.1  # both cut the 500 ms tail
    # hedged: the slow first try runs on, so a request is only slow when both tries are (1 %), and
    # then the first try's answer (500 ms) still wins: everything succeeds
    assert (hedged.requests["status"] == 200).all()
    slow_share = (hedged.requests["latency_s"] > 0.4).mean()
    assert stats.binomtest(int(slow_share * n), n, 0.01).pvalue > 1e-3
    # plain retries: the slow try is reset at its per-try timeout; when the retry is slow too the
    # call ends with 504 UT,URX after about 100 ms and the front fails the request (500)
    failed = plain.requests[plain.requests["status"] == 500]
    assert stats.binomtest(len(failed), n, 0.01).pvalue > 1e-3
    assert plain.requests["latency_s"].max() < 0.15
    s_h = hedged.summary["stats"]["back|default"]
    s_p = plain.summary["stats"]["back|default"]
    assert s_h.get("upstream_rq_per_try_timeout", 0) == 0  # not counted when hedging
    assert s_p["upstream_rq_per_try_timeout"] > 0
    assert s_h["upstream_rq_retry"] == s_p["upstream_rq_retry"]  # the same draws: common random numbers


def test_one_connection_one_pending_slot_queues_one_and_overflows_the_rest_as_pending_overflow():
    """HTTP/1.1, max_connections = max_pending_requests = 1 (envoy.md A.3): one request on the
    connection, one waiting for it, the others 503 UO counted as upstream_rq_pending_overflow."""
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "slow"}]},
                    "slow": {"latency": "100ms", "workers": 100}},
                   mesh={"slow": {"circuit_breakers": {"max_connections": 1, "max_pending_requests": 1,
                                                       "max_requests": 100}}},
                   traffic=[{"to": "front", "rate": "50/s"}], duration=10.0, network={"latency": "0.5ms"})
    res = simulate(scn)
    calls = res.attempts[res.attempts["service"] == "slow"]
    uo = calls[calls["flags"] == "UO"]
    s = res.summary["stats"]["slow|default"]
    assert s["upstream_rq_pending_overflow"] == len(uo) > 0
    assert s["upstream_cx_total"] == 1  # one connection, reused (keep-alive)
    served = calls[calls["status"] == 200]
    # never two requests at the callee at once: one connection, HTTP/1.1
    assert res.timeseries.query("service == 'slow'")["in_flight"].max() <= 1
    assert len(served) > 0


def test_ring_hash_on_a_header_pins_each_user_to_one_replica():
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 100, "replicas": 5}},
                   traffic=[{"to": "front", "rate": "200/s",
                             "headers": {"x-user": {"ann": "25%", "bob": "25%", "cid": "25%", "dan": "25%"}}}],
                   mesh={"back": {"load_balancer": {"lb_policy": "RING_HASH",
                                                    "hash_key": {"header_name": "x-user"}}}},
                   duration=10.0)
    res = simulate(scn)
    a = res.attempts[res.attempts["service"] == "back"]
    # every request of one user lands on the same replica (front has one replica: one sidecar)
    req_user = a.merge(res.attempts[res.attempts["service"] == "front"][["request_id"]], on="request_id")
    assert len(req_user) == len(a)
    # 4 users -> at most 4 replicas used, and not all traffic on one
    assert 1 < a["replica"].nunique() <= 4


def test_ring_hash_on_the_source_spreads_callers_and_keeps_each_on_one_replica():
    scn = scenario({"front": {"latency": "1ms", "workers": 100, "replicas": 6, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 100, "replicas": 5}},
                   mesh={"back": {"load_balancer": {"lb_policy": "MAGLEV", "hash_key": {"use_source_ip": True}}}},
                   duration=10.0)
    res = simulate(scn)
    a = res.attempts[res.attempts["service"] == "back"]
    front = res.attempts[res.attempts["service"] == "front"][["request_id", "replica"]].rename(
        columns={"replica": "front_replica"})
    pairs = a.merge(front, on="request_id").groupby("front_replica")["replica"].nunique()
    assert (pairs == 1).all()  # one caller sidecar -> always the same upstream replica


def test_active_health_checks_take_a_failing_replica_out_of_rotation():
    """A replica answering 503 fails its probes and leaves the load-balancing set: Envoy fails a
    healthy host at once on a bad HTTP status (the threshold counts network failures and timeouts);
    the good ones keep passing; health_check.* counters are kept."""
    hc = {"timeout": "100ms", "interval": "1s", "unhealthy_threshold": 2, "healthy_threshold": 1,
          "path": "/healthz"}
    scn = scenario({"front": {"latency": "1ms", "workers": 50, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 50,
                             "versions": {"good": {"replicas": 4}, "bad": {"replicas": 1, "errors": 1.0}}}},
                   traffic=[{"to": "front", "rate": "100/s", "arrivals": "uniform"}],
                   mesh={"back": {"health_check": hc}}, duration=20.0)
    res = simulate(scn)
    bad = res.attempts[res.attempts["version"] == "bad"]
    # the first probe goes out at once (no initial jitter) and fails: the bad replica gets at most
    # the requests sent in that probe's round trip, instead of one in five
    assert len(bad) <= 2
    assert len(res.requests) > 1900 and (res.requests["status"] == 200).mean() > 0.99
    s = res.summary["stats"]["back|*"]
    assert s["health_check.attempt"] > 0 and s["health_check.failure"] > 0 and s["health_check.success"] > 0


def _run_with_host_reach(scn, host_name: str, reach: int):
    from meshsim.sim._engine import Simulation

    sim = Simulation(scn)
    [host] = [h for h in sim.hosts if h.name == host_name]
    host.reach = reach
    return sim.run()


def _unreachable_scenario(retries: dict):
    return scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "back"}]},
                     "back": {"latency": "1ms", "workers": 100, "replicas": 3}},
                    traffic=[{"to": "front", "rate": "50/s"}], network={"latency": "0.5ms"},
                    mesh={"back": {"circuit_breakers": {"connect_timeout": "250ms", "max_retries": 1000},
                                   "retries": {"retry_on": "connect-failure", "num_retries": 2, **retries}}},
                    duration=10.0)


def test_unreachable_host_costs_connect_timeout_then_a_connect_failure_retry_succeeds():
    """A black-holed replica never answers the handshake: the connection's connect_timeout fires and
    every request queued for it fails 503 UF together (Envoy purges the pool's pending requests,
    upstream_cx_connect_timeout); `retry_on: connect-failure` with the previous-hosts predicate
    retries each on a good host."""
    from meshsim.sim._runtime import UNREACHABLE

    res = _run_with_host_reach(_unreachable_scenario({"retry_host_predicate": ["previous_hosts"]}),
                               "back-default-0", UNREACHABLE)
    assert len(res.requests) > 450 and (res.requests["status"] == 200).all()
    bad = res.attempts[(res.attempts["service"] == "back") & (res.attempts["replica"] == 0)]
    assert len(bad) > 0 and (bad["status"] == 503).all() and (bad["flags"] == "UF").all()
    # the try that opened the connection waited the whole connect timeout, later ones less
    assert bad["latency_s"].max() == pytest.approx(0.25, abs=1e-9)
    assert (bad["latency_s"] <= 0.25 + 1e-9).all() and bad["latency_s"].min() < 0.2
    s = res.summary["stats"]["back|default"]
    assert s["upstream_rq_retry"] == len(bad) == s["upstream_rq_pending_failure_eject"]
    assert s["upstream_cx_connect_timeout"] == s["upstream_cx_connect_fail"] > 0


def test_unreachable_host_without_the_predicate_lets_retries_land_on_it_again():
    """Without previous_hosts a retry may pick the black-holed host again (round robin moves on, but the
    retried tries of one purge land together): some requests exhaust num_retries (URX, 503)."""
    from meshsim.sim._runtime import UNREACHABLE

    res = _run_with_host_reach(_unreachable_scenario({}), "back-default-0", UNREACHABLE)
    s = res.summary["stats"]["back|default"]
    assert s["upstream_rq_retry"] > 0 and s["upstream_cx_connect_timeout"] > 0
    failed = res.requests[res.requests["status"] != 200]
    assert 0 < len(failed) < 0.2 * len(res.requests)
    calls = res.attempts[(res.attempts["service"] == "back") & res.attempts["request_id"].isin(failed["request_id"])]
    assert (calls["replica"] == 0).all()  # every try of a failed request went to the bad host


def test_refused_connections_fail_fast_with_503_uf_and_without_retries_reach_the_caller():
    """A replica whose process is gone refuses connections: reset after one round trip, 503 UF, and with
    no retry policy about a third of the requests (one host in three) fail."""
    from meshsim.sim._runtime import REFUSED

    scn = scenario({"front": {"latency": "1ms", "workers": 100, "script": [{"call": "back"}]},
                    "back": {"latency": "1ms", "workers": 100, "replicas": 3}},
                   traffic=[{"to": "front", "rate": "100/s"}], network={"latency": "0.5ms"},
                   mesh={"back": {"circuit_breakers": {"max_requests": 100}}}, duration=10.0)
    res = _run_with_host_reach(scn, "back-default-1", REFUSED)
    bad = res.attempts[(res.attempts["service"] == "back") & (res.attempts["replica"] == 1)]
    assert len(bad) > 0 and (bad["status"] == 503).all() and (bad["flags"] == "UF").all()
    np.testing.assert_allclose(bad["latency_s"], 0.001, atol=1e-9)  # one round trip of 2 x 0.5 ms
    failed = (res.requests["status"] == 500).mean()  # front answers 500 when its call to back fails
    assert abs(failed - 1 / 3) < 0.05  # round robin over three hosts; 1,000 requests
    s = res.summary["stats"]["back|default"]
    assert s["upstream_cx_connect_fail"] >= len(bad) and s.get("upstream_cx_connect_timeout", 0) == 0
