"""Checks that need more than one policy: a route's timeouts against its retries, a cluster's
outlier detection against its host count and panic threshold.

The checks that belong to one concept live in that policy module's ``lint()``
(:mod:`meshsim.policies.retry`, ``timeout``, ``outlier``, ...); the readers run
those on every written block. What is here needs two blocks, or a block and a
number of hosts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from meshsim.lint._finding import Finding, Severity
from meshsim.lint._views import ClusterView, Report, RouteView
from meshsim.policies import outlier as _outlier
from meshsim.policies import retry as _retry
from meshsim.policies import timeout as _timeout
from meshsim.policies.load_balancer import panic_unhealthy_hosts

__all__ = ["Probe", "route_checks", "cluster_checks", "max_ejectable"]

#: flags of the conditions that retry a per-try timeout (a local reset)
_RETRIES_TIMEOUTS = int(_retry.RetryOn.FIVE_XX | _retry.RetryOn.GATEWAY_ERROR | _retry.RetryOn.RESET)
#: above this share of ejected hosts a one-priority cluster is always in panic when its threshold
#: is higher: Envoy never panics while 1.4 x healthy share >= 100 %
_PANIC_CAP = 100.0 / 1.4


@dataclass(frozen=True)
class Probe:
    """A measurement a finding asks for (run by :mod:`meshsim.lint._measure`)."""

    finding: Finding
    kind: str  # "max_ejection" | "panic"
    cluster: ClusterView
    failing: int  # hosts that fail every request in the probe


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _given(policy: object, name: str) -> bool:
    return name in getattr(policy, "model_fields_set", ())


def route_checks(report: Report, route: RouteView) -> None:
    """MS201, MS108, MS109 and MS111 for one route."""
    tp = route.timeout
    rp = route.retries.policy if route.retries is not None else None
    # MS201: per-try >= route timeout (the timeout module's check, on the resolved pair)
    if route.per_try_block is not None:
        for trap in _timeout.lint(tp):
            if trap.code == "MS201":
                where = route.timeout_block.path if route.timeout_block is not None else "the default"
                report.add("MS201", route.per_try_block.at("per_try_timeout"), trap.value,
                           f"{trap} (route timeout {tp.timeout:g}s from {where})")
    retries = route.retries
    if rp is None or retries is None:
        return
    # MS108: hedging needs a per-try timeout that fires
    if rp.hedge_on_per_try_timeout and tp.effective_per_try_timeout == 0.0:
        why = ("it is at or above the route timeout, so Envoy ignores it" if tp.per_try_timeout
               else "the route has none")
        report.add("MS108", retries.at("hedge_on_per_try_timeout"), "true",
                   f"hedge_on_per_try_timeout only starts a hedged try when a per-try timeout fires, and {why}: "
                   "nothing is ever hedged; set per_try_timeout below the route timeout")
    # MS109: tries that can run to their per-try timeout before the route timeout
    pt = tp.effective_per_try_timeout
    if (rp.active and rp.num_retries > 0 and pt > 0.0 and tp.timeout > 0.0
            and int(rp.flags) & _RETRIES_TIMEOUTS):
        fit = math.ceil(tp.timeout / pt - 1e-9)
        if fit < 1 + rp.num_retries:
            report.add("MS109", retries.at("num_retries"), rp.num_retries,
                       f"the route timeout {tp.timeout:g}s lets at most {_plural(fit, 'try', 'tries')} of "
                       f"per_try_timeout {pt:g}s start (before back-off): when tries time out, at most "
                       f"{_plural(fit - 1, 'retry', 'retries')} of num_retries {rp.num_retries} run, then the route timeout "
                       "answers 504 UT")
    # MS111: a route's own retry policy replaces the inherited one whole
    if route.inherited_retry_on and not rp.active and rp.num_retries > 0:
        report.add("MS111", retries.at("retry_on"), "unset",
                   f"this route's retry policy replaces the inherited one whole (Envoy does not merge them) and "
                   f"has no retry_on, so the route never retries although retry_on "
                   f"'{route.inherited_retry_on}' is set for the rest; repeat retry_on here")


def route_skip(route: RouteView) -> tuple[str, ...]:
    """Module codes a cross-check explains better for this route's retry block (MS111 over MS102)."""
    rp = route.retries.policy if route.retries is not None else None
    if rp is not None and route.inherited_retry_on and not rp.active:
        return ("MS102",)
    return ()


def max_ejectable(policy: _outlier.OutlierPolicy, hosts: int) -> int:
    """How many of ``hosts`` the max-ejection rule lets be ejected at once.

    Examples
    --------
    >>> max_ejectable(_outlier.OutlierPolicy(), 5), max_ejectable(_outlier.OutlierPolicy(max_ejection_percent=50), 5)
    (0, 2)
    """
    k = 0
    while k < hosts and _outlier.max_ejection_allows(k, hosts, policy.max_ejection_percent,
                                                     policy.always_eject_one_host):
        k += 1
    return k


