"""import(export(x)) == x: every bundled scenario, a scenario using every field, random policies, and back again.

Equality is policy equality as the simulator sees it: :func:`meshsim.interop.istio.mesh_view` of
``scenario.mesh_for(service)``, which holds the resolved ``route_policies`` and
``cluster_policies`` of every route and cluster.
"""

from __future__ import annotations

import copy
import glob
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from istio_helpers import RICH, rich, round_trip, scenario, view

from meshsim.config import load_scenario
from meshsim.interop.istio import export_istio, import_istio, view_differences, write_istio

BUNDLED = sorted(glob.glob("scenarios/*.yaml"))

#: Envoy enforces success-rate ejection at 100 % by default; istiod always writes enforcing_success_rate 0
#: (the success-rate settings then do nothing, so the view leaves them out)
_SUCCESS_RATE = ("enforcing_success_rate", "success_rate_minimum_hosts", "success_rate_request_volume",
                 "success_rate_stdev_factor")


def _success_rate(service: str) -> dict[str, str]:
    return {f"{service}: clusters.*.outlier_detection.{f}": "Istio has no success-rate ejection" for f in _SUCCESS_RATE}


def _host_selection(service: str) -> dict[str, str]:
    # previous_hosts with Envoy's 1 host-selection attempt; istiod always writes 5 with the predicate
    return {f"{service}: route.retries.host_selection_retry_max_attempts": "istiod writes 5 attempts"}


#: What a bundled scenario has that Istio cannot express (service: view path -> why); the export reports
#: each one. A scenario not listed must round-trip exactly.
EXCLUDED: dict[str, dict[str, str]] = {
    "outlier-ejection": _success_rate("backend"),
    "zone-outage": {**_success_rate("frontend"), **_success_rate("catalog"),
                    **_host_selection("frontend"), **_host_selection("catalog")},
}


def test_every_bundled_scenario_is_covered() -> None:
    assert len(BUNDLED) >= 6 and set(EXCLUDED) <= {Path(p).stem for p in BUNDLED}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: Path(p).stem)
@pytest.mark.parametrize("all_services", [False, True], ids=["with-policies", "all-services"])
def test_bundled_scenarios_round_trip(path: str, all_services: bool, tmp_path: Path) -> None:
    scn = load_scenario(path)
    exported, back = round_trip(scn, tmp_path, all_services=all_services)
    excluded = EXCLUDED.get(Path(path).stem, {})
    differences = set()
    for service in exported.documents:
        differences |= {f"{service}: {p}" for p, _, _ in view_differences(view(scn, service), view(back, service))}
    # each excluded field is reported by the export, naming service and field
    for key in excluded:
        service, field = key.split(": ")
        assert any(w.startswith(f"{service}: ") and field.rsplit(".", 1)[1] in w for w in exported.warnings), key
    assert differences == set(excluded), "a bundled scenario lost fields: list them in EXCLUDED, with why"
    # services not exported keep their (absent) entries: the topology's mesh is merged
    if not all_services:
        assert set(exported.documents) == set(scn.mesh)
    else:
        assert set(exported.documents) == set(scn.services)


def test_a_scenario_using_every_expressible_field_round_trips_without_a_warning(tmp_path: Path) -> None:
    scn = rich()
    exported, back = round_trip(scn, tmp_path)
    assert [w for w in exported.warnings if not w.startswith("front, plain: no mesh: entry")] == []
    for service in ("api", "pay"):
        assert view_differences(view(scn, service), view(back, service)) == []
    # the resolved objects themselves, where the spelling cannot differ
    assert back.mesh_for("api").route_policies(0).retries.retry_on == scn.mesh_for("api").route_policies(0).retries.retry_on
    assert back.mesh_for("pay").cluster_policies(None).load_balancer == scn.mesh_for("pay").cluster_policies(None).load_balancer


