"""The same M/M/c FCFS queue written four ways, as peers and oracles for meshsim.

Each engine is written the way simulation.md Part 2 describes it: the
straightforward way a user of that tool would write it, not tuned.

* :func:`ciw_mmc`: Ciw with a custom two-stream ``ciw.dists.Distribution`` (row a2).
* :func:`simpy_process_mmc`: SimPy, one process per customer and a ``simpy.Resource`` (row b).
* :func:`heapq_mmc`: a bare ``heapq`` event loop in pure Python (row e).
* :func:`kw_mmc`: the Kiefer–Wolfowitz recursion, not a DES (row e2).

The two-stream convention
-------------------------
Every engine draws inter-arrival gaps from ``random.Random(seed).expovariate(lam)``
and service times from ``random.Random(seed + 1).expovariate(mu)``, the k-th
service draw going to the k-th arrival. FCFS starts customers in arrival
order, so all correct engines follow the *same sample path* and report the
same waits to the last bit: for ``n=200_000, lam=3.6, mu=1, c=4, seed=12345``
the mean wait is 2.0694367955 (simulation.md Part 2).

Each function returns the mean wait (arrival to start of service) over the
first ``n - 200`` arrivals, summed with :func:`math.fsum` so that equal waits
give an equal mean; with ``return_waits=True`` it returns ``(mean, waits)``
where ``waits`` holds all ``n`` customers' waits in arrival order.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

import numpy as np

__all__ = ["TAIL", "ciw_mmc", "simpy_process_mmc", "heapq_mmc", "kw_mmc", "two_streams"]

#: arrivals at the end of a run left out of the mean (they may still be queued when a run stops)
TAIL = 200


def _check(n: int, lam: float, mu: float, c: int) -> None:
    if int(n) != n or n <= TAIL:
        raise ValueError(f"`n` must be an integer > {TAIL} (the mean leaves out the last {TAIL}), got {n!r}")
    if not (lam > 0 and mu > 0):
        raise ValueError(f"`lam` and `mu` must be > 0, got lam={lam!r}, mu={mu!r}")
    if int(c) != c or c < 1:
        raise ValueError(f"`c` must be an integer >= 1, got {c!r}")


def _result(waits, n: int, return_waits: bool):
    mean = math.fsum(waits[: n - TAIL]) / (n - TAIL)
    if return_waits:
        return mean, np.asarray(waits, dtype=np.float64)
    return mean


def two_streams(n: int, lam: float, mu: float, seed: int) -> tuple[list[float], list[float]]:
    """The first ``n`` draws of both streams, as lists.

    Parameters
    ----------
    n : int
        Number of customers.
    lam, mu : float
        Arrival rate and per-server service rate.
    seed : int
        Arrivals use ``random.Random(seed)``, services ``random.Random(seed + 1)``.

    Returns
    -------
    (list of float, list of float)
        Inter-arrival gaps and service times.

    Examples
    --------
    >>> gaps, svc = two_streams(3, 3.6, 1.0, 12345)
    >>> gaps[0] == random.Random(12345).expovariate(3.6)
    True
    """
    arr = random.Random(seed)
    svc = random.Random(seed + 1)
    return [arr.expovariate(lam) for _ in range(n)], [svc.expovariate(mu) for _ in range(n)]


# ---------------------------------------------------------------------------- a2: Ciw
def ciw_mmc(n: int, lam: float, mu: float, c: int, seed: int, *, return_waits: bool = False):
    """M/M/c in Ciw with two-stream custom distributions (simulation.md row a2).

    Parameters
    ----------
    n : int
        Customers; the run ends when all ``n`` have completed.
    lam, mu : float
        Arrival rate and per-server service rate.
    c : int
        Servers.
    seed : int
        Two-stream seed (see the module docstring). Ciw's global ``ciw.seed``
        is not touched; its own random tie-breaking never fires with
        continuous times.
    return_waits : bool, default False
        Also return the per-customer waits.

    Returns
    -------
    float or (float, numpy.ndarray)
        Mean wait over the first ``n - 200`` arrivals (and all waits).
    """
    import ciw

    _check(n, lam, mu, c)

    class TwoStreamExponential(ciw.dists.Distribution):
        """An exponential distribution drawing from its own ``random.Random``."""

        def __init__(self, rate: float, stream_seed: int) -> None:
            self.rate = rate
            self.rng = random.Random(stream_seed)

        def sample(self, t=None, ind=None):
            return self.rng.expovariate(self.rate)

    network = ciw.create_network(
        arrival_distributions=[TwoStreamExponential(lam, seed)],
        service_distributions=[TwoStreamExponential(mu, seed + 1)],
        number_of_servers=[c],
    )
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(n, method="Complete")
    waits = [math.nan] * n
    for rec in sim.get_all_records():
        k = rec.id_number - 1
        if k < n:
            waits[k] = rec.waiting_time
    if any(math.isnan(w) for w in waits[: n - TAIL]):  # pragma: no cover - would be a Ciw change
        raise RuntimeError("Ciw finished without a record for one of the first n - 200 arrivals")
    return _result(waits, n, return_waits)


# ---------------------------------------------------------------------------- b: SimPy
def simpy_process_mmc(n: int, lam: float, mu: float, c: int, seed: int, *, return_waits: bool = False):
    """M/M/c in SimPy written straightforwardly: a process per customer + ``simpy.Resource`` (row b).

    Parameters
    ----------
    n, lam, mu, c, seed, return_waits
        As :func:`ciw_mmc`.

    Returns
    -------
    float or (float, numpy.ndarray)
        Mean wait over the first ``n - 200`` arrivals (and all waits).

    Notes
    -----
    Six SimPy events per customer (arrival timeout, process start, request,
    service timeout, release, process end): about 110–126k customers/s on
    the reference machine.
    """
    import simpy

    _check(n, lam, mu, c)
    arr = random.Random(seed)
    svc = random.Random(seed + 1)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=c)
    waits = [0.0] * n

    def customer(k: int, service_time: float):
        arrived = env.now
        with server.request() as req:
            yield req
            waits[k] = env.now - arrived
            yield env.timeout(service_time)

    def source():
        for k in range(n):
            yield env.timeout(arr.expovariate(lam))
            env.process(customer(k, svc.expovariate(mu)))

    env.process(source())
    env.run()
    return _result(waits, n, return_waits)


# ---------------------------------------------------------------------------- e: heapq
def heapq_mmc(n: int, lam: float, mu: float, c: int, seed: int, *, return_waits: bool = False):
    """M/M/c as a bare ``heapq`` event loop in pure Python (row e).

    Parameters
    ----------
    n, lam, mu, c, seed, return_waits
        As :func:`ciw_mmc`.

    Returns
    -------
    float or (float, numpy.ndarray)
        Mean wait over the first ``n - 200`` arrivals (and all waits).

    Notes
    -----
    Two event kinds on one heap of ``(time, seq, kind, customer)``: an arrival
    schedules the next arrival and either starts service or joins a FIFO
    deque; a departure starts the head of the queue or frees a server. ``seq``
    breaks time ties first-scheduled-first, as SimPy does.
    """
    _check(n, lam, mu, c)
    arr = random.Random(seed)
    svc = random.Random(seed + 1)
    arrive_at = [0.0] * n
    service = [0.0] * n
    waits = [0.0] * n
    queue: deque[int] = deque()
    busy = 0
    seq = 0
    ARRIVAL, DEPARTURE = 0, 1  # noqa: N806 - local constants
    heap: list[tuple[float, int, int, int]] = [(arr.expovariate(lam), 0, ARRIVAL, 0)]
    push, pop = heapq.heappush, heapq.heappop
    while heap:
        now, _, kind, k = pop(heap)
        if kind == ARRIVAL:
            arrive_at[k] = now
            service[k] = svc.expovariate(mu)
            if k + 1 < n:
                seq += 1
                push(heap, (now + arr.expovariate(lam), seq, ARRIVAL, k + 1))
            if busy < c:
                busy += 1
                seq += 1
                push(heap, (now + service[k], seq, DEPARTURE, k))
            else:
                queue.append(k)
        elif queue:
            j = queue.popleft()
            waits[j] = now - arrive_at[j]
            seq += 1
            push(heap, (now + service[j], seq, DEPARTURE, j))
        else:
            busy -= 1
    return _result(waits, n, return_waits)


# ---------------------------------------------------------------------------- e2: KW
def kw_mmc(n: int, lam: float, mu: float, c: int, seed: int, *, return_waits: bool = False):
    """M/M/c by the Kiefer–Wolfowitz recursion on the two streams (row e2; not a DES).

    The loop of :func:`analysis.queueing.kiefer_wolfowitz_waits` with the draws
    made inside it, as the other engines make them, so the timing compares
    like with like; the two give bit-identical waits.

    Parameters
    ----------
    n, lam, mu, c, seed, return_waits
        As :func:`ciw_mmc`.

    Returns
    -------
    float or (float, numpy.ndarray)
        Mean wait over the first ``n - 200`` arrivals (and all waits).

    See Also
    --------
    analysis.queueing.kiefer_wolfowitz_waits : the recursion itself.

    Examples
    --------
    >>> round(kw_mmc(200_000, 3.6, 1.0, 4, 12345), 10)
    2.0694367955
    """
    _check(n, lam, mu, c)
    arr = random.Random(seed)
    svc = random.Random(seed + 1)
    free = [0.0] * c  # the heap of times at which each server is next free
    waits = [0.0] * n
    heapreplace = heapq.heapreplace
    t = 0.0
    for k in range(n):
        t += arr.expovariate(lam)
        s = svc.expovariate(mu)
        f = free[0]
        if f > t:
            waits[k] = f - t
            heapreplace(free, f + s)
        else:
            heapreplace(free, t + s)
    return _result(waits, n, return_waits)
