"""Envoy policies: one module per Envoy concept, each with its config model,
its engine-free runtime and its Envoy v3 form.

Routing (:mod:`meshsim.policies.routing`) is the first; timeouts, retries,
circuit breakers, outlier detection, load balancing, health checks, faults
and rate limits follow the same three layers.
"""

from meshsim.policies.routing import (
    DEFAULT_VERSION,
    HeaderMatch,
    Route,
    RouteMatch,
    Router,
    RoutingPolicy,
    StringMatch,
    WeightedDestination,
    cluster_name,
    to_envoy,
)

__all__ = [
    "DEFAULT_VERSION",
    "HeaderMatch",
    "Route",
    "RouteMatch",
    "Router",
    "RoutingPolicy",
    "StringMatch",
    "WeightedDestination",
    "cluster_name",
    "to_envoy",
]
