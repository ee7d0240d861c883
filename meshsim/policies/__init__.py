"""Envoy policies: one module per Envoy concept, each with its config model,
its engine-free runtime and its Envoy v3 form.

The policy classes (the config layer of each module) are re-exported here;
the runtime and Envoy layers stay in their modules
(``meshsim.policies.retry.RetryState``, ``meshsim.policies.outlier.to_envoy``, ...).

================================  ==========================================================
module                            policy
================================  ==========================================================
:mod:`~.routing`                  :class:`Route` (with :class:`Mirror`), :class:`RoutingPolicy`
:mod:`~.timeout`                  :class:`TimeoutPolicy`
:mod:`~.retry`                    :class:`RetryPolicy` (:class:`RetryBudget`)
:mod:`~.fault`                    :class:`FaultPolicy`
:mod:`~.circuit_breaker`          :class:`CircuitBreakerPolicy`
:mod:`~.outlier`                  :class:`OutlierPolicy`
:mod:`~.load_balancer`            :class:`LoadBalancerPolicy`
:mod:`~.health_check`             :class:`HealthCheckPolicy`
:mod:`~.rate_limit`               :class:`RateLimitPolicy`
================================  ==========================================================
"""

from meshsim.policies.circuit_breaker import CircuitBreakerPolicy
from meshsim.policies.fault import FaultPolicy
from meshsim.policies.health_check import HealthCheckPolicy
from meshsim.policies.load_balancer import LoadBalancerPolicy
from meshsim.policies.outlier import OutlierPolicy
from meshsim.policies.rate_limit import RateLimitPolicy
from meshsim.policies.retry import RetryBudget, RetryPolicy
from meshsim.policies.routing import (
    DEFAULT_VERSION,
    HeaderMatch,
    Mirror,
    Route,
    RouteMatch,
    Router,
    RoutingPolicy,
    StringMatch,
    WeightedDestination,
    cluster_name,
    to_envoy,
)
from meshsim.policies.timeout import TimeoutPolicy

__all__ = [
    "DEFAULT_VERSION",
    "HeaderMatch",
    "Mirror",
    "Route",
    "RouteMatch",
    "Router",
    "RoutingPolicy",
    "StringMatch",
    "WeightedDestination",
    "cluster_name",
    "to_envoy",
    "TimeoutPolicy",
    "RetryPolicy",
    "RetryBudget",
    "FaultPolicy",
    "CircuitBreakerPolicy",
    "OutlierPolicy",
    "LoadBalancerPolicy",
    "HealthCheckPolicy",
    "RateLimitPolicy",
]
