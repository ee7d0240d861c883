"""The canary analyzer: statistically sound PROMOTE / ROLLBACK / INCONCLUSIVE verdicts.

It does not need the simulator: it judges any two arms of metrics
(:class:`ArmData`), from raw requests, per-minute aggregates, Prometheus
``query_range`` results or a meshsim run directory.
"""

from meshsim.canary._model import EXIT_CODES, ArmData, Decision, Judgement, MetricResult, WatchResult

__all__ = ["EXIT_CODES", "ArmData", "Decision", "Judgement", "MetricResult", "WatchResult"]

# readers (meshsim.canary.io); the Kayenta-compatible and Flagger-style judges and the report
# writers live in meshsim.canary.kayenta, .flagger and .report
from meshsim.canary.io import read_arm, read_arms  # noqa: E402

__all__ += ["read_arm", "read_arms"]

# meshsim's own judge (meshsim.canary._judge), its configuration and statistics
from meshsim.canary._judge import judge, watch  # noqa: E402
from meshsim.canary.config import JudgeConfig, MetricConfig, load_judge_config, parse_judge_config  # noqa: E402

__all__ += ["JudgeConfig", "MetricConfig", "load_judge_config", "parse_judge_config", "judge", "watch"]
