"""The ``mesh:`` block: every policy in both spellings, resolution, defaults, errors, overrides."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshsim import ConfigError
from meshsim.config import (
    ClusterPolicies,
    MeshPolicy,
    RoutePolicies,
    Scenario,
    apply_overrides,
    parse_scenario,
)
from meshsim.policies import (
    CircuitBreakerPolicy,
    FaultPolicy,
    HealthCheckPolicy,
    LoadBalancerPolicy,
    Mirror,
    OutlierPolicy,
    RateLimitPolicy,
    RetryPolicy,
    TimeoutPolicy,
)

BASE: dict[str, Any] = {
    "name": "mesh",
    "duration": "10s",
    "services": {
        "front": {"latency": "1ms", "script": [{"call": "reviews"}, {"call": "ratings"}]},
        "reviews": {"latency": "1ms", "versions": {"v1": {}, "v2": {}, "v3": {}}},
        "ratings": {"latency": "1ms"},
    },
    "traffic": [{"to": "front", "rate": "10/s"}],
}


def scenario(mesh: dict[str, Any] | None = None, service: str = "reviews") -> Scenario:
    data = copy.deepcopy(BASE)
    if mesh is not None:
        data["mesh"] = {service: mesh}
    return parse_scenario(data, source="mesh.yaml")


def mesh(block: dict[str, Any] | list[Any], service: str = "reviews") -> MeshPolicy:
    return scenario(block, service).mesh_for(service)  # type: ignore[arg-type]


def refused(block: dict[str, Any], service: str = "reviews") -> str:
    with pytest.raises(ConfigError) as info:
        scenario(block, service)
    text = str(info.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------------------------ defaults


def test_no_mesh_entry_gives_envoy_defaults() -> None:
    s = scenario()
    m = s.mesh_for("reviews")
    assert s.mesh == {} and not m.has_policies and m.rate_limit is None
    rp = m.route_policies(None)
    assert rp == RoutePolicies(timeout=TimeoutPolicy(), retries=None, fault=None, mirror=None)
    assert rp.timeout.timeout == 15.0 and rp.timeout.per_try_timeout == 0.0
    cp = m.cluster_policies("v1")
    assert isinstance(cp, ClusterPolicies)
    cb = cp.circuit_breakers
    assert (cb.max_connections, cb.max_pending_requests, cb.max_requests, cb.max_retries) == (
        1024,
        1024,
        1024,
        3,
    )
    assert cb.connect_timeout_s == 5.0
    assert cp.load_balancer.lb_policy == "ROUND_ROBIN" and cp.load_balancer.healthy_panic_threshold == 50.0
    assert (cp.outlier_detection, cp.health_check, cp.retry_budget) == (None, None, None)
    assert m.cluster_policies(None) == cp


def test_mesh_for_refuses_an_unknown_service() -> None:
    with pytest.raises(KeyError, match="'nope' is not a service"):
        scenario().mesh_for("nope")


def test_a_retries_block_defaults_to_one_retry_and_no_conditions() -> None:
    r = mesh({"retries": {"retry_on": "5xx"}}).route_policies(None).retries
    assert r is not None and r.num_retries == 1 and r.active
    # without retry_on Envoy retries nothing: the policy exists but is not active
    r = mesh({"retries": {"num_retries": 3}}).route_policies(None).retries
    assert r is not None and r.num_retries == 3 and not r.active


def test_other_blocks_default_as_envoy() -> None:
    m = mesh({"mirror": "v3", "fault": {"abort": {"http_status": 503}}})
    rp = m.route_policies(None)
    assert rp.mirror is not None and rp.mirror.fraction == 1.0  # mirror: 100 % unless told
    assert rp.fault is not None and rp.fault.abort is not None and rp.fault.abort.percentage.percent == 0.0


def test_plain_routing_has_no_policies() -> None:
    m = mesh({"routes": [{"route": {"v1": 90, "v3": 10}}], "versions": {"v1": {}}})
    assert not m.has_policies and m.versions == {}
    assert m.route_policies(0) == m.route_policies(None)


@pytest.mark.parametrize(
    "block",
    [
        {"timeout": "1s"},
        {"retries": {"retry_on": "5xx"}},
        {"fault": {"delay": {"fixed_delay": "1s", "percentage": 10}}},
        {"mirror": "v2"},
        {"circuit_breakers": {"max_requests": 10}},
        {"outlier_detection": {}},
        {"load_balancer": "RANDOM"},
        {
            "health_check": {
                "timeout": "1s",
                "interval": "5s",
                "unhealthy_threshold": 3,
                "healthy_threshold": 1,
                "path": "/h",
            }
        },
        {"rate_limit": {"token_bucket": {"max_tokens": 5, "fill_interval": "1s"}}},
        {"versions": {"v2": {"load_balancer": "RANDOM"}}},
        {"routes": [{"route": "v1", "timeout": "1s"}]},
    ],
    ids=lambda b: next(iter(b)),
)
def test_anything_beyond_routing_counts_as_policies(block: dict[str, Any]) -> None:
    assert mesh(block).has_policies


# ------------------------------------------------------------------------------------ spellings

SPELLINGS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("timeout shorthand", {"timeout": "2s"}, {"timeout": {"timeout": 2}}),
    (
        "timeout per-try, Istio key",
        {"timeout": {"timeout": "2s", "perTryTimeout": "200ms"}},
        {"timeout": {"timeout": "2s", "per_try_timeout": 0.2}},
    ),
    (
        "retries",
        {"retries": {"attempts": 3, "retryOn": "5xx,503", "perTryTimeout": "1s", "backoff": "50ms"}},
        {
            "retries": {
                "retry_on": "5xx,retriable-status-codes",
                "retriable_status_codes": [503],
                "num_retries": 3,
                "per_try_timeout": "1s",
                "retry_back_off": {"base_interval": "50ms"},
                "retry_host_predicate": ["previous_hosts"],
                "host_selection_retry_max_attempts": 5,
            }
        },
    ),
    (
        "retries, Istio default retryOn",
        {"retries": {"attempts": 2}},
        {
            "retries": {
                "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                "num_retries": 2,
                "retry_host_predicate": ["envoy.retry_host_predicates.previous_hosts"],
                "host_selection_retry_max_attempts": 5,
            }
        },
    ),
    (
        "fault",
        {
            "fault": {
                "delay": {"fixedDelay": "2s", "percentage": {"value": 10}},
                "abort": {"httpStatus": 503, "percent": 1},
            }
        },
        {
            "fault": {
                "delay": {"fixed_delay": 2.0, "percentage": {"numerator": 100000, "denominator": "MILLION"}},
                "abort": {"http_status": 503, "percentage": {"numerator": 1, "denominator": "HUNDRED"}},
            }
        },
    ),
    (
        "mirror",
        {
            "mirror": {"host": "reviews", "subset": "v3", "port": {"number": 9080}},
            "mirrorPercentage": {"value": 10},
        },
        {
            "mirror": {
                "version": "v3",
                "host": "reviews",
                "percentage": {"numerator": 100000, "denominator": "MILLION"},
            }
        },
    ),
    (
        "mirror, deprecated mirror_percent",
        {"mirror": {"host": "reviews", "subset": "v3"}, "mirror_percent": 5},
        {"mirror": {"version": "v3", "host": "reviews", "percentage": "5%"}},
    ),
    (
        "circuit breakers",
        {
            "connectionPool": {
                "tcp": {"maxConnections": 10, "connectTimeout": "1s"},
                "http": {"http1MaxPendingRequests": 5, "http2MaxRequests": 20},
            }
        },
        {
            "circuit_breakers": {
                "max_connections": 10,
                "max_pending_requests": 5,
                "max_requests": 20,
                "max_retries": 4294967295,
                "connect_timeout": "1s",
            }
        },
    ),
    (
        "circuit breakers, proto JSON names",
        {"circuit_breakers": {"maxConnections": 10, "maxPendingRequests": 5, "connectTimeout": "1s"}},
        {"circuit_breakers": {"max_connections": 10, "max_pending_requests": 5, "connect_timeout_s": 1}},
    ),
    (
        "outlier detection",
        {
            "outlierDetection": {
                "consecutive5xxErrors": 3,
                "interval": "5s",
                "baseEjectionTime": "1m",
                "maxEjectionPercent": 50,
            }
        },
        {
            "outlier_detection": {
                "consecutive_5xx": 3,
                "enforcing_consecutive_5xx": 100,
                "interval": 5,
                "base_ejection_time": 60,
                "max_ejection_percent": 50,
                "enforcing_success_rate": 0,
                "healthy_panic_threshold": 0,
            }
        },
    ),
    ("load balancer", {"loadBalancer": {"simple": "LEAST_CONN"}}, {"load_balancer": "LEAST_REQUEST"}),
    (
        "load balancer, consistent hash",
        {
            "loadBalancer": {
                "consistentHash": {"httpHeaderName": "x-user", "ringHash": {"minimumRingSize": 2048}}
            }
        },
        {
            "load_balancer": {
                "lb_policy": "RING_HASH",
                "minimum_ring_size": 2048,
                "hash_key": {"header_name": "x-user"},
            }
        },
    ),
    (
        "load balancer, Envoy nesting",
        {
            "load_balancer": {
                "type": "LEAST_REQUEST",
                "least_request_lb_config": {"choice_count": 3},
                "common_lb_config": {"healthy_panic_threshold": {"value": 20}},
            }
        },
        {"load_balancer": {"lb_policy": "LEAST_REQUEST", "choice_count": 3, "healthy_panic_threshold": 20}},
    ),
    (
        "health check, Envoy nesting",
        {
            "health_check": {
                "timeout": "1s",
                "interval": "5s",
                "unhealthy_threshold": 3,
                "healthy_threshold": 2,
                "http_health_check": {"path": "/h", "expected_statuses": [{"start": 200, "end": 300}]},
            }
        },
        {
            "health_check": {
                "timeout": 1,
                "interval": 5,
                "unhealthy_threshold": 3,
                "healthy_threshold": 2,
                "path": "/h",
                "expected_statuses": list(range(200, 300)),
            }
        },
    ),
    (
        "rate limit",
        {
            "rate_limit": {
                "token_bucket": {"max_tokens": 10, "fill_interval": "1s"},
                "filter_enabled": {"default_value": {"numerator": 100}},
                "status": {"code": 503},
            }
        },
        {
            "rate_limit": {
                "token_bucket": {"max_tokens": 10, "tokens_per_fill": 1, "fill_interval": 1.0},
                "filter_enabled": "100%",
                "status": 503,
            }
        },
    ),
    (
        "trafficPolicy wrapper",
        {
            "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 1}},
                "loadBalancer": {"simple": "RANDOM"},
            }
        },
        {"connectionPool": {"tcp": {"maxConnections": 1}}, "load_balancer": "RANDOM"},
    ),
]


@pytest.mark.parametrize("other, envoy", [(o, e) for _, o, e in SPELLINGS], ids=[n for n, _, _ in SPELLINGS])
def test_each_block_parses_in_both_spellings(other: dict[str, Any], envoy: dict[str, Any]) -> None:
    a, b = mesh(other), mesh(envoy)
    assert a == b
    assert a.route_policies(None) == b.route_policies(None)
    assert a.cluster_policies("v1") == b.cluster_policies("v1")
    assert a.rate_limit == b.rate_limit


@pytest.mark.parametrize(
    "key, block, cls",
    [
        ("timeout", "1s", TimeoutPolicy),
        ("retries", {"retry_on": "5xx"}, RetryPolicy),
        ("fault", {"abort": {"http_status": 500, "percentage": 1}}, FaultPolicy),
        ("mirror", "v2", Mirror),
    ],
)
def test_route_blocks_are_the_policy_modules_models(key: str, block: Any, cls: type) -> None:
    service_level = getattr(mesh({key: block}).route_policies(None), key)
    route_level = getattr(mesh({"routes": [{"route": "v1", key: block}]}).route_policies(0), key)
    assert isinstance(service_level, cls) and service_level == route_level


@pytest.mark.parametrize(
    "key, block, cls",
    [
        ("circuit_breakers", {"max_requests": 7}, CircuitBreakerPolicy),
        ("outlier_detection", {"consecutive_5xx": 2}, OutlierPolicy),
        ("load_balancer", "RANDOM", LoadBalancerPolicy),
        (
            "health_check",
            {
                "timeout": "1s",
                "interval": "5s",
                "unhealthy_threshold": 3,
                "healthy_threshold": 1,
                "path": "/h",
            },
            HealthCheckPolicy,
        ),
    ],
)
def test_cluster_blocks_are_the_policy_modules_models(key: str, block: Any, cls: type) -> None:
    service_level = getattr(mesh({key: block}).cluster_policies("v2"), key)
    version_level = getattr(mesh({"versions": {"v2": {key: block}}}).cluster_policies("v2"), key)
    assert isinstance(service_level, cls) and service_level == version_level


def test_a_block_under_an_istio_key_is_translated_as_istio_does() -> None:
    """``connectionPool``/``outlierDetection``/``loadBalancer`` are Istio's whatever they hold."""
    istio = mesh({"connectionPool": {}, "outlierDetection": {"interval": "5s"}, "loadBalancer": {}})
    envoy = mesh({"circuit_breakers": {}, "outlier_detection": {"interval": "5s"}, "load_balancer": {}})
    i, e = istio.cluster_policies(None), envoy.cluster_policies(None)
    assert (i.circuit_breakers.max_requests, i.circuit_breakers.connect_timeout_s) == (4294967295, 10.0)
    assert (e.circuit_breakers.max_requests, e.circuit_breakers.connect_timeout_s) == (1024, 5.0)
    assert i.outlier_detection is not None and e.outlier_detection is not None
    assert (i.outlier_detection.enforcing_success_rate, e.outlier_detection.enforcing_success_rate) == (
        0,
        100,
    )
    assert (i.load_balancer.healthy_panic_threshold, e.load_balancer.healthy_panic_threshold) == (0.0, 50.0)
    # istiod: a loadBalancer without simple/consistentHash is LEAST_REQUEST; Envoy's default is ROUND_ROBIN
    assert (i.load_balancer.lb_policy, e.load_balancer.lb_policy) == ("LEAST_REQUEST", "ROUND_ROBIN")
    unspecified = mesh({"load_balancer": {"simple": "UNSPECIFIED"}}).cluster_policies(None)
    assert unspecified.load_balancer.lb_policy == "LEAST_REQUEST"
    assert (
        mesh({"subsets": [{"name": "v1", "trafficPolicy": {"loadBalancer": {"warmupDurationSecs": "10s"}}}]})
        .cluster_policies("v1")
        .load_balancer.lb_policy
        == "LEAST_REQUEST"
    )


