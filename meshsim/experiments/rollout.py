"""Simulated progressive rollouts: a Flagger-like plan played in the mesh, judged step by step.

A **plan** (YAML, ``meshsim rollout PLAN``) names a scenario, a service and its
``baseline`` and ``canary`` versions, the canary weights of the steps
(``steps: [5, 10, 25, 50]``, or ``step_weight``/``max_weight`` as Flagger), the
``interval`` each step lasts, the judge configuration of the canary analyzer
(``docs/canary.md``; the default one when absent) and the canary's
``regression`` (a latency multiplier, an added error rate, both, or none for a
clean canary)::

    name: reviews-v3
    scenario: ../scenarios/bookinfo.yaml
    service: reviews
    baseline: v1
    canary: v3
    steps: [5, 10, 25, 50]
    interval: 2m
    judge: judge.yaml              # optional
    regression: {latency: +30%}    # or {errors: 1%}, {latency: 1.3, errors: 0.5%}, none
    set: {}                        # scenario overrides, as meshsim run --set

How it is simulated
-------------------
* The route of ``service`` that carries the default traffic (the first ``mesh``
  route without a ``match`` naming the baseline or the canary; or ``route``, a
  route name or index) sends everything to the baseline during the warm-up,
  then ``{baseline: 100 - w, canary: w}`` during step ``k`` (weight ``w``), from
  ``warmup + k * interval`` on. The engine changes the weights at exactly those
  times (``Simulation(weight_changes=...)``, :meth:`Router.set_weights
  <meshsim.policies.routing.Router.set_weights>`). The run lasts ``warmup +
  steps * interval``.
* The regression is the scenario's own chaos machinery, on for the whole run on
  every replica of the canary version: ``latency`` is a ``{kind: latency,
  multiply: m}`` fault (the time a request spends at the replica, its own calls
  included, times ``m``), ``errors`` an ``{kind: errors, rate: r}`` fault (503
  at once). No engine change is needed, and the canary's random streams are the
  same with and without it (common random numbers).
* The arms are the attempts to each version after the warm-up, as ``meshsim
  canary judge RUN RUN`` reads a run directory
  (:func:`meshsim.canary.io.arms_from_attempts`), minute 0 at the end of the
  warm-up.

Why one run per seed is enough
------------------------------
A real controller judges at the end of each step and then changes the weights.
Here the whole plan is simulated once, to the last step, and the judge is
replayed on the recorded run at each step boundary on the data before it
(:meth:`ArmData.until <meshsim.canary.ArmData.until>`). That is the same as
acting in the loop: the weights up to step ``k`` do not depend on the
judgements (every step that is reached had the planned weight), the judgement
at the end of step ``k`` sees only data before it, and the judge's statistics
are causal (its state at a minute depends only on earlier minutes). What the
recorded run has after a ROLLBACK (the plan's later steps) is simply not
looked at. The only thing the replay cannot show is traffic after the
rollback, which the report does not need.

The decision at each step end: ROLLBACK stops the rollout; PROMOTE at the last
step promotes; anything else (PROMOTE or INCONCLUSIVE at an earlier step,
including "too early" before the judge's ``min_duration``) advances to the next
weight, as Flagger advances while its checks pass. INCONCLUSIVE at the last
step leaves the verdict INCONCLUSIVE (a person decides).

Results
-------
:class:`RolloutOutcome` (one seed): the verdict, the step and minute of the
decision (minutes after the warm-up), the canary attempts served before it
and how many of them were **bad**: an error (5xx or no response), or, for a
latency regression, slower than the baseline's p99 over the same period.
:class:`RolloutStudy` (``--seeds N``, run in parallel by
:func:`~meshsim.experiments._executor.run_many`): the **plan power**, the share
of seeds rolled back (the probability the plan catches the regression; for a
clean canary, its false-rollback rate) with a Wilson interval, and the medians
of the time to decision and of the bad requests served.

Public API
----------
load_plan(path) / parse_plan(data, source, base_dir) -> RolloutPlan
simulate_rollout(plan, seed=None, replication=0) -> RolloutOutcome
run_rollout(plan, seeds=1, workers=None, progress=None) -> RolloutStudy
wilson_interval(k, n, confidence=0.95) -> (low, high)
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from meshsim._exceptions import ConfigError
from meshsim._yaml import load_yaml, read_text
from meshsim.config import Scenario, apply_overrides, parse_scenario
from meshsim.config._errors import _vocabulary, config_error
from meshsim.experiments._common import scenario_of
from meshsim.policies._model import PolicyModel, refuse
from meshsim.units import format_duration, parse_duration, parse_fraction

__all__ = [
    "Regression",
    "PlanSpec",
    "RolloutPlan",
    "StepResult",
    "RolloutOutcome",
    "RolloutStudy",
    "load_plan",
    "parse_plan",
    "simulate_rollout",
    "run_rollout",
    "wilson_interval",
    "render",
    "write_outputs",
    "jsonable",
    "summarize",
]


# --------------------------------------------------------------------------------------------------
# the plan file


def _latency_factor(value: Any) -> float | None:
    """``1.3``, ``"1.3"``, ``"+30%"`` or ``"x1.3"`` -> 1.3 (a multiplier >= 1)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise refuse(f"{value!r} is not a latency multiplier; write 1.3 or +30%")
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            if text.startswith("+") and text.endswith("%"):
                factor = 1.0 + float(text[1:-1]) / 100.0
            else:
                factor = float(text[1:] if text.startswith("x") else text.rstrip("x"))
        except ValueError:
            raise refuse(f"{value!r} is not a latency multiplier; write 1.3 or +30%") from None
    else:
        factor = float(value)
    if not math.isfinite(factor) or factor < 1.0:
        raise refuse(f"{value!r}: a latency regression is a multiplier >= 1 (1.3 or +30%)")
    return factor


