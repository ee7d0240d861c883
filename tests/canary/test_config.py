"""The judge configuration (meshsim.canary.config): defaults, margins, validation messages, YAML files."""

from __future__ import annotations

import pytest

from meshsim import ConfigError
from meshsim.canary.config import Margin, load_judge_config, parse_judge_config, quantile_level


def test_names_only_get_defaults() -> None:
    cfg = parse_judge_config({"metrics": ["latency", "errors", "requests", "cpu", "latency_p99_s"]})
    kinds = {m.name: (m.kind, m.direction) for m in cfg.metrics}
    assert kinds == {
        "latency": ("latency", "increase"), "errors": ("error_rate", "increase"),
        "requests": ("throughput", "decrease"), "cpu": ("gauge", "increase"),
        "latency_p99_s": ("latency", "increase"),
    }
    lat = cfg.metric("latency")
    assert lat.quantiles == ("p50", "p90", "p99")
    assert lat.series_names == ("latency_p50_s", "latency_p90_s", "latency_p99_s")
    assert cfg.metric("latency_p99_s").quantiles == ("p99",)
    assert cfg.metric("errors").margin == Margin(value=0.001, relative=False)
    assert cfg.metric("errors").series_names == ("errors", "requests")
    assert cfg.decision.family_wise_error_rate == 0.01 and cfg.decision.confidence == 0.95
    assert cfg.decision.min_duration_s == 300 and cfg.decision.horizon_s == 10800
    assert cfg.mode == "meshsim"
    assert cfg.kayenta.pass_threshold == 95 and cfg.kayenta.marginal_threshold == 75
    assert cfg.kayenta.conf_level == 0.98 and cfg.kayenta.tolerance == 0.25


def test_list_and_mapping_forms_agree() -> None:
    a = parse_judge_config({"metrics": {"latency": {"margin": "5%"}, "errors": None}})
    b = parse_judge_config({"metrics": [{"name": "latency", "margin": "5%"}, "errors"]})
    assert a == b
    assert parse_judge_config(["latency"]).metrics[0].name == "latency"


@pytest.mark.parametrize(
    ("kind", "text", "value", "relative"),
    [
        ("latency", "5%", 0.05, True),
        ("latency", 0.05, 0.05, True),
        ("latency", "20ms", 0.02, False),
        ("errors", "0.1pp", 0.001, False),
        ("errors", 0.002, 0.002, False),
        ("errors", "50%", 0.5, True),
        ("cpu", 3, 3.0, False),
        ("cpu", "10%", 0.1, True),
    ],
)
def test_margins(kind: str, text: object, value: float, relative: bool) -> None:
    m = parse_judge_config({"metrics": [{"name": kind, "margin": text}]}).metrics[0].margin
    assert m.value == pytest.approx(value) and m.relative is relative


def test_rollback_above() -> None:
    m = parse_judge_config({"metrics": [{"name": "latency", "margin": "10%", "rollback_above": "margin"}]}).metrics[0]
    assert m.rollback_threshold == m.margin
    assert parse_judge_config(["latency"]).metrics[0].rollback_threshold.value == 0.0


def test_quantile_levels() -> None:
    assert quantile_level("p50") == 0.5 and quantile_level("p99") == 0.99
    assert quantile_level("p999") == pytest.approx(0.999) and quantile_level("p99.9") == pytest.approx(0.999)
    with pytest.raises(ValueError):
        quantile_level("q50")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"metricz": ["a"]}, ["unknown key 'metricz'", "did you mean 'metrics'"]),
        ({"metrics": [{"name": "latency", "margn": "5%"}]}, ["metrics[0]: unknown key 'margn'", "did you mean 'margin'"]),
        ({"metrics": {"latency": {"margin": "abc"}}}, ["metrics.latency.margin: 'abc' is not a margin"]),
        ({"metrics": [{"name": "latency", "kind": "latncy"}]}, ["metrics[0].kind", "did you mean 'latency'"]),
        ({"metrics": [{"name": "x", "direction": "up"}]}, ["metrics[0].direction: 'up' is not one of"]),
        ({"metrics": ["a"], "decision": {"family_wise_error_rate": 2}}, ["decision.family_wise_error_rate", "< 0.5"]),
        ({"metrics": ["a"], "decision": {"horizon": "soon"}}, ["decision.horizon", "not a duration"]),
        ({"metrics": ["a"], "decision": {"min_duration": "4h"}}, ["decision.min_duration", "longer than the horizon"]),
        ({"metrics": ["a"], "kayenta": {"pass": 50, "marginal": 80}}, ["kayenta.marginal", "above pass"]),
        ({"metrics": ["a", "a"]}, ["listed twice"]),
        ({"metrics": []}, ["at least one metric"]),
        ({"metrics": [{"name": "latency", "quantiles": ["p50", "x"]}]}, ["metrics[0].quantiles", "'x' is not a quantile"]),
        ({"metrics": [{"name": "errors", "quantiles": ["p50"]}]}, ["only latency metrics have quantiles"]),
        ({"metrics": [{"name": "errors", "kayenta": {"nan_strategy": "replaec"}}]},
         ["metrics[0].kayenta.nan_strategy", "did you mean 'replace'"]),
        ({"metrics": [{"name": "latency", "rollback_above": "20%"}]}, ["rollback_above", "above the margin"]),
        ({"metrics": [{"name": "latency", "margin": "1pp"}]}, ["percentage points apply to error rates"]),
        ({"metrics": [{"name": "x", "weight": 0}]}, ["metrics[0].weight: 0 is out of range; must be > 0"]),
        ({"mode": "spinnaker", "metrics": ["a"]}, ["mode: 'spinnaker' is not one of meshsim, kayenta"]),
        ({"metrics": ["a"], "decision": {"instances": "pods"}}, ["decision.instances: 'pods' is not one of",
                                                                 "separate", "shared"]),
        ({"metrics": ["a"], "decision": {"instances": "shared", "instance_noise": "5%"}},
         ["decision", "instance_noise: 0.05", "instances is 'shared'"]),
    ],
)
def test_errors_are_one_line_with_path(data: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_judge_config(data)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("<judge config>: ")
    for part in expected:
        assert part in msg


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match="top level is a int"):
        parse_judge_config(3)  # type: ignore[arg-type]


def test_yaml_files(tmp_path) -> None:
    cfg = load_judge_config("examples/canary/judge.yaml")
    assert [m.name for m in cfg.metrics] == ["latency", "errors"] and cfg.metric("errors").weight == 2
    bad = tmp_path / "j.yaml"
    bad.write_text("metrics: [latency\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_judge_config(bad)
    empty = tmp_path / "e.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_judge_config(empty)
    with pytest.raises(ConfigError, match="no such file"):
        load_judge_config(tmp_path / "missing.yaml")
