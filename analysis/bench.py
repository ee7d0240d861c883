"""Speed benchmark: meshsim against its peers on the same M/M/c queue, and bookinfo at scale.

Usage::

    python analysis/bench.py --out reports/bench.md [--n 200000] [--repeats 3] [--quick]
                             [--seed 12345] [--bookinfo-requests 1000000] [--scenario PATH]
                             [--skip-bookinfo] [--skip-sweep] [--check]

Section 1 runs the M/M/4 queue at rho = 0.9 (lam = 3.6, mu = 1, c = 4) for
``n`` customers in one process, in: Ciw, SimPy written straightforwardly, a
bare heapq loop and the Kiefer–Wolfowitz recursion (``analysis/baselines.py``,
all four on the two-stream convention of reference/simulation.md Part 2, so
they must report the same mean wait to the last bit); and meshsim
(``meshsim.sim.simulate`` on its own numpy streams for ``n / lam`` simulated
seconds, once keeping every row and once with ``record: summary``). Each
engine is timed ``--repeats`` times with :func:`time.perf_counter` (and
:func:`time.process_time`) after a :func:`gc.collect`, the engines taking
turns so intermittent background load spreads over all of them; the medians
are reported as customers per wall-clock second (and per CPU second). The
ratios meshsim/Ciw (target >= 5x) and meshsim/SimPy (target >= 2.5x) are
judged on wall-clock time; ``--check`` turns a missed target into exit 1.

Section 2 runs ``scenarios/bookinfo.yaml`` (or ``--scenario``) in
``record: summary`` mode, with the duration sized from the scenario's
open-loop traffic so that about ``--bookinfo-requests`` end-to-end requests
are generated, in a child process, and reports requests/s and the child's peak
resident memory (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``).

Section 5 (:func:`measure_sweep`) times a fixed small sweep of the M/M/4
station serially and on a 2-process local pool, side by side, and reports the
speed-up and whether both gave the same table (``--skip-sweep`` leaves it out).

A part whose engine is not importable yet is reported as "not available"
instead of failing the run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `analysis.*` importable
    sys.path.insert(0, str(ROOT))

# numpy, scipy and the peers are imported inside the functions that use them, so the
# bookinfo child process (this file with --bookinfo-child) loads only meshsim and its
# own dependencies, and its peak memory is meshsim's.

#: arrivals at the end of a run left out of the mean wait (as `analysis.baselines.TAIL`)
TAIL = 200
#: the measured model (simulation.md Part 2)
LAM, MU, C = 3.6, 1.0, 4
SEED = 12345
#: simulation.md Part 2's two-stream mean wait for n = 200,000, seed 12345
REFERENCE_MEAN_WAIT_200K = 2.0694367955
#: SD of one 200k-customer mean wait at this load, relative to Wq (simulation.md row f1: 0.1066 / 1.9694)
SD_REL_200K = 0.1066 / 1.969383
#: speed targets, meshsim customers/s over the peer's
TARGETS = {"ciw": 5.0, "simpy": 2.5}
#: customers/s measured in simulation.md Part 2 (run 1, run 2), for scale
REFERENCE_RATES = {
    "ciw": ("a2", 53_202, 59_782),
    "simpy": ("b", 110_060, 125_716),
    "heapq": ("e", 839_806, 820_566),
    "kw": ("e2", 2_588_023, 2_645_232),
}
MMC = ROOT / "scenarios" / "mmc.yaml"
BOOKINFO = ROOT / "scenarios" / "bookinfo.yaml"


# ---------------------------------------------------------------------------- machine
def machine_info() -> dict[str, str]:
    """CPU, core count, library versions, date and the repository commit, as strings."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for mod in ("numpy", "simpy", "ciw", "pandas"):
        info[mod] = _version(mod)
    info["commit"] = _git_commit()
    return info


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


