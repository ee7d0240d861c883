"""Linting a meshsim scenario: every written policy block, every route, every cluster the engine builds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshsim.lint._checks import Probe, cluster_checks, route_checks, route_skip
from meshsim.lint._finding import Finding
from meshsim.lint._load import estimate_load, main_route_index, retry_pressure
from meshsim.lint._views import Block, ClusterView, Report, RouteView
from meshsim.policies import fault as _fault
from meshsim.policies import load_balancer as _lb
from meshsim.policies import outlier as _outlier
from meshsim.policies import rate_limit as _rate_limit
from meshsim.policies import retry as _retry
from meshsim.policies import timeout as _timeout

__all__ = ["lint_scenario"]

#: how a block may be spelled under a service or version (meshsim, Istio)
_KEYS = {
    "circuit_breakers": ("circuit_breakers", "connectionPool"),
    "outlier_detection": ("outlier_detection", "outlierDetection"),
    "load_balancer": ("load_balancer", "loadBalancer"),
    "health_check": ("health_check",),
    "timeout": ("timeout",),
    "retries": ("retries",),
    "fault": ("fault",),
    "rate_limit": ("rate_limit",),
}
_WRAPPERS = ("traffic_policy", "trafficPolicy")
#: the estimated share of retries refused above which MS107 is reported
RETRY_OVERFLOW_THRESHOLD = 0.01


def _m(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _find(node: Any, name: str, prefix: str) -> tuple[str, Any]:
    """Where block ``name`` is written in ``node`` (a service or version entry): ``(path, raw)``."""
    node = _m(node)
    for key in _KEYS.get(name, (name,)):
        if key in node:
            return f"{prefix}.{key}", node[key]
    for wrapper in _WRAPPERS:
        inner = _m(node.get(wrapper))
        for key in _KEYS.get(name, (name,)):
            if key in inner:
                return f"{prefix}.{wrapper}.{key}", inner[key]
    return f"{prefix}.{_KEYS.get(name, (name,))[0]}", None


class _Service:
    """One ``mesh.<service>`` entry: its raw form, for field paths as written."""

    def __init__(self, scenario: Any, name: str) -> None:
        self.name = name
        self.mesh = scenario.mesh[name]
        raw = _m(_m(getattr(scenario, "_raw", None)).get("mesh")).get(name)
        if isinstance(raw, (list, tuple)):
            raw = {"routes": list(raw)}
        self.raw = _m(raw)
        self.prefix = f"mesh.{name}"
        self.routes_key = "http" if "http" in self.raw and "routes" not in self.raw else "routes"
        raw_routes = self.raw.get(self.routes_key)
        self.raw_routes = list(raw_routes) if isinstance(raw_routes, (list, tuple)) else []

    def block(self, name: str, policy: Any) -> Block:
        path, raw = _find(self.raw, name, self.prefix)
        return Block(policy, path, raw)

    def route_block(self, i: int, name: str, policy: Any) -> Block:
        raw_route = self.raw_routes[i] if i < len(self.raw_routes) else {}
        return Block(policy, f"{self.prefix}.{self.routes_key}[{i}].{name}", _m(raw_route).get(name))

    def version_path(self, version: str) -> tuple[str, Any]:
        """Where version ``version``'s cluster policies are written: ``(path, raw)``."""
        versions = _m(self.raw.get("versions"))
        if version in versions:
            return f"{self.prefix}.versions.{version}", _m(versions[version])
        subsets = self.raw.get("subsets")
        if isinstance(subsets, (list, tuple)):
            for i, sub in enumerate(subsets):
                if _m(sub).get("name") == version:
                    for key in ("traffic_policy", "trafficPolicy"):
                        if key in _m(sub):
                            return f"{self.prefix}.subsets[{i}].{key}", _m(sub[key])
                    return f"{self.prefix}.subsets[{i}]", {}
        return f"{self.prefix}.versions.{version}", {}

    def cluster_block(self, version: str | None, name: str, policy: Any) -> Block:
        tp = self.mesh.versions.get(version) if version is not None else None
        if tp is not None and name in tp.model_fields_set:
            path, raw = self.version_path(version)  # type: ignore[arg-type]
            return Block(policy, *_find(raw, name, path))
        return self.block(name, policy)


