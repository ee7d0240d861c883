"""A SimPy environment with a tighter run loop for the engine's many short events."""

from __future__ import annotations

from heapq import heappop

import simpy

__all__ = ["MeshEnvironment"]


class MeshEnvironment(simpy.Environment):
    """``simpy.Environment`` plus :meth:`run_until`, the engine's main loop.

    ``run_until(t)`` processes every event scheduled strictly before ``t`` in
    SimPy's order (time, priority, insertion counter), exactly as
    ``Environment.step`` does (callbacks detached, then called; a failed,
    undefused event raises), without the per-event method call and the
    sentinel event of ``Environment.run``. Processes, timeouts and resources
    work unchanged; ``run`` and ``step`` remain available.
    """

    def run_until(self, t: float) -> None:
        """Process all events before time ``t``, then set the clock to ``t``."""
        queue = self._queue
        pop = heappop
        while queue and queue[0][0] < t:
            self._now, _, _, event = pop(queue)
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
        if t > self._now:
            self._now = t
