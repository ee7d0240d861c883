"""Timeout policy: route and per-try timeouts as Envoy's router applies them (no engine)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from meshsim import ConfigError
from meshsim.policies.retry import ResetKind, RetryBreaker, RetryDecision, RetryPolicy, RetryState
from meshsim.policies.timeout import (
    DEFAULT_ROUTE_TIMEOUT,
    TimeoutOutcome,
    TimeoutPolicy,
    TimeoutState,
    effective_per_try,
    envoy_duration,
    lint,
    resolve_per_try_timeout,
    to_envoy,
    unsupported,
)


def test_route_timeout_defaults_to_15s_and_zero_disables_it() -> None:
    p = TimeoutPolicy()
    assert p.timeout == DEFAULT_ROUTE_TIMEOUT == 15.0
    assert (p.per_try_timeout, p.per_try_idle_timeout) == (0.0, 0.0)
    assert TimeoutState(p).deadline(2.0) == 17.0
    assert TimeoutState(TimeoutPolicy(timeout=0)).deadline(2.0) == math.inf


def test_istio_route_without_timeout_is_disabled_not_15s() -> None:
    assert TimeoutPolicy.from_istio({"route": [{"destination": {"host": "reviews"}}]}).timeout == 0.0
    p = TimeoutPolicy.from_istio({"timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s"}})
    assert (p.timeout, p.per_try_timeout) == (3.0, 1.0)
    # attempts: 0 removes the retry policy and the per-try timeout with it
    assert (
        TimeoutPolicy.from_istio({"retries": {"attempts": 0, "perTryTimeout": "1s"}}).per_try_timeout == 0.0
    )
    # no retries block: Istio's default policy has no per-try timeout
    assert TimeoutPolicy.from_istio({"timeout": "1s"}).per_try_timeout == 0.0
    with pytest.raises(ConfigError):
        TimeoutPolicy.from_istio("1s")  # type: ignore[arg-type]


def test_istio_spelling_and_shorthand() -> None:
    assert TimeoutPolicy.model_validate({"timeout": "2s", "perTryTimeout": "500ms"}) == TimeoutPolicy(
        timeout=2, per_try_timeout=0.5
    )
    assert TimeoutPolicy.model_validate("250ms").timeout == 0.25
    with pytest.raises(ValidationError, match="did you mean 'per_try_timeout'"):
        TimeoutPolicy.model_validate({"per_try_timout": "1s"})
    with pytest.raises(ValidationError, match="either"):
        TimeoutPolicy.model_validate({"per_try_timeout": "1s", "perTryTimeout": "1s"})


def test_sub_millisecond_timeouts_are_refused_because_envoy_reads_them_as_zero() -> None:
    with pytest.raises(ValidationError, match="1 ms resolution"):
        TimeoutPolicy(per_try_timeout="0.4ms")
    with pytest.raises(ValidationError, match="negative"):
        TimeoutPolicy(timeout="-1s")
    assert TimeoutPolicy(timeout="1ms").timeout == 0.001


def test_per_try_timeout_at_or_above_the_route_timeout_is_ignored() -> None:
    assert effective_per_try(0.5, 0.5, 0.0) == math.inf
    assert effective_per_try(0.5, 2.0, 0.0) == math.inf
    p = TimeoutPolicy(timeout=1, per_try_timeout=1)
    assert p.effective_per_try_timeout == 0.0
    assert TimeoutState(p).per_try_timeout == 0.0
    assert TimeoutState(p).per_try_timer(0.0) == (math.inf, None)
    assert lint(p) and "Envoy ignores it" in lint(p)[0]


def test_per_try_timer_never_fires_first_at_or_above_the_remaining_route_timeout() -> None:
    assert effective_per_try(1.0, 0.3, 0.0) == 0.3
    assert effective_per_try(1.0, 0.3, 0.69) == 0.3
    assert effective_per_try(1.0, 0.3, 0.7) == math.inf  # tie: the route timer (armed first) wins
    assert effective_per_try(1.0, 0.3, 0.8) == math.inf


def test_per_try_timer_without_a_route_timeout_always_fires() -> None:
    assert effective_per_try(0.0, 0.3, 1e6) == 0.3
    assert effective_per_try(1.0, 0.0, 0.0) == math.inf


def test_per_try_idle_timeout_gives_the_earlier_timer() -> None:
    st = TimeoutState(TimeoutPolicy(timeout=5, per_try_timeout=1, per_try_idle_timeout=0.4))
    assert st.per_try_timer(0.0) == (0.4, TimeoutOutcome.PER_TRY_IDLE_TIMEOUT)
    st2 = TimeoutState(TimeoutPolicy(timeout=5, per_try_timeout=0.4, per_try_idle_timeout=0.4))
    assert st2.per_try_timer(0.0) == (0.4, TimeoutOutcome.PER_TRY_TIMEOUT)
    assert st2.per_try_timer(4.7) == (math.inf, None)


def test_timeouts_answer_504_UT_with_envoy_stat_names() -> None:
    assert [(o.stat, o.status, o.flag, o.details) for o in TimeoutOutcome] == [
        ("upstream_rq_timeout", 504, "UT", "response_timeout"),
        ("upstream_rq_per_try_timeout", 504, "UT", "upstream_per_try_timeout"),
        ("upstream_rq_per_try_idle_timeout", 504, "UT", "upstream_per_try_idle_timeout"),
    ]
    assert TimeoutOutcome.ROUTE_TIMEOUT.body == "upstream request timeout"
    assert not TimeoutOutcome.ROUTE_TIMEOUT.per_try and TimeoutOutcome.PER_TRY_TIMEOUT.per_try


def test_per_try_timeouts_are_not_counted_while_hedging() -> None:
    shared: dict[str, int] = {}
    st = TimeoutState(TimeoutPolicy(per_try_timeout=1), hedge_on_per_try_timeout=True, stats=shared)
    st.on_timeout(TimeoutOutcome.PER_TRY_TIMEOUT)
    st.on_timeout(TimeoutOutcome.ROUTE_TIMEOUT)
    assert shared == {
        "upstream_rq_timeout": 1,
        "upstream_rq_per_try_timeout": 0,
        "upstream_rq_per_try_idle_timeout": 0,
    }


def simulate_per_try_timeouts(retry_on: str, seed: int) -> tuple[float, int, list[str]]:
    """One request to an upstream slower than the per-try timeout (route 5 s, per-try 0.3 s, 2 retries).

    Returns (time of the 504, attempts, response flags); back-off waits come from the retry state.
    """
    timeouts = TimeoutState(TimeoutPolicy(timeout=5, per_try_timeout=0.3))
    policy = RetryPolicy(retry_on=retry_on, num_retries=2)
    retry = RetryState.create(policy, RetryBreaker(), np.random.default_rng(seed))
    assert retry is not None
    now, attempts = 0.0, 0
    while True:
        attempts += 1
        delay, which = timeouts.per_try_timer(now)
        assert which is TimeoutOutcome.PER_TRY_TIMEOUT
        now += delay
        timeouts.on_timeout(which)
        decision, backoff = retry.should_retry(None, ResetKind.PER_TRY_TIMEOUT, now)
        if decision is not RetryDecision.YES:
            retry.on_request_end()
            flags = [f for f in (decision.flag, which.flag) if f]
            return now, attempts, flags
        now += backoff


def test_per_try_timeouts_retried_by_5xx_end_in_504_URX_UT_appendix_a4() -> None:
    # Envoy 1.40: 504 after 936 ms, flags URX,UT, attempts=3. Here: 3 x 300 ms plus two back-offs
    # U{0..24} and U{0..49} ms, mean 900 + 12 + 24.5 = 936.5 ms; 2000 seeds, tolerance 4 standard errors.
    runs = [simulate_per_try_timeouts("5xx", seed) for seed in range(2000)]
    assert {(a, tuple(f)) for _, a, f in runs} == {(3, ("URX", "UT"))}
    times_ms = np.array([t for t, _, _ in runs]) * 1000
    se = math.sqrt((25**2 - 1) / 12 + (50**2 - 1) / 12) / math.sqrt(len(runs))
    assert abs(times_ms.mean() - 936.5) < 4 * se
    assert abs(936 - 936.5) < 3 * math.sqrt((25**2 - 1) / 12 + (50**2 - 1) / 12)  # the measured single run


def test_per_try_timeouts_are_not_retried_by_connect_failure_appendix_a4() -> None:
    # Envoy 1.40: 504 after 297 ms, flag UT, attempts=1
    t, attempts, flags = simulate_per_try_timeouts("connect-failure", seed=1)
    assert (round(t, 6), attempts, flags) == (0.3, 1, ["UT"])


def test_to_envoy_writes_timeout_and_the_per_try_part_of_retry_policy() -> None:
    assert to_envoy(TimeoutPolicy()) == {"timeout": "15s"}
    assert to_envoy(TimeoutPolicy(timeout=0)) == {"timeout": "0s"}
    assert to_envoy(TimeoutPolicy(timeout="2.5s", per_try_timeout="250ms", per_try_idle_timeout="1s")) == {
        "timeout": "2.5s",
        "retry_policy": {"per_try_timeout": "0.25s", "per_try_idle_timeout": "1s"},
    }
    assert unsupported(TimeoutPolicy()) == []


def test_envoy_duration_strings() -> None:
    assert [envoy_duration(x) for x in (0, 0.025, 0.25, 1.5, 15, 300, 1e-6, 1.5e-9)] == [
        "0s",
        "0.025s",
        "0.25s",
        "1.5s",
        "15s",
        "300s",
        "0.000001s",
        "0.000000002s",
    ]


def test_per_try_timeout_given_in_both_policies_must_agree() -> None:
    retry = RetryPolicy.model_validate({"attempts": 2, "perTryTimeout": "1s"})
    assert resolve_per_try_timeout(TimeoutPolicy(), retry) == 1.0
    assert resolve_per_try_timeout(TimeoutPolicy(per_try_timeout=1), retry) == 1.0
    assert resolve_per_try_timeout(None, None) == 0.0
    with pytest.raises(ConfigError, match="given twice"):
        resolve_per_try_timeout(TimeoutPolicy(per_try_timeout=2), retry)
    st = TimeoutState(TimeoutPolicy(timeout=3), per_try_timeout=resolve_per_try_timeout(None, retry))
    assert st.per_try_timer(0.0) == (1.0, TimeoutOutcome.PER_TRY_TIMEOUT)
