"""Envoy counters per cluster, and the plain path's connection counts (conformance finding D3).

Envoy counts requests and connections on the cluster the route chose: a subset (``outbound|80|v1|svc``,
the simulator's ``svc|v1``) when the destination has routes, else the whole service
(``outbound|80||svc``, ``svc|*``; ``svc|default`` for a service without declared versions). On the
plain path (no policies) a caller's sidecar opens a new HTTP/1.1 connection to a host exactly when
every connection it has there is busy, and keeps it, so ``upstream_cx_total`` per caller and host is
the peak number of requests in flight at once.
"""

from __future__ import annotations

import pytest

from meshsim.config import parse_scenario
from meshsim.sim import simulate

WORK = {"type": "constant", "value": "25ms"}


def _scn(services: dict, traffic: list, *, mesh: dict | None = None, record: str = "full", **top) -> object:
    data = {"name": "cx", "seed": 5, "duration": "3s", "warmup": 0, "drain": "1s", "network": {"latency": 0},
            "services": services, "traffic": traffic, "mesh": mesh or {}, "record": record}
    data.update(top)
    return parse_scenario(data)


def _stats(scn) -> dict:
    return simulate(scn).summary["stats"]


@pytest.mark.parametrize("record", ["full", "summary"])
@pytest.mark.parametrize("users", [1, 3])
def test_closed_loop_opens_one_connection_per_user(users, record):
    # `users` requests in flight from the first instant on, never more: that many connections, kept
    scn = _scn({"up": {"latency": WORK, "workers": 8}}, [{"name": "u", "to": "up", "users": users}], record=record)
    st = _stats(scn)["up|default"]
    assert st["upstream_cx_total"] == users
    assert st["upstream_cx_http1_total"] == users
    assert st["upstream_rq_total"] > 100 * users


def test_open_loop_peak_concurrency_is_the_connection_count():
    # evenly spaced arrivals every 10 ms, each served in 25 ms (no queueing: 8 workers): at most
    # 3 requests in flight at once (t, t + 10, t + 20), and 3 connections
    scn = _scn({"up": {"latency": WORK, "workers": 8}},
               [{"name": "u", "to": "up", "rate": "100/s", "arrivals": "uniform"}])
    assert _stats(scn)["up|default"]["upstream_cx_total"] == 3


def test_connections_are_counted_per_caller_sidecar():
    # 1 user -> front (2 replicas, taken in turn) -> back: back never has more than one request in
    # flight, but from two callers, whose sidecars each open their own connection to it
    scn = _scn({"front": {"latency": "1ms", "workers": 8, "replicas": 2, "script": ["work", {"call": "back"}]},
                "back": {"latency": WORK, "workers": 8}},
               [{"name": "u", "to": "front", "users": 1}])
    st = _stats(scn)
    assert st["front|default"]["upstream_cx_total"] == 2  # the source's sidecar: one per front replica
    assert st["back|default"]["upstream_cx_total"] == 2


@pytest.mark.parametrize(("users", "connections"), [(1, 2), (3, 4)])
def test_plain_path_agrees_with_the_policy_paths_pool(users, connections):
    # two replicas taken in turn: 1 user alternates between them (one connection each); 3 users put
    # 2 requests on one replica and 1 on the other, then the other way round (2 connections each).
    # With no network delay a connection is up at once on the policy path too: the same counts
    services = {"up": {"latency": WORK, "workers": 8, "replicas": 2}}
    traffic = [{"name": "u", "to": "up", "users": users}]
    plain = _stats(_scn(services, traffic))["up|default"]
    pooled = _stats(_scn(services, traffic, mesh={"up": {"circuit_breakers": {"max_connections": 1000}}}))
    assert plain["upstream_cx_total"] == pooled["up|default"]["upstream_cx_total"] == connections
    assert plain["upstream_rq_total"] == pooled["up|default"]["upstream_rq_total"]


@pytest.mark.parametrize("record", ["full", "summary"])
def test_route_timeout_resets_close_the_connection(record):
    # every request outlives the 10 ms route timeout: its HTTP/1.1 stream is reset, which closes the
    # connection, so each request of the one user opens a new one
    scn = _scn({"up": {"latency": WORK, "workers": 8}}, [{"name": "u", "to": "up", "users": 1}],
               mesh={"up": {"timeout": "10ms"}}, record=record)
    st = _stats(scn)["up|default"]
    n = st["upstream_rq_timeout"]
    assert n > 100
    assert st["upstream_cx_destroy_local_with_active_rq"] == st["upstream_rq_tx_reset"] == n
    assert st["upstream_cx_destroy"] == st["upstream_cx_destroy_local"] == n
    assert st["upstream_cx_total"] in (n, n + 1)  # the last request may still be out at the end


@pytest.mark.parametrize("record", ["full", "summary"])
def test_whole_service_traffic_is_counted_on_the_whole_service_cluster(record):
    services = {"up": {"latency": WORK, "workers": 8, "versions": {"v1": {}, "v2": {}}}}
    traffic = [{"name": "u", "to": "up", "users": 2}]
    res = simulate(_scn(services, traffic, record=record))
    st = res.summary["stats"]
    assert set(st) == {"up|*"}  # no per-version request counters: Envoy has no such cluster here
    e2e = res.summary["services"]["up"]
    assert st["up|*"]["upstream_rq_total"] == e2e["requests"]
    assert st["up|*"]["upstream_cx_total"] == 2
    # the per-version view stays in the services block (and the attempt rows)
    versions = e2e["versions"]
    assert versions["v1"]["requests"] + versions["v2"]["requests"] == e2e["requests"]
    assert min(versions["v1"]["requests"], versions["v2"]["requests"]) > 0


