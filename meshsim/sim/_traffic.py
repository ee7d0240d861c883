"""Traffic sources: open-loop arrivals (constant, steps, ramps) and closed-loop users.

An open-loop source draws its arrivals from its own stream regardless of how
the system answers (the load an unbounded population of clients offers); a
closed-loop source has ``users`` that each wait for their response, think,
and send again, so its load falls when the system slows down.
"""

from __future__ import annotations

import math
from itertools import chain

from meshsim._exceptions import SimulationError
from meshsim.sim._runtime import Timer

__all__ = ["build_sources", "RateSchedule"]

NORMAL = 1
#: consecutive zero-duration request cycles of one closed-loop source before the run is refused
ZERO_TIME_CYCLES = 100_000


class RateSchedule:
    """A piecewise-linear rate function ``lambda(t)`` (per second) on ``[0, duration)``.

    Parameters
    ----------
    segments
        ``(t0, t1, r0, r1)`` tuples: the rate goes linearly from ``r0`` at ``t0``
        to ``r1`` at ``t1``; constant segments have ``r0 == r1``.

    Examples
    --------
    >>> s = RateSchedule([(0.0, 10.0, 5.0, 5.0), (10.0, 20.0, 5.0, 15.0)])
    >>> s.rate(15.0)
    10.0
    >>> s.expected(0.0, 20.0)
    150.0
    """

    def __init__(self, segments: list[tuple[float, float, float, float]]) -> None:
        self.segments = [seg for seg in segments if seg[1] > seg[0]]

    def rate(self, t: float) -> float:
        for t0, t1, r0, r1 in self.segments:
            if t0 <= t < t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return 0.0

    def expected(self, a: float, b: float) -> float:
        """Expected number of arrivals in ``[a, b)``."""
        total = 0.0
        for t0, t1, r0, r1 in self.segments:
            lo, hi = max(a, t0), min(b, t1)
            if hi > lo:
                total += 0.5 * (self.rate_in(t0, t1, r0, r1, lo) + self.rate_in(t0, t1, r0, r1, hi)) * (hi - lo)
        return total

    @staticmethod
    def rate_in(t0: float, t1: float, r0: float, r1: float, t: float) -> float:
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    def segment_at(self, t: float):
        for seg in self.segments:
            if seg[0] <= t < seg[1]:
                return seg
        return None

    def next_start(self, t: float) -> float:
        """The earliest segment start >= t with a positive rate somewhere, or inf."""
        for t0, t1, r0, r1 in self.segments:
            if t1 > t and (r0 > 0 or r1 > 0):
                return max(t0, t)
        return math.inf


def _schedule_of(src, duration: float) -> RateSchedule:
    if src.rate is not None:
        return RateSchedule([(0.0, duration, float(src.rate), float(src.rate))])
    segs = []
    t = 0.0
    r = 0.0
    for seg in src.schedule:
        until = min(float(seg.until), duration)
        if getattr(seg, "ramp_to", None) is not None:
            r1 = float(seg.ramp_to)
            segs.append((t, until, r, r1))
            r = r1
        else:
            r = float(seg.rate)
            segs.append((t, until, r, r))
        t = until
        if t >= duration:
            break
    if t < duration and segs:  # the last rate holds until the end of the run
        segs.append((t, duration, r, r))
    return RateSchedule(segs)


class _HeaderDraw:
    """Draws request headers from ``{name: {value: frequency}}``."""

    def __init__(self, headers: dict[str, dict[str, float]], u) -> None:
        self.table = []
        for name, dist in headers.items():
            cum = []
            acc = 0.0
            for value, freq in dist.items():
                acc += float(freq)
                cum.append((acc, value))
            self.table.append((name, cum))
        self.u = u

    def __call__(self) -> dict[str, str]:
        out = {}
        for name, cum in self.table:
            x = next(self.u)
            for acc, value in cum:
                if x < acc:
                    out[name] = value
                    break
        return out


class _Source:
    """Common part of the sources: entry service, attributes, counters."""

    closed = False
    direct = False  # set by the engine: no routing rules and no network delay to the entry service
    k = 0  # index of the next evenly spaced arrival

    def start(self) -> None:
        raise NotImplementedError

    def __init__(self, sim, index: int, spec) -> None:
        self.sim = sim
        self.index = index
        self.code = -(index + 1)
        self.name = spec.name
        self.spec = spec
        self.zone = getattr(spec, "zone", None)
        self.service = sim.services[spec.to]
        headers = spec.headers or {}
        self.path = spec.path or "/"
        self.method = spec.method or "GET"
        self.headers = _HeaderDraw(headers, sim.streams.uniforms("headers", spec.name)) if headers else None
        self.fixed_attrs: tuple | None = None if (sim.need_attrs is False) else (self.path, self.method, {})
        self.no_attrs = not sim.need_attrs

    def attrs(self):
        if not self.sim.need_attrs:
            return None
        if self.headers is None:
            return self.fixed_attrs
        return (self.path, self.method, self.headers())

    def on_done(self, att) -> None:  # open-loop sources ignore responses
        pass

    def on_resp(self, att) -> None:  # replaced by the engine with its response handler
        raise NotImplementedError


