"""Rollout reports: a simulated progressive rollout as Markdown and one self-contained HTML file.

Plots (PNG, rendered headless like the run report):

* :func:`rollout_timeline_figure`: the canary weight over time (minutes after
  the warm-up) as steps, the judge's decision at each look (step end) as a
  marker (green promote, grey inconclusive, red rollback), the decision time
  as a vertical line; after a rollback the weight drops to 0 and the plan's
  remaining steps are dotted;
* :func:`decision_times_figure` (several seeds): how many seeds were decided at
  each step end, stacked by decision;
* :func:`rollout_power_figure` (several seeds): the shares rolled back
  (the plan's power, with its Wilson interval), promoted and inconclusive.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from meshsim.report._markdown import fmt_number
from meshsim.report._plots import _pyplot
from meshsim.report._run import RunReport, _Block, _deterministic_style, _figure

__all__ = [
    "rollout_timeline_figure",
    "decision_times_figure",
    "rollout_power_figure",
    "build_rollout_report",
    "write_rollout_report",
]

_DECISIONS = ("ROLLBACK", "INCONCLUSIVE", "PROMOTE")
_COLOURS = {"PROMOTE": "tab:green", "INCONCLUSIVE": "tab:gray", "ROLLBACK": "tab:red"}
_MARKERS = {"PROMOTE": "^", "INCONCLUSIVE": "o", "ROLLBACK": "v"}


def _schedule(outcome: Any, plan: Any = None) -> tuple[list[int], list[float]]:
    """The plan's weights and step-end minutes (from the plan, else from the steps judged)."""
    if plan is not None:
        return list(plan.spec.weights), list(plan.step_ends)
    return [s.weight for s in outcome.steps], [s.minute for s in outcome.steps]


