"""Retries: which failures are retried, how long to wait, and how many retries may run at once.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`RetryPolicy` (Envoy's ``route.v3.RetryPolicy`` fields
  and defaults, plus the hedge flag and the cluster's retry budget), with
  :class:`RetryBackOff`, :class:`RetryBudget` and :class:`PreviousPriorities`.
  Envoy, Istio (``attempts``, ``retryOn``, ``perTryTimeout``, ``backoff``,
  ``retryRemoteLocalities``, ``retryIgnorePreviousHosts``) and App Mesh
  (``maxRetries``, ``perRetryTimeout``, ``httpRetryEvents``,
  ``tcpRetryEvents``, ``grpcRetryEvents``) spellings are all accepted and
  translated the way their control planes translate them.
* **Runtime** — the pure functions :func:`would_retry`, :func:`backoff_cap`,
  :func:`backoff_delay` and :func:`retry_budget_limit`; the cluster's retry
  resource :class:`RetryBreaker` (``max_retries`` or the budget); and the
  per-request :class:`RetryState`, whose :meth:`RetryState.should_retry`
  follows Envoy's ``RetryStateImpl::shouldRetry`` step by step and returns a
  :class:`RetryDecision` with its back-off delay.
* **Envoy** — :func:`to_envoy` (``RouteAction.retry_policy`` and
  ``hedge_policy``) and :func:`budget_to_envoy` (the cluster's
  ``circuit_breakers.thresholds[].retry_budget``).

The traps this module makes loud (envoy.md 2, 14):

* **Unknown ``retry_on`` tokens are silently ignored by Envoy** (a config with
  ``"5xx,gateway-errors"`` validates and never retries a 502 unless it is a
  5xx anyway). meshsim refuses them with a "did you mean" unless
  ``allow_unknown`` is set; :func:`unknown_tokens` is the linter's check.
* ``connect-failure`` does **not** retry per-try timeouts; ``5xx``,
  ``gateway-error`` and ``reset`` do.
* ``retriable-status-codes`` with no codes retries nothing (Istio ≥ 1.24's
  default policy: a 503 is not retried).
* ``retry_budget: {}`` is **no** budget: ``max_retries`` (default 3) still
  limits concurrent retries.
* A retry refused by the retry breaker (overflow) returns the **upstream's**
  response with flag ``UO``; retries that run out return the last response
  with ``URX``.

References: ``source/common/router/retry_state_impl.cc``,
``retry_policy_impl.cc``, ``source/common/common/backoff_strategy.cc``,
``source/common/upstream/resource_manager_impl.h``,
``api/envoy/config/route/v3/route_components.proto`` (``RetryPolicy``,
``HedgePolicy``), ``api/envoy/config/cluster/v3/circuit_breaker.proto``;
Istio ``pilot/pkg/networking/core/route/retry/retry.go``.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import numpy as np
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meshsim._exceptions import ConfigError, SimulationError
from meshsim.policies._model import PolicyModel, Trap, refuse, suggest
from meshsim.policies.timeout import MsDuration, Seconds
from meshsim.units import proto_duration

__all__ = [
    "DEFAULT_NUM_RETRIES",
    "DEFAULT_BASE_INTERVAL_MS",
    "DEFAULT_MAX_INTERVAL_FACTOR",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_BUDGET_PERCENT",
    "DEFAULT_MIN_RETRY_CONCURRENCY",
    "DEFAULT_HOST_SELECTION_RETRY_MAX_ATTEMPTS",
    "ISTIO_DEFAULT_RETRY_ON",
    "ISTIO_DEFAULT_NUM_RETRIES",
    "ISTIO_HOST_SELECTION_RETRY_MAX_ATTEMPTS",
    "RETRY_ON_TOKENS",
    "RetryOn",
    "ResetKind",
    "RetryDecision",
    "RetryBackOff",
    "RetryBudget",
    "PreviousPriorities",
    "RetryPolicy",
    "RetryBreaker",
    "RetryState",
    "would_retry",
    "backoff_cap",
    "backoff_delay",
    "retry_budget_limit",
    "unknown_tokens",
    "to_envoy",
    "budget_to_envoy",
    "to_istio",
    "budget_to_istio",
    "unsupported",
    "lint",
]

#: ``num_retries`` when a retry policy exists but does not say (Envoy: UInt32Value unset → 1).
DEFAULT_NUM_RETRIES = 1
#: Back-off base without a ``retry_back_off`` block (runtime ``upstream.base_retry_backoff_ms``).
DEFAULT_BASE_INTERVAL_MS = 25
#: ``max_interval`` defaults to this many times ``base_interval``.
DEFAULT_MAX_INTERVAL_FACTOR = 10
#: The cluster's ``circuit_breakers.thresholds[].max_retries`` default (concurrent retries).
DEFAULT_MAX_RETRIES = 3
#: ``retry_budget.budget_percent`` default when a budget is in force (percent of active + pending).
DEFAULT_BUDGET_PERCENT = 20.0
#: ``retry_budget.min_retry_concurrency`` default when a budget is in force.
DEFAULT_MIN_RETRY_CONCURRENCY = 3
#: Extra host picks on a retry with a host predicate, when unset.
DEFAULT_HOST_SELECTION_RETRY_MAX_ATTEMPTS = 1
#: Istio's ``retry_on`` when a VirtualService route has no ``retries`` block (or omits ``retryOn``).
ISTIO_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
#: Istio's ``num_retries`` for its default policy.
ISTIO_DEFAULT_NUM_RETRIES = 2
#: Istio's ``host_selection_retry_max_attempts`` (always written).
ISTIO_HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5

PREVIOUS_HOSTS = "previous_hosts"
_PREVIOUS_HOSTS_NAME = "envoy.retry_host_predicates.previous_hosts"
_PREVIOUS_HOSTS_TYPE = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
_PREVIOUS_PRIORITIES_NAME = "envoy.retry_priorities.previous_priorities"
_PREVIOUS_PRIORITIES_TYPE = (
    "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
)


# --------------------------------------------------------------------------------------------------
# retry_on tokens


class RetryOn(enum.IntFlag):
    """The conditions of a ``retry_on`` list, as bit flags (Envoy's ``RETRY_ON_*``).

    :meth:`parse` reads Envoy's comma list (HTTP and gRPC tokens mixed,
    whitespace around tokens ignored, empty items skipped); ``str()`` gives
    the canonical comma list back.

    Examples
    --------
    >>> flags = RetryOn.parse("5xx, reset,unavailable")
    >>> bool(flags & RetryOn.RESET), str(flags)
    (True, '5xx,reset,unavailable')
    """

    NONE = 0
    FIVE_XX = 1 << 0
    GATEWAY_ERROR = 1 << 1
    RESET = 1 << 2
    RESET_BEFORE_REQUEST = 1 << 3
    CONNECT_FAILURE = 1 << 4
    REFUSED_STREAM = 1 << 5
    RETRIABLE_4XX = 1 << 6
    RETRIABLE_STATUS_CODES = 1 << 7
    RETRIABLE_HEADERS = 1 << 8
    ENVOY_RATELIMITED = 1 << 9
    HTTP3_POST_CONNECT_FAILURE = 1 << 10
    GRPC_CANCELLED = 1 << 11
    GRPC_DEADLINE_EXCEEDED = 1 << 12
    GRPC_INTERNAL = 1 << 13
    GRPC_RESOURCE_EXHAUSTED = 1 << 14
    GRPC_UNAVAILABLE = 1 << 15

    @classmethod
    def parse(cls, retry_on: str | Sequence[str], *, allow_unknown: bool = False) -> RetryOn:
        """Flags of a ``retry_on`` comma list (or list of tokens).

        Raises
        ------
        ConfigError
            An unknown token, with the closest known token suggested, unless
            ``allow_unknown`` (then unknown tokens are dropped, as Envoy does).
        """
        flags = 0
        for token in _split(retry_on):
            bit = _TOKENS.get(token)
            if bit is None:
                if not allow_unknown:
                    raise ConfigError(_unknown_token_message(token))
                continue
            flags |= bit
        return cls(flags)

    @property
    def tokens(self) -> tuple[str, ...]:
        """The tokens of these flags in canonical order."""
        return tuple(tok for tok, bit in _TOKENS.items() if self & bit)

    def __str__(self) -> str:
        return ",".join(self.tokens)


#: Every ``retry_on`` token Envoy knows -> its flag, in canonical (export) order.
RETRY_ON_TOKENS: dict[str, RetryOn] = {
    "5xx": RetryOn.FIVE_XX,
    "gateway-error": RetryOn.GATEWAY_ERROR,
    "reset": RetryOn.RESET,
    "reset-before-request": RetryOn.RESET_BEFORE_REQUEST,
    "connect-failure": RetryOn.CONNECT_FAILURE,
    "refused-stream": RetryOn.REFUSED_STREAM,
    "retriable-4xx": RetryOn.RETRIABLE_4XX,
    "retriable-status-codes": RetryOn.RETRIABLE_STATUS_CODES,
    "retriable-headers": RetryOn.RETRIABLE_HEADERS,
    "envoy-ratelimited": RetryOn.ENVOY_RATELIMITED,
    "http3-post-connect-failure": RetryOn.HTTP3_POST_CONNECT_FAILURE,
    "cancelled": RetryOn.GRPC_CANCELLED,
    "deadline-exceeded": RetryOn.GRPC_DEADLINE_EXCEEDED,
    "internal": RetryOn.GRPC_INTERNAL,
    "resource-exhausted": RetryOn.GRPC_RESOURCE_EXHAUSTED,
    "unavailable": RetryOn.GRPC_UNAVAILABLE,
}
_TOKENS: dict[str, int] = {tok: int(bit) for tok, bit in RETRY_ON_TOKENS.items()}

# plain-int flags for the hot path (IntFlag arithmetic is slow)
_F_5XX = int(RetryOn.FIVE_XX)
_F_GATEWAY = int(RetryOn.GATEWAY_ERROR)
_F_RESET = int(RetryOn.RESET)
_F_RESET_BEFORE = int(RetryOn.RESET_BEFORE_REQUEST)
_F_CONNECT = int(RetryOn.CONNECT_FAILURE)
_F_REFUSED = int(RetryOn.REFUSED_STREAM)
_F_4XX = int(RetryOn.RETRIABLE_4XX)
_F_CODES = int(RetryOn.RETRIABLE_STATUS_CODES)
_F_RATELIMITED = int(RetryOn.ENVOY_RATELIMITED)
_F_ANY_RESET = _F_RESET | _F_5XX | _F_GATEWAY
#: gRPC status code -> flag that retries it (CANCELLED 1, DEADLINE_EXCEEDED 4, RESOURCE_EXHAUSTED 8,
#: INTERNAL 13, UNAVAILABLE 14)
_GRPC_FLAGS: dict[int, int] = {
    1: int(RetryOn.GRPC_CANCELLED),
    4: int(RetryOn.GRPC_DEADLINE_EXCEEDED),
    8: int(RetryOn.GRPC_RESOURCE_EXHAUSTED),
    13: int(RetryOn.GRPC_INTERNAL),
    14: int(RetryOn.GRPC_UNAVAILABLE),
}
_F_ANY_GRPC = sum(_GRPC_FLAGS.values())


def _split(retry_on: str | Sequence[str]) -> list[str]:
    if isinstance(retry_on, str):
        items: Sequence[Any] = retry_on.split(",")
    else:
        items = retry_on
    out = []
    for item in items:
        token = str(item).strip()
        if token:
            out.append(token)
    return out


def _unknown_token_message(token: str) -> str:
    hint = _token_hint(token)
    return (
        f"retry_on token {token!r} is not an Envoy retry condition{hint}; Envoy silently ignores "
        f"unknown tokens, so it would never retry on it (allowed: {', '.join(_TOKENS)}; "
        "set allow_unknown: true to keep it anyway)"
    )


def _token_hint(token: str) -> str:
    if token.isdigit():
        return (
            f"; a status code goes in retriable_status_codes: [{token}] with the token "
            "retriable-status-codes (Istio's retryOn accepts bare codes, Envoy's retry_on does not)"
        )
    low = token.lower().replace("_", "-")
    if low in _TOKENS:
        return f"; did you mean {low!r}?"
    close = difflib.get_close_matches(low, list(_TOKENS), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_tokens(retry_on: str) -> list[str]:
    """The tokens of a ``retry_on`` string that Envoy does not know (and silently ignores).

    Examples
    --------
    >>> unknown_tokens("5xx, gateway-errors,reset,503")
    ['gateway-errors', '503']
    """
    seen: list[str] = []
    for token in _split(retry_on):
        if token not in _TOKENS and token not in seen:
            seen.append(token)
    return seen


# --------------------------------------------------------------------------------------------------
# outcomes and decisions


class ResetKind(enum.Enum):
    """Why an attempt ended without response headers (Envoy's ``StreamResetReason``).

    Each kind carries the local reply Envoy sends when the reset is not
    retried (``status``, ``flag``) and whether request bytes had normally
    reached the upstream (``request_sent``, used by ``reset-before-request``).

    Examples
    --------
    >>> k = ResetKind.CONNECT_FAILURE
    >>> k.status, k.flag, k.request_sent
    (503, 'UF', False)
    """

    #: Local/RemoteConnectionFailure or ConnectionTimeout (pool connection failure)
    CONNECT_FAILURE = "connection failure"
    #: the upstream reset the stream (RemoteReset)
    REMOTE_RESET = "remote reset"
    #: HTTP/2 REFUSED_STREAM from the upstream (RemoteRefusedStreamReset)
    REFUSED_STREAM = "remote refused stream reset"
    #: the upstream connection closed mid-request (ConnectionTermination)
    CONNECTION_TERMINATION = "connection termination"
    #: Envoy reset the stream itself (LocalReset)
    LOCAL_RESET = "local reset"
    #: the per-try timer fired: a LocalReset after the request was sent
    PER_TRY_TIMEOUT = "per try timeout"
    #: the per-try idle timer fired: a LocalReset after the request was sent
    PER_TRY_IDLE_TIMEOUT = "per try idle timeout"
    #: codec/protocol error (ProtocolError); answered with 502
    PROTOCOL_ERROR = "protocol error"
    #: a circuit breaker or the pool refused the stream (Overflow): never retried
    OVERFLOW = "overflow"

    @property
    def status(self) -> int:
        """HTTP status of Envoy's local reply when the reset is not retried."""
        return _RESET_REPLY[self][0]

    @property
    def flag(self) -> str:
        """Envoy response flag of that local reply."""
        return _RESET_REPLY[self][1]

    @property
    def request_sent(self) -> bool:
        """Whether request bytes had reached the upstream (default for ``reset-before-request``)."""
        return _RESET_REPLY[self][2]


_RESET_REPLY: dict[ResetKind, tuple[int, str, bool]] = {
    ResetKind.CONNECT_FAILURE: (503, "UF", False),
    ResetKind.REMOTE_RESET: (503, "UR", True),
    ResetKind.REFUSED_STREAM: (503, "UR", True),
    ResetKind.CONNECTION_TERMINATION: (503, "UC", True),
    ResetKind.LOCAL_RESET: (503, "LR", True),
    ResetKind.PER_TRY_TIMEOUT: (504, "UT", True),
    ResetKind.PER_TRY_IDLE_TIMEOUT: (504, "UT", True),
    ResetKind.PROTOCOL_ERROR: (502, "UPE", True),
    ResetKind.OVERFLOW: (503, "UO", False),
}


class RetryDecision(enum.Enum):
    """Outcome of :meth:`RetryState.should_retry` (Envoy's ``RetryStatus``).

    ``flag`` is the response flag the request gets, ``stat`` the cluster
    counter incremented (``None`` for ``NO``).

    * ``YES`` — retry after the returned back-off delay (``upstream_rq_retry``).
    * ``NO`` — the outcome is not retriable: send it downstream.
    * ``LIMIT_EXCEEDED`` — ``num_retries`` used up: send the last outcome,
      flag ``URX`` (``upstream_rq_retry_limit_exceeded``).
    * ``OVERFLOW`` — the retry breaker/budget is full: send the **upstream's**
      own response (no ``x-envoy-overloaded``), flag ``UO``
      (``upstream_rq_retry_overflow``).
    """

    YES = "yes"
    NO = "no"
    LIMIT_EXCEEDED = "limit_exceeded"
    OVERFLOW = "overflow"

    @property
    def flag(self) -> str:
        """Response flag: ``URX``, ``UO`` or ``""``."""
        return _DECISION_INFO[self][0]

    @property
    def stat(self) -> str | None:
        """Envoy cluster counter for this decision."""
        return _DECISION_INFO[self][1]


_DECISION_INFO: dict[RetryDecision, tuple[str, str | None]] = {
    RetryDecision.YES: ("", "upstream_rq_retry"),
    RetryDecision.NO: ("", None),
    RetryDecision.LIMIT_EXCEEDED: ("URX", "upstream_rq_retry_limit_exceeded"),
    RetryDecision.OVERFLOW: ("UO", "upstream_rq_retry_overflow"),
}

_STAT_NAMES = (
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_overflow",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_retry_backoff_exponential",
)

# --------------------------------------------------------------------------------------------------
# pure functions


def would_retry(
    retry_on: RetryOn | int,
    status: int | None,
    reset: ResetKind | None,
    codes: Collection[int] = (),
    *,
    grpc_status: int | None = None,
    rate_limited: bool = False,
    request_started: bool | None = None,
) -> bool:
    """Whether Envoy's ``retry_on`` conditions make this attempt's outcome retriable.

    Parameters
    ----------
    retry_on
        :class:`RetryOn` flags (or their int value).
    status
        The response status, when response headers arrived; else ``None``.
    reset
        The :class:`ResetKind`, when the attempt ended without headers; else ``None``.
    codes
        ``retriable_status_codes`` (used only with ``retriable-status-codes``).
    grpc_status
        ``grpc-status`` of a trailers-only response (gRPC tokens).
    rate_limited
        The response carries ``x-envoy-ratelimited``.
    request_started
        Whether any attempt of this request had sent bytes upstream; default
        ``reset.request_sent``. Only ``reset-before-request`` looks at it.

    Notes
    -----
    Envoy's order (``wouldRetryFromHeaders`` / ``wouldRetryFromReset``):

    * Response: ``x-envoy-ratelimited`` decides alone (retried only with
      ``envoy-ratelimited``); then ``5xx`` (500–599), ``gateway-error``
      (502/503/504), ``retriable-4xx`` (**409 only**),
      ``retriable-status-codes`` (status in ``codes``; an empty list retries
      nothing), gRPC tokens on ``grpc_status``.
    * Reset: ``OVERFLOW`` never; connection failures with
      ``connect-failure``; ``reset-before-request`` if nothing was sent yet;
      ``reset``, ``5xx`` or ``gateway-error`` on **any** other reset (per-try
      timeouts included); ``refused-stream`` on ``REFUSED_STREAM``.

    ``retriable-headers`` never matches (meshsim has no response headers) and
    a 425 from ``retriable-status-codes`` is retried with back-off (Envoy's
    0-RTT immediate retry is not modelled).

    Examples
    --------
    >>> f = RetryOn.parse("connect-failure")
    >>> would_retry(f, None, ResetKind.CONNECT_FAILURE), would_retry(f, None, ResetKind.PER_TRY_TIMEOUT)
    (True, False)
    >>> would_retry(RetryOn.parse("5xx"), None, ResetKind.PER_TRY_TIMEOUT)
    True
    >>> r4 = RetryOn.parse("retriable-4xx")
    >>> would_retry(r4, 409, None), would_retry(r4, 429, None)
    (True, False)
    """
    flags = int(retry_on)
    if reset is None:
        if status is None:
            raise ValueError("would_retry needs a response status or a reset kind")
        if rate_limited:
            return bool(flags & _F_RATELIMITED)
        if flags & _F_5XX and 500 <= status < 600:
            return True
        if flags & _F_GATEWAY and 502 <= status <= 504:
            return True
        if flags & _F_4XX and status == 409:
            return True
        if flags & _F_CODES and status in codes:
            return True
        if grpc_status is not None and flags & _F_ANY_GRPC:
            return bool(flags & _GRPC_FLAGS.get(grpc_status, 0))
        return False
    if reset is ResetKind.OVERFLOW:
        return False
    if reset is ResetKind.CONNECT_FAILURE and flags & _F_CONNECT:
        return True
    if flags & _F_RESET_BEFORE:
        started = reset.request_sent if request_started is None else request_started
        if not started:
            return True
    if flags & _F_ANY_RESET:
        return True
    return bool(flags & _F_REFUSED and reset is ResetKind.REFUSED_STREAM)


def backoff_cap(k: int, base_ms: int, max_ms: int) -> int:
    """Upper bound (exclusive, ms) of the k-th retry's back-off: Envoy's doubling with a cap.

    Envoy's ``JitteredExponentialBackOffStrategy`` keeps ``next`` (starting
    at ``base``) and after each use sets ``next = next * 2 if next < max // 2
    else max``. That is ``min(base * 2**(k-1), max)`` except for one case:
    with an odd ``max`` and ``next == max // 2`` Envoy jumps to ``max``, not
    ``max - 1`` (base 25, max 101: 25, 50, **101**).

    Parameters
    ----------
    k
        Retry number, 1 for the first retry.
    base_ms, max_ms
        ``retry_back_off`` in whole milliseconds, ``1 <= base_ms <= max_ms``.

    Examples
    --------
    >>> [backoff_cap(k, 25, 250) for k in range(1, 7)]
    [25, 50, 100, 200, 250, 250]
    >>> [backoff_cap(k, 100, 1000) for k in range(1, 6)]
    [100, 200, 400, 800, 1000]
    """
    if k < 1:
        raise ValueError(f"retry number k must be >= 1; got {k}")
    if not 1 <= base_ms <= max_ms:
        raise ValueError(f"need 1 <= base_ms <= max_ms; got base_ms={base_ms}, max_ms={max_ms}")
    nxt = base_ms
    limit = max_ms // 2
    for _ in range(k - 1):
        if nxt == max_ms:
            break
        nxt = nxt * 2 if nxt < limit else max_ms
    return nxt


def backoff_delay(k: int, base_ms: int, max_ms: int, u: float) -> int:
    """The k-th retry's back-off in whole ms: Envoy's full jitter ``random() % cap``.

    ``u`` is a uniform draw in [0, 1); the result is uniform over the
    integers ``0 .. backoff_cap(k) - 1``, mean ``(cap - 1) / 2`` ms.

    Notes
    -----
    Envoy's router docs give the range as ``[0, (2**N - 1) * base)``; the
    code (and the real 1.40 binary, envoy.md A.1: base 100 ms, max 1 s gave
    mean gaps of 50/101/199/380/516 ms) use ``[0, min(base * 2**(N-1), max))``.

    Examples
    --------
    >>> backoff_delay(1, 25, 250, 0.0), backoff_delay(1, 25, 250, 0.999), backoff_delay(3, 25, 250, 0.5)
    (0, 24, 50)
    """
    cap = backoff_cap(k, base_ms, max_ms)
    d = int(u * cap)
    return d if d < cap else cap - 1


def retry_budget_limit(
    budget_percent: float, min_retry_concurrency: int, active_requests: int, pending_requests: int
) -> int:
    """Concurrent retries a retry budget allows: ``max(floor(pct/100 * (active + pending)), min)``.

    Examples
    --------
    >>> retry_budget_limit(20.0, 3, 40, 10)   # 20 % of 50 = 10
    10
    >>> retry_budget_limit(20.0, 3, 8, 2)     # 20 % of 10 = 2 < 3
    3
    >>> retry_budget_limit(25.0, 0, 7, 0)     # floor(1.75)
    1
    """
    return max(int(budget_percent / 100.0 * (active_requests + pending_requests)), min_retry_concurrency)


# --------------------------------------------------------------------------------------------------
# config


def _ms(seconds: float) -> int:
    """Whole ms as Envoy's ``PROTOBUF_GET_MS`` reads a Duration (truncated)."""
    return round(seconds * 1e9) // 1_000_000


class RetryBackOff(PolicyModel):
    """Exponential back-off between retries.

    Parameters
    ----------
    base_interval
        Required, > 0 (``"25ms"``). Envoy works in whole milliseconds: values
        are truncated to ms and anything under 1 ms becomes 1 ms.
    max_interval
        > 0 and >= ``base_interval`` (compared in ms, as Envoy does); default
        10 × ``base_interval``.

    Notes
    -----
    Without a ``retry_back_off`` block Envoy uses base 25 ms, max 250 ms. A
    bare duration is shorthand for ``{base_interval: ...}`` (Istio's
    ``backoff``).

    References
    ----------
    ``envoy.config.route.v3.RetryPolicy.RetryBackOff``; ``RetryPolicyImpl``
    (refuses max < base: "retry_policy.max_interval must greater than or
    equal to the base_interval").

    Examples
    --------
    >>> b = RetryBackOff.model_validate("100ms")
    >>> b.base_interval_ms, b.max_interval_ms
    (100, 1000)
    >>> RetryBackOff.model_validate({"base_interval": "0.2ms"}).base_interval_ms
    1
    """

    base_interval: Seconds | None = None
    max_interval: Seconds | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, (str, int, float)) and not isinstance(data, bool):
            return {"base_interval": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> RetryBackOff:
        if self.base_interval is None:
            raise refuse("retry_back_off needs base_interval (Envoy requires it when the block is present)")
        if self.base_interval <= 0.0:
            raise refuse(f"retry_back_off.base_interval must be > 0; got {self.base_interval:g}s")
        if self.max_interval is not None:
            if self.max_interval <= 0.0:
                raise refuse(f"retry_back_off.max_interval must be > 0; got {self.max_interval:g}s")
            if self.max_interval_ms < self.base_interval_ms:
                raise refuse(
                    f"retry_back_off.max_interval {self.max_interval_ms}ms is below base_interval "
                    f"{self.base_interval_ms}ms; Envoy refuses this (max_interval must be >= base_interval)"
                )
        return self

    @property
    def base_interval_ms(self) -> int:
        """Effective base in whole ms (truncated, at least 1)."""
        assert self.base_interval is not None
        return max(1, _ms(self.base_interval))

    @property
    def max_interval_ms(self) -> int:
        """Effective max in whole ms (at least 1; 10 × base when unset)."""
        if self.max_interval is None:
            return DEFAULT_MAX_INTERVAL_FACTOR * self.base_interval_ms
        return max(1, _ms(self.max_interval))


def _percent(value: Any) -> Any:
    if isinstance(value, Mapping) and set(value) == {"value"}:
        value = value["value"]
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    return value


class RetryBudget(PolicyModel):
    """A cluster retry budget: concurrent retries as a share of the cluster's requests.

    Parameters
    ----------
    budget_percent
        Percent (0–100) of active + pending requests that may be retries;
        ``20``, ``"20%"`` or Envoy's ``{value: 20}``. Default 20 when the
        budget is in force.
    min_retry_concurrency
        Floor on the concurrent retries allowed; default 3 when in force.

    Notes
    -----
    The budget is **in force only if at least one field is given**. An empty
    ``retry_budget: {}`` does nothing and ``max_retries`` still applies, as in
    Envoy (``ClusterInfoImpl`` sets the optionals only when present). When in
    force it replaces ``max_retries``. ``budget_interval`` (requests started in
    a sliding window instead of live active + pending) is not modelled.

    References
    ----------
    ``envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget``.

    Examples
    --------
    >>> RetryBudget.model_validate({}).in_force, RetryBudget.model_validate({"budget_percent": "25%"}).percent
    (False, 25.0)
    """

    budget_percent: float | None = Field(None, ge=0.0, le=100.0, allow_inf_nan=False)
    min_retry_concurrency: int | None = Field(None, ge=0)

    @field_validator("budget_percent", mode="before")
    @classmethod
    def _pct(cls, value: Any) -> Any:
        return _percent(value)

    @property
    def in_force(self) -> bool:
        """True when at least one field is set (otherwise Envoy keeps ``max_retries``)."""
        return self.budget_percent is not None or self.min_retry_concurrency is not None

    @property
    def percent(self) -> float:
        """Effective ``budget_percent`` (20 when unset)."""
        return DEFAULT_BUDGET_PERCENT if self.budget_percent is None else self.budget_percent

    @property
    def min_concurrency(self) -> int:
        """Effective ``min_retry_concurrency`` (3 when unset)."""
        return DEFAULT_MIN_RETRY_CONCURRENCY if self.min_retry_concurrency is None else self.min_retry_concurrency


class PreviousPriorities(PolicyModel):
    """``envoy.retry_priorities.previous_priorities``: retries move load off tried priorities.

    Parameters
    ----------
    update_frequency
        Attempts between priority-load updates, > 0; default 2 (what Istio
        writes for ``retryRemoteLocalities: true``).

    Notes
    -----
    Exported, not simulated: meshsim has one priority per cluster.
    """

    update_frequency: int = Field(2, gt=0)

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if data in ("previous_priorities", _PREVIOUS_PRIORITIES_NAME, True):
            return {}
        if isinstance(data, Mapping) and "name" in data:
            if data["name"] != _PREVIOUS_PRIORITIES_NAME:
                raise refuse(
                    f"retry_priority {data['name']!r} is not supported; only {_PREVIOUS_PRIORITIES_NAME}"
                )
            cfg = data.get("typed_config") or {}
            return {k: v for k, v in cfg.items() if k != "@type"}
        return data


_ISTIO_KEYS = (
    "attempts", "retryOn", "perTryTimeout", "backoff", "retryRemoteLocalities", "retryIgnorePreviousHosts",
)
#: Envoy field -> the Istio key it is read from (to name Istio's key in errors)
_ISTIO_NAME_OF = {
    "num_retries": "attempts", "retry_on": "retryOn", "per_try_timeout": "perTryTimeout",
    "retry_back_off": "backoff", "retry_priority": "retryRemoteLocalities",
    "retry_host_predicate": "retryIgnorePreviousHosts",
}
_APP_MESH_KEYS = ("maxRetries", "perRetryTimeout", "httpRetryEvents", "tcpRetryEvents", "grpcRetryEvents")
#: meshsim fields that Istio and App Mesh do not have, allowed next to their spellings
_EXTRA_KEYS = ("hedge_on_per_try_timeout", "retry_budget", "allow_unknown")

#: App Mesh ``httpRetryEvents`` -> Envoy token (AWS docs; server-error is 500-511, Envoy's 5xx 500-599)
_APP_MESH_HTTP_EVENTS = {
    "server-error": "5xx",
    "gateway-error": "gateway-error",
    "client-error": "retriable-4xx",
    "stream-error": "refused-stream",
}
_APP_MESH_TCP_EVENTS = {"connection-error": "connect-failure"}
#: App Mesh's default route retry conditions (AWS "Envoy defaults set by App Mesh"; Envoy form inferred)
_APP_MESH_DEFAULT_RETRY_ON = "connect-failure,refused-stream,reset,retriable-status-codes,unavailable"
_APP_MESH_GRPC_EVENTS = {
    t: t for t in ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
}


def _unknown_key(key: str, allowed: Sequence[str]) -> PydanticCustomError:
    return PydanticCustomError(
        "unknown_key",
        "unknown key {key}{hint} (allowed: {allowed})",
        {"key": repr(key), "hint": suggest(key, allowed), "allowed": ", ".join(allowed), "name": str(key)},
    )


def _only_keys(data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in data:
        if key not in allowed:
            raise _unknown_key(str(key), allowed)


def _istio_to_envoy(data: Mapping[str, Any]) -> dict[str, Any]:
    """An Istio ``HTTPRetry`` mapping -> Envoy-spelled fields, as ``retry.ConvertPolicy`` does."""
    _only_keys(data, (*_ISTIO_KEYS, *_EXTRA_KEYS))
    extras = {k: data[k] for k in _EXTRA_KEYS if k in data}
    attempts = data.get("attempts", 0)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise refuse(f"attempts must be an integer >= 0; got {attempts!r}", subpath="attempts")
    if attempts <= 0:
        others = [k for k in data if k in _ISTIO_KEYS and k != "attempts"]
        if others:
            raise refuse(
                f"Istio reads a retries block with no attempts (or attempts <= 0) as 'no retries', "
                f"so {', '.join(others)} would do nothing; give attempts: N, or attempts: 0 alone to disable",
                subpath="attempts",
            )
        # no retry policy at all: nothing retried, no per-try timeout
        return {"retry_on": "", "num_retries": 0, **extras}
    out: dict[str, Any] = {
        "retry_on": ISTIO_DEFAULT_RETRY_ON,
        "num_retries": attempts,
        "retry_host_predicate": [PREVIOUS_HOSTS],
        "host_selection_retry_max_attempts": ISTIO_HOST_SELECTION_RETRY_MAX_ATTEMPTS,
    }
    retry_on = data.get("retryOn")
    if retry_on:
        tokens, codes = [], []
        for part in _split(str(retry_on)):
            if part.isdigit() and int(part) in _HTTP_STATUSES:
                codes.append(int(part))
            else:
                tokens.append(part)
        if codes and "retriable-status-codes" not in tokens:
            tokens.append("retriable-status-codes")
        out["retry_on"] = ",".join(tokens)
        if codes:
            out["retriable_status_codes"] = codes
    if "perTryTimeout" in data:
        out["per_try_timeout"] = data["perTryTimeout"]
    if "retryIgnorePreviousHosts" in data and data["retryIgnorePreviousHosts"] is not None:
        keep = data["retryIgnorePreviousHosts"]
        if not isinstance(keep, bool):
            raise refuse(f"retryIgnorePreviousHosts must be true or false; got {keep!r}")
        out["retry_host_predicate"] = [PREVIOUS_HOSTS] if keep else []
    if data.get("retryRemoteLocalities") is True:
        out["retry_priority"] = {"update_frequency": 2}
    if data.get("backoff") is not None:
        out["retry_back_off"] = {"base_interval": data["backoff"]}
    out.update(extras)
    return out


def _events(data: Mapping[str, Any], key: str, table: Mapping[str, str], limit: int | None = None) -> list[str]:
    raw = data.get(key) or []
    if isinstance(raw, str):
        raw = [raw]
    if limit is not None and len(raw) > limit:
        raise refuse(f"{key} takes at most {limit} item; got {len(raw)}", subpath=key)
    out = []
    for event in raw:
        if event not in table:
            raise refuse(
                f"{key} event {event!r} is not an App Mesh retry event{suggest(event, table)} "
                f"(allowed: {', '.join(table)})",
                subpath=key,
            )
        out.append(table[event])
    return out


def _app_mesh_duration(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) - {"value", "unit"} or "value" not in value:
            raise refuse(f"perRetryTimeout must be {{value, unit: ms|s}}; got {dict(value)!r}")
        unit = value.get("unit", "ms")
        if unit not in ("ms", "s"):
            raise refuse(f"perRetryTimeout.unit must be 'ms' or 's'; got {unit!r}")
        return f"{value['value']}{unit}"
    return value


def _app_mesh_to_envoy(data: Mapping[str, Any]) -> dict[str, Any]:
    """An App Mesh route ``retryPolicy`` -> Envoy-spelled fields (envoy.md 10.1; ⚠️ inferred mapping)."""
    _only_keys(data, (*_APP_MESH_KEYS, *_EXTRA_KEYS))
    for key in ("maxRetries", "perRetryTimeout"):
        if key not in data:
            raise refuse(f"App Mesh retryPolicy needs {key} (maxRetries and perRetryTimeout are required)")
    tokens = (
        _events(data, "httpRetryEvents", _APP_MESH_HTTP_EVENTS)
        + _events(data, "tcpRetryEvents", _APP_MESH_TCP_EVENTS, limit=1)
        + _events(data, "grpcRetryEvents", _APP_MESH_GRPC_EVENTS)
    )
    if not tokens:
        raise refuse(
            "App Mesh retryPolicy needs at least one retry event "
            "(httpRetryEvents, tcpRetryEvents or grpcRetryEvents)"
        )
    out = {
        "retry_on": ",".join(tokens),
        "num_retries": data["maxRetries"],
        "per_try_timeout": _app_mesh_duration(data["perRetryTimeout"]),
    }
    out.update({k: data[k] for k in _EXTRA_KEYS if k in data})
    return out


_HTTP_STATUSES = frozenset(int(s) for s in HTTPStatus)


def _host_predicates(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)):
        value = [value]
    out: list[str] = []
    for item in value:
        name = item.get("name") if isinstance(item, Mapping) else item
        if name in (PREVIOUS_HOSTS, _PREVIOUS_HOSTS_NAME):
            if PREVIOUS_HOSTS not in out:
                out.append(PREVIOUS_HOSTS)
        else:
            raise refuse(
                f"retry_host_predicate {name!r} is not supported; meshsim simulates only "
                f"{PREVIOUS_HOSTS} ({_PREVIOUS_HOSTS_NAME})"
            )
    return tuple(out)


class RetryPolicy(PolicyModel):
    """How a route retries: Envoy's ``RetryPolicy`` plus hedging and the cluster's retry budget.

    Parameters
    ----------
    retry_on
        Comma list (or list) of conditions: ``5xx``, ``gateway-error``,
        ``reset``, ``reset-before-request``, ``connect-failure``,
        ``refused-stream``, ``retriable-4xx`` (409 only),
        ``retriable-status-codes``, ``retriable-headers`` (accepted, not
        simulated), ``envoy-ratelimited``, ``http3-post-connect-failure``
        (accepted, never true: no HTTP/3) and the gRPC ``cancelled``,
        ``deadline-exceeded``, ``internal``, ``resource-exhausted``,
        ``unavailable``. Unknown tokens are **refused** with a suggestion
        (Envoy ignores them silently) unless ``allow_unknown``. Stored in
        canonical order. Empty (default): nothing is retried, as in Envoy.
    num_retries
        Retries allowed per request, >= 0; default 1 (Istio ``attempts``,
        App Mesh ``maxRetries``).
    per_try_timeout, per_try_idle_timeout
        Per-attempt timeouts, seconds; 0 (default) = none (Istio
        ``perTryTimeout``, App Mesh ``perRetryTimeout``). See
        :mod:`meshsim.policies.timeout`.
    retry_back_off
        :class:`RetryBackOff`; absent → base 25 ms, max 250 ms.
    retriable_status_codes
        Codes (100–599) retried with ``retriable-status-codes``; stored sorted.
    retriable_headers
        Envoy ``HeaderMatcher`` mappings, exported as given (not simulated).
    retry_host_predicate
        ``[previous_hosts]`` (or Envoy's ``{name:
        envoy.retry_host_predicates.previous_hosts, typed_config}``): on a
        retry, re-pick hosts already tried.
    host_selection_retry_max_attempts
        Extra picks while the pick was already tried; default 1.
    retry_priority
        :class:`PreviousPriorities` (Istio ``retryRemoteLocalities: true``);
        exported, not simulated.
    hedge_on_per_try_timeout
        Envoy ``HedgePolicy.hedge_on_per_try_timeout``: on a per-try timeout
        keep the slow attempt and start another next to it. Default false.
    retry_budget
        The destination cluster's :class:`RetryBudget` (exported into the
        cluster's circuit breaker thresholds by :func:`budget_to_envoy`);
        absent or ``{}`` = no budget, ``max_retries`` applies.
    allow_unknown
        Keep unknown ``retry_on`` tokens (ignored by Envoy and meshsim alike).

    Notes
    -----
    **Istio spelling** (any of ``attempts``, ``retryOn``, ``perTryTimeout``,
    ``backoff``, ``retryRemoteLocalities``, ``retryIgnorePreviousHosts``) is
    translated as ``retry.ConvertPolicy`` does: start from Istio's default
    policy (``retry_on`` = :data:`ISTIO_DEFAULT_RETRY_ON`, previous_hosts
    predicate, 5 host-selection attempts), ``num_retries = attempts``, a given
    ``retryOn`` replaces the list (integer tokens become
    ``retriable_status_codes`` and add ``retriable-status-codes``),
    ``backoff`` sets the base interval, ``retryIgnorePreviousHosts: false``
    drops the predicate. ``attempts: 0`` alone means no retries at all;
    ``attempts`` missing or 0 next to other keys is refused (Istio would
    silently disable the retries those keys configure). A route with **no**
    ``retries`` block gets :meth:`istio_default`, which the scenario applies.

    **App Mesh spelling** (``maxRetries``, ``perRetryTimeout``,
    ``httpRetryEvents``, ``tcpRetryEvents``, ``grpcRetryEvents``):
    server-error → ``5xx``, gateway-error → ``gateway-error``, client-error →
    ``retriable-4xx``, stream-error → ``refused-stream``, connection-error →
    ``connect-failure``; ``maxRetries`` and ``perRetryTimeout`` are required,
    and at least one event. App Mesh's control plane is closed source: this
    mapping follows the AWS docs (envoy.md 10.1, inferred).

    Spellings do not mix (Envoy keys next to Istio keys are refused); the
    meshsim extras ``hedge_on_per_try_timeout``, ``retry_budget`` and
    ``allow_unknown`` go with any spelling.

    References
    ----------
    ``envoy.config.route.v3.RetryPolicy``, ``envoy.config.route.v3.HedgePolicy``
    (api/envoy/config/route/v3/route_components.proto);
    ``envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget``.

    Examples
    --------
    >>> p = RetryPolicy.model_validate({"retry_on": "reset,5xx", "num_retries": 3})
    >>> p.retry_on, p.num_retries, p.base_interval_ms, p.max_interval_ms
    ('5xx,reset', 3, 25, 250)
    >>> istio = RetryPolicy.model_validate({"attempts": 3, "retryOn": "5xx,503"})
    >>> istio.retry_on, istio.retriable_status_codes, istio.retry_host_predicate
    ('5xx,retriable-status-codes', (503,), ('previous_hosts',))
    """

    retry_on: str = ""
    num_retries: int = Field(DEFAULT_NUM_RETRIES, ge=0)
    per_try_timeout: MsDuration = 0.0
    per_try_idle_timeout: MsDuration = 0.0
    retry_back_off: RetryBackOff | None = None
    retriable_status_codes: tuple[int, ...] = ()
    retriable_headers: tuple[dict[str, Any], ...] = ()
    retry_host_predicate: tuple[str, ...] = ()
    host_selection_retry_max_attempts: int | None = Field(None, ge=0)
    retry_priority: PreviousPriorities | None = None
    hedge_on_per_try_timeout: bool = False
    retry_budget: RetryBudget | None = None
    allow_unknown: bool = False

    _flags: int = PrivateAttr(default=0)
    _codes: frozenset[int] = PrivateAttr(default=frozenset())
    _rt: tuple[Any, ...] = PrivateAttr(default=())

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        istio = [k for k in data if k in _ISTIO_KEYS]
        app_mesh = [k for k in data if k in _APP_MESH_KEYS]
        if istio and app_mesh:
            raise refuse(
                f"retry policy mixes Istio keys ({', '.join(istio)}) and App Mesh keys "
                f"({', '.join(app_mesh)}); use one spelling"
            )
        if istio:
            data = _istio_to_envoy(data)
        elif app_mesh:
            data = _app_mesh_to_envoy(data)
        if "retry_on" in data:
            data = dict(data)
            raw = data["retry_on"]
            if raw is None:
                raw = ""
            if not isinstance(raw, (str, list, tuple)):
                raise refuse(f"retry_on must be a comma list such as '5xx,reset'; got {raw!r}", "retry_on")
            allow = data.get("allow_unknown") is True
            known, unknown = [], []
            for token in _split(raw):
                if token in _TOKENS:
                    known.append(token)
                elif not allow:
                    raise refuse(_unknown_token_message(token), subpath="retry_on")
                elif token not in unknown:
                    unknown.append(token)
            canon = [t for t in _TOKENS if t in known]
            data["retry_on"] = ",".join(canon + unknown)
        return data

    @field_validator("retriable_status_codes", mode="before")
    @classmethod
    def _codes_valid(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, (int, str)):
            value = [value]
        out = set()
        for code in value:
            try:
                c = int(code)
            except (TypeError, ValueError):
                raise refuse(f"retriable_status_codes: {code!r} is not an HTTP status code") from None
            if isinstance(code, bool) or not 100 <= c <= 599:
                raise refuse(f"retriable_status_codes: {code!r} is not an HTTP status code (100-599)")
            out.add(c)
        return tuple(sorted(out))

    @field_validator("retry_host_predicate", mode="before")
    @classmethod
    def _predicates(cls, value: Any) -> Any:
        return _host_predicates(value)

    @model_validator(mode="after")
    def _compile(self) -> RetryPolicy:
        self._flags = flags = int(RetryOn.parse(self.retry_on, allow_unknown=True))
        self._codes = codes = frozenset(self.retriable_status_codes)
        # everything RetryState copies per request, read with one private-attribute access
        self._rt = (flags, codes, self.num_retries, self.base_interval_ms, self.max_interval_ms,
                    self.previous_hosts, self.host_selection_attempts, self.hedge_on_per_try_timeout)
        return self

    # ----------------------------------------------------------------------------------------- views

    @property
    def flags(self) -> RetryOn:
        """The ``retry_on`` conditions as :class:`RetryOn` flags (unknown tokens dropped)."""
        return RetryOn(self._flags)

    @property
    def active(self) -> bool:
        """False when no condition is set: Envoy creates no retry state and never retries."""
        return self._flags != 0

    @property
    def base_interval_ms(self) -> int:
        """Effective back-off base in ms (25 without ``retry_back_off``)."""
        return DEFAULT_BASE_INTERVAL_MS if self.retry_back_off is None else self.retry_back_off.base_interval_ms

    @property
    def max_interval_ms(self) -> int:
        """Effective back-off cap in ms (10 × base unless set)."""
        if self.retry_back_off is None:
            return DEFAULT_MAX_INTERVAL_FACTOR * DEFAULT_BASE_INTERVAL_MS
        return self.retry_back_off.max_interval_ms

    @property
    def host_selection_attempts(self) -> int:
        """Effective ``host_selection_retry_max_attempts`` (1 when unset or 0)."""
        v = self.host_selection_retry_max_attempts
        return v if v else DEFAULT_HOST_SELECTION_RETRY_MAX_ATTEMPTS

    @property
    def previous_hosts(self) -> bool:
        """Whether the previous_hosts predicate is on."""
        return PREVIOUS_HOSTS in self.retry_host_predicate

    # ------------------------------------------------------------------------------------ spellings

    @classmethod
    def istio_default(cls, *, consistent_hash: bool = False) -> RetryPolicy:
        """Istio's policy for a route with no ``retries`` block (Istio ≥ 1.24).

        ``num_retries: 2``, ``retry_on`` = :data:`ISTIO_DEFAULT_RETRY_ON`,
        **no** retriable status codes (so a 503 is not retried), previous_hosts
        (left out with consistent-hash load balancing), 5 host-selection
        attempts, Envoy's default back-off, no per-try timeout.

        Examples
        --------
        >>> p = RetryPolicy.istio_default()
        >>> p.num_retries, p.retriable_status_codes, p.previous_hosts
        (2, (), True)
        """
        return cls.model_validate(
            {
                "retry_on": ISTIO_DEFAULT_RETRY_ON,
                "num_retries": ISTIO_DEFAULT_NUM_RETRIES,
                "retry_host_predicate": [] if consistent_hash else [PREVIOUS_HOSTS],
                "host_selection_retry_max_attempts": ISTIO_HOST_SELECTION_RETRY_MAX_ATTEMPTS,
            }
        )

    @classmethod
    def from_istio(cls, retries: Mapping[str, Any] | None, *, consistent_hash: bool = False) -> RetryPolicy | None:
        """The Envoy policy istiod writes for a VirtualService ``retries`` block (``retry.ConvertPolicy``).

        * ``None`` (no block) → :meth:`istio_default`.
        * ``attempts`` missing or 0 → ``None``: istiod writes no retry policy.
          Istio's validation refuses ``perTryTimeout``, ``retryOn`` or
          ``retryRemoteLocalities`` next to it ("http retry policy configured
          when attempts are set to 0"), and so does this reader; ``backoff``
          and ``retryIgnorePreviousHosts`` pass Istio's validation and do
          nothing.
        * Otherwise as :class:`RetryPolicy` reads Istio's spelling.

        ``consistent_hash``: the route's one destination uses consistent
        hashing. istiod then leaves the previous_hosts predicate out **unless
        the block sets** ``retryIgnorePreviousHosts`` (an explicit ``true``
        keeps it).

        Raises
        ------
        ConfigError
            Unknown keys, a negative or non-integer ``attempts``, the fields
            Istio refuses with ``attempts: 0``, or an invalid field (``path``
            names it).

        Examples
        --------
        >>> RetryPolicy.from_istio({"attempts": 0}) is None
        True
        >>> RetryPolicy.from_istio(None).num_retries
        2
        >>> RetryPolicy.from_istio({"attempts": 2}, consistent_hash=True).previous_hosts
        False
        >>> RetryPolicy.from_istio({"attempts": 2, "retryIgnorePreviousHosts": True}, consistent_hash=True).previous_hosts
        True
        """
        if retries is None:
            return cls.istio_default(consistent_hash=consistent_hash)
        if not isinstance(retries, Mapping):
            raise ConfigError(f"Istio retries must be a mapping such as {{attempts: 3}}; got {retries!r}")
        allowed = (*_ISTIO_KEYS, *_EXTRA_KEYS)
        for key in retries:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key {key!r} in Istio retries{suggest(key, allowed)} (allowed: {', '.join(allowed)})",
                    path=str(key),
                )
        attempts = retries.get("attempts", 0)
        if attempts is None:
            attempts = 0
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ConfigError(
                f"attempts {attempts!r} is not allowed; Istio takes an integer >= 0 (0: no retries)", path="attempts"
            )
        if attempts == 0:
            refused = [k for k in ("perTryTimeout", "retryOn", "retryRemoteLocalities")
                       if retries.get(k) is not None and retries.get(k) != ""]
            if refused:
                raise ConfigError(
                    f"{', '.join(refused)} given with attempts {attempts}: Istio refuses a retry policy "
                    "configured when attempts are 0 (disabled); give attempts: N >= 1, or drop "
                    f"{', '.join(refused)}",
                    path=refused[0],
                )
            return None  # istiod writes no retry policy
        data = {k: v for k, v in retries.items() if not (k == "retryOn" and v == "")}
        if consistent_hash and data.get("retryIgnorePreviousHosts") is None:
            data["retryIgnorePreviousHosts"] = False
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            ctx = err.get("ctx") or {}
            where = str(ctx.get("subpath") or ctx.get("name") or ".".join(str(p) for p in err["loc"]))
            head, _, rest = where.partition(".")
            where = ".".join(x for x in (_ISTIO_NAME_OF.get(head, head), rest) if x)
            raise ConfigError(str(ctx.get("message") or err["msg"]), path=where) from None

    @classmethod
    def from_app_mesh(cls, retry_policy: Mapping[str, Any]) -> RetryPolicy:
        """The Envoy policy for an App Mesh route ``retryPolicy`` (same as validating that spelling).

        Examples
        --------
        >>> p = RetryPolicy.from_app_mesh({
        ...     "maxRetries": 2, "perRetryTimeout": {"value": 500, "unit": "ms"},
        ...     "httpRetryEvents": ["server-error"], "tcpRetryEvents": ["connection-error"]})
        >>> p.retry_on, p.num_retries, p.per_try_timeout
        ('5xx,connect-failure', 2, 0.5)
        """
        if not isinstance(retry_policy, Mapping) or not any(k in retry_policy for k in _APP_MESH_KEYS):
            raise ConfigError(
                f"an App Mesh retryPolicy has maxRetries, perRetryTimeout and retry events; got {retry_policy!r}"
            )
        return cls.model_validate(retry_policy)

    @classmethod
    def app_mesh_default(cls) -> RetryPolicy:
        """The retry policy App Mesh gives a route that has no ``retryPolicy``.

        App Mesh writes it for every HTTP, HTTP/2 and gRPC route (and for the
        route of a virtual service whose provider is a virtual node) in
        accounts that had no mesh before 29 July 2020; it is not visible in the
        App Mesh API, only in Envoy's config dump. AWS lists: 2 retries; HTTP
        503; gRPC UNAVAILABLE; connect-failure and refused-stream; reset. Its
        Envoy form: ``retry_on: connect-failure,refused-stream,reset,
        retriable-status-codes,unavailable``, ``retriable_status_codes:
        [503]``, ``num_retries: 2``, no per-try timeout, Envoy's back-off.

        Notes
        -----
        The Envoy form is inferred from AWS's list (envoy.md 10.1): App Mesh's
        control plane is closed source. Older accounts get no default policy.

        Examples
        --------
        >>> p = RetryPolicy.app_mesh_default()
        >>> p.retry_on, p.retriable_status_codes, p.num_retries, p.per_try_timeout
        ('reset,connect-failure,refused-stream,retriable-status-codes,unavailable', (503,), 2, 0.0)
        """
        return cls.model_validate(
            {"retry_on": _APP_MESH_DEFAULT_RETRY_ON, "retriable_status_codes": [503], "num_retries": 2}
        )


