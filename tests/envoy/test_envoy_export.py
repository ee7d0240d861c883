"""Tests of meshsim.envoy: the bootstraps assembled from the policy modules, pinned fragment by fragment."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from meshsim import ConfigError, MeshsimWarning
from meshsim.config import load_scenario, parse_scenario
from meshsim.envoy import (
    Unsupported,
    dumps,
    endpoint_ports,
    export_envoy,
    replica_host,
    sidecar_names,
    sidecar_ports,
    validate_many,
    write_bootstraps,
)

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


def scenario(name: str) -> Any:
    return load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / f"{name}.yaml")


def listener(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(ls for ls in bootstrap["static_resources"]["listeners"] if ls["name"] == name)


def hcm(bootstrap: dict[str, Any], name: str = "outbound") -> dict[str, Any]:
    return listener(bootstrap, name)["filter_chains"][0]["filters"][0]["typed_config"]


def vhost(bootstrap: dict[str, Any], service: str) -> dict[str, Any]:
    vhosts = hcm(bootstrap)["route_config"]["virtual_hosts"]
    return next(v for v in vhosts if v["domains"][0] == service)


def cluster(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == name)


def tiny(mesh: dict[str, Any], **dest: Any) -> dict[str, Any]:
    """A two-service scenario: client calls dest, which has ``mesh``."""
    return {
        "name": "tiny",
        "duration": "10s",
        "services": {
            "client": {"latency": "1ms", "script": ["work", {"call": "dest"}]},
            "dest": {"latency": "1ms", **dest},
        },
        "traffic": [{"to": "client", "rate": "10/s"}],
        "mesh": {"dest": mesh},
    }


def export(data: dict[str, Any], **kw: Any) -> tuple[dict[str, dict[str, Any]], list[Unsupported]]:
    notes: list[Unsupported] = []
    out = export_envoy(parse_scenario(data), on_unsupported=notes.append, **kw)
    return out, notes


# ---------------------------------------------------------------------------------------------- the real binary


@pytest.mark.parametrize("endpoints", ["dns", "static"])
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_bundled_scenario_exports_files_envoy_accepts(
    path: Path, endpoints: str, tmp_path: Path, envoy_bin: Path
) -> None:
    bootstraps = export_envoy(load_scenario(path), endpoints=endpoints)
    paths = write_bootstraps(tmp_path, bootstraps)
    assert [p.name for p in paths] == [f"{n}.yaml" for n in sidecar_names(load_scenario(path))]
    results = validate_many(paths, envoy=envoy_bin)
    assert [(r.path.name, r.ok, r.message) for r in results if not r.ok] == []
    assert all(r.message.endswith("OK") for r in results)


def test_json_files_are_accepted_too(tmp_path: Path, envoy_bin: Path) -> None:
    paths = write_bootstraps(tmp_path, export_envoy(scenario("bookinfo")), fmt="json")
    assert all(validate_many(paths, envoy=envoy_bin))


# ---------------------------------------------------------------------------------------------- pinned fragments


def test_retry_storm_routes_carry_the_retry_policy_on_every_hop() -> None:
    b = export_envoy(scenario("retry-storm"), endpoints="static")
    assert list(b) == ["ingress", "frontend", "api", "db"]
    for caller, dest in (("ingress", "frontend"), ("frontend", "api"), ("api", "db")):
        (route,) = vhost(b[caller], dest)["routes"]
        assert route == {
            "match": {"prefix": "/"},
            "route": {
                "cluster": f"outbound|80||{dest}",
                "timeout": "15s",
                "retry_policy": {"retry_on": "5xx", "num_retries": 2},
            },
        }
    # db calls nothing: an empty outbound route table, no clusters
    assert hcm(b["db"])["route_config"] == {"name": "outbound", "virtual_hosts": []}
    assert b["db"]["static_resources"]["clusters"] == []


def test_circuit_breaker_cluster_is_pinned() -> None:
    b = export_envoy(scenario("circuit-breaker"), endpoints="static")
    ports = endpoint_ports(scenario("circuit-breaker"))
    assert cluster(b["frontend"], "outbound|80||recommendations") == {
        "name": "outbound|80||recommendations",
        "type": "STATIC",
        "connect_timeout": "5s",
        "lb_policy": "ROUND_ROBIN",
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 1024,
                    "max_pending_requests": 2,
                    "max_requests": 4,
                    "max_retries": 3,
                }
            ]
        },
        "load_assignment": {
            "cluster_name": "outbound|80||recommendations",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": "127.0.0.1",
                                        "port_value": ports[("recommendations", "default", i)],
                                    }
                                }
                            }
                        }
                        for i in range(2)
                    ]
                }
            ],
        },
    }


def test_outlier_ejection_cluster_spans_both_versions_with_kubernetes_names() -> None:
    b = export_envoy(scenario("outlier-ejection"))
    c = cluster(b["frontend"], "outbound|80||backend")
    assert c["type"] == "STRICT_DNS" and c["dns_lookup_family"] == "V4_ONLY"
    assert c["outlier_detection"] == {
        "consecutive_5xx": 5,
        "interval": "1s",
        "base_ejection_time": "5s",
        "max_ejection_percent": 50,
    }
    hosts = [ep["endpoint"]["address"]["socket_address"] for ep in c["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert hosts == [
        {"address": f"backend-{v}-{i}.backend.default.svc.cluster.local", "port_value": 80}
        for v, i in (("good", 0), ("good", 1), ("good", 2), ("good", 3), ("bad", 0))
    ]


def test_bookinfo_routes_header_match_first_then_weights() -> None:
    b = export_envoy(scenario("bookinfo"), namespace="shop")
    vh = vhost(b["productpage"], "reviews")
    assert vh["name"] == "reviews.shop.svc.cluster.local:80"
    assert vh["domains"] == [
        "reviews", "reviews:80", "reviews.shop", "reviews.shop:80", "reviews.shop.svc", "reviews.shop.svc:80",
        "reviews.shop.svc.cluster.local", "reviews.shop.svc.cluster.local:80",
    ]
    jason, canary = vh["routes"]
    assert jason["name"] == "jason"
    assert jason["match"] == {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]}
    assert jason["route"] == {"cluster": "outbound|80|v2|reviews", "timeout": "15s"}
    assert canary["route"]["weighted_clusters"] == {
        "clusters": [{"name": "outbound|80|v1|reviews", "weight": 90}, {"name": "outbound|80|v3|reviews", "weight": 10}]
    }
    names = [c["name"] for c in b["productpage"]["static_resources"]["clusters"]]
    assert names == ["outbound|80||details", "outbound|80|v1|reviews", "outbound|80|v2|reviews", "outbound|80|v3|reviews"]
    # reviews v2 and v3 call ratings; the sidecar of reviews has its route
    assert [v["domains"][0] for v in hcm(b["reviews"])["route_config"]["virtual_hosts"]] == ["ratings"]
    # zones become localities, the sidecar's own zone its node locality
    assert b["productpage"]["node"] == {"id": "productpage", "cluster": "productpage", "locality": {"region": "zone-a"}}
    first = cluster(b["productpage"], "outbound|80||details")["load_assignment"]["endpoints"][0]
    assert first["locality"] == {"region": "zone-a"}


def test_the_ingress_proxy_routes_to_the_entry_services() -> None:
    b = export_envoy(scenario("header-canary"))
    assert [v["domains"][0] for v in hcm(b["ingress"])["route_config"]["virtual_hosts"]] == ["frontend"]
    names = sidecar_names(parse_scenario(tiny({}) | {"services": {"ingress": {"latency": "1ms"}},
                                                      "traffic": [{"to": "ingress", "rate": 1}], "mesh": {}}))
    assert names == ["ingress-gateway", "ingress"]


def test_route_policies_fault_mirror_hedge_and_budget() -> None:
    mesh = {
        "retries": {"retry_on": "5xx,reset", "num_retries": 3, "per_try_timeout": "250ms",
                    "retry_back_off": {"base_interval": "25ms", "max_interval": "1s"},
                    "retry_host_predicate": ["previous_hosts"], "host_selection_retry_max_attempts": 3,
                    "hedge_on_per_try_timeout": True,
                    "retry_budget": {"budget_percent": 25, "min_retry_concurrency": 5}},
        "timeout": "2s",
        "fault": {"delay": {"fixed_delay": "100ms", "percentage": 5}, "abort": {"http_status": 503, "percentage": 1}},
        "mirror": {"version": "v2", "percentage": 10},
        "routes": [{"route": {"v1": 100}}],
    }
    b, notes = export(tiny(mesh, versions={"v1": {}, "v2": {}}))
    assert notes == []
    (route,) = vhost(b["client"], "dest")["routes"]
    assert route["route"] == {
        "cluster": "outbound|80|v1|dest",
        "timeout": "2s",
        "retry_policy": {
            "retry_on": "5xx,reset",
            "num_retries": 3,
            "per_try_timeout": "0.25s",
            "retry_back_off": {"base_interval": "0.025s", "max_interval": "1s"},
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                    },
                }
            ],
            "host_selection_retry_max_attempts": 3,
        },
        "hedge_policy": {"hedge_on_per_try_timeout": True},
        "request_mirror_policies": [
            {"cluster": "outbound|80|v2|dest", "runtime_fraction": {"default_value": {"numerator": 10, "denominator": "HUNDRED"}}}
        ],
    }
    assert route["typed_per_filter_config"]["envoy.filters.http.fault"] == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        "delay": {"fixed_delay": "0.1s", "percentage": {"numerator": 5, "denominator": "HUNDRED"}},
        "abort": {"http_status": 503, "percentage": {"numerator": 1, "denominator": "HUNDRED"}},
    }
    # the fault filter sits before the router; the budget sits in the thresholds of the cluster the route uses
    assert [f["name"] for f in hcm(b["client"])["http_filters"]] == ["envoy.filters.http.fault", "envoy.filters.http.router"]
    (thresholds,) = cluster(b["client"], "outbound|80|v1|dest")["circuit_breakers"]["thresholds"]
    assert thresholds["retry_budget"] == {"budget_percent": {"value": 25.0}, "min_retry_concurrency": 5}
    assert "retry_budget" not in cluster(b["client"], "outbound|80|v2|dest")["circuit_breakers"]["thresholds"][0]


def test_cluster_policies_per_version_and_http2() -> None:
    mesh = {
        "circuit_breakers": {"max_requests": 10, "protocol": "http2", "max_concurrent_streams": 100},
        "outlierDetection": {"consecutive5xxErrors": 3, "interval": "1s"},
        "load_balancer": {"lb_policy": "RING_HASH", "minimum_ring_size": 2048, "hash_key": {"header_name": "x-user"}},
        "health_check": {"timeout": "1s", "interval": "5s", "unhealthy_threshold": 3, "healthy_threshold": 2,
                         "path": "/healthz"},
        "versions": {"v2": {"load_balancer": {"lb_policy": "MAGLEV", "table_size": 251}}},
        "routes": [{"route": {"v1": 100}}, {"route": {"v2": 100}}],
    }
    b, _ = export(tiny(mesh, versions={"v1": {"replicas": 2}, "v2": {}}))
    v1 = cluster(b["client"], "outbound|80|v1|dest")
    assert v1["lb_policy"] == "RING_HASH" and v1["ring_hash_lb_config"] == {"minimum_ring_size": 2048}
    assert v1["common_lb_config"] == {"healthy_panic_threshold": {"value": 0.0}}  # Istio's minHealthPercent
    assert v1["outlier_detection"] == {"consecutive_5xx": 3, "interval": "1s", "enforcing_consecutive_5xx": 100,
                                       "enforcing_success_rate": 0}
    hpo = v1["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert hpo["explicit_http_config"] == {"http2_protocol_options": {"max_concurrent_streams": 100}}
    assert v1["health_checks"] == [{"timeout": "1s", "interval": "5s", "unhealthy_threshold": 3,
                                    "healthy_threshold": 2, "http_health_check": {"path": "/healthz"}}]
    v2 = cluster(b["client"], "outbound|80|v2|dest")
    assert v2["lb_policy"] == "MAGLEV" and v2["maglev_lb_config"] == {"table_size": 251}
    first, second = vhost(b["client"], "dest")["routes"]
    assert first["route"]["hash_policy"] == [{"header": {"header_name": "x-user"}}]
    assert "hash_policy" not in second["route"]  # v2's block replaces the whole load balancer: no key


def test_rate_limit_gives_the_destination_an_inbound_listener() -> None:
    mesh = {"rate_limit": {"token_bucket": {"max_tokens": 10, "tokens_per_fill": 5, "fill_interval": "1s"},
                           "filter_enabled": 100, "filter_enforced": 100}}
    b, _ = export(tiny(mesh), endpoints="static")
    assert [ls["name"] for ls in b["client"]["static_resources"]["listeners"]] == ["outbound"]
    inbound = listener(b["dest"], "inbound")
    ports = sidecar_ports(parse_scenario(tiny(mesh)), sidecar_names(parse_scenario(tiny(mesh))))["dest"]
    assert inbound["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": ports.inbound}}
    filters = hcm(b["dest"], "inbound")["http_filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.local_ratelimit", "envoy.filters.http.router"]
    assert filters[0]["typed_config"]["token_bucket"] == {"max_tokens": 10, "tokens_per_fill": 5, "fill_interval": "1s"}
    app = cluster(b["dest"], "inbound|80||dest")
    assert app["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1", "port_value": ports.app}


def test_locality_failover_writes_priorities_relative_to_the_caller() -> None:
    mesh = {"outlier_detection": {"consecutive_5xx": 3},
            "load_balancer": {"lb_policy": "ROUND_ROBIN", "locality_lb": {"failover": [{"from": "a", "to": "c"}]}}}
    data = tiny(mesh, replicas=4, zones=["a", "b", "c", "a"])
    data["services"]["client"]["zone"] = "a"
    b, notes = export(data)
    assert notes == []
    eps = cluster(b["client"], "outbound|80||dest")["load_assignment"]["endpoints"]
    assert [(e["locality"], e.get("priority", 0), e["load_balancing_weight"], len(e["lb_endpoints"])) for e in eps] == [
        ({"region": "a"}, 0, 2, 2), ({"region": "c"}, 1, 1, 1), ({"region": "b"}, 2, 1, 1)]


def test_zone_aware_routing_gets_a_local_cluster() -> None:
    mesh = {"load_balancer": {"zone_aware": {"min_cluster_size": 1}}}
    data = tiny(mesh, replicas=4, zones=["a", "b"])
    data["services"]["client"].update(replicas=2, zones=["a", "b"])
    b, notes = export(data, endpoints="static")
    assert b["client"]["cluster_manager"] == {"local_cluster_name": "local|client"}
    local = cluster(b["client"], "local|client")
    assert [e["locality"] for e in local["load_assignment"]["endpoints"]] == [{"region": "a"}, {"region": "b"}]
    assert [str(n) for n in notes] == [
        "services.client: the load balancing of dest depends on the caller's zone, and these callers are in zones "
        "a, b: the bootstrap is written for zone a (the first); proxies in the other zones need their own "
        "node.locality and endpoint priorities"
    ]
    assert "cluster_manager" not in b["ingress"]  # a traffic source has no local cluster, as in the simulation


def test_least_request_full_scan_uses_the_typed_extension() -> None:
    mesh = {"load_balancer": {"lb_policy": "LEAST_REQUEST", "selection_method": "FULL_SCAN", "choice_count": 3}}
    b, _ = export(tiny(mesh))
    c = cluster(b["client"], "outbound|80||dest")
    assert "lb_policy" not in c
    (policy,) = c["load_balancing_policy"]["policies"]
    assert policy["typed_extension_config"]["typed_config"] == {
        "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        "choice_count": 3,
        "selection_method": "FULL_SCAN",
    }


# ---------------------------------------------------------------------------------------------- unsupported


def test_unsupported_settings_are_reported_with_service_and_field() -> None:
    mesh = {
        "circuit_breakers": {"max_concurrent_streams": 10},
        "routes": [{"route": "v1", "retries": {"retry_on": "5xx", "retry_priority": {"update_frequency": 2}}}],
    }
    _, notes = export(tiny(mesh, versions={"v1": {}}))
    assert [str(n) for n in notes] == [
        "mesh.dest.circuit_breakers: max_concurrent_streams: 10 applies to HTTP/2 only; this cluster speaks HTTP/1.1",
        "mesh.dest.routes[0].retries: retry_priority previous_priorities: exported, not simulated (one priority per cluster)",
    ]
    assert {n.service for n in notes} == {"dest"}


def test_unsupported_settings_warn_once_by_default() -> None:
    data = tiny({"circuit_breakers": {"max_concurrent_streams": 10}})
    data["traffic"].append({"to": "dest", "rate": "1/s"})  # two proxies reach dest's cluster
    with pytest.warns(MeshsimWarning) as record:
        export_envoy(parse_scenario(data))
    assert [str(w.message) for w in record if "max_concurrent_streams" in str(w.message)] == [
        "mesh.dest.circuit_breakers: max_concurrent_streams: 10 applies to HTTP/2 only; this cluster speaks HTTP/1.1"
    ]


def test_different_hash_keys_on_one_route_are_reported() -> None:
    mesh = {
        "versions": {
            "v1": {"load_balancer": {"lb_policy": "RING_HASH", "hash_key": {"header_name": "x-a"}}},
            "v2": {"load_balancer": {"lb_policy": "RING_HASH", "hash_key": {"header_name": "x-b"}}},
        },
        "routes": [{"route": {"v1": 50, "v2": 50}}],
    }
    b, notes = export(tiny(mesh, versions={"v1": {}, "v2": {}}))
    assert vhost(b["client"], "dest")["routes"][0]["route"]["hash_policy"] == [{"header": {"header_name": "x-a"}}]
    assert [n.path for n in notes] == ["mesh.dest.routes[0]"]
    assert "hash on different keys (v1; v2)" in notes[0].message


def test_names_that_are_not_dns_labels_are_reported() -> None:
    data = tiny({})
    data["services"]["My_Db"] = {"latency": "1ms"}
    data["services"]["client"]["script"].append({"call": "My_Db"})
    b, notes = export(data)
    assert [str(n) for n in notes] == [
        "services.My_Db: 'My_Db' is not a Kubernetes DNS label; its replicas' host names use 'my-db'"]
    addr = cluster(b["client"], "outbound|80||My_Db")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert addr["endpoint"]["address"]["socket_address"]["address"] == "my-db-0.my-db.default.svc.cluster.local"


# ---------------------------------------------------------------------------------------------- options, ports


def test_bad_options_are_config_errors() -> None:
    scn = scenario("mmc")
    with pytest.raises(ConfigError, match="endpoints must be one of dns, static; got 'dsn'"):
        export_envoy(scn, endpoints="dsn")
    with pytest.raises(ConfigError, match="namespace 'Prod' is not a Kubernetes namespace name"):
        export_envoy(scn, namespace="Prod")
    with pytest.raises(ConfigError, match="base_port must be a port number"):
        export_envoy(scn, endpoints="static", endpoint_base_port=70000)
    with pytest.raises(ConfigError, match="format must be one of yaml, json"):
        dumps({}, "toml")


def test_static_ports_are_distinct_deterministic_and_loopback_only() -> None:
    scn = scenario("bookinfo")
    ports = endpoint_ports(scn)
    assert list(ports)[:3] == [("productpage", "default", 0), ("productpage", "default", 1), ("productpage", "default", 2)]
    assert ports[("reviews", "v3", 0)] == 20000 + 3 + 2 + 3 + 1
    assert sorted(ports.values()) == list(range(20000, 20000 + len(ports)))
    assert endpoint_ports(scn, base_port=30000)[("productpage", "default", 0)] == 30000
    side = sidecar_ports(scn, sidecar_names(scn))
    used = [p for s in side.values() for p in (s.admin, s.outbound, s.inbound, s.app)]
    assert len(set(used)) == len(used) and not set(used) & set(ports.values())
    assert sidecar_ports(scn, ["x"], endpoints="dns")["x"].admin == 15000

    def addresses(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["socket_address"]["address"]] if "socket_address" in node else []
            return found + [a for v in node.values() for a in addresses(v)]
        if isinstance(node, list):
            return [a for v in node for a in addresses(v)]
        return []

    for b in export_envoy(scn, endpoints="static").values():
        assert set(addresses(b)) == {"127.0.0.1"}
    for b in export_envoy(scn).values():  # dns: listeners and admin still on loopback
        listeners = b["static_resources"]["listeners"]
        assert set(addresses(listeners) + addresses(b["admin"])) == {"127.0.0.1"}


def test_replica_host_names() -> None:
    assert replica_host("reviews", "v1", 2, "shop") == "reviews-v1-2.reviews.shop.svc.cluster.local"
    assert replica_host("db", None, 0) == "db-0.db.default.svc.cluster.local"


# ---------------------------------------------------------------------------------------------- files


def test_exports_are_deterministic_and_byte_identical(tmp_path: Path) -> None:
    a = export_envoy(scenario("bookinfo"), endpoints="static")
    b = export_envoy(scenario("bookinfo"), endpoints="static")
    assert a == b and json.dumps(a) == json.dumps(b)
    for fmt in ("yaml", "json"):
        pa = write_bootstraps(tmp_path / f"a-{fmt}", a, fmt=fmt)
        pb = write_bootstraps(tmp_path / f"b-{fmt}", b, fmt=fmt)
        assert [p.read_bytes() for p in pa] == [p.read_bytes() for p in pb]
    assert json.loads((tmp_path / "a-json" / "reviews.json").read_text()) == a["reviews"]


def test_write_is_all_or_nothing_and_replaces_the_other_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "envoy"
    b = export_envoy(scenario("retry-storm"))
    write_bootstraps(out, b, fmt="json")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    import meshsim.envoy._write as w

    calls = {"n": 0}
    real = w.dumps

    def failing(*args: Any, **kw: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*args, **kw)

    monkeypatch.setattr(w, "dumps", failing)
    with pytest.raises(OSError, match="disk full"):
        write_bootstraps(out, b, fmt="yaml")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["envoy"]  # no temporary directory left behind
    monkeypatch.undo()
    (out / "notes.txt").write_text("mine")
    write_bootstraps(out, b, fmt="yaml")
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.yaml" for n in b] + ["notes.txt"])


def test_yaml_file_starts_with_its_title_and_parses_back(tmp_path: Path) -> None:
    import yaml

    b = export_envoy(scenario("mmc"))
    (path,) = write_bootstraps(tmp_path, {"station": b["station"]}, titles={"station": "the station proxy"})
    text = path.read_text()
    assert text.startswith("# the station proxy\nnode:\n")
    assert yaml.safe_load(text) == b["station"]


def test_default_reporting_is_a_warning_and_can_be_silenced() -> None:
    data = tiny({"circuit_breakers": {"max_concurrent_streams": 10}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeshsimWarning)
        with pytest.raises(MeshsimWarning):
            export_envoy(parse_scenario(data))
        export_envoy(parse_scenario(data), on_unsupported=lambda note: None)
