"""Runtime objects of the engine: hosts (replicas), versions, services, attempts.

These are plain ``__slots__`` classes read and written by the engine's
callbacks; they hold no logic of their own beyond small helpers, so the hot
path stays a handful of attribute reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Attempt", "Host", "VersionRT", "ServiceRT", "Timer", "STEP_WORK", "STEP_SLEEP", "STEP_CALL",
           "STEP_PAR", "STEP_ERR", "FLAG_NAMES", "FLAG_CODES"]

# script step kinds (compiled form: tuples whose first element is the kind)
STEP_WORK = 0  # (STEP_WORK, sampler_or_None)
STEP_SLEEP = 1  # (STEP_SLEEP, sampler)
STEP_CALL = 2  # (STEP_CALL, CallRT)
STEP_PAR = 3  # (STEP_PAR, tuple[CallRT, ...])
STEP_ERR = 4  # (STEP_ERR,) the error model's draw, placed after the first work step

# Envoy response flags as bits (subset; the policy issue adds its own uses)
FLAG_NAMES: dict[int, str] = {
    1 << 0: "NR",  # no route
    1 << 1: "UH",  # no healthy upstream
    1 << 2: "UO",  # upstream overflow (circuit breaker)
    1 << 3: "UF",  # upstream connection failure
    1 << 4: "UT",  # upstream request timeout
    1 << 5: "URX",  # retries exhausted
    1 << 6: "DI",  # fault delay injected
    1 << 7: "FI",  # fault abort injected
    1 << 8: "RL",  # rate limited
    1 << 9: "UC",  # upstream connection termination
}
#: response flag name -> bit
FLAG_CODES: dict[str, int] = {name: bit for bit, name in FLAG_NAMES.items()}


def _no_sample() -> float:  # pragma: no cover - replaced when the version is built
    raise RuntimeError("version without a latency sampler")


class Timer:
    """A reusable bare SimPy event: ``env.schedule(timer, NORMAL, delay)`` with a callback.

    SimPy's ``Environment.step`` only needs ``callbacks`` and ``_ok`` of an
    event; a slotted object is cheaper to create than ``simpy.Event``.
    """

    __slots__ = ("callbacks", "obj")
    _ok = True

    def __init__(self, obj: object = None) -> None:
        self.callbacks: list | None = None
        self.obj = obj


class Attempt:
    """One try of a request from a caller to one host; also its own SimPy event.

    The attempt is scheduled on the SimPy heap for its sequential steps
    (network legs, work, sleeps): at most one of those is pending at a time.
    """

    __slots__ = (
        "callbacks",  # SimPy event protocol
        "rid",  # end-to-end request id
        "caller",  # caller code: host id >= 0, or -(source index + 1)
        "czone",  # caller zone (None when unknown)
        "service",  # destination ServiceRT
        "host",  # Host or None (local reply)
        "try_no",
        "t_send",
        "t_arrive",
        "t_start",
        "t_done",
        "status",
        "flags",
        "pc",
        "holding",
        "pending",
        "child_failed",
        "optional",
        "attrs",
        "depth",
        "parent",
        "on_resp",
        "script",
        "abandoned",  # the caller stopped waiting (timeout): a late response is dropped
        "mirror",  # a shadow copy whose response nobody waits for
        "hedged",  # its per-try timeout fired on a hedging route: it runs on next to a new try
        "local_vid",  # a local reply (no host) for a known cluster version: its vid, else -1
        "__weakref__",  # timeouts hold weak references (DeadlineQueue)
    )
    _ok = True
    is_call = False

    def __init__(self, rid: int, caller: int, czone: str | None, service: ServiceRT, parent: Any, attrs: Any,
                 depth: int, on_resp: Callable[[Attempt], None], optional: bool, t_send: float) -> None:
        self.callbacks: list | None = None
        self.host: Any = None  # Host, or None for a local reply (no host picked)
        self.script: tuple = ()
        self.rid = rid
        self.caller = caller
        self.czone = czone
        self.service = service
        self.parent = parent
        self.attrs = attrs
        self.depth = depth
        self.on_resp = on_resp
        self.optional = optional
        self.t_send = t_send
        self.t_arrive = -1.0
        self.t_start = -1.0
        self.t_done = -1.0
        self.status = 0
        self.flags = 0
        self.pc = 0
        self.holding = False
        self.pending = 0
        self.child_failed = False
        self.try_no = 1
        self.abandoned = False
        self.mirror = False
        self.hedged = False
        self.local_vid = -1


#: ``Host.reach``: new connections complete, are refused, or are never answered
REACHABLE, REFUSED, UNREACHABLE = 0, 1, 2


class Host:
    """A replica: a FCFS pool of ``workers`` and a waiting room of ``queue`` places.

    The chaos attributes (``down``, ``reach_from``, ``fx``, ``live``,
    ``script``, ``slow``) keep their neutral values unless the scenario has a
    ``chaos:`` block (``meshsim.sim._chaos``).
    """

    __slots__ = ("hid", "index", "ver", "zone", "workers", "busy", "queue", "qcap", "weight", "name", "limiter",
                 "reach", "simple", "down", "reach_from", "fx", "live", "script", "slow", "errdraw", "cx_free",
                 "cx_opened")

    def __init__(self, hid: int, index: int, ver: VersionRT, zone: str | None, workers: int, qcap: int | None):
        self.hid = hid
        self.index = index
        self.ver = ver
        self.zone = zone
        self.workers = workers
        self.busy = 0
        self.queue: deque = deque()
        self.qcap = qcap  # None: unlimited
        self.weight = 1  # load-balancing weight
        self.name = f"{ver.service.name}-{ver.name}-{index}"  # stable hash key for ring hash / maglev
        self.limiter: Any = None  # the inbound sidecar's local rate limit (TokenBucket), if any
        #: how a new connection to this host ends: REACHABLE, REFUSED (nothing listens: a reset after one
        #: round trip) or UNREACHABLE (no answer: the caller's connect_timeout fires); set by chaos
        self.reach = REACHABLE
        #: the version's fast path (one blocking work step) applies to this host: off for chaos targets
        self.simple = False
        #: crashes (chaos) holding this host down now (0: up); while down its work is lost and connections refused
        self.down = 0
        #: caller code -> UNREACHABLE for callers a partition cuts off; ``None`` while no partition is active
        self.reach_from: dict[int, int] | None = None
        #: the effects of the active latency / error / reset faults on this host, or ``None``
        self.fx: Any = None
        #: attempts at this host (insertion-ordered), kept only for hosts a crash may hit
        self.live: dict[Attempt, None] | None = None
        #: this host's own copy of its version's script (slowdown targets: work scaled by ``slow``)
        self.script: tuple | None = None
        self.slow = 1.0
        #: the error model's draw for this replica (its version's, or its own counter for even spacing)
        self.errdraw: Callable[[], int] | None = None
        #: plain path (``Simulation.send``): caller code -> idle HTTP/1.1 connections of that caller's
        #: sidecar to this host, a list indexed by the code (or a dict in huge meshes; ``None`` for
        #: hosts of a destination with policies: its sidecars' pools count)
        self.cx_free: Any = None
        #: plain path: connections opened to this host, over every caller (``upstream_cx_total``)
        self.cx_opened = 0

    def __repr__(self) -> str:
        return self.name


class VersionRT:
    """A version (subset) of a service with its hosts and its per-second counters."""

    __slots__ = (
        "vid", "service", "name", "spec", "hosts", "blocking", "script", "sample", "errdraw",
        "busy", "area", "last", "in_flight", "arrivals", "completions", "errors", "rr",
        "ts_in_flight", "ts_queue", "ts_area", "ts_ejected", "hist",
        "n_arr", "n_done", "n_err", "c_arr", "c_done", "c_err", "status_counts", "simple", "stats",
        "up", "up_area", "up_last", "ts_up",
    )

    def __init__(self, vid: int, service: ServiceRT, name: str, spec: Any) -> None:
        self.vid = vid
        self.service = service
        self.name = name
        self.spec = spec
        self.hosts: list[Host] = []
        self.blocking = True
        self.script: tuple = ()
        self.sample: Callable[[], float] = _no_sample
        self.errdraw: Callable[[], int] | None = None
        self.busy = 0  # busy workers over all hosts
        self.area = 0.0  # integral of busy over time
        self.last = 0.0
        self.in_flight = 0
        self.arrivals: list[int] = []
        self.completions: list[int] = []
        self.errors: list[int] = []
        self.ts_in_flight: list[int] = []
        self.ts_queue: list[int] = []
        self.ts_area: list[float] = []
        self.ts_ejected: list[int] = []
        # running counts (hot path) and their values at the last once-a-second tick
        self.n_arr = self.n_done = self.n_err = 0
        self.c_arr = self.c_done = self.c_err = 0
        self.rr = 0
        self.hist = None  # summary mode: caller-observed latency histogram
        self.status_counts: dict[int, int] = {}
        self.simple = False
        #: counters the plain path keeps for this version: its subset cluster's (route timeouts of a
        #: destination with routes) and the inbound local rate limit's
        self.stats: dict[str, int] = {}
        # replicas up (chaos crashes take them down): now, its integral over time, per second
        self.up = 0
        self.up_area = 0.0
        self.up_last = 0.0
        self.ts_up: list[float] | None = None

    @property
    def workers_total(self) -> int:
        return sum(h.workers for h in self.hosts)


class ServiceRT:
    """A destination service: its versions, all hosts, and the caller-side routing."""

    __slots__ = ("name", "idx", "versions", "by_name", "hosts", "router", "rr", "dest", "timeout_q", "whole",
                 "stats")

    def __init__(self, name: str, idx: int = 0) -> None:
        self.name = name
        self.idx = idx
        self.versions: list[VersionRT] = []
        self.by_name: dict[str, VersionRT] = {}
        self.hosts: list[Host] = []
        self.router: Any = None
        self.rr = 0
        self.dest: Any = None  # meshsim.sim._sidecar.Destination when the mesh block sets policies
        self.timeout_q: Any = None  # plain path: the route timeout (DeadlineQueue), None when disabled
        #: the stats key of the whole-service cluster (Istio's ``outbound|80||svc``): ``svc|*``, or
        #: ``svc|default`` for a service without declared versions (its one version is the whole service)
        self.whole = f"{name}|*"
        #: counters the plain path keeps on the whole-service cluster (route timeouts and their resets)
        self.stats: dict[str, int] = {}


class CallRT:
    """A compiled call step."""

    __slots__ = ("service", "probability", "optional", "path", "method", "headers")

    def __init__(self, service: ServiceRT, probability: float, optional: bool, path: str | None,
                 method: str | None, headers: dict[str, str]) -> None:
        self.service = service
        self.probability = probability
        self.optional = optional
        self.path = path
        self.method = method
        self.headers = headers
