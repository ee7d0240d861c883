"""Stand-in upstream replicas for a real Envoy: one HTTP/1.1 server per replica, on loopback.

Each replica serves as the simulator's replica does (:mod:`meshsim.sim`): ``workers`` requests at
once, FCFS, a waiting room of ``queue`` (``None``: unlimited; a request finding it full gets 503 at
once), one draw of the version's latency model per request while holding a worker, then the error
model's draw (status 200 or the error status). Draws come from :class:`meshsim.latency.Sampler` and
:class:`meshsim.latency.ErrorDraw` on the replica's own seed, so the distributions are the
scenario's own.

The servers run in a child process (``python -m meshsim.conformance._upstream SPEC``) on one
asyncio loop, so the load generator's timing is not disturbed by theirs. The child writes one line
``ready`` on stdout when every port is bound, and on SIGTERM (or SIGINT) it writes its per-request
log (one JSON row per request: replica, request id and attempt header, arrival, start and end times
on the shared ``time.monotonic`` clock, status) and exits.

Timing: ``asyncio.sleep`` wakes through ``epoll`` with millisecond resolution, so a service time
is served up to about 1 ms late; the log keeps the drawn time and the served one.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReplicaSpec", "UpstreamSpec", "serve"]

_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}
#: request header carrying the load generator's request id (Envoy forwards it on every attempt)
REQUEST_ID_HEADER = "x-meshsim-id"


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica to serve: where, and how (the models are meshsim.latency objects)."""

    service: str
    version: str
    replica: int
    port: int
    workers: int
    queue: int | None
    latency: Any
    errors: Any
    seed: int


@dataclass
class UpstreamSpec:
    """Every replica of a run, the clock origin and where the log goes."""

    replicas: list[ReplicaSpec]
    t0: float
    log_path: str
    host: str = "127.0.0.1"
    max_seconds: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Replica:
    """One replica's workers, waiting room and random streams."""

    def __init__(self, spec: ReplicaSpec, log: list[tuple]) -> None:
        import numpy as np

        from meshsim.latency import ErrorDraw, Sampler

        self.spec = spec
        ss = np.random.SeedSequence(spec.seed)
        lat_ss, err_ss = ss.spawn(2)
        self.sample = Sampler(spec.latency, rng=np.random.default_rng(lat_ss))
        self.error = ErrorDraw(spec.errors, rng=np.random.default_rng(err_ss)) if spec.errors is not None else None
        self.busy = 0
        self.waiting: deque[asyncio.Future] = deque()
        self.log = log

    async def handle(self, headers: dict[str, str], t0: float) -> int:
        spec = self.spec
        now = time.monotonic()
        arrival = now - t0
        if self.busy >= spec.workers:
            if spec.queue is not None and len(self.waiting) >= spec.queue:
                self._record(headers, arrival, arrival, arrival, 0.0, 503, "queue_full")
                return 503
            fut = asyncio.get_running_loop().create_future()
            self.waiting.append(fut)
            await fut  # the finishing request hands its worker over (busy stays the same)
        else:
            self.busy += 1
        start = time.monotonic() - t0
        drawn = self.sample()
        try:
            await asyncio.sleep(drawn)
        finally:
            if self.waiting:
                self.waiting.popleft().set_result(None)
            else:
                self.busy -= 1
        status = self.error() or 200 if self.error is not None else 200
        end = time.monotonic() - t0
        self._record(headers, arrival, start, end, drawn, status, "")
        return status

    def _record(self, headers: dict[str, str], arrival: float, start: float, end: float, drawn: float,
                status: int, note: str) -> None:
        s = self.spec
        self.log.append((s.service, s.version, s.replica, s.port, headers.get(REQUEST_ID_HEADER, ""),
                         headers.get("x-envoy-attempt-count", ""), arrival, start, end, drawn, status, note))


async def _read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bool] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    if n:
        await reader.readexactly(n)
    keep = headers.get("connection", "").lower() != "close" and not lines[0].endswith("HTTP/1.0")
    return headers, keep


def _response(status: int) -> bytes:
    body = b"ok\n" if status < 400 else f"error {status}\n".encode()
    reason = _REASONS.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n\r\n"
            .encode() + body)


Respond = Callable[[dict[str, str]], Awaitable[bytes]]


async def serve_ports(host: str, ports: list[tuple[int, Respond]], max_seconds: float) -> None:
    """Serve HTTP/1.1 keep-alive connections on every ``(port, respond)`` until SIGTERM/SIGINT or ``max_seconds``.

    ``respond(headers)`` returns the whole response. Writes ``ready`` on stdout once every port is
    bound (the harness waits for it).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def handler_for(respond: Respond):
        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    req = await _read_request(reader)
                    if req is None:
                        break
                    headers, keep = req
                    body = await respond(headers)
                    if writer.is_closing():
                        break
                    writer.write(body)
                    await writer.drain()
                    if not keep:
                        break
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        return on_conn

    servers = [await asyncio.start_server(handler_for(respond), host, port, reuse_address=True)
               for port, respond in ports]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except asyncio.TimeoutError:
        pass
    for s in servers:
        s.close()


async def _serve(spec: UpstreamSpec) -> list[tuple]:
    log: list[tuple] = []
    def responder(rep: _Replica) -> Respond:
        async def respond(headers: dict[str, str]) -> bytes:
            return _response(await rep.handle(headers, spec.t0))

        return respond

    ports = [(r.port, responder(_Replica(r, log))) for r in spec.replicas]
    await serve_ports(spec.host, ports, spec.max_seconds)
    return log


LOG_COLUMNS = ("service", "version", "replica", "port", "request_id", "attempt", "arrival_s", "start_s",
               "end_s", "drawn_s", "status", "note")


def write_log(path: Any, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """One JSON object per row (what the harness reads back)."""
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(dict(zip(columns, row, strict=True))) + "\n")


def load_spec(argv: list[str] | None = None) -> Any:
    """The spec the harness pickled for a child process (its path is the first argument)."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], "rb") as fh:
        return pickle.load(fh)  # written by the harness in its own temporary directory


def serve(spec: UpstreamSpec) -> None:
    """Serve every replica until SIGTERM/SIGINT or ``spec.max_seconds``, then write the log."""
    write_log(spec.log_path, LOG_COLUMNS, asyncio.run(_serve(spec)))


def main(argv: list[str] | None = None) -> None:
    serve(load_spec(argv))


if __name__ == "__main__":
    main()
