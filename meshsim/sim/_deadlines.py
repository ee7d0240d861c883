"""Timeouts without a pile of dead timer events.

Every request through a sidecar has a route timeout (Envoy's default is 15 s),
and most answer in milliseconds. Scheduling one SimPy event per timeout would
leave the heap full of timers that fire for nothing. Timeouts of equal length
expire in the order they were armed, so a FIFO of ``(deadline, item)`` and a
single timer per length are enough: the timer fires at the oldest deadline,
expires what is still unresolved, skips what was answered meanwhile (lazy
cancellation), and re-arms at the next unresolved deadline. A run with few
real timeouts costs one deque append per request and a handful of events.

The queue holds weak references: an answered request is freed at once
rather than kept alive (and scanned by Python's cyclic garbage collector)
until its deadline passes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any
from weakref import ref

from meshsim.sim._runtime import Timer

__all__ = ["DeadlineQueue"]


class DeadlineQueue:
    """Deadlines of one fixed length, expired in arming order.

    Parameters
    ----------
    sim
        The engine (for its clock and ``_schedule``).
    length
        Timeout length, seconds (> 0).
    on_expire
        Called with an item whose deadline passed while ``resolved(item)`` was
        still false.
    resolved
        Tells whether an item no longer needs its timeout.

    Notes
    -----
    An item expires at exactly its deadline: the timer is scheduled at the
    oldest pending deadline, and items armed at the same instant expire in
    arming order, as individual SimPy timeouts would.
    """

    __slots__ = ("sim", "length", "on_expire", "resolved", "items", "timer", "armed_at")

    def __init__(self, sim: Any, length: float, on_expire: Callable[[Any], None],
                 resolved: Callable[[Any], bool]) -> None:
        if not length > 0:
            raise ValueError(f"timeout length must be > 0, got {length!r}")
        self.sim = sim
        self.length = float(length)
        self.on_expire = on_expire
        self.resolved = resolved
        self.items: deque[tuple[float, ref]] = deque()
        self.timer = Timer(self)
        self.armed_at: float | None = None  # deadline the timer is scheduled for

    def add(self, item: Any, now: float) -> float:
        """Arm ``item``'s timeout at ``now + length``; return the deadline."""
        deadline = now + self.length
        self.items.append((deadline, ref(item)))
        if self.armed_at is None:
            self._arm(deadline, now)
        return deadline

    def _arm(self, deadline: float, now: float) -> None:
        self.armed_at = deadline
        self.timer.callbacks = [self._fire]
        self.sim._schedule(self.timer, deadline - now)

    def _fire(self, _timer: Timer) -> None:
        now = self.sim.env._now
        # while expiring, ``on_expire`` may arm new items (a retry's per-try timeout, say): they are
        # appended behind, and this loop re-arms the one timer once it is done
        self.armed_at = now
        items = self.items
        resolved = self.resolved
        while items:
            deadline, wref = items[0]
            item = wref()
            if item is None or resolved(item):
                items.popleft()
                continue
            if deadline > now:
                self._arm(deadline, now)
                return
            items.popleft()
            self.on_expire(item)
        self.armed_at = None

    def __len__(self) -> int:
        return len(self.items)
