"""Outlier detection (passive health checking), as Envoy does it.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`OutlierPolicy`: Envoy's ``config.cluster.v3.OutlierDetection``
  fields and defaults. Istio's DestinationRule ``outlierDetection`` spelling is read
  the way Istio's control plane translates it (:func:`from_istio`); App Mesh's
  VirtualNode ``outlierDetection`` through :func:`from_appmesh`.
* **Runtime** — :class:`OutlierDetector`: one per cluster, engine-free. The engine
  reports every upstream result with :meth:`OutlierDetector.record` and calls
  :meth:`OutlierDetector.on_interval` from its interval timer. Ejections are
  :class:`EjectionEvent` values whose :class:`EjectionAction` says what happened.
  :class:`HostSetUpdateMerger` reproduces how late the load balancer learns of an
  ejection (``common_lb_config.update_merge_window``).
* **Envoy** — :func:`to_envoy` writes the ``outlier_detection`` message,
  :func:`to_envoy_cluster` adds the panic threshold Istio sets next to it.

Semantics (``source/common/upstream/outlier_detection_impl.cc``; envoy.md section 4):

* **What counts** (``putHttpResponseCode``): every response code the router sees,
  retried attempts included. 500-599 is a failure; 502/503/504 also count as
  gateway failures, any other 5xx resets the gateway counter; anything else is a
  success and resets both counters. Local-origin results (:class:`OutlierResult`)
  are mapped to codes unless ``split_external_local_origin_errors``: a timeout is
  504, a connect failure or reset 503, ``LOCAL_ORIGIN_CONNECT_SUCCESS`` is not
  reported. Circuit-breaker overflows and "no healthy upstream" replies have no
  host and are **not** reported.
* **Consecutive detectors eject inline**, on the response that makes the counter
  equal the threshold (``++counter == threshold``; a threshold of 0 disables the
  detector). The detection is counted, the max-ejection rule and the enforcing
  draw decide whether the host is ejected, and the counter is reset either way.
  A host that is already ejected is not detected again (and its counter is not
  reset until it is un-ejected).
* **Max-ejection rule** (Envoy >= 1.27, PR #27909): the ejection is allowed only if
  ``100 * (ejections_active + 1) / total_hosts <= min(100, max_ejection_percent)``,
  i.e. counting the host **after** ejecting it (:func:`max_ejection_allows`). With
  the default 10 % a cluster of fewer than 10 hosts **never ejects anything**;
  every refused detection counts ``ejections_overflow``. The only exception is
  ``always_eject_one_host`` (Envoy >= 1.31), which allows an ejection whenever no
  host is ejected.
* **The interval tick** (:meth:`OutlierDetector.on_interval`, every ``interval``
  from detector start): (1) un-eject every host whose ejection time has passed,
  so an ejection really lasts until the first tick at or after it ends;
  (2) success-rate and failure-percentage detection over the request volumes of
  the interval that just ended; (3) decay of the ejection multiplier.
* **Ejection time** (:func:`ejection_duration`): ``min(base * m, max) + jitter``,
  where the multiplier ``m`` goes up by one on each ejection while
  ``m * base < max + base`` (:func:`next_multiplier`) and down by one on each tick
  at least one ``interval`` after the host's last un-ejection while it stays in
  (:func:`decay_multiplier`). ``jitter`` is drawn once per ejection, uniform over
  whole milliseconds in ``[0, max_ejection_time_jitter]``.
* **The load balancer learns late**: ejections and un-ejections are host-set
  updates that Envoy merges over ``common_lb_config.update_merge_window``
  (default 1 s): an update made more than one window after the last delivered
  one reaches the workers at once; otherwise it is held until one window after
  the first held update (:class:`HostSetUpdateMerger`). Each
  :class:`EjectionEvent` carries when its change becomes visible (``lb_at``).

Simplifications: hosts are fixed at construction (no EDS membership changes); one
priority (the max-ejection rule counts hosts of all priorities anyway); Envoy posts
consecutive-error detections from worker threads to the main thread, meshsim
handles them at once (Envoy's own event log shows the same, envoy.md A.2);
``detect_degraded_hosts`` and extension monitors are not modelled; runtime
overrides (``outlier_detection.*`` keys) are not read. The deprecated counters
``ejections_total``, ``ejections_consecutive_5xx`` and ``ejections_success_rate``
are not kept. Envoy draws a random number for every enforcing decision and every
ejection's jitter; meshsim draws only when the percentage is strictly between 0 and
100 or the jitter is non-zero (same distribution, fewer draws). When success rate
and failure percentage pick the same host in one sweep, Envoy's code would eject it
a second time (only a debug assertion guards it); meshsim ejects it once and
reports the second detection as ``NOT_ENFORCED``.

References
----------
``api/envoy/config/cluster/v3/outlier_detection.proto``;
``source/common/upstream/outlier_detection_impl.{h,cc}``;
``source/common/upstream/cluster_manager_impl.cc`` (``scheduleUpdate``);
docs ``intro/arch_overview/upstream/outlier``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import Field, field_validator, model_validator

from meshsim.latency import Duration, PositiveDuration
from meshsim.policies._model import PolicyModel, Trap, refuse, suggest
from meshsim.units import parse_duration, proto_duration

__all__ = [
    # defaults
    "DEFAULT_CONSECUTIVE_5XX",
    "DEFAULT_CONSECUTIVE_GATEWAY_FAILURE",
    "DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
    "DEFAULT_INTERVAL",
    "DEFAULT_BASE_EJECTION_TIME",
    "DEFAULT_MAX_EJECTION_TIME",
    "DEFAULT_MAX_EJECTION_TIME_JITTER",
    "DEFAULT_MAX_EJECTION_PERCENT",
    "DEFAULT_ENFORCING_CONSECUTIVE_5XX",
    "DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE",
    "DEFAULT_ENFORCING_CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
    "DEFAULT_ENFORCING_SUCCESS_RATE",
    "DEFAULT_ENFORCING_LOCAL_ORIGIN_SUCCESS_RATE",
    "DEFAULT_ENFORCING_FAILURE_PERCENTAGE",
    "DEFAULT_ENFORCING_FAILURE_PERCENTAGE_LOCAL_ORIGIN",
    "DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS",
    "DEFAULT_SUCCESS_RATE_REQUEST_VOLUME",
    "DEFAULT_SUCCESS_RATE_STDEV_FACTOR",
    "DEFAULT_FAILURE_PERCENTAGE_THRESHOLD",
    "DEFAULT_FAILURE_PERCENTAGE_MINIMUM_HOSTS",
    "DEFAULT_FAILURE_PERCENTAGE_REQUEST_VOLUME",
    "DEFAULT_UPDATE_MERGE_WINDOW",
    # config
    "OutlierPolicy",
    "from_istio",
    "from_appmesh",
    # pure math
    "EjectionPair",
    "success_rate_ejection_threshold",
    "failure_percentage_ejects",
    "max_ejection_allows",
    "next_multiplier",
    "decay_multiplier",
    "ejection_jitter",
    "ejection_duration",
    # runtime
    "OutlierResult",
    "EjectionType",
    "EjectionAction",
    "LbUpdate",
    "EjectionEvent",
    "HostSetUpdateMerger",
    "OutlierDetector",
    "STAT_NAMES",
    # Envoy
    "to_envoy",
    "to_istio",
    "to_envoy_cluster",
    "unsupported",
    "lint",
]

DEFAULT_CONSECUTIVE_5XX = 5
DEFAULT_CONSECUTIVE_GATEWAY_FAILURE = 5
DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE = 5
#: seconds between detection sweeps
DEFAULT_INTERVAL = 10.0
#: seconds
DEFAULT_BASE_EJECTION_TIME = 30.0
#: seconds; the effective default is ``max(300 s, base_ejection_time)``
DEFAULT_MAX_EJECTION_TIME = 300.0
DEFAULT_MAX_EJECTION_TIME_JITTER = 0.0
DEFAULT_MAX_EJECTION_PERCENT = 10
DEFAULT_ENFORCING_CONSECUTIVE_5XX = 100
DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE = 0
DEFAULT_ENFORCING_CONSECUTIVE_LOCAL_ORIGIN_FAILURE = 100
DEFAULT_ENFORCING_SUCCESS_RATE = 100
DEFAULT_ENFORCING_LOCAL_ORIGIN_SUCCESS_RATE = 100
DEFAULT_ENFORCING_FAILURE_PERCENTAGE = 0
DEFAULT_ENFORCING_FAILURE_PERCENTAGE_LOCAL_ORIGIN = 0
DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS = 5
DEFAULT_SUCCESS_RATE_REQUEST_VOLUME = 100
#: thousandths: 1900 means a factor of 1.9
DEFAULT_SUCCESS_RATE_STDEV_FACTOR = 1900
DEFAULT_FAILURE_PERCENTAGE_THRESHOLD = 85
DEFAULT_FAILURE_PERCENTAGE_MINIMUM_HOSTS = 5
DEFAULT_FAILURE_PERCENTAGE_REQUEST_VOLUME = 50
#: seconds; ``Cluster.CommonLbConfig.update_merge_window`` (a cluster field, not an outlier field)
DEFAULT_UPDATE_MERGE_WINDOW = 1.0

#: float slack when comparing times that Envoy compares in whole milliseconds
_EPS = 1e-9

_PERCENT_FIELDS = (
    "max_ejection_percent",
    "enforcing_consecutive_5xx",
    "enforcing_consecutive_gateway_failure",
    "enforcing_consecutive_local_origin_failure",
    "enforcing_success_rate",
    "enforcing_local_origin_success_rate",
    "enforcing_failure_percentage",
    "enforcing_failure_percentage_local_origin",
    "failure_percentage_threshold",
)

# --------------------------------------------------------------------------------------------------
# config


class OutlierPolicy(PolicyModel):
    """Envoy's ``OutlierDetection`` for one cluster: fields, defaults and validation.

    Parameters
    ----------
    consecutive_5xx
        5xx responses (and, unless split, local-origin failures) in a row that
        trigger a consecutive-5xx detection. Default 5; 0 disables the detector.
    consecutive_gateway_failure
        502/503/504 (and, unless split, local-origin failures) in a row. Default 5.
        Detected and counted, but **not enforced by default** (see
        ``enforcing_consecutive_gateway_failure``).
    consecutive_local_origin_failure
        Local-origin failures in a row (connect failure, reset, timeout); only used
        with ``split_external_local_origin_errors``. Default 5.
    interval
        Seconds between sweeps (un-ejection, success-rate and failure-percentage
        detection, multiplier decay). Default 10 s; must be > 0.
    base_ejection_time
        Seconds; an ejection lasts ``base_ejection_time`` x the ejection multiplier.
        Default 30 s; must be > 0.
    max_ejection_time
        Cap on the ejection time, seconds. Default (``None``) is
        ``max(300 s, base_ejection_time)``; an explicit value below
        ``base_ejection_time`` is refused, as Envoy does.
    max_ejection_time_jitter
        Up to this much (whole milliseconds, uniform) is added to each ejection.
        Default 0.
    max_ejection_percent
        0..100, default 10. An ejection is allowed only if the ejected share,
        **counting the host being ejected**, stays <= this (:func:`max_ejection_allows`).
    always_eject_one_host
        Allow an ejection whenever no host is ejected, whatever the percentage.
        Default false (Envoy >= 1.31).
    enforcing_consecutive_5xx, enforcing_consecutive_gateway_failure, enforcing_consecutive_local_origin_failure, enforcing_success_rate, enforcing_local_origin_success_rate, enforcing_failure_percentage, enforcing_failure_percentage_local_origin
        Percent chance (0..100) that a detection of that kind really ejects.
        Defaults 100, **0**, 100, 100, 100, **0**, 0.
    success_rate_minimum_hosts
        Hosts with enough volume needed for success-rate detection. Default 5.
    success_rate_request_volume
        Requests a host needs in one interval to take part in success-rate
        detection. Default 100.
    success_rate_stdev_factor
        Thousandths: hosts below ``mean - factor/1000 * stdev`` are outliers.
        Default 1900 (1.9).
    failure_percentage_threshold
        0..100: a host whose failure percentage is >= this is an outlier. Default 85.
    failure_percentage_minimum_hosts
        Default 5.
    failure_percentage_request_volume
        Default 50.
    split_external_local_origin_errors
        Count local-origin events (connect failure, reset, timeout) apart from
        HTTP responses. Default false.
    successful_active_health_check_uneject_host
        A passing active health check un-ejects the host at once. Default true.
    healthy_panic_threshold
        **Not an outlier field**: the cluster's
        ``common_lb_config.healthy_panic_threshold`` (percent) that Istio writes
        next to outlier detection (``minHealthPercent``, default 0 = panic
        disabled). ``None`` (the default) leaves the load balancer's own setting.

    Notes
    -----
    A mapping that uses any key of Istio's DestinationRule ``outlierDetection``
    (``consecutive5xxErrors``, ``consecutiveGatewayErrors``, ``baseEjectionTime``,
    ``maxEjectionPercent``, ``minHealthPercent``, ``splitExternalLocalOriginErrors``,
    ``consecutiveLocalOriginFailures``) is read as one, exactly as :func:`from_istio`
    does: success-rate ejection is switched off and the panic threshold is set.
    It cannot mix in Envoy-only keys. A block with only ``interval`` is read as
    Envoy's; call :func:`from_istio` to be explicit.

    Durations are float seconds; Envoy keeps whole milliseconds.

    References
    ----------
    ``api/envoy/config/cluster/v3/outlier_detection.proto`` (validation: ``interval``,
    ``base_ejection_time`` and ``max_ejection_time`` > 0, every percentage <= 100);
    ``DetectorImpl::create`` (max_ejection_time >= base_ejection_time).

    Examples
    --------
    >>> p = OutlierPolicy.model_validate({"consecutive_5xx": 3, "interval": "1s"})
    >>> p.consecutive_5xx, p.interval, p.effective_max_ejection_time
    (3, 1.0, 300.0)
    >>> q = OutlierPolicy.model_validate({"consecutive5xxErrors": 3, "maxEjectionPercent": 100})
    >>> q.enforcing_success_rate, q.max_ejection_percent, q.healthy_panic_threshold
    (0, 100, 0.0)
    """

    consecutive_5xx: int = Field(DEFAULT_CONSECUTIVE_5XX, ge=0, le=4294967295)
    consecutive_gateway_failure: int = Field(DEFAULT_CONSECUTIVE_GATEWAY_FAILURE, ge=0, le=4294967295)
    consecutive_local_origin_failure: int = Field(
        DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE, ge=0, le=4294967295
    )
    interval: PositiveDuration = DEFAULT_INTERVAL
    base_ejection_time: PositiveDuration = DEFAULT_BASE_EJECTION_TIME
    max_ejection_time: PositiveDuration | None = None
    max_ejection_time_jitter: Duration = DEFAULT_MAX_EJECTION_TIME_JITTER
    max_ejection_percent: int = DEFAULT_MAX_EJECTION_PERCENT
    always_eject_one_host: bool = False
    enforcing_consecutive_5xx: int = DEFAULT_ENFORCING_CONSECUTIVE_5XX
    enforcing_consecutive_gateway_failure: int = DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE
    enforcing_consecutive_local_origin_failure: int = DEFAULT_ENFORCING_CONSECUTIVE_LOCAL_ORIGIN_FAILURE
    enforcing_success_rate: int = DEFAULT_ENFORCING_SUCCESS_RATE
    enforcing_local_origin_success_rate: int = DEFAULT_ENFORCING_LOCAL_ORIGIN_SUCCESS_RATE
    enforcing_failure_percentage: int = DEFAULT_ENFORCING_FAILURE_PERCENTAGE
    enforcing_failure_percentage_local_origin: int = DEFAULT_ENFORCING_FAILURE_PERCENTAGE_LOCAL_ORIGIN
    success_rate_minimum_hosts: int = Field(DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS, ge=0, le=4294967295)
    success_rate_request_volume: int = Field(DEFAULT_SUCCESS_RATE_REQUEST_VOLUME, ge=0, le=4294967295)
    success_rate_stdev_factor: int = Field(DEFAULT_SUCCESS_RATE_STDEV_FACTOR, ge=0, le=4294967295)
    failure_percentage_threshold: int = DEFAULT_FAILURE_PERCENTAGE_THRESHOLD
    failure_percentage_minimum_hosts: int = Field(
        DEFAULT_FAILURE_PERCENTAGE_MINIMUM_HOSTS, ge=0, le=4294967295
    )
    failure_percentage_request_volume: int = Field(
        DEFAULT_FAILURE_PERCENTAGE_REQUEST_VOLUME, ge=0, le=4294967295
    )
    split_external_local_origin_errors: bool = False
    successful_active_health_check_uneject_host: bool = True
    healthy_panic_threshold: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(k in _ISTIO_ONLY_KEYS for k in data):
            return _istio_to_envoy(data)
        return data

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """Every key accepted: Envoy's field names, then Istio's spelling."""
        return [*cls.model_fields, *(k for k in _ISTIO_KEYS if k not in cls.model_fields)]

    @field_validator(*_PERCENT_FIELDS, mode="before")
    @classmethod
    def _percent(cls, value: Any, info: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise refuse(f"{info.field_name} {value!r} is not a whole percentage; allowed 0..100")
        if not 0 <= value <= 100:
            raise refuse(
                f"{info.field_name} {value} is outside 0..100 (Envoy's validator refuses it: uint32 lte 100)"
            )
        return value

    @model_validator(mode="after")
    def _max_not_below_base(self) -> OutlierPolicy:
        if self.max_ejection_time is not None and self.max_ejection_time < self.base_ejection_time:
            raise refuse(
                f"max_ejection_time {self.max_ejection_time:g}s is below base_ejection_time "
                f"{self.base_ejection_time:g}s; Envoy refuses this "
                "(outlier detector's max_ejection_time cannot be smaller than base_ejection_time)"
            )
        return self

    @property
    def effective_max_ejection_time(self) -> float:
        """``max_ejection_time``, or Envoy's default ``max(300 s, base_ejection_time)``."""
        if self.max_ejection_time is not None:
            return self.max_ejection_time
        return max(DEFAULT_MAX_EJECTION_TIME, self.base_ejection_time)

    @property
    def stdev_factor(self) -> float:
        """``success_rate_stdev_factor / 1000`` (1.9 by default)."""
        return self.success_rate_stdev_factor / 1000.0

    def smallest_cluster_that_can_eject(self) -> int | None:
        """The fewest hosts for which one ejection passes the max-ejection rule.

        ``None`` when no cluster size allows it (``max_ejection_percent`` 0
        without ``always_eject_one_host``). With the defaults this is **10**.

        Examples
        --------
        >>> OutlierPolicy().smallest_cluster_that_can_eject()
        10
        >>> OutlierPolicy(max_ejection_percent=34).smallest_cluster_that_can_eject()
        3
        """
        if self.always_eject_one_host:
            return 1
        if self.max_ejection_percent == 0:
            return None
        return math.ceil(100 / self.max_ejection_percent - 1e-12)


