"""The judge configuration: which metrics to compare, how much change is allowed, how sure to be.

A configuration is a YAML file (or a mapping) validated like meshsim's
scenarios: an unknown key is refused with a "did you mean", and every problem
is one :class:`meshsim.ConfigError` line naming the field path, the value and
what is allowed. The format is documented in ``docs/canary.md``.

Examples
--------
The smallest configuration names the metrics; everything else has a default:

>>> cfg = parse_judge_config({"metrics": ["latency", "errors"]})
>>> [(m.name, m.kind, m.direction) for m in cfg.metrics]
[('latency', 'latency', 'increase'), ('errors', 'error_rate', 'increase')]
>>> cfg.metrics[0].quantiles, cfg.metrics[0].margin, cfg.metrics[1].margin
(('p50', 'p90', 'p99'), Margin(value=0.1, relative=True), Margin(value=0.001, relative=False))
>>> parse_judge_config({"metrics": [{"name": "latency", "margn": "5%"}]})
Traceback (most recent call last):
...
meshsim._exceptions.ConfigError: <judge config>: metrics[0]: unknown key 'margn'; did you mean 'margin'? (allowed: name, kind, series, quantiles, direction, margin, rollback_above, critical, weight, kayenta, flagger)
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meshsim._exceptions import ConfigError
from meshsim._yaml import read_text, yaml_error
from meshsim.units import parse_duration

__all__ = [
    "JudgeConfig",
    "MetricConfig",
    "DecisionConfig",
    "KayentaConfig",
    "KayentaMetricConfig",
    "FlaggerConfig",
    "FlaggerMetricConfig",
    "Margin",
    "MetricKind",
    "Direction",
    "load_judge_config",
    "parse_judge_config",
    "quantile_level",
    "DEFAULT_MARGINS",
]

MetricKind = Literal["latency", "error_rate", "throughput", "gauge"]
Direction = Literal["increase", "decrease", "either"]

_KINDS = ("latency", "error_rate", "throughput", "gauge")
#: metric names that imply a kind when ``kind`` is not given
_KIND_OF_NAME = {
    "latency": "latency",
    "duration": "latency",
    "request-duration": "latency",
    "request_duration": "latency",
    "errors": "error_rate",
    "error_rate": "error_rate",
    "error-rate": "error_rate",
    "5xx": "error_rate",
    "request-success-rate": "error_rate",
    "success_rate": "error_rate",
    "requests": "throughput",
    "throughput": "throughput",
    "rps": "throughput",
}
_LATENCY_SERIES = re.compile(r"^latency_(p\d+(?:\.\d+)?)_s$")
_QUANTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def quantile_level(name: str) -> float:
    """``"p99" -> 0.99``, ``"p50" -> 0.5``, ``"p999" -> 0.999``, ``"p99.9" -> 0.999``.

    Raises
    ------
    ValueError
        For anything but ``p`` followed by digits.
    """
    m = _QUANTILE.match(str(name))
    if not m:
        raise ValueError(f"{name!r} is not a quantile such as p50, p90, p99, p99.9")
    digits = m.group(1)
    if "." in digits:
        level = float(digits) / 100.0
    else:
        level = float("0." + digits) if len(digits) > 2 else float(digits) / 100.0
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name!r} is not a quantile strictly between p0 and p100")
    return level


class Margin(BaseModel):
    """A practical margin: how much worse the canary may be and still ship.

    ``relative`` margins are fractions of the baseline (``0.05`` = 5 %: the
    canary/baseline ratio may reach 1.05); absolute margins are differences in
    the metric's own unit (seconds for latency, a rate for error rates: ``0.001``
    = 0.1 percentage points).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    relative: bool

    def __repr__(self) -> str:
        return f"Margin(value={self.value!r}, relative={self.relative!r})"

    def __str__(self) -> str:
        if self.relative:
            return f"{self.value * 100:.4g}%"
        return f"{self.value!r}"


