"""Linting an Envoy v3 bootstrap: listeners -> HTTP connection manager -> routes, and clusters.

Only static resources are read (``static_resources.listeners`` with an inline
``route_config``, ``static_resources.clusters``); RDS, CDS and EDS are not
fetched, so a cluster fed by EDS has no known host count. Each fragment is
read into meshsim's policy model for the fields the checks need; the other
fields are not linted (and not refused). A fragment Envoy itself would refuse
(a back-off ``max_interval`` below ``base_interval``, a percentage over 100)
is an error, as for ``envoy --mode validate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from meshsim._exceptions import ConfigError
from meshsim.lint._checks import Probe, cluster_checks, route_checks
from meshsim.lint._finding import Finding
from meshsim.lint._views import Block, ClusterView, Report, RouteView
from meshsim.policies import fault as _fault
from meshsim.policies import outlier as _outlier
from meshsim.policies import rate_limit as _rate_limit
from meshsim.policies import retry as _retry
from meshsim.policies import timeout as _timeout
from meshsim.policies.load_balancer import LoadBalancerPolicy

__all__ = ["lint_envoy", "is_bootstrap"]

_HCM = "envoy.filters.network.http_connection_manager"
_HCM_TYPE = "HttpConnectionManager"
_FAULT = "envoy.filters.http.fault"
_LOCAL_RL = "envoy.filters.http.local_ratelimit"
_RETRY_KEYS = ("retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout", "retry_back_off",
               "retriable_status_codes")
_RL_KEYS = ("token_bucket", "filter_enabled", "filter_enforced", "status", "stat_prefix")
_OUTLIER_KEYS = tuple(f for f in _outlier.OutlierPolicy.model_fields if f != "healthy_panic_threshold")


def is_bootstrap(data: Any) -> bool:
    """Whether a parsed document looks like an Envoy bootstrap."""
    return isinstance(data, Mapping) and any(
        k in data for k in ("static_resources", "dynamic_resources", "admin", "node", "layered_runtime"))


def _m(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _l(node: Any) -> list[Any]:
    return list(node) if isinstance(node, (list, tuple)) else []


def _uint(value: Any) -> Any:
    """A ``UInt32Value`` written out as ``{value: N}`` -> N."""
    if isinstance(value, Mapping) and set(value) == {"value"}:
        return value["value"]
    return value


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def build(self, cls: Any, data: Any, path: str) -> Any:
        """``cls.model_validate(data)``, with an invalid fragment reported as Envoy would refuse it."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function-"))
            msg = err.get("msg", str(exc)).removeprefix("Value error, ")
            where = f"{path}.{loc}" if loc else path
            raise ConfigError(f"{where}: {_refused(msg)}", source=self.file) from None
        except ConfigError as exc:
            raise ConfigError(f"{path}: {_refused(str(exc))}", source=self.file) from None


def _refused(message: str) -> str:
    return message if "refuse" in message else f"{message} (Envoy refuses this configuration)"


def _filter_kind(f: Mapping[str, Any], name: str, type_suffix: str) -> bool:
    tc = _m(f.get("typed_config"))
    return f.get("name") == name or str(tc.get("@type", "")).endswith(type_suffix)


def lint_envoy(config: Mapping[str, Any], *, file: str = "<envoy>") -> tuple[list[Finding], list[Probe]]:
    """Lint an Envoy v3 bootstrap (a parsed mapping); the findings and the probes that would measure them."""
    if not isinstance(config, Mapping):
        raise ConfigError("an Envoy bootstrap is a mapping with static_resources", source=file)
    reader = _Reader(file)
    report = Report(file=file)
    sr = _m(config.get("static_resources"))
    routes: list[RouteView] = []
    for li, listener in enumerate(_l(sr.get("listeners"))):
        for fi, chain in enumerate(_l(_m(listener).get("filter_chains"))):
            for ni, f in enumerate(_l(_m(chain).get("filters"))):
                f = _m(f)
                if not _filter_kind(f, _HCM, _HCM_TYPE):
                    continue
                base = f"static_resources.listeners[{li}].filter_chains[{fi}].filters[{ni}].typed_config"
                routes += _hcm(reader, report, _m(f.get("typed_config")), base)
    for route in routes:
        route_checks(report, route)
    clusters = _clusters(reader, report, sr)
    probes: list[Probe] = []
    for view in clusters.values():
        probes += cluster_checks(report, view)
    return report.findings, probes


