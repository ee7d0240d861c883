"""Shapes of measured curves, shared by the capacity search and the capacity reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["knee"]


def knee(xs: Sequence[float], ys: Sequence[float]) -> int | None:
    """Index of the knee: the point farthest below the chord of the scaled curve, or None.

    Parameters
    ----------
    xs, ys
        The curve, ``xs`` increasing; at least three points.

    Examples
    --------
    >>> knee([1, 2, 3, 4, 5, 6], [100, 40, 15, 10, 9.5, 9.2])
    2
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if len(x) < 3 or not (np.isfinite(x).all() and np.isfinite(y).all()) or x[-1] == x[0]:
        return None
    span = y.max() - y.min()
    if span <= 0:
        return None
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y.min()) / span
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    gap = chord - yn
    i = int(np.argmax(gap[1:-1])) + 1
    return i if gap[i] > 0 else None
