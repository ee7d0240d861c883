"""Multi-hop scenarios on real Envoys: the ingress proxy, one sidecar per calling service, stand-ins.

A scenario whose services call others (``scenarios/bookinfo.yaml``) is run as a small mesh on
loopback:

* the exported ``ingress`` bootstrap (:func:`meshsim.envoy.export_envoy`, static endpoints) takes
  the traffic sources' requests to the entry services;
* every service that calls another gets its own Envoy: its exported sidecar bootstrap, whose
  outbound listener routes by ``Host`` to the destinations' clusters (``--concurrency 1``,
  ``--disable-hot-restart``, admin on ``127.0.0.1``, its own ports);
* every service's replicas are stand-ins (:mod:`._standin`, one process per service) that run the
  version's whole script as the simulator does and send their calls through their service's
  sidecar.

Observation (:func:`observe_real_multihop` and :func:`observe_sim_multihop` measure both sides the
same way) adds to the single-hop metrics of :mod:`._compare` (success rate, status and flag mix and
latency at the entry, the entry clusters' counters):

* ``rq[service|version]/rq``: requests each version's replicas received, per end-to-end request;
* ``share[service/version/replica]``: each replica's share of its service's requests;
* ``caller[<caller>><cluster>].<counter>/rq``: per caller (``ingress`` for the traffic sources)
  and cluster, the upstream requests, their 2xx/5xx answers, retries and successful retries,
  from each Envoy's ``/stats`` and from the simulator's attempt rows;
* ``cluster[<cluster>].<counter>/rq``: the sidecar counters of :data:`._compare.STAT_NAMES` summed
  over every caller, from every Envoy's ``/stats`` and the simulator's summary.

A counter is compared only where both sides keep it alike: ``upstream_cx_*`` only for clusters where
the simulator models a connection pool (it reports ``upstream_cx_total`` there; a destination
without policies took the simulator's plain path, which had none: finding D3), and not for a
service more than one replica calls (the simulator keeps a sidecar, so a pool, per calling
replica; the harness one Envoy per calling service).

The latency tolerance of :func:`meshsim.conformance.compare` allows twice the real path's own
time; here that is the whole path's: client latency minus the entry replica's served time, plus
what every stand-in measured as its own (how late its sleeps ended, and each call's round trip
minus the callee's served time net of the callee's own).

Limits: one Envoy per service stands in for one sidecar per replica (the simulator keeps a
sidecar per calling replica: breakers, outlier detection and least-request state are per caller
there); ``network.latency`` is loopback plus Envoy's own time (not served by the stand-ins, the
``cross_zone`` extra is); schedules, chaos faults and local rate limits are refused.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meshsim.conformance._client import LoadSpec, run_load
from meshsim.conformance._compare import STAT_NAMES, Observation, _common, ks_distance
from meshsim.conformance._envoy import admin_get, envoy_binary, instrument, parse_stats, read_access_log
from meshsim.conformance._procs import Child, ConformanceError
from meshsim.conformance._real import (
    RealRun,
    _events_frame,
    _join_requests,
    _wait_ready,
    cluster_sim_keys,
    export_static,
    run_workdir,
)
from meshsim.conformance._standin import (
    CALLER_HEADER,
    LOG_COLUMNS,
    ZONE_HEADER,
    StandInReplica,
    StandInSpec,
    compile_script,
)

__all__ = ["MultiHopRun", "is_multihop", "check_multihop_scope", "run_real_multihop", "observe_real_multihop",
           "observe_sim_multihop", "CALLER_STATS", "INGRESS_CALLER"]

#: the per-caller cluster counters compared
CALLER_STATS = ("upstream_rq_total", "upstream_rq_2xx", "upstream_rq_5xx", "upstream_rq_retry",
                "upstream_rq_retry_success")
#: the caller name of the traffic sources (they send through the ingress proxy)
INGRESS_CALLER = "ingress"


def _calls(steps) -> list[str]:
    from meshsim.config import Call, Parallel

    out = []
    for s in steps:
        if isinstance(s, Call):
            out.append(s.service)
        elif isinstance(s, Parallel):
            out.extend(c.service for c in s.parallel)
    return out


def callers(scenario) -> list[str]:
    """Services whose script (in some version) calls another service, in the scenario's order."""
    return [s for s, spec in scenario.services.items()
            if any(_calls(rv.script) for rv in spec.resolved_versions(s).values())]