def test_locality_failover_needs_outlier_detection() -> None:
    locality = {
        "localityLbSetting": {
            "failover": [{"from": "a", "to": "b"}],
            "distribute": [{"from": "a/*", "to": {"a/*": 80, "b/*": 20}}],
        }
    }
    with_od = mesh({"loadBalancer": {"simple": "ROUND_ROBIN", **locality}, "outlierDetection": {}})
    lb = with_od.cluster_policies(None).load_balancer
    assert lb.locality_lb is not None and len(lb.locality_lb.failover) == 1
    without = mesh(
        {
            "loadBalancer": {"simple": "ROUND_ROBIN", **locality},
            "versions": {
                "v2": {"loadBalancer": {"localityLbSetting": {"failover": [{"from": "a", "to": "b"}]}}},
                "v3": {"loadBalancer": {"localityLbSetting": {"enabled": False}}},
            },
        }
    )
    lb = without.cluster_policies(None).load_balancer
    assert lb.locality_lb is not None and lb.locality_lb.failover == () and lb.locality_lb.distribute
    assert without.cluster_policies("v2").load_balancer.locality_lb is None
    assert without.cluster_policies("v3").load_balancer.locality_lb is None


def test_rate_limit_is_on_the_destination() -> None:
    m = mesh(
        {
            "rate_limit": {
                "token_bucket": {"max_tokens": 2, "fill_interval": "1s"},
                "filter_enabled": 100,
                "filter_enforced": 100,
            }
        },
        service="ratings",
    )
    assert isinstance(m.rate_limit, RateLimitPolicy) and m.rate_limit.token_bucket.rate == 1.0


