"""Retry policy: Envoy's retry_on conditions, back-off, retry breaker/budget, spellings, Envoy form.

No engine: states are driven directly with fake outcomes and a fake clock.
"""

from __future__ import annotations

import math
from itertools import cycle

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic import ValidationError

from meshsim import ConfigError
from meshsim._exceptions import SimulationError
from meshsim.policies.retry import (
    DEFAULT_BASE_INTERVAL_MS,
    DEFAULT_BUDGET_PERCENT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MIN_RETRY_CONCURRENCY,
    DEFAULT_NUM_RETRIES,
    ISTIO_DEFAULT_RETRY_ON,
    RETRY_ON_TOKENS,
    ResetKind,
    RetryBackOff,
    RetryBreaker,
    RetryBudget,
    RetryDecision,
    RetryOn,
    RetryPolicy,
    RetryState,
    backoff_cap,
    backoff_delay,
    budget_to_envoy,
    lint,
    retry_budget_limit,
    to_envoy,
    unknown_tokens,
    unsupported,
    would_retry,
)

YES, NO, URX, UO = RetryDecision.YES, RetryDecision.NO, RetryDecision.LIMIT_EXCEEDED, RetryDecision.OVERFLOW
ALL_RESETS = list(ResetKind)


def policy(**kw: object) -> RetryPolicy:
    return RetryPolicy.model_validate(kw)


def state(p: RetryPolicy, breaker: RetryBreaker | None = None, u: float | None = None) -> RetryState:
    rng = (lambda: u) if u is not None else np.random.default_rng(7)
    st_ = RetryState.create(p, breaker if breaker is not None else RetryBreaker(), rng)
    assert st_ is not None
    return st_


# ---------------------------------------------------------------------------------------------- defaults


def test_envoy_defaults_num_retries_1_backoff_25ms_250ms_max_retries_3() -> None:
    p = policy(retry_on="5xx")
    assert p.num_retries == DEFAULT_NUM_RETRIES == 1
    assert (p.base_interval_ms, p.max_interval_ms) == (DEFAULT_BASE_INTERVAL_MS, 250) == (25, 250)
    assert p.retry_back_off is None and not p.hedge_on_per_try_timeout
    assert p.host_selection_attempts == 1 and not p.previous_hosts
    assert RetryBreaker().max_retries == DEFAULT_MAX_RETRIES == 3
    assert (DEFAULT_BUDGET_PERCENT, DEFAULT_MIN_RETRY_CONCURRENCY) == (20.0, 3)


def test_policy_without_retry_on_creates_no_retry_state() -> None:
    # Envoy allocates no RetryStateImpl when retry_on is empty: nothing retried, no URX/UO
    assert RetryState.create(policy(num_retries=5), RetryBreaker()) is None
    assert RetryState.create(None, RetryBreaker()) is None
    assert not policy(num_retries=5).active


def test_only_retry_once_by_default() -> None:
    s = state(policy(retry_on="5xx"))
    assert s.should_retry(503, None, 0.0)[0] is YES
    assert s.should_retry(503, None, 0.1)[0] is URX


# ---------------------------------------------------------------------------------------------- retry_on


def test_retry_on_is_canonical_whitespace_tolerant_and_deduplicated() -> None:
    p = policy(retry_on=" reset , 5xx,,5xx,unavailable ")
    assert p.retry_on == "5xx,reset,unavailable"
    assert policy(retry_on=["connect-failure", "5xx"]).retry_on == "5xx,connect-failure"
    assert p.flags == RetryOn.FIVE_XX | RetryOn.RESET | RetryOn.GRPC_UNAVAILABLE


def test_every_envoy_token_is_accepted_including_grpc() -> None:
    p = policy(retry_on=",".join(RETRY_ON_TOKENS))
    assert p.retry_on == ",".join(RETRY_ON_TOKENS)
    assert int(p.flags) == sum(int(b) for b in RETRY_ON_TOKENS.values())


@pytest.mark.parametrize(
    ("token", "hint"),
    [
        ("gateway-errors", "did you mean 'gateway-error'"),
        ("5XX", "did you mean '5xx'"),
        ("connect_failure", "did you mean 'connect-failure'"),
        ("retriable-status-code", "did you mean 'retriable-status-codes'"),
        ("503", "retriable_status_codes: [503]"),
    ],
)
def test_unknown_retry_on_token_is_refused_with_a_suggestion(token: str, hint: str) -> None:
    with pytest.raises(ValidationError) as err:
        policy(retry_on=f"reset,{token}")
    text = str(err.value)
    assert hint in text and "silently ignores" in text and "allow_unknown" in text
    with pytest.raises(ConfigError, match="did you mean|retriable_status_codes"):
        RetryOn.parse(token)


def test_allow_unknown_keeps_the_token_for_export_and_reports_it() -> None:
    p = policy(retry_on="5xx,bogus-thing", allow_unknown=True)
    assert p.retry_on == "5xx,bogus-thing"
    assert p.flags == RetryOn.FIVE_XX  # ignored in simulation, as Envoy ignores it
    assert to_envoy(p)["retry_policy"]["retry_on"] == "5xx,bogus-thing"
    assert any("bogus-thing" in line for line in unsupported(p))
    assert any("bogus-thing" in line for line in lint(p))


def test_unknown_tokens_lists_what_envoy_would_silently_ignore() -> None:
    assert unknown_tokens("5xx,gateway-errors, reset,503,gateway-errors") == ["gateway-errors", "503"]
    assert unknown_tokens(ISTIO_DEFAULT_RETRY_ON) == []


