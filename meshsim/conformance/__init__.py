"""Fidelity harness: one scenario on a real Envoy (loopback) and in the simulator, compared.

Public API
----------
run_conformance(scenario, real_repeats=3, sim_repeats=5, ...) -> ConformanceResult
    Real runs and simulated runs of the same scenario, observed the same way, and a verdict per
    metric with a tolerance from sampling noise (:mod:`meshsim.conformance._compare`).
run_real(scenario, seed=0, ...) -> RealRun
    One run on a real Envoy 1.40 (``--concurrency 1``, ``--disable-hot-restart``): the exported
    ``ingress`` proxy (:func:`meshsim.envoy.export_envoy`, static loopback endpoints), stand-in
    upstream replicas serving the scenario's latency and error models, a bounded load generator;
    every process stopped by its PID, also on failure.
run_real_multihop(scenario, seed=0, ...) -> MultiHopRun
    A scenario whose services call others (``scenarios/bookinfo.yaml``): the ingress proxy, one Envoy
    per calling service (its exported sidecar's outbound side) and stand-ins that run each service's
    whole script as the simulator does, calling through their own sidecar
    (:mod:`meshsim.conformance._multihop`); :func:`run_conformance` picks it by :func:`is_multihop`.
observe_real, observe_sim, compare, Observation, Verdict
    The measurement and the comparison, for custom studies.

The harness lives in the installed package (not in ``analysis/``) because ``meshsim
conformance`` runs it from any directory; the experiments and the report writer are in
``analysis/conformance/``.
"""

from meshsim.conformance._compare import (
    QUANTILES,
    STAT_NAMES,
    Observation,
    Verdict,
    compare,
    ks_distance,
    observe_real,
    observe_sim,
    verdict_table,
)
from meshsim.conformance._multihop import (
    MultiHopRun,
    check_multihop_scope,
    is_multihop,
    observe_real_multihop,
    observe_sim_multihop,
    run_real_multihop,
)
from meshsim.conformance._procs import Child, ConformanceError, free_port_block
from meshsim.conformance._real import RealRun, check_scope, cluster_sim_keys, run_real
from meshsim.conformance._run import ConformanceResult, run_conformance, sim_settings

__all__ = [
    "run_conformance",
    "ConformanceResult",
    "run_real",
    "RealRun",
    "check_scope",
    "run_real_multihop",
    "MultiHopRun",
    "is_multihop",
    "check_multihop_scope",
    "observe_real_multihop",
    "observe_sim_multihop",
    "cluster_sim_keys",
    "observe_real",
    "observe_sim",
    "compare",
    "verdict_table",
    "ks_distance",
    "Observation",
    "Verdict",
    "sim_settings",
    "Child",
    "free_port_block",
    "ConformanceError",
    "STAT_NAMES",
    "QUANTILES",
]