@pytest.mark.parametrize("record", ["full", "summary"])
def test_routed_traffic_is_counted_on_the_subset_clusters(record):
    services = {"up": {"latency": WORK, "workers": 8, "versions": {"v1": {}, "v2": {}}}}
    traffic = [{"name": "u", "to": "up", "rate": "100/s", "arrivals": "uniform"}]
    res = simulate(_scn(services, traffic, mesh={"up": {"routes": [{"route": {"v1": 50, "v2": 50}}]}},
                        record=record))
    st = res.summary["stats"]
    assert set(st) == {"up|v1", "up|v2"}
    for v in ("v1", "v2"):
        assert st[f"up|{v}"]["upstream_rq_total"] == res.summary["services"]["up"]["versions"][v]["requests"]
        assert 1 <= st[f"up|{v}"]["upstream_cx_total"] <= 3


@pytest.mark.parametrize("record", ["full", "summary"])
def test_policy_path_without_routes_counts_on_the_whole_service(record):
    # one declared version, no routes: Envoy's cluster is outbound|80||up all the same
    services = {"up": {"latency": WORK, "workers": 8, "versions": {"v1": {"replicas": 2}}}}
    traffic = [{"name": "u", "to": "up", "users": 2}]
    res = simulate(_scn(services, traffic, mesh={"up": {"retries": {"num_retries": 1}}}, record=record))
    st = res.summary["stats"]
    assert set(st) == {"up|*"}
    assert st["up|*"]["upstream_rq_total"] == res.summary["services"]["up"]["requests"]
    assert st["up|*"]["upstream_cx_total"] >= 2


def test_mirror_shadows_count_on_the_mirrors_subset():
    services = {"up": {"latency": WORK, "workers": 8, "versions": {"v1": {}, "v2": {}}}}
    traffic = [{"name": "u", "to": "up", "rate": "100/s", "arrivals": "uniform"}]
    mesh = {"up": {"routes": [{"route": {"v1": 100}, "mirror": "v2"}]}}
    for record in ("full", "summary"):
        res = simulate(_scn(services, traffic, mesh=mesh, record=record))
        st = res.summary["stats"]
        assert st["up|v2"]["upstream_rq_total"] == st["up|v1"]["upstream_rq_total"] > 250


def test_same_seed_same_counters():
    services = {"front": {"latency": {"type": "exponential", "mean": "3ms"}, "workers": 4, "replicas": 2,
                          "script": ["work", {"call": "up"}]},
                "up": {"latency": {"type": "exponential", "mean": "8ms"}, "workers": 2,
                       "versions": {"v1": {"replicas": 2}, "v2": {}}}}
    traffic = [{"name": "u", "to": "front", "rate": "150/s"}]
    scn = _scn(services, traffic, network={"latency": "0.3ms"}, mesh={"up": {"timeout": "30ms"}})
    a, b = simulate(scn).summary, simulate(scn).summary
    assert a["stats"] == b["stats"]
    assert a["stats"]["up|*"]["upstream_cx_total"] > 2


def test_huge_meshes_count_the_same_with_a_dict_per_host(monkeypatch):
    # past _DENSE_SLOTS the per-host connection lists become dicts keyed by the possible callers
    import meshsim.sim._engine as engine

    scn = _scn({"front": {"latency": "1ms", "workers": 8, "replicas": 2, "script": ["work", {"call": "back"}]},
                "back": {"latency": WORK, "workers": 8, "replicas": 2}},
               [{"name": "u", "to": "front", "users": 3}, {"name": "v", "to": "back", "rate": "50/s"}],
               network={"latency": "0.2ms"})
    dense = simulate(scn).summary["stats"]
    monkeypatch.setattr(engine, "_DENSE_SLOTS", 0)
    sparse = simulate(scn).summary["stats"]
    assert sparse == dense
    assert dense["back|default"]["upstream_cx_total"] >= 4


@pytest.mark.parametrize("timeout", [None, "60ms"])
def test_plain_connections_balance_under_chaos(timeout):
    # crashes, resets and a partition close plain-path connections: after the drain every connection
    # still open is idle, and opened - closed = idle, cluster by cluster
    from meshsim.sim import Simulation

    chaos = [{"kind": "crash", "target": {"service": "back", "replica": 0}, "start": "2.5s", "duration": "1s"},
             {"kind": "resets", "target": "back", "rate": "10%", "start": "1s", "duration": "3s"},
             {"kind": "partition", "from": "front", "to": {"service": "back", "replica": 1},
              "start": "4.2s", "duration": "0.5s"}]
    scn = _scn({"front": {"latency": "1ms", "workers": 200, "replicas": 2, "script": [{"call": "back"}]},
                "back": {"latency": {"type": "exponential", "mean": "20ms"}, "workers": 4, "replicas": 3}},
               [{"name": "u", "to": "front", "rate": "150/s"}], network={"latency": "0.5ms"}, chaos=chaos,
               duration="6s", drain="10s", mesh={"back": {"timeout": timeout}} if timeout else None)
    sim = Simulation(scn)
    st = sim.run().summary["stats"]["back|default"]
    assert not sim.open_requests
    idle = sum(sum(h.cx_free) for h in sim.services["back"].hosts)
    assert all(min(h.cx_free) >= 0 for h in sim.hosts if h.cx_free is not None)
    assert st["upstream_cx_total"] - st["upstream_cx_destroy"] == idle > 0
    assert st["upstream_cx_destroy_remote"] > 0 and st["upstream_cx_connect_fail"] > 0
