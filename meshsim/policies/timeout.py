"""Route and per-try timeouts, as Envoy's router applies them.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`TimeoutPolicy`: the route (global) ``timeout``
  (default 15 s, ``0`` disables it), ``per_try_timeout`` and
  ``per_try_idle_timeout`` (``0`` = none). Istio's spelling ``perTryTimeout``
  is accepted; :meth:`TimeoutPolicy.from_istio` reads an Istio ``HTTPRoute``
  with Istio's own default (no ``timeout`` → **disabled**, not 15 s).
* **Runtime** — the pure helper :func:`effective_per_try` and the per-route
  :class:`TimeoutState`, which tells the engine when an attempt's per-try
  timer fires (if it can fire before the route timeout at all) and counts
  :class:`TimeoutOutcome` stats under Envoy's names.
* **Envoy** — :func:`to_envoy` writes the ``RouteAction`` fragment:
  ``timeout`` plus the per-try part, which Envoy keeps in ``retry_policy``.

Semantics (``source/common/router/router.cc`` ``FilterUtility::finalTimeout``,
``onResponseTimeout``, ``onPerTryTimeoutCommon``; envoy.md 1.4):

* The route timeout starts when the **whole downstream request** has been
  received and covers every attempt, every back-off wait and all pool/connect
  time. On expiry every attempt is reset, ``upstream_rq_timeout`` is counted
  and the client gets **504** ``upstream request timeout``, flag ``UT``
  (details ``response_timeout``). Nothing is retried after it.
* A per-try timer starts when an attempt has both the full request and an
  upstream stream from the pool (pending-queue and connect time are **not**
  counted). On expiry: ``upstream_rq_per_try_timeout``, the attempt is reset
  and retried as a *local reset* if ``retry_on`` allows it (``5xx``,
  ``gateway-error``, ``reset``; **not** ``connect-failure``); otherwise 504
  ``UT`` with details ``upstream_per_try_timeout``.
* **A per-try timeout at or above the route timeout is ignored** (Envoy sets
  it to 0 when ``per_try >= timeout`` and ``timeout != 0``). More generally, a
  per-try timer that is at or above the route timeout's *remaining* time
  never fires first: the route timeout ends the request before it.
  :func:`effective_per_try` returns ``inf`` in both cases.

Simplifications: no ``x-envoy-upstream-rq-timeout-ms`` /
``x-envoy-upstream-rq-per-try-timeout-ms`` header overrides, no
``timeout-alt-response`` (204), no ``max_stream_duration``, no route
``idle_timeout``. meshsim responses do not stream, so
``per_try_idle_timeout`` measures the time to the response (the first and
only upstream data event) like a second per-try timeout.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator

from meshsim._exceptions import ConfigError
from meshsim.policies._model import PolicyModel, Trap, refuse, suggest
from meshsim.units import parse_duration, proto_duration

__all__ = [
    "DEFAULT_ROUTE_TIMEOUT",
    "ISTIO_DEFAULT_ROUTE_TIMEOUT",
    "MsDuration",
    "Seconds",
    "TimeoutOutcome",
    "TimeoutPolicy",
    "TimeoutState",
    "effective_per_try",
    "envoy_duration",
    "lint",
    "resolve_per_try_timeout",
    "to_envoy",
    "to_istio",
    "unsupported",
]

#: Envoy's route timeout when ``RouteAction.timeout`` is unset (seconds).
DEFAULT_ROUTE_TIMEOUT = 15.0
#: What Istio writes when a VirtualService route has no ``timeout``: ``0s`` = disabled.
ISTIO_DEFAULT_ROUTE_TIMEOUT = 0.0
#: App Mesh's route (and virtual-node listener) ``perRequest`` timeout when none is given (seconds).
APP_MESH_DEFAULT_ROUTE_TIMEOUT = 15.0
#: The stream idle timeout App Mesh's Envoy keeps when ``timeout.idle`` is not given (seconds).
APP_MESH_DEFAULT_IDLE_TIMEOUT = 300.0
#: ``per_try_timeout`` / ``per_try_idle_timeout`` default: none.
DEFAULT_PER_TRY_TIMEOUT = 0.0
DEFAULT_PER_TRY_IDLE_TIMEOUT = 0.0

_MS = 1e-3


def _seconds(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise refuse(str(exc)) from None


def _ms_duration(value: object) -> float:
    seconds = _seconds(value)
    if 0.0 < seconds < _MS:
        raise refuse(
            f"{value!r} is below Envoy's 1 ms resolution: Envoy reads durations in whole "
            "milliseconds and would see 0 (disabled); give 0 or at least 1ms"
        )
    return seconds


#: Non-negative seconds from ``"250ms"``, ``"1.5s"`` or a number.
Seconds = Annotated[float, BeforeValidator(_seconds)]
#: Like :data:`Seconds`, but 0 or >= 1 ms (Envoy reads whole ms: a smaller value would be 0, disabled).
MsDuration = Annotated[float, BeforeValidator(_ms_duration)]


#: Proto3 JSON form of a ``google.protobuf.Duration`` (``0.25 -> "0.25s"``):
#: :func:`meshsim.units.proto_duration`, kept under this name for importers.
envoy_duration = proto_duration


class TimeoutPolicy(PolicyModel):
    """The timeouts of one route.

    Parameters
    ----------
    timeout
        Route ("global") timeout, seconds (``"2s"``, ``"500ms"``). Default
        **15 s** (Envoy). ``0`` disables it. Covers all attempts and back-off
        waits, from the end of the downstream request.
    per_try_timeout
        Per-attempt timeout, seconds; ``0`` (default) = none. Istio spelling
        ``perTryTimeout``. Ignored by Envoy when ``>= timeout`` (and
        ``timeout != 0``); see :func:`effective_per_try`. In Envoy it lives in
        the route's ``retry_policy``; a :class:`~meshsim.policies.retry.RetryPolicy`
        may carry it too (:func:`resolve_per_try_timeout` reconciles the two).
    per_try_idle_timeout
        Per-attempt idle timeout, seconds; ``0`` (default) = none. Without
        streaming responses it bounds the time to the response.

    Notes
    -----
    A bare duration is shorthand for ``{timeout: ...}``. Non-zero durations
    under 1 ms are refused: Envoy reads them as 0, which disables the timeout.

    Istio writes ``timeout: 0s`` (disabled) for a VirtualService route without
    ``timeout``; use :meth:`from_istio` to get that default rather than
    Envoy's 15 s.

    References
    ----------
    ``envoy.config.route.v3.RouteAction.timeout``,
    ``envoy.config.route.v3.RetryPolicy.per_try_timeout`` /
    ``per_try_idle_timeout`` (api/envoy/config/route/v3/route_components.proto).

    Examples
    --------
    >>> TimeoutPolicy.model_validate({"timeout": "2s", "perTryTimeout": "500ms"})
    TimeoutPolicy(timeout=2.0, per_try_timeout=0.5, per_try_idle_timeout=0.0)
    >>> TimeoutPolicy.model_validate("1s").timeout
    1.0
    """

    timeout: MsDuration = DEFAULT_ROUTE_TIMEOUT
    per_try_timeout: MsDuration = DEFAULT_PER_TRY_TIMEOUT
    per_try_idle_timeout: MsDuration = DEFAULT_PER_TRY_IDLE_TIMEOUT

    _synonyms: ClassVar[Mapping[str, str]] = {"perTryTimeout": "per_try_timeout"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, (str, int, float)) and not isinstance(data, bool):
            return {"timeout": data}
        return data

    @property
    def effective_per_try_timeout(self) -> float:
        """``per_try_timeout`` as Envoy applies it: 0 when it is at or above a non-zero route timeout."""
        pt = self.per_try_timeout
        return 0.0 if (self.timeout > 0.0 and pt >= self.timeout) else pt

    @classmethod
    def from_istio(cls, http_route: Mapping[str, Any]) -> TimeoutPolicy:
        """The timeouts Istio writes for a VirtualService ``http[]`` entry.

        Reads only ``timeout`` and ``retries.perTryTimeout``; the other keys of
        the route belong to routing, retries and faults.

        * No ``timeout`` → ``0`` (disabled), Istio's default, not Envoy's 15 s.
        * ``perTryTimeout`` counts only when the retry policy exists: no
          ``retries`` block gives Istio's default policy (no per-try timeout),
          and ``attempts: 0`` (or none) removes the retry policy and its
          per-try timeout with it.

        Examples
        --------
        >>> TimeoutPolicy.from_istio({"route": [{"destination": {"host": "r"}}]}).timeout
        0.0
        >>> TimeoutPolicy.from_istio({"timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s"}})
        TimeoutPolicy(timeout=3.0, per_try_timeout=1.0, per_try_idle_timeout=0.0)
        >>> TimeoutPolicy.from_istio({"retries": {"attempts": 0, "perTryTimeout": "1s"}}).per_try_timeout
        0.0
        """
        if not isinstance(http_route, Mapping):
            raise ConfigError(f"an Istio http route must be a mapping; got {http_route!r}")
        data: dict[str, Any] = {"timeout": http_route.get("timeout", ISTIO_DEFAULT_ROUTE_TIMEOUT)}
        retries = http_route.get("retries")
        if isinstance(retries, Mapping) and (retries.get("attempts") or 0) > 0 and "perTryTimeout" in retries:
            data["per_try_timeout"] = retries["perTryTimeout"]
        return cls.model_validate(data)

    @classmethod
    def from_app_mesh(cls, timeout: Mapping[str, Any] | None) -> TimeoutPolicy:
        """The route timeout App Mesh's Envoy applies for a route's ``timeout`` block.

        Reads an App Mesh ``HttpTimeout``/``GrpcTimeout`` ``{perRequest, idle}``
        (each an App Mesh ``Duration`` ``{value: N, unit: ms|s}``, or a duration
        string); ``None`` or ``{}`` for a route without one.

        * ``perRequest`` → the route timeout; App Mesh's default is **15 s**
          (Envoy's), ``0`` disables it.
        * ``idle`` bounds the time the request's stream may be idle; App Mesh
          leaves Envoy's **300 s** stream idle timeout in place when it is not
          given, and ``0`` disables it. meshsim's responses do not stream, so
          the stream is idle from the request until the response: the idle
          timeout acts as a second request timeout, and the route timeout is
          the smaller of the two enabled ones (0 when both are disabled).

        The per-try timeout lives in the route's ``retryPolicy``
        (:meth:`RetryPolicy.from_app_mesh <meshsim.policies.retry.RetryPolicy.from_app_mesh>`).

        Notes
        -----
        Envoy answers an idle timeout with **408** before the response has
        started, a route timeout with 504 ``UT``; the simulator gives 504 for
        both. App Mesh's control plane is closed source; the mapping follows its
        API reference (envoy.md 10.1).

        Examples
        --------
        >>> TimeoutPolicy.from_app_mesh(None).timeout
        15.0
        >>> TimeoutPolicy.from_app_mesh({"perRequest": {"value": 2500, "unit": "ms"}}).timeout
        2.5
        >>> TimeoutPolicy.from_app_mesh({"perRequest": {"value": 0, "unit": "s"}}).timeout
        300.0
        >>> TimeoutPolicy.from_app_mesh({"perRequest": {"value": 0, "unit": "s"}, "idle": {"value": 0, "unit": "s"}}).timeout
        0.0
        """
        if timeout is None:
            timeout = {}
        if not isinstance(timeout, Mapping):
            raise refuse(f"an App Mesh timeout is a mapping {{perRequest, idle}}; got {timeout!r}")
        allowed = ("perRequest", "idle")
        for key in timeout:
            if key not in allowed:
                raise refuse(
                    f"unknown key {key!r} in App Mesh timeout{suggest(key, allowed)} (allowed: perRequest, idle)",
                    str(key),
                )

        def seconds(key: str, default: float) -> float:
            value = timeout.get(key)
            if value is None:
                return default
            if isinstance(value, Mapping):
                unit, amount = value.get("unit"), value.get("value")
                extra = [k for k in value if k not in ("unit", "value")]
                if (extra or unit not in ("ms", "s") or isinstance(amount, bool)
                        or not isinstance(amount, (int, float)) or amount < 0):
                    raise refuse(
                        f"{dict(value)!r} is not an App Mesh duration {{value: N >= 0, unit: ms|s}}", key
                    )
                return float(amount) / (1000.0 if unit == "ms" else 1.0)
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise refuse(str(exc), key) from None

        per_request = seconds("perRequest", APP_MESH_DEFAULT_ROUTE_TIMEOUT)
        idle = seconds("idle", APP_MESH_DEFAULT_IDLE_TIMEOUT)
        enabled = [t for t in (per_request, idle) if t > 0.0]
        return cls.model_validate({"timeout": min(enabled) if enabled else 0.0})


def effective_per_try(route_timeout: float, per_try_timeout: float, elapsed: float) -> float:
    """How long an attempt's per-try timer runs before it fires, or ``inf`` if it never fires first.

    Parameters
    ----------
    route_timeout
        The route timeout, seconds; ``0`` = none.
    per_try_timeout
        The per-try (or per-try idle) timeout, seconds; ``0`` = none.
    elapsed
        Time since the route timer started (end of the downstream request)
        at the moment this attempt's per-try timer starts (stream obtained
        from the pool), seconds.

    Returns
    -------
    float
        ``per_try_timeout`` if that timer can fire before the route timeout,
        else ``math.inf``.

    Notes
    -----
    Two Envoy rules, in order:

    1. ``finalTimeout``: a per-try timeout ``>= route_timeout`` (route timeout
       non-zero) is set to 0, i.e. ignored for the whole request.
    2. The per-try timer is always armed with its full duration, so when it
       is at or above the route timeout's *remaining* time
       (``route_timeout - elapsed``) the route timeout fires first and ends
       the request (504 ``UT``, ``upstream_rq_timeout``). A tie goes to the
       route timer, which was armed first. Fire times are compared
       (``elapsed + per_try >= route_timeout``), as the event queue orders them.

    Examples
    --------
    >>> effective_per_try(1.0, 0.3, 0.0)   # fires after 0.3 s
    0.3
    >>> effective_per_try(1.0, 0.3, 0.8)   # 0.2 s left: the route timeout fires first
    inf
    >>> effective_per_try(0.5, 0.5, 0.0)   # per-try >= route timeout: Envoy ignores it
    inf
    >>> effective_per_try(0.0, 0.3, 60.0)  # no route timeout
    0.3
    """
    if per_try_timeout <= 0.0:
        return math.inf
    if route_timeout > 0.0:
        if per_try_timeout >= route_timeout or elapsed + per_try_timeout >= route_timeout:
            return math.inf
    return per_try_timeout


class TimeoutOutcome(enum.Enum):
    """Which timeout fired; the value is Envoy's cluster stat name.

    Every outcome answers **504** ``upstream request timeout`` with flag
    ``UT`` when it ends the request. A per-try outcome is first offered to
    the retry state as a local reset
    (:attr:`meshsim.policies.retry.ResetKind.PER_TRY_TIMEOUT`); only if it is
    not retried does the client get the 504 (plus ``URX``/``UO`` from the
    retry decision).

    Examples
    --------
    >>> o = TimeoutOutcome.PER_TRY_TIMEOUT
    >>> o.stat, o.status, o.flag, o.details
    ('upstream_rq_per_try_timeout', 504, 'UT', 'upstream_per_try_timeout')
    """

    ROUTE_TIMEOUT = "upstream_rq_timeout"
    PER_TRY_TIMEOUT = "upstream_rq_per_try_timeout"
    PER_TRY_IDLE_TIMEOUT = "upstream_rq_per_try_idle_timeout"

    @property
    def stat(self) -> str:
        """Envoy's cluster counter for this timeout."""
        return self.value

    @property
    def status(self) -> int:
        """HTTP status of the local reply: 504."""
        return 504

    @property
    def flag(self) -> str:
        """Envoy response flag: ``UT``."""
        return "UT"

    @property
    def body(self) -> str:
        """Body of the local reply."""
        return "upstream request timeout"

    @property
    def details(self) -> str:
        """Envoy's response code details."""
        return _DETAILS[self]

    @property
    def per_try(self) -> bool:
        """True for the per-try timeouts (retried as a local reset when ``retry_on`` allows)."""
        return self is not TimeoutOutcome.ROUTE_TIMEOUT