def test_istio_destination_rule_form_equals_the_meshsim_form() -> None:
    istio = scenario(
        {
            "http": [
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10},
                    ]
                }
            ],
            "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 100}, "http": {"http1MaxPendingRequests": 10}},
                "outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 100},
                "loadBalancer": {"simple": "LEAST_REQUEST"},
            },
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2"},
                {
                    "name": "v3",
                    "labels": {"version": "v3"},
                    "trafficPolicy": {
                        "connectionPool": {"http": {"http2MaxRequests": 10}},
                        "loadBalancer": {"simple": "RANDOM"},
                    },
                },
            ],
        }
    )
    meshsim = scenario(
        {
            "http": [
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10},
                    ]
                }
            ],
            "circuit_breakers": {
                "max_connections": 100,
                "max_pending_requests": 10,
                "max_requests": 4294967295,
                "max_retries": 4294967295,
                "connect_timeout": "10s",
            },
            "outlier_detection": {
                "consecutive_5xx": 5,
                "enforcing_consecutive_5xx": 100,
                "max_ejection_percent": 100,
                "enforcing_success_rate": 0,
                "healthy_panic_threshold": 0,
            },
            "load_balancer": {"lb_policy": "LEAST_REQUEST"},
            "versions": {
                "v3": {
                    "circuit_breakers": {"tcp": {}, "http": {"http2MaxRequests": 10}},
                    "load_balancer": "RANDOM",
                },
            },
        }
    )
    assert istio == meshsim
    a, b = istio.mesh_for("reviews"), meshsim.mesh_for("reviews")
    assert a == b
    for v in (None, "v1", "v2", "v3"):
        assert a.cluster_policies(v) == b.cluster_policies(v)
    assert a.cluster_policies("v3").circuit_breakers.max_requests == 10
    assert a.cluster_policies("v3").circuit_breakers.max_connections == 4294967295  # the whole block replaced
    assert a.cluster_policies("v3").load_balancer.lb_policy == "RANDOM"
    assert a.cluster_policies("v1").load_balancer.lb_policy == "LEAST_REQUEST"


