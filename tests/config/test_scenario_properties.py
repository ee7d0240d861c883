"""Random valid small scenarios, built as plain dicts, parse without error and mean what they say."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshsim.config import Call, Parallel, Work, apply_overrides, parse_scenario
from meshsim.policies.routing import Router

LATENCIES = st.sampled_from(
    [
        "5ms",
        "1.5s",
        0.02,
        0,
        "250us",
        {"p50": "10ms", "p99": "80ms"},
        {"type": "exponential", "mean": "3ms"},
        {"type": "constant", "value": "1ms"},
        {"type": "uniform", "low": "1ms", "high": "2ms"},
    ]
)
ERRORS = st.sampled_from(["0.1%", 0.01, 0, {"rate": "2%", "status": 503}, None])
QUEUES = st.sampled_from([0, 5, 100, "unlimited", None])


@st.composite
def steps(draw: st.DrawFn, callees: list[str]) -> list[Any]:
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        kinds = ["work", "work5", "sleep"] + (["call", "call_full", "parallel"] if callees else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "work":
            out.append("work")
        elif kind == "work5":
            out.append({"work": draw(LATENCIES)})
        elif kind == "sleep":
            out.append({"sleep": draw(LATENCIES)})
        elif kind == "call":
            out.append({"call": draw(st.sampled_from(callees))})
        elif kind == "call_full":
            out.append(
                {
                    "call": {
                        "service": draw(st.sampled_from(callees)),
                        "probability": draw(st.sampled_from([1, 0.5, "80%", 0])),
                        "optional": draw(st.booleans()),
                    }
                }
            )
        else:
            n = draw(st.integers(1, 3))
            out.append({"parallel": [{"call": draw(st.sampled_from(callees))} for _ in range(n)]})
    return out


@st.composite
def placement(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "zone", "zones"]))
    if kind == "zone":
        return {"zone": draw(st.sampled_from(["a", "b"]))}
    if kind == "zones":
        return {"zones": draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3))}
    return {}


@st.composite
def service(draw: st.DrawFn, callees: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"latency": draw(LATENCIES)}
    if draw(st.booleans()):
        spec["replicas"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        spec["workers"] = draw(st.integers(1, 16))
    if draw(st.booleans()):
        spec["queue"] = draw(QUEUES)
    if draw(st.booleans()):
        spec["concurrency"] = draw(st.sampled_from(["blocking", "async"]))
    errors = draw(ERRORS)
    if errors is not None:
        spec["errors"] = errors
    spec.update(draw(placement()))
    if draw(st.booleans()):
        spec["script"] = draw(steps(callees))
    if draw(st.booleans()):
        versions: dict[str, Any] = {}
        for i in range(draw(st.integers(1, 3))):
            v: dict[str, Any] = {}
            if draw(st.booleans()):
                v["replicas"] = draw(st.integers(1, 3))
            if draw(st.booleans()):
                v["latency"] = draw(LATENCIES)
            if draw(st.booleans()):
                v["script"] = draw(steps(callees))
            v.update(draw(placement()))
            versions[f"v{i + 1}"] = v
        spec["versions"] = versions
    return spec


@st.composite
def routes(draw: st.DrawFn, name: str, versions: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        weights = draw(st.lists(st.integers(0, 100), min_size=len(versions), max_size=len(versions)))
        if sum(weights) == 0:
            weights[0] = 1
        spelling = draw(st.sampled_from(["short", "istio", "one"]))
        if spelling == "short":
            route: Any = dict(zip(versions, weights, strict=True))
        elif spelling == "istio":
            route = [
                {"destination": {"host": name, "subset": v}, "weight": w}
                for v, w in zip(versions, weights, strict=True)
            ]
        else:
            route = draw(st.sampled_from(versions))
        entry: dict[str, Any] = {"route": route}
        if draw(st.booleans()):
            entry["match"] = [{"headers": {"end-user": {"exact": "jason"}}, "uri": {"prefix": "/r"}}]
        out.append(entry)
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    names = [f"s{i}" for i in range(n)]
    services = {name: draw(service(names[i + 1 :])) for i, name in enumerate(names)}
    duration = draw(st.integers(1, 100))
    traffic: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 2))):
        src: dict[str, Any] = {"to": draw(st.sampled_from(names))}
        kind = draw(st.sampled_from(["rate", "schedule", "users"]))
        if kind == "rate":
            src["rate"] = draw(st.sampled_from(["10/s", 5, "600/min", 0.5]))
        elif kind == "schedule":
            src["schedule"] = [
                {"until": f"{duration // 2 + 1}s", "rate": "10/s"},
                {"until": f"{duration + 1}s", "ramp_to": "20/s"},
            ]
        else:
            src["users"] = draw(st.integers(1, 20))
            if draw(st.booleans()):
                src["think"] = draw(LATENCIES)
        if draw(st.booleans()):
            src["headers"] = {"end-user": {"jason": "5%", "bob": 0.5}, "x-env": "prod"}
        traffic.append(src)
    mesh = {}
    for name, spec in services.items():
        if "versions" in spec and draw(st.booleans()):
            mesh[name] = {
                draw(st.sampled_from(["routes", "http"])): draw(routes(name, list(spec["versions"])))
            }
    data: dict[str, Any] = {
        "name": "random",
        "duration": f"{duration}s",
        "warmup": f"{draw(st.integers(0, duration - 1))}s",
        "seed": draw(st.integers(0, 2**32)),
        "services": services,
        "traffic": traffic,
    }
    if mesh:
        data["mesh"] = mesh
    return data


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_valid_scenarios_parse(data: dict[str, Any]) -> None:
    s = parse_scenario(data)
    assert list(s.services) == list(data["services"])
    # resolution: every version has a latency, one zone per replica, a work step somewhere
    for name, spec in s.services.items():
        resolved = spec.resolved_versions(name)
        assert list(resolved) == list(data["services"][name].get("versions") or ["default"])
        for rv in resolved.values():
            assert rv.latency is not None
            assert len(rv.zones) == rv.replicas
            assert any(isinstance(step, Work) for step in rv.script)
    # the call graph is the one written, and acyclic by construction
    for name, callees in s.call_graph().items():
        written = {
            c["call"] if isinstance(c["call"], str) else c["call"]["service"]
            for sc in _scripts(data["services"][name])
            for c in _calls(sc)
        }
        assert callees == written
    # routers build for every routed service
    for name, policy in s.mesh.items():
        router = Router(policy.routing_policy(), s.services[name].version_names())
        assert router.select("/r", "GET", {"end-user": "jason"}, 0.5) in s.services[name].version_names()
    # parsing is deterministic, and an empty override re-validates to the same scenario
    assert parse_scenario(data) == s
    assert apply_overrides(s, {}) == s


def _scripts(spec: dict[str, Any]) -> list[list[Any]]:
    out = [spec.get("script") or []]
    out += [v.get("script") or [] for v in (spec.get("versions") or {}).values()]
    return out


def _calls(script: list[Any]) -> list[dict[str, Any]]:
    out = []
    for step in script:
        if isinstance(step, dict) and "call" in step:
            out.append(step)
        elif isinstance(step, dict) and "parallel" in step:
            out.extend(step["parallel"])
    return out


def test_step_models_compare_by_value() -> None:
    assert Call(service="a") == Call.model_validate({"call": "a"})
    assert Parallel.model_validate({"parallel": [{"call": "a"}]}).calls == (Call(service="a"),)
