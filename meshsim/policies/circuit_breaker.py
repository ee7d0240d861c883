"""Circuit breakers and HTTP connection pools, as Envoy does them.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`CircuitBreakerPolicy` holds Envoy's
  ``circuit_breakers.thresholds[priority DEFAULT]`` (``max_connections``,
  ``max_pending_requests``, ``max_requests``, ``max_retries``,
  ``max_connection_pools``) and the cluster's connection-pool options the
  simulator needs (upstream protocol, ``connect_timeout``,
  ``max_requests_per_connection``, HTTP/2 ``max_concurrent_streams``, idle
  timeout, max connection duration). Istio's ``DestinationRule``
  ``trafficPolicy.connectionPool`` is translated by :func:`from_istio` exactly
  as istiod does (including Istio's own defaults), App Mesh's VirtualNode
  ``connectionPool`` by :func:`from_appmesh`, and an Envoy cluster fragment by
  :func:`from_envoy`.
* **Runtime** — :class:`ResourceManager` holds the four circuit-breaker
  counters of one cluster (shared by every pool of that cluster in one Envoy)
  and the cluster's stats under Envoy's names; :class:`ConnectionPool` is the
  HTTP/1.1 or HTTP/2 pool towards one upstream host, following
  ``source/common/conn_pool/conn_pool_base.cc`` (``newStreamImpl``,
  ``tryCreateNewConnection``, ``attachStreamToClient``, ``onUpstreamReady``,
  ``onConnectionEvent``, ``purgePendingStreams``) and
  ``source/common/http/http1/conn_pool.cc``. Both are engine-free: the caller
  hands in ``now`` and is told what happened through return values and three
  callbacks.
* **Envoy** — :func:`to_envoy` writes the cluster fields
  (``connect_timeout``, ``circuit_breakers``,
  ``typed_extension_protocol_options``), checked by ``envoy --mode validate``
  1.40 in the tests.

Envoy semantics reproduced (``reference/envoy.md`` section 3, Envoy source):

* A request first looks for a **ready** connection of its host's pool (one
  with a free stream). If there is one, ``max_requests`` is checked *at
  attach*: at the limit the request fails at once (503 ``UO``,
  ``upstream_rq_active_overflow``; Envoy < 1.38 counted
  ``upstream_rq_pending_overflow`` instead).
* Otherwise ``max_pending_requests`` is checked: at the limit the request
  fails at once (503 ``UO``, ``upstream_rq_pending_overflow``); else it is
  queued (FIFO) and the pool opens a connection if the queue is longer than the
  stream capacity of the connections still connecting. ``max_connections``
  (which counts connecting connections too) refuses that connection
  (``upstream_cx_overflow``; the request stays queued) **unless the pool has no
  connection at all**, in which case one is opened anyway so the queue cannot
  starve: the cluster total can then exceed ``max_connections`` by at most one
  connection per pool.
* When a connection becomes ready (connected, or a stream on it ended), queued
  requests are attached in FIFO order, each checked against ``max_requests``.
* HTTP/1.1: one stream per connection; after ``max_requests_per_connection``
  streams the connection drains and closes (``upstream_cx_max_requests``); a
  local **reset** of a stream (route/per-try timeout, retry after a 5xx) closes
  its connection. HTTP/2: up to ``max_concurrent_streams`` streams share a
  connection; a reset ends one stream only.
* A connect failure or connect timeout fails **every** queued request of that
  pool (503 ``UF``, ``upstream_cx_connect_fail``,
  ``upstream_cx_connect_timeout``, ``upstream_rq_pending_failure_eject``),
  even when other connections are still connecting.
* ``max_connection_pools``: a pool holds one slot of the cluster while it has
  connections or queued requests (Envoy deletes idle pools); a request to a
  host whose pool cannot get a slot gets Envoy's ``no healthy upstream`` 503
  (``UH``, ``upstream_cx_pool_overflow``).

Notes
-----
Simplifications: one Envoy worker thread (``--concurrency 1``) and routing
priority ``DEFAULT`` only; no per-host thresholds, no pre-connecting
(``preconnect_policy``), no HTTP/3, no GOAWAY or upstream SETTINGS changes; an
upstream's ``Connection: close`` is not modelled. Idle timeout and max
connection duration are enforced *lazily*: a connection past its deadline is
closed (or drained) the next time the pool looks at it, or by
:meth:`ConnectionPool.expire_idle`, instead of by a timer.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ValidationError, field_validator

from meshsim._exceptions import ConfigError, SimulationError
from meshsim.latency import Duration, PositiveDuration
from meshsim.policies._model import PolicyModel, suggest
from meshsim.units import parse_count, parse_duration, proto_duration

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_PENDING_REQUESTS",
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_CONCURRENT_STREAMS",
    "DEFAULT_IDLE_TIMEOUT_S",
    "ISTIO_DEFAULT_CONNECT_TIMEOUT_S",
    "ISTIO_DEFAULT_THRESHOLD",
    "APPMESH_DEFAULT_THRESHOLD",
    "UINT32_MAX",
    "CLUSTER_STATS",
    "TcpKeepalive",
    "CircuitBreakerPolicy",
    "Resource",
    "ResourceManager",
    "ConnectionState",
    "Connection",
    "PoolDecision",
    "PoolFailure",
    "ConnectOutcome",
    "ConnectionPool",
    "connect_outcome",
    "from_istio",
    "to_istio",
    "from_appmesh",
    "from_envoy",
    "to_envoy",
    "unsupported",
]

#: Envoy's ``Thresholds.max_connections`` default.
DEFAULT_MAX_CONNECTIONS = 1024
#: Envoy's ``Thresholds.max_pending_requests`` default.
DEFAULT_MAX_PENDING_REQUESTS = 1024
#: Envoy's ``Thresholds.max_requests`` default.
DEFAULT_MAX_REQUESTS = 1024
#: Envoy's ``Thresholds.max_retries`` default (concurrent retries per cluster).
DEFAULT_MAX_RETRIES = 3
#: Envoy's ``Cluster.connect_timeout`` default (seconds).
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: Istio's ``MeshConfig.connectTimeout`` default (seconds), written to every cluster istiod builds.
ISTIO_DEFAULT_CONNECT_TIMEOUT_S = 10.0
#: Envoy's ``Http2ProtocolOptions.max_concurrent_streams`` default (2^31 - 1).
DEFAULT_MAX_CONCURRENT_STREAMS = 2_147_483_647
#: Envoy's upstream ``common_http_protocol_options.idle_timeout`` default (1 h; 0 disables).
DEFAULT_IDLE_TIMEOUT_S = 3600.0
#: Largest value of a proto ``uint32`` (Istio's "unlimited" circuit-breaker value).
UINT32_MAX = 4_294_967_295
#: What istiod writes for every threshold it is not told (``math.MaxUint32``).
ISTIO_DEFAULT_THRESHOLD = UINT32_MAX
#: App Mesh's fixed client-side thresholds (accounts without meshes before 29 Jul 2020).
APPMESH_DEFAULT_THRESHOLD = 2_147_483_647

#: The cluster stats :class:`ResourceManager` and :class:`ConnectionPool` count (Envoy names).
CLUSTER_STATS: tuple[str, ...] = (
    "upstream_rq_total",
    "upstream_rq_pending_total",
    "upstream_rq_pending_overflow",
    "upstream_rq_active_overflow",
    "upstream_rq_pending_failure_eject",
    "upstream_rq_cancelled",
    "upstream_rq_tx_reset",
    "upstream_rq_rx_reset",
    "upstream_cx_total",
    "upstream_cx_http1_total",
    "upstream_cx_http2_total",
    "upstream_cx_overflow",
    "upstream_cx_pool_overflow",
    "upstream_cx_connect_fail",
    "upstream_cx_connect_timeout",
    "upstream_cx_max_requests",
    "upstream_cx_idle_timeout",
    "upstream_cx_max_duration_reached",
    "upstream_cx_destroy",
    "upstream_cx_destroy_local",
    "upstream_cx_destroy_remote",
    "upstream_cx_destroy_with_active_rq",
    "upstream_cx_destroy_local_with_active_rq",
    "upstream_cx_destroy_remote_with_active_rq",
)

_HPO = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HPO_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_INF = math.inf

# --------------------------------------------------------------------------------------------------
# config


def _uint32(value: object) -> int:
    n = parse_count(value)
    if n > UINT32_MAX:
        raise ValueError(f"{value!r} is larger than a uint32 allows (at most {UINT32_MAX})")
    return n


def _max_streams(value: object) -> int:
    n = parse_count(value)
    if not 1 <= n <= DEFAULT_MAX_CONCURRENT_STREAMS:
        raise ValueError(
            f"max_concurrent_streams {value!r} is out of range; Envoy allows 1 to "
            f"{DEFAULT_MAX_CONCURRENT_STREAMS} (Http2ProtocolOptions PGV rule)"
        )
    return n


def _zero_is_none(value: object) -> object:
    if value is None:
        return None
    return None if parse_duration(value) == 0.0 else value


#: A proto uint32: 0 to 4294967295; accepts ``"10k"``.
Count = Annotated[int, BeforeValidator(_uint32)]
_Streams = Annotated[int, BeforeValidator(_max_streams)]
_Protocol = Literal["http1", "http2", "downstream"]
_PROTOCOL_SPELLINGS = {
    "http1": "http1",
    "http/1.1": "http1",
    "http1.1": "http1",
    "h1": "http1",
    "http2": "http2",
    "http/2": "http2",
    "h2": "http2",
    "grpc": "http2",
    "downstream": "downstream",
    "use_downstream_protocol": "downstream",
}


class TcpKeepalive(PolicyModel):
    """TCP keepalive of upstream connections (exported, not simulated).

    Parameters
    ----------
    keepalive_probes
        Unanswered probes before the connection is dropped; ``None``: the OS default.
    keepalive_time_s
        Idle seconds before the first probe; ``None``: the OS default (7200 s on Linux).
    keepalive_interval_s
        Seconds between probes; ``None``: the OS default (75 s on Linux).

    References
    ----------
    ``api/envoy/config/core/v3/address.proto`` ``TcpKeepalive`` (whole seconds).
    """

    keepalive_probes: Count | None = None
    keepalive_time_s: Count | None = None
    keepalive_interval_s: Count | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {
        "keepalive_time": "keepalive_time_s",
        "keepalive_interval": "keepalive_interval_s",
    }


class CircuitBreakerPolicy(PolicyModel):
    """Circuit-breaker thresholds and connection-pool options of one cluster.

    Envoy spelling (``max_connections: 100``, or the proto JSON camelCase
    ``maxConnections``) gets **Envoy's** defaults. Istio's
    ``connectionPool`` spelling (a mapping with ``tcp`` and/or ``http``) is
    accepted too and translated by :func:`from_istio`, so it gets **Istio's**
    defaults (every threshold 4294967295, connect timeout 10 s).

    Parameters
    ----------
    max_connections
        Connections (connecting ones included) the cluster may have open, all
        hosts together. Default 1024. Checked when a pool wants a new
        connection; a refused connection leaves the request queued
        (``upstream_cx_overflow``). A pool with no connection at all opens one
        anyway.
    max_pending_requests
        Requests that may wait for a connection, all hosts together. Default
        1024. A request that finds no ready connection while the queue is
        full fails at once: 503 ``UO`` (``upstream_rq_pending_overflow``).
    max_requests
        Streams that may be active, all hosts together. Default 1024. Checked
        when a request is attached to a connection: 503 ``UO``
        (``upstream_rq_active_overflow``). The binding limit on HTTP/2.
    max_retries
        Retries that may be outstanding at once in the cluster (read by
        :mod:`meshsim.policies.retry` through :attr:`ResourceManager.retries`).
        Default 3.
    max_connection_pools
        Connection pools (one per host here) that may exist at once; ``None``
        (default): unlimited. A request to a host whose pool cannot be
        created gets 503 ``UH`` ``no healthy upstream``.
    track_remaining
        Publish the ``remaining_*`` gauges (:meth:`ResourceManager.gauges`).
        Default false.
    protocol
        Upstream protocol: ``"http1"`` (default; Envoy's default for a cluster
        without protocol options), ``"http2"``, or ``"downstream"`` (Envoy
        ``use_downstream_protocol_config``, Istio ``useClientProtocol``: the
        pool speaks what the caller spoke). ``"h2"``, ``"grpc"``,
        ``"HTTP/1.1"`` are accepted.
    connect_timeout_s
        Seconds a connection attempt may take before it fails with 503 ``UF``
        (``upstream_cx_connect_timeout``). Envoy's cluster default is **5 s**;
        clusters written by istiod get MeshConfig ``connectTimeout``, default
        **10 s** (:data:`ISTIO_DEFAULT_CONNECT_TIMEOUT_S`). Must be > 0.
        Written ``connect_timeout: 250ms``.
    max_requests_per_connection
        Streams a connection serves in its lifetime before it drains and
        closes (``upstream_cx_max_requests``); 0 (default): unlimited. 1
        disables keep-alive.
    max_concurrent_streams
        HTTP/2 streams per connection, 1 to 2147483647 (default). A pool opens
        another connection when every connection is full.
    idle_timeout_s
        A connection with no active stream for this long is closed
        (``upstream_cx_idle_timeout``). Envoy's upstream default is 1 h; 0
        disables it.
    max_connection_duration_s
        A connection older than this drains (``upstream_cx_max_duration_reached``);
        ``None`` (default) or 0: no limit.
    tcp_keepalive
        :class:`TcpKeepalive`, exported only.

    References
    ----------
    ``api/envoy/config/cluster/v3/circuit_breaker.proto`` (``Thresholds``),
    ``api/envoy/config/cluster/v3/cluster.proto`` (``connect_timeout``),
    ``api/envoy/config/core/v3/protocol.proto`` (``HttpProtocolOptions``,
    ``Http2ProtocolOptions``),
    ``api/envoy/extensions/upstreams/http/v3/http_protocol_options.proto``.

    Examples
    --------
    >>> p = CircuitBreakerPolicy.model_validate({"max_connections": 1, "connect_timeout": "250ms"})
    >>> p.max_connections, p.max_pending_requests, p.max_retries, p.connect_timeout_s
    (1, 1024, 3, 0.25)
    >>> CircuitBreakerPolicy.model_validate({"tcp": {"maxConnections": 1}}).max_pending_requests
    4294967295
    """

    max_connections: Count = DEFAULT_MAX_CONNECTIONS
    max_pending_requests: Count = DEFAULT_MAX_PENDING_REQUESTS
    max_requests: Count = DEFAULT_MAX_REQUESTS
    max_retries: Count = DEFAULT_MAX_RETRIES
    max_connection_pools: Count | None = None
    track_remaining: bool = False
    protocol: _Protocol = "http1"
    connect_timeout_s: PositiveDuration = DEFAULT_CONNECT_TIMEOUT_S
    max_requests_per_connection: Count = 0
    max_concurrent_streams: _Streams = DEFAULT_MAX_CONCURRENT_STREAMS
    idle_timeout_s: Duration = DEFAULT_IDLE_TIMEOUT_S
    max_connection_duration_s: Annotated[PositiveDuration | None, BeforeValidator(_zero_is_none)] = None
    tcp_keepalive: TcpKeepalive | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {
        "maxConnections": "max_connections",
        "maxPendingRequests": "max_pending_requests",
        "maxRequests": "max_requests",
        "maxRetries": "max_retries",
        "maxConnectionPools": "max_connection_pools",
        "trackRemaining": "track_remaining",
        "connect_timeout": "connect_timeout_s",
        "connectTimeout": "connect_timeout_s",
        "maxRequestsPerConnection": "max_requests_per_connection",
        "maxConcurrentStreams": "max_concurrent_streams",
        "idle_timeout": "idle_timeout_s",
        "idleTimeout": "idle_timeout_s",
        "max_connection_duration": "max_connection_duration_s",
        "maxConnectionDuration": "max_connection_duration_s",
        "tcpKeepalive": "tcp_keepalive",
    }

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data and set(data) <= {"tcp", "http"}:
            return _istio_fields(data, path="")
        return data

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _PROTOCOL_SPELLINGS.get(value.strip().lower(), value)
        return value


# --------------------------------------------------------------------------------------------------
# runtime: resources and stats


class Resource:
    """One circuit-breaker counter of a cluster: ``current`` against ``max``.

    The same interface as Envoy's ``ResourceLimit`` (``canCreate``, ``inc``,
    ``dec``, ``max``, ``count``). :mod:`meshsim.policies.retry` uses
    :attr:`ResourceManager.retries` through it, and may replace that
    attribute with its retry-budget object of the same interface.

    Parameters
    ----------
    name
        The gauge suffix: ``cx``, ``rq_pending``, ``rq``, ``rq_retry`` or ``cx_pool``.
    maximum
        The threshold.

    Examples
    --------
    >>> r = Resource("rq_retry", 1)
    >>> r.can_create(), r.inc(), r.can_create(), r.open
    (True, None, False, 1)
    """

    __slots__ = ("name", "current", "max")

    def __init__(self, name: str, maximum: int) -> None:
        self.name = name
        self.current = 0
        self.max = maximum

    def can_create(self) -> bool:
        """``current < max``: one more may be created (Envoy ``canCreate``)."""
        return self.current < self.max

    def inc(self) -> None:
        """Count one more."""
        self.current += 1

    def dec(self) -> None:
        """Count one fewer.

        Raises
        ------
        SimulationError
            The counter would go negative (a caller released twice).
        """
        if self.current <= 0:
            raise SimulationError(f"circuit-breaker counter {self.name!r} released below zero")
        self.current -= 1

    @property
    def remaining(self) -> int:
        """``max - current`` (never negative): Envoy's ``remaining_*`` gauge."""
        return max(0, self.max - self.current)

    @property
    def open(self) -> int:
        """1 while at or over the limit, else 0: Envoy's ``*_open`` gauge."""
        return 1 if self.current >= self.max else 0

    def __repr__(self) -> str:
        return f"Resource({self.name!r}, {self.current}/{self.max})"