# Istio DestinationRule.trafficPolicy.outlierDetection (istio/api networking/v1alpha3/destination_rule.proto)
_ISTIO_KEYS = (
    "consecutive5xxErrors",
    "consecutiveGatewayErrors",
    "interval",
    "baseEjectionTime",
    "maxEjectionPercent",
    "minHealthPercent",
    "splitExternalLocalOriginErrors",
    "consecutiveLocalOriginFailures",
)
_ISTIO_ONLY_KEYS = frozenset(_ISTIO_KEYS) - {"interval"}
_ISTIO_REFUSED = {
    "consecutiveErrors": "deprecated and ignored by Istio; use consecutive5xxErrors or consecutiveGatewayErrors",
    "outlierDetectionHttpErrorCodes": "not modelled by meshsim (it becomes an HttpProtocolOptions error_matcher)",
}


def _istio_int(spec: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    if key not in spec or spec[key] is None:
        return None
    v = spec[key]
    if isinstance(v, Mapping) and set(v) == {"value"}:  # protobuf wrapper written out
        v = v["value"]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise refuse(f"outlierDetection.{key} {v!r} is not a whole number in {lo}..{hi}", subpath=key)
    return v


def _istio_duration(spec: Mapping[str, Any], key: str) -> float | None:
    if key not in spec or spec[key] is None:
        return None
    try:
        seconds = parse_duration(spec[key])
    except ValueError as exc:
        raise refuse(f"outlierDetection.{key}: {exc}", subpath=key) from None
    if seconds < 0.001:
        raise refuse(f"outlierDetection.{key} {spec[key]!r} is below Istio's minimum of 1ms", subpath=key)
    return seconds


def _istio_to_envoy(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Envoy field values from an Istio ``outlierDetection`` block, as ``applyOutlierDetection`` does."""
    for key in spec:
        if key in _ISTIO_REFUSED:
            raise refuse(f"outlierDetection.{key} is {_ISTIO_REFUSED[key]}", subpath=str(key))
        if key not in _ISTIO_KEYS:
            if key in OutlierPolicy.model_fields:
                raise refuse(
                    f"{key!r} is Envoy spelling but this block uses Istio's "
                    f"({', '.join(k for k in spec if k in _ISTIO_ONLY_KEYS)}); use one spelling"
                )
            hint = suggest(key, _ISTIO_KEYS)
            raise refuse(
                f"unknown key {key!r} in Istio outlierDetection{hint} (allowed: {', '.join(_ISTIO_KEYS)})"
            )
    out: dict[str, Any] = {"enforcing_success_rate": 0}
    c5 = _istio_int(spec, "consecutive5xxErrors", 0, 4294967295)
    if c5 is not None:
        out["consecutive_5xx"] = c5
        out["enforcing_consecutive_5xx"] = 100 if c5 > 0 else 0
    gw = _istio_int(spec, "consecutiveGatewayErrors", 0, 4294967295)
    if gw is not None:
        out["consecutive_gateway_failure"] = gw
        out["enforcing_consecutive_gateway_failure"] = 100 if gw > 0 else 0
    interval = _istio_duration(spec, "interval")
    if interval is not None:
        out["interval"] = interval
    base = _istio_duration(spec, "baseEjectionTime")
    if base is not None:
        out["base_ejection_time"] = base
    mep = _istio_int(spec, "maxEjectionPercent", 0, 100)
    if mep:
        out["max_ejection_percent"] = mep
    split = spec.get("splitExternalLocalOriginErrors", False)
    if not isinstance(split, bool):
        raise refuse(f"outlierDetection.splitExternalLocalOriginErrors {split!r} is not true/false")
    local = _istio_int(spec, "consecutiveLocalOriginFailures", 0, 4294967295)
    if split:
        out["split_external_local_origin_errors"] = True
        if local:
            out["consecutive_local_origin_failure"] = local
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    mhp = _istio_int(spec, "minHealthPercent", 0, 100)
    out["healthy_panic_threshold"] = float(mhp or 0)
    return out


def from_istio(spec: Mapping[str, Any] | None) -> OutlierPolicy:
    """The Envoy policy Istio writes for a DestinationRule ``outlierDetection`` block.

    Mapping (``pilot/pkg/networking/core/cluster_traffic_policy.go``,
    ``applyOutlierDetection``):

    ================================  ============================================================
    Istio                             Envoy
    ================================  ============================================================
    (always)                          ``enforcing_success_rate: 0``
    ``consecutive5xxErrors: N``       ``consecutive_5xx: N``, ``enforcing_consecutive_5xx``: 100
                                      (0 if N = 0); unset: Envoy's 5 at 100 % stays
    ``consecutiveGatewayErrors: N``   ``consecutive_gateway_failure: N``, enforcing 100 (0 if
                                      N = 0); unset: Envoy's 5 at **0 %** (never ejects)
    ``interval``                      ``interval`` (10 s)
    ``baseEjectionTime``              ``base_ejection_time`` (30 s)
    ``maxEjectionPercent`` (> 0)      ``max_ejection_percent`` (else Envoy's 10: no ejection
                                      with fewer than 10 endpoints)
    ``splitExternalLocalOriginErrors``  ``split_external_local_origin_errors``,
                                      ``enforcing_local_origin_success_rate: 0``, and with
                                      ``consecutiveLocalOriginFailures`` > 0
                                      ``consecutive_local_origin_failure`` (enforcing 100)
    ``minHealthPercent`` (0)          ``common_lb_config.healthy_panic_threshold`` (kept in
                                      :attr:`OutlierPolicy.healthy_panic_threshold`): panic is
                                      **off** whenever outlierDetection is present
    ================================  ============================================================

    Parameters
    ----------
    spec
        The ``outlierDetection`` mapping in Istio's JSON/YAML spelling (``None``
        or ``{}`` for an empty block, which still disables success-rate
        ejection and panic).

    Examples
    --------
    >>> p = from_istio({"consecutiveGatewayErrors": 3, "interval": "5s"})
    >>> p.consecutive_gateway_failure, p.enforcing_consecutive_gateway_failure, p.consecutive_5xx
    (3, 100, 5)
    >>> p.enforcing_success_rate, p.max_ejection_percent, p.healthy_panic_threshold
    (0, 10, 0.0)
    """
    from pydantic_core import PydanticCustomError

    from meshsim._exceptions import ConfigError

    try:
        fields = _istio_to_envoy(spec or {})
    except PydanticCustomError as exc:  # raised outside model validation: give the ConfigError of a reader
        ctx = exc.context or {}
        raise ConfigError(str(ctx.get("message") or exc.message()), path=str(ctx.get("subpath") or "")) from None
    return OutlierPolicy.model_validate(fields)


_APPMESH_KEYS = ("maxServerErrors", "interval", "baseEjectionDuration", "maxEjectionPercent")


def _appmesh_duration(value: Any, key: str) -> float:
    """App Mesh ``Duration`` ``{unit: ms|s, value: N}`` (or a duration string) -> seconds."""
    if isinstance(value, Mapping):
        unit, amount = value.get("unit"), value.get("value")
        if unit not in ("ms", "s") or isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise refuse(f"outlierDetection.{key} {dict(value)!r} is not {{unit: ms|s, value: N}}", key)
        if amount <= 0:
            raise refuse(f"outlierDetection.{key} must be positive; got {amount}{unit}", key)
        return float(amount) / (1000.0 if unit == "ms" else 1.0)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise refuse(f"outlierDetection.{key}: {exc}", key) from None
    if seconds <= 0:
        raise refuse(f"outlierDetection.{key} must be positive; got {value!r}", key)
    return seconds


def from_appmesh(spec: Mapping[str, Any]) -> OutlierPolicy:
    """The Envoy policy for an App Mesh VirtualNode listener ``outlierDetection``.

    ``maxServerErrors`` -> ``consecutive_5xx``, ``interval`` -> ``interval``,
    ``baseEjectionDuration`` -> ``base_ejection_time``, ``maxEjectionPercent`` ->
    ``max_ejection_percent``. All four are required by App Mesh. Durations are App
    Mesh's ``{unit: ms|s, value: N}`` (a string such as ``"10s"`` is accepted too).

    Notes
    -----
    The App Mesh control plane is closed source: the mapping is inferred from its
    API and documentation (envoy.md 10.2), and every other field keeps Envoy's
    default. AWS's text "will eject at least one host regardless of the value"
    describes Envoy before 1.27; meshsim applies today's rule (no
    ``always_eject_one_host``), so with ``maxEjectionPercent`` 10 and fewer than
    10 endpoints nothing is ejected.

    Examples
    --------
    >>> p = from_appmesh({"maxServerErrors": 5, "interval": {"unit": "s", "value": 10},
    ...                   "baseEjectionDuration": {"unit": "s", "value": 30}, "maxEjectionPercent": 50})
    >>> p.consecutive_5xx, p.interval, p.base_ejection_time, p.max_ejection_percent
    (5, 10.0, 30.0, 50)
    """
    if not isinstance(spec, Mapping):
        raise refuse(f"App Mesh outlierDetection must be a mapping; got {spec!r}")
    for key in spec:
        if key not in _APPMESH_KEYS:
            hint = suggest(key, _APPMESH_KEYS)
            raise refuse(
                f"unknown key {key!r} in App Mesh outlierDetection{hint} (allowed: {', '.join(_APPMESH_KEYS)})"
            )
    missing = [k for k in _APPMESH_KEYS if k not in spec]
    if missing:
        raise refuse(f"App Mesh outlierDetection needs {', '.join(missing)} (all four fields are required)")
    mse = spec["maxServerErrors"]
    if isinstance(mse, bool) or not isinstance(mse, int) or mse < 1:
        raise refuse(
            f"outlierDetection.maxServerErrors {mse!r} must be a whole number >= 1", "maxServerErrors"
        )
    return OutlierPolicy.model_validate(
        {
            "consecutive_5xx": mse,
            "interval": _appmesh_duration(spec["interval"], "interval"),
            "base_ejection_time": _appmesh_duration(spec["baseEjectionDuration"], "baseEjectionDuration"),
            "max_ejection_percent": spec["maxEjectionPercent"],
        }
    )


# --------------------------------------------------------------------------------------------------
# pure math


class EjectionPair(NamedTuple):
    """Mean success rate of the valid hosts and the ejection threshold (Envoy ``EjectionPair``)."""

    mean: float
    threshold: float


def success_rate_ejection_threshold(rates: Sequence[float], factor: float) -> EjectionPair:
    """Envoy's ``successRateEjectionThreshold``: ``mean - factor * stdev`` (population stdev).

    Parameters
    ----------
    rates
        Success rates in percent (0..100) of the hosts with enough volume; not empty.
    factor
        ``success_rate_stdev_factor / 1000`` (1.9 by default).

    Returns
    -------
    EjectionPair
        ``(mean, threshold)``; hosts with a success rate strictly below
        ``threshold`` are outliers.

    Examples
    --------
    Envoy's own worked example (``outlier_detection_impl.cc``):

    >>> success_rate_ejection_threshold([50, 100, 100, 100, 100], 1.9)
    EjectionPair(mean=90.0, threshold=52.0)
    """
    n = len(rates)
    if n == 0:
        raise ValueError("success_rate_ejection_threshold needs at least one success rate")
    total = 0.0
    for r in rates:
        total += r
    mean = total / n
    variance = 0.0
    for r in rates:
        variance += (r - mean) ** 2
    variance /= n
    return EjectionPair(mean, mean - factor * math.sqrt(variance))


def failure_percentage_ejects(success_rate: float, threshold: float) -> bool:
    """Whether a host's failure percentage ``100 - success_rate`` reaches ``threshold``.

    Examples
    --------
    >>> failure_percentage_ejects(15.0, 85), failure_percentage_ejects(15.5, 85)
    (True, False)
    """
    return (100.0 - success_rate) >= threshold


def max_ejection_allows(
    ejected_now: int, total_hosts: int, max_percent: float, always_eject_one_host: bool = False
) -> bool:
    """Envoy's max-ejection rule: may one more host be ejected?

    The share is computed **after** counting the new ejection:
    ``100 * (ejected_now + 1) / total_hosts <= min(100, max_percent)``
    (``DetectorImpl::ejectHost``, Envoy >= 1.27). ``always_eject_one_host`` also
    allows it whenever ``ejected_now == 0``.

    Parameters
    ----------
    ejected_now
        Hosts ejected before this ejection (``ejections_active``).
    total_hosts
        All hosts of the cluster (every priority).
    max_percent
        ``max_ejection_percent``.
    always_eject_one_host
        Envoy's ``always_eject_one_host``.

    Examples
    --------
    With the default 10 %, a 5-host cluster cannot eject its bad host (20 % > 10 %):

    >>> max_ejection_allows(0, 5, 10)
    False
    >>> max_ejection_allows(0, 10, 10), max_ejection_allows(1, 10, 10)
    (True, False)
    >>> max_ejection_allows(0, 3, 33), max_ejection_allows(0, 3, 34)
    (False, True)
    >>> max_ejection_allows(0, 5, 10, always_eject_one_host=True)
    True
    """
    if total_hosts <= 0:
        return False
    allowed = 100.0 * (ejected_now + 1) / total_hosts <= min(100.0, max_percent)
    if always_eject_one_host and ejected_now == 0:
        return True
    return allowed


def next_multiplier(multiplier: int, base: float, max_time: float) -> int:
    """The ejection multiplier after one more ejection.

    Envoy (``ejectHost``) adds one while ``multiplier * base < max + base``, so the
    multiplier can reach one step past ``max / base``; the ejection time itself
    is capped at ``max`` (:func:`ejection_duration`).

    Examples
    --------
    >>> m = 0
    >>> for _ in range(12):
    ...     m = next_multiplier(m, 30.0, 300.0)
    >>> m
    11
    """
    return multiplier + 1 if multiplier * base < max_time + base else multiplier


def decay_multiplier(multiplier: int, since_unejection: float | None, interval: float) -> int:
    """The multiplier after an interval tick for a host that is **not** ejected.

    Envoy (``onIntervalTimer``) takes one off when the host was un-ejected at
    least one ``interval`` ago; a host never ejected (``since_unejection`` is
    ``None``) keeps 0. So after an un-ejection the multiplier falls by one per
    tick, starting with the second tick.

    Examples
    --------
    >>> decay_multiplier(3, 10.0, 10.0), decay_multiplier(3, 0.0, 10.0), decay_multiplier(0, 50.0, 10.0)
    (2, 3, 0)
    """
    if multiplier > 0 and since_unejection is not None and since_unejection + _EPS >= interval:
        return multiplier - 1
    return multiplier


def ejection_jitter(max_jitter: float, u: float) -> float:
    """Seconds of jitter for one ejection: ``random() % (max_jitter_ms + 1)`` milliseconds.

    Parameters
    ----------
    max_jitter
        ``max_ejection_time_jitter`` in seconds.
    u
        A uniform draw in [0, 1).

    Examples
    --------
    >>> ejection_jitter(0.0, 0.7), ejection_jitter(1.0, 0.0), ejection_jitter(1.0, 0.9999999)
    (0.0, 0.0, 1.0)
    """
    jitter_ms = int(round(max_jitter * 1000.0))
    if jitter_ms <= 0:
        return 0.0
    return min(int(u * (jitter_ms + 1)), jitter_ms) / 1000.0


def ejection_duration(base: float, multiplier: int, max_time: float, jitter: float = 0.0) -> float:
    """How long an ejection lasts before the next tick may un-eject the host.

    ``min(base * multiplier, max_time) + jitter`` (``checkHostForUneject``). The
    multiplier is the number of times the host was ejected in a row, less one
    for every decayed interval (:func:`next_multiplier`, :func:`decay_multiplier`).
    The host comes back at the **first interval tick** at or after this time.

    Parameters
    ----------
    base
        ``base_ejection_time``, seconds.
    multiplier
        The ejection multiplier after this ejection (1 for a first ejection).
    max_time
        ``max_ejection_time`` (effective), seconds.
    jitter
        This ejection's jitter in seconds (:func:`ejection_jitter`).

    Examples
    --------
    >>> ejection_duration(30.0, 1, 300.0), ejection_duration(30.0, 2, 300.0), ejection_duration(30.0, 11, 300.0)
    (30.0, 60.0, 300.0)
    >>> ejection_duration(30.0, 11, 300.0, jitter=0.25)
    300.25
    """
    return min(base * multiplier, max_time) + jitter


# --------------------------------------------------------------------------------------------------
# runtime


class OutlierResult(enum.Enum):
    """Envoy's ``Outlier::Result``: what the router reports besides response codes.

    Without ``split_external_local_origin_errors`` they become codes:
    ``LOCAL_ORIGIN_TIMEOUT`` -> 504, ``LOCAL_ORIGIN_CONNECT_FAILED`` -> 503,
    ``EXT_ORIGIN_REQUEST_FAILED`` -> 500, ``*_SUCCESS`` -> 200, and
    ``LOCAL_ORIGIN_CONNECT_SUCCESS`` is not reported at all. With the split,
    ``LOCAL_ORIGIN_TIMEOUT`` and ``LOCAL_ORIGIN_CONNECT_FAILED`` feed only the
    local-origin counter, ``LOCAL_ORIGIN_CONNECT_SUCCESS[_FINAL]`` resets it, and
    HTTP codes feed only the external counters.

    The router reports a connect failure or upstream reset (not a
    circuit-breaker overflow) as ``LOCAL_ORIGIN_CONNECT_FAILED``, a per-try or
    global timeout as ``LOCAL_ORIGIN_TIMEOUT``, and a pool-ready stream as
    ``LOCAL_ORIGIN_CONNECT_SUCCESS``.
    """

    EXT_ORIGIN_REQUEST_SUCCESS = "ext_origin_request_success"
    EXT_ORIGIN_REQUEST_FAILED = "ext_origin_request_failed"
    LOCAL_ORIGIN_CONNECT_SUCCESS = "local_origin_connect_success"
    LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL = "local_origin_connect_success_final"
    LOCAL_ORIGIN_TIMEOUT = "local_origin_timeout"
    LOCAL_ORIGIN_CONNECT_FAILED = "local_origin_connect_failed"


_RESULT_CODE: dict[OutlierResult, int | None] = {
    OutlierResult.EXT_ORIGIN_REQUEST_SUCCESS: 200,
    OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL: 200,
    OutlierResult.LOCAL_ORIGIN_TIMEOUT: 504,
    OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED: 503,
    OutlierResult.EXT_ORIGIN_REQUEST_FAILED: 500,
    OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS: None,
}


class EjectionType(enum.Enum):
    """Envoy's ``OutlierEjectionType``; the value is the stat-name suffix."""

    CONSECUTIVE_5XX = "consecutive_5xx"
    CONSECUTIVE_GATEWAY_FAILURE = "consecutive_gateway_failure"
    CONSECUTIVE_LOCAL_ORIGIN_FAILURE = "consecutive_local_origin_failure"
    SUCCESS_RATE = "success_rate"
    SUCCESS_RATE_LOCAL_ORIGIN = "local_origin_success_rate"
    FAILURE_PERCENTAGE = "failure_percentage"
    FAILURE_PERCENTAGE_LOCAL_ORIGIN = "local_origin_failure_percentage"


