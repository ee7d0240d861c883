"""Value forms shared by the policy modules' Istio readers and writers.

Istio's API differs from Envoy's in two value types that every ``to_istio``
function writes:

* **Durations** are Go duration strings (``"250ms"``, ``"1.5s"``, ``"5m"``),
  and Istio's validation accepts only whole milliseconds of at least 1 ms
  (``agent.ValidateDuration``). :func:`istio_duration` writes the nearest such
  value; the exporter compares what istiod would make of it with the policy
  and reports any difference.
* **Percentages** are ``networking.v1alpha3.Percent`` ``{value: <double>}``,
  which istiod turns into Envoy's ``FractionalPercent`` as
  ``numerator = uint32(value * 10000)`` over ``MILLION``, truncating the
  product. :func:`istio_percent` finds the double that comes back as exactly
  the wanted numerator (``0.0003 * 10000`` is ``2.9999999999999996``, so
  ``0.0003`` would come back as 2 per million, not 3).

This module imports nothing of meshsim.
"""

from __future__ import annotations

import math

__all__ = ["INT32_MAX", "istio_duration", "istio_percent", "per_million"]

#: Istio's API keeps counts in ``int32`` fields: the largest value a DestinationRule can hold.
INT32_MAX = 2_147_483_647

_DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


def istio_duration(seconds: float) -> str:
    """The Go duration string Istio accepts for ``seconds``, in whole milliseconds (at least 1 ms).

    A value that is not a whole number of milliseconds is rounded to the
    nearest one (Istio's validation refuses finer durations); the caller
    reports the change.

    Examples
    --------
    >>> istio_duration(0.25), istio_duration(1.5), istio_duration(10), istio_duration(300), istio_duration(7200)
    ('250ms', '1.5s', '10s', '5m', '2h')
    >>> istio_duration(0.0004), istio_duration(61.25)
    ('1ms', '61.25s')
    """
    ms = max(1, round(float(seconds) * 1000))
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000}h"
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    if ms < 1000:
        return f"{ms}ms"
    return f"{ms // 1000}.{ms % 1000:03d}".rstrip("0") + "s"


def per_million(numerator: int, denominator: str) -> int:
    """An Envoy ``FractionalPercent`` as parts per million (the denominator istiod writes).

    Examples
    --------
    >>> per_million(5, "HUNDRED"), per_million(5, "TEN_THOUSAND"), per_million(5, "MILLION")
    (50000, 500, 5)
    """
    return numerator * (1_000_000 // _DENOMINATORS[denominator])


def istio_percent(numerator: int, denominator: str = "HUNDRED") -> float:
    """The ``Percent.value`` that istiod translates to exactly ``numerator / denominator``.

    istiod computes ``uint32(value * 10000)`` over ``MILLION``; the smallest
    double whose product truncates to the wanted parts per million is returned
    (the plain quotient when it already does).

    Examples
    --------
    >>> istio_percent(10), istio_percent(5, "TEN_THOUSAND"), istio_percent(1, "MILLION")
    (10.0, 0.05, 0.0001)
    >>> v = istio_percent(3, "MILLION"); int(v * 10000), v > 0.0003
    (3, True)
    """
    want = per_million(numerator, denominator)
    value = want / 10_000
    while int(value * 10_000) < want:
        value = math.nextafter(value, math.inf)
    return value
