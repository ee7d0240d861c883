"""Named random streams, one per purpose, all from one seed.

A stream is identified by its purpose and the model element it serves
(``("service", "reviews", "v1")``), not by the order in which streams are
created, so adding a service or changing a retry policy leaves every other
stream untouched: two variants of a scenario run on common random numbers.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["Streams"]


def _key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class Streams:
    """Factory of independent ``numpy.random.Generator`` streams.

    Parameters
    ----------
    seed
        The scenario seed (an int >= 0).
    replication
        Replication index; replications of one seed are independent.

    Examples
    --------
    >>> s = Streams(7)
    >>> a = s.get("arrivals", "users").random()
    >>> b = Streams(7).get("arrivals", "users").random()
    >>> a == b
    True
    """

    __slots__ = ("seed", "replication")

    def __init__(self, seed: int, replication: int = 0) -> None:
        self.seed = int(seed)
        self.replication = int(replication)

    def get(self, purpose: str, *names: str) -> np.random.Generator:
        """The generator for ``purpose`` and the named element (same call, same stream)."""
        key = (self.replication, _key(purpose), *(_key(n) for n in names))
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=self.seed, spawn_key=key)))

    def uniforms(self, purpose: str, *names: str, block: int = 4096):
        """An endless iterator of U[0, 1) floats drawn in numpy blocks (``next(it)`` is cheap)."""
        from itertools import chain

        rng = self.get(purpose, *names)
        return chain.from_iterable(iter(lambda: rng.random(block).tolist(), None))
