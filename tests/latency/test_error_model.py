"""``ErrorModel`` / ``ErrorSpec`` / ``ErrorDraw``.

Tolerance for random spacing: the error count of n requests is Binomial(n, rate);
it must lie within 4 standard deviations ``4 sqrt(n rate (1 - rate))`` of ``n rate``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from meshsim import ConfigError
from meshsim.latency import DEFAULT_ERROR_STATUS, ErrorDraw, ErrorModel, ErrorSpec, parse_errors


class Service(BaseModel):
    errors: ErrorSpec = ErrorModel(rate=0)


def test_shorthand_and_full_form():
    assert parse_errors("0.5%") == ErrorModel(rate=0.005)
    assert parse_errors(0.005) == ErrorModel(rate="0.5%")
    assert Service(errors="1%").errors == ErrorModel(rate=0.01, status=DEFAULT_ERROR_STATUS, spacing="random")
    m = Service(errors={"rate": "2%", "status": 503, "spacing": "even"}).errors
    assert (m.rate, m.status, m.spacing) == (0.02, 503, "even")
    assert repr(m) == "errors(rate=2%, status=503, spacing=even)"
    assert str(ErrorModel(rate="0.5%")) == "errors(rate=0.5%, status=500)"
    assert Service().errors.rate == 0.0


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("150%", r"errors: '150%' is not an error model: give a fraction in \[0, 1\]"),
        ("lots", r"'lots' is not an error model"),
        ({"rate": -0.1}, r"errors\.rate: -0\.1 is outside \[0, 1\]"),
        (
            {"rate": 0.1, "status": 600},
            r"errors\.status: 600 is not an HTTP error status: expected an int in 400\.\.599",
        ),
        ({"rate": 0.1, "status": 200}, r"errors\.status: 200 is not an HTTP error status"),
        ({"rate": 0.1, "status": True}, r"errors\.status: True is not an HTTP error status"),
        ({"rate": 0.1, "spacing": "uniform"}, r"errors\.spacing: Input should be 'random' or 'even'"),
        ({"rate": 0.1, "code": 503}, r"errors\.code: Extra inputs are not permitted"),
        ({"status": 503}, r"errors\.rate: Field required"),
    ],
)
def test_validation_messages(obj, message):
    with pytest.raises(ConfigError, match=message):
        parse_errors(obj)


def test_field_type_reports_pydantic_path():
    with pytest.raises(ValidationError) as info:
        Service(errors={"rate": 0.1, "status": 42})
    assert info.value.errors()[0]["loc"] == ("errors", "status")


def test_random_spacing_rate_within_binomial_tolerance():
    n, rate = 200_000, 0.01
    draw = ErrorDraw(ErrorModel(rate=rate, status=503), np.random.default_rng(11))
    outcomes = [draw() for _ in range(n)]
    assert set(outcomes) == {0, 503}
    errors = outcomes.count(503)
    assert abs(errors - n * rate) <= 4 * math.sqrt(n * rate * (1 - rate))


def test_random_spacing_depends_only_on_the_generator():
    model = ErrorModel(rate=0.3, status=502)
    draw = ErrorDraw(model, np.random.default_rng(3), block=100)
    got = [draw() for _ in range(250)]
    u = np.random.default_rng(3).random(300)[:250]  # blocks of 100 uniforms, in order
    assert got == [502 if x < 0.3 else 0 for x in u]
    again = ErrorDraw(model, 3, block=100)
    assert [again() for _ in range(250)] == got


@pytest.mark.parametrize("spacing", ["random", "even"])
def test_rates_zero_and_one(spacing):
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    never = ErrorDraw(ErrorModel(rate=0, spacing=spacing), rng)
    always = ErrorDraw(ErrorModel(rate=1, status=504, spacing=spacing), rng)
    assert [never() for _ in range(1000)] == [0] * 1000
    assert [always() for _ in range(1000)] == [504] * 1000
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("rate", ["0.5%", "1%", "0.29", "25%", "1/3", "0.001%"])
def test_even_spacing_gives_exactly_floor_n_rate(rate):
    exact = Fraction(rate.rstrip("%")) / (100 if rate.endswith("%") else 1)
    model = ErrorModel(rate=float(exact), spacing="even")
    draw = ErrorDraw(model, rng=None)
    errors = 0
    for n in range(1, 20_001):
        failed = draw() == DEFAULT_ERROR_STATUS
        errors += failed
        # request n fails exactly when floor(n * rate) increases
        assert failed == (math.floor(n * exact) > math.floor((n - 1) * exact))
        assert errors == math.floor(n * exact)


@settings(max_examples=30, deadline=None)
@given(num=st.integers(1, 2000), den=st.integers(1, 2000), big=st.booleans())
def test_even_spacing_for_any_fraction(num, den, big):
    # big=True makes the denominator exceed the precomputed-cycle limit (2**16): the accumulator path
    exact = Fraction(min(num, den), den * (131 if big else 1))
    draw = ErrorDraw(ErrorModel(rate=float(exact), spacing="even", status=429), rng=0)
    n = 5_000
    errors = sum(draw() == 429 for _ in range(n))
    assert errors == math.floor(n * exact)


def test_even_spacing_is_periodic_and_deterministic():
    a = ErrorDraw({"rate": 0.25, "status": 503, "spacing": "even"}, rng=1)
    b = ErrorDraw({"rate": 0.25, "status": 503, "spacing": "even"}, rng=2)
    xs = [a() for _ in range(12)]
    assert xs == [0, 0, 0, 503] * 3
    assert xs == [b() for _ in range(12)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="block"):
        ErrorDraw(ErrorModel(rate=0.1), rng=0, block=0)
    with pytest.raises(ConfigError):
        ErrorDraw("lots", rng=0)
    assert repr(ErrorDraw("1%", rng=0)) == "ErrorDraw(errors(rate=1%, status=500))"
