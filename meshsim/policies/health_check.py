"""Active health checking, as Envoy does it (HTTP checks).

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`HealthCheckPolicy`: Envoy's ``config.core.v3.HealthCheck``
  with an ``http_health_check``: its fields, defaults and the checks Envoy's
  validator makes (``timeout``, ``interval``, both thresholds and the HTTP
  ``path`` are required). App Mesh's VirtualNode ``healthCheck`` is read by
  :func:`from_appmesh`. Istio has no active health checking.
* **Runtime** — :class:`HealthChecker`: one per (cluster, host), engine-free. It
  answers "how long until the next check?" (:meth:`HealthChecker.next_interval`)
  and "what does this result do to the host?" (:meth:`HealthChecker.on_result`,
  a :class:`HealthTransition`).
* **Envoy** — :func:`to_envoy` writes one ``health_checks[]`` entry.

Semantics (``source/extensions/health_checkers/common/health_checker_base_impl.cc``;
envoy.md section 6):

* **A host starts unhealthy** (``FAILED_ACTIVE_HC``): hosts of a health-checked
  cluster are marked failed when added, and the cluster stays warming until
  every host's first check has finished. The **first** passing check makes a
  host healthy at once, whatever ``healthy_threshold`` says.
* **Failures**: an HTTP status that is neither expected (default: 200 only) nor
  retriable makes a healthy host unhealthy **at once**. Network failures
  (connect failure, reset), timeouts and retriable statuses count towards
  ``unhealthy_threshold`` consecutive failures (``++n == threshold``).
* **Successes**: an unhealthy host needs ``healthy_threshold`` passing checks in
  a row. Any failure resets the success count and any success the failure count.
* **Cadence**: the next check is armed **after** the current one finishes
  (success, failure or timeout), so the real period is check latency + wait.
  The wait is chosen from the check's result and transition: a pass ->
  ``interval``, but ``healthy_edge_interval`` while an unhealthy host is still
  short of ``healthy_threshold``; a failure -> ``unhealthy_interval``, but
  ``unhealthy_edge_interval`` while a healthy host is still short of
  ``unhealthy_threshold``. Until the cluster has carried traffic (Envoy checks
  ``upstream_cx_total``), ``no_traffic_healthy_interval`` follows a pass that
  is not pending and ``no_traffic_interval`` (default 60 s) follows anything else.
* **Jitter** (:func:`interval_with_jitter`): ``random % (base * pct / 100)``
  plus ``random % interval_jitter`` milliseconds are added, and the result is
  at least 1 ms. The first check waits ``random % initial_jitter`` ms (at least
  1 ms), or starts at once when ``initial_jitter`` is 0.

Simplifications: HTTP checks only (no TCP, gRPC or custom checkers); no degraded
state (``x-envoy-degraded``), no ``x-envoy-immediate-health-check-fail``
(``passive_failure``), no ``ignore_new_hosts_until_first_hc``, no runtime
``health_check.min_interval``/``max_interval`` clamps, no event log.

References
----------
``api/envoy/config/core/v3/health_check.proto``;
``source/extensions/health_checkers/common/health_checker_base_impl.cc``
(``interval``, ``intervalWithJitter``, ``handleSuccess``, ``setUnhealthy``,
``onInitialInterval``); ``source/common/upstream/upstream_impl.cc`` (hosts added to a
health-checked cluster start with ``FAILED_ACTIVE_HC``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from meshsim.latency import Duration, PositiveDuration
from meshsim.policies._model import PolicyModel, refuse, suggest
from meshsim.units import proto_duration

__all__ = [
    "DEFAULT_NO_TRAFFIC_INTERVAL",
    "DEFAULT_EXPECTED_STATUSES",
    "HealthCheckPolicy",
    "from_appmesh",
    "interval_with_jitter",
    "HealthCheckResult",
    "HealthTransition",
    "HealthChecker",
    "STAT_NAMES",
    "to_envoy",
    "unsupported",
]

#: seconds; used until the cluster has had traffic
DEFAULT_NO_TRAFFIC_INTERVAL = 60.0
#: Envoy's default: only 200 passes
DEFAULT_EXPECTED_STATUSES: tuple[int, ...] = (200,)

_UINT32_MAX = 4294967295


def _statuses(value: Any, field: str) -> Any:
    """Status list: ints and Envoy ``Int64Range`` ``{start, end}`` (half-open) -> sorted unique ints."""
    if value is None:
        return value
    if isinstance(value, (int, Mapping)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise refuse(f"{field} {value!r} must be a list of status codes or {{start, end}} ranges")
    codes: set[int] = set()
    for item in value:
        if isinstance(item, Mapping):
            start, end = item.get("start"), item.get("end")
            bad = [k for k in item if k not in ("start", "end")]
            if bad or not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool):
                raise refuse(f"{field} range {dict(item)!r} must be {{start: N, end: M}} (end exclusive)")
            if not 100 <= start < end <= 600:
                raise refuse(f"{field} range {start}..{end} must lie in [100, 600) with start < end")
            codes.update(range(start, end))
        elif isinstance(item, int) and not isinstance(item, bool):
            if not 100 <= item < 600:
                raise refuse(f"{field} status {item} is outside [100, 600) (Envoy's allowed range)")
            codes.add(item)
        else:
            raise refuse(f"{field} entry {item!r} is neither a status code nor a {{start, end}} range")
    return tuple(sorted(codes))


def _ranges(codes: Sequence[int]) -> list[dict[str, int]]:
    """Sorted codes -> Envoy ``Int64Range`` list (half-open)."""
    out: list[dict[str, int]] = []
    for c in codes:
        if out and out[-1]["end"] == c:
            out[-1]["end"] = c + 1
        else:
            out.append({"start": c, "end": c + 1})
    return out


class HealthCheckPolicy(PolicyModel):
    """One Envoy HTTP active health check for a cluster.

    Parameters
    ----------
    timeout
        Seconds to wait for the check's answer before it counts as a (network)
        failure. **Required**, > 0.
    interval
        Seconds between checks of a healthy host. **Required**, > 0.
    unhealthy_threshold
        Consecutive network failures, timeouts or retriable statuses that make a
        healthy host unhealthy. **Required**. 0 means they never do.
    healthy_threshold
        Consecutive passes that make an unhealthy host healthy (except the
        host's first check, which is enough on its own). **Required**.
    path
        The HTTP path requested (``http_health_check.path``). **Required**.
    initial_jitter
        The first check waits a uniform whole number of ms below this. Default 0
        (check at once).
    interval_jitter
        Up to this much (uniform whole ms below it) is added to every wait. Default 0.
    interval_jitter_percent
        Up to this percent of the wait is added to it. Default 0. Both jitters
        add up when both are set.
    unhealthy_interval
        Wait after a failure of an unhealthy host. Default ``interval``.
    unhealthy_edge_interval
        Wait after a failure that leaves a healthy host short of
        ``unhealthy_threshold``. Default ``unhealthy_interval``.
    healthy_edge_interval
        Wait after a pass that leaves an unhealthy host short of
        ``healthy_threshold``. Default ``interval``.
    no_traffic_interval
        Wait while the cluster has never had traffic. Default 60 s.
    no_traffic_healthy_interval
        Wait after a (non-pending) pass while the cluster has never had traffic.
        Default ``no_traffic_interval``.
    expected_statuses
        Statuses that pass: a list of codes or Envoy ranges ``{start, end}``
        (end exclusive). Default 200 only; a list replaces it (include 200).
    retriable_statuses
        Failing statuses that count towards ``unhealthy_threshold`` instead of
        failing the host at once. Default none.

    Notes
    -----
    The "edge" intervals follow Envoy's code, which uses them while a transition
    is **pending** (the proto comments describe them as "right after" a
    transition). Durations are float seconds; Envoy keeps whole milliseconds.

    References
    ----------
    ``api/envoy/config/core/v3/health_check.proto``: ``timeout`` and ``interval``
    required and > 0, ``unhealthy_threshold``/``healthy_threshold`` required,
    ``http_health_check.path`` at least one character, the other intervals > 0,
    statuses in [100, 600).

    Examples
    --------
    >>> p = HealthCheckPolicy.model_validate({"timeout": "1s", "interval": "5s", "unhealthy_threshold": 3,
    ...                                       "healthy_threshold": 2, "path": "/healthz"})
    >>> p.interval, p.effective_unhealthy_edge_interval, p.no_traffic_interval
    (5.0, 5.0, 60.0)
    """

    timeout: PositiveDuration
    interval: PositiveDuration
    unhealthy_threshold: int = Field(ge=0, le=_UINT32_MAX)
    healthy_threshold: int = Field(ge=0, le=_UINT32_MAX)
    path: str = Field(min_length=1)
    initial_jitter: Duration = 0.0
    interval_jitter: Duration = 0.0
    interval_jitter_percent: int = Field(0, ge=0, le=_UINT32_MAX)
    unhealthy_interval: PositiveDuration | None = None
    unhealthy_edge_interval: PositiveDuration | None = None
    healthy_edge_interval: PositiveDuration | None = None
    no_traffic_interval: PositiveDuration = DEFAULT_NO_TRAFFIC_INTERVAL
    no_traffic_healthy_interval: PositiveDuration | None = None
    expected_statuses: tuple[int, ...] = DEFAULT_EXPECTED_STATUSES
    retriable_statuses: tuple[int, ...] = ()

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        missing = [
            k for k in ("timeout", "interval", "unhealthy_threshold", "healthy_threshold") if k not in data
        ]
        if "path" not in data and "http_health_check" not in data:
            missing.append("path")
        if missing:
            raise refuse(
                f"health check needs {', '.join(missing)}: Envoy's validator requires timeout, interval, "
                "unhealthy_threshold, healthy_threshold and the HTTP path"
            )
        if "http_health_check" in data:  # Envoy's nesting
            hc = data["http_health_check"]
            if not isinstance(hc, Mapping):
                raise refuse(f"http_health_check must be a mapping with path; got {hc!r}")
            allowed = ("path", "expected_statuses", "retriable_statuses")
            for key in hc:
                if key not in allowed:
                    raise refuse(
                        f"unknown key {key!r} in http_health_check{suggest(key, allowed)} "
                        f"(allowed: {', '.join(allowed)})"
                    )
            out = {k: v for k, v in data.items() if k != "http_health_check"}
            for key, value in hc.items():
                if key in out:
                    raise refuse(f"{key} is given both at the top and under http_health_check")
                out[key] = value
            return out
        return data

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """Every key accepted: the fields, and Envoy's ``http_health_check`` nesting."""
        return [*cls.model_fields, "http_health_check"]

    @field_validator("expected_statuses", "retriable_statuses", mode="before")
    @classmethod
    def _codes(cls, value: Any, info: Any) -> Any:
        return _statuses(value, info.field_name)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise refuse(f"path {value!r} is not a valid HTTP header value")
        return value

    @property
    def effective_unhealthy_interval(self) -> float:
        """``unhealthy_interval`` or ``interval``."""
        return self.unhealthy_interval if self.unhealthy_interval is not None else self.interval

    @property
    def effective_unhealthy_edge_interval(self) -> float:
        """``unhealthy_edge_interval`` or the effective ``unhealthy_interval``."""
        if self.unhealthy_edge_interval is not None:
            return self.unhealthy_edge_interval
        return self.effective_unhealthy_interval

    @property
    def effective_healthy_edge_interval(self) -> float:
        """``healthy_edge_interval`` or ``interval``."""
        return self.healthy_edge_interval if self.healthy_edge_interval is not None else self.interval

    @property
    def effective_no_traffic_healthy_interval(self) -> float:
        """``no_traffic_healthy_interval`` or ``no_traffic_interval``."""
        if self.no_traffic_healthy_interval is not None:
            return self.no_traffic_healthy_interval
        return self.no_traffic_interval


def _appmesh_int(spec: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    v = spec[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise refuse(f"healthCheck.{key} {v!r} must be a whole number in {lo}..{hi} (App Mesh's range)", key)
    return v


def from_appmesh(spec: Mapping[str, Any]) -> HealthCheckPolicy:
    """The Envoy health check for an App Mesh VirtualNode listener ``healthCheck``.

    ``healthyThreshold`` (2-10) -> ``healthy_threshold``, ``unhealthyThreshold``
    (2-10) -> ``unhealthy_threshold``, ``intervalMillis`` (5000-300000) ->
    ``interval``, ``timeoutMillis`` (2000-60000) -> ``timeout``, ``path`` ->
    ``http_health_check.path``; only ``protocol`` http/http2 is modelled
    (``port`` is read and ignored). App Mesh passes only 200.

    Notes
    -----
    The checks run on the client (downstream) Envoys of the virtual node's
    cluster. The mapping is inferred from App Mesh's API (envoy.md 10.2).

    Examples
    --------
    >>> p = from_appmesh({"healthyThreshold": 2, "unhealthyThreshold": 3, "intervalMillis": 5000,
    ...                   "timeoutMillis": 2000, "protocol": "http", "path": "/ping"})
    >>> p.interval, p.timeout, p.unhealthy_threshold, p.path
    (5.0, 2.0, 3, '/ping')
    """
    allowed = (
        "healthyThreshold",
        "unhealthyThreshold",
        "intervalMillis",
        "timeoutMillis",
        "protocol",
        "path",
        "port",
    )
    if not isinstance(spec, Mapping):
        raise refuse(f"App Mesh healthCheck must be a mapping; got {spec!r}")
    for key in spec:
        if key not in allowed:
            raise refuse(
                f"unknown key {key!r} in App Mesh healthCheck{suggest(key, allowed)} (allowed: {', '.join(allowed)})"
            )
    required = ("healthyThreshold", "unhealthyThreshold", "intervalMillis", "timeoutMillis", "protocol")
    missing = [k for k in required if k not in spec]
    if missing:
        raise refuse(f"App Mesh healthCheck needs {', '.join(missing)}")
    protocol = spec["protocol"]
    if protocol not in ("http", "http2"):
        raise refuse(
            f"healthCheck.protocol {protocol!r}: meshsim models HTTP checks only (allowed: http, http2)",
            "protocol",
        )
    if not spec.get("path"):
        raise refuse("App Mesh healthCheck with protocol http needs a path", "path")
    return HealthCheckPolicy.model_validate(
        {
            "healthy_threshold": _appmesh_int(spec, "healthyThreshold", 2, 10),
            "unhealthy_threshold": _appmesh_int(spec, "unhealthyThreshold", 2, 10),
            "interval": _appmesh_int(spec, "intervalMillis", 5000, 300000) / 1000.0,
            "timeout": _appmesh_int(spec, "timeoutMillis", 2000, 60000) / 1000.0,
            "path": spec["path"],
        }
    )


# --------------------------------------------------------------------------------------------------
# pure math


def interval_with_jitter(base_ms: int, jitter_ms: int, jitter_percent: int, u1: float, u2: float) -> int:
    """Envoy's ``intervalWithJitter``: the wait in whole milliseconds.

    ``base + random % (jitter_percent * base / 100) + random % jitter_ms``,
    each term only when its modulus is > 0, and at least 1 ms.

    Parameters
    ----------
    base_ms
        The chosen interval, ms.
    jitter_ms
        ``interval_jitter`` in ms.
    jitter_percent
        ``interval_jitter_percent``.
    u1, u2
        Uniform draws in [0, 1) for the percent and absolute jitter.

    Examples
    --------
    >>> interval_with_jitter(1000, 0, 0, 0.5, 0.5)
    1000
    >>> interval_with_jitter(1000, 200, 10, 0.5, 0.5)   # 1000 + 50 + 100
    1150
    >>> interval_with_jitter(1000, 200, 10, 0.9999, 0.9999)  # the largest: 1000 + 99 + 199
    1298
    >>> interval_with_jitter(0, 0, 0, 0.0, 0.0)
    1
    """
    mod = jitter_percent * base_ms // 100
    if mod > 0:
        base_ms += min(int(u1 * mod), mod - 1)
    if jitter_ms > 0:
        base_ms += min(int(u2 * jitter_ms), jitter_ms - 1)
    return max(1, base_ms)


# --------------------------------------------------------------------------------------------------
# runtime


class HealthCheckResult(enum.Enum):
    """How one check ended (Envoy's ``HealthCheckFailureType`` plus success).

    ``SUCCESS``: an expected status. ``HTTP_FAILURE``: any other status (Envoy
    ``ACTIVE``, not retriable): a healthy host fails at once. ``RETRIABLE_FAILURE``:
    a status in ``retriable_statuses``. ``NETWORK_FAILURE``: connect failure or
    reset (``NETWORK``). ``TIMEOUT``: no answer within ``timeout``
    (``NETWORK_TIMEOUT``). The last three count towards ``unhealthy_threshold``.
    """

    SUCCESS = "success"
    HTTP_FAILURE = "http_failure"
    RETRIABLE_FAILURE = "retriable_failure"
    NETWORK_FAILURE = "network_failure"
    TIMEOUT = "timeout"


class HealthTransition(enum.Enum):
    """Envoy's ``HealthTransition``: what a check result did to the host's health.

    ``UNCHANGED``: nothing. ``CHANGED``: the host turned healthy or unhealthy
    (the engine must update the load balancer's host set). ``CHANGE_PENDING``: a
    transition is under way but the threshold is not reached yet.
    """

    UNCHANGED = "unchanged"
    CHANGED = "changed"
    CHANGE_PENDING = "change_pending"


#: The stats a :class:`HealthChecker` keeps, with Envoy's names (``cluster.<name>.`` prefix omitted).
#: ``health_check.healthy`` is a 0/1 gauge per host; the cluster's gauge is the sum over its hosts.
STAT_NAMES: tuple[str, ...] = (
    "health_check.attempt",
    "health_check.success",
    "health_check.failure",
    "health_check.network_failure",
    "health_check.healthy",
)

_NETWORK = (HealthCheckResult.NETWORK_FAILURE, HealthCheckResult.TIMEOUT)


class HealthChecker:
    """Envoy's active health-check session for one host, without an engine.

    Parameters
    ----------
    policy
        The cluster's :class:`HealthCheckPolicy`.
    rng
        A ``numpy.random.Generator`` (or seed) for the jitters, used only when
        :meth:`next_interval` / :meth:`initial_delay` are not handed draws.
    healthy
        The host's state before its first check. Envoy: ``False`` (hosts of a
        health-checked cluster start ``FAILED_ACTIVE_HC``).
    has_traffic
        Whether the cluster has already carried traffic (see :meth:`mark_traffic`).

    Notes
    -----
    What the engine calls, and when:

    1. At start: wait :meth:`initial_delay`, then run a check.
    2. A check: :meth:`start_check` (counts ``health_check.attempt`` and returns
       the timeout deadline), send the request; when the answer or the deadline
       comes, :meth:`on_result` with the status code or a
       :class:`HealthCheckResult`; then wait :meth:`next_interval` and check
       again.
    3. A ``CHANGED`` transition is a host-set update (submit it to the
       cluster's :class:`meshsim.policies.outlier.HostSetUpdateMerger`); after a
       pass that leaves the host :attr:`healthy`, call
       :meth:`meshsim.policies.outlier.OutlierDetector.on_health_check_success`.
    4. When the cluster opens its first upstream connection:
       :meth:`mark_traffic` on every checker of the cluster. A wait already
       armed is not shortened (envoy.md A.5: the second check came 60 s after
       the first).

    Examples
    --------
    >>> p = HealthCheckPolicy(timeout=1.0, interval=5.0, unhealthy_threshold=2, healthy_threshold=2, path="/h")
    >>> hc = HealthChecker(p, has_traffic=True)
    >>> hc.healthy, hc.on_result(200, 0.0), hc.healthy   # the first pass is enough
    (False, <HealthTransition.CHANGED: 'changed'>, True)
    >>> hc.on_result(HealthCheckResult.TIMEOUT, 5.0), hc.on_result(HealthCheckResult.TIMEOUT, 10.0)
    (<HealthTransition.CHANGE_PENDING: 'change_pending'>, <HealthTransition.CHANGED: 'changed'>)
    >>> hc.on_result(503, 15.0), hc.healthy
    (<HealthTransition.UNCHANGED: 'unchanged'>, False)
    """

    __slots__ = (
        "policy",
        "stats",
        "healthy",
        "has_traffic",
        "next_check_at",
        "_rng",
        "_first",
        "_num_healthy",
        "_num_unhealthy",
        "_last_ok",
        "_last_transition",
        "_timeout",
        "_t_healthy",
        "_t_unhealthy",
        "_expected",
        "_retriable",
        "_interval_ms",
        "_unhealthy_ms",
        "_unhealthy_edge_ms",
        "_healthy_edge_ms",
        "_no_traffic_ms",
        "_no_traffic_healthy_ms",
        "_jitter_ms",
        "_jitter_pct",
        "_initial_jitter_ms",
    )

    def __init__(
        self,
        policy: HealthCheckPolicy,
        *,
        rng: np.random.Generator | int | None = None,
        healthy: bool = False,
        has_traffic: bool = False,
    ) -> None:
        self.policy = policy
        if rng is None or isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(rng)
        self._rng = rng
        self.healthy = healthy
        self.has_traffic = has_traffic
        self.next_check_at: float | None = None
        self._first = True
        self._num_healthy = 0
        self._num_unhealthy = 0
        self._last_ok = True
        self._last_transition = HealthTransition.UNCHANGED
        self._timeout = policy.timeout
        self._t_healthy = policy.healthy_threshold
        self._t_unhealthy = policy.unhealthy_threshold
        self._expected = frozenset(policy.expected_statuses)
        self._retriable = frozenset(policy.retriable_statuses)

        def ms(seconds: float) -> int:
            return int(round(seconds * 1000.0))

        self._interval_ms = ms(policy.interval)
        self._unhealthy_ms = ms(policy.effective_unhealthy_interval)
        self._unhealthy_edge_ms = ms(policy.effective_unhealthy_edge_interval)
        self._healthy_edge_ms = ms(policy.effective_healthy_edge_interval)
        self._no_traffic_ms = ms(policy.no_traffic_interval)
        self._no_traffic_healthy_ms = ms(policy.effective_no_traffic_healthy_interval)
        self._jitter_ms = ms(policy.interval_jitter)
        self._jitter_pct = policy.interval_jitter_percent
        self._initial_jitter_ms = ms(policy.initial_jitter)
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.stats["health_check.healthy"] = int(healthy)

    # ---------------------------------------------------------------------------------- timing

    def _draws(self, u: float | tuple[float, float] | None) -> tuple[float, float]:
        if u is None:
            need = (self._jitter_pct > 0, self._jitter_ms > 0)
            return (
                float(self._rng.random()) if need[0] else 0.0,
                float(self._rng.random()) if need[1] else 0.0,
            )
        if isinstance(u, tuple):
            return float(u[0]), float(u[1])
        return float(u), float(u)

    def initial_delay(self, u: float | None = None) -> float:
        """Seconds from start to the first check (``onInitialInterval``).

        0 when ``initial_jitter`` is 0; else ``max(1, random % initial_jitter)``
        milliseconds. ``u`` is a uniform draw (default: from ``rng``).

        Examples
        --------
        >>> p = HealthCheckPolicy(timeout=1, interval=5, unhealthy_threshold=2, healthy_threshold=2,
        ...                       path="/h", initial_jitter="2s")
        >>> HealthChecker(p).initial_delay(0.25)
        0.5
        """
        if self._initial_jitter_ms <= 0:
            return 0.0
        if u is None:
            u = float(self._rng.random())
        return interval_with_jitter(0, self._initial_jitter_ms, 0, 0.0, u) / 1000.0

    def next_interval(self, now: float, u: float | tuple[float, float] | None = None) -> float:
        """Seconds to wait, after the check that just finished, before the next one.

        Envoy's ``interval(state, changed_state)`` with the last result and
        transition (see the module notes), then :func:`interval_with_jitter`.
        Also sets :attr:`next_check_at` to ``now`` plus the wait.

        Parameters
        ----------
        now
            Seconds, when the last check finished.
        u
            Uniform draw(s) for the jitters: a pair ``(percent, absolute)``, or one
            value used for both; default: drawn from ``rng`` when needed.
        """
        t = self._last_transition
        if self.has_traffic:
            if self._last_ok:
                base = self._healthy_edge_ms if t is HealthTransition.CHANGE_PENDING else self._interval_ms
            else:
                base = self._unhealthy_edge_ms if t is HealthTransition.CHANGE_PENDING else self._unhealthy_ms
        elif self._last_ok and t is not HealthTransition.CHANGE_PENDING:
            base = self._no_traffic_healthy_ms
        else:
            base = self._no_traffic_ms
        u1, u2 = self._draws(u)
        wait = interval_with_jitter(base, self._jitter_ms, self._jitter_pct, u1, u2) / 1000.0
        self.next_check_at = now + wait
        return wait

    def mark_traffic(self) -> None:
        """The cluster has carried traffic: leave the no-traffic intervals for good."""
        self.has_traffic = True

    # ---------------------------------------------------------------------------------- checks

    def start_check(self, now: float) -> float:
        """A check starts now: count ``health_check.attempt``; return its timeout deadline."""
        self.stats["health_check.attempt"] += 1
        return now + self._timeout

    def classify(self, status: int) -> HealthCheckResult:
        """The result an HTTP status gives: expected, retriable or failed at once.

        Examples
        --------
        >>> p = HealthCheckPolicy(timeout=1, interval=5, unhealthy_threshold=2, healthy_threshold=2,
        ...                       path="/h", retriable_statuses=[503])
        >>> [HealthChecker(p).classify(s).value for s in (200, 503, 500)]
        ['success', 'retriable_failure', 'http_failure']
        """
        if status in self._expected:
            return HealthCheckResult.SUCCESS
        if status in self._retriable:
            return HealthCheckResult.RETRIABLE_FAILURE
        return HealthCheckResult.HTTP_FAILURE

    def _bump_healthy(self) -> int:
        self._num_healthy += 1
        return self._num_healthy

    def _bump_unhealthy(self) -> int:
        self._num_unhealthy += 1
        return self._num_unhealthy

    def on_result(self, result: int | HealthCheckResult, now: float) -> HealthTransition:
        """Apply one check's outcome (``handleSuccess`` / ``handleFailure``).

        Parameters
        ----------
        result
            The HTTP status of the answer, or a :class:`HealthCheckResult`
            (``TIMEOUT`` when nothing came back by the deadline,
            ``NETWORK_FAILURE`` on a connect failure or reset).
        now
            Seconds.

        Returns
        -------
        HealthTransition
            ``CHANGED`` when the host turned healthy or unhealthy.
        """
        if isinstance(result, HealthCheckResult):
            kind = result
        elif isinstance(result, (int, np.integer)) and not isinstance(result, bool):
            kind = self.classify(int(result))
        else:
            raise TypeError(f"result must be an HTTP status or a HealthCheckResult; got {result!r}")
        stats = self.stats
        if kind is HealthCheckResult.SUCCESS:
            self._num_unhealthy = 0
            transition = HealthTransition.UNCHANGED
            if not self.healthy:
                if self._first or self._bump_healthy() == self._t_healthy:
                    self.healthy = True
                    stats["health_check.healthy"] = 1
                    transition = HealthTransition.CHANGED
                else:
                    transition = HealthTransition.CHANGE_PENDING
            stats["health_check.success"] += 1
            self._last_ok = True
        else:
            self._num_healthy = 0
            transition = HealthTransition.UNCHANGED
            if self.healthy:
                if kind is HealthCheckResult.HTTP_FAILURE or self._bump_unhealthy() == self._t_unhealthy:
                    self.healthy = False
                    stats["health_check.healthy"] = 0
                    transition = HealthTransition.CHANGED
                else:
                    transition = HealthTransition.CHANGE_PENDING
            stats["health_check.failure"] += 1
            if kind in _NETWORK:
                stats["health_check.network_failure"] += 1
            self._last_ok = False
        self._first = False
        self._last_transition = transition
        return transition

    def __repr__(self) -> str:
        return f"HealthChecker(healthy={self.healthy}, has_traffic={self.has_traffic})"


# --------------------------------------------------------------------------------------------------
# Envoy


_OPTIONAL_DURATIONS = (
    "initial_jitter",
    "interval_jitter",
    "unhealthy_interval",
    "unhealthy_edge_interval",
    "healthy_edge_interval",
    "no_traffic_interval",
    "no_traffic_healthy_interval",
)


def to_envoy(policy: HealthCheckPolicy) -> dict[str, Any]:
    """One Envoy v3 ``config.core.v3.HealthCheck`` (an entry of ``cluster.health_checks``).

    Required fields are always written; optional ones when given or not the
    default. ``expected_statuses``/``retriable_statuses`` become ``Int64Range``
    lists (end exclusive).

    Examples
    --------
    >>> p = HealthCheckPolicy.model_validate({"timeout": "250ms", "interval": "5s", "unhealthy_threshold": 3,
    ...     "healthy_threshold": 2, "path": "/healthz", "expected_statuses": [200, 204]})
    >>> to_envoy(p)  # doctest: +NORMALIZE_WHITESPACE
    {'timeout': '0.25s', 'interval': '5s', 'unhealthy_threshold': 3, 'healthy_threshold': 2,
     'http_health_check': {'path': '/healthz',
                           'expected_statuses': [{'start': 200, 'end': 201}, {'start': 204, 'end': 205}]}}
    """
    out: dict[str, Any] = {
        "timeout": proto_duration(policy.timeout),
        "interval": proto_duration(policy.interval),
        "unhealthy_threshold": policy.unhealthy_threshold,
        "healthy_threshold": policy.healthy_threshold,
    }
    fields = type(policy).model_fields
    for name in _OPTIONAL_DURATIONS:
        value = getattr(policy, name)
        if value is None or (name not in policy.model_fields_set and value == fields[name].default):
            continue
        out[name] = proto_duration(value)
    if policy.interval_jitter_percent or "interval_jitter_percent" in policy.model_fields_set:
        out["interval_jitter_percent"] = policy.interval_jitter_percent
    http: dict[str, Any] = {"path": policy.path}
    if policy.expected_statuses != DEFAULT_EXPECTED_STATUSES:
        http["expected_statuses"] = _ranges(policy.expected_statuses)
    if policy.retriable_statuses:
        http["retriable_statuses"] = _ranges(policy.retriable_statuses)
    out["http_health_check"] = http
    return out


def unsupported(policy: HealthCheckPolicy) -> list[str]:
    """Fields Envoy cannot express: none."""
    return []