# ------------------------------------------------------------------------------------ would_retry (2.2)


def flags(text: str) -> RetryOn:
    return RetryOn.parse(text)


@pytest.mark.parametrize("reset", ALL_RESETS)
def test_overflow_resets_are_never_retried_whatever_retry_on_says(reset: ResetKind) -> None:
    everything = RetryOn(sum(int(b) for b in RETRY_ON_TOKENS.values()))
    assert would_retry(everything, None, reset) is (reset is not ResetKind.OVERFLOW)


@pytest.mark.parametrize("token", ["5xx", "gateway-error", "reset"])
@pytest.mark.parametrize("reset", ALL_RESETS)
def test_5xx_gateway_error_and_reset_retry_every_reset_but_overflow(token: str, reset: ResetKind) -> None:
    assert would_retry(flags(token), None, reset) is (reset is not ResetKind.OVERFLOW)


def test_connect_failure_does_not_retry_per_try_timeouts_but_5xx_does() -> None:
    cf = flags("connect-failure")
    assert would_retry(cf, None, ResetKind.CONNECT_FAILURE)
    assert not would_retry(cf, None, ResetKind.PER_TRY_TIMEOUT)
    assert not would_retry(cf, None, ResetKind.REMOTE_RESET)
    assert not would_retry(cf, 503, None)
    assert would_retry(flags("5xx"), None, ResetKind.PER_TRY_TIMEOUT)


@pytest.mark.parametrize(
    ("token", "status", "expected"),
    [
        ("5xx", 500, True),
        ("5xx", 503, True),
        ("5xx", 599, True),
        ("5xx", 499, False),
        ("5xx", 200, False),
        ("gateway-error", 502, True),
        ("gateway-error", 503, True),
        ("gateway-error", 504, True),
        ("gateway-error", 500, False),
        ("gateway-error", 501, False),
        ("retriable-4xx", 409, True),
        ("retriable-4xx", 429, False),
        ("retriable-4xx", 400, False),
        ("reset", 503, False),
        ("connect-failure", 503, False),
        ("refused-stream", 503, False),
        ("retriable-headers", 503, False),
    ],
)
def test_status_conditions(token: str, status: int, expected: bool) -> None:
    assert would_retry(flags(token), status, None) is expected


def test_retriable_4xx_is_409_only() -> None:
    f = flags("retriable-4xx")
    assert [c for c in range(400, 500) if would_retry(f, c, None)] == [409]


def test_retriable_status_codes_with_an_empty_list_retries_nothing() -> None:
    f = flags("retriable-status-codes")
    assert not any(would_retry(f, c, None, ()) for c in range(100, 600))
    assert would_retry(f, 503, None, (503,)) and not would_retry(f, 502, None, (503,))
    s = state(policy(retry_on="retriable-status-codes"))
    assert s.should_retry(503, None, 0.0)[0] is NO


def test_refused_stream_retries_only_refused_streams() -> None:
    f = flags("refused-stream")
    assert [r for r in ALL_RESETS if would_retry(f, None, r)] == [ResetKind.REFUSED_STREAM]


def test_reset_before_request_retries_only_resets_before_bytes_were_sent() -> None:
    f = flags("reset-before-request")
    assert [r for r in ALL_RESETS if would_retry(f, None, r)] == [ResetKind.CONNECT_FAILURE]
    assert would_retry(f, None, ResetKind.REMOTE_RESET, request_started=False)


def test_reset_before_request_is_sticky_once_any_attempt_sent_bytes() -> None:
    # router.cc: upstream_request_started_ |= first_upstream_tx_byte_sent (never cleared)
    s = state(policy(retry_on="reset-before-request,refused-stream", num_retries=3))
    assert s.should_retry(None, ResetKind.REFUSED_STREAM, 0.0)[0] is YES  # bytes were sent
    assert s.should_retry(None, ResetKind.CONNECT_FAILURE, 0.1)[0] is NO
    fresh = state(policy(retry_on="reset-before-request", num_retries=3))
    assert fresh.should_retry(None, ResetKind.CONNECT_FAILURE, 0.0)[0] is YES


def test_envoy_ratelimited_responses_are_retried_only_with_the_token() -> None:
    assert not would_retry(flags("5xx"), 503, None, rate_limited=True)  # checked first
    assert would_retry(flags("envoy-ratelimited"), 429, None, rate_limited=True)
    assert not would_retry(flags("envoy-ratelimited"), 429, None)


def test_grpc_tokens_match_grpc_status_of_trailers_only_responses() -> None:
    f = flags("unavailable,cancelled")
    assert would_retry(f, 200, None, grpc_status=14) and would_retry(f, 200, None, grpc_status=1)
    assert not would_retry(f, 200, None, grpc_status=13)
    assert would_retry(flags("internal,deadline-exceeded,resource-exhausted"), 200, None, grpc_status=8)


def test_would_retry_needs_a_status_or_a_reset() -> None:
    with pytest.raises(ValueError, match="status or a reset"):
        would_retry(flags("5xx"), None, None)


# --------------------------------------------------------------------------------------------- back-off


def test_backoff_caps_double_from_25ms_up_to_250ms() -> None:
    assert [backoff_cap(k, 25, 250) for k in range(1, 9)] == [25, 50, 100, 200, 250, 250, 250, 250]


