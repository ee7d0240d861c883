"""Write the example canary inputs of the README: ``baseline.csv`` and ``canary.csv``.

Thirty minutes of raw requests for each arm of a canary rollout, one row per
request (``timestamp`` ISO 8601, ``latency_ms``, ``status``), about 100
requests a minute each. Both arms share the load swings of the service (a
slow rise in latency over the half hour and a busy spell at minutes 12-15);
the canary is 25 % slower on every request and fails 1.5 % of its requests
with 503, against 0.2 % for the baseline.

The same seed writes the same bytes::

    python examples/canary/make_examples.py            # writes next to this script
    python examples/canary/make_examples.py -o DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240501
START = pd.Timestamp("2024-05-01T12:00:00Z")
MINUTES = 30
RATE_PER_MIN = 100.0


def load_factor(minute: np.ndarray) -> np.ndarray:
    """The load both arms share: +10 % over the half hour, +30 % in a busy spell at minutes 12-15."""
    busy = np.where((minute >= 12) & (minute < 16), 1.3, 1.0)
    return (1.0 + 0.1 * minute / MINUTES) * busy


def arm(rng: np.random.Generator, *, slowdown: float, error_rate: float) -> pd.DataFrame:
    counts = rng.poisson(RATE_PER_MIN * load_factor(np.arange(MINUTES)))
    minute = np.repeat(np.arange(MINUTES), counts)
    t = np.sort(minute + rng.random(len(minute)))  # minutes since the start
    lat_ms = 80.0 * np.exp(0.5 * rng.standard_normal(len(t))) * load_factor(np.floor(t)) * slowdown
    tail = rng.random(len(t)) < 0.01  # one request in a hundred waits on a slow dependency
    lat_ms[tail] += rng.pareto(2.0, tail.sum()) * 200.0
    status = np.where(rng.random(len(t)) < error_rate, 503, 200)
    stamps = START + pd.to_timedelta(np.round(t * 60_000.0), unit="ms")
    return pd.DataFrame({
        "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z",
        "latency_ms": np.round(lat_ms, 3),
        "status": status,
    })


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    base_rng, canary_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(SEED).spawn(2))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, df in (("baseline", arm(base_rng, slowdown=1.0, error_rate=0.002)),
                     ("canary", arm(canary_rng, slowdown=1.25, error_rate=0.015))):
        df.to_csv(args.out / f"{name}.csv", index=False, lineterminator="\n")
        print(f"wrote {args.out / f'{name}.csv'} ({len(df)} requests)")


if __name__ == "__main__":
    main()