def is_multihop(scenario) -> bool:
    """True when a service script does more than one plain ``work`` step (calls, sleeps, more work)."""
    from meshsim.config import Work

    for svc in scenario.entry_services():
        for rv in scenario.services[svc].resolved_versions(svc).values():
            st = rv.script
            if len(st) != 1 or not isinstance(st[0], Work) or st[0].latency is not None:
                return True
    return False


def check_multihop_scope(scenario) -> None:
    """Refuse what the multi-hop harness cannot stand in for (see the module docstring)."""
    for src in scenario.traffic:
        if src.schedule is not None and src.rate is None:
            raise ConformanceError(f"traffic.{src.name}: schedules are not driven by the harness; give a rate or users")
    if scenario.chaos:
        raise ConformanceError("chaos: the conformance harness does not inject faults; remove the chaos block")
    for svc in scenario.services:
        if getattr(scenario.mesh_for(svc), "rate_limit", None) is not None:
            raise ConformanceError(f"mesh.{svc}.rate_limit: local rate limits sit on the inbound side, "
                                   "which the multi-hop harness does not run")


# ------------------------------------------------------------------------------------------- the run
@dataclass
class MultiHopRun(RealRun):
    """A :class:`~meshsim.conformance.RealRun` of a multi-hop scenario: ``bootstrap`` is the ingress
    proxy's, ``proxies`` every proxy's that ran (name -> bootstrap, the ingress first)."""

    proxies: dict[str, dict[str, Any]] = field(default_factory=dict)


def _standin_specs(scenario, ports: dict[tuple[str, str, int], int], outbound: dict[str, int], seed: int,
                   t0: float, wd: Path, request_timeout: float, max_seconds: float) -> list[StandInSpec]:
    xz = scenario.network.cross_zone
    xz = None if getattr(xz, "type", None) == "constant" and float(xz.value) == 0.0 else xz
    index = {key: k for k, key in enumerate(sorted(ports, key=ports.__getitem__))}
    out = []
    for svc, spec in scenario.services.items():
        reps = []
        for v, rv in spec.resolved_versions(svc).items():
            has_err = rv.errors is not None and float(rv.errors.rate) > 0
            script = compile_script(rv.script, has_errors=has_err)
            for i in range(rv.replicas):
                rseed = int(np.random.SeedSequence([seed, 1, index[(svc, v, i)]]).generate_state(1)[0])
                reps.append(StandInReplica(svc, v, i, ports[(svc, v, i)], rv.zones[i] if rv.zones else None,
                                           rv.workers, rv.queue, rv.concurrency == "blocking", rv.latency,
                                           rv.errors, script, rseed))
        out.append(StandInSpec(svc, reps, outbound.get(svc), t0, str(wd / f"standin-{svc}.jsonl"), cross_zone=xz,
                               max_depth=scenario.max_depth, request_timeout=request_timeout,
                               max_seconds=max_seconds))
    return out


def _load_specs(scenario, port: int, seed: int, max_requests: int, duration: float | None,
                request_timeout: float) -> list[LoadSpec]:
    specs = []
    for k, src in enumerate(scenario.traffic):
        mix = tuple((h, tuple((val, float(f)) for val, f in vals.items())) for h, vals in (src.headers or {}).items())
        fixed = ((CALLER_HEADER, src.name), (ZONE_HEADER, getattr(src, "zone", None) or ""))
        specs.append(LoadSpec(
            port=port, host=src.to, path=src.path or "/", method=src.method or "GET",
            rate=src.rate, arrivals=src.arrivals or "poisson", users=src.users, think=src.think,
            duration=float(duration if duration is not None else scenario.duration),
            max_requests=max_requests, request_timeout=request_timeout, drain=request_timeout,
            seed=int(np.random.SeedSequence([seed, 2, k]).generate_state(1)[0]), headers=fixed, header_mix=mix,
        ))
    return specs


