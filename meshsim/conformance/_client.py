"""A bounded HTTP/1.1 load generator for loopback: open-loop Poisson (or evenly spaced) arrivals, or a
fixed number of closed-loop connections.

Both modes stop sending at ``duration`` seconds or after ``max_requests`` requests, whichever comes
first, and give every request ``request_timeout`` seconds; after the last send the generator waits
at most ``drain`` seconds for answers. Every request carries ``x-meshsim-id`` (its index), which
Envoy forwards on every attempt and writes into the access log, so client rows, access-log rows and
upstream rows join on it.

Open loop: arrivals are drawn up front from the source's own seed; a request takes an idle
keep-alive connection or opens a new one (a downstream connection per request in flight, as a
browser pool does). Closed loop: ``users`` connections, each sending its next request when the
previous one has answered (plus ``think`` time, when given).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from meshsim.conformance._upstream import REQUEST_ID_HEADER

__all__ = ["LoadSpec", "ClientRow", "run_load"]


@dataclass(frozen=True)
class LoadSpec:
    """What to send: to ``port`` with ``Host: host``, open loop (``rate``) or closed loop (``users``)."""

    port: int
    host: str
    path: str = "/"
    method: str = "GET"
    rate: float | None = None
    arrivals: str = "poisson"
    users: int | None = None
    think: object | None = None  # a meshsim.latency model, closed loop only
    duration: float = 5.0
    max_requests: int = 5000
    request_timeout: float = 20.0
    drain: float = 20.0
    seed: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    #: headers drawn per request, as the simulator's traffic source does: ``((name, ((value, share),
    #: ...)), ...)``; a request carries ``name: value`` with probability ``share`` (none when the
    #: shares sum below 1 and the draw falls past them)
    header_mix: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()


@dataclass
class ClientRow:
    """One request as the client saw it (times on the shared monotonic clock, from ``t0``)."""

    request_id: int
    start_s: float
    end_s: float
    status: int  # 0: no answer (timeout, connection closed)
    overloaded: bool  # x-envoy-overloaded: true
    conn: int  # connection index


class _Conn:
    __slots__ = ("reader", "writer", "index")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        self.reader, self.writer, self.index = reader, writer, index


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        n = int(headers.get("content-length", "0") or 0)
        if n:
            await reader.readexactly(n)
    keep = headers.get("connection", "").lower() != "close"
    return status, headers, keep


class _Generator:
    def __init__(self, spec: LoadSpec, t0: float, id_base: int = 0) -> None:
        self.spec = spec
        self.id_base = id_base
        self.t0 = t0
        self.rows: list[ClientRow] = []
        self.idle: list[_Conn] = []
        self.n_conns = 0
        extra = "".join(f"{k}: {v}\r\n" for k, v in spec.headers)
        self.template = f"{spec.method} {spec.path} HTTP/1.1\r\nhost: {spec.host}\r\n{extra}"
        self.mix_rng = np.random.default_rng([spec.seed, 7]) if spec.header_mix else None

    def _drawn_headers(self) -> str:
        if self.mix_rng is None:
            return ""
        out = []
        for name, dist in self.spec.header_mix:
            x, acc = float(self.mix_rng.random()), 0.0
            for value, share in dist:
                acc += share
                if x < acc:
                    out.append(f"{name}: {value}\r\n")
                    break
        return "".join(out)

    async def connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.spec.port)
        c = _Conn(reader, writer, self.n_conns)
        self.n_conns += 1
        return c

    async def one(self, rid: int, conn: _Conn | None) -> _Conn | None:
        """Send request ``rid`` (on ``conn`` or a pooled/new connection); the connection if reusable."""
        start = time.monotonic() - self.t0
        status, overloaded, keep = 0, False, False
        try:
            if conn is None:
                conn = self.idle.pop() if self.idle else await self.connect()
            req = f"{self.template}{self._drawn_headers()}{REQUEST_ID_HEADER}: {rid + self.id_base}\r\n\r\n".encode()
            conn.writer.write(req)
            await conn.writer.drain()
            status, headers, keep = await asyncio.wait_for(_read_response(conn.reader), self.spec.request_timeout)
            overloaded = headers.get("x-envoy-overloaded", "") == "true"
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
            keep = False
        end = time.monotonic() - self.t0
        self.rows.append(ClientRow(rid + self.id_base, start, end, status, overloaded, conn.index if conn is not None else -1))
        if conn is not None and not keep:
            conn.writer.close()
            return None
        return conn

    async def open_loop(self) -> None:
        s = self.spec
        rng = np.random.default_rng(s.seed)
        assert s.rate is not None and s.rate > 0
        n = min(s.max_requests, int(s.rate * s.duration * 2) + 10)
        gaps = rng.exponential(1.0 / s.rate, n) if s.arrivals == "poisson" else np.full(n, 1.0 / s.rate)
        times = np.cumsum(gaps)
        times = times[times < s.duration][: s.max_requests]
        tasks = []
        begin = time.monotonic()

        async def fire(rid: int) -> None:
            conn = await self.one(rid, None)
            if conn is not None:
                self.idle.append(conn)

        for rid, t in enumerate(times):
            delay = begin + float(t) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(fire(rid)))
        if tasks:
            await asyncio.wait(tasks, timeout=s.drain)
        for t in tasks:
            t.cancel()

    async def closed_loop(self) -> None:
        s = self.spec
        assert s.users is not None and s.users > 0
        counter = iter(range(s.max_requests))
        stop_at = time.monotonic() + s.duration
        think = None
        if s.think is not None:
            from meshsim.latency import Sampler

            think = Sampler(s.think, rng=np.random.default_rng(s.seed))

        async def user() -> None:
            conn: _Conn | None = None
            while time.monotonic() < stop_at:
                rid = next(counter, None)
                if rid is None:
                    break
                if conn is None:
                    try:
                        conn = await self.connect()
                    except OSError:
                        await asyncio.sleep(0.01)
                        continue
                conn = await self.one(rid, conn)
                if think is not None:
                    await asyncio.sleep(think())
            if conn is not None:
                conn.writer.close()

        tasks = [asyncio.ensure_future(user()) for _ in range(s.users)]
        await asyncio.wait(tasks, timeout=s.duration + s.drain)
        for t in tasks:
            t.cancel()

    async def run(self) -> list[ClientRow]:
        try:
            if self.spec.users is not None:
                await self.closed_loop()
            else:
                await self.open_loop()
        finally:
            for c in self.idle:
                c.writer.close()
        self.rows.sort(key=lambda r: r.request_id)
        return self.rows


def run_load(specs: list[LoadSpec], t0: float, id_stride: int = 10_000_000) -> list[ClientRow]:
    """Drive every source in ``specs`` at once (blocking; each bounded by its duration, count and drain).

    Source ``k``'s request ids start at ``k * id_stride``.
    """

    async def all_sources() -> list[ClientRow]:
        gens = [_Generator(s, t0, k * id_stride) for k, s in enumerate(specs)]
        parts = await asyncio.gather(*(g.run() for g in gens))
        return [r for part in parts for r in part]

    return asyncio.run(all_sources())