class ResourceManager:
    """The circuit breakers and stats of one cluster, shared by all its pools.

    Parameters
    ----------
    policy
        The cluster's :class:`CircuitBreakerPolicy`; default Envoy's defaults.
    count_active_overflow_as_pending
        ``True`` reproduces Envoy < 1.38 (and the runtime flag
        ``envoy.reloadable_features.skip_pending_overflow_count_on_active_rq:
        false``): a ``max_requests`` overflow also counts
        ``upstream_rq_pending_overflow``. Default ``False`` (Envoy 1.38+).

    Attributes
    ----------
    connections, pending, requests, retries, connection_pools : Resource
        The five limits (``max_connections``, ``max_pending_requests``,
        ``max_requests``, ``max_retries``, ``max_connection_pools``).
        ``retries`` may be replaced by a retry-budget object with the same
        interface (``can_create()``, ``inc()``, ``dec()``, ``current``,
        ``max``), as Envoy replaces ``max_retries`` when a budget is set.
    stats : dict of str to int
        Cluster counters under Envoy's names (:data:`CLUSTER_STATS`).

    Examples
    --------
    >>> rm = ResourceManager(CircuitBreakerPolicy(max_retries=1))
    >>> rm.retries.can_create(), rm.retries.max
    (True, 1)
    >>> rm.gauges()["circuit_breakers.default.rq_retry_open"]
    0
    """

    __slots__ = (
        "policy",
        "connections",
        "pending",
        "requests",
        "retries",
        "connection_pools",
        "stats",
        "count_active_overflow_as_pending",
    )

    def __init__(
        self, policy: CircuitBreakerPolicy | None = None, *, count_active_overflow_as_pending: bool = False
    ) -> None:
        p = policy if policy is not None else CircuitBreakerPolicy()
        self.policy = p
        self.connections = Resource("cx", p.max_connections)
        self.pending = Resource("rq_pending", p.max_pending_requests)
        self.requests = Resource("rq", p.max_requests)
        self.retries: Any = Resource("rq_retry", p.max_retries)
        pools = p.max_connection_pools
        self.connection_pools = Resource("cx_pool", UINT32_MAX if pools is None else pools)
        self.stats: dict[str, int] = dict.fromkeys(CLUSTER_STATS, 0)
        self.count_active_overflow_as_pending = count_active_overflow_as_pending

    @property
    def cx_open(self) -> int:
        """``circuit_breakers.default.cx_open``: 1 while connections are at the limit."""
        return self.connections.open

    @property
    def rq_pending_open(self) -> int:
        """``circuit_breakers.default.rq_pending_open``."""
        return self.pending.open

    @property
    def rq_open(self) -> int:
        """``circuit_breakers.default.rq_open``."""
        return self.requests.open

    @property
    def rq_retry_open(self) -> int:
        """``circuit_breakers.default.rq_retry_open``."""
        return int(not self.retries.can_create())

    @property
    def cx_pool_open(self) -> int:
        """``circuit_breakers.default.cx_pool_open``."""
        return self.connection_pools.open

    def gauges(self) -> dict[str, int]:
        """The cluster's gauges under Envoy's names.

        ``circuit_breakers.default.{cx_open, cx_pool_open, rq_pending_open,
        rq_open, rq_retry_open}``, ``upstream_cx_active``,
        ``upstream_rq_active``, ``upstream_rq_pending_active`` and, with
        ``track_remaining``, ``circuit_breakers.default.remaining_{cx,
        pending, rq, retries, cx_pools}``.
        """
        prefix = "circuit_breakers.default."
        retries = self.retries
        out = {
            prefix + "cx_open": self.cx_open,
            prefix + "cx_pool_open": self.cx_pool_open,
            prefix + "rq_pending_open": self.rq_pending_open,
            prefix + "rq_open": self.rq_open,
            prefix + "rq_retry_open": self.rq_retry_open,
            "upstream_cx_active": self.connections.current,
            "upstream_rq_active": self.requests.current,
            "upstream_rq_pending_active": self.pending.current,
        }
        if self.policy.track_remaining:
            out[prefix + "remaining_cx"] = self.connections.remaining
            out[prefix + "remaining_pending"] = self.pending.remaining
            out[prefix + "remaining_rq"] = self.requests.remaining
            out[prefix + "remaining_retries"] = max(0, retries.max - retries.current)
            out[prefix + "remaining_cx_pools"] = self.connection_pools.remaining
        return out

    def __repr__(self) -> str:
        return (
            f"ResourceManager(cx={self.connections.current}/{self.connections.max}, "
            f"pending={self.pending.current}/{self.pending.max}, "
            f"rq={self.requests.current}/{self.requests.max}, "
            f"retries={self.retries.current}/{self.retries.max})"
        )