# --------------------------------------------------------------------------------------------------
# runtime

H = TypeVar("H", bound=Hashable)


class RetryBreaker:
    """The cluster's retry resource: how many retries may be outstanding at once.

    Parameters
    ----------
    max_retries
        ``circuit_breakers.thresholds[].max_retries`` (default 3): the limit
        when no budget is in force.
    budget
        A :class:`RetryBudget` (or ``None``); when :attr:`RetryBudget.in_force`
        it **replaces** ``max_retries`` with :func:`retry_budget_limit`.
    load
        ``() -> (active_requests, pending_requests)`` of the cluster, read
        when :meth:`can_create` is called without arguments and a budget is
        in force (the engine passes its circuit-breaker counters).
    stats
        Counter dict shared with the cluster; a new one by default. Every
        :class:`RetryState` of the cluster increments it.

    Attributes
    ----------
    active
        Retries currently holding a slot (Envoy's ``retries().count()``).
    rq_retry_open
        Gauge ``circuit_breakers.default.rq_retry_open``: 1 when
        ``active >= max_retries``, updated on :meth:`inc`/:meth:`dec`. As in
        Envoy it follows ``max_retries`` even while a budget decides.

    Notes
    -----
    Envoy's ``canCreate()`` is ``count < max``: with ``max_retries: 3`` at most
    3 retries are outstanding; a retry holds its slot from the decision,
    through its back-off wait and the retried attempt, until that attempt's
    outcome is judged or the request ends (see :class:`RetryState`).
    Priorities are not modelled: one breaker per cluster. The object also has
    the interface of :class:`meshsim.policies.circuit_breaker.Resource`
    (``name``, ``current``, ``max``, ``remaining``, ``open``, ``can_create``,
    ``inc``, ``dec``), so it can stand as a ``ResourceManager``'s ``retries``
    with ``load=lambda: (rm.requests.current, rm.pending.current)`` and
    ``stats=rm.stats``.

    Examples
    --------
    >>> b = RetryBreaker(max_retries=1)
    >>> b.can_create(), b.inc(), b.can_create(), b.rq_retry_open
    (True, None, False, 1)
    >>> budget = RetryBreaker(budget=RetryBudget(budget_percent=20), load=lambda: (40, 10))
    >>> budget.limit(), budget.can_create(active_requests=5, pending_requests=0)
    (10, True)
    """

    __slots__ = ("max_retries", "use_budget", "budget_percent", "min_retry_concurrency", "load", "active",
                 "rq_retry_open", "stats")

    def __init__(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        budget: RetryBudget | None = None,
        load: Callable[[], tuple[int, int]] | None = None,
        stats: dict[str, int] | None = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0; got {max_retries!r}")
        self.max_retries: int = int(max_retries)
        self.use_budget: bool = budget is not None and budget.in_force
        self.budget_percent: float = budget.percent if budget is not None else DEFAULT_BUDGET_PERCENT
        self.min_retry_concurrency: int = (
            budget.min_concurrency if budget is not None else DEFAULT_MIN_RETRY_CONCURRENCY
        )
        self.load = load
        self.active: int = 0
        self.rq_retry_open: int = 0  # Envoy sets the gauge on inc/dec only
        if stats is None:
            stats = {}
        for name in _STAT_NAMES:
            stats.setdefault(name, 0)
        self.stats: dict[str, int] = stats

    def limit(self, active_requests: int | None = None, pending_requests: int | None = None) -> int:
        """The current maximum of outstanding retries (``max_retries`` or the budget formula)."""
        if not self.use_budget:
            return self.max_retries
        if active_requests is None or pending_requests is None:
            if self.load is None:
                raise SimulationError(
                    "RetryBreaker with a retry budget needs the cluster's active and pending requests: "
                    "pass them or give load=callable"
                )
            a, p = self.load()
            active_requests = a if active_requests is None else active_requests
            pending_requests = p if pending_requests is None else pending_requests
        return retry_budget_limit(
            self.budget_percent, self.min_retry_concurrency, active_requests, pending_requests
        )

    def can_create(self, active_requests: int | None = None, pending_requests: int | None = None) -> bool:
        """Whether one more retry may start now (Envoy ``retries().canCreate()``: ``active < max``)."""
        if not self.use_budget:
            return self.active < self.max_retries
        return self.active < self.limit(active_requests, pending_requests)

    def inc(self) -> None:
        """Take a slot (after a successful :meth:`can_create`)."""
        self.active += 1
        self.rq_retry_open = 0 if self.active < self.max_retries else 1

    def dec(self) -> None:
        """Release a slot."""
        if self.active <= 0:
            raise SimulationError("RetryBreaker.dec() without a slot held (retry slot accounting bug)")
        self.active -= 1
        self.rq_retry_open = 0 if self.active < self.max_retries else 1

    @property
    def remaining_retries(self) -> int:
        """Gauge ``remaining_retries``: ``max_retries - active`` (0 while a budget is in force)."""
        return 0 if self.use_budget else max(self.max_retries - self.active, 0)

    # the interface of meshsim.policies.circuit_breaker.Resource, so a ResourceManager can hold
    # this object as its ``retries`` resource
    name = "rq_retry"

    @property
    def current(self) -> int:
        """Same as :attr:`active` (``Resource`` interface)."""
        return self.active

    @property
    def max(self) -> int:
        """Same as :meth:`limit` with the ``load`` callable (``Resource`` interface)."""
        return self.limit()

    @property
    def remaining(self) -> int:
        """Same as :attr:`remaining_retries` (``Resource`` interface)."""
        return self.remaining_retries

    @property
    def open(self) -> int:
        """Same as :attr:`rq_retry_open` (``Resource`` interface)."""
        return self.rq_retry_open

    def __repr__(self) -> str:
        if self.use_budget:
            lim = f"budget_percent={self.budget_percent:g}, min_retry_concurrency={self.min_retry_concurrency}"
        else:
            lim = f"max_retries={self.max_retries}"
        return f"RetryBreaker({lim}, active={self.active})"


def _uniform_source(rng: Any) -> Callable[[], float]:
    if isinstance(rng, np.random.Generator):
        return rng.random
    if callable(rng):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng).random
    raise TypeError(
        f"rng must be a numpy.random.Generator, a () -> float uniform source, an int seed or None; "
        f"got {type(rng).__name__}"
    )