def lint_scenario(scenario: Any, measure: bool = False, *, seed: int | None = None) -> list[Finding]:
    """Lint a scenario: the Envoy traps its mesh policies fall into.

    Parameters
    ----------
    scenario
        A validated :class:`meshsim.config.Scenario`.
    measure
        Also run short simulations (a probe of a few simulated seconds per
        outlier finding, the scenario itself for a few seconds for the
        retry-breaker finding) and attach the measured effect.
    seed
        Seed of the measurement runs (default: the scenario's).

    Returns
    -------
    list of Finding
        In the order of the scenario's services, routes and clusters.
    """
    report = Report(file=scenario.source)
    probes: list[tuple[Probe, float]] = []
    pressure: list[tuple[Finding, str]] = []
    load: list[Any] = []  # the load estimate, made once, when a service retries

    def estimate() -> Any:
        if not load:
            load.append(estimate_load(scenario))
        return load[0]

    for name in scenario.mesh:
        svc = _Service(scenario, name)
        _lint_blocks(report, svc)
        routes = _route_views(svc)
        for route in routes:
            route_checks(report, route)
        for cluster, _version, latency in _cluster_views(scenario, svc):
            for probe in cluster_checks(report, cluster):
                probes.append((probe, latency))
        _unused_versions(report, scenario, svc)
        found = _retry_breaker(report, scenario, svc, estimate)
        if found is not None:
            pressure.append((found, name))
    if measure:
        _measure(report, scenario, probes, pressure, seed)
    return report.findings


# -------------------------------------------------------------------------------------- blocks


def _lint_blocks(report: Report, svc: _Service) -> None:
    """Each policy module's own ``lint()`` on each block, where it is written."""
    mp = svc.mesh
    skip_retries: dict[str, tuple[str, ...]] = {}
    for route in _route_views(svc):
        if route.retries is not None:
            skip_retries[route.retries.path] = skip_retries.get(route.retries.path, ()) + route_skip(route)
    written: list[Block] = []
    for name in ("timeout", "retries", "fault", "rate_limit"):
        policy = getattr(mp, name, None)
        if policy is not None:
            written.append(svc.block(name, policy))
    for i, route in enumerate(mp.routes):
        for name in sorted(route.policy_fields):
            policy = getattr(route, name)
            if policy is not None:
                written.append(svc.route_block(i, name, policy))
    for name in ("outlier_detection", "load_balancer"):
        policy = getattr(mp, name, None)
        if policy is not None:
            written.append(svc.block(name, policy))
    for version, tp in mp.versions.items():
        for name in ("outlier_detection", "load_balancer"):
            policy = getattr(tp, name, None)
            if name in tp.model_fields_set and policy is not None:
                written.append(svc.cluster_block(version, name, policy))
    for block in written:
        report.traps(block, _module_lint(block.policy), skip=skip_retries.get(block.path, ()))


def _module_lint(policy: Any) -> list[Any]:
    if isinstance(policy, _retry.RetryPolicy):
        return _retry.lint(policy)
    if isinstance(policy, _timeout.TimeoutPolicy):
        return [t for t in _timeout.lint(policy) if t.code != "MS201"]  # MS201: per route, resolved
    if isinstance(policy, _fault.FaultPolicy):
        return _fault.lint(policy)
    if isinstance(policy, _rate_limit.RateLimitPolicy):
        return _rate_limit.lint(policy)
    if isinstance(policy, _outlier.OutlierPolicy):
        return _outlier.lint(policy)
    if isinstance(policy, _lb.LoadBalancerPolicy):
        return _lb.lint(policy)
    return []


# -------------------------------------------------------------------------------------- routes


