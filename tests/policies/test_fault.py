"""Fault injection: Envoy's fault filter order, percentages and Istio translation (no engine)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from meshsim.policies.fault import (
    FaultInjector,
    FaultOutcome,
    FaultPolicy,
    FractionalPercent,
    fraction_enabled,
    lint,
    to_envoy,
)


def policy(data: dict) -> FaultPolicy:
    return FaultPolicy.model_validate(data)


def tol(n: int, p: float) -> float:
    """Four binomial standard deviations."""
    return 4 * math.sqrt(n * p * (1 - p))


def test_percentage_is_envoys_random_mod_denominator_below_numerator() -> None:
    for num, den in ((5, 100), (1234, 10_000), (100_000, 1_000_000)):
        grid = [(i + 0.5) / den for i in range(den)]
        assert sum(fraction_enabled(u, num, den) for u in grid) == num


def test_delay_and_abort_percentages_hold_within_binomial_tolerance() -> None:
    inj = FaultInjector(
        policy(
            {
                "delay": {"fixed_delay": "50ms", "percentage": 10},
                "abort": {"http_status": 503, "percentage": 2},
            }
        )
    )
    rng = np.random.default_rng(11)
    n = 50_000
    u = rng.random((n, 2))
    outcomes = [inj.decide(a, b).outcome for a, b in u]
    delayed = sum(o in (FaultOutcome.DELAY, FaultOutcome.DELAY_AND_ABORT) for o in outcomes)
    aborted = sum(o in (FaultOutcome.ABORT, FaultOutcome.DELAY_AND_ABORT) for o in outcomes)
    assert abs(delayed - 0.10 * n) <= tol(n, 0.10)
    assert abs(aborted - 0.02 * n) <= tol(n, 0.02)
    assert inj.stats["fault.delays_injected"] == delayed and inj.stats["fault.aborts_injected"] == aborted


def test_abort_is_an_independent_draw_after_the_delay() -> None:
    inj = FaultInjector(
        policy(
            {
                "delay": {"fixed_delay": "1s", "percentage": 50},
                "abort": {"http_status": 418, "percentage": 20},
            }
        )
    )
    rng = np.random.default_rng(3)
    n = 40_000
    both = delayed = 0
    for a, b in rng.random((n, 2)):
        d = inj.decide(a, b)
        delayed += d.delay_s > 0
        both += d.outcome is FaultOutcome.DELAY_AND_ABORT
    assert abs(both - 0.2 * delayed) <= tol(delayed, 0.2)  # P(abort | delayed) = P(abort)


def test_delay_then_abort_answers_after_the_delay_with_flags_di_fi() -> None:
    inj = FaultInjector(
        policy(
            {
                "delay": {"fixed_delay": "200ms", "percentage": 100},
                "abort": {"http_status": 418, "percentage": 100},
            }
        )
    )
    d = inj.decide(0.3, 0.9)
    assert (d.outcome, d.delay_s, d.abort_status, d.flags) == (
        FaultOutcome.DELAY_AND_ABORT,
        0.2,
        418,
        "DI,FI",
    )


def test_unset_percentage_injects_nothing_as_envoy_and_istio_do() -> None:
    p = policy({"delay": {"fixedDelay": "5s"}, "abort": {"httpStatus": 503}})
    inj = FaultInjector(p)
    assert all(inj.decide(u, u).outcome is FaultOutcome.NONE for u in (0.0, 0.3, 0.999))
    assert len(lint(p)) == 2 and "0 %" in lint(p)[0]
    assert "percentage" not in to_envoy(p)["abort"]  # Istio leaves it out too


def test_istio_percentages_translate_as_istio_does() -> None:
    assert FractionalPercent.model_validate({"value": 0.1}).model_dump() == {
        "numerator": 1000,
        "denominator": "MILLION",
    }
    deprecated = policy({"abort": {"httpStatus": 503, "percent": 5}})
    assert deprecated.abort.percentage.model_dump() == {"numerator": 5, "denominator": "HUNDRED"}  # type: ignore[union-attr]
    assert FractionalPercent.model_validate("0.5%").percent == 0.5
    assert FractionalPercent.model_validate({"numerator": 3, "denominator": "TEN_THOUSAND"}).percent == 0.03


def test_to_envoy_writes_the_http_fault_config() -> None:
    p = policy(
        {
            "delay": {"fixedDelay": "100ms", "percentage": {"value": 5}},
            "abort": {"httpStatus": 503, "percentage": 1},
            "max_active_faults": 100,
        }
    )
    assert to_envoy(p) == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        "delay": {"fixed_delay": "0.1s", "percentage": {"numerator": 50000, "denominator": "MILLION"}},
        "abort": {"http_status": 503, "percentage": {"numerator": 1, "denominator": "HUNDRED"}},
        "max_active_faults": 100,
    }


def test_max_active_faults_overflow_skips_faults_until_a_delay_ends() -> None:
    inj = FaultInjector(
        policy(
            {
                "delay": {"fixed_delay": "1s", "percentage": 100},
                "abort": {"http_status": 503, "percentage": 100},
                "max_active_faults": 1,
            }
        )
    )
    assert inj.decide(0.0, 0.0).outcome is FaultOutcome.DELAY_AND_ABORT
    assert inj.active_faults == 1
    assert inj.decide(0.0, 0.0).outcome is FaultOutcome.NONE  # delay and abort each overflow
    assert inj.stats["fault.faults_overflow"] == 2
    inj.delay_ended()
    assert inj.decide(0.0, 0.0).outcome is FaultOutcome.DELAY_AND_ABORT


def test_delay_shorter_than_a_millisecond_is_not_injected() -> None:
    p = policy({"delay": {"fixed_delay": "0.4ms", "percentage": 100}})
    assert FaultInjector(p).decide(0.0, 0.0).outcome is FaultOutcome.NONE
    assert any("1 ms" in w for w in lint(p))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"abort": {"http_status": 600, "percentage": 1}}, r"outside \[200, 600\)"),
        ({"delay": {"fixed_delay": "0s", "percentage": 1}}, "positive duration"),
        ({"abort": {"httpStatus": 503, "percentage": 101}}, r"outside \[0, 100\]"),
        (
            {
                "abort": {
                    "httpStatus": 503,
                    "percentage": {"numerator": 5, "denominator": "HUNDRED"},
                    "percent": 1,
                }
            },
            "not both",
        ),
        ({"delay": {"fixedDelay": "1s", "exponentialDelay": "1s"}}, "not supported"),
        ({"abort": {"grpcStatus": "UNAVAILABLE", "percentage": 1}}, "not simulated"),
        ({"abrt": {}}, "did you mean 'abort'"),
    ],
)
def test_invalid_faults_are_refused_with_a_clear_message(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        policy(data)
