"""Property test: whatever valid policies a scenario combines, the real Envoy accepts the export.

Hypothesis builds scenarios whose ``mesh`` block mixes every policy meshsim
exports (routes with header/uri/method matches and weights, timeouts, retries
with budgets, back-off, hedging, host predicates and priorities, faults,
mirroring, circuit breakers and protocol options, outlier detection, every
load balancer with its settings, hash keys, locality load balancing, health
checks, the local rate limit), exports them in both endpoint modes and runs
``envoy --mode validate`` on the caller's sidecar (routes and clusters) and
the destination's (inbound rate limit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from meshsim.config import parse_scenario
from meshsim.envoy import export_envoy, validate_many
from meshsim.policies.rate_limit import ENVOY_STATUS_CODES
from meshsim.policies.retry import RETRY_ON_TOKENS

ZONES = ["us-1a", "us-1b", "eu-1a", "zone-c"]  # plain names: each is a region of its own
VERSIONS = ["v1", "v2"]


def ms(lo: int = 1, hi: int = 60_000) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda n: f"{n}ms")


def percent() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(0, 100), st.sampled_from([0.5, 12.25, 99.99, "5%", {"value": 33.3}]))


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


timeouts = st.fixed_dictionaries({"timeout": st.one_of(st.just(0), ms())})


@st.composite
def backoff(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.integers(1, 2000))
    out: dict[str, Any] = {"base_interval": f"{base}ms"}
    if draw(st.booleans()):
        out["max_interval"] = f"{base * draw(st.integers(1, 20))}ms"
    return out


def retries(with_budget: bool) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "num_retries": st.integers(0, 6),
        "per_try_timeout": ms(),
        "per_try_idle_timeout": ms(),
        "retry_back_off": backoff(),
        "retriable_status_codes": st.lists(st.integers(100, 599), max_size=4),
        "retriable_headers": st.just([{"name": "x-retry", "string_match": {"exact": "1"}}]),
        "retry_host_predicate": st.just(["previous_hosts"]),
        "host_selection_retry_max_attempts": st.integers(0, 10),
        "retry_priority": st.fixed_dictionaries({"update_frequency": st.integers(1, 5)}),
        "hedge_on_per_try_timeout": st.booleans(),
    }
    if with_budget:
        fields["retry_budget"] = optional(
            budget_percent=st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 2)),
            min_retry_concurrency=st.integers(0, 20),
        )
    tokens = st.lists(st.sampled_from(sorted(RETRY_ON_TOKENS)), max_size=4, unique=True).map(",".join)
    return st.fixed_dictionaries({"retry_on": tokens}, optional=fields)


faults = st.one_of(
    st.fixed_dictionaries({"delay": st.fixed_dictionaries({"fixed_delay": ms()}, optional={"percentage": percent()})}),
    st.fixed_dictionaries(
        {"abort": st.fixed_dictionaries({"http_status": st.integers(200, 599)}, optional={"percentage": percent()})},
        optional={"max_active_faults": st.integers(0, 1000)},
    ),
)
mirrors = st.fixed_dictionaries({"version": st.sampled_from(VERSIONS)}, optional={"percentage": percent()})

circuit_breakers = optional(
    max_connections=st.integers(1, 2**32 - 1),
    max_pending_requests=st.integers(0, 10_000),
    max_requests=st.integers(1, 10_000),
    max_retries=st.integers(0, 100),
    max_connection_pools=st.integers(1, 100),
    track_remaining=st.booleans(),
    protocol=st.sampled_from(["http1", "http2", "downstream"]),
    connect_timeout_s=ms(),
    max_requests_per_connection=st.integers(0, 1000),
    max_concurrent_streams=st.integers(1, 2**31 - 1),
    idle_timeout_s=st.one_of(st.just(0), ms(1, 7_200_000)),
    max_connection_duration_s=ms(),
    tcp_keepalive=optional(
        keepalive_probes=st.integers(1, 10), keepalive_time=st.integers(1, 7200), keepalive_interval=st.integers(1, 75)
    ),
)


@st.composite
def outliers(draw: st.DrawFn) -> dict[str, Any]:
    out = draw(
        optional(
            consecutive_5xx=st.integers(0, 20),
            consecutive_gateway_failure=st.integers(0, 20),
            consecutive_local_origin_failure=st.integers(0, 20),
            interval=ms(),
            max_ejection_time_jitter=st.one_of(st.just(0), ms()),
            max_ejection_percent=st.integers(0, 100),
            always_eject_one_host=st.booleans(),
            enforcing_consecutive_5xx=st.integers(0, 100),
            enforcing_consecutive_gateway_failure=st.integers(0, 100),
            enforcing_success_rate=st.integers(0, 100),
            enforcing_failure_percentage=st.integers(0, 100),
            success_rate_minimum_hosts=st.integers(0, 10),
            success_rate_request_volume=st.integers(0, 1000),
            success_rate_stdev_factor=st.integers(0, 5000),
            failure_percentage_threshold=st.integers(0, 100),
            split_external_local_origin_errors=st.booleans(),
            successful_active_health_check_uneject_host=st.booleans(),
        )
    )
    if draw(st.booleans()):
        base = draw(st.integers(1, 600_000))
        out["base_ejection_time"] = f"{base}ms"
        if draw(st.booleans()):
            out["max_ejection_time"] = f"{base + draw(st.integers(0, 600_000))}ms"
    return out


hash_keys = st.one_of(
    st.fixed_dictionaries({"header_name": st.sampled_from(["x-user", "end-user"])}),
    st.just({"use_source_ip": True}),
    st.just({"cookie": "session"}),
    st.just({"query_parameter": "id"}),
)
locality = st.one_of(
    st.fixed_dictionaries({"failover": st.just([{"from": "us-1a", "to": "eu-1a"}])}),
    st.fixed_dictionaries({"distribute": st.just([{"from": "us-1a", "to": {"us-1a": 70, "eu-1a": 30}}])}),
    st.fixed_dictionaries({"distribute": st.just([{"from": "*", "to": {"us-1b": 1, "zone-c": 3}}])}),
    st.just({"enabled": False}),
    st.just({}),
)


@st.composite
def load_balancers(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"]))
    out: dict[str, Any] = {"lb_policy": kind}
    if kind == "LEAST_REQUEST":
        out.update(
            draw(
                optional(
                    choice_count=st.integers(2, 10),
                    active_request_bias=st.sampled_from([0.0, 0.5, 2.0]),
                    selection_method=st.sampled_from(["N_CHOICES", "FULL_SCAN"]),
                )
            )
        )
    if kind == "RING_HASH":
        lo = draw(st.integers(1, 100_000))
        out.update(
            draw(
                optional(
                    minimum_ring_size=st.just(lo),
                    maximum_ring_size=st.integers(max(lo, 1024), 8_388_608),  # >= the minimum, given or not
                    hash_function=st.sampled_from(["XX_HASH", "MURMUR_HASH_2"]),
                )
            )
        )
    if kind == "MAGLEV" and draw(st.booleans()):
        out["table_size"] = draw(st.sampled_from([2, 251, 65537, 131071, 5000011]))
    if kind in ("RING_HASH", "MAGLEV") and draw(st.booleans()):
        out["hash_key"] = draw(hash_keys)
    out.update(
        draw(
            optional(
                healthy_panic_threshold=st.integers(0, 100),
                slow_start=st.fixed_dictionaries(
                    {"slow_start_window": ms()},
                    optional={"aggression": st.sampled_from([0.5, 1.0, 2.0]), "min_weight_percent": st.integers(0, 100)},
                ),
            )
        )
    )
    extra = draw(st.sampled_from(["none", "zone_aware", "locality_lb", "locality_weighted"]))
    if extra == "zone_aware":
        out["zone_aware"] = draw(optional(routing_enabled=st.integers(0, 100), min_cluster_size=st.integers(0, 10)))
    elif extra == "locality_lb":
        out["locality_lb"] = draw(locality)
    elif extra == "locality_weighted":
        out["locality_weighted"] = True
    return out


@st.composite
def health_checks(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "timeout": draw(ms()),
        "interval": draw(ms()),
        "unhealthy_threshold": draw(st.integers(0, 10)),
        "healthy_threshold": draw(st.integers(0, 10)),
        "path": draw(st.sampled_from(["/healthz", "/ready"])),
    }
    out.update(
        draw(
            optional(
                initial_jitter=ms(),
                interval_jitter=ms(),
                interval_jitter_percent=st.integers(0, 100),
                unhealthy_interval=ms(),
                unhealthy_edge_interval=ms(),
                healthy_edge_interval=ms(),
                no_traffic_interval=ms(),
                no_traffic_healthy_interval=ms(),
                expected_statuses=st.lists(st.integers(100, 599), min_size=1, max_size=4),
                retriable_statuses=st.lists(st.integers(100, 599), max_size=3),
            )
        )
    )
    return out


rate_limits = st.fixed_dictionaries(
    {
        "token_bucket": st.fixed_dictionaries(
            {"max_tokens": st.integers(1, 10_000), "fill_interval": ms(50)},
            optional={"tokens_per_fill": st.integers(1, 1000)},
        )
    },
    optional={
        "filter_enabled": percent(),
        "filter_enforced": percent(),
        "status": st.sampled_from(sorted(ENVOY_STATUS_CODES)),
    },
)

string_matches = st.one_of(
    st.fixed_dictionaries({"exact": st.sampled_from(["jason", "true", "1"])}),
    st.fixed_dictionaries({"prefix": st.sampled_from(["ja", "/api"])}),
    st.fixed_dictionaries({"regex": st.sampled_from(["[a-z]+", "v[0-9]+", ".*"])}),
)
route_matches = optional(
    uri=st.one_of(
        st.fixed_dictionaries({"prefix": st.sampled_from(["/", "/api", "/reviews/"])}),
        st.fixed_dictionaries({"exact": st.just("/productpage")}),
        st.fixed_dictionaries({"regex": st.just("/api/v[0-9]+/.*")}),
    ),
    headers=st.dictionaries(
        st.sampled_from(["end-user", "x-canary", "X-Tenant"]),
        st.one_of(string_matches, st.fixed_dictionaries({"present": st.booleans()})),
        max_size=2,
    ),
    method=st.sampled_from(["GET", "POST", {"prefix": "P"}]),
)


@st.composite
def routes(draw: st.DrawFn) -> dict[str, Any]:
    weights = draw(st.fixed_dictionaries({v: st.integers(0, 100) for v in VERSIONS}))
    if sum(weights.values()) == 0:
        weights["v1"] = 1
    out: dict[str, Any] = {"route": weights}
    out.update(
        draw(
            optional(
                name=st.sampled_from(["canary", "pinned"]),
                match=st.lists(route_matches, max_size=2),
                timeout=timeouts,
                retries=retries(with_budget=False),
                fault=faults,
                mirror=mirrors,
            )
        )
    )
    return out


cluster_blocks = {
    "circuit_breakers": circuit_breakers,
    "outlier_detection": outliers(),
    "load_balancer": load_balancers(),
    "health_check": health_checks(),
}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    zoned = draw(st.booleans())

    def placement() -> dict[str, Any]:
        return {"zones": draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3))} if zoned else {}

    mesh = draw(
        optional(
            routes=st.lists(routes(), min_size=1, max_size=3),
            timeout=timeouts,
            retries=retries(with_budget=True),
            fault=faults,
            mirror=mirrors,
            rate_limit=rate_limits,
            versions=st.fixed_dictionaries({}, optional={v: optional(**cluster_blocks) for v in VERSIONS}),
            **cluster_blocks,
        )
    )
    versions = {v: {"replicas": draw(st.integers(1, 3)), **placement()} for v in VERSIONS}
    return {
        "name": "generated",
        "duration": "10s",
        "services": {
            "client": {
                "replicas": draw(st.integers(1, 3)),
                "latency": "1ms",
                "script": ["work", {"call": "dest"}],
                **placement(),
            },
            "dest": {"latency": "1ms", "versions": versions},
        },
        "traffic": [{"to": "client", "rate": "10/s", **({"zone": draw(st.sampled_from(ZONES))} if zoned else {})}],
        "mesh": {"dest": mesh},
    }


def _check(data: dict[str, Any], endpoints: str, envoy: Path) -> None:
    scenario = parse_scenario(data)
    bootstraps = export_envoy(scenario, endpoints=endpoints, on_unsupported=lambda note: None)
    results = validate_many([bootstraps["client"], bootstraps["dest"]], envoy=envoy)
    rejected = [r.message for r in results if not r.ok]
    assert not rejected, f"envoy rejected the export of mesh {data['mesh']!r}: {rejected}"


# no "explain" phase: each example runs Envoy, and explaining a failure would rerun it hundreds of times
_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
}


@settings(max_examples=50, **_SETTINGS)
@given(data=scenarios(), endpoints=st.sampled_from(["dns", "static"]))
def test_envoy_accepts_every_export(data: dict[str, Any], endpoints: str, envoy_bin: Path) -> None:
    _check(data, endpoints, envoy_bin)


@pytest.mark.slow
@settings(max_examples=1000, **_SETTINGS)
@given(data=scenarios(), endpoints=st.sampled_from(["dns", "static"]))
def test_envoy_accepts_every_export_many(data: dict[str, Any], endpoints: str, envoy_bin: Path) -> None:
    _check(data, endpoints, envoy_bin)
