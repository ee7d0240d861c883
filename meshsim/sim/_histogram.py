"""A bounded-memory latency histogram for summary-only runs.

``LogHistogram`` keeps a fixed array of log-linear bucket counts (HDR-histogram
style) plus the exact count, sum, minimum and maximum, so ten million latencies
cost the same memory as ten: 360 kB of counts and an input buffer of at most
65,536 Python floats (about 2 MB while full).

Bucket layout
-------------
Every positive float is ``m * 2**e`` with ``m`` in ``[0.5, 1)`` (``numpy.frexp``).
Each octave ``[2**(e-1), 2**e)`` is cut into ``SUB_BUCKETS = 1024`` equal
sub-buckets, so a bucket's width relative to its lower edge is at most
``1/1024`` (0.098%). The octaves run from ``2**-24`` (60 ns) to ``2**20``
(12.1 days), which covers the required ``[1e-7 s, 1e6 s]``. Zero and negative
values go to a *zero* bucket, values in ``(0, 2**-24)`` to an *underflow* bucket
(both counted by :attr:`LogHistogram.underflow`), and values at or above
``2**20`` (and ``inf``) to an *overflow* bucket whose count is reported as
:attr:`LogHistogram.overflow`.

The bucket index is computed with ``frexp`` and multiplications by powers of
two, which are exact in binary floating point: a value lands in the same bucket
on every machine, whatever ``libm`` or SIMD path numpy uses (``np.log`` is only
correct to an ulp or so, and a value on a bucket edge could move between builds).
That is why the flush uses ``frexp`` rather than ``log``.

Quantiles follow ``numpy.quantile``'s default (``method="linear"``): the
``q``-quantile of ``n`` values is found at rank ``h = q (n - 1)`` between the
order statistics ``floor(h)`` and ``floor(h) + 1``. Each order statistic is
estimated inside its bucket (bucket edges clipped to the exact minimum and
maximum) by spreading the bucket's values evenly over it, so the estimate and
the true value lie in the same bucket: the relative error is at most one bucket
width, ``1/1024``. ``q = 0`` and ``q = 1`` return the exact minimum and maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, overload

import numpy as np

__all__ = ["LogHistogram", "SUB_BUCKETS", "LOWEST", "HIGHEST"]

#: sub-buckets per octave (power of two); relative bucket width <= 1 / SUB_BUCKETS
SUB_BUCKETS = 1024
_E_MIN = -23  # frexp exponent of the first octave [2**-24, 2**-23)
_E_MAX = 20  # frexp exponent of the last octave [2**19, 2**20)
#: lower edge of the first regular bucket (seconds); smaller values go to the underflow bucket
LOWEST = math.ldexp(0.5, _E_MIN)
#: upper edge of the last regular bucket (seconds); values >= HIGHEST go to the overflow bucket
HIGHEST = math.ldexp(0.5, _E_MAX + 1)
_N_REGULAR = (_E_MAX - _E_MIN + 1) * SUB_BUCKETS
_FIRST = 2  # index of the first regular bucket
_N_BUCKETS = _N_REGULAR + 3  # [zero, underflow, regular..., overflow]
_OVERFLOW = _N_BUCKETS - 1
_BUFFER = 65_536
_FORMAT = 1


def _bucket_edges() -> np.ndarray:
    """Edges of all buckets: ``edges[b]`` and ``edges[b + 1]`` bound bucket ``b``."""
    e = np.repeat(np.arange(_E_MIN, _E_MAX + 1), SUB_BUCKETS)
    i = np.tile(np.arange(SUB_BUCKETS), _E_MAX - _E_MIN + 1)
    lower = np.ldexp(0.5 + 0.5 * i / SUB_BUCKETS, e)  # exact: i / 1024 and ldexp are exact
    return np.concatenate(([-np.inf, 0.0], lower, [HIGHEST, np.inf]))


_EDGES = _bucket_edges()


def _bucket_index(a: np.ndarray) -> np.ndarray:
    """Bucket index of each value of a float64 array without NaN (exact, see module notes)."""
    m, e = np.frexp(np.clip(a, LOWEST, HIGHEST))
    # 2m - 1 is exact (Sterbenz) and * SUB_BUCKETS is exact: floor lands on the true sub-bucket
    idx = (e.astype(np.int64) - _E_MIN) * SUB_BUCKETS + ((2.0 * m - 1.0) * SUB_BUCKETS).astype(np.int64) + _FIRST
    idx[a < LOWEST] = 1
    idx[a <= 0.0] = 0
    idx[a >= HIGHEST] = _OVERFLOW
    return idx


class LogHistogram:
    """Streaming histogram of non-negative values (latencies in seconds) with fixed memory.

    Counts, sum, minimum and maximum are exact; quantiles are within 0.1%
    (one bucket, ``1/1024``) of ``numpy.quantile`` on the same values, for
    values in ``[2**-24, 2**20)`` s, which covers ``[1e-7, 1e6]`` s.

    Parameters
    ----------
    buffer_size
        Values kept in a Python list before they are binned with numpy in one
        vectorised step. Defaults to 65,536.

    Notes
    -----
    :meth:`add` only appends to a list; every ``buffer_size`` values the
    buffer is flushed into the bucket counts. Reading any statistic flushes
    first. NaN is refused (``ValueError``) at :meth:`add_array`, and at the
    next flush for values given to :meth:`add`. The result depends only on
    the multiset of values added: order, buffer size and :meth:`merge` do not
    change counts, quantiles, minimum or maximum (the sum may differ in its
    last bits, each flushed block being summed with ``math.fsum``).

    Examples
    --------
    >>> h = LogHistogram()
    >>> for x in (0.010, 0.020, 0.030, 0.040):
    ...     h.add(x)
    >>> h.count, h.min, h.max
    (4, 0.01, 0.04)
    >>> abs(h.quantile(0.5) - 0.025) / 0.025 < 1e-3
    True
    """

    __slots__ = ("_buf", "_size", "_counts", "_n", "_sum", "_min", "_max")

    def __init__(self, *, buffer_size: int = _BUFFER) -> None:
        if buffer_size < 1:
            raise ValueError(f"`buffer_size` must be >= 1, got {buffer_size!r}")
        self._buf: list[float] = []
        self._size = int(buffer_size)
        self._counts = np.zeros(_N_BUCKETS, dtype=np.int64)
        self._n = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # ------------------------------------------------------------------ input
    def add(self, x: float) -> None:
        """Add one value (the hot path: a list append, binned in blocks)."""
        buf = self._buf
        buf.append(x)
        if len(buf) >= self._size:
            self._flush()

    def add_array(self, a: Iterable[float] | np.ndarray) -> None:
        """Add many values at once (any array-like of floats)."""
        arr = np.asarray(a, dtype=np.float64).ravel()
        if arr.size:
            self._flush()
            self._bin(arr, arr.tolist())

    def _flush(self) -> None:
        buf = self._buf
        if buf:
            self._buf = []
            self._bin(np.asarray(buf, dtype=np.float64), buf)

    def _bin(self, arr: np.ndarray, values: list[float]) -> None:
        if np.isnan(arr).any():
            raise ValueError("LogHistogram: NaN cannot be added")
        try:
            total = math.fsum(values)
        except ValueError:  # inf and -inf both present
            total = math.nan
        self._counts += np.bincount(_bucket_index(arr), minlength=_N_BUCKETS)
        self._n += arr.size
        self._sum += total
        self._min = min(self._min, float(arr.min()))
        self._max = max(self._max, float(arr.max()))

    def merge(self, other: LogHistogram) -> LogHistogram:
        """Add all values of ``other`` to this histogram (in place); returns ``self``."""
        if not isinstance(other, LogHistogram):
            raise TypeError(f"can only merge a LogHistogram, not {type(other).__name__}")
        self._flush()
        other._flush()
        self._counts += other._counts
        self._n += other._n
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        return self

    # ------------------------------------------------------------------ statistics
    @property
    def count(self) -> int:
        """Number of values added."""
        return self._n + len(self._buf)

    @property
    def sum(self) -> float:
        """Sum of the values (each flushed block summed exactly with ``math.fsum``)."""
        self._flush()
        return self._sum

    @property
    def mean(self) -> float:
        """Mean of the values; NaN when empty."""
        self._flush()
        return self._sum / self._n if self._n else math.nan

    @property
    def min(self) -> float:
        """Exact minimum; NaN when empty."""
        self._flush()
        return self._min if self._n else math.nan

    @property
    def max(self) -> float:
        """Exact maximum; NaN when empty."""
        self._flush()
        return self._max if self._n else math.nan

    @property
    def underflow(self) -> int:
        """Values below ``LOWEST`` (``2**-24`` s), zero and negative values included."""
        self._flush()
        return int(self._counts[0] + self._counts[1])

    @property
    def overflow(self) -> int:
        """Values at or above ``HIGHEST`` (``2**20`` s, about 12 days) and ``inf``."""
        self._flush()
        return int(self._counts[_OVERFLOW])

    @overload
    def quantile(self, q: float) -> float: ...

    @overload
    def quantile(self, q: Iterable[float] | np.ndarray) -> np.ndarray: ...

    def quantile(self, q: float | Iterable[float] | np.ndarray) -> float | np.ndarray:
        """Quantile(s) of the values, as ``numpy.quantile`` (linear method) would give them.

        Parameters
        ----------
        q
            A probability in ``[0, 1]`` or a sequence of them.

        Returns
        -------
        float or numpy.ndarray
            A float for a scalar ``q``, else an array of the same shape. NaN when
            the histogram is empty.
        """
        qs = np.asarray(q, dtype=np.float64)
        if qs.size and (np.isnan(qs).any() or qs.min() < 0.0 or qs.max() > 1.0):
            raise ValueError(f"`q` must be in [0, 1], got {q!r}")
        self._flush()
        n = self._n
        if n == 0:
            out = np.full(qs.shape, np.nan)
        else:
            h = qs.ravel() * (n - 1)
            k0 = np.floor(h).astype(np.int64)
            k1 = np.minimum(k0 + 1, n - 1)
            v0 = self._order_statistic(k0)
            v1 = self._order_statistic(k1)
            with np.errstate(invalid="ignore"):  # inf - inf when both are inf
                out = np.where(v0 == v1, v0, v0 + (h - k0) * (v1 - v0))
            out[qs.ravel() == 0.0] = self._min
            out[qs.ravel() == 1.0] = self._max
            out = out.reshape(qs.shape)
        return float(out) if out.ndim == 0 else out

    def _order_statistic(self, k: np.ndarray) -> np.ndarray:
        """Estimate of the ``k``-th smallest value (0-based) for each ``k``."""
        cum = np.cumsum(self._counts)
        b = np.searchsorted(cum, k, side="right")
        c = self._counts[b]
        pos = (k - (cum[b] - c) + 0.5) / c
        lo = np.clip(_EDGES[b], self._min, self._max)
        hi = np.clip(_EDGES[b + 1], self._min, self._max)
        width = hi - lo
        with np.errstate(invalid="ignore"):  # inf - inf in the overflow bucket
            est = lo + pos * np.where(np.isfinite(width), width, 0.0)
        return np.where(np.isinf(hi) & (pos > 0.5), hi, est)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sparse bucket counts) that :meth:`from_dict` reads back."""
        self._flush()
        nz = np.flatnonzero(self._counts)
        empty = self._n == 0
        return {
            "format": _FORMAT,
            "sub_buckets": SUB_BUCKETS,
            "lowest": LOWEST,
            "highest": HIGHEST,
            "count": self._n,
            "sum": self._sum,
            "min": None if empty else self._min,
            "max": None if empty else self._max,
            "underflow": int(self._counts[0] + self._counts[1]),
            "overflow": int(self._counts[_OVERFLOW]),
            "index": nz.tolist(),
            "counts": self._counts[nz].tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LogHistogram:
        """Rebuild a histogram written by :meth:`to_dict`."""
        if (d.get("format"), d.get("sub_buckets"), d.get("lowest"), d.get("highest")) != (
            _FORMAT, SUB_BUCKETS, LOWEST, HIGHEST,
        ):
            raise ValueError("histogram dict has another bucket layout or format than this meshsim")
        index = np.asarray(d["index"], dtype=np.int64)
        counts = np.asarray(d["counts"], dtype=np.int64)
        if index.shape != counts.shape or (index.size and (index.min() < 0 or index.max() >= _N_BUCKETS)):
            raise ValueError("histogram dict has malformed `index`/`counts`")
        h = cls()
        h._counts[index] = counts
        h._n = int(d["count"])
        if h._n != int(counts.sum()):
            raise ValueError("histogram dict `count` does not match its bucket counts")
        h._sum = float(d["sum"])
        h._min = math.inf if d["min"] is None else float(d["min"])
        h._max = -math.inf if d["max"] is None else float(d["max"])
        return h

    def __repr__(self) -> str:
        n = self.count
        if not n:
            return "LogHistogram(count=0)"
        p50, p99 = self.quantile([0.5, 0.99])
        return f"LogHistogram(count={n}, min={self.min:.6g}, p50={p50:.6g}, p99={p99:.6g}, max={self.max:.6g})"