# --------------------------------------------------------------------------------------------------
# runtime: decisions


class ConnectionState(enum.Enum):
    """Envoy's ``ActiveClient::State`` (early-data state left out)."""

    CONNECTING = "connecting"
    READY = "ready"  # connected, can take another stream
    BUSY = "busy"  # connected, every stream slot in use
    DRAINING = "draining"  # takes no new stream; closes when its last stream ends
    CLOSED = "closed"


_CONNECTING = ConnectionState.CONNECTING
_READY = ConnectionState.READY
_BUSY = ConnectionState.BUSY
_DRAINING = ConnectionState.DRAINING
_CLOSED = ConnectionState.CLOSED


class PoolFailure(enum.Enum):
    """Why the pool failed a request, with what the client then sees.

    Attributes
    ----------
    reset_reason : str or None
        Envoy's reset reason, as in the local reply body.
    response_flag : str
        Access-log response flag.
    status : int
        HTTP status of the local reply (503 for all).

    Notes
    -----
    ``OVERFLOW`` (pending or active-request limit) adds ``x-envoy-overloaded:
    true``; ``OVERFLOW`` and ``POOL_OVERFLOW`` are *dropped* requests: Envoy's
    router neither retries them nor reports them to outlier detection.
    ``CONNECT_FAILURE``/``CONNECT_TIMEOUT`` are retriable with ``retry_on:
    connect-failure`` (or ``reset``) and reported to outlier detection as
    local-origin connect failures; ``CONNECTION_TERMINATION`` (the connection
    closed under an active stream) is retriable with ``reset``.
    """

    OVERFLOW = ("overflow", "UO")
    POOL_OVERFLOW = (None, "UH")
    CONNECT_FAILURE = ("remote connection failure", "UF")
    CONNECT_TIMEOUT = ("connection timeout", "UF")
    CONNECTION_TERMINATION = ("connection termination", "UC")

    @property
    def reset_reason(self) -> str | None:
        """Envoy's reset-reason text (``None`` for ``POOL_OVERFLOW``)."""
        return self.value[0]

    @property
    def response_flag(self) -> str:
        """``UO``, ``UH``, ``UF`` or ``UC``."""
        return self.value[1]

    @property
    def status(self) -> int:
        """503."""
        return 503

    @property
    def body(self) -> str:
        """The local reply body Envoy sends."""
        if self is PoolFailure.POOL_OVERFLOW:
            return "no healthy upstream"
        return f"upstream connect error or disconnect/reset before headers. reset reason: {self.value[0]}"

    @property
    def overloaded(self) -> bool:
        """Whether the reply carries ``x-envoy-overloaded: true``."""
        return self is PoolFailure.OVERFLOW

    @property
    def dropped(self) -> bool:
        """Never retried and not reported to outlier detection."""
        return self is PoolFailure.OVERFLOW or self is PoolFailure.POOL_OVERFLOW


class PoolDecision(enum.Enum):
    """What :meth:`ConnectionPool.new_stream` did with a request.

    ``ATTACHED``: it has a stream on a ready connection now (send it).
    ``QUEUED_NEW_CONNECTION``: it waits, and the pool opened a connection for
    it (the ``connect`` callback has been called). ``QUEUED``: it waits for a
    connection already connecting or busy. ``OVERFLOW``: refused by
    ``max_pending_requests`` or ``max_requests`` (503 ``UO``).
    ``POOL_OVERFLOW``: refused by ``max_connection_pools`` (503 ``UH``).
    """

    ATTACHED = "attached"
    QUEUED_NEW_CONNECTION = "queued_new_connection"
    QUEUED = "queued"
    OVERFLOW = "overflow"
    POOL_OVERFLOW = "pool_overflow"

    @property
    def failure(self) -> PoolFailure | None:
        """The :class:`PoolFailure` to answer with, or ``None`` if the request was accepted."""
        if self is PoolDecision.OVERFLOW:
            return PoolFailure.OVERFLOW
        if self is PoolDecision.POOL_OVERFLOW:
            return PoolFailure.POOL_OVERFLOW
        return None

    @property
    def queued(self) -> bool:
        """True for ``QUEUED`` and ``QUEUED_NEW_CONNECTION``."""
        return self is PoolDecision.QUEUED or self is PoolDecision.QUEUED_NEW_CONNECTION


_ATTACHED = PoolDecision.ATTACHED
_QUEUED = PoolDecision.QUEUED
_QUEUED_NEW = PoolDecision.QUEUED_NEW_CONNECTION
_OVERFLOW = PoolDecision.OVERFLOW


class ConnectOutcome(enum.Enum):
    """How a connection attempt ends (see :func:`connect_outcome`)."""

    CONNECTED = "connected"
    REFUSED = "refused"
    TIMEOUT = "timeout"


def connect_outcome(
    latency_s: float | None, connect_timeout_s: float, *, refused: bool = False
) -> tuple[float, ConnectOutcome]:
    """When and how a connection attempt ends.

    Parameters
    ----------
    latency_s
        Seconds until the upstream answers the SYN (handshake done, or RST if
        ``refused``); ``None`` or ``inf`` when nothing ever answers (a
        partition, a black-holed host).
    connect_timeout_s
        The cluster's ``connect_timeout``.
    refused
        The host refuses the connection (nothing listens: a crashed process).

    Returns
    -------
    (delay_s, outcome)
        Schedule :meth:`ConnectionPool.on_connected` (``CONNECTED``) or
        :meth:`ConnectionPool.on_connect_failure` (``timeout=`` ``outcome is
        TIMEOUT``) ``delay_s`` after the connection was opened. The connect
        timer wins a tie.

    Examples
    --------
    >>> connect_outcome(0.001, 5.0)
    (0.001, <ConnectOutcome.CONNECTED: 'connected'>)
    >>> connect_outcome(None, 10.0)
    (10.0, <ConnectOutcome.TIMEOUT: 'timeout'>)
    >>> connect_outcome(0.0005, 1.0, refused=True)[1].name
    'REFUSED'
    """
    if latency_s is None or latency_s >= connect_timeout_s:
        return connect_timeout_s, ConnectOutcome.TIMEOUT
    return latency_s, (ConnectOutcome.REFUSED if refused else ConnectOutcome.CONNECTED)


# --------------------------------------------------------------------------------------------------
# runtime: connections and the pool


class Connection:
    """One upstream connection of a :class:`ConnectionPool` (Envoy ``ActiveClient``).

    Attributes
    ----------
    id : int
        Per-pool sequence number, from 1.
    pool : ConnectionPool
        The owner (so one engine callback can serve many pools).
    state : ConnectionState
    active : int
        Streams on it now.
    remaining : int
        Streams it may still take in its lifetime (``max_requests_per_connection``).
    limit : int
        Concurrent-stream limit: 1 for HTTP/1.1, ``max_concurrent_streams`` for HTTP/2.
    created_at, connected_at : float
        When it was opened and when it connected (``nan`` before).
    """

    __slots__ = (
        "id",
        "pool",
        "state",
        "active",
        "remaining",
        "limit",
        "created_at",
        "connected_at",
        "expires_at",
        "deadline",
    )

    def __init__(self, pool: ConnectionPool, ident: int, remaining: int, limit: int, now: float) -> None:
        self.id = ident
        self.pool = pool
        self.state = _CONNECTING
        self.active = 0
        self.remaining = remaining
        self.limit = limit
        self.created_at = now
        self.connected_at = math.nan
        self.expires_at = _INF  # connected_at + max_connection_duration
        self.deadline = _INF  # min(expires_at, idle since + idle_timeout) while idle

    @property
    def unused_capacity(self) -> int:
        """Streams it could take now (Envoy ``currentUnusedCapacity``)."""
        return max(0, min(self.remaining, self.limit - self.active))

    def __repr__(self) -> str:
        return f"Connection(#{self.id}, {self.state.value}, active={self.active})"


