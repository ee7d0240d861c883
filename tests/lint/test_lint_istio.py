"""Istio VirtualService / DestinationRule input, and the same trap in all three input forms."""

from __future__ import annotations

import pytest
from lint_cases import bootstrap, codes, destination_rule, scenario, virtual_service

from meshsim import ConfigError
from meshsim.lint import Severity, lint_envoy, lint_files, lint_istio, lint_scenario

ROUTE = [{"destination": {"host": "api"}}]

#: code -> (documents, expected path, expected document)
TRAPS = {
    "MS101": ([virtual_service([{"route": ROUTE, "timeout": "3s",
                                 "retries": {"attempts": 2, "retryOn": "5xx,gateway-errors"}}])],
              "spec.http[0].retries.retryOn", "1, VirtualService api"),
    "MS103": ([virtual_service([{"route": ROUTE, "timeout": "3s"}])], "spec.http[0].retries",
              "1, VirtualService api"),
    "MS201": ([virtual_service([{"route": ROUTE, "timeout": "1s",
                                 "retries": {"attempts": 2, "retryOn": "5xx", "perTryTimeout": "1s"}}])],
              "spec.http[0].retries.perTryTimeout", "1, VirtualService api"),
    "MS202": ([virtual_service([{"route": ROUTE, "retries": {"attempts": 2, "retryOn": "5xx"}}])],
              "spec.http[0].timeout", "1, VirtualService api"),
    "MS301": ([destination_rule({"outlierDetection": {"consecutive5xxErrors": 5}})],
              "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "1, DestinationRule api"),
    "MS302": ([destination_rule({"outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 100,
                                                      "minHealthPercent": 50}})],
              "spec.trafficPolicy.outlierDetection.minHealthPercent", "1, DestinationRule api"),
    "MS304": ([destination_rule({"outlierDetection": {"consecutiveLocalOriginFailures": 3,
                                                      "maxEjectionPercent": 50}})],
              "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors", "1, DestinationRule api"),
    "MS401": ([virtual_service([{"route": ROUTE, "timeout": "3s", "retries": {"attempts": 2, "retryOn": "5xx"},
                                 "fault": {"abort": {"httpStatus": 503}}}])],
              "spec.http[0].fault.abort.percentage", "1, VirtualService api"),
    "MS501": ([virtual_service([{"route": [{"destination": {"host": "api", "subset": "v1"}}], "timeout": "3s",
                                 "retries": {"attempts": 2, "retryOn": "5xx"}}]),
               destination_rule(subsets=[{"name": "v1", "labels": {"version": "v1"}},
                                         {"name": "v2", "labels": {"version": "v2"},
                                          "trafficPolicy": {"connectionPool": {"http": {"maxRetries": 10}}}}])],
              "spec.subsets[1].trafficPolicy", "2, DestinationRule api"),
}


@pytest.mark.parametrize("code", sorted(TRAPS))
def test_each_trap_is_found_at_its_field(code: str) -> None:
    docs, path, document = TRAPS[code]
    findings = lint_istio(docs, file="istio.yaml")
    f = next((f for f in findings if f.code == code), None)
    assert f is not None, [str(x) for x in findings]
    assert (f.path, f.document, f.file) == (path, document, "istio.yaml")
    assert str(f).startswith(f"istio.yaml (document {document}): {path} = ")


def test_istio_defaults_are_notes_not_warnings() -> None:
    findings = lint_istio([virtual_service([{"route": ROUTE}])])
    assert {f.code: f.severity for f in findings} == {"MS103": Severity.INFO, "MS202": Severity.INFO}


def test_clean_istio_resources_have_no_findings() -> None:
    docs = [
        virtual_service([{"route": ROUTE, "timeout": "3s",
                          "retries": {"attempts": 2, "retryOn": "5xx,reset", "perTryTimeout": "1s"},
                          "fault": {"delay": {"fixedDelay": "10ms", "percentage": {"value": 1}}}}]),
        destination_rule({"outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 50},
                          "connectionPool": {"http": {"maxRetries": 10}}}),
    ]
    assert lint_istio(docs) == []


def test_a_subset_policy_replaces_the_top_level_block() -> None:
    dr = destination_rule({"outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 50}},
                          subsets=[{"name": "v2", "labels": {"version": "v2"},
                                    "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 3}}}])
    (f,) = lint_istio([dr])
    assert f.code == "MS301" and f.path == "spec.subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent"
    assert "api subset v2" in f.message


def test_resources_in_several_files_are_linted_together(write) -> None:
    vs = write("vs.yaml", virtual_service([{"route": [{"destination": {"host": "api.default.svc.cluster.local",
                                                                       "subset": "v1"}}],
                                            "timeout": "3s", "retries": {"attempts": 2, "retryOn": "5xx"}}]))
    dr = write("dr.yaml", destination_rule(subsets=[
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}, "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}]))
    (f,) = lint_files([vs, dr])
    assert (f.code, f.file, f.document) == ("MS501", dr, "1, DestinationRule api")


def test_an_invalid_istio_value_is_an_error_naming_the_document(write) -> None:
    path = write("bad.yaml", destination_rule({"outlierDetection": {"maxEjectionPercent": 150}}))
    with pytest.raises(ConfigError, match=r"bad.yaml: document 1 \(DestinationRule api\): .*maxEjectionPercent"):
        lint_files([path])


# ------------------------------------------------------------------------------------------ three forms

#: the same trap written as a scenario, an Envoy bootstrap and Istio resources
FORMS = {
    "MS101": (
        {"retries": {"retry_on": "5xx,gateway-errors", "allow_unknown": True}},
        {"route": {"retry_policy": {"retry_on": "5xx,gateway-errors"}}},
        [virtual_service([{"route": ROUTE, "retries": {"attempts": 1, "retryOn": "5xx,gateway-errors"}}])],
    ),
    "MS201": (
        {"timeout": "1s", "retries": {"retry_on": "5xx", "per_try_timeout": "1s"}},
        {"route": {"timeout": "1s", "retry_policy": {"retry_on": "5xx", "per_try_timeout": "1s"}}},
        [virtual_service([{"route": ROUTE, "timeout": "1s",
                           "retries": {"attempts": 1, "retryOn": "5xx", "perTryTimeout": "1s"}}])],
    ),
    "MS301": (
        {"outlier_detection": {"consecutive_5xx": 5}},
        {"cluster": {"outlier_detection": {"consecutive_5xx": 5}}},
        [destination_rule({"outlierDetection": {"consecutive5xxErrors": 5}})],
    ),
    "MS302": (
        {"outlier_detection": {"max_ejection_percent": 100, "healthy_panic_threshold": 50}},
        {"cluster": {"outlier_detection": {"max_ejection_percent": 100}}},
        [destination_rule({"outlierDetection": {"maxEjectionPercent": 100, "minHealthPercent": 50}})],
    ),
    "MS401": (
        {"fault": {"abort": {"http_status": 503}}},
        {"route_extra": {"typed_per_filter_config": {"envoy.filters.http.fault": {"abort": {"http_status": 503}}}}},
        [virtual_service([{"route": ROUTE, "fault": {"abort": {"httpStatus": 503}}}])],
    ),
}


@pytest.mark.parametrize("code", sorted(FORMS))
def test_the_same_trap_is_found_in_all_three_forms(code: str) -> None:
    mesh, envoy_kwargs, istio_docs = FORMS[code]
    assert code in codes(lint_scenario(scenario(mesh)))
    assert code in codes(lint_envoy(bootstrap(**envoy_kwargs)))
    assert code in codes(lint_istio(istio_docs))