def rollout_timeline_figure(outcome: Any, plan: Any = None) -> Any:
    """The canary weight over time as steps, the judge's decision at each look and the decision time.

    Parameters
    ----------
    outcome
        A ``RolloutOutcome`` (one seed).
    plan
        The ``RolloutPlan``; it adds the steps after a rollback (dotted).
    """
    weights, ends = _schedule(outcome, plan)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    starts = [0.0, *ends[:-1]]
    done = len(outcome.steps)
    # weight held during each step: steps reached solid, the rest of the plan dotted
    ax.step([*starts[:done], ends[done - 1]], [*weights[:done], weights[done - 1]], where="post",
            color="tab:blue", linewidth=1.8, label="canary weight")
    if done < len(weights):
        ax.step([ends[done - 1], *starts[done:], ends[-1]], [weights[done - 1], *weights[done:], weights[-1]],
                where="post", color="tab:blue", linewidth=1.0, linestyle=":", label="planned (not reached)")
    if outcome.decision == "ROLLBACK":
        ax.plot([outcome.minute, outcome.minute, ends[-1]], [outcome.weight, 0, 0], color="tab:red",
                linewidth=1.8, label="after rollback")
    elif outcome.decision == "PROMOTE":
        ax.plot([outcome.minute, outcome.minute], [outcome.weight, 100], color="tab:green", linewidth=1.8,
                label="promoted (100 %)")
    for decision in _DECISIONS:
        looks = [s for s in outcome.steps if s.decision == decision]
        if looks:
            ax.scatter([s.minute for s in looks], [s.weight for s in looks], color=_COLOURS[decision],
                       marker=_MARKERS[decision], s=60, zorder=3, label=f"look: {decision}")
    ax.axvline(outcome.minute, color="black", linestyle="--", linewidth=1,
               label=f"decision: {outcome.decision} at {outcome.minute:g} min")
    ax.set_xlim(0.0, ends[-1] * 1.02)
    ax.set_ylim(-2, 105)
    ax.set_xlabel("minutes after the warm-up")
    ax.set_ylabel("canary weight (%)")
    ax.set_title(f"rollout timeline (seed {outcome.seed}, replication {outcome.replication})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def decision_times_figure(outcomes: Sequence[Any], plan: Any = None) -> Any:
    """Seeds decided at each step end, stacked by decision (a bar per look)."""
    ends = sorted({float(m) for m in (plan.step_ends if plan is not None else [])}
                  | {float(o.minute) for o in outcomes})
    width = 0.6 * (min(np.diff(ends)) if len(ends) > 1 else 1.0)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    bottom = np.zeros(len(ends))
    for decision in _DECISIONS:
        counts = np.array([sum(1 for o in outcomes if o.decision == decision and float(o.minute) == m)
                           for m in ends], dtype=float)
        if counts.any():
            ax.bar(ends, counts, width=width, bottom=bottom, color=_COLOURS[decision], label=decision)
            bottom += counts
    decided = [o.minute for o in outcomes if o.decision != "INCONCLUSIVE"]
    if decided:
        med = float(np.median(decided))
        ax.axvline(med, color="black", linestyle="--", linewidth=1, label=f"median decision: {med:g} min")
    ax.set_xticks(ends)
    ax.set_xticklabels([f"{m:g}" for m in ends])
    ax.set_xlabel("decision time (minutes after the warm-up)")
    ax.set_ylabel("seeds")
    ax.set_title(f"time to decision over {len(outcomes)} seeds")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def rollout_power_figure(study: Any) -> Any:
    """The share of seeds rolled back (power, Wilson interval), promoted and inconclusive, as bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.6))
    shares = [study.power, study.promoted, study.inconclusive]
    names = ["rolled back (power)", "promoted", "inconclusive"]
    ax.barh(names, shares, color=[_COLOURS["ROLLBACK"], _COLOURS["PROMOTE"], _COLOURS["INCONCLUSIVE"]])
    ax.errorbar([study.power], [0], xerr=[[study.power - study.power_low], [study.power_high - study.power]],
                fmt="none", ecolor="black", capsize=5, linewidth=1.4,
                label=f"{study.confidence:.0%} Wilson [{study.power_low:.1%}, {study.power_high:.1%}]")
    for i, v in enumerate(shares):
        ax.text(min(v, 1.0) + 0.01, i, f"{v:.1%}", va="center", fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.invert_yaxis()
    ax.set_xlabel("share of seeds")
    ax.set_title(f"plan power over {study.seeds} seeds")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def build_rollout_report(study: Any, plan: Any = None, *, title: str | None = None) -> RunReport:
    """The report of a rollout study (``RolloutStudy``; ``plan`` adds the planned steps).

    One seed: the steps table and the timeline. Several: the power with its
    Wilson interval, the decision times, the first seed's timeline and one
    row per seed.
    """
    blocks: list[_Block] = []
    if plan is not None:
        s = plan.spec
        blocks.append(_Block("p", f"{s.service}: {s.baseline} -> {s.canary}, steps {list(s.weights)} % every "
                                  f"{s.interval:g} s, regression: {s.regression.describe()}."))
    else:
        blocks.append(_Block("p", f"Regression: {study.regression}."))
    first = study.outcomes[0]
    with _deterministic_style():
        if study.seeds > 1:
            pct = round(100 * study.confidence)
            blocks.append(_Block("h2", "Plan power"))
            blocks.append(_Block("p", f"Rolled back in {study.power:.1%} of {study.seeds} seeds ({pct} % Wilson "
                                      f"interval {study.power_low:.1%} to {study.power_high:.1%}); promoted "
                                      f"{study.promoted:.1%}, inconclusive {study.inconclusive:.1%}. Median time "
                                      f"to decision {fmt_number(study.median_minute)} min; median canary "
                                      f"requests before it {fmt_number(study.median_canary_requests)}, of them "
                                      f"bad {fmt_number(study.median_bad_requests)}."))
            blocks.append(_figure("rollout-power.png", "Share of seeds per verdict", rollout_power_figure(study)))
            blocks.append(_figure("rollout-decision-times.png", "Decision times over the seeds",
                                  decision_times_figure(study.outcomes, plan)))
        blocks.append(_Block("h2", "Timeline" + (" (first seed)" if study.seeds > 1 else "")))
        blocks.append(_figure("rollout-timeline.png", "Canary weight, judge looks and the decision",
                              rollout_timeline_figure(first, plan)))
    blocks.append(_Block("p", f"{first.decision} at minute {first.minute:g} (step {first.step}, {first.weight} %): "
                              f"{first.canary_requests} canary requests before the decision, {first.bad_requests} "
                              f"bad ({first.canary_errors} errors, {first.canary_slow} slower than the baseline's "
                              f"p99 {fmt_number(first.baseline_p99_s * 1e3)} ms)."))
    blocks.append(_Block("table", headers=["step", "weight", "minute", "canary req. in the step", "decision", "reason"],
                         rows=[[str(s.step), f"{s.weight}%", f"{s.minute:g}", str(s.canary_requests), s.decision,
                                s.reason] for s in first.steps],
                         align=["r", "r", "r", "r", "l", "l"]))
    if study.seeds > 1:
        blocks.append(_Block("h2", "Seeds"))
        blocks.append(_Block("table", headers=["replication", "decision", "step", "minute", "canary req. before the decision", "bad"],
                             rows=[[str(o.replication), o.decision, str(o.step), f"{o.minute:g}",
                                    str(o.canary_requests), str(o.bad_requests)] for o in study.outcomes]))
    return RunReport(title=title or f"Rollout report: {study.plan}", blocks=blocks)


def write_rollout_report(study: Any, directory: str | os.PathLike[str], plan: Any = None) -> list[Path]:
    """Write ``rollout.md`` (PNGs in ``plots/``) and the self-contained ``rollout.html`` into ``directory``."""
    d = Path(directory)
    return build_rollout_report(study, plan).write(html=d / "rollout.html", markdown=d / "rollout.md")