def test_one_catch_all_route_round_trips_as_the_implicit_route(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["mesh"] = {"plain": {"routes": [{"name": "all", "route": "default", "timeout": "2s",
                                          "retries": {"retry_on": "5xx", "num_retries": 2,
                                                      "retry_budget": {"budget_percent": 10}}}]}}
    scn = scenario(data)
    exported, back = round_trip(scn, tmp_path)
    assert back.mesh_for("plain").routes == ()  # istiod cannot tell the two apart
    assert view_differences(view(scn, "plain"), view(back, "plain")) == []
    assert exported.documents["plain"][0]["spec"]["http"][0]["name"] == "all"


def test_istio_in_scenario_out_and_back_is_stable(tmp_path: Path) -> None:
    """import(export(import(files))) == import(files), kept fields included."""
    files = sorted(glob.glob("examples/istio/*.yaml"))
    first = import_istio(files, topology="scenarios/bookinfo.yaml")
    out = write_istio(tmp_path / "out", export_istio(first.scenario))
    topo = tmp_path / "topo.yaml"
    import yaml

    topo.write_text(yaml.safe_dump(first.scenario._raw, sort_keys=False), encoding="utf-8")
    second = import_istio(out, topology=topo, merge=True)
    for service in first.scenario.services:
        assert view_differences(view(first.scenario, service), view(second.scenario, service)) == [], service
        assert second.scenario.mesh_for(service).istio == first.scenario.mesh_for(service).istio, service


# ---------------------------------------------------------------------------------------------- property

ms = st.integers(min_value=1, max_value=20_000).map(lambda n: f"{n}ms")
percent = st.one_of(
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=1, max_value=9999).map(lambda n: {"numerator": n, "denominator": "TEN_THOUSAND"}),
    st.integers(min_value=1, max_value=999_999).map(lambda n: {"numerator": n, "denominator": "MILLION"}),
)
TOKENS = ["5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "refused-stream",
          "retriable-4xx", "retriable-status-codes", "envoy-ratelimited", "cancelled", "deadline-exceeded",
          "internal", "resource-exhausted", "unavailable"]


@st.composite
def retries(draw: Any, *, budget: bool = False) -> Any:
    if draw(st.booleans()):
        return None
    out: dict[str, Any] = {
        "retry_on": ",".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4, unique=True))),
        "num_retries": draw(st.integers(min_value=1, max_value=5)),
    }
    if "retriable-status-codes" in out["retry_on"]:
        out["retriable_status_codes"] = draw(st.lists(st.sampled_from([429, 500, 502, 503, 504]), max_size=3))
    if draw(st.booleans()):
        out["per_try_timeout"] = draw(ms)
    if draw(st.booleans()):
        out["retry_back_off"] = {"base_interval": draw(ms)}
    if draw(st.booleans()):
        out["retry_host_predicate"] = ["previous_hosts"]
        out["host_selection_retry_max_attempts"] = 5
    if draw(st.booleans()):
        out["retry_priority"] = "previous_priorities"
    if budget and draw(st.booleans()):
        out["retry_budget"] = {"budget_percent": draw(st.integers(min_value=0, max_value=100)),
                               "min_retry_concurrency": draw(st.integers(min_value=1, max_value=9))}
    return out


@st.composite
def route_blocks(draw: Any, versions: list[str], *, budget: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["timeout"] = draw(st.one_of(st.just(0), ms))
    r = draw(retries(budget=budget))
    if r is not None or draw(st.booleans()):
        out["retries"] = r
    if draw(st.booleans()):
        fault: dict[str, Any] = {}
        if draw(st.booleans()):
            fault["delay"] = {"fixed_delay": draw(ms), "percentage": draw(percent)}
        if not fault or draw(st.booleans()):
            fault["abort"] = {"http_status": draw(st.integers(min_value=200, max_value=599)),
                              "percentage": draw(percent)}
        out["fault"] = fault
    if draw(st.booleans()):
        out["mirror"] = {"version": draw(st.sampled_from(versions)), "percentage": draw(percent)}
    return out


HEADER = st.one_of(
    st.builds(lambda v: {"exact": v}, st.sampled_from(["a", "b-1"])),
    st.builds(lambda v: {"prefix": v}, st.sampled_from(["x", "pre"])),
    st.builds(lambda v: {"regex": v}, st.sampled_from(["[a-z]+", "v[0-9]"])),
    st.builds(lambda v: {"present": v}, st.booleans()),
)
MATCH = st.fixed_dictionaries({}, optional={
    "uri": st.one_of(st.builds(lambda v: {"exact": v}, st.sampled_from(["/a", "/b"])),
                     st.builds(lambda v: {"prefix": v}, st.sampled_from(["/", "/api"])),
                     st.builds(lambda v: {"regex": v}, st.sampled_from(["/v[0-9]+/.*"]))),
    "headers": st.dictionaries(st.sampled_from(["x-a", "x-b", "end-user"]), HEADER, min_size=1, max_size=2),
    "method": st.sampled_from(["GET", "POST"]),
})


@st.composite
def routes(draw: Any, versions: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=3))):
        route: dict[str, Any] = {}
        if draw(st.booleans()):
            route["name"] = f"r{i}"
        matches = draw(st.lists(MATCH, max_size=2))
        if matches:
            route["match"] = matches
        chosen = draw(st.lists(st.sampled_from(versions), min_size=1, max_size=len(versions), unique=True))
        if len(chosen) == 1:
            route["route"] = chosen[0]
        else:
            weights = draw(st.lists(st.integers(min_value=0, max_value=100), min_size=len(chosen),
                                    max_size=len(chosen)).filter(lambda w: sum(w) > 0))
            route["route"] = dict(zip(chosen, weights, strict=True))
        route.update(draw(route_blocks(versions)))
        out.append(route)
    return out