# ---------------------------------------------------------------------------- M/M/c engines
@dataclass
class EngineRow:
    """One engine's measurements in the M/M/c section."""

    key: str
    label: str
    run: Callable[[], tuple[int, float]]  # -> (customers simulated, mean wait)
    two_stream: bool
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    customers: int = 0
    mean_wait: float = math.nan
    waits: np.ndarray | None = None
    note: str = ""

    @property
    def available(self) -> bool:
        return not self.note

    @property
    def median_s(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def rate(self) -> float:
        return self.customers / self.median_s if self.times else math.nan

    @property
    def cpu_rate(self) -> float:
        """Customers per CPU second of this process (less sensitive to other load on the machine)."""
        return self.customers / statistics.median(self.cpu_times) if self.cpu_times else math.nan


def _baseline(name: str, n: int, seed: int) -> Callable[[], tuple[int, float]]:
    from analysis import baselines

    fn = getattr(baselines, name)

    def run() -> tuple[int, float]:
        return n, fn(n, LAM, MU, C, seed)

    return run


#: meshsim runs the queue in milliseconds (lambda = 3,600/s, mean service 1 ms): the same queue as
#: lambda = 3.6, mu = 1 in the peers' time unit, at the time scale of a service mesh. meshsim samples
#: its per-second timeseries once a simulated second, which would otherwise cost one event per 3.6
#: customers here; waits are multiplied back by TIME_SCALE before they are compared.
TIME_SCALE = 1000.0


def mmc_scenario(n: int, seed: int, record: str = "full") -> dict:
    """The meshsim scenario for the M/M/c queue: one station, c workers, ``n / lam`` time units (ms)."""
    scn = {
        "name": "mmc",
        "seed": seed,
        "duration": n / LAM / TIME_SCALE,
        "warmup": 0,
        "services": {"station": {"replicas": 1, "workers": C,
                                 "latency": {"type": "exponential", "mean": 1.0 / MU / TIME_SCALE}}},
        "network": {"latency": 0},
        # a bare queue, as the peers model it: no network legs and no sidecar route timeout
        "mesh": {"station": {"timeout": 0}},
        "traffic": [{"name": "poisson", "to": "station", "rate": LAM * TIME_SCALE}],
    }
    if record != "full":
        scn["record"] = record
    return scn


def _meshsim_runner(n: int, seed: int, holder: dict, record: str = "full") -> Callable[[], tuple[int, float]] | str:
    """A runner for meshsim's M/M/c, or the reason it is not available.

    With ``record="full"`` the customers are ``len(result.requests)`` and the
    result is left in ``holder["result"]`` for the wait analysis; with
    ``"summary"`` (no rows kept) they are the summary's end-to-end count.
    """
    try:
        from meshsim.config import parse_scenario
        from meshsim.sim import simulate
    except Exception as exc:  # noqa: BLE001 - a half-written engine may fail in any way on import
        return f"not available ({type(exc).__name__}: {exc})"

    def run() -> tuple[int, float]:
        result = simulate(parse_scenario(mmc_scenario(n, seed, record), source="bench:mmc"))
        if record == "full":
            holder["result"] = result
            return len(result.requests), math.nan
        return int(result.summary["end_to_end"]["requests"]), math.nan

    return run


def _meshsim_waits(result) -> tuple[np.ndarray, float]:
    """Queueing delays of meshsim's requests in arrival order (the last ``TAIL`` dropped), and mean latency."""
    import numpy as np

    att = result.attempts
    if att is None or "wait_s" not in att.columns:
        raise KeyError("RunResult.attempts has no wait_s column")
    att = att.sort_values("start_s", kind="stable")
    waits = att["wait_s"].to_numpy(dtype=np.float64)[: max(0, len(att) - TAIL)] * TIME_SCALE
    waits = waits[np.isfinite(waits)]
    req = result.requests
    done = req[(req["status"] != 0) & np.isfinite(req["latency_s"])]
    return waits, float(done["latency_s"].mean()) * TIME_SCALE


def measure_mmc(n: int, repeats: int, seed: int = SEED) -> tuple[list[EngineRow], dict]:
    """Time every engine on the M/M/c queue; return the rows and meshsim's extra figures."""
    from analysis import baselines

    holder: dict = {}
    rows = [
        EngineRow("ciw", "Ciw 3, two-stream custom `Distribution`", _baseline("ciw_mmc", n, seed), True),
        EngineRow("simpy", "SimPy, process per customer + `Resource`",
                  _baseline("simpy_process_mmc", n, seed), True),
        EngineRow("heapq", "bare `heapq` event loop (pure Python)", _baseline("heapq_mmc", n, seed), True),
        EngineRow("kw", "Kiefer–Wolfowitz recursion (not a DES)", _baseline("kw_mmc", n, seed), True),
    ]
    try:
        import ciw  # noqa: F401
    except ImportError as exc:
        rows[0].note = f"not available ({exc})"
    for key, record, label in (
        ("meshsim", "full", "**meshsim** (`meshsim.sim.simulate`, own numpy streams, every row kept)"),
        ("meshsim_summary", "summary", "meshsim, `record: summary` (streaming statistics, no rows)"),
    ):
        runner = _meshsim_runner(n, seed, holder, record)
        row = EngineRow(key, label, runner if callable(runner) else (lambda: (0, math.nan)), False)
        if isinstance(runner, str):
            row.note = runner
        rows.append(row)
    ms = rows[-2]

    for rep in range(repeats):
        for row in rows:
            if not row.available:
                continue
            gc.collect()
            c0 = time.process_time()
            t0 = time.perf_counter()
            try:
                customers, mean = row.run()
            except Exception as exc:  # noqa: BLE001 - report the failure, keep measuring the others
                traceback.print_exc()
                row.note = f"failed ({type(exc).__name__}: {exc})"
                row.times.clear()
                row.cpu_times.clear()
                continue
            row.times.append(time.perf_counter() - t0)
            row.cpu_times.append(time.process_time() - c0)
            row.customers, row.mean_wait = customers, mean
            print(f"  [{rep + 1}/{repeats}] {row.key:16s} {row.times[-1]:8.3f} s wall {row.cpu_times[-1]:8.3f} s CPU",
                  file=sys.stderr, flush=True)

    extra: dict = {}
    if ms.available and "result" in holder:
        try:
            waits, mean_latency = _meshsim_waits(holder.pop("result"))
            ms.waits, ms.mean_wait = waits, float(waits.mean())
            extra["mean_latency"] = mean_latency
        except Exception as exc:  # noqa: BLE001
            extra["wait_note"] = f"mean wait not available ({type(exc).__name__}: {exc})"
    # the two-stream path's waits (identical for every two-stream engine): one untimed KW run
    _, waits = baselines.kw_mmc(n, LAM, MU, C, seed, return_waits=True)
    extra["two_stream_waits"] = waits[: n - TAIL]
    return rows, extra


# ---------------------------------------------------------------------------- bookinfo (child process)
def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


#: the policies of section 4, on every destination of the scenario (routes it already has are kept)
POLICIES = {
    "timeout": "3s",
    "retries": {"retry_on": "5xx,reset,connect-failure", "num_retries": 2, "per_try_timeout": "1s"},
    "circuit_breakers": {"max_requests": 1000, "max_pending_requests": 1000},
    "outlier_detection": {"consecutive_5xx": 5, "max_ejection_percent": 50},
    "load_balancer": {"lb_policy": "LEAST_REQUEST"},
}


def with_policies(path: Path):
    """The scenario at ``path`` with :data:`POLICIES` on every service."""
    import yaml

    from meshsim.config import parse_scenario

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    mesh = raw.setdefault("mesh", {}) or {}
    raw["mesh"] = mesh
    for svc in raw["services"]:
        mesh[svc] = {**POLICIES, **(mesh.get(svc) or {})}
    return parse_scenario(raw, source=f"{path} + policies")


def _bookinfo_child(requests: int, scenario: Path, policies: bool = False) -> int:
    """Run in the child: size, run and time bookinfo; print one JSON line."""
    from meshsim.config import apply_overrides, load_scenario
    from meshsim.sim import expected_requests, simulate

    rss_after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base = with_policies(scenario) if policies else load_scenario(scenario)
    rate = expected_requests(base) / float(base.duration)
    if not rate > 0:
        raise SystemExit("bookinfo: the scenario's open-loop traffic rate is zero; cannot size the run")
    duration = requests / rate
    overrides = {"duration": duration, "record": "summary", "warmup": 0}
    for _ in range(5):  # rate schedules need not be flat: rescale until ~`requests` are expected
        scn = apply_overrides(base, overrides)
        expected = expected_requests(scn)
        if abs(expected - requests) <= 0.001 * requests:
            break
        overrides["duration"] = float(scn.duration) * requests / expected
    gc.collect()
    t0 = time.perf_counter()
    c0 = time.process_time()
    result = simulate(scn)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    e2e = result.summary.get("end_to_end", {})
    print(json.dumps({
        "requests": int(e2e.get("requests", round(expected))),
        "expected": expected,
        "duration_s": float(scn.duration),
        "rate_per_s": rate,
        "wall_s": wall,
        "cpu_s": cpu,
        "success_rate": e2e.get("success_rate"),
        "rss_after_import_kib": rss_after_import,
        "rss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))
    return 0


def measure_bookinfo(requests: int, scenario: Path = BOOKINFO, policies: bool = False) -> dict:
    """Run the bookinfo child and read its peak memory; ``{"note": ...}`` when it cannot run."""
    if not scenario.exists():
        return {"note": f"not available (no {_rel(scenario)} yet)"}
    try:
        from meshsim.config import apply_overrides, load_scenario  # noqa: F401
        from meshsim.sim import expected_requests, simulate  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return {"note": f"not available ({type(exc).__name__}: {exc})"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bookinfo-child", str(requests),
           "--scenario", str(scenario)] + (["--with-policies"] if policies else [])
    print(f"  bookinfo: {requests:,} requests in a child process", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    elapsed = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.stderr.write(proc.stderr)
        return {"note": f"failed (exit {proc.returncode}: {tail})"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the child's own peak (RUSAGE_CHILDREN is the maximum over every child this process has waited for)
    out["peak_rss_kib"] = out.get("rss_self_kib", peak_kib)
    out["process_s"] = elapsed
    return out


# ---------------------------------------------------------------------------- report
def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "–"


def _fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if math.isfinite(a) and math.isfinite(b) and b > 0 else "–"


def render_report(info: dict, args: argparse.Namespace, rows: list[EngineRow], extra: dict,
                  bookinfo: dict | None) -> str:
    """The Markdown report."""
    from analysis import queueing

    n = args.n
    theory = queueing.mmc_metrics(LAM, MU, C)
    wq = theory["Wq"]
    by_key = {r.key: r for r in rows}
    ms = by_key["meshsim"]
    sd_rel = SD_REL_200K * math.sqrt(200_000 / n)
    out: list[str] = []
    w = out.append
    w("# meshsim speed benchmark")
    w("")
    w("Generated by `python analysis/bench.py " + " ".join(args.argv) + "`; do not edit by hand.")
    w("")
    w(f"**Machine.** {info['cpu']}, {info['cores']} cores; {info['python']}; numpy {info['numpy']}, "
      f"simpy {info['simpy']}, ciw {info['ciw']}, pandas {info['pandas']}; {info['date']}; "
      f"commit {info['commit']}. Load average (1 min) {info['load_before']} before section 1, "
      f"{info['load_after']} after it: other load on the machine slows wall time, and the CPU-time "
      "columns are less sensitive to it.")
    w("")
    w(f"## 1. M/M/{C} at ρ = {LAM / (C * MU):.1f} (λ = {LAM}, μ = {MU:g}, c = {C}), n = {n:,} customers")
    w("")
    w(f"Median of {args.repeats} wall-clock run(s) per engine (`time.perf_counter`, `gc.collect()` before "
      "each run, engines taking turns), in one process; customers/CPU-s uses the median "
      "`time.process_time` of the same runs. The four peers follow simulation.md Part 2's "
      f"two-stream convention (seed {args.seed}); meshsim draws from its own numpy streams, in milliseconds "
      f"(λ = 3,600/s, mean service 1 ms: the same queue at a mesh's time scale; waits are reported back in "
      f"the peers' unit), as a bare queue (no network delay, Envoy's default 15 s route timeout off: "
      f"`mesh: {{station: {{timeout: 0}}}}`), and runs "
      f"for n / λ = {n / LAM / TIME_SCALE:,.1f} simulated seconds, so its customer count is the number of requests it "
      "actually generated.")
    w("")
    w("| engine | simulation.md row | median wall (s) | runs (s) | customers | customers/s | "
      "customers/CPU-s | simulation.md customers/s (run 1 / run 2) | mean wait | vs Erlang C |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref = REFERENCE_RATES.get(r.key)
        ref_row, ref_rates = (ref[0], f"{ref[1]:,} / {ref[2]:,}") if ref else ("–", "–")
        if not r.available:
            w(f"| {r.label} | {ref_row} | {r.note} | | | | | {ref_rates} | | |")
            continue
        runs = ", ".join(f"{t:.3f}" for t in r.times)
        if math.isfinite(r.mean_wait):
            mean, rel = f"{r.mean_wait:.6f}", f"{(r.mean_wait / wq - 1) * 100:+.2f}%"
        else:
            mean = rel = "–"
        w(f"| {r.label} | {ref_row} | {r.median_s:.3f} | {runs} | {r.customers:,} | {_fmt_rate(r.rate)} | "
          f"{_fmt_rate(r.cpu_rate)} | {ref_rates} | {mean} | {rel} |")
    w("")
    # speed ratios
    w("### Speed ratios (customers per wall-clock second)")
    w("")
    w("| ratio | measured (wall) | target | met | by CPU time |")
    w("|---|---:|---:|:---:|---:|")
    for key, name in (("ciw", "Ciw"), ("simpy", "SimPy (process per customer)"), ("heapq", "heapq loop"),
                      ("kw", "KW recursion")):
        peer = by_key[key]
        target = TARGETS.get(key)
        if ms.available and peer.available:
            ratio = ms.rate / peer.rate
            met = ("yes" if ratio >= target else "**no**") if target else "–"
            w(f"| meshsim / {name} | {ratio:.2f}× | {f'≥ {target:g}×' if target else '–'} | {met} | "
              f"{_fmt_ratio(ms.cpu_rate, peer.cpu_rate)} |")
        else:
            why = "meshsim" if not ms.available else peer.key
            w(f"| meshsim / {name} | – ({why} not available) | {f'≥ {target:g}×' if target else '–'} | – | – |")
    summ = by_key["meshsim_summary"]
    if summ.available and by_key["ciw"].available and by_key["simpy"].available:
        w("")
        w(f"With `record: summary` meshsim runs at {_fmt_rate(summ.rate)} customers/s: "
          f"{_fmt_ratio(summ.rate, by_key['ciw'].rate)} Ciw, {_fmt_ratio(summ.rate, by_key['simpy'].rate)} "
          f"SimPy, {_fmt_ratio(summ.rate, by_key['heapq'].rate)} heapq (the targets above are judged on "
          "the full-record row, which keeps every wait as the peers do).")
    w("")
    # exactness and fidelity
    w("### Exactness and fidelity")
    w("")
    w(f"Erlang C: P(wait) = {theory['p_wait']:.6f}, **Wq = {wq:.6f}**, W = {theory['W']:.6f}, "
      f"Lq = {theory['Lq']:.4f}.")
    w("")
    two = [r for r in rows if r.two_stream and r.available]
    if two:
        means = [r.mean_wait for r in two]
        spread = max(means) - min(means)
        agree = spread == 0.0
        names = ", ".join(r.key for r in two)
        w(f"* **Two-stream engines ({names}) agree: {'yes, bit for bit' if agree else '**NO**'}** "
          f"(max − min of the mean waits = {spread:.3g}); mean wait over the first n − {TAIL} "
          f"arrivals = {means[0]:.10f}.")
        if n == 200_000 and args.seed == SEED:
            ok = abs(means[0] - REFERENCE_MEAN_WAIT_200K) < 5e-11
            w(f"  simulation.md Part 2 reports {REFERENCE_MEAN_WAIT_200K:.10f} for this path: "
              f"{'reproduced' if ok else '**not reproduced**'}.")
        tw = extra["two_stream_waits"]
        ci = queueing.batch_means_ci(tw, n_batches=30, confidence=0.99)
        w(f"  That path is {(means[0] / wq - 1) * 100:+.2f}% from Erlang C; 99% batch-means CI (30 batches) "
          f"[{ci.low:.4f}, {ci.high:.4f}] {'covers' if ci.covers(wq) else 'does not cover'} Wq.")
    if ms.available and math.isfinite(ms.mean_wait):
        ci = queueing.batch_means_ci(ms.waits, n_batches=30, confidence=0.99)
        z = (ms.mean_wait / wq - 1) / sd_rel
        w(f"* **meshsim** mean wait (`attempts.wait_s`, first n − {TAIL} by arrival) = "
          f"{ms.mean_wait:.6f}, {(ms.mean_wait / wq - 1) * 100:+.2f}% from Erlang C ({z:+.2f} σ, "
          f"with σ = {sd_rel * 100:.1f}% for one {n:,}-customer run, scaled from simulation.md's "
          f"5.4% at 200k); 99% batch-means CI [{ci.low:.4f}, {ci.high:.4f}] "
          f"{'covers' if ci.covers(wq) else 'does not cover'} Wq.")
        if "mean_latency" in extra:
            lat = extra["mean_latency"]
            w(f"  Mean end-to-end latency = {lat:.6f} vs Erlang C W = {theory['W']:.6f} "
              f"({(lat / theory['W'] - 1) * 100:+.2f}%).")
    elif ms.available:
        w(f"* meshsim: {extra.get('wait_note', 'mean wait not available')}.")
    else:
        w(f"* meshsim: {ms.note}.")
    w("")
    w("A single run's mean wait at ρ = 0.9 is noisy (simulation.md f1: SD 5.4% of Wq at 200k customers), "
      "so agreement with Erlang C is read in σ; exactness is the stronger check and is what the "
      "two-stream engines show.")
    w("")
    # bookinfo
    w(f"## 2. {args.scenario.stem} at {args.bookinfo_requests:,} requests")
    w("")
    if bookinfo is None:
        w("Skipped (`--skip-bookinfo`).")
    elif "note" in bookinfo:
        w(f"meshsim: {bookinfo['note']}. The lead re-runs `make bench` once it lands.")
    else:
        b = bookinfo
        w(f"`{_rel(args.scenario)}` with `record: summary`, warmup 0 and duration "
          f"{b['duration_s']:,.1f} s (open-loop rate {b['rate_per_s']:,.1f}/s → {b['expected']:,.0f} "
          "expected requests), one run in a child process; wall time is `simulate()` alone, peak memory "
          "is the child's own maximum resident set (`getrusage(RUSAGE_SELF).ru_maxrss` in the child).")
        w("")
        w("| end-to-end requests | wall (s) | requests/s | peak RSS (MiB) | RSS after imports (MiB) | "
          "growth during the run (MiB) | success rate |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        sr = b.get("success_rate")
        sr_cell = f"{sr:.4f}" if isinstance(sr, (int, float)) else "–"
        w(f"| {b['requests']:,} | {b['wall_s']:.2f} | {_fmt_rate(b['requests'] / b['wall_s'])} | "
          f"{b['peak_rss_kib'] / 1024:,.0f} | {b['rss_after_import_kib'] / 1024:,.0f} | "
          f"{(b['peak_rss_kib'] - b['rss_after_import_kib']) / 1024:,.0f} | {sr_cell} |")
    w("")
    w(f"## 3. Memory bound: {args.memory_requests:,} requests with `record: summary`")
    w("")
    mem = extra.get("memory")
    if mem is None:
        w("Skipped (`--skip-memory`).")
    elif "note" in mem:
        w(f"meshsim: {mem['note']}.")
    else:
        w(f"`{_rel(MMC)}` (one M/M/4 station) sized to {mem['expected']:,.0f} expected requests, "
          "`record: summary` (bounded histograms, no rows), in a child process. The target is a "
          "10-million-request run within 2 GB.")
        w("")
        w("| end-to-end requests | wall (s) | requests/s | peak RSS (MiB) | RSS after imports (MiB) | within 2 GB |")
        w("|---:|---:|---:|---:|---:|:---:|")
        w(f"| {mem['requests']:,} | {mem['wall_s']:.1f} | {_fmt_rate(mem['requests'] / mem['wall_s'])} | "
          f"{mem['peak_rss_kib'] / 1024:,.0f} | {mem['rss_after_import_kib'] / 1024:,.0f} | "
          f"{'yes' if mem['peak_rss_kib'] < 2 * 1024 * 1024 else '**no**'} |")
    w("")
    w(f"## 4. Cost of the mesh policies: {args.scenario.stem} at {args.bookinfo_requests:,} requests")
    w("")
    pol = extra.get("policies")
    if pol is None:
        w("Skipped.")
    elif "note" in pol or bookinfo is None or "note" in (bookinfo or {}):
        w(f"meshsim: {(pol or {}).get('note', 'section 2 did not run')}.")
    else:
        base = extra.get("policies_plain") or bookinfo
        if "note" in base or "cpu_s" not in base:
            base = bookinfo
        ratio = pol["cpu_s"] / base["cpu_s"]
        w("The same scenario as section 2 with these policies on every destination (routes kept): "
          + ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in POLICIES.items()) + ". "
          "Target: the policies cost at most 2× the time of the plain scenario. The plain scenario runs "
          "again right before the policy run (two child processes back to back), and the ratio is judged "
          "on CPU time (`time.process_time` around `simulate()`), which other load on the machine "
          "disturbs less than wall time; the wall-time ratio is shown next to it.")
        w("")
        w("| variant | end-to-end requests | CPU (s) | wall (s) | requests/CPU-s | success rate "
          "| cost ratio (CPU) | cost ratio (wall) | within 2× |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|:---:|")
        for label, b in (("plain", base), ("with policies", pol)):
            sr = b.get("success_rate")
            w(f"| {label} | {b['requests']:,} | {b['cpu_s']:.2f} | {b['wall_s']:.2f} | "
              f"{_fmt_rate(b['requests'] / b['cpu_s'])} | {sr:.4f} | {b['cpu_s'] / base['cpu_s']:.2f}× | "
              f"{b['wall_s'] / base['wall_s']:.2f}× | "
              f"{'–' if label == 'plain' else ('yes' if ratio <= 2 else '**no**')} |")
    w("")
    if "sweep" in extra:
        out.extend(render_sweep_section(extra["sweep"]))
    return "\n".join(out)


# ---------------------------------------------------------------------------- sweep speed-up
#: the fixed sweep of section 5: the M/M/4 station over workers x rate, 2 replications per point
SWEEP_GRID = {"services.station.workers": [4, 5, 6, 7], "traffic.poisson.rate": ["3000/s", "3600/s"]}
SWEEP_REPLICATIONS = 2


def _burn(n: int) -> int:
    """Pure-Python CPU work: the control that shows how much parallelism the machine has free."""
    total = 0
    for i in range(n):
        total += i
    return total


def measure_sweep(requests_per_run: int, repeats: int = 1) -> dict:
    """Time the fixed sweep serially (``workers=1``) and on a 2-process pool, alternating; same table?

    Each run simulates about ``requests_per_run`` requests of ``scenarios/mmc.yaml`` with
    ``record: summary``. Wall time covers the whole ``sweep()`` call, the pool's start included.
    """
    try:
        from meshsim.config import apply_overrides, load_scenario
        from meshsim.experiments.sweep import sweep
    except ImportError as exc:  # pragma: no cover - an older tree
        return {"note": f"not available ({exc})"}
    duration = requests_per_run / 3300.0 + 0.5
    scn = apply_overrides(load_scenario(MMC), {"duration": f"{duration:.3f}s", "warmup": "0.5s",
                                               "record": "summary"})
    load_before = os.getloadavg()[0]
    walls: dict[int, list[float]] = {1: [], 2: []}
    tables: dict[int, str] = {}
    for _ in range(repeats):
        for workers in (1, 2):
            gc.collect()
            t0 = time.perf_counter()
            res = sweep(scn, SWEEP_GRID, replications=SWEEP_REPLICATIONS, workers=workers, progress=False)
            walls[workers].append(time.perf_counter() - t0)
            tables[workers] = res.table.to_csv(index=False)
            runs = res.runs
    from functools import partial

    from meshsim.experiments._executor import run_many

    control: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            t0 = time.perf_counter()
            run_many([partial(_burn, 2_000_000)] * 8, workers=workers, progress=False)
            control[workers].append(time.perf_counter() - t0)
    serial, pooled = statistics.median(walls[1]), statistics.median(walls[2])
    return {"runs": runs, "requests_per_run": requests_per_run, "repeats": repeats, "serial_s": serial,
            "pool_s": pooled, "speedup": serial / pooled, "identical": tables[1] == tables[2],
            "cores": len(os.sched_getaffinity(0)), "load": (load_before, os.getloadavg()[0]),
            "control_speedup": statistics.median(control[1]) / statistics.median(control[2])}


def render_sweep_section(sw: dict | None) -> list[str]:
    """Section 5 of the report: the sweep speed-up on 2 local workers versus 1."""
    out = ["## 5. Sweep speed-up: 2 local workers versus 1", ""]
    if sw is None:
        return [*out, "Skipped (`--skip-sweep`).", ""]
    if "note" in sw:
        return [*out, f"meshsim: {sw['note']}.", ""]
    grid = " × ".join(f"`{k}` = {', '.join(map(str, v))}" for k, v in SWEEP_GRID.items())
    out += [f"`meshsim.experiments.sweep.sweep()` on `{_rel(MMC)}` over {grid}, {SWEEP_REPLICATIONS} "
            f"replications per point ({sw['runs']} runs of about {sw['requests_per_run']:,} requests, "
            "`record: summary`), once serially (`workers=1`) and once on a local process pool "
            f"(`workers=2`), alternating, median of {sw['repeats']}. Wall time is the whole call, the "
            "pool's start included. Both must give the same table, byte for byte.", "",
            "| workers | wall (s) | runs/s | speed-up | same table |", "|---:|---:|---:|---:|:---:|",
            f"| 1 (serial) | {sw['serial_s']:.2f} | {sw['runs'] / sw['serial_s']:.1f} | 1.00× | – |",
            f"| 2 (process pool) | {sw['pool_s']:.2f} | {sw['runs'] / sw['pool_s']:.1f} | "
            f"{sw['speedup']:.2f}× | {'yes' if sw['identical'] else '**no**'} |", "",
            f"Machine: {sw['cores']} cores; 1-minute load average {sw['load'][0]:.2f} before, "
            f"{sw['load'][1]:.2f} after. A second worker can only help when a second core is idle: "
            "with the load near or above the core count, the ratio measures the other load, not meshsim. "
            "Control: the same pool running pure-Python CPU work (8 equal tasks) gave "
            f"{sw['control_speedup']:.2f}× on 2 workers versus 1, the most the machine had to offer.",
            ""]
    return out


# ---------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "bench.md", help="Markdown report to write")
    p.add_argument("--n", type=int, help="customers in the M/M/c runs (default 200000; --quick 20000)")
    p.add_argument("--repeats", type=int,
                   help="timed runs per engine, the median is reported (default 3; --quick 1)")
    p.add_argument("--seed", type=int, default=SEED, help="seed of every engine (default 12345)")
    p.add_argument("--bookinfo-requests", type=int,
                   help="end-to-end requests in the bookinfo run (default 1000000; --quick 20000)")
    p.add_argument("--skip-bookinfo", action="store_true", help="leave out section 2")
    p.add_argument("--memory-requests", type=int,
                   help="requests of the summary-only memory run (default 10000000; --quick 200000)")
    p.add_argument("--skip-memory", action="store_true", help="leave out section 3")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: smaller defaults (n = 20000, 1 repeat, 20000 bookinfo requests)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when meshsim misses a speed target or the two-stream engines disagree")
    p.add_argument("--bookinfo-child", type=int, metavar="REQUESTS", help=argparse.SUPPRESS)
    p.add_argument("--with-policies", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-policies", action="store_true", help="leave out section 4")
    p.add_argument("--skip-sweep", action="store_true", help="leave out section 5 (sweep speed-up, 2 workers vs 1)")
    p.add_argument("--scenario", type=Path, default=BOOKINFO,
                   help="scenario of section 2 (default scenarios/bookinfo.yaml)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.bookinfo_child is not None:
        return _bookinfo_child(args.bookinfo_child, args.scenario, args.with_policies)
    for name, full, quick in (("n", 200_000, 20_000), ("repeats", 3, 1), ("bookinfo_requests", 1_000_000, 20_000),
                              ("memory_requests", 10_000_000, 200_000)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.n <= TAIL or args.repeats < 1:
        _parser().error(f"--n must be > {TAIL} and --repeats >= 1")
    args.argv = argv
    info = machine_info()
    print(f"M/M/{C} rho=0.9, n={args.n:,}, {args.repeats} repeat(s)", file=sys.stderr, flush=True)
    info["load_before"] = f"{os.getloadavg()[0]:.2f}"
    rows, extra = measure_mmc(args.n, args.repeats, args.seed)
    info["load_after"] = f"{os.getloadavg()[0]:.2f}"
    bookinfo = None if args.skip_bookinfo else measure_bookinfo(args.bookinfo_requests, args.scenario)
    extra["memory"] = None if args.skip_memory else measure_bookinfo(args.memory_requests, MMC)
    if args.skip_policies or args.skip_bookinfo:
        extra["policies"] = None
    else:  # a fresh plain run right before the policy run: the pair sees the same machine load
        extra["policies_plain"] = measure_bookinfo(args.bookinfo_requests, args.scenario)
        extra["policies"] = measure_bookinfo(args.bookinfo_requests, args.scenario, policies=True)
    extra["sweep"] = None if args.skip_sweep else measure_sweep(5_000 if args.quick else 20_000,
                                                               repeats=1 if args.quick else 2)
    report = render_report(info, args, rows, extra, bookinfo)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {args.out}", file=sys.stderr)
    if args.check:
        by_key = {r.key: r for r in rows}
        ms = by_key["meshsim"]
        two = [r.mean_wait for r in rows if r.two_stream and r.available]
        ok = len(set(two)) <= 1 and ms.available and all(
            by_key[k].available and ms.rate >= t * by_key[k].rate for k, t in TARGETS.items())
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
