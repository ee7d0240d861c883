"""Shared scenario fixtures for the config tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

FULL = """
name: bookinfo
description: "Istio's Bookinfo with a canary of reviews"
seed: 7
duration: 60s
warmup: 5s
drain: 30s
replications: 2
record: summary
network:
  latency: 0.1ms
  cross_zone: {type: exponential, mean: 1ms}
services:
  productpage:
    replicas: 2
    workers: 8
    queue: 100
    concurrency: blocking
    latency: {p50: 10ms, p99: 80ms}
    errors: 0.1%
    zones: [a, b, c]
    script:
      - call: details
      - call: {service: reviews, probability: 0.8, optional: true, path: /reviews, method: GET, headers: {x-a: b}}
      - parallel:
          - call: ratings
          - call: details
      - work
      - work: 5ms
      - sleep: 20ms
  details:
    latency: 5ms
    zone: a
  ratings:
    latency: {type: exponential, mean: 3ms}
    queue: unlimited
    concurrency: async
  reviews:
    latency: 10ms
    errors: {rate: 0.5%, status: 503}
    zones: [a, b]
    versions:
      v1: {labels: {version: v1, track: stable}, replicas: 2}
      v2: {replicas: 1, script: [{call: ratings}]}
      v3: {zone: c, latency: 30ms, errors: null, queue: 5}
traffic:
  - name: users
    to: productpage
    rate: 200/s
    path: /productpage
    headers:
      end-user: {jason: 5%}
      x-env: prod
  - to: productpage
    schedule:
      - {until: 30s, rate: 100/s}
      - {until: 40s, ramp_to: 300/s}
    arrivals: uniform
  - name: testers
    to: productpage
    users: 5
    think: 1s
mesh:
  reviews:
    routes:
      - name: jason
        match:
          - headers: {end-user: {exact: jason}}
            uri: {prefix: /reviews}
            method: {exact: GET}
        route: {v2: 100}
      - route:
          - destination: {host: reviews, subset: v1}
            weight: 90
          - destination: {host: reviews, subset: v3}
            weight: 10
"""


@pytest.fixture
def full_yaml() -> str:
    """The full example of the spec as YAML text."""
    return FULL


@pytest.fixture
def full() -> dict[str, Any]:
    """The full example of the spec, as loaded from YAML (a fresh copy per test)."""
    return copy.deepcopy(yaml.safe_load(FULL))


MINIMAL: dict[str, Any] = {
    "name": "mini",
    "duration": "10s",
    "services": {
        "front": {"latency": "10ms", "script": [{"call": "back"}]},
        "back": {"latency": "5ms", "versions": {"v1": {}, "v2": {}}},
    },
    "traffic": [{"to": "front", "rate": "10/s"}],
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    """A small valid scenario with two services (a fresh copy per test)."""
    return copy.deepcopy(MINIMAL)
