"""meshsim: a workbench for service-mesh policies (simulate, judge, export)."""

from meshsim._exceptions import (
    CanaryError,
    ConfigError,
    ExportError,
    MeshsimError,
    MeshsimWarning,
    SimulationError,
)

__version__ = "0.1.0"

__all__ = [
    "MeshsimError",
    "ConfigError",
    "SimulationError",
    "ExportError",
    "CanaryError",
    "MeshsimWarning",
    "__version__",
]
