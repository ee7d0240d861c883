"""Each trap, written in a scenario, gives its finding (code and field path); a clean scenario gives none."""

from __future__ import annotations

from pathlib import Path

import pytest
from lint_cases import codes, scenario

from meshsim.config import load_scenario
from meshsim.lint import CODES, Severity, lint_scenario

RB = {"retry_on": "5xx", "num_retries": 2}
OD = {"consecutive_5xx": 5, "interval": "1s"}

#: code -> (mesh.api block, services.api overrides, expected field path)
TRAPS = {
    "MS101": ({"retries": {"retry_on": "5xx,gateway-errors", "allow_unknown": True}}, None,
              "mesh.api.retries.retry_on"),
    "MS102": ({"retries": {"num_retries": 3}}, None, "mesh.api.retries.retry_on"),
    "MS103": ({"retries": {"retry_on": "retriable-status-codes"}}, None, "mesh.api.retries.retriable_status_codes"),
    "MS104": ({"retries": {"retry_on": "5xx", "retriable_status_codes": [503]}}, None,
              "mesh.api.retries.retriable_status_codes"),
    "MS105": ({"retries": {"retry_on": "connect-failure", "per_try_timeout": "300ms"}}, None,
              "mesh.api.retries.per_try_timeout"),
    "MS106": ({"retries": {**RB, "retry_budget": {}}}, None, "mesh.api.retries.retry_budget"),
    "MS107": ({"retries": RB}, {"replicas": 2, "errors": {"rate": "50%", "status": 503}},
              "mesh.api.circuit_breakers.max_retries"),
    "MS108": ({"retries": {**RB, "hedge_on_per_try_timeout": True}}, None,
              "mesh.api.retries.hedge_on_per_try_timeout"),
    "MS109": ({"timeout": "1s", "retries": {"retry_on": "5xx", "num_retries": 3, "per_try_timeout": "400ms"}}, None,
              "mesh.api.retries.num_retries"),
    "MS110": ({"retries": {"retry_on": "5xx,retriable-4xx"}}, None, "mesh.api.retries.retry_on"),
    "MS111": ({"retries": RB, "routes": [{"name": "all", "retries": {"num_retries": 3}}]}, None,
              "mesh.api.routes[0].retries.retry_on"),
    "MS201": ({"timeout": {"timeout": "1s", "per_try_timeout": "1s"}, "retries": RB}, None,
              "mesh.api.timeout.per_try_timeout"),
    "MS202": ({"timeout": 0}, None, "mesh.api.timeout.timeout"),
    "MS301": ({"outlier_detection": OD}, None, "mesh.api.outlier_detection.max_ejection_percent"),
    "MS302": ({"outlier_detection": {**OD, "max_ejection_percent": 100}}, {"replicas": 3},
              "mesh.api.load_balancer.healthy_panic_threshold"),
    "MS303": ({"outlier_detection": {"consecutive_gateway_failure": 3, "max_ejection_percent": 20}}, None,
              "mesh.api.outlier_detection.enforcing_consecutive_gateway_failure"),
    "MS304": ({"outlier_detection": {"consecutive_local_origin_failure": 3, "max_ejection_percent": 20}}, None,
              "mesh.api.outlier_detection.split_external_local_origin_errors"),
    "MS305": ({"outlier_detection": {"failure_percentage_threshold": 50, "max_ejection_percent": 20}}, None,
              "mesh.api.outlier_detection.enforcing_failure_percentage"),
    "MS306": ({"outlier_detection": {"success_rate_request_volume": 50, "max_ejection_percent": 34}},
              {"replicas": 3}, "mesh.api.outlier_detection.success_rate_minimum_hosts"),
    "MS310": ({"load_balancer": {"lb_policy": "RING_HASH"}}, None, "mesh.api.load_balancer.hash_key"),
    "MS311": ({"load_balancer": {"lb_policy": "ROUND_ROBIN", "hash_key": {"header_name": "x-user"}}}, None,
              "mesh.api.load_balancer.hash_key"),
    "MS390": ({"load_balancer": {"slow_start": {"slow_start_window": "30s"}}}, None,
              "mesh.api.load_balancer.slow_start"),
    "MS401": ({"fault": {"abort": {"http_status": 503}}}, None, "mesh.api.fault.abort.percentage"),
    "MS402": ({"fault": {"abort": {"http_status": 503, "percentage": 0}}}, None, "mesh.api.fault.abort.percentage"),
    "MS403": ({"fault": {"delay": {"fixed_delay": "0.4ms", "percentage": 100}}}, None,
              "mesh.api.fault.delay.fixed_delay"),
    "MS404": ({"fault": {"abort": {"http_status": 503, "percentage": 10}, "max_active_faults": 0}}, None,
              "mesh.api.fault.max_active_faults"),
    "MS411": ({"rate_limit": {"token_bucket": {"max_tokens": 10, "fill_interval": "1s"}, "filter_enforced": 100}},
              None, "mesh.api.rate_limit.filter_enabled"),
    "MS412": ({"rate_limit": {"token_bucket": {"max_tokens": 10, "fill_interval": "1s"}, "filter_enabled": 100}},
              None, "mesh.api.rate_limit.filter_enforced"),
    "MS413": ({"rate_limit": {"token_bucket": {"max_tokens": 10, "fill_interval": "1s"}, "filter_enabled": 100,
                              "filter_enforced": 0}}, None, "mesh.api.rate_limit.filter_enforced"),
    "MS414": ({"rate_limit": {"token_bucket": {"max_tokens": 10, "fill_interval": "1s"}, "filter_enabled": 100,
                              "filter_enforced": 100, "status": 200}}, None, "mesh.api.rate_limit.status"),
    "MS501": ({"versions": {"v2": {"outlier_detection": {**OD, "max_ejection_percent": 50}}}},
              {"replicas": None, "versions": {"v1": {"replicas": 3}, "v2": {"replicas": 2}}},
              "mesh.api.versions.v2"),
}


