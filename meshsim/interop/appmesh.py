"""Import AWS App Mesh routes and virtual nodes as a meshsim scenario, in Envoy's terms.

Input: the JSON the AWS CLI takes (``aws appmesh create-route --cli-input-json``,
``create-virtual-node``, ``create-virtual-service``, ``create-virtual-router``,
``create-mesh``; also ``describe-*`` output, whose resource is unwrapped), or
the YAML of the App Mesh Kubernetes controller's CRDs (``appmesh.k8s.aws/v1beta2``
``VirtualRouter`` with its ``routes``, ``VirtualNode``, ``VirtualService``,
``Mesh``). A file may hold several documents: a JSON array, a YAML stream, or
a Kubernetes ``List``.

The translation is the one App Mesh's control plane makes for its Envoys
(``../shared/reference/envoy.md`` section 10; App Mesh's control plane is
closed source, so the Envoy form is inferred from AWS's documentation where
it is not stated):

Services and versions
    A virtual router (or the virtual service it provides) is a meshsim
    service; the virtual nodes its routes send to are its versions. A virtual
    service whose provider is a virtual node is a service with that one
    version. Names: with ``--topology`` each router, virtual service and node is
    matched to the topology's services and versions (its name, the first DNS
    label of its virtual service, the name without a ``-router``/``-vr`` suffix,
    a node name without the ``<service>-`` prefix, or its ``version`` label;
    ``rename`` maps any App Mesh name explicitly).

Routes (``httpRoute``, ``http2Route``, ``grpcRoute``, ``tcpRoute``)
    ``priority`` orders the route table (0 first); routes without a priority
    follow, longest match first (App Mesh's documented sorting); the first
    match wins, as in Envoy. ``match`` → :meth:`RouteMatch.from_app_mesh
    <meshsim.policies.routing.RouteMatch.from_app_mesh>`; ``weightedTargets`` →
    the route's weighted versions; ``timeout`` → :meth:`TimeoutPolicy.from_app_mesh
    <meshsim.policies.timeout.TimeoutPolicy.from_app_mesh>` (15 s default);
    ``retryPolicy`` → :meth:`RetryPolicy.from_app_mesh
    <meshsim.policies.retry.RetryPolicy.from_app_mesh>` (server-error → 5xx,
    gateway-error, client-error → retriable-4xx, stream-error → refused-stream,
    connection-error → connect-failure, gRPC events by name). A route without
    ``retryPolicy`` gets App Mesh's default policy
    (:meth:`~meshsim.policies.retry.RetryPolicy.app_mesh_default`: 2 retries
    on 503, connect-failure, refused-stream, reset, gRPC unavailable), as does
    the route of a virtual service provided by a node; ``legacy_account``
    (meshes before 29 July 2020) drops it.

Virtual node listener
    ``outlierDetection`` → the callers' cluster for that version
    (:func:`meshsim.policies.outlier.from_appmesh`); ``healthCheck`` (HTTP) →
    active health checks by the callers
    (:func:`meshsim.policies.health_check.from_appmesh`); the listener protocol
    (``http2``/``grpc``) → HTTP/2 connection pools at the callers.
    ``connectionPool`` limits the node's **own** Envoy toward its local app
    (the ingress cluster): per replica, at most ``maxConnections`` (HTTP/1.1,
    TCP) or ``maxRequests`` (HTTP/2, gRPC) requests reach the app, and up to
    ``maxPendingRequests`` (HTTP/1.1) wait in Envoy; more are answered 503.
    meshsim expresses this as the version's ``workers`` and ``queue``
    (:func:`ingress_capacity`; exact for ``concurrency: blocking``). The
    listener ``timeout`` is enforced by the node's own Envoy (default 15 s):
    when it is shorter than a route's timeout it ends the try first, which
    meshsim expresses as the route's per-try timeout (with a warning).
    The callers' (egress) circuit breakers are App Mesh's fixed ones:
    2147483647 everywhere (1024/1024/1024/3 for ``legacy_account``).

Warned about, not simulated: TLS (listener and client policies), logging,
the mesh's egress filter and service-discovery preferences, ``port`` on
targets, TCP listeners and routes (simulated as HTTP requests, without their
idle timeouts), TCP and gRPC health checks, virtual gateways and gateway
routes; outlier detection with DNS service discovery (App Mesh's Envoy then
sees one address, not the replicas); a route target whose VirtualNode is not
among the files (taken as an HTTP listener without policies); a topology call
to an App Mesh service the calling node does not list under ``backends``.
Refused, with the file, document and field path: ``queryParameters`` and
``invert`` matchers, ``scheme: https``, a match on ``port``, more than one
listener, values outside App Mesh's ranges, and unknown keys (with a
suggestion).

Without ``--topology`` the importer builds a minimal topology (a comment
header says so): one service per router, virtual service or client node,
placeholder capacity and latency, calls from each node's ``backends``, and
traffic to the services nobody calls.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshsim._exceptions import ConfigError
from meshsim.interop._importing import (
    NAME_RE,
    ImportResult,
    Warnings,
    Where,
    call_reader,
    check_keys,
    finish,
    listing,
    mapping,
    read_documents,
    seconds_text,
)
from meshsim.policies import circuit_breaker, health_check, outlier
from meshsim.policies.retry import RetryPolicy
from meshsim.policies.routing import RouteMatch
from meshsim.policies.timeout import TimeoutPolicy
from meshsim.units import format_rate, parse_rate

__all__ = ["import_appmesh", "ingress_capacity", "DEFAULT_RATE", "UNLIMITED"]

#: Requests per second of the placeholder traffic of a minimal topology.
DEFAULT_RATE = 100.0
#: App Mesh's "no limit" for thresholds (2^31 - 1); a pending limit this high is an unlimited queue.
UNLIMITED = 2_147_483_647

_CRD_API = "appmesh.k8s.aws/v1beta2"
_META = ("meshName", "meshOwner", "tags", "clientToken")
_WRAPPERS = {"route": "Route", "virtualNode": "VirtualNode", "virtualService": "VirtualService",
             "virtualRouter": "VirtualRouter", "mesh": "Mesh", "virtualGateway": "VirtualGateway",
             "gatewayRoute": "GatewayRoute"}
_ROUTE_KINDS = ("httpRoute", "http2Route", "grpcRoute", "tcpRoute")
_PROTOCOLS = ("http", "http2", "grpc", "tcp")
_ROUTER_SUFFIXES = ("-virtual-router", "-router", "_router", "-vrouter", "-vr", "_vr")

# placeholders of a minimal topology
_MIN_REPLICAS = 3
_MIN_WORKERS = 16
_MIN_LATENCY = {"p50": "10ms", "p99": "50ms"}


# --------------------------------------------------------------------------------------------------
# the ingress connection pool as replica capacity (pure)


def ingress_capacity(
    workers: int,
    queue: int | None,
    *,
    protocol: str,
    max_connections: int | None = None,
    max_pending_requests: int | None = None,
    max_requests: int | None = None,
) -> tuple[int, int | None]:
    """Workers and queue of a replica behind its App Mesh Envoy's ingress connection pool.

    The node's Envoy sends at most ``L`` requests at once to the local app
    (``L`` = ``max_connections`` for an ``http`` or ``tcp`` listener, one request
    per HTTP/1.1 connection; ``max_requests`` for ``http2``/``grpc``) and holds up
    to ``P`` more in its pending queue (``max_pending_requests`` for ``http``, 0
    otherwise: an HTTP/2 or TCP overflow is answered 503 at once). Requests
    reach the app in arrival order, so a replica with ``W`` workers and app queue
    ``Q`` (``None`` = unlimited) behaves as one FIFO station with
    ``min(W, L)`` workers and room for ``L - min(W, L) + P`` more; when the app's
    own limit ``W + Q`` is below ``L`` the app refuses first and nothing changes.

    Parameters
    ----------
    workers, queue
        The app's concurrency and waiting room (``None``: unlimited).
    protocol
        The listener protocol: ``http``, ``http2``, ``grpc`` or ``tcp``.
    max_connections, max_pending_requests, max_requests
        The pool's limits (``None``: not set; a pending limit of
        :data:`UNLIMITED` or more is unlimited).

    Returns
    -------
    tuple
        ``(workers, queue)``; ``queue`` ``None`` means unlimited.

    Notes
    -----
    Exact for ``concurrency: blocking`` (a request holds its worker until it
    answers, as it holds Envoy's connection). With ``async`` the pool also
    counts requests waiting on their calls, which workers do not: the result
    is then a bound on own work only.

    Examples
    --------
    >>> ingress_capacity(16, None, protocol="http", max_connections=10, max_pending_requests=5)
    (10, 5)
    >>> ingress_capacity(4, None, protocol="http", max_connections=10)
    (4, None)
    >>> ingress_capacity(4, None, protocol="grpc", max_requests=10)
    (4, 6)
    >>> ingress_capacity(4, 2, protocol="http", max_connections=10, max_pending_requests=5)
    (4, 2)
    """
    if protocol in ("http2", "grpc"):
        limit, pending = max_requests, 0
    elif protocol in ("http", "tcp"):
        limit = max_connections
        pending = (max_pending_requests if max_pending_requests is not None else UNLIMITED) if protocol == "http" else 0
    else:
        raise ValueError(f"protocol must be one of {', '.join(_PROTOCOLS)}; got {protocol!r}")
    if limit is None or limit >= UNLIMITED:
        return workers, queue
    if queue is not None and workers + queue < limit:
        return workers, queue  # the app refuses before the pool fills: the pending queue is never used
    w = min(workers, limit)
    if pending >= UNLIMITED:
        return w, None
    return w, (limit - w) + pending


# --------------------------------------------------------------------------------------------------
# the documents, read


@dataclass
class _Node:
    name: str
    where: Where
    protocol: str | None = None
    listener: Mapping[str, Any] | None = None
    lwhere: Where | None = None
    backends: list[tuple[str, Where]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    dns: bool = False
    discovery_name: str | None = None  # Cloud Map service name, or the DNS host name's first label


@dataclass
class _Route:
    router: str
    name: str
    where: Where
    kind: str
    body: Mapping[str, Any]
    bwhere: Where
    priority: int | None
    order: int


@dataclass
class _VService:
    name: str
    aws_name: str
    where: Where
    provider: tuple[str, str] | None  # ("router" | "node", name)


@dataclass
class _Doc:
    kind: str
    name: str
    spec: Mapping[str, Any]
    where: Where  # at the document, path "" (labels name the document)
    spec_path: str
    crd: bool
    mesh: str | None
    raw: Mapping[str, Any]


def _arn_name(arn: Any, where: Where, what: str) -> str:
    if not isinstance(arn, str) or "/" not in arn:
        raise where.error(f"{arn!r} is not a {what} ARN (arn:aws:appmesh:...:mesh/<mesh>/{what}/<name>)")
    return arn.rsplit("/", 1)[1]


def _ref(value: Any, where: Where, plain: str, ref: str, arn: str, what: str) -> str:
    """A reference written as ``plain`` (CLI), ``ref: {name}`` or ``arn`` (CRD)."""
    data = mapping(value, where, what)
    given = [k for k in (plain, ref, arn) if k in data]
    if len(given) != 1:
        raise where.error(f"give one of {plain} (AWS CLI), {ref} or {arn} (Kubernetes)")
    key = given[0]
    if key == plain:
        name = data[plain]
        if not isinstance(name, str) or not name:
            raise where.at(plain).error(f"{name!r} is not a {what} name")
        return name
    if key == ref:
        r = mapping(data[ref], where.at(ref), ref)
        check_keys(r, ("name", "namespace"), where.at(ref), ref)
        if not isinstance(r.get("name"), str):
            raise where.at(ref, "name").error(f"{r.get('name')!r} is not a {what} name")
        return r["name"]
    return _arn_name(data[arn], where.at(arn), what)


def _classify(doc: Any, file: str, index: int) -> _Doc:
    base = Where(file, f"document {index}")
    if not isinstance(doc, Mapping):
        raise base.error(f"an App Mesh resource is a mapping; got {type(doc).__name__}")
    if "apiVersion" in doc:
        api = doc["apiVersion"]
        if not (isinstance(api, str) and api.startswith("appmesh.k8s.aws/")):
            raise base.at("apiVersion").error(f"{api!r} is not an App Mesh resource (allowed: {_CRD_API})")
        if api != _CRD_API:
            raise base.at("apiVersion").error(f"{api!r}: only {_CRD_API} is read")
        check_keys(doc, ("apiVersion", "kind", "metadata", "spec", "status"), base, "an App Mesh resource")
        kind = doc.get("kind")
        kinds = ("VirtualNode", "VirtualRouter", "VirtualService", "Mesh", "VirtualGateway", "GatewayRoute",
                 "BackendGroup")
        if kind not in kinds:
            raise base.at("kind").error(f"{kind!r} is not an App Mesh kind (allowed: {', '.join(kinds)})")
        meta = mapping(doc.get("metadata") or {}, base.at("metadata"), "metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise base.at("metadata", "name").error(f"{name!r}: a {kind} needs metadata.name")
        spec = mapping(doc.get("spec") or {}, base.at("spec"), "spec")
        return _Doc(kind, name, spec, Where(file, f"document {index} ({kind} {name})"), "spec", True, None, doc)
    if len(doc) == 1 and next(iter(doc)) in _WRAPPERS:  # describe-* / create-* output
        (key, inner), = doc.items()
        inner = mapping(inner, base.at(key), key)
        check_keys(inner, (*_META, "routeName", "virtualRouterName", "virtualNodeName", "virtualServiceName",
                           "virtualGatewayName", "gatewayRouteName", "spec", "metadata", "status"),
                   base.at(key), key)
        d = _classify_cli({k: v for k, v in inner.items() if k not in ("metadata", "status")}, file, index,
                          _WRAPPERS[key], prefix=key)
        return d
    return _classify_cli(doc, file, index, None, prefix="")


def _classify_cli(doc: Mapping[str, Any], file: str, index: int, kind: str | None, prefix: str) -> _Doc:
    base = Where(file, f"document {index}", prefix)
    names = {"routeName": "Route", "gatewayRouteName": "GatewayRoute", "virtualNodeName": "VirtualNode",
             "virtualServiceName": "VirtualService", "virtualGatewayName": "VirtualGateway",
             "virtualRouterName": "VirtualRouter"}
    if kind is None:
        for key, k in names.items():
            if key in doc:
                kind = k
                break
        else:
            if "meshName" in doc:
                kind = "Mesh"
            else:
                raise base.error(
                    "not an App Mesh resource: expected the JSON of `aws appmesh create-route | "
                    "create-virtual-node | create-virtual-service | create-virtual-router --cli-input-json` "
                    f"(with routeName, virtualNodeName, ...) or a Kubernetes {_CRD_API} resource")
    name_key = {"Route": "routeName", "GatewayRoute": "gatewayRouteName", "VirtualNode": "virtualNodeName",
                "VirtualService": "virtualServiceName", "VirtualGateway": "virtualGatewayName",
                "VirtualRouter": "virtualRouterName", "Mesh": "meshName"}[kind]
    allowed = [*_META, name_key, "spec"]
    if kind == "Route":
        allowed.append("virtualRouterName")
    if kind == "GatewayRoute":
        allowed.append("virtualGatewayName")
    check_keys(doc, allowed, base, f"a {kind} (AWS CLI input)")
    name = doc.get(name_key)
    if not isinstance(name, str) or not name:
        raise base.at(name_key).error(f"{name!r}: a {kind} needs {name_key}")
    if kind == "Route" and not isinstance(doc.get("virtualRouterName"), str):
        raise base.at("virtualRouterName").error("a Route needs virtualRouterName")
    mesh = doc.get("meshName")
    if mesh is None:
        raise base.at("meshName").error(f"a {kind} needs meshName")
    spec_path = f"{prefix}.spec" if prefix else "spec"
    spec = mapping(doc.get("spec") or {}, base.at("spec"), "spec")
    label = f"document {index} ({kind} {name})"
    return _Doc(kind, name, spec, Where(file, label, prefix), spec_path, False, str(mesh), doc)


def _duration_s(value: Any, where: Where) -> float:
    if isinstance(value, Mapping):
        check_keys(value, ("value", "unit"), where, "a duration")
        unit, amount = value.get("unit"), value.get("value")
        if unit not in ("ms", "s") or isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise where.error(f"{dict(value)!r} is not an App Mesh duration {{value: N >= 0, unit: ms|s}}")
        return float(amount) / (1000.0 if unit == "ms" else 1.0)
    raise where.error(f"{value!r} is not an App Mesh duration {{value: N, unit: ms|s}}")


def _first_label(name: str) -> str:
    return name.split(".", 1)[0]


def _strip_router(name: str) -> str:
    for suffix in _ROUTER_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _meshsim_name(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")
    return out or "x"


def _unique(seq: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in seq:
        if s and s not in out:
            out.append(s)
    return out


# --------------------------------------------------------------------------------------------------
# the importer


class _Importer:
    def __init__(self, *, legacy_account: bool, rename: Mapping[str, str]) -> None:
        self.w = Warnings()
        self.legacy = legacy_account
        self.rename = dict(rename)
        self.nodes: dict[str, _Node] = {}
        self.routers: dict[str, Where] = {}
        self.routes: list[_Route] = []
        self.vservices: dict[str, _VService] = {}
        self.meshes: dict[str, Where] = {}
        self._seen: dict[tuple[str, str], Where] = {}

    # ---- reading
    def read(self, files: Sequence[str]) -> None:
        order = 0
        for file in files:
            for i, raw in enumerate(read_documents(file)):
                d = _classify(raw, file, i)
                key = (d.kind, d.name if d.kind != "Route" else f"{d.raw.get('virtualRouterName')}/{d.name}")
                if key in self._seen:
                    raise d.where.error(f"{d.kind} {d.name!r} is given twice (first: {self._seen[key].text()})")
                self._seen[key] = d.where
                if d.mesh is not None:
                    self.meshes.setdefault(d.mesh, d.where)
                sw = d.where.at(*d.spec_path.split(".")) if d.spec_path else d.where
                if d.kind == "VirtualNode":
                    self._node(d, sw)
                elif d.kind == "Route":
                    self._route(d.raw["virtualRouterName"], d.name, d.spec, d.where, sw, order)
                    order += 1
                elif d.kind == "VirtualRouter":
                    order = self._router(d, sw, order)
                elif d.kind == "VirtualService":
                    self._vservice(d, sw)
                elif d.kind == "Mesh":
                    self._mesh(d, sw)
                else:
                    self.w.add(d.where, f"{d.kind} is not imported: meshsim has no ingress gateway; traffic "
                                        "enters at the entry services", key=f"kind:{d.kind}")
        if len(self.meshes) > 1:
            names = ", ".join(self.meshes)
            raise ConfigError(f"the documents belong to several meshes ({names}); import one mesh at a time")

    def _mesh(self, d: _Doc, sw: Where) -> None:
        check_keys(d.spec, ("egressFilter", "serviceDiscovery", "namespaceSelector", "awsName", "meshOwner"),
                   sw, "a Mesh spec")
        if d.crd:
            self.meshes.setdefault(str(d.spec.get("awsName") or d.name), d.where)
        else:
            self.meshes.setdefault(d.name, d.where)
        for key in ("egressFilter", "serviceDiscovery"):
            if key in d.spec:
                self.w.add(sw.at(key), f"the mesh's {key} is not simulated")

    def _router(self, d: _Doc, sw: Where, order: int) -> int:
        allowed = ("listeners", "awsName", "meshRef", "routes") if d.crd else ("listeners",)
        check_keys(d.spec, allowed, sw, "a VirtualRouter spec")
        self.routers[d.name] = d.where
        if d.crd:
            for i, r in enumerate(listing(d.spec.get("routes") or [], sw.at("routes"), "routes")):
                rw = sw.at("routes", i)
                r = mapping(r, rw, "a route")
                rname = r.get("name")
                if not isinstance(rname, str) or not rname:
                    raise rw.at("name").error(f"{rname!r}: every route needs a name")
                label = Where(d.where.file, f"{d.where.label} route {rname}", "")
                body = {k: v for k, v in r.items() if k != "name"}
                self._route(d.name, rname, body, label, rw, order, crd=True)
                order += 1
        return order

    def _route(self, router: str, name: str, spec: Mapping[str, Any], where: Where, sw: Where, order: int,
               crd: bool = False) -> None:
        check_keys(spec, (*_ROUTE_KINDS, "priority"), sw, "a route spec")
        kinds = [k for k in _ROUTE_KINDS if k in spec]
        if len(kinds) != 1:
            raise sw.error(f"a route has exactly one of {', '.join(_ROUTE_KINDS)}; got "
                           f"{', '.join(kinds) or 'none'}")
        prio = spec.get("priority")
        if prio is not None and (isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= 1000):
            raise sw.at("priority").error(f"{prio!r} is out of range; App Mesh allows 0 to 1000 (0 = first)")
        kind = kinds[0]
        body = mapping(spec[kind], sw.at(kind), kind)
        self.routes.append(_Route(router, name, where, kind, body, sw.at(kind), prio, order))

    def _vservice(self, d: _Doc, sw: Where) -> None:
        allowed = ("provider", "awsName", "meshRef") if d.crd else ("provider",)
        check_keys(d.spec, allowed, sw, "a VirtualService spec")
        aws = str(d.spec.get("awsName") or d.name) if d.crd else d.name
        provider = None
        if d.spec.get("provider") is not None:
            pw = sw.at("provider")
            p = mapping(d.spec["provider"], pw, "provider")
            check_keys(p, ("virtualRouter", "virtualNode"), pw, "provider")
            if len(p) != 1:
                raise pw.error("give one of virtualRouter, virtualNode")
            (key, value), = p.items()
            if key == "virtualRouter":
                provider = ("router", _ref(value, pw.at(key), "virtualRouterName", "virtualRouterRef",
                                           "virtualRouterARN", "virtualRouter"))
            else:
                provider = ("node", _ref(value, pw.at(key), "virtualNodeName", "virtualNodeRef",
                                         "virtualNodeARN", "virtualNode"))
        self.vservices[d.name] = _VService(d.name, aws, d.where, provider)

    def _node(self, d: _Doc, sw: Where) -> None:
        allowed = ["listeners", "serviceDiscovery", "backends", "backendDefaults", "logging"]
        if d.crd:
            allowed += ["awsName", "podSelector", "meshRef", "backendGroups"]
        check_keys(d.spec, allowed, sw, "a VirtualNode spec")
        node = _Node(d.name, d.where)
        listeners = listing(d.spec.get("listeners") or [], sw.at("listeners"), "listeners")
        if len(listeners) > 1:
            raise sw.at("listeners").error(
                f"{len(listeners)} listeners: meshsim services have one port; give one listener")
        if listeners:
            lw = sw.at("listeners", 0)
            lst = mapping(listeners[0], lw, "a listener")
            check_keys(lst, ("portMapping", "connectionPool", "outlierDetection", "healthCheck", "timeout", "tls"),
                       lw, "a listener")
            pm = mapping(lst.get("portMapping"), lw.at("portMapping"), "portMapping")
            check_keys(pm, ("port", "protocol"), lw.at("portMapping"), "portMapping")
            proto = pm.get("protocol")
            if proto not in _PROTOCOLS:
                raise lw.at("portMapping", "protocol").error(
                    f"{proto!r} is not a listener protocol (allowed: {', '.join(_PROTOCOLS)})")
            node.protocol, node.listener, node.lwhere = proto, lst, lw
            if "tls" in lst:
                self.w.add(lw.at("tls"), "TLS is not simulated (no handshake or encryption cost)", key="tls")
        sd = d.spec.get("serviceDiscovery")
        if sd is not None:
            sdw = sw.at("serviceDiscovery")
            sd = mapping(sd, sdw, "serviceDiscovery")
            check_keys(sd, ("dns", "awsCloudMap"), sdw, "serviceDiscovery")
            if "dns" in sd:
                dns = mapping(sd["dns"], sdw.at("dns"), "dns")
                check_keys(dns, ("hostname", "responseType", "ipPreference"), sdw.at("dns"), "dns")
                node.dns = dns.get("responseType") != "ENDPOINTS"
                if isinstance(dns.get("hostname"), str):
                    node.discovery_name = _first_label(dns["hostname"])
            if "awsCloudMap" in sd:
                cm = mapping(sd["awsCloudMap"], sdw.at("awsCloudMap"), "awsCloudMap")
                check_keys(cm, ("namespaceName", "serviceName", "attributes", "ipPreference"), sdw.at("awsCloudMap"),
                           "awsCloudMap")
                if isinstance(cm.get("serviceName"), str):
                    node.discovery_name = cm["serviceName"]
                for j, a in enumerate(listing(cm.get("attributes") or [], sdw.at("awsCloudMap", "attributes"),
                                              "attributes")):
                    aw = sdw.at("awsCloudMap", "attributes", j)
                    a = mapping(a, aw, "an attribute")
                    check_keys(a, ("key", "value"), aw, "an attribute")
                    node.labels[str(a.get("key"))] = str(a.get("value"))
        if d.crd and d.spec.get("podSelector") is not None:
            ps = mapping(d.spec["podSelector"], sw.at("podSelector"), "podSelector")
            ml = ps.get("matchLabels") or {}
            if isinstance(ml, Mapping):
                node.labels.update({str(k): str(v) for k, v in ml.items()})
        for j, b in enumerate(listing(d.spec.get("backends") or [], sw.at("backends"), "backends")):
            bw = sw.at("backends", j)
            b = mapping(b, bw, "a backend")
            check_keys(b, ("virtualService",), bw, "a backend")
            vs = mapping(b.get("virtualService"), bw.at("virtualService"), "virtualService")
            check_keys(vs, ("virtualServiceName", "virtualServiceRef", "virtualServiceARN", "clientPolicy"),
                       bw.at("virtualService"), "virtualService")
            if "clientPolicy" in vs:
                self.w.add(bw.at("virtualService", "clientPolicy"), "client TLS policies are not simulated",
                           key="tls")
            plain = {k: v for k, v in vs.items() if k != "clientPolicy"}
            name = _ref(plain, bw.at("virtualService"), "virtualServiceName", "virtualServiceRef",
                        "virtualServiceARN", "virtualService")
            node.backends.append((name, bw))
        if d.spec.get("backendDefaults") is not None:
            self.w.add(sw.at("backendDefaults"), "client TLS policies are not simulated", key="tls")
        if d.spec.get("logging") is not None:
            self.w.add(sw.at("logging"), "access logging does not affect the simulation", key="logging")
        if d.spec.get("backendGroups"):
            self.w.add(sw.at("backendGroups"), "backendGroups are not imported; list the backends", key="bg")
        self.nodes[d.name] = node

    # ---- naming
    def service_candidates_router(self, router: str) -> list[str]:
        c = [self.rename.get(router, "")]
        for vs in self.vservices.values():
            if vs.provider == ("router", router):
                c += [self.rename.get(vs.name, ""), _first_label(vs.aws_name), _first_label(vs.name)]
        c += [_strip_router(router), router]
        return _unique(c)

    def service_candidates_vs(self, vs: _VService) -> list[str]:
        return _unique([self.rename.get(vs.name, ""), _first_label(vs.aws_name), _first_label(vs.name)])

    def client_candidates(self, node: str) -> list[str]:
        """Service names for a node no route leads to (a client such as a frontend)."""
        n = self.nodes[node]
        return _unique([self.rename.get(node, ""), n.discovery_name or "", n.labels.get("app", ""), node])

    def version_candidates(self, node: str, service: str) -> list[str]:
        c = [self.rename.get(node, "")]
        n = self.nodes.get(node)
        if n is not None and n.labels.get("version"):
            c.append(n.labels["version"])
        for sep in ("-", "_"):
            if node.startswith(service + sep) and len(node) > len(service) + 1:
                c.append(node[len(service) + 1:])
        c.append(node)
        return _unique(c)


def _pick(candidates: Sequence[str], names: Sequence[str] | None) -> str | None:
    if names is None:
        for c in candidates:
            if NAME_RE.match(c):
                return c
        return _meshsim_name(candidates[0]) if candidates else None
    for c in candidates:
        if c in names:
            return c
    return None


def _retries_dict(p: RetryPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {"retry_on": p.retry_on, "num_retries": p.num_retries}
    if p.per_try_timeout:
        out["per_try_timeout"] = seconds_text(p.per_try_timeout)
    if p.retriable_status_codes:
        out["retriable_status_codes"] = list(p.retriable_status_codes)
    return out


def _route_order_key(r: _Route) -> tuple[int, int, int]:
    if r.priority is not None:
        return (0, r.priority, r.order)
    m = r.body.get("match") if isinstance(r.body.get("match"), Mapping) else {}
    if r.kind == "grpcRoute":
        length = len(str(m.get("serviceName") or "")) + len(str(m.get("methodName") or ""))
    else:
        path = m.get("path") if isinstance(m.get("path"), Mapping) else {}
        length = len(str(m.get("prefix") or path.get("exact") or path.get("regex") or ""))
    return (1, -length, r.order)


def import_appmesh(
    files: Sequence[str | os.PathLike[str]],
    *,
    topology: str | os.PathLike[str] | None = None,
    rate: float | str | None = None,
    legacy_account: bool = False,
    rename: Mapping[str, str] | None = None,
    duration: str = "60s",
) -> ImportResult:
    """Read App Mesh resources into a scenario (see the module docstring for the mapping).

    Parameters
    ----------
    files
        JSON (AWS CLI input or describe output) and/or YAML (``appmesh.k8s.aws/v1beta2``
        CRDs) files; each may hold several documents.
    topology
        A scenario whose services, capacity, latency, scripts and traffic are
        used; its ``mesh`` entries for the imported services are replaced.
        Without it a minimal topology is built from the resources.
    rate
        Traffic of a minimal topology (requests per second, or ``"200/s"``),
        default :data:`DEFAULT_RATE`; with ``topology`` it is refused (the
        topology's traffic is used).
    legacy_account
        The account had meshes before 29 July 2020: no default retry policy,
        Envoy's default client circuit breakers (1024/1024/1024/3).
    rename
        App Mesh name (router, virtual service or virtual node) -> meshsim
        service or version name, for names the importer cannot match.
    duration
        Traffic duration of a minimal topology.

    Returns
    -------
    ImportResult

    Raises
    ------
    ConfigError
        One line: file, document (kind and name), field path, value, what is allowed.
    """
    if not files:
        raise ConfigError("no App Mesh file given")
    imp = _Importer(legacy_account=legacy_account, rename=rename or {})
    imp.read([str(f) for f in files])
    if not imp.routes and not imp.nodes and not imp.vservices:
        raise ConfigError("the files hold no Route, VirtualNode or VirtualService: nothing to import")
    topo_scn = None
    topo_raw: dict[str, Any] | None = None
    if topology is not None:
        if rate is not None:
            raise ConfigError("--rate applies to a minimal topology; with --topology the topology's traffic is used")
        from meshsim.config import load_scenario

        topo_scn = load_scenario(topology)
        topo_raw = copy.deepcopy(yaml.safe_load(Path(topology).read_text(encoding="utf-8")))
    return _build(imp, topo_scn, topo_raw, topology, rate, duration, [str(f) for f in files])


@dataclass
class _Dest:
    service: str
    where: Where
    routes: list[_Route] = field(default_factory=list)
    node_provider: str | None = None  # a virtual service provided by one node
    versions: dict[str, str] = field(default_factory=dict)  # node -> version


def _build(imp: _Importer, topo: Any, raw: dict[str, Any] | None, topology: Any, rate: Any, duration: str,
           files: list[str]) -> ImportResult:
    w = imp.w
    services = list(topo.services) if topo is not None else None

    def versions_of(s: str) -> list[str] | None:
        if topo is None:
            return None
        return topo.services[s].version_names()

    # ---- destination services: routers (and the virtual services they provide), node-provided services
    dests: dict[str, _Dest] = {}
    by_router: dict[str, str] = {}
    router_where: dict[str, Where] = {}
    for r in imp.routes:
        router_where.setdefault(r.router, r.where)
    for name, wh in imp.routers.items():
        router_where.setdefault(name, wh)
    for vs in imp.vservices.values():
        if vs.provider is not None and vs.provider[0] == "router":
            router_where.setdefault(vs.provider[1], vs.where)
    for router, wh in router_where.items():
        cands = imp.service_candidates_router(router)
        s = _pick(cands, services)
        if s is None:
            raise wh.error(f"virtual router {router!r} matches no service of the topology (tried "
                           f"{', '.join(cands)}; services: {', '.join(services or [])}); map it with "
                           f"--rename {router}=SERVICE")
        if s in dests:
            raise wh.error(f"virtual router {router!r} and {dests[s].where.text()} both become service {s!r}; "
                           "map one with --rename NAME=SERVICE")
        dests[s] = _Dest(s, wh)
        by_router[router] = s
    for vs in imp.vservices.values():
        if vs.provider is None or vs.provider[0] != "node":
            if vs.provider is None:
                w.add(vs.where, "a virtual service without provider routes nowhere; not imported")
            continue
        cands = imp.service_candidates_vs(vs)
        s = _pick(cands, services)
        if s is None:
            raise vs.where.error(f"virtual service {vs.name!r} matches no service of the topology (tried "
                                 f"{', '.join(cands)}; services: {', '.join(services or [])}); map it with "
                                 f"--rename {vs.name}=SERVICE")
        if s in dests:
            raise vs.where.error(f"virtual service {vs.name!r} and {dests[s].where.text()} both become service "
                                 f"{s!r}; map one with --rename NAME=SERVICE")
        dests[s] = _Dest(s, vs.where, node_provider=vs.provider[1])
    for r in sorted(imp.routes, key=_route_order_key):
        dests[by_router[r.router]].routes.append(r)
    for router, s in list(by_router.items()):
        if not dests[s].routes:
            w.add(dests[s].where, f"virtual router {router!r} has no route: Envoy would answer 404 to every request; "
                                  "not imported")
            del dests[s]
            del by_router[router]

    # ---- versions: the nodes each destination sends to
    node_home: dict[str, tuple[str, str]] = {}

    def assign(node: str, d: _Dest, where: Where) -> str:
        if node not in imp.nodes:
            w.add(where, f"virtual node {node!r} is not among the imported documents: taken as an http listener "
                         "without listener policies (import its VirtualNode too)")
            imp.nodes[node] = _Node(node, where, protocol="http", listener={}, lwhere=where)
        n = imp.nodes[node]
        if n.listener is None:
            raise where.error(f"virtual node {node!r} has no listener: App Mesh cannot send it traffic")
        if node in node_home and node_home[node][0] != d.service:
            raise where.error(f"virtual node {node!r} serves both {node_home[node][0]!r} and {d.service!r}; "
                              "a meshsim version belongs to one service")
        if node in d.versions:
            return d.versions[node]
        names = versions_of(d.service)
        cands = imp.version_candidates(node, d.service)
        if names is not None and names == ["default"] and not d.versions:
            v = "default"
        else:
            v = _pick(cands, names)
        if v is None:
            hint = (f"the topology's {d.service!r} has no versions: give it one per virtual node"
                    if names == ["default"] else f"map it with --rename {node}=VERSION")
            raise where.error(f"virtual node {node!r} matches no version of {d.service!r} (tried "
                              f"{', '.join(cands)}; versions: {', '.join(names or [])}); {hint}")
        if v in d.versions.values():
            other = next(k for k, x in d.versions.items() if x == v)
            raise where.error(f"virtual nodes {other!r} and {node!r} both become version {v!r} of {d.service!r}; "
                              "map one with --rename NODE=VERSION")
        d.versions[node] = v
        node_home[node] = (d.service, v)
        return v

    mesh: dict[str, dict[str, Any]] = {}
    for d in dests.values():
        entry: dict[str, Any] = {}
        routes = []
        if d.node_provider is not None:  # App Mesh writes one route, with its defaults
            v = assign(d.node_provider, d, d.where)
            routes.append({"route": v, "timeout": seconds_text(TimeoutPolicy.from_app_mesh(None).timeout),
                           "retries": None if imp.legacy else _retries_dict(RetryPolicy.app_mesh_default())})
        seen_prio: dict[int, str] = {}
        for r in d.routes:
            routes.append(_route(imp, r, d, assign))
            if r.priority is not None:
                if r.priority in seen_prio:
                    w.add(r.where, f"routes {seen_prio[r.priority]!r} and {r.name!r} have the same priority "
                                   f"{r.priority}: App Mesh does not define their order; meshsim keeps file order")
                seen_prio[r.priority] = r.name
        if any(r.priority is None for r in d.routes) and len(d.routes) > 1:
            w.add(d.where, f"routes of {d.service!r} without a priority come after those with one, longest match "
                           "first (App Mesh's documented sorting, inferred); give every route a priority to be sure")
        if routes:
            entry["routes"] = routes
        mesh[d.service] = entry

    # ---- per version: the callers' cluster (egress) and the node's own Envoy (ingress)
    capacity: dict[tuple[str, str], tuple[str, Mapping[str, Any], Where]] = {}
    ingress_timeouts: dict[tuple[str, str], tuple[float, str, Where]] = {}
    for node, (s, v) in node_home.items():
        n = imp.nodes[node]
        lst, lw = n.listener, n.lwhere
        assert lst is not None and lw is not None and n.protocol is not None
        cb = call_reader(circuit_breaker.from_appmesh, lw, None, legacy_account=imp.legacy)
        block: dict[str, Any] = {"circuit_breakers": {
            "max_connections": cb.max_connections, "max_pending_requests": cb.max_pending_requests,
            "max_requests": cb.max_requests, "max_retries": cb.max_retries,
            "protocol": "http2" if n.protocol in ("http2", "grpc") else "http1"}}
        if n.protocol == "tcp":
            w.add(lw.at("portMapping", "protocol"), "a tcp listener is simulated as HTTP/1.1 requests", key="tcp")
        if lst.get("outlierDetection") is not None:
            odw = lw.at("outlierDetection")
            od_raw = mapping(lst["outlierDetection"], odw, "outlierDetection")
            mep = od_raw.get("maxEjectionPercent")
            if mep is not None and (isinstance(mep, bool) or not isinstance(mep, int) or not 0 <= mep <= 100):
                raise odw.at("maxEjectionPercent").error(f"{mep!r} is out of range; App Mesh allows 0 to 100")
            od = call_reader(outlier.from_appmesh, odw, od_raw)
            block["outlier_detection"] = {
                "consecutive_5xx": od.consecutive_5xx, "interval": seconds_text(od.interval),
                "base_ejection_time": seconds_text(od.base_ejection_time),
                "max_ejection_percent": od.max_ejection_percent}
            if n.dns:
                w.add(lw.at("outlierDetection"),
                      "outlier detection with DNS service discovery: App Mesh's Envoy sees one address (the DNS "
                      "name), not the replicas; meshsim ejects replicas as with Cloud Map or responseType ENDPOINTS")
        if lst.get("healthCheck") is not None:
            hcw = lw.at("healthCheck")
            hc_raw = mapping(lst["healthCheck"], hcw, "healthCheck")
            if hc_raw.get("protocol") in ("tcp", "grpc"):
                w.add(hcw.at("protocol"), f"{hc_raw.get('protocol')} health checks are not simulated (meshsim models "
                                          "HTTP checks)")
            else:
                hc = call_reader(health_check.from_appmesh, hcw, hc_raw)
                block["health_check"] = {
                    "timeout": seconds_text(hc.timeout), "interval": seconds_text(hc.interval),
                    "unhealthy_threshold": hc.unhealthy_threshold, "healthy_threshold": hc.healthy_threshold,
                    "path": hc.path}
        if lst.get("connectionPool") is not None:
            cpw = lw.at("connectionPool")
            cp = mapping(lst["connectionPool"], cpw, "connectionPool")
            proto_key = n.protocol
            if list(cp) != [proto_key]:
                raise cpw.error(f"a {n.protocol} listener takes connectionPool.{proto_key} only (App Mesh's rule); "
                                f"got {', '.join(map(str, cp)) or 'nothing'}")
            pool = call_reader(circuit_breaker.from_appmesh, lw, cp)  # its paths start at connectionPool
            capacity[(s, v)] = (n.protocol, {
                "max_connections": pool.max_connections if n.protocol in ("http", "tcp") else None,
                "max_pending_requests": pool.max_pending_requests if n.protocol == "http" else None,
                "max_requests": pool.max_requests if n.protocol in ("http2", "grpc") else None}, cpw)
        lt = _listener_timeout(n, w)
        if lt is not None:
            ingress_timeouts[(s, v)] = lt
        mesh[s].setdefault("versions", {})[v] = block

    # ---- a client node's own timeout (the first Envoy the traffic meets): the entry's route timeout
    client_timeouts: dict[str, tuple[float, Where]] = {}
    for node, n in imp.nodes.items():
        if node not in node_home and n.listener is not None and n.listener.get("timeout") is not None:
            lt = _listener_timeout(n, w)
            if lt is not None:
                client_timeouts[node] = (lt[0], lt[2])

    # ---- the node's own timeout, as the routes' per-try timeout where it ends a try first
    for s, entry in mesh.items():
        for i, rd in enumerate(entry.get("routes", [])):
            _ingress_timeout(rd, s, i, ingress_timeouts, w)
        if dests[s].node_provider is not None and versions_of(s) == ["default"]:
            only = entry.pop("routes")[0]  # a service without versions: its implicit route
            entry["timeout"] = only["timeout"]
            entry["retries"] = only["retries"]

    # ---- the scenario
    service_of_vs: dict[str, str] = {}
    for vs in imp.vservices.values():
        if vs.provider is not None:
            kind, name = vs.provider
            s = by_router.get(name) if kind == "router" else node_home.get(name, (None, None))[0]
            if s is not None:
                service_of_vs[vs.name] = s
                service_of_vs.setdefault(vs.aws_name, s)
    if topo is None:
        scenario, header = _minimal(imp, dests, node_home, service_of_vs, mesh, capacity, client_timeouts, rate,
                                    duration, files, w)
    else:
        scenario, header = _with_topology(imp, topo, raw, topology, node_home, service_of_vs, mesh, capacity,
                                          client_timeouts, files, w)
    return finish(scenario, header, w, source=f"{files[0]} (imported)")


def _route(imp: _Importer, r: _Route, d: _Dest, assign: Any) -> dict[str, Any]:
    w = imp.w
    body, bw = r.body, r.bwhere
    tcp = r.kind == "tcpRoute"
    allowed = ("match", "action", "timeout") if tcp else ("match", "action", "retryPolicy", "timeout")
    check_keys(body, allowed, bw, r.kind)
    out: dict[str, Any] = {"name": r.name}
    if tcp:
        m = body.get("match")
        if m:
            w.add(bw.at("match"), "a tcpRoute match (port) is not simulated")
    else:
        kind = "grpc" if r.kind == "grpcRoute" else "http"
        if kind == "http" and body.get("match") is None:
            raise bw.at("match").error("an HTTP route needs a match (prefix or path), App Mesh's rule")
        match = call_reader(RouteMatch.from_app_mesh, bw.at("match"), body.get("match"), kind=kind)
        dumped = match.model_dump(exclude_none=True, exclude_defaults=True)
        if dumped:
            out["match"] = [dumped]
    aw = bw.at("action")
    action = mapping(body.get("action"), aw, "action")
    check_keys(action, ("weightedTargets",), aw, "action")
    targets = listing(action.get("weightedTargets"), aw.at("weightedTargets"), "weightedTargets")
    if not 1 <= len(targets) <= 10:
        raise aw.at("weightedTargets").error(f"{len(targets)} targets; App Mesh allows 1 to 10")
    dest: dict[str, int] = {}
    for j, t in enumerate(targets):
        tw = aw.at("weightedTargets", j)
        t = mapping(t, tw, "a weighted target")
        check_keys(t, ("virtualNode", "virtualNodeRef", "virtualNodeARN", "weight", "port"), tw, "a weighted target")
        node = _ref({k: v for k, v in t.items() if k not in ("weight", "port")}, tw, "virtualNode",
                    "virtualNodeRef", "virtualNodeARN", "virtualNode")
        weight = t.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise tw.at("weight").error(f"{weight!r} is out of range; App Mesh allows whole numbers 0 to 100")
        if "port" in t:
            w.add(tw.at("port"), "a target port is not simulated: meshsim services have one port", key="port")
        v = assign(node, d, tw)
        if v in dest:
            raise tw.error(f"virtual node {node!r} is a target twice")
        dest[v] = weight
    if sum(dest.values()) <= 0:
        raise aw.at("weightedTargets").error("the weights add up to 0: the route would send nothing")
    out["route"] = next(iter(dest)) if len(dest) == 1 else dest
    if tcp:
        out["timeout"] = "0s"
        out["retries"] = None
        w.add(bw, "tcpRoute: meshsim simulates requests; the route keeps its targets, with no retries and no "
                  "request timeout (timeout.idle is not simulated)", key="tcpRoute")
        return out
    tp = call_reader(TimeoutPolicy.from_app_mesh, bw.at("timeout"), body.get("timeout"))
    rt = body.get("timeout") if isinstance(body.get("timeout"), Mapping) else {}
    if isinstance(rt, Mapping) and "idle" in rt and "perRequest" in rt:
        pr = _duration_s(rt["perRequest"], bw.at("timeout", "perRequest"))
        idle = _duration_s(rt["idle"], bw.at("timeout", "idle"))
        if 0 < idle < (pr or math.inf):
            w.add(bw.at("timeout", "idle"), "the idle timeout is shorter than perRequest: simulated as the route "
                                            "timeout (Envoy answers 408 rather than 504)")
    out["timeout"] = seconds_text(tp.timeout)
    if body.get("retryPolicy") is not None:
        rw = bw.at("retryPolicy")
        rp = mapping(body["retryPolicy"], rw, "retryPolicy")
        if r.kind != "grpcRoute" and "grpcRetryEvents" in rp:
            raise rw.at("grpcRetryEvents").error("grpcRetryEvents belong to a grpcRoute")
        for key in ("perRetryTimeout",):
            if key in rp:
                _duration_s(rp[key], rw.at(key))
        policy = call_reader(RetryPolicy.from_app_mesh, rw, rp)
        out["retries"] = _retries_dict(policy)
    elif not imp.legacy:
        out["retries"] = _retries_dict(RetryPolicy.app_mesh_default())
    else:
        out["retries"] = None
    return out


def _ingress_timeout(rd: dict[str, Any], service: str, index: int,
                     timeouts: Mapping[tuple[str, str], tuple[float, str, Where]], w: Warnings) -> None:
    route = rd["route"]
    targets = [route] if isinstance(route, str) else [v for v, wt in route.items() if wt > 0]
    rt = TimeoutPolicy.model_validate(rd.get("timeout", "15s")).timeout
    retries = rd.get("retries")
    pt = TimeoutPolicy.model_validate({"timeout": 0, "per_try_timeout": retries["per_try_timeout"]}).per_try_timeout \
        if isinstance(retries, Mapping) and "per_try_timeout" in retries else 0.0
    budget = min([t for t in (rt, pt) if t > 0], default=math.inf)
    binding = {}
    for v in targets:
        if (service, v) not in timeouts:
            continue
        t, how, where = timeouts[(service, v)]
        if 0 < t < budget:
            binding[v] = (t, how, where)
    if not binding:
        return
    values = {t for t, _, _ in binding.values()}
    name = rd.get("name", f"routes[{index}]")
    first = next(iter(binding.values()))
    if len(values) > 1 or len(binding) < len(targets):
        w.add(first[2], f"the listener timeouts of {service!r}'s versions differ on route {name!r} "
                        "(some end a try before the route does): not simulated")
        return
    t = values.pop()
    text = seconds_text(t)
    if isinstance(retries, Mapping):
        retries["per_try_timeout"] = text
        rt_tokens = str(retries.get("retry_on", ""))
        retried = any(tok in rt_tokens.split(",") for tok in ("5xx", "gateway-error", "reset"))
    else:
        tblock = rd.get("timeout")
        rd["timeout"] = {"timeout": tblock if tblock is not None else "15s", "per_try_timeout": text}
        retried = False
    again = " (and retried, since retry_on has 5xx, gateway-error or reset)" if retried else ""
    w.add(first[2], f"the listener timeout {text} ({first[1]}) of {service!r} is shorter than route {name!r}'s "
                    f"timeout: Envoy on the node answers 504 at {text}; simulated as the route's per-try timeout"
                    f"{again}")


def _listener_timeout(n: _Node, w: Warnings) -> tuple[float, str, Where] | None:
    """The timeout the node's own Envoy puts on each request it passes to its app: (seconds, how, where)."""
    lst, lw = n.listener, n.lwhere
    if lst is None or lw is None or n.protocol is None or n.protocol == "tcp":
        if lst is not None and lw is not None and isinstance(lst.get("timeout"), Mapping) and "tcp" in lst["timeout"]:
            w.add(lw.at("timeout", "tcp"), "a tcp listener's idle timeout is not simulated")
        return None
    section = None
    if lst.get("timeout") is not None:
        tw = lw.at("timeout")
        tblock = mapping(lst["timeout"], tw, "timeout")
        check_keys(tblock, _PROTOCOLS, tw, "a listener timeout")
        extra = [k for k in tblock if k != n.protocol]
        if extra:
            w.add(tw.at(extra[0]), f"timeout.{extra[0]} does not apply to a {n.protocol} listener; ignored")
        if tblock.get(n.protocol) is not None:
            section = mapping(tblock[n.protocol], tw.at(n.protocol), "timeout")
    where = lw.at("timeout", n.protocol) if section is not None else lw
    t = call_reader(TimeoutPolicy.from_app_mesh, where, section).timeout
    return t, ("as given" if section is not None else "App Mesh's default"), where


def _version_spec(node: _Node, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node.labels and node.labels != {"version": version}:
        out["labels"] = dict(node.labels)
    return out


def _backend_services(imp: _Importer, node: _Node, service_of_vs: Mapping[str, str], w: Warnings) -> list[str]:
    out = []
    for vsname, bw in node.backends:
        s = service_of_vs.get(vsname)
        if s is None:
            w.add(bw, f"backend {vsname!r} is no imported virtual service; its calls are not simulated")
            continue
        if s not in out:
            out.append(s)
    return out


def _minimal(imp: _Importer, dests: Mapping[str, _Dest], node_home: Mapping[str, tuple[str, str]],
             service_of_vs: Mapping[str, str], mesh: dict[str, dict[str, Any]],
             capacity: Mapping[tuple[str, str], Any], client_timeouts: Mapping[str, tuple[float, Where]],
             rate: Any, duration: str, files: list[str], w: Warnings) -> tuple[dict[str, Any], list[str]]:
    services: dict[str, Any] = {}
    for s, d in dests.items():
        versions: dict[str, Any] = {}
        for node, v in sorted(d.versions.items(), key=lambda kv: kv[1]):
            n = imp.nodes[node]
            spec = _version_spec(n, v)
            calls = _backend_services(imp, n, service_of_vs, w)
            if calls:
                spec["script"] = ["work", *({"call": c} for c in calls)]
            versions[v] = spec
        services[s] = {"replicas": _MIN_REPLICAS, "workers": _MIN_WORKERS, "latency": dict(_MIN_LATENCY),
                       "versions": versions}
    # nodes no route or virtual service leads to: clients (a frontend), one service each
    for node, n in imp.nodes.items():
        if node in node_home:
            continue
        policies = [k for k in ("outlierDetection", "healthCheck", "connectionPool", "timeout")
                    if n.listener is not None and n.listener.get(k) is not None]
        if policies and n.lwhere is not None:
            w.add(n.lwhere, f"no route or virtual service leads to virtual node {node!r}: its "
                            f"{', '.join(policies)} apply to no caller")
        s = _pick(imp.client_candidates(node), None) or _meshsim_name(node)
        if s in services:
            raise n.where.error(f"virtual node {node!r} becomes service {s!r}, which exists; map it with "
                                "--rename NODE=SERVICE")
        spec: dict[str, Any] = {"replicas": _MIN_REPLICAS, "workers": _MIN_WORKERS, "latency": dict(_MIN_LATENCY)}
        calls = _backend_services(imp, n, service_of_vs, w)
        if calls:
            spec["script"] = ["work", *({"call": c} for c in calls)]
        services[s] = spec
        if node in client_timeouts:  # the first Envoy its callers meet is its own
            mesh[s] = {"timeout": seconds_text(client_timeouts[node][0])}
    # the ingress connection pools
    for (s, v), (proto, limits, _cpw) in capacity.items():
        vs = services[s]["versions"][v]
        wk, q = ingress_capacity(_MIN_WORKERS, None, protocol=proto, **limits)
        if wk != _MIN_WORKERS:
            vs["workers"] = wk
        if q is not None:
            vs["queue"] = q
    called = set()
    for spec in services.values():
        scripts = [spec.get("script") or []] + [vv.get("script") or [] for vv in (spec.get("versions") or {}).values()]
        for sc in scripts:
            called.update(st["call"] for st in sc if isinstance(st, Mapping) and "call" in st)
    entries = [s for s in services if s not in called] or list(services)
    try:
        total = parse_rate(DEFAULT_RATE if rate is None else rate)
    except ValueError as exc:
        raise ConfigError(f"--rate: {exc}") from None
    if total <= 0:
        raise ConfigError(f"--rate: {rate!r} must be above 0")
    each = total / len(entries)
    traffic = [{"name": "clients" if len(entries) == 1 else f"clients-{s}", "to": s, "rate": format_rate(each)
                if parse_rate(format_rate(each)) == each else each} for s in entries]
    mesh_name = next(iter(imp.meshes), None)
    scenario: dict[str, Any] = {
        "name": _meshsim_name(mesh_name) if mesh_name else "appmesh",
        "description": f"App Mesh {'mesh ' + mesh_name if mesh_name else 'resources'}, imported by meshsim",
        "duration": duration,
        "services": services,
        "traffic": traffic,
        "mesh": mesh,
    }
    header = [
        f"Imported by `meshsim import appmesh` from {', '.join(files)}.",
        "",
        "No --topology was given: the services, versions and mesh policies below come from the App Mesh",
        "resources, but their replicas, workers, latency and the traffic are PLACEHOLDERS made up by the",
        f"importer ({_MIN_REPLICAS} replicas x {_MIN_WORKERS} workers, latency p50 10ms / p99 50ms, "
        f"{format_rate(total)} to {', '.join(entries)});",
        "the calls follow each virtual node's backends. Replace them with your own numbers, or import",
        "again with --topology SCENARIO to take services and traffic from a scenario of yours.",
        "",
        *_policy_notes(imp),
    ]
    return scenario, header


def _policy_notes(imp: _Importer) -> list[str]:
    lines = [
        "App Mesh in Envoy terms: routes in priority order (first match wins), timeout 15s unless given,",
    ]
    if imp.legacy:
        lines.append("no retries unless a route has a retryPolicy (account with meshes before 29 Jul 2020),")
        lines.append("client circuit breakers at Envoy's defaults 1024/1024/1024/3;")
    else:
        lines.append("App Mesh's default retry policy where a route has none (2 retries on 503, connect-failure,")
        lines.append("refused-stream, reset, gRPC unavailable), client circuit breakers fixed at 2147483647;")
    lines += [
        "outlier detection and health checks in the callers' cluster of each version; a listener",
        "connectionPool limits the node's own Envoy toward its app, written as the version's workers/queue.",
        "",
    ]
    return lines


def _with_topology(imp: _Importer, topo: Any, raw: dict[str, Any] | None, topology: Any,
                   node_home: Mapping[str, tuple[str, str]], service_of_vs: Mapping[str, str],
                   mesh: dict[str, dict[str, Any]], capacity: Mapping[tuple[str, str], Any],
                   client_timeouts: Mapping[str, tuple[float, Where]], files: list[str], w: Warnings
                   ) -> tuple[dict[str, Any], list[str]]:
    assert raw is not None
    out = raw
    tw = Where(str(topology))
    old_mesh = out.get("mesh") or {}
    if not isinstance(old_mesh, Mapping):
        old_mesh = {}
    new_mesh = dict(old_mesh)
    for s, entry in mesh.items():
        if s in old_mesh:
            w.add(tw.at("mesh", s), f"the topology's mesh policies for {s!r} are replaced by the App Mesh ones")
        new_mesh[s] = entry
    for node, (t, where) in client_timeouts.items():
        s = _pick(imp.client_candidates(node), list(topo.services))
        if s is None or s in mesh:
            continue
        entry = dict(new_mesh.get(s) or {})
        if "timeout" in entry:
            w.add(where, f"the topology's mesh.{s}.timeout is replaced by virtual node {node!r}'s listener timeout")
        entry["timeout"] = seconds_text(t)
        new_mesh[s] = entry
    out["mesh"] = new_mesh
    # the ingress pools, on the topology's capacity
    for (s, v), (proto, limits, cpw) in capacity.items():
        rv = topo.services[s].resolved_versions(s)[v]
        wk, q = ingress_capacity(rv.workers, rv.queue, protocol=proto, **limits)
        if (wk, q) == (rv.workers, rv.queue):
            continue
        if rv.concurrency == "async":
            w.add(cpw, f"{s!r} is async: the node's connection pool also counts requests waiting on their calls; "
                       "meshsim applies it to the workers and queue only")
        sspec = out["services"][s]
        target = sspec if v == "default" and not sspec.get("versions") else sspec["versions"].setdefault(v, {})
        if target is None:
            target = sspec["versions"][v] = {}
        target["workers"] = wk
        target["queue"] = "unlimited" if q is None else q
    # backends against the topology's calls
    from meshsim.config import Call, Parallel

    imported = set(mesh)
    for node, n in imp.nodes.items():
        home = node_home.get(node)
        if home is None:
            s = _pick(imp.client_candidates(node), list(topo.services))
            if s is None:
                w.add(n.where, f"virtual node {node!r} is neither a route target nor a service of the topology; "
                               "its backends are not checked")
                continue
            home = (s, next(iter(topo.services[s].resolved_versions(s))))
        s, v = home
        rv = topo.services[s].resolved_versions(s).get(v)
        if rv is None:
            continue
        calls = set()
        for st in rv.script:
            if isinstance(st, Call):
                calls.add(st.service)
            elif isinstance(st, Parallel):
                calls.update(c.service for c in st.parallel)
        allowed = {service_of_vs.get(b) for b, _ in n.backends}
        for c in sorted(calls & imported - allowed):
            w.add(n.where, f"{s}/{v} calls {c!r} in the topology, but virtual node {node!r} does not list it "
                           "under backends: App Mesh would not apply the route's policies to that call")
    header = [
        f"Imported by `meshsim import appmesh` from {', '.join(files)},",
        f"with services, capacity, latency, scripts and traffic from the topology {topology}.",
        f"The mesh policies of {', '.join(mesh)} are App Mesh's; connection pools change workers/queue.",
        "",
        *_policy_notes(imp),
    ]
    return out, header
