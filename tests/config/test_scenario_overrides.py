"""apply_overrides: dotted paths, string values, re-validation."""

from __future__ import annotations

from typing import Any

import pytest

from meshsim import ConfigError
from meshsim.config import apply_overrides, parse_scenario


def test_simple_overrides(full: dict[str, Any]) -> None:
    s = parse_scenario(full, source="bookinfo.yaml")
    t = apply_overrides(s, {"services.reviews.replicas": 3, "seed": "9", "duration": "2m"})
    assert (t.services["reviews"].replicas, t.seed, t.duration) == (3, 9, 120.0)
    assert t.source == "bookinfo.yaml"
    # the original is unchanged
    assert (s.services["reviews"].replicas, s.seed, s.duration) == (1, 7, 60.0)


def test_lists_by_index_and_by_name(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    t = apply_overrides(
        s, {"traffic[0].rate": "300/s", "traffic.testers.users": "9", "traffic.1.arrivals": "poisson"}
    )
    assert t.traffic[0].rate == 300.0
    assert t.traffic[2].users == 9
    assert t.traffic[1].arrivals == "poisson"
    t = apply_overrides(s, {"traffic.traffic-1.schedule[0].rate": "50/s"})
    assert t.traffic[1].schedule is not None and t.traffic[1].schedule[0].rate == 50.0


def test_nested_fields_and_yaml_values(full: dict[str, Any]) -> None:
    s = parse_scenario(full)
    t = apply_overrides(
        s,
        {
            "services.reviews.versions.v2.latency": "{p50: 5ms, p99: 50ms}",
            "services.details.zones": "[x, y]",
            "services.details.zone": None,
            "mesh.reviews.routes[1].route": {"v1": 50, "v3": 50},
            "network.latency": "1ms",
        },
    )
    v2 = t.services["reviews"].resolved_versions("reviews")["v2"]
    assert v2.latency.quantile(0.5) == pytest.approx(0.005)
    assert t.services["details"].zones == ("x", "y")
    assert [d.weight for d in t.mesh["reviews"].routes[1].destinations] == [50, 50]
    assert t.network.latency.mean() == pytest.approx(0.001)


def test_istio_key_is_followed(minimal: dict[str, Any]) -> None:
    minimal["mesh"] = {"back": {"http": [{"route": "v1"}]}}
    t = apply_overrides(parse_scenario(minimal), {"mesh.back.routes[0].route": "v2"})
    assert t.mesh["back"].routes[0].destinations[0].version == "v2"


def test_new_field_is_validated(minimal: dict[str, Any]) -> None:
    s = parse_scenario(minimal)
    t = apply_overrides(s, {"services.back.versions.v2.replicas": 4, "max_depth": 3})
    assert t.services["back"].resolved_versions("back")["v2"].replicas == 4
    assert t.max_depth == 3


def test_a_new_service_may_be_added_whole(minimal: dict[str, Any]) -> None:
    t = apply_overrides(parse_scenario(minimal), {"services.extra": {"latency": "1ms"}})
    assert "extra" in t.services


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (
            {"services.bak.replicas": 3},
            "overrides: 'services.bak.replicas': there is no 'bak'; did you mean 'back'?",
        ),
        ({"services.back.versions.v3.replicas": 3}, "there is no 'v3'"),
        ({"traffic[5].rate": "1/s"}, "index 5 is out of range (0..0)"),
        ({"traffic.userz.rate": "1/s"}, "no item named 'userz'"),
        ({"services..replicas": 1}, "is not a field path"),
        ({"services.back.latency.p50": "1ms"}, "services.back.latency is '5ms', not a mapping"),
        ({"services.back.replicaz": 3}, "services.back: unknown key 'replicaz'; did you mean 'replicas'?"),
        ({"services.back.replicas": "many"}, "services.back.replicas: 'many' is not a count"),
        ({"traffic[0].rate": "0/s"}, "traffic[0].rate: '0/s' must be a rate > 0"),
        ({"warmup": "1h"}, "warmup: 1h must be shorter than duration"),
    ],
)
def test_bad_overrides(minimal: dict[str, Any], overrides: dict[str, Any], needle: str) -> None:
    s = parse_scenario(minimal)
    with pytest.raises(ConfigError) as info:
        apply_overrides(s, overrides)
    assert needle in str(info.value)


def test_scenario_built_directly_can_be_overridden() -> None:
    from meshsim.config import Scenario

    s = Scenario.model_validate(
        {
            "name": "x",
            "duration": "5s",
            "services": {"a": {"latency": "1ms", "script": [{"call": "b"}]}, "b": {"latency": "1ms"}},
            "traffic": [{"to": "a", "rate": 1}],
        }
    )
    t = apply_overrides(s, {"services.b.replicas": 2})
    assert t.services["b"].replicas == 2 and t.source == "<scenario>"