def test_repr_shows_the_resolved_form_only() -> None:
    text = repr(mesh({"trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}, "subsets": [{"name": "v1"}]}))
    assert "traffic_policy" not in text and "subsets" not in text and "RANDOM" in text


# ------------------------------------------------------------------------------- route policies


def test_route_level_block_replaces_the_service_level_one_whole() -> None:
    m = mesh(
        {
            "timeout": {"timeout": "2s", "per_try_timeout": "500ms"},
            "retries": {"retry_on": "5xx", "num_retries": 3, "retry_back_off": {"base_interval": "100ms"}},
            "fault": {"delay": {"fixed_delay": "1s", "percentage": 50}},
            "mirror": {"version": "v2", "percentage": 10},
            "routes": [
                {
                    "match": {"headers": {"end-user": "jason"}},
                    "route": "v2",
                    "timeout": "1s",
                    "retries": {"retry_on": "reset"},
                },
                {
                    "match": {"uri": {"prefix": "/api"}},
                    "route": "v1",
                    "fault": None,
                    "mirror": None,
                    "retries": None,
                },
                {"route": {"v1": 90, "v3": 10}},
            ],
        }
    )
    jason, api, rest = (m.route_policies(i) for i in range(3))
    # whole block replaced: the route's timeout has no per-try timeout, its retries no back-off
    assert (jason.timeout.timeout, jason.timeout.per_try_timeout) == (1.0, 0.0)
    assert jason.retries is not None and jason.retries.retry_on == "reset" and jason.retries.num_retries == 1
    assert jason.retries.base_interval_ms == 25
    assert jason.fault == rest.fault and jason.mirror == rest.mirror  # inherited
    # null: none on this route
    assert (api.retries, api.fault, api.mirror) == (None, None, None)
    assert api.timeout == rest.timeout
    assert rest.timeout == TimeoutPolicy(timeout=2, per_try_timeout=0.5)
    assert rest.retries is not None and rest.retries.num_retries == 3 and rest.retries.base_interval_ms == 100
    assert rest == m.route_policies(None)


def test_istio_zero_attempts_means_no_retry_policy() -> None:
    m = mesh(
        {"http": [{"route": "v1", "retries": {"attempts": 0}}, {"route": "v2"}], "retries": {"attempts": 3}}
    )
    assert m.route_policies(0).retries is None
    r = m.route_policies(1).retries
    assert r is not None and r.num_retries == 3
    assert mesh({"retries": {"attempts": 0}}).route_policies(None).retries is None


def test_the_route_has_one_per_try_timeout_wherever_it_is_written() -> None:
    m = mesh(
        {
            "timeout": "3s",
            "routes": [
                {"route": "v1", "retries": {"attempts": 2, "perTryTimeout": "250ms"}},
                {"route": "v2", "retries": {"retry_on": "5xx", "per_try_idle_timeout": "1s"}},
                {
                    "route": "v3",
                    "timeout": {"timeout": "1s", "per_try_timeout": "100ms"},
                    "retries": {"retry_on": "5xx", "per_try_timeout": "100ms"},
                },
            ],
        }
    )
    t = [m.route_policies(i).timeout for i in range(3)]
    assert (t[0].timeout, t[0].per_try_timeout) == (3.0, 0.25)
    assert (t[1].timeout, t[1].per_try_timeout, t[1].per_try_idle_timeout) == (3.0, 0.0, 1.0)
    assert (t[2].timeout, t[2].per_try_timeout) == (1.0, 0.1)
    # a per-try timeout only in retries still gets Envoy's 15 s route timeout
    assert mesh({"retries": {"retry_on": "5xx", "per_try_timeout": "1s"}}).route_policies(None).timeout == (
        TimeoutPolicy(timeout=15, per_try_timeout=1)
    )


def test_mirror_and_its_istio_percentage() -> None:
    m = mesh(
        {
            "http": [
                {
                    "route": "v1",
                    "mirror": {"host": "reviews", "subset": "v3"},
                    "mirrorPercentage": {"value": 12.5},
                }
            ]
        }
    )
    mirror = m.route_policies(0).mirror
    assert mirror is not None and mirror.version == "v3" and mirror.fraction == pytest.approx(0.125)
    assert mirror.enabled(0.1249) and not mirror.enabled(0.125)
    # a service without versions mirrors to 'default'
    assert mesh({"mirror": {"host": "ratings"}}, service="ratings").route_policies(None).mirror == (
        Mirror(version="default", host="ratings")
    )


def test_resolution_returns_the_same_objects() -> None:
    m = mesh({"routes": [{"route": "v1"}], "load_balancer": "RANDOM"})
    assert m.route_policies(0) is m.route_policies(0)
    assert m.cluster_policies("v1") is m.cluster_policies("v1")
    with pytest.raises(IndexError):
        m.route_policies(1)


# ----------------------------------------------------------------------------- cluster policies


def test_version_blocks_replace_the_service_level_ones() -> None:
    m = mesh(
        {
            "circuit_breakers": {"max_requests": 100, "max_pending_requests": 10},
            "outlier_detection": {"consecutive_5xx": 3},
            "load_balancer": "LEAST_REQUEST",
            "versions": {
                "v2": {"circuit_breakers": {"max_requests": 5}, "outlier_detection": None},
                "v3": {
                    "load_balancer": None,
                    "health_check": {
                        "timeout": "1s",
                        "interval": "2s",
                        "unhealthy_threshold": 2,
                        "healthy_threshold": 1,
                        "path": "/h",
                    },
                },
            },
        }
    )
    v1, v2, v3 = (m.cluster_policies(v) for v in ("v1", "v2", "v3"))
    assert v1 == m.cluster_policies(None)
    assert (v1.circuit_breakers.max_requests, v1.circuit_breakers.max_pending_requests) == (100, 10)
    # the whole block is replaced: v2's pending limit is Envoy's default again
    assert (v2.circuit_breakers.max_requests, v2.circuit_breakers.max_pending_requests) == (5, 1024)
    assert v2.outlier_detection is None and v2.load_balancer.lb_policy == "LEAST_REQUEST"
    assert v3.load_balancer.lb_policy == "ROUND_ROBIN" and v3.health_check is not None
    assert v3.outlier_detection is not None and v3.outlier_detection.consecutive_5xx == 3


def test_istio_outlier_block_sets_the_panic_threshold() -> None:
    m = mesh(
        {
            "outlierDetection": {"consecutive5xxErrors": 2, "minHealthPercent": 30},
            "versions": {
                "v2": {"outlierDetection": {"consecutive5xxErrors": 2}},
                "v3": {"outlier_detection": {"consecutive_5xx": 2}},
            },
        }
    )
    assert m.cluster_policies("v1").load_balancer.healthy_panic_threshold == 30.0
    assert m.cluster_policies("v2").load_balancer.healthy_panic_threshold == 0.0  # Istio: panic off
    assert m.cluster_policies("v3").load_balancer.healthy_panic_threshold == 50.0  # Envoy spelling: Envoy's
    m = mesh({"outlierDetection": {}, "loadBalancer": {"consistentHash": {"httpHeaderName": "x"}}})
    lb = m.cluster_policies(None).load_balancer
    assert (lb.lb_policy, lb.healthy_panic_threshold) == ("RING_HASH", 0.0)


def test_istio_retries_drop_previous_hosts_on_a_consistent_hash_destination() -> None:
    m = mesh(
        {
            "retries": {"attempts": 2},
            "loadBalancer": {"consistentHash": {"httpHeaderName": "end-user"}},
            "versions": {"v3": {"load_balancer": "ROUND_ROBIN"}},
            "http": [
                {"match": {"uri": {"prefix": "/a"}}, "route": "v1"},
                {"match": {"uri": {"prefix": "/b"}}, "route": {"v1": 50, "v2": 50}},
                {
                    "match": {"uri": {"prefix": "/c"}},
                    "route": "v1",
                    "retries": {"attempts": 2, "retryIgnorePreviousHosts": True},
                },
                {
                    "match": {"uri": {"prefix": "/d"}},
                    "route": "v1",
                    "retries": {"retry_on": "5xx", "retry_host_predicate": ["previous_hosts"]},
                },
                {"route": "v3"},
            ],
        }
    )
    hosts = [m.route_policies(i).retries.previous_hosts for i in range(5)]  # type: ignore[union-attr]
    # one hashing destination: dropped; two destinations: Istio sets no hash policy; explicit: kept;
    # Envoy spelling: as written; a round-robin destination: kept
    assert hosts == [False, True, True, True, True]
    assert m.route_policies(None).retries.previous_hosts is False  # type: ignore[union-attr]
    assert m.route_policies(0).retries.host_selection_retry_max_attempts == 5  # type: ignore[union-attr]


def test_the_retry_budget_belongs_to_the_cluster() -> None:
    budget = {"retry_on": "5xx", "retry_budget": {"budget_percent": 25}}
    m = mesh({"retries": budget, "routes": [{"route": "v1"}, {"route": {"v2": 1, "v3": 1}, "retries": None}]})
    assert m.cluster_policies("v1").retry_budget is not None
    assert m.cluster_policies("v1").retry_budget.percent == 25.0  # type: ignore[union-attr]
    assert m.cluster_policies("v2").retry_budget is None
    assert m.cluster_policies(None).retry_budget is None  # no implicit route: there are routes
    m = mesh({"retries": budget})
    assert m.cluster_policies("v3").retry_budget == m.cluster_policies(None).retry_budget is not None
    # the same budget twice is fine, an empty one is no budget
    mesh(
        {
            "routes": [
                {"route": "v1", "retries": budget},
                {"route": {"v1": 1, "v2": 1}, "retries": budget},
                {"route": "v1", "retries": {"retry_on": "5xx", "retry_budget": {}}},
            ]
        }
    )


# ------------------------------------------------------------------------------------- errors

ERRORS: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown key in retries",
        {"retries": {"num_retrys": 3}},
        "mesh.yaml: mesh.reviews.retries: unknown key 'num_retrys'; did you mean 'num_retries'?",
    ),
    (
        "unknown key in a route's Istio retries",
        {"http": [{"route": "v1", "retries": {"attempts": 3, "retryon": "5xx"}}]},
        "mesh.yaml: mesh.reviews.http[0].retries: unknown key 'retryon'; did you mean 'retryOn'?",
    ),
    (
        "bad retry_on token",
        {"retries": {"retry_on": "5xx,gateway-errors"}},
        "mesh.yaml: mesh.reviews.retries.retry_on: retry_on token 'gateway-errors' is not an Envoy retry condition",
    ),
    (
        "negative num_retries",
        {"routes": [{"route": "v1", "retries": {"num_retries": -1}}]},
        "mesh.yaml: mesh.reviews.routes[0].retries.num_retries: -1 is out of range; must be >= 0",
    ),
    (
        "unknown key in circuit breakers",
        {"circuit_breakers": {"max_conections": 3}},
        "mesh.yaml: mesh.reviews.circuit_breakers: unknown key 'max_conections'; did you mean 'max_connections'?",
    ),
    (
        "unknown key in Istio connectionPool",
        {"trafficPolicy": {"connectionPool": {"tcp": {"maxConections": 3}}}},
        "mesh.yaml: mesh.reviews.trafficPolicy.connectionPool.tcp: unknown key 'maxConections'; "
        "did you mean 'maxConnections'?",
    ),
    (
        "bad Istio connectionPool value",
        {"connectionPool": {"tcp": {"maxConnections": -3}}},
        "mesh.yaml: mesh.reviews.connectionPool.tcp.maxConnections: -3 is out of range",
    ),
    (
        "bad Istio outlier value in a subset",
        {"subsets": [{"name": "v1", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": -1}}}]},
        "mesh.yaml: mesh.reviews.subsets[0].trafficPolicy.outlierDetection.consecutive5xxErrors: ",
    ),
    (
        "unknown key in outlier detection",
        {"outlier_detection": {"consecutive_5xxx": 3}},
        "mesh.yaml: mesh.reviews.outlier_detection: unknown key 'consecutive_5xxx'; did you mean 'consecutive_5xx'?",
    ),
    (
        "unknown lb policy in a version",
        {"versions": {"v1": {"load_balancer": {"lb_policy": "RANDUM"}}}},
        "mesh.yaml: mesh.reviews.versions.v1.load_balancer.lb_policy: lb_policy 'RANDUM' is not one of",
    ),
    (
        "unknown key in fault",
        {"fault": {"delay": {"fixed_delai": "1s"}}},
        "mesh.yaml: mesh.reviews.fault.delay: unknown key 'fixed_delai'; did you mean 'fixed_delay'?",
    ),
    (
        "bad Istio abort status",
        {"http": [{"route": "v1", "fault": {"abort": {"httpStatus": 700, "percentage": {"value": 1}}}}]},
        "mesh.yaml: mesh.reviews.http[0].fault.abort.httpStatus: http_status 700 is outside [200, 600)",
    ),
    (
        "bad timeout",
        {"routes": [{"route": "v1", "timeout": "soon"}]},
        "mesh.yaml: mesh.reviews.routes[0].timeout: 'soon'",
    ),
    (
        "health check without its required fields",
        {"health_check": {"interval": "1s"}},
        "mesh.yaml: mesh.reviews.health_check: health check needs timeout, unhealthy_threshold",
    ),
    (
        "rate limit below Envoy's fill interval",
        {"rate_limit": {"token_bucket": {"max_tokens": 10, "fill_interval": "10ms"}}},
        "mesh.yaml: mesh.reviews.rate_limit.token_bucket.fill_interval: fill_interval 10ms is below 50ms",
    ),
    (
        "unknown key at the service level",
        {"rateLimit": {}},
        "mesh.yaml: mesh.reviews: unknown key 'rateLimit'; did you mean 'rate_limit'?",
    ),
    (
        "unknown key in trafficPolicy",
        {"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        "mesh.yaml: mesh.reviews.trafficPolicy: unknown key 'tls'",
    ),
    (
        "version that does not exist",
        {"versions": {"v4": {"circuit_breakers": {"max_connections": 1}}}},
        "mesh.yaml: mesh.reviews.versions.v4: 'v4' is not a version of reviews (versions: v1, v2, v3)",
    ),
    (
        "version close to an existing one",
        {"versions": {"v22": {"load_balancer": "RANDOM"}}},
        "mesh.yaml: mesh.reviews.versions.v22: 'v22' is not a version of reviews; did you mean 'v2'?",
    ),
    (
        "subset that does not exist",
        {"subsets": [{"name": "v1"}, {"name": "v4"}]},
        "mesh.yaml: mesh.reviews.subsets[1].name: 'v4' is not a version of reviews",
    ),
    (
        "subset labels of another version",
        {"subsets": [{"name": "v1", "labels": {"version": "v2"}}]},
        "mesh.yaml: mesh.reviews.subsets[0].labels: labels {version: v2} do not select version v1",
    ),
    (
        "subset labels of every version",
        {"subsets": [{"name": "v1", "labels": {}}]},
        "mesh.yaml: mesh.reviews.subsets[0].labels: labels {} also select versions v2, v3",
    ),
    (
        "a subset twice",
        {"versions": {"v1": {"load_balancer": "RANDOM"}}, "subsets": [{"name": "v1"}]},
        "mesh.yaml: mesh.reviews.subsets[0].name: subset 'v1' is given twice (also at versions.v1)",
    ),
    (
        "a block at the top and under trafficPolicy",
        {
            "circuit_breakers": {"max_requests": 1},
            "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 1}}},
        },
        "mesh.yaml: mesh.reviews.trafficPolicy.connectionPool: this block is also given directly under the service",
    ),
    (
        "mirror to a version that does not exist",
        {"mirror": {"host": "reviews", "subset": "v9"}},
        "mesh.yaml: mesh.reviews.mirror.subset: 'v9' is not a version of reviews",
    ),
    (
        "mirror of a route to a version that does not exist",
        {"routes": [{"route": "v1", "mirror": "v7"}]},
        "mesh.yaml: mesh.reviews.routes[0].mirror: 'v7' is not a version of reviews",
    ),
    (
        "mirror to another service",
        {"http": [{"route": "v1", "mirror": {"host": "ratings"}}]},
        "mesh.yaml: mesh.reviews.http[0].mirror: host 'ratings' is not 'reviews'; mirrors may only send",
    ),
    (
        "mirror without a version on a service with versions",
        {"mirror": {"host": "reviews"}},
        "mesh.yaml: mesh.reviews.mirror.version: 'default' is not a version of reviews",
    ),
    (
        "mirrorPercentage without mirror",
        {"http": [{"route": "v1", "mirrorPercentage": {"value": 5}}]},
        "mesh.yaml: mesh.reviews.http[0].mirrorPercentage: mirrorPercentage is given without mirror",
    ),
    (
        "mirror share given twice",
        {"mirror": {"version": "v1", "percentage": 5}, "mirrorPercentage": {"value": 5}},
        "mesh.yaml: mesh.reviews.mirrorPercentage: the mirror share is given twice",
    ),
    (
        "mirror percentage out of range",
        {"mirror": {"version": "v1", "percentage": 110}},
        "mesh.yaml: mesh.reviews.mirror.percentage: 110 is outside [0, 100]",
    ),
    (
        "two per-try timeouts",
        {
            "timeout": {"per_try_timeout": "1s"},
            "routes": [{"route": "v1", "retries": {"attempts": 2, "perTryTimeout": "2s"}}],
        },
        "mesh.yaml: mesh.reviews.routes[0].retries.perTryTimeout: per_try_timeout is given twice with different "
        "values (1s at timeout, 2s at routes[0].retries)",
    ),
    (
        "two retry budgets for one version",
        {
            "routes": [
                {"route": "v1", "retries": {"retry_on": "5xx", "retry_budget": {"budget_percent": 20}}},
                {
                    "route": {"v1": 1, "v2": 1},
                    "retries": {"retry_on": "5xx", "retry_budget": {"budget_percent": 30}},
                },
            ]
        },
        "mesh.yaml: mesh.reviews.routes[1].retries.retry_budget: the retry budget differs from the one at "
        "routes[0].retries.retry_budget for version 'v1'",
    ),
    (
        "two panic thresholds",
        {
            "loadBalancer": {"common_lb_config": {"healthy_panic_threshold": {"value": 30}}},
            "outlierDetection": {"consecutive5xxErrors": 3},
        },
        "mesh.yaml: mesh.reviews.loadBalancer.healthy_panic_threshold: healthy_panic_threshold 30 differs from "
        "the outlier block's 0",
    ),
]


@pytest.mark.parametrize("block, expected", [(b, e) for _, b, e in ERRORS], ids=[n for n, _, _ in ERRORS])
def test_bad_values_give_one_line_with_the_full_path(block: dict[str, Any], expected: str) -> None:
    assert refused(block).startswith(expected)


def test_a_service_without_versions_only_has_default() -> None:
    assert refused({"versions": {"v1": {}}}, service="ratings").startswith(
        "mesh.yaml: mesh.ratings.versions.v1: 'v1' is not a version: ratings declares no versions"
    )
    m = mesh({"versions": {"default": {"load_balancer": "RANDOM"}}}, service="ratings")
    assert m.cluster_policies("default").load_balancer.lb_policy == "RANDOM"


# ---------------------------------------------------------------------------------- overrides


def test_overrides_reach_the_policy_fields() -> None:
    s = scenario(
        {
            "retries": {"retry_on": "5xx"},
            "connectionPool": {"tcp": {"maxConnections": 10}},
            "http": [{"route": "v1"}],
        }
    )
    t = apply_overrides(
        s,
        {
            "mesh.reviews.retries.num_retries": 3,
            "mesh.reviews.circuit_breakers.tcp.maxConnections": "20",  # follows connectionPool
            "mesh.reviews.routes[0].timeout": "1s",  # follows http
            "mesh.reviews.versions.v2": "{outlier_detection: {consecutive_5xx: 2}}",
        },
    )
    m = t.mesh_for("reviews")
    assert m.route_policies(0).retries.num_retries == 3  # type: ignore[union-attr]
    assert m.route_policies(0).timeout.timeout == 1.0
    assert m.cluster_policies("v1").circuit_breakers.max_connections == 20
    assert m.cluster_policies("v2").outlier_detection.consecutive_5xx == 2  # type: ignore[union-attr]
    assert s.mesh_for("reviews").route_policies(0).retries.num_retries == 1  # type: ignore[union-attr]


def test_an_override_creates_a_missing_block() -> None:
    t = apply_overrides(scenario(), {"mesh.reviews.retries.num_retries": 3, "mesh.reviews.timeout": "2s"})
    rp = t.mesh_for("reviews").route_policies(None)
    assert rp.retries is not None and rp.retries.num_retries == 3 and rp.timeout.timeout == 2.0


def test_an_override_with_a_bad_value_is_refused_with_its_path() -> None:
    s = scenario({"retries": {"retry_on": "5xx"}})
    with pytest.raises(ConfigError, match=r"mesh\.reviews\.retries: unknown key 'num_retrys'"):
        apply_overrides(s, {"mesh.reviews.retries.num_retrys": 3})
