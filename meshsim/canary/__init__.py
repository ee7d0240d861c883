"""The canary analyzer: statistically sound PROMOTE / ROLLBACK / INCONCLUSIVE verdicts.

It does not need the simulator: it judges any two arms of metrics
(:class:`ArmData`), from raw requests, per-minute aggregates, Prometheus
``query_range`` results or a meshsim run directory.
"""

from meshsim.canary._model import EXIT_CODES, ArmData, Decision, Judgement, MetricResult, WatchResult

__all__ = ["EXIT_CODES", "ArmData", "Decision", "Judgement", "MetricResult", "WatchResult"]