class EjectionAction(enum.Enum):
    """What one outlier event did.

    ``EJECT``: the host is ejected (``ejections_enforced_*``). ``NOT_ENFORCED``:
    detected and allowed by the max-ejection rule, but the enforcing draw said
    no (Envoy logs ``enforced: false``). ``OVERFLOW``: detected but refused by
    the max-ejection rule (``ejections_overflow``). ``UNEJECT``: the host is back.
    """

    EJECT = "eject"
    NOT_ENFORCED = "not_enforced"
    OVERFLOW = "overflow"
    UNEJECT = "uneject"


class LbUpdate(enum.Enum):
    """How a host-set change reaches the load balancer (:class:`HostSetUpdateMerger`).

    ``IMMEDIATE``: visible now; call :meth:`HostSetUpdateMerger.deliver` at once.
    ``SCHEDULED``: held; schedule :meth:`HostSetUpdateMerger.deliver` at ``lb_at``.
    ``MERGED``: joins an update already scheduled for ``lb_at``.
    """

    IMMEDIATE = "immediate"
    SCHEDULED = "scheduled"
    MERGED = "merged"


class EjectionEvent(NamedTuple):
    """One outlier event (Envoy's outlier event log line, plus timing for the engine).

    Attributes
    ----------
    time
        Seconds, when it happened.
    host
        The host id given to :class:`OutlierDetector`.
    action
        :class:`EjectionAction`.
    type
        :class:`EjectionType` of the detection; ``None`` for ``UNEJECT``.
    num_ejections
        Times the host has been ejected so far (never decays).
    duration
        For ``EJECT``: :func:`ejection_duration` of this ejection (before rounding
        up to the next tick); else ``None``.
    lb_update
        For ``EJECT``/``UNEJECT``: how the change reaches the load balancer
        (:class:`LbUpdate`); else ``None``.
    lb_at
        When the load balancer sees the change (``time`` if immediate); ``None``
        when the host set does not change.
    """

    time: float
    host: Hashable
    action: EjectionAction
    type: EjectionType | None
    num_ejections: int
    duration: float | None = None
    lb_update: LbUpdate | None = None
    lb_at: float | None = None