ConnectCallback = Callable[[Connection, float], None]
ReadyCallback = Callable[[Any, Connection, float], None]
FailureCallback = Callable[[Any, PoolFailure, float], None]

_EV_CONNECT = 0
_EV_READY = 1
_EV_FAIL = 2


class ConnectionPool:
    """Envoy's HTTP/1.1 or HTTP/2 connection pool towards one upstream host.

    Parameters
    ----------
    resources
        The cluster's :class:`ResourceManager` (shared by the pools of all its hosts).
    connect
        ``connect(conn, now)``: the pool opened ``conn``. Schedule exactly one
        of :meth:`on_connected` or :meth:`on_connect_failure` for it (see
        :func:`connect_outcome`).
    ready
        ``ready(stream, conn, now)``: a *queued* request got its stream on
        ``conn``; send it.
    failure
        ``failure(stream, reason, now)``: a *queued or active* request failed
        in the pool (:class:`PoolFailure`): answer it with ``reason.status``
        and ``reason.response_flag``.
    host
        Any label of the upstream host (kept for the caller).
    downstream_protocol
        ``"http1"`` or ``"http2"``: what the callers speak, used when the
        policy's protocol is ``"downstream"`` (Envoy keeps one pool per
        protocol then; so should the caller).

    Notes
    -----
    Requests ("streams") are the caller's own objects, kept in insertion-ordered
    dicts so that cancelling a queued request and finding a stream's
    connection are O(1): they must be hashable (the default identity hash is
    fine). Every method is O(1) apart from the rare ones that say otherwise.

    Call order for one request (times are the caller's clock)::

        d = pool.new_stream(req, now)        # ATTACHED: send now
                                             # QUEUED*: wait for ready()/failure()
                                             # OVERFLOW/POOL_OVERFLOW: answer d.failure
        # ... connect(conn, t0) was called for every connection the pool opened:
        pool.on_connected(conn, t1)          # or on_connect_failure(conn, t1, timeout=...)
        # ... ready(req, conn, t1) -> send; response arrives at t2:
        pool.on_response_complete(req, t2)   # the response goes downstream
        # or, instead of completing: pool.on_reset(req, t)  (timeouts, retry after 5xx)
        # or, while still queued:     pool.cancel_pending(req, t)  (route timeout)

    Which end to report: a response that goes downstream ->
    :meth:`on_response_complete`; an attempt the router abandons (per-try or
    route timeout, a retry decided on a 5xx or reset, the losing attempts of
    a hedge, the downstream going away) -> :meth:`on_reset`, which on
    HTTP/1.1 costs the connection (envoy.md D.3); the upstream closing the
    connection (host crash) -> :meth:`on_connection_closed`.

    The callbacks are called after the pool's state is consistent, at the end
    of the method that caused them, so a callback may call into the pool
    again (e.g. an immediate retry). The outcome of ``new_stream`` for the
    request it was given is its return value, never a callback. Late events
    for a connection that is already closed, or for a request the pool no
    longer holds, are ignored (lazy cancellation).

    Examples
    --------
    >>> log = []
    >>> rm = ResourceManager(CircuitBreakerPolicy(max_connections=1, max_pending_requests=1))
    >>> pool = ConnectionPool(rm, connect=lambda c, t: log.append(("connect", c.id)),
    ...                       ready=lambda s, c, t: log.append(("ready", s)),
    ...                       failure=lambda s, r, t: log.append(("fail", s, r.response_flag)))
    >>> pool.new_stream("a", 0.0).name
    'QUEUED_NEW_CONNECTION'
    >>> pool.on_connected(pool.connections[0], 0.001)
    >>> pool.new_stream("b", 0.01).name, pool.new_stream("c", 0.01).name
    ('QUEUED', 'OVERFLOW')
    >>> pool.on_response_complete("a", 1.0)
    >>> log
    [('connect', 1), ('ready', 'a'), ('ready', 'b')]
    >>> rm.stats["upstream_cx_overflow"], rm.stats["upstream_rq_pending_overflow"]
    (1, 1)
    """

    __slots__ = (
        "resources",
        "host",
        "protocol",
        "_stats",
        "_cx",
        "_pend",
        "_rq",
        "_pools",
        "_connect_cb",
        "_ready_cb",
        "_failure_cb",
        "_ready",
        "_conns",
        "_pending",
        "_conn_of",
        "_connecting_capacity",
        "_needs_pool_slot",
        "_next_id",
        "_lifetime",
        "_concurrency",
        "_idle_timeout",
        "_max_duration",
        "_out",
        "_http1",
        "_active_also_pending",
    )

    def __init__(
        self,
        resources: ResourceManager,
        *,
        connect: ConnectCallback,
        ready: ReadyCallback,
        failure: FailureCallback,
        host: Any = None,
        downstream_protocol: Literal["http1", "http2"] = "http1",
    ) -> None:
        policy = resources.policy
        protocol = policy.protocol if policy.protocol != "downstream" else downstream_protocol
        if protocol not in ("http1", "http2"):
            raise ConfigError(f"downstream_protocol {downstream_protocol!r} is not one of 'http1', 'http2'")
        self.resources = resources
        self.host = host
        self.protocol: str = protocol
        self._stats = resources.stats
        self._cx = resources.connections
        self._pend = resources.pending
        self._rq = resources.requests
        self._pools = resources.connection_pools
        self._connect_cb = connect
        self._ready_cb = ready
        self._failure_cb = failure
        self._ready: list[Connection] = []  # a stack: the most recently ready connection is used first
        self._conns: dict[Connection, None] = {}  # every open connection, in opening order
        self._pending: OrderedDict[Any, None] = OrderedDict()  # FIFO
        self._conn_of: dict[Any, Connection] = {}
        self._connecting_capacity = 0
        self._needs_pool_slot = True  # a pool holds a max_connection_pools slot while not idle
        self._next_id = 0
        self._http1 = protocol == "http1"
        self._lifetime = policy.max_requests_per_connection or UINT32_MAX
        self._concurrency = 1 if self._http1 else policy.max_concurrent_streams
        self._idle_timeout = policy.idle_timeout_s if policy.idle_timeout_s > 0 else _INF
        self._max_duration = policy.max_connection_duration_s or _INF
        self._out: list[tuple[int, Any, Any]] = []
        self._active_also_pending = resources.count_active_overflow_as_pending

    # ---------------------------------------------------------------------------------- inspection

    @property
    def connections(self) -> tuple[Connection, ...]:
        """Open connections (connecting ones included), oldest first."""
        return tuple(self._conns)

    @property
    def connection_count(self) -> int:
        """Open connections of this pool (the host's ``cx_active``)."""
        return len(self._conns)

    @property
    def pending_count(self) -> int:
        """Queued requests of this pool."""
        return len(self._pending)

    @property
    def active_count(self) -> int:
        """Requests of this pool that have a stream."""
        return len(self._conn_of)

    @property
    def is_idle(self) -> bool:
        """No connection and no queued request (Envoy would delete the pool)."""
        return not self._conns and not self._pending

    def pending_streams(self) -> Iterator[Any]:
        """The queued requests, oldest first."""
        return iter(self._pending)

    def connection_of(self, stream: Any) -> Connection | None:
        """The connection ``stream`` is attached to, or ``None``."""
        return self._conn_of.get(stream)

    def __repr__(self) -> str:
        return (
            f"ConnectionPool(host={self.host!r}, {self.protocol}, connections={len(self._conns)}, "
            f"active={len(self._conn_of)}, pending={len(self._pending)})"
        )

    # ---------------------------------------------------------------------------------- requests

    def new_stream(self, stream: Any, now: float) -> PoolDecision:
        """A request wants a stream to this host (Envoy ``newStreamImpl``).

        Parameters
        ----------
        stream
            The caller's request object (hashable).
        now
            Current time, seconds.

        Returns
        -------
        PoolDecision
            ``ATTACHED`` (counted in ``upstream_rq_total``),
            ``QUEUED_NEW_CONNECTION``/``QUEUED`` (``upstream_rq_pending_total``),
            ``OVERFLOW`` (``upstream_rq_active_overflow`` or
            ``upstream_rq_pending_overflow``) or ``POOL_OVERFLOW``
            (``upstream_cx_pool_overflow``).
        """
        if self._needs_pool_slot and not self._take_pool_slot():
            return PoolDecision.POOL_OVERFLOW
        ready = self._ready
        conn = ready[-1] if ready else None
        if conn is not None and now >= conn.deadline:
            conn = self._usable_ready(now)
            if self._out:
                self._flush(now)
            if conn is None and self._needs_pool_slot and not self._take_pool_slot():
                # the expired connections were the pool's last: Envoy would make a new pool
                return PoolDecision.POOL_OVERFLOW
        if conn is not None:
            rq = self._rq
            if rq.current >= rq.max:
                self._count_active_overflow()
                return _OVERFLOW
            # attachStreamToClient, inlined for the common case
            conn.remaining -= 1
            conn.active += 1
            if conn.remaining == 0:
                self._stats["upstream_cx_max_requests"] += 1
                ready.pop()
                conn.state = _DRAINING
            elif conn.active >= conn.limit:
                ready.pop()
                conn.state = _BUSY
            conn.deadline = conn.expires_at
            rq.current += 1
            self._stats["upstream_rq_total"] += 1
            self._conn_of[stream] = conn
            return _ATTACHED
        pend = self._pend
        if pend.current >= pend.max:
            self._stats["upstream_rq_pending_overflow"] += 1
            self._release_pool_slot_if_idle()
            return _OVERFLOW
        self._pending[stream] = None
        pend.current += 1
        self._stats["upstream_rq_pending_total"] += 1
        if len(self._pending) <= self._connecting_capacity:
            return _QUEUED
        created = self._try_create_connections(now)
        self._flush(now)
        return _QUEUED_NEW if created else _QUEUED

    def cancel_pending(self, stream: Any, now: float) -> bool:
        """A queued request gives up (route timeout, downstream reset).

        Envoy's router cancels with the ``Default`` policy: the connection
        being opened for it is kept. Counts ``upstream_rq_cancelled``.

        Returns
        -------
        bool
            Whether ``stream`` was queued here (otherwise nothing happens).
        """
        pending = self._pending
        if stream not in pending:
            return False
        del pending[stream]
        self._pend.current -= 1
        self._stats["upstream_rq_cancelled"] += 1
        self._release_pool_slot_if_idle()
        return True

    def on_response_complete(self, stream: Any, now: float) -> None:
        """The response of an active stream ended and goes downstream.

        The stream's slot frees up: an HTTP/1.1 connection is reused for the
        oldest queued request, unless it reached
        ``max_requests_per_connection`` (then it closes, and a new connection
        is opened if requests are queued).
        """
        conn = self._conn_of.pop(stream, None)
        if conn is None:
            return
        if now < conn.expires_at and not self._pending:
            # fast path (nothing queued, connection not expired): the slot just frees up
            state = conn.state
            if state is _BUSY or state is _READY:
                conn.active -= 1
                self._rq.current -= 1
                if state is _BUSY:
                    conn.state = _READY
                    self._ready.append(conn)
                if conn.active == 0:
                    idle_at = now + self._idle_timeout
                    conn.deadline = idle_at if idle_at < conn.expires_at else conn.expires_at
                return
        self._stream_closed(conn, now)
        if self._out:
            self._flush(now)

    def on_reset(self, stream: Any, now: float) -> None:
        """The router reset an active stream (timeout, a retry decided, downstream gone).

        HTTP/1.1 cannot reset a stream without closing its connection: the
        connection closes (``upstream_cx_destroy_local_with_active_rq``), and
        a new one is opened if requests are queued. HTTP/2 ends the one
        stream. Counts ``upstream_rq_tx_reset``.
        """
        conn = self._conn_of.pop(stream, None)
        if conn is None:
            return
        stats = self._stats
        stats["upstream_rq_tx_reset"] += 1
        if self._http1 and conn.state is not _CLOSED:
            conn.active -= 1
            self._rq.current -= 1
            stats["upstream_cx_destroy_with_active_rq"] += 1
            stats["upstream_cx_destroy_local_with_active_rq"] += 1
            self._close(conn, now, remote=False)
        else:
            self._stream_closed(conn, now)
        if self._out:
            self._flush(now)

    # ---------------------------------------------------------------------------------- connections

    def on_connected(self, conn: Connection, now: float) -> None:
        """``conn`` finished connecting: queued requests are attached, oldest first.

        Each attach checks ``max_requests``; a request refused there fails
        with ``PoolFailure.OVERFLOW`` through the ``failure`` callback.
        """
        if conn.state is not _CONNECTING:
            return
        self._connecting_capacity -= conn.unused_capacity
        conn.connected_at = now
        if self._max_duration < _INF:
            conn.expires_at = now + self._max_duration
        conn.state = _READY
        conn.deadline = min(conn.expires_at, now + self._idle_timeout)
        self._ready.append(conn)
        self._attach_pending(now)
        self._flush(now)

    def on_connect_failure(self, conn: Connection, now: float, *, timeout: bool = False) -> None:
        """``conn`` failed to connect: refused (``timeout=False``) or ``connect_timeout`` hit.

        Every queued request of the pool fails (``CONNECT_FAILURE`` or
        ``CONNECT_TIMEOUT``, 503 ``UF``) through the ``failure`` callback,
        even if other connections are still connecting (Envoy
        ``purgePendingStreams``). Counts ``upstream_cx_connect_fail``
        (and ``upstream_cx_connect_timeout``) and
        ``upstream_rq_pending_failure_eject`` per failed request.
        """
        if conn.state is not _CONNECTING:
            return
        stats = self._stats
        stats["upstream_cx_connect_fail"] += 1
        if timeout:
            stats["upstream_cx_connect_timeout"] += 1
        reason = PoolFailure.CONNECT_TIMEOUT if timeout else PoolFailure.CONNECT_FAILURE
        self._purge_pending(reason)
        self._close(conn, now, remote=not timeout)
        self._flush(now)

    def on_connection_closed(self, conn: Connection, now: float) -> None:
        """The upstream closed ``conn`` (host crash, network partition detected).

        A connecting connection counts as a connect failure
        (:meth:`on_connect_failure`). Streams active on it fail with
        ``CONNECTION_TERMINATION`` (503 ``UC``; ``upstream_rq_rx_reset``,
        ``upstream_cx_destroy_remote_with_active_rq``). O(active streams of
        the pool).
        """
        if conn.state is _CLOSED:
            return
        if conn.state is _CONNECTING:
            self.on_connect_failure(conn, now, timeout=False)
            return
        stats = self._stats
        dead = [s for s, c in self._conn_of.items() if c is conn]
        if dead:
            stats["upstream_cx_destroy_with_active_rq"] += 1
            stats["upstream_cx_destroy_remote_with_active_rq"] += 1
            for s in dead:
                del self._conn_of[s]
                stats["upstream_rq_rx_reset"] += 1
                self._out.append((_EV_FAIL, s, PoolFailure.CONNECTION_TERMINATION))
            self._rq.current -= len(dead)
            conn.active = 0
        self._close(conn, now, remote=True)
        self._flush(now)

    def expire_idle(self, now: float) -> int:
        """Close ready connections past their idle timeout or max duration.

        The pool also does this lazily when it picks a connection; call this
        from a periodic timer to free ``max_connections`` slots on time.
        O(ready connections).

        Returns
        -------
        int
            How many connections were closed or drained.
        """
        n = 0
        for conn in [c for c in self._ready if now >= c.deadline]:
            self._expire(conn, now)
            n += 1
        self._flush(now)
        return n

    # ---------------------------------------------------------------------------------- internals

    def _count_active_overflow(self) -> None:
        stats = self._stats
        stats["upstream_rq_active_overflow"] += 1
        if self._active_also_pending:
            stats["upstream_rq_pending_overflow"] += 1

    def _take_pool_slot(self) -> bool:
        pools = self._pools
        if pools.current >= pools.max:
            self._stats["upstream_cx_pool_overflow"] += 1
            return False
        pools.current += 1
        self._needs_pool_slot = False
        return True

    def _release_pool_slot_if_idle(self) -> None:
        if not self._needs_pool_slot and not self._conns and not self._pending:
            self._pools.current -= 1
            self._needs_pool_slot = True

    def _usable_ready(self, now: float) -> Connection | None:
        """The top ready connection, after closing or draining those past their deadline."""
        ready = self._ready
        while ready:
            conn = ready[-1]
            if now < conn.deadline:
                return conn
            self._expire(conn, now)
        return None

    def _expire(self, conn: Connection, now: float) -> None:
        """``conn`` (ready) is past its idle timeout or its max duration."""
        stats = self._stats
        if now >= conn.expires_at:
            stats["upstream_cx_max_duration_reached"] += 1
            if conn.active:
                self._ready.remove(conn)
                conn.state = _DRAINING
                return
        else:
            stats["upstream_cx_idle_timeout"] += 1
        self._close(conn, now, remote=False)

    def _attach(self, conn: Connection, stream: Any) -> bool:
        """Envoy ``attachStreamToClient`` for a queued request on the top ready connection."""
        rq = self._rq
        if rq.current >= rq.max:
            self._count_active_overflow()
            return False
        conn.remaining -= 1
        conn.active += 1
        if conn.remaining == 0:
            self._stats["upstream_cx_max_requests"] += 1
            self._ready.pop()
            conn.state = _DRAINING
        elif conn.active >= conn.limit:
            self._ready.pop()
            conn.state = _BUSY
        conn.deadline = conn.expires_at
        rq.current += 1
        self._stats["upstream_rq_total"] += 1
        self._conn_of[stream] = conn
        return True

    def _attach_pending(self, now: float) -> None:
        """Envoy ``onUpstreamReady``: attach queued requests while ready connections exist."""
        pending = self._pending
        pend = self._pend
        out = self._out
        while pending and self._ready:
            conn = self._usable_ready(now)
            if conn is None:
                break
            stream, _ = pending.popitem(last=False)
            pend.current -= 1
            if self._attach(conn, stream):
                out.append((_EV_READY, stream, conn))
            else:
                out.append((_EV_FAIL, stream, PoolFailure.OVERFLOW))
        if pending:
            self._try_create_connections(now)
        else:
            self._release_pool_slot_if_idle()

    def _stream_closed(self, conn: Connection, now: float) -> None:
        """Envoy ``onStreamClosed``: one stream of ``conn`` ended."""
        conn.active -= 1
        self._rq.current -= 1
        state = conn.state
        if state is _CLOSED:
            return
        if state is not _DRAINING and now >= conn.expires_at:
            self._stats["upstream_cx_max_duration_reached"] += 1
            if state is _READY:
                self._ready.remove(conn)
            conn.state = state = _DRAINING
        if state is _DRAINING:
            if conn.active == 0:
                self._close(conn, now, remote=False)
            return
        if state is _BUSY:
            conn.state = _READY
            self._ready.append(conn)
            if conn.active == 0:
                conn.deadline = min(conn.expires_at, now + self._idle_timeout)
            if self._pending:
                self._attach_pending(now)
            return
        if conn.active == 0:  # READY with spare streams (HTTP/2)
            conn.deadline = min(conn.expires_at, now + self._idle_timeout)

    def _try_create_connections(self, now: float) -> bool:
        """Envoy ``tryCreateNewConnections``: open up to 3 connections while the queue needs them.

        Returns whether at least one connection was opened.
        """
        created = False
        cx = self._cx
        for _ in range(3):
            if len(self._pending) <= self._connecting_capacity:
                break
            if cx.current < cx.max:
                self._open(now)
                created = True
                continue
            self._stats["upstream_cx_overflow"] += 1
            if not self._conns:
                # no connection at all: open one anyway so the queue cannot starve
                self._open(now)
                created = True
            break
        return created

    def _open(self, now: float) -> None:
        self._next_id += 1
        conn = Connection(self, self._next_id, self._lifetime, self._concurrency, now)
        self._conns[conn] = None
        self._cx.current += 1
        self._connecting_capacity += conn.unused_capacity
        stats = self._stats
        stats["upstream_cx_total"] += 1
        stats["upstream_cx_http1_total" if self._http1 else "upstream_cx_http2_total"] += 1
        self._out.append((_EV_CONNECT, conn, None))

    def _close(self, conn: Connection, now: float, *, remote: bool) -> None:
        """Envoy ``onConnectionEvent`` (Local/RemoteClose) for ``conn``."""
        state = conn.state
        if state is _CLOSED:
            return
        if state is _CONNECTING:
            self._connecting_capacity -= conn.unused_capacity
        elif state is _READY:
            ready = self._ready
            if ready and ready[-1] is conn:
                ready.pop()
            else:
                ready.remove(conn)
        conn.state = _CLOSED
        del self._conns[conn]
        self._cx.current -= 1
        stats = self._stats
        stats["upstream_cx_destroy"] += 1
        stats["upstream_cx_destroy_remote" if remote else "upstream_cx_destroy_local"] += 1
        if self._pending:
            self._try_create_connections(now)
        else:
            self._release_pool_slot_if_idle()

    def _purge_pending(self, reason: PoolFailure) -> None:
        pending = self._pending
        if not pending:
            return
        n = len(pending)
        self._pending = OrderedDict()
        self._pend.current -= n
        self._stats["upstream_rq_pending_failure_eject"] += n
        out = self._out
        for stream in pending:
            out.append((_EV_FAIL, stream, reason))

    def _flush(self, now: float) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        connect, ready, failure = self._connect_cb, self._ready_cb, self._failure_cb
        for kind, a, b in out:
            if kind == _EV_READY:
                ready(a, b, now)
            elif kind == _EV_FAIL:
                failure(a, b, now)
            else:
                connect(a, now)


