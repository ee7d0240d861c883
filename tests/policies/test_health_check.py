"""Active health checking: thresholds, cadence and jitter as Envoy's code has them (no engine)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from meshsim.policies.health_check import (
    HealthChecker,
    HealthCheckPolicy,
    HealthCheckResult,
    HealthTransition,
    from_appmesh,
    interval_with_jitter,
    to_envoy,
    unsupported,
)

CHANGED, PENDING, UNCHANGED = (
    HealthTransition.CHANGED,
    HealthTransition.CHANGE_PENDING,
    HealthTransition.UNCHANGED,
)
TIMEOUT, NETWORK = HealthCheckResult.TIMEOUT, HealthCheckResult.NETWORK_FAILURE
REQUIRED = {
    "timeout": "1s",
    "interval": "5s",
    "unhealthy_threshold": 3,
    "healthy_threshold": 2,
    "path": "/healthz",
}


def policy(**fields: object) -> HealthCheckPolicy:
    return HealthCheckPolicy.model_validate({**REQUIRED, **fields})


def healthy_checker(**fields: object) -> HealthChecker:
    hc = HealthChecker(policy(**fields), has_traffic=True)
    assert hc.on_result(200, 0.0) is CHANGED
    return hc


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "missing", ["timeout", "interval", "unhealthy_threshold", "healthy_threshold", "path"]
)
def test_required_fields_are_refused_when_missing_as_envoys_validator_does(missing: str) -> None:
    raw = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ValidationError, match=f"health check needs {missing}"):
        HealthCheckPolicy.model_validate(raw)


@pytest.mark.parametrize("field", ["timeout", "interval", "no_traffic_interval", "unhealthy_interval"])
def test_zero_intervals_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="positive"):
        policy(**{field: 0})


def test_empty_path_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 character"):
        policy(path="")


def test_defaults_follow_envoy() -> None:
    p = policy()
    assert p.no_traffic_interval == 60.0 and p.effective_no_traffic_healthy_interval == 60.0
    assert p.effective_unhealthy_interval == 5.0
    assert p.effective_unhealthy_edge_interval == 5.0
    assert p.effective_healthy_edge_interval == 5.0
    assert (p.initial_jitter, p.interval_jitter, p.interval_jitter_percent) == (0.0, 0.0, 0)
    assert p.expected_statuses == (200,) and p.retriable_statuses == ()


def test_unhealthy_edge_interval_defaults_to_unhealthy_interval() -> None:
    assert policy(unhealthy_interval="2s").effective_unhealthy_edge_interval == 2.0


def test_envoy_http_health_check_nesting_is_accepted() -> None:
    raw = {k: v for k, v in REQUIRED.items() if k != "path"}
    p = HealthCheckPolicy.model_validate(
        {**raw, "http_health_check": {"path": "/ready", "expected_statuses": [{"start": 200, "end": 300}]}}
    )
    assert p.path == "/ready" and p.expected_statuses == tuple(range(200, 300))


@pytest.mark.parametrize(
    ("value", "match"),
    [([99], r"outside \[100, 600\)"), ([{"start": 300, "end": 200}], "start < end"), (["200"], "neither")],
)
def test_bad_statuses_are_refused(value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        policy(expected_statuses=value)


def test_appmesh_health_check_maps_onto_envoy_fields() -> None:
    p = from_appmesh(
        {
            "healthyThreshold": 2,
            "unhealthyThreshold": 3,
            "intervalMillis": 5000,
            "timeoutMillis": 2000,
            "protocol": "http",
            "path": "/ping",
            "port": 8080,
        }
    )
    assert (p.healthy_threshold, p.unhealthy_threshold, p.interval, p.timeout, p.path) == (
        2,
        3,
        5.0,
        2.0,
        "/ping",
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"intervalMillis": 1000}, r"intervalMillis 1000 must be a whole number in 5000\.\.300000"),
        ({"protocol": "tcp"}, "HTTP checks only"),
        ({"healthyThreshold": 1}, r"2\.\.10"),
    ],
)
def test_appmesh_ranges_and_protocols_are_checked(change: dict, match: str) -> None:
    raw = {
        "healthyThreshold": 2,
        "unhealthyThreshold": 3,
        "intervalMillis": 5000,
        "timeoutMillis": 2000,
        "protocol": "http",
        "path": "/ping",
    }
    with pytest.raises(ValueError, match=match):
        from_appmesh({**raw, **change})


# ---------------------------------------------------------------------------------------------- thresholds


def test_a_new_host_starts_unhealthy_and_its_first_pass_makes_it_healthy_at_once() -> None:
    hc = HealthChecker(policy(healthy_threshold=5))
    assert not hc.healthy and hc.stats["health_check.healthy"] == 0
    assert hc.on_result(200, 0.0) is CHANGED
    assert hc.healthy and hc.stats["health_check.healthy"] == 1


def test_a_first_failure_leaves_a_new_host_unhealthy_and_then_it_needs_the_threshold() -> None:
    hc = HealthChecker(policy(healthy_threshold=2))
    assert hc.on_result(TIMEOUT, 0.0) is UNCHANGED and not hc.healthy
    assert hc.on_result(200, 5.0) is PENDING
    assert hc.on_result(200, 10.0) is CHANGED and hc.healthy


def test_unhealthy_host_needs_healthy_threshold_passes_in_a_row() -> None:
    hc = healthy_checker(healthy_threshold=3)
    hc.on_result(500, 1.0)
    assert not hc.healthy
    assert [hc.on_result(200, t) for t in (2.0, 3.0)] == [PENDING, PENDING]
    assert hc.on_result(TIMEOUT, 4.0) is UNCHANGED  # a failure resets the pass count
    assert [hc.on_result(200, t) for t in (5.0, 6.0, 7.0)] == [PENDING, PENDING, CHANGED]


def test_non_expected_status_fails_a_healthy_host_at_once_ignoring_unhealthy_threshold() -> None:
    hc = healthy_checker(unhealthy_threshold=10)
    assert hc.on_result(503, 1.0) is CHANGED and not hc.healthy


def test_network_failures_and_timeouts_count_towards_unhealthy_threshold() -> None:
    hc = healthy_checker(unhealthy_threshold=3)
    assert [hc.on_result(r, t) for r, t in ((NETWORK, 1.0), (TIMEOUT, 2.0))] == [PENDING, PENDING]
    assert hc.on_result(200, 3.0) is UNCHANGED  # a pass resets the failure count
    assert [hc.on_result(TIMEOUT, t) for t in (4.0, 5.0, 6.0)] == [PENDING, PENDING, CHANGED]
    assert not hc.healthy


def test_retriable_status_counts_towards_the_threshold_instead_of_failing_at_once() -> None:
    hc = healthy_checker(unhealthy_threshold=2, retriable_statuses=[503])
    assert hc.on_result(503, 1.0) is PENDING and hc.healthy
    assert hc.on_result(503, 2.0) is CHANGED and not hc.healthy


def test_expected_statuses_replace_the_200_only_default() -> None:
    hc = HealthChecker(policy(expected_statuses=[204]))
    assert hc.on_result(204, 0.0) is CHANGED and hc.healthy
    assert hc.on_result(200, 1.0) is CHANGED and not hc.healthy


def test_unhealthy_threshold_zero_means_network_failures_never_fail_the_host() -> None:
    hc = healthy_checker(unhealthy_threshold=0)
    assert all(hc.on_result(TIMEOUT, float(t)) is PENDING for t in range(1, 20))
    assert hc.healthy


def test_stats_count_attempts_successes_failures_and_network_failures() -> None:
    hc = HealthChecker(policy(), has_traffic=True)
    for result in (200, 200, TIMEOUT, NETWORK, 500):
        hc.start_check(0.0)
        hc.on_result(result, 0.0)
    s = hc.stats
    assert (s["health_check.attempt"], s["health_check.success"], s["health_check.failure"]) == (5, 2, 3)
    assert s["health_check.network_failure"] == 2 and s["health_check.healthy"] == 0


def test_start_check_returns_the_timeout_deadline() -> None:
    assert HealthChecker(policy(timeout="250ms")).start_check(10.0) == 10.25


def test_on_result_refuses_a_bool() -> None:
    with pytest.raises(TypeError, match="HTTP status or a HealthCheckResult"):
        HealthChecker(policy()).on_result(True, 0.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- cadence


def test_no_traffic_interval_applies_until_the_cluster_has_traffic() -> None:
    """envoy.md A.5: interval 1 s; checks at t=0, then +60 s (traffic at 2 s did not re-arm), then 1 s."""
    hc = HealthChecker(policy(interval="1s"))
    assert hc.initial_delay() == 0.0
    hc.on_result(200, 0.0)
    assert hc.next_interval(0.0) == 60.0 and hc.next_check_at == 60.0
    hc.mark_traffic()  # at t = 2 s: the armed wait is not shortened
    hc.on_result(200, 60.0)
    assert hc.next_interval(60.0) == 1.0 and hc.next_check_at == 61.0


def test_no_traffic_healthy_interval_follows_a_settled_pass_only() -> None:
    hc = HealthChecker(
        policy(no_traffic_interval="30s", no_traffic_healthy_interval="90s", healthy_threshold=2)
    )
    hc.on_result(200, 0.0)  # CHANGED (first check)
    assert hc.next_interval(0.0) == 90.0
    hc.on_result(500, 1.0)
    assert hc.next_interval(1.0) == 30.0
    hc.on_result(200, 2.0)  # pending
    assert hc.next_interval(2.0) == 30.0


def test_edge_intervals_follow_envoys_pending_transitions() -> None:
    """The scenario in Envoy's own comment (healthy_threshold 3) and its unhealthy mirror."""
    hc = healthy_checker(
        interval="5s",
        unhealthy_interval="2s",
        unhealthy_edge_interval="1s",
        healthy_edge_interval="3s",
        healthy_threshold=3,
        unhealthy_threshold=2,
    )
    waits = []
    for result in (200, TIMEOUT, TIMEOUT, TIMEOUT, 200, 200, 200, 200):
        hc.on_result(result, 0.0)
        waits.append(hc.next_interval(0.0))
    # pass: 5; fail pending: 1 (edge); fail -> unhealthy: 2; fail while unhealthy: 2;
    # pass pending: 3 (edge); pass pending: 3; pass -> healthy: 5; pass: 5
    assert waits == [5.0, 1.0, 2.0, 2.0, 3.0, 3.0, 5.0, 5.0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interval_jitter_stays_within_envoys_bounds(seed: int) -> None:
    hc = healthy_checker(interval="1s", interval_jitter="200ms", interval_jitter_percent=10)
    hc._rng = np.random.default_rng(seed)
    waits = [hc.next_interval(0.0) for _ in range(2000)]
    assert min(waits) >= 1.0 and max(waits) <= 1.0 + 0.099 + 0.199 + 1e-12
    # both jitters add: mean 1 + 49.5 ms + 99.5 ms (tolerance: > 5 standard errors)
    assert sum(waits) / len(waits) == pytest.approx(1.149, abs=0.005)
    assert all(abs(w * 1000 - round(w * 1000)) < 1e-9 for w in waits)  # whole milliseconds


@given(
    base=st.integers(0, 100_000),
    jitter=st.integers(0, 5_000),
    pct=st.integers(0, 100),
    u1=st.floats(0, 1, exclude_max=True),
    u2=st.floats(0, 1, exclude_max=True),
)
def test_interval_with_jitter_bounds(base: int, jitter: int, pct: int, u1: float, u2: float) -> None:
    wait = interval_with_jitter(base, jitter, pct, u1, u2)
    mod = pct * base // 100
    assert max(1, base) <= wait <= max(1, base + max(mod - 1, 0) + max(jitter - 1, 0))


def test_initial_jitter_delays_the_first_check_by_less_than_its_value_and_at_least_1ms() -> None:
    hc = HealthChecker(policy(initial_jitter="2s"))
    assert hc.initial_delay(0.0) == 0.001
    assert hc.initial_delay(0.5) == 1.0
    assert hc.initial_delay(0.99999) == 1.999


def test_a_single_draw_is_used_for_both_jitters_and_a_pair_separately() -> None:
    hc = healthy_checker(interval="1s", interval_jitter="100ms", interval_jitter_percent=10)
    assert hc.next_interval(0.0, 0.5) == 1.1
    assert hc.next_interval(0.0, (0.0, 0.99)) == 1.099


# ---------------------------------------------------------------------------------------------- Envoy form


def test_to_envoy_writes_required_fields_and_the_http_check() -> None:
    p = policy(
        unhealthy_interval="10s", interval_jitter_percent=5, retriable_statuses=[{"start": 502, "end": 505}]
    )
    assert to_envoy(p) == {
        "timeout": "1s",
        "interval": "5s",
        "unhealthy_threshold": 3,
        "healthy_threshold": 2,
        "unhealthy_interval": "10s",
        "interval_jitter_percent": 5,
        "http_health_check": {"path": "/healthz", "retriable_statuses": [{"start": 502, "end": 505}]},
    }
    assert unsupported(p) == []


def test_to_envoy_leaves_out_defaults() -> None:
    assert set(to_envoy(policy())) == {
        "timeout",
        "interval",
        "unhealthy_threshold",
        "healthy_threshold",
        "http_health_check",
    }