def test_backoff_caps_with_odd_max_jump_straight_to_max_as_envoy_does() -> None:
    # next = next*2 if next < max//2 else max: 50 is not < 101//2, so the next cap is 101 (not 100)
    assert [backoff_cap(k, 25, 101) for k in range(1, 5)] == [25, 50, 101, 101]
    assert [backoff_cap(k, 3, 7) for k in range(1, 4)] == [3, 7, 7]
    assert [backoff_cap(k, 10, 10) for k in range(1, 3)] == [10, 10]


def test_backoff_delay_is_uniform_over_the_integers_below_the_cap() -> None:
    n = 1000
    counts = np.bincount([backoff_delay(2, 25, 250, (i + 0.5) / n) for i in range(n)])
    assert len(counts) == 50 and set(counts) == {20}  # every ms in 0..49, equally often
    assert backoff_delay(1, 25, 250, 0.0) == 0 and backoff_delay(1, 25, 250, 1.0) == 24


def test_backoff_means_match_the_code_not_the_docs_formula_appendix_a1() -> None:
    # base 100 ms, max 1 s: caps 100/200/400/800/1000, delay uniform on 0..cap-1, mean (cap-1)/2.
    # 20_000 draws per retry (seed 2024): tolerance 4 standard errors of U[0, cap).
    rng = np.random.default_rng(2024)
    n = 20_000
    caps = [backoff_cap(k, 100, 1000) for k in range(1, 6)]
    assert caps == [100, 200, 400, 800, 1000]
    measured_a1 = [50.3, 101.3, 198.7, 380.0, 515.6]  # real Envoy 1.40, 300 requests each
    docs = [(2**k - 1) * 100 / 2 for k in range(1, 6)]  # [0, (2^N-1)B) means 50/150/350/750/1550
    for k, cap in enumerate(caps, start=1):
        delays = np.array([backoff_delay(k, 100, 1000, u) for u in rng.random(n)])
        se = cap / math.sqrt(12 * n)
        assert abs(delays.mean() - (cap - 1) / 2) < 4 * se
        assert delays.min() == 0 and delays.max() == cap - 1
        se_300 = cap / math.sqrt(12 * 300)
        assert abs(measured_a1[k - 1] - (cap - 1) / 2) < 3 * se_300  # Envoy agrees with this model
        if k > 1:
            assert abs(measured_a1[k - 1] - docs[k - 1]) > 3 * se_300  # and not with the docs


def test_retry_state_backoff_grows_per_request_and_restarts_for_a_new_request() -> None:
    p = policy(retry_on="5xx", num_retries=6)
    s = state(p, RetryBreaker(max_retries=100), u=0.99999)
    delays = []
    for t in range(6):
        d, delay = s.should_retry(503, None, float(t))
        assert d is YES
        delays.append(round(delay * 1000))
    assert delays == [24, 49, 99, 199, 249, 249]
    s2 = state(p, RetryBreaker(max_retries=100), u=0.99999)
    assert round(s2.should_retry(503, None, 0.0)[1] * 1000) == 24
    assert s.stats["upstream_rq_retry_backoff_exponential"] == 6


def test_retry_back_off_validation_as_envoy() -> None:
    assert RetryBackOff.model_validate({"base_interval": "0.2ms"}).base_interval_ms == 1  # rounded up
    assert RetryBackOff.model_validate({"base_interval": "1.7ms"}).base_interval_ms == 1  # whole ms
    b = RetryBackOff.model_validate({"base_interval": "100ms"})
    assert (b.base_interval_ms, b.max_interval_ms) == (100, 1000)
    assert (
        RetryBackOff.model_validate({"base_interval": "10ms", "max_interval": "10ms"}).max_interval_ms == 10
    )
    with pytest.raises(ValidationError, match="max_interval 20ms is below base_interval 25ms"):
        RetryBackOff.model_validate({"base_interval": "25ms", "max_interval": "20ms"})
    with pytest.raises(ValidationError, match="needs base_interval"):
        RetryBackOff.model_validate({"max_interval": "1s"})
    with pytest.raises(ValidationError, match="must be > 0"):
        RetryBackOff.model_validate({"base_interval": 0})
    p = policy(retry_on="5xx", retry_back_off={"base_interval": "100ms"})
    assert (p.base_interval_ms, p.max_interval_ms) == (100, 1000)


# ------------------------------------------------------------------------- decision algorithm (2.3)


def test_limit_exceeded_after_num_retries_gives_URX() -> None:
    s = state(policy(retry_on="5xx", num_retries=2))
    assert [s.should_retry(503, None, 0.0)[0] for _ in range(3)] == [YES, YES, URX]
    assert URX.flag == "URX" and URX.stat == "upstream_rq_retry_limit_exceeded"
    assert s.stats["upstream_rq_retry"] == 2 and s.stats["upstream_rq_retry_limit_exceeded"] == 1
    assert s.retries_remaining == 0 and not s.holding_slot


def test_num_retries_zero_gives_URX_on_the_first_retriable_failure() -> None:
    s = state(policy(retry_on="5xx", num_retries=0))
    assert s.should_retry(503, None, 0.0) == (URX, 0.0)


def test_overflowed_retry_returns_the_upstream_response_with_UO() -> None:
    breaker = RetryBreaker(max_retries=1)
    p = policy(retry_on="5xx", num_retries=3)
    a, b = state(p, breaker), state(p, breaker)
    assert a.should_retry(503, None, 0.0)[0] is YES
    decision, delay = b.should_retry(503, None, 0.0)
    assert decision is UO and delay == 0.0
    assert UO.flag == "UO" and UO.stat == "upstream_rq_retry_overflow"
    assert breaker.stats["upstream_rq_retry_overflow"] == 1
    assert b.retries_remaining == 2  # the refused retry still used one
    assert not b.holding_slot and breaker.active == 1


