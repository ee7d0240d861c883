"""Outside truth for queueing checks: closed forms, exact recursions and confidence intervals.

Everything here is a pure function of its arguments; nothing imports meshsim,
SimPy or a global random state, so these oracles cannot share a bug with the
engine they check.

Closed forms (steady state, FCFS, infinite queue)
    :func:`erlang_b`, :func:`erlang_c`, :func:`mmc_metrics`, :func:`mm1_metrics`,
    :func:`mg1_metrics` (Pollaczek–Khinchine), :func:`md1_metrics`.
Exact sample-path recursions (the same waits a correct DES gives on the same draws)
    :func:`kiefer_wolfowitz_waits` (c servers, pure Python),
    :func:`kiefer_wolfowitz_waits_many` (numpy, vectorised across replications),
    :func:`lindley_waits` (one server, vectorised over customers).
Confidence intervals
    :func:`batch_means_ci` (one long run), :func:`replication_ci` (independent runs).

Conventions
-----------
``interarrivals[k]`` is the time from arrival ``k - 1`` to arrival ``k``, and
arrival 0 comes ``interarrivals[0]`` after time 0 into an empty system, so
arrival times are ``cumsum(interarrivals)`` summed left to right.
``services[k]`` is the service time of arrival ``k``. A customer's *wait* is
the time from its arrival to the start of its service (queueing delay).

References
----------
.. [1] L. Kleinrock, *Queueing Systems, Vol. 1: Theory*, Wiley, 1975
       (M/M/c and Erlang C: sec. 3.5; M/G/1 and Pollaczek–Khinchine: ch. 5).
.. [2] J. Kiefer and J. Wolfowitz, "On the theory of queues with many servers",
       *Trans. AMS* 78(1), 1955.
.. [3] D. V. Lindley, "The theory of queues with a single server",
       *Proc. Cambridge Phil. Soc.* 48(2), 1952.
.. [4] A. M. Law, *Simulation Modeling and Analysis*, 5th ed., McGraw-Hill, 2015
       (batch means: sec. 9.5.3).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = [
    "ConfidenceInterval",
    "erlang_b",
    "erlang_c",
    "mmc_metrics",
    "mm1_metrics",
    "mg1_metrics",
    "md1_metrics",
    "kiefer_wolfowitz_waits",
    "kiefer_wolfowitz_waits_many",
    "lindley_waits",
    "batch_means_ci",
    "replication_ci",
]


class ConfidenceInterval(NamedTuple):
    """A point estimate with a two-sided interval; unpacks as ``mean, low, high``."""

    mean: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        """True when ``low <= value <= high``."""
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2.0


# ---------------------------------------------------------------------------- validation
def _check_servers(c: int) -> int:
    if isinstance(c, bool) or int(c) != c or c < 1:
        raise ValueError(f"`c` (servers) must be an integer >= 1, got {c!r}")
    return int(c)


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return value


def _check_stable(rho: float) -> None:
    if not rho < 1.0:
        raise ValueError(f"unstable queue: utilisation rho = {rho:.6g} must be < 1 for a steady state")


# ---------------------------------------------------------------------------- closed forms
def erlang_b(c: int, a: float) -> float:
    r"""Erlang B: the blocking probability of an M/M/c/c loss system.

    Parameters
    ----------
    c : int
        Number of servers, >= 1.
    a : float
        Offered load in erlangs, ``a = lam / mu`` (>= 0).

    Returns
    -------
    float
        :math:`B(c, a) = \frac{a^c / c!}{\sum_{k=0}^{c} a^k / k!}`.

    Notes
    -----
    Computed by the recursion :math:`B(0, a) = 1`,
    :math:`B(k, a) = \frac{a B(k-1, a)}{k + a B(k-1, a)}`, which stays in
    [0, 1] at every step, so it neither overflows nor loses precision for
    hundreds or thousands of servers (the factorial form overflows at c ≈ 170).

    Examples
    --------
    >>> round(erlang_b(4, 3.6), 6)  # 6.9984 / 25.8544
    0.270685
    >>> erlang_b(1, 1.0)
    0.5
    """
    c = _check_servers(c)
    a = float(a)
    if not (a >= 0.0 and math.isfinite(a)):
        raise ValueError(f"`a` (offered load) must be a finite number >= 0, got {a!r}")
    b = 1.0
    for k in range(1, c + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def erlang_c(c: int, a: float) -> float:
    r"""Erlang C: the probability that an arrival to an M/M/c queue has to wait.

    Parameters
    ----------
    c : int
        Number of servers, >= 1.
    a : float
        Offered load in erlangs, ``a = lam / mu``; must satisfy ``0 <= a < c``.

    Returns
    -------
    float
        :math:`C(c, a) = \frac{\frac{a^c}{c!}\frac{c}{c-a}}
        {\sum_{k=0}^{c-1}\frac{a^k}{k!} + \frac{a^c}{c!}\frac{c}{c-a}}`.

    Notes
    -----
    Computed from Erlang B (stable recursion, see :func:`erlang_b`) by
    :math:`C = \frac{B}{1 - \rho (1 - B)}` with :math:`\rho = a / c`.
    Accurate for c up to several thousand.

    Examples
    --------
    The M/M/4 queue at rho = 0.9 (simulation.md Part 2):

    >>> round(erlang_c(4, 3.6), 6)
    0.787753

    With one server the probability of waiting is the utilisation:

    >>> round(erlang_c(1, 0.7), 12)
    0.7
    """
    c = _check_servers(c)
    rho = float(a) / c
    _check_stable(rho)
    b = erlang_b(c, a)
    return b / (1.0 - rho * (1.0 - b))


def mmc_metrics(lam: float, mu: float, c: int) -> dict[str, float]:
    r"""Steady-state metrics of the M/M/c FCFS queue.

    Parameters
    ----------
    lam : float
        Arrival rate (customers per unit time), > 0.
    mu : float
        Service rate of one server, > 0.
    c : int
        Number of servers, >= 1. Requires :math:`\lambda < c\mu`.

    Returns
    -------
    dict
        ``rho`` utilisation :math:`\lambda / (c\mu)`;
        ``p_wait`` Erlang C :math:`C(c, \lambda/\mu)`;
        ``Wq`` mean wait in queue :math:`C / (c\mu - \lambda)`;
        ``W`` mean time in system :math:`W_q + 1/\mu`;
        ``Lq`` mean number waiting :math:`\lambda W_q`;
        ``L`` mean number in system :math:`\lambda W` (Little's law).

    Raises
    ------
    ValueError
        When an argument is out of range or :math:`\rho \ge 1`.

    Examples
    --------
    >>> m = mmc_metrics(3.6, 1.0, 4)
    >>> round(m["p_wait"], 6), round(m["Wq"], 6), round(m["Lq"], 4)
    (0.787753, 1.969383, 7.0898)
    >>> round(m["W"], 6), round(m["L"], 4), m["rho"]
    (2.969383, 10.6898, 0.9)
    """
    lam = _check_positive("lam", lam)
    mu = _check_positive("mu", mu)
    c = _check_servers(c)
    rho = lam / (c * mu)
    _check_stable(rho)
    p_wait = erlang_c(c, lam / mu)
    wq = p_wait / (c * mu - lam)
    w = wq + 1.0 / mu
    return {"rho": rho, "p_wait": p_wait, "Wq": wq, "W": w, "Lq": lam * wq, "L": lam * w}


def mm1_metrics(lam: float, mu: float) -> dict[str, float]:
    r"""Steady-state metrics of the M/M/1 queue (:func:`mmc_metrics` with c = 1).

    Parameters
    ----------
    lam, mu : float
        Arrival and service rates, :math:`0 < \lambda < \mu`.

    Returns
    -------
    dict
        Same keys as :func:`mmc_metrics`: ``rho`` :math:`= \lambda/\mu`,
        ``p_wait`` :math:`= \rho`, ``Wq`` :math:`= \rho / (\mu - \lambda)`,
        ``W`` :math:`= 1 / (\mu - \lambda)`, ``Lq`` :math:`= \rho^2 / (1 - \rho)`,
        ``L`` :math:`= \rho / (1 - \rho)`.

    Examples
    --------
    >>> m = mm1_metrics(0.9, 1.0)
    >>> round(m["Wq"], 9), round(m["W"], 9), round(m["L"], 9)
    (9.0, 10.0, 9.0)
    """
    return mmc_metrics(lam, mu, 1)


def mg1_metrics(lam: float, mean_s: float, scv_s: float) -> dict[str, float]:
    r"""Steady-state metrics of the M/G/1 FCFS queue (Pollaczek–Khinchine).

    Parameters
    ----------
    lam : float
        Poisson arrival rate, > 0.
    mean_s : float
        Mean service time :math:`E[S]`, > 0. Requires :math:`\rho = \lambda E[S] < 1`.
    scv_s : float
        Squared coefficient of variation of the service time,
        :math:`c_s^2 = \mathrm{Var}[S] / E[S]^2` (>= 0): 0 deterministic,
        1 exponential, ``1/k`` Erlang-k.

    Returns
    -------
    dict
        ``rho``, ``p_wait`` (:math:`= \rho`, PASTA), ``Wq``, ``W``, ``Lq``, ``L``, where
        :math:`E[S^2] = E[S]^2 (1 + c_s^2)`,
        :math:`W_q = \frac{\lambda E[S^2]}{2 (1 - \rho)}
        = \frac{\rho E[S]}{1 - \rho} \cdot \frac{1 + c_s^2}{2}`,
        :math:`W = W_q + E[S]`, :math:`L_q = \lambda W_q`, :math:`L = \lambda W`.

    Examples
    --------
    With exponential service (scv 1) it is M/M/1:

    >>> round(mg1_metrics(0.9, 1.0, 1.0)["Wq"], 9)
    9.0

    Deterministic service halves the wait:

    >>> round(mg1_metrics(0.9, 1.0, 0.0)["Wq"], 9)
    4.5
    """
    lam = _check_positive("lam", lam)
    mean_s = _check_positive("mean_s", mean_s)
    scv_s = float(scv_s)
    if not (scv_s >= 0.0 and math.isfinite(scv_s)):
        raise ValueError(f"`scv_s` must be a finite number >= 0, got {scv_s!r}")
    rho = lam * mean_s
    _check_stable(rho)
    es2 = mean_s * mean_s * (1.0 + scv_s)
    wq = lam * es2 / (2.0 * (1.0 - rho))
    w = wq + mean_s
    return {"rho": rho, "p_wait": rho, "Wq": wq, "W": w, "Lq": lam * wq, "L": lam * w}


def md1_metrics(lam: float, mean_s: float) -> dict[str, float]:
    r"""Steady-state metrics of the M/D/1 queue (:func:`mg1_metrics` with ``scv_s = 0``).

    Parameters
    ----------
    lam : float
        Poisson arrival rate, > 0.
    mean_s : float
        The constant service time, > 0, with :math:`\rho = \lambda\, E[S] < 1`.

    Returns
    -------
    dict
        As :func:`mg1_metrics`; :math:`W_q = \frac{\rho E[S]}{2 (1 - \rho)}`.

    Examples
    --------
    >>> m = md1_metrics(0.5, 1.0)
    >>> round(m["Wq"], 9), round(m["Lq"], 9)
    (0.5, 0.25)
    """
    return mg1_metrics(lam, mean_s, 0.0)


# ---------------------------------------------------------------------------- recursions
def _paired(interarrivals, services) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(interarrivals, dtype=np.float64)
    s = np.asarray(services, dtype=np.float64)
    if t.shape != s.shape:
        raise ValueError(f"`interarrivals` and `services` must have the same shape, got {t.shape} and {s.shape}")
    return t, s


def kiefer_wolfowitz_waits(interarrivals: Sequence[float], services: Sequence[float], c: int) -> np.ndarray:
    r"""Exact FCFS waits of a c-server queue by the Kiefer–Wolfowitz recursion.

    Parameters
    ----------
    interarrivals : sequence of float
        ``interarrivals[k]`` is the gap before arrival ``k``; arrival times are
        their running sum, starting from an empty system at time 0.
    services : sequence of float
        ``services[k]`` is the service time of arrival ``k``.
    c : int
        Number of identical servers, >= 1.

    Returns
    -------
    numpy.ndarray
        ``waits[k]``: time arrival ``k`` spends queueing before service starts.

    Notes
    -----
    Keeps a min-heap of the c times at which the servers next become free.
    Arrival k at time :math:`t_k` takes the earliest free server, free at
    :math:`f`, waits :math:`\max(0, f - t_k)`, starts at :math:`\max(f, t_k)`
    and makes that server free at start :math:`+\ S_k`.

    The arithmetic is plain Python floats in the order a discrete-event
    engine performs it (``t += gap``; ``end = start + service``), so any
    correct FCFS c-server DES fed the same draws gives bit-identical waits:
    this is the exactness oracle (simulation.md Part 3, anchor A1).
    Runs at about 2.5 million customers/s.

    Examples
    --------
    Two servers; arrivals at 1, 2, 3, 4 each need 2.5:

    >>> kiefer_wolfowitz_waits([1, 1, 1, 1], [2.5, 2.5, 2.5, 2.5], c=2).tolist()
    [0.0, 0.0, 0.5, 0.5]

    With one server it is Lindley's recursion:

    >>> kiefer_wolfowitz_waits([1, 1, 1], [3, 3, 3], c=1).tolist()
    [0.0, 2.0, 4.0]
    """
    c = _check_servers(c)
    gaps, svc = _paired(interarrivals, services)
    free = [0.0] * c  # a valid heap
    out = [0.0] * len(gaps)
    heapreplace = heapq.heapreplace
    t = 0.0
    for k, (gap, s) in enumerate(zip(gaps.tolist(), svc.tolist(), strict=True)):
        t += gap
        f = free[0]
        if f > t:
            out[k] = f - t
            heapreplace(free, f + s)
        else:
            heapreplace(free, t + s)
    return np.asarray(out, dtype=np.float64)


def kiefer_wolfowitz_waits_many(interarrivals: np.ndarray, services: np.ndarray, c: int) -> np.ndarray:
    r"""Kiefer–Wolfowitz waits for many independent replications at once (numpy).

    Parameters
    ----------
    interarrivals : array_like, shape (R, n)
        One row of inter-arrival gaps per replication.
    services : array_like, shape (R, n)
        The matching service times.
    c : int
        Number of servers, >= 1.

    Returns
    -------
    numpy.ndarray, shape (R, n)
        ``waits[r, k]`` of customer ``k`` in replication ``r``.

    Notes
    -----
    FCFS with c > 1 has no associative scan over customers (the KW map
    contains a sort), so this loops over customers and vectorises across
    replications: each step is a handful of numpy calls on an (R, c) array.
    Worth it for R in the hundreds or more (tens of millions of
    customer-steps per second); for one replication use
    :func:`kiefer_wolfowitz_waits`. Arrival times are ``np.cumsum`` along
    each row (a sequential sum), so every row equals
    :func:`kiefer_wolfowitz_waits` on it bit for bit.

    Examples
    --------
    >>> gaps = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    >>> svc = np.array([[2.5, 2.5, 2.5, 2.5], [0.5, 0.5, 0.5, 0.5]])
    >>> kiefer_wolfowitz_waits_many(gaps, svc, c=2).tolist()
    [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]
    """
    c = _check_servers(c)
    gaps, svc = _paired(interarrivals, services)
    if gaps.ndim != 2:
        raise ValueError(f"`interarrivals` must be 2-D (replications, customers), got shape {gaps.shape}")
    arrivals = np.cumsum(gaps, axis=1)
    reps, n = gaps.shape
    free = np.zeros((reps, c))
    waits = np.empty((reps, n))
    for k in range(n):
        t = arrivals[:, k]
        first = free[:, 0]
        waits[:, k] = np.maximum(first - t, 0.0)
        free[:, 0] = np.maximum(first, t) + svc[:, k]
        if c > 1:
            free.sort(axis=1)
    return waits


def lindley_waits(interarrivals: Sequence[float], services: Sequence[float]) -> np.ndarray:
    r"""FCFS single-server waits by Lindley's recursion, vectorised over customers.

    Parameters
    ----------
    interarrivals : sequence of float
        ``interarrivals[k]`` is the gap before arrival ``k`` (``interarrivals[0]``
        does not affect the waits: the system starts empty).
    services : sequence of float
        ``services[k]`` is the service time of arrival ``k``.

    Returns
    -------
    numpy.ndarray
        ``waits[k]``, with :math:`W_0 = 0` and
        :math:`W_{k} = \max(0,\ W_{k-1} + S_{k-1} - T_{k})`.

    Notes
    -----
    Unrolled, :math:`W_k = P_k - \min_{0 \le j \le k} P_j` with
    :math:`P_k = \sum_{i=1}^{k} (S_{i-1} - T_i)` and :math:`P_0 = 0`: a cumulative
    sum and a running minimum, so it runs at tens of millions of customers/s.
    It agrees with :func:`kiefer_wolfowitz_waits` with ``c=1`` up to rounding
    (about 1e-12 absolute for 10^5 customers), not bit for bit.

    Examples
    --------
    >>> lindley_waits([1, 1, 1, 5], [3, 3, 3, 3]).tolist()
    [0.0, 2.0, 4.0, 2.0]
    """
    gaps, svc = _paired(interarrivals, services)
    if gaps.ndim != 1:
        raise ValueError(f"`interarrivals` must be 1-D, got shape {gaps.shape}")
    if gaps.size == 0:
        return np.empty(0)
    steps = svc[:-1] - gaps[1:]
    p = np.concatenate(([0.0], np.cumsum(steps)))
    return p - np.minimum.accumulate(p)


# ---------------------------------------------------------------------------- intervals
def _t_interval(values: np.ndarray, confidence: float) -> ConfidenceInterval:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")
    m = values.size
    mean = float(values.mean())
    se = float(values.std(ddof=1)) / math.sqrt(m)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, m - 1)) * se
    return ConfidenceInterval(mean, mean - half, mean + half)


def batch_means_ci(x: Sequence[float], n_batches: int = 30, confidence: float = 0.99) -> ConfidenceInterval:
    r"""Confidence interval for the steady-state mean of one long run, by batch means.

    Parameters
    ----------
    x : sequence of float
        The output series in time order (warm-up already removed), e.g. the
        waits of successive customers.
    n_batches : int, default 30
        Number of equal, contiguous batches (>= 2). With ``len(x) = n``, each
        batch holds ``n // n_batches`` points; the ``n % n_batches`` *oldest*
        points are dropped so the batches end at the last observation.
    confidence : float, default 0.99
        Two-sided confidence level in (0, 1).

    Returns
    -------
    ConfidenceInterval
        ``(mean, low, high)``: the mean of the batch means and the Student t
        interval :math:`\bar Y \pm t_{1-\alpha/2,\,b-1}\, s_Y / \sqrt{b}` over the
        ``b`` batch means :math:`Y_j`.

    Notes
    -----
    Valid when batches are long compared with the autocorrelation time of
    ``x`` so the batch means are nearly independent and normal. Near
    saturation (rho 0.9 and up) that takes batches of thousands of customers.

    Examples
    --------
    >>> ci = batch_means_ci(np.arange(300.0), n_batches=3, confidence=0.95)
    >>> ci.mean
    149.5
    >>> round(ci.low, 3), round(ci.high, 3)
    (-98.914, 397.914)
    """
    arr = np.asarray(x, dtype=np.float64).ravel()
    n_batches = int(n_batches)
    if n_batches < 2:
        raise ValueError(f"`n_batches` must be >= 2, got {n_batches!r}")
    size = arr.size // n_batches
    if size < 1:
        raise ValueError(f"need at least `n_batches` = {n_batches} points, got {arr.size}")
    used = arr[arr.size - size * n_batches:]
    return _t_interval(used.reshape(n_batches, size).mean(axis=1), confidence)


def replication_ci(values: Sequence[float], confidence: float = 0.99) -> ConfidenceInterval:
    r"""Student t confidence interval over independent replications.

    Parameters
    ----------
    values : sequence of float
        One estimate per independent replication (>= 2 values).
    confidence : float, default 0.99
        Two-sided confidence level in (0, 1).

    Returns
    -------
    ConfidenceInterval
        ``(mean, low, high)`` with :math:`\bar x \pm t_{1-\alpha/2,\,m-1}\, s / \sqrt{m}`.

    Examples
    --------
    >>> ci = replication_ci([1.0, 2.0, 3.0, 4.0], confidence=0.95)
    >>> ci.mean, round(ci.low, 4), round(ci.high, 4)
    (2.5, 0.4457, 4.5543)
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < 2:
        raise ValueError(f"need at least 2 replications, got {arr.size}")
    return _t_interval(arr, confidence)