#: The stats an :class:`OutlierDetector` keeps, with Envoy's names (``cluster.<name>.`` prefix omitted).
STAT_NAMES: tuple[str, ...] = (
    "outlier_detection.ejections_active",
    "outlier_detection.ejections_overflow",
    "outlier_detection.ejections_enforced_total",
    *(f"outlier_detection.ejections_detected_{t.value}" for t in EjectionType),
    *(f"outlier_detection.ejections_enforced_{t.value}" for t in EjectionType),
)


class HostSetUpdateMerger:
    """When the workers' load balancers see a host health change.

    Envoy's cluster manager merges health-only host-set updates (outlier
    ejections and un-ejections, active health check transitions) over
    ``common_lb_config.update_merge_window`` (default 1 s), per cluster and
    priority (``ClusterManagerImpl::scheduleUpdate``):

    * if more than one window (in whole milliseconds) has passed since the last
      delivered update, the update is delivered **at once** and any held update
      is delivered with it (its timer is cancelled);
    * otherwise it is **held**; the first held update arms a timer of one window,
      and when it fires every held update is delivered together.

    A delivered update carries the whole host set as it is then, so the changes
    become visible in order. With ``window = 0`` every update is immediate.

    Use one merger per cluster, shared by its :class:`OutlierDetector` and the
    engine's health-check handling.

    Parameters
    ----------
    window
        ``update_merge_window`` in seconds (>= 0).

    Attributes
    ----------
    pending_at
        When the held updates will be delivered, or ``None``.
    stats
        Envoy's ``cluster_manager.`` counters: ``cluster_updated`` (immediate
        deliveries), ``cluster_updated_via_merge``, ``update_merge_cancelled``,
        ``update_out_of_merge_window``.

    Examples
    --------
    >>> m = HostSetUpdateMerger(1.0)
    >>> m.submit(10.0, "eject a")
    (<LbUpdate.IMMEDIATE: 'immediate'>, 10.0)
    >>> m.deliver(10.0)
    ['eject a']
    >>> m.submit(10.3, "eject b"), m.submit(10.5, "uneject a")
    ((<LbUpdate.SCHEDULED: 'scheduled'>, 11.3), (<LbUpdate.MERGED: 'merged'>, 11.3))
    >>> m.deliver(11.0), m.deliver(11.3)
    ([], ['eject b', 'uneject a'])
    """

    __slots__ = ("window", "_window_ms", "_last_updated", "pending_at", "_held", "_ready", "stats")

    def __init__(self, window: float = DEFAULT_UPDATE_MERGE_WINDOW) -> None:
        if not (window >= 0 and math.isfinite(window)):
            raise ValueError(f"update_merge_window {window!r} must be a finite duration >= 0")
        self.window = float(window)
        self._window_ms = int(round(window * 1000.0))
        self._last_updated: float | None = None
        self.pending_at: float | None = None
        self._held: list[Any] = []
        self._ready: list[Any] = []
        self.stats: dict[str, int] = {
            "cluster_manager.cluster_updated": 0,
            "cluster_manager.cluster_updated_via_merge": 0,
            "cluster_manager.update_merge_cancelled": 0,
            "cluster_manager.update_out_of_merge_window": 0,
        }

    def _fire_if_due(self, now: float) -> None:
        if self.pending_at is not None and now + _EPS >= self.pending_at:
            self._last_updated = self.pending_at
            self.pending_at = None
            self._ready.extend(self._held)
            self._held.clear()
            self.stats["cluster_manager.cluster_updated_via_merge"] += 1

    def submit(self, now: float, change: Any = None) -> tuple[LbUpdate, float]:
        """Record a host health change made at ``now``.

        Parameters
        ----------
        now
            Seconds.
        change
            Anything; :meth:`deliver` hands it back when the LB sees it.

        Returns
        -------
        (LbUpdate, float)
            How and when (seconds) the load balancer sees it.
        """
        how, at = self._decide(now)
        self._store(how, change)
        return how, at

    def _decide(self, now: float) -> tuple[LbUpdate, float]:
        self._fire_if_due(now)
        if self._window_ms <= 0:
            self.stats["cluster_manager.cluster_updated"] += 1
            return LbUpdate.IMMEDIATE, now
        last = self._last_updated
        out_of_window = last is None or int((now - last) * 1000.0 + 1e-6) > self._window_ms
        if out_of_window:
            self.stats["cluster_manager.update_out_of_merge_window"] += 1
            if self.pending_at is not None:
                self.stats["cluster_manager.update_merge_cancelled"] += 1
                self.pending_at = None
            self._ready.extend(self._held)
            self._held.clear()
            self._last_updated = now
            self.stats["cluster_manager.cluster_updated"] += 1
            return LbUpdate.IMMEDIATE, now
        if self.pending_at is None:
            self.pending_at = now + self.window
            return LbUpdate.SCHEDULED, self.pending_at
        return LbUpdate.MERGED, self.pending_at

    def _store(self, how: LbUpdate, change: Any) -> None:
        (self._ready if how is LbUpdate.IMMEDIATE else self._held).append(change)

    def deliver(self, now: float) -> list[Any]:
        """The changes that reach the load balancer at ``now``, oldest first.

        Call it right after an ``IMMEDIATE`` submit and when a ``SCHEDULED``
        time arrives; a timer made stale by a later immediate delivery gets ``[]``.
        """
        self._fire_if_due(now)
        out, self._ready = self._ready, []
        return out

    def __repr__(self) -> str:
        return f"HostSetUpdateMerger(window={self.window:g}, pending_at={self.pending_at!r})"


