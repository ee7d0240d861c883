"""The ``chaos:`` block: faults on a timeline, each aimed at a set of replicas.

A fault has a ``kind``, a ``start`` (seconds from the start of the run), a
``duration`` (left out: until the run ends) and a ``target`` selecting
replicas by service, version, replica index and zone (a ``partition`` has two
sides, ``from`` and ``to``, instead). The kinds:

========== ===================================================================
crash      the replicas crash and restart after ``duration`` (a zone outage is
           a crash of ``{zone: z}``)
latency    a network-like delay on every response: ``add`` (a latency spec) or
           ``multiply`` (the time the request spent at the replica)
errors     the replica answers ``status`` to a share ``rate`` of its requests
slowdown   the replica's work takes ``factor`` times longer (CPU starvation)
partition  no traffic between the replicas (or clients) of ``from`` and ``to``
resets     a share ``rate`` of the requests has its connection reset
brownout   errors and slowdown together (``rate``, ``status``, ``factor``)
========== ===================================================================

What each does in the simulator is documented in ``docs/scenario.md`` and in
:mod:`meshsim.sim._chaos`. The models here validate one fault at a time;
:func:`check_chaos` checks the block against the scenario's services (names,
replica indices, zones, overlaps) while the :class:`~meshsim.config.Scenario`
is validated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from meshsim.config._types import Count, Duration, Fraction, Name, PositiveDuration
from meshsim.latency import LatencySpec
from meshsim.policies._model import PolicyModel, refuse, suggest
from meshsim.units import format_duration, format_fraction

__all__ = [
    "FAULT_KINDS",
    "Target",
    "Crash",
    "LatencyFault",
    "ErrorsFault",
    "Slowdown",
    "Partition",
    "Resets",
    "Brownout",
    "Fault",
    "check_chaos",
    "target_replicas",
]

#: the ``kind`` values of a fault, in the order the documentation lists them
FAULT_KINDS = ("crash", "latency", "errors", "slowdown", "partition", "resets", "brownout")
#: status an ``errors`` or ``brownout`` fault answers unless it says otherwise (a broken dependency)
DEFAULT_FAULT_STATUS = 503


class Target(PolicyModel):
    """Which replicas a fault hits: every replica matching all the keys given.

    Written ``reviews`` (a service), ``{service: reviews, version: v3}``,
    ``{service: reviews, version: v3, replica: 0}``, ``{zone: zone-b}`` or
    ``{service: reviews, zone: zone-b}``.

    Parameters
    ----------
    service
        A service name.
    version
        One of its versions (needs ``service``).
    replica
        A replica index, from 0, within the version (needs ``service``, and
        ``version`` when the service has several versions).
    zone
        A zone: the replicas placed there.
    """

    service: Name | None = None
    version: Name | None = None
    replica: Count | None = None
    zone: Name | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"service": data}
        return data

    @model_validator(mode="after")
    def _something(self) -> Target:
        if self.service is None and self.zone is None:
            raise refuse("a target names a service, a zone or both, e.g. {service: reviews, version: v3}")
        if self.service is None:
            for key in ("version", "replica"):
                if getattr(self, key) is not None:
                    raise refuse(f"{key} needs a service (which service's {key}?)", key)
        return self

    def describe(self) -> str:
        """Short text for tables: ``reviews/v3/0``, ``zone zone-b``, ``reviews in zone-b``."""
        parts = [p for p in (self.service, self.version,
                             None if self.replica is None else str(self.replica)) if p is not None]
        text = "/".join(parts)
        if self.zone is not None:
            text = f"{text} in {self.zone}" if text else f"zone {self.zone}"
        return text


def _status(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise refuse(f"{value!r} is not an HTTP error status: expected an integer in 400..599")
    return value


ErrorStatus = Annotated[int, BeforeValidator(_status)]


def _some(value: float, what: str) -> float:
    if value <= 0:
        raise refuse(f"{value!r} {what} nothing; the rate must be > 0 (a fraction such as 10% or 0.1)")
    return value


class _Fault(PolicyModel):
    """Fields every fault has: ``kind``, ``name``, ``start``, ``duration``."""

    #: a fault of this kind has a ``target`` (a partition has ``from``/``to``)
    targeted: ClassVar[bool] = True

    name: Name | None = None
    start: Duration = 0.0
    duration: PositiveDuration | None = None

    def end(self, run_end: float = math.inf) -> float:
        """When the fault ends (seconds): ``start + duration``, or ``run_end`` when open-ended."""
        return run_end if self.duration is None else min(run_end, self.start + self.duration)

    def detail(self) -> str:
        """The fault's own settings as a short text (``add 200ms``)."""
        return ""


