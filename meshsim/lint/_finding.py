"""What the linter reports: :class:`Finding`, its :class:`Severity`, and the table of codes."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

__all__ = ["Severity", "Finding", "Code", "CODES"]


class Severity(str, enum.Enum):
    """How much a finding matters.

    * ``WARNING`` — the configuration does not do what it says (Envoy
      accepts it and silently does something else). ``meshsim lint --strict``
      fails on these.
    * ``INFO`` — a setting worth knowing about that may well be intended
      (a disabled route timeout, Istio's default retry policy); never fails
      ``--strict``.
    """

    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


class Code(NamedTuple):
    """One stable lint code: its title, default severity and the concept (policy module) it belongs to."""

    title: str
    severity: Severity
    concept: str


_W, _I = Severity.WARNING, Severity.INFO

#: Every code the linter reports, documented with one example each in ``docs/lint.md``.
#: Codes are stable: a retired code is never reused.
CODES: dict[str, Code] = {
    # retries (meshsim.policies.retry.lint, then cross-checks)
    "MS101": Code("unknown retry_on token", _W, "retry"),
    "MS102": Code("retry policy with no known retry_on condition", _W, "retry"),
    "MS103": Code("retriable-status-codes with no status codes", _W, "retry"),
    "MS104": Code("retriable_status_codes without the retriable-status-codes token", _W, "retry"),
    "MS105": Code("per-try timeout that retry_on does not retry", _W, "retry"),
    "MS106": Code("empty retry_budget", _W, "retry"),
    "MS107": Code("retries capped by the max_retries circuit breaker at the scenario's load", _W, "retry"),
    "MS108": Code("hedging without a per-try timeout", _W, "retry"),
    "MS109": Code("retries that cannot fit in the route timeout", _I, "retry"),
    "MS110": Code("retriable-4xx retries 409 only", _I, "retry"),
    "MS111": Code("route retry policy replaces the service's or virtual host's (no merge)", _W, "retry"),
    # timeouts (meshsim.policies.timeout.lint)
    "MS201": Code("per-try timeout at or above the route timeout", _W, "timeout"),
    "MS202": Code("route timeout disabled (0)", _I, "timeout"),
    # outlier detection and load balancing (meshsim.policies.outlier / load_balancer.lint, cross-checks)
    "MS301": Code("max_ejection_percent too low to eject a host at this host count", _W, "outlier"),
    "MS302": Code("panic threshold cancels ejection", _W, "outlier"),
    "MS303": Code("consecutive_gateway_failure detected but not enforced", _W, "outlier"),
    "MS304": Code("local-origin settings without split_external_local_origin_errors", _W, "outlier"),
    "MS305": Code("failure-percentage detection not enforced", _W, "outlier"),
    "MS306": Code("success-rate or failure-percentage detection needs more hosts than the cluster has", _W,
                  "outlier"),
    "MS310": Code("consistent hashing without a hash key", _W, "load_balancer"),
    "MS311": Code("hash key ignored by the load-balancing policy", _W, "load_balancer"),
    "MS312": Code("how many unhealthy hosts put the cluster in panic", _I, "load_balancer"),
    "MS390": Code("exported but not simulated", _I, "load_balancer"),
    # faults and rate limits (meshsim.policies.fault / rate_limit.lint)
    "MS401": Code("fault percentage unset (0 %)", _W, "fault"),
    "MS402": Code("fault percentage written as 0 %", _I, "fault"),
    "MS403": Code("fault delay below 1 ms", _W, "fault"),
    "MS404": Code("max_active_faults 0", _W, "fault"),
    "MS411": Code("local rate limit filter_enabled unset (0 %)", _W, "rate_limit"),
    "MS412": Code("local rate limit filter_enforced unset (0 %)", _W, "rate_limit"),
    "MS413": Code("local rate limit filter_enabled or filter_enforced written as 0 %", _I, "rate_limit"),
    "MS414": Code("local rate limit status below 400", _W, "rate_limit"),
    # clusters and subsets
    "MS501": Code("version (subset) cluster policies that no route uses", _W, "routing"),
}


@dataclass(frozen=True)
class Finding:
    """A configuration Envoy accepts that does not do what its author meant.

    Attributes
    ----------
    code
        Stable code (``"MS301"``), see :data:`CODES` and ``docs/lint.md``.
    severity
        :class:`Severity`.
    file
        The input file (``"<scenario>"`` for a scenario built in Python).
    path
        Field path in the input's own spelling
        (``mesh.backend.outlier_detection.max_ejection_percent``,
        ``spec.http[0].retries.retryOn``,
        ``static_resources.clusters[0].outlier_detection.max_ejection_percent``).
    value
        The offending value as it reads in the input (``"10 (default)"``,
        ``"gateway-errors"``, ``"unset"``).
    message
        What Envoy will actually do, and what to change.
    effect
        The effect measured in a short simulation, or an estimate, when
        meshsim can tell; ``None`` otherwise.
    document
        For multi-document YAML (Istio): the document's number, counted from
        1, and its kind and name (``"2 (DestinationRule reviews)"``); ``None``
        for single-document inputs.
    """

    code: str
    severity: Severity
    file: str
    path: str
    value: str
    message: str
    effect: str | None = None
    document: str | None = None

    @property
    def where(self) -> str:
        """``file`` plus the document for multi-document inputs."""
        return f"{self.file} (document {self.document})" if self.document else self.file

    def __str__(self) -> str:
        text = f"{self.where}: {self.path} = {self.value}: {self.code} {self.message}"
        if self.effect:
            text += f" [{self.effect}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``severity`` as its string)."""
        out = asdict(self)
        out["severity"] = str(self.severity)
        return out