class RetryState:
    """The retry bookkeeping of one request (Envoy's ``RetryStateImpl``), engine-free.

    Build it with :meth:`create`, which returns ``None`` when the policy has
    no ``retry_on`` condition (Envoy then creates no retry state: nothing is
    retried, no retry stats, no ``URX``/``UO`` flags).

    Parameters
    ----------
    policy
        The route's :class:`RetryPolicy`.
    breaker
        The destination cluster's :class:`RetryBreaker` (shared by all requests).
    rng
        The retry-jitter stream: a ``numpy.random.Generator``, a ``() ->
        float`` uniform source (block-drawn by the engine), a seed or ``None``.
    stats
        Counter dict; default ``breaker.stats`` (the cluster's counters).

    Notes
    -----
    Engine call order for one request::

        st = RetryState.create(policy, breaker, rng)        # None: no retries
        host = st.choose_host(lb_pick); st.on_host_attempted(host)
        ... attempt ends with a response (status) or a reset (ResetKind) ...
        decision, delay = st.should_retry(status, reset, now)
        YES            -> wait delay, pick a host again (choose_host), new attempt
        NO             -> send this outcome downstream
        LIMIT_EXCEEDED -> send this outcome, add flag URX
        OVERFLOW       -> send the upstream's own outcome, add flag UO
        ... per-try timeout with hedging: st.hedge_on_per_try_timeout(now) ...
        st.on_request_end()    # response sent, route timeout, client gone

    Every judged outcome of the request goes through :meth:`should_retry`
    (successes too: that is how ``upstream_rq_retry_success`` is counted and
    the slot released), except responses of attempts already hedged, which
    Envoy only checks with :meth:`would_retry`.

    Attributes
    ----------
    retries_remaining
        Retries left (starts at ``num_retries``; a retry refused by the
        breaker still uses one).
    tried_hosts
        Hosts attempted so far, recorded only when the previous_hosts
        predicate is on (``None`` otherwise).
    hedging
        The route's ``hedge_on_per_try_timeout``.
    stats
        The counter dict incremented.
    """

    __slots__ = ("_flags", "_codes", "retries_remaining", "_next_ms", "_max_ms", "_limit_ms", "_breaker",
                 "_uniform", "_holding", "_started", "tried_hosts", "_host_attempts", "hedging", "stats")

    def __init__(
        self,
        policy: RetryPolicy,
        breaker: RetryBreaker,
        rng: np.random.Generator | Callable[[], float] | int | None = None,
        *,
        stats: dict[str, int] | None = None,
    ) -> None:
        flags, codes, num_retries, base_ms, max_ms, previous_hosts, host_attempts, hedge = policy._rt
        self._flags: int = flags
        self._codes: frozenset[int] = codes
        self.retries_remaining: int = num_retries
        self._next_ms: int = base_ms
        self._max_ms: int = max_ms
        self._limit_ms: int = max_ms // 2
        self._breaker = breaker
        self._uniform = _uniform_source(rng)
        self._holding: bool = False
        self._started: bool = False
        self.tried_hosts: set[Any] | None = set() if previous_hosts else None
        self._host_attempts: int = host_attempts
        self.hedging: bool = hedge
        self.stats: dict[str, int] = breaker.stats if stats is None else stats
        if stats is not None:
            for name in _STAT_NAMES:
                stats.setdefault(name, 0)

    @classmethod
    def create(
        cls,
        policy: RetryPolicy | None,
        breaker: RetryBreaker,
        rng: np.random.Generator | Callable[[], float] | int | None = None,
        *,
        stats: dict[str, int] | None = None,
    ) -> RetryState | None:
        """A retry state, or ``None`` when the policy is absent or has no ``retry_on`` condition."""
        if policy is None or not policy._flags:
            return None
        return cls(policy, breaker, rng, stats=stats)

    # -------------------------------------------------------------------------------------- decisions

    def would_retry(
        self,
        status: int | None,
        reset: ResetKind | None,
        *,
        grpc_status: int | None = None,
        rate_limited: bool = False,
    ) -> bool:
        """:func:`would_retry` with this request's policy; no counters, no state change."""
        started = self._started or (reset is not None and reset.request_sent)
        return would_retry(self._flags, status, reset, self._codes, grpc_status=grpc_status,
                           rate_limited=rate_limited, request_started=started)

    def should_retry(
        self,
        status: int | None,
        reset: ResetKind | None,
        now: float,
        *,
        grpc_status: int | None = None,
        rate_limited: bool = False,
        request_started: bool | None = None,
    ) -> tuple[RetryDecision, float]:
        """Judge one attempt's outcome: retry (and after how long) or not.

        Parameters
        ----------
        status
            Response status, or ``None`` for a reset.
        reset
            :class:`ResetKind`, or ``None`` for a response.
        now
            Current simulation time, seconds (decisions do not depend on it;
            the delay is relative to it).
        grpc_status, rate_limited
            See :func:`would_retry`.
        request_started
            Whether this attempt had sent request bytes upstream; default
            ``reset.request_sent``. Sticky: once any attempt of the request
            has sent bytes, ``reset-before-request`` no longer retries.

        Returns
        -------
        (RetryDecision, float)
            The decision and, for ``YES``, the back-off delay in seconds
            (whole milliseconds); 0.0 otherwise.

        Notes
        -----
        Envoy's ``shouldRetry``, in order:

        1. If a previous retry holds a slot and this outcome is not retriable,
           count ``upstream_rq_retry_success``.
        2. Release the slot held by the previous retry.
        3. Not retriable → ``NO``.
        4. ``retries_remaining == 0`` → ``LIMIT_EXCEEDED``
           (``upstream_rq_retry_limit_exceeded``, flag ``URX``).
        5. ``retries_remaining -= 1`` (used even if the next check fails).
        6. Breaker cannot create → ``OVERFLOW`` (``upstream_rq_retry_overflow``,
           flag ``UO``; the caller returns the upstream's own response).
        7. Take a slot, count ``upstream_rq_retry`` and
           ``upstream_rq_retry_backoff_exponential``, return ``YES`` with the
           next jittered back-off.
        """
        if reset is not None:
            sent = reset.request_sent if request_started is None else request_started
            if sent:
                self._started = True
        retriable = would_retry(self._flags, status, reset, self._codes, grpc_status=grpc_status,
                                rate_limited=rate_limited, request_started=self._started)
        return self._decide(retriable)

    def hedge_on_per_try_timeout(self, now: float) -> tuple[RetryDecision, float]:
        """A per-try timeout with hedging on: start another attempt next to the slow one?

        Envoy's ``shouldHedgeRetryPerTryTimeout``: always retriable, still
        subject to ``num_retries``, the retry breaker and back-off. The slow
        attempt keeps running; the first good response wins. Call it only
        when :attr:`hedging` is true (otherwise the per-try timeout is a
        reset: ``should_retry(None, ResetKind.PER_TRY_TIMEOUT, now)``).
        """
        if not self.hedging:
            raise SimulationError("hedge_on_per_try_timeout() called for a route without hedging")
        return self._decide(True)

    def _decide(self, retriable: bool) -> tuple[RetryDecision, float]:
        stats = self.stats
        if self._holding:
            if not retriable:
                stats["upstream_rq_retry_success"] += 1
            self._holding = False
            self._breaker.dec()
        if not retriable:
            return RetryDecision.NO, 0.0
        if self.retries_remaining == 0:
            stats["upstream_rq_retry_limit_exceeded"] += 1
            return RetryDecision.LIMIT_EXCEEDED, 0.0
        self.retries_remaining -= 1
        breaker = self._breaker
        if not breaker.can_create():
            stats["upstream_rq_retry_overflow"] += 1
            return RetryDecision.OVERFLOW, 0.0
        breaker.inc()
        self._holding = True
        stats["upstream_rq_retry"] += 1
        stats["upstream_rq_retry_backoff_exponential"] += 1
        cap = self._next_ms
        self._next_ms = cap * 2 if cap < self._limit_ms else self._max_ms
        d = int(self._uniform() * cap)
        return RetryDecision.YES, (d if d < cap else cap - 1) / 1000.0

    def on_request_end(self) -> None:
        """The request is over (response sent, route timeout, cancel): release any held slot."""
        if self._holding:
            self._holding = False
            self._breaker.dec()

    @property
    def holding_slot(self) -> bool:
        """Whether this request holds a retry slot (a retry is pending or running)."""
        return self._holding

    # ----------------------------------------------------------------------------------------- hosts

    def on_host_attempted(self, host: Hashable) -> None:
        """Record that an attempt went to ``host`` (for the previous_hosts predicate)."""
        tried = self.tried_hosts
        if tried is not None:
            tried.add(host)

    def choose_host(self, pick: Callable[[], H], attempts: int | None = None) -> H:
        """Pick a host with the previous_hosts predicate applied (Envoy LB ``chooseHost``).

        Calls ``pick()``; while the pick was already tried, re-picks up to
        ``attempts`` more times (default ``host_selection_retry_max_attempts``,
        1 when unset) and otherwise keeps the **last** pick. Without the
        predicate it is one ``pick()``.

        Examples
        --------
        >>> st = RetryState(RetryPolicy(retry_on="5xx", retry_host_predicate=("previous_hosts",)),
        ...                 RetryBreaker(), rng=0)
        >>> st.on_host_attempted("a")
        >>> picks = iter(["a", "a", "b"])
        >>> st.choose_host(lambda: next(picks))   # a tried, re-pick once: a again, kept
        'a'
        """
        host = pick()
        tried = self.tried_hosts
        if tried is None:
            return host
        n = self._host_attempts if attempts is None else attempts
        while n > 0 and host in tried:
            host = pick()
            n -= 1
        return host

    def __repr__(self) -> str:
        return (
            f"RetryState(retry_on={str(RetryOn(self._flags))!r}, retries_remaining={self.retries_remaining}, "
            f"holding_slot={self._holding})"
        )


