"""Stand-in replicas that run a service's whole script, for multi-hop conformance runs.

Run as ``python -m meshsim.conformance._standin SPEC.pickle``: one process (one asyncio event loop)
per service serves every replica of that service on its own loopback port, and makes the service's
onward calls as HTTP/1.1 requests through the service's own sidecar (the exported bootstrap's
outbound listener, ``Host:`` the destination service), over a small pool of keep-alive connections.

The script follows the simulator (``meshsim.sim._engine``: ``_compile``, ``_advance``,
``_call_done``, ``_par_done``) step for step:

* the error draw comes right after the first ``work`` step (first of all without one); an error
  answers at once with its status, the rest of the script is skipped;
* ``work`` holds a worker for one draw (the version's latency model, or the step's own);
  ``blocking`` versions take their worker on arrival and keep it to the response (through calls
  and sleeps), ``async`` ones take one per ``work`` step; no free worker and a full queue is an
  immediate 503;
* ``call`` is made with its ``probability`` and not past ``max_depth``; a failed answer (no
  answer, or status >= 400) of a call that is not ``optional`` ends the script with a 500;
* ``parallel`` sends its calls at once, waits for all of them, then answers 500 if one that is
  not optional failed;
* ``sleep`` waits (a ``blocking`` worker stays held);
* the incoming request's headers are forwarded on every call, the call's own headers over them.

The network between sidecars is loopback plus Envoy's own work, which stands in for the
scenario's ``network.latency``; the ``cross_zone`` extra delay is served here, one draw when the
request arrives and one before the response leaves, when the caller's zone (``x-meshsim-zone``,
sent by the load generator and by every stand-in) differs from the replica's, as the simulator
does (a missing zone differs from any zone).

Sleeps (work, ``sleep`` steps, cross-zone legs) end on a Linux ``timerfd`` (:class:`PreciseSleep`),
not on ``asyncio.sleep``'s whole-millisecond epoll timeouts.

Each response carries ``x-meshsim-served`` (seconds from the request's arrival to its response,
on this replica) and ``x-meshsim-overhead`` (the part of it that is the harness's own time, not
the scenario's: how much later than asked this replica's sleeps ended, plus, for each call, its
round trip minus the callee's served time net of the callee's own overhead; for a parallel group,
the slowest round trip minus the longest of the callees' net served times). The harness adds the
entry's to measure the whole path's overhead.

On SIGTERM (or SIGINT, or ``max_seconds``) the process writes one JSON row per request it served
(:data:`LOG_COLUMNS`) and exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from meshsim.conformance._client import _read_response
from meshsim.conformance._upstream import (
    _REASONS,
    REQUEST_ID_HEADER,
    Respond,
    load_spec,
    serve_ports,
    write_log,
)

__all__ = ["CallSpec", "StandInReplica", "StandInSpec", "compile_script", "LOG_COLUMNS", "serve"]

CALLER_HEADER = "x-meshsim-caller"
ZONE_HEADER = "x-meshsim-zone"
DEPTH_HEADER = "x-meshsim-depth"
SERVED_HEADER = "x-meshsim-served"
OVERHEAD_HEADER = "x-meshsim-overhead"
#: headers a stand-in does not forward on its calls: hop-by-hop, set by the proxies, or its own
_NO_FORWARD = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
                         "upgrade", "proxy-connection", "x-request-id", CALLER_HEADER, ZONE_HEADER, DEPTH_HEADER})

LOG_COLUMNS = ("service", "version", "replica", "port", "request_id", "attempt", "caller", "arrival_s",
               "start_s", "end_s", "drawn_s", "worked_s", "status", "note", "served_s", "overhead_s", "calls",
               "called_s", "slept_s")


@dataclass(frozen=True)
class CallSpec:
    """One call of a script: to ``service`` (``Host: host``), as ``meshsim.config.Call`` says."""

    service: str
    host: str
    probability: float = 1.0
    optional: bool = False
    path: str = "/"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StandInReplica:
    """One replica: where it listens, its capacity, models and compiled script."""

    service: str
    version: str
    replica: int
    port: int
    zone: str | None
    workers: int
    queue: int | None
    blocking: bool
    latency: Any
    errors: Any
    script: tuple[tuple, ...]
    seed: int


@dataclass
class StandInSpec:
    """A service's replicas, its sidecar's outbound port and the run's clock origin."""

    service: str
    replicas: list[StandInReplica]
    outbound_port: int | None
    t0: float
    log_path: str
    cross_zone: Any = None  # a meshsim.latency model, None for no extra delay
    max_depth: int | None = None
    request_timeout: float = 20.0
    host: str = "127.0.0.1"
    max_seconds: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)


