"""The one error hierarchy of meshsim.

::

    MeshsimError
    ├── ConfigError (ValueError)      a scenario, judge config or argument is invalid
    ├── SimulationError (RuntimeError) the engine reached a state it cannot continue from
    ├── ExportError                    a policy cannot be written as Envoy/Istio config
    └── CanaryError                    canary input cannot be judged

Every error a user can cause is a ``ConfigError`` whose message names the field
path, the offending value and what is allowed; the CLI prints it on one line
and exits with code 2.
"""

from __future__ import annotations

__all__ = ["MeshsimError", "ConfigError", "SimulationError", "ExportError", "CanaryError", "MeshsimWarning"]


class MeshsimError(Exception):
    """Root of every error meshsim raises on purpose."""


class ConfigError(MeshsimError, ValueError):
    """Invalid user input: scenario file, judge config, metric file or argument.

    Parameters
    ----------
    message
        One line: field path, value, what is allowed.
    path
        Dotted field path (``services.reviews.latency.p99``), or ``""``.
    source
        File name the input came from, when known.
    """

    def __init__(self, message: str, *, path: str = "", source: str = "") -> None:
        self.path = path
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + message)


class SimulationError(MeshsimError, RuntimeError):
    """The engine reached a state it cannot continue from."""


class ExportError(MeshsimError):
    """A policy cannot be expressed in the requested output format."""


class CanaryError(MeshsimError):
    """Canary input cannot be judged (as opposed to a verdict of INCONCLUSIVE)."""


class MeshsimWarning(UserWarning):
    """A configuration that runs, but does not do what its author most likely meant.

    Examples: a ``max_ejection_percent`` too low to ever eject a host at the
    cluster's size. ``meshsim run`` prints these on stderr; the summary lists
    them under ``warnings``.
    """