def _hcm(reader: _Reader, report: Report, hcm: Mapping[str, Any], base: str) -> list[RouteView]:
    for hi, hf in enumerate(_l(hcm.get("http_filters"))):
        hf = _m(hf)
        path = f"{base}.http_filters[{hi}].typed_config"
        tc = _m(hf.get("typed_config"))
        if _filter_kind(hf, _FAULT, "HTTPFault") and ("delay" in tc or "abort" in tc):
            _fault_block(reader, report, tc, path)
        elif _filter_kind(hf, _LOCAL_RL, "LocalRateLimit") and "token_bucket" in tc:
            _rate_limit_block(reader, report, tc, path)
    rc = _m(hcm.get("route_config"))
    out: list[RouteView] = []
    for vi, vh in enumerate(_l(rc.get("virtual_hosts"))):
        vh = _m(vh)
        vbase = f"{base}.route_config.virtual_hosts[{vi}]"
        vh_retry = _m(vh.get("retry_policy"))
        _per_filter(reader, report, _m(vh.get("typed_per_filter_config")), f"{vbase}.typed_per_filter_config")
        for ri, r in enumerate(_l(vh.get("routes"))):
            r = _m(r)
            rbase = f"{vbase}.routes[{ri}]"
            _per_filter(reader, report, _m(r.get("typed_per_filter_config")), f"{rbase}.typed_per_filter_config")
            action = r.get("route")
            if not isinstance(action, Mapping):
                continue  # redirect, direct_response, ...
            out.append(_route(reader, report, action, vh, vh_retry, f"{rbase}.route", vbase))
    return out


def _retry_policy(reader: _Reader, raw: Mapping[str, Any], path: str) -> _retry.RetryPolicy:
    data = {k: (_uint(raw[k]) if k == "num_retries" else raw[k]) for k in _RETRY_KEYS if k in raw}
    data["allow_unknown"] = True  # Envoy ignores unknown tokens: keep them to report them
    return reader.build(_retry.RetryPolicy, data, path)


def _route(reader: _Reader, report: Report, action: Mapping[str, Any], vh: Mapping[str, Any],
           vh_retry: Mapping[str, Any], path: str, vbase: str) -> RouteView:
    own_retry = "retry_policy" in action
    raw_retry = _m(action.get("retry_policy")) if own_retry else vh_retry
    retry_path = f"{path}.retry_policy" if own_retry else f"{vbase}.retry_policy"
    hedge = _m(action.get("hedge_policy") if "hedge_policy" in action else vh.get("hedge_policy"))
    hedge_path = f"{path}.hedge_policy" if "hedge_policy" in action else f"{vbase}.hedge_policy"
    retries = None
    if raw_retry or hedge:
        rp = _retry_policy(reader, raw_retry, retry_path)
        if hedge.get("hedge_on_per_try_timeout") is True:
            rp = rp.model_copy(update={"hedge_on_per_try_timeout": True})
        retries = _HedgeBlock(rp, retry_path, raw_retry, hedge_path)
        if raw_retry:
            skip = ("MS102",) if own_retry and vh_retry.get("retry_on") and "retry_on" not in raw_retry else ()
            report.traps(retries, _retry.lint(rp), skip=skip)
    tdata: dict[str, Any] = {}
    if "timeout" in action:
        tdata["timeout"] = action["timeout"]
    for key in ("per_try_timeout", "per_try_idle_timeout"):
        if key in raw_retry:
            tdata[key] = raw_retry[key]
    tp = reader.build(_timeout.TimeoutPolicy, tdata, path)
    timeout_block = Block(tp, path, action) if "timeout" in action else None
    if timeout_block is not None:
        report.traps(timeout_block, [t for t in _timeout.lint(tp) if t.code == "MS202"])
    per_try = retries if retries is not None and tp.per_try_timeout else None
    inherited = str(vh_retry.get("retry_on", "")) if own_retry else ""
    weights: dict[str, float] = {}
    if "cluster" in action:
        weights[str(action["cluster"])] = 1.0
    for wc in _l(_m(action.get("weighted_clusters")).get("clusters")):
        weights[str(_m(wc).get("name"))] = float(_uint(_m(wc).get("weight", 0)) or 0)
    return RouteView(path, tp, timeout_block, per_try, retries, inherited, weights)


class _HedgeBlock(Block):
    """A route's retry policy, whose hedging flag lives next to it in ``hedge_policy``."""

    def __init__(self, policy: Any, path: str, raw: Any, hedge_path: str) -> None:
        super().__init__(policy, path, raw)
        self.hedge_path = hedge_path

    def at(self, dotted: str) -> str:
        if dotted == "hedge_on_per_try_timeout":
            return f"{self.hedge_path}.hedge_on_per_try_timeout"
        return super().at(dotted)


def _per_filter(reader: _Reader, report: Report, configs: Mapping[str, Any], base: str) -> None:
    """Per-route (or per-virtual-host) fault and local rate limit configs."""
    for name, tc in configs.items():
        tc = _m(tc)
        if "config" in tc and isinstance(tc.get("config"), Mapping):  # FilterConfig wrapper
            tc = _m(tc["config"])
        path = f"{base}.{name}"
        if name == _FAULT or str(tc.get("@type", "")).endswith("HTTPFault"):
            if "delay" in tc or "abort" in tc:
                _fault_block(reader, report, tc, path)
        elif name == _LOCAL_RL or str(tc.get("@type", "")).endswith("LocalRateLimit"):
            if "token_bucket" in tc:
                _rate_limit_block(reader, report, tc, path)