PRIMES = [131, 65537, 1009]


@st.composite
def cluster_blocks(draw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        cb: dict[str, Any] = {}
        for key in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
            if draw(st.booleans()):
                cb[key] = draw(st.integers(min_value=1, max_value=100_000))
        if draw(st.booleans()):
            cb["connect_timeout"] = draw(ms)
        if draw(st.booleans()):
            cb["max_requests_per_connection"] = draw(st.integers(min_value=0, max_value=1000))
        cb["protocol"] = draw(st.sampled_from(["http1", "http2", "downstream"]))
        if cb["protocol"] == "http2" and draw(st.booleans()):
            cb["max_concurrent_streams"] = draw(st.integers(min_value=1, max_value=1000))
        if draw(st.booleans()):
            cb["idle_timeout"] = draw(st.one_of(st.just(0), ms))
        if draw(st.booleans()):
            cb["max_connection_duration"] = draw(ms)
        out["circuit_breakers"] = cb
    od = None
    if draw(st.booleans()):
        od = {"consecutive_5xx": draw(st.integers(min_value=0, max_value=10)),
              "interval": draw(ms), "base_ejection_time": draw(ms),
              "max_ejection_percent": draw(st.integers(min_value=1, max_value=100)),
              "enforcing_success_rate": 0}
        if od["consecutive_5xx"] == 0:
            od["enforcing_consecutive_5xx"] = 0
        if draw(st.booleans()):
            od["consecutive_gateway_failure"] = draw(st.integers(min_value=1, max_value=10))
            od["enforcing_consecutive_gateway_failure"] = 100
        out["outlier_detection"] = od
    if draw(st.booleans()) or od is not None:
        policy = draw(st.sampled_from(["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"]))
        lb: dict[str, Any] = {"lb_policy": policy}
        if policy in ("RING_HASH", "MAGLEV"):
            lb["hash_key"] = draw(st.sampled_from([{"header_name": "x-u"}, {"use_source_ip": True},
                                                   {"cookie": "c"}, {"query_parameter": "q"}]))
            if policy == "RING_HASH":
                lb["minimum_ring_size"] = draw(st.integers(min_value=1, max_value=4096))
            else:
                lb["table_size"] = draw(st.sampled_from(PRIMES))
        elif policy in ("ROUND_ROBIN", "LEAST_REQUEST") and draw(st.booleans()):
            lb["slow_start"] = {"slow_start_window": draw(ms),
                                "aggression": draw(st.sampled_from([1.0, 2.0])),
                                "min_weight_percent": draw(st.sampled_from([10.0, 25.0]))}
        if od is not None:
            lb["healthy_panic_threshold"] = draw(st.integers(min_value=0, max_value=100))
            if draw(st.booleans()):
                lb["locality_lb"] = {"failover": [{"from": "us", "to": "eu"}]}
        out["load_balancer"] = lb
    return out


@st.composite
def meshes(draw: Any) -> dict[str, Any]:
    versions = ["v1", "v2", "v3"]
    api: dict[str, Any] = {}
    if draw(st.booleans()):
        api["routes"] = draw(routes(versions))
    else:
        api.update(draw(route_blocks(versions)))
    api.update(draw(cluster_blocks()))
    overrides = {}
    for v in draw(st.lists(st.sampled_from(versions), unique=True, max_size=2)):
        block = draw(cluster_blocks())
        if "outlier_detection" not in block and draw(st.booleans()):
            # without outlier detection Istio leaves Envoy's panic threshold: the version's own load balancer
            block["outlier_detection"] = None
            block["load_balancer"] = {k: v for k, v in block.get("load_balancer", {"lb_policy": "RANDOM"}).items()
                                      if k not in ("healthy_panic_threshold", "locality_lb")}
        overrides[v] = block
    if overrides:
        api["versions"] = overrides
    if draw(st.booleans()):
        plain = {"routes": draw(routes(["default"])), **draw(cluster_blocks())}
    else:
        plain = {**draw(route_blocks(["default"], budget=True)), **draw(cluster_blocks())}
    return {"api": api, "plain": plain}


BASE: dict[str, Any] = {
    "name": "prop",
    "duration": "1s",
    "services": {
        "front": {"latency": "1ms", "script": ["work", {"call": "api"}, {"call": "plain"}]},
        "api": {"latency": "1ms", "versions": {"v1": {}, "v2": {"labels": {"version": "v2", "t": "x"}}, "v3": {}}},
        "plain": {"latency": "1ms"},
    },
    "traffic": [{"to": "front", "rate": "10/s"}],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meshes())
def test_random_expressible_policies_round_trip_exactly(mesh: dict[str, Any]) -> None:
    data = copy.deepcopy(BASE)
    data["mesh"] = mesh
    scn = scenario(data)
    with tempfile.TemporaryDirectory() as tmp:
        exported, back = round_trip(scn, Path(tmp))
    lost = [w for w in exported.warnings if not w.startswith("front: no mesh: entry")]
    assert lost == []
    for service in ("api", "plain"):
        assert view_differences(view(scn, service), view(back, service)) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={
    "hedge_on_per_try_timeout": st.booleans(),
    "per_try_idle_timeout": ms,
    "max_interval": st.sampled_from(["1s", "250ms"]),
    "host_selection_retry_max_attempts": st.integers(min_value=0, max_value=9),
    "success_rate": st.booleans(),
    "choice_count": st.integers(min_value=2, max_value=5),
    "max_active_faults": st.integers(min_value=0, max_value=5),
}))
def test_whatever_is_lost_is_reported_field_by_field(extra: dict[str, Any]) -> None:
    """Policies with fields Istio cannot hold: every field whose behaviour changes is in a warning."""
    retry: dict[str, Any] = {"retry_on": "5xx", "num_retries": 2, "per_try_timeout": "100ms",
                             "retry_host_predicate": ["previous_hosts"]}
    for key in ("hedge_on_per_try_timeout", "per_try_idle_timeout", "host_selection_retry_max_attempts"):
        if key in extra:
            retry[key] = extra[key]
    if "max_interval" in extra:
        retry["retry_back_off"] = {"base_interval": "20ms", "max_interval": extra["max_interval"]}
    mesh: dict[str, Any] = {"retries": retry, "outlier_detection": {"consecutive_5xx": 2},
                            "load_balancer": {"lb_policy": "LEAST_REQUEST", "choice_count": extra.get("choice_count", 2)}}
    if not extra.get("success_rate", True):
        mesh["outlier_detection"]["enforcing_success_rate"] = 0
    if "max_active_faults" in extra:
        mesh["fault"] = {"abort": {"http_status": 503, "percentage": 1}, "max_active_faults": extra["max_active_faults"]}
    data = copy.deepcopy(BASE)
    data["mesh"] = {"plain": mesh}
    scn = scenario(data)
    with tempfile.TemporaryDirectory() as tmp:
        exported, back = round_trip(scn, Path(tmp))
    for path, _, _ in view_differences(view(scn, "plain"), view(back, "plain")):
        field = path.rsplit(".", 1)[1]
        assert any(w.startswith("plain: ") and field in w for w in exported.warnings), (path, exported.warnings)


def test_rich_is_valid_input_for_the_property_base() -> None:
    # the property's services match the rich scenario's shapes (a version with extra labels included)
    assert RICH["services"]["api"]["versions"]["v2"]["labels"]["track"] == "beta"