def compile_script(steps, *, has_errors: bool) -> tuple[tuple, ...]:
    """The script as the simulator compiles it: ``("work", model|None)``, ``("err",)``,
    ``("sleep", model)``, ``("call", CallSpec)``, ``("par", (CallSpec, ...))``."""
    from meshsim.config import Call, Parallel, Sleep, Work

    def call(c) -> CallSpec:
        return CallSpec(c.service, c.service, float(c.probability), bool(c.optional), c.path or "/",
                        c.method or "GET", tuple(sorted((c.headers or {}).items())))

    out: list[tuple] = []
    err_placed = not has_errors
    for step in steps:
        if isinstance(step, Work):
            out.append(("work", step.latency))
            if not err_placed:
                out.append(("err",))
                err_placed = True
        elif isinstance(step, Sleep):
            out.append(("sleep", step.latency))
        elif isinstance(step, Call):
            out.append(("call", call(step)))
        elif isinstance(step, Parallel):
            out.append(("par", tuple(call(c) for c in step.parallel)))
        else:  # pragma: no cover - the config guarantees the step kinds
            raise TypeError(f"unknown script step {step!r}")
    if not err_placed:
        out.insert(0, ("err",))
    return tuple(out)


class _TIMESPEC(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITIMERSPEC(ctypes.Structure):
    _fields_ = [("it_interval", _TIMESPEC), ("it_value", _TIMESPEC)]


class PreciseSleep:
    """``await sleep(d)`` that wakes within tens of microseconds, not on epoll's whole milliseconds.

    ``asyncio.sleep`` waits through ``epoll_wait``, whose timeout is rounded up to a whole
    millisecond, so every sleep ends 0-1 ms late (0.5 ms on average); a multi-hop path has a dozen
    of them. Here one Linux ``timerfd`` (``CLOCK_MONOTONIC``, the clock of ``time.monotonic``) is
    armed at the earliest pending deadline and watched by the event loop, so a sleep ends when the
    kernel's timer fires. Without ``timerfd`` (not Linux) it falls back to ``asyncio.sleep``.
    """

    _CLOCK_MONOTONIC, _TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = 1, 0o4000, 0o2000000, 1

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, asyncio.Future]] = []
        self.seq = itertools.count()
        self.armed: float | None = None
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._settime = libc.timerfd_settime
            fd = libc.timerfd_create(self._CLOCK_MONOTONIC, self._TFD_NONBLOCK | self._TFD_CLOEXEC)
        except (OSError, AttributeError):
            fd = -1
        if fd >= 0:
            self.fd = fd
            loop.add_reader(fd, self._fire)

    async def __call__(self, d: float) -> None:
        if self.fd < 0:
            await asyncio.sleep(d)
            return
        if d <= 0:
            return
        fut = self.loop.create_future()
        when = time.monotonic() + d
        heapq.heappush(self.heap, (when, next(self.seq), fut))
        if self.armed is None or when < self.armed:
            self._arm(when)
        await fut

    def _arm(self, when: float) -> None:
        sec = int(when)
        spec = _ITIMERSPEC(_TIMESPEC(0, 0), _TIMESPEC(sec, max(1, int((when - sec) * 1e9))))
        self._settime(self.fd, self._TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
        self.armed = when

    def _fire(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass
        now = time.monotonic()
        while self.heap and self.heap[0][0] <= now + 20e-6:
            _, _, fut = heapq.heappop(self.heap)
            if not fut.done():
                fut.set_result(None)
        self.armed = None
        if self.heap:
            self._arm(self.heap[0][0])

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class _Pool:
    """Keep-alive HTTP/1.1 connections to one port (the sidecar's outbound listener)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, head: bytes) -> tuple[int, dict[str, str]]:
        """Send ``head`` (a whole GET request); the status (0: no answer) and the response headers."""
        for reuse in (True, False):
            conn = self.idle.pop() if (reuse and self.idle) else None
            fresh = conn is None
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = conn
                writer.write(head)
                await writer.drain()
                status, headers, keep = await asyncio.wait_for(_read_response(reader), self.timeout)
            except asyncio.IncompleteReadError as exc:
                if conn is not None:
                    conn[1].close()
                if not fresh and not exc.partial:
                    continue  # a pooled connection the proxy had closed: once more on a new one
                return 0, {}
            except (OSError, asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
                if conn is not None:
                    conn[1].close()
                if not fresh:
                    continue
                return 0, {}
            if keep:
                self.idle.append(conn)
            else:
                conn[1].close()
            return status, headers
        return 0, {}

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle = []


class _Replica:
    def __init__(self, spec: StandInReplica, svc: StandInSpec, pool: _Pool | None, log: list[tuple],
                 sleep: PreciseSleep) -> None:
        import numpy as np

        from meshsim.latency import ErrorDraw, Sampler

        self.spec = spec
        self.svc = svc
        self.pool = pool
        self.log = log
        self.sleep = sleep
        ss = np.random.SeedSequence(spec.seed)
        lat, err, calls, xz, *steps = ss.spawn(4 + len(spec.script))
        self.sample = Sampler(spec.latency, rng=np.random.default_rng(lat))
        has_err = spec.errors is not None and float(spec.errors.rate) > 0
        self.error = ErrorDraw(spec.errors, rng=np.random.default_rng(err)) if has_err else None
        self.u = np.random.default_rng(calls)
        self.xz = Sampler(svc.cross_zone, rng=np.random.default_rng(xz)) if svc.cross_zone is not None else None
        self.step_samplers: list[Any] = []
        for (kind, *arg), s in zip(spec.script, steps, strict=True):
            model = arg[0] if kind in ("work", "sleep") else None
            self.step_samplers.append(Sampler(model, rng=np.random.default_rng(s)) if model is not None else None)
        self.zone = spec.zone or ""
        self.busy = 0
        self.waiting: deque[asyncio.Future] = deque()

    # ---------------------------------------------------------------- workers
    async def _acquire(self) -> bool:
        if self.busy < self.spec.workers:
            self.busy += 1
            return True
        if self.spec.queue is not None and len(self.waiting) >= self.spec.queue:
            return False
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        await fut  # the finishing request hands its worker over (busy stays the same)
        return True

    def _release(self) -> None:
        if self.waiting:
            self.waiting.popleft().set_result(None)
        else:
            self.busy -= 1

    # ---------------------------------------------------------------- calls
    def _call_head(self, call: CallSpec, headers: dict[str, str], depth: int) -> bytes:
        fwd = {k: v for k, v in headers.items() if k not in _NO_FORWARD and not k.startswith("x-envoy-")}
        fwd.update(dict(call.headers))
        fwd[CALLER_HEADER] = self.spec.service
        fwd[ZONE_HEADER] = self.zone
        fwd[DEPTH_HEADER] = str(depth)
        lines = "".join(f"{k}: {v}\r\n" for k, v in fwd.items())
        return f"{call.method} {call.path} HTTP/1.1\r\nhost: {call.host}\r\n{lines}\r\n".encode("latin-1")

    async def _call(self, call: CallSpec, headers: dict[str, str], depth: int) -> tuple[int, float, float]:
        """One call through the sidecar: (status, round trip, callee's served time net of its overhead)."""
        assert self.pool is not None, f"{self.spec.service} calls others but has no sidecar"
        sent = time.monotonic()
        status, rh = await self.pool.request(self._call_head(call, headers, depth))
        rtt = time.monotonic() - sent
        try:
            net = float(rh.get(SERVED_HEADER, "nan")) - float(rh.get(OVERHEAD_HEADER, "0"))
        except ValueError:
            net = float("nan")
        return status, rtt, net

    def _send_it(self, call: CallSpec, depth: int) -> bool:
        if call.probability < 1.0 and float(self.u.random()) >= call.probability:
            return False
        return self.svc.max_depth is None or depth <= self.svc.max_depth

    # ---------------------------------------------------------------- the script
    async def handle(self, headers: dict[str, str]) -> tuple[int, float, float]:
        """Serve one request; (status, served seconds, overhead seconds)."""
        spec, t0 = self.spec, self.svc.t0
        head_at = time.monotonic()
        xz = self.xz if headers.get(ZONE_HEADER, "") != self.zone else None
        late = 0.0  # how much later than asked the sleeps ended: the stand-in's own time, not the model's
        if xz is not None:
            leg = float(xz())
            await self.sleep(leg)  # the request's network leg
            late += time.monotonic() - head_at - leg
        arrival = time.monotonic() - t0
        depth = int(headers.get(DEPTH_HEADER, "1") or 1)
        start = -1.0
        drawn = worked = overhead = called = slept = 0.0
        ncalls = 0
        status, note = 200, ""
        holding = False
        try:
            steps = list(zip(spec.script, self.step_samplers, strict=True))
            if spec.blocking:
                if await self._acquire():
                    holding = True
                    start = time.monotonic() - t0
                else:
                    status, note, steps = 503, "queue_full", []
            for (kind, *arg), sampler in steps:
                if kind == "work":
                    if not spec.blocking:
                        if not await self._acquire():
                            status, note = 503, "queue_full"
                            break
                        holding = True
                        if start < 0:
                            start = time.monotonic() - t0
                    d = float(sampler() if sampler is not None else self.sample())
                    w0 = time.monotonic()
                    await self.sleep(d)
                    drawn += d
                    worked += time.monotonic() - w0
                    late += time.monotonic() - w0 - d
                    if not spec.blocking:
                        self._release()
                        holding = False
                elif kind == "err":
                    err = self.error() if self.error is not None else 0
                    if err:
                        status, note = int(err), "error"
                        break
                elif kind == "sleep":
                    s0, d = time.monotonic(), float(sampler())
                    await self.sleep(d)
                    slept += time.monotonic() - s0
                    late += time.monotonic() - s0 - d
                elif kind == "call":
                    call = arg[0]
                    if not self._send_it(call, depth + 1):
                        continue
                    ncalls += 1
                    st, rtt, net = await self._call(call, headers, depth + 1)
                    called += rtt
                    overhead += max(0.0, rtt - net) if net == net else 0.0
                    if (st == 0 or st >= 400) and not call.optional:
                        status, note = 500, f"call {call.service} {st}"
                        break
                else:  # "par"
                    sent = [c for c in arg[0] if self._send_it(c, depth + 1)]
                    if not sent:
                        continue
                    ncalls += len(sent)
                    t_par = time.monotonic()
                    res = await asyncio.gather(*(self._call(c, headers, depth + 1) for c in sent))
                    nets = [net for _, _, net in res if net == net]
                    called += time.monotonic() - t_par
                    if nets:
                        overhead += max(0.0, (time.monotonic() - t_par) - max(nets))
                    failed = [f"{c.service} {st}" for c, (st, _, _) in zip(sent, res, strict=True)
                              if (st == 0 or st >= 400) and not c.optional]
                    if failed:
                        status, note = 500, "call " + ", ".join(failed)
                        break
        finally:
            if holding:
                self._release()
            end = time.monotonic() - t0
            row_index = len(self.log)
            self.log.append((spec.service, spec.version, spec.replica, spec.port, headers.get(REQUEST_ID_HEADER, ""),
                             headers.get("x-envoy-attempt-count", ""), headers.get(CALLER_HEADER, ""), arrival,
                             start if start >= 0 else arrival, end, drawn, worked, status, note,
                             0.0, overhead, ncalls, called, slept))
        if xz is not None:
            leg, l0 = float(xz()), time.monotonic()
            await self.sleep(leg)  # the response's network leg
            late += time.monotonic() - l0 - leg
        served = time.monotonic() - head_at
        overhead += max(0.0, late)
        row = self.log[row_index]  # rows are only ever appended: the index still holds
        self.log[row_index] = (*row[:14], served, overhead, *row[16:])
        return status, served, overhead


def _response(status: int, served: float, overhead: float) -> bytes:
    body = b"ok\n" if status < 400 else f"error {status}\n".encode()
    reason = _REASONS.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
            f"{SERVED_HEADER}: {served:.6f}\r\n{OVERHEAD_HEADER}: {overhead:.6f}\r\n\r\n").encode() + body


async def _serve(spec: StandInSpec) -> list[tuple]:
    log: list[tuple] = []
    loop = asyncio.get_running_loop()
    pool = _Pool(spec.outbound_port, spec.request_timeout) if spec.outbound_port is not None else None
    sleep = PreciseSleep(loop)
    def responder(rep: _Replica) -> Respond:
        async def respond(headers: dict[str, str]) -> bytes:
            return _response(*await rep.handle(headers))

        return respond

    ports = [(r.port, responder(_Replica(r, spec, pool, log, sleep))) for r in spec.replicas]
    try:
        await serve_ports(spec.host, ports, spec.max_seconds)
    finally:
        if pool is not None:
            pool.close()
        sleep.close()
    return log


def serve(spec: StandInSpec) -> None:
    """Serve the service's replicas until SIGTERM/SIGINT or ``spec.max_seconds``, then write the log."""
    write_log(spec.log_path, LOG_COLUMNS, asyncio.run(_serve(spec)))


def main(argv: list[str] | None = None) -> None:
    serve(load_spec(argv))


if __name__ == "__main__":
    main()
