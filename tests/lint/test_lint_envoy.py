"""An Envoy v3 bootstrap: each trap found at its field path, a clean bootstrap has none, a refused one is an error."""

from __future__ import annotations

import pytest
from lint_cases import bootstrap, codes

from meshsim import ConfigError
from meshsim.lint import lint_envoy

HCM = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
ROUTE = f"{HCM}.route_config.virtual_hosts[0].routes[0]"
CLUSTER = "static_resources.clusters[0]"
FAULT = "envoy.filters.http.fault"
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
RL = {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    "stat_prefix": "rl", "token_bucket": {"max_tokens": 10, "tokens_per_fill": 10, "fill_interval": "1s"}}}

#: code -> (bootstrap(...) arguments, expected path)
TRAPS = {
    "MS101": ({"route": {"retry_policy": {"retry_on": "5xx,gateway-errors", "num_retries": 2}}},
              f"{ROUTE}.route.retry_policy.retry_on"),
    "MS102": ({"route": {"retry_policy": {"num_retries": 2}}}, f"{ROUTE}.route.retry_policy.retry_on"),
    "MS105": ({"route": {"retry_policy": {"retry_on": "connect-failure", "per_try_timeout": "0.3s"}}},
              f"{ROUTE}.route.retry_policy.per_try_timeout"),
    "MS106": ({"cluster": {"circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "retry_budget": {}}]}}},
              f"{CLUSTER}.circuit_breakers.thresholds[0].retry_budget"),
    "MS108": ({"route": {"retry_policy": {"retry_on": "5xx"}, "hedge_policy": {"hedge_on_per_try_timeout": True}}},
              f"{ROUTE}.route.hedge_policy.hedge_on_per_try_timeout"),
    "MS111": ({"vhost": {"retry_policy": {"retry_on": "5xx", "num_retries": 2}},
               "route": {"retry_policy": {"num_retries": 3}}}, f"{ROUTE}.route.retry_policy.retry_on"),
    "MS201": ({"route": {"timeout": "1s", "retry_policy": {"retry_on": "5xx", "per_try_timeout": "1s"}}},
              f"{ROUTE}.route.retry_policy.per_try_timeout"),
    "MS202": ({"route": {"timeout": "0s"}}, f"{ROUTE}.route.timeout"),
    "MS301": ({"cluster": {"outlier_detection": {"consecutive_5xx": 5}}},
              f"{CLUSTER}.outlier_detection.max_ejection_percent"),
    "MS302": ({"cluster": {"outlier_detection": {"max_ejection_percent": 100}}, "hosts": 3},
              f"{CLUSTER}.common_lb_config.healthy_panic_threshold"),
    "MS303": ({"cluster": {"outlier_detection": {"consecutive_gateway_failure": 3, "max_ejection_percent": 20}}},
              f"{CLUSTER}.outlier_detection.enforcing_consecutive_gateway_failure"),
    "MS401": ({"route_extra": {"typed_per_filter_config": {FAULT: {"@type": FAULT_TYPE,
                                                                   "abort": {"http_status": 503}}}}},
              f"{ROUTE}.typed_per_filter_config.{FAULT}.abort.percentage"),
    "MS411": ({"http_filters": [RL]}, f"{HCM}.http_filters[0].typed_config.filter_enabled"),
    "MS412": ({"http_filters": [RL]}, f"{HCM}.http_filters[0].typed_config.filter_enforced"),
}


@pytest.mark.parametrize("code", sorted(TRAPS))
def test_each_trap_is_found_at_its_field(code: str) -> None:
    kwargs, path = TRAPS[code]
    findings = lint_envoy(bootstrap(**kwargs), file="envoy.yaml")
    found = codes(findings)
    assert found.get(code) == path, [str(f) for f in findings]
    assert all(f.file == "envoy.yaml" and f.document is None for f in findings)


def test_a_clean_bootstrap_has_no_findings() -> None:
    rl = {**RL, "typed_config": {**RL["typed_config"],
                                 "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
                                                    "runtime_key": "rl_on"},
                                 "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
                                                     "runtime_key": "rl_enforced"}}}
    cfg = bootstrap(
        route={"timeout": "3s", "retry_policy": {"retry_on": "5xx,reset", "num_retries": 2, "per_try_timeout": "1s",
                                                 "retry_back_off": {"base_interval": "0.025s"}}},
        route_extra={"typed_per_filter_config": {FAULT: {"@type": FAULT_TYPE, "abort": {
            "http_status": 503, "percentage": {"numerator": 1, "denominator": "HUNDRED"}}}}},
        cluster={"circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "retry_budget": {
                     "budget_percent": {"value": 20.0}, "min_retry_concurrency": 3}}]},
                 "outlier_detection": {"consecutive_5xx": 5, "max_ejection_percent": 40},
                 "common_lb_config": {"healthy_panic_threshold": {"value": 0}}},
        http_filters=[{"name": FAULT, "typed_config": {"@type": FAULT_TYPE}}, rl],
    )
    assert lint_envoy(cfg, measure=True) == []


def test_a_virtual_host_retry_policy_is_linted_for_the_routes_that_inherit_it() -> None:
    cfg = bootstrap(vhost={"retry_policy": {"retry_on": "5xx,bogus", "num_retries": 2}})
    (f,) = lint_envoy(cfg)
    assert f.code == "MS101" and f.path == f"{HCM}.route_config.virtual_hosts[0].retry_policy.retry_on"


def test_an_eds_cluster_has_no_known_host_count_and_says_from_when_the_trap_applies() -> None:
    cfg = bootstrap(cluster={"type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}},
                             "outlier_detection": {"consecutive_5xx": 5}})
    del cfg["static_resources"]["clusters"][0]["load_assignment"]
    (f,) = lint_envoy(cfg, measure=True)
    assert f.code == "MS301" and "fewer than 10 endpoints" in f.message and f.effect is None


def test_fields_meshsim_does_not_model_are_not_refused() -> None:
    cfg = bootstrap(route={"retry_policy": {"retry_on": "5xx", "num_retries": 2,
                                            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.omit_canary_hosts"}],
                                            "rate_limited_retry_back_off": {"reset_headers": [{"name": "Retry-After"}]}}},
                    cluster={"lb_policy": "CLUSTER_PROVIDED",
                             "outlier_detection": {"consecutive_5xx": 5, "max_ejection_percent": 40,
                                                   "detect_degraded_hosts": True},
                             "common_lb_config": {"healthy_panic_threshold": {"value": 0},
                                                  "update_merge_window": "0s"}})
    assert lint_envoy(cfg) == []


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"route": {"retry_policy": {"retry_on": "5xx", "retry_back_off": {"base_interval": "1s", "max_interval": "0.1s"}}}},
     "retry_policy.retry_back_off"),
    ({"cluster": {"outlier_detection": {"max_ejection_percent": 150}}}, "outlier_detection.max_ejection_percent"),
])
def test_what_envoy_refuses_is_an_error_naming_the_field(kwargs, fragment) -> None:
    with pytest.raises(ConfigError, match="refuses") as err:
        lint_envoy(bootstrap(**kwargs), file="envoy.yaml")
    assert fragment in str(err.value) and str(err.value).startswith("envoy.yaml: ")
