"""Chaos experiments: a steady-state hypothesis, faults, and the questions asked of them.

An experiment file (YAML, in the spirit of Chaos Toolkit; ``docs/chaos.md``)
names a scenario, states a **steady-state hypothesis** (SLOs such as success
rate >= 99.9 % and p99 <= 300 ms, end to end or per service / version,
judged over windows of time), and a **method**: faults in the scenario's
``chaos:`` syntax, added to the scenario's own. Running it answers:

* does the hypothesis hold **before**, **during** and **after** the faults?
* how long until it **recovers** (the first time after the faults end from
  which every window meets every SLO)?
* what is the **blast radius** (which services and versions violated their
  SLO, and when)?

and gives a :class:`Verdict` (held / violated / not recovered) with an exit
code for CI. Replications give confidence intervals; :func:`compare_variants`
runs several policy variants under the same faults with common random numbers
(same seed and replication index per variant) and reports paired differences.

Public API
----------
load_experiment(path) / parse_experiment(data, source, base_dir) -> Experiment
load_variant(path, experiment) -> Variant
run_experiment(experiment, ...) -> ChaosResult
compare_variants(experiment, variants, ...) -> Comparison
evaluate(experiment, run_result, replication) -> ReplicationOutcome
render_result(result, console) / render_comparison(comparison, console)
write_report(result_or_comparison, outdir) -> [paths]

Definitions (the numbers every table shows)
-------------------------------------------
* A request (end to end) or an attempt (per service) belongs to the window in
  which it **started**, as in the run summary; a request still unanswered
  when the run stops counts as a failure with infinite latency.
* Success = a status in 200..399. ``p99`` is the smallest latency that 99 %
  of the window's requests do not exceed (an order statistic: no
  interpolation).
* A window with fewer than ``min_requests`` requests is not judged.
* Per-service SLOs judge the attempts at that service as its callers saw
  them (every try, as Envoy's ``upstream_rq_*`` stats count them).
* ``goodput`` = successful requests per second; ``throughput`` = requests
  the target's replicas completed per second, answered or not (work whose
  caller had already timed out counts here, not in goodput). End to end,
  throughput is the entry services' completions.
* Phases: *before* = ``[warmup, first fault start)``, *during* = ``[first
  start, last end)``, *after* = ``[last end, duration)``; a window is in the
  phase it lies in, and windows overlapping the faults are *during*.
"""

from __future__ import annotations

import copy
import enum
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from meshsim._exceptions import ConfigError
from meshsim._yaml import load_yaml, read_text
from meshsim.config import Fault, Scenario, apply_overrides, parse_scenario
from meshsim.config._errors import _vocabulary, config_error
from meshsim.experiments._common import scenario_of
from meshsim.policies._model import PolicyModel, refuse, suggest
from meshsim.units import format_duration, parse_duration, parse_fraction

__all__ = [
    "Verdict",
    "SloTarget",
    "Slo",
    "Window",
    "Hypothesis",
    "ExperimentSpec",
    "Experiment",
    "Variant",
    "ReplicationOutcome",
    "ChaosResult",
    "Comparison",
    "PairedDifference",
    "load_experiment",
    "parse_experiment",
    "load_variant",
    "run_experiment",
    "compare_variants",
    "evaluate",
    "render_result",
    "render_comparison",
    "write_report",
    "EXIT_CODES",
    "LATENCY_QUANTILES",
]

#: latency quantiles an SLO may bound: key -> probability
LATENCY_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
_PHASES = ("before", "during", "after")
_E2E = "end-to-end"
_EACH = ("each-service", "each-version")


class Verdict(str, enum.Enum):
    """The experiment's answer: the steady state held, was violated, or did not come back."""

    HELD = "held"
    VIOLATED = "violated"
    NOT_RECOVERED = "not recovered"

    @property
    def rank(self) -> int:
        return {"held": 0, "violated": 1, "not recovered": 2}[self.value]


#: process exit code of each verdict (``meshsim chaos``); bad input exits with 2
EXIT_CODES = {Verdict.HELD: 0, Verdict.VIOLATED: 1, Verdict.NOT_RECOVERED: 1}


# ---------------------------------------------------------------------------------------------- config
def _duration(value: Any) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    if seconds <= 0:
        raise refuse(f"{value!r} must be a duration > 0 such as 300ms, 1.5s")
    return seconds


def _fraction(value: Any) -> float:
    try:
        return parse_fraction(value)
    except ValueError as exc:
        raise refuse(str(exc)) from None


class SloTarget(PolicyModel):
    """What an SLO judges: ``end-to-end`` (the clients' requests), a service, a version, or each of them.

    Written ``end-to-end`` (default), ``reviews`` (a service),
    ``{service: reviews, version: v3}``, ``each-service`` or
    ``each-version`` (one SLO per service / service version of the
    scenario: the blast radius over the whole mesh).
    """

    service: str | None = None
    version: str | None = None
    each: Literal["service", "version"] | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data in (_E2E, "e2e"):
                return {}
            if data in _EACH:
                return {"each": data.split("-", 1)[1]}
            return {"service": data}
        return data

    @model_validator(mode="after")
    def _coherent(self) -> SloTarget:
        if self.version is not None and self.service is None:
            raise refuse("version needs a service, e.g. {service: reviews, version: v3}", "version")
        if self.each is not None and self.service is not None:
            raise refuse("each-service / each-version cannot name a service as well", "each")
        return self

    @property
    def label(self) -> str:
        if self.each is not None:
            return f"each-{self.each}"
        if self.service is None:
            return _E2E
        return self.service if self.version is None else f"{self.service}/{self.version}"


class Slo(PolicyModel):
    """One service-level objective: a floor on the success rate and ceilings on latency quantiles.

    Parameters
    ----------
    name
        Label in tables (default: the target's label).
    target
        :class:`SloTarget`; default ``end-to-end``.
    success_rate
        Minimum share of successful (2xx/3xx) requests in a window, e.g. ``99.9%``.
    p50, p90, p95, p99, p999
        Maximum latency quantile in a window, e.g. ``300ms``.
    enforce
        ``true`` (default): part of the verdict. ``false``: judged and shown
        in the blast radius only (watch a dependency without failing the
        experiment on it).
    """

    name: str | None = None
    target: SloTarget = Field(default_factory=SloTarget)
    enforce: bool = True
    success_rate: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None

    @field_validator("success_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return None if value is None else _fraction(value)

    @field_validator("p50", "p90", "p95", "p99", "p999", mode="before")
    @classmethod
    def _latency(cls, value: Any) -> Any:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _something(self) -> Slo:
        if self.success_rate is None and not self.latency_bounds:
            raise refuse("an SLO needs success_rate (a floor such as 99.9%) or a latency ceiling "
                         f"({', '.join(LATENCY_QUANTILES)}, e.g. p99: 300ms)")
        return self

    @property
    def latency_bounds(self) -> dict[str, float]:
        """``{"p99": 0.3, ...}``: the latency ceilings given, in quantile order."""
        return {q: getattr(self, q) for q in LATENCY_QUANTILES if getattr(self, q) is not None}

    def describe(self) -> str:
        """``success >= 99.9 %, p99 <= 300ms``."""
        parts = []
        if self.success_rate is not None:
            parts.append(f"success >= {_pct(self.success_rate)}")
        parts += [f"{q} <= {format_duration(v)}" for q, v in self.latency_bounds.items()]
        return ", ".join(parts)


class Window(PolicyModel):
    """Windows the SLOs are judged over: ``size``, moved by ``step`` (``step == size``: fixed windows).

    Written ``10s`` (fixed 10 s windows) or ``{size: 10s, step: 1s}`` (sliding).
    """

    size: float
    step: float | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, (str, int, float)) and not isinstance(data, bool):
            return {"size": data}
        return data

    @field_validator("size", "step", mode="before")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _step(self) -> Window:
        if self.step is not None and self.step > self.size:
            raise refuse(f"step {format_duration(self.step)} is longer than the window "
                         f"({format_duration(self.size)}): some requests would be judged by no window", "step")
        return self

    @property
    def stride(self) -> float:
        return self.size if self.step is None else self.step


