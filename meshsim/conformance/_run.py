"""One scenario, run on the real Envoy and in the simulator several times each, and compared."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from meshsim.conformance._compare import (
    Observation,
    Verdict,
    compare,
    observe_real,
    observe_sim,
    verdict_table,
)
from meshsim.conformance._multihop import (
    check_multihop_scope,
    drop_unmodelled,
    is_multihop,
    observe_real_multihop,
    observe_sim_multihop,
    run_real_multihop,
    version_clusters,
)
from meshsim.conformance._real import RealRun, cluster_sim_keys, run_real

__all__ = ["ConformanceResult", "run_conformance", "sim_settings"]


@contextlib.contextmanager
def sim_settings(*, update_merge_window: float | None = None) -> Iterator[None]:
    """Simulator settings a scenario cannot carry yet, for the length of a ``with`` block.

    ``update_merge_window``: Envoy's ``common_lb_config.update_merge_window`` (seconds). The
    scenario has no field for it (:class:`meshsim.policies.load_balancer.LoadBalancerPolicy`), so
    the default of :class:`meshsim.policies.outlier.HostSetUpdateMerger` is swapped here, and the
    same value is written into the Envoy cluster by the experiment's ``cluster_patch``.
    """
    if update_merge_window is None:
        yield
        return
    from meshsim.policies.outlier import HostSetUpdateMerger

    init = HostSetUpdateMerger.__init__
    old = init.__defaults__
    init.__defaults__ = (float(update_merge_window),)
    try:
        yield
    finally:
        init.__defaults__ = old


@dataclass
class ConformanceResult:
    """A scenario's real and simulated runs, their observations and the verdicts."""

    name: str
    scenario: Any
    real_runs: list[RealRun]
    sim_results: list[Any]
    real: list[Observation]
    sim: list[Observation]
    verdicts: list[Verdict]
    notes: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        """Every metric agrees, known disagreements aside."""
        return all(v.agree or v.known for v in self.verdicts)

    def table(self) -> pd.DataFrame:
        return verdict_table(self.verdicts)

    def verdict(self, metric: str) -> Verdict:
        for v in self.verdicts:
            if v.metric == metric:
                return v
        raise KeyError(metric)


def run_conformance(scenario, *, name: str | None = None, real_repeats: int = 3, sim_repeats: int = 5,
                    seed: int = 0, duration: float | None = None, max_requests: int = 20000,
                    cluster_patch: dict[str, Any] | None = None, update_merge_window: float | None = None,
                    metrics: Sequence[str] | None = None, known: dict[str, str] | None = None,
                    z: float = 3.0, concurrency: int = 1,
                    derived: Callable[[Observation], dict[str, float]] | None = None,
                    progress: Callable[[str], None] | None = None) -> ConformanceResult:
    """Run ``scenario`` ``real_repeats`` times through a real Envoy and ``sim_repeats`` times in the
    simulator (seeds ``seed``, ``seed + 1``, ...), and compare.

    Parameters
    ----------
    update_merge_window
        Sets Envoy's ``common_lb_config.update_merge_window`` on every cluster and the simulator's
        merge window alike (:func:`sim_settings`).
    metrics
        Only metrics whose names start with one of these (default: all).
    known
        ``metric -> explanation`` of known disagreements (reported, not hidden).
    derived
        Extra metrics computed from each observation, real and simulated alike (e.g. requests a
        bad host receives per ejection cycle), added before the comparison.
    """
    from meshsim.sim import simulate

    say = progress or (lambda _msg: None)
    patch = dict(cluster_patch or {})
    if update_merge_window is not None:
        patch.setdefault("common_lb_config", {})["update_merge_window"] = f"{update_merge_window:g}s"
    entry = scenario.entry_services()
    keys = cluster_sim_keys(scenario)
    # services that call others, sleep or work twice: a small mesh of Envoys and script-running
    # stand-ins (meshsim.conformance._multihop)
    multihop = is_multihop(scenario)
    if multihop:
        check_multihop_scope(scenario)
    runner = run_real_multihop if multihop else run_real
    real_runs = []
    for k in range(real_repeats):
        say(f"{name or scenario.name}: real run {k + 1}/{real_repeats}")
        real_runs.append(runner(scenario, seed=seed + k, duration=duration, max_requests=max_requests,
                                cluster_patch=patch or None, concurrency=concurrency))
    clusters = sorted({c for r in real_runs for c in r.stats if c in keys.values()})
    sims = []
    overrides: dict[str, Any] = {}
    if duration is not None:
        overrides["duration"] = f"{duration}s"
    if multihop:  # the real run counts from its first request: so does the simulated one
        overrides["warmup"] = "0s"
    if overrides:
        from meshsim.config import apply_overrides

        scenario_sim = apply_overrides(scenario, overrides)
    else:
        scenario_sim = scenario
    with sim_settings(update_merge_window=update_merge_window), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(sim_repeats):
            say(f"{name or scenario.name}: simulation {k + 1}/{sim_repeats}")
            sims.append(simulate(scenario_sim, seed=seed + 1000 + k))
    gone: list[str] = []
    if multihop:
        vcl = version_clusters(scenario)
        real = [observe_real_multihop(r, scenario, clusters) for r in real_runs]
        sim = [observe_sim_multihop(s, scenario, clusters, vcl) for s in sims]
        gone = drop_unmodelled(real, sim, scenario)
    else:
        real = [observe_real(r, clusters) for r in real_runs]
        sim = [observe_sim(s, entry, clusters) for s in sims]
    if derived is not None:
        for o in [*real, *sim]:
            o.metrics.update(derived(o))
    verdicts = compare(real, sim, z=z, metrics=metrics, known=known, seed=seed)
    notes = sorted({n for r in real_runs for n in r.notes})
    if gone:
        notes.append("not compared (connections: no pool on the simulator's plain path, or a pool per calling "
                     "replica there against one Envoy per calling service here): " + ", ".join(gone))
    return ConformanceResult(name or scenario.name, scenario, real_runs, sims, real, sim, verdicts, notes)
