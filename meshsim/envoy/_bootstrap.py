"""One Envoy v3 static bootstrap per proxy, assembled from the policy modules' fragments.

Every field that carries a scenario policy comes from the module that owns the
concept (:mod:`meshsim.policies`): routes and their matches from
``routing.to_envoy``, timeouts from ``timeout.to_envoy``, retries and hedging
from ``retry.to_envoy`` (the retry budget from ``retry.budget_to_envoy``),
mirroring from ``routing.mirror_to_envoy``, faults from ``fault.to_envoy``,
circuit breakers and protocol options from ``circuit_breaker.to_envoy``,
outlier detection from ``outlier.to_envoy_cluster``, load balancing, hash
policies and locality groups from ``load_balancer``, health checks from
``health_check.to_envoy`` and the local rate limit from
``rate_limit.to_envoy``. This module only places them: listeners, virtual
hosts, clusters, endpoints, ports and names. What a module reports as
``unsupported`` is collected as :class:`Unsupported` notes.

The proxies:

* one sidecar per service (``<service>``), with an outbound listener whose
  route configuration has a virtual host per service it calls, one cluster per
  destination version it can reach, an inbound listener with the local rate
  limit when the service has one, and an admin listener;
* ``ingress``: the proxy the scenario's traffic sources send through. meshsim
  applies the entry services' mesh policies to the sources' requests too (a
  retry policy on ``mesh.frontend`` retries the users' calls into frontend),
  so this proxy has the same outbound listener, for the entry services. It is
  named ``ingress-gateway`` when a service is called ``ingress``. (meshsim
  gives each traffic source its own client-side proxy state; one ingress
  proxy serving every source shares its circuit breakers between them.)
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshsim._exceptions import ExportError, MeshsimWarning
from meshsim.envoy._ports import (
    DEFAULT_ENDPOINT_BASE_PORT,
    DEFAULT_NAMESPACE,
    DEFAULT_SERVICE_PORT,
    DEFAULT_SIDECAR_BASE_PORT,
    LOOPBACK,
    SidecarPorts,
    _check_mode,
    check_namespace,
    dns_label,
    endpoint_ports,
    replica_host,
    sidecar_ports,
)
from meshsim.policies import (
    circuit_breaker,
    fault,
    health_check,
    load_balancer,
    outlier,
    rate_limit,
    retry,
    routing,
    timeout,
)
from meshsim.policies.routing import DEFAULT_VERSION, Route

if TYPE_CHECKING:
    from meshsim.config import ClusterPolicies, MeshPolicy, RoutePolicies, Scenario

__all__ = [
    "INGRESS",
    "Unsupported",
    "export_envoy",
    "sidecar_names",
]

#: name of the proxy of the traffic sources (``ingress-gateway`` if a service has this name)
INGRESS = "ingress"
HCM_FILTER_NAME = "envoy.filters.network.http_connection_manager"
HCM_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_FILTER_NAME = "envoy.filters.http.router"
ROUTER_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

# the order keys are written in, for readers (Envoy does not care)
_CLUSTER_KEYS = (
    "name", "type", "dns_lookup_family", "connect_timeout", "lb_policy", "load_balancing_policy", "least_request_lb_config",
    "round_robin_lb_config", "ring_hash_lb_config", "maglev_lb_config", "common_lb_config", "circuit_breakers",
    "outlier_detection", "health_checks", "typed_extension_protocol_options", "upstream_connection_options",
    "load_assignment",
)
_ROUTE_ACTION_KEYS = (
    "cluster", "weighted_clusters", "timeout", "retry_policy", "hedge_policy", "request_mirror_policies",
    "hash_policy",
)


@dataclass(frozen=True)
class Unsupported:
    """A scenario setting that the exported Envoy configuration does not carry as simulated.

    Attributes
    ----------
    service
        The service whose setting it is.
    path
        The setting's path in the scenario (``mesh.api.routes[0].retries``,
        ``services.frontend.zones``).
    message
        What Envoy cannot express, or what differs, and what was written.
    """

    service: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def sidecar_names(scenario: Scenario) -> list[str]:
    """The exported proxies in order: the ingress proxy, then one per service in the scenario's order."""
    ingress = INGRESS
    n = 0
    while ingress in scenario.services:
        n += 1
        ingress = "ingress-gateway" if n == 1 else f"ingress-gateway-{n}"
    return [ingress, *scenario.services]


