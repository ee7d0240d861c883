"""Envoy fragments of the policy modules that the exporter relies on: durations, localities, statuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshsim.policies import (
    circuit_breaker,
    fault,
    health_check,
    load_balancer,
    outlier,
    rate_limit,
    retry,
    timeout,
)
from meshsim.policies.load_balancer import (
    LoadBalancerPolicy,
    envoy_locality,
    locality_groups,
    to_envoy_endpoints,
)
from meshsim.policies.rate_limit import ENVOY_STATUS_CODES, RateLimitPolicy
from meshsim.units import proto_duration


def test_proto_duration_has_no_float_noise() -> None:
    assert [proto_duration(x) for x in (0, 0.025, 0.25, 1.5, 15, 300, 1e-6, 1.5e-9, 0.1 + 0.2, 2**30)] == [
        "0s", "0.025s", "0.25s", "1.5s", "15s", "300s", "0.000001s", "0.000000002s", "0.3s", "1073741824s",
    ]
    for bad in (-1, float("nan"), float("inf"), True, "1s", 4e11):
        with pytest.raises(ValueError):
            proto_duration(bad)  # type: ignore[arg-type]


@given(st.integers(0, 10**15))
def test_proto_duration_round_trips_whole_nanoseconds(ns: int) -> None:
    text = proto_duration(ns / 1e9)
    whole, _, frac = text[:-1].partition(".")
    assert abs(int(whole) * 10**9 + int((frac + "000000000")[:9]) - ns) <= 1
    assert not frac.endswith("0")


def test_every_module_writes_durations_with_proto_duration() -> None:
    # one formatter: the same value looks the same in every fragment
    assert timeout.envoy_duration is proto_duration and fault.envoy_duration is proto_duration
    t = timeout.to_envoy(timeout.TimeoutPolicy(timeout=0.3, per_try_timeout=0.1))
    assert t == {"timeout": "0.3s", "retry_policy": {"per_try_timeout": "0.1s"}}
    r = retry.to_envoy(retry.RetryPolicy.model_validate({"retry_on": "5xx", "retry_back_off": {"base_interval": 0.3}}))
    assert r["retry_policy"]["retry_back_off"] == {"base_interval": "0.3s"}
    cb = circuit_breaker.to_envoy(circuit_breaker.CircuitBreakerPolicy(connect_timeout_s=0.3))
    assert cb["connect_timeout"] == "0.3s"
    od = outlier.to_envoy(outlier.OutlierPolicy.model_validate({"interval": 0.3}))
    assert od == {"interval": "0.3s"}
    hc = health_check.to_envoy(health_check.HealthCheckPolicy.model_validate(
        {"timeout": 0.3, "interval": 1, "unhealthy_threshold": 1, "healthy_threshold": 1, "path": "/"}))
    assert hc["timeout"] == "0.3s"
    rl = rate_limit.to_envoy(RateLimitPolicy.model_validate({"token_bucket": {"max_tokens": 1, "fill_interval": 0.3}}))
    assert rl["token_bucket"]["fill_interval"] == "0.3s"
    f = fault.to_envoy(fault.FaultPolicy.model_validate({"delay": {"fixed_delay": 0.3}}))
    assert f["delay"]["fixed_delay"] == "0.3s"
    lb = load_balancer.to_envoy(LoadBalancerPolicy.model_validate({"slow_start": {"slow_start_window": 0.3}}))
    assert lb["round_robin_lb_config"]["slow_start_config"]["slow_start_window"] == "0.3s"


def test_rate_limit_status_must_be_one_envoy_can_carry() -> None:
    bucket = {"max_tokens": 1, "fill_interval": "1s"}
    assert RateLimitPolicy.model_validate({"token_bucket": bucket, "status": 503}).status == 503
    assert 418 not in ENVOY_STATUS_CODES and {100, 200, 429, 431, 511} <= ENVOY_STATUS_CODES
    with pytest.raises(ValueError, match="status 418 is not one of the codes Envoy's type.v3.HttpStatus can carry"):
        RateLimitPolicy.model_validate({"token_bucket": bucket, "status": 418})


def test_envoy_locality() -> None:
    assert envoy_locality("us-east/us-east-1a/rack-1") == {"region": "us-east", "zone": "us-east-1a", "sub_zone": "rack-1"}
    assert envoy_locality("zone-a") == {"region": "zone-a"}
    assert envoy_locality(None) == {}


def test_locality_groups_follow_the_simulations_rules() -> None:
    plain = LoadBalancerPolicy()
    assert locality_groups(plain, [None, None], None) == [load_balancer.LocalityGroup(None, 0, None, (0, 1))]
    assert [(g.zone, g.hosts) for g in locality_groups(plain, ["b", "a", "b"], "a")] == [("a", (1,)), ("b", (0, 2))]
    # Istio failover: priorities by proximity to the caller, renumbered 0..N; weights = host counts
    failover = LoadBalancerPolicy.model_validate({"locality_lb": {"failover": [{"from": "a", "to": "c"}]}})
    groups = locality_groups(failover, ["a", "b", "c", "a"], "a")
    assert [(g.zone, g.priority, g.weight, g.hosts) for g in groups] == [
        ("a", 0, 2, (0, 3)), ("c", 1, 1, (2,)), ("b", 2, 1, (1,))]
    # distribute: weights from the rule matching the caller; unlisted localities dropped
    dist = LoadBalancerPolicy.model_validate({"locality_lb": {"distribute": [{"from": "a", "to": {"a": 80, "b": 20}}]}})
    assert [(g.zone, g.weight, g.hosts) for g in locality_groups(dist, ["a", "b", "c"], "a")] == [
        ("a", 80, (0,)), ("b", 20, (1,))]
    # a caller no rule matches: all hosts, weights = counts (the cluster is still locality-weighted)
    assert [(g.zone, g.weight) for g in locality_groups(dist, ["a", "b", "c"], "z")] == [("a", 1), ("b", 1), ("c", 1)]


def test_to_envoy_endpoints_places_priority_and_weight() -> None:
    eps = [{"endpoint": {"address": {"socket_address": {"address": f"h{i}", "port_value": 80}}}} for i in range(3)]
    failover = LoadBalancerPolicy.model_validate({"locality_lb": {"failover": [{"from": "a", "to": "b"}]}})
    assert to_envoy_endpoints(failover, eps, ["b", "a", "a"], "a") == [
        {"locality": {"region": "a"}, "lb_endpoints": [eps[1], eps[2]], "load_balancing_weight": 2},
        {"locality": {"region": "b"}, "lb_endpoints": [eps[0]], "load_balancing_weight": 1, "priority": 1},
    ]
    assert load_balancer.to_envoy(failover)["common_lb_config"] == {"locality_weighted_lb_config": {}}


def test_full_scan_least_request_is_the_typed_extension() -> None:
    p = LoadBalancerPolicy.model_validate({"lb_policy": "LEAST_REQUEST", "selection_method": "FULL_SCAN",
                                           "healthy_panic_threshold": 0, "zone_aware": {"min_cluster_size": 3}})
    out = load_balancer.to_envoy(p)
    assert out["common_lb_config"] == {"healthy_panic_threshold": {"value": 0.0}}
    cfg = out["load_balancing_policy"]["policies"][0]["typed_extension_config"]
    assert cfg["name"] == "envoy.load_balancing_policies.least_request"
    assert cfg["typed_config"]["selection_method"] == "FULL_SCAN"
    assert cfg["typed_config"]["locality_lb_config"] == {"zone_aware_lb_config": {"min_cluster_size": 3}}
    # N_CHOICES keeps the cluster's own fields
    assert load_balancer.to_envoy(LoadBalancerPolicy.model_validate({"lb_policy": "LEAST_REQUEST", "choice_count": 3})) == {
        "lb_policy": "LEAST_REQUEST", "least_request_lb_config": {"choice_count": 3}}
