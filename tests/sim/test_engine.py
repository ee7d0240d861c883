"""Behaviour of the engine on small scenarios: routing, queues, scripts, sources, recording."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from meshsim.config import parse_scenario
from meshsim.sim import run, simulate


def scenario(services: dict, traffic: list | None = None, **top) -> object:
    data = {"name": "t", "seed": 11, "duration": 20.0, "network": {"latency": 0}, "services": services,
            "traffic": traffic or [{"name": "users", "to": next(iter(services)), "rate": "100/s"}]}
    data.update(top)
    return parse_scenario(data)


def test_weighted_routing_splits_by_weight_within_binomial_tolerance():
    scn = scenario(
        {"front": {"latency": "1ms", "workers": 50, "script": [{"call": "reviews"}]},
         "reviews": {"latency": "1ms", "workers": 50, "versions": {"v1": {}, "v3": {}}}},
        mesh={"reviews": {"routes": [{"route": {"v1": 90, "v3": 10}}]}},
        duration=100.0,
    )
    a = simulate(scn).attempts
    calls = a[a["service"] == "reviews"]
    n = len(calls)
    k = int((calls["version"] == "v3").sum())
    # two-sided binomial test at 1e-3: the 10 % share is respected
    assert stats.binomtest(k, n, 0.10).pvalue > 1e-3
    assert n > 9000


def test_header_match_pins_users_to_a_version():
    scn = scenario(
        {"front": {"latency": "1ms", "workers": 50, "script": [{"call": "reviews"}]},
         "reviews": {"latency": "1ms", "workers": 50, "versions": {"v1": {}, "v2": {}}}},
        traffic=[{"name": "users", "to": "front", "rate": "200/s", "headers": {"end-user": {"jason": "20%"}}}],
        mesh={"reviews": {"routes": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": {"v2": 100}},
            {"route": {"v1": 100}},
        ]}},
    )
    a = simulate(scn).attempts
    calls = a[a["service"] == "reviews"]
    share_v2 = (calls["version"] == "v2").mean()
    assert 0.17 < share_v2 < 0.23  # 20 % of ~4000 requests: 3 sigma is about 1.9 points


def test_no_matching_route_answers_404_with_nr_flag_and_fails_the_caller():
    scn = scenario(
        {"front": {"latency": "1ms", "workers": 10, "script": [{"call": "reviews"}]},
         "reviews": {"latency": "1ms", "versions": {"v1": {}}}},
        mesh={"reviews": {"routes": [{"match": [{"headers": {"x-never": {"present": True}}}], "route": "v1"}]}},
        duration=2.0,
    )
    res = simulate(scn)
    calls = res.attempts[res.attempts["service"] == "reviews"]
    assert (calls["status"] == 404).all() and (calls["flags"] == "NR").all()
    assert (res.requests["status"] == 500).all()


def test_queue_overflow_answers_503_and_never_exceeds_capacity():
    scn = scenario({"s": {"latency": "100ms", "workers": 1, "queue": 2}},
                   traffic=[{"to": "s", "rate": "50/s"}], duration=10.0)
    res = simulate(scn)
    a = res.attempts
    assert (a["status"] == 503).sum() > 0
    assert set(a["status"].unique()) <= {200, 503}
    assert res.timeseries["queue_len"].max() <= 2
    # rejected attempts never waited for a worker
    assert a.loc[a["status"] == 503, "wait_s"].isna().all()


def test_blocking_caller_holds_its_worker_while_async_releases_it():
    def util(concurrency: str) -> float:
        scn = scenario(
            {"front": {"latency": "1ms", "workers": 20, "concurrency": concurrency, "script": [{"call": "slow"}]},
             "slow": {"latency": "50ms", "workers": 100}},
            traffic=[{"to": "front", "rate": "100/s"}], duration=30.0, warmup=2.0)
        return simulate(scn).summary["services"]["front"]["utilization"]

    blocking, asynchronous = util("blocking"), util("async")
    # blocking: each request holds a worker ~51 ms -> 100/s * 0.051 / 20 = 0.255; async: 1 ms -> 0.005
    assert blocking == pytest.approx(0.255, rel=0.1)
    assert asynchronous == pytest.approx(0.005, rel=0.15)


def test_parallel_calls_wait_for_the_slowest():
    scn = scenario(
        {"front": {"latency": {"type": "constant", "value": 0}, "workers": 100,
                   "script": [{"parallel": [{"call": "a"}, {"call": "b"}]}]},
         "a": {"latency": "10ms", "workers": 100}, "b": {"latency": "30ms", "workers": 100}},
        duration=5.0)
    lat = simulate(scn).requests["latency_s"]
    np.testing.assert_allclose(lat.to_numpy(), 0.030, atol=1e-9)


def test_sequential_calls_add_up_and_network_delay_is_per_leg():
    scn = scenario(
        {"front": {"latency": "1ms", "workers": 100, "script": ["work", {"call": "a"}, {"call": "b"}]},
         "a": {"latency": "10ms", "workers": 100}, "b": {"latency": "30ms", "workers": 100}},
        network={"latency": "0.5ms"}, duration=5.0)
    lat = simulate(scn).requests["latency_s"]
    # 1 + 10 + 30 ms of work, and 3 hops x 2 legs x 0.5 ms
    np.testing.assert_allclose(lat.to_numpy(), 0.044, atol=1e-9)


def test_call_probability_and_optional_failures():
    scn = scenario(
        {"front": {"latency": "1ms", "workers": 100,
                   "script": [{"call": {"service": "maybe", "probability": 0.3}},
                              {"call": {"service": "flaky", "optional": True}}]},
         "maybe": {"latency": "1ms", "workers": 100},
         "flaky": {"latency": "1ms", "workers": 100, "errors": "50%"}},
        duration=50.0)
    res = simulate(scn)
    a = res.attempts
    n = len(res.requests)
    k = int((a["service"] == "maybe").sum())
    assert stats.binomtest(k, n, 0.3).pvalue > 1e-3
    flaky = a[a["service"] == "flaky"]
    assert 0.45 < (flaky["status"] == 500).mean() < 0.55
    assert (res.requests["status"] == 200).all()  # optional: the caller tolerates it


def test_failed_required_call_fails_the_caller_with_500():
    scn = scenario(
        {"front": {"latency": "1ms", "workers": 100, "script": [{"call": "bad"}]},
         "bad": {"latency": "1ms", "workers": 100, "errors": {"rate": 1.0, "status": 503}}},
        duration=2.0)
    res = simulate(scn)
    assert (res.attempts.loc[res.attempts["service"] == "bad", "status"] == 503).all()
    assert (res.requests["status"] == 500).all()


def test_error_rate_observed_within_binomial_tolerance():
    scn = scenario({"s": {"latency": "1ms", "workers": 10, "errors": "2%"}}, duration=100.0)
    st = simulate(scn).requests["status"]
    assert stats.binomtest(int((st == 500).sum()), len(st), 0.02).pvalue > 1e-3


def test_cycle_with_max_depth_stops_at_the_depth():
    scn = scenario(
        {"a": {"latency": "1ms", "workers": 100, "script": [{"call": "b"}]},
         "b": {"latency": "1ms", "workers": 100, "script": [{"call": "a"}]}},
        max_depth=5, duration=2.0)
    res = simulate(scn)
    per_request = res.attempts.groupby("request_id").size()
    assert (per_request == 5).all()
    assert (res.requests["status"] == 200).all()


def test_closed_loop_users_never_exceed_their_number_in_flight():
    scn = scenario({"s": {"latency": "10ms", "workers": 100}},
                   traffic=[{"to": "s", "users": 7, "think": "5ms"}], duration=20.0)
    res = simulate(scn)
    assert res.timeseries["in_flight"].max() <= 7
    # each user cycles every 15 ms: 7 / 0.015 = 467/s
    assert len(res.requests) / 20.0 == pytest.approx(7 / 0.015, rel=0.02)


def test_schedule_steps_and_ramps_follow_the_rate():
    scn = scenario({"s": {"latency": "1ms", "workers": 100}},
                   traffic=[{"to": "s", "schedule": [{"until": "10s", "rate": "100/s"},
                                                     {"until": "20s", "ramp_to": "300/s"}]}],
                   duration=30.0)
    ts = simulate(scn).timeseries.groupby("t_s")["arrivals"].sum()
    first, ramp, last = ts.loc[0:9].sum(), ts.loc[10:19].sum(), ts.loc[20:29].sum()
    # Poisson counts: expected 1000, 2000, 3000; 4 sigma bounds
    assert abs(first - 1000) < 4 * math.sqrt(1000)
    assert abs(ramp - 2000) < 4 * math.sqrt(2000)
    assert abs(last - 3000) < 4 * math.sqrt(3000)


def test_uniform_arrivals_are_evenly_spaced():
    scn = scenario({"s": {"latency": "1ms", "workers": 10}},
                   traffic=[{"to": "s", "rate": "10/s", "arrivals": "uniform"}], duration=5.0)
    starts = simulate(scn).requests["start_s"].to_numpy()
    np.testing.assert_allclose(np.diff(starts), 0.1, atol=1e-9)
    assert len(starts) == 50


def test_warmup_is_excluded_from_the_summary_but_kept_in_the_rows():
    scn = scenario({"s": {"latency": "1ms", "workers": 10}}, duration=20.0, warmup=5.0)
    res = simulate(scn)
    r = res.requests
    assert (r["start_s"] < 5.0).any()
    assert res.summary["end_to_end"]["requests"] == int((r["start_s"] >= 5.0).sum())
    assert res.summary["window_s"] == 15.0


def test_unfinished_requests_are_recorded_once_with_status_0():
    scn = scenario({"s": {"latency": "10s", "workers": 1}}, traffic=[{"to": "s", "rate": "1/s"}],
                   duration=5.0, drain="2s")
    res = simulate(scn)
    r = res.requests
    assert r["request_id"].is_unique
    assert (r["status"] == 0).sum() == len(r) - 0 - int((r["status"] == 200).sum())
    assert (r["status"] == 0).sum() >= 3
    assert r.loc[r["status"] == 0, "end_s"].isna().all()


def test_same_seed_gives_identical_tables_and_other_seed_differs():
    scn = scenario(
        {"front": {"latency": {"p50": "2ms", "p99": "20ms"}, "workers": 4, "replicas": 2,
                   "script": [{"call": "back"}]},
         "back": {"latency": {"type": "exponential", "mean": "3ms"}, "workers": 2, "replicas": 3, "errors": "1%"}},
        duration=10.0)
    a, b, c = simulate(scn), simulate(scn), simulate(scn, seed=12)
    pd.testing.assert_frame_equal(a.attempts, b.attempts)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    assert a.summary == b.summary
    assert not a.requests["latency_s"].equals(c.requests["latency_s"])


def test_round_robin_spreads_calls_evenly_over_replicas():
    scn = scenario({"s": {"latency": "1ms", "workers": 10, "replicas": 4}}, duration=10.0)
    counts = simulate(scn).attempts.groupby("replica").size()
    assert counts.max() - counts.min() <= 1


def test_cross_zone_latency_applies_only_across_zones():
    scn = scenario(
        {"front": {"latency": {"type": "constant", "value": 0}, "workers": 100, "zone": "a",
                   "script": [{"call": "back"}]},
         "back": {"latency": {"type": "constant", "value": 0}, "workers": 100, "replicas": 2, "zones": ["a", "b"]}},
        traffic=[{"to": "front", "rate": "100/s", "zone": "a"}],
        network={"latency": 0, "cross_zone": "5ms"}, duration=5.0)
    a = simulate(scn).attempts
    back = a[a["service"] == "back"]
    same, cross = back[back["zone"] == "a"], back[back["zone"] == "b"]
    np.testing.assert_allclose(same["latency_s"], 0.0, atol=1e-12)
    np.testing.assert_allclose(cross["latency_s"], 0.010, atol=1e-12)


def test_summary_mode_agrees_with_full_mode():
    data = dict(services={"s": {"latency": {"p50": "5ms", "p99": "50ms"}, "workers": 4, "errors": "1%"}},
                traffic=[{"to": "s", "rate": "300/s"}], duration=60.0, warmup=5.0)
    full = simulate(scenario(**data)).summary
    summ = simulate(scenario(**data, record="summary")).summary
    assert summ["end_to_end"]["requests"] == full["end_to_end"]["requests"]
    assert summ["end_to_end"]["status"] == full["end_to_end"]["status"]
    for q in ("p50", "p90", "p99"):
        assert summ["end_to_end"]["latency_s"][q] == pytest.approx(full["end_to_end"]["latency_s"][q], rel=2e-3)
    assert summ["services"]["s"]["utilization"] == full["services"]["s"]["utilization"]


def test_replications_give_confidence_intervals_that_cover_the_mean():
    scn = scenario({"s": {"latency": {"type": "exponential", "mean": "5ms"}, "workers": 1}},
                   traffic=[{"to": "s", "rate": "100/s"}], duration=30.0, replications=5)
    rs = run(scn)
    lo, hi = rs.summary["ci"]["end_to_end.latency_s.mean"]
    assert lo < rs.summary["end_to_end"]["latency_s"]["mean"] < hi
    assert rs.summary["replications"] == 5
    assert set(rs.tables()["requests"]["replication"].unique()) == set(range(5))


def test_closed_loop_without_any_simulated_time_is_refused_not_hung():
    from meshsim import SimulationError

    scn = scenario({"s": {"latency": {"type": "constant", "value": 0}}},
                   traffic=[{"name": "tight", "to": "s", "users": 2}], duration=1.0)
    with pytest.raises(SimulationError, match="traffic.tight: closed-loop users cycle without simulated time"):
        simulate(scn)


def test_timeseries_counts_every_arrival_and_completion_including_the_last_second():
    scn = scenario({"s": {"latency": "1ms", "workers": 10}},
                   traffic=[{"to": "s", "rate": "100/s", "arrivals": "uniform"}], duration=10.0, drain=0)
    res = simulate(scn)
    ts = res.timeseries
    assert ts["arrivals"].tolist() == [100] * 10
    assert ts["completions"].tolist() == [100] * 10
    assert ts["arrivals"].sum() == len(res.requests)
