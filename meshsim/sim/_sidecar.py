"""The outbound sidecar: Envoy's router for destinations that carry mesh policies.

A destination service whose ``mesh:`` block sets anything beyond plain
routing goes through this module; the engine's plain path (``Simulation.send``)
serves the others (it counts the HTTP/1.1 connections Envoy would open, but
models no pool: no breakers, no handshake time). The sidecar only asks the policy modules of
``meshsim.policies`` what to do; it holds the per-request state (a ``Call``)
and the per-(caller sidecar, cluster) state (a ``ClusterState``), and it turns
decisions into SimPy events.

One request through the router (envoy.md section 13):

1. route match -> weighted version pick (the cluster) -> fault filter
   (delay, then abort with a new draw);
2. the route timeout is armed (lazily, ``DeadlineQueue``);
3. a try: the load balancer picks a host (previous-hosts predicate on
   retries; ``None`` -> 503 ``UH``), the circuit breaker admits it
   (``max_requests`` / ``max_pending_requests`` -> 503 ``UO``, never retried),
   the per-try timeout is armed, the request crosses the network;
4. the try's outcome (a response, or a per-try timeout) goes to outlier
   detection and to the retry state: retry after a jittered back-off, or
   answer the caller (``URX`` when retries ran out, ``UO`` with the
   upstream's own response when the retry breaker overflowed);
5. the route timeout abandons every try still out: 504 ``UT``.

Work already sent upstream is never cancelled: an abandoned try keeps its
worker at the callee until it finishes; its late response is dropped.

Simplifications (also in the docs): one Envoy worker per sidecar
(``--concurrency 1``); a connection is set up in one network round trip
and never fails to connect unless chaos makes the host unreachable; active
health-check probes are answered by the replica's error model a round trip
away without queueing for a worker.

The hot path (``send``, ``_try``, ``_try_done``) inlines a few small steps
(``_start``, ``_send``, ``_release``, ``_finish``, ``DeadlineQueue.add``) for
the common case; the full versions serve the rest, and comments mark the
copies that must stay in step.
"""

from __future__ import annotations

import math
from typing import Any
from weakref import ref

from meshsim.policies.circuit_breaker import (
    ConnectionPool,
    ConnectOutcome,
    PoolDecision,
    PoolFailure,
    ResourceManager,
    connect_outcome,
)
from meshsim.policies.fault import FaultInjector
from meshsim.policies.health_check import HealthChecker, HealthCheckResult, HealthTransition
from meshsim.policies.load_balancer import LoadBalancer
from meshsim.policies.outlier import EjectionAction, LbUpdate, OutlierDetector, OutlierResult
from meshsim.policies.retry import ResetKind, RetryBreaker, RetryDecision, RetryState
from meshsim.sim._deadlines import DeadlineQueue
from meshsim.sim._runtime import FLAG_CODES, REACHABLE, REFUSED, UNREACHABLE, Attempt, Host, Timer

__all__ = ["Call", "ClusterState", "Destination", "Sidecars"]

_NO_ATTRS: tuple[str, str, dict[str, str]] = ("/", "GET", {})  # requests without attributes; never modified
_ATTACHED = PoolDecision.ATTACHED
FLAG_UH = FLAG_CODES["UH"]
FLAG_UO = FLAG_CODES["UO"]
FLAG_UT = FLAG_CODES["UT"]
FLAG_URX = FLAG_CODES["URX"]
FLAG_DI = FLAG_CODES["DI"]
FLAG_FI = FLAG_CODES["FI"]
FLAG_NR = FLAG_CODES["NR"]
FLAG_RL = FLAG_CODES["RL"]


class Call:
    """One downstream request through the router: its route, retry state and tries.

    To the caller it looks like an ``Attempt`` (``status``, ``flags``,
    ``optional``, ``parent``, ``rid``, ``t_send``, ``try_no``).
    """

    __slots__ = (
        "callbacks", "rid", "caller", "czone", "service", "parent", "attrs", "depth", "on_resp", "optional",
        "t_send", "status", "flags", "try_no", "host", "t_arrive", "t_start", "t_done",
        "dest", "route", "cluster", "retry", "active", "done", "hash_key",
        "abandoned", "retries_waiting", "__weakref__",
    )
    _ok = True
    is_call = True

    def __init__(self, rid: int, caller: int, czone: str | None, dest: Any, parent: Any, attrs: Any, depth: int,
                 on_resp: Any, optional: bool, t_send: float) -> None:
        self.callbacks: list | None = None
        self.rid = rid
        self.caller = caller
        self.czone = czone
        self.service: Any = dest.service
        self.parent = parent
        self.attrs = attrs
        self.depth = depth
        self.on_resp = on_resp
        self.optional = optional
        self.t_send = t_send
        self.dest = dest
        self.route: Any = None
        self.cluster: Any = None
        self.hash_key: Any = None
        self.status = 0
        self.flags = 0
        self.try_no = 0
        self.host: Any = None
        self.t_arrive = -1.0
        self.t_start = -1.0
        self.t_done = -1.0
        self.active: list[Attempt] = []
        self.done = False
        self.retry: Any = None
        self.abandoned = False  # set by the caller's handler once it took the answer
        self.retries_waiting = 0  # retries in their back-off wait


