"""One run of a scenario on a real Envoy: export, start upstreams and Envoy, drive the traffic, collect.

Scope: the scenario's traffic sources send through one Envoy (the exported ``ingress`` proxy) to
its entry services, whose replicas are the stand-in servers of :mod:`._upstream`. An entry service
whose script calls other services, sleeps or works twice is refused: the stand-ins serve one draw
of the version's latency and error models, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meshsim.conformance._client import LoadSpec, run_load
from meshsim.conformance._envoy import (
    admin_get,
    envoy_binary,
    instrument,
    parse_stats,
    read_access_log,
    read_outlier_events,
)
from meshsim.conformance._procs import Child, ConformanceError, free_port_block
from meshsim.conformance._upstream import LOG_COLUMNS, ReplicaSpec, UpstreamSpec

__all__ = ["RealRun", "run_real", "check_scope", "cluster_sim_keys"]


@dataclass
class RealRun:
    """What one real-Envoy run produced.

    Attributes
    ----------
    requests
        Client rows joined with the access log: request_id, start_s, end_s, latency_s, status,
        overloaded, flags, attempts, duration_ms, upstream_host, host (``service/version/replica``).
    attempts
        Upstream rows, one per attempt a replica received: service, version, replica, request_id,
        arrival_s, start_s, end_s, drawn_s, status.
    stats
        ``{sim cluster key (service|version or service|*): {stat: value}}`` from ``/stats``.
    outlier_events
        time_s, host, action (eject/uneject), type, from Envoy's outlier event log.
    bootstrap
        The Envoy bootstrap that ran.
    notes
        What the exporter reported as unsupported, and the harness's patches.
    """

    requests: pd.DataFrame
    attempts: pd.DataFrame
    stats: dict[str, dict[str, int]]
    outlier_events: pd.DataFrame
    bootstrap: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    seed: int = 0
    wall_s: float = 0.0


def check_scope(scenario) -> None:
    """Refuse a scenario the harness cannot stand in for (see the module docstring)."""
    from meshsim.config import Work

    for svc in scenario.entry_services():
        for v, rv in scenario.services[svc].resolved_versions(svc).items():
            steps = rv.script
            if len(steps) != 1 or not isinstance(steps[0], Work) or steps[0].latency is not None:
                raise ConformanceError(
                    f"services.{svc} ({v}): the conformance harness serves entry services whose script is one "
                    "`work` step (no calls, sleeps or extra work); got " + ", ".join(type(s).__name__ for s in steps)
                )
    for src in scenario.traffic:
        if src.schedule is not None and src.rate is None:
            raise ConformanceError(f"traffic.{src.name}: schedules are not driven by the harness; give a rate or users")


def cluster_sim_keys(scenario, port: int = 80) -> dict[str, str]:
    """Exported cluster name -> the simulator's stats key (``service|version``, ``service|*``).

    The simulator counts on the cluster Envoy would use (``meshsim.sim._result.cluster_keys``): the
    whole service ``outbound|80||svc`` is ``svc|*`` (``svc|default`` for a service without declared
    versions), a subset ``outbound|80|v1|svc`` is ``svc|v1``.
    """
    from meshsim.policies import routing

    out = {}
    for svc, spec in scenario.services.items():
        out[routing.cluster_name(svc, "default", port=port)] = f"{svc}|*" if spec.versions else f"{svc}|default"
        for v in spec.versions or {}:
            out[routing.cluster_name(svc, v, port=port)] = f"{svc}|{v}"
    return out


def _replica_specs(scenario, ports: dict[tuple[str, str, int], int], seed: int) -> list[ReplicaSpec]:
    out = []
    entry = set(scenario.entry_services())
    for k, ((svc, v, i), port) in enumerate(sorted(ports.items(), key=lambda kv: kv[1])):
        if svc not in entry:
            continue
        rv = scenario.services[svc].resolved_versions(svc)[v]
        rseed = int(np.random.SeedSequence([seed, 1, k]).generate_state(1)[0])
        out.append(ReplicaSpec(svc, v, i, port, rv.workers, rv.queue, rv.latency, rv.errors, rseed))
    return out


def _load_specs(scenario, port: int, seed: int, max_requests: int, duration: float | None,
                request_timeout: float) -> list[LoadSpec]:
    specs = []
    for k, src in enumerate(scenario.traffic):
        headers = tuple((h, next(iter(vals))) for h, vals in src.headers.items()
                        if len(vals) == 1 and next(iter(vals.values())) >= 1.0)
        specs.append(LoadSpec(
            port=port, host=src.to, path=src.path, method=src.method,
            rate=src.rate, arrivals=src.arrivals or "poisson", users=src.users, think=src.think,
            duration=float(duration if duration is not None else scenario.duration),
            max_requests=max_requests, request_timeout=request_timeout, drain=request_timeout,
            seed=int(np.random.SeedSequence([seed, 2, k]).generate_state(1)[0]), headers=headers,
        ))
    return specs


def run_real(scenario, *, seed: int = 0, concurrency: int = 1, max_requests: int = 20000,
             duration: float | None = None, cluster_patch: dict[str, Any] | None = None,
             request_timeout: float = 20.0, workdir: Path | None = None, keep: bool = False,
             ready_timeout: float = 15.0) -> RealRun:
    """Run ``scenario``'s traffic through a real Envoy on loopback once.

    Parameters
    ----------
    scenario
        A one-hop scenario (:func:`check_scope`).
    seed
        Seeds the upstreams' latency/error streams and the arrivals (not the simulator's).
    concurrency
        Envoy ``--concurrency`` (worker threads); 1 matches the simulator's one sidecar worker.
    max_requests, duration
        Caps on the load (per traffic source); ``duration`` defaults to the scenario's.
    cluster_patch
        Cluster fields merged into every exported cluster (a field the scenario cannot express).
    request_timeout
        Client-side bound on each request and on the final drain.
    workdir, keep
        Where to write the bootstrap and logs (a temporary directory by default, removed unless ``keep``).

    Raises
    ------
    ConformanceError
        Envoy missing, not ready in time, or a port collision that persisted.
    """
    from meshsim.envoy import sidecar_names

    check_scope(scenario)
    names = sidecar_names(scenario)
    with run_workdir(workdir, keep) as wd:
        exported = export_static(scenario, names)
        notes, boots, ports = exported.notes, exported.boots, exported.endpoints
        sp = exported.sidecars[names[0]]
        access_log, outlier_log = wd / "access.log", wd / "outlier_events.log"
        for stale in (access_log, outlier_log, wd / "upstream.jsonl"):
            stale.unlink(missing_ok=True)  # Envoy appends; a kept workdir must not mix runs
        boot = instrument(boots[names[0]], access_log=access_log, outlier_log=outlier_log,
                          cluster_patch=cluster_patch)
        if cluster_patch:
            notes.append(f"harness patch on every cluster: {json.dumps(cluster_patch)}")
        cfg = wd / "envoy.json"
        cfg.write_text(json.dumps(boot, indent=1))
        t0 = time.monotonic()
        wall_t0 = time.time() - (time.monotonic() - t0)
        up_spec = UpstreamSpec(_replica_specs(scenario, ports, seed), t0=t0, log_path=str(wd / "upstream.jsonl"),
                               max_seconds=(duration or scenario.duration) + 3 * request_timeout + 60)
        (wd / "upstream.pickle").write_bytes(pickle.dumps(up_spec))
        loads = _load_specs(scenario, sp.outbound, seed, max_requests, duration, request_timeout)
        envoy_argv = [envoy_binary(), "-c", str(cfg), "--concurrency", str(concurrency), "--disable-hot-restart",
                      "--file-flush-interval-msec", "100", "-l", "warning", "--log-path", str(wd / "envoy.log")]
        started = time.monotonic()
        with Child([sys.executable, "-m", "meshsim.conformance._upstream", str(wd / "upstream.pickle")],
                   stderr=wd / "upstream.err") as up:
            up.wait_line("ready", timeout=ready_timeout)
            with Child(envoy_argv, stdout=wd / "envoy.out", stderr=wd / "envoy.err") as envoy:
                _wait_ready(envoy, sp.admin, ready_timeout, wd)
                rows = run_load(loads, t0)
                stats_text = admin_get(sp.admin, "/stats")
                time.sleep(0.4)  # access log flush interval is 100 ms
            up.stop()
        wall = time.monotonic() - started
        keys = cluster_sim_keys(scenario)
        stats = {keys.get(c, c): v for c, v in parse_stats(stats_text).items()}
        port_host = {p: f"{s}/{v}/{i}" for (s, v, i), p in ports.items()}
        requests = _join_requests(rows, read_access_log(access_log), port_host)
        attempts = _upstream_frame(wd / "upstream.jsonl")
        events = _events_frame(read_outlier_events(outlier_log, wall_t0), port_host)
        return RealRun(requests, attempts, stats, events, boot, notes, seed, wall)


@contextlib.contextmanager
def run_workdir(workdir: Path | None, keep: bool) -> Iterator[Path]:
    """The run's directory: ``workdir`` as given, or a temporary one removed afterwards unless ``keep``."""
    tmp_ctx = tempfile.TemporaryDirectory(prefix="meshsim-conformance-") if workdir is None else None
    wd = Path(tmp_ctx.name) if tmp_ctx is not None else Path(workdir)  # type: ignore[arg-type]
    wd.mkdir(parents=True, exist_ok=True)
    try:
        yield wd
    finally:
        if tmp_ctx is not None and not keep:
            tmp_ctx.cleanup()