class OpenLoopSource(_Source):
    """Poisson (or evenly spaced) arrivals following a rate schedule."""

    def __init__(self, sim, index: int, spec) -> None:
        super().__init__(sim, index, spec)
        self.schedule = _schedule_of(spec, sim.duration)
        self.poisson = (getattr(spec, "arrivals", "poisson") or "poisson") == "poisson"
        rng = sim.streams.get("arrivals", spec.name)
        self.exp = chain.from_iterable(iter(lambda: rng.standard_exponential(4096).tolist(), None))
        self.u = sim.streams.uniforms("thinning", spec.name)
        self.timer = Timer()
        segs = self.schedule.segments
        self.constant = len(segs) == 1 and segs[0][2] == segs[0][3] and segs[0][0] == 0.0
        self.end = sim.duration
        self.fast = self.constant and self.poisson and segs[0][2] > 0
        self.mean_gap = 1.0 / segs[0][2] if self.fast else 0.0
        self.cbs = [self._fire]

    def start(self) -> None:
        t = self._next_time(0.0, first=True)
        if t < self.end:
            self.timer.callbacks = [self._fire]
            self.sim._schedule(self.timer, t)

    def _next_time(self, t: float, first: bool = False) -> float:
        if self.constant:
            r = self.schedule.segments[0][2]
            if r <= 0:
                return math.inf
            if self.poisson:
                return t + next(self.exp) / r
            self.k = 0 if first else self.k + 1  # k / r, not a running sum: no drift
            return self.k / r
        # piecewise: thinning within each segment (Lewis-Shedler), restart at segment ends
        while True:
            t = max(t, self.schedule.next_start(t)) if self.schedule.segment_at(t) is None else t
            seg = self.schedule.segment_at(t)
            if seg is None:
                return math.inf
            t0, t1, r0, r1 = seg
            rmax = max(r0, r1)
            if rmax <= 0:
                t = t1
                continue
            if not self.poisson:
                r = RateSchedule.rate_in(t0, t1, r0, r1, t)
                if r <= 0:
                    t = t + 1.0 / rmax
                    continue
                cand = t + (0.0 if first else 1.0 / r)
                return cand if cand < t1 else self._next_time(t1, first=True)
            cand = t + next(self.exp) / rmax
            if cand >= t1:
                t = t1
                continue
            if next(self.u) * rmax <= RateSchedule.rate_in(t0, t1, r0, r1, cand):
                return cand
            t = cand

    def _fire(self, _ev) -> None:
        sim = self.sim
        now = sim.env._now
        if self.fast:
            t = now + next(self.exp) * self.mean_gap
        else:
            t = self._next_time(now)
        if t < self.end:  # schedule the next arrival first: its stream does not depend on this one
            self.timer.callbacks = self.cbs
            sim._push(sim._queue, (t, NORMAL, next(sim._eid), self.timer))
        sim.start_request(self, None if self.no_attrs else self.attrs())


class ClosedLoopSource(_Source):
    """``users`` clients: request, wait for the response, think, repeat until the end of traffic."""

    closed = True

    def __init__(self, sim, index: int, spec) -> None:
        super().__init__(sim, index, spec)
        from meshsim.sim._engine import _sampler

        self.users = int(spec.users)
        self.zero_cycles = 0
        think = spec.think
        self.think = None if think is None else _sampler(think, sim.streams.get("think", spec.name))
        self.end = sim.duration

    def start(self) -> None:
        for _ in range(self.users):
            d = self.think() if self.think is not None else 0.0
            if d < self.end:
                t = Timer(self)
                t.callbacks = [self._fire]
                self.sim._schedule(t, d)

    def _fire(self, _ev) -> None:
        self.sim.start_request(self, self.attrs())

    def on_done(self, att) -> None:
        sim = self.sim
        now = sim.env._now
        d = self.think() if self.think is not None else 0.0
        if d == 0.0 and now == att.t_send:
            # a cycle without simulated time: guard against a loop that never lets the clock move
            self.zero_cycles += 1
            if self.zero_cycles > ZERO_TIME_CYCLES:
                raise SimulationError(
                    f"traffic.{self.name}: closed-loop users cycle without simulated time passing "
                    f"(zero think time and zero latency on the whole path); give `think` or a latency > 0")
        else:
            self.zero_cycles = 0
        if now + d < self.end:
            t = Timer(self)
            t.callbacks = [self._fire]
            sim._schedule(t, d)


def build_sources(sim) -> list[_Source]:
    out: list[_Source] = []
    for i, spec in enumerate(sim.scenario.traffic):
        if getattr(spec, "users", None):
            out.append(ClosedLoopSource(sim, i, spec))
        else:
            out.append(OpenLoopSource(sim, i, spec))
    return out


def expected_requests(scenario) -> float:
    """Expected number of end-to-end requests the open-loop sources generate (closed loop: not counted)."""
    total = 0.0
    for spec in scenario.traffic:
        if getattr(spec, "users", None):
            continue
        total += _schedule_of(spec, float(scenario.duration)).expected(0.0, float(scenario.duration))
    return total