class OutlierDetector:
    """Envoy's outlier detector for one cluster, without an engine.

    Parameters
    ----------
    policy
        The cluster's :class:`OutlierPolicy`.
    hosts
        The cluster's host ids (any hashable, e.g. ints), all priorities. Their
        order is the detector's iteration order (deterministic).
    rng
        A ``numpy.random.Generator`` (or a seed) for the enforcing draws and the
        ejection jitter; only drawn from when an enforcing percentage is strictly
        between 0 and 100 or ``max_ejection_time_jitter`` > 0. Any object with a
        ``random() -> float`` method works.
    merger
        The cluster's :class:`HostSetUpdateMerger`; default one with Envoy's 1 s
        window. Pass ``HostSetUpdateMerger(0)`` for an LB that learns at once.
    keep_events
        Keep every :class:`EjectionEvent` in :attr:`events` (Envoy's outlier
        event log). Off by default.

    Notes
    -----
    What the engine calls, and when:

    1. For every upstream attempt that reached a host, when its outcome is
       known: ``record(host, status, now)`` with the response code (retried
       attempts included), or ``record(host, OutlierResult.LOCAL_ORIGIN_TIMEOUT,
       now)`` on a per-try/global timeout, ``LOCAL_ORIGIN_CONNECT_FAILED`` on a
       connect failure or reset (never for circuit-breaker overflow or "no
       healthy upstream"). With ``split_external_local_origin_errors`` also
       ``record(host, OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS, now)`` when the
       attempt gets its connection. A returned ``EJECT`` event means the host is
       ejected now; the load balancer sees it at ``event.lb_at``.
    2. Every :attr:`interval` seconds from the detector's start (the first tick
       at ``start + interval``): ``on_interval(now)``; apply the returned events
       in order.
    3. When an active health check passes and the host is healthy to the
       health checker: ``on_health_check_success(host, now)``.
    4. The engine's load-balancer view follows :class:`HostSetUpdateMerger`:
       ``merger.deliver(t)`` at each ``IMMEDIATE`` event's time and at each
       ``SCHEDULED`` ``lb_at``; the returned changes are :class:`EjectionEvent`
       objects (``EJECT`` -> exclude the host, ``UNEJECT`` -> include it).

    Envoy also drains an ejected host's connection pools; that is the engine's
    business.

    Examples
    --------
    >>> det = OutlierDetector(OutlierPolicy(max_ejection_percent=50), hosts=range(5))
    >>> [det.record(0, 503, t) for t in (1.0, 1.1, 1.2, 1.3)]
    [None, None, None, None]
    >>> ev = det.record(0, 503, 1.4)
    >>> ev.action, ev.type, ev.duration, ev.lb_at
    (<EjectionAction.EJECT: 'eject'>, <EjectionType.CONSECUTIVE_5XX: 'consecutive_5xx'>, 30.0, 1.4)
    >>> det.ejected_hosts, det.stats["outlier_detection.ejections_active"]
    ((0,), 1)
    >>> [e.action.value for e in det.on_interval(30.0)], [e.action.value for e in det.on_interval(40.0)]
    ([], ['uneject'])
    """

    __slots__ = (
        "policy",
        "hosts",
        "stats",
        "events",
        "merger",
        "_index",
        "_rng",
        "_keep",
        "_n",
        "_split",
        "_t5xx",
        "_tgw",
        "_tlocal",
        "_interval",
        "_base",
        "_max",
        "_jitter_ms",
        "_max_pct",
        "_always_one",
        "_enforcing",
        "_sr_min_hosts",
        "_sr_volume",
        "_sr_factor",
        "_fp_threshold",
        "_fp_min_hosts",
        "_fp_volume",
        "_hc_uneject",
        "_active",
        "_c5xx",
        "_cgw",
        "_clocal",
        "_ext_total",
        "_ext_success",
        "_loc_total",
        "_loc_success",
        "_ejected",
        "_num_ejections",
        "_multiplier",
        "_last_ejection",
        "_last_unejection",
        "_jitter",
    )

    def __init__(
        self,
        policy: OutlierPolicy,
        hosts: Iterable[Hashable],
        *,
        rng: np.random.Generator | int | None = None,
        merger: HostSetUpdateMerger | None = None,
        keep_events: bool = False,
    ) -> None:
        self.policy = policy
        self.hosts: tuple[Hashable, ...] = tuple(hosts)
        self._index: dict[Hashable, int] = {}
        for i, h in enumerate(self.hosts):
            if h in self._index:
                raise ValueError(f"host {h!r} is given twice")
            self._index[h] = i
        n = self._n = len(self.hosts)
        if rng is None or isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(rng)
        self._rng = rng
        self.merger = merger if merger is not None else HostSetUpdateMerger()
        self._keep = keep_events
        self.events: list[EjectionEvent] = []
        self._split = policy.split_external_local_origin_errors
        self._t5xx = policy.consecutive_5xx
        self._tgw = policy.consecutive_gateway_failure
        self._tlocal = policy.consecutive_local_origin_failure
        self._interval = policy.interval
        self._base = policy.base_ejection_time
        self._max = policy.effective_max_ejection_time
        self._jitter_ms = int(round(policy.max_ejection_time_jitter * 1000.0))
        self._max_pct = policy.max_ejection_percent
        self._always_one = policy.always_eject_one_host
        self._enforcing: dict[EjectionType, int] = {
            EjectionType.CONSECUTIVE_5XX: policy.enforcing_consecutive_5xx,
            EjectionType.CONSECUTIVE_GATEWAY_FAILURE: policy.enforcing_consecutive_gateway_failure,
            EjectionType.CONSECUTIVE_LOCAL_ORIGIN_FAILURE: policy.enforcing_consecutive_local_origin_failure,
            EjectionType.SUCCESS_RATE: policy.enforcing_success_rate,
            EjectionType.SUCCESS_RATE_LOCAL_ORIGIN: policy.enforcing_local_origin_success_rate,
            EjectionType.FAILURE_PERCENTAGE: policy.enforcing_failure_percentage,
            EjectionType.FAILURE_PERCENTAGE_LOCAL_ORIGIN: policy.enforcing_failure_percentage_local_origin,
        }
        self._sr_min_hosts = policy.success_rate_minimum_hosts
        self._sr_volume = policy.success_rate_request_volume
        self._sr_factor = policy.stdev_factor
        self._fp_threshold = policy.failure_percentage_threshold
        self._fp_min_hosts = policy.failure_percentage_minimum_hosts
        self._fp_volume = policy.failure_percentage_request_volume
        self._hc_uneject = policy.successful_active_health_check_uneject_host
        self._active = 0
        self._c5xx = [0] * n
        self._cgw = [0] * n
        self._clocal = [0] * n
        self._ext_total = [0] * n
        self._ext_success = [0] * n
        self._loc_total = [0] * n
        self._loc_success = [0] * n
        self._ejected = [False] * n
        self._num_ejections = [0] * n
        self._multiplier = [0] * n
        self._last_ejection: list[float] = [0.0] * n
        self._last_unejection: list[float | None] = [None] * n
        self._jitter = [0.0] * n
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)

    # ---------------------------------------------------------------------------------- queries

    @property
    def interval(self) -> float:
        """Seconds between :meth:`on_interval` calls."""
        return self._interval

    @property
    def lb_update_delay(self) -> float:
        """The longest delay before the load balancer sees an ejection: the merge window.

        The actual delay of each change is in :attr:`EjectionEvent.lb_at`.
        """
        return self.merger.window

    @property
    def ejected_hosts(self) -> tuple[Hashable, ...]:
        """The ejected hosts, in the order given at construction."""
        ejected = self._ejected
        return tuple(h for i, h in enumerate(self.hosts) if ejected[i])

    def is_ejected(self, host: Hashable) -> bool:
        """Whether ``host`` is ejected (as the detector sees it; the LB may lag)."""
        return self._ejected[self._index[host]]

    def num_ejections(self, host: Hashable) -> int:
        """How many times ``host`` has been ejected."""
        return self._num_ejections[self._index[host]]

    def multiplier(self, host: Hashable) -> int:
        """The host's current ejection multiplier (Envoy's ``ejectTimeBackoff``)."""
        return self._multiplier[self._index[host]]

    def ejected_until(self, host: Hashable) -> float | None:
        """When the host's ejection time ends (it returns at the next tick), or ``None``."""
        i = self._index[host]
        if not self._ejected[i]:
            return None
        return self._last_ejection[i] + ejection_duration(
            self._base, self._multiplier[i], self._max, self._jitter[i]
        )

    # ---------------------------------------------------------------------------------- hot path

    def record(self, host: Hashable, result: int | OutlierResult, now: float) -> EjectionEvent | None:
        """Report one upstream result; eject inline when a consecutive detector fires.

        Parameters
        ----------
        host
            The host that answered (or failed).
        result
            The HTTP status code the router saw, or an :class:`OutlierResult`.
        now
            Seconds.

        Returns
        -------
        EjectionEvent or None
            ``None`` when nothing was detected. When one response triggers two
            detections (gateway, then 5xx), the ``EJECT`` one is returned if any,
            else the last; both are counted (and kept in :attr:`events`).
        """
        i = self._index[host]
        if type(result) is int:
            return self._put_code(i, result, now)
        if isinstance(result, OutlierResult):
            if self._split:
                return self._put_result_split(i, result, now)
            code = _RESULT_CODE[result]
            return None if code is None else self._put_code(i, code, now)
        if isinstance(result, (int, np.integer)) and not isinstance(result, bool):
            return self._put_code(i, int(result), now)
        raise TypeError(f"result must be an HTTP status code or an OutlierResult; got {result!r}")

    def record_status(self, host: Hashable, code: int, now: float) -> EjectionEvent | None:
        """:meth:`record` for an HTTP status code (an ``int``), the router's common case."""
        i = self._index[host]
        if 500 <= code < 600:
            return self._put_code(i, code, now)
        self._ext_total[i] += 1  # _put_code's success branch, inlined
        self._ext_success[i] += 1
        self._c5xx[i] = 0
        self._cgw[i] = 0
        return None

    def _put_code(self, i: int, code: int, now: float) -> EjectionEvent | None:
        self._ext_total[i] += 1
        if 500 <= code < 600:
            ev: EjectionEvent | None = None
            if code == 502 or code == 503 or code == 504:
                self._cgw[i] += 1
                if self._cgw[i] == self._tgw:
                    ev = self._consecutive(i, EjectionType.CONSECUTIVE_GATEWAY_FAILURE, now)
            else:
                self._cgw[i] = 0
            self._c5xx[i] += 1
            if self._c5xx[i] == self._t5xx:
                ev2 = self._consecutive(i, EjectionType.CONSECUTIVE_5XX, now)
                if ev is None or (ev2 is not None and ev.action is not EjectionAction.EJECT):
                    ev = ev2
            return ev
        self._ext_success[i] += 1
        self._c5xx[i] = 0
        self._cgw[i] = 0
        return None

    def _put_result_split(self, i: int, result: OutlierResult, now: float) -> EjectionEvent | None:
        if (
            result is OutlierResult.LOCAL_ORIGIN_TIMEOUT
            or result is OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED
        ):
            self._loc_total[i] += 1
            self._clocal[i] += 1
            if self._clocal[i] == self._tlocal:
                return self._consecutive(i, EjectionType.CONSECUTIVE_LOCAL_ORIGIN_FAILURE, now)
            return None
        if result is OutlierResult.EXT_ORIGIN_REQUEST_FAILED:
            return self._put_code(i, 503, now)
        if result is OutlierResult.EXT_ORIGIN_REQUEST_SUCCESS:
            self._put_code(i, 200, now)
        self._loc_total[i] += 1
        self._loc_success[i] += 1
        self._clocal[i] = 0
        return None

    # ---------------------------------------------------------------------------------- ejection

    def _consecutive(self, i: int, kind: EjectionType, now: float) -> EjectionEvent | None:
        """``onConsecutiveErrorWorker``: detect, try to eject, reset that counter."""
        if self._ejected[i]:
            return None
        self.stats["outlier_detection.ejections_detected_" + kind.value] += 1
        ev = self._eject(i, kind, now)
        if kind is EjectionType.CONSECUTIVE_5XX:
            self._c5xx[i] = 0
        elif kind is EjectionType.CONSECUTIVE_GATEWAY_FAILURE:
            self._cgw[i] = 0
        else:
            self._clocal[i] = 0
        return ev

    def _draw(self) -> float:
        return float(self._rng.random())

    def _enforce(self, kind: EjectionType) -> bool:
        pct = self._enforcing[kind]
        if pct >= 100:
            return True
        if pct <= 0:
            return False
        return self._draw() * 100.0 < pct

    def _log(self, ev: EjectionEvent) -> EjectionEvent:
        if self._keep:
            self.events.append(ev)
        return ev

    def _eject(self, i: int, kind: EjectionType, now: float) -> EjectionEvent:
        """``ejectHost``: the max-ejection rule, the enforcing draw, then the ejection."""
        host = self.hosts[i]
        if self._ejected[i]:
            # Envoy would eject twice when success rate and failure percentage both
            # pick a host in one sweep (a debug assertion); meshsim keeps one ejection.
            return self._log(
                EjectionEvent(now, host, EjectionAction.NOT_ENFORCED, kind, self._num_ejections[i])
            )
        if not max_ejection_allows(self._active, self._n, self._max_pct, self._always_one):
            self.stats["outlier_detection.ejections_overflow"] += 1
            return self._log(EjectionEvent(now, host, EjectionAction.OVERFLOW, kind, self._num_ejections[i]))
        if not self._enforce(kind):
            return self._log(
                EjectionEvent(now, host, EjectionAction.NOT_ENFORCED, kind, self._num_ejections[i])
            )
        self._active += 1
        stats = self.stats
        stats["outlier_detection.ejections_active"] = self._active
        stats["outlier_detection.ejections_enforced_total"] += 1
        stats["outlier_detection.ejections_enforced_" + kind.value] += 1
        self._ejected[i] = True
        self._num_ejections[i] += 1
        self._last_ejection[i] = now
        self._jitter[i] = (
            ejection_jitter(self._jitter_ms / 1000.0, self._draw()) if self._jitter_ms > 0 else 0.0
        )
        self._multiplier[i] = m = next_multiplier(self._multiplier[i], self._base, self._max)
        how, at = self.merger._decide(now)
        ev = EjectionEvent(
            now,
            host,
            EjectionAction.EJECT,
            kind,
            self._num_ejections[i],
            duration=ejection_duration(self._base, m, self._max, self._jitter[i]),
            lb_update=how,
            lb_at=at,
        )
        self.merger._store(how, ev)
        return self._log(ev)

    def _uneject(self, i: int, now: float) -> EjectionEvent:
        """``unejectHost``: back in, counters reset, un-ejection time remembered."""
        self._active -= 1
        self.stats["outlier_detection.ejections_active"] = self._active
        self._ejected[i] = False
        self._c5xx[i] = 0
        self._cgw[i] = 0
        self._clocal[i] = 0
        self._last_unejection[i] = now
        how, at = self.merger._decide(now)
        ev = EjectionEvent(
            now, self.hosts[i], EjectionAction.UNEJECT, None, self._num_ejections[i], lb_update=how, lb_at=at
        )
        self.merger._store(how, ev)
        return self._log(ev)

    # ---------------------------------------------------------------------------------- timers

    def on_interval(self, now: float) -> list[EjectionEvent]:
        """The interval tick (``onIntervalTimer``).

        In order: un-eject every host whose :func:`ejection_duration` has passed;
        close the interval's request-volume buckets; success-rate then
        failure-percentage detection (external origin, then local origin when
        split) over the interval that just ended; decay the multiplier of every
        host that is not ejected and was un-ejected at least one interval ago.

        Returns
        -------
        list of EjectionEvent
            Un-ejections, then detections (``EJECT``, ``OVERFLOW``,
            ``NOT_ENFORCED``), in host order.
        """
        events: list[EjectionEvent] = []
        ejected = self._ejected
        for i in range(self._n):
            if ejected[i]:
                due = ejection_duration(self._base, self._multiplier[i], self._max, self._jitter[i])
                if due <= now - self._last_ejection[i] + _EPS:
                    events.append(self._uneject(i, now))
        ext = (self._ext_total, self._ext_success)
        self._ext_total = [0] * self._n
        self._ext_success = [0] * self._n
        self._rate_detection(ext[0], ext[1], False, now, events)
        if self._split:
            loc = (self._loc_total, self._loc_success)
            self._loc_total = [0] * self._n
            self._loc_success = [0] * self._n
            self._rate_detection(loc[0], loc[1], True, now, events)
        interval = self._interval
        for i in range(self._n):
            if not ejected[i] and self._multiplier[i]:
                last = self._last_unejection[i]
                self._multiplier[i] = decay_multiplier(
                    self._multiplier[i], None if last is None else now - last, interval
                )
        return events

    def _rate_detection(
        self, totals: list[int], successes: list[int], local: bool, now: float, events: list[EjectionEvent]
    ) -> None:
        """``processSuccessRateEjections`` over one closed bucket."""
        n = self._n
        if n < self._sr_min_hosts and n < self._fp_min_hosts:
            return
        valid_sr: list[tuple[int, float]] = []
        valid_fp: list[tuple[int, float]] = []
        for i in range(n):
            if self._ejected[i] or totals[i] == 0:
                continue
            rate = successes[i] * 100.0 / totals[i]
            if totals[i] >= self._sr_volume:
                valid_sr.append((i, rate))
            if totals[i] >= self._fp_volume:
                valid_fp.append((i, rate))
        if valid_sr and len(valid_sr) >= self._sr_min_hosts:
            kind = EjectionType.SUCCESS_RATE_LOCAL_ORIGIN if local else EjectionType.SUCCESS_RATE
            pair = success_rate_ejection_threshold([r for _, r in valid_sr], self._sr_factor)
            for i, rate in valid_sr:
                if rate < pair.threshold:
                    self.stats["outlier_detection.ejections_detected_" + kind.value] += 1
                    events.append(self._eject(i, kind, now))
        if valid_fp and len(valid_fp) >= self._fp_min_hosts:
            kind = EjectionType.FAILURE_PERCENTAGE_LOCAL_ORIGIN if local else EjectionType.FAILURE_PERCENTAGE
            for i, rate in valid_fp:
                if failure_percentage_ejects(rate, self._fp_threshold):
                    self.stats["outlier_detection.ejections_detected_" + kind.value] += 1
                    events.append(self._eject(i, kind, now))

    def on_health_check_success(self, host: Hashable, now: float) -> EjectionEvent | None:
        """A passing active health check un-ejects the host at once.

        Call it after a successful check that leaves the host healthy to the
        health checker (Envoy: check result healthy and no ``FAILED_ACTIVE_HC``).
        Does nothing when the host is not ejected or
        ``successful_active_health_check_uneject_host`` is false. The multiplier
        is kept.
        """
        i = self._index[host]
        if not self._hc_uneject or not self._ejected[i]:
            return None
        return self._uneject(i, now)

    def __repr__(self) -> str:
        return (
            f"OutlierDetector(hosts={self._n}, ejected={list(self.ejected_hosts)!r}, "
            f"interval={self._interval:g}s)"
        )


