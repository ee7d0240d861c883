"""The shape of Istio's VirtualService and DestinationRule (``networking.istio.io``), field by field.

The field names are those of ``istio/api`` ``networking/v1alpha3/virtual_service.proto`` and
``destination_rule.proto`` in their JSON (camelCase) spelling, which is what Kubernetes accepts
for the CRDs of all three served versions (``v1``, ``v1beta1``, ``v1alpha3``: one schema).
:func:`check` walks a document against it and raises on the first unknown field or wrongly
typed value, naming the field path and what is allowed; what the fields *mean* is the
translator's business (:mod:`meshsim.interop.istio`).

Type spellings in :data:`MESSAGES`: ``"str"``, ``"int"``, ``"bool"``, ``"double"``,
``"duration"`` (a Go duration string such as ``"250ms"``), ``"enum:A|B"``, ``"any"`` (not
checked), a message name, ``["T"]`` (a list of T) and ``{"map": "T"}`` (string keys, T values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshsim.policies._model import suggest

__all__ = ["MESSAGES", "SchemaError", "check"]

_STRING_MATCH = "StringMatch"

#: message -> field -> type
MESSAGES: dict[str, dict[str, Any]] = {
    # ---- VirtualService
    "VirtualService": {
        "hosts": ["str"], "gateways": ["str"], "http": ["HTTPRoute"], "tls": ["any"], "tcp": ["any"],
        "exportTo": ["str"],
    },
    "HTTPRoute": {
        "name": "str", "match": ["HTTPMatchRequest"], "route": ["HTTPRouteDestination"],
        "redirect": "any", "directResponse": "any", "delegate": "any", "rewrite": "HTTPRewrite",
        "timeout": "duration", "retries": "HTTPRetry", "fault": "HTTPFaultInjection", "mirror": "Destination",
        "mirrors": ["HTTPMirrorPolicy"], "mirrorPercent": "int", "mirrorPercentage": "Percent",
        "corsPolicy": "any", "headers": "Headers",
    },
    "HTTPMatchRequest": {
        "name": "str", "uri": _STRING_MATCH, "scheme": _STRING_MATCH, "method": _STRING_MATCH,
        "authority": _STRING_MATCH, "headers": {"map": _STRING_MATCH}, "port": "int",
        "sourceLabels": {"map": "str"}, "gateways": ["str"], "queryParams": {"map": _STRING_MATCH},
        "ignoreUriCase": "bool", "withoutHeaders": {"map": _STRING_MATCH}, "sourceNamespace": "str",
        "statPrefix": "str",
    },
    "StringMatch": {"exact": "str", "prefix": "str", "regex": "str"},
    "HTTPRouteDestination": {"destination": "Destination", "weight": "int", "headers": "Headers"},
    "Destination": {"host": "str", "subset": "str", "port": "PortSelector"},
    "PortSelector": {"number": "int"},
    "HTTPRetry": {
        "attempts": "int", "perTryTimeout": "duration", "retryOn": "str", "retryRemoteLocalities": "bool",
        "retryIgnorePreviousHosts": "bool", "backoff": "duration",
    },
    "HTTPFaultInjection": {"delay": "FaultDelay", "abort": "FaultAbort"},
    "FaultDelay": {"percent": "int", "fixedDelay": "duration", "exponentialDelay": "duration", "percentage": "Percent"},
    "FaultAbort": {"httpStatus": "int", "grpcStatus": "str", "http2Error": "str", "percentage": "Percent"},
    "HTTPMirrorPolicy": {"destination": "Destination", "percentage": "Percent"},
    "Percent": {"value": "double"},
    "HTTPRewrite": {"uri": "str", "authority": "str", "uriRegexRewrite": "any"},
    "Headers": {"request": "HeaderOperations", "response": "HeaderOperations"},
    "HeaderOperations": {"set": {"map": "str"}, "add": {"map": "str"}, "remove": ["str"]},
    # ---- DestinationRule
    "DestinationRule": {
        "host": "str", "trafficPolicy": "TrafficPolicy", "subsets": ["Subset"], "exportTo": ["str"],
        "workloadSelector": "any",
    },
    "TrafficPolicy": {
        "loadBalancer": "LoadBalancerSettings", "connectionPool": "ConnectionPoolSettings",
        "outlierDetection": "OutlierDetection", "tls": "ClientTLSSettings", "portLevelSettings": ["any"],
        "tunnel": "any", "proxyProtocol": "any", "retryBudget": "RetryBudget",
    },
    "RetryBudget": {"percent": "double", "minRetryConcurrency": "int", "budgetInterval": "duration"},
    "Subset": {"name": "str", "labels": {"map": "str"}, "trafficPolicy": "TrafficPolicy"},
    "LoadBalancerSettings": {
        "simple": "enum:UNSPECIFIED|LEAST_CONN|RANDOM|PASSTHROUGH|ROUND_ROBIN|LEAST_REQUEST",
        "consistentHash": "ConsistentHashLB", "localityLbSetting": "LocalityLoadBalancerSetting",
        "zoneAwareLbSetting": "any", "warmupDurationSecs": "duration", "warmup": "WarmupConfiguration",
    },
    "ConsistentHashLB": {
        "httpHeaderName": "str", "httpCookie": "HTTPCookie", "useSourceIp": "bool",
        "httpQueryParameterName": "str", "ringHash": "RingHash", "maglev": "MagLev", "minimumRingSize": "int",
    },
    "RingHash": {"minimumRingSize": "int"},
    "MagLev": {"tableSize": "int"},
    "HTTPCookie": {"name": "str", "path": "str", "ttl": "duration", "attributes": ["any"]},
    "WarmupConfiguration": {"duration": "duration", "minimumPercent": "double", "aggression": "double"},
    "LocalityLoadBalancerSetting": {
        "distribute": ["LocalityDistribute"], "failover": ["LocalityFailover"], "failoverPriority": ["str"],
        "enabled": "bool",
    },
    "LocalityDistribute": {"from": "str", "to": {"map": "int"}},
    "LocalityFailover": {"from": "str", "to": "str"},
    "ConnectionPoolSettings": {"tcp": "TCPSettings", "http": "HTTPSettings"},
    "TCPSettings": {
        "maxConnections": "int", "connectTimeout": "duration", "tcpKeepalive": "TcpKeepalive",
        "maxConnectionDuration": "duration", "idleTimeout": "duration",
    },
    "TcpKeepalive": {"probes": "int", "time": "duration", "interval": "duration"},
    "HTTPSettings": {
        "http1MaxPendingRequests": "int", "http2MaxRequests": "int", "maxRequestsPerConnection": "int",
        "maxRetries": "int", "idleTimeout": "duration", "h2UpgradePolicy": "enum:DEFAULT|DO_NOT_UPGRADE|UPGRADE",
        "useClientProtocol": "bool", "maxConcurrentStreams": "int", "http2KeepAlive": "any",
    },
    "OutlierDetection": {
        "consecutiveErrors": "int", "splitExternalLocalOriginErrors": "bool",
        "consecutiveLocalOriginFailures": "int", "consecutiveGatewayErrors": "int",
        "consecutive5xxErrors": "int", "interval": "duration", "baseEjectionTime": "duration",
        "maxEjectionPercent": "int", "minHealthPercent": "int", "outlierDetectionHttpErrorCodes": ["int"],
    },
    "ClientTLSSettings": {
        "mode": "enum:DISABLE|SIMPLE|MUTUAL|ISTIO_MUTUAL", "clientCertificate": "str", "privateKey": "str",
        "caCertificates": "str", "credentialName": "str", "subjectAltNames": ["str"], "sni": "str",
        "insecureSkipVerify": "bool", "caCrl": "str",
    },
}

#: protobuf wrapper types (``UInt32Value``, ``BoolValue``, ...) may be written as ``{value: x}``
_WRAPPED = {
    ("OutlierDetection", "consecutiveLocalOriginFailures"), ("OutlierDetection", "consecutiveGatewayErrors"),
    ("OutlierDetection", "consecutive5xxErrors"), ("HTTPRetry", "retryRemoteLocalities"),
    ("HTTPRetry", "retryIgnorePreviousHosts"), ("LocalityLoadBalancerSetting", "enabled"),
    ("HTTPRoute", "mirrorPercent"), ("WarmupConfiguration", "minimumPercent"),
    ("WarmupConfiguration", "aggression"), ("RetryBudget", "percent"),
}

_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))*$")


class SchemaError(ValueError):
    """A field that Istio's schema does not have, or a value of the wrong type.

    Attributes
    ----------
    path
        Where, below the checked node (``http[0].retries.retryOn``).
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(value: Any, message: str, path: str = "") -> None:
    """Check ``value`` against the Istio message ``message``; raise :class:`SchemaError` on the first problem.

    Examples
    --------
    >>> check({"attempts": 3, "retryOn": "5xx"}, "HTTPRetry")
    >>> check({"attempts": 3, "retryon": "5xx"}, "HTTPRetry", "retries")
    Traceback (most recent call last):
    ...
    meshsim.interop._istio_schema.SchemaError: unknown field 'retryon'; did you mean 'retryOn'? (allowed: attempts, perTryTimeout, retryOn, retryRemoteLocalities, retryIgnorePreviousHosts, backoff)
    """
    _check_type(value, message, path, None)


