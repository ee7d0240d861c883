"""The instance-drift check's frontier: false ROLLBACKs under slow drift against speed on regressions.

Usage::

    python analysis/drift_frontier.py --out reports/canary_frontier.md [--runs 200] [--aa-runs 600]
                                      [--minutes 180] [--jobs 2] [--seed 51000000]

``reports/canary.md`` misses one target of the canary reference notes (section 6.7): A/A
ROLLBACK <= 5 % in the stress cell where each arm's instances drift as an AR(1) with memory 0.95
per minute and sd 10 %. This study asks whether any ROLLBACK-side check could meet it without
giving up the speed targets, by replaying the same generated runs through variants of the check
and measuring the cells the trade-off is between:

* ``A/A R2 rho=.95 sd=10%`` and ``A/A R2 rho=.95 sd=5%`` -- false ROLLBACK (target <= 5 %);
* ``+20% latency R1`` -- median minutes to ROLLBACK (target <= 15);
* ``+10% latency R1`` -- ROLLBACK within 60 min (target >= 95 %);
* ``tail-only p99 +20% R1`` -- ROLLBACK within 60 min (target >= 80 %);
* ``+20% latency R2`` (separate instances, drift rho 0.7 sd 5 %) -- ROLLBACK within 60 min (no
  target in the notes; a check that blinds the judge to regressions on separate instances is no fix).

Cells and configuration are those of ``analysis/canary_benchmark.py`` (the default meshsim judge:
latency p50/p90/p99 with a 10 % margin and errors with 0.1pp, 1 % family-wise, a look every
minute), on seeds apart from the report's (run ``i`` of every cell uses ``seed + i``). Variants:

* the judge at its defaults: a ROLLBACK also needs the drift posterior to put less than 1/3 of the
  test's alpha below zero, under per-arm drift sd 0, 2, 4 or 6 % (``meshsim.canary._judge._DRIFT_GATE``,
  ``meshsim.canary.sequential.DRIFT_PRIOR_SD``);
* the same with that level at 0.1, 1 or 3 x alpha, or the prior widened to sd 10 %: the module
  constants are swapped for one replay (each worker is one single-threaded process) and restored;
* a Bayes-factor check: the default judge, and a ROLLBACK of a latency test also needs the p50 series
  (the best-measured quantile in every cell here) to favour "a change (normal, sd 0.2 on the log
  scale) with at most fast, moderate drift (sd <= 6 %, memory 0.5 or 0.7)" over "no change, slow
  strong drift (sd 10 %, memory 0.95)" by a log Bayes factor above 1, 2 or 3
  (``sequential.drift_posterior(...).log_evidence``, white noise integrated over the usual grid);
* the same Bayes factor with the white noise known (its variance measured on R1 A/A runs of the
  same traffic) and the change hypothesis without any drift: an oracle no judge has, a bound on what
  the data hold.

Each variant is read against every target; the report lists, per variant, the targets it misses.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import pickle
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import canary_benchmark as CB  # noqa: E402

from meshsim.canary import _judge as J  # noqa: E402
from meshsim.canary import sequential as S  # noqa: E402
from meshsim.canary._model import ArmData  # noqa: E402
from meshsim.canary._synthetic import SyntheticSpec, generate  # noqa: E402
from meshsim.canary.config import parse_judge_config  # noqa: E402

CELLS = ("A/A R2 rho=.95 sd=10%", "A/A R2 rho=.95 sd=5%", "+20% latency R1", "+10% latency R1",
         "tail-only p99 +20% R1", "+20% latency R2")
R1_AA = "A/A R1 300/min"  # for the oracle's white-noise variance

WIDE_5 = ((0.0, 0.02, 0.04, 0.06, 0.10), (0.4, 0.3, 0.15, 0.1, 0.05))
WIDE_15 = ((0.0, 0.02, 0.04, 0.06, 0.10), (0.3, 0.2, 0.2, 0.15, 0.15))
# the Bayes-factor check's two hypotheses on the p50 series: (per-arm sds, probabilities, memories), prior var of mu
CHANGE_FAST_DRIFT = (((0.0, 0.02, 0.04, 0.06), (0.4, 0.3, 0.2, 0.1), (0.5, 0.7)), 0.2**2)
CHANGE_NO_DRIFT = (((0.0,), (1.0,), (0.5,)), 0.2**2)
NO_CHANGE_SLOW_DRIFT = (((0.10,), (1.0,), (0.95,)), 0.0)


@dataclass(frozen=True)
class Variant:
    name: str
    gate: float | None = None  # the drift check's level as a share of the test's alpha
    prior: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # per-arm drift sds and probabilities
    bf: str = ""  # "grid" | "oracle": the Bayes-factor check
    log_bf: float = 0.0


VARIANTS = (
    Variant("judge defaults (level 1/3 alpha, drift sd <= 6 %)"),
    Variant("level 0.1 x alpha", gate=0.1),
    Variant("level 0.25 x alpha", gate=0.25),
    Variant("level 1 x alpha", gate=1.0),
    Variant("level 3 x alpha", gate=3.0),
    Variant("prior + sd 10 % (p .05)", prior=WIDE_5),
    Variant("prior + sd 10 % (p .15)", prior=WIDE_15),
    Variant("prior + sd 10 % (p .05), level 1 x alpha", gate=1.0, prior=WIDE_5),
    *(Variant(f"Bayes factor vs slow strong drift > e^{c:g}", bf="grid", log_bf=float(c)) for c in (1, 1.5, 2, 3)),
    *(Variant(f"oracle: white noise known, no drift > e^{c}", bf="oracle", log_bf=float(c)) for c in (1, 2)),
)


@contextlib.contextmanager
def _swapped(v: Variant) -> Iterator[None]:
    """The judge with its drift check's level or prior swapped for one replay, then restored."""
    saved = J._DRIFT_GATE, S.DRIFT_PRIOR_SD, S.DRIFT_PRIOR_P
    if v.gate is not None:
        J._DRIFT_GATE = v.gate
    if v.prior is not None:
        S.DRIFT_PRIOR_SD, S.DRIFT_PRIOR_P = v.prior
    try:
        yield
    finally:
        J._DRIFT_GATE, S.DRIFT_PRIOR_SD, S.DRIFT_PRIOR_P = saved