@dataclass
class StaticExport:
    """A scenario exported for loopback: bootstraps per proxy, the exporter's notes, and the ports."""

    boots: dict[str, Any]
    notes: list[str]
    endpoints: dict[tuple[str, str, int], int]  # (service, version, replica) -> port
    sidecars: dict[str, Any]  # proxy name -> its ports (outbound, inbound, admin, ...)


def export_static(scenario, names: list[str]) -> StaticExport:
    """Export ``scenario`` with static 127.0.0.1 endpoints on a free block of ports."""
    from meshsim.envoy import endpoint_ports, export_envoy, sidecar_ports

    n_replicas = sum(rv.replicas for s, spec in scenario.services.items()
                     for rv in spec.resolved_versions(s).values())
    notes: list[str] = []
    base = free_port_block(4 * len(names) + n_replicas)
    sidecar_base, endpoint_base = base, base + 4 * len(names)
    boots = export_envoy(scenario, endpoints="static", sidecar_base_port=sidecar_base,
                         endpoint_base_port=endpoint_base, on_unsupported=lambda n: notes.append(str(n)))
    return StaticExport(boots, notes, endpoint_ports(scenario, base_port=endpoint_base),
                        sidecar_ports(scenario, names, base_port=sidecar_base, endpoint_base_port=endpoint_base))


