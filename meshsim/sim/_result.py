"""Results of a run: tables, a summary, and replications with confidence intervals."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

from meshsim.sim._chaos import FAULT_COLUMNS
from meshsim.sim._chaos import faults_frame as _faults_frame
from meshsim.sim._recorder import QUANTILES

__all__ = ["RunResult", "RunSet", "combine_summaries"]


def _success(codes: np.ndarray) -> np.ndarray:
    return (codes >= 200) & (codes < 400)


def _group(n: int, status: dict[int, int], lat_q: dict[str, float], mean: float, window: float) -> dict:
    ok = sum(c for s, c in status.items() if 200 <= s < 400)
    return {
        "requests": int(n),
        "throughput_rps": n / window if window > 0 else math.nan,
        "success_rate": ok / n if n else math.nan,
        "status": {str(k): int(status[k]) for k in sorted(status)},
        "latency_s": {"mean": mean, **lat_q},
    }


def _from_frame(status: np.ndarray, latency: np.ndarray, window: float) -> dict:
    n = len(status)
    counts = np.bincount(status.astype(np.int64), minlength=1) if n else np.zeros(1, np.int64)
    st = {int(c): int(counts[c]) for c in np.flatnonzero(counts)}
    answered = status != 0
    lat = latency if answered.all() and np.isfinite(latency).all() else latency[answered & np.isfinite(latency)]
    if len(lat):
        q = np.quantile(lat, list(QUANTILES.values()))
        lq = {k: float(v) for k, v in zip(QUANTILES, q, strict=True)}
        mean = float(lat.mean())
    else:
        lq = {k: math.nan for k in QUANTILES}
        mean = math.nan
    return _group(n, st, lq, mean, window)


def _from_hist(g, window: float) -> dict:
    g.flush()
    h = g.hist
    if h.count:
        q = h.quantile(list(QUANTILES.values()))
        lq = {k: float(v) for k, v in zip(QUANTILES, q, strict=True)}
        mean = float(h.mean)
    else:
        lq = {k: math.nan for k in QUANTILES}
        mean = math.nan
    return _group(g.n, dict(g.status), lq, mean, window)


def _envoy_stats(status: dict[str, int], local: int = 0) -> dict[str, int]:
    """Envoy's per-cluster request counters from the status mix; ``local`` answers never reached a
    host (overflow, no healthy upstream, fault abort): counted by code, not in ``upstream_rq_total``."""
    out = {"upstream_rq_total": int(sum(status.values())) - int(local)}
    classes: dict[str, int] = {}
    for code, cnt in status.items():
        c = int(code)
        if c == 0:
            continue
        classes[f"upstream_rq_{c // 100}xx"] = classes.get(f"upstream_rq_{c // 100}xx", 0) + cnt
    out.update(dict(sorted(classes.items())))
    for code, cnt in status.items():
        if int(code) != 0:
            out[f"upstream_rq_{code}"] = int(cnt)
    return out


class RunResult:
    """One replication's outcome.

    Attributes
    ----------
    requests
        One row per end-to-end request (``record: full``), else None. Columns:
        request_id, source, start_s, end_s, latency_s, status (0 = unfinished
        when the run stopped), attempts, flags.
    attempts
        One row per attempt (a try from a caller to one host): request_id,
        caller, caller_version, service, version, replica, zone, attempt,
        start_s (sent by the caller), wait_s (queueing at the callee),
        server_s (arrival to response at the callee), end_s (back at the
        caller), latency_s, status, flags (Envoy response flags).
    timeseries
        Per second and service version: arrivals, completions, errors,
        in_flight, queue_len (at the end of the second), utilization,
        ejected and up (replicas up, averaged over the second: a crash shows
        there).
    faults
        The ``chaos:`` block's faults (name, kind, target, detail, replicas,
        start_s, end_s, requests the fault acted on); empty without one.
    summary
        Throughput, success rate, latency quantiles per source, service,
        version and end to end, over the measurement window.

    Notes
    -----
    The rows are kept as packed arrays; the ``requests`` and ``attempts``
    DataFrames are built the first time they are read.
    """

    def __init__(self, scenario, seed: int, replication: int, tables, timeseries: pd.DataFrame,
                 summary: dict, outlier_events: pd.DataFrame | None = None,
                 faults: pd.DataFrame | None = None) -> None:
        self.scenario = scenario
        #: the chaos block's faults: name, kind, target, detail, replicas, start_s, end_s, requests
        #: (requests the fault acted on); empty without a ``chaos:`` block
        self.faults = faults if faults is not None else _faults_frame([])
        #: outlier detection's event log: time_s, service, version, sidecar, host, action, type
        self.outlier_events = outlier_events if outlier_events is not None else _events_frame([])
        self.seed = seed
        self.replication = replication
        self._tables = tables
        self.timeseries = timeseries
        self.summary = summary

    @property
    def requests(self) -> pd.DataFrame | None:
        return None if self._tables is None else self._tables.requests()

    @property
    def attempts(self) -> pd.DataFrame | None:
        return None if self._tables is None else self._tables.attempts()

    def tables(self) -> dict[str, pd.DataFrame | None]:
        out = {"requests": self.requests, "attempts": self.attempts, "timeseries": self.timeseries}
        if len(self.faults):
            out["faults"] = self.faults
        return out

    def __repr__(self) -> str:
        e2e = self.summary.get("end_to_end", {})
        return (f"RunResult(scenario={getattr(self.scenario, 'name', '?')!r}, seed={self.seed}, "
                f"replication={self.replication}, requests={e2e.get('requests')})")

    @classmethod
    def from_simulation(cls, sim) -> RunResult:
        rec = sim.recorder
        tables = rec.tables()
        ts = rec.timeseries_frame()
        summary = _summarize(sim, tables)
        faults = None
        if sim.chaos is not None:
            rows = sim.chaos.rows(sim.t_end)
            faults = _faults_frame(rows)
            summary["faults"] = [dict(zip(FAULT_COLUMNS, row, strict=True)) for row in rows]
        return cls(sim.scenario, sim.seed, sim.replication, tables, ts, summary,
                   _events_frame(sim.outlier_events), faults)


def cluster_keys(svc) -> dict[int, str]:
    """Version id -> the stats key of the cluster a request to that version of ``svc`` is counted on.

    Envoy counts a request on the cluster its route chose: a subset (Istio's ``outbound|80|v1|svc``,
    key ``svc|v1``) when the destination has routes, else the whole service (``outbound|80||svc``,
    key ``svc|*``, or ``svc|default`` for a service without declared versions). A mirror's shadow
    copy is counted on its version's subset whatever the route did.
    """
    if svc.router is None:
        return {v.vid: svc.whole for v in svc.versions}
    return {v.vid: f"{svc.name}|{v.name}" for v in svc.versions}


def sidecar_counters(sim) -> dict[str, dict[str, int]]:
    """Every counter the sidecars and the plain path keep, per cluster (``service|version``, ``service|*``), now.

    Besides the sidecars' clusters: the plain path's connection counts (``upstream_cx_total``,
    ``upstream_cx_http1_total``, summed over its callers' sidecars, see ``Simulation.send``), its
    route timeouts and the resets they make, under the cluster that carried them, and the inbound
    local rate limit's counters under the version that limited.
    """
    out: dict[str, dict[str, int]] = {}

    def add(key: str, source: dict) -> None:
        for name, value in source.items():
            if value and not name.endswith(("_active", "_open")):  # gauges are not counters
                target = out.setdefault(key, {})
                target[name] = target.get(name, 0) + int(value)

    for v in sim.versions:
        add(f"{v.service.name}|{v.name}", v.stats)
    for svc in sim.services.values():
        if svc.stats:
            add(svc.whole, svc.stats)
        if svc.dest is None:
            keys = cluster_keys(svc)
            for h in svc.hosts:
                if h.cx_opened:
                    add(keys[h.ver.vid], {"upstream_cx_total": h.cx_opened, "upstream_cx_http1_total": h.cx_opened})
    for cl in sim.sidecars.clusters.values():
        key = cl.key
        add(key, cl.stats)
        add(key, cl.lb.stats)
        # the breakers' and pools' counters; request totals and codes come from the attempt rows
        add(key, {k: v for k, v in cl.rm.stats.items()
                  if k != "upstream_rq_total" and not k[len("upstream_rq_"):].isdigit()})
        if cl.outlier is not None:
            add(key, cl.outlier.stats)
        for checker in cl.checkers.values():
            add(key, checker.stats)
    return out


def _events_frame(events: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(events, columns=["time_s", "service", "version", "sidecar", "host", "action", "type"])


def _summarize(sim, tables) -> dict:
    scn = sim.scenario
    window = sim.duration - sim.warmup
    out: dict = {
        "scenario": scn.name,
        "seed": sim.seed,
        "replications": 1,
        "duration_s": sim.duration,
        "warmup_s": sim.warmup,
        "window_s": window,
        "end_s": sim.t_end,
    }
    rec = sim.recorder
    full = tables is not None
    if full:
        keep = tables.req_start >= sim.warmup
        r_status, r_lat, r_src = tables.req_status[keep], tables.req_latency[keep], tables.req_source[keep]
        out["end_to_end"] = _from_frame(r_status, r_lat, window)
        out["sources"] = {}
        for i, src in enumerate(sim.sources):
            if len(sim.sources) == 1:  # the one source is the whole end to end
                out["sources"][src.name] = copy.deepcopy(out["end_to_end"])
                continue
            m = r_src == i
            out["sources"][src.name] = _from_frame(r_status[m], r_lat[m], window)
        keep = tables.att_start >= sim.warmup
        svc_codes = tables.att_service[keep]
        ver = tables.att_version[keep]
        hid_kept = tables.att_hid[keep]
        shadow = tables.att_shadow[keep]
        status = tables.att_status[keep]
        lat = tables.att_latency[keep]
    else:
        out["end_to_end"] = _merge_groups(rec.g_src, window)
        out["sources"] = {src.name: _from_hist(rec.g_src[i], window) for i, src in enumerate(sim.sources)}
    services: dict = {}
    stats: dict = {}
    util = sim.utilization_window()
    for si, (sname, svc) in enumerate(sim.services.items()):
        vers = {}
        if full:
            smask = svc_codes == si
            s_all = _from_frame(status[smask], lat[smask], window)
        for v in svc.versions:
            if full:
                m = smask & (ver == v.vid)
                if len(svc.versions) == 1 and np.array_equal(m, smask):
                    vs = copy.deepcopy(s_all)  # the one version is the whole service
                else:
                    vs = _from_frame(status[m], lat[m], window)
            else:
                vs = _from_hist(rec.g_ver[v.vid], window)
            vs["utilization"] = util[v.vid]
            vs["replicas"] = len(v.hosts)
            vs["workers"] = v.hosts[0].workers if v.hosts else 0
            vers[v.name] = vs
            if svc.router is not None:  # routes: each version is its own (subset) cluster
                if full:
                    local = int(np.count_nonzero(m & (hid_kept < 0)))
                else:
                    local = rec.local_replies[v.vid]
                stats[f"{sname}|{v.name}"] = _envoy_stats(vs["status"], local)
        if svc.router is None:  # no routes: one cluster of the whole service; mirrors' shadows on subsets
            stats.update(_whole_cluster_stats(svc, smask & ~shadow if full else None, status if full else None,
                                              hid_kept if full else None, rec))
            for v in svc.versions:
                if full:
                    sh = status[smask & shadow & (ver == v.vid)]
                    counts = {int(c): int(n) for c, n in zip(*np.unique(sh, return_counts=True), strict=True)}
                else:
                    counts = rec.shadow_status.get(v.vid, {})
                if counts:
                    stats[f"{sname}|{v.name}"] = _envoy_stats({str(c): n for c, n in sorted(counts.items())})
        if not full:
            s_all = _merge_groups([rec.g_ver[v.vid] for v in svc.versions] + [rec.g_svc_local[sname]], window)
        total_workers = sum(v.workers_total for v in svc.versions)
        s_all["utilization"] = (sum(util[v.vid] * v.workers_total for v in svc.versions) / total_workers
                                if total_workers else math.nan)
        s_all["versions"] = vers
        services[sname] = s_all
    # counters the sidecars keep (retries, timeouts, overflows, ejections, LB), summed over callers,
    # over the window: what they had counted at the end of the warmup is taken off
    before = getattr(sim, "_stats_at_warmup", {})
    for key, counters in sidecar_counters(sim).items():
        target = stats.setdefault(key, {})
        base = before.get(key, {})
        for name, value in counters.items():
            value -= base.get(name, 0)
            if value:
                target[name] = target.get(name, 0) + value
    out["services"] = services
    out["stats"] = {k: dict(sorted(v.items())) for k, v in stats.items()}
    if sim.warnings:
        out["warnings"] = list(sim.warnings)
    return out


def _whole_cluster_stats(svc, mask, status, hid, rec) -> dict[str, dict[str, int]]:
    """The request counters of ``svc``'s whole-service cluster (a destination without routes).

    Full mode: the attempt rows ``mask`` selects (``status``, ``hid`` < 0 for local replies). Summary
    mode (``mask`` None): the versions' groups and the service's local answers, less the mirrors' shadows.
    """
    counts: dict[int, int] = {}
    if mask is not None:
        codes, n = np.unique(status[mask], return_counts=True)
        counts = {int(c): int(k) for c, k in zip(codes, n, strict=True)}
        local = int(np.count_nonzero(mask & (hid < 0)))
    else:
        groups = [rec.g_ver[v.vid] for v in svc.versions] + [rec.g_svc_local[svc.name]]
        for g in groups:
            g.flush()
            for c, k in g.status.items():
                counts[int(c)] = counts.get(int(c), 0) + int(k)
        for v in svc.versions:
            for c, k in rec.shadow_status.get(v.vid, {}).items():
                counts[c] -= k
        local = sum(rec.local_replies[v.vid] for v in svc.versions) + sum(rec.g_svc_local[svc.name].status.values())
    st = {str(c): k for c, k in sorted(counts.items()) if k}
    return {svc.whole: _envoy_stats(st, local)}


class _Merged:
    """Several groups added up (quacks like ``_Group`` for ``_from_hist``)."""

    def __init__(self, hist, status: dict[int, int], n: int) -> None:
        self.hist = hist
        self.status = status
        self.n = n

    def flush(self) -> None:
        pass


def _merge_groups(groups, window: float) -> dict:
    from meshsim.sim._histogram import LogHistogram

    h = LogHistogram()
    status: dict[int, int] = {}
    n = 0
    for g in groups:
        g.flush()
        h.merge(g.hist)
        n += g.n
        for k, c in g.status.items():
            status[k] = status.get(k, 0) + c

    return _from_hist(_Merged(h, status, n), window)


# ---------------------------------------------------------------------- replications
def _flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def _set(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


_FIXED = {"seed", "replications", "duration_s", "warmup_s", "window_s"}


def combine_summaries(summaries: list[dict], confidence: float = 0.95) -> dict:
    """Mean over replications of every number, with a t confidence interval in ``ci``.

    Counts that are absent from a replication (a status code that did not
    occur) count as zero there. ``ci`` maps dotted paths to ``[low, high]``.
    """
    if len(summaries) == 1:
        return summaries[0]
    warnings = summaries[0].get("warnings")
    faults = summaries[0].get("faults")
    flats = [_flatten(s) for s in summaries]
    keys: list[str] = []
    seen = set()
    for f in flats:
        for k in f:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    out: dict = {"scenario": summaries[0]["scenario"], "seed": summaries[0]["seed"]}
    ci: dict[str, list[float]] = {}
    n = len(summaries)
    tq = float(_st.t.ppf(0.5 + confidence / 2, n - 1))
    for k in keys:
        if k in _FIXED:
            continue
        zero_if_missing = ".status." in k or k.startswith("stats.")
        vals = np.array([f.get(k, 0.0 if zero_if_missing else math.nan) for f in flats], dtype=float)
        vals = vals[np.isfinite(vals)]
        if len(vals) == 0:
            _set(out, k, math.nan)
            continue
        m = float(vals.mean())
        _set(out, k, m)
        if len(vals) > 1 and not k.startswith("stats.") and ".status." not in k and not k.endswith(
                (".replicas", ".workers")):
            half = tq * float(vals.std(ddof=1)) / math.sqrt(len(vals))
            ci[k] = [m - half, m + half]
    out["replications"] = n
    for k in ("duration_s", "warmup_s", "window_s"):
        out[k] = summaries[0][k]
    out["confidence"] = confidence
    out["ci"] = ci
    if faults is not None:  # the timeline is the scenario's; the request counts are the first replication's
        out["faults"] = faults
    if warnings:
        out["warnings"] = warnings
    return out


@dataclass
class RunSet:
    """Replications of one scenario: ``results`` and their combined ``summary``."""

    results: list[RunResult]
    summary: dict

    def tables(self) -> dict[str, pd.DataFrame | None]:
        if len(self.results) == 1:
            return self.results[0].tables()
        out: dict[str, pd.DataFrame | None] = {}
        names = ["requests", "attempts", "timeseries"]
        if any(len(r.faults) for r in self.results):
            names.append("faults")
        for name in names:
            frames = [getattr(r, name) for r in self.results]
            if any(f is None for f in frames):
                out[name] = None
                continue
            out[name] = pd.concat([f.assign(replication=r.replication) for f, r in zip(frames, self.results, strict=True)],
                                  ignore_index=True)
        return out

    @property
    def requests(self):
        return self.tables()["requests"]

    @property
    def attempts(self):
        return self.tables()["attempts"]

    @property
    def timeseries(self):
        return self.tables()["timeseries"]