def _fault_block(reader: _Reader, report: Report, tc: Mapping[str, Any], path: str) -> None:
    data: dict[str, Any] = {}
    delay = _m(tc.get("delay"))
    if "fixed_delay" in delay:
        data["delay"] = {k: delay[k] for k in ("fixed_delay", "percentage") if k in delay}
    abort = _m(tc.get("abort"))
    if "http_status" in abort:
        data["abort"] = {k: abort[k] for k in ("http_status", "percentage") if k in abort}
    if "max_active_faults" in tc:
        data["max_active_faults"] = _uint(tc["max_active_faults"])
    policy = reader.build(_fault.FaultPolicy, data, path)
    report.traps(Block(policy, path, tc), _fault.lint(policy))
    # a header-controlled or gRPC abort/delay has the same percentage trap; the model reads only the
    # fixed ones, so check the others here
    for name, block in (("delay", delay), ("abort", abort)):
        if block and name not in data and "percentage" not in block:
            verb = "delayed" if name == "delay" else "aborted"
            report.add("MS401", f"{path}.{name}.percentage", "unset",
                       f"{name} has no percentage: Envoy treats it as 0 %, so no request is {verb}")


def _rate_limit_block(reader: _Reader, report: Report, tc: Mapping[str, Any], path: str) -> None:
    data = {k: tc[k] for k in _RL_KEYS if k in tc}
    policy = reader.build(_rate_limit.RateLimitPolicy, data, path)
    report.traps(Block(policy, path, tc), _rate_limit.lint(policy))


def _clusters(reader: _Reader, report: Report, sr: Mapping[str, Any]) -> dict[str, ClusterView]:
    out: dict[str, ClusterView] = {}
    for ci, c in enumerate(_l(sr.get("clusters"))):
        c = _m(c)
        name = str(c.get("name", f"clusters[{ci}]"))
        base = f"static_resources.clusters[{ci}]"
        # circuit breakers: the first DEFAULT-priority thresholds
        thresholds: Mapping[str, Any] = {}
        ti = None
        for i, t in enumerate(_l(_m(c.get("circuit_breakers")).get("thresholds"))):
            if _m(t).get("priority", "DEFAULT") == "DEFAULT":
                thresholds, ti = _m(t), i
                break
        budget = None
        if "retry_budget" in thresholds:
            rb = _m(thresholds["retry_budget"])
            budget = reader.build(_retry.RetryBudget,
                                  {k: rb[k] for k in ("budget_percent", "min_retry_concurrency") if k in rb},
                                  f"{base}.circuit_breakers.thresholds[{ti}].retry_budget")
            bpath = f"{base}.circuit_breakers.thresholds[{ti}]"
            probe = _retry.RetryPolicy.model_validate({"retry_budget": budget})
            report.traps(Block(probe, bpath, thresholds), [t for t in _retry.lint(probe) if t.code == "MS106"])
        od_block = None
        if "outlier_detection" in c:
            raw_od = _m(c["outlier_detection"])
            data = {k: _uint(raw_od[k]) for k in _OUTLIER_KEYS if k in raw_od}
            od = reader.build(_outlier.OutlierPolicy, data, f"{base}.outlier_detection")
            od_block = Block(od, f"{base}.outlier_detection", raw_od)
            report.traps(od_block, _outlier.lint(od))
        lb_data: dict[str, Any] = {}
        panic = _m(c.get("common_lb_config")).get("healthy_panic_threshold")
        if panic is not None:
            lb_data["healthy_panic_threshold"] = panic
        lb = reader.build(LoadBalancerPolicy, lb_data, f"{base}.common_lb_config")
        lb_block = Block(lb, base, c, names={"healthy_panic_threshold": "common_lb_config.healthy_panic_threshold"})
        hosts = _host_count(c)
        out[name] = ClusterView(name, hosts, lb_block, None, od_block, budget)
    return out


def _host_count(cluster: Mapping[str, Any]) -> int | None:
    """Endpoints listed in ``load_assignment`` (all priorities); ``None`` for EDS or when none are listed."""
    kind = cluster.get("type", "STATIC")
    if kind == "EDS" or "load_assignment" not in cluster:
        return None
    n = 0
    for group in _l(_m(cluster["load_assignment"]).get("endpoints")):
        n += len(_l(_m(group).get("lb_endpoints")))
    if kind == "LOGICAL_DNS":
        return min(n, 1)
    return n or None