class Hypothesis(PolicyModel):
    """The steady-state hypothesis: SLOs judged over windows.

    Parameters
    ----------
    slos
        One or more :class:`Slo` (a single mapping is accepted).
    window
        :class:`Window`; default fixed 10 s windows.
    min_requests
        A window with fewer requests is not judged (default 10).
    during
        ``required`` (default): the hypothesis must hold during the faults
        too; ``tolerated``: violations while the faults last and until the
        system recovers are accepted, and only the state before the faults
        and the recovery are judged (Chaos Toolkit's before/after checks).
    recover_within
        Optional: a recovery that takes longer than this after the faults
        end counts as *not recovered*.
    """

    slos: tuple[Slo, ...]
    window: Window = Field(default_factory=lambda: Window(size=10.0))
    min_requests: int = Field(10, ge=1)
    during: Literal["required", "tolerated"] = "required"
    recover_within: float | None = None

    @field_validator("slos", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return [value]
        if isinstance(value, (list, tuple)) and not value:
            raise refuse("slos is empty; give at least one SLO, e.g. {success_rate: 99.9%, p99: 300ms}")
        return value

    @field_validator("recover_within", mode="before")
    @classmethod
    def _within(cls, value: Any) -> Any:
        return None if value is None else _duration(value)


class ExperimentSpec(PolicyModel):
    """An experiment file as written (see ``docs/chaos.md``).

    Parameters
    ----------
    name, description
        Identification.
    scenario
        A scenario file (relative to the experiment file) or an inline scenario mapping.
    set
        Dotted-path overrides applied to the scenario (as ``meshsim run --set``).
    seed, replications
        Override the scenario's; replication ``r`` of every variant uses
        ``(seed, r)``, so variants see the same random numbers.
    confidence
        Level of the t confidence intervals over replications (default 0.95).
    hypothesis
        :class:`Hypothesis`.
    method
        Faults in the scenario's ``chaos:`` syntax, added to its own.
    """

    name: str
    description: str | None = None
    scenario: str | dict[str, Any]
    set: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(None, ge=0)
    replications: int | None = Field(None, ge=1)
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    hypothesis: Hypothesis
    method: tuple[Fault, ...] = ()

    @field_validator("method", mode="before")
    @classmethod
    def _faults(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("set", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> Any:
        return {} if value is None else value


_vocabulary.cache_clear()  # error paths name this module's fields too


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: the spec, and the scenario to run (its faults plus the method's).

    Attributes
    ----------
    spec
        The :class:`ExperimentSpec`.
    scenario
        The scenario with the ``set`` overrides applied and the method's
        faults appended to its ``chaos:`` block; ``record: full``.
    source
        Where the experiment came from (error messages, reports).
    base_dir
        Directory that relative paths in it are resolved against.
    """

    spec: ExperimentSpec
    scenario: Scenario
    source: str = "<experiment>"
    base_dir: Path = Path(".")
    method: tuple[Any, ...] = ()  # the method's faults as written (mappings)
    base: Scenario | None = None  # the scenario as named, before ``set`` and ``method``

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def seed(self) -> int:
        return int(self.spec.seed if self.spec.seed is not None else self.scenario.seed)

    @property
    def replications(self) -> int:
        return int(self.spec.replications if self.spec.replications is not None else self.scenario.replications)

    def fault_span(self, scenario: Scenario | None = None) -> tuple[float, float]:
        """``(first start, last end)`` of every fault (``end`` may be the run's end: open-ended)."""
        scn = scenario or self.scenario
        run_end = float(scn.duration) + float(scn.drain)
        return (min(f.start for f in scn.chaos), max(f.end(run_end) for f in scn.chaos))

    def with_scenario(self, scenario: Scenario, what: str = "variant") -> Experiment:
        """The same experiment on another scenario (a variant): overrides and method applied to it."""
        scn = _prepare(self.spec, self.method, scenario, self.source, what=what)
        return Experiment(self.spec, scn, self.source, self.base_dir, self.method, scenario)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Experiment:
        """The experiment with more ``set`` overrides (``meshsim chaos --set``), applied after its own."""
        spec = self.spec.model_copy(update={"set": {**self.spec.set, **dict(overrides)}})
        base = self.base if self.base is not None else self.scenario
        scn = _prepare(spec, self.method, base, self.source, what="scenario")
        return Experiment(spec, scn, self.source, self.base_dir, self.method, base)


@dataclass(frozen=True)
class Variant:
    """One arm of a comparison: a label and the scenario it runs."""

    label: str
    experiment: Experiment
    source: str = ""


def _read_yaml(path: Path, what: str) -> Any:
    return load_yaml(read_text(path, what), str(path))


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read and validate an experiment file; relative scenario paths are taken from its directory.

    Raises
    ------
    ConfigError
        One line naming the file, the field path, the value and what is allowed.
    """
    p = Path(path)
    data = _read_yaml(p, "an experiment file")
    if data is None:
        raise ConfigError("the file is empty; an experiment needs name, scenario, hypothesis and method",
                          source=str(path))
    return parse_experiment(data, source=str(path), base_dir=p.parent)


def parse_experiment(data: Mapping[str, Any], source: str = "<experiment>",
                     base_dir: str | os.PathLike[str] = ".") -> Experiment:
    """Validate an experiment given as a mapping (see :func:`load_experiment`).

    Examples
    --------
    >>> exp = parse_experiment({
    ...     "name": "crash-one", "scenario": {"name": "s", "duration": "40s", "warmup": "5s",
    ...         "services": {"api": {"replicas": 2, "workers": 4, "latency": "5ms"}},
    ...         "traffic": [{"to": "api", "rate": "50/s"}]},
    ...     "hypothesis": {"slos": {"success_rate": "99%"}},
    ...     "method": [{"kind": "latency", "target": "api", "add": "1ms", "start": "15s", "duration": "5s"}]})
    >>> exp.fault_span(), len(exp.scenario.chaos)
    ((15.0, 20.0), 1)
    """
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"an experiment is a mapping with keys name, scenario, hypothesis, method; the top "
                          f"level is {kind}", source=source)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, data, source) from None
    base = Path(base_dir)
    scenario = scenario_of(spec.scenario, base, source, "experiment")
    method = tuple(copy.deepcopy(list(data.get("method") or [])))
    scn = _prepare(spec, method, scenario, source, what="scenario")
    return Experiment(spec, scn, source, base, method, scenario)


def _prepare(spec: ExperimentSpec, method: Sequence[Any], scenario: Scenario, source: str, *, what: str
             ) -> Scenario:
    """The scenario with the spec's overrides, seed and method applied, and the windows checked."""
    scn = scenario
    if spec.set:
        try:
            scn = apply_overrides(scn, spec.set)
        except ConfigError as exc:
            raise ConfigError(f"set: {_bare(exc)}", path="set", source=source) from None
    raw = copy.deepcopy(scn._raw)
    own = list(raw.get("chaos") or [])
    raw["chaos"] = own + copy.deepcopy(list(method))
    raw["record"] = "full"  # windows need the rows
    if spec.seed is not None:
        raw["seed"] = spec.seed
    try:
        combined = parse_scenario(raw, source=scn.source)
    except ConfigError as exc:
        raise _method_error(exc, len(own), source, what) from None
    if not combined.chaos:
        raise ConfigError("method: no faults: the method is empty and the scenario has no chaos: block; add a fault, "
                          "e.g. {kind: crash, target: api, start: 30s, duration: 10s}", path="method", source=source)
    _check_windows(spec, combined, source)
    return combined


def _bare(exc: ConfigError) -> str:
    text = str(exc)
    if exc.source and text.startswith(f"{exc.source}: "):
        text = text[len(exc.source) + 2:]
    return text


def _method_error(exc: ConfigError, n_own: int, source: str, what: str) -> ConfigError:
    """A problem with a method fault is reported at ``method[i]``, not at the combined chaos block."""
    path = exc.path or ""
    text = _bare(exc)
    if path.startswith("chaos["):
        idx = int(path[len("chaos["):path.index("]")])
        if idx >= n_own:
            new = f"method[{idx - n_own}]" + path[path.index("]") + 1:]
            rest = text[len(path) + 2:] if text.startswith(path + ": ") else text
            rest = rest.replace(f"chaos[{idx}]", f"method[{idx - n_own}]")
            for j in range(n_own, idx):
                rest = rest.replace(f"chaos[{j}]", f"method[{j - n_own}]")
            return ConfigError(f"{new}: {rest}", path=new, source=source)
    return ConfigError(f"{what}: {text}", path=path, source=source)


def _check_windows(spec: ExperimentSpec, scn: Scenario, source: str) -> None:
    hyp = spec.hypothesis
    size, step = hyp.window.size, hyp.window.stride
    run_end = float(scn.duration) + float(scn.drain)
    t0 = min(f.start for f in scn.chaos)
    t1 = max(f.end(run_end) for f in scn.chaos)
    where = "hypothesis.window.size"

    def refuse_(message: str, path: str = where) -> ConfigError:
        return ConfigError(f"{path}: {message}", path=path, source=source)

    if size > scn.duration - scn.warmup:
        raise refuse_(f"{format_duration(size)} is longer than the measured part of the run "
                      f"({format_duration(scn.duration - scn.warmup)}: duration - warmup)")
    if scn.warmup + size > t0 + 1e-9:
        raise refuse_(f"the first fault starts at {format_duration(t0)}, leaving less than one "
                      f"{format_duration(size)} window after the warmup ({format_duration(scn.warmup)}) to "
                      "judge the steady state before it; start the faults later or use shorter windows")
    if t1 < scn.duration:
        first_after = scn.warmup + math.ceil((t1 - scn.warmup) / step - 1e-9) * step
        if first_after + size > scn.duration + 1e-9:
            raise refuse_(f"the faults end at {format_duration(t1)} and traffic at {format_duration(scn.duration)}: "
                          f"no {format_duration(size)} window (every {format_duration(step)} from the warmup) fits "
                          "after them to judge the recovery; make the scenario's duration longer (set: {duration: "
                          "...}) or the windows shorter")
    services = scn.services
    for i, slo in enumerate(spec.hypothesis.slos):
        t = slo.target
        at = f"hypothesis.slos[{i}].target"
        if t.service is not None and t.service not in services:
            names = list(services)
            raise refuse_(f"{t.service!r} is not a service{suggest(t.service, names)} "
                          f"(services: {', '.join(names)})", f"{at}.service")
        if t.version is not None:
            versions = list(services[t.service].resolved_versions(t.service))
            if t.version not in versions:
                raise refuse_(f"{t.version!r} is not a version of {t.service}{suggest(t.version, versions)} "
                              f"(versions: {', '.join(versions)})", f"{at}.version")


_VARIANT_KEYS = ("name", "description", "mesh", "set")


def load_variant(path: str | os.PathLike[str], experiment: Experiment) -> Variant:
    """Read a comparison variant: a whole scenario, or an overrides file applied to the experiment's scenario.

    A file with a ``services:`` key is a **scenario**: it replaces the
    experiment's scenario (the experiment's ``set`` and ``method`` are applied
    to it). Otherwise it is an **overrides file** with the keys ``name``
    (label; default the file's stem), ``description``, ``mesh`` (service ->
    policy block, replacing that service's whole ``mesh:`` entry; ``null``
    removes it) and ``set`` (dotted-path overrides, applied after ``mesh``).
    """
    p = Path(path)
    data = _read_yaml(p, "a variant file")
    source = str(p)
    if not isinstance(data, Mapping):
        raise ConfigError("a variant is a scenario, or a mapping with keys name, mesh, set", source=source)
    if "services" in data:
        scn = parse_scenario(data, source=source)
        return Variant(p.stem, experiment.with_scenario(scn, what=source), source)
    for key in data:
        if key not in _VARIANT_KEYS:
            raise ConfigError(f"unknown key {key!r}{suggest(str(key), _VARIANT_KEYS)} (allowed: "
                              f"{', '.join(_VARIANT_KEYS)}; or a whole scenario with services:)", path=str(key),
                              source=source)
    scn0 = experiment.base if experiment.base is not None else experiment.scenario
    raw = copy.deepcopy(scn0._raw)
    mesh = data.get("mesh") or {}
    if not isinstance(mesh, Mapping):
        raise ConfigError(f"mesh: expected a mapping service -> policies, got {mesh!r}", path="mesh", source=source)
    if mesh:
        merged = dict(raw.get("mesh") or {})
        for svc, block in mesh.items():
            if block is None:
                merged.pop(svc, None)
            else:
                merged[svc] = block
        raw["mesh"] = merged
    try:
        scn = parse_scenario(raw, source=source)
        sets = data.get("set") or {}
        if not isinstance(sets, Mapping):
            raise ConfigError(f"set: expected a mapping path -> value, got {sets!r}", path="set", source=source)
        if sets:
            scn = apply_overrides(scn, sets)
    except ConfigError as exc:
        raise ConfigError(_bare(exc), path=exc.path, source=source) from None
    label = str(data.get("name") or p.stem)
    return Variant(label, experiment.with_scenario(scn, what=source), source)


# ---------------------------------------------------------------------------------------------- evaluation
@dataclass
class _Target:
    """One judged thing (an expanded SLO): its rows, sorted by start time."""

    slo: Slo
    name: str  # SLO name
    label: str  # end-to-end, service, service/version
    service: str | None
    version: str | None
    start: np.ndarray
    ok: np.ndarray
    lat: np.ndarray  # inf when unanswered
    completions: np.ndarray  # per second of the run
    hit: bool  # a fault targets it directly


def _expand(experiment: Experiment, scn: Scenario, result: Any) -> list[_Target]:
    req, att, ts = result.requests, result.attempts, result.timeseries
    comp = ts.groupby(["service", "version", "t_s"], observed=True)["completions"].sum()
    nsec = int(ts["t_s"].max()) + 1 if len(ts) else 0

    def per_second(service: str | None, version: str | None) -> np.ndarray:
        out = np.zeros(nsec)
        for (s, v, t), c in comp.items():
            if (service is None and s in entries) or (s == service and (version is None or v == version)):
                out[int(t)] += c
        return out

    def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(frame["start_s"].to_numpy(), kind="stable")
        start = frame["start_s"].to_numpy()[order]
        status = frame["status"].to_numpy()[order]
        lat = frame["latency_s"].to_numpy(dtype=float)[order]
        lat = np.where(np.isfinite(lat) & (status != 0), lat, np.inf)
        return start, (status >= 200) & (status < 400), lat

    entries = set(scn.entry_services())
    hit_services = _hit_services(scn)
    out: list[_Target] = []
    for slo in experiment.spec.hypothesis.slos:
        t = slo.target
        name = slo.name or t.label
        if t.each is None and t.service is None:
            out.append(_Target(slo, name, _E2E, None, None, *arrays(req), per_second(None, None), False))
            continue
        pairs: list[tuple[str, str | None]]
        if t.each == "service":
            pairs = [(s, None) for s in scn.services]
        elif t.each == "version":
            pairs = [(s, v) for s, spec in scn.services.items() for v in spec.resolved_versions(s)]
        else:
            pairs = [(t.service, t.version)]  # type: ignore[list-item]
        for s, v in pairs:
            m = att["service"] == s
            if v is not None:
                m &= att["version"] == v
            label = s if v is None else f"{s}/{v}"
            nm = label if t.each is not None else name
            if t.each is not None and slo.name:
                nm = f"{slo.name}: {label}"
            hit = (s, v) in hit_services or (s, None) in hit_services
            out.append(_Target(slo, nm, label, s, v, *arrays(att[m]), per_second(s, v), hit))
    return out


def _hit_services(scn: Scenario) -> set[tuple[str, str | None]]:
    from meshsim.config import target_replicas

    hit: set[tuple[str, str | None]] = set()
    for f in scn.chaos:
        targets = [f.from_, f.to] if f.kind == "partition" else [f.target]
        for t in targets:
            for s, v, _ in target_replicas(scn, t):
                hit.add((s, v))
                hit.add((s, None))
    return hit


def _stats(t: _Target, a: float, b: float, quantiles: Sequence[str]) -> dict[str, float]:
    lo, hi = np.searchsorted(t.start, [a, b], side="left")
    n = int(hi - lo)
    span = b - a
    ok = int(t.ok[lo:hi].sum())
    out: dict[str, float] = {"requests": n, "success_rate": ok / n if n else math.nan,
                             "goodput_rps": ok / span if span > 0 else math.nan,
                             "load_rps": n / span if span > 0 else math.nan}
    if n:
        qs = np.quantile(t.lat[lo:hi], [LATENCY_QUANTILES[q] for q in quantiles], method="inverted_cdf")
        out.update({q: float(v) for q, v in zip(quantiles, qs, strict=True)})
    else:
        out.update({q: math.nan for q in quantiles})
    s0, s1 = int(math.floor(a)), int(math.ceil(b))
    c = t.completions
    out["throughput_rps"] = float(c[max(s0, 0):min(s1, len(c))].sum()) / max(s1 - s0, 1)
    return out


def _judge(slo: Slo, row: Mapping[str, float], min_requests: int) -> tuple[bool | None, str]:
    if row["requests"] < min_requests:
        return None, ""
    failed = []
    if slo.success_rate is not None and not row["success_rate"] >= slo.success_rate - 1e-12:
        failed.append("success_rate")
    for q, bound in slo.latency_bounds.items():
        if not row[q] <= bound:
            failed.append(q)
    return (not failed), ",".join(failed)


def _phase(a: float, b: float, t0: float, t1: float) -> str:
    if b <= t0 + 1e-9:
        return "before"
    if a >= t1 - 1e-9:
        return "after"
    return "during"


@dataclass
class ReplicationOutcome:
    """What one replication says.

    Attributes
    ----------
    replication, seed
        Which run.
    verdict
        :class:`Verdict` of this replication, with ``reasons`` (sentences).
    held
        Phase -> True (every judged window met every SLO), False, or None
        (no judged window in that phase).
    recovered, recovery_s
        Whether every window from some time after the faults ended met every
        SLO, and how long after the end that time was (0: no violation after
        the faults); None when there is no *after* phase (an open-ended fault).
    windows
        One row per window and SLO target (see :func:`evaluate`).
    phases
        One row per phase and SLO target: the same metrics over the whole phase.
    targets
        One row per SLO target: the blast radius (violated, first/last
        violation, windows violated, worst values, recovery).
    faults
        The run's faults table.
    """

    replication: int
    seed: int
    verdict: Verdict
    reasons: list[str]
    held: dict[str, bool | None]
    recovered: bool | None
    recovery_s: float | None
    windows: pd.DataFrame
    phases: pd.DataFrame
    targets: pd.DataFrame
    faults: pd.DataFrame


def _quantiles_for(experiment: Experiment) -> list[str]:
    asked = {q for slo in experiment.spec.hypothesis.slos for q in slo.latency_bounds}
    return [q for q in LATENCY_QUANTILES if q in asked or q in ("p50", "p99")]


def evaluate(experiment: Experiment, result: Any, replication: int = 0) -> ReplicationOutcome:
    """Judge one run (a ``RunResult`` of ``experiment.scenario``) against the hypothesis.

    Returns
    -------
    ReplicationOutcome
        ``windows`` has the columns ``slo, target, start_s, end_s, phase,
        requests, success_rate, p50, ..., p99, goodput_rps, load_rps,
        throughput_rps, meets`` (True/False/None = not judged) and
        ``failed`` (the criteria a window missed, comma-separated).
    """
    scn = result.scenario
    hyp = experiment.spec.hypothesis
    t0, t1 = experiment.fault_span(scn)
    quantiles = _quantiles_for(experiment)
    size, step = hyp.window.size, hyp.window.stride
    starts = []
    a = float(scn.warmup)
    while a + size <= scn.duration + 1e-9:
        starts.append(round(a, 9))
        a += step
    targets = _expand(experiment, scn, result)
    rows, phase_rows, target_rows = [], [], []
    spans = {"before": (float(scn.warmup), t0), "during": (t0, min(t1, float(scn.duration))),
             "after": (t1, float(scn.duration))}
    for tg in targets:
        judged: list[tuple[float, float, str, bool | None]] = []
        for a in starts:
            b = a + size
            st = _stats(tg, a, b, quantiles)
            meets, failed = _judge(tg.slo, st, hyp.min_requests)
            ph = _phase(a, b, t0, t1)
            rows.append({"slo": tg.name, "target": tg.label, "enforced": tg.slo.enforce, "start_s": a, "end_s": b,
                         "phase": ph, **st, "meets": meets, "failed": failed})
            judged.append((a, b, ph, meets))
        for ph, (a, b) in spans.items():
            if b - a <= 1e-9:
                continue
            st = _stats(tg, a, b, quantiles)
            held = [m for (_, _, p, m) in judged if p == ph and m is not None]
            phase_rows.append({"slo": tg.name, "target": tg.label, "phase": ph, "start_s": a, "end_s": b, **st,
                               "held": (all(held) if held else None)})
        bad = [(a, b) for (a, b, p, m) in judged if m is False]
        after = [(a, m) for (a, _, p, m) in judged if p == "after" and m is not None]
        rec, rec_s = _recovery(after, t1)
        tw = [r for r in rows if r["slo"] == tg.name]
        target_rows.append({
            "slo": tg.name, "target": tg.label,
            "objective": tg.slo.describe() + ("" if tg.slo.enforce else " (watched)"), "hit_directly": tg.hit,
            "violated": bool(bad), "windows_violated": len(bad),
            "windows_judged": sum(m is not None for (*_, m) in judged),
            "first_violation_s": bad[0][0] if bad else math.nan,
            "last_violation_end_s": bad[-1][1] if bad else math.nan,
            "worst_success_rate": float(np.nanmin([r["success_rate"] for r in tw])) if tw else math.nan,
            "worst_p99_s": float(np.nanmax([r["p99"] for r in tw])) if tw else math.nan,
            "load_before_rps": next((p["load_rps"] for p in phase_rows if p["slo"] == tg.name
                                     and p["phase"] == "before"), math.nan),
            "load_during_rps": next((p["load_rps"] for p in phase_rows if p["slo"] == tg.name
                                     and p["phase"] == "during"), math.nan),
            "recovered": rec, "recovery_s": rec_s, "enforced": tg.slo.enforce,
        })
    windows = pd.DataFrame(rows)
    phases = pd.DataFrame(phase_rows)
    tdf = pd.DataFrame(target_rows)
    # attempts at the target per user request, during the faults over before them (retry amplification)
    users = {ph: _e2e_rate(result.requests, *spans[ph]) for ph in ("before", "during")}
    with np.errstate(divide="ignore", invalid="ignore"):
        tdf["amplification"] = ((tdf["load_during_rps"] / users["during"]) /
                                (tdf["load_before_rps"] / users["before"]))

    held: dict[str, bool | None] = {}
    gate = windows[windows["enforced"]]
    for ph in _PHASES:
        vals = [m for m in gate.loc[gate["phase"] == ph, "meets"] if m is not None]
        held[ph] = all(vals) if vals else None
    enforced = tdf[tdf["enforced"]]
    if t1 >= scn.duration:
        recovered, recovery_s = None, None
    elif (enforced["recovered"] == False).any():  # noqa: E712 - an object column of True/False/None
        recovered, recovery_s = False, None
    else:
        vals = [v for v in enforced["recovery_s"] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        recovered, recovery_s = True, (max(vals) if vals else 0.0)
    if recovered and hyp.recover_within is not None and recovery_s is not None and recovery_s > hyp.recover_within:
        recovered = False
    verdict, reasons = _verdict(hyp, held, recovered, recovery_s)
    return ReplicationOutcome(replication, int(result.seed), verdict, reasons, held, recovered, recovery_s,
                              windows, phases, tdf, result.faults)


def _e2e_rate(requests: pd.DataFrame, a: float, b: float) -> float:
    if b - a <= 0:
        return math.nan
    start = requests["start_s"].to_numpy()
    return float(np.count_nonzero((start >= a) & (start < b))) / (b - a)


def _recovery(after: list[tuple[float, bool]], t1: float) -> tuple[bool | None, float | None]:
    """From the judged windows after the faults: recovered?, and when (seconds after ``t1``)."""
    if not after:
        return None, None
    if not after[-1][1]:
        return False, None
    k = len(after)
    while k > 0 and after[k - 1][1]:
        k -= 1
    return True, 0.0 if k == 0 else max(0.0, after[k][0] - t1)


def _verdict(hyp: Hypothesis, held: Mapping[str, bool | None], recovered: bool | None,
             recovery_s: float | None) -> tuple[Verdict, list[str]]:
    reasons = []
    verdict = Verdict.HELD
    if held.get("before") is False:
        reasons.append("the hypothesis did not hold before the faults (the steady state is not steady)")
        verdict = Verdict.VIOLATED
    if recovered is False:
        within = (f" within {format_duration(hyp.recover_within)}" if hyp.recover_within is not None else
                  " by the end of the run")
        reasons.append(f"it did not recover{within} after the faults ended")
        return Verdict.NOT_RECOVERED, reasons
    if hyp.during == "required":
        if held.get("during") is False:
            reasons.append("violated during the faults")
            verdict = Verdict.VIOLATED
        if held.get("after") is False:
            reasons.append(f"violated after the faults, recovered {format_duration(recovery_s or 0.0)} after "
                           "they ended")
            verdict = Verdict.VIOLATED
    if verdict is Verdict.HELD:
        reasons.append("every judged window met every SLO" if hyp.during == "required" else
                       "steady before the faults and recovered after them")
    return verdict, reasons


# ---------------------------------------------------------------------------------------------- results
def _t_interval(values: Sequence[float], confidence: float) -> tuple[float, float, float, int]:
    """(mean, low, high, n) over the finite values; the interval is NaN with fewer than two."""
    from scipy import stats as st

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n < 2:
        return m, math.nan, math.nan, n
    sd = float(v.std(ddof=1))
    if sd == 0.0:
        return m, m, m, n
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return m, m - half, m + half, n


@dataclass
class ChaosResult:
    """An experiment's outcome over its replications.

    Attributes
    ----------
    experiment
        The :class:`Experiment` that ran.
    label
        The variant's label in a comparison (``""`` otherwise).
    outcomes
        One :class:`ReplicationOutcome` per replication.
    confidence
        Level of the intervals.
    """

    experiment: Experiment
    outcomes: list[ReplicationOutcome]
    label: str = ""
    confidence: float = 0.95

    @property
    def verdict(self) -> Verdict:
        """The worst verdict over the replications (a failure seen once is a failure that can happen)."""
        return max((o.verdict for o in self.outcomes), key=lambda v: v.rank)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def fault_span(self) -> tuple[float, float]:
        return self.experiment.fault_span()

    @property
    def windows(self) -> pd.DataFrame:
        """Every replication's windows, with a ``replication`` column."""
        return pd.concat([o.windows.assign(replication=o.replication) for o in self.outcomes], ignore_index=True)

    def verdict_counts(self) -> dict[str, int]:
        return {v.value: sum(o.verdict is v for o in self.outcomes) for v in Verdict}

    def phase_table(self) -> pd.DataFrame:
        """Per SLO target and phase: held in k of n replications, and each metric's mean with its interval."""
        rows = []
        allp = pd.concat([o.phases.assign(replication=o.replication) for o in self.outcomes], ignore_index=True)
        metrics = ["success_rate", *[q for q in LATENCY_QUANTILES if q in allp.columns], "goodput_rps",
                   "throughput_rps", "load_rps"]
        for (slo, ph), g in allp.groupby(["slo", "phase"], sort=False):
            row: dict[str, Any] = {"slo": slo, "target": g["target"].iloc[0], "phase": ph,
                                   "start_s": float(g["start_s"].iloc[0]), "end_s": float(g["end_s"].iloc[0]),
                                   "held": int(sum(h is True for h in g["held"])),
                                   "judged": int(sum(h is not None for h in g["held"])), "n": len(g)}
            for m in metrics:
                mean, lo, hi, _ = _t_interval(g[m].tolist(), self.confidence)
                row[m], row[f"{m}_low"], row[f"{m}_high"] = mean, lo, hi
            rows.append(row)
        order = {p: i for i, p in enumerate(_PHASES)}
        out = pd.DataFrame(rows)
        if len(out):
            out = out.sort_values(by=["phase"], key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
        return out

    def blast_radius(self) -> pd.DataFrame:
        """Per SLO target: in how many replications it violated its SLO, when (mean), and its recovery."""
        allt = pd.concat([o.targets for o in self.outcomes], ignore_index=True)
        rows = []
        for slo, g in allt.groupby("slo", sort=False):
            rec = [v for v in g["recovery_s"] if v is not None and np.isfinite(v)]
            m, lo, hi, n = _t_interval(rec, self.confidence)
            rows.append({
                "slo": slo, "target": g["target"].iloc[0], "objective": g["objective"].iloc[0],
                "hit_directly": bool(g["hit_directly"].iloc[0]),
                "violated": int(g["violated"].sum()), "n": len(g),
                "first_violation_s": float(np.nanmean(g["first_violation_s"])) if g["violated"].any() else math.nan,
                "last_violation_end_s": (float(np.nanmean(g["last_violation_end_s"])) if g["violated"].any()
                                         else math.nan),
                "windows_violated": float(g["windows_violated"].mean()),
                "worst_success_rate": float(np.nanmin(g["worst_success_rate"])),
                "worst_p99_s": float(np.nanmax(g["worst_p99_s"])),
                "amplification": float(np.nanmean(g["amplification"])) if g["amplification"].notna().any()
                else math.nan,
                "recovered": int(sum(r is True for r in g["recovered"])),
                "not_recovered": int(sum(r is False for r in g["recovered"])),
                "recovery_s": m, "recovery_s_low": lo, "recovery_s_high": hi,
            })
        return pd.DataFrame(rows)

    def recovery(self) -> dict[str, Any]:
        """Recovery over replications: counts, and the mean time with its interval (recovered ones)."""
        vals = [o.recovery_s for o in self.outcomes if o.recovered]
        m, lo, hi, n = _t_interval(vals, self.confidence)
        return {"recovered": sum(o.recovered is True for o in self.outcomes),
                "not_recovered": sum(o.recovered is False for o in self.outcomes),
                "not_applicable": sum(o.recovered is None for o in self.outcomes),
                "mean_s": m, "low_s": lo, "high_s": hi, "n": len(self.outcomes)}

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (NaN -> None)."""
        t0, t1 = self.fault_span
        spec = self.experiment.spec
        out = {
            "experiment": spec.name, "label": self.label, "scenario": self.experiment.scenario.name,
            "verdict": self.verdict.value, "exit_code": self.exit_code,
            "replications": len(self.outcomes), "seed": self.experiment.seed, "confidence": self.confidence,
            "faults": {"start_s": t0, "end_s": t1, "table": _records(self.outcomes[0].faults)},
            "hypothesis": {
                "window_s": spec.hypothesis.window.size, "step_s": spec.hypothesis.window.stride,
                "during": spec.hypothesis.during, "recover_within_s": spec.hypothesis.recover_within,
                "slos": [{"name": s.name or s.target.label, "target": s.target.label, "objective": s.describe()}
                         for s in spec.hypothesis.slos]},
            "verdicts": self.verdict_counts(),
            "recovery": self.recovery(),
            "replication": [{"replication": o.replication, "verdict": o.verdict.value, "reasons": o.reasons,
                             "held": o.held, "recovered": o.recovered, "recovery_s": o.recovery_s}
                            for o in self.outcomes],
            "phases": _records(self.phase_table()),
            "blast_radius": _records(self.blast_radius()),
        }
        return _clean(out)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_clean(r) for r in df.to_dict(orient="records")]


def _clean(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else (None if math.isnan(f) else ("inf" if f > 0 else "-inf"))
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def run_experiment(experiment: Experiment, *, replications: int | None = None, seed: int | None = None,
                   label: str = "", progress: Callable[[float], None] | None = None) -> ChaosResult:
    """Run the experiment's replications (serially) and judge each one.

    Parameters
    ----------
    experiment
        From :func:`load_experiment`.
    replications, seed
        Override the experiment's. Replication ``r`` runs with ``(seed, r)``.
    label
        The variant's label (comparisons).
    progress
        Called with the fraction done.
    """
    from meshsim.sim import simulate

    n = int(replications if replications is not None else experiment.replications)
    s = int(seed if seed is not None else experiment.seed)
    outcomes = []
    for r in range(n):
        sub = None
        if progress is not None:
            def sub(f: float, r: int = r) -> None:
                progress((r + f) / n)
        res = simulate(experiment.scenario, seed=s, replication=r, progress=sub)
        outcomes.append(evaluate(experiment, res, replication=r))
    return ChaosResult(experiment, outcomes, label, experiment.spec.confidence)


# ---------------------------------------------------------------------------------------------- comparisons
#: metrics compared between variants: (phase, metric) and the recovery time
COMPARED = (("during", "success_rate"), ("during", "p99"), ("during", "goodput_rps"),
            ("after", "success_rate"), ("after", "p99"), ("after", "goodput_rps"), (None, "recovery_s"))


@dataclass(frozen=True)
class PairedDifference:
    """``variant - baseline`` of one metric, paired by replication (same seeds: common random numbers)."""

    metric: str
    baseline: str
    variant: str
    baseline_mean: float
    variant_mean: float
    mean: float
    low: float
    high: float
    n: int
    note: str = ""


@dataclass
class Comparison:
    """Several variants of one experiment under the same faults and seeds.

    Attributes
    ----------
    results
        One :class:`ChaosResult` per variant, in the order given; the first is the baseline.
    differences
        :class:`PairedDifference` of every other variant against the baseline,
        for the end-to-end success rate, p99 and goodput during and after
        the faults, and the recovery time.
    """

    results: list[ChaosResult]
    differences: list[PairedDifference] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 only if every variant held."""
        return max(r.exit_code for r in self.results)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([d.__dict__ for d in self.differences])

    def to_dict(self) -> dict[str, Any]:
        return _clean({"variants": [r.to_dict() for r in self.results],
                       "differences": [d.__dict__ for d in self.differences], "exit_code": self.exit_code})


def _e2e_metric(outcome: ReplicationOutcome, phase: str | None, metric: str) -> float | None:
    if phase is None:
        return outcome.recovery_s if outcome.recovered else None
    p = outcome.phases
    sel = p[(p["target"] == _E2E) & (p["phase"] == phase)]
    if not len(sel):
        sel = p[p["phase"] == phase]
    return float(sel[metric].iloc[0]) if len(sel) and metric in sel else None


def paired_differences(base: ChaosResult, other: ChaosResult, confidence: float = 0.95) -> list[PairedDifference]:
    """Paired (by replication) differences ``other - base`` with t intervals; see :data:`COMPARED`."""
    out = []
    for phase, metric in COMPARED:
        name = metric if phase is None else f"{phase}.{metric}"
        bv = [_e2e_metric(o, phase, metric) for o in base.outcomes]
        ov = [_e2e_metric(o, phase, metric) for o in other.outcomes]
        pairs = [(b, o) for b, o in zip(bv, ov, strict=True)
                 if b is not None and o is not None and np.isfinite(b) and np.isfinite(o)]
        note = ""
        if len(pairs) < len(bv):
            note = (f"{len(bv) - len(pairs)} of {len(bv)} replications left out (not recovered or no data)"
                    if phase is None else f"{len(bv) - len(pairs)} of {len(bv)} replications without data")
        diffs = [round(o - b, 9) for b, o in pairs]  # equal values under common random numbers: exactly 0
        m, lo, hi, n = _t_interval(diffs, confidence)
        bm = _t_interval([b for b, _ in pairs], confidence)[0]
        om = _t_interval([o for _, o in pairs], confidence)[0]
        if phase is None:  # each side's own recovered replications, and how many recovered
            bm = _t_interval([b for b in bv if b is not None], confidence)[0]
            om = _t_interval([o for o in ov if o is not None], confidence)[0]
            nb, no = sum(b is not None for b in bv), sum(o is not None for o in ov)
            note = f"recovered: {base.label or 'baseline'} {nb}/{len(bv)}, {other.label or 'variant'} {no}/{len(ov)}"
        out.append(PairedDifference(name, base.label, other.label, bm, om, m, lo, hi, n, note))
    return out


def compare_variants(experiment: Experiment, variants: Sequence[Variant], *, replications: int | None = None,
                     seed: int | None = None, progress: Callable[[float], None] | None = None) -> Comparison:
    """Run every variant with the same seeds per replication and compare each with the first.

    Parameters
    ----------
    experiment
        The experiment (hypothesis, method, seeds).
    variants
        At least two, from :func:`load_variant`; the first is the baseline.
    """
    if len(variants) < 2:
        raise ConfigError("a comparison needs at least two variants (the first is the baseline)")
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise ConfigError(f"two variants are called {dup!r}; give each file a distinct name (name: in an "
                          "overrides file, or the file name)")
    results = []
    k = len(variants)
    for i, v in enumerate(variants):
        sub = None
        if progress is not None:
            def sub(f: float, i: int = i) -> None:
                progress((i + f) / k)
        results.append(run_experiment(v.experiment, replications=replications if replications is not None
                                      else experiment.replications, seed=seed if seed is not None
                                      else experiment.seed, label=v.label, progress=sub))
    diffs = []
    for other in results[1:]:
        diffs += paired_differences(results[0], other, experiment.spec.confidence)
    return Comparison(results, diffs)


# ---------------------------------------------------------------------------------------------- output
def _pct(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    x = min(max(x, 0.0), 1.0)  # an interval bound past 0 or 100 %
    text = f"{100 * x:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"


def _ms(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if not np.isfinite(x):
        return "∞"
    return f"{1000 * x:.3g} ms" if x < 1 else f"{x:.3g} s"


def _ci(mean: float, lo: float, hi: float, fmt: Callable[[float], str]) -> str:
    if not np.isfinite(lo) or not np.isfinite(hi) or lo == hi:
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def _rate(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.4g}/s"


def _secs(x: float | None) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3g} s"


def _recovery_text(result: ChaosResult) -> str:
    r = result.recovery()
    n = r["n"]
    if r["not_applicable"] == n:
        return "n/a (the faults last until the end of the run)"
    parts = []
    if r["recovered"]:
        parts.append(f"recovered in {r['recovered']}/{n}: {_ci(r['mean_s'], r['low_s'], r['high_s'], _secs)} "
                     "after the faults ended")
    if r["not_recovered"]:
        parts.append(f"not recovered in {r['not_recovered']}/{n}")
    return "; ".join(parts)


def _phase_rows(result: ChaosResult) -> list[list[str]]:
    rows = []
    for r in result.phase_table().itertuples(index=False):
        held = "–" if r.judged == 0 else (f"{r.held}/{r.n}" if r.n > 1 else ("yes" if r.held else "NO"))
        rows.append([r.slo, r.phase, f"{r.start_s:g}–{r.end_s:g} s", held,
                     _ci(r.success_rate, r.success_rate_low, r.success_rate_high, _pct),
                     _ci(r.p99, r.p99_low, r.p99_high, _ms),
                     _ci(r.goodput_rps, r.goodput_rps_low, r.goodput_rps_high, _rate),
                     _ci(r.throughput_rps, r.throughput_rps_low, r.throughput_rps_high, _rate)])
    return rows


_PHASE_HEAD = ["SLO", "phase", "time", "held", "success rate", "p99", "goodput", "throughput"]
_BLAST_HEAD = ["SLO", "objective", "fault on it", "violated", "first violation", "until", "worst success",
               "worst p99", "load ×", "recovery"]


def _blast_rows(result: ChaosResult) -> list[list[str]]:
    rows = []
    for r in result.blast_radius().itertuples(index=False):
        n = r.n
        violated = (f"{r.violated}/{n}" if n > 1 else ("YES" if r.violated else "no"))
        if r.not_recovered:
            rec = f"not recovered ({r.not_recovered}/{n})" if n > 1 else "not recovered"
        elif r.recovered:
            rec = _ci(r.recovery_s, r.recovery_s_low, r.recovery_s_high, _secs)
        else:
            rec = "–"
        rows.append([r.slo, r.objective, "yes" if r.hit_directly else "", violated, _secs(r.first_violation_s),
                     _secs(r.last_violation_end_s), _pct(r.worst_success_rate), _ms(r.worst_p99_s),
                     "–" if not np.isfinite(r.amplification) else f"{r.amplification:.2f}", rec])
    return rows


def _fault_rows(result: ChaosResult) -> list[list[str]]:
    f = result.outcomes[0].faults
    return [[str(r.name), str(r.kind), str(r.target), str(r.detail), f"{r.start_s:g} s",
             "end" if not np.isfinite(r.end_s) else f"{r.end_s:g} s"] for r in f.itertuples(index=False)]


_VERDICT_STYLE = {Verdict.HELD: "bold green", Verdict.VIOLATED: "bold red", Verdict.NOT_RECOVERED: "bold red"}


def _headline(result: ChaosResult) -> str:
    counts = result.verdict_counts()
    n = len(result.outcomes)
    tail = ""
    if n > 1:
        tail = " (" + ", ".join(f"{k} {v}/{n}" for k, v in counts.items() if v) + ")"
    return f"{result.verdict.value.upper()}{tail}"


def render_result(result: ChaosResult, console: Any) -> None:
    """Print the verdict, the phases table, the blast radius and the faults as rich tables."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    spec = result.experiment.spec
    hyp = spec.hypothesis
    title = f"chaos experiment {spec.name}" + (f" [{result.label}]" if result.label else "")
    console.print(Text(title, style="bold"))
    win = (f"{format_duration(hyp.window.size)} windows every {format_duration(hyp.window.stride)}"
           if hyp.window.step is not None and hyp.window.step != hyp.window.size
           else f"fixed {format_duration(hyp.window.size)} windows")
    console.print(f"scenario {result.experiment.scenario.name}, {len(result.outcomes)} replication(s) from seed "
                  f"{result.experiment.seed}; {win}; during the faults: {hyp.during}")
    console.print(Text.assemble("verdict: ", (_headline(result), _VERDICT_STYLE[result.verdict])))
    for o in result.outcomes[:1] if len(result.outcomes) == 1 else []:
        for reason in o.reasons:
            console.print(f"  {reason}")
    console.print(f"recovery: {_recovery_text(result)}")

    def table(head: list[str], rows: list[list[str]], caption: str | None = None) -> Table:
        t = Table(box=box.SIMPLE_HEAD, caption=caption, caption_justify="left", pad_edge=False)
        for i, h in enumerate(head):
            t.add_column(h, justify="left" if i < 2 else "right", no_wrap=i == 0)
        for r in rows:
            t.add_row(*r)
        return t

    ci = f"mean [{int(100 * result.confidence)} % t interval] over replications" if len(result.outcomes) > 1 else None
    console.print(table(_PHASE_HEAD, _phase_rows(result), ci))
    console.print(Text("blast radius", style="bold"))
    console.print(table(_BLAST_HEAD, _blast_rows(result)))
    console.print(Text("faults", style="bold"))
    console.print(table(["name", "kind", "target", "settings", "start", "end"], _fault_rows(result)))


def _diff_fmt(metric: str) -> Callable[[float], str]:
    if metric.endswith("success_rate"):
        return lambda x: "–" if not np.isfinite(x) else f"{100 * x:+.3g} pp"
    if metric.endswith("p99"):
        return lambda x: "–" if not np.isfinite(x) else f"{1000 * x:+.4g} ms"
    if metric.endswith("goodput_rps"):
        return lambda x: "–" if not np.isfinite(x) else f"{x:+.4g}/s"
    return lambda x: "–" if not np.isfinite(x) else f"{x:+.3g} s"


def _value_fmt(metric: str) -> Callable[[float], str]:
    if metric.endswith("success_rate"):
        return _pct
    if metric.endswith("p99"):
        return _ms
    if metric.endswith("goodput_rps"):
        return _rate
    return _secs


def _diff_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for d in comparison.differences:
        f, v = _diff_fmt(d.metric), _value_fmt(d.metric)
        interval = "–" if not np.isfinite(d.low) else f"[{f(d.low)}, {f(d.high)}]"
        rows.append([d.metric, f"{d.variant} − {d.baseline}", v(d.baseline_mean), v(d.variant_mean), f(d.mean),
                     interval, str(d.n), d.note])
    return rows


_DIFF_HEAD = ["metric (end to end)", "difference", "baseline", "variant", "mean diff", "interval", "n", "note"]


def render_comparison(comparison: Comparison, console: Any) -> None:
    """Print each variant's verdict and the paired differences against the baseline."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    first = comparison.results[0]
    console.print(Text(f"chaos experiment {first.experiment.spec.name}: {len(comparison.results)} variants, "
                       f"{len(first.outcomes)} replication(s) each, same seeds (common random numbers)",
                       style="bold"))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for h in ["variant", "verdict", "recovery", "during: success", "during: p99", "during: goodput"]:
        t.add_column(h, justify="left" if h in ("variant", "verdict", "recovery") else "right")
    for res in comparison.results:
        pt = res.phase_table()
        e2e = pt[(pt["phase"] == "during")]
        e2e = e2e[e2e["target"] == _E2E] if (e2e["target"] == _E2E).any() else e2e
        r = e2e.iloc[0] if len(e2e) else None
        cells = (["–"] * 3 if r is None else
                 [_ci(r.success_rate, r.success_rate_low, r.success_rate_high, _pct),
                  _ci(r.p99, r.p99_low, r.p99_high, _ms),
                  _ci(r.goodput_rps, r.goodput_rps_low, r.goodput_rps_high, _rate)])
        t.add_row(res.label, Text(_headline(res), style=_VERDICT_STYLE[res.verdict]), _recovery_text(res), *cells)
    console.print(t)
    d = Table(box=box.SIMPLE_HEAD, pad_edge=False,
              caption=f"paired by replication; {int(100 * first.confidence)} % t intervals",
              caption_justify="left")
    for i, h in enumerate(_DIFF_HEAD):
        d.add_column(h, justify="left" if i in (0, 1, 7) else "right")
    for row in _diff_rows(comparison):
        d.add_row(*row)
    console.print(d)


# ---------------------------------------------------------------------------------------------- report
def _series_over_time(result: ChaosResult, slo: str, metric: str, scale: float = 1.0) -> Any:
    from meshsim.report import Series

    w = result.windows
    w = w[w["slo"] == slo]
    x_of = (w["start_s"] + w["end_s"]) / 2
    w = w.assign(x=x_of)
    vals = w[metric].replace([np.inf], np.nan) * scale if metric != "success_rate" else w[metric] * scale
    g = w.assign(v=vals).groupby("x", sort=True)["v"]
    mean = g.mean()
    if len(result.outcomes) > 1:
        return Series(mean.index.tolist(), mean.tolist(), low=g.min().tolist(), high=g.max().tolist())
    return Series(mean.index.tolist(), mean.tolist())


def _plots(results: Sequence[ChaosResult], outdir: Path) -> list[Path]:
    from meshsim.report import save_figure, time_figure

    first = results[0]
    spec = first.experiment.spec
    faults = first.outcomes[0].faults
    e2e_slo = next((s for s in spec.hypothesis.slos if s.target.each is None and s.target.service is None), None)
    slo_name = (e2e_slo.name or _E2E) if e2e_slo is not None else first.outcomes[0].targets["slo"].iloc[0]
    slo_obj = e2e_slo or spec.hypothesis.slos[0]
    xlim = (float(first.experiment.scenario.warmup), float(first.experiment.scenario.duration))
    many = len(results) > 1

    def label(res: ChaosResult) -> str:
        return res.label if many else slo_name

    paths = []
    suffix = " (mean; band: range)" if len(first.outcomes) > 1 else ""
    fig = time_figure({label(r): _series_over_time(r, slo_name, "success_rate", 100.0) for r in results},
                      faults=faults, ylabel="success rate (%)",
                      threshold=None if slo_obj.success_rate is None else 100 * slo_obj.success_rate,
                      threshold_label="SLO", xlim=xlim,
                      title=f"{spec.name}: {slo_name} success rate per window{suffix}")
    paths.append(save_figure(fig, outdir / "success_rate.png"))
    q = "p99" if "p99" in slo_obj.latency_bounds or not slo_obj.latency_bounds else next(iter(slo_obj.latency_bounds))
    fig = time_figure({label(r): _series_over_time(r, slo_name, q, 1000.0) for r in results},
                      faults=faults, ylabel=f"{q} latency (ms)", logy=True,
                      threshold=None if q not in slo_obj.latency_bounds else 1000 * slo_obj.latency_bounds[q],
                      threshold_label="SLO", xlim=xlim,
                      title=f"{spec.name}: {slo_name} {q} per window{suffix}")
    paths.append(save_figure(fig, outdir / "latency.png"))
    series = {}
    for r in results:
        prefix = f"{r.label}: " if many else ""
        series[f"{prefix}throughput"] = _series_over_time(r, slo_name, "throughput_rps")
        series[f"{prefix}goodput"] = _series_over_time(r, slo_name, "goodput_rps")
    fig = time_figure(series, faults=faults, ylabel="per second", xlim=xlim,
                      title=f"{spec.name}: {slo_name} throughput (work completed) and goodput (successes)")
    paths.append(save_figure(fig, outdir / "goodput.png"))
    return paths


def _window_table(result: ChaosResult) -> str:
    from meshsim.report import markdown_table

    o = result.outcomes[0]
    w = o.windows
    quant = [q for q in LATENCY_QUANTILES if q in w.columns]
    rows = []
    for r in w.itertuples(index=False):
        meets = "–" if r.meets is None else ("yes" if r.meets else f"**NO** ({r.failed})")
        rows.append([r.slo, f"{r.start_s:g}–{r.end_s:g}", r.phase, str(int(r.requests)), _pct(r.success_rate),
                     *[_ms(getattr(r, q)) for q in quant], _rate(r.goodput_rps), _rate(r.throughput_rps), meets])
    return markdown_table(["SLO", "window (s)", "phase", "requests", "success", *quant, "goodput", "throughput",
                           "meets"], rows)


def _markdown(results: Sequence[ChaosResult], comparison: Comparison | None, plots: list[Path]) -> str:
    from meshsim.report import markdown_table

    first = results[0]
    spec = first.experiment.spec
    hyp = spec.hypothesis
    t0, t1 = first.fault_span
    lines = [f"# Chaos experiment: {spec.name}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        f"Scenario `{first.experiment.scenario.name}`, {len(first.outcomes)} replication(s) from seed "
        f"{first.experiment.seed}; faults from {t0:g} s to "
        f"{'the end' if t1 >= first.experiment.scenario.duration else f'{t1:g} s'}.",
        "",
        "**Steady-state hypothesis** (judged per window of "
        f"{format_duration(hyp.window.size)}, every {format_duration(hyp.window.stride)}; windows with fewer than "
        f"{hyp.min_requests} requests are not judged; during the faults: {hyp.during}"
        + (f"; recovery within {format_duration(hyp.recover_within)}" if hyp.recover_within else "") + "):",
        "",
    ]
    lines += [f"* {s.name or s.target.label} ({s.target.label}): {s.describe()}" for s in hyp.slos]
    lines.append("")
    for res in results:
        head = f"## {res.label}" if len(results) > 1 else "## Verdict"
        lines += [head, "", f"**{_headline(res)}**. Recovery: {_recovery_text(res)}.", ""]
        for o in res.outcomes:
            lines.append(f"* replication {o.replication} (seed {o.seed}): {o.verdict.value}: "
                         + "; ".join(o.reasons))
        lines += ["", "### Before, during and after the faults", ""]
        lines += [markdown_table(_PHASE_HEAD, _phase_rows(res)), ""]
        if len(res.outcomes) > 1:
            lines += [f"Means over replications with {int(100 * res.confidence)} % t intervals.", ""]
        lines += ["### Blast radius", "", markdown_table(_BLAST_HEAD, _blast_rows(res)), "",
                  "`load ×`: requests per second at the target during the faults over before them "
                  "(retry amplification).", ""]
    if comparison is not None:
        lines += ["## Paired differences (same seeds per replication)", "",
                  markdown_table(_DIFF_HEAD, _diff_rows(comparison)), ""]
    lines += ["## Faults", "", markdown_table(["name", "kind", "target", "settings", "start", "end"],
                                              _fault_rows(first)), ""]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
        lines.append("")
    for res in results:
        title = "## Windows" + (f": {res.label}" if len(results) > 1 else "") + " (replication 0)"
        lines += [title, "", _window_table(res), ""]
    return "\n".join(lines)


def write_report(result: ChaosResult | Comparison, outdir: str | os.PathLike[str], *, plots: bool = True
                 ) -> list[Path]:
    """Write ``report.md``, ``result.json``, ``windows.csv`` and the PNG plots into ``outdir``.

    Plots: ``success_rate.png``, ``latency.png`` and ``goodput.png`` (the
    first end-to-end SLO's windows over time, fault windows shaded, the SLO as
    a dashed line; one line per variant in a comparison).
    """
    import json

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    comparison = result if isinstance(result, Comparison) else None
    results = comparison.results if comparison is not None else [result]  # type: ignore[list-item]
    paths = _plots(results, out) if plots else []
    frames = [r.windows.assign(variant=r.label) if r.label else r.windows for r in results]
    win = pd.concat(frames, ignore_index=True)
    win.to_csv(out / "windows.csv", index=False)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(_markdown(results, comparison, paths), encoding="utf-8")
    return [out / "report.md", out / "result.json", out / "windows.csv", *paths]
