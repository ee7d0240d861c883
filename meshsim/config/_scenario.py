"""The scenario models: services, versions, call scripts, traffic, network, mesh.

Every model is a frozen pydantic v2 model that refuses unknown keys (with a
"did you mean" suggestion) and accepts the short spellings of the scenario
file. The cross-field checks (calls to existing services, versions named in
routes and mirrors, mesh subsets, call-graph cycles, warm-up shorter than the
run, ...) run while the :class:`Scenario` is validated, so a :class:`Scenario`
that exists is runnable. A :class:`MeshPolicy` resolves its route and cluster
policies while it is validated, and refuses conflicts between blocks then.

See ``docs/scenario.md`` for the file format with examples.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from meshsim.config._chaos import Fault, check_chaos
from meshsim.config._types import (
    Duration,
    Fraction,
    Name,
    PositiveCount,
    PositiveDuration,
    PositiveRate,
    QueueLimit,
    Rate,
)
from meshsim.latency import Constant, ErrorModel, ErrorSpec, LatencyModel, LatencySpec
from meshsim.policies._model import PolicyModel, refuse, suggest
from meshsim.policies.circuit_breaker import CircuitBreakerPolicy
from meshsim.policies.fault import FaultPolicy, FractionalPercent
from meshsim.policies.health_check import HealthCheckPolicy
from meshsim.policies.load_balancer import ISTIO_DEFAULT_LB_POLICY, LoadBalancerPolicy
from meshsim.policies.outlier import OutlierPolicy
from meshsim.policies.rate_limit import RateLimitPolicy
from meshsim.policies.retry import RetryBudget, RetryPolicy
from meshsim.policies.routing import (
    DEFAULT_VERSION,
    Mirror,
    OptionalRetryPolicy,
    Route,
    RoutingPolicy,
    fold_mirror_percentage,
    istio_hash_drops_previous_hosts,
)
from meshsim.policies.timeout import TimeoutPolicy
from meshsim.units import format_duration, parse_fraction

__all__ = [
    "Call",
    "Parallel",
    "Work",
    "Sleep",
    "Step",
    "STEP_KINDS",
    "Network",
    "VersionSpec",
    "ServiceSpec",
    "ResolvedVersion",
    "ScheduleSegment",
    "TrafficSource",
    "MeshPolicy",
    "TrafficPolicy",
    "Subset",
    "RoutePolicies",
    "ClusterPolicies",
    "EMPTY_MESH_POLICY",
    "DEFAULT_TIMEOUT_POLICY",
    "DEFAULT_CIRCUIT_BREAKERS",
    "DEFAULT_LOAD_BALANCER",
    "Scenario",
    "DEFAULT_NETWORK_LATENCY",
    "DEFAULT_DRAIN",
]

#: one-way network delay per hop leg when ``network.latency`` is not given (100 us)
DEFAULT_NETWORK_LATENCY = 100e-6
#: how long in-flight requests may finish after ``duration`` (seconds)
DEFAULT_DRAIN = 60.0

Concurrency = Literal["blocking", "async"]


def _path(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("/"):
        raise refuse(f"{value!r} is not a request path; it must start with '/'")
    return value


def _method(value: Any) -> Any:
    if isinstance(value, str) and (not value or not value.isalpha()):
        raise refuse(f"{value!r} is not an HTTP method such as GET, POST")
    return value


RequestPath = Annotated[str, BeforeValidator(_path)]
Method = Annotated[str, BeforeValidator(_method)]


def _header_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------------
# script steps



def _named_blocks(value: Any, empty_message: str) -> Any:
    """A mapping name -> block: refused when empty; a ``null`` block means an empty one."""
    if isinstance(value, Mapping):
        if not value:
            raise refuse(empty_message)
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value

class Call(PolicyModel):
    """A call to another service (through the caller's sidecar).

    Written ``- call: details`` or ``- call: {service: reviews, probability: 0.8, ...}``.

    Parameters
    ----------
    service
        The destination service (must exist).
    probability
        The call is made with this probability (a fraction; default 1).
    optional
        If true, a failed call does not fail the caller's request (the caller
        carries on, as Bookinfo's productpage does without reviews).
    path, method
        Request path (default ``/``) and method (default ``GET``), which
        routes may match on.
    headers
        Headers set on the call. The incoming request's headers are always
        forwarded (as Istio applications must forward ``end-user`` and
        tracing headers for header-based routing deeper in the graph to
        work, and Bookinfo does); these are set over them.
    """

    kind: ClassVar[str] = "call"

    service: str
    probability: Fraction = 1.0
    optional: bool = False
    path: RequestPath = "/"
    method: Method = "GET"
    headers: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and set(data) == {"call"}:
            data = data["call"]
        if isinstance(data, str):
            return {"service": data}
        return data

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k).lower(): _header_value(v) for k, v in value.items()}
        return value


class Parallel(PolicyModel):
    """Calls made at once; the step ends when all of them have answered.

    Written ``- parallel: [{call: ratings}, {call: details}]``.

    Parameters
    ----------
    parallel
        The calls (at least one; only calls may run in parallel).
    """

    kind: ClassVar[str] = "parallel"

    parallel: tuple[Call, ...]

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            return {"parallel": data}
        return data

    @field_validator("parallel", mode="before")
    @classmethod
    def _only_calls(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if not value:
                raise refuse("a parallel group needs at least one call")
            for i, item in enumerate(value):
                ok = isinstance(item, Call) or (isinstance(item, Mapping) and set(item) == {"call"})
                if not ok:
                    raise refuse(f"{item!r} is not a call; only calls may run in parallel", f"[{i}]")
        return value

    @property
    def calls(self) -> tuple[Call, ...]:
        """The calls of the group (same as :attr:`parallel`)."""
        return self.parallel


class Work(PolicyModel):
    """The replica works (holds its worker) for one latency draw.

    Written ``- work`` (one draw from the version's own ``latency``) or
    ``- work: 5ms`` (a draw from the given latency spec).

    Parameters
    ----------
    latency
        A latency model, or ``None`` for the version's own ``latency``.
    """

    kind: ClassVar[str] = "work"

    latency: LatencySpec | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if data == "work":
            return {}
        if isinstance(data, Mapping) and set(data) == {"work"}:
            inner = data["work"]
            return {} if inner is None else {"latency": inner}
        return data


class Sleep(PolicyModel):
    """The request waits (a timer, an outside dependency) without doing work.

    Written ``- sleep: 20ms`` (any latency spec). The wait is treated like
    waiting for a call: in ``blocking`` mode the worker stays with the
    request, in ``async`` mode it is free meanwhile.

    Parameters
    ----------
    latency
        How long to wait: a latency model.
    """

    kind: ClassVar[str] = "sleep"

    latency: LatencySpec

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and set(data) == {"sleep"}:
            return {"latency": data["sleep"]}
        return data


#: the step keywords of a script
STEP_KINDS = ("call", "parallel", "work", "sleep")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, (Call, Parallel, Work, Sleep)):
        return value.kind
    if value == "work":
        return "work"
    if isinstance(value, Mapping) and len(value) == 1:
        return str(next(iter(value)))
    return None


def _check_step(value: Any) -> Any:
    if isinstance(value, (Call, Parallel, Work, Sleep)) or value == "work":
        return value
    if isinstance(value, str):
        raise refuse(
            f"{value!r} is not a step{suggest(value, STEP_KINDS)} (a step is one of: {', '.join(STEP_KINDS)})"
        )
    if isinstance(value, Mapping):
        if len(value) != 1:
            keys = ", ".join(repr(k) for k in value)
            raise refuse(
                f"a step is a mapping with one key ({', '.join(STEP_KINDS)}); got {keys}"
                " (write options inside it: call: {service: x, probability: 0.5})"
            )
        key = next(iter(value))
        if key not in STEP_KINDS:
            raise refuse(
                f"{key!r} is not a step{suggest(key, STEP_KINDS)} (a step is one of: {', '.join(STEP_KINDS)})"
            )
        return value
    raise refuse(f"{value!r} is not a step (a step is one of: {', '.join(STEP_KINDS)})")


Step = Annotated[
    Annotated[
        Annotated[Call, Tag("call")]
        | Annotated[Parallel, Tag("parallel")]
        | Annotated[Work, Tag("work")]
        | Annotated[Sleep, Tag("sleep")],
        Discriminator(_step_kind),
    ],
    BeforeValidator(_check_step),
]
"""One script step: :class:`Call`, :class:`Parallel`, :class:`Work` or :class:`Sleep`."""


def _script_calls(script: Sequence[Any], prefix: str) -> list[tuple[str, Call]]:
    """Every call of a script with its path below the service (``script[1].call``)."""
    out: list[tuple[str, Call]] = []
    for i, step in enumerate(script):
        if isinstance(step, Call):
            out.append((f"{prefix}[{i}].call", step))
        elif isinstance(step, Parallel):
            for j, call in enumerate(step.parallel):
                out.append((f"{prefix}[{i}].parallel[{j}].call", call))
    return out


def _has_work(script: Sequence[Any]) -> bool:
    return any(isinstance(step, Work) for step in script)


# --------------------------------------------------------------------------------------------------
# network


class Network(PolicyModel):
    """Network delays between sidecars.

    Parameters
    ----------
    latency
        One-way delay of each hop leg (request and response each pay one
        draw). Default: constant 100 us.
    cross_zone
        Extra one-way delay when caller and callee are in different zones.
        Default: 0.
    """

    latency: LatencySpec = Field(default_factory=lambda: Constant(value=DEFAULT_NETWORK_LATENCY))
    cross_zone: LatencySpec = Field(default_factory=lambda: Constant(value=0.0))


# --------------------------------------------------------------------------------------------------
# services and versions

_OVERRIDABLE = ("replicas", "workers", "queue", "concurrency", "latency", "errors", "zone", "zones", "script")
# a version writing null for these inherits; for queue, errors, zone(s) null is a value (unlimited, none)
_NULL_INHERITS = frozenset({"replicas", "workers", "concurrency", "latency", "script"})


def _zones(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


def _check_zones(value: Any) -> Any:
    value = _zones(value)
    if isinstance(value, (list, tuple)) and not value:
        raise refuse("zones is empty; give at least one zone or leave it out")
    return value


Zones = Annotated[tuple[Name, ...] | None, BeforeValidator(_check_zones)]


class _Deployment(PolicyModel):
    """Fields a service sets and a version may override: the zone check."""

    @model_validator(mode="after")
    def _zone_or_zones(self) -> _Deployment:
        zone, zones = getattr(self, "zone", None), getattr(self, "zones", None)
        if zone is not None and zones is not None:
            raise refuse(f"give either zone ({zone!r}) or zones ({list(zones)!r}), not both", "zones")
        return self


class VersionSpec(_Deployment):
    """A subset of a service's replicas (Istio subset) with its own settings.

    Any field left out is taken from the service. ``labels`` default to
    ``{version: <name>}``. Setting ``zone`` or ``zones`` replaces the
    service's placement entirely.
    """

    labels: dict[str, str] | None = None
    replicas: PositiveCount | None = None
    workers: PositiveCount | None = None
    queue: QueueLimit = None
    concurrency: Concurrency | None = None
    latency: LatencySpec | None = None
    errors: ErrorSpec | None = None
    zone: Name | None = None
    zones: Zones = None
    script: tuple[Step, ...] | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): _header_value(v) for k, v in value.items()}
        return value


@dataclass(frozen=True)
class ResolvedVersion:
    """One version of a service with every setting resolved (what the engine builds).

    Attributes
    ----------
    service, version
        Names (``version`` is ``"default"`` for a service without versions).
    labels
        Pod labels (``{"version": name}`` unless given; ``{}`` for the
        implicit default version).
    replicas, workers
        Replica count and concurrent requests per replica.
    queue
        Waiting room per replica (``None`` = unlimited).
    concurrency
        ``"blocking"`` or ``"async"``.
    latency
        The latency model of one unit of own work.
    errors
        The error model, or ``None``.
    zones
        One zone (or ``None``) per replica index.
    script
        The steps; an implicit ``Work(latency=None)`` comes first when the
        written script has no work step.
    """

    service: str
    version: str
    labels: dict[str, str]
    replicas: int
    workers: int
    queue: int | None
    concurrency: str
    latency: LatencyModel
    errors: ErrorModel | None
    zones: tuple[str | None, ...]
    script: tuple[Call | Parallel | Work | Sleep, ...]


class ServiceSpec(_Deployment):
    """A service: its replicas, capacity, latency, errors, placement and call script.

    Parameters
    ----------
    replicas
        Number of replicas (>= 1, default 1).
    workers
        Concurrent requests one replica serves (>= 1, default 1).
    queue
        Waiting room per replica (>= 0; ``None``/``"unlimited"``, the default,
        for no limit); a request that finds it full is answered 503.
    concurrency
        ``"blocking"`` (default): a worker stays with its request while the
        request waits for its calls; ``"async"``: it is released meanwhile.
    latency
        Own work per request (a latency spec); required unless every version
        sets it.
    errors
        Error model (``0.1%`` or ``{rate: 0.1%, status: 503}``), optional.
    zone, zones
        One zone for all replicas, or zones assigned round-robin by replica
        index (not both).
    script
        The steps a request goes through (default ``[work]``).
    versions
        Optional named subsets, each overriding any of the fields above.
    """

    replicas: PositiveCount = 1
    workers: PositiveCount = 1
    queue: QueueLimit = None
    concurrency: Concurrency = "blocking"
    latency: LatencySpec | None = None
    errors: ErrorSpec | None = None
    zone: Name | None = None
    zones: Zones = None
    script: tuple[Step, ...] | None = None
    versions: dict[Name, VersionSpec] | None = None

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        return _named_blocks(value, "versions is empty; name at least one version or leave it out")

    @model_validator(mode="after")
    def _latency_somewhere(self) -> ServiceSpec:
        if self.latency is None:
            missing = [n for n, v in (self.versions or {}).items() if v.latency is None]
            if self.versions is None:
                raise refuse("latency is required (own work per request), e.g. latency: 20ms", "latency")
            if missing:
                raise refuse(
                    f"latency is required: set it on the service or on every version "
                    f"(no latency for {', '.join(missing)})",
                    "latency",
                )
        return self

    def version_names(self) -> list[str]:
        """The version names as written, or ``["default"]``."""
        return list(self.versions) if self.versions else [DEFAULT_VERSION]

    def resolved_versions(self, name: str) -> dict[str, ResolvedVersion]:
        """Every version with the service's settings filled in, in written order.

        Parameters
        ----------
        name
            The service's name (the key under ``services``).

        Returns
        -------
        dict of str to ResolvedVersion
            ``{"default": ...}`` when the service declares no versions.
        """
        if not self.versions:
            return {DEFAULT_VERSION: self._resolve(name, DEFAULT_VERSION, None)}
        return {vname: self._resolve(name, vname, v) for vname, v in self.versions.items()}

    def _resolve(self, service: str, vname: str, v: VersionSpec | None) -> ResolvedVersion:
        given = v.model_fields_set if v is not None else set()
        values = {
            f: (
                getattr(v, f)
                if f in given and not (f in _NULL_INHERITS and getattr(v, f) is None)
                else getattr(self, f)
            )
            for f in _OVERRIDABLE
        }
        if v is not None and ("zone" in given or "zones" in given):
            values["zone"], values["zones"] = v.zone, v.zones
        replicas = values["replicas"]
        if values["zones"]:
            zs = values["zones"]
            zones: tuple[str | None, ...] = tuple(zs[i % len(zs)] for i in range(replicas))
        else:
            zones = (values["zone"],) * replicas
        script = tuple(values["script"] or ())
        if not _has_work(script):
            script = (Work(), *script)
        if v is None:
            labels: dict[str, str] = {}
        else:
            labels = dict(v.labels) if v.labels is not None else {"version": vname}
        return ResolvedVersion(
            service=service,
            version=vname,
            labels=labels,
            replicas=replicas,
            workers=values["workers"],
            queue=values["queue"],
            concurrency=values["concurrency"],
            latency=values["latency"],
            errors=values["errors"],
            zones=zones,
            script=script,
        )


# --------------------------------------------------------------------------------------------------
# traffic


class ScheduleSegment(PolicyModel):
    """One piece of a rate schedule, ending at ``until`` (seconds from the start).

    Exactly one of ``rate`` (constant) and ``ramp_to`` (linear from the
    previous segment's end rate, or from 0 for the first segment). Rates may
    be 0 here (a pause); the schedule as a whole must offer some traffic.
    """

    until: PositiveDuration
    rate: Rate | None = None
    ramp_to: Rate | None = None

    @model_validator(mode="after")
    def _one_rate(self) -> ScheduleSegment:
        if (self.rate is None) == (self.ramp_to is None):
            raise refuse("give exactly one of rate (constant) and ramp_to (linear ramp)")
        return self


def _headers_table(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out: dict[str, dict[str, float]] = {}
    for name, spec in value.items():
        key = str(name).lower()
        if key in out:
            raise refuse(f"header {name!r} is given twice (names are case-insensitive)")
        if isinstance(spec, Mapping):
            table: dict[str, float] = {}
            for v, freq in spec.items():
                try:
                    table[str(_header_value(v))] = parse_fraction(freq)
                except ValueError as exc:
                    raise refuse(str(exc), f"{name}.{v}") from None
            total = sum(table.values())
            if total > 1.0 + 1e-9:
                shown = ", ".join(f"{k}: {f:g}" for k, f in table.items())
                raise refuse(
                    f"frequencies {{{shown}}} sum to {total:g} > 1; they must sum to at most 1 "
                    "(the rest of the requests carry no such header)",
                    str(name),
                )
            out[key] = table
        elif spec is None:
            raise refuse(
                f"header {name!r} has no value; give a value or a table {{value: fraction}}", str(name)
            )
        else:
            out[key] = {str(_header_value(spec)): 1.0}
    return out


class TrafficSource(PolicyModel):
    """Clients sending requests to an entry service.

    Open loop (``rate`` or ``schedule``): arrivals regardless of how the
    system answers. Closed loop (``users``): each user sends, waits for the
    response, thinks, and sends again.

    Parameters
    ----------
    name
        Name of the source (default ``traffic-<i>``, or the mapping key).
    to
        Entry service.
    rate
        Constant rate (requests per second, > 0).
    schedule
        Piecewise rate: :class:`ScheduleSegment` list with increasing
        ``until``; after the last segment the last rate holds.
    users
        Closed-loop users (>= 1).
    think
        Think time between a response and the user's next request (latency
        spec; default none).
    arrivals
        ``"poisson"`` (default) or ``"uniform"`` (evenly spaced); open loop only.
    path, method
        Request path (default ``/``) and method (default ``GET``).
    headers
        Header name (lower-cased) -> {value: frequency}. A plain value means
        frequency 1; frequencies sum to at most 1, and the rest of the
        requests go without the header.
    zone
        The clients' zone (for cross-zone delay to the entry service);
        default none (no cross-zone delay).
    """

    name: Name = ""  # filled by Scenario
    to: str
    rate: PositiveRate | None = None
    schedule: tuple[ScheduleSegment, ...] | None = None
    users: PositiveCount | None = None
    think: LatencySpec | None = None
    arrivals: Literal["poisson", "uniform"] = "poisson"
    path: RequestPath = "/"
    method: Method = "GET"
    headers: dict[str, dict[str, float]] = Field(default_factory=dict)
    zone: Name | None = None

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        return _headers_table(value)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_list(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and not value:
            raise refuse("schedule is empty; give at least one segment")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> TrafficSource:
        kinds = [k for k in ("rate", "schedule", "users") if getattr(self, k) is not None]
        if len(kinds) != 1:
            got = "none" if not kinds else " and ".join(kinds)
            raise refuse(f"give exactly one of rate, schedule (open loop) or users (closed loop); got {got}")
        if self.users is not None and "arrivals" in self.model_fields_set:
            raise refuse("arrivals applies to open-loop sources (rate or schedule), not to users", "arrivals")
        if self.users is None and self.think is not None:
            raise refuse("think applies to closed-loop sources (users), not to rate or schedule", "think")
        if self.schedule is not None:
            last = 0.0
            for i, seg in enumerate(self.schedule):
                if seg.until <= last:
                    raise refuse(
                        f"until {seg.until:g}s must be later than the previous segment's end ({last:g}s)",
                        f"schedule[{i}].until",
                    )
                last = seg.until
            if not any((seg.rate or seg.ramp_to or 0) > 0 for seg in self.schedule):
                raise refuse("every segment has rate 0; a schedule must offer some traffic", "schedule")
        return self

    @property
    def closed_loop(self) -> bool:
        """True for a ``users`` source."""
        return self.users is not None

    def segments(self, duration: float) -> list[tuple[float, float, float, float]]:
        """The open-loop rate as ``(t0, t1, r0, r1)`` pieces covering ``[0, duration)``.

        The rate goes linearly from ``r0`` at ``t0`` to ``r1`` at ``t1``. A
        constant ``rate`` is one piece; a schedule is cut at ``duration`` and
        its last rate held until then. Empty for a closed-loop source.
        """
        if self.rate is not None:
            return [(0.0, duration, self.rate, self.rate)]
        if self.schedule is None:
            return []
        out: list[tuple[float, float, float, float]] = []
        t, r = 0.0, 0.0
        for seg in self.schedule:
            if t >= duration:
                break
            until = min(seg.until, duration)
            if seg.ramp_to is not None:
                r1 = seg.ramp_to
                # a ramp cut at the end of the run stops at the rate it had reached
                r1_cut = r + (r1 - r) * (until - t) / (seg.until - t)
                out.append((t, until, r, r1_cut))
                r = r1
            else:
                assert seg.rate is not None
                r = seg.rate
                out.append((t, until, r, r))
            t = until
        if t < duration:
            out.append((t, duration, r, r))
        return out

    def rate_at(self, t: float, duration: float = math.inf) -> float:
        """The open-loop rate (per second) at time ``t``; 0 outside the run or for ``users``."""
        for t0, t1, r0, r1 in self.segments(duration):
            if t0 <= t < t1:
                return r0 if r0 == r1 else r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return 0.0


# --------------------------------------------------------------------------------------------------
# mesh

#: What a route gets when no ``timeout`` is written: Envoy's 15 s route timeout, no per-try timeout.
DEFAULT_TIMEOUT_POLICY = TimeoutPolicy()
#: What a cluster gets when no ``circuit_breakers`` is written: Envoy's thresholds (1024/1024/1024/3).
DEFAULT_CIRCUIT_BREAKERS = CircuitBreakerPolicy()
#: What a cluster gets when no ``load_balancer`` is written: Envoy's ROUND_ROBIN, panic threshold 50 %.
DEFAULT_LOAD_BALANCER = LoadBalancerPolicy()

_ROUTE_FIELDS = ("timeout", "retries", "fault", "mirror")
_CLUSTER_FIELDS = ("circuit_breakers", "outlier_detection", "load_balancer", "health_check")


@dataclass(frozen=True)
class RoutePolicies:
    """The policies one route applies, resolved (what the engine builds a route from).

    Returned by :meth:`MeshPolicy.route_policies`. A block written on the route
    replaces the service-level block of the same name, whole; a block written
    nowhere gets Envoy's default.

    Attributes
    ----------
    timeout
        :class:`~meshsim.policies.timeout.TimeoutPolicy`: the route timeout
        (Envoy's **15 s** when none is written; 0 = disabled) **and the
        route's one per-try (idle) timeout**, whichever block it was written in
        (``timeout.per_try_timeout`` or ``retries.per_try_timeout`` /
        Istio ``retries.perTryTimeout``; Envoy has a single
        ``retry_policy.per_try_timeout``). Build the
        :class:`~meshsim.policies.timeout.TimeoutState` from this alone.
    retries
        :class:`~meshsim.policies.retry.RetryPolicy`, or ``None``: no retry
        policy, nothing is retried (also Istio's ``attempts: 0``). A policy
        whose ``retry_on`` is empty is not ``active`` and retries nothing
        either. Its ``retry_budget`` belongs to the cluster: read
        :attr:`ClusterPolicies.retry_budget`.
    fault
        :class:`~meshsim.policies.fault.FaultPolicy`, or ``None``.
    mirror
        :class:`~meshsim.policies.routing.Mirror` (``version``, ``fraction``
        in [0, 1], ``enabled(u)``), or ``None``.
    """

    timeout: TimeoutPolicy
    retries: RetryPolicy | None
    fault: FaultPolicy | None
    mirror: Mirror | None


@dataclass(frozen=True)
class ClusterPolicies:
    """The policies of one cluster (a version of the destination service), resolved.

    Returned by :meth:`MeshPolicy.cluster_policies`. A block written under
    ``versions.<v>`` (Istio ``subsets[].trafficPolicy``) replaces the
    service-level block of the same name, whole.

    Attributes
    ----------
    circuit_breakers
        :class:`~meshsim.policies.circuit_breaker.CircuitBreakerPolicy`;
        Envoy's defaults (1024 connections / pending / requests, 3 retries)
        when none is written.
    outlier_detection
        :class:`~meshsim.policies.outlier.OutlierPolicy`, or ``None`` (no
        outlier detection).
    load_balancer
        :class:`~meshsim.policies.load_balancer.LoadBalancerPolicy`; Envoy's
        ROUND_ROBIN with a 50 % panic threshold when none is written. As
        istiod writes the cluster: when the outlier block carries a panic
        threshold (Istio's ``minHealthPercent``, 0 unless given, with Istio's
        spelling) it is applied here; ``locality_lb`` failover is kept only
        when the cluster has outlier detection (``distribute`` always), and a
        disabled ``locality_lb`` is dropped.
    health_check
        :class:`~meshsim.policies.health_check.HealthCheckPolicy`, or ``None``.
    retry_budget
        The cluster's :class:`~meshsim.policies.retry.RetryBudget` (from the
        ``retries`` blocks of the routes that send to this version), or
        ``None``: ``circuit_breakers.max_retries`` limits concurrent retries.
    """

    circuit_breakers: CircuitBreakerPolicy
    outlier_detection: OutlierPolicy | None
    load_balancer: LoadBalancerPolicy
    health_check: HealthCheckPolicy | None
    retry_budget: RetryBudget | None = None


#: Keys that make a load-balancer mapping Istio's ``LoadBalancerSettings``.
_ISTIO_LB_KEYS = ("simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup")


def _istio_cluster_blocks(data: Any) -> Any:
    """Read blocks written under Istio's keys as Istio's, even when their content alone would not say so.

    The policy modules recognise Istio's spelling by the keys inside a block;
    a block under ``connectionPool``, ``outlierDetection`` or ``loadBalancer``
    is Istio's whatever it holds, and istiod's translation of it applies:
    ``connectionPool: {}`` still gets Istio's thresholds, ``outlierDetection:
    {}`` (or only ``interval``) still turns success-rate ejection and panic
    off, and a load balancer in Istio's spelling without ``simple`` or
    ``consistentHash`` is LEAST_REQUEST (istiod's ``UNSPECIFIED``).
    """
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    cp = data.get("connectionPool")
    if isinstance(cp, Mapping) and not cp:
        out["connectionPool"] = {"tcp": {}}
    od = data.get("outlierDetection")
    if isinstance(od, Mapping) and set(od) <= {"interval"}:
        out["outlierDetection"] = {**od, "minHealthPercent": 0}  # Istio's default, spelled out
    for key in ("loadBalancer", "load_balancer"):
        lb = data.get(key)
        if not isinstance(lb, Mapping) or not (key == "loadBalancer" or any(k in lb for k in _ISTIO_LB_KEYS)):
            continue
        if lb.get("simple") == "UNSPECIFIED":
            lb = {k: v for k, v in lb.items() if k != "simple"}
        if not any(k in lb for k in ("simple", "consistentHash", "lb_policy", "type")):
            lb = {**lb, "lb_policy": ISTIO_DEFAULT_LB_POLICY}
        out[key] = lb
    return out


class TrafficPolicy(PolicyModel):
    """The cluster policies of a version (Istio ``DestinationRule`` ``trafficPolicy``).

    Used for ``mesh.<svc>.versions.<v>``, for Istio's
    ``subsets[].trafficPolicy`` and for the service-level ``trafficPolicy``
    wrapper.

    Parameters
    ----------
    circuit_breakers
        :class:`~meshsim.policies.circuit_breaker.CircuitBreakerPolicy`
        (also Istio's ``connectionPool``).
    outlier_detection
        :class:`~meshsim.policies.outlier.OutlierPolicy` (also ``outlierDetection``).
    load_balancer
        :class:`~meshsim.policies.load_balancer.LoadBalancerPolicy` (also ``loadBalancer``).
    health_check
        :class:`~meshsim.policies.health_check.HealthCheckPolicy`.

    Notes
    -----
    Under ``versions``, a key written (even as ``null``) replaces the
    service-level block; ``null`` means "none for this version" (Envoy's
    defaults for circuit breakers and load balancing).
    """

    circuit_breakers: CircuitBreakerPolicy | None = None
    outlier_detection: OutlierPolicy | None = None
    load_balancer: LoadBalancerPolicy | None = None
    health_check: HealthCheckPolicy | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {
        "connectionPool": "circuit_breakers",
        "outlierDetection": "outlier_detection",
        "loadBalancer": "load_balancer",
    }

    @classmethod
    def _expand(cls, data: Any) -> Any:
        return _istio_cluster_blocks(data)


class Subset(PolicyModel):
    """An Istio ``DestinationRule`` subset: a version and its cluster policies.

    Parameters
    ----------
    name
        The version (it must exist in the service).
    labels
        Optional; they must select exactly that version's replicas (the
        version's labels, ``{version: <name>}`` unless it sets its own).
    traffic_policy
        :class:`TrafficPolicy` of the subset (``trafficPolicy``).
    """

    name: Name
    labels: dict[str, str] | None = None
    traffic_policy: TrafficPolicy | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {"trafficPolicy": "traffic_policy"}

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): _header_value(v) for k, v in value.items()}
        return value


def _revalidated(policy: Any, **updates: Any) -> Any:
    """A copy of a policy model with fields replaced, validated again (so derived state is rebuilt)."""
    return type(policy).model_validate({**policy.model_dump(exclude_unset=True), **updates})


class MeshPolicy(PolicyModel):
    """Mesh policies for one destination service (Istio VirtualService and DestinationRule).

    Build it through the scenario (``mesh.<service>``); the engine reads it
    through :meth:`route_policies`, :meth:`cluster_policies`,
    :attr:`rate_limit` and :attr:`has_policies`.

    Parameters
    ----------
    routes
        Ordered :class:`~meshsim.policies.routing.Route` list (first match
        wins), each with optional route-level ``timeout``, ``retries``,
        ``fault``, ``mirror``; also accepted under Istio's key ``http``.
        Empty: requests are spread over all the service's replicas.
    timeout, retries, fault, mirror
        Service-level defaults for every route (and for the implicit route of
        a service without routes): :class:`~meshsim.policies.timeout.TimeoutPolicy`,
        :class:`~meshsim.policies.retry.RetryPolicy`,
        :class:`~meshsim.policies.fault.FaultPolicy`,
        :class:`~meshsim.policies.routing.Mirror` (Istio's
        ``mirrorPercentage`` next to ``mirror`` is read into it).
    circuit_breakers, outlier_detection, load_balancer, health_check
        Cluster policies for every version of the service (Istio spellings
        ``connectionPool``, ``outlierDetection``, ``loadBalancer``; they may
        be wrapped in ``trafficPolicy``).
    rate_limit
        :class:`~meshsim.policies.rate_limit.RateLimitPolicy`: a local rate
        limit on the destination's **inbound** sidecars (one bucket per
        replica).
    versions
        Version -> :class:`TrafficPolicy` overriding the cluster policies for
        that version; Istio's ``subsets: [{name, labels, trafficPolicy}]`` is
        read into it.
    istio
        Istio fields that do not change what is simulated (TLS settings, CORS,
        header rewrites, resource metadata, ...), kept as written so that
        ``meshsim export istio`` writes them back; ``meshsim import istio``
        fills it (see :mod:`meshsim.interop.istio`). Not read by the engine.

    Notes
    -----
    Defaults are Envoy's: a block left out means no such policy, or Envoy's
    default one (route timeout 15 s, circuit breakers 1024/1024/1024/3,
    ROUND_ROBIN). Istio's defaults for blocks that are *absent* (no route
    timeout, its default retry policy, LEAST_REQUEST, 4294967295 thresholds)
    are the Istio importer's business, not the scenario's.

    A block in Istio's spelling (written under ``connectionPool``,
    ``outlierDetection``, ``loadBalancer``, or using Istio's field names such
    as ``attempts``, ``consecutive5xxErrors``, ``simple``) is translated as
    istiod translates that block, in-block defaults included: each is
    validated by its policy module, which reads Istio's spelling (retries:
    Istio's ``retryOn`` default and previous-hosts predicate, ``attempts: 0``
    = no policy; connectionPool: 4294967295 thresholds, 10 s connect
    timeout; outlierDetection: success-rate ejection off, panic threshold
    ``minHealthPercent``); a load balancer without ``simple`` or
    ``consistentHash`` is LEAST_REQUEST. istiod's cross-block rules are
    applied on resolution: the outlier block's panic threshold goes into the
    load balancer; locality failover is kept only with outlier detection; an
    Istio-spelled ``retries`` block loses its previous-hosts predicate on a
    route whose one destination uses consistent hashing (unless it sets
    ``retryIgnorePreviousHosts``).

    The resolved objects are computed, and every conflict refused, during
    validation. Build a changed policy by validating again (or with
    ``apply_overrides``), not with ``model_copy(update=...)``, which would
    keep the old resolution.

    Spellings are equal: the Istio form (``trafficPolicy``, ``subsets``,
    ``connectionPool``, ...) and the meshsim form of the same policies give
    equal ``MeshPolicy`` objects.
    """

    routes: tuple[Route, ...] = ()
    timeout: TimeoutPolicy | None = None
    retries: OptionalRetryPolicy = None
    fault: FaultPolicy | None = None
    mirror: Mirror | None = None
    circuit_breakers: CircuitBreakerPolicy | None = None
    outlier_detection: OutlierPolicy | None = None
    load_balancer: LoadBalancerPolicy | None = None
    health_check: HealthCheckPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    versions: dict[Name, TrafficPolicy] = Field(default_factory=dict)
    istio: dict[str, Any] | None = Field(default=None, repr=False)
    # other spellings, folded into the fields above during validation
    traffic_policy: TrafficPolicy | None = Field(default=None, repr=False)
    subsets: tuple[Subset, ...] = Field(default=(), repr=False)
    mirror_percentage: FractionalPercent | None = Field(default=None, repr=False)

    _synonyms: ClassVar[Mapping[str, str]] = {
        "http": "routes",
        "connectionPool": "circuit_breakers",
        "outlierDetection": "outlier_detection",
        "loadBalancer": "load_balancer",
        "trafficPolicy": "traffic_policy",
        "mirrorPercentage": "mirror_percentage",
        "mirror_percent": "mirror_percentage",
    }

    _hash_drops_previous_hosts: bool = PrivateAttr(default=False)
    # where things were written, for error paths: version -> "versions.v1" | "subsets[0]";
    # service-level cluster block -> "circuit_breakers" | "traffic_policy.circuit_breakers"
    _version_paths: dict[str, str] = PrivateAttr(default_factory=dict)
    _block_paths: dict[str, str] = PrivateAttr(default_factory=dict)
    _subset_labels: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)
    # resolution results, computed (and checked) while validating
    _route_results: tuple[RoutePolicies, ...] = PrivateAttr(default=())
    _implicit_route: RoutePolicies | None = PrivateAttr(default=None)
    _cluster_bases: dict[str | None, ClusterPolicies] = PrivateAttr(default_factory=dict)
    _budgets: dict[str, RetryBudget] = PrivateAttr(default_factory=dict)
    _clusters: dict[str | None, ClusterPolicies] = PrivateAttr(default_factory=dict)

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            return {"routes": data}
        return _istio_cluster_blocks(data)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_spelling(cls, data: Any, handler: Any) -> MeshPolicy:
        policy = handler(data)
        if isinstance(data, Mapping) and istio_hash_drops_previous_hosts(data.get("retries")):
            policy._hash_drops_previous_hosts = True
            if policy._implicit_route is not None:  # already resolved without the flag
                policy._resolve()
        return policy

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _fold_and_resolve(self) -> MeshPolicy:
        fold_mirror_percentage(self)
        self._fold_traffic_policy()
        self._fold_subsets()
        self._resolve()
        return self

    # ---- other spellings -------------------------------------------------------------------------
    def _fold_traffic_policy(self) -> None:
        tp = self.traffic_policy
        if tp is None:
            return
        for name in _CLUSTER_FIELDS:
            if name not in tp.model_fields_set:
                continue
            if name in self.model_fields_set:
                raise refuse(
                    "this block is also given directly under the service; give it once "
                    "(either at the top or under trafficPolicy)",
                    f"traffic_policy.{name}",
                )
            self.__dict__[name] = getattr(tp, name)
            self._block_paths[name] = f"traffic_policy.{name}"
        self.__dict__["traffic_policy"] = None

    def _fold_subsets(self) -> None:
        versions: dict[str, TrafficPolicy] = {}
        paths: dict[str, str] = {}
        for vname, block in self.versions.items():
            paths[vname] = f"versions.{vname}"
            if block.model_fields_set:
                versions[vname] = block
        for i, subset in enumerate(self.subsets):
            if subset.name in paths:
                raise refuse(
                    f"subset {subset.name!r} is given twice (also at {paths[subset.name]}); give it once",
                    f"subsets[{i}].name",
                )
            paths[subset.name] = f"subsets[{i}]"
            if subset.labels is not None:
                self._subset_labels[subset.name] = dict(subset.labels)
            tp = subset.traffic_policy
            if tp is not None and tp.model_fields_set:
                versions[subset.name] = tp
        self.__dict__["versions"] = versions
        self.__dict__["subsets"] = ()
        self._version_paths = paths

    # ---- resolution ------------------------------------------------------------------------------
    def _resolve(self) -> None:
        """Compute (and check) what every route and cluster resolves to."""
        self._cluster_bases = {v: self._cluster_base(v) for v in (None, *self.versions)}
        self._clusters = {}
        self._route_results = tuple(self._route(i) for i in range(len(self.routes)))
        self._implicit_route = self._route(None)
        self._budgets = self._retry_budgets()

    def _base_of(self, version: str | None) -> ClusterPolicies:
        return self._cluster_bases[version if version in self.versions else None]

    def _cluster_base(self, version: str | None) -> ClusterPolicies:
        block = self.versions.get(version) if version is not None else None
        where = ""
        if block is not None and version is not None:
            written = self._version_paths.get(version, f"versions.{version}")
            where = f"{written}.traffic_policy." if written.startswith("subsets") else f"{written}."

        def pick(name: str) -> tuple[Any, str]:
            if block is not None and name in block.model_fields_set:
                return getattr(block, name), f"{where}{name}"
            return getattr(self, name), self._block_paths.get(name, name)

        cb, _ = pick("circuit_breakers")
        od, od_at = pick("outlier_detection")
        lb, lb_at = pick("load_balancer")
        hc, _ = pick("health_check")
        if od is not None and od.healthy_panic_threshold is not None:
            panic = od.healthy_panic_threshold
            if lb is None:
                lb = DEFAULT_LOAD_BALANCER.model_copy(update={"healthy_panic_threshold": panic})
            elif "healthy_panic_threshold" not in lb.model_fields_set:
                lb = lb.model_copy(update={"healthy_panic_threshold": panic})
            elif lb.healthy_panic_threshold != panic:
                raise refuse(
                    f"healthy_panic_threshold {lb.healthy_panic_threshold:g} differs from the outlier block's "
                    f"{panic:g} ({od_at}: Istio's minHealthPercent, 0 unless given); the cluster has one "
                    "panic threshold: give it once",
                    f"{lb_at}.healthy_panic_threshold",
                )
        lb = lb if lb is not None else DEFAULT_LOAD_BALANCER
        locality = lb.locality_lb
        if locality is not None and (not locality.enabled or od is None):
            # istiod writes locality priorities only when enabled, and failover only with outlier detection
            if locality.enabled and locality.distribute:
                lb = lb.model_copy(update={"locality_lb": locality.model_copy(update={"failover": ()})})
            else:
                lb = lb.model_copy(update={"locality_lb": None})
        return ClusterPolicies(
            circuit_breakers=cb if cb is not None else DEFAULT_CIRCUIT_BREAKERS,
            outlier_detection=od,
            load_balancer=lb,
            health_check=hc,
        )

    def _route(self, index: int | None) -> RoutePolicies:
        route = self.routes[index] if index is not None else None
        own = route.policy_fields if route is not None else frozenset()
        here = f"routes[{index}]." if route is not None else ""

        def pick(name: str) -> tuple[Any, str]:
            if route is not None and name in own:
                return getattr(route, name), f"{here}{name}"
            return getattr(self, name), name

        timeout, timeout_at = pick("timeout")
        retries, retries_at = pick("retries")
        fault, _ = pick("fault")
        mirror, _ = pick("mirror")
        # Envoy has one retry_policy.per_try_timeout (and per_try_idle_timeout): one value per route
        updates: dict[str, float] = {}
        for field in ("per_try_timeout", "per_try_idle_timeout"):
            a = float(getattr(timeout, field)) if timeout is not None else 0.0
            b = float(getattr(retries, field)) if retries is not None else 0.0
            if a and b and a != b:
                at = timeout_at if retries_at == "retries" else retries_at  # the route's own block if any
                raise refuse(
                    f"{field} is given twice with different values ({a:g}s at {timeout_at}, {b:g}s at "
                    f"{retries_at}); Envoy has one retry_policy.{field} per route: give it once",
                    f"{at}.{field}",
                )
            if b and not a:
                updates[field] = b
        resolved_timeout = timeout if timeout is not None else DEFAULT_TIMEOUT_POLICY
        if updates:
            resolved_timeout = resolved_timeout.model_copy(update=updates)
        # istiod: an Istio-spelled retries block loses previous_hosts on a consistent-hash destination
        drops = (
            route.hash_drops_previous_hosts
            if route is not None and "retries" in own
            else self._hash_drops_previous_hosts
        )
        if drops and retries is not None and retries.previous_hosts:
            if route is None:
                hashing = self._base_of(None).load_balancer.is_hashing
            elif len(route.destinations) == 1:
                hashing = self._base_of(route.destinations[0].version).load_balancer.is_hashing
            else:
                hashing = False  # Istio sets a hash policy only on a route with one destination
            if hashing:
                retries = _revalidated(retries, retry_host_predicate=())
        return RoutePolicies(timeout=resolved_timeout, retries=retries, fault=fault, mirror=mirror)

    def _retry_budgets(self) -> dict[str, RetryBudget]:
        """Version (``"*"``: every version, for the implicit route) -> the retry budget in force."""
        out: dict[str, tuple[RetryBudget, str]] = {}
        targets: list[tuple[RoutePolicies, Route | None, int | None]]
        if self.routes:
            targets = [(self._route_results[i], r, i) for i, r in enumerate(self.routes)]
        else:
            targets = [(self.route_policies(None), None, None)]
        for rp, route, i in targets:
            budget = rp.retries.retry_budget if rp.retries is not None else None
            if budget is None or not budget.in_force:
                continue
            own = route is not None and "retries" in route.policy_fields
            where = f"routes[{i}].retries.retry_budget" if own else "retries.retry_budget"
            names = [d.version for d in route.destinations] if route is not None else ["*"]
            for v in names:
                prev = out.get(v)
                if prev is None:
                    out[v] = (budget, where)
                elif (prev[0].percent, prev[0].min_concurrency) != (budget.percent, budget.min_concurrency):
                    raise refuse(
                        f"the retry budget differs from the one at {prev[1]} for version {v!r}; a retry "
                        "budget belongs to the cluster (the version), so every route sending to it must "
                        "give the same one, or none",
                        where,
                    )
        return {v: b for v, (b, _) in out.items()}

    # ---- the engine's view -----------------------------------------------------------------------
    def route_policies(self, route_index: int | None) -> RoutePolicies:
        """The timeout, retries, fault and mirror of one route.

        Parameters
        ----------
        route_index
            Index in :attr:`routes` (as :meth:`~meshsim.policies.routing.Router.match`
            returns it), or ``None`` for the implicit route of a service
            without routes.

        Returns
        -------
        RoutePolicies
            Route-level blocks over the service-level ones, Envoy's defaults
            for the rest. The same object on every call.

        Raises
        ------
        IndexError
            ``route_index`` is not a route.
        """
        if route_index is None:
            assert self._implicit_route is not None
            return self._implicit_route
        if not 0 <= route_index < len(self._route_results):
            raise IndexError(
                f"route index {route_index} is out of range (routes: {len(self._route_results)})"
            )
        return self._route_results[route_index]

    def cluster_policies(self, version: str | None) -> ClusterPolicies:
        """The circuit breakers, outlier detection, load balancing, health check and retry budget of a version.

        Parameters
        ----------
        version
            The version (cluster); ``None`` for the service-level policies
            (what a version without its own block gets; the retry budget is
            the implicit route's).

        Returns
        -------
        ClusterPolicies
            Per-version blocks over the service-level ones, Envoy's defaults
            for the rest. The same object on every call for a version.
        """
        out = self._clusters.get(version)
        if out is None:
            budget = (
                self._budgets.get("*")
                if version is None
                else self._budgets.get(version, self._budgets.get("*"))
            )
            out = dataclasses.replace(self._base_of(version), retry_budget=budget)
            self._clusters[version] = out
        return out

    @property
    def has_policies(self) -> bool:
        """True when anything beyond plain routing is set (the engine's fast path needs False)."""
        if any(getattr(self, f) is not None for f in (*_ROUTE_FIELDS, *_CLUSTER_FIELDS, "rate_limit")):
            return True
        if self.versions:
            return True
        return any(getattr(r, f) is not None for r in self.routes for f in r.policy_fields)

    def routing_policy(self) -> RoutingPolicy:
        """The routes as a :class:`~meshsim.policies.routing.RoutingPolicy` (for ``Router``)."""
        return RoutingPolicy(routes=self.routes)

    def __eq__(self, other: object) -> bool:
        # equal content and equal resolution, whatever the spelling (an Istio-spelled retries block
        # resolves differently only on a consistent-hash destination)
        if not isinstance(other, MeshPolicy):
            return NotImplemented
        return (
            self.__dict__ == other.__dict__
            and self._route_results == other._route_results
            and self._implicit_route == other._implicit_route
        )

    __hash__ = None  # type: ignore[assignment]


#: The policy of a destination service without a ``mesh:`` entry.
EMPTY_MESH_POLICY = MeshPolicy()


# --------------------------------------------------------------------------------------------------
# scenario


def _seed(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise refuse(f"{value!r} is not a seed; expected an integer >= 0")
    return value


Seed = Annotated[int, BeforeValidator(_seed)]


def _traffic_list(value: Any) -> Any:
    """Accept a mapping name -> source, and give every source a name."""
    if isinstance(value, Mapping):
        items = []
        for key, src in value.items():
            if isinstance(src, Mapping):
                if "name" in src and src["name"] != key:
                    raise refuse(
                        f"source {key!r} has a different name {src['name']!r}; leave name out", str(key)
                    )
                src = {"name": key, **src}
            items.append(src)
        value = items
    if isinstance(value, (list, tuple)):
        if not value:
            raise refuse("traffic is empty; give at least one source")
        out = []
        for i, src in enumerate(value):
            if isinstance(src, Mapping) and src.get("name") is None:
                src = {**src, "name": f"traffic-{i}"}
            out.append(src)
        return out
    return value


class Scenario(PolicyModel):
    """A complete, validated simulation scenario.

    Build one with :func:`meshsim.config.load_scenario` (a YAML file) or
    :func:`meshsim.config.parse_scenario` (a mapping); both raise
    :class:`meshsim.ConfigError` with the field path on bad input.

    Parameters
    ----------
    name, description
        Identification.
    seed
        Base seed (>= 0, default 0).
    duration
        Traffic is generated for this long (seconds, > 0).
    warmup
        Requests starting before this are left out of statistics (< duration).
    drain
        After ``duration``, in-flight requests may finish for this long
        (default 60 s); then the run stops.
    replications
        Independent replications (>= 1).
    max_depth
        Maximum call depth (the entry service is at depth 1); a call that
        would go deeper is not made. Required when the call graph has a cycle.
    record
        ``"full"`` (per-request rows) or ``"summary"`` (streaming statistics).
    network
        :class:`Network` delays.
    services
        Service name -> :class:`ServiceSpec`.
    traffic
        :class:`TrafficSource` list (a mapping name -> source is accepted).
    mesh
        Destination service -> :class:`MeshPolicy`.
    chaos
        Faults on a timeline (``meshsim.config.Crash``, ``LatencyFault``, ...;
        see :mod:`meshsim.config._chaos`), in the order written.
    """

    name: str
    description: str | None = None
    seed: Seed = 0
    duration: PositiveDuration
    warmup: Duration = 0.0
    drain: Duration = DEFAULT_DRAIN
    replications: PositiveCount = 1
    max_depth: PositiveCount | None = None
    record: Literal["full", "summary"] = "full"
    network: Network = Field(default_factory=Network)
    services: dict[Name, ServiceSpec]
    traffic: tuple[TrafficSource, ...]
    mesh: dict[str, MeshPolicy] = Field(default_factory=dict)
    chaos: tuple[Fault, ...] = ()

    _raw: Any = PrivateAttr(default=None)
    _source: str = PrivateAttr(default="<scenario>")

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: Any) -> Scenario:
        scenario = handler(data)
        if isinstance(data, Mapping) and scenario._raw is None:
            # the input as written: overrides edit it and errors name paths in it
            scenario._raw = copy.deepcopy(dict(data))
        return scenario

    @field_validator("services", mode="before")
    @classmethod
    def _services(cls, value: Any) -> Any:
        return _named_blocks(value, "services is empty; define at least one service")

    @field_validator("traffic", mode="before")
    @classmethod
    def _traffic(cls, value: Any) -> Any:
        return _traffic_list(value)

    @field_validator("mesh", mode="before")
    @classmethod
    def _mesh(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("chaos", mode="before")
    @classmethod
    def _chaos(cls, value: Any) -> Any:
        return () if value is None else value

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        if self.warmup >= self.duration:
            raise refuse(
                f"{format_duration(self.warmup)} must be shorter than duration ({format_duration(self.duration)})",
                "warmup",
            )
        services = list(self.services)
        # traffic
        seen: set[str] = set()
        for i, src in enumerate(self.traffic):
            if src.name in seen:
                raise refuse(
                    f"source name {src.name!r} is used twice; names must be unique", f"traffic[{i}].name"
                )
            seen.add(src.name)
            if src.to not in self.services:
                raise refuse(
                    f"{src.to!r} is not a service{suggest(src.to, services)} (services: {', '.join(services)})",
                    f"traffic[{i}].to",
                )
        # calls
        for sname, spec in self.services.items():
            for where, script in _scripts(sname, spec):
                for path, call in _script_calls(script, where):
                    if call.service not in self.services:
                        raise refuse(
                            f"{call.service!r} is not a service{suggest(call.service, services)}"
                            f" (services: {', '.join(services)})",
                            path,
                        )
        # mesh
        for dest, policy in self.mesh.items():
            if dest not in self.services:
                raise refuse(
                    f"{dest!r} is not a service{suggest(dest, services)}"
                    f" (mesh keys are destination services: {', '.join(services)})",
                    f"mesh.{dest}",
                )
            _check_mesh(dest, policy, self.services[dest])
        # cycles
        if self.max_depth is None:
            cycle = _find_cycle(self.call_graph_ordered())
            if cycle:
                raise refuse(
                    f"the call graph has a cycle {' -> '.join(cycle)}; set max_depth (an integer >= 1)"
                    " to bound how deeply calls nest",
                    "max_depth",
                )
        if self.chaos:
            check_chaos(self)
        return self

    def __eq__(self, other: object) -> bool:
        # equal content, whatever the spelling it was written in or the file it came from
        if not isinstance(other, Scenario):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    # ---- queries ---------------------------------------------------------------------------------
    def mesh_for(self, service: str) -> MeshPolicy:
        """The mesh policies of calls **to** ``service``; an empty :class:`MeshPolicy` without a ``mesh:`` entry.

        Raises
        ------
        KeyError
            ``service`` is not a service of the scenario.
        """
        if service not in self.services:
            raise KeyError(f"{service!r} is not a service (services: {', '.join(self.services)})")
        return self.mesh.get(service, EMPTY_MESH_POLICY)

    def call_graph_ordered(self) -> dict[str, list[str]]:
        """Service -> callees (any version), in first-written order without repeats."""
        graph: dict[str, list[str]] = {}
        for sname, spec in self.services.items():
            callees: list[str] = []
            for _, script in _scripts(sname, spec):
                for _, call in _script_calls(script, ""):
                    if call.service not in callees:
                        callees.append(call.service)
            graph[sname] = callees
        return graph

    def call_graph(self) -> dict[str, set[str]]:
        """Service -> set of services it may call (from any version's script)."""
        return {k: set(v) for k, v in self.call_graph_ordered().items()}

    def entry_services(self) -> list[str]:
        """Services that traffic sources send to, in order, without repeats."""
        out: list[str] = []
        for src in self.traffic:
            if src.to not in out:
                out.append(src.to)
        return out

    @property
    def source(self) -> str:
        """Where the scenario came from (file name or ``"<scenario>"``)."""
        return self._source

    @property
    def end_time(self) -> float:
        """``duration + drain``: when the run stops (seconds)."""
        return self.duration + self.drain


def _not_a_version(name: str, dest: str, versions: list[str], what: str) -> str:
    if versions == [DEFAULT_VERSION]:
        return (
            f"{name!r} is not a version: {dest} declares no versions, so a {what} may only use 'default'"
            f"{' (or leave route out)' if what == 'route' else ''}"
        )
    return f"{name!r} is not a version of {dest}{suggest(name, versions)} (versions: {', '.join(versions)})"


def _check_host(host: str | None, dest: str, where: str, what: str) -> None:
    if host is not None and host.split(".")[0] != dest:
        raise refuse(
            f"host {host!r} is not {dest!r}; {what} may only send to versions of the service they are "
            "declared for",
            where,
        )


def _check_mesh(dest: str, policy: MeshPolicy, spec: ServiceSpec) -> None:
    """Cross-checks of ``mesh.<dest>`` against the service: versions named by routes, mirrors, subsets."""
    versions = spec.version_names()
    for i, route in enumerate(policy.routes):
        for j, d in enumerate(route.destinations):
            where = f"mesh.{dest}.routes[{i}].route[{j}]"
            _check_host(d.host, dest, where, "routes")
            if d.version not in versions:
                raise refuse(_not_a_version(d.version, dest, versions, "route"), where)
    mirrors = [(f"mesh.{dest}.mirror", policy.mirror)]
    mirrors += [(f"mesh.{dest}.routes[{i}].mirror", r.mirror) for i, r in enumerate(policy.routes)]
    for where, mirror in mirrors:
        if mirror is None:
            continue
        _check_host(mirror.host, dest, where, "mirrors")
        if mirror.version not in versions:
            raise refuse(_not_a_version(mirror.version, dest, versions, "mirror"), f"{where}.version")
    labels = {name: rv.labels for name, rv in spec.resolved_versions(dest).items()}
    for vname, written in policy._version_paths.items():
        where = f"mesh.{dest}.{written}" + (".name" if written.startswith("subsets") else "")
        if vname not in versions:
            raise refuse(_not_a_version(vname, dest, versions, "subset"), where)
        want = policy._subset_labels.get(vname)
        if want is None:
            continue
        where = f"mesh.{dest}.{written}.labels"
        selected = [v for v, have in labels.items() if all(have.get(k) == x for k, x in want.items())]
        shown = "{" + ", ".join(f"{k}: {x}" for k, x in want.items()) + "}"
        if vname not in selected:
            mine = "{" + ", ".join(f"{k}: {x}" for k, x in labels[vname].items()) + "}"
            raise refuse(
                f"labels {shown} do not select version {vname} (its labels are {mine}); "
                "a subset's labels must select its version's replicas",
                where,
            )
        others = [v for v in selected if v != vname]
        if others:
            raise refuse(
                f"labels {shown} also select version{'s' if len(others) > 1 else ''} {', '.join(others)}; "
                f"meshsim subsets are versions, so they must select {vname} alone",
                where,
            )


def _scripts(sname: str, spec: ServiceSpec) -> list[tuple[str, tuple[Any, ...]]]:
    """The written scripts of a service and its versions, with their field paths."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if spec.script:
        out.append((f"services.{sname}.script", spec.script))
    for vname, v in (spec.versions or {}).items():
        if v.script:
            out.append((f"services.{sname}.versions.{vname}.script", v.script))
    return out


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle found by depth-first search in written order, as ``[a, b, a]``."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
