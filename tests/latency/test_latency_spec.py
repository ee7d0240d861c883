"""``LatencySpec`` / ``parse_latency``: shorthands, discriminated types and error messages."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from meshsim import ConfigError, MeshsimError
from meshsim.latency import (
    LATENCY_TYPES,
    Constant,
    Exponential,
    Gamma,
    LatencyModel,
    LatencySpec,
    LogNormal,
    parse_latency,
)


class Service(BaseModel):
    """How config/ is expected to use the field type."""

    latency: LatencySpec


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("20ms", Constant(value=0.02)),
        (0.02, Constant(value=0.02)),
        (1, Constant(value=1.0)),
        ("1.5s", Constant(value=1.5)),
        ({"p50": "20ms", "p99": "200ms"}, LogNormal(p50=0.02, p99=0.2)),
        ({"p90": 0.1, "p999": "1s"}, LogNormal(p90=0.1, p999=1.0)),
        ({"type": "exponential", "mean": "20ms"}, Exponential(mean=0.02)),
        ({"type": "exponential", "rate": "3k/min"}, Exponential(rate=50.0)),
        ({"type": "gamma", "mean": "20ms", "stdev": "5ms"}, Gamma(mean=0.02, stdev=0.005)),
    ],
)
def test_shorthands_and_types(given, expected):
    assert parse_latency(given) == expected
    assert Service(latency=given).latency == expected


def test_models_pass_through_unchanged():
    m = LogNormal(p50="20ms", p99="200ms")
    assert parse_latency(m) is m
    assert Service(latency=m).latency is m


def test_every_type_is_reachable():
    examples = {
        "constant": {"value": "1ms"},
        "exponential": {"mean": "1ms"},
        "uniform": {"low": "1ms", "high": "2ms"},
        "lognormal": {"mu": -3, "sigma": 1},
        "gamma": {"shape": 2, "scale": "1ms"},
        "weibull": {"shape": 2, "scale": "1ms"},
        "pareto": {"scale": "1ms", "shape": 2},
        "empirical": {"samples": ["1ms", "2ms"]},
        "histogram": {"buckets": [{"le": "1ms", "count": 1}]},
        "mixture": {"components": [{"weight": 1, "model": "1ms"}]},
    }
    assert set(examples) == set(LATENCY_TYPES)
    for kind, fields in examples.items():
        m = parse_latency({"type": kind, **fields})
        assert isinstance(m, LatencyModel) and m.type == kind
        assert m.describe().startswith(kind + "(")


def error_of(obj) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_latency(obj, path="services.reviews.latency")
    assert isinstance(info.value, ValueError) and isinstance(info.value, MeshsimError)
    return info.value


def test_bad_unit_names_what_is_allowed():
    err = error_of("20 parsecs")
    assert "'20 parsecs' is not a latency" in str(err) and "250ms" in str(err)
    err = error_of({"type": "constant", "value": "20 parsecs"})
    assert str(err).startswith("services.reviews.latency.value: '20 parsecs' is not a duration such as 250ms")
    assert err.path == "services.reviews.latency.value"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "constant", "value": "-5ms"}, r"latency\.value: '-5ms' is negative"),
        ({"type": "exponential", "mean": 0}, r"latency\.mean: 0 must be a positive duration"),
        ({"type": "exponential", "rate": "-3/s"}, r"latency\.rate: '-3/s' is negative"),
        ({"type": "lognormal", "p50": "-20ms", "p99": "1s"}, r"latency\.p50: '-20ms' is negative"),
        (
            {"type": "lognormal", "mu": 0, "sigma": -1},
            r"latency\.sigma: Input should be greater than 0; got -1",
        ),
        ({"type": "gamma", "shape": -2, "scale": 1}, r"latency\.shape: Input should be greater than 0"),
        ({"type": "pareto", "scale": "1ms", "shape": 0}, r"latency\.shape: Input should be greater than 0"),
        ({"type": "weibull", "shape": 1, "scale": 0}, r"latency\.scale: 0 must be a positive duration"),
        (
            {"type": "uniform", "low": "5ms", "high": "1ms"},
            r"uniform needs low <= high; got low=5ms, high=1ms",
        ),
    ],
)
def test_negative_and_out_of_range_values(obj, message):
    with pytest.raises(ConfigError, match=message):
        parse_latency(obj)


def test_wrong_percentile_order():
    err = error_of({"p50": "200ms", "p99": "20ms"})
    assert "percentiles must increase with the level: p50=200ms is not below p99=20ms" in str(err)
    err = error_of({"p50": "20ms", "p99": "20ms"})
    assert "p50=20ms is not below p99=20ms" in str(err)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"p50": "20ms"}, "needs exactly two of p50, p75, p90, p95, p99, p999; got 1 (p50)"),
        ({"p50": "20ms", "p90": "50ms", "p99": "200ms"}, "got 3 (p50, p90, p99)"),
        (
            {"p50": "20ms", "p99": "200ms", "mu": -3},
            "exactly one parameterisation: (mu, sigma), (mean, stdev)",
        ),
        ({"type": "lognormal", "mu": -3}, "`mu` and `sigma` must be given together"),
        ({"type": "lognormal", "mean": "20ms"}, "`mean` and `stdev` must be given together"),
        ({"type": "lognormal"}, "got nothing"),
        ({"type": "gamma", "shape": 2, "mean": "20ms"}, "(shape, scale) or (mean, stdev); got shape, mean"),
        (
            {"type": "exponential", "mean": "20ms", "rate": 50},
            "exactly one of `mean` (a duration) and `rate`",
        ),
        ({"type": "exponential"}, "exactly one of `mean`"),
    ],
)
def test_parameterisation_errors(obj, message):
    assert message in str(error_of(obj))


def test_unknown_type_lists_allowed_types():
    err = error_of({"type": "normal", "mean": "20ms"})
    assert str(err) == (
        "services.reviews.latency: unknown latency type 'normal'; allowed types: "
        "constant, exponential, uniform, lognormal, gamma, weibull, pareto, empirical, histogram, mixture"
    )
    assert "allowed types: constant" in str(error_of({"type": 3}))


def test_mean_without_type_is_ambiguous():
    err = error_of({"mean": "20ms"})
    assert "`mean` alone does not say which distribution; add a `type`" in str(err)
    assert "exponential" in str(err)
    err = error_of({"mean": "20ms", "stdev": "5ms"})
    assert "add a `type`" in str(err)


def test_mapping_without_type_or_percentiles():
    assert "needs a `type`, one of constant" in str(error_of({"value": "20ms"}))


def test_unusable_values():
    assert str(error_of(["20ms"])).endswith("got list")
    assert str(error_of(True)).endswith("got bool")  # bools are not durations
    assert str(error_of(None)).endswith("got NoneType")
    assert "expected a latency: a duration such as 20ms, or a mapping with a `type`" in str(error_of(None))


def test_extra_fields_are_forbidden():
    err = error_of({"type": "constant", "value": "1ms", "jitter": "1ms"})
    assert "services.reviews.latency.jitter: Extra inputs are not permitted" in str(err)


def test_field_type_reports_pydantic_path():
    with pytest.raises(ValidationError) as info:
        Service(latency={"type": "lognormal", "p50": "20 parsecs", "p99": "1s"})
    (error,) = info.value.errors()
    assert error["loc"][0] == "latency" and error["loc"][-1] == "p50"
    assert "'20 parsecs' is not a duration such as 250ms" in error["msg"]


def test_source_file_prefixes_the_message():
    with pytest.raises(ConfigError) as info:
        parse_latency("soon", path="latency", source="scenario.yaml")
    assert str(info.value).startswith("scenario.yaml: latency: 'soon' is not a latency")
    assert info.value.source == "scenario.yaml"


def test_json_schema_is_available():
    from pydantic import TypeAdapter

    schema = TypeAdapter(LatencySpec).json_schema()
    assert "oneOf" in schema or "anyOf" in schema