def test_retry_breaker_of_one_with_five_concurrent_failures_appendix_a4() -> None:
    # max_retries 1, num_retries 3, 5 concurrent requests to an always-503 upstream:
    # 4 get the upstream 503 with UO (1 attempt each), 1 retries 3 times and ends URX.
    breaker = RetryBreaker(max_retries=1)
    p = policy(retry_on="5xx", num_retries=3)
    states = [state(p, breaker) for _ in range(5)]
    first = [s.should_retry(503, None, 0.0)[0] for s in states]
    assert first == [YES, UO, UO, UO, UO]
    for s in states[1:]:
        s.on_request_end()
    assert [states[0].should_retry(503, None, t)[0] for t in (0.1, 0.2, 0.3)] == [YES, YES, URX]
    states[0].on_request_end()
    assert breaker.stats["upstream_rq_retry"] == 3
    assert breaker.stats["upstream_rq_retry_overflow"] == 4
    assert breaker.stats["upstream_rq_retry_limit_exceeded"] == 1
    assert breaker.active == 0


def test_retry_slot_is_held_from_the_decision_through_backoff_and_the_retried_try() -> None:
    breaker = RetryBreaker(max_retries=3)
    s = state(policy(retry_on="5xx", num_retries=2), breaker)
    assert s.should_retry(503, None, 0.0)[0] is YES
    assert breaker.active == 1 and s.holding_slot  # during back-off and the retried try
    assert s.should_retry(200, None, 0.5)[0] is NO
    assert breaker.active == 0 and not s.holding_slot
    assert s.stats["upstream_rq_retry_success"] == 1


def test_retry_releases_and_retakes_its_slot_on_each_further_retry() -> None:
    breaker = RetryBreaker(max_retries=1)
    s = state(policy(retry_on="5xx", num_retries=3), breaker)
    for t in range(3):
        assert s.should_retry(503, None, float(t))[0] is YES  # slot released, then taken again
        assert breaker.active == 1
    assert s.should_retry(503, None, 4.0)[0] is URX and breaker.active == 0


def test_retry_success_is_counted_only_after_a_retry() -> None:
    s = state(policy(retry_on="5xx"))
    assert s.should_retry(200, None, 0.0)[0] is NO
    assert s.stats["upstream_rq_retry_success"] == 0


def test_retry_success_also_counts_a_non_retriable_error_after_a_retry() -> None:
    # Envoy: "callback armed and this outcome is not retriable" -> success, whatever the status
    s = state(policy(retry_on="gateway-error"))
    s.should_retry(503, None, 0.0)
    assert s.should_retry(500, None, 0.1)[0] is NO
    assert s.stats["upstream_rq_retry_success"] == 1


def test_request_end_releases_a_slot_held_during_backoff() -> None:
    breaker = RetryBreaker(max_retries=1)
    s = state(policy(retry_on="5xx"), breaker)
    s.should_retry(503, None, 0.0)
    s.on_request_end()  # e.g. the route timeout fired during the back-off wait
    s.on_request_end()  # idempotent
    assert breaker.active == 0 and breaker.stats["upstream_rq_retry_success"] == 0
    with pytest.raises(SimulationError):
        breaker.dec()


def test_hedge_on_per_try_timeout_is_always_retriable_within_limits() -> None:
    breaker = RetryBreaker(max_retries=1)
    p = policy(retry_on="connect-failure", num_retries=1, hedge_on_per_try_timeout=True)
    s = state(p, breaker)
    assert s.hedging
    d, delay = s.hedge_on_per_try_timeout(0.3)  # connect-failure alone would not retry a per-try timeout
    assert d is YES and 0.0 <= delay < 0.025
    assert s.hedge_on_per_try_timeout(0.6)[0] is URX
    other = state(p, breaker)
    other.should_retry(None, ResetKind.CONNECT_FAILURE, 0.0)
    assert state(p, breaker).hedge_on_per_try_timeout(0.3)[0] is UO
    with pytest.raises(SimulationError, match="without hedging"):
        state(policy(retry_on="5xx")).hedge_on_per_try_timeout(0.0)


def test_would_retry_method_changes_nothing() -> None:
    s = state(policy(retry_on="5xx"))
    assert s.would_retry(503, None) and not s.would_retry(200, None)
    assert s.retries_remaining == 1 and s.stats["upstream_rq_retry"] == 0


def test_decisions_carry_flags_and_stats() -> None:
    assert [(d.flag, d.stat) for d in RetryDecision] == [
        ("", "upstream_rq_retry"),
        ("", None),
        ("URX", "upstream_rq_retry_limit_exceeded"),
        ("UO", "upstream_rq_retry_overflow"),
    ]
    assert (ResetKind.PER_TRY_TIMEOUT.status, ResetKind.PER_TRY_TIMEOUT.flag) == (504, "UT")
    assert (ResetKind.PROTOCOL_ERROR.status, ResetKind.OVERFLOW.flag) == (502, "UO")


def test_istio_default_policy_does_not_retry_a_503_appendix_a4() -> None:
    p = RetryPolicy.istio_default()
    s = state(p)
    assert s.should_retry(503, None, 0.0)[0] is NO
    assert s.should_retry(None, ResetKind.CONNECT_FAILURE, 0.0)[0] is YES
    assert s.stats["upstream_rq_retry"] == 1


