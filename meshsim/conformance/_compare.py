"""What a run shows, measured the same way on the real Envoy and in the simulator, and the verdicts.

:func:`observe_real` and :func:`observe_sim` turn a run into an :class:`Observation`: scalar metrics
(end-to-end success rate, status and response-flag shares, Envoy counters per request, attempts
per request, per-host shares of the upstream attempts, latency quantiles) and the end-to-end
latency sample.

:func:`compare` takes several real runs and several simulated runs (independent seeds) and gives,
per metric, both means and a tolerance built from sampling noise:

* scalar metric: ``z * sqrt(s_real^2/k_real + s_sim^2/k_sim)``, where ``s`` is the between-run
  standard deviation, floored by the pooled binomial standard error for shares (a handful of runs
  can underestimate the spread);
* latency quantile: ``z *`` the standard error of the difference of the quantiles (the larger of the
  iid bootstrap of the pooled samples and the spread of the per-run quantiles, which also sees the
  correlation queueing puts between successive latencies), plus an allowance for the real path's own time: twice the proxy overhead
  (:attr:`Observation.overhead_s`: client latency minus the upstream's served time for single-try
  requests; its 10th percentile, as requests that waited in Envoy's pending queue add their wait) plus 1 ms of timer granularity (the stand-ins and the client sleep through ``epoll``,
  which waits in whole milliseconds). The real path has an Envoy and two Python event loops the
  simulator models only as network delay;
* distribution: the two-sample Kolmogorov-Smirnov statistic of the pooled samples (the real sample
  shifted back by the overhead's 10th percentile) against its ``alpha = 0.001`` critical value plus
  the stand-ins' own distortion, measured in the same runs: the KS distance between the service
  times the stand-ins served and the ones they drew (``asyncio.sleep`` wakes on whole milliseconds,
  so on a 20 ms exponential the served times are visibly shifted), or the largest KS distance between
  two real runs, whichever is larger (queueing correlates successive latencies, and the iid critical
  value is then too strict). Without these a large sample flags the harness, not Envoy.

``z = 3`` by default: with a few dozen comparisons per report, a 3-sigma band keeps false alarms
rare while a real disagreement of a few standard errors still shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Observation", "Verdict", "observe_real", "observe_sim", "compare", "STAT_NAMES", "QUANTILES"]

#: Envoy counters compared (per end-to-end request, summed over the entry clusters)
STAT_NAMES = (
    "upstream_rq_total",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_overflow",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_pending_overflow",
    "upstream_rq_active_overflow",
    "upstream_cx_overflow",
    "upstream_cx_total",
    "upstream_rq_per_try_timeout",
    "upstream_rq_timeout",
    "outlier_detection.ejections_enforced_total",
)
QUANTILES = (0.5, 0.9, 0.95, 0.99)


def _norm_flags(f: Any) -> str:
    if not isinstance(f, str) or f in ("", "-"):
        return "-"
    return ",".join(sorted(t for t in f.split(",") if t))


@dataclass
class Observation:
    """One run, measured."""

    side: str  # "real" | "sim"
    n: int
    metrics: dict[str, float]
    counts: dict[str, float]  # the binomial denominators of share metrics (name -> n)
    latency: np.ndarray
    overhead_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra: dict[str, Any] = field(default_factory=dict)


def _common(side: str, req: pd.DataFrame, att: pd.DataFrame, stats: dict[str, dict[str, int]],
            clusters: Iterable[str]) -> Observation:
    n = len(req)
    m: dict[str, float] = {}
    counts: dict[str, float] = {}
    ok = (req["status"] >= 200) & (req["status"] < 300)
    m["success_rate"] = float(ok.mean()) if n else math.nan
    counts["success_rate"] = n
    for code, c in req["status"].value_counts().items():
        m[f"status[{int(code)}]"] = c / n
        counts[f"status[{int(code)}]"] = n
    for fl, c in req["flags"].map(_norm_flags).value_counts().items():
        m[f"flags[{fl}]"] = c / n
        counts[f"flags[{fl}]"] = n
    clusters = list(clusters)
    for s in STAT_NAMES:
        m[f"{s}/rq"] = sum(stats.get(c, {}).get(s, 0) for c in clusters) / max(n, 1)
    m["attempts/rq"] = float(req["attempts"].mean()) if n else math.nan
    if len(att):
        shares = att["host"].value_counts(normalize=True)
        for h, v in shares.items():
            m[f"share[{h}]"] = float(v)
            counts[f"share[{h}]"] = len(att)
    # latency of served requests (2xx): a local overflow reply is answered by the client's own sidecar
    # in the simulator, with no network leg, so its latency is 0 there and ~0.3 ms on loopback
    lat = req.loc[ok, "latency_s"].to_numpy(dtype=float)
    for q in QUANTILES:
        m[f"latency_p{q * 100:g}_ms"] = float(np.quantile(lat, q) * 1e3) if len(lat) else math.nan
    return Observation(side, n, m, counts, lat)


def observe_real(run, clusters: Sequence[str]) -> Observation:
    """An :class:`~meshsim.conformance.RealRun` measured (``clusters``: the sim stats keys to sum)."""
    req = run.requests.copy()
    att = run.attempts[run.attempts["note"] != "queue_full"] if len(run.attempts) else run.attempts
    obs = _common("real", req, att, run.stats, clusters)
    # proxy overhead: single-try answered requests, client latency minus the upstream's served time
    if len(run.attempts):
        served = run.attempts.assign(served=run.attempts["end_s"] - run.attempts["arrival_s"])
        one = served.groupby("request_id")["served"].agg(["sum", "count"])
        j = req.merge(one, left_on="request_id", right_index=True, how="inner")
        j = j[(j["count"] == 1) & (j["attempts"] == 1) & (j["status"] > 0)]
        obs.overhead_s = (j["latency_s"] - j["sum"]).to_numpy(dtype=float)
        # the stand-ins' own timing distortion: served time against the drawn service time
        ok_rows = run.attempts[run.attempts["note"] != "queue_full"]
        if len(ok_rows) > 5:
            d, _ = ks_distance((ok_rows["end_s"] - ok_rows["start_s"]).to_numpy(dtype=float),
                               ok_rows["drawn_s"].to_numpy(dtype=float))
            obs.extra["timer_ks"] = d
    obs.extra["outlier_events"] = run.outlier_events
    obs.extra["attempts"] = run.attempts
    obs.extra["requests"] = req
    return obs


def observe_sim(result, entry: Sequence[str], clusters: Sequence[str]) -> Observation:
    """A simulator :class:`~meshsim.sim.RunResult` measured the same way (``entry``: entry services)."""
    req = result.requests.copy()
    req["flags"] = req["flags"].astype(str)
    att = result.attempts
    att = att[att["service"].isin(list(entry)) & att["caller"].isin([s.name for s in result.scenario.traffic])]
    att = att[att["replica"] >= 0].copy()
    att["host"] = att["service"].astype(str) + "/" + att["version"].astype(str) + "/" + att["replica"].astype(str)
    # the simulator keys its counters by the cluster Envoy counts them on (svc|* for outbound|80||svc,
    # svc|v1 for outbound|80|v1|svc), as cluster_sim_keys names Envoy's: compared as they are
    obs = _common("sim", req, att, result.summary.get("stats", {}), clusters)
    ev = result.outlier_events.copy()
    if len(ev):  # the simulator names hosts <service>-<version>-<replica>
        def host(row: pd.Series) -> str:
            svc, h = str(row["service"]), str(row["host"])
            rest, _, idx = h.rpartition("-")
            ver = rest[len(svc) + 1:] if rest.startswith(svc + "-") else "default"
            return f"{svc}/{ver}/{idx}"

        ev["host"] = ev.apply(host, axis=1)
        ev["action"] = ev["action"].astype(str).str.lower()
    obs.extra["outlier_events"] = ev
    obs.extra["attempts"] = att
    obs.extra["requests"] = req
    return obs


@dataclass
class Verdict:
    """One metric compared."""

    metric: str
    real: float
    sim: float
    tolerance: float
    agree: bool
    known: str = ""  # a known disagreement (reference to the report's explanation)
    real_sd: float = math.nan
    sim_sd: float = math.nan

    @property
    def status(self) -> str:
        if self.agree:
            return "n/a" if self.known.startswith("n/a") else "agree"
        return "KNOWN DISAGREEMENT" if self.known else "DISAGREE"


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    a = np.asarray([x for x in xs if not math.isnan(x)], dtype=float)
    if len(a) == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def _boot_quantile_se(a: np.ndarray, b: np.ndarray, q: float, rng: np.random.Generator, n_boot: int = 200) -> float:
    if len(a) < 5 or len(b) < 5:
        return math.inf
    da = [np.quantile(rng.choice(a, len(a)), q) for _ in range(n_boot)]
    db = [np.quantile(rng.choice(b, len(b)), q) for _ in range(n_boot)]
    return float(math.sqrt(np.var(da) + np.var(db)))


def ks_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and its ``alpha = 0.001`` critical value."""
    from scipy.stats import ks_2samp

    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    d = float(ks_2samp(a, b).statistic)
    n, m = len(a), len(b)
    crit = math.sqrt(-0.5 * math.log(0.001 / 2)) * math.sqrt((n + m) / (n * m))
    return d, crit