def _check_message(value: Any, message: str, path: str) -> None:
    fields = MESSAGES[message]
    if not isinstance(value, Mapping):
        raise SchemaError(f"{_show(value)} is not a mapping; {message} is a mapping of {', '.join(fields)}", path)
    for key, item in value.items():
        if not isinstance(key, str) or key not in fields:
            hint = suggest(str(key), list(fields))
            if isinstance(key, str) and "_" in key and _camel(key) in fields:
                hint = f"; Kubernetes takes the camelCase {_camel(key)!r}"
            raise SchemaError(f"unknown field {key!r}{hint} (allowed: {', '.join(fields)})", _join(path, str(key)))
        if item is None:
            continue  # an explicit null is an unset field, as Kubernetes reads it
        _check_type(item, fields[key], _join(path, key), (message, key))


def _check_type(value: Any, spec: Any, path: str, owner: tuple[str, str] | None) -> None:
    if owner in _WRAPPED and isinstance(value, Mapping) and set(value) == {"value"}:
        value = value["value"]  # a protobuf wrapper written out
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise SchemaError(f"{_show(value)} is not a list", path)
        for i, item in enumerate(value):
            if item is None:
                raise SchemaError("a list entry is null", _join(path, i))
            _check_type(item, spec[0], _join(path, i), None)
        return
    if isinstance(spec, dict):
        if not isinstance(value, Mapping):
            raise SchemaError(f"{_show(value)} is not a mapping", path)
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaError(f"key {_show(key)} is not a string", path)
            if item is None:
                raise SchemaError("null is not allowed here", _join(path, key))
            _check_type(item, spec["map"], _join(path, key), None)
        return
    if spec in MESSAGES:
        _check_message(value, spec, path)
        return
    if spec == "any":
        return
    if spec == "str":
        if not isinstance(value, str):
            raise SchemaError(f"{_show(value)} is not a string (quote it in YAML)", path)
    elif spec == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{_show(value)} is not an integer", path)
    elif spec == "double":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{_show(value)} is not a number", path)
    elif spec == "bool":
        if not isinstance(value, bool):
            raise SchemaError(f"{_show(value)} is not true or false", path)
    elif spec == "duration":
        if not isinstance(value, str) or not _GO_DURATION.match(value.strip()):
            raise SchemaError(f"{_show(value)} is not a duration; Istio takes strings such as 250ms, 1.5s, 5m", path)
    elif isinstance(spec, str) and spec.startswith("enum:"):
        allowed = spec[5:].split("|")
        if value not in allowed:
            raise SchemaError(f"{_show(value)} is not one of {', '.join(allowed)}{suggest(str(value), allowed)}", path)
    else:  # pragma: no cover - a typo in MESSAGES
        raise AssertionError(f"unknown schema type {spec!r}")
