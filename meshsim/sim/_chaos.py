"""Chaos actuators: the scenario's ``chaos:`` faults applied to the running engine.

A scenario without a ``chaos:`` block never builds a :class:`Chaos`, and the
engine's hot path is exactly what it is without this module. With one, the
engine's four entry points for a request at a replica are replaced on the
``Simulation`` instance by the chaos-aware versions below (``_arrive``,
``_respond``, ``_call_done``, ``_par_done``), which do their checks and hand
over to the engine's own methods; every fault changes only the replicas it
targets, and those take the engine's general path (not the single-work-step
fast path), which gives the same results.

What each fault does (times are simulated seconds; "the caller" is the
sidecar or plain path that sent the request):

``crash``
    At the start every attempt at the replica is lost: queued ones,
    working ones and those waiting for their own calls. Workers and queue
    are freed and emptied at once; the attempts' pending events become
    no-ops and late answers of their calls are dropped. Every caller
    sidecar's connections to the replica are closed through the pool
    (:meth:`ConnectionPool.on_connection_closed`): active streams fail with
    a connection termination (503 ``UC``, retriable with ``retry_on:
    reset``, seen by outlier detection as a local-origin failure),
    connections being opened fail as connect failures. A plain-path caller
    hears 503 ``UC`` one network leg later. While down the replica refuses
    connections (``Host.reach`` REFUSED: 503 ``UF`` after one round trip; on
    the plain path every request counts as a new connection) and fails
    health checks. It restarts after ``duration`` with empty queues. Its own
    outbound sidecar keeps its state (pools, outlier detection) across the
    restart.
``latency``
    Every response the replica sends is held back by ``add`` (a draw) or by
    ``(multiply - 1) x`` the time the request spent at the replica, on top
    of the network leg. No worker is used; health-check probes are delayed
    by ``add`` too.
``errors``
    When a request reaches the replica it is answered ``status`` with
    probability ``rate`` at once: no queueing, no work (a replica whose
    dependency is broken fails fast), before the replica's inbound rate
    limit. Counted as the version's arrivals and
    errors; health-check probes fail with the same probability.
``slowdown``
    Each work step *started* while the fault is active takes ``factor``
    times its draw (the draw itself is unchanged: common random numbers).
    Work under way at the start keeps its length. Workers are held longer.
``partition``
    Pairwise: the replicas (and, for a side given by zone, the traffic
    sources) of one side cannot reach those of the other, either way. New
    connections are never answered: the caller's ``connect_timeout`` fires
    (503 ``UF``, ``upstream_cx_connect_timeout``; the plain path counts
    every request as a new connection with Envoy's default 5 s). Requests
    sent on existing connections and responses crossing the cut are
    black-holed; when the partition heals they are delivered (TCP
    retransmits them) unless their caller gave up meanwhile (a timeout).
    Health-check probes time out. A connection attempt started during the
    partition times out even if the partition heals first (TCP's SYN
    retransmissions are not modelled).
``resets``
    When a request reaches the replica, with probability ``rate`` its
    connection is reset instead: the request is not served, and one leg
    later the caller sidecar's connection closes (every stream on it fails
    503 ``UC``; on HTTP/2 that is every request sharing the connection); the
    plain path answers 503 ``UC``.
``brownout``
    ``errors`` and ``slowdown`` together.

Randomness: each fault draws from its own named stream (``("chaos",
name)``), so adding a fault changes neither the arrivals nor the service
times of a run (common random numbers); the draws a fault makes can shift
which later requests other faults' draws fall on, and network legs of
replies the fault creates draw from the network stream.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from meshsim.config import Partition, target_replicas
from meshsim.policies.health_check import HealthCheckResult
from meshsim.sim._runtime import (
    FLAG_CODES,
    REACHABLE,
    REFUSED,
    STEP_WORK,
    UNREACHABLE,
    Attempt,
    Host,
    Timer,
)

__all__ = ["Chaos", "FAULT_COLUMNS", "faults_frame"]

FLAG_UC = FLAG_CODES["UC"]
FLAG_UF = FLAG_CODES["UF"]
#: a plain-path request to a replica a partition cuts off waits this long (Envoy's connect_timeout default)
PLAIN_CONNECT_TIMEOUT_S = 5.0
#: columns of ``RunResult.faults``
FAULT_COLUMNS = ["name", "kind", "target", "detail", "replicas", "start_s", "end_s", "requests"]

_REQUEST, _RESPONSE = 0, 1
#: what a plain-path connection that failed counts (``ConnectionPool`` counts the same on the policy path)
_CX_RESET = ("upstream_cx_destroy", "upstream_cx_destroy_remote", "upstream_cx_destroy_with_active_rq",
             "upstream_cx_destroy_remote_with_active_rq", "upstream_rq_rx_reset")
_CX_REFUSED = ("upstream_cx_connect_fail", "upstream_cx_destroy", "upstream_cx_destroy_remote")
_CX_CONNECT_TIMEOUT = ("upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_destroy",
                       "upstream_cx_destroy_local")


def _drop(_event: Any) -> None:
    """The pending event of an attempt lost in a crash: nothing happens any more."""


class _FaultRT:
    """One fault of the block, compiled: its hosts, its stream and what it has done."""

    __slots__ = ("index", "spec", "kind", "name", "hosts", "start", "end", "rate", "status", "u", "add", "mult",
                 "factor", "hosts_a", "hosts_b", "callers_a", "callers_b", "cuts", "hits")

    def __init__(self, index: int, spec: Any, name: str) -> None:
        self.index = index
        self.spec = spec
        self.kind: str = spec.kind
        self.name = name
        self.hosts: list[Host] = []
        self.start = float(spec.start)
        self.end = math.inf if spec.duration is None else self.start + float(spec.duration)
        self.rate = float(getattr(spec, "rate", 0.0) or 0.0)
        self.status = int(getattr(spec, "status", 0) or 0)
        self.factor = float(getattr(spec, "factor", 1.0) or 1.0)
        self.u: Any = None  # uniforms for the error / reset draws
        self.add: Any = None  # latency: sampler of the added delay
        self.mult = 1.0
        self.hosts_a: list[Host] = []
        self.hosts_b: list[Host] = []
        self.callers_a: list[int] = []
        self.callers_b: list[int] = []
        #: a partition's cut pairs (caller code, host id), for finding which partition cut a request
        self.cuts: set[tuple[int, int]] = set()
        #: requests the fault acted on (lost, refused, delayed, failed, reset, black-holed)
        self.hits = 0


class _Effects:
    """The latency, error, reset and slowdown faults active on one host (at most one of each)."""

    __slots__ = ("lat", "err", "reset", "slow")

    def __init__(self) -> None:
        self.lat: _FaultRT | None = None
        self.err: _FaultRT | None = None
        self.reset: _FaultRT | None = None
        self.slow: _FaultRT | None = None

    def empty(self) -> bool:
        return self.lat is None and self.err is None and self.reset is None and self.slow is None


def _slowed(step_sampler: Any, host: Host) -> Any:
    return lambda: host.slow * step_sampler()


class Chaos:
    """The chaos block of one run: builds the faults, schedules them, and runs the engine's chaos paths.

    Parameters
    ----------
    sim
        The ``Simulation`` (services, hosts and sidecars built). The
        constructor replaces four of its methods on the instance.
    """

    def __init__(self, sim: Any) -> None:
        from meshsim.sim._engine import _sampler

        self.sim = sim
        scn = sim.scenario
        self.env = sim.env
        by_key = {(h.ver.service.name, h.ver.name, h.index): h for h in sim.hosts}
        self.faults: list[_FaultRT] = []
        targeted: dict[int, Host] = {}
        crashable: dict[int, Host] = {}
        slowed: dict[int, Host] = {}
        for i, spec in enumerate(scn.chaos):
            f = _FaultRT(i, spec, spec.name or f"{spec.kind}-{i}")
            if isinstance(spec, Partition):
                f.hosts_a = [by_key[r] for r in target_replicas(scn, spec.from_)]
                f.hosts_b = [by_key[r] for r in target_replicas(scn, spec.to)]
                f.callers_a = [h.hid for h in f.hosts_a] + self._sources_in(spec.from_)
                f.callers_b = [h.hid for h in f.hosts_b] + self._sources_in(spec.to)
                f.hosts = f.hosts_a + f.hosts_b
                f.cuts = {(c, h.hid) for hosts, callers in ((f.hosts_b, f.callers_a), (f.hosts_a, f.callers_b))
                          for h in hosts for c in callers}
            else:
                f.hosts = [by_key[r] for r in target_replicas(scn, spec.target)]
            if f.kind in ("errors", "resets", "brownout"):
                f.u = sim.streams.uniforms("chaos", f.name)
            if f.kind == "latency":
                if spec.add is not None:
                    f.add = _sampler(spec.add, sim.streams.get("chaos-latency", f.name))
                else:
                    f.mult = float(spec.multiply)
            for h in f.hosts:
                targeted[h.hid] = h
                if f.kind == "crash":
                    crashable[h.hid] = h
                if f.kind in ("slowdown", "brownout"):
                    slowed[h.hid] = h
            self.faults.append(f)
        # the targets take the general path; crash targets keep track of the attempts they hold
        for h in targeted.values():
            h.simple = False
        for h in crashable.values():
            h.live = {}
        for h in slowed.values():
            v = h.ver
            h.script = tuple((STEP_WORK, _slowed(step[1] or v.sample, h)) if step[0] == STEP_WORK else step
                             for step in v.script)
        #: attempts lost in crashes (their calls' late answers are dropped); a set, never iterated
        self.lost: set[Attempt] = set()
        self.partition_hosts = [h for f in self.faults if f.kind == "partition" for h in f.hosts]
        self.partitions: list[_FaultRT] = []  # active ones, in start order
        #: black-holed requests and responses, (direction, attempt, partition), until a partition heals
        self.held: list[tuple[int, Attempt, _FaultRT]] = []
        self.probe_u = sim.streams.uniforms("chaos-probe")
        for v in sim.versions:
            v.ts_up = [float(len(v.hosts))] * sim.nslots
        # the engine's chaos-aware entry points (the engine's own methods do the rest)
        self._base_arrive = sim._arrive
        self._base_respond = sim._respond
        self._base_call_done = sim._call_done
        self._base_par_done = sim._par_done
        self._try_done = sim.sidecars._try_done_cb
        sim._arrive = self.arrive
        sim._respond = self.respond
        sim._call_done = self.call_done
        sim._par_done = self.par_done

    def _sources_in(self, target: Any) -> list[int]:
        """Traffic sources on a partition side: those placed in its zone, when the side is a whole zone.

        (Source ``i`` calls with the code ``-(i + 1)``, as ``meshsim.sim._traffic`` builds them.)
        """
        if target.service is not None or target.zone is None:
            return []
        return [-(i + 1) for i, src in enumerate(self.sim.scenario.traffic) if src.zone == target.zone]

    # ------------------------------------------------------------------ the timeline
    def start(self) -> None:
        """Schedule every fault's start and end (called when the run starts)."""
        sim = self.sim
        for f in self.faults:
            t = Timer(f)
            t.callbacks = [self._begin]
            sim._schedule(t, f.start)
            if f.end < sim.end_time:
                t = Timer(f)
                t.callbacks = [self._finish]
                sim._schedule(t, f.end)

    def _begin(self, t: Timer) -> None:
        f: Any = t.obj
        now = self.env._now
        kind = f.kind
        if kind == "crash":
            for h in f.hosts:
                self._crash(h, f, now)
        elif kind == "partition":
            self.partitions.append(f)
            self._rebuild_reach()
        else:
            self._effects(f, True)

    def _finish(self, t: Timer) -> None:
        f: Any = t.obj
        now = self.env._now
        kind = f.kind
        if kind == "crash":
            for h in f.hosts:
                self._restart(h, now)
        elif kind == "partition":
            self.partitions.remove(f)
            self._rebuild_reach()
            self._release_held()
        else:
            self._effects(f, False)

    # ------------------------------------------------------------------ crash and restart
    def _crash(self, h: Host, f: _FaultRT, now: float) -> None:
        """``h`` crashes: its work is lost, its connections reset, new ones refused."""
        sim = self.sim
        h.down += 1
        if h.down > 1:  # already down (an overlapping zone outage)
            return
        h.reach = REFUSED
        v = h.ver
        v.up_area += v.up * (now - v.up_last)
        v.up_last = now
        v.up -= 1
        live = h.live
        lost = list(live) if live is not None else []
        if live is not None:
            live.clear()
        h.queue.clear()  # queued attempts are in ``live`` too
        sim._plain_cx_close_idle(h)  # the plain path's idle connections to it are reset too
        try_done = self._try_done
        self.lost.update(lost)
        for att in lost:
            f.hits += 1
            if att.holding:  # Simulation._release, without serving the queue (gone)
                att.holding = False
                h.busy -= 1
                v.area += v.busy * (now - v.last)
                v.last = now
                v.busy -= 1
            v.in_flight -= 1
            if att.callbacks is not None:  # its work or sleep is on the heap: it will do nothing
                att.callbacks = [_drop]
            if att.on_resp is not try_done and not att.abandoned:
                # plain path: the caller's connection is reset one leg later (sidecar callers: the pools below)
                r = Timer(att)
                r.callbacks = [self._lost_reply]
                sim._schedule(r, self._leg_delay(att))
        # every caller sidecar's connections to the host close when the reset reaches it, one leg later
        # (active streams fail UC, connecting ones UF)
        for cl in sim.sidecars.clusters.values():
            pool = cl.pools.get(h.hid)
            if pool is not None and pool.connection_count:
                r = Timer((pool, pool.connections))
                r.callbacks = [self._close_pool]
                sim._schedule(r, self._leg_between(cl.czone, h.zone))

    def _close_pool(self, t: Timer) -> None:
        pair: Any = t.obj
        pool, conns = pair
        now = self.env._now
        for conn in conns:
            pool.on_connection_closed(conn, now)  # a connection closed meanwhile is left alone

    def _lost_reply(self, t: Timer) -> None:
        att: Any = t.obj
        att.status = 503
        att.flags |= FLAG_UC
        self.sim._plain_cx_lost(att, _CX_RESET)
        att.on_resp(att)

    def _restart(self, h: Host, now: float) -> None:
        h.down -= 1
        if h.down:
            return
        h.reach = REACHABLE
        v = h.ver
        v.up_area += v.up * (now - v.up_last)
        v.up_last = now
        v.up += 1

    # ------------------------------------------------------------------ effects on hosts
    def _effects(self, f: _FaultRT, on: bool) -> None:
        kind = f.kind
        for h in f.hosts:
            fx = h.fx if h.fx is not None else _Effects()
            if kind == "latency":
                if on or fx.lat is f:
                    fx.lat = f if on else None
            if kind in ("errors", "brownout"):
                if on or fx.err is f:
                    fx.err = f if on else None
            if kind == "resets":
                if on or fx.reset is f:
                    fx.reset = f if on else None
            if kind in ("slowdown", "brownout"):
                if on or fx.slow is f:
                    fx.slow = f if on else None
                    h.slow = f.factor if on else 1.0
            h.fx = None if fx.empty() else fx

    # ------------------------------------------------------------------ partitions
    def _rebuild_reach(self) -> None:
        """Every host's ``reach_from`` from the active partitions (``None`` where none cuts it off)."""
        for h in self.partition_hosts:
            h.reach_from = None
        for p in self.partitions:
            for hosts, callers in ((p.hosts_b, p.callers_a), (p.hosts_a, p.callers_b)):
                for h in hosts:
                    rf = h.reach_from
                    if rf is None:
                        rf = h.reach_from = {}
                    for c in callers:
                        rf[c] = UNREACHABLE

    def _cut_by(self, caller: int, h: Host) -> _FaultRT:
        key = (caller, h.hid)
        for p in self.partitions:
            if key in p.cuts:
                return p
        raise AssertionError("no active partition cuts this pair")  # pragma: no cover

    def _release_held(self) -> None:
        """A partition healed: what it black-holed goes through, unless its caller gave up meanwhile."""
        held, self.held = self.held, []
        sim = self.sim
        for direction, att, _p in held:
            h = att.host
            rf = h.reach_from
            if rf is not None and att.caller in rf:  # another partition still cuts it off
                self.held.append((direction, att, self._cut_by(att.caller, h)))
                continue
            if att.abandoned:
                continue
            if direction == _REQUEST:
                self.arrive(att)
            else:
                self._send_back(att, sim)

    def _plain_connect_timeout(self, att: Attempt) -> None:
        if att.abandoned:
            return
        att.status = 503
        att.flags |= FLAG_UF
        self.sim._plain_cx_lost(att, _CX_CONNECT_TIMEOUT)
        att.on_resp(att)

    # ------------------------------------------------------------------ the engine's entry points
    def arrive(self, att: Attempt) -> None:
        """``Simulation._arrive`` with the faults of the replica applied first."""
        h = att.host
        rf = h.reach_from
        if rf is not None and att.caller in rf:
            self._cut_off(att, h)
            return
        if h.down:
            self._refused(att, h)
            return
        fx = h.fx
        if fx is not None:
            f = fx.reset
            if f is not None and next(f.u) < f.rate:
                f.hits += 1
                self._reset(att, h)
                return
            f = fx.err
            if f is not None and next(f.u) < f.rate:
                f.hits += 1
                att.t_arrive = self.env._now
                v = h.ver
                v.n_arr += 1
                v.in_flight += 1
                att.status = f.status
                self.respond(att)
                return
        if h.live is not None:
            h.live[att] = None
        if h.script is not None:
            att.script = h.script
        self._base_arrive(att)

    def respond(self, att: Attempt) -> None:
        """``Simulation._respond`` with response latency and partitions applied."""
        h = att.host
        live = h.live
        if live is not None:
            live.pop(att, None)
        fx = h.fx
        lat = fx.lat if fx is not None else None
        rf = h.reach_from
        cut = rf is not None and att.caller in rf
        if lat is None and not cut:
            self._base_respond(att)
            return
        # Simulation._respond, with the response held back or black-holed (keep the two in step)
        sim = self.sim
        now = self.env._now
        att.t_done = now
        if att.holding:
            sim._release(att)
        v = h.ver
        v.in_flight -= 1
        v.n_done += 1
        if att.status >= 400:
            v.n_err += 1
        if cut:
            p = self._cut_by(att.caller, h)
            p.hits += 1
            self.held.append((_RESPONSE, att, p))
            return
        assert lat is not None
        lat.hits += 1
        extra = lat.add() if lat.add is not None else (lat.mult - 1.0) * (now - att.t_arrive)
        att.callbacks = [att.on_resp]
        sim._schedule(att, extra + self._leg_delay(att))

    def call_done(self, child: Any) -> None:
        """``Simulation._call_done``; the answer to an attempt lost in a crash is dropped."""
        if child.parent in self.lost:
            self._orphan(child)
            return
        self._base_call_done(child)

    def par_done(self, child: Any) -> None:
        """``Simulation._par_done``; the answer to an attempt lost in a crash is dropped."""
        if child.parent in self.lost:
            self._orphan(child)
            return
        self._base_par_done(child)

    def _orphan(self, child: Any) -> None:
        if child.abandoned:
            return
        child.abandoned = True
        if not child.is_call:
            self.sim._rec_attempt(child)
            h = child.host
            if h is not None:  # plain path: the caller's connection is idle again
                h.cx_free[self.sim._cx_slot(child.caller)] += 1

    # ------------------------------------------------------------------ replies the faults make
    def _leg_delay(self, att: Attempt) -> float:
        """One network leg between the caller and ``att.host`` (as ``Simulation._leg`` draws it)."""
        return self._leg_between(att.czone, att.host.zone)

    def _leg_between(self, czone: str | None, zone: str | None) -> float:
        sim = self.sim
        if sim.direct or (sim.net_zero and czone == zone):
            return 0.0
        d = 0.0 if sim.net_zero else sim.net_delay()
        if sim.xz_delay is not None and czone != zone:
            d += sim.xz_delay()
        return d

    def _send_back(self, att: Attempt, sim: Any) -> None:
        """The response leg (``Simulation._respond``'s last step)."""
        if sim.direct or (sim.net_zero and att.czone == att.host.zone):
            att.on_resp(att)
        else:
            sim._leg(att, att.on_resp)

    def _refused(self, att: Attempt, h: Host) -> None:
        """A request reaches a crashed replica: nothing listens."""
        if att.abandoned:  # its caller gave up, or its connection was reset at the crash
            return
        if att.on_resp is self._try_done:  # a sidecar's stream on a connection opened before the crash:
            self._reset_later(att)           # the reset reaches the caller one leg later
            return
        att.status = 503
        att.flags |= FLAG_UF
        self._plain_back(att, self._plain_refused_arrives)

    def _reset(self, att: Attempt, h: Host) -> None:
        """The request's connection is reset on its way in: the caller learns of it one leg later."""
        if att.on_resp is self._try_done:
            self._reset_later(att)
            return
        att.status = 503
        att.flags |= FLAG_UC
        self._plain_back(att, self._plain_reset_arrives)

    def _reset_later(self, att: Attempt) -> None:
        """A sidecar's stream is reset: the caller learns of it one leg later (``_reset_arrives``)."""
        r = Timer(att)
        r.callbacks = [self._reset_arrives]
        self.sim._schedule(r, self._leg_delay(att))

    def _plain_back(self, att: Attempt, then: Any) -> None:
        """``_send_back`` for a plain-path request whose connection failed: ``then`` at the caller."""
        sim = self.sim
        if sim.direct or (sim.net_zero and att.czone == att.host.zone):
            then(att)
        else:
            sim._leg(att, then)

    def _plain_refused_arrives(self, att: Attempt) -> None:
        self.sim._plain_cx_lost(att, _CX_REFUSED)
        att.on_resp(att)

    def _plain_reset_arrives(self, att: Attempt) -> None:
        self.sim._plain_cx_lost(att, _CX_RESET)
        att.on_resp(att)

    def _reset_arrives(self, t: Timer) -> None:
        self._close_connection(t.obj)  # type: ignore[arg-type]

    def _close_connection(self, att: Attempt) -> None:
        """The sidecar's connection carrying ``att`` closes: its streams fail (503 ``UC``) through the pool."""
        pool = att.parent.cluster.pools.get(att.host.hid)
        conn = pool.connection_of(att) if pool is not None else None
        if conn is not None:
            pool.on_connection_closed(conn, self.env._now)

    def _cut_off(self, att: Attempt, h: Host) -> None:
        """A request crosses a partition."""
        p = self._cut_by(att.caller, h)
        p.hits += 1
        if att.on_resp is self._try_done:  # sent on an existing connection: black-holed
            self.held.append((_REQUEST, att, p))
            return
        # the plain path opens a connection per request: it is never answered, the connect timeout fires
        att.callbacks = [self._plain_connect_timeout]
        self.sim._schedule(att, max(0.0, att.t_send + PLAIN_CONNECT_TIMEOUT_S - self.env._now))

    # ------------------------------------------------------------------ health checks
    def probe(self, host: Host, caller: int, status: int, rtt: float, remaining: float) -> tuple[Any, float]:
        """A health-check probe from ``caller``'s sidecar to ``host``: its answer and when it comes back."""
        rf = host.reach_from
        if rf is not None and caller in rf:
            return HealthCheckResult.TIMEOUT, math.inf
        if host.down:
            return HealthCheckResult.NETWORK_FAILURE, rtt
        fx = host.fx
        if fx is not None:
            f = fx.err
            if f is not None and status < 400 and next(self.probe_u) < f.rate:
                status = f.status
            f = fx.lat
            if f is not None and f.add is not None:
                rtt += f.add()
        return status, rtt

    # ------------------------------------------------------------------ results
    def rows(self, run_end: float) -> list[tuple]:
        """One row per fault (``FAULT_COLUMNS``)."""
        out = []
        for f in self.faults:
            spec = f.spec
            if isinstance(spec, Partition):
                target = f"{spec.from_.describe()} <-> {spec.to.describe()}"
            else:
                target = spec.target.describe()
            out.append((f.name, f.kind, target, spec.detail(), len(f.hosts), f.start, min(f.end, run_end), f.hits))
        return out


def faults_frame(rows: list[tuple]) -> pd.DataFrame:
    """The faults table of a run (empty, with its columns, when there is none)."""
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)