# --------------------------------------------------------------------------------------------------
# Envoy


def to_envoy(policy: RetryPolicy) -> dict[str, Any]:
    """Envoy v3 ``RouteAction`` fragment: ``retry_policy`` (and ``hedge_policy`` when on).

    ``retry_policy`` is left out for a policy that does nothing (no
    condition, no per-try timeout: Istio's ``attempts: 0``), so such a policy
    gives ``{}``.
    Durations are proto3 JSON strings. The cluster part of the budget is
    :func:`budget_to_envoy`.

    Examples
    --------
    >>> to_envoy(RetryPolicy.model_validate({"attempts": 3, "retryOn": "5xx", "perTryTimeout": "2s"}))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'retry_policy': {'retry_on': '5xx', 'num_retries': 3, 'per_try_timeout': '2s',
      'retry_host_predicate': [{'name': 'envoy.retry_host_predicates.previous_hosts',
        'typed_config': {'@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate'}}],
      'host_selection_retry_max_attempts': 5}}
    """
    out: dict[str, Any] = {}
    if policy.hedge_on_per_try_timeout:
        out["hedge_policy"] = {"hedge_on_per_try_timeout": True}
    if not policy.retry_on and not policy.per_try_timeout and not policy.per_try_idle_timeout:
        return out
    rp: dict[str, Any] = {}
    if policy.retry_on:
        rp["retry_on"] = policy.retry_on
    rp["num_retries"] = policy.num_retries
    if policy.per_try_timeout:
        rp["per_try_timeout"] = proto_duration(policy.per_try_timeout)
    if policy.per_try_idle_timeout:
        rp["per_try_idle_timeout"] = proto_duration(policy.per_try_idle_timeout)
    if policy.retry_back_off is not None:
        bo = policy.retry_back_off
        assert bo.base_interval is not None
        backoff = {"base_interval": proto_duration(bo.base_interval)}
        if bo.max_interval is not None:
            backoff["max_interval"] = proto_duration(bo.max_interval)
        rp["retry_back_off"] = backoff
    if policy.retriable_status_codes:
        rp["retriable_status_codes"] = list(policy.retriable_status_codes)
    if policy.retriable_headers:
        rp["retriable_headers"] = [dict(h) for h in policy.retriable_headers]
    if policy.previous_hosts:
        rp["retry_host_predicate"] = [
            {"name": _PREVIOUS_HOSTS_NAME, "typed_config": {"@type": _PREVIOUS_HOSTS_TYPE}}
        ]
    if policy.host_selection_retry_max_attempts is not None:
        rp["host_selection_retry_max_attempts"] = policy.host_selection_retry_max_attempts
    if policy.retry_priority is not None:
        rp["retry_priority"] = {
            "name": _PREVIOUS_PRIORITIES_NAME,
            "typed_config": {
                "@type": _PREVIOUS_PRIORITIES_TYPE,
                "update_frequency": policy.retry_priority.update_frequency,
            },
        }
    return {"retry_policy": rp, **out}