class Crash(_Fault):
    """The target's replicas crash at ``start`` and restart after ``duration``.

    In-flight work is lost and its connections are reset (503 ``UC`` at the
    callers); while down, new connections are refused (503 ``UF``). A crash
    of ``{zone: z}`` is a zone outage.
    """

    kind: Literal["crash"] = "crash"
    target: Target


class LatencyFault(_Fault):
    """A network-like delay on every response of the target's replicas; it uses no worker.

    Parameters
    ----------
    add
        Extra delay per response: a latency spec (``200ms``,
        ``{type: exponential, mean: 100ms}``).
    multiply
        Or: the response is held so that the time the request spent at the
        replica (queueing and work) is multiplied by this factor (>= 1).
    """

    kind: Literal["latency"] = "latency"
    target: Target
    add: LatencySpec | None = None
    multiply: float | None = Field(default=None, ge=1.0)

    @model_validator(mode="after")
    def _one_way(self) -> LatencyFault:
        if (self.add is None) == (self.multiply is None):
            raise refuse("give either add (a delay such as 200ms) or multiply (a factor >= 1), not "
                         + ("both" if self.add is not None else "neither"))
        return self

    def detail(self) -> str:
        if self.add is not None:
            value = getattr(self.add, "value", None) if getattr(self.add, "type", None) == "constant" else None
            return f"add {format_duration(float(value)) if value is not None else self.add.describe()}"
        return f"multiply {self.multiply:g}"


class ErrorsFault(_Fault):
    """The target's replicas answer ``status`` (default 503) to a share ``rate`` of their requests.

    The answer is decided when the request reaches the replica, before it
    queues for a worker: a fast failure, as a replica whose dependency is
    broken gives, that uses no worker.
    """

    kind: Literal["errors"] = "errors"
    target: Target
    rate: Fraction
    status: ErrorStatus = DEFAULT_FAULT_STATUS

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        return _some(value, "injects")

    def detail(self) -> str:
        return f"rate {format_fraction(self.rate)}, status {self.status}"


class Slowdown(_Fault):
    """The target's work steps take ``factor`` times longer (CPU starvation: workers stay busy longer)."""

    kind: Literal["slowdown"] = "slowdown"
    target: Target
    factor: float = Field(ge=1.0)

    def detail(self) -> str:
        return f"factor {self.factor:g}"


class Partition(_Fault):
    """No traffic between ``from`` and ``to``, either way (a connection needs both directions).

    ``from`` and ``to`` are targets; a side given by zone also holds the
    traffic sources placed in that zone. New connections are never answered
    (the caller's ``connect_timeout`` fires); requests and responses on
    existing connections are black-holed until the partition heals.
    """

    targeted: ClassVar[bool] = False

    kind: Literal["partition"] = "partition"
    from_: Target = Field(alias="from")
    to: Target

    model_config = {**PolicyModel.model_config, "populate_by_name": True}

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """``from`` rather than the attribute name ``from_``."""
        return ["kind", "name", "start", "duration", "from", "to"]

    def detail(self) -> str:
        return ""


class Resets(_Fault):
    """A share ``rate`` of the requests to the target has its connection reset (503 ``UC``)."""

    kind: Literal["resets"] = "resets"
    target: Target
    rate: Fraction

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        return _some(value, "resets")

    def detail(self) -> str:
        return f"rate {format_fraction(self.rate)}"