@pytest.mark.parametrize("code", sorted(TRAPS))
def test_each_trap_is_found_at_its_field(code: str) -> None:
    mesh, api, path = TRAPS[code]
    if api and api.get("replicas", 0) is None:
        api = {k: v for k, v in api.items() if k != "replicas"}
    findings = lint_scenario(scenario(mesh, api=api))
    found = codes(findings)
    assert code in found, [str(f) for f in findings]
    assert found[code] == path
    f = next(f for f in findings if f.code == code)
    assert f.file == "s.yaml" and f.severity is CODES[code].severity and f.message and f.value
    assert f.effect is None  # no measurement unless asked


def test_every_scenario_level_code_has_a_case() -> None:
    # MS312 is the policy API's (hosts given); the scenario form reports MS302 instead
    assert set(CODES) - set(TRAPS) == {"MS312"}


CLEAN = {
    "timeout": {"timeout": "2s"},
    "retries": {"retry_on": "5xx,reset", "num_retries": 2, "per_try_timeout": "500ms",
                "retry_budget": {"budget_percent": 20}},
    "outlier_detection": {"consecutive_5xx": 5, "interval": "1s", "max_ejection_percent": 40},
    "load_balancer": {"lb_policy": "LEAST_REQUEST", "healthy_panic_threshold": 0},
    "fault": {"delay": {"fixed_delay": "10ms", "percentage": 1}},
    "rate_limit": {"token_bucket": {"max_tokens": 100, "fill_interval": "1s", "tokens_per_fill": 100},
                   "filter_enabled": 100, "filter_enforced": 100},
}


def test_a_clean_configuration_has_no_findings() -> None:
    assert lint_scenario(scenario(CLEAN)) == []
    assert lint_scenario(scenario(CLEAN), measure=True) == []


