"""The scenario a user writes: services, versions, traffic, network and mesh policies.

Public API
----------
load_scenario(path) -> Scenario
    Read and validate a YAML file.
parse_scenario(data, source="<scenario>") -> Scenario
    Validate a mapping.
apply_overrides(scenario, {"services.reviews.replicas": 3}) -> Scenario
    A re-validated copy with dotted-path fields replaced.
target_replicas(scenario, target) -> [(service, version, index), ...]
    The replicas a chaos fault's target selects.

Every problem is reported as one :class:`meshsim.ConfigError` whose message is
``"<source>: <field path>: <what is wrong>"``. A :class:`Scenario` that exists
has passed every cross-field check and is runnable. The file format is
described in ``docs/scenario.md``.
"""

from meshsim.config._chaos import (
    FAULT_KINDS,
    Brownout,
    Crash,
    ErrorsFault,
    Fault,
    LatencyFault,
    Partition,
    Resets,
    Slowdown,
    Target,
    target_replicas,
)
from meshsim.config._loader import apply_overrides, load_scenario, parse_scenario
from meshsim.config._scenario import (
    STEP_KINDS,
    Call,
    ClusterPolicies,
    MeshPolicy,
    Network,
    Parallel,
    ResolvedVersion,
    RoutePolicies,
    Scenario,
    ScheduleSegment,
    ServiceSpec,
    Sleep,
    Step,
    Subset,
    TrafficPolicy,
    TrafficSource,
    VersionSpec,
    Work,
)

__all__ = [
    "load_scenario",
    "parse_scenario",
    "apply_overrides",
    "Scenario",
    "ServiceSpec",
    "VersionSpec",
    "ResolvedVersion",
    "TrafficSource",
    "ScheduleSegment",
    "Network",
    "MeshPolicy",
    "TrafficPolicy",
    "Subset",
    "RoutePolicies",
    "ClusterPolicies",
    "Call",
    "Parallel",
    "Work",
    "Sleep",
    "Step",
    "STEP_KINDS",
    "Fault",
    "FAULT_KINDS",
    "Target",
    "Crash",
    "LatencyFault",
    "ErrorsFault",
    "Slowdown",
    "Partition",
    "Resets",
    "Brownout",
    "target_replicas",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("meshsim.config."):
        try:
            _obj.__module__ = "meshsim.config"
        except (AttributeError, TypeError):  # pragma: no cover - typing aliases
            pass
del _name, _obj