_DETAILS = {
    TimeoutOutcome.ROUTE_TIMEOUT: "response_timeout",
    TimeoutOutcome.PER_TRY_TIMEOUT: "upstream_per_try_timeout",
    TimeoutOutcome.PER_TRY_IDLE_TIMEOUT: "upstream_per_try_idle_timeout",
}


class TimeoutState:
    """Timeout timers of one route, for the engine (one per route, not per request).

    Parameters
    ----------
    policy
        The route's :class:`TimeoutPolicy`.
    per_try_timeout
        Overrides ``policy.per_try_timeout`` (e.g. the value resolved with the
        retry policy by :func:`resolve_per_try_timeout`); ``None`` keeps it.
    hedge_on_per_try_timeout
        The route's hedge policy. When true a per-try timeout does not count
        ``upstream_rq_per_try_timeout`` (Envoy's ``onSoftPerTryTimeout``);
        the engine asks the retry state to hedge instead of resetting.
    stats
        Counter dict to increment (the cluster's); a new one by default.

    Notes
    -----
    Engine protocol, per request:

    1. At the end of the downstream request (``start``): arm the route timer
       at :meth:`deadline`\\ ``(start)`` (``inf`` = none).
    2. When an attempt gets its upstream stream at ``now``:
       ``delay, which = state.per_try_timer(now - start)``; arm a timer after
       ``delay`` if ``which`` is not ``None``. Cancel it when the attempt ends.
    3. When a timer fires: ``state.on_timeout(which)`` counts the stat; then a
       route timeout ends the request with ``which.status``/``which.flag``,
       and a per-try timeout goes to the retry state as
       ``ResetKind.PER_TRY_TIMEOUT`` (or ``hedge_on_per_try_timeout``).

    Examples
    --------
    >>> st = TimeoutState(TimeoutPolicy(timeout=1.0, per_try_timeout=0.3))
    >>> st.deadline(10.0), st.per_try_timer(0.0), st.per_try_timer(0.8)
    (11.0, (0.3, <TimeoutOutcome.PER_TRY_TIMEOUT: 'upstream_rq_per_try_timeout'>), (inf, None))
    >>> st.on_timeout(TimeoutOutcome.ROUTE_TIMEOUT).flag, st.stats["upstream_rq_timeout"]
    ('UT', 1)
    """

    __slots__ = ("route_timeout", "per_try_timeout", "per_try_idle_timeout", "hedging", "stats")

    def __init__(
        self,
        policy: TimeoutPolicy,
        *,
        per_try_timeout: float | None = None,
        hedge_on_per_try_timeout: bool = False,
        stats: dict[str, int] | None = None,
    ) -> None:
        route = float(policy.timeout)
        per_try = float(policy.per_try_timeout if per_try_timeout is None else per_try_timeout)
        if route > 0.0 and per_try >= route:  # finalTimeout: ignored for the whole request
            per_try = 0.0
        self.route_timeout: float = route
        self.per_try_timeout: float = per_try
        self.per_try_idle_timeout: float = float(policy.per_try_idle_timeout)
        self.hedging: bool = bool(hedge_on_per_try_timeout)
        if stats is None:
            stats = {}
        for outcome in TimeoutOutcome:
            stats.setdefault(outcome.value, 0)
        self.stats: dict[str, int] = stats

    def deadline(self, start: float) -> float:
        """Absolute time the route timeout fires for a request complete at ``start``; ``inf`` if none."""
        return start + self.route_timeout if self.route_timeout > 0.0 else math.inf

    def per_try_timer(self, elapsed: float) -> tuple[float, TimeoutOutcome | None]:
        """The per-try timer to arm for an attempt starting ``elapsed`` s after the route timer.

        Returns ``(delay, outcome)``: the earlier of the per-try and per-try
        idle timers that can fire before the route timeout (per-try wins a
        tie), or ``(inf, None)`` when neither can.
        """
        route = self.route_timeout
        best = math.inf
        which: TimeoutOutcome | None = None
        pt = self.per_try_timeout
        if pt > 0.0 and (route <= 0.0 or elapsed + pt < route):
            best, which = pt, TimeoutOutcome.PER_TRY_TIMEOUT
        it = self.per_try_idle_timeout
        if it > 0.0 and it < best and (route <= 0.0 or elapsed + it < route):
            best, which = it, TimeoutOutcome.PER_TRY_IDLE_TIMEOUT
        return best, which

    def on_timeout(self, outcome: TimeoutOutcome) -> TimeoutOutcome:
        """Count a timeout that fired (per-try ones are not counted while hedging); return it."""
        if not (self.hedging and outcome is not TimeoutOutcome.ROUTE_TIMEOUT):
            self.stats[outcome.value] += 1
        return outcome

    def __repr__(self) -> str:
        return (
            f"TimeoutState(route_timeout={self.route_timeout}, per_try_timeout={self.per_try_timeout}, "
            f"per_try_idle_timeout={self.per_try_idle_timeout}, hedging={self.hedging})"
        )


