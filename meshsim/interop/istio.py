"""Istio's VirtualService and DestinationRule in and out of meshsim, translated as istiod translates them.

Public API
----------
import_istio(paths, topology=None, merge=False, allow_unsupported=False) -> IstioImport
    Read multi-document Istio YAML (``networking.istio.io/v1``, ``v1beta1``, ``v1alpha3``)
    and build a scenario whose ``mesh:`` block holds, in Envoy terms, what istiod gives the
    sidecars for those resources.
write_scenario(path, imported) -> Path
    Write an imported scenario (YAML with a comment header), all or nothing.
export_istio(scenario, namespace=None, all_services=False) -> IstioExport
    One VirtualService and one DestinationRule per destination service with mesh policies,
    written so that istiod gives the sidecars the policies meshsim simulated.
write_istio(outdir, exported) -> list[Path]
    Write those documents, one multi-document file per service, all or nothing.
mesh_view(policy, versions) -> dict
    The policies a simulation of one destination service applies, normalised so that two
    spellings with the same behaviour compare equal (what the round trip is checked on);
    view_differences(a, b) lists where two views differ.

Import: what istiod does, and where meshsim writes it
------------------------------------------------------
Each VirtualService ``http[]`` route becomes a meshsim route (first match wins, one Envoy route
per ``match`` entry) carrying **every** route policy istiod writes, Istio's defaults spelled out:
``timeout`` (``0s`` = none when the route gives none: istiod disables Envoy's 15 s), ``retries``
(Istio's default policy when the route has no ``retries`` block: 2 retries on
``connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`` with no status
codes, the previous-hosts predicate unless the destination hashes, 5 host-selection attempts;
``null`` for ``attempts: 0``), ``fault``, ``mirror``. A VirtualService whose only route matches
everything and sends to the whole service becomes service-level blocks (meshsim's implicit
route); a service without a VirtualService gets istiod's default route the same way.

Each DestinationRule becomes the service's cluster blocks, with istiod's defaults:
``circuit_breakers`` (every threshold 4294967295, connect timeout 10 s), ``load_balancer``
(LEAST_REQUEST unless ``simple``/``consistentHash``; with outlier detection the panic threshold
is ``minHealthPercent`` and the mesh's locality load balancing applies), ``outlier_detection``
(success-rate ejection off). A subset's ``trafficPolicy`` replaces whole blocks, as istiod's
``MergeTrafficPolicy`` does; the result goes under ``versions.<subset>`` where it differs. A
``retryBudget`` (Istio >= 1.27) goes into the retry policies of the routes that send to it.

Fields that do not change what is simulated (TLS, CORS, header operations, rewrites, metadata,
TCP/TLS routes, ...) are kept under ``mesh.<service>.istio`` and written back by the export,
with a warning each. Fields that change behaviour meshsim does not model (``queryParams``,
``sourceLabels``, ``portLevelSettings``, ...) are refused, or, with ``allow_unsupported``, kept
the same way with a warning that the simulation ignores them. Redirects, direct responses and
delegation are always refused. Every problem names the file, the document, the field path and
the value.

Export
------
The reverse, written so that istiod gives back the simulated policies: what Envoy and Istio
default differently is spelled out (``timeout: 15s``, ``retries: {attempts: 0}``,
``simple: ROUND_ROBIN``, circuit breakers at Envoy's 1024/1024/1024/3 and a 5 s connect timeout,
``minHealthPercent`` with outlier detection, ``localityLbSetting: {enabled: false}`` where the
mesh default would add locality failover). The default MeshConfig is assumed (``connectTimeout``
10 s, ``h2UpgradePolicy`` DO_NOT_UPGRADE, locality load balancing enabled). What Istio cannot
express (retry hedging, per-try idle timeouts, success-rate ejection, active health checks,
local rate limits, ...) is found by translating the export back and comparing it with the
scenario, and each difference is reported, naming service and field.

References: istio ``pilot/pkg/networking/core/route/route.go``, ``route/retry/retry.go``,
``cluster_traffic_policy.go``, ``loadbalancer/loadbalancer.go``, ``pilot/pkg/model/
destination_rule.go``, ``pkg/config/validation``; ``istio/api`` ``networking/v1alpha3``.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from meshsim._exceptions import ConfigError
from meshsim._files import atomic_write_text, move_into, staging_directory
from meshsim._yaml import read_text, refuse_duplicate_keys, yaml_mark
from meshsim.config import MeshPolicy, Scenario, parse_scenario
from meshsim.config._errors import problems_of
from meshsim.interop._istio_schema import MESSAGES, SchemaError, check
from meshsim.policies import circuit_breaker as _cb
from meshsim.policies import fault as _fault
from meshsim.policies import load_balancer as _lb
from meshsim.policies import outlier as _od
from meshsim.policies import retry as _retry
from meshsim.policies import routing as _routing
from meshsim.policies import timeout as _timeout
from meshsim.policies._istio import istio_percent, per_million
from meshsim.policies._model import suggest
from meshsim.policies.fault import FaultPolicy, FractionalPercent
from meshsim.policies.load_balancer import LoadBalancerPolicy
from meshsim.policies.retry import RetryBudget, RetryPolicy
from meshsim.policies.routing import DEFAULT_VERSION
from meshsim.policies.timeout import TimeoutPolicy
from meshsim.units import parse_duration

__all__ = [
    "API_VERSIONS",
    "IstioImport",
    "IstioExport",
    "import_istio",
    "scenario_text",
    "write_scenario",
    "export_istio",
    "write_istio",
    "mesh_view",
    "view_differences",
]

#: The ``networking.istio.io`` versions read (one schema: the versions differ only in stability).
API_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
#: The version written.
EXPORT_API_VERSION = "networking.istio.io/v1"
_KINDS = ("VirtualService", "DestinationRule")
_CLUSTER_DOMAIN = "svc.cluster.local"
#: first line of every file ``write_istio`` writes (files carrying it may be replaced or removed)
_MARK = "# Generated by `meshsim export istio`"
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# -------------------------------------------------------------------------------------------------
# what the simulation reads, what is kept for export, what is refused

_KEEP = "keep"  # no effect on the simulation: kept for export, with a warning
_SOFT = "soft"  # changes behaviour meshsim does not model: refused, or kept with allow_unsupported
_HARD = "hard"  # a route meshsim cannot simulate at all: always refused

_RULES: dict[tuple[str, str], tuple[str, str]] = {
    ("VirtualService", "tls"): (_KEEP, "TLS routes are not simulated (meshsim simulates HTTP)"),
    ("VirtualService", "tcp"): (_KEEP, "TCP routes are not simulated (meshsim simulates HTTP)"),
    ("VirtualService", "exportTo"): (_KEEP, "meshsim has no namespaces"),
    ("VirtualService", "gateways"): (_KEEP, "gateways are not simulated; the routes apply to the sidecars ('mesh')"),
    ("HTTPRoute", "rewrite"): (_KEEP, "rewrites are not simulated (callees do not route on the path)"),
    ("HTTPRoute", "corsPolicy"): (_KEEP, "CORS is not simulated"),
    ("HTTPRoute", "headers"): (_KEEP, "header operations are not simulated"),
    ("HTTPRoute", "redirect"): (_HARD, "a redirect answers without calling the service, which meshsim does not simulate"),
    ("HTTPRoute", "directResponse"): (_HARD, "a direct response answers without calling the service, which meshsim does not simulate"),
    ("HTTPRoute", "delegate"): (_HARD, "VirtualService delegation is not supported"),
    ("HTTPMatchRequest", "name"): (_KEEP, "match names only name Envoy routes"),
    ("HTTPMatchRequest", "statPrefix"): (_KEEP, "stat prefixes are not simulated"),
    ("HTTPMatchRequest", "port"): (_KEEP, "meshsim services have one port, assumed to be this one"),
    ("HTTPMatchRequest", "scheme"): (_SOFT, "scheme matching is not simulated"),
    ("HTTPMatchRequest", "authority"): (_SOFT, "authority matching is not simulated"),
    ("HTTPMatchRequest", "queryParams"): (_SOFT, "query parameter matching is not simulated"),
    ("HTTPMatchRequest", "sourceLabels"): (_SOFT, "matching on the caller's labels is not simulated"),
    ("HTTPMatchRequest", "sourceNamespace"): (_SOFT, "matching on the caller's namespace is not simulated"),
    ("HTTPMatchRequest", "gateways"): (_SOFT, "matching on gateways is not simulated"),
    ("HTTPMatchRequest", "ignoreUriCase"): (_SOFT, "case-insensitive uri matching is not simulated"),
    ("HTTPMatchRequest", "withoutHeaders"): (_SOFT, "withoutHeaders other than absence ({} or regex '*') is not simulated"),
    ("HTTPRouteDestination", "headers"): (_KEEP, "header operations are not simulated"),
    ("Destination", "port"): (_KEEP, "meshsim services have one port, assumed to be this one"),
    ("FaultAbort", "grpcStatus"): (_SOFT, "gRPC aborts are not simulated (give httpStatus)"),
    ("DestinationRule", "exportTo"): (_KEEP, "meshsim has no namespaces"),
    ("DestinationRule", "workloadSelector"): (_SOFT, "a DestinationRule for some callers only is not simulated"),
    ("TrafficPolicy", "tls"): (_KEEP, "TLS is not simulated"),
    ("TrafficPolicy", "tunnel"): (_KEEP, "tunnelling is not simulated"),
    ("TrafficPolicy", "proxyProtocol"): (_KEEP, "the PROXY protocol is not simulated"),
    ("TrafficPolicy", "portLevelSettings"): (_SOFT, "per-port policies are not simulated"),
    ("HTTPSettings", "http2KeepAlive"): (_KEEP, "HTTP/2 keepalive pings are not simulated"),
    ("HTTPCookie", "path"): (_KEEP, "cookie attributes are not simulated (the hash uses the cookie's value)"),
    ("HTTPCookie", "ttl"): (_KEEP, "cookie generation is not simulated (the hash uses the cookie's value)"),
    ("HTTPCookie", "attributes"): (_KEEP, "cookie attributes are not simulated"),
    ("RetryBudget", "budgetInterval"): (_KEEP, "the budget's sliding window is not simulated (live requests are)"),
    ("OutlierDetection", "consecutiveErrors"): (_KEEP, "deprecated and ignored by istiod"),
    ("OutlierDetection", "outlierDetectionHttpErrorCodes"): (_SOFT, "custom outlier error codes are not simulated"),
    ("LoadBalancerSettings", "zoneAwareLbSetting"): (_SOFT, "Istio's zone-aware load balancing is not simulated (localityLbSetting is)"),
    ("LocalityLoadBalancerSetting", "failoverPriority"): (_SOFT, "label-based failover priorities are not simulated"),
}


def _rule(message: str, key: str, value: Any) -> tuple[str, str] | None:
    """How a field is treated; a few depend on the value (the forms that are simulated)."""
    found = _RULES.get((message, key))
    if found is None:
        return None
    if message == "HTTPMatchRequest" and key == "ignoreUriCase" and value is False:
        return None
    if message == "HTTPMatchRequest" and key == "withoutHeaders" and all(
        _absence_form(m) for m in value.values()
    ):
        return None
    if message == "VirtualService" and key == "gateways" and "mesh" not in value:
        return None  # handled by the reader: the VirtualService does not apply to sidecars
    if message == "LocalityLoadBalancerSetting" and key == "failoverPriority" and not value:
        return None
    return found


def _absence_form(match: Any) -> bool:
    return isinstance(match, Mapping) and (not match or dict(match) == {"regex": "*"})


def _present_form(match: Any) -> bool:
    return _absence_form(match)


# -------------------------------------------------------------------------------------------------
# documents


@dataclass
class _Doc:
    """One Istio resource as read: where it came from, and its parts."""

    source: str
    number: int  # 1-based document number in the file
    item: int | None  # index in a List's items
    kind: str
    name: str
    namespace: str | None
    metadata: dict[str, Any]
    spec: dict[str, Any]

    def label(self) -> str:
        where = f"document {self.number}" + (f" items[{self.item}]" if self.item is not None else "")
        return f"{where} ({self.kind} {self.name})"

    def error(self, path: str, message: str) -> ConfigError:
        text = f"{self.label()}: {path}: {message}" if path else f"{self.label()}: {message}"
        return ConfigError(text, path=path, source=self.source)

    def note(self, path: str, message: str) -> str:
        return f"{self.source}: {self.label()}: {path}: {message}" if path else f"{self.source}: {self.label()}: {message}"


def _yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        return ConfigError(f"{yaml_mark(exc)}{exc.problem or exc.context or 'invalid YAML'}", source=source)
    return ConfigError(f"invalid YAML: {exc}", source=source)


def _read_documents(text: str, source: str, notes: list[str]) -> list[_Doc]:
    """The VirtualServices and DestinationRules of one file (other kinds are skipped, with a note)."""
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            refuse_duplicate_keys(node, source)
        raw = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    docs: list[_Doc] = []
    for number, data in enumerate(raw, start=1):
        if data is None:
            continue
        if isinstance(data, Mapping) and str(data.get("kind", "")).endswith("List") and "items" in data:
            items = data.get("items") or []
            if not isinstance(items, list):
                raise ConfigError(f"document {number}: items: {items!r} is not a list", path="items", source=source)
            for i, item in enumerate(items):
                doc = _document(item, source, number, i, notes)
                if doc is not None:
                    docs.append(doc)
            continue
        doc = _document(data, source, number, None, notes)
        if doc is not None:
            docs.append(doc)
    return docs


def _document(data: Any, source: str, number: int, item: int | None, notes: list[str]) -> _Doc | None:
    where = f"document {number}" + (f" items[{item}]" if item is not None else "")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: {data!r} is not a Kubernetes resource (a mapping with apiVersion, kind, metadata, spec)",
            source=source,
        )
    kind = data.get("kind")
    api = data.get("apiVersion")
    if kind not in _KINDS:
        notes.append(
            f"{source}: {where}: kind {kind!r} is not read (meshsim imports VirtualService and DestinationRule); skipped"
        )
        return None
    if api not in API_VERSIONS:
        raise ConfigError(
            f"{where} ({kind}): apiVersion: {api!r} is not allowed; expected one of {', '.join(API_VERSIONS)}",
            path="apiVersion",
            source=source,
        )
    for key in data:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            raise ConfigError(
                f"{where} ({kind}): {key}: unknown field {key!r} (allowed: apiVersion, kind, metadata, spec)",
                path=str(key),
                source=source,
            )
    metadata = data.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ConfigError(
            f"{where} ({kind}): metadata.name: {metadata.get('name') if isinstance(metadata, Mapping) else metadata!r}"
            " is not allowed; a Kubernetes resource needs a name",
            path="metadata.name",
            source=source,
        )
    name = metadata["name"]
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ConfigError(
            f"{where} ({kind} {name}): metadata.namespace: {namespace!r} is not a string", source=source
        )
    spec = data.get("spec")
    doc = _Doc(source, number, item, kind, name, namespace, {}, {})
    if not isinstance(spec, Mapping):
        raise doc.error("spec", f"{spec!r} is not allowed; a {kind} needs a spec mapping")
    try:
        check(spec, kind, "")
    except SchemaError as exc:
        raise doc.error(f"spec.{exc.path}" if exc.path else "spec", str(exc)) from None
    dropped = [f"metadata.{k}" for k in _SERVER_METADATA if k in metadata]
    if "status" in data:
        dropped.append("status")
    kept_md = {k: copy.deepcopy(v) for k, v in metadata.items() if k not in _SERVER_METADATA}
    annotations = kept_md.get("annotations")
    if isinstance(annotations, Mapping) and _LAST_APPLIED in annotations:
        dropped.append(f"metadata.annotations.{_LAST_APPLIED}")
        kept_md["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
        if not kept_md["annotations"]:
            del kept_md["annotations"]
    if dropped:
        notes.append(doc.note("", f"fields the API server fills in are not kept: {', '.join(dropped)}"))
    doc.metadata = kept_md
    doc.spec = copy.deepcopy(dict(spec))
    return doc


# -------------------------------------------------------------------------------------------------
# splitting a document: the simulated part, and the part kept for export


@dataclass
class _Split:
    allow_unsupported: bool
    notes: list[str] = field(default_factory=list)

    def run(self, doc: _Doc, value: Mapping[str, Any], message: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``value`` (an Istio ``message``) as (simulated fields, kept fields), both in Istio's shape."""
        sim: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            here = f"{path}.{key}" if path else key
            rule = _rule(message, key, item)
            if rule is not None:
                kind, why = rule
                if kind == _KEEP:
                    kept[key] = copy.deepcopy(item)
                    self.notes.append(doc.note(here, f"kept for export, not simulated: {why}"))
                    continue
                if kind == _SOFT and self.allow_unsupported:
                    kept[key] = copy.deepcopy(item)
                    self.notes.append(
                        doc.note(here, f"NOT simulated, kept for export (--allow-unsupported): {why}; "
                                       "the simulation behaves as if it were absent")
                    )
                    continue
                hint = "" if kind == _HARD else " (--allow-unsupported keeps it for export and simulates without it)"
                raise doc.error(here, f"{_show(item)} is not supported: {why}{hint}")
            ftype = MESSAGES[message][key]
            if isinstance(ftype, str) and ftype in MESSAGES:
                s, k = self.run(doc, item, ftype, here)
                sim[key] = s
                if k:
                    kept[key] = k
            elif isinstance(ftype, list) and ftype[0] in MESSAGES:
                pairs = [self.run(doc, x, ftype[0], f"{here}[{i}]") for i, x in enumerate(item)]
                sim[key] = [s for s, _ in pairs]
                if any(k for _, k in pairs):
                    kept[key] = [k for _, k in pairs]
            else:
                sim[key] = copy.deepcopy(item)
        return sim, kept


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(value: Any) -> Any:
    """A protobuf wrapper written out (``{value: 3}``) -> 3."""
    if isinstance(value, Mapping) and set(value) == {"value"}:
        return value["value"]
    return value