#: margin per metric kind when the configuration gives none
DEFAULT_MARGINS: dict[str, Margin] = {
    "latency": Margin(value=0.10, relative=True),
    "error_rate": Margin(value=0.001, relative=False),
    "throughput": Margin(value=0.10, relative=True),
    "gauge": Margin(value=0.10, relative=True),
}

_MARGIN_HELP = {
    "latency": "a percentage such as 5% (relative to the baseline) or a duration such as 20ms",
    "error_rate": "percentage points such as 0.1pp, a rate difference such as 0.001, or a relative change such as 50%",
    "throughput": "a percentage such as 10%",
    "gauge": "a percentage such as 10% (relative) or a number in the gauge's unit (absolute)",
}


def _parse_margin(value: Any, kind: str) -> Margin:
    """Read a margin as the user wrote it, for a metric of ``kind``."""
    if isinstance(value, Margin):
        return value
    if isinstance(value, Mapping):
        return Margin.model_validate(value)
    help_ = _MARGIN_HELP[kind]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a margin; expected {help_}")
    if isinstance(value, (int, float)):
        v = float(value)
        relative = kind in ("latency", "throughput")
        out = Margin(value=v, relative=relative)
    else:
        text = value.strip()
        try:
            if text.endswith("pp"):
                if kind != "error_rate":
                    raise ValueError(f"{value!r}: percentage points apply to error rates; expected {help_}")
                out = Margin(value=float(text[:-2]) / 100.0, relative=False)
            elif text.endswith("%"):
                out = Margin(value=float(text[:-1]) / 100.0, relative=True)
            elif kind == "latency":
                out = Margin(value=parse_duration(text), relative=False)
            else:
                out = Margin(value=float(text), relative=kind in ("throughput",))
        except ValueError as exc:
            if "percentage points" in str(exc):
                raise
            raise ValueError(f"{value!r} is not a margin; expected {help_}") from None
    if not math.isfinite(out.value) or out.value < 0:
        raise ValueError(f"{value!r} is not a margin >= 0; expected {help_}")
    if kind == "throughput" and not out.relative:
        raise ValueError(f"{value!r}: a throughput margin is relative; expected {help_}")
    return out


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class KayentaMetricConfig(_Model):
    """Per-metric settings of the Kayenta-compatible judge (``analysisConfigurations.canary``).

    The names are Kayenta's, in snake_case; the defaults are Kayenta's, except
    ``nan_strategy`` which defaults to ``replace`` for error rates and
    throughput (counts: a minute without errors is 0, as Kayenta's docs advise)
    and ``remove`` otherwise.
    """

    nan_strategy: Literal["remove", "replace"] | None = None
    outlier_strategy: Literal["keep", "remove"] = "keep"
    outlier_factor: float = Field(3.0, gt=0)
    effect_size_measure: Literal["meanRatio", "cles"] = "meanRatio"
    allowed_increase: float | None = None  # default 1.0 (meanRatio) / 0.5 (cles)
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None
    must_have_data: bool = False
    muted: bool = False
    group: str = "default"

    def effect_default(self) -> float:
        """The neutral effect size of the measure: 1.0 for ``meanRatio``, 0.5 for ``cles``."""
        return 1.0 if self.effect_size_measure == "meanRatio" else 0.5

    @property
    def allowed_increase_value(self) -> float:
        return self.effect_default() if self.allowed_increase is None else self.allowed_increase

    @property
    def allowed_decrease_value(self) -> float:
        return self.effect_default() if self.allowed_decrease is None else self.allowed_decrease

    @property
    def critical_increase_value(self) -> float:
        return self.effect_default() if self.critical_increase is None else self.critical_increase

    @property
    def critical_decrease_value(self) -> float:
        return self.effect_default() if self.critical_decrease is None else self.critical_decrease


