"""Durations, rates and fractions as people write them.

Durations: ``250ms``, ``1.5s``, ``2m``, ``1h``, ``500us``, ``0.2`` (seconds),
or Envoy's protobuf JSON form ``"0.250s"``. Rates: ``200/s``, ``12k/min``,
``1.5M/h``, ``200`` (per second). Fractions: ``0.5%`` or ``0.005``.

This module imports nothing of meshsim; every parser raises ``ValueError``
with a message that says what is allowed, and config/ turns that into a
``ConfigError`` with the field path.

Examples
--------
>>> parse_duration("250ms")
0.25
>>> parse_rate("12k/min")
200.0
>>> parse_fraction("0.5%")
0.005
>>> format_duration(0.25)
'250ms'
>>> proto_duration(0.25)
'0.25s'
"""

from __future__ import annotations

import math
import re

__all__ = [
    "parse_duration",
    "parse_rate",
    "parse_fraction",
    "parse_count",
    "format_duration",
    "format_rate",
    "format_fraction",
    "proto_duration",
    "DURATION_UNITS",
    "RATE_UNITS",
]

#: seconds per duration unit
DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
#: seconds per rate denominator unit
RATE_UNITS: dict[str, float] = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_MULTIPLIERS = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION_RE = re.compile(rf"^\s*({_NUM})\s*(ns|us|µs|ms|sec|min|s|m|h)?\s*$")
_COMPOUND_RE = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|h|m|s)")
_RATE_RE = re.compile(rf"^\s*({_NUM})\s*([kKmMgG]?)\s*(?:(?:/|\s+per\s+)\s*(sec|min|s|m|h))?\s*$")
_COUNT_RE = re.compile(rf"^\s*({_NUM})\s*([kKmMgG]?)\s*$")

DURATION_HELP = "a duration such as 250ms, 1.5s, 2m, 1h (a bare number means seconds)"
RATE_HELP = "a rate such as 200/s, 12k/min, 1.5M/h (a bare number means per second)"
FRACTION_HELP = "a fraction in [0, 1] such as 0.005, or a percentage such as 0.5%"


def _finite(value: float, what: str, text: object) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite {what}")
    return value


def parse_duration(value: object) -> float:
    """Seconds from ``"250ms"``, ``"1.5s"``, ``"2m"``, ``"1h30m"`` or a number of seconds.

    Raises
    ------
    ValueError
        For anything else, negative values included.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {DURATION_HELP}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            seconds = float(m.group(1)) * DURATION_UNITS[m.group(2) or "s"]
        else:
            text = value.strip()
            parts = _COMPOUND_RE.findall(text)
            if not parts or "".join(a + u for a, u in parts) != text:
                raise ValueError(f"{value!r} is not {DURATION_HELP}")
            seconds = sum(float(a) * DURATION_UNITS[u] for a, u in parts)
    else:
        raise ValueError(f"{value!r} is not {DURATION_HELP}")
    _finite(seconds, "duration", value)
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; expected {DURATION_HELP}")
    return seconds


def parse_rate(value: object) -> float:
    """Events per second from ``"200/s"``, ``"12k/min"``, ``"3 per m"`` or a number per second."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {RATE_HELP}")
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str):
        m = _RATE_RE.match(value)
        if not m:
            raise ValueError(f"{value!r} is not {RATE_HELP}")
        rate = float(m.group(1)) * _MULTIPLIERS[m.group(2)] / RATE_UNITS[m.group(3) or "s"]
    else:
        raise ValueError(f"{value!r} is not {RATE_HELP}")
    _finite(rate, "rate", value)
    if rate < 0:
        raise ValueError(f"{value!r} is negative; expected {RATE_HELP}")
    return rate


def parse_fraction(value: object) -> float:
    """A probability in [0, 1] from ``"0.5%"``, ``"0.005"`` or a number."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {FRACTION_HELP}")
    if isinstance(value, (int, float)):
        frac = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            frac = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not {FRACTION_HELP}") from None
    else:
        raise ValueError(f"{value!r} is not {FRACTION_HELP}")
    _finite(frac, "fraction", value)
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"{value!r} is outside [0, 1]; expected {FRACTION_HELP}")
    return frac


def parse_count(value: object) -> int:
    """A non-negative integer from ``12``, ``"10k"`` or ``"1.5M"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a count such as 100, 10k, 1M")
    if isinstance(value, int):
        n = float(value)
    elif isinstance(value, float):
        n = value
    elif isinstance(value, str) and (m := _COUNT_RE.match(value)):
        n = float(m.group(1)) * _MULTIPLIERS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a count such as 100, 10k, 1M")
    if not math.isfinite(n) or n < 0 or n != int(n):
        raise ValueError(f"{value!r} is not a whole non-negative count")
    return int(n)


def format_duration(seconds: float) -> str:
    """Shortest readable form: ``0.25 -> '250ms'``, ``90 -> '1.5m'``."""
    if seconds == 0:
        return "0s"
    a = abs(seconds)
    for unit, scale in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if a >= scale:
            return f"{seconds / scale:.4g}{unit}"
    return f"{seconds / 1e-9:.4g}ns"


def format_rate(per_second: float) -> str:
    """``200.0 -> '200/s'``, ``0.5 -> '30/min'``."""
    if per_second == 0 or abs(per_second) >= 1:
        if abs(per_second) >= 1e4:
            return f"{per_second / 1e3:.4g}k/s"
        return f"{per_second:.4g}/s"
    return f"{per_second * 60:.4g}/min"


def format_fraction(frac: float) -> str:
    """``0.005 -> '0.5%'``."""
    return f"{frac * 100:.4g}%"


#: The largest ``google.protobuf.Duration`` (10 000 years), in seconds.
PROTO_DURATION_MAX_S = 315_576_000_000


def proto_duration(seconds: float) -> str:
    """The proto3 JSON form of a ``google.protobuf.Duration``: ``0.25 -> "0.25s"``.

    The value is rounded to whole nanoseconds (the type's resolution) and
    written with integer arithmetic, so no float noise reaches the output
    (``0.1 + 0.2 -> "0.3s"``); trailing zeros are dropped and a whole number
    of seconds has no decimal point. Every Envoy duration field in meshsim's
    exports is written with this function.

    Raises
    ------
    ValueError
        A negative, non-finite or out-of-range (more than 10 000 years) value.

    Examples
    --------
    >>> proto_duration(0.25), proto_duration(15), proto_duration(0.1 + 0.2), proto_duration(1.5e-9)
    ('0.25s', '15s', '0.3s', '0.000000002s')
    >>> proto_duration(0)
    '0s'
    """
    if isinstance(seconds, (bool, str, bytes)):
        raise ValueError(f"{seconds!r} is not a number of seconds")
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"{seconds!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or value > PROTO_DURATION_MAX_S:
        raise ValueError(f"{seconds!r} is not a duration Envoy can hold (0 to {PROTO_DURATION_MAX_S} s)")
    ns = int(seconds) * 1_000_000_000 if isinstance(seconds, int) else round(value * 1_000_000_000)
    whole, frac = divmod(ns, 1_000_000_000)
    if frac == 0:
        return f"{whole}s"
    return f"{whole}.{frac:09d}".rstrip("0") + "s"
