"""Builders for the lint tests (imported by the test modules): a small scenario, an Envoy bootstrap and Istio resources, each with one trap."""

from __future__ import annotations

import copy
from typing import Any

from meshsim.config import parse_scenario

#: front (2 replicas) -> api (5 replicas), 100 requests/s
BASE: dict[str, Any] = {
    "name": "t",
    "seed": 3,
    "duration": "5s",
    "services": {
        "front": {"replicas": 2, "workers": 16, "latency": "2ms", "script": ["work", {"call": "api"}]},
        "api": {"replicas": 5, "workers": 16, "latency": "5ms"},
    },
    "traffic": [{"name": "users", "to": "front", "rate": "100/s"}],
}


def scenario(mesh: dict[str, Any] | None = None, *, api: dict[str, Any] | None = None, **top: Any):
    """BASE with ``mesh.api`` set to ``mesh``, ``services.api`` updated with ``api``."""
    data = copy.deepcopy(BASE)
    if api:
        data["services"]["api"].update(api)
    if mesh is not None:
        data["mesh"] = {"api": mesh}
    data.update(top)
    return parse_scenario(data, source="s.yaml")


def _endpoints(n: int) -> list[dict[str, Any]]:
    return [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080 + i}}}}
            for i in range(n)]


def bootstrap(*, route: dict[str, Any] | None = None, vhost: dict[str, Any] | None = None,
              route_extra: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
              hosts: int = 5, http_filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A one-listener, one-cluster Envoy bootstrap; the arguments are merged into the route action,
    the virtual host, the route and the cluster."""
    action: dict[str, Any] = {"cluster": "api", "timeout": "3s", **(route or {})}
    r: dict[str, Any] = {"match": {"prefix": "/"}, "route": action, **(route_extra or {})}
    vh: dict[str, Any] = {"name": "api", "domains": ["*"], "routes": [r], **(vhost or {})}
    filters = [*(http_filters or []), {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
    c: dict[str, Any] = {
        "name": "api", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "api", "endpoints": [{"lb_endpoints": _endpoints(hosts)}]},
        **(cluster or {}),
    }
    return {"static_resources": {
        "listeners": [{
            "name": "out",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 10000}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                             "HttpConnectionManager",
                    "stat_prefix": "out",
                    "route_config": {"virtual_hosts": [vh]},
                    "http_filters": filters,
                },
            }]}],
        }],
        "clusters": [c],
    }}


def virtual_service(http: list[dict[str, Any]], name: str = "api") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": [name], "http": http}}


def destination_rule(traffic_policy: dict[str, Any] | None = None, subsets: list[dict[str, Any]] | None = None,
                     name: str = "api") -> dict[str, Any]:
    spec: dict[str, Any] = {"host": name}
    if traffic_policy is not None:
        spec["trafficPolicy"] = traffic_policy
    if subsets is not None:
        spec["subsets"] = subsets
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": name},
            "spec": spec}


def codes(findings) -> dict[str, str]:
    """code -> path of each finding (the first of a code)."""
    out: dict[str, str] = {}
    for f in findings:
        out.setdefault(f.code, f.path)
    return out