def test_rng_may_be_a_seed_a_generator_or_a_uniform_source() -> None:
    p = policy(retry_on="5xx")
    a = RetryState(p, RetryBreaker(), 11).should_retry(503, None, 0.0)[1]
    b = RetryState(p, RetryBreaker(), np.random.default_rng(11)).should_retry(503, None, 0.0)[1]
    assert a == b
    assert RetryState(p, RetryBreaker(), lambda: 0.5).should_retry(503, None, 0.0)[1] == 0.012
    with pytest.raises(TypeError, match="rng must be"):
        RetryState(p, RetryBreaker(), "seed")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- breaker and budget


def test_budget_formula_worked_example() -> None:
    assert retry_budget_limit(20.0, 3, 40, 10) == 10  # 20 % of 50
    assert retry_budget_limit(20.0, 3, 8, 2) == 3  # 2 < min_retry_concurrency
    assert retry_budget_limit(25.0, 0, 7, 0) == 1  # floor(1.75)
    assert retry_budget_limit(30.0, 0, 10, 0) == 3  # 0.3 * 10 = 3.0000000000000004 -> 3
    b = RetryBreaker(budget=RetryBudget(budget_percent=20), load=lambda: (40, 10))
    assert b.limit() == 10
    for _ in range(10):
        assert b.can_create()
        b.inc()
    assert not b.can_create()
    assert b.can_create(active_requests=60, pending_requests=0)  # 12 allowed


def test_empty_retry_budget_keeps_max_retries() -> None:
    p = policy(retry_on="5xx", retry_budget={})
    assert p.retry_budget is not None and not p.retry_budget.in_force
    b = RetryBreaker(max_retries=3, budget=p.retry_budget, load=lambda: (1000, 0))
    assert not b.use_budget and b.limit() == 3
    assert budget_to_envoy(p) == {"retry_budget": {}}  # exported faithfully ...
    assert any("retry_budget is empty" in line for line in lint(p))  # ... and flagged


def test_a_budget_replaces_max_retries() -> None:
    b = RetryBreaker(max_retries=1, budget=RetryBudget(min_retry_concurrency=5), load=lambda: (0, 0))
    assert b.use_budget and b.limit() == 5  # budget_percent defaults to 20, floor is 5
    for _ in range(5):
        assert b.can_create()
        b.inc()
    assert not b.can_create()
    assert b.remaining_retries == 0  # Envoy zeroes the gauge while a budget is in use
    assert b.rq_retry_open == 1  # the open gauge still follows max_retries (1), as in Envoy


def test_budget_without_load_needs_arguments() -> None:
    b = RetryBreaker(budget=RetryBudget(budget_percent=50))
    assert b.can_create(4, 0)
    with pytest.raises(SimulationError, match="active and pending"):
        b.can_create()


def test_breaker_gauges_without_budget() -> None:
    b = RetryBreaker(max_retries=2)
    assert (b.remaining_retries, b.rq_retry_open) == (2, 0)
    b.inc()
    b.inc()
    assert (b.remaining_retries, b.rq_retry_open, b.can_create()) == (0, 1, False)
    b.dec()
    assert (b.remaining_retries, b.rq_retry_open) == (1, 0)
    with pytest.raises(ConfigError, match="max_retries"):
        RetryBreaker(max_retries=-1)


def test_retry_budget_spellings() -> None:
    assert RetryBudget.model_validate({"budget_percent": {"value": 25.0}}).percent == 25.0
    assert RetryBudget.model_validate({"budget_percent": "25%"}).percent == 25.0
    assert RetryBudget.model_validate({"min_retry_concurrency": 4}).percent == DEFAULT_BUDGET_PERCENT
    with pytest.raises(ValidationError):
        RetryBudget.model_validate({"budget_percent": 120})
    with pytest.raises(ValidationError, match="budget_interval"):
        RetryBudget.model_validate({"budget_interval": "1s"})


# ---------------------------------------------------------------------------------------------- hosts


def test_previous_hosts_repicks_up_to_n_times_then_keeps_the_last_pick() -> None:
    p = policy(retry_on="5xx", retry_host_predicate=["previous_hosts"], host_selection_retry_max_attempts=2)
    s = state(p)
    s.on_host_attempted("a")
    s.on_host_attempted("b")
    picks = iter(["a", "b", "c", "d"])
    assert s.choose_host(lambda: next(picks)) == "c"  # 1 + 2 picks
    picks = iter(["a", "b", "a", "d"])
    assert s.choose_host(lambda: next(picks)) == "a"  # all three rejected: last pick kept
    calls = []
    assert s.choose_host(lambda: calls.append(1) or "z") == "z" and len(calls) == 1


def test_without_a_host_predicate_one_pick_is_taken() -> None:
    s = state(policy(retry_on="5xx"))
    s.on_host_attempted("a")
    assert s.tried_hosts is None
    assert s.choose_host(lambda: "a") == "a"


def test_istio_default_repicks_up_to_five_times() -> None:
    s = state(RetryPolicy.istio_default())
    s.on_host_attempted("a")
    picks = cycle(["a"] * 5 + ["b"])
    assert s.choose_host(lambda: next(picks)) == "b"  # 1 + 5 picks
    assert s.choose_host(lambda: "a", attempts=0) == "a"