def test_istio_spelled_blocks_are_named_in_istio_spelling() -> None:
    scn = scenario({
        "retries": {"attempts": 3, "retryOn": "5xx,gateway-errors", "allow_unknown": True},
        "outlierDetection": {"consecutive5xxErrors": 5},
    })
    found = codes(lint_scenario(scn))
    assert found["MS101"] == "mesh.api.retries.retryOn"
    assert found["MS301"] == "mesh.api.outlierDetection.maxEjectionPercent"
    assert "MS302" not in found  # Istio's outlierDetection turns panic off (minHealthPercent 0)


def test_version_level_blocks_are_named_where_written() -> None:
    scn = scenario(
        {"routes": [{"route": {"v1": 80, "v2": 20}}],
         "subsets": [{"name": "v2", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 3}}}]},
        api={"versions": {"v1": {"replicas": 3}, "v2": {"replicas": 2}}})
    f = next(f for f in lint_scenario(scn) if f.code == "MS301")
    assert f.path == "mesh.api.subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent"
    assert "api v2" in f.message and "2 hosts" in f.message


def test_panic_threshold_carried_by_istio_outlier_block_is_named_there() -> None:
    scn = scenario({"outlierDetection": {"consecutive5xxErrors": 3, "maxEjectionPercent": 100,
                                         "minHealthPercent": 50}}, api={"replicas": 3})
    found = codes(lint_scenario(scn))
    assert found["MS302"] == "mesh.api.outlierDetection.minHealthPercent"


def test_a_single_replica_with_ejection_allowed_is_cancelled_by_panic() -> None:
    f = next(f for f in lint_scenario(scenario({"outlier_detection": {**OD, "always_eject_one_host": True}},
                                               api={"replicas": 1})) if f.code == "MS302")
    assert "one host" in f.message and f.value == "50 (default)"


def test_service_level_blocks_inherited_by_routes_are_reported_once() -> None:
    scn = scenario({"fault": {"abort": {"http_status": 503}},
                    "routes": [{"match": [{"headers": {"x": {"exact": "1"}}}]}, {"name": "rest"}]})
    assert [f.code for f in lint_scenario(scn)] == ["MS401"]


def test_severities_follow_the_code_table() -> None:
    scn = scenario({"timeout": 0, "fault": {"abort": {"http_status": 503}}})
    sev = {f.code: f.severity for f in lint_scenario(scn)}
    assert sev == {"MS202": Severity.INFO, "MS401": Severity.WARNING}


SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
#: what each bundled scenario shows on purpose (anything else is a mistake in the scenario)
INTENDED = {
    "bookinfo": set(),
    "circuit-breaker": set(),
    "header-canary": set(),
    "mmc": {"MS202"},  # a bare queue: the route timeout is disabled on purpose
    "outlier-ejection": set(),  # sets max_ejection_percent 50 to avoid MS301 (its comment explains the trap)
    "retry-storm": {"MS107"},  # the retry breaker refusing some of db's retries is part of the demonstration
    "zone-outage": set(),
}


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_scenarios_show_only_their_intended_traps(path: Path) -> None:
    # a new bundled scenario shows no trap unless it is listed above with the reason
    assert {f.code for f in lint_scenario(load_scenario(path))} == INTENDED.get(path.stem, set())


def test_the_outlier_scenario_without_its_fix_shows_the_trap() -> None:
    from meshsim.config import apply_overrides

    scn = apply_overrides(load_scenario(SCENARIOS / "outlier-ejection.yaml"),
                          {"mesh.backend.outlier_detection": {"consecutive_5xx": 5, "interval": "1s"}})
    (f,) = lint_scenario(scn)
    assert f.code == "MS301" and f.value == "10 (default)" and "5 hosts" in f.message


def test_outlier_detection_on_a_one_host_cluster_is_a_note() -> None:
    (f,) = lint_scenario(scenario({"outlier_detection": OD}, api={"replicas": 1}), measure=True)
    assert (f.code, f.severity, f.effect) == ("MS301", Severity.INFO, None)
    assert "one host" in f.message and "panic" in f.message