def _route_views(svc: _Service) -> list[RouteView]:
    mp = svc.mesh
    out = []
    indices: list[int | None] = list(range(len(mp.routes))) if mp.routes else [None]
    for i in indices:
        rp = mp.route_policies(i)
        route = mp.routes[i] if i is not None else None
        own = route.policy_fields if route is not None else frozenset()

        def written(name: str, route: Any = route, own: frozenset[str] = own, i: int | None = i) -> Block | None:
            if route is not None and name in own:
                policy = getattr(route, name)
                return svc.route_block(i, name, policy) if policy is not None else None  # type: ignore[arg-type]
            policy = getattr(mp, name)
            return svc.block(name, policy) if policy is not None else None

        timeout_block = written("timeout")
        retries_block = written("retries")
        if retries_block is not None and rp.retries is not None:
            retries_block.policy = rp.retries
        per_try = None
        if timeout_block is not None and timeout_block.policy.per_try_timeout:
            per_try = timeout_block
        elif retries_block is not None and retries_block.policy.per_try_timeout:
            per_try = retries_block
        inherited = ""
        if route is not None and "retries" in own and mp.retries is not None:
            inherited = mp.retries.retry_on
        label = f"{svc.prefix}.{svc.routes_key}[{i}]" if i is not None else svc.prefix
        clusters = {d.version: float(d.weight) for d in route.destinations} if route is not None else {}
        out.append(RouteView(label, rp.timeout, timeout_block, per_try, retries_block, inherited, clusters))
    return out


# -------------------------------------------------------------------------------------- clusters


def _cluster_views(scenario: Any, svc: _Service) -> list[tuple[ClusterView, str | None, float]]:
    """The clusters the engine builds for calls to this service: ``(view, version, mean try latency)``."""
    mp = svc.mesh
    resolved = scenario.services[svc.name].resolved_versions(svc.name)
    targets: list[tuple[str | None, int]] = []
    if mp.routes:
        used: list[str] = []
        for route in mp.routes:
            for d in route.destinations:
                if d.version not in used:
                    used.append(d.version)
        targets = [(v, resolved[v].replicas) for v in used if v in resolved]
    elif len(resolved) == 1:
        (v,) = resolved
        targets = [(v, resolved[v].replicas)]
    else:
        targets = [(None, sum(rv.replicas for rv in resolved.values()))]
    out = []
    for version, hosts in targets:
        cp = mp.cluster_policies(version)
        key = svc.name if version is None or version == "default" else f"{svc.name} {version}"
        od_block = None
        if cp.outlier_detection is not None:
            od_block = svc.cluster_block(version, "outlier_detection", cp.outlier_detection)
        lb_block = svc.cluster_block(version, "load_balancer", cp.load_balancer)
        lb_given = lb_block.raw is not None and "healthy_panic_threshold" in cp.load_balancer.model_fields_set
        if od_block is not None and cp.outlier_detection.healthy_panic_threshold is not None and not (
            lb_given and _written_panic(lb_block.raw)
        ):
            # the panic threshold came with the outlier block (Istio's minHealthPercent)
            lb_block = Block(cp.load_balancer, od_block.path, od_block.raw)
        cb_block = svc.cluster_block(version, "circuit_breakers", cp.circuit_breakers)
        view = ClusterView(key, hosts, lb_block, cb_block, od_block, cp.retry_budget)
        group = [resolved[version]] if version is not None else list(resolved.values())
        latency = sum(_mean(rv.latency) * rv.replicas for rv in group) / max(sum(rv.replicas for rv in group), 1)
        out.append((view, version, latency))
    return out


def _written_panic(raw: Any) -> bool:
    raw = _m(raw)
    return "healthy_panic_threshold" in raw or "healthy_panic_threshold" in _m(raw.get("common_lb_config"))


def _mean(model: Any) -> float:
    try:
        return float(model.mean())
    except Exception:
        return 0.01


def _unused_versions(report: Report, scenario: Any, svc: _Service) -> None:
    """MS501: cluster policies written for a version that no route sends to."""
    mp = svc.mesh
    if not mp.versions:
        return
    resolved = scenario.services[svc.name].resolved_versions(svc.name)
    if mp.routes:
        used = {d.version for r in mp.routes for d in r.destinations}
    else:
        used = set(resolved) if len(resolved) == 1 else set()
    for version, tp in mp.versions.items():
        if version in used or not tp.model_fields_set:
            continue
        path, _ = svc.version_path(version)
        blocks = ", ".join(sorted(tp.model_fields_set))
        why = ("no route sends to it" if mp.routes else
               f"{svc.name} has no routes, so its cluster is the whole service with the service-level policies")
        report.add("MS501", path, f"{{{blocks}}}",
                   f"the cluster policies of version {version} ({blocks}) are never applied: {why}; "
                   f"add a route to {version} (an Istio subset is its own cluster, reached only by routes naming it)")


