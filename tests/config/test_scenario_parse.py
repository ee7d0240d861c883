"""A valid scenario parses into the models the engine reads."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from meshsim.config import (
    Call,
    Network,
    Parallel,
    ResolvedVersion,
    Scenario,
    Sleep,
    TrafficSource,
    Work,
    parse_scenario,
)
from meshsim.latency import Constant, ErrorModel, LatencyModel
from meshsim.policies.routing import Route, Router


def test_full_example_top_level(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    assert isinstance(s, Scenario)
    assert (s.name, s.seed, s.duration, s.warmup, s.drain) == ("bookinfo", 7, 60.0, 5.0, 30.0)
    assert (s.replications, s.max_depth, s.record) == (2, None, "summary")
    assert s.end_time == 90.0
    assert s.network.latency.mean() == pytest.approx(1e-4)
    assert s.network.cross_zone.mean() == pytest.approx(1e-3)
    assert list(s.services) == ["productpage", "details", "ratings", "reviews"]
    assert s.source == "<scenario>"


def test_defaults() -> None:
    s = parse_scenario(
        {
            "name": "x",
            "duration": 5,
            "services": {"a": {"latency": "1ms"}},
            "traffic": [{"to": "a", "rate": 1}],
        }
    )
    assert (s.seed, s.warmup, s.drain, s.replications, s.max_depth, s.record) == (
        0,
        0.0,
        60.0,
        1,
        None,
        "full",
    )
    assert isinstance(s.network, Network)
    assert s.network.latency == Constant(value=1e-4)
    assert s.network.cross_zone.mean() == 0.0
    assert s.mesh == {}
    (rv,) = s.services["a"].resolved_versions("a").values()
    assert (rv.version, rv.labels, rv.replicas, rv.workers, rv.queue, rv.concurrency) == (
        "default",
        {},
        1,
        1,
        None,
        "blocking",
    )
    assert rv.errors is None
    assert rv.zones == (None,)
    assert rv.script == (Work(latency=None),)
    src = s.traffic[0]
    assert (src.name, src.path, src.method, src.headers, src.arrivals, src.think) == (
        "traffic-0",
        "/",
        "GET",
        {},
        "poisson",
        None,
    )


def test_script_steps(full: dict[str, Any]) -> None:
    script = parse_scenario(full).services["productpage"].script
    assert script is not None
    call0, call1, par, work, work5, sleep = script
    assert call0 == Call(service="details")
    assert isinstance(call1, Call)
    assert (call1.service, call1.probability, call1.optional, call1.path, call1.method, call1.headers) == (
        "reviews",
        0.8,
        True,
        "/reviews",
        "GET",
        {"x-a": "b"},
    )
    assert isinstance(par, Parallel)
    assert [c.service for c in par.parallel] == ["ratings", "details"] == [c.service for c in par.calls]
    assert work == Work() and work.latency is None
    assert isinstance(work5, Work) and work5.latency == Constant(value=0.005)
    assert isinstance(sleep, Sleep) and sleep.latency.mean() == pytest.approx(0.02)
    assert [step.kind for step in script] == ["call", "call", "parallel", "work", "work", "sleep"]


def test_resolved_versions_override_and_inherit(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    versions = s.services["reviews"].resolved_versions("reviews")
    assert list(versions) == ["v1", "v2", "v3"]
    v1, v2, v3 = versions.values()
    assert all(isinstance(v, ResolvedVersion) for v in versions.values())
    assert (v1.service, v1.version, v1.labels, v1.replicas) == (
        "reviews",
        "v1",
        {"version": "v1", "track": "stable"},
        2,
    )
    assert v1.zones == ("a", "b")  # service zones, round-robin by replica index
    assert v1.errors == ErrorModel(rate=0.005, status=503)
    assert isinstance(v1.latency, LatencyModel) and v1.latency.mean() == pytest.approx(0.01)
    assert v1.script == (Work(),)
    assert v2.labels == {"version": "v2"}
    assert v2.zones == ("a",)
    assert v2.script == (Work(), Call(service="ratings"))  # implicit work first
    assert v3.zones == ("c",)  # a version's zone replaces the service's zones
    assert v3.latency.mean() == pytest.approx(0.03)
    assert v3.errors is None  # explicitly cleared
    assert v3.queue == 5


def test_zones_round_robin(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    (pp,) = s.services["productpage"].resolved_versions("productpage").values()
    assert pp.zones == ("a", "b")  # 2 replicas over [a, b, c]
    full["services"]["productpage"]["replicas"] = 5
    (pp,) = parse_scenario(full).services["productpage"].resolved_versions("productpage").values()
    assert pp.zones == ("a", "b", "c", "a", "b")
    (d,) = s.services["details"].resolved_versions("details").values()
    assert d.zones == ("a",)


def test_no_implicit_work_when_script_has_work(full: dict[str, Any]) -> None:
    (pp,) = parse_scenario(full).services["productpage"].resolved_versions("productpage").values()
    assert pp.script[0] == Call(service="details")
    assert sum(isinstance(step, Work) for step in pp.script) == 2


def test_version_queue_unlimited_overrides_service_limit(minimal: dict[str, Any]) -> None:
    minimal["services"]["back"]["queue"] = 10
    minimal["services"]["back"]["versions"]["v2"] = {"queue": "unlimited"}
    v = parse_scenario(minimal).services["back"].resolved_versions("back")
    assert (v["v1"].queue, v["v2"].queue) == (10, None)


def test_version_latency_only(minimal: dict[str, Any]) -> None:
    minimal["services"]["back"] = {"versions": {"v1": {"latency": "1ms"}, "v2": {"latency": "2ms"}}}
    v = parse_scenario(minimal).services["back"].resolved_versions("back")
    assert [x.latency.mean() for x in v.values()] == pytest.approx([0.001, 0.002])


def test_traffic_sources(full: dict[str, Any]) -> None:
    users, ramp, testers = parse_scenario(full).traffic
    assert isinstance(users, TrafficSource)
    assert (users.name, users.to, users.rate, users.path, users.closed_loop) == (
        "users",
        "productpage",
        200.0,
        "/productpage",
        False,
    )
    assert users.headers == {"end-user": {"jason": 0.05}, "x-env": {"prod": 1.0}}
    assert ramp.name == "traffic-1" and ramp.rate is None and ramp.arrivals == "uniform"
    assert ramp.schedule is not None
    assert [(seg.until, seg.rate, seg.ramp_to) for seg in ramp.schedule] == [
        (30.0, 100.0, None),
        (40.0, None, 300.0),
    ]
    assert (testers.users, testers.closed_loop, testers.rate, testers.schedule) == (5, True, None, None)
    assert testers.think is not None and testers.think.mean() == 1.0


def test_schedule_segments_and_rate_at(full: dict[str, Any]) -> None:
    ramp = parse_scenario(full).traffic[1]
    assert ramp.segments(60.0) == [
        (0.0, 30.0, 100.0, 100.0),
        (30.0, 40.0, 100.0, 300.0),
        (40.0, 60.0, 300.0, 300.0),
    ]
    assert ramp.rate_at(10.0) == 100.0
    assert ramp.rate_at(35.0) == pytest.approx(200.0)
    assert ramp.rate_at(50.0, duration=60.0) == 300.0
    assert ramp.rate_at(61.0, duration=60.0) == 0.0
    # cut at the end of the run: a ramp stops at the rate it has reached
    assert ramp.segments(35.0) == [(0.0, 30.0, 100.0, 100.0), (30.0, 35.0, 100.0, 200.0)]


def test_first_ramp_starts_from_zero(minimal: dict[str, Any]) -> None:
    minimal["traffic"] = [{"to": "front", "schedule": [{"until": "10s", "ramp_to": "100/s"}]}]
    src = parse_scenario(minimal).traffic[0]
    assert src.segments(10.0) == [(0.0, 10.0, 0.0, 100.0)]
    assert src.rate_at(5.0) == 50.0


def test_traffic_as_mapping(minimal: dict[str, Any]) -> None:
    minimal["traffic"] = {"users": {"to": "front", "rate": "5/s"}, "bots": {"to": "back", "users": 3}}
    s = parse_scenario(minimal)
    assert [t.name for t in s.traffic] == ["users", "bots"]
    assert s.entry_services() == ["front", "back"]


def test_header_table_normalised(minimal: dict[str, Any]) -> None:
    minimal["traffic"][0]["headers"] = {
        "X-Env": "prod",
        "x-n": 5,
        "x-flag": True,
        "u": {"a": "10%", "b": 0.2},
    }
    assert parse_scenario(minimal).traffic[0].headers == {
        "x-env": {"prod": 1.0},
        "x-n": {"5": 1.0},
        "x-flag": {"true": 1.0},
        "u": {"a": 0.1, "b": 0.2},
    }


def test_mesh_routes(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    routes = s.mesh["reviews"].routes
    assert all(isinstance(r, Route) for r in routes)
    assert routes[0].name == "jason"
    assert [(d.version, d.weight) for d in routes[1].destinations] == [("v1", 90), ("v3", 10)]
    router = Router(s.mesh["reviews"].routing_policy(), s.services["reviews"].version_names())
    assert router.select("/reviews", "GET", {"end-user": "jason"}, 0.99) == "v2"
    assert router.select("/reviews", "GET", {}, 0.95) == "v3"


def test_mesh_http_key_and_default_version(minimal: dict[str, Any]) -> None:
    minimal["mesh"] = {
        "back": {"http": [{"route": "v2"}]},
        "front": {"routes": [{"match": {"uri": {"prefix": "/"}}}, {"route": "default"}]},
    }
    s = parse_scenario(minimal)
    assert s.mesh["back"].routes[0].destinations[0].version == "v2"
    assert s.mesh["front"].routes[0].destinations[0].version == "default"


def test_call_graph_and_entries(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    assert s.call_graph() == {
        "productpage": {"details", "reviews", "ratings"},
        "details": set(),
        "ratings": set(),
        "reviews": {"ratings"},
    }
    assert s.entry_services() == ["productpage"]


def test_cycle_allowed_with_max_depth(minimal: dict[str, Any]) -> None:
    minimal["services"]["back"]["script"] = [{"call": "front"}]
    minimal["max_depth"] = 4
    s = parse_scenario(minimal)
    assert s.max_depth == 4
    assert s.call_graph()["back"] == {"front"}


def test_self_call_is_a_cycle_too(minimal: dict[str, Any]) -> None:
    minimal["services"]["back"]["versions"]["v2"] = {"script": [{"call": "back"}]}
    minimal["max_depth"] = 3
    assert parse_scenario(minimal).call_graph()["back"] == {"back"}


def test_units_everywhere(minimal: dict[str, Any]) -> None:
    minimal.update(duration="1m30s", warmup=2, drain="500ms", seed="42", replications="3")
    minimal["services"]["front"].update(replicas="2", workers="1k", queue="0")
    minimal["traffic"][0]["rate"] = "12k/min"
    s = parse_scenario(minimal)
    assert (s.duration, s.warmup, s.drain, s.seed, s.replications) == (90.0, 2.0, 0.5, 42, 3)
    f = s.services["front"]
    assert (f.replicas, f.workers, f.queue) == (2, 1000, 0)
    assert s.traffic[0].rate == 200.0


def test_models_are_frozen(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    with pytest.raises(ValidationError):
        s.seed = 3  # type: ignore[misc]
    rv = next(iter(s.services["reviews"].resolved_versions("reviews").values()))
    with pytest.raises(AttributeError):
        rv.replicas = 9  # type: ignore[misc]


def test_parse_returns_a_scenario_unchanged() -> None:
    s = parse_scenario(
        {"name": "x", "duration": 1, "services": {"a": {"latency": 0}}, "traffic": [{"to": "a", "users": 1}]}
    )
    assert parse_scenario(s) is s  # type: ignore[arg-type]
    assert math.isclose(s.duration, 1.0)


def test_version_null_inherits_counts_but_clears_errors(minimal: dict[str, Any]) -> None:
    minimal["services"]["back"].update(replicas=3, errors="1%", queue=4)
    minimal["services"]["back"]["versions"]["v2"] = {
        "replicas": None,
        "latency": None,
        "errors": None,
        "queue": None,
    }
    v = parse_scenario(minimal).services["back"].resolved_versions("back")
    assert (v["v2"].replicas, v["v2"].latency.mean(), v["v2"].errors, v["v2"].queue) == (3, 0.005, None, None)
    assert (v["v1"].replicas, v["v1"].errors is not None, v["v1"].queue) == (3, True, 4)


def test_equality_ignores_spelling_and_source(minimal: dict[str, Any]) -> None:
    a = parse_scenario(minimal, source="a.yaml")
    minimal["duration"] = 10
    minimal["traffic"] = {"traffic-0": {"to": "front", "rate": 10}}
    assert parse_scenario(minimal, source="b.yaml") == a