def budget_to_envoy(policy: RetryPolicy | RetryBudget | None) -> dict[str, Any]:
    """The cluster ``circuit_breakers.thresholds[]`` fragment of a retry budget.

    Written exactly as configured: only the fields given (an empty budget
    stays ``{}``, which Envoy, like meshsim, treats as no budget). ``{}`` when
    there is no budget at all. ``max_retries`` belongs to the circuit breaker
    policy.

    Examples
    --------
    >>> budget_to_envoy(RetryBudget(budget_percent=20, min_retry_concurrency=3))
    {'retry_budget': {'budget_percent': {'value': 20.0}, 'min_retry_concurrency': 3}}
    >>> budget_to_envoy(RetryPolicy(retry_on="5xx"))
    {}
    """
    budget = policy.retry_budget if isinstance(policy, RetryPolicy) else policy
    if budget is None:
        return {}
    rb: dict[str, Any] = {}
    if budget.budget_percent is not None:
        rb["budget_percent"] = {"value": float(budget.budget_percent)}
    if budget.min_retry_concurrency is not None:
        rb["min_retry_concurrency"] = budget.min_retry_concurrency
    return {"retry_budget": rb}


def to_istio(
    policy: RetryPolicy | None, *, per_try_timeout: float | None = None, consistent_hash: bool = False
) -> dict[str, Any]:
    """The Istio ``HTTPRetry`` (VirtualService ``http[].retries``) istiod turns into this policy.

    Parameters
    ----------
    policy
        The route's retry policy; ``None`` (no policy) gives ``{attempts: 0}``,
        Istio's way to write no retry policy (leaving ``retries`` out would
        give Istio's default policy instead).
    per_try_timeout
        The route's per-try timeout, seconds (meshsim resolves it from the
        route's ``timeout`` and ``retries`` blocks); ``None``: the policy's own.
    consistent_hash
        Whether istiod will see consistent hashing on the route's one
        destination, which changes its default for the previous-hosts predicate;
        ``retryIgnorePreviousHosts`` is written only where the policy differs
        from that default.

    Notes
    -----
    Written: ``attempts`` (``num_retries``), ``retryOn`` (``retry_on`` with
    the ``retriable_status_codes`` as bare codes, always explicit: Istio's own
    default list differs from Envoy's empty one), ``perTryTimeout``,
    ``backoff`` (the base interval), ``retryRemoteLocalities``,
    ``retryIgnorePreviousHosts``. A policy that retries nothing (empty
    ``retry_on`` or ``num_retries: 0``) is written as ``{attempts: 0}``.
    Not expressible in Istio, and reported by the exporter: ``max_interval``
    other than 10 x the base, ``per_try_idle_timeout``,
    ``retriable_headers``, ``host_selection_retry_max_attempts`` other than
    Istio's 5, a ``retry_priority`` update frequency other than 2, hedging,
    unknown ``retry_on`` tokens (Istio's validation refuses them). The retry
    budget belongs to the DestinationRule (:func:`budget_to_istio`).

    Examples
    --------
    >>> to_istio(RetryPolicy.model_validate({"retry_on": "5xx,retriable-status-codes",
    ...     "retriable_status_codes": [503], "num_retries": 3, "per_try_timeout": "1s"}))
    {'attempts': 3, 'retryOn': '5xx,retriable-status-codes,503', 'perTryTimeout': '1s', 'retryIgnorePreviousHosts': False}
    >>> to_istio(None)
    {'attempts': 0}
    """
    from meshsim.policies._istio import istio_duration

    if policy is None or not policy.active or policy.num_retries == 0:
        return {"attempts": 0}
    out: dict[str, Any] = {"attempts": policy.num_retries}
    tokens = [t for t in _split(policy.retry_on) if t in _TOKENS]
    codes = [str(c) for c in policy.retriable_status_codes] if "retriable-status-codes" in tokens else []
    out["retryOn"] = ",".join(tokens + codes)
    per_try = policy.per_try_timeout if per_try_timeout is None else per_try_timeout
    if per_try:
        out["perTryTimeout"] = istio_duration(per_try)
    if policy.retry_back_off is not None:
        assert policy.retry_back_off.base_interval is not None
        out["backoff"] = istio_duration(policy.retry_back_off.base_interval)
    if policy.retry_priority is not None:
        out["retryRemoteLocalities"] = True
    if policy.previous_hosts == consistent_hash:  # istiod's default would be the other way round
        out["retryIgnorePreviousHosts"] = policy.previous_hosts
    return out


