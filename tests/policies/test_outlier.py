"""Outlier detection: Envoy's numbers, ejection rules, timing, Istio/App Mesh mapping (no engine)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic import ValidationError

from meshsim.policies.outlier import (
    EjectionAction,
    EjectionType,
    HostSetUpdateMerger,
    LbUpdate,
    OutlierDetector,
    OutlierPolicy,
    OutlierResult,
    decay_multiplier,
    ejection_duration,
    ejection_jitter,
    failure_percentage_ejects,
    from_appmesh,
    from_istio,
    max_ejection_allows,
    next_multiplier,
    success_rate_ejection_threshold,
    to_envoy,
    to_envoy_cluster,
    unsupported,
)

OD = "outlier_detection."


def stat(det: OutlierDetector, name: str) -> int:
    return det.stats[OD + name]


def detector(n: int = 5, merger_window: float = 0.0, seed: int = 0, **fields: object) -> OutlierDetector:
    policy = OutlierPolicy.model_validate(fields)
    return OutlierDetector(policy, range(n), rng=seed, merger=HostSetUpdateMerger(merger_window))


def fail(det: OutlierDetector, host: int, times: int, t0: float, code: int = 500, dt: float = 0.01):
    """``times`` failures on ``host`` from ``t0``; returns the events (None included)."""
    return [det.record(host, code, t0 + k * dt) for k in range(times)]


class ConstantDraw:
    """A stand-in random stream: ``random()`` always returns ``u``."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


# ---------------------------------------------------------------------------------------------- pure math


def test_success_rate_threshold_reproduces_envoys_worked_example_mean_90_threshold_52() -> None:
    pair = success_rate_ejection_threshold([50, 100, 100, 100, 100], 1.9)
    assert pair.mean == 90.0
    assert pair.threshold == pytest.approx(52.0, abs=1e-12)


def test_success_rate_threshold_with_equal_rates_is_the_mean() -> None:
    assert success_rate_ejection_threshold([97.0] * 6, 1.9) == (97.0, 97.0)


def test_success_rate_threshold_refuses_an_empty_set() -> None:
    with pytest.raises(ValueError, match="at least one"):
        success_rate_ejection_threshold([], 1.9)


def test_failure_percentage_ejects_at_or_above_the_threshold() -> None:
    assert failure_percentage_ejects(15.0, 85)
    assert not failure_percentage_ejects(15.01, 85)
    assert failure_percentage_ejects(0.0, 100)


@pytest.mark.parametrize(
    ("ejected", "hosts", "pct", "always", "allowed"),
    [
        (0, 5, 10, False, False),  # the trap: 1/5 = 20 % > 10 %
        (0, 9, 10, False, False),  # 11.1 % > 10 %
        (0, 10, 10, False, True),  # exactly 10 %
        (1, 10, 10, False, False),
        (0, 3, 33, False, False),  # envoy.md A.2
        (0, 3, 34, False, True),
        (0, 1, 100, False, True),
        (1, 2, 100, False, True),
        (2, 2, 100, False, False),
        (0, 5, 0, False, False),
        (0, 5, 0, True, True),  # always_eject_one_host: the first one always
        (1, 5, 10, True, False),  # ... but only the first
        (1, 5, 40, True, True),
        (0, 0, 100, False, False),
    ],
)
def test_max_ejection_rule_counts_the_host_after_ejecting_it(ejected, hosts, pct, always, allowed) -> None:
    assert max_ejection_allows(ejected, hosts, pct, always) is allowed


def test_max_ejection_percent_above_100_is_treated_as_100() -> None:
    # Envoy takes min(100, runtime value); the config itself refuses > 100
    assert max_ejection_allows(1, 2, 250)


def test_ejection_multiplier_grows_until_one_step_past_max_over_base() -> None:
    seq = []
    m = 0
    for _ in range(13):
        m = next_multiplier(m, 30.0, 300.0)
        seq.append(m)
    assert seq == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11]
    assert [ejection_duration(30.0, k, 300.0) for k in seq[:3]] == [30.0, 60.0, 90.0]
    assert ejection_duration(30.0, 11, 300.0) == 300.0


def test_multiplier_decays_only_for_hosts_unejected_at_least_one_interval_ago() -> None:
    assert decay_multiplier(2, 10.0, 10.0) == 1
    assert decay_multiplier(2, 9.999, 10.0) == 2
    assert decay_multiplier(2, None, 10.0) == 2
    assert decay_multiplier(0, 100.0, 10.0) == 0


@given(u=st.floats(0.0, 1.0, exclude_max=True), jitter=st.sampled_from([0.0, 0.001, 0.05, 2.0]))
def test_ejection_jitter_is_whole_milliseconds_between_0_and_max(u: float, jitter: float) -> None:
    j = ejection_jitter(jitter, u)
    assert 0.0 <= j <= jitter + 1e-12
    assert abs(j * 1000 - round(j * 1000)) < 1e-9


# ---------------------------------------------------------------------------------------------- config


