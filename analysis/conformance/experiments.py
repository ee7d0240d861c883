"""The experiments of issue 5: one scenario each, run on a real Envoy 1.40 and in the simulator.

Each :class:`Experiment` is a plain scenario mapping (what a user would write) plus how to run it:
duration, harness settings the scenario cannot carry (the LB update merge window), derived
metrics, and the known disagreements (metric -> explanation; the report says why and what fix is
proposed). ``short`` variants are a few seconds long and run in ``make test``.

Families:

1. ``cb-*``       circuit breaking, max_connections = max_pending_requests = max_requests = 1
2. ``retry-*``    retries on an upstream failing 30 % (num_retries 2)
3. ``outlier-*``  five hosts, one always failing (consecutive_5xx 5, interval 1 s, base 5 s, 50 %)
4. ``pertry``     per-try timeout with retries on a bimodal upstream
5. ``weighted``, ``lb-*``  weighted routing 90/10; least request vs round robin on unequal hosts
6. ``chain-*``, ``bookinfo``  multi-hop: services calling services through their own sidecars
   (one Envoy per calling service, stand-ins running the scripts: ``meshsim.conformance._multihop``)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: one-way network delay per leg in the simulator, standing in for loopback + Envoy's own work
#: (measured: the proxy adds ~0.5-1 ms per request on this machine, see the report's overhead line)
NET = "0.25ms"

# known disagreements: metric -> why (the report explains each, with the proposed simulator fix)
TRY2 = ("D4 (harness): the 2nd-try band runs 2-6 ms later end to end through Envoy; the gap between the "
        "tries at the upstream (try_gap_p50_ms: per-try timeout + back-off) agrees, so the rest is the real "
        "path's timers and the stand-in's sleep; reported, not judged")


@dataclass
class Experiment:
    name: str
    family: str
    title: str
    scenario: dict[str, Any]
    duration: float
    short_duration: float
    update_merge_window: float | None = None
    derived: Callable[[Any], dict[str, float]] | None = None
    known: dict[str, str] = field(default_factory=dict)
    short: bool = False  # this case runs in `make test`
    metrics: tuple[str, ...] | None = None

    def build(self, *, short: bool = False) -> Any:
        from meshsim.config import parse_scenario

        d = copy.deepcopy(self.scenario)
        d["name"] = self.name
        d["duration"] = f"{self.short_duration if short else self.duration}s"
        return parse_scenario(d, source=self.name)


def _one_upstream(latency: Any, *, errors: Any = None, workers: int = 64) -> dict[str, Any]:
    svc: dict[str, Any] = {"latency": latency, "workers": workers}
    if errors is not None:
        svc["errors"] = errors
    return svc


# ---------------------------------------------------------------------------------------- 1. breakers
CB = {"max_connections": 1, "max_pending_requests": 1, "max_requests": 1}


CX_OVERFLOW = ("D5 (Envoy's event loop): a request arriving in the event-loop iteration in which an HTTP/1.1 "
               "stream closed takes the freed connection before the deferred attach of the pending one, which "
               "then counts a second upstream_cx_overflow; Envoy counts 3-15 % more, see the report")


def _cb(name: str, traffic: dict[str, Any], short: bool = False) -> Experiment:
    return Experiment(
        name=name, family="1 circuit breaking",
        title=f"max_connections = max_pending_requests = max_requests = 1; traffic {traffic}",
        scenario={"network": {"latency": NET},
                  "services": {"up": _one_upstream({"type": "exponential", "mean": "20ms"}, workers=8)},
                  "traffic": [{"to": "up", **traffic}],
                  "mesh": {"up": {"circuit_breakers": dict(CB)}}},
        duration=15, short_duration=3, short=short, known={"upstream_cx_overflow/rq": CX_OVERFLOW},
    )


# ---------------------------------------------------------------------------------------- 2. retries
def _retry(name: str, rate: str, max_retries: int | None = None, short: bool = False) -> Experiment:
    mesh: dict[str, Any] = {"retries": {"retry_on": "5xx", "num_retries": 2}}
    if max_retries is not None:
        mesh["circuit_breakers"] = {"max_retries": max_retries}
    return Experiment(
        name=name, family="2 retries",
        title=f"30 % 503s, num_retries 2, Poisson {rate}" + (f", max_retries {max_retries}" if max_retries else
                                                                  ", default max_retries 3"),
        scenario={"network": {"latency": NET},
                  "services": {"up": _one_upstream({"type": "exponential", "mean": "20ms"},
                                                   errors={"rate": 0.3, "status": 503}, workers=256)},
                  "traffic": [{"to": "up", "rate": rate}],
                  "mesh": {"up": mesh}},
        duration=12, short_duration=3, short=short,
        known={},
    )


# ---------------------------------------------------------------------------------------- 3. outlier
def outlier_metrics(obs: Any) -> dict[str, float]:
    """Requests the bad host receives per ejection cycle, and the ejection lengths.

    Cycle 0 runs from the start to the first un-ejection, cycle k from the k-th un-ejection to the
    next; ``eject_len_k`` is the k-th ejection's length (eject to un-eject), in seconds.
    """
    att = obs.extra["attempts"]
    t = np.sort(att.loc[att["host"] == "backend/bad/0", "arrival_s" if obs.side == "real" else "start_s"]
                .to_numpy(dtype=float))
    ev = obs.extra["outlier_events"]
    ev = ev[ev["host"] == "backend/bad/0"] if len(ev) else ev
    ej = ev.loc[ev["action"] == "eject", "time_s"].to_numpy(dtype=float) if len(ev) else np.zeros(0)
    un = ev.loc[ev["action"] == "uneject", "time_s"].to_numpy(dtype=float) if len(ev) else np.zeros(0)
    out: dict[str, float] = {"ejections": float(len(ej))}
    edges = [-np.inf, *un.tolist(), np.inf]
    for k in range(min(2, len(un) + 1)):
        out[f"bad_rq_cycle{k}"] = float(((t >= edges[k]) & (t < edges[k + 1])).sum())
    for k in range(min(len(ej), len(un), 2)):
        out[f"eject_len_{k + 1}_s"] = float(un[k] - ej[k])
    # how long the bad host kept receiving after its 2nd ejection (the LB update merge window)
    if len(ej) >= 2:
        after = t[t >= ej[1]]
        out["bad_rq_after_2nd_eject"] = float(len(after))
    return out


def _outlier(name: str, window: float | None, short: bool = False) -> Experiment:
    w = "default 1 s" if window is None else f"{window:g} s"
    return Experiment(
        name=name, family="3 outlier detection",
        title=f"5 hosts, one always 500; consecutive_5xx 5, interval 1 s, base 5 s, max 50 %; update_merge_window {w}",
        scenario={"network": {"latency": NET},
                  "services": {"backend": {"latency": {"type": "exponential", "mean": "5ms"}, "workers": 16,
                                           "versions": {"good": {"replicas": 4},
                                                        "bad": {"replicas": 1, "errors": {"rate": 1.0, "status": 500}}}}},
                  "traffic": [{"to": "backend", "rate": "50/s"}],
                  "mesh": {"backend": {"outlier_detection": {
                      "consecutive_5xx": 5, "interval": "1s", "base_ejection_time": "5s", "max_ejection_percent": 50}}}},
        duration=14, short_duration=8, update_merge_window=window, derived=outlier_metrics, short=short,
        metrics=("success_rate", "status[", "share[backend/bad", "outlier_detection", "ejections", "bad_rq",
                 "eject_len"),
    )


# ---------------------------------------------------------------------------------------- 4. per-try
def pertry_metrics(obs: Any) -> dict[str, float]:
    """Latency of requests answered at their 2nd and 3rd try (the back-off bands), and the gap
    between a request's 1st and 2nd try where the upstream sees them (per-try timeout + back-off:
    the stand-ins log each try's arrival, the simulator each try's start)."""
    req = obs.extra["requests"]
    out = {}
    for k in (2, 3):
        lat = req.loc[(req["attempts"] == k) & (req["status"] == 200), "latency_s"].to_numpy(dtype=float)
        if len(lat):
            out[f"try{k}_p50_ms"] = float(np.median(lat) * 1e3)
            out[f"try{k}_p90_ms"] = float(np.quantile(lat, 0.9) * 1e3)
    att = obs.extra.get("attempts")
    if att is not None and len(att):
        col = "arrival_s" if "arrival_s" in att.columns else "start_s"
        a = att[["request_id", col]].sort_values(["request_id", col], kind="stable")
        a = a.assign(k=a.groupby("request_id").cumcount())
        t1 = a[a["k"] == 0].set_index("request_id")[col]
        t2 = a[a["k"] == 1].set_index("request_id")[col]
        gap = t2.to_numpy(dtype=float) - t1.loc[t2.index].to_numpy(dtype=float)
        if len(gap):
            out["try_gap_p50_ms"] = float(np.median(gap) * 1e3)
    return out


PERTRY = Experiment(
    name="pertry", family="4 per-try timeout",
    title="90 % 10 ms / 10 % 300 ms upstream; per_try_timeout 100 ms, num_retries 2, retry_on 5xx, timeout 1 s",
    scenario={"network": {"latency": NET},
              "services": {"up": _one_upstream({"type": "mixture", "components": [
                  {"weight": 0.9, "type": "constant", "value": "10ms"},
                  {"weight": 0.1, "type": "constant", "value": "300ms"}]}, workers=256)},
              "traffic": [{"to": "up", "rate": "40/s"}],
              "mesh": {"up": {"timeout": "1s", "retries": {"retry_on": "5xx", "num_retries": 2,
                                                           "per_try_timeout": "100ms"},
                              "circuit_breakers": {"max_retries": 100}}}},
    duration=15, short_duration=4, derived=pertry_metrics, short=True,
    known={"try2_p50_ms": TRY2, "try2_p90_ms": TRY2},
)

# ---------------------------------------------------------------------------------------- 5. balance
WEIGHTED = Experiment(
    name="weighted", family="5 routing and balance",
    title="route {v1: 90, v2: 10}",
    scenario={"network": {"latency": NET},
              "services": {"up": {"latency": {"type": "exponential", "mean": "5ms"}, "workers": 16,
                                  "versions": {"v1": {}, "v2": {}}}},
              "traffic": [{"to": "up", "rate": "100/s"}],
              "mesh": {"up": {"routes": [{"route": {"v1": 90, "v2": 10}}]}}},
    duration=10, short_duration=3, short=True,
)


def _lb(name: str, policy: str, short: bool = False) -> Experiment:
    return Experiment(
        name=name, family="5 routing and balance",
        title=f"{policy}: hosts fast (2 x 10 ms) and slow (1 x 60 ms, 1 worker each), Poisson 40/s",
        scenario={"network": {"latency": NET},
                  "services": {"up": {"workers": 1, "latency": {"type": "exponential", "mean": "10ms"},
                                      "versions": {"fast": {"replicas": 2},
                                                   "slow": {"latency": {"type": "exponential", "mean": "60ms"}}}}},
                  "traffic": [{"to": "up", "rate": "40/s"}],
                  "mesh": {"up": {"load_balancer": policy}}},
        duration=12, short_duration=3, short=short,
    )


# ---------------------------------------------------------------------------------------- 6. multi-hop
def _chain(name: str, rate: str, short: bool = False) -> Experiment:
    return Experiment(
        name=name, family="6 multi-hop",
        title=f"front -> back (2 replicas, 10 % 503s), retries on back (5xx, num_retries 1), Poisson {rate}",
        scenario={"network": {"latency": NET},
                  "services": {"front": {"latency": {"type": "exponential", "mean": "5ms"}, "workers": 32,
                                         "script": ["work", {"call": "back"}]},
                               "back": {"replicas": 2, "workers": 32,
                                        "latency": {"type": "exponential", "mean": "10ms"},
                                        "errors": {"rate": 0.1, "status": 503}}},
                  "traffic": [{"to": "front", "rate": rate}],
                  "mesh": {"back": {"retries": {"retry_on": "5xx", "num_retries": 1}}}},
        duration=15, short_duration=4, short=short,
    )


#: every script step the stand-ins run: an async front end that works, calls two services at once
#: (one optional), sleeps, works again; the required callee fails 5 %, the optional one 20 %
FANOUT = Experiment(
    name="fanout", family="6 multi-hop",
    title="front (async, 4 workers): work, parallel [a (5 % 503s), b optional (20 % 503s)], sleep 5 ms, "
          "work 2 ms; Poisson 40/s",
    scenario={"network": {"latency": NET},
              "services": {"front": {"replicas": 2, "workers": 4, "concurrency": "async",
                                     "latency": {"type": "exponential", "mean": "4ms"},
                                     "script": ["work", {"parallel": [{"call": "a"},
                                                                      {"call": {"service": "b", "optional": True}}]},
                                                {"sleep": "5ms"}, {"work": "2ms"}]},
                           "a": {"workers": 16, "latency": {"type": "exponential", "mean": "8ms"},
                                 "errors": {"rate": 0.05, "status": 503}},
                           "b": {"workers": 16, "latency": {"p50": "5ms", "p99": "30ms"},
                                 "errors": {"rate": 0.2, "status": 503}}},
              "traffic": [{"to": "front", "rate": "40/s"}]},
    duration=15, short_duration=4,
)

#: Istio's Bookinfo as in scenarios/bookinfo.yaml, at a rate two shared cores carry with four
#: Python stand-ins and three Envoys (40/s, not 200/s), with ratings failing 3 % (not 0.2 %) so
#: that a failure's way up two hops (ratings -> reviews 500 -> productpage 500) shows in a run
BOOKINFO = Experiment(
    name="bookinfo", family="6 multi-hop",
    title="Bookinfo: productpage -> details, reviews (v1 90 / v3 10, jason -> v2) -> ratings (3 % 500s); "
          "cross-zone 1 ms; Poisson 40/s",
    scenario={"network": {"latency": "0.2ms", "cross_zone": "1ms"},
              "services": {
                  "productpage": {"replicas": 3, "workers": 16, "queue": 64, "zones": ["zone-a", "zone-b", "zone-c"],
                                  "latency": {"p50": "4ms", "p99": "25ms"},
                                  "script": ["work", {"call": "details"}, {"call": {"service": "reviews",
                                                                                      "path": "/reviews"}}]},
                  "details": {"replicas": 2, "workers": 8, "zones": ["zone-a", "zone-b"],
                              "latency": {"p50": "2ms", "p99": "10ms"}},
                  "reviews": {"zones": ["zone-a", "zone-b", "zone-c"], "workers": 8,
                              "latency": {"p50": "6ms", "p99": "40ms"},
                              "versions": {"v1": {"replicas": 3},
                                           "v2": {"replicas": 1, "script": ["work", {"call": "ratings"}]},
                                           "v3": {"replicas": 1, "latency": {"p50": "7ms", "p99": "60ms"},
                                                  "script": ["work", {"call": "ratings"}]}}},
                  "ratings": {"replicas": 2, "workers": 8, "zones": ["zone-a", "zone-b"],
                              "latency": {"type": "exponential", "mean": "3ms"}, "errors": "3%"}},
              "traffic": [{"name": "users", "to": "productpage", "rate": "40/s", "path": "/productpage",
                           "zone": "zone-a", "headers": {"end-user": {"jason": "5%"}}}],
              "mesh": {"reviews": {"routes": [
                  {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": {"v2": 100}},
                  {"name": "canary", "route": {"v1": 90, "v3": 10}}]}}},
    duration=20, short_duration=5,
)


EXPERIMENTS: list[Experiment] = [
    # closed loop with 10 ms think time: an overflowed request is answered by the client's own
    # sidecar in the simulator with no time passing (it refuses a cycle without time), and the
    # 503 share of a closed loop is set by how fast the client comes back
    _cb("cb-closed-1", {"users": 1, "think": "10ms"}),
    _cb("cb-closed-2", {"users": 2, "think": "10ms"}),
    _cb("cb-closed-3", {"users": 3, "think": "10ms"}, short=True),
    _cb("cb-poisson-20", {"rate": "20/s"}),
    _cb("cb-poisson-50", {"rate": "50/s"}),
    _retry("retry-low", "20/s", short=True),
    _retry("retry-high", "150/s"),
    _retry("retry-high-raised", "150/s", max_retries=1000),
    _outlier("outlier-window-default", None, short=True),
    _outlier("outlier-window-0", 0.0),
    PERTRY,
    WEIGHTED,
    _lb("lb-round-robin", "ROUND_ROBIN"),
    _lb("lb-least-request", "LEAST_REQUEST", short=True),
    _chain("chain-retry", "40/s", short=True),
    FANOUT,
    BOOKINFO,
]
BY_NAME = {e.name: e for e in EXPERIMENTS}


def run_experiment(exp: Experiment, *, short: bool = False, real_repeats: int | None = None,
                   sim_repeats: int | None = None, seed: int = 0, progress=None):
    """Run one experiment (``short``: its few-second variant, one real run)."""
    from meshsim.conformance import run_conformance

    scn = exp.build(short=short)
    return run_conformance(
        scn, name=exp.name, real_repeats=real_repeats or (1 if short else 3),
        sim_repeats=sim_repeats or (3 if short else 5), seed=seed,
        update_merge_window=exp.update_merge_window, derived=exp.derived, known=exp.known,
        metrics=exp.metrics, progress=progress,
    )