def test_host_predicate_spellings() -> None:
    envoy_form = [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/x"},
        }
    ]
    assert policy(retry_on="5xx", retry_host_predicate=envoy_form).retry_host_predicate == ("previous_hosts",)
    assert policy(retry_on="5xx", retry_host_predicate="previous_hosts").previous_hosts
    with pytest.raises(ValidationError, match="omit_canary_hosts"):
        policy(retry_on="5xx", retry_host_predicate=["envoy.retry_host_predicates.omit_canary_hosts"])


# ------------------------------------------------------------------------------------------ spellings


def test_istio_and_envoy_spellings_parse_to_the_same_policy() -> None:
    istio = RetryPolicy.model_validate(
        {"attempts": 3, "retryOn": "connect-failure,5xx,503", "perTryTimeout": "2s", "backoff": "50ms"}
    )
    envoy = RetryPolicy.model_validate(
        {
            "retry_on": "5xx,connect-failure,retriable-status-codes",
            "num_retries": 3,
            "per_try_timeout": 2.0,
            "retriable_status_codes": [503],
            "retry_back_off": {"base_interval": "50ms"},
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
            "host_selection_retry_max_attempts": 5,
        }
    )
    assert istio == envoy
    assert (
        RetryPolicy.from_istio(
            {"attempts": 3, "retryOn": "connect-failure,5xx,503", "perTryTimeout": "2s", "backoff": "50ms"}
        )
        == envoy
    )
    assert to_envoy(istio) == to_envoy(envoy)


def test_istio_retries_without_retry_on_get_istios_default_list() -> None:
    p = RetryPolicy.model_validate({"attempts": 4})
    assert p.num_retries == 4 and p.retry_on == RetryPolicy.istio_default().retry_on
    assert p.retriable_status_codes == () and p.previous_hosts


def test_istio_attempts_zero_means_no_retry_policy() -> None:
    assert RetryPolicy.from_istio({"attempts": 0}) is None
    assert RetryPolicy.from_istio({}) is None
    p = RetryPolicy.model_validate({"attempts": 0})
    assert not p.active and p.num_retries == 0 and RetryState.create(p, RetryBreaker()) is None
    assert to_envoy(p) == {}
    assert lint(p) == []


def test_istio_keys_without_attempts_are_refused() -> None:
    # Istio would silently drop the whole retry policy here
    with pytest.raises(ValidationError, match="no attempts"):
        RetryPolicy.model_validate({"retryOn": "5xx", "perTryTimeout": "1s"})
    # the Istio reader follows Istio's validation: refused next to attempts 0 (or none)
    with pytest.raises(ConfigError, match="attempts are 0") as info:
        RetryPolicy.from_istio({"attempts": 0, "retryOn": "5xx"})
    assert info.value.path == "retryOn"
    with pytest.raises(ConfigError, match="perTryTimeout"):
        RetryPolicy.from_istio({"perTryTimeout": "1s"})


def test_istio_default_policy_and_consistent_hash() -> None:
    d = RetryPolicy.from_istio(None)
    assert d == RetryPolicy.istio_default()
    assert (d.num_retries, d.flags, d.retriable_status_codes) == (
        2,
        RetryOn.parse(ISTIO_DEFAULT_RETRY_ON),
        (),
    )
    assert d.previous_hosts and d.host_selection_retry_max_attempts == 5 and d.per_try_timeout == 0
    assert not RetryPolicy.istio_default(consistent_hash=True).previous_hosts
    hashed = RetryPolicy.from_istio({"attempts": 2}, consistent_hash=True)
    assert hashed is not None and not hashed.previous_hosts


def test_istio_optional_fields() -> None:
    p = RetryPolicy.model_validate(
        {"attempts": 2, "retryIgnorePreviousHosts": False, "retryRemoteLocalities": True, "retryOn": "503"}
    )
    assert not p.previous_hosts and p.host_selection_retry_max_attempts == 5
    assert p.retry_on == "retriable-status-codes" and p.retriable_status_codes == (503,)
    assert p.retry_priority is not None and p.retry_priority.update_frequency == 2
    assert any("previous_priorities" in line for line in unsupported(p))
    with pytest.raises(ConfigError, match="did you mean 'retryOn'"):
        RetryPolicy.from_istio({"attempts": 2, "retryon": "5xx"})


def test_app_mesh_and_envoy_spellings_parse_to_the_same_policy() -> None:
    app_mesh = RetryPolicy.from_app_mesh(
        {
            "maxRetries": 3,
            "perRetryTimeout": {"value": 2, "unit": "s"},
            "httpRetryEvents": ["server-error", "gateway-error", "client-error", "stream-error"],
            "tcpRetryEvents": ["connection-error"],
            "grpcRetryEvents": ["unavailable"],
        }
    )
    envoy = policy(
        retry_on="5xx,gateway-error,retriable-4xx,refused-stream,connect-failure,unavailable",
        num_retries=3,
        per_try_timeout="2s",
    )
    assert app_mesh == envoy
    assert (
        RetryPolicy.model_validate(
            {"maxRetries": 1, "perRetryTimeout": "250ms", "tcpRetryEvents": ["connection-error"]}
        ).retry_on
        == "connect-failure"
    )