# --------------------------------------------------------------------------------------------------
# Istio, App Mesh, Envoy spellings


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _refuse_unknown(data: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{_at(path)}unknown key {key!r}{suggest(key, allowed)} (allowed: {', '.join(allowed)})",
                path=_join(path, key),
            )


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_at(path)}expected a mapping, got {value!r}", path=path)
    return value


def _istio_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{path}: expected a whole number >= 0, got {value!r}", path=path)
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{path}: expected a whole number >= 0, got {value!r}", path=path) from None
    if not 0 <= n <= 2_147_483_647:
        raise ConfigError(
            f"{path}: {value!r} is out of range; Istio allows 0 to 2147483647 (int32)", path=path
        )
    return n


def _istio_duration(value: Any, path: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}", path=path) from None
    if seconds < 0.001:
        raise ConfigError(f"{path}: {value!r} is too short; Istio requires at least 1ms", path=path)
    return seconds


_ISTIO_CP_KEYS = ("tcp", "http")
_ISTIO_TCP_KEYS = ("maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout")
_ISTIO_HTTP_KEYS = (
    "http1MaxPendingRequests",
    "http2MaxRequests",
    "maxRequestsPerConnection",
    "maxRetries",
    "idleTimeout",
    "h2UpgradePolicy",
    "useClientProtocol",
    "maxConcurrentStreams",
)
_ISTIO_KEEPALIVE_KEYS = ("probes", "time", "interval")
_H2_POLICIES = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")