# --------------------------------------------------------------------------------------------------
# Envoy


_DURATION_FIELDS = ("interval", "base_ejection_time", "max_ejection_time", "max_ejection_time_jitter")
_NOT_ENVOY_FIELDS = ("healthy_panic_threshold",)


def to_envoy(policy: OutlierPolicy) -> dict[str, Any]:
    """Envoy v3 ``config.cluster.v3.OutlierDetection`` for the cluster's ``outlier_detection``.

    Every field that was given or differs from Envoy's default is written
    (UInt32Value fields as plain numbers, durations as ``"10s"``), so the
    exported config says what the user said and nothing relies on a default
    changing.

    Examples
    --------
    >>> to_envoy(OutlierPolicy.model_validate({"consecutive_5xx": 3, "interval": "1s"}))
    {'consecutive_5xx': 3, 'interval': '1s'}
    >>> to_envoy(from_istio({"consecutive5xxErrors": 7, "maxEjectionPercent": 100}))
    {'consecutive_5xx': 7, 'max_ejection_percent': 100, 'enforcing_consecutive_5xx': 100, 'enforcing_success_rate': 0}
    """
    out: dict[str, Any] = {}
    fields = type(policy).model_fields
    for name, info in fields.items():
        if name in _NOT_ENVOY_FIELDS:
            continue
        value = getattr(policy, name)
        if value is None:
            continue
        if name not in policy.model_fields_set and value == info.default:
            continue
        out[name] = proto_duration(value) if name in _DURATION_FIELDS else value
    return out