def test_defaults_are_envoys() -> None:
    p = OutlierPolicy()
    assert (p.consecutive_5xx, p.consecutive_gateway_failure, p.consecutive_local_origin_failure) == (5, 5, 5)
    assert (p.interval, p.base_ejection_time, p.effective_max_ejection_time) == (10.0, 30.0, 300.0)
    assert p.max_ejection_time_jitter == 0.0 and p.max_ejection_percent == 10
    assert (p.enforcing_consecutive_5xx, p.enforcing_consecutive_gateway_failure) == (100, 0)
    assert (p.enforcing_success_rate, p.enforcing_failure_percentage) == (100, 0)
    assert (p.success_rate_minimum_hosts, p.success_rate_request_volume, p.success_rate_stdev_factor) == (
        5,
        100,
        1900,
    )
    assert (p.failure_percentage_threshold, p.failure_percentage_minimum_hosts) == (85, 5)
    assert p.failure_percentage_request_volume == 50
    assert not p.split_external_local_origin_errors and p.successful_active_health_check_uneject_host
    assert p.smallest_cluster_that_can_eject() == 10


def test_default_max_ejection_time_is_max_of_300s_and_base() -> None:
    assert OutlierPolicy(base_ejection_time=600).effective_max_ejection_time == 600.0


def test_explicit_max_ejection_time_below_base_is_refused_as_envoy_does() -> None:
    with pytest.raises(ValidationError, match="max_ejection_time 10s is below base_ejection_time 30s"):
        OutlierPolicy.model_validate({"max_ejection_time": "10s"})


@pytest.mark.parametrize(
    "field", ["max_ejection_percent", "enforcing_success_rate", "failure_percentage_threshold"]
)
def test_percentages_above_100_are_refused_as_envoys_validator_does(field: str) -> None:
    with pytest.raises(ValidationError, match=rf"{field} 101 is outside 0\.\.100"):
        OutlierPolicy.model_validate({field: 101})


@pytest.mark.parametrize("field", ["interval", "base_ejection_time"])
def test_zero_durations_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="positive"):
        OutlierPolicy.model_validate({field: 0})


def test_unknown_key_gets_a_suggestion() -> None:
    with pytest.raises(ValidationError, match="did you mean 'consecutive_5xx'"):
        OutlierPolicy.model_validate({"consecutive_5xxx": 3})


def test_durations_accept_human_strings() -> None:
    p = OutlierPolicy.model_validate(
        {"interval": "500ms", "base_ejection_time": "1m", "max_ejection_time_jitter": 2}
    )
    assert (p.interval, p.base_ejection_time, p.max_ejection_time_jitter) == (0.5, 60.0, 2.0)


# ---------------------------------------------------------------------------------------------- Istio / App Mesh


def test_istio_always_disables_success_rate_and_panic() -> None:
    p = from_istio({})
    assert p.enforcing_success_rate == 0
    assert p.healthy_panic_threshold == 0.0
    # unset consecutive fields keep Envoy's defaults, gateway errors at 0 % enforcement
    assert (p.consecutive_5xx, p.enforcing_consecutive_5xx) == (5, 100)
    assert (p.consecutive_gateway_failure, p.enforcing_consecutive_gateway_failure) == (5, 0)
    assert p.max_ejection_percent == 10