def _wait_ready(envoy: Child, admin: int, timeout: float, wd: Path) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if envoy.proc is not None and envoy.proc.poll() is not None:
            err = (wd / "envoy.log").read_text()[-2000:] if (wd / "envoy.log").exists() else ""
            raise ConformanceError(f"envoy exited with code {envoy.proc.returncode}: {err.strip()}")
        try:
            if admin_get(admin, "/ready", timeout=1.0).strip() == "LIVE":
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise ConformanceError(f"envoy admin on port {admin} not ready within {timeout:g} s ({last})")


def _join_requests(rows, log: list[dict[str, Any]], port_host: dict[int, str]) -> pd.DataFrame:
    df = pd.DataFrame([r.__dict__ for r in rows],
                      columns=["request_id", "start_s", "end_s", "status", "overloaded", "conn"])
    df["latency_s"] = df["end_s"] - df["start_s"]
    if log:
        al = pd.DataFrame(log)
        al = al[al["id"].astype(str).str.fullmatch(r"\d+")].copy()
        al["request_id"] = al["id"].astype(int)
        al["flags"] = al["flags"].replace("-", "")
        al["attempts"] = pd.to_numeric(al["attempts"], errors="coerce").fillna(0).astype(int)
        al["duration_ms"] = pd.to_numeric(al["duration_ms"], errors="coerce")
        al["host"] = al["upstream_host"].map(lambda h: port_host.get(int(h.rsplit(":", 1)[1]), "")
                                             if isinstance(h, str) and ":" in h else "")
        al = al.drop_duplicates("request_id")
        df = df.merge(al[["request_id", "flags", "attempts", "duration_ms", "upstream_host", "host", "details"]],
                      on="request_id", how="left")
    else:
        for c in ("flags", "upstream_host", "host", "details"):
            df[c] = ""
        df["attempts"] = 0
        df["duration_ms"] = np.nan
    df["flags"] = df["flags"].fillna("")
    return df


def _upstream_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    df["request_id"] = pd.to_numeric(df["request_id"], errors="coerce")
    df["host"] = df["service"] + "/" + df["version"] + "/" + df["replica"].astype(str)
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True)


def _events_frame(events: list[dict[str, Any]], port_host: dict[int, str]) -> pd.DataFrame:
    rows = []
    for ev in events:
        addr = str(ev.get("upstream_url", ev.get("upstream_host", "")))
        port = addr.rsplit(":", 1)[-1]
        host = port_host.get(int(port), addr) if port.isdigit() else addr
        rows.append({"time_s": ev["time_s"], "host": host, "action": str(ev.get("action", "")).lower(),
                     "type": str(ev.get("type", "")).lower(), "cluster": ev.get("cluster_name", "")})
    return pd.DataFrame(rows, columns=["time_s", "host", "action", "type", "cluster"])