def run_real_multihop(scenario, *, seed: int = 0, concurrency: int = 1, max_requests: int = 20000,
                      duration: float | None = None, cluster_patch: dict[str, Any] | None = None,
                      request_timeout: float = 20.0, workdir: Path | None = None, keep: bool = False,
                      ready_timeout: float = 20.0) -> MultiHopRun:
    """Run ``scenario``'s traffic once through the ingress Envoy, one Envoy per calling service and
    the stand-ins (parameters as :func:`meshsim.conformance.run_real`).

    The returned run's ``stats`` holds the ingress proxy's clusters under the simulator's keys (as a
    single-hop run does) and every proxy's as ``<proxy>><key>``; ``attempts`` holds every request a
    stand-in replica served (with ``caller``, ``served_s``, ``overhead_s``); ``proxies`` maps
    each proxy that ran to its bootstrap.
    """
    from meshsim.envoy import sidecar_names

    check_multihop_scope(scenario)
    names = sidecar_names(scenario)
    ingress = names[0]
    proxies = [ingress, *callers(scenario)]
    with run_workdir(workdir, keep) as wd:
        exported = export_static(scenario, names)
        notes, boots, ports, sp = exported.notes, exported.boots, exported.endpoints, exported.sidecars
        ran: dict[str, dict[str, Any]] = {}
        for svc in scenario.services:
            (wd / f"standin-{svc}.jsonl").unlink(missing_ok=True)  # a kept workdir must not mix runs
        for p in proxies:
            for stale in (wd / f"access-{p}.log", wd / f"outlier-{p}.log"):
                stale.unlink(missing_ok=True)  # Envoy appends
            ran[p] = instrument(boots[p], access_log=wd / f"access-{p}.log", outlier_log=wd / f"outlier-{p}.log",
                                cluster_patch=cluster_patch)
            (wd / f"envoy-{p}.json").write_text(json.dumps(ran[p], indent=1))
        if cluster_patch:
            notes.append(f"harness patch on every cluster: {json.dumps(cluster_patch)}")
        t0 = time.monotonic()
        wall_t0 = time.time() - (time.monotonic() - t0)
        run_s = float(duration if duration is not None else scenario.duration)
        specs = _standin_specs(scenario, ports, {p: sp[p].outbound for p in proxies[1:]}, seed, t0, wd,
                               request_timeout, run_s + 3 * request_timeout + 60)
        loads = _load_specs(scenario, sp[ingress].outbound, seed, max_requests, duration, request_timeout)
        started = time.monotonic()
        stats: dict[str, dict[str, int]] = {}
        keys = cluster_sim_keys(scenario)
        with contextlib.ExitStack() as stack:
            standins = []
            for s in specs:
                (wd / f"standin-{s.service}.pickle").write_bytes(pickle.dumps(s))
                child = stack.enter_context(Child(
                    [sys.executable, "-m", "meshsim.conformance._standin", str(wd / f"standin-{s.service}.pickle")],
                    stderr=wd / f"standin-{s.service}.err"))
                standins.append(child)
            for child in standins:
                child.wait_line("ready", timeout=ready_timeout)
            envoys = {}
            for p in proxies:
                argv = [envoy_binary(), "-c", str(wd / f"envoy-{p}.json"), "--concurrency", str(concurrency),
                        "--disable-hot-restart", "--file-flush-interval-msec", "100", "-l", "warning",
                        "--log-path", str(wd / f"envoy-{p}.log")]
                envoys[p] = stack.enter_context(Child(argv, stdout=wd / f"envoy-{p}.out",
                                                      stderr=wd / f"envoy-{p}.err"))
            for p, env in envoys.items():
                try:
                    _wait_ready(env, sp[p].admin, ready_timeout, wd)
                except ConformanceError as exc:
                    log = wd / f"envoy-{p}.log"
                    tail = log.read_text()[-1500:].strip() if log.exists() else ""
                    raise ConformanceError(f"proxy {p}: {exc} {tail}".strip()) from exc
            rows = run_load(loads, t0)
            for p in proxies:
                for cluster, counters in parse_stats(admin_get(sp[p].admin, "/stats")).items():
                    if cluster in keys:
                        stats[f"{p}>{keys[cluster]}"] = counters
                        if p == ingress:
                            stats[keys[cluster]] = counters
            time.sleep(0.4)  # access log flush interval is 100 ms
            for s, child in zip(specs, standins, strict=True):
                code = child.stop()  # SIGTERM: each writes its log
                if code != 0:
                    err = wd / f"standin-{s.service}.err"
                    tail = err.read_text()[-1500:].strip() if err.exists() else ""
                    raise ConformanceError(f"the stand-ins of {s.service} exited with code {code}: {tail}")
        wall = time.monotonic() - started
        port_host = {p: f"{s}/{v}/{i}" for (s, v, i), p in ports.items()}
        requests = _join_requests(rows, read_access_log(wd / f"access-{ingress}.log"), port_host)
        attempts = _standin_frame([wd / f"standin-{s.service}.jsonl" for s in specs])
        events = pd.concat([_events_frame(_read_events(wd / f"outlier-{p}.log", wall_t0), port_host).assign(sidecar=p)
                            for p in proxies], ignore_index=True)
        return MultiHopRun(requests, attempts, stats, events, ran[ingress], notes, seed, wall, proxies=ran)