def test_istio_consecutive_errors_set_enforcement_100_or_0_for_zero() -> None:
    p = from_istio({"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 3})
    assert (p.consecutive_5xx, p.enforcing_consecutive_5xx) == (0, 0)
    assert (p.consecutive_gateway_failure, p.enforcing_consecutive_gateway_failure) == (3, 100)


def test_istio_max_ejection_percent_zero_leaves_envoys_10() -> None:
    assert from_istio({"maxEjectionPercent": 0}).max_ejection_percent == 10
    assert from_istio({"maxEjectionPercent": 100}).max_ejection_percent == 100


def test_istio_durations_min_health_percent_and_split() -> None:
    p = from_istio(
        {
            "interval": "1s",
            "baseEjectionTime": "3m",
            "minHealthPercent": 40,
            "splitExternalLocalOriginErrors": True,
            "consecutiveLocalOriginFailures": 2,
        }
    )
    assert (p.interval, p.base_ejection_time, p.healthy_panic_threshold) == (1.0, 180.0, 40.0)
    assert p.split_external_local_origin_errors
    assert (p.consecutive_local_origin_failure, p.enforcing_consecutive_local_origin_failure) == (2, 100)
    assert p.enforcing_local_origin_success_rate == 0


def test_istio_spelling_in_a_policy_mapping_is_translated_like_from_istio() -> None:
    raw = {"consecutive5xxErrors": 3, "interval": "1s", "maxEjectionPercent": 50}
    assert OutlierPolicy.model_validate(raw) == from_istio(raw)


def test_istio_and_envoy_spellings_cannot_be_mixed() -> None:
    with pytest.raises(ValidationError, match="'consecutive_5xx' is Envoy spelling"):
        OutlierPolicy.model_validate({"consecutive5xxErrors": 3, "consecutive_5xx": 4})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"maxEjectionPercent": 200}, r"maxEjectionPercent 200 is not a whole number in 0\.\.100"),
        ({"consecutiveErrors": 5}, "deprecated and ignored by Istio"),
        ({"baseEjectionTime": "0.5ms"}, "below Istio's minimum of 1ms"),
        ({"consecutive5xxError": 1}, "did you mean 'consecutive5xxErrors'"),
    ],
)
def test_istio_bad_values_are_refused(raw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_istio(raw)


def test_appmesh_outlier_detection_maps_onto_envoy_fields() -> None:
    p = from_appmesh(
        {
            "maxServerErrors": 3,
            "interval": {"unit": "ms", "value": 500},
            "baseEjectionDuration": {"unit": "s", "value": 10},
            "maxEjectionPercent": 50,
        }
    )
    assert (p.consecutive_5xx, p.interval, p.base_ejection_time, p.max_ejection_percent) == (3, 0.5, 10.0, 50)
    assert p.enforcing_success_rate == 100  # everything else stays Envoy's default


def test_appmesh_requires_all_four_fields() -> None:
    with pytest.raises(ValueError, match="needs baseEjectionDuration, maxEjectionPercent"):
        from_appmesh({"maxServerErrors": 3, "interval": "1s"})
    with pytest.raises(ValueError, match="maxServerErrors 0 must be a whole number >= 1"):
        from_appmesh(
            {"maxServerErrors": 0, "interval": "1s", "baseEjectionDuration": "1s", "maxEjectionPercent": 1}
        )


# ---------------------------------------------------------------------------------------------- consecutive 5xx


def test_bad_host_among_five_is_ejected_at_exactly_its_fifth_consecutive_5xx() -> None:
    det = detector(5, max_ejection_percent=50)
    events = fail(det, 2, 5, t0=1.0)
    assert events[:4] == [None] * 4
    ev = events[4]
    assert ev is not None and ev.action is EjectionAction.EJECT
    assert ev.type is EjectionType.CONSECUTIVE_5XX and ev.host == 2 and ev.time == pytest.approx(1.04)
    assert det.is_ejected(2) and det.ejected_hosts == (2,)
    assert stat(det, "ejections_detected_consecutive_5xx") == 1
    assert stat(det, "ejections_enforced_consecutive_5xx") == 1
    assert stat(det, "ejections_enforced_total") == 1
    assert stat(det, "ejections_active") == 1


def test_default_10_percent_with_five_hosts_never_ejects_and_counts_overflow() -> None:
    det = detector(5)  # all defaults: max_ejection_percent 10
    events = fail(det, 2, 10, t0=1.0)
    assert not det.is_ejected(2)
    assert [e.action for e in events if e is not None] == [EjectionAction.OVERFLOW] * 2
    assert stat(det, "ejections_detected_consecutive_5xx") == 2  # the counter resets after each detection
    assert stat(det, "ejections_overflow") == 2
    assert stat(det, "ejections_enforced_total") == 0 and stat(det, "ejections_active") == 0


def test_default_policy_ejects_in_a_ten_host_cluster() -> None:
    det = detector(10)
    assert fail(det, 0, 5, t0=0.0)[-1].action is EjectionAction.EJECT
    assert fail(det, 1, 5, t0=1.0)[-1].action is EjectionAction.OVERFLOW  # a second would be 20 %


@pytest.mark.parametrize(
    ("extra", "seen_503", "active", "enforced", "detected_5xx", "overflow"),
    [
        ({}, 10, 0, 0, 3, 5),
        ({"always_eject_one_host": True}, 3, 1, 1, 1, 0),
        ({"max_ejection_percent": 34}, 3, 1, 1, 1, 0),
        ({"max_ejection_percent": 33}, 10, 0, 0, 3, 5),
    ],
)
def test_reproduces_envoy_binary_max_ejection_percent_experiment(
    extra, seen_503, active, enforced, detected_5xx, overflow
) -> None:
    """envoy.md Appendix A.2: 3 hosts, one always 503, consecutive_5xx 3, 30 round-robin requests."""
    det = detector(3, consecutive_5xx=3, interval="1s", **extra)
    got_503 = 0
    cursor = 0
    for k in range(30):
        live = [h for h in range(3) if not det.is_ejected(h)]
        host = live[cursor % len(live)]
        cursor += 1
        code = 503 if host == 0 else 200
        got_503 += code == 503
        det.record(host, code, 0.01 * k)
    assert got_503 == seen_503
    assert stat(det, "ejections_active") == active
    assert stat(det, "ejections_enforced_total") == enforced
    assert stat(det, "ejections_detected_consecutive_5xx") == detected_5xx
    assert stat(det, "ejections_overflow") == overflow


def test_a_success_resets_the_consecutive_5xx_counter() -> None:
    det = detector(5, max_ejection_percent=100)
    fail(det, 0, 4, t0=0.0)
    det.record(0, 200, 0.5)
    assert fail(det, 0, 4, t0=1.0) == [None] * 4
    assert fail(det, 0, 1, t0=2.0)[0].action is EjectionAction.EJECT


def test_4xx_and_codes_outside_500_599_count_as_success() -> None:
    det = detector(5, max_ejection_percent=100)
    for code in (404, 429, 499, 600):
        fail(det, 0, 4, t0=0.0)
        det.record(0, code, 0.5)
    assert stat(det, "ejections_detected_consecutive_5xx") == 0


def test_consecutive_5xx_zero_disables_the_detector() -> None:
    det = detector(5, consecutive_5xx=0, max_ejection_percent=100)
    fail(det, 0, 50, t0=0.0)
    assert stat(det, "ejections_detected_consecutive_5xx") == 0


def test_an_ejected_host_is_not_detected_again_while_ejected() -> None:
    det = detector(5, max_ejection_percent=100)
    fail(det, 0, 5, t0=0.0)
    assert fail(det, 0, 20, t0=1.0) == [None] * 20  # e.g. traffic in panic mode
    assert stat(det, "ejections_detected_consecutive_5xx") == 1


def test_enforcing_percentage_is_a_draw_per_detection() -> None:
    policy = OutlierPolicy(max_ejection_percent=100, enforcing_consecutive_5xx=30)
    det = OutlierDetector(policy, range(5), rng=ConstantDraw(0.31), merger=HostSetUpdateMerger(0))
    ev = fail(det, 0, 5, t0=0.0)[-1]
    assert ev.action is EjectionAction.NOT_ENFORCED and not det.is_ejected(0)
    assert stat(det, "ejections_detected_consecutive_5xx") == 1
    assert stat(det, "ejections_enforced_consecutive_5xx") == 0
    det._rng = ConstantDraw(0.29)
    assert fail(det, 0, 5, t0=1.0)[-1].action is EjectionAction.EJECT


def test_enforcing_percentage_ejects_about_that_share_of_detections() -> None:
    det = detector(1000, seed=7, max_ejection_percent=100, enforcing_consecutive_5xx=25)
    for h in range(1000):
        fail(det, h, 5, t0=0.0)
    share = stat(det, "ejections_enforced_consecutive_5xx") / 1000
    assert share == pytest.approx(0.25, abs=0.045)  # > 3 sigma for n = 1000


# ---------------------------------------------------------------------------------------------- gateway


def test_gateway_failure_detector_counts_only_502_503_504_and_is_not_enforced_by_default() -> None:
    det = detector(5, consecutive_5xx=0, max_ejection_percent=100)
    for code in (502, 503, 504, 502):
        det.record(0, code, 0.0)
    det.record(0, 500, 0.1)  # another 5xx resets the gateway counter
    for code in (503, 503, 503, 503):
        det.record(0, code, 0.2)
    assert stat(det, "ejections_detected_consecutive_gateway_failure") == 0
    ev = det.record(0, 504, 0.3)
    assert ev.action is EjectionAction.NOT_ENFORCED and ev.type is EjectionType.CONSECUTIVE_GATEWAY_FAILURE
    assert stat(det, "ejections_detected_consecutive_gateway_failure") == 1
    assert stat(det, "ejections_enforced_consecutive_gateway_failure") == 0
    assert not det.is_ejected(0)


def test_gateway_failure_ejects_when_enforced() -> None:
    det = detector(5, consecutive_5xx=0, max_ejection_percent=100, enforcing_consecutive_gateway_failure=100)
    ev = fail(det, 1, 5, t0=0.0, code=503)[-1]
    assert ev.action is EjectionAction.EJECT and ev.type is EjectionType.CONSECUTIVE_GATEWAY_FAILURE
    assert stat(det, "ejections_enforced_consecutive_gateway_failure") == 1


def test_one_503_can_fire_both_detectors_and_the_ejection_is_returned() -> None:
    policy = OutlierPolicy(max_ejection_percent=100)
    det = OutlierDetector(policy, range(5), merger=HostSetUpdateMerger(0), keep_events=True)
    ev = fail(det, 0, 5, t0=0.0, code=503)[-1]
    assert ev.action is EjectionAction.EJECT and ev.type is EjectionType.CONSECUTIVE_5XX
    assert [(e.type, e.action) for e in det.events] == [
        (EjectionType.CONSECUTIVE_GATEWAY_FAILURE, EjectionAction.NOT_ENFORCED),
        (EjectionType.CONSECUTIVE_5XX, EjectionAction.EJECT),
    ]


# ---------------------------------------------------------------------------------------------- local origin


def test_local_origin_results_map_to_codes_without_split() -> None:
    det = detector(5, max_ejection_percent=100, consecutive_gateway_failure=0)
    results = [OutlierResult.LOCAL_ORIGIN_TIMEOUT, OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED] * 2
    for r in results:
        det.record(0, r, 0.0)
    det.record(0, OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS, 0.0)  # not reported: no reset
    assert det.record(0, OutlierResult.LOCAL_ORIGIN_TIMEOUT, 0.1).action is EjectionAction.EJECT


def test_local_origin_success_final_resets_without_split() -> None:
    det = detector(5, max_ejection_percent=100)
    fail(det, 0, 4, t0=0.0)
    det.record(0, OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL, 0.1)
    assert det.record(0, 500, 0.2) is None


def test_split_mode_counts_local_failures_apart_from_http_codes() -> None:
    det = detector(
        5,
        max_ejection_percent=100,
        split_external_local_origin_errors=True,
        consecutive_local_origin_failure=3,
    )
    det.record(0, OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED, 0.0)
    det.record(0, OutlierResult.LOCAL_ORIGIN_TIMEOUT, 0.1)
    fail(det, 0, 4, t0=0.2)  # HTTP 5xx do not touch the local counter, and 4 < 5
    ev = det.record(0, OutlierResult.LOCAL_ORIGIN_TIMEOUT, 0.3)
    assert ev.action is EjectionAction.EJECT and ev.type is EjectionType.CONSECUTIVE_LOCAL_ORIGIN_FAILURE
    assert stat(det, "ejections_detected_consecutive_5xx") == 0


def test_split_mode_connect_success_resets_the_local_counter() -> None:
    det = detector(
        5,
        max_ejection_percent=100,
        split_external_local_origin_errors=True,
        consecutive_local_origin_failure=2,
    )
    det.record(0, OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED, 0.0)
    det.record(0, OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS, 0.1)
    assert det.record(0, OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED, 0.2) is None


def test_record_refuses_a_bool() -> None:
    det = detector(5)
    with pytest.raises(TypeError, match="HTTP status code or an OutlierResult"):
        det.record(0, True, 0.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- timing


def ticks(det: OutlierDetector, until: float, start: float = 0.0) -> list:
    """Run interval ticks at start + k * interval up to ``until``; returns (time, event) pairs."""
    out = []
    k = 1
    while start + k * det.interval <= until + 1e-9:
        t = start + k * det.interval
        out.extend((t, e) for e in det.on_interval(t))
        k += 1
    return out


def test_unejection_happens_at_the_first_interval_tick_after_base_ejection_time() -> None:
    det = detector(5, max_ejection_percent=50)  # interval 10 s, base 30 s
    ev = fail(det, 0, 5, t0=1.0, dt=0.1)[-1]
    assert ev.time == pytest.approx(1.4) and ev.duration == 30.0
    assert det.ejected_until(0) == pytest.approx(31.4)
    back = [(t, e.action) for t, e in ticks(det, 60.0)]
    assert back == [(40.0, EjectionAction.UNEJECT)]  # 31.4 rounds up to the tick at 40


def test_ejection_ending_exactly_on_a_tick_ends_on_that_tick() -> None:
    det = detector(5, max_ejection_percent=50)
    fail(det, 0, 5, t0=0.0, dt=0.0)
    assert [t for t, _ in ticks(det, 60.0)] == [30.0]


def test_second_ejection_lasts_twice_base() -> None:
    det = detector(5, max_ejection_percent=50)
    fail(det, 0, 5, t0=0.0, dt=0.0)
    ticks(det, 30.0)
    assert not det.is_ejected(0)
    ev = fail(det, 0, 5, t0=31.0, dt=0.0)[-1]
    assert ev.action is EjectionAction.EJECT and ev.duration == 60.0 and ev.num_ejections == 2
    assert det.multiplier(0) == 2
    assert [t for t, e in ticks(det, 120.0, start=30.0) if e.action is EjectionAction.UNEJECT] == [100.0]


def test_max_ejection_time_caps_the_ejection() -> None:
    det = detector(
        5, max_ejection_percent=50, interval="1s", base_ejection_time="10s", max_ejection_time="25s"
    )
    durations = []
    t = 0.0
    for _ in range(5):
        ev = fail(det, 0, 5, t0=t, dt=0.0)[-1]
        durations.append(ev.duration)
        while det.is_ejected(0):
            t += 1.0
            det.on_interval(t)
    assert durations == [10.0, 20.0, 25.0, 25.0, 25.0]
    assert det.multiplier(0) == 4  # grows while m * 10 < 25 + 10: one step past max / base


def test_multiplier_decays_one_step_per_interval_after_unejection() -> None:
    det = detector(5, max_ejection_percent=50, interval="10s", base_ejection_time="10s")
    t = 0.0
    for _ in range(3):  # three ejections in a row: multiplier 3
        fail(det, 0, 5, t0=t, dt=0.0)
        while det.is_ejected(0):
            t += 10.0
            det.on_interval(t)
    assert det.multiplier(0) == 3 and t == 60.0  # ejected 10 + 20 + 30 s, back at 60
    seen = []
    for _ in range(4):
        t += 10.0
        det.on_interval(t)
        seen.append(det.multiplier(0))
    assert seen == [2, 1, 0, 0]
    ev = fail(det, 0, 5, t0=t + 1, dt=0.0)[-1]
    assert ev.duration == 10.0  # back to base after the decay


def test_ejection_jitter_is_added_to_the_ejection_time() -> None:
    policy = OutlierPolicy(max_ejection_percent=50, max_ejection_time_jitter=2.0)
    det = OutlierDetector(policy, range(5), rng=ConstantDraw(0.5), merger=HostSetUpdateMerger(0))
    ev = fail(det, 0, 5, t0=0.0, dt=0.0)[-1]
    assert ev.duration == pytest.approx(30.0 + 1.0)  # random % 2001 ms with u = 0.5: 1000 ms


def test_ejections_and_unejections_report_the_active_gauge() -> None:
    det = detector(10, max_ejection_percent=30)
    fail(det, 0, 5, t0=0.0)
    fail(det, 1, 5, t0=0.0)
    assert stat(det, "ejections_active") == 2 and det.ejected_hosts == (0, 1)
    ticks(det, 40.0)
    assert stat(det, "ejections_active") == 0 and det.ejected_hosts == ()


# ---------------------------------------------------------------------------------------------- success rate


def traffic(det: OutlierDetector, per_host: dict[int, tuple[int, int]], t: float) -> None:
    """``host -> (requests, failures)`` within one interval (failures are 500s, last)."""
    for host, (n, bad) in per_host.items():
        for k in range(n):
            det.record(host, 500 if k >= n - bad else 200, t)


SR = {"max_ejection_percent": 50, "consecutive_5xx": 0, "consecutive_gateway_failure": 0}


def test_success_rate_outlier_is_ejected_at_the_tick() -> None:
    det = detector(5, **SR)
    traffic(det, {0: (100, 50), 1: (100, 0), 2: (100, 0), 3: (100, 0), 4: (100, 0)}, 1.0)
    assert not det.is_ejected(0)  # only at the sweep
    events = det.on_interval(10.0)
    assert [(e.host, e.action, e.type) for e in events] == [
        (0, EjectionAction.EJECT, EjectionType.SUCCESS_RATE)
    ]
    assert stat(det, "ejections_detected_success_rate") == 1
    assert stat(det, "ejections_enforced_success_rate") == 1


def test_success_rate_hosts_equal_to_the_threshold_are_not_outliers() -> None:
    det = detector(5, **SR)
    traffic(det, {h: (100, 10) for h in range(5)}, 1.0)  # all at 90 %: stdev 0, threshold = mean
    assert det.on_interval(10.0) == []


def test_success_rate_detection_needs_minimum_hosts() -> None:
    det = detector(5, **SR)
    traffic(det, {0: (100, 50), 1: (100, 0), 2: (100, 0), 3: (100, 0)}, 1.0)  # host 4 idle
    assert det.on_interval(10.0) == []
    assert stat(det, "ejections_detected_success_rate") == 0


def test_success_rate_detection_needs_request_volume_per_host() -> None:
    det = detector(5, **SR)
    traffic(det, {0: (100, 50), 1: (100, 0), 2: (100, 0), 3: (100, 0), 4: (99, 0)}, 1.0)
    assert det.on_interval(10.0) == []


def test_success_rate_uses_only_the_interval_that_just_ended() -> None:
    det = detector(5, **SR)
    traffic(det, {0: (100, 50), 1: (100, 0), 2: (100, 0), 3: (100, 0), 4: (100, 0)}, 1.0)
    det.on_interval(10.0)  # ejects 0
    traffic(det, {1: (60, 0), 2: (60, 0), 3: (60, 0), 4: (60, 0)}, 11.0)
    assert det.on_interval(20.0) == []  # 60 < 100 in this interval: nothing carried over


def test_success_rate_is_computed_without_ejected_hosts() -> None:
    det = detector(6, **SR)
    fail(det, 5, 5, t0=0.0)  # consecutive detector is off: use SR twice instead
    traffic(det, {0: (100, 60), 1: (100, 0), 2: (100, 0), 3: (100, 0), 4: (100, 0), 5: (100, 0)}, 1.0)
    det.on_interval(10.0)
    assert det.ejected_hosts == (0,)


def test_failure_percentage_is_detected_but_not_enforced_by_default() -> None:
    det = detector(5, **SR, enforcing_success_rate=0)
    traffic(det, {0: (50, 45), 1: (50, 0), 2: (50, 0), 3: (50, 0), 4: (50, 0)}, 1.0)
    events = det.on_interval(10.0)
    assert [(e.action, e.type) for e in events] == [
        (EjectionAction.NOT_ENFORCED, EjectionType.FAILURE_PERCENTAGE)
    ]
    assert stat(det, "ejections_detected_failure_percentage") == 1
    assert stat(det, "ejections_enforced_failure_percentage") == 0


def test_failure_percentage_ejects_when_enforced() -> None:
    det = detector(5, **SR, enforcing_success_rate=0, enforcing_failure_percentage=100)
    traffic(det, {0: (50, 43), 1: (50, 0), 2: (50, 0), 3: (50, 0), 4: (50, 0)}, 1.0)  # 86 % >= 85 %
    assert [e.host for e in det.on_interval(10.0) if e.action is EjectionAction.EJECT] == [0]


def test_success_rate_and_failure_percentage_on_one_host_eject_it_once() -> None:
    det = detector(5, **SR, enforcing_failure_percentage=100)
    traffic(det, {0: (100, 100), 1: (100, 0), 2: (100, 0), 3: (100, 0), 4: (100, 0)}, 1.0)
    det.on_interval(10.0)
    assert stat(det, "ejections_active") == 1
    assert stat(det, "ejections_detected_success_rate") == 1
    assert stat(det, "ejections_detected_failure_percentage") == 1
    assert stat(det, "ejections_enforced_total") == 1


def test_split_mode_runs_local_origin_success_rate() -> None:
    det = detector(5, **SR, split_external_local_origin_errors=True, consecutive_local_origin_failure=0)
    for h in range(5):
        for k in range(100):
            bad = h == 0 and k < 60
            det.record(
                h,
                OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED
                if bad
                else OutlierResult.LOCAL_ORIGIN_CONNECT_SUCCESS,
                1.0,
            )
    events = det.on_interval(10.0)
    assert [(e.host, e.type) for e in events] == [(0, EjectionType.SUCCESS_RATE_LOCAL_ORIGIN)]
    assert stat(det, "ejections_enforced_local_origin_success_rate") == 1


# ---------------------------------------------------------------------------------------------- health checks


def test_successful_active_health_check_unejects_at_once() -> None:
    det = detector(5, max_ejection_percent=50)
    fail(det, 0, 5, t0=0.0)
    ev = det.on_health_check_success(0, 3.0)
    assert ev is not None and ev.action is EjectionAction.UNEJECT and not det.is_ejected(0)
    assert det.multiplier(0) == 1  # kept
    assert det.on_health_check_success(0, 4.0) is None


def test_health_check_does_not_uneject_when_disabled() -> None:
    det = detector(5, max_ejection_percent=50, successful_active_health_check_uneject_host=False)
    fail(det, 0, 5, t0=0.0)
    assert det.on_health_check_success(0, 3.0) is None and det.is_ejected(0)


# ---------------------------------------------------------------------------------------------- load balancer delay


def test_first_ejection_reaches_the_load_balancer_at_once() -> None:
    det = OutlierDetector(OutlierPolicy(max_ejection_percent=50), range(5))
    assert det.lb_update_delay == 1.0
    ev = fail(det, 0, 5, t0=100.0, dt=0.0)[-1]
    assert (ev.lb_update, ev.lb_at) == (LbUpdate.IMMEDIATE, 100.0)
    assert det.merger.deliver(100.0) == [ev]


def test_reejection_right_after_unejection_waits_for_the_merge_window() -> None:
    """envoy.md D.8: the LB learns of an ejection made within 1 s of the last update 1 s later."""
    det = OutlierDetector(OutlierPolicy(max_ejection_percent=50), range(5))
    fail(det, 0, 5, t0=0.0, dt=0.0)
    det.merger.deliver(0.0)
    (unej,) = det.on_interval(30.0)
    assert (unej.lb_update, unej.lb_at) == (LbUpdate.IMMEDIATE, 30.0)
    det.merger.deliver(30.0)
    ev = fail(det, 0, 5, t0=30.2, dt=0.0)[-1]
    assert ev.action is EjectionAction.EJECT
    assert ev.lb_update is LbUpdate.SCHEDULED and ev.lb_at == pytest.approx(31.2)
    assert det.merger.deliver(31.0) == []
    assert det.merger.deliver(31.2) == [ev]


def test_two_unejections_in_one_tick_reach_the_load_balancer_a_window_apart() -> None:
    det = OutlierDetector(OutlierPolicy(max_ejection_percent=50), range(5))
    fail(det, 0, 5, t0=0.0, dt=0.0)
    fail(det, 1, 5, t0=0.0, dt=0.0)
    det.merger.deliver(0.0)
    a, b = det.on_interval(30.0)
    assert (a.lb_update, a.lb_at) == (LbUpdate.IMMEDIATE, 30.0)
    assert (b.lb_update, b.lb_at) == (LbUpdate.SCHEDULED, 31.0)


def test_an_update_after_the_window_delivers_held_updates_with_it() -> None:
    m = HostSetUpdateMerger(1.0)
    m.submit(0.0, "a")
    m.deliver(0.0)
    assert m.submit(0.5, "b") == (LbUpdate.SCHEDULED, 1.5)
    # 1.002 s after the last delivery (> 1000 whole ms): at once, and it takes "b" along
    assert m.submit(1.002, "c") == (LbUpdate.IMMEDIATE, 1.002)
    assert m.deliver(1.002) == ["b", "c"]
    assert m.deliver(1.5) == []  # the cancelled timer delivers nothing
    assert m.stats["cluster_manager.update_merge_cancelled"] == 1


def test_exactly_one_window_after_the_last_delivery_is_still_merged() -> None:
    m = HostSetUpdateMerger(1.0)
    m.submit(0.0)
    assert m.submit(1.0)[0] is LbUpdate.SCHEDULED  # Envoy: delta_ms > window, not >=


def test_zero_merge_window_delivers_everything_at_once() -> None:
    m = HostSetUpdateMerger(0.0)
    assert [m.submit(0.0, k)[0] for k in range(3)] == [LbUpdate.IMMEDIATE] * 3
    assert m.deliver(0.0) == [0, 1, 2]


def test_merger_refuses_a_negative_window() -> None:
    with pytest.raises(ValueError, match="update_merge_window"):
        HostSetUpdateMerger(-1.0)


# ---------------------------------------------------------------------------------------------- Envoy form


def test_to_envoy_writes_given_and_non_default_fields() -> None:
    p = OutlierPolicy.model_validate(
        {"consecutive_5xx": 5, "interval": "250ms", "max_ejection_time": "5m", "max_ejection_percent": 50}
    )
    assert to_envoy(p) == {
        "consecutive_5xx": 5,
        "interval": "0.25s",
        "max_ejection_time": "300s",
        "max_ejection_percent": 50,
    }
    assert to_envoy(OutlierPolicy()) == {}
    assert unsupported(p) == []


def test_to_envoy_cluster_carries_istios_panic_threshold() -> None:
    out = to_envoy_cluster(from_istio({"consecutive5xxErrors": 3, "minHealthPercent": 20}))
    assert out["common_lb_config"] == {"healthy_panic_threshold": {"value": 20.0}}
    assert out["outlier_detection"] == {
        "consecutive_5xx": 3,
        "enforcing_consecutive_5xx": 100,
        "enforcing_success_rate": 0,
    }
    assert "common_lb_config" not in to_envoy_cluster(OutlierPolicy())


# ---------------------------------------------------------------------------------------------- invariants


class OutlierMachine(RuleBasedStateMachine):
    """The real detector against a toy model of its consecutive-5xx counters.

    Invariants: the ejected share never exceeds max_ejection_percent, except the
    one host ``always_eject_one_host`` allows; every ejected host is back by the
    first tick after its ejection time; enforced <= detected for every type; the
    gauge matches the ejected set; the load balancer's view catches up with the
    detector whenever no update is held back.
    """

    @initialize(
        n=st.integers(1, 12),
        mep=st.integers(0, 100),
        always=st.booleans(),
        threshold=st.integers(1, 4),
        jitter=st.sampled_from([0.0, 0.4]),
        enforcing=st.sampled_from([100, 60]),
        window=st.sampled_from([0.0, 1.0]),
        seed=st.integers(0, 2**16),
    )
    def setup(self, n, mep, always, threshold, jitter, enforcing, window, seed) -> None:
        self.policy = OutlierPolicy(
            consecutive_5xx=threshold,
            consecutive_gateway_failure=0,
            enforcing_consecutive_5xx=enforcing,
            interval=1.0,
            base_ejection_time=2.0,
            max_ejection_time=5.0,
            max_ejection_time_jitter=jitter,
            max_ejection_percent=mep,
            always_eject_one_host=always,
            success_rate_minimum_hosts=2,
            success_rate_request_volume=3,
            failure_percentage_minimum_hosts=2,
            failure_percentage_request_volume=3,
            enforcing_failure_percentage=50,
        )
        self.n = n
        self.det = OutlierDetector(self.policy, range(n), rng=seed, merger=HostSetUpdateMerger(window))
        self.now = 0.0
        self.last_tick = 0.0
        self.streak = [0] * n
        self.expected_5xx_detections = 0
        self.lb_ejected: set[int] = set()

    def _deliver(self) -> None:
        for ev in self.det.merger.deliver(self.now):
            if ev.action is EjectionAction.EJECT:
                self.lb_ejected.add(ev.host)
            else:
                self.lb_ejected.discard(ev.host)

    def _unejected(self, events) -> None:
        for ev in events:
            if ev is not None and ev.action is EjectionAction.UNEJECT:
                self.streak[ev.host] = 0

    @rule(data=st.data(), code=st.sampled_from([200, 404, 500, 503]), dt=st.floats(0.0, 0.3))
    def respond(self, data, code: int, dt: float) -> None:
        host = data.draw(st.integers(0, self.n - 1))
        self.now = min(self.now + dt, self.last_tick + 0.999)
        was_ejected = self.det.is_ejected(host)
        self.det.record(host, code, self.now)
        if 500 <= code < 600:
            self.streak[host] += 1
            if self.streak[host] == self.policy.consecutive_5xx and not was_ejected:
                self.expected_5xx_detections += 1
                self.streak[host] = 0
        else:
            self.streak[host] = 0
        self._deliver()

    @rule()
    def tick(self) -> None:
        self.now = self.last_tick = self.last_tick + 1.0
        self._unejected(self.det.on_interval(self.now))
        self._deliver()

    @precondition(lambda self: bool(self.det.ejected_hosts))
    @rule(data=st.data())
    def health_check_passes(self, data) -> None:
        host = data.draw(st.sampled_from(self.det.ejected_hosts))
        self._unejected([self.det.on_health_check_success(host, self.now)])
        self._deliver()

    @invariant()
    def ejected_share_respects_max_ejection_percent(self) -> None:
        ejected = len(self.det.ejected_hosts)
        by_percent = max(k for k in range(self.n + 1) if 100 * k <= self.policy.max_ejection_percent * self.n)
        allowed = max(by_percent, 1) if self.policy.always_eject_one_host else by_percent
        assert ejected <= allowed

    @invariant()
    def gauge_matches_the_ejected_set(self) -> None:
        assert self.det.stats[OD + "ejections_active"] == len(self.det.ejected_hosts)

    @invariant()
    def ejected_hosts_come_back_at_the_first_tick_after_their_time(self) -> None:
        for h in self.det.ejected_hosts:
            until = self.det.ejected_until(h)
            assert until is not None and until > self.last_tick
            assert until - self.now <= 5.0 + 0.4 + 1e-9  # never longer than max + jitter

    @invariant()
    def enforced_never_exceeds_detected(self) -> None:
        s = self.det.stats
        total = 0
        for t in EjectionType:
            enforced = s[OD + "ejections_enforced_" + t.value]
            assert enforced <= s[OD + "ejections_detected_" + t.value]
            total += enforced
        assert s[OD + "ejections_enforced_total"] == total

    @invariant()
    def consecutive_5xx_detections_match_the_model(self) -> None:
        assert self.det.stats[OD + "ejections_detected_consecutive_5xx"] == self.expected_5xx_detections

    @invariant()
    def multiplier_stays_within_envoys_bound(self) -> None:
        cap = math.ceil((5.0 + 2.0) / 2.0)
        assert all(0 <= self.det.multiplier(h) <= cap for h in range(self.n))

    @invariant()
    def load_balancer_view_catches_up_when_nothing_is_held(self) -> None:
        if self.det.merger.pending_at is None:
            assert self.lb_ejected == set(self.det.ejected_hosts)


TestOutlierMachine = OutlierMachine.TestCase
TestOutlierMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)


def test_all_ejected_hosts_come_back_once_traffic_stops() -> None:
    det = detector(
        10, max_ejection_percent=100, interval="1s", base_ejection_time="1s", max_ejection_time="4s"
    )
    t = 0.0
    for _ in range(6):
        for h in range(10):
            fail(det, h, 5, t0=t, dt=0.0)
        for _ in range(2):
            t += 1.0
            det.on_interval(t)
    ticks(det, t + 10.0, start=t)
    assert det.ejected_hosts == ()
    assert stat(det, "ejections_active") == 0


# ----------------------------------------------------------------------------------------------- lint


def test_lint_flags_detectors_that_never_eject() -> None:
    from meshsim.policies.outlier import from_istio, lint

    assert lint(OutlierPolicy()) == []
    (gw,) = lint(OutlierPolicy.model_validate({"consecutive_gateway_failure": 3}))
    assert (gw.code, gw.field, gw.value) == ("MS303", "enforcing_consecutive_gateway_failure", "unset (0)")
    assert lint(OutlierPolicy.model_validate(
        {"consecutive_gateway_failure": 3, "enforcing_consecutive_gateway_failure": 100})) == []
    assert lint(from_istio({"consecutiveGatewayErrors": 3})) == []  # Istio enforces it at 100
    (local,) = lint(OutlierPolicy.model_validate({"consecutive_local_origin_failure": 3}))
    assert local.code == "MS304" and "consecutive_local_origin_failure is unused" in local
    assert lint(OutlierPolicy.model_validate(
        {"consecutive_local_origin_failure": 3, "split_external_local_origin_errors": True})) == []
    (fp,) = lint(OutlierPolicy.model_validate({"failure_percentage_threshold": 50}))
    assert fp.code == "MS305"
