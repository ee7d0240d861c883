"""The SimPy engine.

Public API
----------
simulate(scenario, seed=None, replication=0) -> RunResult
    One replication.
run(scenario, seed=None, replications=None, progress=None) -> RunSet
    The scenario's replications (independent streams), with confidence
    intervals in ``summary["ci"]`` when there are several.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from meshsim._exceptions import MeshsimWarning
from meshsim.sim._engine import Simulation
from meshsim.sim._histogram import LogHistogram
from meshsim.sim._output import summary_json, write_run
from meshsim.sim._random import Streams
from meshsim.sim._result import RunResult, RunSet, combine_summaries
from meshsim.sim._traffic import RateSchedule, expected_requests

__all__ = [
    "simulate",
    "run",
    "Simulation",
    "RunResult",
    "RunSet",
    "Streams",
    "LogHistogram",
    "RateSchedule",
    "combine_summaries",
    "expected_requests",
    "write_run",
    "summary_json",
]


def simulate(scenario, *, seed: int | None = None, replication: int = 0,
             progress: Callable[[float], None] | None = None, weight_changes=()) -> RunResult:
    """Run one replication of ``scenario`` and return its tables and summary.

    Parameters
    ----------
    scenario
        A ``meshsim.config.Scenario`` (validated).
    seed
        Overrides the scenario's seed.
    replication
        Index of the replication: the same seed and index give identical results.
    progress
        Called with the fraction done (0..1) a few dozen times.
    weight_changes
        ``(time_s, service, route_index, {version: weight})`` tuples: route weights that
        change during the run (see :class:`Simulation`).

    Examples
    --------
    >>> from meshsim.config import parse_scenario
    >>> scn = parse_scenario({"name": "mm1", "duration": "100s",
    ...     "services": {"s": {"latency": {"type": "exponential", "mean": "50ms"}}},
    ...     "traffic": [{"to": "s", "rate": "10/s"}]})
    >>> r = simulate(scn, seed=1)
    >>> r.summary["end_to_end"]["success_rate"]
    1.0
    """
    sim = Simulation(scenario, seed=seed, replication=replication, weight_changes=weight_changes)
    for message in sim.warnings:
        warnings.warn(message, MeshsimWarning, stacklevel=2)
    return sim.run(progress)


def run(scenario, *, seed: int | None = None, replications: int | None = None,
        progress: Callable[[float], None] | None = None) -> RunSet:
    """Run the scenario's replications and combine their summaries (95 % t intervals)."""
    n = int(replications if replications is not None else getattr(scenario, "replications", 1) or 1)
    results = []
    for r in range(n):
        sub = None
        if progress is not None:
            def sub(f: float, r: int = r) -> None:
                progress((r + f) / n)
        results.append(simulate(scenario, seed=seed, replication=r, progress=sub))
    summary = combine_summaries([res.summary for res in results])
    return RunSet(results, summary)
