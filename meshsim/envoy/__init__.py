"""Export a scenario's mesh policies as Envoy v3 static bootstraps, and check them with a real Envoy.

Public API
----------
export_envoy(scenario, endpoints="dns"|"static", namespace="default") -> dict[str, dict]
    One bootstrap per proxy (``ingress``, then one sidecar per service),
    assembled from the Envoy fragments of :mod:`meshsim.policies`; settings
    Envoy cannot carry as simulated are reported as :class:`Unsupported`.
write_bootstraps(outdir, bootstraps, fmt="yaml"|"json") -> list[Path]
    The files ``<proxy>.yaml``, all or nothing, byte-identical for the same input.
validate(path_or_config) -> ValidationResult, validate_many(configs) -> list
    ``envoy --mode validate`` on each (in parallel for several).
endpoint_ports(scenario) -> {(service, version, replica): port}
    The loopback port of each replica in ``"static"`` mode; :func:`sidecar_ports`
    gives each proxy's admin, outbound, inbound and application ports.

Examples
--------
::

    from meshsim.config import load_scenario
    from meshsim.envoy import export_envoy, validate_many, write_bootstraps

    bootstraps = export_envoy(load_scenario("scenarios/retry-storm.yaml"), endpoints="static")
    paths = write_bootstraps("out/envoy", bootstraps)
    assert all(validate_many(paths))
"""

from meshsim.envoy._bootstrap import INGRESS, Unsupported, export_envoy, sidecar_names
from meshsim.envoy._ports import (
    DEFAULT_ENDPOINT_BASE_PORT,
    DEFAULT_NAMESPACE,
    DEFAULT_SERVICE_PORT,
    DEFAULT_SIDECAR_BASE_PORT,
    ENDPOINT_MODES,
    SidecarPorts,
    endpoint_ports,
    replica_host,
    sidecar_ports,
)
from meshsim.envoy._validate import EnvoyNotFoundError, ValidationResult, find_envoy, validate, validate_many
from meshsim.envoy._write import FORMATS, dumps, write_bootstraps

__all__ = [
    "export_envoy",
    "write_bootstraps",
    "dumps",
    "validate",
    "validate_many",
    "find_envoy",
    "ValidationResult",
    "EnvoyNotFoundError",
    "Unsupported",
    "sidecar_names",
    "sidecar_ports",
    "endpoint_ports",
    "replica_host",
    "SidecarPorts",
    "INGRESS",
    "ENDPOINT_MODES",
    "FORMATS",
    "DEFAULT_NAMESPACE",
    "DEFAULT_SERVICE_PORT",
    "DEFAULT_ENDPOINT_BASE_PORT",
    "DEFAULT_SIDECAR_BASE_PORT",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("meshsim.envoy."):
        try:
            _obj.__module__ = "meshsim.envoy"
        except (AttributeError, TypeError):  # pragma: no cover - constants
            pass
del _name, _obj
