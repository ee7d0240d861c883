"""Local rate limiting: Envoy's ``envoy.filters.http.local_ratelimit`` token bucket.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`RateLimitPolicy`: ``token_bucket`` (:class:`TokenBucketConfig`:
  ``max_tokens``, ``tokens_per_fill``, ``fill_interval``), ``filter_enabled``,
  ``filter_enforced`` (runtime fractional percents), ``status`` and
  ``stat_prefix``, with Envoy's names and defaults.
* **Runtime** — :class:`TokenBucket` answers, per request and at time
  ``now``, :class:`RateLimitDecision` ``ALLOWED``, ``LIMITED`` (429, flag
  ``RL``), ``SHADOW_LIMITED`` (over the limit but not enforced) or
  ``DISABLED`` (filter not enabled for this request), counting
  ``http_local_rate_limit.{enabled, ok, rate_limited, enforced}``.
* **Envoy** — :func:`to_envoy` writes the ``LocalRateLimit`` filter config.

Semantics (``source/extensions/filters/http/local_ratelimit/local_ratelimit.cc``,
``source/extensions/filters/common/local_ratelimit/local_ratelimit_impl.cc``,
``source/common/common/token_bucket_impl.cc``; envoy.md 8, 14):

* **The bucket refills continuously** since Envoy 1.31/1.32 (PR #35207,
  ``AtomicTokenBucketImpl``): there is no fill timer; the level is
  ``min(max_tokens, (now - t) * tokens_per_fill / fill_interval)`` for a stored
  time ``t``, and taking a token moves ``t`` forward by ``1 / rate``. The bucket
  **starts full**. Each request takes one token. The old behaviour (a timer
  adding ``tokens_per_fill`` whole tokens every ``fill_interval``) is available
  as ``TokenBucket(..., refill="timer")`` for comparisons with older Envoys.
* ``filter_enabled`` and ``filter_enforced`` **default to 0 %** in Envoy:
  a filter with a token bucket but no ``filter_enabled`` limits nothing,
  silently, and one without ``filter_enforced`` only counts
  (``rate_limited`` grows, no 429). The Envoy validator does not catch it.
  meshsim keeps Envoy's default, so a simulated policy behaves as the
  exported one, and :func:`lint` warns.
* Order per request: not enabled → nothing (no token, no stat). Enabled →
  ``enabled`` +1, take a token → ``ok`` +1, or ``rate_limited`` +1; then if
  enforced → ``enforced`` +1 and a local reply with ``status`` (default 429;
  Envoy replaces a status < 400 by 429), body ``local_rate_limited``, flag
  ``RL``.
* One bucket per filter config, shared by all workers of a proxy.

Simplifications: no descriptors, no per-connection buckets
(``local_rate_limit_per_downstream_connection``), no ``local_cluster_rate_limit``
share, no rate-limit headers, no runtime overrides of the percentages (their
``default_value`` is used; ``runtime_key`` is kept for export).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from meshsim.latency import PositiveDuration
from meshsim.policies._model import PolicyModel, Trap, refuse
from meshsim.policies.fault import FractionalPercent
from meshsim.units import proto_duration

__all__ = [
    "DEFAULT_TOKENS_PER_FILL",
    "DEFAULT_STATUS",
    "DEFAULT_FILTER_ENABLED",
    "DEFAULT_FILTER_ENFORCED",
    "DEFAULT_STAT_PREFIX",
    "MIN_FILL_INTERVAL_S",
    "LOCAL_RATE_LIMIT_FILTER_NAME",
    "LOCAL_RATE_LIMIT_TYPE_URL",
    "ENVOY_STATUS_CODES",
    "TokenBucketConfig",
    "RuntimeFractionalPercent",
    "RateLimitPolicy",
    "RateLimitDecision",
    "TokenBucket",
    "effective_status",
    "to_envoy",
    "unsupported",
    "lint",
]

#: ``token_bucket.tokens_per_fill`` default.
DEFAULT_TOKENS_PER_FILL = 1
#: ``status`` default (Too Many Requests).
DEFAULT_STATUS = 429
#: ``filter_enabled`` default: **0 %** (Envoy), i.e. the filter does nothing.
DEFAULT_FILTER_ENABLED = 0.0
#: ``filter_enforced`` default: **0 %** (Envoy), i.e. limits are counted, never enforced.
DEFAULT_FILTER_ENFORCED = 0.0
#: ``stat_prefix`` meshsim writes when none is given (Envoy requires one).
DEFAULT_STAT_PREFIX = "http_local_rate_limiter"
#: Envoy refuses a token bucket ``fill_interval`` below 50 ms.
MIN_FILL_INTERVAL_S = 0.05
#: The HTTP filter's name.
LOCAL_RATE_LIMIT_FILTER_NAME = "envoy.filters.http.local_ratelimit"
#: ``@type`` of the filter config.
LOCAL_RATE_LIMIT_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

#: The codes Envoy's ``type.v3.StatusCode`` enum defines: the only ones ``status`` can carry
#: (``api/envoy/type/v3/http_status.proto``; checked against Envoy 1.40, which refuses every other code).
ENVOY_STATUS_CODES = frozenset(
    (100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308)
    + tuple(range(400, 418)) + (421, 422, 423, 424, 426, 428, 429, 431)
    + (500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511)
)

#: Tolerance on the token level, so that float rounding of ``t`` never loses a token.
_EPS = 1e-9


def effective_status(status: int) -> int:
    """The status Envoy actually sends: ``status``, or 429 when it is below 400.

    Examples
    --------
    >>> effective_status(503), effective_status(200)
    (503, 429)
    """
    return status if status >= 400 else DEFAULT_STATUS


class TokenBucketConfig(PolicyModel):
    """Envoy ``type.v3.TokenBucket``.

    Parameters
    ----------
    max_tokens
        Bucket size and starting level, > 0 (Envoy validation).
    tokens_per_fill
        Tokens added per ``fill_interval``, > 0; default 1.
    fill_interval
        Duration, >= 50 ms (Envoy refuses shorter intervals at load time).

    Notes
    -----
    The refill rate is ``tokens_per_fill / fill_interval`` tokens per second,
    added continuously (see the module docstring).

    References
    ----------
    ``api/envoy/type/v3/token_bucket.proto``
    """

    max_tokens: int = Field(gt=0)
    tokens_per_fill: int = Field(default=DEFAULT_TOKENS_PER_FILL, gt=0)
    fill_interval: PositiveDuration

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _max_tokens_positive(cls, value: Any) -> Any:
        if value == 0 and not isinstance(value, bool):
            raise refuse("max_tokens is 0; it must be > 0 (Envoy rejects an empty bucket)")
        return value

    @field_validator("fill_interval")
    @classmethod
    def _at_least_50ms(cls, value: float) -> float:
        if value < MIN_FILL_INTERVAL_S - 1e-12:
            raise refuse(
                f"fill_interval {value * 1000:g}ms is below 50ms; Envoy refuses "
                "'local rate limit token bucket fill timer must be >= 50ms'"
            )
        return value

    @property
    def rate(self) -> float:
        """Refill rate in tokens per second."""
        return self.tokens_per_fill / self.fill_interval


class RuntimeFractionalPercent(PolicyModel):
    """Envoy ``config.core.v3.RuntimeFractionalPercent``: a default percentage and a runtime key.

    Parameters
    ----------
    default_value
        :class:`~meshsim.policies.fault.FractionalPercent` (any of its
        spellings: ``100``, ``"50%"``, ``{numerator, denominator}``).
    runtime_key
        The runtime key Envoy would read an override from (exported only).

    Notes
    -----
    A bare percentage (``100``, ``"100%"``) is shorthand for
    ``{default_value: ...}``.
    """

    default_value: FractionalPercent = FractionalPercent()
    runtime_key: str | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("default_value" in data or "runtime_key" in data):
            return data
        return {"default_value": data}

    def to_envoy(self) -> dict[str, Any]:
        """Envoy proto3 JSON."""
        out: dict[str, Any] = {"default_value": self.default_value.to_envoy()}
        if self.runtime_key is not None:
            out["runtime_key"] = self.runtime_key
        return out


class RateLimitPolicy(PolicyModel):
    """A local rate limit (Envoy ``extensions.filters.http.local_ratelimit.v3.LocalRateLimit``).

    Parameters
    ----------
    token_bucket
        :class:`TokenBucketConfig` (required).
    filter_enabled
        Share of requests the filter looks at (:class:`RuntimeFractionalPercent`);
        **default 0 %, Envoy's default: the filter does nothing.**
    filter_enforced
        Share of the looked-at requests that get the 429 when over the limit;
        **default 0 %: over-limit requests are only counted.**
    status
        Status of the local reply; default 429. Envoy sends 429 when the
        value is below 400. Envoy's ``{code: N}`` form is accepted. Only
        the codes of :data:`ENVOY_STATUS_CODES` (Envoy's ``StatusCode``
        enum) are accepted: Envoy refuses any other, 418 included.
    stat_prefix
        Prefix of the filter's stats (Envoy requires one; default
        ``http_local_rate_limiter``).

    References
    ----------
    ``api/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto``

    Examples
    --------
    >>> p = RateLimitPolicy.model_validate({
    ...     "token_bucket": {"max_tokens": 2, "fill_interval": "1s"},
    ...     "filter_enabled": 100, "filter_enforced": 100})
    >>> p.token_bucket.rate, p.filter_enabled.default_value.percent, p.status
    (1.0, 100.0, 429)
    """

    token_bucket: TokenBucketConfig
    filter_enabled: RuntimeFractionalPercent = RuntimeFractionalPercent()
    filter_enforced: RuntimeFractionalPercent = RuntimeFractionalPercent()
    status: int = DEFAULT_STATUS
    stat_prefix: str = Field(default=DEFAULT_STAT_PREFIX, min_length=1)

    @field_validator("status", mode="before")
    @classmethod
    def _status_code(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            if set(value) != {"code"}:
                raise refuse(f"status must be a number or {{code: N}}; got {dict(value)!r}")
            value = value["code"]
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value < 600:
            raise refuse(f"status {value!r} is not an HTTP status in [100, 600)")
        if value not in ENVOY_STATUS_CODES:
            near = ", ".join(str(c) for c in sorted(ENVOY_STATUS_CODES, key=lambda c: abs(c - value))[:3])
            raise refuse(
                f"status {value} is not one of the codes Envoy's type.v3.HttpStatus can carry (its validator "
                f"refuses it); the nearest are {near}"
            )
        return value


# --------------------------------------------------------------------------------------------------
# runtime


class RateLimitDecision(enum.Enum):
    """What the local rate limit filter did with one request."""

    #: The filter is not enabled for this request: no token taken, no stat.
    DISABLED = "disabled"
    #: A token was taken; the request goes on (``ok``).
    ALLOWED = "allowed"
    #: No token, enforced: local reply with the status, flag ``RL`` (``rate_limited``, ``enforced``).
    LIMITED = "limited"
    #: No token, not enforced: the request goes on (``rate_limited`` only).
    SHADOW_LIMITED = "shadow_limited"


class TokenBucket:
    """Runtime of one local rate limit filter (engine-free).

    Parameters
    ----------
    policy
        The :class:`RateLimitPolicy`.
    start_time
        Simulation time (seconds) at which the filter is created; the bucket
        is full then.
    refill
        ``"continuous"`` (Envoy >= 1.32, default) or ``"timer"`` (Envoy <= 1.31:
        ``tokens_per_fill`` whole tokens at ``start_time + k * fill_interval``).

    Attributes
    ----------
    stats
        ``http_local_rate_limit.{enabled, ok, rate_limited, enforced}`` (Envoy
        prefixes them with ``<stat_prefix>.``).
    status
        The status of a ``LIMITED`` reply (429 unless configured >= 400).

    Notes
    -----
    Call :meth:`take` once per request, when its headers reach the filter,
    with non-decreasing ``now``. Draws ``u_enabled``/``u_enforced`` are needed
    only when ``filter_enabled``/``filter_enforced`` are strictly between 0 and
    100 %; at 0 % or 100 % any value works.

    Examples
    --------
    Envoy 1.40 on loopback, ``max_tokens: 2``, 1 token per second, enabled and
    enforced 100 %: 200, 200, 429, 429, 429, then 1.1 s later 200, 429.

    >>> p = RateLimitPolicy.model_validate({
    ...     "token_bucket": {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "1s"},
    ...     "filter_enabled": 100, "filter_enforced": 100})
    >>> tb = TokenBucket(p, start_time=0.0)
    >>> [tb.take(t).name for t in (0.0, 0.01, 0.02, 0.03, 0.04, 1.14, 1.15)]
    ['ALLOWED', 'ALLOWED', 'LIMITED', 'LIMITED', 'LIMITED', 'ALLOWED', 'LIMITED']
    """

    __slots__ = (
        "policy",
        "stats",
        "status",
        "_max",
        "_rate",
        "_t",
        "_timer",
        "_tokens",
        "_per_fill",
        "_interval",
        "_start",
        "_ticks",
        "_en_n",
        "_en_d",
        "_enf_n",
        "_enf_d",
    )

    def __init__(
        self,
        policy: RateLimitPolicy,
        start_time: float = 0.0,
        *,
        refill: Literal["continuous", "timer"] = "continuous",
    ) -> None:
        if refill not in ("continuous", "timer"):
            raise ValueError(f"refill must be 'continuous' or 'timer'; got {refill!r}")
        self.policy = policy
        self.stats: dict[str, int] = {
            "http_local_rate_limit.enabled": 0,
            "http_local_rate_limit.ok": 0,
            "http_local_rate_limit.rate_limited": 0,
            "http_local_rate_limit.enforced": 0,
        }
        self.status = effective_status(policy.status)
        tb = policy.token_bucket
        self._max = float(tb.max_tokens)
        self._rate = tb.rate
        self._t = start_time - self._max / self._rate  # starts full
        self._timer = refill == "timer"
        self._tokens = tb.max_tokens
        self._per_fill = tb.tokens_per_fill
        self._interval = tb.fill_interval
        self._start = start_time
        self._ticks = 0
        en = policy.filter_enabled.default_value
        enf = policy.filter_enforced.default_value
        self._en_n, self._en_d = en.numerator, en.denominator_value
        self._enf_n, self._enf_d = enf.numerator, enf.denominator_value

    def tokens(self, now: float) -> float:
        """The bucket level at ``now`` (without taking a token)."""
        if self._timer:
            self._advance_timer(now)
            return float(self._tokens)
        if now <= self._t:
            return 0.0
        return min(self._max, (now - self._t) * self._rate)

    def _advance_timer(self, now: float) -> None:
        ticks = int((now - self._start) / self._interval + _EPS)
        if ticks > self._ticks:
            added = (ticks - self._ticks) * self._per_fill
            self._tokens = min(int(self._max), self._tokens + added)
            self._ticks = ticks

    def _consume(self, now: float) -> bool:
        if self._timer:
            self._advance_timer(now)
            if self._tokens > 0:
                self._tokens -= 1
                return True
            return False
        t = self._t
        if now <= t:
            return False
        total = (now - t) * self._rate
        if total > self._max:
            total = self._max
        if total + _EPS < 1.0:
            return False
        left = total - 1.0
        self._t = now - (left / self._rate if left > 0.0 else 0.0)
        return True

    def take(self, now: float, u_enabled: float = 0.0, u_enforced: float = 0.0) -> RateLimitDecision:
        """Run the filter for one request at time ``now``.

        Parameters
        ----------
        now
            Seconds, non-decreasing across calls.
        u_enabled, u_enforced
            Uniform draws in [0, 1) for ``filter_enabled`` / ``filter_enforced``.

        Returns
        -------
        RateLimitDecision
        """
        if int(u_enabled * self._en_d) >= self._en_n:
            return RateLimitDecision.DISABLED
        stats = self.stats
        stats["http_local_rate_limit.enabled"] += 1
        if self._consume(now):
            stats["http_local_rate_limit.ok"] += 1
            return RateLimitDecision.ALLOWED
        stats["http_local_rate_limit.rate_limited"] += 1
        if int(u_enforced * self._enf_d) >= self._enf_n:
            return RateLimitDecision.SHADOW_LIMITED
        stats["http_local_rate_limit.enforced"] += 1
        return RateLimitDecision.LIMITED

    def __repr__(self) -> str:
        mode = "timer" if self._timer else "continuous"
        return f"TokenBucket(rate={self._rate:g}/s, max_tokens={self._max:g}, refill={mode!r})"


# --------------------------------------------------------------------------------------------------
# Envoy


def to_envoy(policy: RateLimitPolicy) -> dict[str, Any]:
    """Envoy ``LocalRateLimit`` filter config (proto3 JSON, with ``@type``).

    ``filter_enabled``/``filter_enforced`` are always written explicitly, so
    the exported filter does what was simulated even at 0 %.

    Examples
    --------
    >>> to_envoy(RateLimitPolicy.model_validate({
    ...     "token_bucket": {"max_tokens": 100, "tokens_per_fill": 50, "fill_interval": "500ms"},
    ...     "filter_enabled": 100, "filter_enforced": 100}))  # doctest: +NORMALIZE_WHITESPACE
    {'@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
     'stat_prefix': 'http_local_rate_limiter',
     'token_bucket': {'max_tokens': 100, 'tokens_per_fill': 50, 'fill_interval': '0.5s'},
     'filter_enabled': {'default_value': {'numerator': 100, 'denominator': 'HUNDRED'}},
     'filter_enforced': {'default_value': {'numerator': 100, 'denominator': 'HUNDRED'}}}
    """
    tb = policy.token_bucket
    out: dict[str, Any] = {
        "@type": LOCAL_RATE_LIMIT_TYPE_URL,
        "stat_prefix": policy.stat_prefix,
        "token_bucket": {
            "max_tokens": tb.max_tokens,
            "tokens_per_fill": tb.tokens_per_fill,
            "fill_interval": proto_duration(tb.fill_interval),
        },
        "filter_enabled": policy.filter_enabled.to_envoy(),
        "filter_enforced": policy.filter_enforced.to_envoy(),
    }
    if policy.status != DEFAULT_STATUS:
        out["status"] = {"code": policy.status}
    return out


def unsupported(policy: RateLimitPolicy) -> list[str]:
    """Fields of ``policy`` that Envoy cannot express (always empty)."""
    return []


def lint(policy: RateLimitPolicy) -> list[Trap]:
    """Warnings about a rate limit that is configured but does not limit.

    Each warning is a :class:`~meshsim.policies._model.Trap` with its code
    (``docs/lint.md``): **MS411** ``filter_enabled`` unset (0 %: the filter
    never runs), **MS412** ``filter_enforced`` unset (over-limit requests only
    counted), **MS413** either written as 0 %, **MS414** a ``status`` below 400
    (Envoy sends 429).

    Examples
    --------
    >>> for w in lint(RateLimitPolicy.model_validate(
    ...         {"token_bucket": {"max_tokens": 10, "fill_interval": "1s"}})):
    ...     print(w.code, w)
    MS411 filter_enabled is unset: Envoy treats it as 0 %, so the filter never runs; set filter_enabled: 100
    MS412 filter_enforced is unset: Envoy treats it as 0 %, so over-limit requests are only counted, never rejected; set filter_enforced: 100
    """
    out: list[Trap] = []
    set_ = policy.model_fields_set
    if "filter_enabled" not in set_:
        out.append(Trap(
            "filter_enabled is unset: Envoy treats it as 0 %, so the filter never runs; set filter_enabled: 100",
            code="MS411", field="filter_enabled", value="unset",
        ))
    elif policy.filter_enabled.default_value.numerator == 0:
        out.append(Trap("filter_enabled is 0 %: the filter never runs",
                        code="MS413", field="filter_enabled", value="0%"))
    if "filter_enforced" not in set_:
        out.append(Trap(
            "filter_enforced is unset: Envoy treats it as 0 %, so over-limit requests are only counted, "
            "never rejected; set filter_enforced: 100",
            code="MS412", field="filter_enforced", value="unset",
        ))
    elif policy.filter_enforced.default_value.numerator == 0:
        out.append(Trap("filter_enforced is 0 %: over-limit requests are only counted, never rejected",
                        code="MS413", field="filter_enforced", value="0%"))
    if policy.status < 400:
        out.append(Trap(f"status {policy.status} is below 400: Envoy sends 429 instead",
                        code="MS414", field="status", value=policy.status))
    return out
