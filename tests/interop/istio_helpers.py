"""Shared scenarios and helpers of the Istio interop tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from meshsim.config import Scenario, parse_scenario
from meshsim.interop.istio import IstioExport, export_istio, import_istio, mesh_view, write_istio

#: A scenario using every policy field Istio can express (its export must round-trip with no warning).
RICH: dict[str, Any] = {
    "name": "rich",
    "duration": "2s",
    "services": {
        "front": {"replicas": 2, "workers": 8, "latency": "1ms", "zones": ["us-east", "us-west"],
                  "script": ["work", {"call": "api"}, {"call": "pay"}, {"call": "plain"}]},
        "api": {"workers": 8, "latency": "2ms", "zones": ["us-east", "us-west"],
                "versions": {"v1": {"replicas": 2}, "v2": {"replicas": 2, "labels": {"version": "v2", "track": "beta"}}}},
        "pay": {"replicas": 2, "workers": 4, "latency": "3ms"},
        "plain": {"replicas": 1, "latency": "1ms"},
    },
    "traffic": [{"name": "users", "to": "front", "rate": "50/s", "headers": {"x-beta": {"1": "20%"}}}],
    "mesh": {
        "api": {
            "routes": [
                {
                    "name": "beta",
                    "match": [{"headers": {"x-beta": {"present": True}}},
                              {"uri": {"prefix": "/beta"}, "method": "POST"}],
                    "route": "v2",
                    "timeout": "3s",
                    "retries": {"retry_on": "5xx,reset,retriable-status-codes", "retriable_status_codes": [502, 503],
                                "num_retries": 3, "per_try_timeout": "250ms",
                                "retry_back_off": {"base_interval": "50ms"},
                                "retry_host_predicate": ["previous_hosts"], "host_selection_retry_max_attempts": 5,
                                "retry_budget": {"budget_percent": 25, "min_retry_concurrency": 5}},
                    "fault": {"abort": {"http_status": 503, "percentage": 0.5}},
                },
                {
                    "match": [{"headers": {"x-old": {"present": False}, "x-user": {"prefix": "u-"}},
                               "uri": {"regex": "/v[0-9]+/.*"}}],
                    "route": {"v1": 80, "v2": 20},
                    "mirror": {"version": "v2", "percentage": 12.5},
                    "retries": {"retry_on": "connect-failure", "num_retries": 1},
                },
                {"route": "v1", "timeout": 0, "retries": None},
            ],
            "circuit_breakers": {"max_connections": 50, "max_pending_requests": 20, "max_requests": 60,
                                 "max_retries": 4, "connect_timeout": "250ms", "max_requests_per_connection": 100,
                                 "protocol": "http2", "max_concurrent_streams": 64, "idle_timeout": "90s"},
            "outlier_detection": {"consecutive_5xx": 3, "consecutive_gateway_failure": 2,
                                  "enforcing_consecutive_gateway_failure": 100, "interval": "2s",
                                  "base_ejection_time": "10s", "max_ejection_percent": 40,
                                  "enforcing_success_rate": 0},
            "load_balancer": {"lb_policy": "LEAST_REQUEST", "healthy_panic_threshold": 20,
                              "slow_start": {"slow_start_window": "30s"},
                              "locality_lb": {"failover": [{"from": "us-east", "to": "us-west"}]}},
            "versions": {
                "v2": {"load_balancer": {"lb_policy": "RING_HASH", "hash_key": {"header_name": "x-user"},
                                         "minimum_ring_size": 2048},
                       "outlier_detection": None},
            },
        },
        "pay": {
            "timeout": "1s",
            "retries": {"attempts": 2, "retryOn": "gateway-error", "perTryTimeout": "300ms",
                        "retry_budget": {"budget_percent": 30, "min_retry_concurrency": 2}},
            "fault": {"delay": {"fixed_delay": "100ms", "percentage": 1}},
            "connectionPool": {"http": {"maxRetries": 10}},
            "load_balancer": {"lb_policy": "MAGLEV", "hash_key": {"use_source_ip": True}, "table_size": 65537},
        },
    },
}


def rich() -> Scenario:
    return parse_scenario(copy.deepcopy(RICH), source="rich.yaml")


def scenario(data: dict[str, Any]) -> Scenario:
    return parse_scenario(copy.deepcopy(data), source="test.yaml")


def write_docs(tmp_path: Path, docs: list[dict[str, Any]] | str, name: str = "istio.yaml") -> Path:
    path = tmp_path / name
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def round_trip(scn: Scenario, tmp_path: Path, **kwargs: Any) -> tuple[IstioExport, Scenario]:
    """Export ``scn``, write the files, import them with ``scn`` as the topology (mesh entries merged)."""
    exported = export_istio(scn, **kwargs)
    out = tmp_path / "istio-out"
    paths = write_istio(out, exported)
    topo = tmp_path / "topology.yaml"
    topo.write_text(yaml.safe_dump(scn._raw, sort_keys=False), encoding="utf-8")
    back = import_istio(paths, topology=topo, merge=True) if paths else None
    return exported, (back.scenario if back is not None else scn)


def view(scn: Scenario, service: str) -> dict[str, Any]:
    return mesh_view(scn.mesh_for(service), scn.services[service].version_names())
