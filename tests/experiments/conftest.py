"""Small, fast scenarios for the sweep, capacity and executor tests (summary records, seconds-long runs)."""

from __future__ import annotations

import pytest

from meshsim.config import apply_overrides, load_scenario, parse_scenario

#: the bundled M/M/4 station, shortened: 3 s runs, 0.5 s warmup (~10k requests at 3,600/s)
SHORT = {"duration": "3s", "warmup": "0.5s", "record": "summary"}


@pytest.fixture(scope="session")
def mmc():
    """``scenarios/mmc.yaml`` (M/M/4, 1 ms mean service, 3,600/s) with short summary-only runs."""
    return apply_overrides(load_scenario("scenarios/mmc.yaml"), SHORT)


@pytest.fixture(scope="session")
def two_tier():
    """A caller with retries in front of a two-version backend: service and version rows, Envoy counters."""
    return parse_scenario({
        "name": "two-tier", "seed": 3, "duration": "2s", "warmup": "0.5s", "record": "summary",
        "services": {
            "web": {"replicas": 2, "workers": 8, "latency": {"type": "exponential", "mean": "2ms"},
                    "script": ["work", {"call": "api"}]},
            "api": {"workers": 4, "latency": {"type": "exponential", "mean": "4ms"}, "errors": "2%",
                    "versions": {"v1": {"replicas": 2}, "v2": {"replicas": 1}}},
        },
        "mesh": {"api": {"retries": {"retry_on": "5xx", "num_retries": 2}}},
        "traffic": [{"name": "users", "to": "web", "rate": "200/s"}],
    }, source="two-tier")