class Regression(PolicyModel):
    """What is wrong with the canary, on top of the scenario's own canary version.

    Parameters
    ----------
    latency
        Multiplier of the time a request spends at a canary replica (>= 1):
        ``1.3``, ``+30%`` or ``x1.3``. ``None``: no latency regression.
    errors
        Added share of canary requests answered 503 at once (0 < rate <= 1):
        ``1%`` or ``0.01``. ``None``: no added errors.
    """

    latency: float | None = None
    errors: float | None = None

    @field_validator("latency", mode="before")
    @classmethod
    def _factor(cls, value: Any) -> Any:
        return _latency_factor(value)

    @field_validator("errors", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            rate = parse_fraction(value)
        except (ValueError, ConfigError) as exc:
            raise refuse(str(exc)) from None
        if not 0.0 < rate <= 1.0:
            raise refuse(f"{value!r}: an added error rate is > 0 and <= 100%")
        return rate

    @property
    def clean(self) -> bool:
        """No regression at all."""
        return (self.latency is None or self.latency == 1.0) and self.errors is None

    def describe(self) -> str:
        parts = []
        if self.latency is not None and self.latency != 1.0:
            parts.append(f"latency x{self.latency:g}")
        if self.errors is not None:
            parts.append(f"errors +{self.errors * 100:g}%")
        return ", ".join(parts) or "none (clean canary)"


class PlanSpec(PolicyModel):
    """A rollout plan as written (see the module docstring).

    Parameters
    ----------
    name, description
        Identification.
    scenario
        Scenario file (relative to the plan file) or an inline scenario mapping.
    set
        Dotted-path scenario overrides (as ``meshsim run --set``), applied first.
    service, baseline, canary
        The service and the two versions of it the rollout moves traffic between.
    route
        The route whose weights change: its name or index in ``mesh.<service>.routes``
        (default: the first route without ``match`` that names the baseline or the canary).
    steps
        Canary weights in percent, strictly increasing, 1..100 (Flagger ``stepWeights``).
    step_weight, max_weight
        Or: steps ``step_weight, 2 * step_weight, ...`` up to ``max_weight`` (Flagger).
    interval
        How long each step lasts; a whole number of minutes (the judge looks by the minute).
    judge
        Judge configuration file (relative to the plan file) or an inline mapping;
        default ``{metrics: [latency, errors]}``. ``mode: meshsim`` only.
    regression
        :class:`Regression`, or ``none`` for a clean canary.
    seed
        Overrides the scenario's seed; seed ``i`` of ``--seeds N`` is replication ``i``.
    """

    name: str = "rollout"
    description: str | None = None
    scenario: str | dict[str, Any]
    set: dict[str, Any] = Field(default_factory=dict)
    service: str
    baseline: str
    canary: str
    route: str | int | None = None
    steps: tuple[int, ...] | None = None
    step_weight: int | None = Field(None, ge=1, le=100)
    max_weight: int | None = Field(None, ge=1, le=100)
    interval: float
    judge: str | dict[str, Any] | list[Any] | None = None
    regression: Regression = Regression()
    seed: int | None = Field(None, ge=0)

    _synonyms = {"stepWeights": "steps", "stepWeight": "step_weight", "maxWeight": "max_weight",
                 "step_weights": "steps"}

    @field_validator("set", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("regression", mode="before")
    @classmethod
    def _no_regression(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "clean")):
            return {}
        return value

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        try:
            seconds = parse_duration(value)
        except (ValueError, ConfigError) as exc:
            raise refuse(str(exc)) from None
        if seconds < 60.0 or abs(seconds / 60.0 - round(seconds / 60.0)) > 1e-9:
            raise refuse(f"{value!r}: a step lasts a whole number of minutes (1m, 2m, 5m...), "
                         "as the judge looks once a minute")
        return seconds

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not value:
            raise refuse(f"{value!r}: steps is a non-empty list of canary weights in percent, e.g. [5, 10, 25, 50]")
        out = []
        for w in value:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or int(w) != w or not 1 <= w <= 100:
                raise refuse(f"weight {w!r} is not a whole percent in 1..100")
            out.append(int(w))
        if any(b <= a for a, b in zip(out, out[1:], strict=False)):
            raise refuse(f"{out}: the weights must increase strictly")
        return tuple(out)

    @model_validator(mode="after")
    def _ramp(self) -> PlanSpec:
        if self.steps is not None and (self.step_weight is not None or self.max_weight is not None):
            raise refuse("give either steps or step_weight/max_weight, not both")
        if self.steps is None and self.step_weight is None:
            raise refuse("give the canary weights: steps: [5, 10, 25, 50], or step_weight: 10 with max_weight: 50")
        if self.baseline == self.canary:
            raise refuse(f"baseline and canary are both {self.baseline!r}; name two versions")
        return self

    @property
    def weights(self) -> tuple[int, ...]:
        """The canary weight of each step, in percent."""
        if self.steps is not None:
            return self.steps
        step = int(self.step_weight or 0)
        top = int(self.max_weight if self.max_weight is not None else 50)
        return tuple(range(step, top + 1, step)) or (step,)


_vocabulary.cache_clear()  # error paths name this module's fields too


@dataclass(frozen=True)
class RolloutPlan:
    """A validated plan, ready to simulate.

    Attributes
    ----------
    spec
        The :class:`PlanSpec` as written.
    scenario
        The scenario with ``set``, the regression's faults, ``record: full`` and the
        run length (``warmup + steps * interval``) applied.
    judge
        The :class:`~meshsim.canary.JudgeConfig`.
    route_index
        Index of the route whose weights change.
    weight_changes
        ``(time_s, service, route_index, weights)`` for the engine.
    source
        The plan file, for messages.
    """

    spec: PlanSpec
    scenario: Scenario
    judge: Any
    route_index: int
    weight_changes: tuple[tuple[float, str, int, dict[str, int]], ...]
    source: str = ""

    @property
    def warmup(self) -> float:
        return float(self.scenario.warmup)

    @property
    def step_ends(self) -> tuple[float, ...]:
        """Minute (after the warm-up) at which each step ends and is judged."""
        m = self.spec.interval / 60.0
        return tuple(m * (k + 1) for k in range(len(self.spec.weights)))


def load_plan(path: str | os.PathLike[str]) -> RolloutPlan:
    """Read and validate a rollout plan; relative paths are taken from its directory.

    Raises
    ------
    ConfigError
        One line naming the file, the field path, the value and what is allowed.
    """
    p = Path(path)
    data = load_yaml(read_text(p, "a rollout plan"), str(p))
    if data is None:
        raise ConfigError("the file is empty; a plan needs scenario, service, baseline, canary, steps and interval",
                          source=str(p))
    return parse_plan(data, source=str(p), base_dir=p.parent)


def parse_plan(data: Mapping[str, Any], source: str = "<plan>", base_dir: str | os.PathLike[str] = ".") -> RolloutPlan:
    """Validate a plan given as a mapping (see :func:`load_plan`).

    Examples
    --------
    >>> plan = parse_plan({
    ...     "scenario": {"name": "s", "duration": "60s", "warmup": "30s",
    ...         "services": {"api": {"latency": "5ms", "versions": {"v1": {}, "v2": {}}}},
    ...         "traffic": [{"to": "api", "rate": "20/s"}],
    ...         "mesh": {"api": {"routes": [{"route": {"v1": 100}}]}}},
    ...     "service": "api", "baseline": "v1", "canary": "v2", "steps": [10, 50], "interval": "1m"})
    >>> [(t, w) for t, _, _, w in plan.weight_changes]
    [(0.0, {'v1': 100}), (30.0, {'v1': 90, 'v2': 10}), (90.0, {'v1': 50, 'v2': 50})]
    >>> float(plan.scenario.duration)
    150.0
    """
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"a rollout plan is a mapping with keys scenario, service, baseline, canary, steps, "
                          f"interval; the top level is {kind}", source=source)
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, data, source) from None
    base = Path(base_dir)

    def refuse_(path: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {message}", path=path, source=source)

    scenario = scenario_of(spec.scenario, base, source, "plan")
    if spec.set:
        try:
            scenario = apply_overrides(scenario, spec.set)
        except ConfigError as exc:
            raise refuse_("set", str(exc)) from None
    if spec.service not in scenario.services:
        raise refuse_("service", f"{spec.service!r} is not a service of the scenario; allowed: "
                                 f"{', '.join(scenario.services)}")
    versions = list(scenario.services[spec.service].resolved_versions(spec.service))
    for key in ("baseline", "canary"):
        v = getattr(spec, key)
        if v not in versions:
            raise refuse_(key, f"{v!r} is not a version of {spec.service}; allowed: {', '.join(versions)}")
    route_index = _route_index(scenario, spec, refuse_)
    judge = _judge_config(spec, base, source, refuse_)
    warmup = float(scenario.warmup)
    n = len(spec.weights)
    raw = copy.deepcopy(scenario._raw)
    raw["duration"] = f"{warmup + n * spec.interval:g}s"
    raw["record"] = "full"
    if spec.seed is not None:
        raw["seed"] = spec.seed
    target = {"service": spec.service, "version": spec.canary}
    faults = list(raw.get("chaos") or [])
    reg = spec.regression
    if reg.latency is not None and reg.latency != 1.0:
        faults.append({"name": "rollout-regression-latency", "kind": "latency", "target": dict(target),
                       "multiply": reg.latency, "start": "0s"})
    if reg.errors is not None:
        faults.append({"name": "rollout-regression-errors", "kind": "errors", "target": dict(target),
                       "rate": reg.errors, "start": "0s"})
    if faults:
        raw["chaos"] = faults
    try:
        scn = parse_scenario(raw, source=scenario.source)
    except ConfigError as exc:
        raise refuse_("regression", f"the canary's regression does not fit the scenario: {exc}") from None
    changes: list[tuple[float, str, int, dict[str, int]]] = [
        (0.0, spec.service, route_index, {spec.baseline: 100})]
    for k, w in enumerate(spec.weights):
        weights = {spec.baseline: 100 - w, spec.canary: w} if w < 100 else {spec.canary: 100}
        changes.append((warmup + k * spec.interval, spec.service, route_index, weights))
    return RolloutPlan(spec, scn, judge, route_index, tuple(changes), source)


def _route_index(scenario: Scenario, spec: PlanSpec, refuse_: Callable[[str, str], ConfigError]) -> int:
    entry = scenario.mesh.get(spec.service) if hasattr(scenario.mesh, "get") else None
    routes = list(getattr(entry, "routes", None) or [])
    if not routes:
        raise refuse_("service", f"{spec.service!r} has no mesh routes to shift traffic with; add one, e.g. "
                                 f"mesh: {{{spec.service}: {{routes: [{{route: {{{spec.baseline}: 100}}}}]}}}}")
    if spec.route is not None:
        if isinstance(spec.route, int) and not isinstance(spec.route, bool):
            if not 0 <= spec.route < len(routes):
                raise refuse_("route", f"{spec.route} is out of range; {spec.service} has {len(routes)} route(s)")
            index = spec.route
        else:
            names = [getattr(r, "name", None) for r in routes]
            if spec.route not in names:
                raise refuse_("route", f"{spec.route!r} is not a route of {spec.service}; allowed: "
                                       f"{', '.join(str(n) for n in names if n) or 'unnamed routes (give an index)'}")
            index = names.index(spec.route)
        for r in routes[:index]:
            if not r.match:
                raise refuse_("route", f"route {spec.route!r} comes after an unconditional route and never matches")
        return index
    for i, r in enumerate(routes):
        dests = {d.version for d in r.destinations}
        if not r.match and (spec.baseline in dests or spec.canary in dests):
            return i
        if not r.match:
            break
    raise refuse_("route", f"no route of {spec.service} without match names {spec.baseline} or {spec.canary}; "
                           "name the route to shift with route: NAME or index")


def _judge_config(spec: PlanSpec, base: Path, source: str, refuse_: Callable[[str, str], ConfigError]) -> Any:
    from meshsim.canary import load_judge_config, parse_judge_config

    if spec.judge is None:
        cfg = parse_judge_config({"metrics": ["latency", "errors"]}, source=f"{source}: judge")
    elif isinstance(spec.judge, str):
        path = Path(spec.judge)
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise refuse_("judge", f"{spec.judge!r}: no such file (relative paths are taken from the plan file's "
                                   f"directory, {base})")
        cfg = load_judge_config(path)
    else:
        cfg = parse_judge_config(spec.judge, source=f"{source}: judge")
    if cfg.mode != "meshsim":
        raise refuse_("judge", f"mode {cfg.mode!r}: a rollout is judged by meshsim's sequential judge; allowed: meshsim")
    return cfg


# --------------------------------------------------------------------------------------------------
# one seed


@dataclass(frozen=True)
class StepResult:
    """One step: its canary weight, when it ended (minutes after the warm-up) and the judge's verdict then."""

    step: int  # 1-based
    weight: int
    minute: float
    decision: str
    reason: str
    canary_requests: int  # canary attempts during the step


@dataclass(frozen=True)
class RolloutOutcome:
    """One simulated rollout (one seed).

    Attributes
    ----------
    decision
        ``"PROMOTE"`` (promoted after the last step), ``"ROLLBACK"`` or ``"INCONCLUSIVE"``.
    step, weight, minute
        The step at whose end it was decided (1-based), its canary weight, and the
        minute after the warm-up (the last step's end when INCONCLUSIVE).
    canary_requests, canary_errors, canary_slow, bad_requests
        Attempts the canary served before the decision; of them errors (5xx or no
        response), successes slower than the baseline's p99 over the same period, and
        the bad ones (errors, plus the slow ones when the regression is in latency).
    baseline_p99_s
        The baseline's p99 over that period (seconds).
    steps
        :class:`StepResult` per step judged.
    """

    seed: int
    replication: int
    decision: str
    step: int
    weight: int
    minute: float
    canary_requests: int
    canary_errors: int
    canary_slow: int
    bad_requests: int
    baseline_p99_s: float
    reason: str
    steps: tuple[StepResult, ...] = ()

    @property
    def exit_code(self) -> int:
        from meshsim.canary import EXIT_CODES, Decision

        return EXIT_CODES[Decision(self.decision)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = [asdict(s) for s in self.steps]
        return out


def simulate_rollout(plan: RolloutPlan, *, seed: int | None = None, replication: int = 0) -> RolloutOutcome:
    """Simulate the plan once and judge it at every step end (see the module docstring).

    Parameters
    ----------
    plan
        From :func:`load_plan` or :func:`parse_plan`.
    seed
        Overrides the scenario's seed.
    replication
        Replication index (independent streams for the same seed).
    """
    import warnings

    from meshsim._exceptions import MeshsimWarning
    from meshsim.canary import Decision, watch
    from meshsim.canary.io import arms_from_attempts, is_error
    from meshsim.sim import simulate

    spec = plan.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshsimWarning)
        result = simulate(plan.scenario, seed=seed, replication=replication, weight_changes=plan.weight_changes)
    warmup = plan.warmup
    ends = plan.step_ends
    att = result.attempts
    base_arm, can_arm = arms_from_attempts(att, service=spec.service, baseline_version=spec.baseline,
                                           canary_version=spec.canary, start=warmup,
                                           until=warmup + 60.0 * ends[-1], source=f"{plan.source} seed")
    rows = att[att["service"].astype(str) == spec.service]
    version = rows["version"].astype(str).to_numpy()
    start = rows["start_s"].to_numpy(dtype=float)
    lat = rows["latency_s"].to_numpy(dtype=float)
    status = rows["status"].to_numpy(dtype=np.int64)
    finished = ~((status == 0) & ~np.isfinite(lat))
    is_can = (version == spec.canary) & finished & (start >= warmup)
    is_base = (version == spec.baseline) & finished & (start >= warmup)
    steps: list[StepResult] = []
    decision, reason = Decision.INCONCLUSIVE, ""
    prev = 0.0
    for k, (minute, weight) in enumerate(zip(ends, spec.weights, strict=True)):
        b, c = base_arm.until(minute), can_arm.until(minute)
        in_step = is_can & (start >= warmup + 60.0 * prev) & (start < warmup + 60.0 * minute)
        if c.requests is None or c.requests.empty:
            verdict, why = Decision.INCONCLUSIVE, "no canary requests yet"
        else:
            look = watch(b, c, plan.judge, every_minutes=minute).looks[-1][1]  # one look, at the step's end
            verdict, why = look.decision, look.reason
        steps.append(StepResult(k + 1, weight, minute, verdict.value, why, int(in_step.sum())))
        prev = minute
        decision, reason = verdict, why
        if verdict is Decision.ROLLBACK:
            break
        if verdict is Decision.PROMOTE and k == len(ends) - 1:
            break
        if k == len(ends) - 1:
            decision = Decision.INCONCLUSIVE
    last = steps[-1]
    t_end = warmup + 60.0 * last.minute
    before_c = is_can & (start < t_end)
    before_b = is_base & (start < t_end)
    base_lat = lat[before_b & ~is_error(status)]
    p99 = float(np.quantile(base_lat, 0.99)) if base_lat.size else math.nan
    err = before_c & is_error(status)
    slow = before_c & ~is_error(status) & (lat > p99) if math.isfinite(p99) else np.zeros_like(before_c)
    latency_reg = spec.regression.latency is not None and spec.regression.latency != 1.0
    bad = int(err.sum() + (slow.sum() if latency_reg else 0))
    return RolloutOutcome(
        seed=int(result.seed) if hasattr(result, "seed") else int(seed or 0), replication=replication,
        decision=decision.value, step=last.step, weight=last.weight, minute=last.minute,
        canary_requests=int(before_c.sum()), canary_errors=int(err.sum()), canary_slow=int(slow.sum()),
        bad_requests=bad, baseline_p99_s=p99, reason=reason, steps=tuple(steps))


@dataclass(frozen=True)
class _RolloutTask:
    """One seed of a study: picklable for the process pool and Dask."""

    plan: RolloutPlan
    seed: int | None
    replication: int

    def __call__(self) -> RolloutOutcome:
        return simulate_rollout(self.plan, seed=self.seed, replication=self.replication)


# --------------------------------------------------------------------------------------------------
# many seeds


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n``.

    Examples
    --------
    >>> [round(x, 3) for x in wilson_interval(8, 10)]
    [0.49, 0.943]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    from scipy.stats import norm

    if n <= 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class RolloutStudy:
    """A plan simulated over several seeds.

    Attributes
    ----------
    power, power_low, power_high
        Share of seeds rolled back (the plan's power against the regression; its
        false-rollback rate for a clean canary) and its Wilson interval.
    promoted, inconclusive
        Shares of seeds promoted and left undecided.
    median_minute
        Median minute (after the warm-up) of the decision over the decided seeds
        (NaN if none decided).
    median_bad_requests, median_canary_requests
        Medians over every seed of the bad and of all canary attempts served before the
        decision (before the last step's end when undecided).
    """

    plan: str
    regression: str
    seeds: int
    outcomes: tuple[RolloutOutcome, ...]
    power: float
    power_low: float
    power_high: float
    promoted: float
    inconclusive: float
    median_minute: float
    median_bad_requests: float
    median_canary_requests: float
    confidence: float = 0.95
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0

    def table(self) -> pd.DataFrame:
        """One row per seed."""
        return pd.DataFrame([{k: v for k, v in o.to_dict().items() if k != "steps"} for o in self.outcomes])

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("outcomes", "extra")}
        out["outcomes"] = [o.to_dict() for o in self.outcomes]
        return out