def resolve_per_try_timeout(timeout: TimeoutPolicy | None, retry: Any | None) -> float:
    """The one per-try timeout of a route given its timeout and retry policies.

    Envoy has a single ``retry_policy.per_try_timeout``; meshsim lets it be
    written in either policy (Istio puts it under ``retries``). Both given
    with different non-zero values is refused.

    Parameters
    ----------
    timeout
        The route's :class:`TimeoutPolicy`, or ``None``.
    retry
        Any object with a ``per_try_timeout`` attribute (a
        :class:`~meshsim.policies.retry.RetryPolicy`), or ``None``.

    Raises
    ------
    ConfigError
        Both policies set a per-try timeout and the values differ.

    Examples
    --------
    >>> resolve_per_try_timeout(TimeoutPolicy(per_try_timeout=0.5), None)
    0.5
    """
    a = float(timeout.per_try_timeout) if timeout is not None else 0.0
    b = float(getattr(retry, "per_try_timeout", 0.0) or 0.0) if retry is not None else 0.0
    if a and b and a != b:
        raise ConfigError(
            f"per_try_timeout is given twice with different values ({a:g}s under timeouts, "
            f"{b:g}s under retries); Envoy has one retry_policy.per_try_timeout: give it once"
        )
    return a or b


def to_envoy(policy: TimeoutPolicy) -> dict[str, Any]:
    """Envoy v3 ``RouteAction`` fragment: ``timeout`` and the per-try part of ``retry_policy``.

    ``timeout`` is always written (so an exported ``0s`` stays disabled);
    ``retry_policy`` appears only with a non-zero per-try timeout. The
    exporter deep-merges this with :func:`meshsim.policies.retry.to_envoy`.

    Examples
    --------
    >>> to_envoy(TimeoutPolicy(timeout=3, per_try_timeout=0.5))
    {'timeout': '3s', 'retry_policy': {'per_try_timeout': '0.5s'}}
    >>> to_envoy(TimeoutPolicy())
    {'timeout': '15s'}
    """
    out: dict[str, Any] = {"timeout": proto_duration(policy.timeout)}
    per_try: dict[str, Any] = {}
    if policy.per_try_timeout > 0.0:
        per_try["per_try_timeout"] = proto_duration(policy.per_try_timeout)
    if policy.per_try_idle_timeout > 0.0:
        per_try["per_try_idle_timeout"] = proto_duration(policy.per_try_idle_timeout)
    if per_try:
        out["retry_policy"] = per_try
    return out


