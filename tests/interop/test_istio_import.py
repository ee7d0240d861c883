"""``meshsim import istio``: each Istio field translated as istiod translates it, Istio's defaults, errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from istio_helpers import write_docs

from meshsim import ConfigError
from meshsim.config import load_scenario
from meshsim.interop.istio import API_VERSIONS, import_istio, scenario_text, write_scenario
from meshsim.policies.circuit_breaker import ISTIO_DEFAULT_CONNECT_TIMEOUT_S, UINT32_MAX
from meshsim.policies.retry import ISTIO_DEFAULT_RETRY_ON, RetryOn

TOPOLOGY: dict[str, Any] = {
    "name": "topo",
    "duration": "2s",
    "services": {
        "front": {"latency": "1ms", "script": ["work", {"call": "reviews"}, {"call": "ratings"}]},
        "reviews": {"latency": "1ms", "versions": {"v1": {"replicas": 2}, "v2": {}, "v3": {}}},
        "ratings": {"latency": "1ms", "replicas": 2},
    },
    "traffic": [{"to": "front", "rate": "10/s"}],
    "mesh": {"ratings": {"timeout": "3s"}},
}


def vs(http: list[dict[str, Any]], host: str = "reviews", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": host},
            "spec": {"hosts": [host], "http": http, **spec}}


def dr(host: str = "reviews", traffic_policy: dict[str, Any] | None = None, subsets: Any = "versions",
       **spec: Any) -> dict[str, Any]:
    if subsets == "versions":
        subsets = [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]
    out: dict[str, Any] = {"host": host}
    if traffic_policy is not None:
        out["trafficPolicy"] = traffic_policy
    if subsets:
        out["subsets"] = subsets
    out.update(spec)
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": host},
            "spec": out}


def to(subset: str | None = None, weight: int | None = None, host: str = "reviews") -> dict[str, Any]:
    d: dict[str, Any] = {"destination": {"host": host}}
    if subset:
        d["destination"]["subset"] = subset
    if weight is not None:
        d["weight"] = weight
    return d


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(TOPOLOGY, sort_keys=False), encoding="utf-8")
    return path


def imported(tmp_path: Path, docs: list[dict[str, Any]], topology: Path | None = None, **kw: Any) -> Any:
    return import_istio([write_docs(tmp_path, docs)], topology=topology, **kw)


def mesh(tmp_path: Path, docs: list[dict[str, Any]], service: str = "reviews", **kw: Any) -> Any:
    return imported(tmp_path, docs, **kw).scenario.mesh_for(service)


def refused(tmp_path: Path, docs: list[dict[str, Any]] | str, **kw: Any) -> str:
    path = write_docs(tmp_path, docs)
    with pytest.raises(ConfigError) as info:
        import_istio([path], **kw)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))
    return text


# ------------------------------------------------------------------------------------------ route defaults


def test_a_route_without_timeout_has_its_route_timeout_disabled(tmp_path: Path) -> None:
    m = mesh(tmp_path, [vs([{"match": [{"uri": {"prefix": "/a"}}], "route": [to("v1")]}, {"route": [to("v2")]}]),
                        dr()])
    assert m.route_policies(0).timeout.timeout == 0.0  # istiod writes 0s, not Envoy's 15 s
    assert m.route_policies(1).timeout.timeout == 0.0


def test_a_route_without_retries_gets_istios_default_retry_policy(tmp_path: Path) -> None:
    r = mesh(tmp_path, [vs([{"route": [to("v1")]}]), dr()]).route_policies(0).retries
    assert r.num_retries == 2
    assert r.flags == RetryOn.parse(ISTIO_DEFAULT_RETRY_ON)
    assert r.retriable_status_codes == ()  # Istio >= 1.24: a 503 is not retried by default
    assert r.previous_hosts and r.host_selection_retry_max_attempts == 5
    assert r.per_try_timeout == 0 and r.retry_back_off is None


def test_the_default_retry_policy_drops_previous_hosts_on_a_consistent_hash_destination(tmp_path: Path) -> None:
    hashed = dr(traffic_policy={"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}})
    m = mesh(tmp_path, [vs([{"route": [to("v1")]}, ]), hashed])
    assert not m.route_policies(0).retries.previous_hosts
    # a split route gets no hash policy from istiod, so it keeps the predicate
    m = mesh(tmp_path, [vs([{"route": [to("v1", 50), to("v2", 50)]}]), hashed])
    assert m.route_policies(0).retries.previous_hosts


def test_a_subset_without_consistent_hash_still_gets_the_top_level_hash_policy(tmp_path: Path) -> None:
    # istiod's HashForHTTPDestination: the subset's consistentHash, else the top-level one
    rule = dr(traffic_policy={"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}},
              subsets=[{"name": "v1", "labels": {"version": "v1"},
                        "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}])
    m = mesh(tmp_path, [vs([{"route": [to("v1")]}]), rule])
    assert m.cluster_policies("v1").load_balancer.lb_policy == "ROUND_ROBIN"
    assert not m.route_policies(0).retries.previous_hosts


def test_an_explicit_retry_ignore_previous_hosts_is_honoured_with_consistent_hashing(tmp_path: Path) -> None:
    hashed = dr(traffic_policy={"loadBalancer": {"consistentHash": {"useSourceIp": True}}})
    route = {"route": [to("v1")], "retries": {"attempts": 3, "retryIgnorePreviousHosts": True}}
    assert mesh(tmp_path, [vs([route]), hashed]).route_policies(0).retries.previous_hosts
    route["retries"] = {"attempts": 3}
    assert not mesh(tmp_path, [vs([route]), hashed]).route_policies(0).retries.previous_hosts


def test_attempts_zero_means_no_retry_policy(tmp_path: Path) -> None:
    m = mesh(tmp_path, [vs([{"route": [to("v1")], "retries": {"attempts": 0}}]), dr()])
    assert m.route_policies(0).retries is None


def test_retries_translate_as_retry_convert_policy(tmp_path: Path) -> None:
    route = {"route": [to("v1")], "timeout": "3s",
             "retries": {"attempts": 4, "retryOn": "5xx, reset,503,429", "perTryTimeout": "750ms",
                         "backoff": "40ms", "retryRemoteLocalities": True}}
    rp = mesh(tmp_path, [vs([route]), dr()]).route_policies(0)
    r = rp.retries
    assert r.num_retries == 4
    assert set(r.retry_on.split(",")) == {"5xx", "reset", "retriable-status-codes"}
    assert r.retriable_status_codes == (429, 503)
    assert r.base_interval_ms == 40 and r.max_interval_ms == 400
    assert r.retry_priority is not None and r.retry_priority.update_frequency == 2
    assert (rp.timeout.timeout, rp.timeout.per_try_timeout) == (3.0, 0.75)  # per-try is the route's


def test_backoff_with_attempts_zero_is_ignored_with_a_warning(tmp_path: Path) -> None:
    res = imported(tmp_path, [vs([{"route": [to("v1")], "retries": {"attempts": 0, "backoff": "1s"}}]), dr()])
    assert res.scenario.mesh_for("reviews").route_policies(0).retries is None
    assert any("retries" in w and "do nothing" in w for w in res.warnings)


# --------------------------------------------------------------------------------------------- matching


def test_matches_translate_to_envoy_matchers(tmp_path: Path) -> None:
    route = {"match": [
        {"uri": {"exact": "/a"}, "method": {"exact": "POST"}, "headers": {"x-a": {"prefix": "p"}, "x-b": {}}},
        {"uri": {"regex": "/r/[0-9]+"}, "headers": {"x-c": {"regex": "*"}}, "withoutHeaders": {"x-d": {}}},
    ], "route": [to("v1")]}
    m = mesh(tmp_path, [vs([route, {"route": [to("v2")]}]), dr()])
    first, second = m.routes[0].match
    assert first.uri.exact == "/a" and first.method.exact == "POST"
    assert first.headers["x-a"].prefix == "p" and first.headers["x-b"].present is True  # {} is present_match
    assert second.uri.regex == "/r/[0-9]+"
    assert second.headers["x-c"].present is True  # regex '*' is present_match, as istiod writes it
    assert second.headers["x-d"].present is False  # withoutHeaders {} is an inverted present_match
    assert m.routes[0].matches("/a", "POST", {"x-a": "pq", "x-b": "1"})
    assert not m.routes[0].matches("/a", "GET", {"x-a": "pq", "x-b": "1"})
    assert m.routes[0].matches("/r/12", "GET", {"x-c": "1"})
    assert not m.routes[0].matches("/r/12", "GET", {"x-c": "1", "x-d": "2"})


def test_weights_and_a_lone_destination(tmp_path: Path) -> None:
    m = mesh(tmp_path, [vs([{"match": [{"uri": {"prefix": "/x"}}], "route": [to("v2", weight=0)]},
                            {"route": [to("v1", 90), to("v3", 10), to("v2", 0)]}]), dr()])
    assert [(d.version, d.weight) for d in m.routes[0].destinations] == [("v2", 100)]  # weight ignored
    assert m.routes[1].shares() == {"v1": 0.9, "v3": 0.1, "v2": 0.0}


def test_one_catch_all_route_to_the_whole_service_is_the_implicit_route(tmp_path: Path) -> None:
    res = imported(tmp_path, [vs([{"name": "all", "route": [to(host="ratings")], "timeout": "2s",
                                   "retries": {"attempts": 1, "retryOn": "5xx"}}], host="ratings")],
                   topology=None)
    m = res.scenario.mesh_for("ratings")
    assert m.routes == () and m.timeout.timeout == 2.0 and m.retries.num_retries == 1
    assert m.istio["virtualService"]["http"] == [{"name": "all"}]  # the name is kept for export


def test_a_service_without_virtual_service_gets_istiods_default_route(tmp_path: Path) -> None:
    rp = mesh(tmp_path, [dr()]).route_policies(None)
    assert rp.timeout.timeout == 0.0 and rp.retries.num_retries == 2


# ------------------------------------------------------------------------------------ fault and mirror


def test_fault_percentages_become_parts_per_million(tmp_path: Path) -> None:
    route = {"route": [to("v1")], "fault": {"delay": {"fixedDelay": "5s", "percentage": {"value": 0.0003}},
                                            "abort": {"httpStatus": 503, "percentage": {"value": 10}}}}
    f = mesh(tmp_path, [vs([route]), dr()]).route_policies(0).fault
    assert f.delay.fixed_delay == 5.0
    # uint32(value * 10000): istiod truncates 0.0003 * 10000 = 2.9999999999999996 to 2
    assert (f.delay.percentage.numerator, f.delay.percentage.denominator) == (2, "MILLION")
    assert (f.abort.http_status, f.abort.percentage.numerator, f.abort.percentage.denominator) == (
        503, 100000, "MILLION")


def test_fault_deprecated_integer_percent_and_missing_percentage(tmp_path: Path) -> None:
    route = {"route": [to("v1")], "fault": {"delay": {"fixedDelay": "1s", "percent": 5},
                                            "abort": {"httpStatus": 500}}}
    f = mesh(tmp_path, [vs([route]), dr()]).route_policies(0).fault
    assert (f.delay.percentage.numerator, f.delay.percentage.denominator) == (5, "HUNDRED")
    assert f.abort.percentage.numerator == 0  # no percentage: nothing aborted (Istio and Envoy)


def test_mirror_defaults_to_every_request_and_zero_writes_none(tmp_path: Path) -> None:
    m = mesh(tmp_path, [vs([{"match": [{"uri": {"prefix": "/a"}}], "route": [to("v1")], "mirror": {"host": "reviews", "subset": "v3"}},
                            {"match": [{"uri": {"prefix": "/b"}}], "route": [to("v1")],
                             "mirror": {"host": "reviews", "subset": "v3"}, "mirrorPercentage": {"value": 12.5}},
                            {"match": [{"uri": {"prefix": "/c"}}], "route": [to("v1")],
                             "mirrors": [{"destination": {"host": "reviews", "subset": "v2"}, "percentage": {"value": 0}}]},
                            {"route": [to("v1")], "mirror": {"host": "reviews", "subset": "v2"}, "mirrorPercent": 7}]),
                        dr()])
    assert m.route_policies(0).mirror.version == "v3" and m.route_policies(0).mirror.fraction == 1.0
    assert m.route_policies(1).mirror.fraction == 0.125
    assert m.route_policies(2).mirror is None
    assert m.route_policies(3).mirror.percentage.denominator == "HUNDRED"


def test_two_mirrors_on_one_route_are_refused(tmp_path: Path) -> None:
    route = {"route": [to("v1")], "mirror": {"host": "reviews", "subset": "v2"},
             "mirrors": [{"destination": {"host": "reviews", "subset": "v3"}}]}
    assert "spec.http[0].mirrors[0].destination: a second mirror" in refused(tmp_path, [vs([route]), dr()])


# ---------------------------------------------------------------------------------------- destination rule


def test_circuit_breakers_are_written_even_without_a_destination_rule(tmp_path: Path) -> None:
    cb = mesh(tmp_path, [vs([{"route": [to(host="ratings")]}], host="ratings")], service="ratings").cluster_policies(None)
    t = cb.circuit_breakers
    assert (t.max_connections, t.max_pending_requests, t.max_requests, t.max_retries) == (UINT32_MAX,) * 4
    assert t.connect_timeout_s == ISTIO_DEFAULT_CONNECT_TIMEOUT_S and not t.track_remaining
    assert cb.load_balancer.lb_policy == "LEAST_REQUEST" and cb.outlier_detection is None


def test_connection_pool_translates_as_apply_connection_pool(tmp_path: Path) -> None:
    pool = {"tcp": {"maxConnections": 10, "connectTimeout": "250ms", "maxConnectionDuration": "1h",
                    "tcpKeepalive": {"probes": 3, "time": "10s"}},
            "http": {"http1MaxPendingRequests": 5, "http2MaxRequests": 20, "maxRequestsPerConnection": 100,
                     "maxRetries": 0, "idleTimeout": "30s", "h2UpgradePolicy": "UPGRADE", "maxConcurrentStreams": 50}}
    t = mesh(tmp_path, [dr(traffic_policy={"connectionPool": pool})]).cluster_policies("v1").circuit_breakers
    assert (t.max_connections, t.max_pending_requests, t.max_requests) == (10, 5, 20)
    assert t.max_retries == UINT32_MAX  # maxRetries 0 reads as unset
    assert (t.connect_timeout_s, t.max_connection_duration_s, t.idle_timeout_s) == (0.25, 3600.0, 30.0)
    assert (t.max_requests_per_connection, t.protocol, t.max_concurrent_streams) == (100, "http2", 50)
    assert t.tcp_keepalive.keepalive_probes == 3


def test_use_client_protocol_and_tcp_idle_timeout_zero(tmp_path: Path) -> None:
    pool = {"tcp": {"idleTimeout": "0s"}, "http": {"useClientProtocol": True}}
    t = mesh(tmp_path, [dr(traffic_policy={"connectionPool": pool})]).cluster_policies(None).circuit_breakers
    assert t.protocol == "downstream" and t.idle_timeout_s == 0.0


def test_outlier_detection_translates_as_apply_outlier_detection(tmp_path: Path) -> None:
    od = {"consecutive5xxErrors": 3, "consecutiveGatewayErrors": 2, "interval": "5s", "baseEjectionTime": "1m",
          "maxEjectionPercent": 100}
    cp = mesh(tmp_path, [dr(traffic_policy={"outlierDetection": od})]).cluster_policies("v1")
    o = cp.outlier_detection
    assert (o.consecutive_5xx, o.enforcing_consecutive_5xx) == (3, 100)
    assert (o.consecutive_gateway_failure, o.enforcing_consecutive_gateway_failure) == (2, 100)
    assert (o.interval, o.base_ejection_time, o.max_ejection_percent) == (5.0, 60.0, 100)
    assert o.enforcing_success_rate == 0  # always off
    assert cp.load_balancer.healthy_panic_threshold == 0  # minHealthPercent, 0 unless given: panic off
    # the mesh enables locality load balancing; istiod applies its failover with outlier detection
    assert cp.load_balancer.locality_lb is not None and cp.load_balancer.locality_lb.enabled


def test_min_health_percent_is_the_panic_threshold_and_unset_gateway_errors_stay_unenforced(tmp_path: Path) -> None:
    cp = mesh(tmp_path, [dr(traffic_policy={"outlierDetection": {"minHealthPercent": 30},
                                            "loadBalancer": {"simple": "RANDOM",
                                                             "localityLbSetting": {"enabled": False}}})]
              ).cluster_policies("v2")
    assert cp.load_balancer.healthy_panic_threshold == 30 and cp.load_balancer.lb_policy == "RANDOM"
    assert cp.load_balancer.locality_lb is None
    assert (cp.outlier_detection.consecutive_gateway_failure,
            cp.outlier_detection.enforcing_consecutive_gateway_failure) == (5, 0)


@pytest.mark.parametrize(("lb", "policy"), [
    ({}, "LEAST_REQUEST"), ({"simple": "UNSPECIFIED"}, "LEAST_REQUEST"), ({"simple": "LEAST_CONN"}, "LEAST_REQUEST"),
    ({"simple": "ROUND_ROBIN"}, "ROUND_ROBIN"), ({"simple": "RANDOM"}, "RANDOM"),
    ({"consistentHash": {"httpHeaderName": "x-u"}}, "RING_HASH"),
    ({"consistentHash": {"httpCookie": {"name": "c", "ttl": "0s"}, "maglev": {"tableSize": 65537}}}, "MAGLEV"),
])
def test_load_balancer_translates_as_apply_load_balancer(tmp_path: Path, lb: dict[str, Any], policy: str) -> None:
    p = mesh(tmp_path, [dr(traffic_policy={"loadBalancer": lb})]).cluster_policies("v1").load_balancer
    assert p.lb_policy == policy


def test_ring_hash_defaults_and_hash_keys(tmp_path: Path) -> None:
    p = mesh(tmp_path, [dr(traffic_policy={"loadBalancer": {"consistentHash": {
        "httpQueryParameterName": "q", "minimumRingSize": 0}}})]).cluster_policies("v1").load_balancer
    assert (p.minimum_ring_size, p.hash_key.query_parameter) == (1024, "q")


def test_a_subset_traffic_policy_replaces_whole_blocks(tmp_path: Path) -> None:
    rule = dr(traffic_policy={"connectionPool": {"tcp": {"maxConnections": 100}},
                              "loadBalancer": {"simple": "ROUND_ROBIN"}},
              subsets=[{"name": "v1", "labels": {"version": "v1"}},
                       {"name": "v2", "labels": {"version": "v2"},
                        "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 10}}}}])
    m = mesh(tmp_path, [rule])
    assert m.cluster_policies("v1").circuit_breakers.max_connections == 100
    v2 = m.cluster_policies("v2")
    assert v2.circuit_breakers.max_requests == 10
    assert v2.circuit_breakers.max_connections == UINT32_MAX  # not merged field by field
    assert v2.load_balancer.lb_policy == "ROUND_ROBIN"  # inherited block


def test_a_retry_budget_goes_to_the_routes_that_send_to_its_cluster(tmp_path: Path) -> None:
    rule = dr(traffic_policy={"retryBudget": {"percent": 25}},
              subsets=[{"name": "v1", "labels": {"version": "v1"}},
                       {"name": "v2", "labels": {"version": "v2"},
                        "trafficPolicy": {"retryBudget": {"minRetryConcurrency": 7}}}])
    m = mesh(tmp_path, [vs([{"match": [{"uri": {"prefix": "/a"}}], "route": [to("v1")]},
                            {"route": [to("v2")], "retries": {"attempts": 1}}]), rule])
    b1, b2 = m.cluster_policies("v1").retry_budget, m.cluster_policies("v2").retry_budget
    assert (b1.percent, b1.min_concurrency) == (25.0, 3)  # istiod's defaults fill the other field
    assert (b2.percent, b2.min_concurrency) == (20.0, 7)  # a subset's block replaces the top-level one


# ----------------------------------------------------------------------------------------- topology


def test_without_topology_a_minimal_scenario_is_made_and_says_so(tmp_path: Path) -> None:
    res = imported(tmp_path, [vs([{"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [to("v2")]},
                                  {"route": [to("v1")]}]), dr()])
    scn = res.scenario
    assert list(scn.services) == ["reviews"] and list(scn.services["reviews"].versions) == ["v1", "v2", "v3"]
    assert scn.traffic[0].headers == {"end-user": {"jason": 0.1}}  # exercises the header route
    text = scenario_text(res)
    assert "minimal topology" in text.split("\nname:")[0]
    out = write_scenario(tmp_path / "out.yaml", res)
    assert load_scenario(out) == scn


def test_with_topology_the_other_services_get_istios_defaults(tmp_path: Path, topology: Path) -> None:
    res = imported(tmp_path, [vs([{"route": [to("v1")]}]), dr()], topology=topology)
    scn = res.scenario
    assert list(scn.services) == ["front", "reviews", "ratings"]
    ratings = scn.mesh_for("ratings").route_policies(None)
    assert ratings.timeout.timeout == 0.0 and ratings.retries.num_retries == 2  # the topology's 3s replaced
    assert scn.mesh_for("front").cluster_policies(None).load_balancer.lb_policy == "LEAST_REQUEST"
    merged = imported(tmp_path, [vs([{"route": [to("v1")]}]), dr()], topology=topology, merge=True).scenario
    assert merged.mesh_for("ratings").route_policies(None).timeout.timeout == 3.0
    assert "front" not in merged.mesh


def test_subsets_must_select_one_version_of_the_topology(tmp_path: Path, topology: Path) -> None:
    rule = dr(subsets=[{"name": "v1", "labels": {"version": "v9"}}])
    text = refused(tmp_path, [rule], topology=topology)
    assert "document 1 (DestinationRule reviews): spec.subsets[0].labels: {'version': 'v9'} select no version" in text
    text = refused(tmp_path, [dr(host="nope", subsets=None)], topology=topology)
    assert "spec.host: 'nope' is not a service of the topology" in text


def test_hosts_short_and_fully_qualified(tmp_path: Path) -> None:
    doc = vs([{"route": [to("v1", host="reviews.prod.svc.cluster.local")]}], host="reviews.prod.svc.cluster.local")
    rule = dr(host="reviews")
    rule["metadata"]["namespace"] = "prod"
    res = imported(tmp_path, [doc, rule])
    assert "reviews" in res.scenario.mesh
    assert res.scenario.mesh_for("reviews").istio["virtualService"]["spec"]["hosts"] == [
        "reviews.prod.svc.cluster.local"]
    text = refused(tmp_path, [vs([{"route": [to("v1")]}], host="reviews.prod")])
    assert "spec.hosts[0]: 'reviews.prod' is not allowed" in text
    other = copy.deepcopy(rule)
    other["metadata"]["namespace"] = "staging"
    assert "namespace" in refused(tmp_path, [doc, other])


# ------------------------------------------------------------------------------- kept and refused fields


def test_fields_without_effect_are_kept_for_export_with_a_warning(tmp_path: Path) -> None:
    route = {"name": "r", "match": [{"name": "m", "uri": {"prefix": "/"}}],
             "route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}},
                        "headers": {"request": {"set": {"x-a": "1"}}}}],
             "corsPolicy": {"allowOrigins": [{"exact": "*"}]}, "rewrite": {"uri": "/v1"}}
    rule = dr(traffic_policy={"tls": {"mode": "ISTIO_MUTUAL"}}, exportTo=["."])
    res = imported(tmp_path, [vs([route], exportTo=["."]), rule])
    kept = res.scenario.mesh_for("reviews").istio
    assert kept["virtualService"]["spec"] == {"exportTo": ["."]}
    assert kept["virtualService"]["http"][0]["match"] == [{"name": "m"}]
    assert kept["virtualService"]["http"][0]["route"][0]["destination"] == {"port": {"number": 9080}}
    assert kept["destinationRule"]["spec"] == {"exportTo": ["."], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}
    warned = " ".join(res.warnings)
    for path in ("spec.http[0].corsPolicy", "spec.http[0].rewrite", "spec.http[0].match[0].name",
                 "spec.http[0].route[0].destination.port", "spec.trafficPolicy.tls", "spec.exportTo"):
        assert path in warned, path


def test_fields_that_change_behaviour_are_refused_unless_allowed(tmp_path: Path) -> None:
    route = {"match": [{"queryParams": {"v": {"exact": "2"}}}], "route": [to("v2")]}
    text = refused(tmp_path, [vs([route, {"route": [to("v1")]}]), dr()])
    assert "spec.http[0].match[0].queryParams" in text and "--allow-unsupported" in text
    res = imported(tmp_path, [vs([route, {"route": [to("v1")]}]), dr()], allow_unsupported=True)
    assert any("NOT simulated" in w and "queryParams" in w for w in res.warnings)
    assert res.scenario.mesh_for("reviews").istio["virtualService"]["http"][0]["match"][0] == {
        "queryParams": {"v": {"exact": "2"}}}


def test_other_kinds_lists_and_server_fields(tmp_path: Path) -> None:
    item = vs([{"route": [to(host="ratings")]}], host="ratings")
    item["metadata"].update(uid="1", resourceVersion="2")
    item["status"] = {}
    docs = [{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g"}, "spec": {}},
            {"apiVersion": "v1", "kind": "List", "items": [item]}]
    res = imported(tmp_path, docs)
    assert "ratings" in res.scenario.mesh
    assert any("document 1: kind 'Gateway' is not read" in w for w in res.warnings)
    assert any("items[0]" in w and "metadata.uid" in w and "status" in w for w in res.warnings)


@pytest.mark.parametrize("api", API_VERSIONS)
def test_every_served_api_version_is_read(tmp_path: Path, api: str) -> None:
    doc = dr(traffic_policy={"loadBalancer": {"simple": "RANDOM"}})
    doc["apiVersion"] = api
    assert mesh(tmp_path, [doc]).cluster_policies("v1").load_balancer.lb_policy == "RANDOM"


def test_a_gateway_only_virtual_service_does_not_apply_to_sidecars(tmp_path: Path) -> None:
    gw = vs([{"route": [to("v1")]}], gateways=["ingress"])
    res = imported(tmp_path, [gw, dr()])
    assert res.scenario.mesh_for("reviews").routes == ()
    assert any("does not apply to the sidecars" in w for w in res.warnings)


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["spec"]["http"][0].update(retries={"attempts": 2, "retryon": "5xx"}),
     "document 2 (VirtualService reviews): spec.http[0].retries.retryon: unknown field 'retryon'; did you mean 'retryOn'?"),
    (lambda d: d["spec"]["http"][0].update(retries={"attempts": 2, "retryOn": "5xx,gateway-errors"}),
     "spec.http[0].retries.retryOn: '5xx,gateway-errors': retry_on token 'gateway-errors'"),
    (lambda d: d["spec"]["http"][0].update(retries={"attempts": 0, "perTryTimeout": "1s"}),
     "spec.http[0].retries.perTryTimeout: '1s': given with attempts 0: Istio refuses a retry policy"),
    (lambda d: d["spec"]["http"][0].update(timeout="1.5ms"),
     "spec.http[0].timeout: '1.5ms' is not allowed; Istio takes whole milliseconds"),
    (lambda d: d["spec"]["http"][0].update(timeout=5),
     "spec.http[0].timeout: 5 is not a duration; Istio takes strings such as 250ms"),
    (lambda d: d["spec"]["http"][0].update(fault={"abort": {"httpStatus": 700, "percentage": {"value": 1}}}),
     "spec.http[0].fault.abort.httpStatus: 700 is not allowed; Istio takes 200-599"),
    (lambda d: d["spec"]["http"][0].update(fault={"delay": {"fixedDelay": "1s", "percentage": {"value": 101}}}),
     "spec.http[0].fault.delay.percentage.value: 101 is not allowed"),
    (lambda d: d["spec"]["http"][0].update(redirect={"uri": "/x"}),
     "spec.http[0].redirect: {'uri': '/x'} is not supported: a redirect answers without calling the service"),
    (lambda d: d["spec"]["http"][0]["route"][0]["destination"].update(subset="v9"),
     "spec.http[0].route[0].destination.subset: 'v9' is not a subset of reviews"),
    (lambda d: d["spec"]["http"][0]["route"][0]["destination"].update(host="ratings"),
     "spec.http[0].route[0].destination.host: 'ratings' is not supported"),
    (lambda d: d["spec"].update(hosts=["*.example.com"]), "spec.hosts[0]: '*.example.com' is not supported"),
    (lambda d: d.update(apiVersion="networking.istio.io/v2"),
     "document 2 (VirtualService): apiVersion: 'networking.istio.io/v2' is not allowed; expected one of"),
    (lambda d: d["spec"]["http"][0].update(match=[{"uri": {"regex": "(?=a)b"}}]),
     "spec.http[0].match[0].uri.regex: regex '(?=a)b' uses look-around"),
    (lambda d: d["spec"]["http"][0].update(mirrorPercentage={"value": "10"}),
     "spec.http[0].mirrorPercentage.value: '10' is not a number"),
])
def test_bad_virtual_services_give_one_line_with_file_document_and_field(tmp_path: Path, mutate: Any,
                                                                         expected: str) -> None:
    doc = vs([{"route": [to("v1")]}])
    mutate(doc)
    assert expected in refused(tmp_path, [dr(), doc])


@pytest.mark.parametrize(("policy", "expected"), [
    ({"connectionPool": {"tcp": {"maxConnections": -5}}},
     "spec.trafficPolicy.connectionPool.tcp.maxConnections: -5 is out of range; Istio allows 0 to 2147483647"),
    ({"connectionPool": {"tcp": {"connectTimeout": "0.5ms"}}},
     "spec.trafficPolicy.connectionPool.tcp.connectTimeout: '0.5ms' is too short"),
    ({"connectionPool": {"http": {"h2UpgradePolicy": "UPGRAD"}}},
     "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: 'UPGRAD' is not one of DEFAULT, DO_NOT_UPGRADE, "
     "UPGRADE; did you mean 'UPGRADE'?"),
    ({"outlierDetection": {"maxEjectionPercent": 150}},
     "spec.trafficPolicy.outlierDetection.maxEjectionPercent: 150"),
    ({"outlierDetection": {"consecutive5xxErrors": "five"}},
     "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: 'five' is not an integer"),
    ({"loadBalancer": {"simple": "ROUND_ROBINN"}},
     "spec.trafficPolicy.loadBalancer.simple: 'ROUND_ROBINN' is not one of"),
    ({"loadBalancer": {"consistentHash": {"maglev": {"tableSize": 100}}}},
     "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 100 is not a prime number"),
    ({"portLevelSettings": [{"port": {"number": 80}}]},
     "spec.trafficPolicy.portLevelSettings: [{'port': {'number': 80}}] is not supported: per-port policies"),
    ({"connection_pool": {}}, "spec.trafficPolicy.connection_pool: unknown field 'connection_pool'; Kubernetes "
                              "takes the camelCase 'connectionPool'"),
])
def test_bad_destination_rules_give_one_line_with_file_document_and_field(tmp_path: Path, policy: dict[str, Any],
                                                                          expected: str) -> None:
    assert f"document 1 (DestinationRule reviews): {expected}" in refused(tmp_path, [dr(traffic_policy=policy)])


def test_bad_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    assert "line 2, column 2: expected ',' or ']'" in refused(tmp_path, "a: [1\nb: 2\n")
    text = refused(tmp_path, "apiVersion: v1\nkind: x\nkind: y\n")
    assert "line 3, column 1: duplicate key 'kind'" in text
    assert "is not a Kubernetes resource" in refused(tmp_path, "- 1\n- 2\n")
    assert "no VirtualService or DestinationRule" in refused(tmp_path, "apiVersion: v1\nkind: Service\n")
