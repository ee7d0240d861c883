"""Each invalid input gives one ConfigError naming the field path, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshsim import ConfigError
from meshsim.config import parse_scenario

Mutation = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Mutation:
    """Set a dotted path (``services.back.replicas``; ``traffic.0.rate``) in the raw scenario."""

    def mutate(d: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = d
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = d
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return mutate


def both(*ms: Mutation) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        for m in ms:
            m(d)

    return mutate


CASES: list[tuple[str, Mutation, list[str]]] = [
    # unknown keys, with a suggestion
    (
        "unknown top key",
        put("durration", "5s"),
        ["<scenario>: ", "unknown key 'durration'", "did you mean 'duration'"],
    ),
    (
        "unknown service key",
        put("services.back.replicaz", 2),
        ["services.back: unknown key 'replicaz'", "did you mean 'replicas'", "allowed: replicas, workers"],
    ),
    (
        "unknown traffic key",
        put("traffic.0.thnk", "1s"),
        ["traffic[0]: unknown key 'thnk'", "did you mean 'think'"],
    ),
    (
        "unknown call key",
        put("services.front.script", [{"call": {"service": "back", "probabilty": 0.5}}]),
        ["services.front.script[0].call: unknown key 'probabilty'", "did you mean 'probability'"],
    ),
    (
        "unknown route key",
        put("mesh", {"back": {"routes": [{"mach": {}, "route": "v1"}]}}),
        ["mesh.back.routes[0]: unknown key 'mach'", "did you mean 'match'"],
    ),
    (
        "unknown latency key",
        put("services.back.latency", {"type": "exponential", "mean": "1ms", "mena": 1}),
        ["services.back.latency", "'mena'"],
    ),
    (
        "unknown error key",
        put("services.back.errors", {"rate": "1%", "stauts": 503}),
        ["services.back.errors: unknown key 'stauts'", "did you mean 'status'"],
    ),
    (
        "unknown step",
        put("services.front.script", ["wrok"]),
        ["services.front.script[0]: 'wrok' is not a step", "did you mean 'work'"],
    ),
    # units
    (
        "wrong unit",
        put("services.back.versions.v2", {"latency": {"p50": "1ms", "p99": "20 parsecs"}}),
        ["services.back.versions.v2.latency.p99: '20 parsecs' is not a duration such as 250ms"],
    ),
    (
        "not a latency",
        put("services.back.latency", "fast"),
        ["services.back.latency: 'fast' is not a latency"],
    ),
    ("bad duration", put("duration", "soon"), ["duration: 'soon' is not a duration"]),
    ("zero duration", put("duration", "0s"), ["duration: '0s' must be a duration > 0"]),
    ("zero rate", put("traffic.0.rate", "0/s"), ["traffic[0].rate: '0/s' must be a rate > 0"]),
    ("negative rate", put("traffic.0.rate", "-3/s"), ["traffic[0].rate: '-3/s' is negative"]),
    (
        "rate with bad unit",
        put("traffic.0.rate", "10/fortnight"),
        ["traffic[0].rate: '10/fortnight' is not a rate"],
    ),
    (
        "probability 1.5",
        put("services.front.script", [{"call": {"service": "back", "probability": 1.5}}]),
        ["services.front.script[0].call.probability: 1.5 is outside [0, 1]"],
    ),
    ("error rate 150%", put("services.back.errors", "150%"), ["services.back.errors: '150%'"]),
    (
        "header frequencies > 1",
        put("traffic.0.headers", {"end-user": {"jason": "60%", "bob": "50%"}}),
        ["traffic[0].headers.end-user: frequencies {jason: 0.6, bob: 0.5} sum to 1.1 > 1"],
    ),
    # counts and choices
    (
        "zero replicas",
        put("services.back.replicas", 0),
        ["services.back.replicas: 0 is too small; must be an integer >= 1"],
    ),
    ("fractional workers", put("services.back.workers", 1.5), ["services.back.workers: 1.5"]),
    (
        "negative queue",
        put("services.back.queue", -1),
        ["services.back.queue: -1 is not a queue size", "'unlimited'"],
    ),
    (
        "bad concurrency",
        put("services.back.concurrency", "asynch"),
        ["services.back.concurrency: 'asynch' is not one of 'blocking' or 'async'", "did you mean 'async'"],
    ),
    ("bad record", put("record", "everything"), ["record: 'everything' is not one of 'full' or 'summary'"]),
    ("negative seed", put("seed", -1), ["seed: -1 is not a seed"]),
    (
        "zero users",
        both(drop("traffic.0.rate"), put("traffic.0.users", 0)),
        ["traffic[0].users: 0 is too small"],
    ),
    ("bad arrivals", put("traffic.0.arrivals", "bursty"), ["traffic[0].arrivals: 'bursty' is not one of"]),
    (
        "bad path",
        put("traffic.0.path", "productpage"),
        ["traffic[0].path: 'productpage' is not a request path"],
    ),
    (
        "bad service name",
        put("services", {"bad.name": {"latency": "1ms"}}),
        ["'bad.name' is not a valid name"],
    ),
    # required keys and shapes
    ("missing duration", drop("duration"), ["<scenario>: missing required key 'duration'"]),
    ("missing to", drop("traffic.0.to"), ["traffic[0]: missing required key 'to'"]),
    ("no latency", drop("services.back.latency"), ["services.back.latency: latency is required", "v1, v2"]),
    ("services not a mapping", put("services", ["a"]), ["services: expected a mapping, got ['a']"]),
    ("empty traffic", put("traffic", []), ["traffic: traffic is empty"]),
    (
        "two kinds of traffic",
        put("traffic.0.users", 3),
        ["traffic[0]: give exactly one of rate, schedule", "rate and users"],
    ),
    (
        "think on open loop",
        put("traffic.0.think", "1s"),
        ["traffic[0].think: think applies to closed-loop sources"],
    ),
    (
        "arrivals on closed loop",
        put("traffic.0", {"to": "front", "users": 2, "arrivals": "uniform"}),
        ["traffic[0].arrivals: arrivals applies to open-loop sources"],
    ),
    (
        "schedule not increasing",
        put(
            "traffic.0",
            {"to": "front", "schedule": [{"until": "10s", "rate": "1/s"}, {"until": "5s", "rate": "2/s"}]},
        ),
        ["traffic[0].schedule[1].until: until 5s must be later than the previous segment's end (10s)"],
    ),
    (
        "segment with rate and ramp",
        put("traffic.0", {"to": "front", "schedule": [{"until": "10s", "rate": "1/s", "ramp_to": "2/s"}]}),
        ["traffic[0].schedule[0]: give exactly one of rate (constant) and ramp_to"],
    ),
    (
        "step with two keys",
        put("services.front.script", [{"call": "back", "probability": 0.5}]),
        ["services.front.script[0]: a step is a mapping with one key", "'call', 'probability'"],
    ),
    (
        "work inside parallel",
        put("services.front.script", [{"parallel": [{"call": "back"}, "work"]}]),
        ["services.front.script[0].parallel[1]: 'work' is not a call; only calls may run in parallel"],
    ),
    # cross-field checks
    ("warmup >= duration", put("warmup", "10s"), ["warmup: 10s must be shorter than duration (10s)"]),
    (
        "zone and zones",
        both(put("services.back.zone", "a"), put("services.back.zones", ["a", "b"])),
        ["services.back.zones: give either zone ('a') or zones (['a', 'b']), not both"],
    ),
    (
        "traffic to missing service",
        put("traffic.0.to", "frnt"),
        ["traffic[0].to: 'frnt' is not a service; did you mean 'front'?"],
    ),
    (
        "call to missing service",
        put("services.front.script", [{"call": "bck"}, {"call": "backk"}]),
        ["services.front.script[0].call: 'bck' is not a service; did you mean 'back'?"],
    ),
    (
        "call to missing service in a version",
        put("services.back.versions.v2", {"script": [{"parallel": [{"call": "nope"}]}]}),
        ["services.back.versions.v2.script[0].parallel[0].call: 'nope' is not a service"],
    ),
    (
        "cycle without max_depth",
        put("services.back.script", [{"call": "front"}]),
        ["max_depth: the call graph has a cycle front -> back -> front", "set max_depth"],
    ),
    (
        "weights all zero",
        put("mesh", {"back": {"routes": [{"route": {"v1": 0, "v2": 0}}]}}),
        ["mesh.back.routes[0].route: weights {v1: 0, v2: 0} have a zero total"],
    ),
    (
        "negative weight",
        put("mesh", {"back": {"routes": [{"route": {"v1": -1, "v2": 5}}]}}),
        ["mesh.back.routes[0].route.v1: -1 is out of range; must be >= 0"],
    ),
    (
        "unknown version in route",
        put("mesh", {"back": {"routes": [{"route": {"v1": 50, "v3": 50}}]}}),
        ["mesh.back.routes[0].route.v3: 'v3' is not a version of back", "versions: v1, v2"],
    ),
    (
        "unknown subset in Istio spelling",
        put(
            "mesh",
            {
                "back": {
                    "http": [{"route": [{"destination": {"host": "back", "subset": "v2x"}, "weight": 100}]}]
                }
            },
        ),
        ["mesh.back.http[0].route[0]: 'v2x' is not a version of back; did you mean 'v2'?"],
    ),
    (
        "other host in route",
        put("mesh", {"back": {"http": [{"route": [{"destination": {"host": "front", "subset": "v1"}}]}]}}),
        ["host 'front' is not 'back'"],
    ),
    (
        "version on a service without versions",
        put("mesh", {"front": {"routes": [{"route": "v1"}]}}),
        ["mesh.front.routes[0].route: 'v1' is not a version: front declares no versions"],
    ),
    (
        "mesh key not a service",
        put("mesh", {"bak": {"routes": []}}),
        ["mesh.bak: 'bak' is not a service; did you mean 'back'?"],
    ),
    (
        "bad regex",
        put("mesh", {"back": {"routes": [{"match": {"headers": {"x": {"regex": "(("}}}, "route": "v1"}]}}),
        ["mesh.back.routes[0].match.headers.x: '((' is not a valid regex"],
    ),
    (
        "bad regex in a match list",
        put(
            "mesh",
            {
                "back": {
                    "routes": [
                        {"match": [{"uri": {"prefix": "/"}}, {"uri": {"regex": "(?<=a)b"}}], "route": "v1"}
                    ]
                }
            },
        ),
        ["mesh.back.routes[0].match[1].uri: regex '(?<=a)b' uses look-around", "RE2"],
    ),
    (
        "two string matchers",
        put("mesh", {"back": {"routes": [{"match": {"uri": {"exact": "/", "prefix": "/"}}, "route": "v1"}]}}),
        ["mesh.back.routes[0].match.uri: give exactly one of exact, prefix, regex; got exact and prefix"],
    ),
    (
        "duplicate source names",
        put("traffic", [{"to": "front", "rate": 1, "name": "u"}, {"to": "front", "rate": 1, "name": "u"}]),
        ["traffic[1].name: source name 'u' is used twice"],
    ),
]


@pytest.mark.parametrize(("mutate", "needles"), [pytest.param(m, n, id=i) for i, m, n in CASES])
def test_invalid_scenarios(mutate: Mutation, needles: list[str], minimal: dict[str, Any]) -> None:
    data = minimal
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_scenario(data)
    message = str(info.value)
    assert "\n" not in message
    assert "errors.pydantic.dev" not in message and "For further information" not in message
    assert message.startswith("<scenario>: ")
    for needle in needles:
        assert needle in message, message


def test_error_carries_path_and_source(minimal: dict[str, Any]) -> None:
    data = minimal
    data["traffic"][0]["rate"] = "0/s"
    with pytest.raises(ConfigError) as info:
        parse_scenario(data, source="demo.yaml")
    assert str(info.value).startswith("demo.yaml: traffic[0].rate: ")
    assert info.value.path == "traffic[0].rate"
    assert info.value.source == "demo.yaml"


def test_several_problems_are_counted(minimal: dict[str, Any]) -> None:
    data = minimal
    data["traffic"][0]["rate"] = "0/s"
    data["services"]["back"]["replicas"] = 0
    with pytest.raises(ConfigError) as info:
        parse_scenario(data)
    assert "(and 1 more problem)" in str(info.value)
    assert len(info.value.problems) == 2  # type: ignore[attr-defined]


def test_traffic_mapping_paths_use_the_source_name(minimal: dict[str, Any]) -> None:
    data = minimal
    data["traffic"] = {"users": {"to": "front", "rate": "x/s"}}
    with pytest.raises(ConfigError, match=r"traffic\.users\.rate: 'x/s' is not a rate"):
        parse_scenario(data)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_scenario({"name": "x"})


@pytest.mark.parametrize("top", [None, [], "name: x", 5])
def test_top_level_must_be_a_mapping(top: Any) -> None:
    with pytest.raises(ConfigError, match="a scenario is a mapping"):
        parse_scenario(top)