class ClusterState:
    """A destination cluster (one version) as one caller sidecar sees it: LB, breakers, outlier detector."""

    __slots__ = ("sim", "dest", "version", "label", "hosts", "lb", "breaker", "rm", "pools", "czone",
                 "hash_header", "hash_source", "ejected", "hc_failed", "checkers", "hc_u", "outlier", "stats", "act",
                 "healthy", "interval_timer", "sidecar_key", "connect_timeout", "key")

    def __init__(self, sim: Any, dest: Destination, version: Any, sidecar_key: str,
                 local_zones: dict[Any, int] | None = None) -> None:
        """``version`` is a ``VersionRT`` (a subset cluster) or ``None`` (the whole service)."""

        self.sim = sim
        self.dest = dest
        self.version = version
        # Istio's subset cluster (outbound|80|v1|svc), or the whole service (outbound|80||svc)
        self.label = "*" if version is None else version.name
        #: the stats key of the cluster Envoy counts on: a route names a subset (``svc|v1``); a
        #: destination without routes uses the whole service (``svc|*``, ``svc|default`` when the
        #: service declares no versions), also when it has one version only
        self.key = dest.service.whole if dest.service.router is None else f"{dest.service.name}|{self.label}"
        self.sidecar_key = sidecar_key
        cp = dest.cluster_policies[None if version is None else version.name]
        self.hosts: list[Host] = list(dest.service.hosts if version is None else version.hosts)
        # attached requests per host (least request reads it through the dict's own __getitem__)
        self.act: dict[Host, int] = {h: 0 for h in self.hosts}
        self.stats: dict[str, int] = {}
        # the circuit breakers (shared by this sidecar's pools to the cluster) and one pool per host
        self.rm = ResourceManager(cp.circuit_breakers)
        self.connect_timeout = float(cp.circuit_breakers.connect_timeout_s)
        self.pools: dict[int, ConnectionPool] = {}
        self.czone: str | None = None  # the sidecar's zone (for connection set-up delays)
        self.breaker = RetryBreaker(int(cp.circuit_breakers.max_retries),
                                    budget=getattr(cp, "retry_budget", None),
                                    load=lambda: (self.rm.requests.current, self.rm.pending.current),
                                    stats=self.stats)
        streams = sim.streams
        names = (dest.service.name, self.label, sidecar_key)
        self.lb = LoadBalancer(cp.load_balancer, self.hosts, rng=streams.get("lb", *names),
                               active=self.act.__getitem__)
        hk = cp.load_balancer.hash_key
        self.hash_header: str | None = hk.header_name.lower() if hk is not None and hk.header_name else None
        self.hash_source = bool(hk is not None and hk.use_source_ip)
        if cp.load_balancer.zone_aware is not None and local_zones:
            self.lb.set_local_zones(local_zones)  # Envoy's local cluster: the caller's replicas per zone
        self.healthy = [True] * len(self.hosts)
        self.ejected: set[int] = set()  # hosts the outlier detector ejected (as the LB learnt it)
        self.hc_failed: set[int] = set()  # hosts failing their active health checks
        self.checkers: dict[int, Any] = {}
        self.hc_u: Any = None
        if cp.health_check is not None:
            self._start_health_checks(cp.health_check, names)
        self.outlier = None
        self.interval_timer: Timer | None = None
        if cp.outlier_detection is not None:
            self.outlier = OutlierDetector(cp.outlier_detection, hosts=[h.hid for h in self.hosts],
                                           rng=streams.get("outlier", *names))
            # the detector starts with the sidecar (time 0), though this state is built at the first request
            self.interval_timer = Timer(self)
            self.interval_timer.callbacks = [self._interval]
            interval = self.outlier.interval
            now = sim.env._now
            first = math.floor(now / interval) * interval + interval
            sim._schedule(self.interval_timer, first - now)

    def pool(self, host: Host, sidecars: Sidecars) -> ConnectionPool:
        """This sidecar's connection pool to ``host`` (created at first use)."""
        pool = self.pools.get(host.hid)
        if pool is None:
            hooks = _PoolHooks(sidecars, self, host)
            pool = ConnectionPool(self.rm, connect=hooks.connect, ready=hooks.ready, failure=hooks.failure,
                                  host=host)
            hooks.pool = pool
            self.pools[host.hid] = pool
        return pool

    # ------------------------------------------------------------------ outlier detection
    def record(self, host: Host, result: Any, now: float) -> None:
        if self.outlier is None:
            return
        ev = self.outlier.record(host.hid, result, now)
        if ev is not None:
            self._apply(ev, now)

    def _interval(self, timer: Timer) -> None:
        now = self.sim.env._now
        for ev in self.outlier.on_interval(now):  # type: ignore[union-attr]
            self._apply(ev, now)
        if now < self.sim.end_time:
            timer.callbacks = [self._interval]
            self.sim._schedule(timer, self.outlier.interval)  # type: ignore[union-attr]

    def _apply(self, ev: Any, now: float) -> None:
        """An outlier event: log it, and let the load balancer learn of it when Envoy's merge window says."""

        self.sim.outlier_events.append((now, self.dest.service.name, self.label, self.sidecar_key,
                                        _host_name(self.hosts, ev.host), ev.action.value,
                                        ev.type.value if ev.type is not None else ""))
        if ev.action not in (EjectionAction.EJECT, EjectionAction.UNEJECT):
            return
        if ev.lb_update is LbUpdate.IMMEDIATE:
            self._deliver(now)
        elif ev.lb_update is LbUpdate.SCHEDULED:
            t = Timer(self)
            t.callbacks = [self._deliver_timer]
            self.sim._schedule(t, max(0.0, float(ev.lb_at) - now))

    def _deliver_timer(self, _t: Timer) -> None:
        self._deliver(self.sim.env._now)

    def _deliver(self, now: float) -> None:
        changes = self.outlier.merger.deliver(now)  # type: ignore[union-attr]
        if not changes:
            return
        for ev in changes:
            if ev.action is EjectionAction.EJECT:
                self.ejected.add(ev.host)
            else:
                self.ejected.discard(ev.host)
        self._refresh_lb()

    def _refresh_lb(self) -> None:
        """The load balancer's healthy set: neither ejected nor failing its active health checks."""
        ejected, failed = self.ejected, self.hc_failed
        self.healthy = [h.hid not in ejected and h.hid not in failed for h in self.hosts]
        self.lb.set_hosts(self.hosts, self.healthy)

    # ------------------------------------------------------------------ active health checks
    def _start_health_checks(self, policy: Any, names: tuple[str, ...]) -> None:
        """One checker per host; probes are answered by the replica's error model, one round trip away.

        Simplifications: a probe does not queue for a worker (a saturated replica still answers
        its health checks), and hosts count as healthy from the start (Envoy holds a new cluster
        until its first round of checks). The probe's outcome uses its own random stream.
        """
        sim = self.sim
        rng = sim.streams.get("health", *names)
        self.hc_u = sim.streams.uniforms("health-probe", *names)
        self.checkers = {}
        for h in self.hosts:
            c = HealthChecker(policy, rng=rng, healthy=True, has_traffic=True)
            self.checkers[h.hid] = c
            t = Timer((h, c))
            t.callbacks = [self._hc_probe]
            sim._schedule(t, c.initial_delay())

    def _probe_rtt(self, host: Host) -> float:
        sim = self.sim
        net = sim.scenario.network
        rtt = 2.0 * float(net.latency.mean())
        if self.czone is not None and host.zone is not None and self.czone != host.zone:
            rtt += 2.0 * float(net.cross_zone.mean())
        return rtt

    def _hc_probe(self, t: Timer) -> None:
        sim = self.sim
        now = sim.env._now
        if now >= sim.end_time:
            return
        obj: Any = t.obj
        host, checker = obj
        deadline = checker.start_check(now)
        rtt = self._probe_rtt(host)
        errors = host.ver.spec.errors
        status = 503 if errors is not None and next(self.hc_u) < float(errors.rate) else 200
        if sim.chaos is not None:  # a crashed, cut-off or failing replica (chaos)
            status, rtt = sim.chaos.probe(host, int(self.sidecar_key), status, rtt, deadline - now)
        r = Timer((host, checker, status if now + rtt < deadline else HealthCheckResult.TIMEOUT))
        r.callbacks = [self._hc_result]
        sim._schedule(r, min(rtt, deadline - now))

    def _hc_result(self, t: Timer) -> None:
        sim = self.sim
        now = sim.env._now
        obj: Any = t.obj
        host, checker, result = obj
        if checker.on_result(result, now) is HealthTransition.CHANGED:
            if checker.healthy:
                self.hc_failed.discard(host.hid)
            else:
                self.hc_failed.add(host.hid)
            self._refresh_lb()
        if checker.healthy and self.outlier is not None:
            ev = self.outlier.on_health_check_success(host.hid, now)
            if ev is not None:
                self._apply(ev, now)
        nxt = Timer((host, checker))
        nxt.callbacks = [self._hc_probe]
        sim._schedule(nxt, checker.next_interval(now))