def to_istio(policy: TimeoutPolicy) -> dict[str, Any]:
    """The VirtualService ``http[]`` fields istiod turns into this route timeout.

    ``{timeout: <duration>}``, or ``{}`` for a disabled (0) route timeout:
    istiod writes ``0s`` when ``timeout`` is left out, and Istio's validation
    refuses an explicit ``0s``. The per-try timeout lives in Istio's
    ``retries.perTryTimeout`` (see :func:`meshsim.policies.retry.to_istio`);
    ``per_try_idle_timeout`` has no Istio field.

    Examples
    --------
    >>> to_istio(TimeoutPolicy()), to_istio(TimeoutPolicy(timeout=0))
    ({'timeout': '15s'}, {})
    """
    from meshsim.policies._istio import istio_duration

    return {"timeout": istio_duration(policy.timeout)} if policy.timeout > 0 else {}


def unsupported(policy: TimeoutPolicy) -> list[str]:
    """Fields Envoy cannot express (none: every field maps one to one)."""
    return []


def lint(policy: TimeoutPolicy) -> list[Trap]:
    """Silent Envoy traps in a timeout policy (valid config that does not do what it says).

    Each warning is a :class:`~meshsim.policies._model.Trap` with its code
    (``docs/lint.md``): **MS201** a per-try timeout at or above the route
    timeout (Envoy ignores it), **MS202** a route timeout written as 0
    (disabled, not "the default").

    Examples
    --------
    >>> lint(TimeoutPolicy(timeout=1, per_try_timeout=1))  # doctest: +ELLIPSIS
    [Trap('per_try_timeout 1s is >= the route timeout 1s: Envoy ignores it...', code='MS201', ...)]
    >>> [t.code for t in lint(TimeoutPolicy(timeout=0))]
    ['MS202']
    """
    out: list[Trap] = []
    if policy.timeout > 0.0 and policy.per_try_timeout >= policy.timeout:
        out.append(Trap(
            f"per_try_timeout {policy.per_try_timeout:g}s is >= the route timeout {policy.timeout:g}s: "
            "Envoy ignores it and the route timeout ends the first slow attempt (no retry)",
            code="MS201", field="per_try_timeout", value=f"{policy.per_try_timeout:g}s",
        ))
    if "timeout" in policy.model_fields_set and policy.timeout == 0.0:
        out.append(Trap(
            "a route timeout of 0 disables it (it is not Envoy's 15 s default): nothing bounds a request's "
            "total time across tries and back-offs",
            code="MS202", field="timeout", value="0s",
        ))
    return out