def test_app_mesh_requirements() -> None:
    with pytest.raises(ValidationError, match="perRetryTimeout"):
        RetryPolicy.model_validate({"maxRetries": 2, "httpRetryEvents": ["server-error"]})
    with pytest.raises(ValidationError, match="at least one retry event"):
        RetryPolicy.model_validate({"maxRetries": 2, "perRetryTimeout": "1s"})
    with pytest.raises(ValidationError, match="did you mean 'server-error'"):
        RetryPolicy.model_validate(
            {"maxRetries": 2, "perRetryTimeout": "1s", "httpRetryEvents": ["server-errors"]}
        )
    with pytest.raises(ValidationError, match="at most 1"):
        RetryPolicy.model_validate(
            {
                "maxRetries": 2,
                "perRetryTimeout": "1s",
                "tcpRetryEvents": ["connection-error", "connection-error"],
            }
        )
    with pytest.raises(ConfigError):
        RetryPolicy.from_app_mesh({"retry_on": "5xx"})


def test_spellings_do_not_mix() -> None:
    with pytest.raises(ValidationError, match="'num_retries'"):
        RetryPolicy.model_validate({"attempts": 2, "num_retries": 3})
    with pytest.raises(ValidationError, match="one spelling"):
        RetryPolicy.model_validate({"attempts": 2, "maxRetries": 3})
    p = RetryPolicy.model_validate({"attempts": 2, "hedge_on_per_try_timeout": True, "retry_budget": {}})
    assert p.hedge_on_per_try_timeout and p.retry_budget is not None


def test_other_validation() -> None:
    with pytest.raises(ValidationError, match="not an HTTP status code"):
        policy(retry_on="retriable-status-codes", retriable_status_codes=[5033])
    codes = policy(retry_on="retriable-status-codes", retriable_status_codes=[504, 503, 503])
    assert codes.retriable_status_codes == (503, 504)
    with pytest.raises(ValidationError):
        policy(retry_on="5xx", num_retries=-1)
    with pytest.raises(ValidationError, match="below Envoy's 1 ms"):
        policy(retry_on="5xx", per_try_timeout="0.5ms")
    with pytest.raises(ValidationError, match="unknown key 'retry_ob'; did you mean 'retry_on'"):
        RetryPolicy.model_validate({"retry_ob": "5xx"})


def test_lint_flags_silent_envoy_traps() -> None:
    assert lint(policy(retry_on="5xx")) == []
    assert any("no known condition" in line for line in lint(policy(num_retries=3)))
    assert any(
        "per-try timeout is not retried" in line
        for line in lint(policy(retry_on="connect-failure", per_try_timeout="300ms"))
    )
    assert any("unused" in line for line in lint(policy(retry_on="5xx", retriable_status_codes=[503])))


# ---------------------------------------------------------------------------------------------- Envoy


def test_to_envoy_writes_the_route_retry_and_hedge_policy() -> None:
    p = policy(
        retry_on="5xx,reset,connect-failure,refused-stream,retriable-status-codes",
        num_retries=3,
        per_try_timeout="0.5s",
        per_try_idle_timeout="300ms",
        retry_back_off={"base_interval": "25ms", "max_interval": "250ms"},
        retriable_status_codes=[503],
        retry_host_predicate=["previous_hosts"],
        host_selection_retry_max_attempts=3,
        hedge_on_per_try_timeout=True,
    )
    assert to_envoy(p) == {
        "retry_policy": {
            "retry_on": "5xx,reset,connect-failure,refused-stream,retriable-status-codes",
            "num_retries": 3,
            "per_try_timeout": "0.5s",
            "per_try_idle_timeout": "0.3s",
            "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
            "retriable_status_codes": [503],
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                        "PreviousHostsPredicate"
                    },
                }
            ],
            "host_selection_retry_max_attempts": 3,
        },
        "hedge_policy": {"hedge_on_per_try_timeout": True},
    }
    assert to_envoy(policy(retry_on="5xx")) == {"retry_policy": {"retry_on": "5xx", "num_retries": 1}}


def test_to_envoy_retry_priority_and_budget() -> None:
    p = RetryPolicy.model_validate(
        {
            "attempts": 2,
            "retryRemoteLocalities": True,
            "retry_budget": {"budget_percent": 25, "min_retry_concurrency": 2},
        }
    )
    assert to_envoy(p)["retry_policy"]["retry_priority"] == {
        "name": "envoy.retry_priorities.previous_priorities",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3."
            "PreviousPrioritiesConfig",
            "update_frequency": 2,
        },
    }
    assert budget_to_envoy(p) == {
        "retry_budget": {"budget_percent": {"value": 25.0}, "min_retry_concurrency": 2}
    }
    assert budget_to_envoy(None) == {}
    # the Envoy form reads back to the same policy
    back = RetryPolicy.model_validate(
        {**to_envoy(p)["retry_policy"], "retry_budget": budget_to_envoy(p)["retry_budget"]}
    )
    assert back == p


# ------------------------------------------------------------------------------- stateful: retry slots