def summarize(plan: RolloutPlan, outcomes: list[RolloutOutcome], confidence: float = 0.95) -> RolloutStudy:
    """The study of ``outcomes`` (one per seed)."""
    n = len(outcomes)
    dec = np.array([o.decision for o in outcomes])
    k = int((dec == "ROLLBACK").sum())
    lo, hi = wilson_interval(k, n, confidence)
    decided = [o.minute for o in outcomes if o.decision != "INCONCLUSIVE"]
    return RolloutStudy(
        plan=plan.spec.name, regression=plan.spec.regression.describe(), seeds=n, outcomes=tuple(outcomes),
        power=k / n if n else math.nan, power_low=lo, power_high=hi,
        promoted=float((dec == "PROMOTE").mean()) if n else math.nan,
        inconclusive=float((dec == "INCONCLUSIVE").mean()) if n else math.nan,
        median_minute=float(np.median(decided)) if decided else math.nan,
        median_bad_requests=float(np.median([o.bad_requests for o in outcomes])) if n else math.nan,
        median_canary_requests=float(np.median([o.canary_requests for o in outcomes])) if n else math.nan,
        confidence=confidence)


def run_rollout(plan: RolloutPlan, *, seeds: int = 1, workers: int | None = None, scheduler: str | None = None,
                progress: Any = None) -> RolloutStudy:
    """Simulate the plan for ``seeds`` replications (in parallel) and summarize.

    Seed ``i`` is replication ``i`` of the scenario's seed (the plan's ``seed`` when given),
    so the results do not depend on the executor or on the order of completion.
    """
    from meshsim.experiments._executor import run_many

    if isinstance(seeds, bool) or int(seeds) != seeds or seeds < 1:
        raise ConfigError(f"--seeds {seeds!r}: expected a whole number >= 1")
    tasks = [_RolloutTask(plan, None, r) for r in range(int(seeds))]
    outcomes = run_many(tasks, workers=workers, scheduler=scheduler, progress=progress, label="rollouts")
    return summarize(plan, outcomes)