class Brownout(_Fault):
    """A browned-out dependency: errors (``rate``, ``status``) and a slowdown (``factor``) together."""

    kind: Literal["brownout"] = "brownout"
    target: Target
    rate: Fraction
    status: ErrorStatus = DEFAULT_FAULT_STATUS
    factor: float = Field(ge=1.0)

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        return _some(value, "injects")

    def detail(self) -> str:
        return f"rate {format_fraction(self.rate)}, status {self.status}, factor {self.factor:g}"


_CLASSES: dict[str, type[_Fault]] = {
    "crash": Crash, "latency": LatencyFault, "errors": ErrorsFault, "slowdown": Slowdown,
    "partition": Partition, "resets": Resets, "brownout": Brownout,
}
assert tuple(_CLASSES) == FAULT_KINDS


def _fault_kind(value: Any) -> str | None:
    # the union's tags are "<kind> fault": never a field name, so error paths skip them
    if isinstance(value, _Fault):
        return f"{value.kind} fault"  # type: ignore[attr-defined]
    if isinstance(value, Mapping):
        kind = value.get("kind")
        return f"{kind} fault" if isinstance(kind, str) else None
    return None


def _check_fault(value: Any) -> Any:
    if isinstance(value, _Fault):
        return value
    if not isinstance(value, Mapping):
        raise refuse(f"{value!r} is not a fault; a fault is a mapping such as "
                     "{kind: crash, target: reviews, start: 10s, duration: 30s}")
    kind = value.get("kind")
    if kind is None:
        raise refuse(f"a fault needs a kind (one of: {', '.join(FAULT_KINDS)})")
    if kind not in _CLASSES:
        raise refuse(f"{kind!r} is not a fault kind{suggest(str(kind), FAULT_KINDS)} "
                     f"(kinds: {', '.join(FAULT_KINDS)})", "kind")
    return value


Fault = Annotated[
    Annotated[
        Annotated[Crash, Tag("crash fault")]
        | Annotated[LatencyFault, Tag("latency fault")]
        | Annotated[ErrorsFault, Tag("errors fault")]
        | Annotated[Slowdown, Tag("slowdown fault")]
        | Annotated[Partition, Tag("partition fault")]
        | Annotated[Resets, Tag("resets fault")]
        | Annotated[Brownout, Tag("brownout fault")],
        Discriminator(_fault_kind),
    ],
    BeforeValidator(_check_fault),
]
"""One fault of the ``chaos:`` block: :class:`Crash`, :class:`LatencyFault`, :class:`ErrorsFault`,
:class:`Slowdown`, :class:`Partition`, :class:`Resets` or :class:`Brownout`, by its ``kind``."""


# --------------------------------------------------------------------------------------------------
# cross-checks against the scenario


def target_replicas(scenario: Any, target: Target, where: str = "target") -> list[tuple[str, str, int]]:
    """The replicas ``target`` selects, as ``(service, version, replica index)`` in declaration order.

    Raises a validation error (pydantic ``PydanticCustomError``, path ``where``)
    when a name does not exist or the selection is empty.
    """
    services = list(scenario.services)
    if target.service is not None and target.service not in scenario.services:
        raise refuse(f"{target.service!r} is not a service{suggest(target.service, services)}"
                     f" (services: {', '.join(services)})", f"{where}.service")
    all_zones: list[str] = []
    for sname, spec in scenario.services.items():
        for rv in spec.resolved_versions(sname).values():
            for z in rv.zones:
                if z is not None and z not in all_zones:
                    all_zones.append(z)
    if target.zone is not None and target.zone not in all_zones:
        known = f" (zones: {', '.join(all_zones)})" if all_zones else " (no replica has a zone)"
        raise refuse(f"{target.zone!r} is not a zone of any replica{suggest(target.zone, all_zones)}{known}",
                     f"{where}.zone")
    chosen = [target.service] if target.service is not None else services
    out: list[tuple[str, str, int]] = []
    for sname in chosen:
        spec = scenario.services[sname]
        versions = spec.resolved_versions(sname)
        if target.version is not None:
            if target.version not in versions:
                names = list(versions)
                if names == ["default"]:
                    msg = (f"{target.version!r} is not a version: {sname} declares no versions "
                           "(leave version out, or write default)")
                else:
                    msg = (f"{target.version!r} is not a version of {sname}{suggest(target.version, names)}"
                           f" (versions: {', '.join(names)})")
                raise refuse(msg, f"{where}.version")
            versions = {target.version: versions[target.version]}
        if target.replica is not None:
            if len(versions) > 1:
                raise refuse(f"replica {target.replica} needs a version: {sname} has versions "
                             f"{', '.join(versions)} (give version, e.g. version: {next(iter(versions))})",
                             f"{where}.replica")
            vname, rv = next(iter(versions.items()))
            if target.replica >= rv.replicas:
                label = sname if vname == "default" else f"{sname} {vname}"
                raise refuse(f"replica {target.replica} is out of range: {label} has {rv.replicas} "
                             f"replica{'s' if rv.replicas != 1 else ''} (indices 0..{rv.replicas - 1})",
                             f"{where}.replica")
        for vname, rv in versions.items():
            for i in range(rv.replicas):
                if target.replica is not None and i != target.replica:
                    continue
                if target.zone is not None and rv.zones[i] != target.zone:
                    continue
                out.append((sname, vname, i))
    if not out:
        raise refuse(f"{target.describe()} selects no replica ({target.service} has no replica in "
                     f"{target.zone})", where)
    return out


