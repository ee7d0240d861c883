"""A first-order estimate of a scenario's load: request rates, failure odds, try latencies, retry overflow.

Used by the retry-breaker check (MS107) to say, before any simulation, how many
retries a caller sidecar keeps in flight (Little's law) and what share the
``max_retries`` breaker refuses (Erlang's loss formula, the breaker's slots
being the servers). The estimate is deliberately simple and says so:

* mean rates (a schedule's time average; closed-loop users at ``users / (think
  + response time)``), independent failures, no queueing delay;
* a version's share of its service's traffic is its share of replicas without
  routes, or the weights of the last route that matches everything (the
  catch-all; header-matched routes are ignored);
* a failed required call fails its caller with 500, as the engine does;
* the retry policy of a destination is its catch-all route's;
* retries refused by a breaker fail their request, which raises the failure
  odds (and so the retries) one layer up: the overflow shares are solved by a
  fixed-point iteration.

:mod:`meshsim.lint._measure` then measures the real thing in a short run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from meshsim.policies.retry import RetryPolicy, backoff_cap, would_retry

__all__ = ["Load", "RetryPressure", "estimate_load", "erlang_b", "main_route_index", "retry_pressure"]

#: a version name standing for the whole service (a service without routes and several versions)
WHOLE = "*"


def erlang_b(servers: int, offered: float) -> float:
    """Erlang's loss formula: the share of arrivals that find all ``servers`` busy.

    ``offered`` is the load in Erlangs (arrival rate x mean holding time).

    Examples
    --------
    >>> round(erlang_b(3, 3.0), 3), round(erlang_b(3, 0.5), 4), erlang_b(0, 1.0)
    (0.346, 0.0127, 1.0)
    """
    if servers <= 0:
        return 1.0
    if offered <= 0.0:
        return 0.0
    if servers > 20 * offered + 200:  # far below capacity: vanishingly small
        return 0.0
    b = 1.0
    for n in range(1, servers + 1):
        b = offered * b / (n + offered * b)
    return b


def main_route_index(mesh: Any) -> int | None:
    """The route most requests take: the last one without match conditions (else the last one);
    ``None`` without routes (the implicit route)."""
    routes = mesh.routes
    if not routes:
        return None
    for i in range(len(routes) - 1, -1, -1):
        if not routes[i].match:
            return i
    return len(routes) - 1


@dataclass(frozen=True)
class RetryPressure:
    """Concurrent retries the sidecars of one caller keep towards one cluster (Little's law)."""

    caller: str
    calls_per_s: float  # first tries per second from one sidecar to the cluster
    retriable: float  # odds a try fails in a way the policy retries
    retries_per_s: float  # retry decisions per second from one sidecar (refused ones included)
    backoff_s: float  # mean back-off before a retried try
    try_s: float  # mean time of the retried try
    in_flight: float  # retries holding a slot, on average (offered load)
    overflow: float  # Erlang B estimate of the share of retries refused


@dataclass
class Load:
    """The estimate."""

    #: requests (tries) per second arriving at each service
    rate: dict[str, float] = field(default_factory=dict)
    #: (service, version) -> share of the service's requests
    share: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (service, version) -> mean time of one try, network legs included (seconds)
    latency: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (service, version) -> [(odds, status)] of the ways a try fails
    failure: dict[tuple[str, str], list[tuple[float, int]]] = field(default_factory=dict)
    #: (caller, callee) -> first tries per second (callers: services and traffic sources)
    calls: dict[tuple[str, str], float] = field(default_factory=dict)
    #: caller -> number of sidecars (replicas; 1 for a traffic source)
    sidecars: dict[str, int] = field(default_factory=dict)
    #: service -> estimated share of its callers' retries its breakers refuse
    overflow: dict[str, float] = field(default_factory=dict)
    #: the mean one-way network delay (seconds)
    network: float = 0.0

    def retriable(self, service: str, version: str, policy: RetryPolicy) -> float:
        """Odds that a try at ``version`` (``"*"``: any) fails in a way ``policy`` retries."""
        if version == WHOLE:
            return sum(sh * self.retriable(s, v, policy) for (s, v), sh in self.share.items() if s == service)
        ok = 1.0
        for p, status in self.failure.get((service, version), []):
            if would_retry(policy.flags, status, None, policy.retriable_status_codes):
                ok *= 1.0 - p
        return 1.0 - ok

    def failing(self, service: str, version: str) -> float:
        """Odds that a try at ``version`` fails at all."""
        return 1.0 - math.prod(1.0 - p for p, _ in self.failure.get((service, version), []))

    def try_time(self, service: str, version: str) -> float:
        """Mean time of one try at ``version`` (``"*"``: any)."""
        if version == WHOLE:
            return sum(sh * self.latency[(s, v)] for (s, v), sh in self.share.items() if s == service)
        return self.latency.get((service, version), 0.0)


def _mean(model: Any, default: float = 0.0) -> float:
    try:
        m = float(model.mean())
    except Exception:  # a model without a finite mean
        return default
    return m if math.isfinite(m) else default


def _order(graph: dict[str, list[str]]) -> list[str]:
    """Services with callees before callers (written order among equals; a cycle is cut)."""
    out: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in state:
                visit(nxt)
        state[node] = 2
        out.append(node)

    for node in graph:
        if node not in state:
            visit(node)
    return out


def _retry_policy(scenario: Any, service: str) -> RetryPolicy | None:
    mesh = scenario.mesh.get(service)
    if mesh is None:
        return None
    rp = mesh.route_policies(main_route_index(mesh)).retries
    return rp if rp is not None and rp.active and rp.num_retries > 0 else None


def _after_retries(p: float, q: float, n: int, b: float) -> tuple[float, float]:
    """A call's fate under retries: ``(failure odds, expected tries)``.

    ``p``: a try fails retriably; ``q``: it fails otherwise; ``n``: num_retries;
    ``b``: odds that the **first** retry is refused by the breaker (the call then
    fails). Later retries of the same request are not refused: Envoy releases
    the slot of the previous retry and takes one for the next in the same
    decision, so the request keeps its slot.
    """
    if n <= 0:
        return q + p, 1.0
    g = q + p  # the chain fails, given a retried try runs with no retry left after it
    for _ in range(n - 1):
        g = q + p * g
    tries = 1.0 + p * (1.0 - b) * sum(p ** j for j in range(n))
    return q + p * (b + (1.0 - b) * g), tries


class _Model:
    def __init__(self, scenario: Any) -> None:
        from meshsim.config import Call, Parallel

        self.scenario = scenario
        self.versions = {s: spec.resolved_versions(s) for s, spec in scenario.services.items()}
        self.policies = {s: _retry_policy(scenario, s) for s in scenario.services}
        self.order = _order(scenario.call_graph_ordered())
        self.network = _mean(scenario.network.latency)
        self.share: dict[tuple[str, str], float] = {}
        self.sidecars: dict[str, int] = {}
        for s, vs in self.versions.items():
            mesh = scenario.mesh.get(s)
            i = main_route_index(mesh) if mesh is not None else None
            total = sum(rv.replicas for rv in vs.values())
            shares = mesh.routes[i].shares() if i is not None else {v: rv.replicas / total for v, rv in vs.items()}
            for v in vs:
                self.share[(s, v)] = shares.get(v, 0.0)
            self.sidecars[s] = total
        self.calls_of = {
            (s, v): [c for step in rv.script for c in (
                [step] if isinstance(step, Call) else list(step.calls) if isinstance(step, Parallel) else [])]
            for s, vs in self.versions.items() for v, rv in vs.items()
        }

    def _fate(self, load: Load, callee: str, overflow: dict[str, float]) -> tuple[float, float]:
        """A call to ``callee``: ``(failure odds after its retries, expected tries)``."""
        rp = self.policies[callee]
        fail = tries = 0.0
        for v in self.versions[callee]:
            sh = self.share[(callee, v)]
            f = load.failing(callee, v)
            if rp is None:
                fail += sh * f
                tries += sh
                continue
            p = load.retriable(callee, v, rp)
            fv, tv = _after_retries(p, max(f - p, 0.0), rp.num_retries, overflow.get(callee, 0.0))
            fail += sh * fv
            tries += sh * tv
        return fail, tries

    def evaluate(self, overflow: dict[str, float]) -> Load:
        from meshsim.config import Call, Parallel, Sleep, Work

        load = Load(share=dict(self.share), sidecars=dict(self.sidecars), overflow=dict(overflow),
                    network=self.network)
        done: set[str] = set()
        # callees first: failure odds and latency of one try at each version (a call back into a
        # service still being estimated, in a cycle, is left out)
        for s in self.order:
            for v, rv in self.versions[s].items():
                own = _mean(rv.latency)
                t = 2.0 * load.network
                failures: list[tuple[float, int]] = []
                if rv.errors is not None and rv.errors.rate > 0:
                    failures.append((float(rv.errors.rate), int(rv.errors.status)))
                ok_calls = 1.0
                for step in rv.script:
                    group: list[Any] = []
                    if isinstance(step, Work):
                        t += _mean(step.latency) if step.latency is not None else own
                    elif isinstance(step, Sleep):
                        t += _mean(step.latency)
                    elif isinstance(step, Call):
                        group = [step]
                    elif isinstance(step, Parallel):
                        group = list(step.calls)
                    times = []
                    for c in group:
                        if c.service not in done:
                            continue
                        fail, tries = self._fate(load, c.service, overflow)
                        times.append(float(c.probability) * tries * sum(
                            self.share[(c.service, w)] * load.latency[(c.service, w)]
                            for w in self.versions[c.service]))
                        if not c.optional:
                            ok_calls *= 1.0 - float(c.probability) * fail
                    t += max(times, default=0.0) if isinstance(step, Parallel) else sum(times)
                if ok_calls < 1.0:
                    failures.append((1.0 - ok_calls, 500))
                load.latency[(s, v)] = t
                load.failure[(s, v)] = failures
            done.add(s)
        # callers first: request rates
        duration = float(self.scenario.duration)
        for src in self.scenario.traffic:
            if src.closed_loop:
                think = _mean(src.think) if src.think is not None else 0.0
                rate = float(src.users) / max(think + load.try_time(src.to, WHOLE), 1e-3)
            else:
                rate = sum((t1 - t0) * (r0 + r1) / 2.0 for t0, t1, r0, r1 in src.segments(duration)) / duration
            load.calls[(src.name, src.to)] = load.calls.get((src.name, src.to), 0.0) + rate
            load.sidecars[src.name] = 1
            load.rate[src.to] = load.rate.get(src.to, 0.0) + rate * self._fate(load, src.to, overflow)[1]
        for s in reversed(self.order):
            arriving = load.rate.get(s, 0.0)
            for v in self.versions[s]:
                for c in self.calls_of[(s, v)]:
                    first = self.share[(s, v)] * arriving * float(c.probability)
                    load.calls[(s, c.service)] = load.calls.get((s, c.service), 0.0) + first
                    load.rate[c.service] = load.rate.get(c.service, 0.0) + first * self._fate(
                        load, c.service, overflow)[1]
        return load


def _limits(scenario: Any, service: str) -> list[tuple[str, int]]:
    """The clusters the engine builds for calls to ``service`` with their retry limit
    (``max_retries``), leaving out those with a retry budget in force."""
    mesh = scenario.mesh.get(service)
    if mesh is None:
        return []
    versions = list(scenario.services[service].resolved_versions(service))
    if mesh.routes:
        targets = list(dict.fromkeys(d.version for r in mesh.routes for d in r.destinations))
    elif len(versions) == 1:
        targets = versions
    else:
        targets = [WHOLE]
    out = []
    for v in targets:
        cp = mesh.cluster_policies(None if v == WHOLE else v)
        if cp.retry_budget is not None and cp.retry_budget.in_force:
            continue
        out.append((v, int(cp.circuit_breakers.max_retries)))
    return out


def estimate_load(scenario: Any, *, iterations: int = 30) -> Load:
    """Estimate rates, shares, try latencies, failure odds and retry overflow for ``scenario``."""
    model = _Model(scenario)
    overflow: dict[str, float] = {}
    load = model.evaluate(overflow)
    for _ in range(iterations):
        new: dict[str, float] = {}
        for service, rp in model.policies.items():
            if rp is None:
                continue
            weight = refused = 0.0
            for version, limit in _limits(scenario, service):
                for pr in retry_pressure(load, service, version, rp, limit):
                    w = pr.retries_per_s * load.sidecars.get(pr.caller, 1)
                    weight += w
                    refused += w * pr.overflow
            if weight > 0:
                new[service] = refused / weight
        if all(abs(new.get(k, 0.0) - overflow.get(k, 0.0)) < 1e-4 for k in set(new) | set(overflow)):
            overflow = new
            break
        overflow = {k: 0.5 * (new.get(k, 0.0) + overflow.get(k, 0.0)) for k in set(new) | set(overflow)}
        load = model.evaluate(overflow)
    load.overflow = overflow
    return load


def retry_pressure(load: Load, dest: str, version: str, policy: RetryPolicy, limit: int) -> list[RetryPressure]:
    """For each caller of ``dest``: the retry slots one of its sidecars holds towards cluster ``version``
    (``"*"`` for the whole service), with ``limit`` slots.

    Notes
    -----
    A request takes a slot at its first retry decision and keeps it through
    its later retries (each decision releases the previous slot and takes the
    next at once), so the breaker is a loss system whose customers are retry
    *chains*: arrivals at rate ``calls x p`` (first retriable failures), each
    holding a slot for ``sum_k p**(k-1) (back-off_k + try)``. Little's law gives
    the slots in use, Erlang's loss formula the share of first retries refused;
    later retries are never refused.
    """
    share = 1.0 if version == WHOLE else load.share.get((dest, version), 0.0)
    p = load.retriable(dest, version, policy)
    n = policy.num_retries
    if p <= 0.0 or n <= 0:
        return []
    b = load.overflow.get(dest, 0.0)
    reach = [p ** (k - 1) for k in range(1, n + 1)]  # odds a chain gets to its k-th retry
    decisions = p * (1.0 + (1.0 - b) * sum(p ** (k - 1) for k in range(2, n + 1)))
    caps = [backoff_cap(k, policy.base_interval_ms, policy.max_interval_ms) for k in range(1, n + 1)]
    try_s = load.try_time(dest, version)
    if policy.per_try_timeout > 0:
        try_s = min(try_s, policy.per_try_timeout)
    backoff = sum(w * (c - 1) / 2.0 for w, c in zip(reach, caps, strict=True)) / sum(reach) / 1000.0
    chain = sum(reach) * (backoff + try_s)
    out = []
    for (caller, callee), first in load.calls.items():
        if callee != dest:
            continue
        per_sidecar = first * share / max(load.sidecars.get(caller, 1), 1)
        in_flight = per_sidecar * p * chain
        refused_first = erlang_b(limit, in_flight)
        out.append(RetryPressure(caller, per_sidecar, p, per_sidecar * decisions, backoff, try_s, in_flight,
                                 refused_first * p / decisions))
    return out