# -------------------------------------------------------------------------------------- retry breaker


def _retry_breaker(report: Report, scenario: Any, svc: _Service, estimate: Any) -> Finding | None:
    """MS107: concurrent retries the ``max_retries`` breaker refuses at the scenario's load."""
    mp = svc.mesh
    i = main_route_index(mp)
    rp = mp.route_policies(i).retries
    if rp is None or not rp.active or rp.num_retries <= 0:
        return None
    load = estimate()
    worst = None
    for view, version, _ in _cluster_views(scenario, svc):
        if view.retry_budget is not None and view.retry_budget.in_force:
            continue
        limit = int(view.circuit_breakers.policy.max_retries) if view.circuit_breakers is not None else 3
        for pr in retry_pressure(load, svc.name, version if version is not None else "*", rp, limit):
            if worst is None or pr.overflow > worst[0].overflow:
                worst = (pr, view, limit)
    if worst is None or worst[0].overflow < RETRY_OVERFLOW_THRESHOLD:
        return None
    pr, view, limit = worst
    cb = view.circuit_breakers
    given = cb is not None and "max_retries" in cb.policy.model_fields_set and cb.raw is not None
    path = cb.at("max_retries") if cb is not None and cb.raw is not None else f"{svc.prefix}.circuit_breakers.max_retries"
    value = f"{limit}" if given else f"{limit} (default)"
    caller = f"each {pr.caller} sidecar" if pr.caller in scenario.services else f"traffic source {pr.caller}"
    default = "" if given else " (Envoy's default)"
    return report.add(
        "MS107", path, value,
        f"{view.key}: max_retries {limit}{default} lets a caller sidecar hold {limit} retries at once; at this "
        f"scenario's load {caller} makes ~{pr.retries_per_s:.3g} retries/s to {view.key} (~{pr.calls_per_s:.3g} "
        f"calls/s, {pr.retriable:.0%} failing retriably), each holding a slot ~{1e3 * (pr.backoff_s + pr.try_s):.0f} "
        f"ms (back-off ~{1e3 * pr.backoff_s:.0f} + retried try ~{1e3 * pr.try_s:.0f}): ~{pr.in_flight:.2g} in "
        f"flight (Little's law), so an estimated {pr.overflow:.0%} of retries overflow (Erlang loss, {limit} "
        "slots) and their requests get the upstream's failure (flag UO); raise max_retries or set a retry_budget")


# -------------------------------------------------------------------------------------- measurement


def _measure(report: Report, scenario: Any, probes: list[tuple[Probe, float]],
             pressure: list[tuple[Finding, str]], seed: int | None) -> None:
    from meshsim.lint._measure import measure_probe, measure_retry_overflow

    base_seed = scenario.seed if seed is None else seed
    effects: dict[int, str] = {}
    for probe, latency in probes:
        effects[id(probe.finding)] = measure_probe(probe, latency_s=latency, seed=base_seed)
    if pressure:
        counts = measure_retry_overflow(scenario, [s for _, s in pressure], seed=base_seed)
        for finding, service in pressure:
            retry, overflow, secs = counts[service]
            decided = retry + overflow
            share = f"{overflow / decided:.1%}" if decided else "n/a"
            effects[id(finding)] = (f"measured over {secs:g} s of this scenario (seed {base_seed}): {overflow} of "
                                    f"{decided} retries to {service} overflowed ({share})")
    if effects:
        report.findings[:] = [
            _with_effect(f, effects[id(f)]) if id(f) in effects else f for f in report.findings
        ]


def _with_effect(finding: Finding, effect: str) -> Finding:
    from dataclasses import replace

    return replace(finding, effect=effect)