def _istio_fields(
    connection_pool: Mapping[str, Any] | None,
    *,
    path: str = "connectionPool",
    port_protocol: str = "http",
    mesh_h2_upgrade: bool = False,
    mesh_connect_timeout_s: float = ISTIO_DEFAULT_CONNECT_TIMEOUT_S,
) -> dict[str, Any]:
    """Istio ``connectionPool`` -> :class:`CircuitBreakerPolicy` fields (istiod ``applyConnectionPool``)."""
    cp = _mapping(connection_pool, path)
    _refuse_unknown(cp, _ISTIO_CP_KEYS, path)
    tcp = _mapping(cp.get("tcp"), _join(path, "tcp"))
    http = _mapping(cp.get("http"), _join(path, "http"))
    _refuse_unknown(tcp, _ISTIO_TCP_KEYS, _join(path, "tcp"))
    _refuse_unknown(http, _ISTIO_HTTP_KEYS, _join(path, "http"))
    out: dict[str, Any] = {
        # getDefaultCircuitBreakerThresholds: every threshold MaxUint32, track_remaining off
        "max_connections": ISTIO_DEFAULT_THRESHOLD,
        "max_pending_requests": ISTIO_DEFAULT_THRESHOLD,
        "max_requests": ISTIO_DEFAULT_THRESHOLD,
        "max_retries": ISTIO_DEFAULT_THRESHOLD,
        "track_remaining": False,
        # applyDefaultConnectionPool: MeshConfig.connectTimeout
        "connect_timeout_s": mesh_connect_timeout_s,
    }
    # only values > 0 override: Istio cannot tell an unset field from an explicit 0
    for key, field in (
        ("http2MaxRequests", "max_requests"),
        ("http1MaxPendingRequests", "max_pending_requests"),
        ("maxRetries", "max_retries"),
    ):
        if key in http and (n := _istio_int(http[key], _join(path, f"http.{key}"))) > 0:
            out[field] = n
    if (
        "maxConnections" in tcp
        and (n := _istio_int(tcp["maxConnections"], _join(path, "tcp.maxConnections"))) > 0
    ):
        out["max_connections"] = n
    if "connectTimeout" in tcp:
        out["connect_timeout_s"] = _istio_duration(tcp["connectTimeout"], _join(path, "tcp.connectTimeout"))
    if "maxConnectionDuration" in tcp:
        out["max_connection_duration_s"] = _istio_duration(
            tcp["maxConnectionDuration"], _join(path, "tcp.maxConnectionDuration")
        )
    # http.idleTimeout wins over tcp.idleTimeout
    if "idleTimeout" in http:
        out["idle_timeout_s"] = _istio_duration(http["idleTimeout"], _join(path, "http.idleTimeout"))
    elif "idleTimeout" in tcp:
        # Istio's validation lets tcp.idleTimeout be 0s (the idle timeout disabled), not http.idleTimeout
        where = _join(path, "tcp.idleTimeout")
        try:
            zero = parse_duration(tcp["idleTimeout"]) == 0
        except ValueError:
            zero = False
        out["idle_timeout_s"] = 0.0 if zero else _istio_duration(tcp["idleTimeout"], where)
    if "maxRequestsPerConnection" in http:
        n = _istio_int(http["maxRequestsPerConnection"], _join(path, "http.maxRequestsPerConnection"))
        if n > 0:
            out["max_requests_per_connection"] = n
    if "tcpKeepalive" in tcp:
        ka = _mapping(tcp["tcpKeepalive"], _join(path, "tcp.tcpKeepalive"))
        _refuse_unknown(ka, _ISTIO_KEEPALIVE_KEYS, _join(path, "tcp.tcpKeepalive"))
        keepalive: dict[str, int] = {}
        if "probes" in ka:
            keepalive["keepalive_probes"] = _istio_int(ka["probes"], _join(path, "tcp.tcpKeepalive.probes"))
        for key, field in (("time", "keepalive_time_s"), ("interval", "keepalive_interval_s")):
            if key in ka:
                keepalive[field] = int(_istio_duration(ka[key], _join(path, f"tcp.tcpKeepalive.{key}")))
        out["tcp_keepalive"] = keepalive
    # protocol: applyH2Upgrade (outbound) then setUseDownstreamProtocol
    use_client = http.get("useClientProtocol", False)
    if not isinstance(use_client, bool):
        where = _join(path, "http.useClientProtocol")
        raise ConfigError(f"{where}: expected true or false, got {use_client!r}", path=where)
    h2_policy = http.get("h2UpgradePolicy", "DEFAULT")
    if h2_policy not in _H2_POLICIES:
        raise ConfigError(
            f"{_at(_join(path, 'http.h2UpgradePolicy'))}{h2_policy!r} is not one of {', '.join(_H2_POLICIES)}"
            f"{suggest(str(h2_policy), _H2_POLICIES)}",
            path=_join(path, "http.h2UpgradePolicy"),
        )
    port = port_protocol.strip().lower()
    if port not in ("http", "http2", "grpc", "grpc-web"):
        raise ConfigError(f"port_protocol {port_protocol!r} is not one of http, http2, grpc, grpc-web")
    if use_client:
        protocol = "downstream"
    elif port in ("http2", "grpc", "grpc-web") or h2_policy == "UPGRADE":
        protocol = "http2"
    elif h2_policy == "DO_NOT_UPGRADE":
        protocol = "http1"
    else:
        protocol = "http2" if mesh_h2_upgrade else "http1"
    out["protocol"] = protocol
    # maxConcurrentStreams lands in http2_protocol_options only on an HTTP/2 cluster
    if "maxConcurrentStreams" in http:
        n = _istio_int(http["maxConcurrentStreams"], _join(path, "http.maxConcurrentStreams"))
        if n > 0 and protocol == "http2":
            out["max_concurrent_streams"] = n
    return out


def _validated(fields: Mapping[str, Any], path: str) -> CircuitBreakerPolicy:
    try:
        return CircuitBreakerPolicy.model_validate(dict(fields))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where}: {msg}", path=path) from None