# -------------------------------------------------------------------------------------------------
# hosts


def _service_of(host: Any, doc: _Doc, path: str) -> tuple[str, str | None]:
    """``(service, namespace or None)`` for an Istio host naming a Kubernetes service."""
    if not isinstance(host, str) or not host:
        raise doc.error(path, f"{host!r} is not a host")
    if "*" in host:
        raise doc.error(path, f"{host!r} is not supported: wildcard hosts do not name one service")
    parts = host.split(".")
    if len(parts) == 1:
        name, namespace = host, doc.namespace
    elif len(parts) == 5 and ".".join(parts[2:]) == _CLUSTER_DOMAIN:
        name, namespace = parts[0], parts[1]
    else:
        raise doc.error(
            path,
            f"{host!r} is not allowed: meshsim reads Kubernetes service hosts, a short name (reviews) "
            f"or <name>.<namespace>.{_CLUSTER_DOMAIN} (istiod takes any other dotted name as written, "
            "not as a service of the mesh)",
        )
    if not re.match(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$", name):
        raise doc.error(path, f"{host!r}: {name!r} is not a service name meshsim can hold")
    return name, namespace


# -------------------------------------------------------------------------------------------------
# errors raised by the policy modules' readers, placed in the document


#: meshsim field -> the Istio field it was read from, where a reader reports meshsim's name
_ISTIO_FIELD = {
    "table_size": "consistentHash.maglev.tableSize",
    "minimum_ring_size": "consistentHash.ringHash.minimumRingSize",
    "hash_key": "consistentHash",
    "lb_policy": "simple",
    "locality_lb": "localityLbSetting",
    "slow_start": "warmup",
    "fixed_delay": "fixedDelay",
    "http_status": "httpStatus",
}


def _reader_error(doc: _Doc, base: str, exc: Exception, raw: Any) -> ConfigError:
    if isinstance(exc, ValidationError):
        problems = problems_of(exc, raw)
        first = problems[0] if problems else None
        sub = first.path if first is not None else ""
        message = first.message if first is not None else str(exc)
    elif isinstance(exc, ConfigError):
        sub = exc.path
        message = str(exc)
        for prefix in (f"{exc.path}: ", "connectionPool: "):
            if exc.path and message.startswith(prefix):
                message = message[len(prefix):]
        sub = sub.removeprefix("connectionPool.").removeprefix("connectionPool")
    else:  # pragma: no cover
        raise exc
    # the retry reader speaks of Envoy's own spelling; in a VirtualService Istio's validation refuses the token
    message = message.replace("; set allow_unknown: true to keep it anyway", "").replace(
        "Envoy silently ignores unknown tokens, so it would never retry on it", "Istio's validation refuses it")
    last = re.split(r"[.\[]", sub)[-1] if sub else ""
    if last:  # "outlierDetection.maxEjectionPercent 150 is ..." -> "150 is ..."
        message = re.sub(rf"^[\w.]*\b{re.escape(last)}:? ", "", message)
    head, dot, rest = sub.partition(".")
    if _value_at(raw, head) is _NOTHING and head in _ISTIO_FIELD:
        sub = _ISTIO_FIELD[head] + dot + rest
    path = ".".join(x for x in (base, sub) if x)
    value = _value_at(raw, sub)
    if value is not _NOTHING and _show(value) not in message:
        message = f"{_show(value)}: {message}"
    return doc.error(path, message)


_NOTHING = object()


def _value_at(raw: Any, sub: str) -> Any:
    node = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", sub):
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(node, list) or i >= len(node):
                return _NOTHING
            node = node[i]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _NOTHING
    return node if sub else _NOTHING


def _read(doc: _Doc, base: str, raw: Any, fn: Any) -> Any:
    try:
        return fn()
    except (ConfigError, ValidationError) as exc:
        raise _reader_error(doc, base, exc, raw) from None


def _check_duration(doc: _Doc, path: str, value: Any, *, zero: bool = False) -> None:
    """Istio's ``ValidateDuration``: at least 1 ms, whole milliseconds."""
    seconds = parse_duration(value)
    if zero and seconds == 0:
        return
    if seconds < 0.001:
        raise doc.error(path, f"{value!r} is not allowed; Istio takes durations of at least 1ms")
    if abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
        raise doc.error(path, f"{value!r} is not allowed; Istio takes whole milliseconds")


def _check_percent(doc: _Doc, path: str, pct: Any) -> None:
    value = _unwrap(pct) if not isinstance(pct, Mapping) else pct.get("value", 0)
    if not (value == 0 or 0.0001 <= value <= 100):
        raise doc.error(path, f"{value!r} is not allowed; Istio takes 0, or a percentage in [0.0001, 100]")


# -------------------------------------------------------------------------------------------------
# DestinationRule -> cluster policies


@dataclass
class _Cluster:
    """The cluster istiod builds for the whole service or one subset, in meshsim's models."""

    circuit_breakers: Any
    outlier_detection: Any
    load_balancer: Any
    budget: RetryBudget | None
    hash: bool  # consistentHash set (the route's hash policy; changes the retry default)


def _traffic_cluster(doc: _Doc, tp: Mapping[str, Any], path: str) -> _Cluster:
    cp = tp.get("connectionPool")
    od = tp.get("outlierDetection")
    lb = tp.get("loadBalancer")
    rb = tp.get("retryBudget")
    if cp is not None:
        if "tcp" not in cp and "http" not in cp:
            raise doc.error(f"{path}.connectionPool", f"{_show(cp)} is not allowed; a connection pool needs tcp "
                                                     "and/or http (Istio's validation)")
        http = cp.get("http") or {}
        if http.get("h2UpgradePolicy") == "UPGRADE" and http.get("useClientProtocol"):
            raise doc.error(f"{path}.connectionPool.http.useClientProtocol",
                            "true is not allowed with h2UpgradePolicy UPGRADE (Istio's validation)")
    circuit = _read(doc, f"{path}.connectionPool", cp, lambda: _cb.from_istio(cp))
    outlier = None
    if od is not None:
        od = {k: _unwrap(v) for k, v in od.items()}
        if not od.get("splitExternalLocalOriginErrors") and (od.get("consecutiveLocalOriginFailures") or 0) > 0:
            raise doc.error(f"{path}.outlierDetection.consecutiveLocalOriginFailures",
                            f"{od['consecutiveLocalOriginFailures']!r} is not allowed without "
                            "splitExternalLocalOriginErrors: true (Istio's validation)")
        for key in ("interval", "baseEjectionTime"):
            if key in od:
                _check_duration(doc, f"{path}.outlierDetection.{key}", od[key])
        outlier = _read(doc, f"{path}.outlierDetection", od, lambda: _od.from_istio(od))
        outlier = outlier.model_copy(update={"healthy_panic_threshold": None})  # it lives in the load balancer
    lbd = dict(lb or {})
    if "localityLbSetting" in lbd and lbd["localityLbSetting"] is not None:
        loc = dict(lbd["localityLbSetting"])
        if "enabled" in loc:
            loc["enabled"] = _unwrap(loc["enabled"])
        loc.pop("failoverPriority", None)
        lbd["localityLbSetting"] = loc
    if "warmup" in lbd:
        lbd["warmup"] = {k: _unwrap(v) for k, v in lbd["warmup"].items()}
    ch = lbd.get("consistentHash")
    if ch is not None and "maglev" in ch and not (ch["maglev"] or {}).get("tableSize"):
        raise doc.error(f"{path}.loadBalancer.consistentHash.maglev.tableSize",
                        "unset is not allowed; Istio requires tableSize for maglev (a prime < 5000011)")
    balancer = _read(doc, f"{path}.loadBalancer", lbd,
                     lambda: LoadBalancerPolicy.from_istio(lbd or None, outlier_detection=od))
    budget = None
    if rb is not None:
        percent = _unwrap(rb.get("percent"))
        if percent is not None and not 0 <= percent <= 100:
            raise doc.error(f"{path}.retryBudget.percent", f"{percent!r} is not allowed; a percentage in [0, 100]")
        min_conc = rb.get("minRetryConcurrency") or 0
        if min_conc < 0:
            raise doc.error(f"{path}.retryBudget.minRetryConcurrency", f"{min_conc!r} is not allowed; an integer >= 0")
        # istiod writes both fields: 20 % and 3 unless given (0 is unset)
        budget = RetryBudget(budget_percent=20.0 if percent is None else float(percent),
                             min_retry_concurrency=min_conc if min_conc > 0 else 3)
    return _Cluster(circuit, outlier, balancer, budget, hash=ch is not None)


def _merge_traffic_policy(top: Mapping[str, Any], subset: Mapping[str, Any]) -> dict[str, Any]:
    """istiod's ``MergeTrafficPolicy``: the subset's blocks replace the top-level ones, whole."""
    out = dict(top)
    for key in ("connectionPool", "outlierDetection", "loadBalancer", "retryBudget"):
        if subset.get(key) is not None:
            out[key] = subset[key]
    return out


# -------------------------------------------------------------------------------------------------
# the scenario form of policy objects (Envoy spelling, readable units)


def _duration_validators() -> set[Any]:
    from typing import get_args

    from meshsim.config import _types as ctypes
    from meshsim.latency import Duration, PositiveDuration
    from meshsim.policies.timeout import MsDuration, Seconds

    out = set()
    for alias in (Duration, PositiveDuration, MsDuration, Seconds, ctypes.Duration, ctypes.PositiveDuration):
        for md in get_args(alias)[1:]:
            func = getattr(md, "func", None)
            if func is not None:
                out.add(func)
    return out


_DURATION_FUNCS: set[Any] = set()


def _duration_funcs() -> set[Any]:
    if not _DURATION_FUNCS:
        _DURATION_FUNCS.update(_duration_validators())
    return _DURATION_FUNCS


def _is_duration(annotation: Any) -> bool:
    """Whether a field's type is one of meshsim's duration types (so its value is written as ``250ms``)."""
    from typing import Annotated, get_args, get_origin

    if get_origin(annotation) is Annotated:
        args = get_args(annotation)
        if any(getattr(md, "func", None) in _duration_funcs() for md in args[1:]):
            return True
        return _is_duration(args[0])
    return any(_is_duration(a) for a in get_args(annotation)) if get_args(annotation) else False


def _duration_text(seconds: float) -> Any:
    """An exact, readable duration (``"250ms"``) that reads back as the same float, else the float."""
    if seconds == 0:
        return "0s"
    ns = round(seconds * 1e9)
    for unit, scale in (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
                        ("ms", 1_000_000), ("us", 1000), ("ns", 1)):
        if ns % scale == 0:
            text = f"{ns // scale}{unit}"
            break
    else:  # pragma: no cover
        text = ""
    if ns >= 1_000_000_000 and ns % 1_000_000 == 0 and ns % 1_000_000_000:
        text = f"{ns // 1_000_000_000}.{(ns % 1_000_000_000) // 1_000_000:03d}".rstrip("0") + "s"
    try:
        if parse_duration(text) == seconds:
            return text
    except ValueError:  # pragma: no cover
        pass
    return seconds


def _percent_form(pct: FractionalPercent) -> Any:
    if pct.denominator == "HUNDRED":
        return f"{pct.numerator}%"
    if pct.denominator == "MILLION":
        return {"value": istio_percent(pct.numerator, "MILLION")}
    return {"numerator": pct.numerator, "denominator": pct.denominator}


def _dump(model: BaseModel, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """A policy model as the mapping that validates back to it (non-default fields, Envoy names)."""
    out: dict[str, Any] = {}
    skipped = set(skip)
    for name, info in type(model).model_fields.items():
        if name in skipped:
            continue
        value = getattr(model, name)
        default = info.get_default(call_default_factory=True)
        if value == default:
            continue
        key = info.alias if isinstance(info.alias, str) else name
        duration = _is_duration(info.annotation) or any(
            getattr(md, "func", None) in _duration_funcs() for md in info.metadata
        )
        out[key] = _dump_value(value, duration)
    return out


def _dump_value(value: Any, duration: bool) -> Any:
    if isinstance(value, FractionalPercent):
        return _percent_form(value)
    if isinstance(value, BaseModel):
        return _dump(value)
    if isinstance(value, (tuple, list)):
        return [_dump_value(v, False) for v in value]
    if isinstance(value, dict):
        return {k: _dump_value(v, False) for k, v in value.items()}
    if isinstance(value, float) and duration:
        return _duration_text(value)
    return value


def _retries_form(policy: RetryPolicy | None) -> Any:
    if policy is None:
        return None
    return _dump(policy)


# -------------------------------------------------------------------------------------------------
# import


@dataclass
class IstioImport:
    """What :func:`import_istio` built.

    Attributes
    ----------
    data
        The scenario as a mapping (what is written; ``parse_scenario(data)`` gives :attr:`scenario`).
    scenario
        The validated scenario.
    warnings
        One line each: file, document, field path and what happened to it.
    header
        The comment block written at the top of the file (without ``#``).
    services
        The services the Istio files configured.
    """

    data: dict[str, Any]
    scenario: Scenario
    warnings: list[str]
    header: list[str]
    services: list[str]


@dataclass
class _Service:
    """The Istio resources of one destination service."""

    name: str
    namespace: str | None = None
    vs: _Doc | None = None
    dr: _Doc | None = None


@dataclass
class _Topology:
    """Versions (subset name -> labels) of each service, from a scenario or made from the subsets."""

    versions: dict[str, dict[str, dict[str, str]]]  # service -> version -> labels
    given: bool


def import_istio(
    paths: Sequence[str | os.PathLike[str]],
    *,
    topology: str | os.PathLike[str] | Scenario | None = None,
    merge: bool = False,
    allow_unsupported: bool = False,
    name: str | None = None,
) -> IstioImport:
    """Build a scenario from Istio VirtualService and DestinationRule files, as istiod translates them.

    Parameters
    ----------
    paths
        YAML files, each with one or more documents (``---``); a Kubernetes ``List`` (what
        ``kubectl get virtualservices,destinationrules -o yaml`` prints) is read item by item.
        Other kinds are skipped with a warning.
    topology
        A scenario file (or :class:`~meshsim.config.Scenario`) whose services and traffic to
        use. Its ``mesh:`` block is replaced: the services the files configure get their
        translation, every other service istiod's defaults (what it gives a service without
        a VirtualService or DestinationRule). ``None``: a minimal topology is made, one service
        per host (versions from the DestinationRule's subsets) and one traffic source each.
    merge
        With ``topology``: keep the topology's ``mesh:`` entries for the services the files do
        not configure, instead of giving them istiod's defaults.
    allow_unsupported
        Keep fields that change behaviour meshsim does not simulate (``queryParams``,
        ``portLevelSettings``, ...) for export, with a warning, instead of refusing them.
    name
        The scenario's name (default: the first file's name, or the topology's).

    Returns
    -------
    IstioImport

    Raises
    ------
    ConfigError
        A file that cannot be read, or the first invalid or unsupported field, as one line:
        file, document number (and the resource), field path, value and what is allowed.
    """
    if not paths:
        raise ConfigError("give at least one Istio YAML file")
    notes: list[str] = []
    docs: list[_Doc] = []
    for p in paths:
        source = str(p)
        path = Path(p)
        if not path.is_file():
            raise ConfigError("no such file" if not path.exists() else "not a file", source=source)
        text = read_text(path)
        docs.extend(_read_documents(text, source, notes))
    topo_scn: Scenario | None
    raw_topology: dict[str, Any] | None
    if topology is None:
        topo_scn, raw_topology = None, None
    elif isinstance(topology, Scenario):
        topo_scn, raw_topology = topology, copy.deepcopy(dict(topology._raw or {}))
    else:
        from meshsim.config import load_scenario

        topo_scn = load_scenario(topology)
        raw_topology = copy.deepcopy(dict(topo_scn._raw or {}))
    if not docs:
        raise ConfigError(
            f"no VirtualService or DestinationRule (apiVersion {API_VERSIONS[0]}, v1beta1 or v1alpha3)",
            source=", ".join(str(p) for p in paths),
        )
    result = _import_docs(docs, topo_scn, raw_topology, merge=merge, allow_unsupported=allow_unsupported,
                          notes=notes, name=name or (None if topology is not None
                                                     else Path(paths[0]).stem if len(paths) == 1 else None))
    sources = ", ".join(str(p) for p in paths)
    result.header.insert(0, f"Imported from Istio by `meshsim import istio` from {sources}.")
    if topology is not None and not isinstance(topology, Scenario):
        result.header.insert(1, f"Services and traffic: {topology}" + (" (its mesh entries kept where the files say nothing)" if merge else "."))
    return result


def _import_docs(
    docs: list[_Doc],
    topo_scn: Scenario | None,
    raw_topology: dict[str, Any] | None,
    *,
    merge: bool,
    allow_unsupported: bool,
    notes: list[str],
    name: str | None,
) -> IstioImport:
    splitter = _Split(allow_unsupported)
    services: dict[str, _Service] = {}
    for doc in docs:
        if doc.kind == "VirtualService":
            gateways = doc.spec.get("gateways")
            if gateways is not None and "mesh" not in gateways:
                notes.append(doc.note("spec.gateways", f"{gateways!r}: this VirtualService does not apply to the "
                                                       "sidecars ('mesh' is not listed); skipped"))
                continue
            hosts = doc.spec.get("hosts")
            if not hosts:
                raise doc.error("spec.hosts", "a VirtualService for the mesh needs hosts (delegate "
                                              "VirtualServices are not supported)")
            resolved = [(_service_of(h, doc, f"spec.hosts[{i}]"), i) for i, h in enumerate(hosts)]
            names = {svc for (svc, _), _ in resolved}
            if len(names) > 1:
                raise doc.error("spec.hosts", f"{hosts!r} name several services ({', '.join(sorted(names))}); "
                                              "meshsim routes per destination service: give one VirtualService each")
            (svc, ns), _ = resolved[0]
            entry = services.setdefault(svc, _Service(svc, ns))
            if entry.vs is not None:
                raise doc.error("spec.hosts", f"{svc} already has a VirtualService ({entry.vs.source}: "
                                              f"{entry.vs.label()}); istiod would use one of them: give one")
            entry.vs = doc
        else:
            host = doc.spec.get("host")
            if host is None:
                raise doc.error("spec.host", "a DestinationRule needs host")
            svc, ns = _service_of(host, doc, "spec.host")
            entry = services.setdefault(svc, _Service(svc, ns))
            if entry.dr is not None:
                raise doc.error("spec.host", f"{svc} already has a DestinationRule ({entry.dr.source}: "
                                             f"{entry.dr.label()}); give one")
            entry.dr = doc
        if ns is not None and entry.namespace is not None and ns != entry.namespace:
            raise doc.error("metadata.namespace",
                            f"{svc} is in namespace {entry.namespace!r} elsewhere and {ns!r} here; meshsim "
                            "services have no namespaces, so one name cannot be in two")
        entry.namespace = entry.namespace or ns
    if not services:
        raise ConfigError("no VirtualService or DestinationRule applies to the mesh's sidecars")

    topo = _topology(services, topo_scn, splitter)
    mesh: dict[str, Any] = {}
    for svc in services.values():
        mesh[svc.name] = _translate_service(svc, topo, splitter)
    header: list[str] = []
    if topo_scn is not None:
        assert raw_topology is not None
        data = raw_topology
        old = dict(data.get("mesh") or {})
        new: dict[str, Any] = {}
        for sname in topo_scn.services:
            if sname in mesh:
                new[sname] = mesh[sname]
            elif merge and sname in old:
                new[sname] = old[sname]
            elif not merge:
                new[sname] = _istio_defaults()
        if not merge:
            missing = [s for s in topo_scn.services if s not in mesh]
            if missing:
                header.append(f"{', '.join(missing)}: no VirtualService or DestinationRule; istiod's defaults "
                              "for them are spelled out in mesh:.")
        data["mesh"] = new
        if name:
            data["name"] = name
    else:
        data = _minimal_topology(services, topo, mesh, name or "istio-import")
        header.append("Services and traffic: a minimal topology made from the hosts (2 replicas per version, "
                      "8 workers, latency p50 10ms / p99 50ms, 20 requests/s per service, request headers "
                      "that exercise the header matches). Replace them with your own, or import with "
                      "--topology SCENARIO.")
    header.append("mesh: holds what istiod gives the sidecars for these resources, in Envoy terms, Istio's "
                  "defaults spelled out (a route without timeout: timeout 0s; without retries: Istio's "
                  "default retry policy; circuit breakers 4294967295, connect timeout 10s; LEAST_REQUEST; "
                  "default MeshConfig).")
    warnings = notes + splitter.notes
    try:
        scenario = parse_scenario(data, source="<imported scenario>")
    except ConfigError as exc:
        raise ConfigError(f"the imported scenario is refused: {exc}") from None
    return IstioImport(data=data, scenario=scenario, warnings=warnings, header=header, services=list(mesh))


def _istio_defaults() -> dict[str, Any]:
    """What istiod gives a service without a VirtualService or DestinationRule, in meshsim's spelling."""
    return {
        "timeout": "0s",
        "retries": _retries_form(RetryPolicy.istio_default()),
        "circuit_breakers": _dump(_cb.from_istio(None)),
        "load_balancer": _dump(LoadBalancerPolicy.from_istio(None)),
    }


def _topology(services: dict[str, _Service], scn: Scenario | None, splitter: _Split) -> _Topology:
    versions: dict[str, dict[str, dict[str, str]]] = {}
    if scn is not None:
        for sname, spec in scn.services.items():
            if spec.versions:
                versions[sname] = {v: dict(rv.labels) for v, rv in spec.resolved_versions(sname).items()}
            else:
                versions[sname] = {}
        for svc in services.values():
            if svc.name not in scn.services:
                doc = svc.vs or svc.dr
                assert doc is not None
                where = "spec.hosts" if doc.kind == "VirtualService" else "spec.host"
                raise doc.error(where, f"{svc.name!r} is not a service of the topology{suggest(svc.name, scn.services)} "
                                       f"(services: {', '.join(scn.services)})")
        return _Topology(versions, given=True)
    for svc in services.values():
        subsets = (svc.dr.spec.get("subsets") or []) if svc.dr is not None else []
        vers: dict[str, dict[str, str]] = {}
        for i, sub in enumerate(subsets):
            assert svc.dr is not None
            sname = sub.get("name")
            where = f"spec.subsets[{i}]"
            if not isinstance(sname, str) or not re.match(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$", sname):
                raise svc.dr.error(f"{where}.name", f"{sname!r} is not a subset name meshsim can hold as a "
                                                    "version (letters, digits, '-', '_')")
            labels = {str(k): str(v) for k, v in (sub.get("labels") or {}).items()}
            if not labels:
                raise svc.dr.error(f"{where}.labels", "a subset without labels selects every replica; meshsim "
                                                      "subsets are versions, so give each its labels")
            for other, olabels in vers.items():
                if _selects(labels, olabels) or _selects(olabels, labels):
                    raise svc.dr.error(f"{where}.labels", f"{labels} overlaps subset {other} ({olabels}); "
                                                          "meshsim subsets are versions and cannot share replicas")
            if sname in vers:
                raise svc.dr.error(f"{where}.name", f"subset {sname!r} is given twice")
            vers[sname] = labels
        versions[svc.name] = vers
    return _Topology(versions, given=False)


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _subset_versions(svc: _Service, topo: _Topology) -> dict[str, tuple[str, dict[str, Any], int]]:
    """Subset name -> (version, its trafficPolicy as written, index in subsets)."""
    out: dict[str, tuple[str, dict[str, Any], int]] = {}
    if svc.dr is None:
        return out
    versions = topo.versions.get(svc.name, {})
    for i, sub in enumerate(svc.dr.spec.get("subsets") or []):
        sname = sub.get("name")
        where = f"spec.subsets[{i}]"
        if not isinstance(sname, str) or not sname:
            raise svc.dr.error(f"{where}.name", f"{sname!r} is not allowed; a subset needs a name")
        labels = {str(k): str(v) for k, v in (sub.get("labels") or {}).items()}
        if topo.given:
            if not versions:
                raise svc.dr.error(f"{where}.labels", f"{labels}: {svc.name} has no versions in the topology; "
                                                      f"declare them under services.{svc.name}.versions")
            chosen = [v for v, have in versions.items() if _selects(labels, have)]
            if len(chosen) != 1:
                shown = ", ".join(f"{v} {have}" for v, have in versions.items())
                what = "no version" if not chosen else f"versions {', '.join(chosen)}"
                raise svc.dr.error(f"{where}.labels", f"{labels} select {what} of {svc.name} in the topology "
                                                      f"({shown}); a subset must select exactly one version")
            version = chosen[0]
            if version != sname:
                raise svc.dr.error(f"{where}.name", f"subset {sname!r} selects version {version!r} of the "
                                                    f"topology; name the subset after the version ({version})")
        else:
            version = sname
        out[sname] = (version, dict(sub.get("trafficPolicy") or {}), i)
    return out


def _translate_service(svc: _Service, topo: _Topology, splitter: _Split) -> dict[str, Any]:
    """The ``mesh.<service>`` entry for one service's VirtualService and DestinationRule."""
    kept: dict[str, Any] = {}
    # ---- DestinationRule: the whole-service cluster and one per subset
    dr_sim: dict[str, Any] = {}
    dr_kept: dict[str, Any] = {}
    if svc.dr is not None:
        dr_sim, dr_kept = splitter.run(svc.dr, svc.dr.spec, "DestinationRule", "spec")
    top_tp = dict(dr_sim.get("trafficPolicy") or {})
    top = _traffic_cluster(svc.dr, top_tp, "spec.trafficPolicy") if svc.dr is not None else None
    if top is None:
        top = _Cluster(_cb.from_istio(None), None, LoadBalancerPolicy.from_istio(None), None, hash=False)
    subsets: dict[str, tuple[str, _Cluster]] = {}
    sim_subsets = dr_sim.get("subsets") or []
    for sname, (version, _written, i) in _subset_versions(svc, topo).items():
        assert svc.dr is not None
        sub_tp = dict(sim_subsets[i].get("trafficPolicy") or {})
        merged = _merge_traffic_policy(top_tp, sub_tp)
        cluster = _traffic_cluster(svc.dr, merged, f"spec.subsets[{i}].trafficPolicy") if sub_tp else top
        # istiod's hash policy for a route to this subset: the subset's consistentHash, else the top-level one
        sub_hash = (sub_tp.get("loadBalancer") or {}).get("consistentHash") is not None
        cluster = _Cluster(cluster.circuit_breakers, cluster.outlier_detection, cluster.load_balancer,
                           cluster.budget, hash=sub_hash or top.hash)
        subsets[sname] = (version, cluster)
    if svc.dr is not None:
        md = _kept_metadata(svc.dr, svc.name)
        subset_kept = {}
        for i, k in enumerate(dr_kept.pop("subsets", []) or []):
            if k:
                subset_kept[str((svc.dr.spec.get("subsets") or [])[i].get("name"))] = k
        if svc.dr.spec.get("host") != svc.name:
            dr_kept["host"] = svc.dr.spec.get("host")
        block = {k: v for k, v in (("metadata", md), ("spec", dr_kept), ("subsets", subset_kept)) if v}
        if block:
            kept["destinationRule"] = block
    out: dict[str, Any] = {}
    # ---- VirtualService: the routes
    routes, implicit = _translate_routes(svc, subsets, top, splitter, kept)
    if routes is not None:
        out["routes"] = routes
    else:
        out.update(implicit)
    # ---- cluster blocks
    top_blocks = _cluster_blocks(top)
    out.update(top_blocks)
    versions: dict[str, Any] = {}
    for _sname, (version, cluster) in subsets.items():
        blocks = _cluster_blocks(cluster)
        diff = {k: v for k, v in blocks.items() if top_blocks.get(k) != v}
        for k in top_blocks:
            if k not in blocks:
                diff[k] = None
        if diff:
            versions[version] = diff
    if versions:
        out["versions"] = versions
    if kept:
        out["istio"] = kept
    return out


def _cluster_blocks(c: _Cluster) -> dict[str, Any]:
    out: dict[str, Any] = {"circuit_breakers": _dump(c.circuit_breakers)}
    if c.outlier_detection is not None:
        out["outlier_detection"] = _dump(c.outlier_detection, skip=("healthy_panic_threshold",))
    out["load_balancer"] = _dump(c.load_balancer)
    return out


def _kept_metadata(doc: _Doc, service: str) -> dict[str, Any]:
    md = dict(doc.metadata)
    if md.get("name") == service:
        md.pop("name")
    return md


def _translate_routes(
    svc: _Service,
    subsets: dict[str, tuple[str, _Cluster]],
    top: _Cluster,
    splitter: _Split,
    kept: dict[str, Any],
) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """The routes (or the implicit route's service-level blocks) istiod writes for a service."""
    doc = svc.vs
    if doc is None:
        # istiod's default route: no timeout, Istio's default retry policy
        policy = RetryPolicy.istio_default(consistent_hash=top.hash)
        return None, {"timeout": "0s", "retries": _with_budget(_retries_form(policy), top.budget)}
    sim, vs_kept = splitter.run(doc, doc.spec, "VirtualService", "spec")
    http_kept = vs_kept.pop("http", None)
    if doc.spec.get("hosts") != [svc.name]:
        vs_kept["hosts"] = list(doc.spec.get("hosts") or [])
    md = _kept_metadata(doc, svc.name)
    http = sim.get("http") or []
    if not http:
        splitter.notes.append(doc.note("spec.http", "no HTTP routes: istiod's default route applies"))
    routes: list[dict[str, Any]] = []
    for i, route in enumerate(http):
        routes.append(_translate_route(svc, doc, route, f"spec.http[{i}]", subsets, top, splitter))
    _attach_budgets(routes, doc, splitter)
    whole = [i for i, r in enumerate(routes) if r.get("route") == DEFAULT_VERSION
             or (isinstance(r.get("route"), dict) and DEFAULT_VERSION in r["route"])]
    sole_catch_all = len(routes) == 1 and not routes[0].get("match") and routes[0].get("route") == DEFAULT_VERSION
    if subsets and whole and not sole_catch_all:
        raise doc.error(f"spec.http[{whole[0]}].route", "a destination without subset sends to every version of "
                                                        f"{svc.name}; meshsim routes name versions (give a subset), "
                                                        "except in a VirtualService whose one route matches everything")
    block: dict[str, Any] = {}
    if md:
        block["metadata"] = md
    if vs_kept:
        block["spec"] = vs_kept
    if http_kept:
        block["http"] = http_kept
    if block:
        kept["virtualService"] = block
    if not routes:
        policy = RetryPolicy.istio_default(consistent_hash=top.hash)
        return None, {"timeout": "0s", "retries": _with_budget(_retries_form(policy), top.budget)}
    # one route that matches everything and sends to the whole service: meshsim's implicit route
    if len(routes) == 1 and not routes[0].get("match") and routes[0].get("route") == DEFAULT_VERSION:
        only = dict(routes[0])
        only.pop("route")
        if "name" in only:
            http_kept = kept.setdefault("virtualService", {}).setdefault("http", [{}])
            http_kept[0] = {**(http_kept[0] if http_kept else {}), "name": only.pop("name")}
        return None, only
    return routes, {}


_BUDGETS = "__budgets__"


def _budget_key(budget: RetryBudget | None) -> Any:
    return None if budget is None else (budget.budget_percent, budget.min_retry_concurrency)


def _attach_budgets(routes: list[dict[str, Any]], doc: _Doc, splitter: _Split) -> None:
    """Give each route's retry policy its clusters' retry budget (meshsim keeps a cluster's budget there).

    A route carries a budget when all the clusters it sends to have the same one; a cluster whose
    budget no retrying route can carry alone is reported.
    """
    wanted: dict[str, RetryBudget] = {}
    reached: set[str] = set()
    covered: set[str] = set()
    for route in routes:
        pairs = route.pop(_BUDGETS)
        for v, b in pairs:
            if b is not None:
                wanted[v] = b
        if route.get("retries") is None:
            continue
        reached.update(v for v, _ in pairs)
        keys = {_budget_key(b) for _, b in pairs}
        if len(keys) == 1 and pairs[0][1] is not None:
            route["retries"] = _with_budget(route["retries"], pairs[0][1])
            covered.update(v for v, _ in pairs)
    for v, b in wanted.items():
        if v in reached and v not in covered:
            splitter.notes.append(doc.note(
                "spec.http", f"the retryBudget of {v} ({b.budget_percent:g} %, {b.min_retry_concurrency}) is not "
                "simulated: every retrying route to it also sends to a subset with another budget, and meshsim "
                "keeps a cluster's budget in the retry policy of a route that sends only to budgeted clusters"))


def _with_budget(retries: Any, budget: RetryBudget | None) -> Any:
    if retries is None or budget is None:
        return retries
    return {**retries, "retry_budget": _dump(budget)}


def _translate_route(
    svc: _Service,
    doc: _Doc,
    route: Mapping[str, Any],
    path: str,
    subsets: dict[str, tuple[str, _Cluster]],
    top: _Cluster,
    splitter: _Split,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in route:
        out["name"] = route["name"]
    # ---- match
    matches = []
    for j, m in enumerate(route.get("match") or []):
        matches.append(_translate_match(doc, m, f"{path}.match[{j}]"))
    if matches:
        out["match"] = matches
    # ---- destinations
    dests = route.get("route")
    if not dests:
        raise doc.error(f"{path}.route", "unset is not allowed; a route needs at least one destination")
    chosen: list[tuple[str, int, _Cluster]] = []
    for k, d in enumerate(dests):
        where = f"{path}.route[{k}].destination"
        dest = d.get("destination")
        if dest is None:
            raise doc.error(where, "unset is not allowed; give destination: {host, subset}")
        version, cluster = _destination(svc, doc, dest, where, subsets, top)
        weight = d.get("weight", 0)
        if weight < 0:
            raise doc.error(f"{path}.route[{k}].weight", f"{weight!r} is not allowed; weights are >= 0")
        if any(v == version for v, _, _ in chosen):
            raise doc.error(where, f"{version!r} is named twice in one route; give each subset once")
        chosen.append((version, weight, cluster))
    if len(chosen) > 1 and sum(w for _, w, _ in chosen) == 0:
        raise doc.error(f"{path}.route", "the weights sum to 0; give at least one destination a weight > 0 "
                                         "(Istio's validation: total destination weight = 0)")
    if len(chosen) == 1:
        out["route"] = chosen[0][0]  # istiod ignores the weight of a lone destination
    else:
        out["route"] = {v: w for v, w, _ in chosen}
    consistent_hash = len(chosen) == 1 and chosen[0][2].hash
    # ---- timeout and retries
    timeout = route.get("timeout")
    if timeout is not None:
        _check_duration(doc, f"{path}.timeout", timeout)
    tp = _read(doc, path, route, lambda: TimeoutPolicy.from_istio({"timeout": timeout} if timeout else {}))
    out["timeout"] = _duration_text(tp.timeout)
    retries_raw = route.get("retries")
    if retries_raw is not None:
        retries_raw = {k: _unwrap(v) for k, v in retries_raw.items()}
        for key in ("perTryTimeout", "backoff"):
            if key in retries_raw:
                _check_duration(doc, f"{path}.retries.{key}", retries_raw[key])
        if not retries_raw.get("attempts"):
            ignored = [k for k in ("backoff", "retryIgnorePreviousHosts") if k in retries_raw]
            if ignored:
                splitter.notes.append(doc.note(f"{path}.retries", f"{', '.join(ignored)} with attempts 0: istiod "
                                                                  "writes no retry policy, so they do nothing"))
    policy = _read(doc, f"{path}.retries", retries_raw,
                   lambda: RetryPolicy.from_istio(retries_raw, consistent_hash=consistent_hash))
    out["retries"] = _retries_form(policy)
    # the clusters' retry budgets, attached by _attach_budgets
    out[_BUDGETS] = [(v, c.budget) for v, _, c in chosen]
    # ---- fault
    fault = route.get("fault")
    if fault is not None:
        out["fault"] = _translate_fault(doc, fault, f"{path}.fault")
    # ---- mirror
    mirror = _translate_mirror(svc, doc, route, path, subsets, top, splitter)
    if mirror is not None:
        out["mirror"] = mirror
    return out


def _destination(
    svc: _Service, doc: _Doc, dest: Mapping[str, Any], where: str,
    subsets: dict[str, tuple[str, _Cluster]], top: _Cluster,
) -> tuple[str, _Cluster]:
    host = dest.get("host")
    if host is None:
        raise doc.error(f"{where}.host", "unset is not allowed; give the destination's host")
    name, _ = _service_of(host, doc, f"{where}.host")
    if name != svc.name:
        raise doc.error(f"{where}.host", f"{host!r} is not supported: this VirtualService is for {svc.name}, and "
                                         "meshsim routes send only to versions of the service they are declared for")
    subset = dest.get("subset")
    if subset is None or subset == "":
        return DEFAULT_VERSION, top
    if subset not in subsets:
        known = ", ".join(subsets) or "none"
        raise doc.error(f"{where}.subset", f"{subset!r} is not a subset of {svc.name}{suggest(subset, subsets)} "
                                           f"(its DestinationRule defines: {known}); istiod would route to a "
                                           "cluster that does not exist (503 NC)")
    return subsets[subset][0], subsets[subset][1]


def _translate_match(doc: _Doc, m: Mapping[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("uri", "method"):
        sm = m.get(key)
        if sm is None:
            continue
        if len(sm) != 1:
            if not sm and key == "uri":
                continue  # istiod: a uri match without a type matches every path
            raise doc.error(f"{path}.{key}", f"{_show(sm)} is not allowed; give one of exact, prefix, regex")
        kind, value = next(iter(sm.items()))
        if kind == "regex":
            _check_regex(doc, f"{path}.{key}.regex", value)
        out[key] = {kind: value}
    headers: dict[str, Any] = {}
    for name, sm in (m.get("headers") or {}).items():
        where = f"{path}.headers.{name}"
        if name.startswith("@request.auth.claims"):
            raise doc.error(where, "JWT claim routing is not supported (meshsim requests carry no JWT)")
        if _present_form(sm):
            headers[name] = {"present": True}
        elif len(sm) == 1:
            kind, value = next(iter(sm.items()))
            if kind == "regex":
                _check_regex(doc, f"{where}.regex", value)
            if kind == "prefix" and value == "":
                raise doc.error(f"{where}.prefix", "'' is not allowed; Istio refuses an empty prefix match")
            headers[name] = {kind: value}
        else:
            raise doc.error(where, f"{_show(sm)} is not allowed; give one of exact, prefix, regex")
    for name in (m.get("withoutHeaders") or {}):
        if name.lower() in {h.lower() for h in headers}:
            raise doc.error(f"{path}.withoutHeaders.{name}", "is also under headers; meshsim holds one matcher "
                                                             "per header")
        headers[name] = {"present": False}
    if headers:
        out["headers"] = headers
    return out


def _check_regex(doc: _Doc, path: str, value: str) -> None:
    from meshsim.policies.routing import StringMatch

    if not value:
        raise doc.error(path, "'' is not allowed; Istio refuses an empty regex")
    try:
        StringMatch.model_validate({"regex": value})
    except ValidationError as exc:
        problems = problems_of(exc, {"regex": value})
        raise doc.error(path, problems[0].message if problems else str(exc)) from None


def _translate_fault(doc: _Doc, fault: Mapping[str, Any], path: str) -> dict[str, Any]:
    if not fault.get("delay") and not fault.get("abort"):
        raise doc.error(path, f"{_show(fault)} is not allowed; a fault needs an abort and/or a delay "
                              "(Istio's validation)")
    delay = fault.get("delay")
    if delay is not None:
        if "exponentialDelay" in delay:
            raise doc.error(f"{path}.delay.exponentialDelay", f"{delay['exponentialDelay']!r} is not allowed; "
                                                               "Istio does not support exponential delays yet")
        if "fixedDelay" not in delay:
            raise doc.error(f"{path}.delay", "fixedDelay is required (the only delay istiod translates)")
        _check_duration(doc, f"{path}.delay.fixedDelay", delay["fixedDelay"])
        if "percentage" in delay:
            _check_percent(doc, f"{path}.delay.percentage.value", delay["percentage"])
    abort = fault.get("abort")
    if abort is not None:
        if "http2Error" in abort:
            raise doc.error(f"{path}.abort.http2Error", f"{abort['http2Error']!r} is not allowed; Istio does not "
                                                         "support HTTP/2 abort faults yet")
        if "httpStatus" not in abort:
            raise doc.error(f"{path}.abort", "httpStatus is required (the abort meshsim simulates)")
        status = abort["httpStatus"]
        if not 200 <= status <= 599:
            raise doc.error(f"{path}.abort.httpStatus", f"{status!r} is not allowed; Istio takes 200-599")
        if "percentage" in abort:
            _check_percent(doc, f"{path}.abort.percentage.value", abort["percentage"])
    policy = _read(doc, path, fault, lambda: FaultPolicy.model_validate(fault))
    return _dump(policy)


def _translate_mirror(
    svc: _Service, doc: _Doc, route: Mapping[str, Any], path: str,
    subsets: dict[str, tuple[str, _Cluster]], top: _Cluster, splitter: _Split,
) -> dict[str, Any] | None:
    mirrors: list[tuple[Mapping[str, Any], Any, str]] = []
    if route.get("mirror") is not None:
        if route.get("mirrorPercentage") is not None:
            pct = route["mirrorPercentage"]
            _check_percent(doc, f"{path}.mirrorPercentage.value", pct)
            share: Any = FractionalPercent.model_validate({"value": _unwrap(pct.get("value", 0))})
        elif route.get("mirrorPercent") is not None:
            n = _unwrap(route["mirrorPercent"])
            if not 0 <= n <= 100:
                raise doc.error(f"{path}.mirrorPercent", f"{n!r} is not allowed; 0-100 (deprecated: use mirrorPercentage)")
            share = FractionalPercent(numerator=n, denominator="HUNDRED")
        else:
            share = FractionalPercent(numerator=100, denominator="HUNDRED")  # istiod's default: every request
        mirrors.append((route["mirror"], share, f"{path}.mirror"))
    elif route.get("mirrorPercentage") is not None or route.get("mirrorPercent") is not None:
        splitter.notes.append(doc.note(f"{path}.mirrorPercentage", "without mirror it does nothing"))
    for k, mp in enumerate(route.get("mirrors") or []):
        if mp.get("destination") is None:
            raise doc.error(f"{path}.mirrors[{k}].destination", "unset is not allowed; a mirror needs a destination")
        if mp.get("percentage") is not None:
            _check_percent(doc, f"{path}.mirrors[{k}].percentage.value", mp["percentage"])
            share = FractionalPercent.model_validate({"value": _unwrap(mp["percentage"].get("value", 0))})
        else:
            share = FractionalPercent(numerator=100, denominator="HUNDRED")
        mirrors.append((mp["destination"], share, f"{path}.mirrors[{k}].destination"))
    live = [(d, s, w) for d, s, w in mirrors if s.numerator > 0]
    for _, share, where in mirrors:
        if share.numerator == 0:
            splitter.notes.append(doc.note(where, "0 % mirrors nothing: istiod writes no mirror"))
    if len(live) > 1:
        raise doc.error(live[1][2], "a second mirror is not supported: meshsim simulates one mirror per route")
    if not live:
        return None
    dest, share, where = live[0]
    version, _ = _destination(svc, doc, dest, where, subsets, top)
    return {"version": version, "percentage": _percent_form(share)}


# -------------------------------------------------------------------------------------------------
# the minimal topology


def _minimal_topology(
    services: dict[str, _Service], topo: _Topology, mesh: dict[str, Any], name: str
) -> dict[str, Any]:
    svcs: dict[str, Any] = {}
    traffic: list[dict[str, Any]] = []
    for sname in services:
        versions = topo.versions.get(sname) or {}
        spec: dict[str, Any] = {} if versions else {"replicas": 2}
        spec.update({"workers": 8, "latency": {"p50": "10ms", "p99": "50ms"}})
        if versions:
            spec["versions"] = {
                v: ({"replicas": 2} if labels == {"version": v} else {"replicas": 2, "labels": labels})
                for v, labels in versions.items()
            }
        svcs[sname] = spec
        source: dict[str, Any] = {"name": f"to-{sname}", "to": sname, "rate": "20/s"}
        headers, path = _exercising_requests(mesh.get(sname, {}))
        if path != "/":
            source["path"] = path
        if headers:
            source["headers"] = headers
        traffic.append(source)
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", name) or "istio-import"
    return {
        "name": safe,
        "description": "Imported from Istio by meshsim import istio (minimal topology).",
        "seed": 1,
        "duration": "60s",
        "services": svcs,
        "traffic": traffic,
        "mesh": mesh,
    }


def _exercising_requests(entry: Mapping[str, Any]) -> tuple[dict[str, dict[str, str]], str]:
    """Header frequencies that reach the routes matching exact header values, and a path routes accept."""
    values: dict[str, list[str]] = {}
    path = "/"
    routes = entry.get("routes") or []
    for route in routes:
        for m in route.get("match") or []:
            for hname, hm in (m.get("headers") or {}).items():
                if "exact" in hm:
                    values.setdefault(hname.lower(), [])
                    if hm["exact"] not in values[hname.lower()]:
                        values[hname.lower()].append(hm["exact"])
    if routes and all(r.get("match") for r in routes):
        first = routes[0]["match"][0].get("uri") or {}
        path = first.get("exact") or first.get("prefix") or "/"
        if not path.startswith("/"):
            path = "/"
    headers: dict[str, dict[str, str]] = {}
    for hname, vals in values.items():
        share = min(10.0, 50.0 / len(vals))
        headers[hname] = {v: f"{share:g}%" for v in vals}
    return headers, path


# -------------------------------------------------------------------------------------------------
# writing YAML


class _Dumper(yaml.SafeDumper):
    """Block style, with short mappings and lists of scalars on one line."""


def _flow(items: list[Any]) -> bool:
    return all(not isinstance(x, (dict, list)) for x in items) and len(repr(items)) <= 80


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = bool(data) and _flow([*data.keys(), *data.values()]) and len(data) <= 4
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=bool(data) and _flow(data))


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110,
                     default_flow_style=False)


def _comment(lines: Iterable[str], width: int = 100) -> str:
    import textwrap

    out = []
    for line in lines:
        wrapped = textwrap.wrap(line, width=width, subsequent_indent="    ", break_long_words=False,
                                break_on_hyphens=False) or [""]
        out.extend(f"# {w}".rstrip() for w in wrapped)
    return "\n".join(out) + "\n"


def scenario_text(imported: IstioImport) -> str:
    """The text :func:`write_scenario` writes: the comment header, then the scenario's YAML."""
    lines = list(imported.header)
    if imported.warnings:
        lines.append("Warnings:")
        lines.extend(f"  - {w}" for w in imported.warnings)
    return _comment(lines) + _yaml(imported.data)


def write_scenario(path: str | os.PathLike[str], imported: IstioImport) -> Path:
    """Write an imported scenario to ``path``, all or nothing (a temporary file, then a rename).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(target, scenario_text(imported))


# -------------------------------------------------------------------------------------------------
# the normalised view: what the simulation applies


def _pm(pct: FractionalPercent) -> int:
    return per_million(pct.numerator, pct.denominator)


def _retry_view(policy: RetryPolicy | None) -> Any:
    if policy is None or ((not policy.active or policy.num_retries == 0) and not policy.hedge_on_per_try_timeout):
        return None
    out: dict[str, Any] = {
        "retry_on": policy.retry_on,
        "num_retries": policy.num_retries,
        "back_off_base_ms": policy.base_interval_ms,
        "back_off_max_ms": policy.max_interval_ms,
        "previous_hosts": policy.previous_hosts,
        "hedge_on_per_try_timeout": policy.hedge_on_per_try_timeout,
    }
    if "retriable-status-codes" in policy.retry_on.split(","):
        out["retriable_status_codes"] = list(policy.retriable_status_codes)
    if "retriable-headers" in policy.retry_on.split(","):
        out["retriable_headers"] = [dict(h) for h in policy.retriable_headers]
    if policy.previous_hosts:
        out["host_selection_retry_max_attempts"] = policy.host_selection_attempts
    out["retry_priority"] = policy.retry_priority.update_frequency if policy.retry_priority is not None else None
    return out


def _fault_view(policy: FaultPolicy | None) -> Any:
    if policy is None:
        return None
    out: dict[str, Any] = {}
    if policy.delay is not None and _pm(policy.delay.percentage) > 0:
        out["delay"] = {"fixed_delay": policy.delay.fixed_delay, "percentage_ppm": _pm(policy.delay.percentage)}
    if policy.abort is not None and _pm(policy.abort.percentage) > 0:
        out["abort"] = {"http_status": policy.abort.http_status, "percentage_ppm": _pm(policy.abort.percentage)}
    if policy.max_active_faults is not None:
        out["max_active_faults"] = policy.max_active_faults
    return out or None


def _route_view(rp: Any) -> dict[str, Any]:
    t = rp.timeout
    mirror = rp.mirror
    return {
        "timeout": {"timeout": t.timeout, "per_try_timeout": t.per_try_timeout,
                    "per_try_idle_timeout": t.per_try_idle_timeout},
        "retries": _retry_view(rp.retries),
        "fault": _fault_view(rp.fault),
        "mirror": None if mirror is None or _pm(mirror.percentage) == 0
        else {"version": mirror.version, "percentage_ppm": _pm(mirror.percentage)},
    }


def _model_view(model: BaseModel | None, drop: Iterable[str] = ()) -> Any:
    if model is None:
        return None
    out = model.model_dump(mode="json", by_alias=True)
    for k in drop:
        out.pop(k, None)
    return out


_LR_FIELDS = ("choice_count", "active_request_bias", "selection_method")
_RING_FIELDS = ("minimum_ring_size", "maximum_ring_size", "hash_function")
_HASH_FIELDS = ("hash_key",)


def _lb_view(lb: LoadBalancerPolicy) -> dict[str, Any]:
    out = _model_view(lb)
    keep = set(out) - set(_LR_FIELDS) - set(_RING_FIELDS) - {"table_size", "hash_key"}
    if lb.lb_policy == "LEAST_REQUEST":
        keep |= set(_LR_FIELDS)
    if lb.lb_policy == "RING_HASH":
        keep |= set(_RING_FIELDS) | {"hash_key"}
    if lb.lb_policy == "MAGLEV":
        keep |= {"table_size", "hash_key"}
    view = {k: v for k, v in out.items() if k in keep}
    loc = lb.locality_lb
    if loc is not None and not loc.enabled:
        view["locality_lb"] = None
    if view.get("slow_start") is not None and lb.lb_policy not in ("ROUND_ROBIN", "LEAST_REQUEST"):
        pass  # kept: Istio cannot write it there, so the difference is reported
    return view


def _od_view(od: Any, health_checked: bool) -> Any:
    if od is None:
        return None
    out = _model_view(od, drop=("healthy_panic_threshold",))
    out["max_ejection_time"] = od.effective_max_ejection_time
    if not od.split_external_local_origin_errors:
        for k in ("consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure",
                  "enforcing_local_origin_success_rate", "enforcing_failure_percentage_local_origin"):
            out.pop(k, None)
    if od.enforcing_success_rate == 0 and out.get("enforcing_local_origin_success_rate", 0) == 0:
        for k in ("success_rate_minimum_hosts", "success_rate_request_volume", "success_rate_stdev_factor"):
            out.pop(k, None)
    if od.enforcing_failure_percentage == 0 and out.get("enforcing_failure_percentage_local_origin", 0) == 0:
        for k in ("failure_percentage_threshold", "failure_percentage_minimum_hosts",
                  "failure_percentage_request_volume"):
            out.pop(k, None)
    if not health_checked:
        out.pop("successful_active_health_check_uneject_host", None)
    return out


def _cb_view(cb: Any) -> dict[str, Any]:
    out = _model_view(cb)
    if cb.protocol != "http2":
        out.pop("max_concurrent_streams", None)
    return out


def _cluster_view(cp: Any) -> dict[str, Any]:
    budget = cp.retry_budget
    return {
        "circuit_breakers": _cb_view(cp.circuit_breakers),
        "outlier_detection": _od_view(cp.outlier_detection, cp.health_check is not None),
        "load_balancer": _lb_view(cp.load_balancer),
        "health_check": _model_view(cp.health_check),
        "retry_budget": None if budget is None or not budget.in_force
        else {"budget_percent": budget.percent, "min_retry_concurrency": budget.min_concurrency},
    }


def mesh_view(policy: MeshPolicy, versions: Sequence[str]) -> dict[str, Any]:
    """What a simulation of calls to one service applies, normalised for comparison.

    Two mesh policies with equal views behave the same in the simulator. The view holds each
    route's matches, weighted versions (weight-0 destinations of a split left out, as Envoy never
    picks them) and resolved route policies (``route_policies``), or the implicit route's when
    there are no routes; the cluster policies (``cluster_policies``) of every version when
    there are routes, else of the whole service; and the rate limit. Values that behave the same
    are written the same: percentages in parts per million, a retry policy that retries nothing
    as none, fields an Envoy feature does not read while it is off (the ring size of a
    ROUND_ROBIN cluster, the success-rate settings of a detector that does not enforce them, ...)
    left out.

    Parameters
    ----------
    policy
        ``scenario.mesh_for(service)``.
    versions
        The service's version names (``["default"]`` for a service without versions).

    Returns
    -------
    dict
        Plain data (JSON-like), ready to compare with ``==``.
    """
    out: dict[str, Any] = {}
    whole = DEFAULT_VERSION if DEFAULT_VERSION in versions else None
    only = policy.routes[0] if len(policy.routes) == 1 else None
    if only is not None and not only.match and [d.version for d in only.destinations] == [DEFAULT_VERSION]:
        # one route that takes every request to the whole service: the implicit route, with its name
        out["route"] = _route_view(policy.route_policies(0))
        out["clusters"] = {"*": _cluster_view(policy.cluster_policies(whole))}
    elif policy.routes:
        routes = []
        for i, r in enumerate(policy.routes):
            live = [d for d in r.destinations if d.weight > 0] if len(r.destinations) > 1 else list(r.destinations)
            routes.append({
                "name": r.name,
                "match": [m.model_dump(mode="json", exclude_none=True, exclude_defaults=True) for m in r.match],
                "destinations": {d.version: (d.weight if len(live) > 1 else 100) for d in live},
                **_route_view(policy.route_policies(i)),
            })
        out["routes"] = routes
        out["clusters"] = {v: _cluster_view(policy.cluster_policies(v)) for v in versions}
    else:
        out["route"] = _route_view(policy.route_policies(None))
        out["clusters"] = {"*": _cluster_view(policy.cluster_policies(whole))}
    out["rate_limit"] = _model_view(policy.rate_limit)
    return out


def view_differences(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where two :func:`mesh_view` results differ: ``[(path, a_value, b_value), ...]``, empty when equal.

    Floats are compared to 1e-12 relative (``"1251ms"`` and ``"1.251s"`` read as floats one unit
    apart in the last place; Envoy keeps whole milliseconds anyway).

    Examples
    --------
    >>> view_differences({"a": {"b": 1.251}}, {"a": {"b": 1251 * 0.001}}), view_differences({"a": 1}, {"a": 2})
    ([], [('a', 1, 2)])
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            out.extend(view_differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k)))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a and isinstance(a[0], dict):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(view_differences(x, y, f"{path}[{i}]"))
        return out
    if a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12)):
        return []
    return [(path, a, b)]


# -------------------------------------------------------------------------------------------------
# export


#: why a field cannot be written in Istio (the last path segment, or a prefix of it)
_WHY: dict[str, str] = {
    "rate_limit": "Istio's VirtualService and DestinationRule have no local rate limit (it takes an EnvoyFilter)",
    "health_check": "Istio has no active health checking",
    "hedge_on_per_try_timeout": "Istio has no request hedging",
    "per_try_idle_timeout": "Istio has no per-try idle timeout",
    "back_off_max_ms": "Istio sets only the back-off base; Envoy caps it at 10 x the base",
    "back_off_base_ms": "Istio takes whole milliseconds",
    "retriable_headers": "Istio's retryOn takes no header matchers",
    "host_selection_retry_max_attempts": "istiod always writes 5 host-selection attempts",
    "retry_priority": "istiod writes previous_priorities with update frequency 2 only",
    "retry_on": "Istio's validation refuses unknown retryOn tokens",
    "previous_hosts": "istiod writes the previous-hosts predicate only with a retry policy",
    "per_try_timeout": "Istio's perTryTimeout needs a retry policy (attempts >= 1), in whole milliseconds",
    "timeout": "Istio takes whole milliseconds of at least 1 ms",
    "max_active_faults": "Istio's fault injection has no max_active_faults",
    "fixed_delay": "Istio takes whole milliseconds",
    "enforcing_success_rate": "istiod always turns success-rate ejection off",
    "enforcing_local_origin_success_rate": "istiod always turns success-rate ejection off",
    "success_rate": "istiod always turns success-rate ejection off",
    "failure_percentage": "Istio has no failure-percentage ejection",
    "enforcing_failure_percentage": "Istio has no failure-percentage ejection",
    "enforcing_consecutive": "istiod enforces the consecutive detectors it writes at 100 % (0 % for a count of 0)",
    "consecutive": "istiod enforces the consecutive detectors it writes at 100 %, and cannot write a count without enforcement",
    "max_ejection_time": "Istio has no max_ejection_time (Envoy's max(300 s, base) applies)",
    "max_ejection_time_jitter": "Istio has no ejection jitter",
    "always_eject_one_host": "Istio has no always_eject_one_host",
    "max_ejection_percent": "Istio cannot write 0 (it reads 0 as unset: Envoy's 10)",
    "interval": "Istio takes whole milliseconds",
    "base_ejection_time": "Istio takes whole milliseconds",
    "healthy_panic_threshold": "Istio's panic threshold is outlierDetection.minHealthPercent, a whole percentage, "
                               "and only with outlier detection",
    "choice_count": "Istio's LEAST_REQUEST takes no settings (Envoy's choice_count 2)",
    "active_request_bias": "Istio's LEAST_REQUEST takes no settings",
    "selection_method": "Istio's LEAST_REQUEST takes no settings",
    "maximum_ring_size": "Istio sets only the minimum ring size",
    "hash_function": "Istio sets only the minimum ring size",
    "zone_aware": "Envoy's zone-aware routing has no DestinationRule field",
    "locality_weighted": "istiod sets locality_weighted_lb_config only with distribute or failover",
    "slow_start": "istiod applies warmup to ROUND_ROBIN and LEAST_REQUEST only",
    "locality_lb": "Istio's locality load balancing differs (failover needs outlier detection)",
    "max_connection_pools": "Istio has no max_connection_pools",
    "track_remaining": "istiod writes track_remaining false",
    "max_connections": "Istio's thresholds are int32 and 0 means unset",
    "max_pending_requests": "Istio's thresholds are int32 and 0 means unset",
    "max_requests": "Istio's thresholds are int32 and 0 means unset",
    "max_retries": "Istio's thresholds are int32 and 0 means unset",
    "max_requests_per_connection": "Istio's field is int32",
    "connect_timeout_s": "Istio takes whole milliseconds",
    "idle_timeout_s": "Istio takes whole milliseconds",
    "max_connection_duration_s": "Istio takes whole milliseconds",
    "min_retry_concurrency": "Istio reads a minRetryConcurrency of 0 as unset (3)",
    "mirror": "istiod writes no mirror for 0 %",
}


def _why(path: str) -> str:
    parts = [p for p in re.split(r"[.\[\]]", path) if p and not p.isdigit()]
    for part in reversed(parts):
        if part in _WHY:
            return _WHY[part]
        for key, why in _WHY.items():
            if part.startswith(key):
                return why
    return "not expressible in a VirtualService or DestinationRule"


_SECONDS = {"timeout", "per_try_timeout", "per_try_idle_timeout", "interval", "base_ejection_time",
            "max_ejection_time", "max_ejection_time_jitter", "connect_timeout_s", "idle_timeout_s",
            "max_connection_duration_s", "fixed_delay"}


def _show_value(value: Any, name: str = "") -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_show_value(v, k)}" for k, v in value.items()) + "}"
        return text if len(text) <= 100 else text[:96] + "...}"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name in _SECONDS:
        return f"{value:g}s"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class IstioExport:
    """What :func:`export_istio` built.

    Attributes
    ----------
    documents
        Service -> its resources (a VirtualService and a DestinationRule), as mappings.
    files
        File name (``<service>.yaml``) -> the multi-document YAML written for it.
    warnings
        One line each: what the scenario has that the Istio resources cannot carry, naming
        service and field, with what istiod would give instead.
    """

    documents: dict[str, list[dict[str, Any]]]
    files: dict[str, str]
    warnings: list[str]


def export_istio(
    scenario: Scenario, *, namespace: str | None = None, all_services: bool = False, source: str | None = None
) -> IstioExport:
    """The VirtualService and DestinationRule of each destination service, as istiod must read them.

    Parameters
    ----------
    scenario
        The scenario whose ``mesh:`` policies are written.
    namespace
        Write ``metadata.namespace`` and fully qualified hosts
        (``reviews.<namespace>.svc.cluster.local``); default: neither, short host names (they
        resolve in the namespace the resources are applied to). Hosts kept from an import are
        written as they were.
    all_services
        Also write resources for the services without a ``mesh:`` entry, spelling out Envoy's
        defaults that meshsim simulated for them (otherwise Istio's own apply, and a warning
        says so).
    source
        Where the scenario came from, for the files' comment header.

    Returns
    -------
    IstioExport

    Notes
    -----
    Every export is translated back (as :func:`import_istio` does) and compared with the
    scenario with :func:`mesh_view`; each difference is a warning, so nothing is dropped
    silently. Output is deterministic: the same scenario gives byte-identical files.
    """
    documents: dict[str, list[dict[str, Any]]] = {}
    warnings: list[str] = []
    file_notes: dict[str, list[str]] = {}
    unconfigured = [s for s in scenario.services if s not in scenario.mesh]
    exported = [s for s in scenario.services if s in scenario.mesh or all_services]
    if unconfigured and not all_services:
        warnings.append(
            f"{', '.join(unconfigured)}: no mesh: entry, so meshsim simulated Envoy's defaults for calls to "
            f"{'them' if len(unconfigured) > 1 else 'it'} (no retries, 15s route timeout, ROUND_ROBIN, thresholds "
            "1024/1024/1024/3); Istio applies its own (2 retries, no route timeout, LEAST_REQUEST, 4294967295); "
            "--all-services writes resources that keep the simulated behaviour"
        )
    for sname in exported:
        policy = scenario.mesh_for(sname)
        spec = scenario.services[sname]
        labels = {v: dict(rv.labels) for v, rv in spec.resolved_versions(sname).items()} if spec.versions else {}
        notes: list[str] = []
        documents[sname] = _export_service(sname, policy, labels, namespace, notes)
        file_notes[sname] = notes
        warnings.extend(f"{sname}: {n}" for n in notes)
    # translate the export back and compare: every difference is something Istio cannot hold
    if documents:
        docs: list[_Doc] = []
        for sname, resources in documents.items():
            for i, res in enumerate(resources, start=1):
                md = res["metadata"]
                docs.append(_Doc(f"<export of {sname}>", i, None, res["kind"], md["name"], md.get("namespace"),
                                 dict(md), copy.deepcopy(res["spec"])))
        back = _import_docs(docs, scenario, copy.deepcopy(dict(scenario._raw or {})), merge=True,
                            allow_unsupported=True, notes=[], name=None)
        for sname in documents:
            versions = scenario.services[sname].version_names()
            before = mesh_view(scenario.mesh_for(sname), versions)
            after = mesh_view(back.scenario.mesh_for(sname), versions)
            for line in _difference_lines(view_differences(before, after)):
                file_notes[sname].append(line)
                warnings.append(f"{sname}: {line}")
    files: dict[str, str] = {}
    origin = f" from {source}" if source else ""
    for sname, resources in documents.items():
        head = [
            f"{_MARK[2:]}{origin}: the VirtualService and DestinationRule for calls to {sname}, written so "
            "that istiod gives the sidecars the policies meshsim simulated (default MeshConfig assumed).",
        ]
        if any("retryBudget" in (r["spec"].get("trafficPolicy") or {}) or any(
                "retryBudget" in (s.get("trafficPolicy") or {}) for s in r["spec"].get("subsets") or [])
               for r in resources if r["kind"] == "DestinationRule"):
            head.append("trafficPolicy.retryBudget needs Istio 1.27 or later.")
        if file_notes[sname]:
            head.append("Not expressible in Istio (the deployed mesh differs from the simulation here):")
            head.extend(f"  - {n}" for n in file_notes[sname])
        body = "---\n".join(_yaml(r) for r in resources)
        files[f"{sname}.yaml"] = _comment(head) + body
    return IstioExport(documents=documents, files=files, warnings=warnings)


def _difference_lines(diffs: list[tuple[str, Any, Any]]) -> list[str]:
    """One line per block and reason: ``block: field value, ... cannot be written in Istio (why); istiod gives ...``."""
    groups: dict[tuple[str, str], list[tuple[str, Any, Any]]] = {}
    for path, was, now in diffs:
        where = _view_path(path)
        block, _, fname = where.rpartition(".")
        groups.setdefault((block, _why(path)), []).append((fname, was, now))
    lines = []
    for (block, why), items in groups.items():
        if len(items) == 1 and not block:
            fname, was, now = items[0]
            lines.append(f"{fname}: {_show_value(was, fname)} cannot be written in Istio ({why}); istiod gives "
                         f"{_show_value(now, fname)}")
            continue
        had = ", ".join(f"{f} {_show_value(w, f)}" for f, w, _ in items)
        gets = ", ".join(f"{f} {_show_value(n, f)}" for f, _, n in items if n is not None) or "none"
        lines.append(f"{block}: {had} cannot be written in Istio ({why}); istiod gives {gets}")
    return lines


def _view_path(path: str) -> str:
    """A view path as the scenario names the field (``routes[0].retries.num_retries``, ``versions.v1...``)."""
    if path.startswith("clusters.*."):
        return path[len("clusters.*."):]
    if path.startswith("clusters."):
        return "versions." + path[len("clusters."):]
    if path.startswith("route."):
        return path[len("route."):]
    return path


def _hosts(policy: MeshPolicy, service: str, namespace: str | None) -> tuple[list[str], str]:
    kept = ((policy.istio or {}).get("virtualService") or {}).get("spec") or {}
    hosts = kept.get("hosts")
    if hosts:
        return list(hosts), hosts[0]
    host = f"{service}.{namespace}.{_CLUSTER_DOMAIN}" if namespace else service
    return [host], host


_KEPT_SHAPE = {"virtualService": ("metadata", "spec", "http"), "destinationRule": ("metadata", "spec", "subsets")}


def _check_kept(service: str, kept: Mapping[str, Any]) -> None:
    """``mesh.<service>.istio`` has the shape the importer writes (it is merged into the resources as it is)."""
    where = f"mesh.{service}.istio"
    for key, block in kept.items():
        if key not in _KEPT_SHAPE:
            raise ConfigError(f"{where}: unknown key {key!r}{suggest(str(key), _KEPT_SHAPE)} "
                              f"(allowed: {', '.join(_KEPT_SHAPE)})", path=f"{where}.{key}")
        if not isinstance(block, Mapping):
            raise ConfigError(f"{where}.{key}: {_show(block)} is not a mapping", path=f"{where}.{key}")
        for part, value in block.items():
            allowed = _KEPT_SHAPE[key]
            if part not in allowed:
                raise ConfigError(f"{where}.{key}: unknown key {part!r}{suggest(str(part), allowed)} "
                                  f"(allowed: {', '.join(allowed)})", path=f"{where}.{key}.{part}")
            ok = isinstance(value, list) if part == "http" else isinstance(value, Mapping)
            if not ok:
                raise ConfigError(f"{where}.{key}.{part}: {_show(value)} is not a "
                                  f"{'list' if part == 'http' else 'mapping'}", path=f"{where}.{key}.{part}")


def _export_service(
    service: str, policy: MeshPolicy, labels: dict[str, dict[str, str]], namespace: str | None, notes: list[str]
) -> list[dict[str, Any]]:
    kept = policy.istio or {}
    _check_kept(service, kept)
    hosts, host = _hosts(policy, service, namespace)
    dr_kept = kept.get("destinationRule") or {}
    versions = list(labels)
    # ---- DestinationRule
    # the whole-service cluster (a service without versions has only this one: its budget is "default"'s)
    base = policy.cluster_policies(None if versions else DEFAULT_VERSION)
    top = _traffic_policy(base)
    per = {v: _traffic_policy(policy.cluster_policies(v)) for v in versions}
    if policy.routes and versions:
        # the whole-service cluster is unused; a block some subset must not have cannot be inherited
        for k in list(top):
            if any(k not in per[v] for v in versions):
                del top[k]
    dr_spec: dict[str, Any] = {"host": (dr_kept.get("spec") or {}).get("host", host)}
    if top:
        dr_spec["trafficPolicy"] = top
    subsets = []
    for v in versions:
        sub: dict[str, Any] = {"name": v, "labels": labels[v]}
        own = {k: b for k, b in per[v].items() if top.get(k) != b}
        if own:
            sub["trafficPolicy"] = own
        subsets.append(sub)
    if subsets:
        dr_spec["subsets"] = subsets
    dr_spec = _merge_kept(dr_spec, {k: v for k, v in (dr_kept.get("spec") or {}).items() if k != "host"}, notes,
                          "DestinationRule")
    for sub in dr_spec.get("subsets") or []:
        extra = (dr_kept.get("subsets") or {}).get(sub["name"])
        if extra:
            sub.update(_merge_kept(dict(sub), extra, notes, f"DestinationRule subset {sub['name']}"))
    # ---- VirtualService
    def hashes(version: str) -> bool:
        tp = dr_spec.get("trafficPolicy") or {}
        h = (tp.get("loadBalancer") or {}).get("consistentHash") is not None
        for sub in dr_spec.get("subsets") or []:
            if sub["name"] == version and ((sub.get("trafficPolicy") or {}).get("loadBalancer") or {}).get(
                    "consistentHash") is not None:
                h = True
        return h

    http: list[dict[str, Any]] = []
    if policy.routes:
        for i, route in enumerate(policy.routes):
            entry = _routing.to_istio(route, host=host)
            one = [d for d in route.destinations]
            consistent = len(one) == 1 and hashes(one[0].version)
            entry.update(_route_policies(policy.route_policies(i), host, consistent))
            http.append(entry)
    else:
        entry = {"route": [{"destination": {"host": host}}]}
        entry.update(_route_policies(policy.route_policies(None), host, hashes(DEFAULT_VERSION)))
        http.append(entry)
    vs_kept = kept.get("virtualService") or {}
    http_kept = vs_kept.get("http") or []
    if http_kept and len(http_kept) != len(http):
        notes.append(f"the kept Istio fields of {len(http_kept)} routes do not line up with the scenario's "
                     f"{len(http)} routes; written for the first {min(len(http), len(http_kept))}")
    for i, extra in enumerate(http_kept[: len(http)]):
        if extra:
            http[i] = _merge_kept(http[i], extra, notes, f"VirtualService http[{i}]")
    vs_spec: dict[str, Any] = {"hosts": hosts, "http": http}
    vs_spec = _merge_kept(vs_spec, {k: v for k, v in (vs_kept.get("spec") or {}).items() if k != "hosts"}, notes,
                          "VirtualService")
    vs = {"apiVersion": EXPORT_API_VERSION, "kind": "VirtualService",
          "metadata": _metadata(service, namespace, vs_kept.get("metadata")), "spec": vs_spec}
    dr = {"apiVersion": EXPORT_API_VERSION, "kind": "DestinationRule",
          "metadata": _metadata(service, namespace, dr_kept.get("metadata")), "spec": dr_spec}
    return [vs, dr]


def _metadata(service: str, namespace: str | None, kept: Mapping[str, Any] | None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": service}
    if namespace:
        md["namespace"] = namespace
    for k, v in (kept or {}).items():
        md[k] = copy.deepcopy(v)
    return md


def _merge_kept(generated: dict[str, Any], kept: Mapping[str, Any], notes: list[str], where: str) -> dict[str, Any]:
    """Fields kept from an import, merged into a generated resource (mappings recursively, lists by index)."""
    out = dict(generated)
    for key, value in kept.items():
        have = out.get(key)
        if isinstance(have, dict) and isinstance(value, Mapping):
            out[key] = _merge_kept(have, value, notes, f"{where}.{key}")
        elif isinstance(have, list) and isinstance(value, list):
            merged = list(have)
            for i, extra in enumerate(value[: len(have)]):
                if isinstance(merged[i], dict) and isinstance(extra, Mapping) and extra:
                    merged[i] = _merge_kept(merged[i], extra, notes, f"{where}.{key}[{i}]")
            out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    return out


def _traffic_policy(cp: Any) -> dict[str, Any]:
    """The blocks of a DestinationRule trafficPolicy for resolved cluster policies."""
    out: dict[str, Any] = {}
    pool = _cb.to_istio(cp.circuit_breakers)
    if pool:
        out["connectionPool"] = pool
    has_od = cp.outlier_detection is not None
    out["loadBalancer"] = _lb.to_istio(cp.load_balancer, outlier_detection=has_od)
    if has_od:
        out["outlierDetection"] = _od.to_istio(cp.outlier_detection,
                                               healthy_panic_threshold=cp.load_balancer.healthy_panic_threshold)
    budget = _retry.budget_to_istio(cp.retry_budget)
    if budget:
        out["retryBudget"] = budget
    return out


def _route_policies(rp: Any, host: str, consistent_hash: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(_timeout.to_istio(rp.timeout))
    default = RetryPolicy.istio_default(consistent_hash=consistent_hash)
    if rp.timeout.per_try_timeout or _retry_view(rp.retries) != _retry_view(default):
        out["retries"] = _retry.to_istio(rp.retries, per_try_timeout=rp.timeout.per_try_timeout,
                                         consistent_hash=consistent_hash)
    # else: Istio's default retry policy is what an absent retries block gives
    if rp.fault is not None:
        fault = _fault.to_istio(rp.fault)
        if fault:
            out["fault"] = fault
    if rp.mirror is not None:
        out.update(_routing.mirror_to_istio(rp.mirror, host=host))
    return out


def write_istio(outdir: str | os.PathLike[str], exported: IstioExport) -> list[Path]:
    """Write the exported files into ``outdir``, all or nothing.

    The files are written into a temporary directory beside ``outdir`` first and moved in only
    when all are complete. Files of an earlier export (they start with the generated-by line)
    that this export does not write are removed, so the directory never mixes two exports;
    other files are left alone.

    Returns
    -------
    list of pathlib.Path
        The files written, in service order.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: not a directory")
    with staging_directory(out) as tmp:
        for fname, text in exported.files.items():
            (tmp / fname).write_text(text, encoding="utf-8")
        out.mkdir(exist_ok=True)
        for stale in sorted(out.glob("*.yaml")):
            if stale.name not in exported.files and stale.is_file():
                try:
                    first = stale.read_text(encoding="utf-8").split("\n", 1)[0]
                except (OSError, UnicodeDecodeError):
                    continue
                if first.startswith(_MARK):
                    stale.unlink()
        return move_into(tmp, out, exported.files)
