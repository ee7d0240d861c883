"""``Sampler``: block draws, determinism, multiplier, ``stream()``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from meshsim import ConfigError
from meshsim.latency import Constant, Exponential, LogNormal, Mixture, Sampler, Uniform

MODELS = [
    LogNormal(p50="20ms", p99="200ms"),
    Exponential(mean="5ms"),
    Mixture(
        components=[{"weight": 0.9, "model": "10ms"}, {"weight": 0.1, "type": "uniform", "low": 0, "high": 1}]
    ),
]


def take(it, n):
    return list(itertools.islice(it, n))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.type)
def test_same_seed_same_sequence_across_blocks(model):
    a = Sampler(model, np.random.default_rng(42), block=1000)
    b = Sampler(model, np.random.default_rng(42), block=1000)
    xs = [a() for _ in range(2500)]  # crosses two block boundaries
    assert xs == [b() for _ in range(2500)]
    c = Sampler(model, np.random.default_rng(43), block=1000)
    assert xs != [c() for _ in range(2500)]
    assert all(isinstance(x, float) and x >= 0.0 for x in xs)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.type)
def test_stream_equals_sequential_sample_calls(model):
    block = 512
    expected_rng = np.random.default_rng(9)
    expected = np.concatenate([model.sample(expected_rng, block) for _ in range(3)]).tolist()
    sampler = Sampler(model, np.random.default_rng(9), block=block)
    assert take(sampler.stream(), 3 * block) == expected
    # __call__ draws the same sequence (from its own iterator on a fresh generator)
    fresh = Sampler(model, np.random.default_rng(9), block=block)
    assert [fresh() for _ in range(3 * block)] == expected


def test_multiplier_scales_values_without_changing_draws():
    model = Exponential(mean="20ms")
    raw = take(Sampler(model, 1).stream(), 200)
    s = Sampler(model, 1)
    assert s.multiplier == 1.0
    first = [s() for _ in range(100)]
    s.multiplier = 3.0
    slowed = [s() for _ in range(100)]
    assert first == raw[:100]
    assert slowed == pytest.approx([3.0 * x for x in raw[100:]], rel=1e-15)
    s.multiplier = 1.0
    assert s() == take(Sampler(model, 1).stream(), 201)[200]


def test_constant_draws_no_random_numbers():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    s = Sampler(Constant(value="20ms"), rng)
    assert [s() for _ in range(10_000)] == [0.02] * 10_000
    assert take(s.stream(), 3) == [0.02] * 3
    s.multiplier = 2.0
    assert s() == 0.04
    assert rng.bit_generator.state == state


def test_accepts_specs_and_seeds():
    s = Sampler("20ms", rng=None)
    assert s() == 0.02
    s = Sampler({"p50": "20ms", "p99": "200ms"}, rng=5)
    assert s.model == LogNormal(p50=0.02, p99=0.2)
    assert s() == Sampler(s.model, np.random.default_rng(5))()
    assert repr(s) == "Sampler(lognormal(p50=20ms, p99=200ms), multiplier=1, block=4096)"


def test_bad_arguments():
    with pytest.raises(ConfigError, match="is not a latency"):
        Sampler("soon", rng=0)
    with pytest.raises(ValueError, match="block"):
        Sampler(Uniform(low=0, high=1), rng=0, block=0)
    with pytest.raises(TypeError, match="rng"):
        Sampler(Uniform(low=0, high=1), rng="seed")  # type: ignore[arg-type]