def from_istio(
    connection_pool: Mapping[str, Any] | None,
    *,
    port_protocol: str = "http",
    mesh_h2_upgrade: bool = False,
    mesh_connect_timeout: float | str = ISTIO_DEFAULT_CONNECT_TIMEOUT_S,
) -> CircuitBreakerPolicy:
    """The cluster policy istiod writes for a ``DestinationRule`` ``trafficPolicy.connectionPool``.

    Parameters
    ----------
    connection_pool
        ``{tcp: {...}, http: {...}}`` in Istio's spelling; ``None`` or ``{}``
        for a destination without one (istiod still writes circuit breakers).
    port_protocol
        The service port's protocol: ``http`` (default), ``http2``, ``grpc``,
        ``grpc-web``. HTTP/2 and gRPC ports get an HTTP/2 cluster.
    mesh_h2_upgrade
        MeshConfig ``h2UpgradePolicy: UPGRADE`` (default ``DO_NOT_UPGRADE``).
    mesh_connect_timeout
        MeshConfig ``connectTimeout`` (default 10 s).

    Returns
    -------
    CircuitBreakerPolicy

    Raises
    ------
    ConfigError
        Unknown keys (with a suggestion), negative or non-integer counts,
        durations under 1 ms, unknown ``h2UpgradePolicy``.

    Notes
    -----
    Mapping (istio ``pilot/pkg/networking/core/cluster_traffic_policy.go``
    ``applyConnectionPool``, ``applyH2Upgrade``,
    ``getDefaultCircuitBreakerThresholds``):

    * Every threshold starts at 4294967295 (``math.MaxUint32``), *including*
      ``max_retries`` (Envoy's default would be 3); ``track_remaining`` off.
      Only values **> 0** override: ``tcp.maxConnections`` ->
      ``max_connections``, ``http.http1MaxPendingRequests`` ->
      ``max_pending_requests``, ``http.http2MaxRequests`` -> ``max_requests``,
      ``http.maxRetries`` -> ``max_retries`` (both apply to HTTP/1.1 and
      HTTP/2 alike). ``maxRetries: 0`` therefore keeps 4294967295.
    * ``tcp.connectTimeout`` -> ``connect_timeout`` (else MeshConfig's, 10 s).
    * ``http.idleTimeout``, else ``tcp.idleTimeout`` -> ``idle_timeout``;
      ``http.maxRequestsPerConnection`` (> 0) ->
      ``max_requests_per_connection``; ``tcp.maxConnectionDuration`` ->
      ``max_connection_duration``; ``tcp.tcpKeepalive`` -> ``tcp_keepalive``.
    * Protocol: ``useClientProtocol: true`` -> downstream protocol (no
      upgrade); else HTTP/2 for ``http2``/``grpc`` ports or
      ``h2UpgradePolicy: UPGRADE``; ``DO_NOT_UPGRADE`` keeps HTTP/1.1;
      ``DEFAULT`` follows the mesh. ``maxConcurrentStreams`` (> 0) applies
      only to an HTTP/2 cluster.

    Examples
    --------
    >>> p = from_istio({"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}})
    >>> p.max_connections, p.max_pending_requests, p.max_requests, p.max_retries, p.connect_timeout_s
    (1, 1, 4294967295, 4294967295, 10.0)
    """
    timeout = _istio_duration(mesh_connect_timeout, "meshConfig.connectTimeout")
    fields = _istio_fields(
        connection_pool,
        port_protocol=port_protocol,
        mesh_h2_upgrade=mesh_h2_upgrade,
        mesh_connect_timeout_s=timeout,
    )
    return _validated(fields, "connectionPool")


_APPMESH_KEYS = ("http", "http2", "grpc", "tcp")


def from_appmesh(
    connection_pool: Mapping[str, Any] | None = None, *, legacy_account: bool = False
) -> CircuitBreakerPolicy:
    """The cluster policy for an App Mesh VirtualNode listener ``connectionPool``.

    Parameters
    ----------
    connection_pool
        One of ``{http: {maxConnections, maxPendingRequests}}``,
        ``{http2: {maxRequests}}``, ``{grpc: {maxRequests}}``,
        ``{tcp: {maxConnections}}``; ``None``/``{}``: App Mesh's fixed
        client-side (egress) thresholds.
    legacy_account
        Accounts that had meshes before 29 Jul 2020 keep Envoy's defaults
        (1024/1024/1024/3) instead of 2147483647.

    Raises
    ------
    ConfigError
        More than one protocol key, unknown keys, a missing required limit,
        or a limit < 1 (App Mesh's API minimums).

    Notes
    -----
    App Mesh's control plane is closed source; the field mapping follows the
    API reference (names match Envoy's one to one): ``http.maxConnections``
    -> ``max_connections``, ``http.maxPendingRequests`` ->
    ``max_pending_requests`` (API default 2147483647), ``http2.maxRequests``
    / ``grpc.maxRequests`` -> ``max_requests``, ``tcp.maxConnections`` ->
    ``max_connections``. Thresholds App Mesh does not expose keep its
    documented egress defaults (2147483647, ``max_retries`` included); this
    is inferred, not confirmed. ``http2``/``grpc`` listeners give an HTTP/2
    pool; ``tcp`` is simulated as HTTP/1.1 with only ``max_connections``.
    The connect timeout is Envoy's default (App Mesh does not document one).

    Examples
    --------
    >>> p = from_appmesh({"http": {"maxConnections": 10}})
    >>> p.max_connections, p.max_pending_requests, p.protocol
    (10, 2147483647, 'http1')
    """
    base = DEFAULT_MAX_REQUESTS if legacy_account else APPMESH_DEFAULT_THRESHOLD
    out: dict[str, Any] = {
        "max_connections": base,
        "max_pending_requests": base,
        "max_requests": base,
        "max_retries": DEFAULT_MAX_RETRIES if legacy_account else APPMESH_DEFAULT_THRESHOLD,
    }
    cp = _mapping(connection_pool, "connectionPool")
    _refuse_unknown(cp, _APPMESH_KEYS, "connectionPool")
    if len(cp) > 1:
        raise ConfigError(
            f"connectionPool: give one listener protocol, not {', '.join(map(str, cp))}",
            path="connectionPool",
        )

    def limit(section: Mapping[str, Any], key: str, where: str, required: bool) -> int | None:
        if key not in section:
            if required:
                raise ConfigError(f"{where}: missing required key {key!r}", path=where)
            return None
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}.{key}: {value!r} must be a whole number >= 1", path=f"{where}.{key}")
        return value

    for proto, section_raw in cp.items():
        where = f"connectionPool.{proto}"
        section = _mapping(section_raw, where)
        if proto == "http":
            _refuse_unknown(section, ("maxConnections", "maxPendingRequests"), where)
            out["max_connections"] = limit(section, "maxConnections", where, True)
            pending = limit(section, "maxPendingRequests", where, False)
            out["max_pending_requests"] = APPMESH_DEFAULT_THRESHOLD if pending is None else pending
            out["protocol"] = "http1"
        elif proto in ("http2", "grpc"):
            _refuse_unknown(section, ("maxRequests",), where)
            out["max_requests"] = limit(section, "maxRequests", where, True)
            out["protocol"] = "http2"
        else:
            _refuse_unknown(section, ("maxConnections",), where)
            out["max_connections"] = limit(section, "maxConnections", where, True)
    return _validated(out, "connectionPool")


_THRESHOLD_KEYS = (
    "priority",
    "max_connections",
    "max_pending_requests",
    "max_requests",
    "max_retries",
    "max_connection_pools",
    "track_remaining",
    "retry_budget",
)


def from_envoy(cluster: Mapping[str, Any]) -> CircuitBreakerPolicy:
    """Read the policy back from an Envoy v3 ``Cluster`` (or the fragment of :func:`to_envoy`).

    Reads ``connect_timeout``, ``circuit_breakers.thresholds`` (the first
    ``DEFAULT``-priority entry; Envoy's defaults without one),
    ``typed_extension_protocol_options[HttpProtocolOptions]`` and
    ``upstream_connection_options.tcp_keepalive``; other cluster fields
    belong to other policies and are not read. ``retry_budget`` is read by
    :mod:`meshsim.policies.retry`.

    Raises
    ------
    ConfigError
        An unknown key inside the parts it reads, or a value Envoy would reject.

    Examples
    --------
    >>> p = CircuitBreakerPolicy(max_requests=2, protocol="http2")
    >>> from_envoy(to_envoy(p)) == p
    True
    """
    fields: dict[str, Any] = {}
    if "connect_timeout" in cluster:
        fields["connect_timeout_s"] = cluster["connect_timeout"]
    cb = _mapping(cluster.get("circuit_breakers"), "circuit_breakers")
    _refuse_unknown(cb, ("thresholds", "per_host_thresholds"), "circuit_breakers")
    if cb.get("per_host_thresholds"):
        raise ConfigError("circuit_breakers.per_host_thresholds is not modelled by meshsim")
    for i, t in enumerate(cb.get("thresholds") or ()):
        where = f"circuit_breakers.thresholds[{i}]"
        t = _mapping(t, where)
        _refuse_unknown(t, _THRESHOLD_KEYS, where)
        if t.get("priority", "DEFAULT") != "DEFAULT":
            continue
        for key in _THRESHOLD_KEYS[1:7]:
            if key in t:
                fields[key] = t[key]
        break
    hpo = _mapping((cluster.get("typed_extension_protocol_options") or {}).get(_HPO), _HPO)
    _refuse_unknown(
        hpo,
        ("@type", "common_http_protocol_options", "explicit_http_config", "use_downstream_protocol_config"),
        _HPO,
    )
    common = _mapping(hpo.get("common_http_protocol_options"), "common_http_protocol_options")
    _refuse_unknown(
        common,
        ("max_requests_per_connection", "idle_timeout", "max_connection_duration"),
        "common_http_protocol_options",
    )
    for key, field in (
        ("max_requests_per_connection", "max_requests_per_connection"),
        ("idle_timeout", "idle_timeout_s"),
        ("max_connection_duration", "max_connection_duration_s"),
    ):
        if key in common:
            fields[field] = common[key]
    h2: Mapping[str, Any] | None = None
    if "explicit_http_config" in hpo:
        explicit = _mapping(hpo["explicit_http_config"], "explicit_http_config")
        _refuse_unknown(explicit, ("http_protocol_options", "http2_protocol_options"), "explicit_http_config")
        if "http2_protocol_options" in explicit:
            fields["protocol"] = "http2"
            h2 = _mapping(explicit["http2_protocol_options"], "http2_protocol_options")
    elif "use_downstream_protocol_config" in hpo:
        fields["protocol"] = "downstream"
        down = _mapping(hpo["use_downstream_protocol_config"], "use_downstream_protocol_config")
        _refuse_unknown(
            down, ("http_protocol_options", "http2_protocol_options"), "use_downstream_protocol_config"
        )
        h2 = _mapping(down.get("http2_protocol_options"), "http2_protocol_options")
    if h2:
        _refuse_unknown(h2, ("max_concurrent_streams",), "http2_protocol_options")
        if "max_concurrent_streams" in h2:
            fields["max_concurrent_streams"] = h2["max_concurrent_streams"]
    options = _mapping(cluster.get("upstream_connection_options"), "upstream_connection_options")
    if "tcp_keepalive" in options:
        fields["tcp_keepalive"] = options["tcp_keepalive"]
    return _validated(fields, "cluster")


