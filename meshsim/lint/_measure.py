"""Short, bounded simulations that show a finding's effect.

Two kinds:

* **Probes** (:func:`measure_probe`): a one-service scenario built from the
  cluster under suspicion: its host count, its outlier detection and load
  balancing, some hosts failing every request (503), one client at
  :data:`PROBE_RATE` requests/s for :data:`PROBE_SECONDS` simulated seconds.
  It runs twice with the same seed (common random numbers): as configured,
  and with the setting the finding recommends.
* **Scenario runs** (:func:`measure_retry_overflow`): the linted scenario
  itself, cut to a few simulated seconds, to count what the retry circuit
  breaker refuses at the scenario's own load.

Both import the engine lazily: :mod:`meshsim.lint` without measurement needs no
simulator.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from meshsim.lint._checks import Probe

__all__ = ["PROBE_SECONDS", "PROBE_RATE", "SCENARIO_SECONDS", "measure_probe", "measure_retry_overflow"]

#: simulated seconds of a probe
PROBE_SECONDS = 10.0
#: requests per second of the probe's one client
PROBE_RATE = 100.0
#: simulated seconds of a measurement run of the linted scenario (before a short drain)
SCENARIO_SECONDS = 10.0


def _simulate(scenario: Any, seed: int | None = None) -> Any:
    from meshsim import MeshsimWarning
    from meshsim.sim import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshsimWarning)  # the finding says it already
        return simulate(scenario, seed=seed)


def _probe_scenario(probe: Probe, latency_s: float, seed: int, *, outlier: Any, load_balancer: Any) -> Any:
    from meshsim.config import parse_scenario

    hosts = int(probe.cluster.hosts or 0)
    failing = min(probe.failing, hosts)
    versions: dict[str, Any] = {}
    if hosts > failing:
        versions["ok"] = {"replicas": hosts - failing}
    versions["failing"] = {"replicas": failing, "errors": {"rate": 1.0, "status": 503}}
    return parse_scenario(
        {
            "name": "lint-probe",
            "seed": seed,
            "duration": PROBE_SECONDS,
            "drain": 1.0,
            "services": {"probe": {"workers": 64, "latency": max(latency_s, 1e-4), "versions": versions}},
            "traffic": [{"name": "client", "to": "probe", "rate": PROBE_RATE}],
            # no routes: one cluster of all the hosts, as the linted cluster
            "mesh": {"probe": {"outlier_detection": outlier, "load_balancer": load_balancer}},
        },
        source="<lint probe>",
    )


def _probe_run(probe: Probe, latency_s: float, seed: int, outlier: Any, load_balancer: Any) -> dict[str, Any]:
    scn = _probe_scenario(probe, latency_s, seed, outlier=outlier, load_balancer=load_balancer)
    result = _simulate(scn)
    counters: dict[str, int] = {}
    for key, stats in result.summary.get("stats", {}).items():
        if key.startswith("probe|"):
            for name, value in stats.items():
                counters[name] = counters.get(name, 0) + int(value)
    att = result.attempts
    answered = att[att["replica"] >= 0] if "replica" in att else att
    bad = answered["version"] == "failing"
    events = result.outlier_events
    ejects = events[events["action"] == "eject"]
    first_after = None
    if len(ejects):
        t0 = float(ejects["time_s"].min())
        first_after = int(((answered["version"] == "failing") & (answered["end_s"] <= t0 + 1e-12)).sum())
    return {
        "ejections": counters.get("outlier_detection.ejections_enforced_total", 0),
        "overflow": counters.get("outlier_detection.ejections_overflow", 0),
        "panic": counters.get("lb_healthy_panic", 0),
        "bad_share": float(bad.mean()) if len(answered) else math.nan,
        "first_after": first_after,
        "success": result.summary["end_to_end"]["success_rate"],
    }


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _pct(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{100 * x:.2g} %" if x < 0.1 else f"{100 * x:.0f} %"


def measure_probe(probe: Probe, *, latency_s: float = 0.010, seed: int = 1) -> str:
    """Run a probe as configured and as the finding recommends; the effect, in one sentence.

    Parameters
    ----------
    probe
        What to measure (from :func:`meshsim.lint._checks.cluster_checks`).
    latency_s
        Service time of the probe's hosts (the linted version's mean, when known).
    seed
        Seed of both runs.
    """
    cluster = probe.cluster
    assert cluster.outlier is not None and cluster.hosts
    od = cluster.outlier.policy.model_copy(update={"healthy_panic_threshold": None})
    lb = cluster.load_balancer.policy
    hosts = cluster.hosts
    setup = (f"probe: {hosts} host{'s' if hosts != 1 else ''}, {probe.failing} failing every request, "
             f"one client at {PROBE_RATE:g} req/s for {PROBE_SECONDS:g} s")
    if probe.kind == "max_ejection":
        fix = math.ceil(100.0 / hosts - 1e-9)
        before = _probe_run(probe, latency_s, seed, od, lb)
        after = _probe_run(probe, latency_s, seed, od.model_copy(update={"max_ejection_percent": fix}), lb)
        first = after["first_after"]
        fixed = f"ejected after its {_ordinal(first)} request" if first is not None else "not ejected either"
        return (f"{setup}: {_count(before['ejections'], 'ejection')} ({before['overflow']} refused as "
                f"ejections_overflow), the failing host answered {_pct(before['bad_share'])} of requests; with "
                f"max_ejection_percent {fix}: {fixed}, {_pct(after['bad_share'])} of requests")
    # panic: the failing hosts are ejected, yet keep getting traffic
    before = _probe_run(probe, latency_s, seed, od, lb)
    after = _probe_run(probe, latency_s, seed, od, lb.model_copy(update={"healthy_panic_threshold": 0.0}))
    noun = "host" if probe.failing == 1 else "hosts"
    zero = (f"{_pct(after['bad_share'])}" if hosts > probe.failing
            else f"none (no healthy host: 503 UH, success {_pct(after['success'])})")
    return (f"{setup}: {_count(before['ejections'], 'ejection')}, yet the failing {noun} answered "
            f"{_pct(before['bad_share'])} of requests (lb_healthy_panic {before['panic']}); with "
            f"healthy_panic_threshold 0: {zero}")


def measure_retry_overflow(scenario: Any, services: list[str], *, seconds: float = SCENARIO_SECONDS,
                           seed: int | None = None) -> dict[str, tuple[int, int, float]]:
    """Retries and retry overflows per destination service in a short run of ``scenario``.

    Returns
    -------
    dict
        Service -> ``(upstream_rq_retry, upstream_rq_retry_overflow, measured seconds)``,
        summed over the service's clusters and caller sidecars.
    """
    from meshsim.config import apply_overrides

    duration = min(float(scenario.duration), seconds)
    warmup = min(float(scenario.warmup), duration / 5.0)
    short = apply_overrides(scenario, {"duration": duration, "warmup": warmup, "drain": 2.0,
                                       "replications": 1, "record": "summary"})
    result = _simulate(short, seed=seed)
    out: dict[str, tuple[int, int, float]] = {}
    for svc in services:
        retry = overflow = 0
        for key, stats in result.summary.get("stats", {}).items():
            if key.split("|", 1)[0] == svc:
                retry += int(stats.get("upstream_rq_retry", 0))
                overflow += int(stats.get("upstream_rq_retry_overflow", 0))
        out[svc] = (retry, overflow, duration - warmup)
    return out
