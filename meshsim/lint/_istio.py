"""Linting Istio ``VirtualService`` and ``DestinationRule`` resources (multi-document YAML).

Each block is read with the Istio reader of its policy module
(:meth:`~meshsim.policies.retry.RetryPolicy.from_istio`,
:meth:`~meshsim.policies.timeout.TimeoutPolicy.from_istio`,
:func:`~meshsim.policies.outlier.from_istio`,
:meth:`~meshsim.policies.load_balancer.LoadBalancerPolicy.from_istio`), so it
is linted as istiod would write it for Envoy, Istio's defaults included. The
resources do not say how many endpoints a service has: the host-count checks
say from how many endpoints on a trap begins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from meshsim._exceptions import ConfigError
from meshsim.lint._checks import cluster_checks, route_checks
from meshsim.lint._finding import Finding, Severity
from meshsim.lint._views import Block, ClusterView, Report, RouteView
from meshsim.policies import fault as _fault
from meshsim.policies import load_balancer as _lb
from meshsim.policies import outlier as _outlier
from meshsim.policies import retry as _retry
from meshsim.policies import timeout as _timeout

__all__ = ["lint_istio", "is_istio", "ISTIO_KINDS"]

#: the kinds linted; other Istio kinds (Gateway, ServiceEntry, ...) are skipped
ISTIO_KINDS = ("VirtualService", "DestinationRule")


def is_istio(doc: Any) -> bool:
    """Whether a parsed YAML document is an Istio networking resource."""
    return (isinstance(doc, Mapping) and isinstance(doc.get("kind"), str)
            and str(doc.get("apiVersion", "")).startswith("networking.istio.io/"))


def _m(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _l(node: Any) -> list[Any]:
    return list(node) if isinstance(node, (list, tuple)) else []


def _short(host: Any) -> str:
    return str(host).split(".")[0]


def lint_istio(documents: Sequence[tuple[str, int, Any]]) -> list[Finding]:
    """Lint Istio resources given as ``(file, document number from 1, parsed document)``.

    VirtualServices and DestinationRules are linted together, so a
    DestinationRule subset that no VirtualService route sends to is found
    (MS501) when both are given.
    """
    findings: list[Finding] = []
    routed: dict[str, set[str]] = {}  # host -> subsets some route sends to
    hosts_with_vs: set[str] = set()
    rules: list[tuple[Report, Mapping[str, Any]]] = []
    for file, number, doc in documents:
        kind = doc.get("kind")
        name = _m(doc.get("metadata")).get("name", "?")
        report = Report(file=file, document=f"{number}, {kind} {name}")
        spec = _m(doc.get("spec"))
        try:
            if kind == "VirtualService":
                for host in _l(spec.get("hosts")):
                    hosts_with_vs.add(_short(host))
                _virtual_service(report, spec, routed)
            elif kind == "DestinationRule":
                _destination_rule(report, spec)
                rules.append((report, spec))
        except ValueError as exc:  # a ValidationError, a ConfigError, a refusal of an Istio reader
            msg = _one_line(exc)
            raise ConfigError(f"document {number} ({kind} {name}): {msg}", source=file) from None
        findings += report.findings
    for report, spec in rules:
        host = _short(spec.get("host", ""))
        if host not in hosts_with_vs:
            continue
        start = len(report.findings)
        for i, sub in enumerate(_l(spec.get("subsets"))):
            sub = _m(sub)
            if sub.get("trafficPolicy") and sub.get("name") not in routed.get(host, set()):
                blocks = ", ".join(sorted(_m(sub["trafficPolicy"])))
                report.add("MS501", f"spec.subsets[{i}].trafficPolicy", f"{{{blocks}}}",
                           f"subset {sub.get('name')} has its own trafficPolicy ({blocks}) but no VirtualService "
                           f"route given sends to it: its cluster gets no traffic and the policy is never applied")
        findings += report.findings[start:]
    return findings


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function-"))
        msg = str(err.get("msg", exc)).removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    if isinstance(exc, PydanticCustomError):
        return exc.message()
    return str(exc)


def _virtual_service(report: Report, spec: Mapping[str, Any], routed: dict[str, set[str]]) -> None:
    for hi, http in enumerate(_l(spec.get("http"))):
        http = _m(http)
        base = f"spec.http[{hi}]"
        for dest in _l(http.get("route")):
            d = _m(_m(dest).get("destination"))
            if d.get("subset"):
                routed.setdefault(_short(d.get("host", "")), set()).add(str(d["subset"]))
        tp = _timeout.TimeoutPolicy.from_istio(http)
        timeout_block = Block(tp, base, http)
        if "timeout" not in http:
            report.add("MS202", f"{base}.timeout", "unset (Istio writes 0s)",
                       "no timeout: Istio writes timeout 0s, which disables Envoy's route timeout (not its 15 s "
                       "default): nothing bounds a request's total time across tries and back-offs")
        else:
            report.traps(timeout_block, [t for t in _timeout.lint(tp) if t.code == "MS202"])
        raw_retries = http.get("retries")
        retries_block = None
        if raw_retries is None:
            rp = _retry.RetryPolicy.from_istio(None)
            # Istio's default policy retries no status code: worth knowing, not a mistake
            for trap in _retry.lint(rp or _retry.RetryPolicy.model_validate({})):
                if trap.code == "MS103":
                    report.add("MS103", f"{base}.retries", "unset (Istio's default policy)",
                               "no retries block: Istio's default retry policy (2 retries on connect-failure, "
                               "refused-stream, unavailable, cancelled, retriable-status-codes) lists no status "
                               "code, so a 503 is not retried (Istio >= 1.24)", severity=Severity.INFO)
        else:
            data = dict(_m(raw_retries))
            data["allow_unknown"] = True  # Istio passes unknown tokens to Envoy, which ignores them
            rp = _retry.RetryPolicy.from_istio(data)
            if rp is not None:
                retries_block = Block(rp, f"{base}.retries", raw_retries)
                report.traps(retries_block, _retry.lint(rp))
        if http.get("fault") is not None:
            fp = _fault.FaultPolicy.model_validate(http["fault"])
            report.traps(Block(fp, f"{base}.fault", http["fault"]), _fault.lint(fp))
        per_try = retries_block if retries_block is not None and tp.per_try_timeout else None
        weights = {str(_m(_m(d).get("destination")).get("subset") or ""): float(_m(d).get("weight", 100) or 0)
                   for d in _l(http.get("route"))}
        route_checks(report, RouteView(base, tp, timeout_block if "timeout" in http else None, per_try,
                                       retries_block, "", weights))


def _destination_rule(report: Report, spec: Mapping[str, Any]) -> None:
    host = _short(spec.get("host", "?"))
    top = _m(spec.get("trafficPolicy"))
    clusters: list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]] = [(host, "spec.trafficPolicy", top, top)]
    for i, sub in enumerate(_l(spec.get("subsets"))):
        sub = _m(sub)
        sub_tp = _m(sub.get("trafficPolicy"))
        # a subset's trafficPolicy replaces whole blocks of the top-level one
        clusters.append((f"{host} subset {sub.get('name')}", f"spec.subsets[{i}].trafficPolicy", sub_tp,
                         {**top, **sub_tp}))
    for key, path, own, merged in clusters:
        blocks_path = {b: (path if b in own else "spec.trafficPolicy") for b in merged}
        raw_od = merged.get("outlierDetection")
        od_block = None
        if raw_od is not None:
            od_path = f"{blocks_path['outlierDetection']}.outlierDetection"
            od = _outlier.from_istio(_m(raw_od))
            od_block = Block(od, od_path, raw_od)
            if "outlierDetection" in own:
                report.traps(od_block, _outlier.lint(od))
                if "consecutiveLocalOriginFailures" in _m(raw_od) and not _m(raw_od).get(
                        "splitExternalLocalOriginErrors"):
                    report.add("MS304", f"{od_path}.splitExternalLocalOriginErrors", "false",
                               "consecutiveLocalOriginFailures is dropped: Istio writes it only with "
                               "splitExternalLocalOriginErrors: true; connect failures, resets and timeouts count "
                               "as 503/504 in the 5xx and gateway counters instead")
        raw_lb = merged.get("loadBalancer")
        lb = _lb.LoadBalancerPolicy.from_istio(_m(raw_lb) if raw_lb is not None else None,
                                               outlier_detection=_m(raw_od) if raw_od is not None else None)
        if raw_lb is not None and "loadBalancer" in own:
            report.traps(Block(lb, f"{path}.loadBalancer", raw_lb), _lb.lint(lb))
        if od_block is not None:
            lb_block = Block(lb, od_block.path, raw_od)  # Istio's panic threshold: minHealthPercent
        else:
            lb_block = Block(lb, f"{path}.loadBalancer", raw_lb)
        if od_block is not None and (key == host or "outlierDetection" in own or "loadBalancer" in own):
            cluster_checks(report, ClusterView(key, None, lb_block, None, od_block, None))