def compare(real: Sequence[Observation], sim: Sequence[Observation], *, z: float = 3.0,
            metrics: Sequence[str] | None = None, known: dict[str, str] | None = None,
            seed: int = 0) -> list[Verdict]:
    """Every metric seen on either side, compared (see the module docstring for the tolerances)."""
    known = known or {}
    names: list[str] = []
    for o in [*real, *sim]:
        names.extend(k for k in o.metrics if k not in names)
    if metrics is not None:
        names = [n for n in names if any(n == m or n.startswith(m) for m in metrics)]
    rng = np.random.default_rng(seed)
    lat_r = np.concatenate([o.latency for o in real]) if real else np.zeros(0)
    lat_s = np.concatenate([o.latency for o in sim]) if sim else np.zeros(0)
    over = np.concatenate([o.overhead_s for o in real]) if real else np.zeros(0)
    # the real path's own time: median proxy overhead twice (it is not in every simulated leg) plus
    # 1 ms, the event loops' timer granularity (epoll waits in whole milliseconds)
    slack_ms = (2 * float(np.quantile(over, 0.1)) * 1e3 if len(over) else 1.0) + 1.0
    out = []
    for name in names:
        # a share or a counter that never showed is 0; a derived quantity without a sample is unknown
        absent = 0.0 if name.startswith(("status[", "flags[", "share[")) or name.endswith("/rq") else math.nan
        xr = [o.metrics.get(name, absent) for o in real]
        xs = [o.metrics.get(name, absent) for o in sim]
        mr, sr = _mean_sd(xr)
        ms, ss = _mean_sd(xs)
        if math.isnan(mr) or math.isnan(ms):
            out.append(Verdict(name, mr, ms, math.nan, True, "n/a: no sample on one side"))
            continue
        if name.endswith("_ms") and not name.startswith("latency_p"):  # derived latency metrics
            tol = z * math.sqrt(((0 if math.isnan(sr) else sr**2) / max(len(real), 1))
                                + ((0 if math.isnan(ss) else ss**2) / max(len(sim), 1))) + slack_ms
        elif name.startswith("latency_p"):
            q = float(name[len("latency_p"):-3]) / 100
            boot = _boot_quantile_se(lat_r, lat_s, q, rng) * 1e3
            # queueing makes successive latencies correlated: the iid bootstrap then understates the
            # noise, and the spread of the per-run quantiles shows it
            runs = math.sqrt((0 if math.isnan(sr) else sr**2) / max(len(real), 1)
                             + (0 if math.isnan(ss) else ss**2) / max(len(sim), 1))
            tol = z * max(boot, runs) + max(slack_ms, 0.0)
        else:
            k_r, k_s = max(len(real), 1), max(len(sim), 1)
            var = (0 if math.isnan(sr) else sr**2) / k_r + (0 if math.isnan(ss) else ss**2) / k_s
            n_r = sum(o.counts.get(name, o.n) for o in real)
            n_s = sum(o.counts.get(name, o.n) for o in sim)
            if name.startswith(("status[", "flags[", "share[", "success_rate")):
                p = (mr * n_r + ms * n_s) / max(n_r + n_s, 1)
                var = max(var, p * (1 - p) * (1 / max(n_r, 1) + 1 / max(n_s, 1)))
            else:  # counters per request: Poisson floor on the pooled count
                lam = (mr * n_r + ms * n_s) / max(n_r + n_s, 1)
                var = max(var, lam * (1 / max(n_r, 1) + 1 / max(n_s, 1)))
            tol = z * math.sqrt(var)
        agree = bool(abs(mr - ms) <= tol + 1e-12) if not (math.isnan(mr) or math.isnan(ms)) else False
        out.append(Verdict(name, mr, ms, tol, agree, known.get(name, ""), sr, ss))
    if len(lat_r) and len(lat_s):
        shift = float(np.quantile(over, 0.1)) if len(over) else 0.0
        d, crit = ks_distance(lat_r - shift, lat_s)
        floor = float(np.mean([o.extra.get("timer_ks", 0.0) for o in real]))
        # run-to-run distance of the real runs themselves (correlated samples make the iid value too strict)
        between = [ks_distance(a.latency, b.latency)[0] for i, a in enumerate(real) for b in real[i + 1:]]
        tol = max(crit + floor, max(between, default=0.0))
        out.append(Verdict("latency_ks", d, 0.0, tol, d <= tol, known.get("latency_ks", "")))
    return out


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """The verdicts as a table (metric, real, sim, |diff|, tolerance, status)."""
    return pd.DataFrame([{
        "metric": v.metric, "real": v.real, "sim": v.sim, "diff": abs(v.real - v.sim) if v.metric != "latency_ks"
        else v.real, "tolerance": v.tolerance, "status": v.status, "note": v.known,
    } for v in verdicts])