def cluster_checks(report: Report, cluster: ClusterView) -> list[Probe]:
    """MS301, MS302 and MS306 for one cluster; the probes their findings want measured."""
    probes: list[Probe] = []
    if cluster.outlier is None:
        return probes
    od = cluster.outlier.policy
    lb_block = cluster.load_balancer
    panic = float(lb_block.policy.healthy_panic_threshold)
    hosts = cluster.hosts
    pct = od.max_ejection_percent
    pct_shown = f"{pct}" if _given(od, "max_ejection_percent") else f"{pct} (default)"
    panic_shown = f"{panic:g}" if _given(lb_block.policy, "healthy_panic_threshold") else f"{panic:g} (default)"
    if hosts is None:
        _unknown_hosts(report, cluster, pct, pct_shown, panic, panic_shown)
        return probes
    # MS301: the max-ejection rule forbids the first ejection
    need = od.smallest_cluster_that_can_eject()
    if hosts == 1 and need is not None and need > 1:
        # one host: ejecting it could not help anyway (the cluster would be in panic, or empty)
        report.add("MS301", cluster.outlier.at("max_ejection_percent"), pct_shown,
                   f"{cluster.key}: the cluster has one host, and ejecting it (100 % of the cluster) is above "
                   f"max_ejection_percent {pct} %: outlier detection never ejects it. Allowing it would not help "
                   "either: with the host ejected the cluster is in panic and keeps sending it traffic (or, with "
                   "healthy_panic_threshold 0, answers 503 UH); give the version more replicas",
                   severity=Severity.INFO)
    elif hosts > 0 and (need is None or need > hosts):
        fix = math.ceil(100.0 / hosts - 1e-9)
        if pct == 0:
            why = "max_ejection_percent 0 allows no ejection at all"
        else:
            why = (f"ejecting one of {_plural(hosts, 'host')} is {100.0 / hosts:.3g} % of the cluster, above "
                   f"max_ejection_percent {pct} %, and Envoy (>= 1.27) counts the host before checking the limit")
        f = report.add(
            "MS301", cluster.outlier.at("max_ejection_percent"), pct_shown,
            f"{cluster.key}: {why}: no host is ever ejected (each detection only counts ejections_overflow) and "
            f"a failing host stays in rotation; it takes max_ejection_percent >= {fix}, "
            + (f"{_plural(need, 'host')}, " if need is not None else "")
            + "or always_eject_one_host: true")
        if f is not None:
            probes.append(Probe(f, "max_ejection", cluster, 1))
    # MS302: ejecting as many hosts as allowed puts the cluster in panic
    k_panic = panic_unhealthy_hosts(hosts, panic) if panic > 0 else None
    k_max = max_ejectable(od, hosts)
    if k_panic is not None and k_max >= k_panic:
        if hosts == 1:
            what = ("the cluster has one host: ejecting it leaves none healthy, the cluster is in panic "
                    f"(healthy_panic_threshold {panic:g} %) and Envoy sends it the traffic anyway: ejection has no "
                    "effect")
        else:
            what = (f"with {_plural(hosts, 'host')}, ejecting {k_panic} (max_ejection_percent {pct} % allows "
                    f"{k_max}) leaves fewer than {panic:g} % healthy: the cluster is in panic and Envoy sends "
                    f"traffic to every host, the ejected ones included, so once {k_panic} or more hosts fail "
                    f"ejection has no effect; set healthy_panic_threshold 0 (what Istio writes with outlier "
                    f"detection) or max_ejection_percent below {100.0 * k_panic / hosts:.3g}")
        f = report.add("MS302", lb_block.at("healthy_panic_threshold"), panic_shown, f"{cluster.key}: {what}")
        if f is not None:
            probes.append(Probe(f, "panic", cluster, k_panic))
    # MS306: detectors that need more hosts than the cluster has
    sr_given = [n for n in od.model_fields_set if n.startswith("success_rate_") or n == "enforcing_success_rate"]
    if sr_given and od.enforcing_success_rate > 0 and od.success_rate_minimum_hosts > hosts:
        report.add("MS306", cluster.outlier.at("success_rate_minimum_hosts"), od.success_rate_minimum_hosts,
                   f"{cluster.key}: success-rate detection needs success_rate_minimum_hosts "
                   f"{od.success_rate_minimum_hosts} hosts with enough requests in an interval, and the cluster "
                   f"has {hosts}: it never runs")
    fp_given = [n for n in od.model_fields_set if n.startswith("failure_percentage_")]
    if (fp_given or _given(od, "enforcing_failure_percentage")) and od.enforcing_failure_percentage > 0 \
            and od.failure_percentage_minimum_hosts > hosts:
        report.add("MS306", cluster.outlier.at("failure_percentage_minimum_hosts"),
                   od.failure_percentage_minimum_hosts,
                   f"{cluster.key}: failure-percentage detection needs failure_percentage_minimum_hosts "
                   f"{od.failure_percentage_minimum_hosts} hosts with enough requests in an interval, and the "
                   f"cluster has {hosts}: it never runs")
    return probes


def _unknown_hosts(report: Report, cluster: ClusterView, pct: int, pct_shown: str, panic: float,
                   panic_shown: str) -> None:
    """MS301 and MS302 when the input does not say how many hosts the cluster has (Istio, EDS)."""
    od = cluster.outlier.policy  # type: ignore[union-attr]
    need = od.smallest_cluster_that_can_eject()
    if need is None or need >= 3:
        cond = "no host is ever ejected" if need is None else f"with fewer than {need} endpoints no host is ever ejected"
        report.add("MS301", cluster.outlier.at("max_ejection_percent"), pct_shown,  # type: ignore[union-attr]
                   f"{cluster.key}: {cond}: Envoy (>= 1.27) counts the endpoint before checking "
                   f"max_ejection_percent {pct} %, so every detection only counts ejections_overflow and a failing "
                   "endpoint stays in rotation; set it to at least 100 / endpoints (or always_eject_one_host)")
    if panic > 0:
        start = 100.0 - min(panic, _PANIC_CAP)
        if pct > start:
            report.add("MS302", cluster.load_balancer.at("healthy_panic_threshold"), panic_shown,
                       f"{cluster.key}: once more than {start:.3g} % of the endpoints are ejected "
                       f"(max_ejection_percent {pct} % allows it), fewer than {min(panic, _PANIC_CAP):.3g} % are "
                       "healthy: the cluster is in panic and Envoy sends traffic to every endpoint, the ejected "
                       "ones included")