# --------------------------------------------------------------------------------------------------
# output


def render(study: RolloutStudy, plan: RolloutPlan, console: Any) -> None:
    """Print the study (one seed: its steps; several: the plan's power) on a rich console."""
    from rich.table import Table

    spec = plan.spec
    console.print(f"[bold]rollout[/bold] {spec.name}: {spec.service} {spec.baseline} -> {spec.canary}, steps "
                  f"{list(spec.weights)} % every {format_duration(spec.interval)}, regression: "
                  f"{spec.regression.describe()}")
    if study.seeds == 1:
        o = study.outcomes[0]
        table = Table("step", "weight", "minute", "canary req.", "decision", "reason")
        for s in o.steps:
            table.add_row(str(s.step), f"{s.weight}%", f"{s.minute:g}", str(s.canary_requests), s.decision, s.reason)
        console.print(table)
        console.print(f"[bold]{o.decision}[/bold] at minute {o.minute:g} (step {o.step}, {o.weight} %): the canary "
                      f"served {o.canary_requests} requests before the decision, {o.bad_requests} bad "
                      f"({o.canary_errors} errors, {o.canary_slow} slower than the baseline's p99 "
                      f"{o.baseline_p99_s * 1e3:.3g} ms)")
        return
    pct = round(100 * study.confidence)
    console.print(f"plan power (P(rollback)) over {study.seeds} seeds: {study.power:.1%} "
                  f"[{pct} % Wilson {study.power_low:.1%}, {study.power_high:.1%}]; promoted {study.promoted:.1%}, "
                  f"inconclusive {study.inconclusive:.1%}")
    console.print(f"median time to decision: {study.median_minute:g} min; median canary requests before it: "
                  f"{study.median_canary_requests:g}, of them bad: {study.median_bad_requests:g}")


def write_outputs(study: RolloutStudy, outdir: str | os.PathLike[str]) -> list[Path]:
    """``rollout.json`` (the study, every seed's steps) and ``outcomes.csv`` (one row per seed)."""
    import json

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "rollout.json", out / "outcomes.csv"]
    paths[0].write_text(json.dumps(jsonable(study.to_dict()), indent=2) + "\n", encoding="utf-8")
    study.table().to_csv(paths[1], index=False)
    return paths


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` and numpy scalars as Python ones (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