def _read_events(path: Path, wall_t0: float) -> list[dict[str, Any]]:
    from meshsim.conformance._envoy import read_outlier_events

    return read_outlier_events(path, wall_t0)


def _standin_frame(paths: Sequence[Path]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for path in paths:
        if path.exists():
            rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    df = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    df["request_id"] = pd.to_numeric(df["request_id"], errors="coerce")
    df["host"] = df["service"] + "/" + df["version"] + "/" + df["replica"].astype(str)
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------- observation
def version_clusters(scenario) -> dict[tuple[str, str, str], str]:
    """``(caller, service, version) -> exported cluster name``: which cluster of the caller's proxy a
    request to that version goes through (the version's subset, or the whole-service cluster)."""
    from meshsim.envoy import export_envoy, sidecar_names
    from meshsim.policies import routing

    boots = export_envoy(scenario, endpoints="static", on_unsupported=lambda _n: None)
    names = sidecar_names(scenario)
    out = {}
    for caller in [names[0], *callers(scenario)]:
        have = {c["name"] for c in boots[caller]["static_resources"]["clusters"]}
        for svc, spec in scenario.services.items():
            whole = routing.cluster_name(svc, "default", port=80)
            for v in spec.resolved_versions(svc):
                sub = routing.cluster_name(svc, v, port=80)
                name = sub if sub in have else whole if whole in have else None
                if name is not None:
                    out[(INGRESS_CALLER if caller == names[0] else caller, svc, v)] = name
    return out


def _per_service(obs: Observation, att: pd.DataFrame, n: int) -> None:
    """rq[svc|ver]/rq and share[svc/ver/i] (within the service) from rows service, version, host."""
    if not len(att):
        return
    for (svc, ver), c in att.groupby(["service", "version"], observed=True).size().items():
        if c:
            obs.metrics[f"rq[{svc}|{ver}]/rq"] = c / max(n, 1)
            obs.counts[f"rq[{svc}|{ver}]/rq"] = n
    for _svc, part in att.groupby("service", observed=True):
        if not len(part):
            continue
        for h, v in part["host"].value_counts(normalize=True).items():
            if v:
                obs.metrics[f"share[{h}]"] = float(v)
                obs.counts[f"share[{h}]"] = len(part)


def _drop_entry_shares(obs: Observation) -> None:
    for k in [k for k in obs.metrics if k.startswith("share[")]:
        del obs.metrics[k]
        obs.counts.pop(k, None)


def observe_real_multihop(run: RealRun, scenario, clusters: Sequence[str]) -> Observation:
    """A multi-hop real run measured (``clusters``: the entry clusters' simulator keys)."""
    req = run.requests.copy()
    att = run.attempts
    obs = _common("real", req, att.iloc[0:0].assign(host=[]), run.stats, clusters)
    _drop_entry_shares(obs)
    n = obs.n
    _per_service(obs, att, n)
    for key, counters in run.stats.items():
        caller, sep, cl = key.partition(">")
        if not sep:
            continue
        who = INGRESS_CALLER if caller not in scenario.services else caller
        for s in CALLER_STATS:
            if counters.get(s, 0):
                obs.metrics[f"caller[{who}>{cl}].{s}/rq"] = counters[s] / max(n, 1)
        for s in STAT_NAMES:
            if s != "upstream_rq_total" and counters.get(s, 0):
                name = f"cluster[{cl}].{s}/rq"
                obs.metrics[name] = obs.metrics.get(name, 0.0) + counters[s] / max(n, 1)
    _served(obs, att, att["end_s"] - att["arrival_s"] if len(att) else None)
    # the whole path's own time, for single-try answered requests: client latency minus the entry
    # replica's served time, plus what the stand-ins measured below it
    if len(att):
        entry = att[att["caller"].isin([s.name for s in scenario.traffic])]
        one = entry.groupby("request_id").agg(served=("served_s", "sum"), over=("overhead_s", "sum"),
                                              count=("served_s", "size"))
        j = req.merge(one, left_on="request_id", right_index=True, how="inner")
        j = j[(j["count"] == 1) & (j["attempts"] == 1) & (j["status"] > 0)]
        obs.overhead_s = (j["latency_s"] - j["served"] + j["over"]).to_numpy(dtype=float)
        ok_rows = att[(att["note"] != "queue_full") & (att["drawn_s"] > 0)]
        if len(ok_rows) > 5:
            d, _ = ks_distance(ok_rows["worked_s"].to_numpy(dtype=float), ok_rows["drawn_s"].to_numpy(dtype=float))
            obs.extra["timer_ks"] = d
    obs.extra["outlier_events"] = run.outlier_events
    obs.extra["attempts"] = att
    obs.extra["requests"] = req
    return obs


def observe_sim_multihop(result, scenario, clusters: Sequence[str],
                         vclusters: dict[tuple[str, str, str], str]) -> Observation:
    """A simulator run of a multi-hop scenario measured the same way (``vclusters``:
    :func:`version_clusters`)."""
    req = result.requests.copy()
    req["flags"] = req["flags"].astype(str)
    # the simulator keys its counters by the cluster Envoy counts them on, as cluster_sim_keys names
    # Envoy's (see observe_sim): compared as they are
    raw = result.summary.get("stats", {})
    att_all = result.attempts
    obs = _common("sim", req, att_all.iloc[0:0].assign(host=[]), raw, clusters)
    _drop_entry_shares(obs)
    n = obs.n
    att = att_all[att_all["replica"] >= 0].copy()
    att["host"] = att["service"].astype(str) + "/" + att["version"].astype(str) + "/" + att["replica"].astype(str)
    att["service"] = att["service"].astype(str)
    att["version"] = att["version"].astype(str)
    _per_service(obs, att, n)
    _served(obs, att, att["server_s"] if len(att) else None)
    # per caller and cluster, from the attempt rows (as each caller's proxy counts them)
    sources = {s.name for s in scenario.traffic}
    keys = cluster_sim_keys(scenario)
    a = att_all.copy()
    a["who"] = a["caller"].astype(str).map(lambda c: INGRESS_CALLER if c in sources else c)
    a["cl"] = [keys.get(vclusters.get((w, str(s), str(v)), ""), "") for w, s, v in
               zip(a["who"], a["service"], a["version"], strict=True)]
    a = a[a["cl"] != ""]
    hit = a["replica"] >= 0
    st = a["status"].astype(int)
    # Envoy charges a response class only to the answer the caller got, not to a try it retried
    nxt = set(zip(a["request_id"], a["caller"].astype(str), a["service"].astype(str), a["attempt"] - 1,
                  strict=True))
    retried = pd.Series([k in nxt for k in zip(a["request_id"], a["caller"].astype(str), a["service"].astype(str),
                                                a["attempt"], strict=True)], index=a.index)
    cols = {
        "upstream_rq_total": hit,
        "upstream_rq_2xx": hit & (st >= 200) & (st < 300),
        "upstream_rq_5xx": hit & (st >= 500) & (st < 600) & ~retried,
        "upstream_rq_retry": hit & (a["attempt"] > 1),
        "upstream_rq_retry_success": hit & (a["attempt"] > 1) & (st >= 200) & (st < 300),
    }
    for s, mask in cols.items():
        for (who, cl), c in a[mask].groupby(["who", "cl"]).size().items():
            if c:
                obs.metrics[f"caller[{who}>{cl}].{s}/rq"] = c / max(n, 1)
    for key, counters in raw.items():
        for s in STAT_NAMES:
            if s != "upstream_rq_total" and counters.get(s, 0):
                obs.metrics[f"cluster[{key}].{s}/rq"] = counters[s] / max(n, 1)
    obs.extra["outlier_events"] = result.outlier_events
    obs.extra["attempts"] = att
    obs.extra["requests"] = req
    return obs


def calling_replicas(scenario) -> dict[str, int]:
    """Destination service -> how many replicas (of every caller) have a script that calls it: the
    simulator's sidecars towards it (one per calling replica); the harness runs one Envoy per
    calling service."""
    out: dict[str, int] = {}
    for svc, spec in scenario.services.items():
        for rv in spec.resolved_versions(svc).values():
            for dest in dict.fromkeys(_calls(rv.script)):
                out[dest] = out.get(dest, 0) + rv.replicas
    return out


def drop_unmodelled(real: list[Observation], sim: list[Observation], scenario=None) -> list[str]:
    """Remove the ``upstream_cx_*`` metrics the two sides do not count alike; the names removed.

    * clusters where no simulated run counts a connection (the simulator's plain path models no
      pool, finding D3);
    * clusters of a service that more than one replica calls (with ``scenario``): the simulator
      keeps a connection pool per calling replica's sidecar, the harness runs one Envoy per calling
      service, so connection counts differ by construction.
    """
    gone = []
    shared = {d for d, n in calling_replicas(scenario).items() if n > 1} if scenario is not None else set()
    names = {k for o in [*real, *sim] for k in o.metrics if ".upstream_cx_" in k or k.startswith("upstream_cx_")}
    for name in sorted(names):
        head = name.split(".upstream_cx_")[0] if ".upstream_cx_" in name else ""
        total = f"{head}.upstream_cx_total/rq" if head else "upstream_cx_total/rq"
        dest = head[len("cluster["):].split("|")[0] if head.startswith("cluster[") else None
        if dest in shared or not any(o.metrics.get(total, 0.0) > 0 for o in sim):
            gone.append(name)
            for o in [*real, *sim]:
                o.metrics.pop(name, None)
                o.counts.pop(name, None)
    return gone


def _served(obs: Observation, att: pd.DataFrame, served: pd.Series | None) -> None:
    """``served_p50[svc]_ms``: the median time from a request's arrival at a replica to its response
    (queueing, work, calls below; not the network legs), per service."""
    if served is None or not len(att):
        return
    x = pd.DataFrame({"service": att["service"].astype(str).to_numpy(), "s": served.to_numpy(dtype=float)})
    for svc, part in x.groupby("service"):
        v = part["s"].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        if len(v):
            obs.metrics[f"served_p50[{svc}]_ms"] = float(np.median(v) * 1e3)