def to_envoy(policy: CircuitBreakerPolicy) -> dict[str, Any]:
    """The Envoy v3 ``Cluster`` fields for a policy.

    Returns
    -------
    dict
        ``connect_timeout``, ``circuit_breakers.thresholds`` (one ``DEFAULT``
        entry with all four limits), and, when anything differs from a plain
        HTTP/1.1 cluster with Envoy's defaults,
        ``typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]``
        with ``common_http_protocol_options`` (``max_requests_per_connection``,
        ``idle_timeout``, ``max_connection_duration``) and the protocol
        (``explicit_http_config.http_protocol_options``,
        ``explicit_http_config.http2_protocol_options`` with
        ``max_concurrent_streams``, or ``use_downstream_protocol_config``);
        ``upstream_connection_options.tcp_keepalive`` if set. Merge it into a
        cluster that has ``name``, ``type`` and endpoints.

    Notes
    -----
    Envoy 1.40 wants ``max_requests_per_connection`` in
    ``common_http_protocol_options`` of the typed protocol options (the
    cluster-level field is deprecated), and the typed options need an
    upstream protocol: an HTTP/1.1 cluster gets an empty
    ``http_protocol_options``.

    Examples
    --------
    >>> to_envoy(CircuitBreakerPolicy(max_connections=1, connect_timeout_s=0.25))  # doctest: +NORMALIZE_WHITESPACE
    {'connect_timeout': '0.25s',
     'circuit_breakers': {'thresholds': [{'priority': 'DEFAULT', 'max_connections': 1,
       'max_pending_requests': 1024, 'max_requests': 1024, 'max_retries': 3}]}}
    """
    threshold: dict[str, Any] = {
        "priority": "DEFAULT",
        "max_connections": policy.max_connections,
        "max_pending_requests": policy.max_pending_requests,
        "max_requests": policy.max_requests,
        "max_retries": policy.max_retries,
    }
    if policy.max_connection_pools is not None:
        threshold["max_connection_pools"] = policy.max_connection_pools
    if policy.track_remaining:
        threshold["track_remaining"] = True
    out: dict[str, Any] = {
        "connect_timeout": proto_duration(policy.connect_timeout_s),
        "circuit_breakers": {"thresholds": [threshold]},
    }
    common: dict[str, Any] = {}
    if policy.max_requests_per_connection:
        common["max_requests_per_connection"] = policy.max_requests_per_connection
    if policy.idle_timeout_s != DEFAULT_IDLE_TIMEOUT_S:
        common["idle_timeout"] = proto_duration(policy.idle_timeout_s)
    if policy.max_connection_duration_s is not None:
        common["max_connection_duration"] = proto_duration(policy.max_connection_duration_s)
    h2: dict[str, Any] = {}
    if policy.max_concurrent_streams != DEFAULT_MAX_CONCURRENT_STREAMS:
        h2["max_concurrent_streams"] = policy.max_concurrent_streams
    if policy.protocol != "http1" or common:
        options: dict[str, Any] = {"@type": _HPO_TYPE}
        if common:
            options["common_http_protocol_options"] = common
        if policy.protocol == "http1":
            options["explicit_http_config"] = {"http_protocol_options": {}}
        elif policy.protocol == "http2":
            options["explicit_http_config"] = {"http2_protocol_options": h2}
        else:
            options["use_downstream_protocol_config"] = {
                "http_protocol_options": {},
                "http2_protocol_options": h2,
            }
        out["typed_extension_protocol_options"] = {_HPO: options}
    ka = policy.tcp_keepalive
    if ka is not None:
        keepalive: dict[str, int] = {}
        if ka.keepalive_probes is not None:
            keepalive["keepalive_probes"] = ka.keepalive_probes
        if ka.keepalive_time_s is not None:
            keepalive["keepalive_time"] = ka.keepalive_time_s
        if ka.keepalive_interval_s is not None:
            keepalive["keepalive_interval"] = ka.keepalive_interval_s
        out["upstream_connection_options"] = {"tcp_keepalive": keepalive}
    return out


def to_istio(policy: CircuitBreakerPolicy) -> dict[str, Any]:
    """The DestinationRule ``trafficPolicy.connectionPool`` istiod turns into this policy.

    Only what differs from what istiod writes for an absent field is written
    (under the default MeshConfig): thresholds other than 4294967295, a
    connect timeout other than 10 s, an idle timeout other than Envoy's 1 h
    (``tcp.idleTimeout: 0s`` when disabled: Istio refuses ``0s`` under
    ``http``), ``maxRequestsPerConnection``, ``maxConnectionDuration``,
    ``tcpKeepalive``, the protocol (``h2UpgradePolicy: UPGRADE`` for HTTP/2,
    ``useClientProtocol`` for the downstream protocol) and, on HTTP/2,
    ``maxConcurrentStreams``. ``{}`` when nothing differs.

    Istio cannot write a threshold of 0 (it reads 0 as unset) nor one above
    2147483647 other than 4294967295 (its fields are ``int32``), nor
    ``max_connection_pools`` or ``track_remaining``; such values are left
    out, and the exporter reports them.

    Examples
    --------
    >>> to_istio(CircuitBreakerPolicy(max_requests=100, connect_timeout_s=0.25))  # doctest: +NORMALIZE_WHITESPACE
    {'tcp': {'maxConnections': 1024, 'connectTimeout': '250ms'},
     'http': {'http1MaxPendingRequests': 1024, 'http2MaxRequests': 100, 'maxRetries': 3}}
    >>> to_istio(from_istio({}))
    {}
    """
    from meshsim.policies._istio import INT32_MAX, istio_duration

    def limit(value: int) -> int | None:
        return value if value != ISTIO_DEFAULT_THRESHOLD and 0 < value <= INT32_MAX else None

    tcp: dict[str, Any] = {}
    http: dict[str, Any] = {}
    if (n := limit(policy.max_connections)) is not None:
        tcp["maxConnections"] = n
    if policy.connect_timeout_s != ISTIO_DEFAULT_CONNECT_TIMEOUT_S:
        tcp["connectTimeout"] = istio_duration(policy.connect_timeout_s)
    if policy.max_connection_duration_s:
        tcp["maxConnectionDuration"] = istio_duration(policy.max_connection_duration_s)
    if policy.tcp_keepalive is not None:
        ka = policy.tcp_keepalive
        keepalive: dict[str, Any] = {}
        if ka.keepalive_probes is not None:
            keepalive["probes"] = ka.keepalive_probes
        if ka.keepalive_time_s is not None:
            keepalive["time"] = istio_duration(ka.keepalive_time_s)
        if ka.keepalive_interval_s is not None:
            keepalive["interval"] = istio_duration(ka.keepalive_interval_s)
        tcp["tcpKeepalive"] = keepalive
    if policy.idle_timeout_s == 0:
        tcp["idleTimeout"] = "0s"
    for field, key in (
        ("max_pending_requests", "http1MaxPendingRequests"),
        ("max_requests", "http2MaxRequests"),
        ("max_retries", "maxRetries"),
    ):
        if (n := limit(getattr(policy, field))) is not None:
            http[key] = n
    if 0 < policy.max_requests_per_connection <= INT32_MAX:
        http["maxRequestsPerConnection"] = policy.max_requests_per_connection
    if policy.idle_timeout_s not in (0, DEFAULT_IDLE_TIMEOUT_S):
        http["idleTimeout"] = istio_duration(policy.idle_timeout_s)
    if policy.protocol == "http2":
        http["h2UpgradePolicy"] = "UPGRADE"
        if policy.max_concurrent_streams != DEFAULT_MAX_CONCURRENT_STREAMS:
            http["maxConcurrentStreams"] = policy.max_concurrent_streams
    elif policy.protocol == "downstream":
        http["useClientProtocol"] = True
    return {k: v for k, v in (("tcp", tcp), ("http", http)) if v}


def unsupported(policy: CircuitBreakerPolicy) -> list[str]:
    """Fields of ``policy`` that its Envoy form does not carry.

    Every field has an Envoy form, but ``max_concurrent_streams`` is written
    only for a cluster that can speak HTTP/2: on an HTTP/1.1 cluster a
    non-default value is listed here (Envoy would have nowhere to put it, and
    meshsim's HTTP/1.1 pool ignores it too).

    Examples
    --------
    >>> unsupported(CircuitBreakerPolicy())
    []
    >>> unsupported(CircuitBreakerPolicy(max_concurrent_streams=10))
    ['max_concurrent_streams: 10 applies to HTTP/2 only; this cluster speaks HTTP/1.1']
    """
    out = []
    if policy.protocol == "http1" and policy.max_concurrent_streams != DEFAULT_MAX_CONCURRENT_STREAMS:
        out.append(
            f"max_concurrent_streams: {policy.max_concurrent_streams} applies to HTTP/2 only; "
            "this cluster speaks HTTP/1.1"
        )
    return out