def to_envoy_cluster(policy: OutlierPolicy) -> dict[str, Any]:
    """The cluster fields this policy sets: ``outlier_detection`` and, when
    :attr:`OutlierPolicy.healthy_panic_threshold` is set (Istio),
    ``common_lb_config.healthy_panic_threshold`` (``type.v3.Percent``).

    Examples
    --------
    >>> to_envoy_cluster(from_istio({}))
    {'outlier_detection': {'enforcing_success_rate': 0}, 'common_lb_config': {'healthy_panic_threshold': {'value': 0.0}}}
    """
    out: dict[str, Any] = {"outlier_detection": to_envoy(policy)}
    if policy.healthy_panic_threshold is not None:
        out["common_lb_config"] = {"healthy_panic_threshold": {"value": policy.healthy_panic_threshold}}
    return out


def to_istio(policy: OutlierPolicy, *, healthy_panic_threshold: float | None = None) -> dict[str, Any]:
    """The DestinationRule ``trafficPolicy.outlierDetection`` istiod turns into this policy.

    Parameters
    ----------
    policy
        The cluster's outlier detection.
    healthy_panic_threshold
        The cluster's panic threshold (percent), written as Istio's
        ``minHealthPercent``; default: the policy's own
        :attr:`OutlierPolicy.healthy_panic_threshold`, else Envoy's 50.
        istiod writes ``minHealthPercent`` (0 unless given) as the panic
        threshold of every cluster with outlier detection, so it is always
        written.

    Notes
    -----
    istiod enforces every consecutive detector it writes at 100 % (0 % for a
    count of 0) and turns success-rate ejection off, so:
    ``consecutive5xxErrors`` is the count when enforced, else 0 (detector
    off); ``consecutiveGatewayErrors`` is written when enforced (Envoy's own
    default, 5 not enforced, is what an unset field gives);
    ``consecutiveLocalOriginFailures`` likewise under
    ``splitExternalLocalOriginErrors``. ``interval``, ``baseEjectionTime``
    and ``maxEjectionPercent`` (> 0) are written as they are. Not
    expressible in Istio, and reported by the exporter: partial enforcement,
    success-rate ejection (Envoy enforces it at 100 % by default), failure
    percentage ejection, ``max_ejection_time`` and its jitter,
    ``always_eject_one_host``, a ``max_ejection_percent`` of 0, a
    non-integer panic threshold.

    Examples
    --------
    >>> to_istio(OutlierPolicy(consecutive_5xx=3, interval=1, max_ejection_percent=50))  # doctest: +NORMALIZE_WHITESPACE
    {'consecutive5xxErrors': 3, 'interval': '1s', 'baseEjectionTime': '30s', 'maxEjectionPercent': 50,
     'minHealthPercent': 50}
    """
    from meshsim.policies._istio import istio_duration

    out: dict[str, Any] = {}
    enforced_5xx = policy.enforcing_consecutive_5xx > 0 and policy.consecutive_5xx > 0
    out["consecutive5xxErrors"] = policy.consecutive_5xx if enforced_5xx else 0
    if policy.enforcing_consecutive_gateway_failure > 0 and policy.consecutive_gateway_failure > 0:
        out["consecutiveGatewayErrors"] = policy.consecutive_gateway_failure
    out["interval"] = istio_duration(policy.interval)
    out["baseEjectionTime"] = istio_duration(policy.base_ejection_time)
    if policy.max_ejection_percent > 0:
        out["maxEjectionPercent"] = policy.max_ejection_percent
    if policy.split_external_local_origin_errors:
        out["splitExternalLocalOriginErrors"] = True
        if policy.enforcing_consecutive_local_origin_failure > 0 and policy.consecutive_local_origin_failure > 0:
            out["consecutiveLocalOriginFailures"] = policy.consecutive_local_origin_failure
    panic = healthy_panic_threshold
    if panic is None:
        panic = 50.0 if policy.healthy_panic_threshold is None else policy.healthy_panic_threshold
    out["minHealthPercent"] = int(round(panic))
    return out


