"""DeadlineQueue: lazy timeouts of one length, one timer, exact expiry times."""

from __future__ import annotations

from meshsim.sim._deadlines import DeadlineQueue
from meshsim.sim._env import MeshEnvironment
from meshsim.sim._runtime import Timer


class _Sim:
    def __init__(self) -> None:
        self.env = MeshEnvironment()

    def _schedule(self, event, delay: float) -> None:
        assert event.callbacks is not None
        assert not any(e[3] is event for e in self.env._queue), "timer scheduled twice"
        self.env.schedule(event, 1, delay)


class _Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False


def test_items_expire_at_their_deadline_in_arming_order_and_answered_ones_are_skipped():
    sim = _Sim()
    expired: list[tuple[str, float]] = []
    q = DeadlineQueue(sim, 1.0, lambda it: expired.append((it.name, sim.env.now)), lambda it: it.done)
    keep = [_Item(n) for n in "abc"]
    for i, item in enumerate(keep):
        t = Timer(item)
        t.callbacks = [lambda ev, it=item: q.add(it, sim.env.now)]
        sim._schedule(t, 0.1 * i)
    keep[1].done = True
    sim.env.run_until(10.0)
    assert expired == [("a", 1.0), ("c", 1.2)]
    assert len(q) == 0


def test_an_expiry_that_arms_a_new_item_keeps_one_timer():
    sim = _Sim()
    seen: list[float] = []
    items: list[_Item] = []

    def expire(it: _Item) -> None:
        seen.append(sim.env.now)
        if len(seen) < 3:  # a retry arms the next timeout from inside the expiry
            nxt = _Item("retry")
            items.append(nxt)
            q.add(nxt, sim.env.now)

    q = DeadlineQueue(sim, 0.5, expire, lambda it: it.done)
    first = _Item("first")
    q.add(first, 0.0)
    sim.env.run_until(5.0)
    assert seen == [0.5, 1.0, 1.5]


def test_answered_items_are_not_kept_alive():
    import gc
    import weakref

    sim = _Sim()
    q = DeadlineQueue(sim, 15.0, lambda it: None, lambda it: it.done)
    item = _Item("x")
    probe = weakref.ref(item)
    q.add(item, 0.0)
    del item
    gc.collect()
    assert probe() is None