def _host_name(hosts: list[Host], hid: Any) -> str:
    for h in hosts:
        if h.hid == hid:
            return h.name
    return str(hid)


class _RetryRT:
    """A retry policy's runtime tuple, read once (``RetryState`` takes it in place of the pydantic model)."""

    __slots__ = ("_rt", "_flags", "codes")

    def __init__(self, policy: Any) -> None:
        self._rt = policy._rt
        self._flags = policy._flags
        self.codes = frozenset(self._rt[1])


class _PoolHooks:
    """The callbacks one connection pool makes into the engine."""

    __slots__ = ("sidecars", "cluster", "host", "pool")

    def __init__(self, sidecars: Sidecars, cluster: ClusterState, host: Host) -> None:
        self.sidecars = sidecars
        self.cluster = cluster
        self.host = host
        self.pool: Any = None

    def connect(self, conn: Any, now: float) -> None:
        """The pool opens a connection: it is up after a TCP handshake (one round trip).

        A host that refuses connections answers the handshake with a reset
        (503 ``UF``, ``upstream_cx_connect_fail``); an unreachable one never
        answers and the cluster's ``connect_timeout`` fires
        (``upstream_cx_connect_timeout``). Either fails every request queued
        in the pool, retriable with ``retry_on: connect-failure``.
        """
        sim = self.sidecars.sim
        cl = self.cluster
        host = self.host
        d = 0.0 if sim.net_zero else sim.net_delay() + sim.net_delay()
        if sim.xz_delay is not None and cl.czone != host.zone:
            d += sim.xz_delay() + sim.xz_delay()
        t = Timer(conn)
        reach = host.reach
        if host.reach_from is not None:  # a chaos partition is active: reachability depends on the caller
            reach = host.reach_from.get(int(cl.sidecar_key), reach)
        if reach == REACHABLE:
            t.callbacks = [self._connected]
        else:
            d, outcome = connect_outcome(None if reach == UNREACHABLE else d, cl.connect_timeout,
                                         refused=reach == REFUSED)
            t.callbacks = [self._connected if outcome is ConnectOutcome.CONNECTED
                           else self._timed_out if outcome is ConnectOutcome.TIMEOUT else self._refused]
        sim._schedule(t, d)

    def _connected(self, t: Timer) -> None:
        self.pool.on_connected(t.obj, self.sidecars.sim.env._now)

    def _refused(self, t: Timer) -> None:
        self.pool.on_connect_failure(t.obj, self.sidecars.sim.env._now)

    def _timed_out(self, t: Timer) -> None:
        self.pool.on_connect_failure(t.obj, self.sidecars.sim.env._now, timeout=True)

    def ready(self, att: Attempt, conn: Any, now: float) -> None:
        self.sidecars._send(att, now)

    def failure(self, att: Attempt, reason: PoolFailure, now: float) -> None:
        self.sidecars._pool_failure(att, reason, now)