def _p50_series(b: ArmData, c: ArmData, T: int) -> np.ndarray:
    sb = J.minute_series(b, ["latency_p50_s"], T)["latency_p50_s"]
    sc = J.minute_series(c, ["latency_p50_s"], T)["latency_p50_s"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(sc) - np.log(sb)


def log_bf(y: np.ndarray, kind: str, white_var: float) -> np.ndarray:
    """Per prefix: log Bayes factor of the change hypothesis against no change with slow strong drift."""
    change = CHANGE_FAST_DRIFT if kind == "grid" else CHANGE_NO_DRIFT
    white = None if kind == "grid" else (white_var, white_var, 1)
    ev = [S.drift_posterior(y, prior=prior, white=white, mean_var=v0).log_evidence[0]
          for prior, v0 in (change, NO_CHANGE_SLOW_DRIFT)]
    return ev[0] - ev[1]


def _first(tests: list[Any], eligible: np.ndarray, T: int) -> tuple[int, float | None]:
    _, overall = J._states(tests, eligible)
    first = J._first_decision(overall, J._look_indices(T, 1.0))
    return (0, None) if first is None else (int(overall[first]), float(first + 1))


def _run_one(args: tuple[str, dict[str, Any], int, int, float]) -> tuple[str, list[tuple[int, float | None]]]:
    """One run of one cell through every variant: (cell, [(code 0/1/2, minute or None) per variant])."""
    name, spec_kw, seed, minutes, white_var = args
    spec = SyntheticSpec(minutes=minutes).with_(**spec_kw)
    run = generate(spec, seed)
    b, c = ArmData("baseline", minutes=run.baseline.minutes), ArmData("canary", minutes=run.canary.minutes)
    cfg = parse_judge_config(CB._meshsim_cfg(spec=spec))
    defaults = J._analyze(b, c, cfg)  # the Bayes-factor variants add their check to the judge at its defaults
    y = None
    out = []
    for v in VARIANTS:
        if v.gate is None and v.prior is None:
            tests, T, eligible = defaults
        else:
            with _swapped(v):
                tests, T, eligible = J._analyze(b, c, cfg)
        if v.bf:
            y = _p50_series(b, c, T) if y is None else y
            ok = np.nan_to_num(log_bf(y, v.bf, white_var), nan=-np.inf) > v.log_bf
            tests = [copy.copy(t) for t in tests]  # the defaults' tests stay as they are
            for t in tests:
                if t.kind == "latency":
                    t.rollback = np.asarray(t.rollback, bool) & ok
        out.append(_first(tests, eligible, T))
    return name, out


def _white_var(n: int, minutes: int, seed: int, spec_kw: dict[str, Any]) -> float:
    """The per-minute variance of the paired log p50 on a shared fleet (no drift): the oracle's white noise."""
    ys = []
    for i in range(n):
        spec = SyntheticSpec(minutes=minutes).with_(**spec_kw)
        run = generate(spec, seed + i)
        ys.append(_p50_series(ArmData("baseline", minutes=run.baseline.minutes),
                              ArmData("canary", minutes=run.canary.minutes), minutes))
    return float(np.nanvar(np.concatenate(ys)))


def run_all(runs: int, aa_runs: int, minutes: int, seed: int, jobs: int) -> tuple[dict[str, list[list[Any]]], float]:
    specs = {c.name: c for c in CB.cells()}
    white_var = _white_var(max(aa_runs // 20, 5), minutes, seed + 9_000_000, specs[R1_AA].spec)
    work = [(n, specs[n].spec, seed + i, minutes, white_var)
            for n in CELLS for i in range(aa_runs if specs[n].kind == "aa" else runs)]
    res: dict[str, list[list[Any]]] = {n: [] for n in CELLS}
    with ProcessPoolExecutor(max(jobs, 1)) as ex:
        for name, out in ex.map(_run_one, work, chunksize=4):
            res[name].append(out)
    return res, white_var


@dataclass
class Row:
    variant: str
    cells: dict[str, tuple[float, float, float]]  # A/A: ROLLBACK rate; regressions: ROLLBACK within 60 min
    medians: dict[str, tuple[float, float, float]]  # regressions: median minute (inf = not within the horizon)
    missed: list[str]


def summarise(res: dict[str, list[list[Any]]], minutes: int) -> list[Row]:
    rows = []
    for k, v in enumerate(VARIANTS):
        cells, medians = {}, {}
        for name in CELLS:
            dec = [r[k] for r in res[name]]
            n = len(dec)
            if name.startswith("A/A"):
                cells[name] = CB.wilson(sum(1 for code, _ in dec if code == 2), n)
            else:
                tm = np.array([m if code == 2 else np.inf for code, m in dec])
                cells[name] = CB.wilson(int(np.sum(tm <= 60)), n)
                medians[name] = CB.median_ci(tm)
        missed = []
        for name in CELLS[:2]:
            if cells[name][0] > 0.05:
                missed.append(f"{name} <= 5 %")
        if not medians["+20% latency R1"][0] <= 15:
            missed.append("+20% R1 median <= 15 min")
        if cells["+10% latency R1"][0] < 0.95:
            missed.append("+10% R1 >= 95 % within 60 min")
        if cells["tail-only p99 +20% R1"][0] < 0.80:
            missed.append("tail-only >= 80 % within 60 min")
        rows.append(Row(v.name, cells, medians, missed))
    return rows


def render(rows: list[Row], res: dict[str, list[list[Any]]], args: argparse.Namespace, wall: float,
           white_var: float) -> str:
    n = {name: len(res[name]) for name in CELLS}
    lines = [
        "# The instance-drift check's frontier",
        "",
        f"Generated by `analysis/drift_frontier.py` (`--runs {args.runs} --aa-runs {args.aa_runs} --minutes "
        f"{args.minutes} --seed {args.seed}`) in {wall / 60:.1f} min on {args.jobs} processes; judge: "
        f"{args.judge_version}. Why and how: the module docstring. Every variant sees the same runs; runs per "
        f"cell: {', '.join(f'{k} {v}' for k, v in n.items())}. Proportions in percent with Wilson 95 % "
        f"intervals, medians in minutes with bootstrap 95 % intervals (`>H`: not within {args.minutes} min). "
        f"The oracle's white-noise variance of the paired log p50: {white_var:.5f} (sd {np.sqrt(white_var):.3f}).",
        "",
        "| check | A/A rho .95 sd 10 %: ROLLBACK | A/A rho .95 sd 5 %: ROLLBACK | +20 % R1: median min "
        "| +10 % R1: within 60 min | tail-only R1: within 60 min | +20 % R2 (rho .7 sd 5 %): within 60 min, median "
        "| targets missed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.variant} | {CB.pct(r.cells[CELLS[0]])} | {CB.pct(r.cells[CELLS[1]])} "
            f"| {CB.fmt_min(r.medians['+20% latency R1'])} | {CB.pct(r.cells['+10% latency R1'])} "
            f"| {CB.pct(r.cells['tail-only p99 +20% R1'])} | {CB.pct(r.cells['+20% latency R2'])}, "
            f"{CB.fmt_min(r.medians['+20% latency R2'])} | {'; '.join(r.missed) or 'none'} |")
    ok = [r for r in rows if not r.missed]
    real = [r for r in ok if not r.variant.startswith("oracle")]
    lines += ["", "## Reading", ""]
    if real:
        lines.append("Checks that meet every target above: " + ", ".join(f"`{r.variant}`" for r in real)
                     + "; their +20 % R2 detection within 60 min: "
                     + ", ".join(CB.pct(r.cells['+20% latency R2']) for r in real) + ".")
    else:
        lines.append("No check a judge can run meets every target above on these runs: each one that holds the "
                     "sd 10 % A/A cell to 5 % is slower than a median 15 min on +20 % or misses another speed "
                     "target.")
    one = [r for r in rows if len(r.missed) == 1 and not r.variant.startswith("oracle")]
    if one:
        lines.append("Checks that miss one target: " + "; ".join(f"`{r.variant}` ({r.missed[0]})" for r in one) + ".")
    base = rows[0]
    lines.append(f"The judge at its defaults, on these runs: {CB.pct(base.cells[CELLS[0]])} % / "
                 f"{CB.pct(base.cells[CELLS[1]])} % false ROLLBACK in the sd 10 % / sd 5 % cells "
                 "(`reports/canary.md` measures both on 2,000 runs of its own seeds).")
    for r in rows:
        if r.variant.startswith("oracle") and CELLS[0] + " <= 5 %" not in " ".join(r.missed):
            lines.append(
                f"The oracle `{r.variant}` holds the sd 10 % cell at {CB.pct(r.cells[CELLS[0]])} % with +20 % R1 at a "
                f"median {CB.fmt_min(r.medians['+20% latency R1'])} min: the data do separate the two when the white "
                f"noise is known and a change is assumed to come without drift. The same assumption catches +20 % "
                f"on separate instances within 60 min in {CB.pct(r.cells['+20% latency R2'])} % of runs "
                f"(the defaults: {CB.pct(base.cells['+20% latency R2'])} %).")
            break
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="reports/canary_frontier.md")
    ap.add_argument("--runs", type=int, default=200, help="runs per regression cell")
    ap.add_argument("--aa-runs", type=int, default=600, help="runs per A/A cell")
    ap.add_argument("--minutes", type=int, default=180)
    ap.add_argument("--seed", type=int, default=51_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--records", default="", help="also save the run's results (pickle) to this file")
    ap.add_argument("--from-records", default="", help="rewrite the report from saved results without running")
    args = ap.parse_args(argv)
    if args.from_records:
        with open(args.from_records, "rb") as fh:
            saved = pickle.load(fh)
        if saved.get("variants") != [v.name for v in VARIANTS]:
            ap.error(f"--from-records: {args.from_records} was made with other variants; run the study again")
        for k, v in saved["args"].items():
            if k not in ("out", "records", "from_records"):
                setattr(args, k, v)
        text = render(summarise(saved["res"], args.minutes), saved["res"], args, saved["wall"], saved["white_var"])
        _write(args.out, text)
        print(text)
        return 0
    for k in ("runs", "aa_runs", "minutes", "jobs"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(args, k)}")
    t0 = time.time()
    args.judge_version = CB.judge_version()  # at the start: the code the run measures
    res, white_var = run_all(args.runs, args.aa_runs, args.minutes, args.seed, args.jobs)
    wall = time.time() - t0
    if args.records:
        with open(args.records, "wb") as fh:
            pickle.dump({"res": res, "wall": wall, "white_var": white_var, "args": vars(args),
                         "variants": [v.name for v in VARIANTS]}, fh)
    text = render(summarise(res, args.minutes), res, args, wall, white_var)
    _write(args.out, text)
    print(text)
    return 0


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
