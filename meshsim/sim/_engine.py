"""The SimPy engine: assembles a scenario into hosts and sidecars and runs it.

How a request flows (callbacks on the hot path, no process per request):

traffic source -> caller sidecar (route match, weighted version pick, load
balancer) -> network leg -> callee host (workers, FCFS queue, overflow 503)
-> handler script (own work, calls through the callee's own sidecar,
parallel groups) -> response -> network leg -> caller -> recorder.

Each ``Attempt`` is its own SimPy event for its sequential steps; the only
processes are control flow (the once-a-second timeseries sampler).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from heapq import heappush
from itertools import count
from typing import Any
from weakref import ref

from meshsim._exceptions import ConfigError, SimulationError
from meshsim.sim._env import MeshEnvironment
from meshsim.sim._random import Streams
from meshsim.sim._recorder import Recorder
from meshsim.sim._runtime import (
    STEP_CALL,
    STEP_ERR,
    STEP_PAR,
    STEP_SLEEP,
    STEP_WORK,
    Attempt,
    CallRT,
    Host,
    ServiceRT,
    Timer,
    VersionRT,
)
from meshsim.sim._traffic import build_sources

__all__ = ["Simulation", "FAILED"]


def _answered(att: Attempt) -> bool:
    return att.abandoned


def _plain_path_suffices(mp: Any) -> bool:
    """The plain path runs a service-level route timeout and a local rate limit; anything else needs the router."""
    if mp.versions or mp.retries is not None or mp.fault is not None or mp.mirror is not None:
        return False
    if any(getattr(mp, f) is not None for f in ("circuit_breakers", "outlier_detection", "load_balancer",
                                                "health_check")):
        return False
    if any(r.policy_fields for r in mp.routes):
        return False
    return mp.timeout is None or float(mp.timeout.per_try_timeout) == 0.0

NORMAL = 1  # simpy.events.NORMAL
#: most slots the plain path's per-host connection lists may hold in all (``_plain_callers``)
_DENSE_SLOTS = 1 << 22
#: what a route timeout counts on the plain path: the timeout, and the reset of its HTTP/1.1 stream,
#: which closes the connection (as ``ConnectionPool.on_reset`` counts it on the policy path)
_TIMEOUT_RESET = ("upstream_rq_timeout", "upstream_rq_tx_reset", "upstream_cx_destroy", "upstream_cx_destroy_local",
                  "upstream_cx_destroy_with_active_rq", "upstream_cx_destroy_local_with_active_rq")
FLAG_NR = 1 << 0
FLAG_UT = 1 << 4
FLAG_RL = 1 << 8


def FAILED(status: int) -> bool:  # noqa: N802 - reads as a predicate constant
    """A response the caller treats as a failure: no response (0) or status >= 400."""
    return status == 0 or status >= 400


def _sampler(model, rng):
    """A zero-argument callable returning one draw (seconds), cheap on the hot path."""
    from meshsim.latency import Sampler

    s = Sampler(model, rng)
    if getattr(model, "type", None) == "constant":
        value = float(model.value)
        return lambda: value
    it = s.stream()
    return it.__next__


class Simulation:
    """One replication of a scenario on a SimPy environment.

    Parameters
    ----------
    scenario
        A validated ``meshsim.config.Scenario``.
    seed
        Overrides ``scenario.seed``.
    replication
        Replication index (independent streams for the same seed).
    weight_changes
        Route weights that change during the run (progressive delivery), as
        ``(time_s, service, route_index, {version: weight})`` tuples: at
        ``time_s`` the route ``route_index`` of ``service``'s ``mesh`` routes
        takes the new weights (:meth:`meshsim.policies.routing.Router.set_weights`).
        The service must have routes. Checked here, before the run.

    Notes
    -----
    Events at the same time run in the order they were scheduled (SimPy's
    insertion counter), and no code iterates over a set, so one seed gives
    identical results. A weight change is scheduled URGENT, so it applies
    before any request that starts at the same instant; without weight changes
    nothing is scheduled and the hot path is unchanged.
    """

    def __init__(self, scenario, *, seed: int | None = None, replication: int = 0,
                 weight_changes=()) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else int(seed)
        self.replication = replication
        self.streams = Streams(self.seed, replication)
        self.env = MeshEnvironment()
        # direct access to the SimPy heap for the two hottest schedules (same entries as env.schedule)
        self._queue: list[Any] = self.env._queue
        self._eid = self.env._eid
        self._push: Callable[[list[Any], Any], None] = heappush
        self.duration = float(scenario.duration)
        self.warmup = float(scenario.warmup)
        self.end_time = self.duration + float(scenario.drain)
        self.max_depth = scenario.max_depth
        self.summary_only = scenario.record == "summary"
        self._rid = count()
        self.open_requests: dict[int, Attempt] = {}
        nslots = int(math.ceil(self.end_time)) + 2
        self.nslots = nslots
        self._build_services(nslots)
        self.weight_changes = self._check_weight_changes(weight_changes)
        self._build_network()
        self._build_mesh()
        #: the chaos block's actuators (``None`` without one: then nothing of the hot path changes)
        self.chaos: Any = None
        if scenario.chaos:
            from meshsim.sim._chaos import Chaos

            self.chaos = Chaos(self)
        #: slots of the plain path's per-host connection lists: one per host, then one per traffic source
        #: (source ``i``, code ``-(i + 1)``, has slot ``cx_width - i - 1``: see ``_plain_callers``)
        self.cx_width = len(self.hosts) + len(scenario.traffic)
        self.recorder = Recorder(self, summary_only=self.summary_only)
        self._rec_attempt = self.recorder.attempt
        self._rec_entry = self.recorder.entry
        self.sources = build_sources(self)
        self._plain_callers()
        self.recorder.open = self.open_requests
        for src in self.sources:
            src.on_resp = self._request_done_closed if src.closed else self.recorder.entry_open  # type: ignore[method-assign]
            src.direct = src.service.router is None and src.service.dest is None and self.direct

    # ------------------------------------------------------------------ assembly
    def _build_services(self, nslots: int) -> None:
        from meshsim.latency import ErrorDraw

        scn = self.scenario
        self.services: dict[str, ServiceRT] = {}
        self.versions: list[VersionRT] = []
        self.hosts: list[Host] = []
        for sname, sspec in scn.services.items():
            svc = ServiceRT(sname, len(self.services))
            self.services[sname] = svc
            for vname, rv in sspec.resolved_versions(sname).items():
                v = VersionRT(len(self.versions), svc, vname, rv)
                v.blocking = rv.concurrency == "blocking"
                v.sample = _sampler(rv.latency, self.streams.get("service", sname, vname))
                if rv.errors is not None and rv.errors.rate > 0:
                    v.errdraw = ErrorDraw(rv.errors, self.streams.get("errors", sname, vname))
                even = v.errdraw is not None and rv.errors.spacing == "even"
                for i in range(rv.replicas):
                    h = Host(len(self.hosts), i, v, rv.zones[i] if rv.zones else None, rv.workers, rv.queue)
                    # even spacing counts each replica's own requests (isotope's per-process counter)
                    h.errdraw = ErrorDraw(rv.errors, None) if even else v.errdraw
                    v.hosts.append(h)
                    svc.hosts.append(h)
                    self.hosts.append(h)
                v.arrivals = [0] * nslots
                v.completions = [0] * nslots
                v.errors = [0] * nslots
                v.ts_in_flight = [0] * nslots
                v.ts_queue = [0] * nslots
                v.ts_area = [0.0] * nslots
                v.ts_ejected = [0] * nslots
                svc.versions.append(v)
                svc.by_name[vname] = v
                self.versions.append(v)
            if not sspec.versions:  # the implicit version is the whole service (outbound|80||svc)
                svc.whole = f"{sname}|{svc.versions[0].name}"
        # routing (caller side, per destination service)
        from meshsim.policies.routing import Router

        self.need_attrs = False
        for sname, entry in scn.mesh.items():
            routes = getattr(entry, "routes", None)
            if routes:
                svc = self.services[sname]
                svc.router = Router(routes, [v.name for v in svc.versions])
                if any(getattr(r, "match", None) for r in routes):
                    self.need_attrs = True
        self.route_u = self.streams.uniforms("routing")
        self.call_u = self.streams.uniforms("calls")
        # compile scripts once services exist
        for v in self.versions:
            v.script = self._compile(v.spec.script, v, self.streams)
            v.simple = v.blocking and v.script == ((STEP_WORK, None),)
            v.up = len(v.hosts)
            for h in v.hosts:
                h.simple = v.simple

    def _check_weight_changes(self, changes) -> list[tuple[float, Any, int, dict[str, int]]]:
        """``weight_changes`` validated (service, route, versions, weights, time), in time order."""
        out = []
        for k, change in enumerate(changes):
            try:
                time_s, service, index, weights = change
            except (TypeError, ValueError):
                raise ConfigError(f"weight_changes[{k}]: expected (time_s, service, route_index, weights), "
                                      f"got {change!r}") from None
            svc = self.services.get(service)
            if svc is None or svc.router is None:
                with_routes = [n for n, s in self.services.items() if s.router is not None]
                raise ConfigError(f"weight_changes[{k}]: service {service!r} has no mesh routes; services "
                                      f"with routes: {', '.join(with_routes) or 'none'}")
            t = float(time_s)
            if not 0.0 <= t <= self.end_time:
                raise ConfigError(f"weight_changes[{k}]: time {time_s!r} is outside the run [0, {self.end_time:g}] s")
            from meshsim.policies.routing import Router

            probe = Router(svc.router.routes, svc.router.versions)  # validates without touching the run's router
            probe.set_weights(int(index), dict(weights))
            out.append((t, svc, int(index), dict(weights)))
        out.sort(key=lambda c: c[0])  # stable: same-time changes apply in the order given
        return out

    def _apply_weights(self, timer: Timer) -> None:
        _, svc, index, weights = timer.obj  # type: ignore[misc]
        svc.router.set_weights(index, weights)

    def _build_mesh(self) -> None:
        """Destinations with mesh policies get a router (``_sidecar``); the others a plain route timeout."""
        from meshsim.sim._deadlines import DeadlineQueue
        from meshsim.sim._sidecar import Destination, Sidecars

        self.outlier_events: list[tuple] = []
        self.warnings: list[str] = []
        self.sidecars = Sidecars(self)
        scn = self.scenario
        plain_queues: dict[float, DeadlineQueue] = {}
        for name, svc in self.services.items():
            mp = scn.mesh_for(name)
            if mp.has_policies and not _plain_path_suffices(mp):
                svc.dest = Destination(self, svc, mp)
                self._check_traps(name, svc, mp)
                # a load balancer hashing on a request header needs the headers carried along
                if any(cp.load_balancer.hash_key is not None and cp.load_balancer.hash_key.header_name
                       for cp in svc.dest.cluster_policies.values()):
                    self.need_attrs = True
            else:
                for h in svc.hosts:  # the plain path's connection count (see ``send``; callers: _plain_callers)
                    h.cx_free = {}
                length = float(mp.route_policies(None).timeout.timeout)
                if length > 0:
                    q = plain_queues.get(length)
                    if q is None:
                        q = DeadlineQueue(self, length, self._plain_timeout, _answered)
                        plain_queues[length] = q
                    svc.timeout_q = q
            limit = getattr(mp, "rate_limit", None)
            if limit is not None:
                from meshsim.policies.rate_limit import TokenBucket

                for h in svc.hosts:
                    h.limiter = TokenBucket(limit, 0.0)

    def _plain_callers(self) -> None:
        """Every caller that can reach a plain-path host gets its idle-connection count there (0).

        ``Host.cx_free`` is indexed by the caller's slot (``_cx_slot``: a host's id, then the
        sources from the end): a list of ``cx_width`` slots, as the hot path's list subscripts with
        a non-negative index cost a few machine instructions against a dict's hashing and probing.
        A mesh so large that those lists would hold more than ``_DENSE_SLOTS`` slots in all gets a
        ``dict`` per host instead, keyed by the slots of the callers that can reach it: the traffic
        sources sent to its service and the replicas whose scripts call it.
        """
        width = self.cx_width
        assert all(0 <= self._cx_slot(src.code) < width for src in self.sources)
        plain = [h for h in self.hosts if h.cx_free is not None]
        if len(plain) * width <= _DENSE_SLOTS:
            for h in plain:
                h.cx_free = [0] * width
            return
        callers: dict[int, list[int]] = {}  # service index -> caller slots
        for src in self.sources:
            callers.setdefault(src.service.idx, []).append(self._cx_slot(src.code))
        for v in self.versions:
            called: list[ServiceRT] = []
            for step in v.script:
                if step[0] == STEP_CALL:
                    called.append(step[1].service)
                elif step[0] == STEP_PAR:
                    called.extend(c.service for c in step[1])
            for svc in called:
                callers.setdefault(svc.idx, []).extend(h.hid for h in v.hosts)
        for svc in self.services.values():
            slots = callers.get(svc.idx, ())
            for h in svc.hosts:
                if h.cx_free is not None:
                    h.cx_free = dict.fromkeys(slots, 0)

    def _cx_slot(self, caller: int) -> int:
        """The slot of caller code ``caller`` in the plain path's connection lists (``_plain_callers``)."""
        return caller if caller >= 0 else caller + self.cx_width

    def _check_traps(self, name: str, svc: ServiceRT, mp: Any) -> None:
        """Configurations Envoy accepts that do not do what they say: collected as warnings."""
        clusters = ([(v.name, len(v.hosts), mp.cluster_policies(v.name)) for v in svc.versions]
                    if svc.router is not None else [(None, len(svc.hosts), mp.cluster_policies(None))])
        for version, hosts, cp in clusters:
            od = cp.outlier_detection
            if od is None:
                continue
            need = od.smallest_cluster_that_can_eject()
            if need is None or need > hosts:
                where = f"mesh.{name}" + (f" (cluster {version})" if version else "")
                self.warnings.append(
                    f"{where}.outlier_detection.max_ejection_percent: {od.max_ejection_percent:g} % of "
                    f"{hosts} host{'s' if hosts != 1 else ''} can never eject a host (Envoy counts the host "
                    f"before checking the share; it needs at least {need or 'no'} hosts): a failing host "
                    "stays in rotation")

    def _compile(self, steps, v: VersionRT, streams: Streams) -> tuple:
        from meshsim.config import Call, Parallel, Sleep, Work

        out: list[tuple] = []
        err_placed = v.errdraw is None
        for i, step in enumerate(steps):
            if isinstance(step, Work):
                model = step.latency
                sampler = None if model is None else _sampler(
                    model, streams.get("work", v.service.name, v.name, str(i)))
                out.append((STEP_WORK, sampler))
                if not err_placed:
                    out.append((STEP_ERR,))
                    err_placed = True
            elif isinstance(step, Sleep):
                out.append((STEP_SLEEP, _sampler(step.latency, streams.get("sleep", v.service.name, v.name, str(i)))))
            elif isinstance(step, Call):
                out.append((STEP_CALL, self._call(step)))
            elif isinstance(step, Parallel):
                calls = []
                for sub in step.parallel:
                    if not isinstance(sub, Call):
                        raise SimulationError(
                            f"services.{v.service.name}: only calls may appear inside a parallel group")
                    calls.append(self._call(sub))
                out.append((STEP_PAR, tuple(calls)))
            else:  # pragma: no cover - config guarantees the step kinds
                raise SimulationError(f"unknown script step {step!r}")
        if not err_placed:  # no work step at all: the error draw comes first
            out.insert(0, (STEP_ERR,))
        return tuple(out)

    def _call(self, step) -> CallRT:
        return CallRT(self.services[step.service], float(step.probability), bool(step.optional),
                      step.path, step.method, dict(step.headers or {}))

    def _build_network(self) -> None:
        net = self.scenario.network
        lat = net.latency
        xz = net.cross_zone
        self.net_zero = getattr(lat, "type", None) == "constant" and float(lat.value) == 0.0
        self.net_delay = _sampler(lat, self.streams.get("network", "latency"))
        xz_zero = getattr(xz, "type", None) == "constant" and float(xz.value) == 0.0
        self.xz_delay = None if xz_zero else _sampler(xz, self.streams.get("network", "cross_zone"))
        #: no network delay on any leg: responses and arrivals happen in the same callback
        self.direct = self.net_zero and self.xz_delay is None

    def _schedule(self, event: Any, delay: float) -> None:
        """``env.schedule(event, NORMAL, delay)`` for the engine's bare events (``Attempt``, ``Timer``)."""
        self._push(self._queue, (self.env._now + delay, NORMAL, next(self._eid), event))

    # ------------------------------------------------------------------ caller side
    def send(self, caller: int, czone: str | None, parent, service: ServiceRT, attrs, depth: int,
             on_resp: Callable[[Attempt], None], rid: int, optional: bool = False) -> Attempt:
        """Send one request from a caller through its sidecar to ``service``.

        The plain path (a destination without policies) models the caller sidecar's HTTP/1.1
        connections to each host as Envoy keeps them with its default breakers and no retries:
        a request takes an idle connection of its caller to the host, or opens a new one
        (``upstream_cx_total``) when every connection is busy; the connection is idle again when
        the response reaches the caller, and kept (idle timeout 1 h). So per caller and host
        ``upstream_cx_total`` is the peak number of requests in flight at once (plus the
        connections closed by route timeouts). The handshake takes no time here (the policy
        path's pools model it).
        """
        if service.dest is not None:
            return self.sidecars.send(service.dest, caller, czone, parent, attrs, depth, on_resp, rid,
                                      optional)  # type: ignore[return-value]
        env = self.env
        att = Attempt(rid, caller, czone, service, parent, attrs, depth, on_resp, optional, env._now)
        router = service.router
        if router is None:
            hosts = service.hosts
            i = service.rr
            service.rr = i + 1
            host = hosts[i % len(hosts)]
        else:
            if attrs is None:
                vname = router.select("/", "GET", {}, next(self.route_u))
            else:
                vname = router.select(attrs[0], attrs[1], attrs[2], next(self.route_u))
            if vname is None:
                att.host = None
                att.status = 404
                att.flags = FLAG_NR
                att.on_resp(att)
                return att
            v = service.by_name[vname]
            hosts = v.hosts
            i = v.rr
            v.rr = i + 1
            host = hosts[i % len(hosts)]
        # an idle connection of this caller to the host, or a new one; ``caller`` becomes its slot
        # (``_cx_slot``): the attempt already has the code
        if caller < 0:
            caller += self.cx_width
        free = host.cx_free
        f = free[caller]
        if f:
            free[caller] = f - 1
        else:
            host.cx_opened += 1
        att.host = host
        att.script = host.ver.script
        q = service.timeout_q
        if q is not None:  # DeadlineQueue.add, inlined: the hot path
            deadline = att.t_send + q.length
            q.items.append((deadline, ref(att)))
            if q.armed_at is None:
                q._arm(deadline, att.t_send)
        self._deliver_to_host(att)
        return att

    def _deliver_to_host(self, att: Attempt) -> None:
        """The request leg of the network: to the callee host (now, or after the delay)."""
        if self.direct or (self.net_zero and att.czone == att.host.zone):
            self._arrive(att)
        else:
            self._leg(att, self._arrive)

    def _leg(self, att: Attempt, then: Callable[[Attempt], None]) -> None:
        """One network leg between the caller (zone ``att.czone``) and ``att.host``, then ``then(att)``."""
        d = 0.0 if self.net_zero else self.net_delay()
        if self.xz_delay is not None and att.czone != att.host.zone:
            d += self.xz_delay()
        att.callbacks = [then]
        self._schedule(att, d)

    def _plain_timeout(self, att: Attempt) -> None:
        """The route timeout of a plain (policy-free) destination: 504 UT, the callee keeps working.

        The caller's handler takes this answer and marks the attempt answered,
        so the late response is dropped when it arrives.
        """
        att.status = 504
        att.flags |= FLAG_UT
        h = att.host
        st = h.ver.stats if att.service.router is not None else att.service.stats  # the cluster's
        for name in _TIMEOUT_RESET:
            st[name] = st.get(name, 0) + 1
        # the reset closes the HTTP/1.1 connection: the caller's handler below frees it, so it is taken off
        h.cx_free[self._cx_slot(att.caller)] -= 1
        att.on_resp(att)

    def _plain_cx_lost(self, att: Attempt, names: tuple[str, ...]) -> None:
        """Chaos: the caller learns that the plain-path connection carrying ``att`` is gone (reset by
        the replica, or it never connected); counted under ``names`` on the request's cluster. Call it
        just before the caller's handler, which would otherwise count the connection idle again."""
        h = att.host
        if att.abandoned or h.cx_free is None:  # the caller gave up (a route timeout: that reset closed
            return                               # the connection), or a mirror's shadow (no plain connection)
        st = h.ver.stats if att.service.router is not None else att.service.stats
        for name in names:
            st[name] = st.get(name, 0) + 1
        h.cx_free[self._cx_slot(att.caller)] -= 1

    def _plain_cx_close_idle(self, h: Host) -> None:
        """Chaos: a replica crashed; every caller's idle plain-path connection to it closes."""
        free = h.cx_free
        if not free:
            return
        n = sum(free.values() if isinstance(free, dict) else free)
        if n:
            st = h.ver.stats if h.ver.service.router is not None else h.ver.service.stats
            for name in ("upstream_cx_destroy", "upstream_cx_destroy_remote"):
                st[name] = st.get(name, 0) + n
            for caller in (list(free) if isinstance(free, dict) else range(len(free))):
                free[caller] = 0

    # ------------------------------------------------------------------ callee side
    def _arrive(self, att: Attempt) -> None:
        now = self.env._now
        att.t_arrive = now
        h = att.host
        v = h.ver
        v.n_arr += 1
        v.in_flight += 1
        if h.limiter is not None and self._rate_limited(att, h, now):
            return
        if v.blocking:
            if h.busy < h.workers:
                if h.simple:  # fast path: a single work step, blocking, no error model, no chaos
                    h.busy += 1
                    v.area += v.busy * (now - v.last)
                    v.last = now
                    v.busy += 1
                    att.holding = True
                    att.t_start = now
                    att.callbacks = [self._simple_done]
                    self._push(self._queue, (now + v.sample(), NORMAL, next(self._eid), att))
                else:
                    self._start(att, h, now)
            elif h.qcap is None or len(h.queue) < h.qcap:
                h.queue.append(att)
            else:
                att.status = 503
                self._respond(att)
        else:
            self._advance(att)

    def _rate_limited(self, att: Attempt, h: Host, now: float) -> bool:
        """The callee's inbound sidecar: local rate limit (429 ``RL`` when the bucket is empty)."""
        from meshsim.policies.rate_limit import RateLimitDecision

        if h.limiter.take(now) is RateLimitDecision.LIMITED:
            att.status = h.limiter.status if hasattr(h.limiter, "status") else 429
            att.flags |= FLAG_RL
            st = h.ver.stats
            st["http_local_rate_limit.rate_limited"] = st.get("http_local_rate_limit.rate_limited", 0) + 1
            self._respond(att)
            return True
        return False

    def _start(self, att: Attempt, h: Host, now: float) -> None:
        v = h.ver
        h.busy += 1
        v.area += v.busy * (now - v.last)
        v.last = now
        v.busy += 1
        att.holding = True
        if att.t_start < 0:
            att.t_start = now
        if h.simple:
            att.callbacks = [self._simple_done]
            self._schedule(att, v.sample())
        else:
            self._advance(att)

    def _simple_done(self, att: Attempt) -> None:
        """End of the only work step of a simple host: respond and serve the next in line.

        Equivalent to ``_work_done`` -> ``_advance`` -> ``_respond`` -> ``_release``
        for a blocking single-work script without an error model.
        """
        now = self.env._now
        att.t_done = now
        att.status = 200
        att.holding = False
        h = att.host
        v = h.ver
        h.busy -= 1
        v.area += v.busy * (now - v.last)
        v.last = now
        v.busy -= 1
        v.in_flight -= 1
        v.n_done += 1
        if h.queue:
            self._start(h.queue.popleft(), h, now)
        if self.direct or (self.net_zero and att.czone == h.zone):
            att.on_resp(att)
        else:
            self._leg(att, att.on_resp)

    def _release(self, att: Attempt) -> None:
        h = att.host
        v = h.ver
        now = self.env._now
        att.holding = False
        h.busy -= 1
        v.area += v.busy * (now - v.last)
        v.last = now
        v.busy -= 1
        if h.queue:
            self._start(h.queue.popleft(), h, now)

    def _advance(self, att: Attempt) -> None:
        """Run the handler script from ``att.pc`` until it waits or ends."""
        script = att.script
        n = len(script)
        while True:
            pc = att.pc
            if pc >= n:
                att.status = 200
                self._respond(att)
                return
            step = script[pc]
            kind = step[0]
            if kind == STEP_WORK:
                if not att.holding:  # async service: take a worker for this work step
                    h = att.host
                    if h.busy < h.workers:
                        self._start(att, h, self.env._now)
                    elif h.qcap is None or len(h.queue) < h.qcap:
                        h.queue.append(att)
                    else:
                        att.status = 503
                        self._respond(att)
                    return
                sampler = step[1]
                d = att.host.ver.sample() if sampler is None else sampler()
                att.callbacks = [self._work_done]
                self._schedule(att, d)
                return
            if kind == STEP_ERR:
                status = att.host.errdraw()
                if status:
                    att.status = status
                    self._respond(att)
                    return
                att.pc = pc + 1
                continue
            if kind == STEP_CALL:
                call = step[1]
                if call.probability < 1.0 and next(self.call_u) >= call.probability:
                    att.pc = pc + 1
                    continue
                depth = att.depth + 1
                if self.max_depth is not None and depth > self.max_depth:
                    att.pc = pc + 1
                    continue
                h = att.host
                svc = call.service
                attrs = self._child_attrs(att, call) if self.need_attrs else None
                if svc.dest is not None:  # through the sidecar's router (Simulation.send, unrolled)
                    self.sidecars.send(svc.dest, h.hid, h.zone, att, attrs, depth, self._call_done, att.rid,
                                       call.optional)
                else:
                    self.send(h.hid, h.zone, att, svc, attrs, depth, self._call_done, att.rid, call.optional)
                return
            if kind == STEP_PAR:
                depth = att.depth + 1
                h = att.host
                sent = []
                for call in step[1]:
                    if call.probability < 1.0 and next(self.call_u) >= call.probability:
                        continue
                    if self.max_depth is not None and depth > self.max_depth:
                        continue
                    sent.append(call)
                if not sent:
                    att.pc = pc + 1
                    continue
                att.pending = len(sent)
                att.child_failed = False
                for call in sent:
                    self.send(h.hid, h.zone, att, call.service, self._child_attrs(att, call), depth,
                              self._par_done, att.rid, call.optional)
                return
            # STEP_SLEEP
            att.callbacks = [self._step_done]
            self._schedule(att, step[1]())
            return

    def _child_attrs(self, att: Attempt, call: CallRT):
        if not self.need_attrs:
            return None
        parent = att.attrs
        if call.headers:
            headers = dict(parent[2]) if parent is not None else {}
            headers.update(call.headers)
        else:  # the incoming headers, forwarded as they are (never modified in place)
            headers = parent[2] if parent is not None else {}
        return (call.path or "/", call.method or "GET", headers)

    def _work_done(self, att: Attempt) -> None:
        att.pc += 1
        if not att.host.ver.blocking:
            self._release(att)
        self._advance(att)

    def _step_done(self, att: Attempt) -> None:
        att.pc += 1
        self._advance(att)

    def _call_done(self, child: Attempt) -> None:
        """A sequential call's response reached the caller."""
        if child.abandoned:
            return
        child.abandoned = True  # answered: a later timeout or duplicate is ignored
        if not child.is_call:  # a router-level request: the sidecar recorded its tries
            self._rec_attempt(child)
            h = child.host
            if h is not None:  # plain path: the caller's connection is idle again
                h.cx_free[child.caller] += 1
        att = child.parent
        st = child.status
        if (st == 0 or st >= 400) and not child.optional:
            att.status = 500
            self._respond(att)
            return
        att.pc += 1
        self._advance(att)

    def _par_done(self, child: Attempt) -> None:
        """One response of a parallel group reached the caller."""
        if child.abandoned:
            return
        child.abandoned = True
        if not child.is_call:  # a router-level request: the sidecar recorded its tries
            self._rec_attempt(child)
            h = child.host
            if h is not None:  # plain path: the caller's connection is idle again
                h.cx_free[child.caller] += 1
        att = child.parent
        st = child.status
        if (st == 0 or st >= 400) and not child.optional:
            att.child_failed = True
        att.pending -= 1
        if att.pending == 0:
            if att.child_failed:
                att.status = 500
                self._respond(att)
            else:
                att.pc += 1
                self._advance(att)

    def _respond(self, att: Attempt) -> None:
        """The callee sends its response (status already set)."""
        now = self.env._now
        att.t_done = now
        if att.holding:
            self._release(att)
        v = att.host.ver
        v.in_flight -= 1
        v.n_done += 1
        if att.status >= 400:
            v.n_err += 1
        if self.direct or (self.net_zero and att.czone == att.host.zone):
            att.on_resp(att)
        else:
            self._leg(att, att.on_resp)

    # ------------------------------------------------------------------ entry requests
    def start_request(self, src, attrs) -> None:
        """A traffic source issues one end-to-end request."""
        rid = next(self._rid)
        service = src.service
        if src.direct:
            # fast path: no routing rules, no network delay (same steps as ``send``)
            att = Attempt(rid, src.code, src.zone, service, src, attrs, 1, src.on_resp, False, self.env._now)
            hosts = service.hosts
            i = service.rr
            service.rr = i + 1
            host = hosts[i % len(hosts)]
            free = host.cx_free  # the caller's connection (see ``send``; slot: _cx_slot)
            i = src.code + self.cx_width
            f = free[i]
            if f:
                free[i] = f - 1
            else:
                host.cx_opened += 1
            att.host = host
            att.script = host.ver.script
            self.open_requests[rid] = att
            q = service.timeout_q
            if q is not None:  # DeadlineQueue.add, inlined: the hot path
                deadline = att.t_send + q.length
                q.items.append((deadline, ref(att)))
                if q.armed_at is None:
                    q._arm(deadline, att.t_send)
            self._arrive(att)
            return
        att = self.send(src.code, src.zone, src, service, attrs, 1, src.on_resp, rid)
        if att.status == 0:  # not answered synchronously
            self.open_requests[rid] = att

    def _request_done_closed(self, att: Attempt) -> None:
        if att.abandoned:
            return
        att.abandoned = True
        self.open_requests.pop(att.rid, None)
        h = att.host  # (a sidecar's Call has none)
        if h is not None:  # plain path: the source's connection is idle again
            h.cx_free[att.caller + self.cx_width] += 1
        self._rec_entry(att)
        att.parent.on_done(att)

    # ------------------------------------------------------------------ running
    def _sampler_process(self):
        """Once a second: in-flight, queue length and busy area per version."""
        env = self.env
        versions = self.versions
        last_area = [0.0] * len(versions)
        sec = 0
        while True:
            yield env.timeout(1.0)
            sec += 1
            now = env._now
            self._count_second(sec - 1)
            for i, v in enumerate(versions):
                total = v.area + v.busy * (now - v.last)
                v.ts_area[sec - 1] = total - last_area[i]
                last_area[i] = total
                v.ts_in_flight[sec - 1] = v.in_flight
                v.ts_queue[sec - 1] = sum(len(h.queue) for h in v.hosts)
            if self.chaos is not None:  # replicas up, averaged over the second
                for v in versions:
                    v.ts_up[sec - 1] = v.up_area + v.up * (now - v.up_last)  # type: ignore[index]
                    v.up_area, v.up_last = 0.0, now
            for cl in self.sidecars.with_outlier:  # outlier_detection.ejections_active, over every caller
                for hid in cl.outlier.ejected_hosts:
                    self.hosts[hid].ver.ts_ejected[sec - 1] += 1
            if sec >= self.nslots - 1:
                return

    def _count_second(self, slot: int) -> None:
        """Arrivals, completions and errors since the last tick go to second ``slot``.

        The hot path only bumps running counters; the tick at the end of each second
        (scheduled before anything else at that instant) takes the differences.
        """
        self._counted = slot + 1
        for v in self.versions:
            v.arrivals[slot] = v.n_arr - v.c_arr
            v.completions[slot] = v.n_done - v.c_done
            v.errors[slot] = v.n_err - v.c_err
            v.c_arr, v.c_done, v.c_err = v.n_arr, v.n_done, v.n_err

    def _snapshot_area(self, timer: Timer) -> None:
        now = self.env._now
        self._area_at[str(timer.obj)] = [v.area + v.busy * (now - v.last) for v in self.versions]
        if timer.obj == "warmup":  # Envoy's counters are reported over the window, as the rest
            from meshsim.sim._result import sidecar_counters

            self._stats_at_warmup = sidecar_counters(self)

    def utilization_window(self) -> list[float]:
        """Busy share of each version's workers over ``[warmup, duration)``."""
        window = self.duration - self.warmup
        end = self._area_at.get("end")
        start = self._area_at.get("warmup")
        out = []
        for i, v in enumerate(self.versions):
            w = v.workers_total
            if end is None or start is None or w == 0 or window <= 0:
                out.append(math.nan)
            else:
                out.append((end[i] - start[i]) / (w * window))
        return out

    def run(self, progress: Callable[[float], None] | None = None):
        """Run to the end of traffic plus drain; return a ``RunResult``."""
        from meshsim.sim._result import RunResult

        env = self.env
        for src in self.sources:
            src.start()
        if self.chaos is not None:
            self.chaos.start()
        for change in self.weight_changes:
            timer = Timer(change)
            timer.callbacks = [self._apply_weights]
            env.schedule(timer, 0, change[0])  # type: ignore[arg-type]  # URGENT: before requests at that instant
        env.process(self._sampler_process())
        self._area_at: dict[str, list[float]] = {}
        self._counted = 0  # seconds whose arrivals/completions are counted
        if self.warmup <= 0:
            self._area_at["warmup"] = [0.0] * len(self.versions)
        else:
            timer = Timer("warmup")
            timer.callbacks = [self._snapshot_area]
            env.schedule(timer, 0, self.warmup)  # type: ignore[arg-type]  # URGENT: first at that instant
        # Python's cyclic collector would rescan the many short-lived engine objects again and
        # again (about a third of the run time); the engine makes almost no reference cycles, so
        # it is paused during the run and the young generations are collected between chunks.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            chunks = 50
            for k in range(1, chunks + 1):
                env.run_until(self.duration * k / chunks)
                gc.collect(1)
                if progress is not None:
                    progress(0.98 * k / chunks)
            self._snapshot_area(Timer("end"))  # all events before `duration` are done, the clock is at it
            # drain: let in-flight requests finish, up to the drain limit
            t = self.duration
            while self.open_requests and t < self.end_time:
                t = min(t + 1.0, self.end_time)
                env.run_until(t)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.t_end = env.now
        last = math.ceil(self.t_end) - 1  # the last second the run reached, maybe partial
        if self._counted <= last < self.nslots:
            self._count_second(last)
        for att in list(self.open_requests.values()):
            self.recorder.unfinished(att)
        self.open_requests.clear()
        result = RunResult.from_simulation(self)
        if progress is not None:
            progress(1.0)
        return result