class RouteRT:
    """One route's policies, compiled for the hot path."""

    __slots__ = ("timeout", "per_try_timeout", "retry_policy", "retry_rt", "hedge", "fault_injector", "mirror",
                 "extras", "route_q", "try_q")

    def __init__(self, rp: Any) -> None:

        timeout = rp.timeout
        self.timeout = float(timeout.timeout)
        # Envoy ignores a per-try timeout at or above a non-zero route timeout
        self.per_try_timeout = float(timeout.effective_per_try_timeout)
        self.retry_policy = rp.retries
        self.retry_rt = _RetryRT(rp.retries) if rp.retries is not None and rp.retries.active else None
        self.hedge = bool(rp.retries is not None and rp.retries.hedge_on_per_try_timeout)
        self.fault_injector = FaultInjector(rp.fault) if rp.fault is not None else None
        self.mirror = rp.mirror
        #: mirroring or a fault filter: ``send`` takes its longer way
        self.extras = self.mirror is not None or self.fault_injector is not None
        #: the route and per-try timeout queues (``Sidecars``' shared ones of these lengths), None when off
        self.route_q: DeadlineQueue | None = None
        self.try_q: DeadlineQueue | None = None


class Destination:
    """A destination service's compiled mesh policy (shared by every caller)."""

    __slots__ = ("service", "policy", "routes", "cluster_policies", "rate_limit", "default_version", "by_caller")

    def __init__(self, sim: Any, service: Any, policy: Any) -> None:
        self.service = service
        self.policy = policy
        n = len(policy.routes)
        self.routes = [RouteRT(policy.route_policies(i)) for i in range(n)] if n \
            else [RouteRT(policy.route_policies(None))]
        for route in self.routes:
            if route.timeout > 0:
                route.route_q = sim.sidecars._route_queue(route.timeout)
            if route.per_try_timeout > 0:
                route.try_q = sim.sidecars._try_queue(route.per_try_timeout)
        self.cluster_policies: dict[str | None, Any] = {v.name: policy.cluster_policies(v.name)
                                                        for v in service.versions}
        self.cluster_policies[None] = policy.cluster_policies(None)
        self.rate_limit = getattr(policy, "rate_limit", None)
        #: the cluster of a request no route names a subset for: the only version, or the whole service
        self.default_version = service.versions[0] if len(service.versions) == 1 else None
        #: caller -> its ClusterState for ``default_version`` (a destination without routes)
        self.by_caller: dict[int, Any] = {}


