"""Local rate limit: Envoy's continuous token bucket, enable/enforce percentages, stats (no engine)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from meshsim.policies.rate_limit import (
    RateLimitDecision,
    RateLimitPolicy,
    TokenBucket,
    lint,
    to_envoy,
)

ON = {"filter_enabled": 100, "filter_enforced": 100}


def policy(
    max_tokens: int = 2, tokens_per_fill: int = 1, fill_interval: str = "1s", **kw: object
) -> RateLimitPolicy:
    data = {
        "token_bucket": {
            "max_tokens": max_tokens,
            "tokens_per_fill": tokens_per_fill,
            "fill_interval": fill_interval,
        },
        **ON,
    }
    data.update(kw)
    return RateLimitPolicy.model_validate(data)


def test_burst_then_limited_then_one_token_after_a_second_as_envoy_1_40() -> None:
    tb = TokenBucket(policy(), start_time=0.0)
    got = [tb.take(t) for t in (0.0, 0.01, 0.02, 0.03, 0.04)]
    assert got == [RateLimitDecision.ALLOWED] * 2 + [RateLimitDecision.LIMITED] * 3
    assert [tb.take(t) for t in (1.14, 1.15)] == [RateLimitDecision.ALLOWED, RateLimitDecision.LIMITED]
    assert tb.stats == {
        "http_local_rate_limit.enabled": 7,
        "http_local_rate_limit.ok": 3,
        "http_local_rate_limit.rate_limited": 4,
        "http_local_rate_limit.enforced": 4,
    }


def test_bucket_refills_continuously_not_at_fill_interval_ticks() -> None:
    tb = TokenBucket(policy(max_tokens=10, tokens_per_fill=10, fill_interval="1s"), start_time=0.0)
    for _ in range(10):
        tb.take(0.0)
    assert tb.tokens(0.5) == pytest.approx(5.0)  # half an interval, half the fill
    assert sum(tb.take(0.5) is RateLimitDecision.ALLOWED for _ in range(8)) == 5


def test_timer_refill_adds_whole_fills_at_fill_interval_ticks_as_envoy_before_1_32() -> None:
    tb = TokenBucket(
        policy(max_tokens=10, tokens_per_fill=10, fill_interval="1s"), start_time=0.0, refill="timer"
    )
    for _ in range(10):
        tb.take(0.0)
    assert tb.take(0.99) is RateLimitDecision.LIMITED
    assert sum(tb.take(1.0) is RateLimitDecision.ALLOWED for _ in range(12)) == 10


def test_unset_filter_enabled_is_zero_percent_so_nothing_is_limited() -> None:
    p = RateLimitPolicy.model_validate({"token_bucket": {"max_tokens": 1, "fill_interval": "1s"}})
    tb = TokenBucket(p)
    assert {tb.take(0.0) for _ in range(10)} == {RateLimitDecision.DISABLED}
    assert tb.stats["http_local_rate_limit.enabled"] == 0
    assert len(lint(p)) == 2


def test_enabled_but_not_enforced_only_counts_rate_limited() -> None:
    p = RateLimitPolicy.model_validate(
        {"token_bucket": {"max_tokens": 1, "fill_interval": "1s"}, "filter_enabled": 100}
    )
    tb = TokenBucket(p)
    assert [tb.take(0.0) for _ in range(3)] == [RateLimitDecision.ALLOWED] + [
        RateLimitDecision.SHADOW_LIMITED
    ] * 2
    assert (
        tb.stats["http_local_rate_limit.rate_limited"] == 2
        and tb.stats["http_local_rate_limit.enforced"] == 0
    )


def test_fractional_filter_enabled_uses_the_draw() -> None:
    tb = TokenBucket(policy(max_tokens=100, filter_enabled="50%"))
    assert tb.take(0.0, u_enabled=0.49) is RateLimitDecision.ALLOWED
    assert tb.take(0.0, u_enabled=0.5) is RateLimitDecision.DISABLED


def test_status_below_400_is_replaced_by_429() -> None:
    assert TokenBucket(policy(status=200)).status == 429
    assert TokenBucket(policy(status={"code": 503})).status == 503


def test_long_run_admits_the_burst_plus_the_refill_rate() -> None:
    tb = TokenBucket(policy(max_tokens=5, tokens_per_fill=1, fill_interval="100ms"))
    allowed = sum(tb.take(i * 0.001) is RateLimitDecision.ALLOWED for i in range(10_000))  # 10 s at 1000/s
    assert allowed == 5 + 99 or allowed == 5 + 100


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=200),
    st.integers(min_value=1, max_value=20),
    st.sampled_from(["continuous", "timer"]),
)
def test_admitted_requests_never_exceed_burst_plus_refill(
    times: list[float], max_tokens: int, refill: str
) -> None:
    p = policy(max_tokens=max_tokens, tokens_per_fill=2, fill_interval="500ms")
    tb = TokenBucket(p, start_time=0.0, refill=refill)  # type: ignore[arg-type]
    admitted = 0
    for t in sorted(times):
        admitted += tb.take(t) is RateLimitDecision.ALLOWED
        assert 0.0 <= tb.tokens(t) <= max_tokens
        assert admitted <= max_tokens + 4.0 * t + 1e-6


def test_to_envoy_writes_the_filter_config_with_explicit_percentages() -> None:
    assert to_envoy(policy(max_tokens=2, status=503)) == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "http_local_rate_limiter",
        "token_bucket": {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "1s"},
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "status": {"code": 503},
    }
    envoy_form = RateLimitPolicy.model_validate(
        {
            "token_bucket": {"max_tokens": 2, "fill_interval": "1s"},
            "filter_enabled": {
                "runtime_key": "rl_on",
                "default_value": {"numerator": 100, "denominator": "HUNDRED"},
            },
        }
    )
    assert to_envoy(envoy_form)["filter_enabled"] == {
        "default_value": {"numerator": 100, "denominator": "HUNDRED"},
        "runtime_key": "rl_on",
    }


@pytest.mark.parametrize(
    "bucket, message",
    [
        ({"max_tokens": 0, "fill_interval": "1s"}, "max_tokens is 0"),
        ({"max_tokens": 5, "fill_interval": "20ms"}, "below 50ms"),
        ({"max_tokens": 5}, "fill_interval"),
        ({"max_tokens": 5, "fill_interval": "1s", "tokens_per_fill": 0}, "greater than 0"),
        ({"max_tokens": 5, "fill_intervall": "1s"}, "did you mean 'fill_interval'"),
    ],
)
def test_invalid_token_buckets_are_refused(bucket: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RateLimitPolicy.model_validate({"token_bucket": bucket})
