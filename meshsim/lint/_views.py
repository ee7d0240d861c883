"""What the checks look at, whatever the input: written policy blocks, routes and clusters.

Each reader (scenario, Envoy bootstrap, Istio resources) turns its input into
:class:`Block` objects (a policy as written, with the field path it was
written at), :class:`RouteView` objects (what one route applies) and
:class:`ClusterView` objects (what one cluster applies, with its host count
when the input says it). The checks in :mod:`meshsim.lint._checks` then work
the same on all three, and every finding names the field in the input's own
spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshsim.lint._finding import CODES, Finding, Severity

__all__ = ["Block", "RouteView", "ClusterView", "Report", "spelled"]

#: Envoy field name -> other spellings it may be written in (Istio, App Mesh, proto JSON,
#: or where an Envoy cluster keeps it). Dotted spellings are nested keys.
_ALIASES: dict[str, tuple[str, ...]] = {
    "retry_on": ("retryOn", "httpRetryEvents"),
    "num_retries": ("attempts", "maxRetries"),
    "per_try_timeout": ("perTryTimeout", "perRetryTimeout"),
    "retry_back_off": ("backoff",),
    "fixed_delay": ("fixedDelay",),
    "http_status": ("httpStatus",),
    "percentage": ("percent",),
    "consecutive_5xx": ("consecutive5xxErrors",),
    "consecutive_gateway_failure": ("consecutiveGatewayErrors",),
    "max_ejection_percent": ("maxEjectionPercent",),
    "split_external_local_origin_errors": ("splitExternalLocalOriginErrors",),
    "consecutive_local_origin_failure": ("consecutiveLocalOriginFailures",),
    "base_ejection_time": ("baseEjectionTime",),
    "healthy_panic_threshold": ("minHealthPercent", "common_lb_config.healthy_panic_threshold"),
    "max_retries": ("maxRetries", "http.maxRetries"),
    "retry_budget": ("retryBudget",),
}


def _lookup(node: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _camel(raw: Any) -> bool:
    """Whether a written block uses camelCase keys (Istio's or App Mesh's spelling)."""
    return isinstance(raw, Mapping) and any(isinstance(k, str) and k != k.lower() for k in raw)


def spelled(raw: Any, dotted: str) -> str:
    """``dotted`` (Envoy field names) as written in ``raw``, following :data:`_ALIASES`.

    A field that is not written takes the spelling of its block: Istio's
    name in a camelCase block, Envoy's otherwise.

    Examples
    --------
    >>> spelled({"attempts": 3, "retryOn": "5xx"}, "retry_on")
    'retryOn'
    >>> spelled({"consecutive5xxErrors": 3}, "max_ejection_percent")
    'maxEjectionPercent'
    >>> spelled({"delay": {"fixed_delay": "1s"}}, "delay.percentage")
    'delay.percentage'
    >>> spelled({"abort": {"httpStatus": 503}}, "abort.percentage")
    'abort.percentage'
    """
    out: list[str] = []
    node = raw
    for part in dotted.split("."):
        names = (part, *_ALIASES.get(part, ()))
        chosen = None
        for name in names:
            found, value = _lookup(node, name)
            if found:
                chosen, node = name, value
                break
        if chosen is None:
            camel = [n for n in names[1:] if "." not in n and n != n.lower()]
            chosen = camel[0] if _camel(node) and camel else part
            node = None
        out.append(chosen)
    return ".".join(out)


@dataclass
class Block:
    """A policy as written at one place of the input.

    Parameters
    ----------
    policy
        The policy model (``RetryPolicy``, ``OutlierPolicy``, ...).
    path
        Field path of the block in the input (``"mesh.db.retries"``,
        ``"spec.http[0].retries"``).
    raw
        The block as written (a mapping), for the spelling of its fields.
    names
        Envoy field -> path below the block, when it differs from what
        :func:`spelled` finds (an Envoy cluster keeps the panic threshold in
        ``common_lb_config``).
    """

    policy: Any
    path: str
    raw: Any = None
    names: dict[str, str] = field(default_factory=dict)

    def at(self, dotted: str) -> str:
        """The input path of a field of this block (Envoy name in, input spelling out)."""
        below = self.names.get(dotted) or spelled(self.raw, dotted)
        return f"{self.path}.{below}" if self.path else below


@dataclass
class RouteView:
    """What one route applies.

    Attributes
    ----------
    label
        How messages name the route (``"mesh.reviews.routes[1]"``).
    timeout
        The resolved ``TimeoutPolicy`` (route timeout and the per-try timeouts).
    timeout_block
        Where the route timeout was written, or ``None`` (Envoy's 15 s default).
    per_try_block
        Where ``per_try_timeout`` was written, or ``None``.
    retries
        Where the route's retry policy was written, or ``None`` (no retries).
    inherited_retry_on
        The ``retry_on`` the route would have had from the service (or virtual
        host) had it not written a retry policy of its own; ``""`` when none.
    clusters
        Keys of the clusters the route sends to, with their weights.
    """

    label: str
    timeout: Any
    timeout_block: Block | None = None
    per_try_block: Block | None = None
    retries: Block | None = None
    inherited_retry_on: str = ""
    clusters: dict[str, float] = field(default_factory=dict)


@dataclass
class ClusterView:
    """What one cluster (a destination version, an Envoy cluster, an Istio subset) applies.

    Attributes
    ----------
    key
        The cluster's name in messages (``"backend"``, ``"reviews v2"``).
    hosts
        Number of hosts (endpoints), or ``None`` when the input does not say.
    circuit_breakers
        Block of the ``CircuitBreakerPolicy`` (its ``max_retries``), or ``None`` (Envoy's defaults).
    outlier
        Block of the ``OutlierPolicy``, or ``None`` (no outlier detection).
    load_balancer
        Block of the ``LoadBalancerPolicy`` holding the panic threshold.
    retry_budget
        The ``RetryBudget`` in force, or ``None``.
    """

    key: str
    hosts: int | None
    load_balancer: Block
    circuit_breakers: Block | None = None
    outlier: Block | None = None
    retry_budget: Any = None


@dataclass
class Report:
    """Findings of one input, gathered in order and without repeats."""

    file: str
    document: str | None = None
    findings: list[Finding] = field(default_factory=list)
    _seen: set[tuple[str, str, str | None]] = field(default_factory=set)

    def add(self, code: str, path: str, value: object, message: str, *, effect: str | None = None,
            severity: Severity | None = None, document: str | None = None) -> Finding | None:
        """Record a finding (the first one of a code at a path wins); return it, or ``None`` for a repeat."""
        doc = document if document is not None else self.document
        key = (code, path, doc)
        if key in self._seen:
            return None
        self._seen.add(key)
        finding = Finding(code=code, severity=severity or CODES[code].severity, file=self.file, path=path,
                          value=str(value), message=message, effect=effect, document=doc)
        self.findings.append(finding)
        return finding

    def traps(self, block: Block, traps: list[Any], *, skip: tuple[str, ...] = (),
              severity: Severity | None = None) -> None:
        """Record what a policy module's ``lint()`` said about a written block."""
        for trap in traps:
            if trap.code in skip:
                continue
            self.add(trap.code, block.at(trap.field), trap.value, str(trap), severity=severity)