class FlaggerMetricConfig(_Model):
    """Per-metric ``thresholdRange`` of the Flagger-style judge (canary value only, per check).

    ``min``/``max`` are in the metric's unit as Flagger's built-in queries give
    it: milliseconds for latency quantiles, percent for ``request-success-rate``
    (error-rate metrics are checked as success rate = 100 - error %), the raw
    value for gauges. ``None`` = no bound.
    """

    min: float | None = None
    max: float | None = None


class MetricConfig(_Model):
    """One metric to compare.

    Parameters
    ----------
    name
        The metric's name in reports. For ``gauge`` metrics it is also the
        series name in the per-minute table unless ``series`` says otherwise.
    kind
        ``latency`` (a distribution, judged at ``quantiles``), ``error_rate``
        (errors / requests from counts), ``throughput`` (requests per minute) or
        ``gauge`` (any per-minute value). Inferred from the name when omitted:
        ``latency``/``duration`` -> latency, ``errors``/``error_rate`` ->
        error_rate, ``requests``/``throughput`` -> throughput, ``latency_p99_s``
        -> latency at p99, anything else -> gauge.
    series
        For ``gauge``: the per-minute series name (default ``name``).
    quantiles
        For ``latency``: the quantiles to judge, default ``[p50, p90, p99]``.
    direction
        Which change is harmful: ``increase`` (default; ``decrease`` for throughput) or ``either``.
    margin
        The practical margin: the change that is still acceptable. PROMOTE
        needs the confidence bound of the change inside it.
    rollback_above
        ROLLBACK when the canary is worse than this with the configured
        confidence: ``0`` (default: any confirmed harmful change) or ``margin``
        (only a change confirmed beyond the margin), or a value like ``margin``.
    critical
        A critical metric must have data in both arms: a canary without data
        for it is rolled back. (Every metric can roll back and must pass.)
    weight
        Share of the family-wise false-alarm rate this metric gets (weighted
        Bonferroni), and its weight in the Kayenta-compatible score.
    """

    name: str
    kind: MetricKind = "gauge"
    series: str | None = None
    quantiles: tuple[str, ...] = ()
    direction: Direction = "increase"
    margin: Margin = DEFAULT_MARGINS["gauge"]
    rollback_above: Margin | None = None  # None = 0 (any confirmed harm)
    critical: bool = False
    weight: float = Field(1.0, gt=0)
    kayenta: KayentaMetricConfig = KayentaMetricConfig()
    flagger: FlaggerMetricConfig = FlaggerMetricConfig()

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            if "name" in data:
                raise ValueError(f"name: {name!r} is not a metric name (a non-empty string)")
            return data
        kind = data.get("kind")
        m = _LATENCY_SERIES.match(name)
        if kind is None:
            if m:
                kind = "latency"
            else:
                kind = _KIND_OF_NAME.get(name.lower(), "gauge")
            data["kind"] = kind
        if kind not in _KINDS:
            return data  # the Literal reports it
        if kind == "latency" and "quantiles" not in data:
            data["quantiles"] = [m.group(1)] if m else ["p50", "p90", "p99"]
        if "direction" not in data:
            data["direction"] = "decrease" if kind == "throughput" else "increase"
        try:
            data["margin"] = _parse_margin(data.get("margin", DEFAULT_MARGINS[kind]), kind)
        except ValueError as exc:
            raise ValueError(f"margin: {exc}") from None
        rb = data.get("rollback_above")
        if rb is not None:
            if isinstance(rb, str) and rb.strip() == "margin":
                data["rollback_above"] = data["margin"]
            else:
                try:
                    data["rollback_above"] = _parse_margin(rb, kind)
                except ValueError as exc:
                    raise ValueError(f"rollback_above: {exc} or 'margin'") from None
        return data

    @field_validator("quantiles", mode="before")
    @classmethod
    def _quantiles(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{value!r} is not a list of quantiles such as [p50, p99]")
        out = []
        for q in value:
            if isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q < 1:
                q = f"p{q * 100:g}"
            quantile_level(str(q))
            if str(q) in out:
                raise ValueError(f"quantile {q!r} is listed twice")
            out.append(str(q))
        return tuple(out)

    @model_validator(mode="after")
    def _check(self) -> MetricConfig:
        if self.kind == "latency" and not self.quantiles:
            raise ValueError("quantiles: a latency metric needs at least one quantile such as p99")
        if self.kind != "latency" and self.quantiles:
            raise ValueError(f"quantiles: only latency metrics have quantiles (kind is {self.kind!r})")
        if self.rollback_above is not None:
            if self.rollback_above.relative != self.margin.relative:
                raise ValueError("rollback_above: must be in the same terms as margin (both % or both absolute)")
            if self.rollback_above.value > self.margin.value:
                raise ValueError(
                    f"rollback_above: {self.rollback_above} is above the margin {self.margin}; "
                    "allowed: 0 up to the margin"
                )
        return self

    @property
    def rollback_threshold(self) -> Margin:
        """The change beyond which a confirmed regression rolls back (0 unless ``rollback_above``)."""
        return self.rollback_above or Margin(value=0.0, relative=self.margin.relative)

    @property
    def series_names(self) -> tuple[str, ...]:
        """The per-minute series this metric reads (``ArmData.minutes['metric']`` values).

        latency -> ``latency_p50_s``, ...; error_rate -> ``errors`` and ``requests``;
        throughput -> ``requests``; gauge -> ``series`` or ``name``.
        """
        if self.kind == "latency":
            return tuple(f"latency_{q}_s" for q in self.quantiles)
        if self.kind == "error_rate":
            return ("errors", "requests")
        if self.kind == "throughput":
            return ("requests",)
        return (self.series or self.name,)


class DecisionConfig(_Model):
    """How sure meshsim's judge must be, and when it looks.

    Parameters
    ----------
    family_wise_error_rate
        Probability of a false ROLLBACK of an unchanged canary, over all metrics
        and all looks together (default 1 %).
    confidence
        Level of the reported intervals; PROMOTE needs every metric's bound
        inside its margin at this level, so a regression at least as large as
        the margin is promoted with probability at most ``1 - confidence``.
    look_every_s
        Time between looks of ``watch`` (default 60 s). Looking more often costs nothing.
    min_duration_s
        No decision before this much data (default 5 min).
    horizon_s
        The planned analysis length (default 3 h); tunes the sequential boundaries
        to be tightest around a third of it. A canary undecided at the horizon is INCONCLUSIVE.
    min_requests
        No decision before each arm has seen this many requests (default 0).
    instances
        ``separate`` (default): baseline and canary run on instances (pods) of their own,
        whose performance can drift apart slowly; before rolling back a latency or
        relative-gauge change, the judge checks that drift of the size commonly seen
        (per-arm sd up to 6 %, memory 0.8-0.95 per minute) does not explain it, until
        the data rule such drift out. ``shared``: both arms' requests are spread over one
        fleet (randomized assignment, e.g. header- or user-based routing to the same
        pods), so there is no drift between arms and regressions are caught sooner.
    instance_noise
        Prior on how much one arm's instances drift from the other's on their own
        (per-arm sd of the log of a latency quantile or gauge, e.g. ``5%``), for
        baseline and canary on separate instances. Default 0: learned from the data
        (and the check of ``instances: separate``).
    promote_at
        When PROMOTE may be decided: a list of checkpoints (durations from the start,
        e.g. ``[30m, 1h, 2h, 3h]``) or ``every-look``. ROLLBACK is judged at every look
        either way. Default: at 1/6, 1/3, 2/3 and all of the horizon (30 min, 1 h, 2 h,
        3 h for the default 3 h). A few planned checkpoints make the PROMOTE bound
        narrower than one that holds at every look (critical value 2.10 against about
        2.8 at 95 %), so clean canaries are promoted sooner, with the same guarantee.
    """

    family_wise_error_rate: float = Field(0.01, gt=0, lt=0.5)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    look_every_s: float = Field(60.0, gt=0, alias="look_every")
    min_duration_s: float = Field(300.0, ge=0, alias="min_duration")
    horizon_s: float = Field(10800.0, gt=0, alias="horizon")
    min_requests: int = Field(0, ge=0)
    instances: Literal["separate", "shared"] = "separate"
    instance_noise: float = Field(0.0, ge=0, le=1)
    promote_at: tuple[float, ...] | Literal["every-look"] | None = None

    @field_validator("promote_at", mode="before")
    @classmethod
    def _checkpoints(cls, value: Any) -> Any:
        if value is None or value == "every-look":
            return value
        if isinstance(value, str):
            raise ValueError(f"{value!r} is neither a list of durations such as [30m, 1h] nor 'every-look'")
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"expected a non-empty list of durations such as [30m, 1h, 2h] or 'every-look', got {value!r}")
        if len(value) > 50:
            raise ValueError(f"at most 50 checkpoints, got {len(value)}")
        out = [parse_duration(v) for v in value]
        if any(v <= 0 for v in out) or any(b <= a for a, b in zip(out, out[1:], strict=False)):
            raise ValueError(f"checkpoints must be positive and increasing, got {list(value)!r}")
        return tuple(out)

    def promote_checkpoints_min(self) -> tuple[int, ...] | None:
        """PROMOTE checkpoints in whole minutes of data (None: every look)."""
        if self.promote_at == "every-look":
            return None
        secs = self.promote_at if self.promote_at is not None else tuple(
            self.horizon_s * f for f in (1 / 6, 1 / 3, 2 / 3, 1.0))
        return tuple(sorted({max(1, math.ceil(s / 60.0 - 1e-9)) for s in secs}))

    @field_validator("family_wise_error_rate", "confidence", "instance_noise", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100.0
            except ValueError:
                raise ValueError(f"{value!r} is not a fraction such as 0.01 or 1%") from None
        return value

    @field_validator("look_every_s", "min_duration_s", "horizon_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> DecisionConfig:
        if self.instances == "shared" and self.instance_noise > 0:
            raise ValueError(f"instance_noise: {self.instance_noise:g} is drift between separate instances, "
                             "but instances is 'shared' (one fleet serves both arms); drop one of them")
        if self.min_duration_s > self.horizon_s:
            raise ValueError(f"min_duration: {self.min_duration_s:g} s is longer than the horizon ({self.horizon_s:g} s)")
        return self


class KayentaConfig(_Model):
    """Settings of the Kayenta-compatible judge (``mode: kayenta``) and of the benchmark's Kayenta runs.

    ``pass_threshold``/``marginal_threshold``: score thresholds (Spinnaker's
    best practice 95/75; Orca's default is 75/50). ``conf_level`` and
    ``tolerance`` are the Mann-Whitney classifier's (hard-coded in Kayenta at
    0.98 and 0.25). ``lifetime``/``interval``: judgements at ``interval``,
    ``2*interval``, ... up to ``lifetime`` on cumulative windows (or sliding
    windows of ``lookback``), starting after ``warmup``; the run fails as
    soon as a score is <= ``marginal_threshold``. ``group_weights``: weight per
    metric group (groups without one share the rest of 100). ``seed``: for the
    tie-breaking noise Kayenta adds to constant arms.
    """

    pass_threshold: float = Field(95.0, ge=0, le=100, alias="pass")
    marginal_threshold: float = Field(75.0, ge=0, le=100, alias="marginal")
    conf_level: float = Field(0.98, gt=0, lt=1)
    tolerance: float = Field(0.25, ge=0)
    lifetime_s: float = Field(10800.0, gt=0, alias="lifetime")
    interval_s: float = Field(3600.0, gt=0, alias="interval")
    warmup_s: float = Field(0.0, ge=0, alias="warmup")
    lookback_s: float = Field(0.0, ge=0, alias="lookback")
    group_weights: dict[str, float] = Field(default_factory=dict)
    seed: int = Field(0, ge=0)

    @field_validator("lifetime_s", "interval_s", "warmup_s", "lookback_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> KayentaConfig:
        if self.marginal_threshold > self.pass_threshold:
            raise ValueError(
                f"marginal: {self.marginal_threshold:g} is above pass ({self.pass_threshold:g}); "
                "allowed: marginal <= pass"
            )
        return self


class FlaggerConfig(_Model):
    """Settings of the Flagger-style fixed-threshold judge (benchmark competitor).

    ``interval``: time between checks (Flagger's default 1m); ``threshold``:
    failed checks (cumulative) before rollback (Flagger's default 1; the
    benchmark uses 5); ``step_weight``/``max_weight`` or ``step_weights``: the
    traffic ramp; a canary reaching ``max_weight`` is promoted.
    """

    interval_s: float = Field(60.0, gt=0, alias="interval")
    threshold: int = Field(5, ge=1)
    step_weight: float = Field(2.0, gt=0, le=100)
    max_weight: float = Field(50.0, gt=0, le=100)
    step_weights: tuple[float, ...] = ()

    @field_validator("interval_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class JudgeConfig(_Model):
    """A whole judge configuration. Build it with :func:`parse_judge_config` or :func:`load_judge_config`.

    Parameters
    ----------
    metrics
        The metrics (at least one), as a list of names or mappings, or a mapping name -> settings.
    mode
        ``meshsim`` (the sequential judge of :mod:`meshsim.canary._judge`) or ``kayenta``
        (the Kayenta-compatible Mann-Whitney judge and weighted score).
    decision, kayenta, flagger
        Settings of the judges; all have defaults.
    """

    metrics: tuple[MetricConfig, ...]
    mode: Literal["meshsim", "kayenta"] = "meshsim"
    decision: DecisionConfig = DecisionConfig()
    kayenta: KayentaConfig = KayentaConfig()
    flagger: FlaggerConfig = FlaggerConfig()
    description: str = ""

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = []
            for name, spec in value.items():
                if spec is None:
                    spec = {}
                if not isinstance(spec, Mapping):
                    raise ValueError(f"{name}: expected a mapping of settings, got {spec!r}")
                out.append({"name": name, **spec})
            return out
        if isinstance(value, str):
            return [value]
        return value

    @model_validator(mode="after")
    def _check(self) -> JudgeConfig:
        if not self.metrics:
            raise ValueError("metrics: at least one metric is needed, e.g. metrics: [latency, errors]")
        seen: set[str] = set()
        for m in self.metrics:
            if m.name in seen:
                raise ValueError(f"metrics: metric {m.name!r} is listed twice; names must be unique")
            seen.add(m.name)
        return self

    def metric(self, name: str) -> MetricConfig:
        """The metric called ``name``.

        Raises
        ------
        KeyError
            With the known names.
        """
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"no metric {name!r}{_suggest(name, [m.name for m in self.metrics])}")


# --------------------------------------------------------------------------------------------------
# errors


def _allowed(model: type[BaseModel]) -> list[str]:
    return [f.alias if isinstance(f.alias, str) else n for n, f in model.model_fields.items()]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc`` (for unknown-key hints)."""
    model: type[BaseModel] = JudgeConfig
    for item in loc:
        if isinstance(item, int):
            continue
        field = None
        for n, f in model.model_fields.items():
            if item in (n, f.alias):
                field = f
                break
        if field is None:
            return None
        ann = field.annotation
        nxt = None
        for cand in (MetricConfig, DecisionConfig, KayentaConfig, FlaggerConfig, KayentaMetricConfig,
                     FlaggerMetricConfig, Margin):
            if ann is cand or cand in getattr(ann, "__args__", ()):
                nxt = cand
        if nxt is None:
            return None
        model = nxt
    return model


def _path(loc: tuple[Any, ...], raw: Any) -> str:
    """Dotted path as the user wrote it (metrics given as a mapping show their names)."""
    out = ""
    node = raw
    for item in loc:
        if isinstance(node, Mapping) and isinstance(item, int) and item < len(node):
            key = list(node)[item]
            out += f".{key}" if out else str(key)
            node = node[key]
            continue
        if isinstance(item, int):
            out += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            out += f".{item}" if out else str(item)
            node = node.get(item) if isinstance(node, Mapping) else None
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + "...)"


def _one_line(err: Mapping[str, Any], raw: Any) -> tuple[str, str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        allowed = _allowed(model) if model is not None else []
        hint = _suggest(key, allowed) + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        return _path(loc[:-1], raw), f"unknown key {key!r}{hint}"
    if kind == "missing":
        return _path(loc[:-1], raw), f"missing required key {str(loc[-1])!r}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return _path(loc, raw), f"{_show(value)} is not one of {', '.join(choices)}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "?")
        return _path(loc, raw), f"{_show(value)} is out of range; must be {op} {bound}"
    if kind in ("bool_type", "bool_parsing"):
        return _path(loc, raw), f"expected true or false, got {_show(value)}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float", "finite_number"):
        return _path(loc, raw), f"expected a number, got {_show(value)}"
    if kind in ("string_type",):
        return _path(loc, raw), f"expected a string, got {_show(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return _path(loc, raw), f"expected a mapping, got {_show(value)}"
    if kind in ("list_type", "tuple_type"):
        return _path(loc, raw), f"expected a list, got {_show(value)}"
    # our own messages may start with a sub-path ("margin: ...")
    m = re.match(r"^([A-Za-z_][\w.\[\]]*): (.*)$", msg)
    path = _path(loc, raw)
    if m and not m.group(1).startswith("'"):
        sub = m.group(1)
        return (f"{path}.{sub}" if path else sub), m.group(2)
    return path, msg


def _config_error(exc: ValidationError, raw: Any, source: str) -> ConfigError:
    errors = sorted(exc.errors(), key=lambda e: e["type"] == "missing")  # an unknown key explains a missing one
    lines = [_one_line(e, raw) for e in errors]
    path, message = lines[0]
    more = len(lines) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    err = ConfigError((f"{path}: {message}" if path else message) + tail, path=path, source=source)
    err.problems = [f"{p}: {m}" if p else m for p, m in lines]  # type: ignore[attr-defined]
    return err


# --------------------------------------------------------------------------------------------------
# entry points


def parse_judge_config(data: Mapping[str, Any] | JudgeConfig, source: str = "<judge config>") -> JudgeConfig:
    """Validate a judge configuration given as a mapping (as loaded from YAML or JSON).

    Parameters
    ----------
    data
        ``{"metrics": [...], "decision": {...}, "mode": ..., "kayenta": {...}}``;
        see ``docs/canary.md``. A list of metrics alone is accepted too.
    source
        Where it came from, the prefix of error messages.

    Returns
    -------
    JudgeConfig

    Raises
    ------
    ConfigError
        The first problem, as ``"<source>: <field path>: <message>"``.
    """
    if isinstance(data, JudgeConfig):
        return data
    if isinstance(data, (list, tuple)):
        data = {"metrics": list(data)}
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"a judge configuration is a mapping with at least 'metrics'; the top level is {kind}",
                          source=source)
    try:
        return JudgeConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, data, source) from None


def load_judge_config(path: str | os.PathLike[str]) -> JudgeConfig:
    """Read and validate a YAML judge configuration file.

    Raises
    ------
    ConfigError
        Missing or unreadable file, YAML syntax error (with line and column),
        empty file, or any invalid field (with its path).
    """
    source = str(path)
    text = read_text(path, "a judge configuration file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    if data is None:
        raise ConfigError("the file is empty; a judge configuration needs at least 'metrics'", source=source)
    return parse_judge_config(data, source=source)