def unsupported(policy: OutlierPolicy) -> list[str]:
    """Fields of ``policy`` that Envoy cannot express: none (every field is Envoy's).

    ``always_eject_one_host`` needs Envoy >= 1.31; the exporter's target version
    decides.
    """
    return []


_LOCAL_ORIGIN_FIELDS = (
    "consecutive_local_origin_failure",
    "enforcing_consecutive_local_origin_failure",
    "enforcing_local_origin_success_rate",
    "enforcing_failure_percentage_local_origin",
)
_FAILURE_PERCENTAGE_FIELDS = (
    "failure_percentage_threshold",
    "failure_percentage_minimum_hosts",
    "failure_percentage_request_volume",
)


def lint(policy: OutlierPolicy) -> list[Trap]:
    """Detectors that are configured but never eject (valid Envoy config that does less than it says).

    Returns
    -------
    list of Trap
        Codes (``docs/lint.md``): **MS303** ``consecutive_gateway_failure``
        set while its enforcement is Envoy's default 0 % (detected, counted,
        never ejected); **MS304** local-origin settings without
        ``split_external_local_origin_errors`` (unused: connect failures,
        resets and timeouts count as 503/504 in the 5xx and gateway counters);
        **MS305** failure-percentage settings while
        ``enforcing_failure_percentage`` is 0 %. The checks that need the
        cluster's host count (``max_ejection_percent``, minimum hosts, panic)
        are :mod:`meshsim.lint`'s.

    Examples
    --------
    >>> [t.code for t in lint(OutlierPolicy.model_validate({"consecutive_gateway_failure": 3}))]
    ['MS303']
    >>> lint(from_istio({"consecutiveGatewayErrors": 3}))
    []
    """
    out: list[Trap] = []
    given = policy.model_fields_set
    if (
        "consecutive_gateway_failure" in given
        and policy.consecutive_gateway_failure > 0
        and policy.enforcing_consecutive_gateway_failure == 0
    ):
        out.append(Trap(
            f"consecutive_gateway_failure {policy.consecutive_gateway_failure} is detected but never enforced: "
            "enforcing_consecutive_gateway_failure is 0 % (Envoy's default), so no host is ejected for "
            "gateway errors; set enforcing_consecutive_gateway_failure: 100",
            code="MS303", field="enforcing_consecutive_gateway_failure",
            value="unset (0)" if "enforcing_consecutive_gateway_failure" not in given else "0",
        ))
    if not policy.split_external_local_origin_errors:
        local = [f for f in _LOCAL_ORIGIN_FIELDS if f in given]
        if local:
            out.append(Trap(
                f"{', '.join(local)} {'is' if len(local) == 1 else 'are'} unused: "
                "split_external_local_origin_errors is false, so connect failures, resets and timeouts count "
                "as 503/504 in the 5xx and gateway counters instead of a local-origin detector",
                code="MS304", field="split_external_local_origin_errors", value="false",
            ))
    fp = [f for f in _FAILURE_PERCENTAGE_FIELDS if f in given]
    if fp and policy.enforcing_failure_percentage == 0:
        out.append(Trap(
            f"{', '.join(fp)} {'is' if len(fp) == 1 else 'are'} set but enforcing_failure_percentage is 0 % "
            "(Envoy's default): failure-percentage detection counts outliers and never ejects them",
            code="MS305", field="enforcing_failure_percentage",
            value="unset (0)" if "enforcing_failure_percentage" not in given else "0",
        ))
    return out