def budget_to_istio(budget: RetryPolicy | RetryBudget | None) -> dict[str, Any]:
    """The DestinationRule ``trafficPolicy.retryBudget`` (Istio >= 1.27) for a retry budget.

    ``{}`` for no budget, or one not in force. istiod writes both fields
    (defaults 20 % and 3), so both are written; a ``min_retry_concurrency``
    of 0 cannot be expressed (Istio reads 0 as "unset", i.e. 3).

    Examples
    --------
    >>> budget_to_istio(RetryBudget(budget_percent=25))
    {'percent': 25.0, 'minRetryConcurrency': 3}
    >>> budget_to_istio(RetryBudget())
    {}
    """
    budget = budget.retry_budget if isinstance(budget, RetryPolicy) else budget
    if budget is None or not budget.in_force:
        return {}
    return {"percent": float(budget.percent), "minRetryConcurrency": budget.min_concurrency}


def unsupported(policy: RetryPolicy) -> list[str]:
    """What of this policy meshsim exports but does not simulate, or keeps but Envoy ignores.

    Examples
    --------
    >>> unsupported(RetryPolicy(retry_on="5xx"))
    []
    """
    out = []
    flags = policy._flags
    if flags & int(RetryOn.RETRIABLE_HEADERS):
        out.append("retry_on retriable-headers: exported, not simulated (meshsim responses carry no headers)")
    if flags & int(RetryOn.HTTP3_POST_CONNECT_FAILURE):
        out.append("retry_on http3-post-connect-failure: exported, never true in meshsim (no HTTP/3)")
    if policy.retry_priority is not None:
        out.append("retry_priority previous_priorities: exported, not simulated (one priority per cluster)")
    bad = unknown_tokens(policy.retry_on)
    if bad:
        out.append(
            f"retry_on unknown tokens {', '.join(bad)}: kept (allow_unknown) and ignored by Envoy and meshsim"
        )
    return out