#: kinds that may not hit one replica twice at the same time, grouped by what they change
_EXCLUSIVE = {"crash": ("crash",), "latency": ("latency",), "errors": ("errors",), "slowdown": ("slowdown",),
              "resets": ("resets",), "brownout": ("errors", "slowdown")}


def check_chaos(scenario: Any) -> None:
    """Check the ``chaos:`` block against the scenario; raise on the first problem.

    Targets must exist and select replicas; a fault must start before the
    run ends (``duration + drain``); a partition's sides must not share a
    replica; and two faults changing the same thing (two crashes, two error
    injections, two slowdowns, ...; a brownout counts as errors and slowdown)
    may not hit one replica at overlapping times.
    """
    run_end = float(scenario.duration) + float(scenario.drain)
    taken: dict[tuple[str, tuple[str, str, int]], list[tuple[float, float, int]]] = {}
    for i, fault in enumerate(scenario.chaos):
        where = f"chaos[{i}]"
        if fault.start >= run_end:
            raise refuse(f"{format_duration(fault.start)} is after the run ends ({format_duration(run_end)}: "
                         f"duration {format_duration(scenario.duration)} + drain "
                         f"{format_duration(scenario.drain)}); the fault would never happen", f"{where}.start")
        start, end = fault.start, fault.end(run_end)
        if isinstance(fault, Partition):
            a = target_replicas(scenario, fault.from_, f"{where}.from")
            b = target_replicas(scenario, fault.to, f"{where}.to")
            in_b = set(b)
            both = [r for r in a if r in in_b]
            if both:
                s, v, k = both[0]
                raise refuse(f"from and to both select {s}/{v}/{k}; a partition separates two disjoint sets "
                             "of replicas", f"{where}.to")
            continue
        hosts = target_replicas(scenario, fault.target, f"{where}.target")
        for group in _EXCLUSIVE[fault.kind]:
            for host in hosts:
                for s0, e0, j in taken.get((group, host), ()):
                    if start < e0 and s0 < end:
                        other = scenario.chaos[j]
                        raise refuse(
                            f"overlaps chaos[{j}] ({other.kind}, {format_duration(s0)}..{_fmt_end(e0)}) on "
                            f"{host[0]}/{host[1]}/{host[2]}: a replica takes one {_GROUP_TEXT[group]} at a time "
                            "(a brownout is an error injection and a slowdown)", where)
                taken.setdefault((group, host), []).append((start, end, i))


_GROUP_TEXT = {"crash": "crash", "latency": "latency injection", "errors": "error injection",
               "slowdown": "slowdown", "resets": "reset injection"}


def _fmt_end(t: float) -> str:
    return "end" if math.isinf(t) else format_duration(t)