class RetrySlotMachine(RuleBasedStateMachine):
    """Many requests share one retry breaker; slots in use never exceed its limit nor go negative."""

    def __init__(self) -> None:
        super().__init__()
        self.breaker: RetryBreaker | None = None
        self.policy: RetryPolicy | None = None
        self.live: list[RetryState] = []
        self.load = [0, 0]

    @initialize(
        max_retries=st.integers(0, 4),
        budget=st.one_of(st.none(), st.tuples(st.floats(0, 100), st.integers(0, 4))),
        num_retries=st.integers(0, 4),
    )
    def setup(self, max_retries: int, budget: tuple[float, int] | None, num_retries: int) -> None:
        rb = (
            None if budget is None else RetryBudget(budget_percent=budget[0], min_retry_concurrency=budget[1])
        )
        self.breaker = RetryBreaker(max_retries, budget=rb, load=lambda: (self.load[0], self.load[1]))
        self.policy = RetryPolicy(retry_on="5xx,connect-failure", num_retries=num_retries)

    @rule(seed=st.integers(0, 2**16))
    def start_request(self, seed: int) -> None:
        assert self.policy is not None and self.breaker is not None
        s = RetryState.create(self.policy, self.breaker, seed)
        assert s is not None
        self.live.append(s)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 10**6), outcome=st.sampled_from([503, 500, 404, 200, "cf", "overflow", "ptt"]))
    def attempt_ends(self, i: int, outcome: object) -> None:
        assert self.breaker is not None
        s = self.live[i % len(self.live)]
        held_by_others = self.breaker.active - (1 if s.holding_slot else 0)
        if outcome == "cf":
            decision, delay = s.should_retry(None, ResetKind.CONNECT_FAILURE, 0.0)
        elif outcome == "overflow":
            decision, delay = s.should_retry(None, ResetKind.OVERFLOW, 0.0)
        elif outcome == "ptt":
            decision, delay = s.should_retry(None, ResetKind.PER_TRY_TIMEOUT, 0.0)
        else:
            decision, delay = s.should_retry(int(outcome), None, 0.0)  # type: ignore[call-overload]
        if decision is YES:
            assert held_by_others < self.breaker.limit()  # created only below the limit
            assert s.holding_slot and 0.0 <= delay < 0.25
        else:
            assert not s.holding_slot and delay == 0.0
        if outcome in (404, 200, "overflow"):
            assert decision is NO
        if decision is not YES:
            s.on_request_end()
            self.live.remove(s)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 10**6))
    def request_cancelled(self, i: int) -> None:
        s = self.live.pop(i % len(self.live))
        s.on_request_end()

    @rule(active=st.integers(0, 60), pending=st.integers(0, 20))
    def load_changes(self, active: int, pending: int) -> None:
        self.load[:] = [active, pending]

    @invariant()
    def slots_match_the_requests_holding_one(self) -> None:
        if self.breaker is None:
            return
        assert self.breaker.active == sum(s.holding_slot for s in self.live)
        assert self.breaker.active >= 0
        if not self.breaker.use_budget:
            assert self.breaker.active <= self.breaker.max_retries
            assert self.breaker.rq_retry_open == (
                1 if self.breaker.active >= self.breaker.max_retries else 0
            ) or (self.breaker.active == 0)

    @invariant()
    def counters_add_up(self) -> None:
        if self.breaker is None:
            return
        stats = self.breaker.stats
        assert stats["upstream_rq_retry"] == stats["upstream_rq_retry_backoff_exponential"]
        assert stats["upstream_rq_retry_success"] <= stats["upstream_rq_retry"]


TestRetrySlots = RetrySlotMachine.TestCase
TestRetrySlots.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_breaker_can_stand_in_for_the_circuit_breaker_retries_resource() -> None:
    cb = pytest.importorskip("meshsim.policies.circuit_breaker")
    rm = cb.ResourceManager()
    rm.retries = RetryBreaker(
        rm.policy.max_retries,
        budget=RetryBudget(budget_percent=50),
        load=lambda: (rm.requests.current, rm.pending.current),
        stats=rm.stats,
    )
    for _ in range(4):
        rm.requests.inc()
    assert (rm.retries.name, rm.retries.max, rm.retries.current) == ("rq_retry", 3, 0)  # max(floor(2), 3)
    s = state(policy(retry_on="5xx"), rm.retries)
    assert s.should_retry(503, None, 0.0)[0] is YES
    assert rm.stats["upstream_rq_retry"] == 1 and rm.retries.current == 1
    assert rm.gauges()["circuit_breakers.default.rq_retry_open"] == 0


def test_istio_reader_attempts_zero_with_backoff_is_no_policy() -> None:
    # Istio's validation lets backoff and retryIgnorePreviousHosts pass with attempts 0; istiod writes nothing
    assert RetryPolicy.from_istio({"attempts": 0, "backoff": "100ms"}) is None
    assert RetryPolicy.from_istio({"attempts": 0, "retryIgnorePreviousHosts": True}) is None
    assert RetryPolicy.from_istio({}) is None
    with pytest.raises(ConfigError, match="attempts -1"):
        RetryPolicy.from_istio({"attempts": -1})


def test_istio_reader_keeps_an_explicit_previous_hosts_on_a_consistent_hash_route() -> None:
    # retry.ConvertPolicy: the hash policy only changes the default; an explicit retryIgnorePreviousHosts wins
    kept = RetryPolicy.from_istio({"attempts": 2, "retryIgnorePreviousHosts": True}, consistent_hash=True)
    assert kept is not None and kept.previous_hosts
    dropped = RetryPolicy.from_istio({"attempts": 2}, consistent_hash=True)
    assert dropped is not None and not dropped.previous_hosts
    # the runtime view agrees with the fields (the policy is validated, not copied)
    assert dropped._rt[5] is False and kept._rt[5] is True
    assert dropped == RetryPolicy.from_istio({"attempts": 2, "retryIgnorePreviousHosts": False})


def test_istio_reader_errors_name_istio_keys() -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicy.from_istio({"attempts": 2, "perTryTimeout": "fast"})
    assert info.value.path == "perTryTimeout"
    with pytest.raises(ConfigError, match="did you mean") as info:
        RetryPolicy.from_istio({"attempts": 2, "retryOn": "5xx,gateway-errors"})
    assert info.value.path == "retryOn"