class Sidecars:
    """Every caller sidecar's router state, created lazily per (caller, destination version)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.clusters: dict[tuple[int, int], ClusterState] = {}
        self.with_outlier: list[ClusterState] = []  # clusters that run outlier detection (for the timeseries)
        self.route_queues: dict[float, DeadlineQueue] = {}
        self.try_queues: dict[float, DeadlineQueue] = {}
        self.retry_u = sim.streams.uniforms("retry")
        self.fault_u = sim.streams.uniforms("fault")
        self.mirror_u = sim.streams.uniforms("mirror")
        self._try_done_cb = self._try_done  # one bound method, not one per try

    # ------------------------------------------------------------------ helpers
    def cluster(self, caller: int, version: Any, dest: Destination) -> ClusterState:
        key = (caller, version.vid if version is not None else -1 - dest.service.idx)
        cl = self.clusters.get(key)
        if cl is None:
            cl = ClusterState(self.sim, dest, version, str(caller), self._local_zones(caller))
            self.clusters[key] = cl
            if cl.outlier is not None:
                self.with_outlier.append(cl)
        return cl

    def _local_zones(self, caller: int) -> dict[Any, int] | None:
        """Zone -> replicas of the caller's service (Envoy's local cluster, for zone-aware routing)."""
        if caller < 0:
            return None  # a traffic source has no local cluster
        zones: dict[Any, int] = {}
        for h in self.sim.hosts[caller].ver.service.hosts:
            if h.zone is not None:
                zones[h.zone] = zones.get(h.zone, 0) + 1
        return zones or None

    def _route_queue(self, length: float) -> DeadlineQueue:
        q = self.route_queues.get(length)
        if q is None:
            q = DeadlineQueue(self.sim, length, self._route_expired, _call_resolved)
            self.route_queues[length] = q
        return q

    def _try_queue(self, length: float) -> DeadlineQueue:
        q = self.try_queues.get(length)
        if q is None:
            q = DeadlineQueue(self.sim, length, self._try_expired, _try_resolved)
            self.try_queues[length] = q
        return q

    # ------------------------------------------------------------------ a request
    def send(self, dest: Destination, caller: int, czone: str | None, parent: Any, attrs: Any, depth: int,
             on_resp: Any, rid: int, optional: bool) -> Call:
        sim = self.sim
        now = sim.env._now
        call = Call(rid, caller, czone, dest, parent, attrs, depth, on_resp, optional, now)
        svc = dest.service
        router = svc.router
        if router is not None:
            path, method, headers = attrs if attrs is not None else _NO_ATTRS
            idx = router.match(path, method, headers)
            if idx is None:
                self._local_reply(call, 404, FLAG_NR)
                return call
            vname = router.pick(idx, next(sim.route_u))
            route = dest.routes[idx]
            # a route names a subset (version)
            version = svc.by_name[vname] if vname is not None else dest.default_version
            cl = self.clusters.get((caller, version.vid if version is not None else -1 - svc.idx))
            if cl is None:
                cl = self.cluster(caller, version, dest)
        else:
            # no routes: the one version's cluster, or the whole service (per caller, cached)
            route = dest.routes[0]
            cl = dest.by_caller.get(caller)
            if cl is None:
                cl = dest.by_caller[caller] = self.cluster(caller, dest.default_version, dest)
        call.route = route
        call.cluster = cl
        # ring hash / maglev key: a request header, or the caller (Envoy hashes the source address)
        if cl.hash_header is not None:
            headers = attrs[2] if attrs is not None else None
            call.hash_key = headers.get(cl.hash_header) if headers else None
        elif cl.hash_source:
            call.hash_key = cl.sidecar_key
        if route.extras:
            # mirroring: a shadow copy to another version, its response discarded
            mirror = route.mirror
            if mirror is not None and next(self.mirror_u) < mirror.fraction:
                self._mirror(call, mirror, svc, caller, czone, attrs, depth, rid)
            # fault filter: delay first, then abort with its own draw
            fault = route.fault_injector
            if fault is not None:
                d = fault.decide(next(self.fault_u), next(self.fault_u))
                if d.abort_status and not d.delay_s:
                    cl.stats["fault.aborts_injected"] = cl.stats.get("fault.aborts_injected", 0) + 1
                    self._local_reply(call, d.abort_status, FLAG_FI)
                    return call
                if d.delay_s:
                    cl.stats["fault.delays_injected"] = cl.stats.get("fault.delays_injected", 0) + 1
                    call.flags |= FLAG_DI
                    t = Timer((call, d.abort_status))
                    t.callbacks = [self._after_fault_delay]
                    sim._schedule(t, d.delay_s)
                    return call
        # _start, inlined: once per request (the route timeout)
        q = route.route_q
        if q is not None:
            deadline = now + q.length  # DeadlineQueue.add, inlined
            q.items.append((deadline, ref(call)))
            if q.armed_at is None:
                q._arm(deadline, now)
        self._try(call, now)
        return call

    def _after_fault_delay(self, t: Timer) -> None:
        pair: Any = t.obj
        call, abort = pair
        fault = call.route.fault_injector
        if hasattr(fault, "delay_ended"):
            fault.delay_ended()
        if abort:
            st = call.cluster.stats
            st["fault.aborts_injected"] = st.get("fault.aborts_injected", 0) + 1
            self._local_reply(call, abort, FLAG_FI)
            return
        self._start(call, self.sim.env._now)

    def _start(self, call: Call, now: float) -> None:
        # the retry state is created at the first outcome that needs it (see _judge): a request whose
        # first try succeeds never needs one, and Envoy's shouldRetry would answer NO without effects
        # (inlined in ``send`` for requests without a fault delay: keep the two in step)
        route = call.route
        q = route.route_q
        if q is not None:
            deadline = now + q.length  # DeadlineQueue.add, inlined: once per request
            q.items.append((deadline, ref(call)))
            if q.armed_at is None:
                q._arm(deadline, now)
        self._try(call, now)

    def _mirror(self, call: Call, mirror: Any, svc: Any, caller: int, czone: str | None, attrs: Any, depth: int,
                rid: int) -> None:
        version = svc.by_name.get(mirror.version)
        if version is None or not version.hosts:
            return
        i = version.rr
        version.rr = i + 1
        host = version.hosts[i % len(version.hosts)]
        att = Attempt(rid, caller, czone, svc, None, attrs, depth, self._shadow_done, True, self.sim.env._now)
        att.host = host
        att.script = host.ver.script
        att.flags = 0
        self.sim._deliver_to_host(att)

    def _shadow_done(self, att: Attempt) -> None:
        att.mirror = True  # type: ignore[attr-defined]
        self.sim.recorder.shadow(att)

    # ------------------------------------------------------------------ tries
    def _try(self, call: Call, now: float) -> None:
        """One try: a host from the load balancer, then a stream from that host's connection pool."""
        cl = call.cluster
        st = call.retry
        lb = cl.lb
        if st is not None and st.tried_hosts:
            host = lb.choose(call.hash_key, call.czone, avoid=st.tried_hosts, max_attempts=1 + st._host_attempts)
        else:
            pick = lb.fast_pick
            host = pick() if pick is not None else lb.choose(call.hash_key, call.czone)
        if host is None:
            self._local_reply(call, 503, FLAG_UH)
            return
        if st is not None and st.tried_hosts is not None:
            st.on_host_attempted(host)
        if cl.czone is None:
            cl.czone = call.czone
        att = Attempt(call.rid, call.caller, call.czone, call.service, call, call.attrs, call.depth,
                      self._try_done_cb, call.optional, now)
        att.try_no = call.try_no + 1
        att.host = host
        att.script = host.ver.script
        pool = cl.pools.get(host.hid)
        if pool is None:
            pool = cl.pool(host, self)
        decision = pool.new_stream(att, now)
        if decision is _ATTACHED:
            call.try_no += 1
            call.active.append(att)
            # _send, inlined for a try that has its stream at once
            cl.act[host] += 1
            q = call.route.try_q
            if q is not None:
                deadline = now + q.length  # DeadlineQueue.add, inlined: once per try
                q.items.append((deadline, ref(att)))
                if q.armed_at is None:
                    q._arm(deadline, now)
            self.sim._deliver_to_host(att)
        elif decision is PoolDecision.QUEUED or decision is PoolDecision.QUEUED_NEW_CONNECTION:
            call.try_no += 1
            call.active.append(att)  # pending: waits for a connection (or for max_requests)
        else:  # overflow (503 UO) or no pool (503 UH): never retried, not seen by outlier detection
            failure = decision.failure
            # an overflow refuses an upstream request Envoy had created: it counts as an attempt
            # (%UPSTREAM_REQUEST_ATTEMPT_COUNT%); no pool at all is answered before any
            counted = failure is PoolFailure.OVERFLOW
            if counted:
                call.try_no += 1
            self._local_reply(call, failure.status, FLAG_CODES[failure.response_flag], counted=counted)

    def _send(self, att: Attempt, now: float) -> None:
        """The try has a stream: the per-try timer starts and the request crosses the network.

        (Inlined in ``_try`` for a try attached at once: keep the two in step.)
        """
        call = att.parent
        if call.done:  # pragma: no cover - the pool was told when the call ended
            return
        call.cluster.act[att.host] += 1
        q = call.route.try_q
        if q is not None:
            deadline = now + q.length  # DeadlineQueue.add, inlined: once per try
            q.items.append((deadline, ref(att)))
            if q.armed_at is None:
                q._arm(deadline, now)
        self.sim._deliver_to_host(att)

    def _pool_failure(self, att: Attempt, reason: PoolFailure, now: float) -> None:
        """A waiting try failed in the pool: overflow when its connection came up, or a connect failure."""
        call = att.parent
        if reason is PoolFailure.CONNECTION_TERMINATION:  # an active stream (it had been sent): see _send
            call.cluster.act[att.host] -= 1
        if att in call.active:
            call.active.remove(att)
        if call.done:
            return
        att.abandoned = True
        att.status = reason.status
        att.flags |= FLAG_CODES[reason.response_flag]
        if reason.dropped:
            att.host = None
            att.local_vid = call.cluster.version.vid if call.cluster.version is not None else -1
            self.sim._rec_attempt(att)
            self._finish(call, reason.status, FLAG_CODES[reason.response_flag])
            return
        self.sim._rec_attempt(att)
        call.cluster.record(att.host, OutlierResult.LOCAL_ORIGIN_CONNECT_FAILED, now)
        reset = ResetKind.CONNECTION_TERMINATION if reason is PoolFailure.CONNECTION_TERMINATION \
            else ResetKind.CONNECT_FAILURE
        self._judge(call, att, None, reset, now, reason.status)

    def _release(self, att: Attempt, reset: bool = True) -> None:
        """The try leaves its pool: response complete, or reset (timeouts, hedging losers)."""
        call = att.parent
        cl = call.cluster
        pool = cl.pools[att.host.hid]
        now = self.sim.env._now
        if pool.connection_of(att) is None:  # still waiting for a connection
            pool.cancel_pending(att, now)
            return
        cl.act[att.host] -= 1
        if reset:
            pool.on_reset(att, now)
        else:
            pool.on_response_complete(att, now)

    def _local_reply(self, call: Call, status: int, flags: int, counted: bool = False) -> None:
        """An answer the sidecar makes itself (no host reached): one attempt row, then the caller.

        ``counted``: the refused try is already in ``call.try_no`` (a circuit-breaker overflow).
        """
        att = Attempt(call.rid, call.caller, call.czone, call.service, call, call.attrs, call.depth,
                      call.on_resp, call.optional, call.t_send)
        att.try_no = call.try_no if counted else call.try_no + 1
        att.status = status
        att.flags = call.flags | flags
        cl = call.cluster
        if cl is not None and cl.version is not None:
            att.local_vid = cl.version.vid
        self.sim._rec_attempt(att)
        self._finish(call, status, flags)

    def _try_done(self, att: Attempt) -> None:
        """A try's response reached the caller's sidecar."""
        if att.abandoned:  # type: ignore[attr-defined]
            return  # a timed-out try answering late: already judged and recorded
        sim = self.sim
        now = sim.env._now
        att.abandoned = True  # type: ignore[attr-defined]  # judged
        sim._rec_attempt(att)
        call = att.parent
        call.active.remove(att)
        cl = call.cluster
        host = att.host
        # _release, inlined: a try with a response had its stream. The stream ends with the response,
        # or is reset when the response is retried (below, in _judge)
        cl.act[host] -= 1
        pool = cl.pools[host.hid]
        status = att.status
        outlier = cl.outlier
        if outlier is not None:
            ev = outlier.record_status(host.hid, status, now)
            if ev is not None:
                cl._apply(ev, now)
        if call.done:
            pool.on_response_complete(att, now)
            return
        route = call.route
        if call.retry is None and not route.hedge:
            rt = route.retry_rt
            if rt is None or (status < 400 and status not in rt.codes):
                # nothing to retry (see _judge) and no other try out: _finish, inlined
                pool.on_response_complete(att, now)
                call.done = True
                call.status = status
                call.flags |= att.flags
                call.t_done = now
                call.on_resp(call)
                return
        elif route.hedge and (att.hedged or call.active or call.retries_waiting):
            st = call.retry
            good = not (st.would_retry(status, None) if st is not None else status >= 500)
            if not good and (call.active or call.retries_waiting):
                pool.on_response_complete(att, now)
                return  # an error while other tries are out: Envoy discards it and waits for them
        self._judge(call, att, status, None, now, pool=pool)

    def _judge(self, call: Call, att: Attempt, status: int | None, reset: Any, now: float,
               reset_status: int = 504, pool: ConnectionPool | None = None) -> None:
        """The try's outcome (a ``status``, or a ``reset`` answered locally with ``reset_status``):
        retry, or answer the caller.

        ``pool`` is given for a response whose stream is still open: Envoy decides on the retry
        with the try still active (retry budgets count it), then resets the stream of a response
        it retries (``router.cc`` ``onUpstreamHeaders``: on HTTP/1.1 that closes the connection)
        and completes it otherwise.
        """
        st = call.retry
        final_status = status if status is not None else reset_status
        if st is None:
            rt = call.route.retry_rt
            if rt is None or (reset is None and status < 400 and status not in rt.codes):  # type: ignore[operator]
                if pool is not None:
                    pool.on_response_complete(att, now)
                self._finish(call, final_status, att.flags)  # nothing to retry, no state to keep
                return
            st = self._retry_state(call, att)
        decision, delay = st.should_retry(status, reset, now)
        if pool is not None:
            if decision is RetryDecision.YES:
                pool.on_reset(att, now)
            else:
                pool.on_response_complete(att, now)
        if decision is RetryDecision.YES:
            self._schedule_retry(call, delay)
            return
        flags = att.flags
        if decision is RetryDecision.LIMIT_EXCEEDED:
            flags |= FLAG_URX
        elif decision is RetryDecision.OVERFLOW:
            flags |= FLAG_UO
        self._finish(call, final_status, flags)

    def _retry_state(self, call: Call, first: Attempt) -> Any:
        """The request's retry state, created at the first outcome that needs it."""
        if call.retry is None:
            cl = call.cluster
            st = call.retry = RetryState(call.route.retry_rt, cl.breaker, self.retry_u.__next__, stats=cl.stats)
            if st.tried_hosts is not None:
                st.on_host_attempted(first.host)
        return call.retry

    def _schedule_retry(self, call: Call, delay: float) -> None:
        call.retries_waiting += 1
        t = Timer(call)
        t.callbacks = [self._retry_now]
        self.sim._schedule(t, delay)

    def _retry_now(self, t: Timer) -> None:
        call: Any = t.obj
        call.retries_waiting -= 1
        if call.done:
            return
        self._try(call, self.sim.env._now)

    def _try_expired(self, att: Attempt) -> None:
        """Per-try timeout: the try is reset (its work goes on upstream), then the retry decision."""

        sim = self.sim
        now = sim.env._now
        call = att.parent
        if call.route.hedge:
            self._hedge(call, att, now)
            return
        att.abandoned = True  # type: ignore[attr-defined]
        att.status = 504
        att.flags |= FLAG_UT
        sim._rec_attempt(att)
        call.active.remove(att)
        self._release(att)
        cl = call.cluster
        cl.stats["upstream_rq_per_try_timeout"] = cl.stats.get("upstream_rq_per_try_timeout", 0) + 1
        cl.record(att.host, OutlierResult.LOCAL_ORIGIN_TIMEOUT, now)
        if call.done:
            return
        self._judge(call, att, None, ResetKind.PER_TRY_TIMEOUT, now)

    def _hedge(self, call: Call, att: Attempt, now: float) -> None:
        """Per-try timeout on a hedging route: the slow try runs on, another may start next to it.

        Envoy (``onSoftPerTryTimeout``): outlier detection hears of the timeout
        once, ``upstream_rq_per_try_timeout`` is not counted, and a new try
        starts when the retry rules allow (``num_retries``, the retry breaker,
        back-off); the first good response wins and the other tries are reset.
        Without a retry state nothing happens.
        """
        if call.done or att.hedged:
            return
        att.hedged = True
        call.cluster.record(att.host, OutlierResult.LOCAL_ORIGIN_TIMEOUT, now)
        if call.route.retry_rt is None:
            return
        decision, delay = self._retry_state(call, att).hedge_on_per_try_timeout(now)
        if decision is RetryDecision.YES:
            self._schedule_retry(call, delay)

    def _route_expired(self, call: Call) -> None:
        """The route timeout: every try still out is reset, the caller gets 504 UT."""
        sim = self.sim
        cl = call.cluster
        cl.stats["upstream_rq_timeout"] = cl.stats.get("upstream_rq_timeout", 0) + 1
        for att in list(call.active):
            att.abandoned = True  # type: ignore[attr-defined]
            att.status = 504
            att.flags |= FLAG_UT
            sim._rec_attempt(att)
            self._release(att)
        call.active.clear()
        self._finish(call, 504, FLAG_UT)

    def _finish(self, call: Call, status: int, flags: int) -> None:
        if call.active:  # hedged tries still out: reset (their per-try timeout had fired)
            for other in call.active:
                other.abandoned = True
                other.status = 504
                other.flags |= FLAG_UT
                self.sim._rec_attempt(other)
                self._release(other)
            call.active.clear()
        call.done = True
        call.status = status
        call.flags |= flags
        if call.retry is not None:
            call.retry.on_request_end()
        call.t_done = self.sim.env._now
        call.on_resp(call)


def _call_resolved(call: Call) -> bool:
    return call.done


def _try_resolved(att: Attempt) -> bool:
    return att.abandoned or att.parent.done  # type: ignore[attr-defined]