def export_envoy(
    scenario: Scenario,
    *,
    endpoints: str = "dns",
    namespace: str = DEFAULT_NAMESPACE,
    service_port: int = DEFAULT_SERVICE_PORT,
    endpoint_base_port: int = DEFAULT_ENDPOINT_BASE_PORT,
    sidecar_base_port: int = DEFAULT_SIDECAR_BASE_PORT,
    on_unsupported: Callable[[Unsupported], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Envoy v3 static bootstraps, one per proxy, for a scenario's mesh policies.

    Parameters
    ----------
    scenario
        A validated :class:`~meshsim.config.Scenario`.
    endpoints
        ``"dns"`` (default): replicas are ``STRICT_DNS`` host names as
        Kubernetes gives StatefulSet pods
        (``<service>-<version>-<i>.<service>.<namespace>.svc.cluster.local``);
        ``"static"``: ``127.0.0.1`` with one port per replica
        (:func:`~meshsim.envoy.endpoint_ports`), for local runs.
    namespace
        Kubernetes namespace, for host names and virtual-host domains
        (default ``"default"``).
    service_port
        The services' port (default 80): cluster names
        ``outbound|<port>|<version>|<service>``, ``Host`` domains with a port,
        and the replicas' port in ``"dns"`` mode.
    endpoint_base_port, sidecar_base_port
        First replica port and first proxy port in ``"static"`` mode
        (defaults 20000 and 15000; see :func:`~meshsim.envoy.sidecar_ports`).
    on_unsupported
        Called once for each :class:`Unsupported` setting (in a stable
        order); default: a :class:`~meshsim.MeshsimWarning` for each.

    Returns
    -------
    dict of str to dict
        Proxy name (:func:`sidecar_names`: ``"ingress"`` first, then the
        services) -> bootstrap as a JSON-ready mapping. The same scenario
        and options always give equal mappings, keys in the same order.

    Raises
    ------
    ConfigError
        A bad option (``endpoints``, ``namespace``, ports).
    ExportError
        Two policy fragments disagree on one field (a meshsim bug), or the
        static ports do not fit.
    """
    _check_mode(endpoints)
    check_namespace(namespace)
    names = sidecar_names(scenario)
    exporter = _Exporter(
        scenario,
        endpoints=endpoints,
        namespace=namespace,
        service_port=service_port,
        ports=sidecar_ports(
            scenario,
            names,
            endpoints=endpoints,
            base_port=sidecar_base_port,
            service_port=service_port,
            endpoint_base_port=endpoint_base_port,
        ),
        replica_ports=endpoint_ports(scenario, base_port=endpoint_base_port) if endpoints == "static" else {},
    )
    out = {names[0]: exporter.bootstrap(names[0], None)}
    for name in names[1:]:
        out[name] = exporter.bootstrap(name, name)
    report = on_unsupported if on_unsupported is not None else _warn
    for note in exporter.notes.values():
        report(note)
    return out


def _warn(note: Unsupported) -> None:
    warnings.warn(str(note), MeshsimWarning, stacklevel=3)


def merge(into: dict[str, Any], fragment: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Deep-merge (a copy of) an Envoy fragment into ``into``; equal leaves are fine, different ones an error.

    Raises
    ------
    ExportError
        Two fragments give one field different values.
    """
    for key, value in fragment.items():
        here = f"{where}.{key}" if where else key
        if key not in into:
            into[key] = copy.deepcopy(value)  # no sub-object is shared between two places
        elif isinstance(into[key], dict) and isinstance(value, Mapping):
            into[key] = merge(dict(into[key]), value, here)
        elif into[key] != value:
            raise ExportError(f"two policy fragments disagree on {here}: {into[key]!r} and {value!r}")
    return into


def _ordered(d: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _router() -> dict[str, Any]:
    return {"name": ROUTER_FILTER_NAME, "typed_config": {"@type": ROUTER_TYPE_URL}}


def _listener(name: str, port: int, route_config: dict[str, Any], http_filters: list[dict[str, Any]]) -> dict[str, Any]:
    hcm = {
        "@type": HCM_TYPE_URL,
        "stat_prefix": name,
        "route_config": route_config,
        "http_filters": [*http_filters, _router()],
    }
    return {
        "name": name,
        "address": _socket(LOOPBACK, port),
        "filter_chains": [{"filters": [{"name": HCM_FILTER_NAME, "typed_config": hcm}]}],
    }


class _Exporter:
    """The state of one export: options, ports and the notes collected so far."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        endpoints: str,
        namespace: str,
        service_port: int,
        ports: dict[str, SidecarPorts],
        replica_ports: dict[tuple[str, str, int], int],
    ) -> None:
        self.scenario = scenario
        self.endpoints = endpoints
        self.namespace = namespace
        self.port = service_port
        self.ports = ports
        self.replica_ports = replica_ports
        self.notes: dict[tuple[str, str], Unsupported] = {}
        self.graph = scenario.call_graph_ordered()
        if endpoints == "dns":
            for sname in scenario.services:
                if dns_label(sname) != sname:
                    self.note(
                        sname,
                        f"services.{sname}",
                        f"{sname!r} is not a Kubernetes DNS label; its replicas' host names use {dns_label(sname)!r}",
                    )

    def note(self, service: str, path: str, message: str) -> None:
        self.notes.setdefault((path, message), Unsupported(service, path, message))

    def cluster_name(self, service: str, version: str) -> str:
        return routing.cluster_name(service, version, port=self.port)

    # ------------------------------------------------------------------ a proxy
    def bootstrap(self, name: str, service: str | None) -> dict[str, Any]:
        scn = self.scenario
        ports = self.ports[name]
        if service is None:
            dests = scn.entry_services()
            zones = [src.zone for src in scn.traffic]
            where = "traffic"
        else:
            dests = self.graph[service]
            zones = [z for rv in scn.services[service].resolved_versions(service).values() for z in rv.zones]
            where = f"services.{service}"
        proxy_zone = zones[0] if zones else None
        clusters: dict[str, dict[str, Any]] = {}
        vhosts = []
        uses_fault = False
        zone_aware = False
        zone_dependent = []
        for dest in dests:
            vhost, has_fault = self.virtual_host(dest, proxy_zone, clusters)
            vhosts.append(vhost)
            uses_fault = uses_fault or has_fault
            for v in self.cluster_versions(dest):
                lb = self.cluster_policies(dest, v).load_balancer
                if load_balancer.depends_on_caller_zone(lb):
                    zone_dependent.append(dest)
                    zone_aware = zone_aware or lb.zone_aware is not None
        distinct = list(dict.fromkeys(zones))
        if zone_dependent and len(distinct) > 1:
            owner = service if service is not None else name
            self.note(
                owner,
                where,
                f"the load balancing of {', '.join(dict.fromkeys(zone_dependent))} depends on the caller's zone, and "
                f"these callers are in zones {', '.join(str(z) for z in distinct)}: the bootstrap is written for zone "
                f"{proxy_zone} (the first); proxies in the other zones need their own node.locality and endpoint "
                "priorities",
            )
        outbound_filters = []
        if uses_fault:
            outbound_filters.append({"name": fault.FAULT_FILTER_NAME, "typed_config": {"@type": fault.FAULT_TYPE_URL}})
        listeners = [
            _listener("outbound", ports.outbound, {"name": "outbound", "virtual_hosts": vhosts}, outbound_filters)
        ]
        all_clusters = list(clusters.values())
        if service is not None:
            rl = scn.mesh_for(service).rate_limit
            if rl is not None:
                for msg in rate_limit.unsupported(rl):
                    self.note(service, f"mesh.{service}.rate_limit", msg)
                local = self.cluster_name(service, DEFAULT_VERSION).replace("outbound|", "inbound|", 1)
                route = {"match": {"prefix": "/"}, "route": {"cluster": local, "timeout": "0s"}}
                inbound_routes = {
                    "name": "inbound",
                    "virtual_hosts": [{"name": "inbound", "domains": ["*"], "routes": [route]}],
                }
                limit = {"name": rate_limit.LOCAL_RATE_LIMIT_FILTER_NAME, "typed_config": rate_limit.to_envoy(rl)}
                listeners.append(_listener("inbound", ports.inbound, inbound_routes, [limit]))
                all_clusters.append(
                    {
                        "name": local,
                        "type": "STATIC",
                        "load_assignment": {
                            "cluster_name": local,
                            "endpoints": [{"lb_endpoints": [self.lb_endpoint(LOOPBACK, ports.app)]}],
                        },
                    }
                )
        out: dict[str, Any] = {"node": {"id": name, "cluster": service if service is not None else name}}
        if proxy_zone is not None:
            out["node"]["locality"] = load_balancer.envoy_locality(proxy_zone)
        out["admin"] = {"address": _socket(LOOPBACK, ports.admin)}
        local_cluster = self.local_cluster(service) if zone_aware and service is not None else None
        if local_cluster is not None:
            all_clusters.append(local_cluster)
        out["static_resources"] = {"listeners": listeners, "clusters": all_clusters}
        if local_cluster is not None:
            out["cluster_manager"] = {"local_cluster_name": local_cluster["name"]}
        return out

    # ------------------------------------------------------------------ routes
    def domains(self, dest: str) -> list[str]:
        ns = self.namespace
        names = [dest, f"{dest}.{ns}", f"{dest}.{ns}.svc", f"{dest}.{ns}.svc.cluster.local"]
        return [d for n in names for d in (n, f"{n}:{self.port}")]

    def route_items(self, dest: str) -> list[tuple[int | None, Route, RoutePolicies]]:
        mp = self.scenario.mesh_for(dest)
        if mp.routes:
            return [(i, r, mp.route_policies(i)) for i, r in enumerate(mp.routes)]
        return [(None, Route.model_validate({}), mp.route_policies(None))]

    def cluster_versions(self, dest: str) -> list[str]:
        """The versions (clusters) of ``dest`` its routes and mirrors reach, in the service's version order."""
        wanted: set[str] = set()
        for _, route, rp in self.route_items(dest):
            wanted.update(d.version for d in route.destinations if d.weight > 0)
            if rp.mirror is not None:
                wanted.add(rp.mirror.version)
        spec = self.scenario.services[dest]
        order = [DEFAULT_VERSION, *(spec.versions or {})]
        return [v for v in order if v in wanted]

    def virtual_host(self, dest: str, proxy_zone: str | None, clusters: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        mp = self.scenario.mesh_for(dest)
        for v in self.cluster_versions(dest):
            name = self.cluster_name(dest, v)
            if name not in clusters:
                clusters[name] = self.cluster(dest, v, proxy_zone)
        routes = []
        has_fault = False
        for i, route, rp in self.route_items(dest):
            action = self.route_action(dest, i, route, rp, mp)
            per_filter = None
            if rp.fault is not None:
                has_fault = True
                per_filter = {fault.FAULT_FILTER_NAME: fault.to_envoy(rp.fault)}
            for er in routing.to_envoy(route, service=dest, cluster_name=self.cluster_name):
                er["route"] = _ordered(merge(dict(er["route"]), action, "route"), _ROUTE_ACTION_KEYS)
                if per_filter is not None:
                    er["typed_per_filter_config"] = copy.deepcopy(per_filter)
                routes.append(er)
        vhost = {
            "name": f"{dest}.{self.namespace}.svc.cluster.local:{self.port}",
            "domains": self.domains(dest),
            "routes": routes,
        }
        return vhost, has_fault

    def route_action(
        self, dest: str, index: int | None, route: Route, rp: RoutePolicies, mp: MeshPolicy
    ) -> dict[str, Any]:
        """The route's policies as ``RouteAction`` fields (besides the cluster choice)."""
        own = route.policy_fields if index is not None else frozenset()

        def path(block: str) -> str:
            at = f"routes[{index}].{block}" if block in own else block
            return f"mesh.{dest}.{at}"

        action: dict[str, Any] = {}
        if rp.retries is not None:
            merge(action, retry.to_envoy(rp.retries), "route")
            for msg in retry.unsupported(rp.retries):
                self.note(dest, path("retries"), msg)
        merge(action, timeout.to_envoy(rp.timeout), "route")
        for msg in timeout.unsupported(rp.timeout):
            self.note(dest, path("timeout"), msg)
        if rp.fault is not None:
            for msg in fault.unsupported(rp.fault):
                self.note(dest, path("fault"), msg)
        if rp.mirror is not None:
            action["request_mirror_policies"] = [
                routing.mirror_to_envoy(rp.mirror, service=dest, cluster_name=self.cluster_name)
            ]
        # consistent hashing: the route carries the hash policy of the clusters it sends to
        live = [d.version for d in route.destinations if d.weight > 0]
        hashes: dict[str, list[str]] = {}
        policies: dict[str, list[dict[str, Any]]] = {}
        for v in live:
            hp = load_balancer.envoy_hash_policy(self.cluster_policies(dest, v).load_balancer)
            if hp:
                key = repr(hp)
                hashes.setdefault(key, []).append(v)
                policies.setdefault(key, hp)
        if hashes:
            first = next(iter(policies))
            action["hash_policy"] = policies[first]
            if len(hashes) > 1:
                where = f"mesh.{dest}.routes[{index}]" if index is not None else f"mesh.{dest}"
                groups = "; ".join(", ".join(vs) for vs in hashes.values())
                self.note(
                    dest,
                    where,
                    f"the versions it routes to hash on different keys ({groups}); Envoy has one hash_policy "
                    f"per route: written with the key of {', '.join(hashes[first])}",
                )
        return action

    # ------------------------------------------------------------------ clusters
    def cluster_policies(self, dest: str, version: str) -> ClusterPolicies:
        mp = self.scenario.mesh_for(dest)
        declared = bool(self.scenario.services[dest].versions)
        return mp.cluster_policies(None if version == DEFAULT_VERSION and declared else version)

    def hosts(self, dest: str, version: str) -> list[tuple[str, int, str | None]]:
        """``(version, replica, zone)`` of the cluster's hosts; ``"default"`` of a versioned service is all of them."""
        rvs = self.scenario.services[dest].resolved_versions(dest)
        chosen = rvs.values() if version == DEFAULT_VERSION else [rvs[version]]
        return [(rv.version, i, rv.zones[i]) for rv in chosen for i in range(rv.replicas)]

    def lb_endpoint(self, address: str, port: int) -> dict[str, Any]:
        return {"endpoint": {"address": _socket(address, port)}}

    def endpoint_of(self, dest: str, version: str, replica: int) -> dict[str, Any]:
        if self.endpoints == "static":
            return self.lb_endpoint(LOOPBACK, self.replica_ports[(dest, version, replica)])
        return self.lb_endpoint(replica_host(dest, version, replica, self.namespace), self.port)

    def discovery(self) -> dict[str, Any]:
        if self.endpoints == "static":
            return {"type": "STATIC"}
        return {"type": "STRICT_DNS", "dns_lookup_family": "V4_ONLY"}

    def cluster(self, dest: str, version: str, proxy_zone: str | None) -> dict[str, Any]:
        mp = self.scenario.mesh_for(dest)
        cp = self.cluster_policies(dest, version)
        name = self.cluster_name(dest, version)
        block = mp.versions.get(version)

        def path(field: str) -> str:
            at = f"versions.{version}.{field}" if block is not None and field in block.model_fields_set else field
            return f"mesh.{dest}.{at}"

        c: dict[str, Any] = {"name": name, **self.discovery()}
        merge(c, circuit_breaker.to_envoy(cp.circuit_breakers), "cluster")
        for msg in circuit_breaker.unsupported(cp.circuit_breakers):
            self.note(dest, path("circuit_breakers"), msg)
        budget = retry.budget_to_envoy(cp.retry_budget)
        if budget:
            thresholds = c["circuit_breakers"]["thresholds"]
            thresholds[0] = merge(dict(thresholds[0]), budget, "cluster.circuit_breakers.thresholds[0]")
        merge(c, load_balancer.to_envoy(cp.load_balancer), "cluster")
        for msg in load_balancer.unsupported(cp.load_balancer):
            self.note(dest, path("load_balancer"), msg)
        if cp.outlier_detection is not None:
            merge(c, outlier.to_envoy_cluster(cp.outlier_detection), "cluster")
            for msg in outlier.unsupported(cp.outlier_detection):
                self.note(dest, path("outlier_detection"), msg)
        if cp.health_check is not None:
            c["health_checks"] = [health_check.to_envoy(cp.health_check)]
            for msg in health_check.unsupported(cp.health_check):
                self.note(dest, path("health_check"), msg)
        hosts = self.hosts(dest, version)
        eps = [self.endpoint_of(dest, v, i) for v, i, _ in hosts]
        c["load_assignment"] = {
            "cluster_name": name,
            "endpoints": load_balancer.to_envoy_endpoints(cp.load_balancer, eps, [z for _, _, z in hosts], proxy_zone),
        }
        return _ordered(c, _CLUSTER_KEYS)

    def local_cluster(self, service: str) -> dict[str, Any] | None:
        """Envoy's local cluster for zone-aware routing: the calling service's own replicas, by zone."""
        hosts = self.hosts(service, DEFAULT_VERSION)
        if all(z is None for _, _, z in hosts):
            return None  # meshsim: a caller without zones has no local cluster
        name = f"local|{service}"
        eps = [self.endpoint_of(service, v, i) for v, i, _ in hosts]
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for ep, (_, _, z) in zip(eps, hosts, strict=True):
            groups.setdefault(z, []).append(ep)
        endpoints = []
        for z, members in groups.items():
            entry: dict[str, Any] = {}
            if z is not None:
                entry["locality"] = load_balancer.envoy_locality(z)
            entry["lb_endpoints"] = members
            endpoints.append(entry)
        return {"name": name, **self.discovery(), "load_assignment": {"cluster_name": name, "endpoints": endpoints}}