def lint(policy: RetryPolicy) -> list[Trap]:
    """Valid configurations that silently do less than they seem to (Envoy's traps).

    Each warning is a :class:`~meshsim.policies._model.Trap` (a ``str``) with
    its code (``docs/lint.md``): **MS101** an unknown ``retry_on`` token
    (Envoy ignores it), **MS102** no known condition at all, **MS103**
    ``retriable-status-codes`` with no codes, **MS104** codes without that
    token, **MS105** a per-try timeout that ``retry_on`` does not retry,
    **MS106** an empty ``retry_budget``, **MS110** ``retriable-4xx`` (409 only).

    Examples
    --------
    >>> lint(RetryPolicy.model_validate({"retry_on": "retriable-status-codes"}))  # doctest: +ELLIPSIS
    [Trap('retry_on has retriable-status-codes but retriable_status_codes is empty: no status is retried...', code='MS103', ...)]
    >>> [t.code for t in lint(RetryPolicy(retry_on="5xx,gateway-errors", allow_unknown=True))]
    ['MS101']
    """
    out: list[Trap] = []
    flags = policy._flags
    for token in unknown_tokens(policy.retry_on):
        hint = _token_hint(token).removeprefix("; ")
        out.append(Trap(
            f"retry_on token {token!r} is unknown{f' ({hint})' if hint else ''}: Envoy ignores unknown tokens "
            "silently, so nothing is retried on its account",
            code="MS101", field="retry_on", value=token,
        ))
    if not flags and policy.num_retries > 0:
        out.append(Trap(
            f"retry_on has no known condition: Envoy never retries with this policy "
            f"(num_retries {policy.num_retries} is never used)",
            code="MS102", field="retry_on", value=repr(policy.retry_on) if policy.retry_on else "unset",
        ))
    if flags & _F_CODES and not policy.retriable_status_codes:
        out.append(Trap(
            "retry_on has retriable-status-codes but retriable_status_codes is empty: no status is retried "
            "(the Istio >= 1.24 default: a 503 is not retried)",
            code="MS103", field="retriable_status_codes", value="[]",
        ))
    if policy.retriable_status_codes and not flags & _F_CODES:
        codes = list(policy.retriable_status_codes)
        out.append(Trap(
            f"retriable_status_codes {codes} are given but retry_on lacks retriable-status-codes: they are unused",
            code="MS104", field="retriable_status_codes", value=codes,
        ))
    if flags & _F_4XX:
        out.append(Trap(
            "retry_on retriable-4xx retries 409 Conflict only, no other 4xx; list the codes to retry in "
            "retriable_status_codes with retriable-status-codes",
            code="MS110", field="retry_on", value="retriable-4xx",
        ))
    if (policy.per_try_timeout or policy.per_try_idle_timeout) and flags and not flags & _F_ANY_RESET:
        field = "per_try_timeout" if policy.per_try_timeout else "per_try_idle_timeout"
        seconds = policy.per_try_timeout or policy.per_try_idle_timeout
        out.append(Trap(
            f"{field} is set but retry_on ({policy.retry_on}) has none of 5xx, gateway-error, reset: "
            "a per-try timeout is not retried (connect-failure does not cover it); the client gets 504 UT",
            code="MS105", field=field, value=f"{seconds:g}s",
        ))
    if policy.retry_budget is not None and not policy.retry_budget.in_force:
        out.append(Trap(
            "retry_budget is empty: Envoy applies no budget and max_retries (default 3 concurrent retries) "
            "still limits retries; set budget_percent or min_retry_concurrency",
            code="MS106", field="retry_budget", value="{}",
        ))
    return out
