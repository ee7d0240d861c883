"""HTTP fault injection: Envoy's ``envoy.filters.http.fault`` (Istio ``http[].fault``).

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`FaultPolicy` with an optional :class:`FaultDelay`
  (``fixed_delay``, ``percentage``) and an optional :class:`FaultAbort`
  (``http_status``, ``percentage``), plus ``max_active_faults``. Percentages
  are Envoy ``FractionalPercent`` (:class:`FractionalPercent`); Istio's
  spelling (``fixedDelay``, ``httpStatus``, ``percentage: {value: 10}``, the
  deprecated integer ``percent``) is accepted and translated as Istio's
  ``translateFault`` does.
* **Runtime** — :class:`FaultInjector` decides, per request, from two uniform
  draws, whether to delay and whether to abort, in Envoy's order, and counts
  ``fault.delays_injected``, ``fault.aborts_injected`` and
  ``fault.faults_overflow``.
* **Envoy** — :func:`to_envoy` writes the ``HTTPFault`` typed config (for the
  route's ``typed_per_filter_config``, as Istio places it, or for the filter
  itself).

Semantics (``source/extensions/filters/http/fault/fault_filter.cc``,
``api/envoy/extensions/filters/http/fault/v3/fault.proto``; envoy.md 7, 9.4, 14):

* **An unset percentage is 0 %: nothing is injected.** A ``delay`` or
  ``abort`` block without ``percentage`` is silently inert in Envoy (seen on
  Envoy 1.40: an abort without a percentage let 3/3 requests pass), and
  Istio's translator leaves the field unset when the VirtualService does not
  give it, so Istio behaves the same. meshsim keeps that default and
  :func:`lint` reports it.
* Order at request headers: **delay first** (one draw); if a delay is
  injected, the **abort is decided when the delay ends, with a fresh draw**;
  otherwise the abort is decided at once (its own draw). Delay and abort are
  independent Bernoulli trials.
* A draw ``u`` in [0, 1) injects iff ``floor(u * D) < N`` for a percentage
  ``N/D`` (Envoy's ``random % D < N``).
* An abort is a local reply with the configured status, body ``fault filter
  abort`` and flag ``FI``; no upstream attempt is made, so aborts are invisible
  to cluster stats and outlier detection. A delay sets flag ``DI``.
* ``max_active_faults`` (default: unlimited) is a fuzzy limit checked each time
  a fault is about to be injected: if the gauge ``fault.active_faults`` is at
  the limit, that fault is skipped and ``fault.faults_overflow`` counts it. A
  request holds at most one active fault; a pure delay stops being active when
  the delay ends.
* Delays are whole milliseconds (Envoy reads ``fixed_delay`` in ms); a delay
  that rounds down to 0 ms is not injected.

Simplifications: no header-controlled faults (``header_delay``,
``header_abort``, ``x-envoy-fault-*`` headers), no ``grpc_status`` aborts, no
``response_rate_limit``, no ``upstream_cluster``/``downstream_nodes``/
``headers`` targeting (a meshsim fault is attached to a route, which already
selects the traffic), no runtime overrides.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import Field, field_validator, model_validator

from meshsim.latency import PositiveDuration
from meshsim.policies._model import PolicyModel, Trap, refuse
from meshsim.units import proto_duration

__all__ = [
    "DENOMINATORS",
    "DEFAULT_PERCENTAGE",
    "FAULT_FILTER_NAME",
    "FAULT_TYPE_URL",
    "FractionalPercent",
    "FaultDelay",
    "FaultAbort",
    "FaultPolicy",
    "FaultOutcome",
    "FaultDecision",
    "FaultInjector",
    "fraction_enabled",
    "envoy_duration",
    "to_envoy",
    "to_istio",
    "percentage_to_istio",
    "unsupported",
    "lint",
]

#: Envoy ``type.v3.FractionalPercent.DenominatorType`` -> its value.
DENOMINATORS: dict[str, int] = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}
#: A fault block without ``percentage`` injects nothing (Envoy and Istio alike).
DEFAULT_PERCENTAGE = 0.0
#: The HTTP filter's name, as Istio and Envoy's docs write it.
FAULT_FILTER_NAME = "envoy.filters.http.fault"
#: ``@type`` of the filter config.
FAULT_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

_PERCENT_HELP = (
    "a percentage: a number in [0, 100], '5%', Istio {value: 5} "
    "or Envoy {numerator: 5, denominator: HUNDRED|TEN_THOUSAND|MILLION}"
)


#: A proto3 JSON duration string (``"0.025s"``) for a number of seconds:
#: :func:`meshsim.units.proto_duration`, kept under this name for importers.
envoy_duration = proto_duration


def fraction_enabled(u: float, numerator: int, denominator: int) -> bool:
    """Whether a uniform draw ``u`` in [0, 1) falls inside ``numerator/denominator``.

    Envoy's ``featureEnabled(FractionalPercent)`` tests ``random % D < N``;
    with a uniform draw that is ``floor(u * D) < N``, exactly N out of D
    equally likely outcomes.

    Examples
    --------
    >>> fraction_enabled(0.049, 5, 100), fraction_enabled(0.05, 5, 100)
    (True, False)
    >>> fraction_enabled(0.999, 0, 100)
    False
    """
    return int(u * denominator) < numerator


class FractionalPercent(PolicyModel):
    """Envoy ``type.v3.FractionalPercent``: ``numerator / denominator``.

    Parameters
    ----------
    numerator
        Integer >= 0, at most the denominator's value.
    denominator
        ``HUNDRED`` (default), ``TEN_THOUSAND`` or ``MILLION``.

    Notes
    -----
    Accepted spellings:

    * a number: a percentage in [0, 100] (``5``, ``0.1``). Whole percentages
      use ``HUNDRED``, others ``TEN_THOUSAND`` or ``MILLION`` (rounded to
      1e-4 %);
    * a string ``"5%"`` or ``"0.1%"``;
    * Istio ``{value: 5.0}`` (``networking.v1alpha3.Percent``), translated as
      Istio does: ``numerator = uint32(value * 10000)``, ``MILLION``
      (truncated, exactly like Istio's ``translatePercentToFractionalPercent``);
    * Envoy ``{numerator: 5, denominator: HUNDRED}``.

    Envoy accepts a numerator above the denominator (it acts as 100 %);
    meshsim refuses it as a likely typo.

    Examples
    --------
    >>> FractionalPercent.model_validate("0.5%")
    FractionalPercent(numerator=50, denominator='TEN_THOUSAND')
    >>> FractionalPercent.model_validate({"value": 10}).percent
    10.0
    >>> FractionalPercent.model_validate(25).enabled(0.2)
    True
    """

    numerator: int = Field(default=0, ge=0)
    denominator: Literal["HUNDRED", "TEN_THOUSAND", "MILLION"] = "HUNDRED"

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise refuse(f"{data!r} is not {_PERCENT_HELP}")
        if isinstance(data, (int, float)):
            return _from_percent(float(data), data)
        if isinstance(data, str):
            text = data.strip()
            try:
                value = float(text[:-1]) if text.endswith("%") else float(text)
            except ValueError:
                raise refuse(f"{data!r} is not {_PERCENT_HELP}") from None
            return _from_percent(value, data)
        if isinstance(data, Mapping) and "value" in data:
            if len(data) != 1:
                extra = ", ".join(repr(k) for k in data if k != "value")
                raise refuse(f"Istio percentage takes only 'value'; got also {extra}")
            value = data["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise refuse(f"percentage value {value!r} is not a number in [0, 100]")
            if not 0.0 <= value <= 100.0:
                raise refuse(f"percentage value {value!r} is outside [0, 100]")
            return {"numerator": int(float(value) * 10000), "denominator": "MILLION"}
        return data

    @model_validator(mode="after")
    def _at_most_whole(self) -> FractionalPercent:
        if self.numerator > DENOMINATORS[self.denominator]:
            raise refuse(
                f"numerator {self.numerator} is above the denominator {self.denominator} "
                f"({DENOMINATORS[self.denominator]}); a percentage is at most 100 %"
            )
        return self

    @property
    def denominator_value(self) -> int:
        """The denominator as a number (100, 10 000 or 1 000 000)."""
        return DENOMINATORS[self.denominator]

    @property
    def percent(self) -> float:
        """The percentage in [0, 100]."""
        return 100.0 * self.numerator / DENOMINATORS[self.denominator]

    def enabled(self, u: float) -> bool:
        """Whether the uniform draw ``u`` in [0, 1) falls inside this percentage."""
        return int(u * DENOMINATORS[self.denominator]) < self.numerator

    def to_envoy(self) -> dict[str, Any]:
        """Envoy proto3 JSON ``{numerator, denominator}``."""
        return {"numerator": self.numerator, "denominator": self.denominator}


def _from_percent(value: float, shown: object) -> dict[str, Any]:
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise refuse(f"{shown!r} is outside [0, 100]; expected {_PERCENT_HELP}")
    for name, scale in (("HUNDRED", 1), ("TEN_THOUSAND", 100), ("MILLION", 10_000)):
        scaled = value * scale
        if abs(scaled - round(scaled)) < 1e-9:
            return {"numerator": int(round(scaled)), "denominator": name}
    return {"numerator": int(round(value * 10_000)), "denominator": "MILLION"}


def _percentage_synonym(data: Any) -> Any:
    """Istio's deprecated integer ``percent`` -> ``percentage`` (``HUNDRED``)."""
    if isinstance(data, Mapping) and "percent" in data:
        if "percentage" in data:
            raise refuse("give either 'percentage' or the deprecated 'percent', not both")
        out = {k: v for k, v in data.items() if k != "percent"}
        pct = data["percent"]
        if isinstance(pct, bool) or not isinstance(pct, int):
            raise refuse(f"percent {pct!r} must be a whole number in [0, 100] (Istio's deprecated field)")
        out["percentage"] = {"numerator": pct, "denominator": "HUNDRED"}
        return out
    return data


class FaultDelay(PolicyModel):
    """Envoy ``extensions.filters.common.fault.v3.FaultDelay`` (fixed delays only).

    Parameters
    ----------
    fixed_delay
        The delay, > 0 (``"5s"``, ``"250ms"`` or seconds). Istio: ``fixedDelay``.
        Envoy validates ``fixed_delay > 0`` (``duration = {gt {}}``).
    percentage
        Share of requests delayed (:class:`FractionalPercent`); **default 0 %:
        an unset percentage delays nothing**, as in Envoy and Istio.

    References
    ----------
    ``api/envoy/extensions/filters/common/fault/v3/fault.proto`` (``FaultDelay``)
    """

    fixed_delay: PositiveDuration
    percentage: FractionalPercent = FractionalPercent()

    _synonyms: ClassVar[Mapping[str, str]] = {"fixedDelay": "fixed_delay"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "exponentialDelay" in data:
            raise refuse("exponentialDelay is not supported (Istio does not support it either)")
        return _percentage_synonym(data)


class FaultAbort(PolicyModel):
    """Envoy ``extensions.filters.http.fault.v3.FaultAbort`` (HTTP status aborts).

    Parameters
    ----------
    http_status
        Status of the local reply, 200 <= status < 600 (Envoy's validation).
        Istio: ``httpStatus``.
    percentage
        Share of requests aborted; **default 0 %: nothing is aborted**.

    References
    ----------
    ``api/envoy/extensions/filters/http/fault/v3/fault.proto`` (``FaultAbort``)
    """

    http_status: int
    percentage: FractionalPercent = FractionalPercent()

    _synonyms: ClassVar[Mapping[str, str]] = {"httpStatus": "http_status"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in ("grpc_status", "grpcStatus", "header_abort", "http2Error"):
                if key in data:
                    raise refuse(f"{key} aborts are not simulated; give http_status")
        return _percentage_synonym(data)

    @field_validator("http_status")
    @classmethod
    def _status_range(cls, value: int) -> int:
        if not 200 <= value < 600:
            raise refuse(f"http_status {value} is outside [200, 600) (Envoy's FaultAbort validation)")
        return value


class FaultPolicy(PolicyModel):
    """Fault injection for one route (Envoy ``HTTPFault``; Istio ``HTTPFaultInjection``).

    Parameters
    ----------
    delay
        Optional :class:`FaultDelay`.
    abort
        Optional :class:`FaultAbort`.
    max_active_faults
        Optional cap on requests with an active fault, across the proxy
        (``None``: unlimited, Envoy's default). Not in Istio's API.

    Notes
    -----
    An unset ``percentage`` is 0 %: the block is written, and does nothing
    (Envoy and Istio both). :func:`lint` lists such blocks.

    References
    ----------
    ``api/envoy/extensions/filters/http/fault/v3/fault.proto``;
    Istio ``networking/v1alpha3/virtual_service.proto`` (``HTTPFaultInjection``),
    ``pilot/pkg/networking/core/route/route.go`` (``translateFault``).

    Examples
    --------
    >>> p = FaultPolicy.model_validate(
    ...     {"delay": {"fixedDelay": "2s", "percentage": {"value": 10}},
    ...      "abort": {"httpStatus": 503, "percentage": {"value": 1}}})
    >>> p.delay.fixed_delay, p.delay.percentage.percent, p.abort.http_status
    (2.0, 10.0, 503)
    """

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None
    max_active_faults: int | None = Field(default=None, ge=0)


# --------------------------------------------------------------------------------------------------
# runtime


class FaultOutcome(enum.Enum):
    """What the fault filter did to one request."""

    #: No fault: the request continues to the router.
    NONE = "none"
    #: Delayed (flag ``DI``), then continues to the router.
    DELAY = "delay"
    #: Aborted at once with a local reply (flag ``FI``).
    ABORT = "abort"
    #: Delayed, then aborted when the delay ended (flags ``DI,FI``).
    DELAY_AND_ABORT = "delay_and_abort"


class FaultDecision(NamedTuple):
    """The fault filter's decision for one request.

    Attributes
    ----------
    outcome
        :class:`FaultOutcome`.
    delay_s
        Seconds to hold the request before it goes on (0 if no delay).
    abort_status
        HTTP status of the local reply after the delay (0 if no abort).
    flags
        Envoy response flags: ``""``, ``"DI"``, ``"FI"`` or ``"DI,FI"``.
    """

    outcome: FaultOutcome
    delay_s: float
    abort_status: int
    flags: str


_NO_FAULT = FaultDecision(FaultOutcome.NONE, 0.0, 0, "")


class FaultInjector:
    """Runtime of one fault filter config (engine-free).

    Parameters
    ----------
    policy
        The :class:`FaultPolicy`.

    Attributes
    ----------
    stats
        Counters with Envoy's names: ``fault.delays_injected``,
        ``fault.aborts_injected``, ``fault.faults_overflow``.
    active_faults
        Envoy's gauge ``fault.active_faults``: requests whose delay is running.

    Notes
    -----
    Call order for one request:

    1. ``d = injector.decide(u_delay, u_abort)`` with two fresh uniform draws
       from the fault stream (the second is Envoy's "fresh draw after the
       delay"; drawing it up front changes nothing, the draws are independent).
    2. ``d.outcome is NONE``: go on to the router.
       ``ABORT``: answer ``d.abort_status`` locally with flag ``FI`` (no
       upstream attempt). ``DELAY``/``DELAY_AND_ABORT``: wait ``d.delay_s``,
       then call :meth:`delay_ended` and either go on (``DELAY``) or answer
       ``d.abort_status`` (``DELAY_AND_ABORT``, flags ``DI,FI``).

    :meth:`delay_ended` matters only for ``max_active_faults``.

    Examples
    --------
    >>> inj = FaultInjector(FaultPolicy.model_validate(
    ...     {"delay": {"fixed_delay": "100ms", "percentage": 50},
    ...      "abort": {"http_status": 503, "percentage": 10}}))
    >>> inj.decide(0.2, 0.5)
    FaultDecision(outcome=<FaultOutcome.DELAY: 'delay'>, delay_s=0.1, abort_status=0, flags='DI')
    >>> inj.decide(0.7, 0.05).outcome
    <FaultOutcome.ABORT: 'abort'>
    >>> inj.stats["fault.delays_injected"], inj.stats["fault.aborts_injected"]
    (1, 1)
    """

    __slots__ = (
        "policy",
        "stats",
        "active_faults",
        "_delay_n",
        "_delay_d",
        "_abort_n",
        "_abort_d",
        "_max_active",
        "_delay",
        "_abort",
        "_delay_and_abort",
    )

    def __init__(self, policy: FaultPolicy) -> None:
        self.policy = policy
        self.stats: dict[str, int] = {
            "fault.delays_injected": 0,
            "fault.aborts_injected": 0,
            "fault.faults_overflow": 0,
        }
        self.active_faults = 0
        delay_ms = 0
        self._delay_n = self._delay_d = 0
        if policy.delay is not None:
            delay_ms = int(policy.delay.fixed_delay * 1000 + 1e-9)  # Envoy reads whole ms
            if delay_ms > 0:
                self._delay_n = policy.delay.percentage.numerator
                self._delay_d = policy.delay.percentage.denominator_value
        status = policy.abort.http_status if policy.abort is not None else 0
        self._abort_n = policy.abort.percentage.numerator if policy.abort is not None else 0
        self._abort_d = policy.abort.percentage.denominator_value if policy.abort is not None else 1
        m = policy.max_active_faults
        self._max_active = m if m is not None else -1
        delay_s = delay_ms / 1000.0
        self._delay = FaultDecision(FaultOutcome.DELAY, delay_s, 0, "DI")
        self._abort = FaultDecision(FaultOutcome.ABORT, 0.0, status, "FI")
        self._delay_and_abort = FaultDecision(FaultOutcome.DELAY_AND_ABORT, delay_s, status, "DI,FI")

    def _overflow(self) -> bool:
        m = self._max_active
        if m >= 0 and self.active_faults >= m:
            self.stats["fault.faults_overflow"] += 1
            return True
        return False

    def decide(self, u_delay: float, u_abort: float) -> FaultDecision:
        """Delay and abort for one request, from two uniform draws in [0, 1).

        Parameters
        ----------
        u_delay
            Draw for the delay percentage (Envoy's first draw).
        u_abort
            Independent draw for the abort percentage (Envoy draws it when
            the delay ends, or at once when there is no delay).

        Returns
        -------
        FaultDecision
            Preallocated; never ``None``.
        """
        delayed = False
        if self._delay_n and int(u_delay * self._delay_d) < self._delay_n:
            if not self._overflow():
                delayed = True
                self.active_faults += 1
                self.stats["fault.delays_injected"] += 1
        if self._abort_n and int(u_abort * self._abort_d) < self._abort_n:
            if delayed or not self._overflow():
                self.stats["fault.aborts_injected"] += 1
                return self._delay_and_abort if delayed else self._abort
        return self._delay if delayed else _NO_FAULT

    def delay_ended(self) -> None:
        """Tell the injector a delayed request's delay is over (``active_faults`` drops)."""
        if self.active_faults > 0:
            self.active_faults -= 1

    def __repr__(self) -> str:
        return f"FaultInjector(stats={self.stats!r}, active_faults={self.active_faults})"


# --------------------------------------------------------------------------------------------------
# Envoy


def to_envoy(policy: FaultPolicy) -> dict[str, Any]:
    """Envoy ``extensions.filters.http.fault.v3.HTTPFault`` (proto3 JSON, with ``@type``).

    Unset percentages are written as Istio writes them: the field is left out
    (Envoy then injects nothing).

    Examples
    --------
    >>> to_envoy(FaultPolicy.model_validate(
    ...     {"delay": {"fixedDelay": "5s", "percentage": {"value": 10}}}))  # doctest: +NORMALIZE_WHITESPACE
    {'@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
     'delay': {'fixed_delay': '5s', 'percentage': {'numerator': 100000, 'denominator': 'MILLION'}}}
    """
    out: dict[str, Any] = {"@type": FAULT_TYPE_URL}
    if policy.delay is not None:
        delay: dict[str, Any] = {"fixed_delay": proto_duration(policy.delay.fixed_delay)}
        if "percentage" in policy.delay.model_fields_set:
            delay["percentage"] = policy.delay.percentage.to_envoy()
        out["delay"] = delay
    if policy.abort is not None:
        abort: dict[str, Any] = {"http_status": policy.abort.http_status}
        if "percentage" in policy.abort.model_fields_set:
            abort["percentage"] = policy.abort.percentage.to_envoy()
        out["abort"] = abort
    if policy.max_active_faults is not None:
        out["max_active_faults"] = policy.max_active_faults
    return out


def percentage_to_istio(percentage: FractionalPercent) -> dict[str, float]:
    """Istio's ``Percent`` ``{value: x}`` that istiod translates back to exactly ``percentage``.

    istiod writes ``uint32(value * 10000)`` over ``MILLION``; the value is
    chosen so that the truncated product is this percentage's parts per
    million (see :func:`meshsim.policies._istio.istio_percent`).

    Examples
    --------
    >>> percentage_to_istio(FractionalPercent.model_validate("10%"))
    {'value': 10.0}
    """
    from meshsim.policies._istio import istio_percent

    return {"value": istio_percent(percentage.numerator, percentage.denominator)}


def to_istio(policy: FaultPolicy) -> dict[str, Any]:
    """The VirtualService ``http[].fault`` (``HTTPFaultInjection``) istiod turns into this policy.

    ``delay: {fixedDelay, percentage: {value}}`` and ``abort: {httpStatus,
    percentage: {value}}``; an unset percentage stays unset (0 % in Envoy and
    Istio alike). Delays are whole milliseconds (Istio's validation).
    ``max_active_faults`` has no Istio field (the exporter reports it).

    Examples
    --------
    >>> to_istio(FaultPolicy.model_validate({"abort": {"http_status": 503, "percentage": 5}}))
    {'abort': {'httpStatus': 503, 'percentage': {'value': 5.0}}}
    """
    from meshsim.policies._istio import istio_duration

    out: dict[str, Any] = {}
    if policy.delay is not None:
        delay: dict[str, Any] = {"fixedDelay": istio_duration(policy.delay.fixed_delay)}
        if "percentage" in policy.delay.model_fields_set:
            delay["percentage"] = percentage_to_istio(policy.delay.percentage)
        out["delay"] = delay
    if policy.abort is not None:
        abort: dict[str, Any] = {"httpStatus": policy.abort.http_status}
        if "percentage" in policy.abort.model_fields_set:
            abort["percentage"] = percentage_to_istio(policy.abort.percentage)
        out["abort"] = abort
    return out


def unsupported(policy: FaultPolicy) -> list[str]:
    """Fields of ``policy`` that Envoy cannot express (always empty)."""
    return []


def lint(policy: FaultPolicy) -> list[Trap]:
    """Warnings about faults that are configured but can never fire.

    Each warning is a :class:`~meshsim.policies._model.Trap` with its code
    (``docs/lint.md``): **MS401** a delay or abort without ``percentage``
    (0 %: never injected), **MS402** a percentage written as 0, **MS403** a
    delay under 1 ms, **MS404** ``max_active_faults: 0``.

    Examples
    --------
    >>> lint(FaultPolicy.model_validate({"abort": {"httpStatus": 503}}))  # doctest: +ELLIPSIS
    [Trap('abort has no percentage: Envoy and Istio treat it as 0 %, so no request is aborted; ...', code='MS401', field='abort.percentage', value='unset')]
    """
    out: list[Trap] = []
    for name, block in (("delay", policy.delay), ("abort", policy.abort)):
        if block is None:
            continue
        verb = "delayed" if name == "delay" else "aborted"
        if "percentage" not in block.model_fields_set:
            out.append(Trap(
                f"{name} has no percentage: Envoy and Istio treat it as 0 %, so no request is {verb}; "
                "set percentage (e.g. {value: 100})",
                code="MS401", field=f"{name}.percentage", value="unset",
            ))
        elif block.percentage.numerator == 0:
            out.append(Trap(
                f"{name} percentage is 0 %: no request is {verb}",
                code="MS402", field=f"{name}.percentage", value="0%",
            ))
    if policy.delay is not None and int(policy.delay.fixed_delay * 1000 + 1e-9) == 0:
        out.append(Trap(
            "delay fixed_delay is below 1 ms: Envoy delays in whole milliseconds and injects nothing",
            code="MS403", field="delay.fixed_delay", value=f"{policy.delay.fixed_delay * 1e3:g}ms",
        ))
    if policy.max_active_faults == 0:
        out.append(Trap(
            "max_active_faults is 0: every fault overflows (faults_overflow) and none is injected",
            code="MS404", field="max_active_faults", value=0,
        ))
    return out
