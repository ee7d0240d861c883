"""Where the exported proxies listen and where their upstream replicas are.

Two endpoint modes:

* ``"dns"`` — as on Kubernetes: each replica is a pod of a StatefulSet
  ``<service>-<version>`` (``<service>`` for a service without versions)
  governed by a headless Service ``<service>``, so its DNS name is
  ``<service>-<version>-<i>.<service>.<namespace>.svc.cluster.local`` and
  clusters resolve it with ``STRICT_DNS``. Every sidecar has Istio's ports:
  admin 15000, outbound 15001, inbound 15006, the application on the service
  port (80 by default) of its own pod.
* ``"static"`` — for local runs on one machine: every replica gets its own
  loopback port (:func:`endpoint_ports`, from 20000 up) and every sidecar its
  own block of four (:func:`sidecar_ports`, from 15000 up), so that any set of
  the exported proxies and stand-in upstreams can run side by side.

Every address in an exported bootstrap is on loopback (``127.0.0.1``),
including the listeners: the files are meant to be validated and run locally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshsim._exceptions import ConfigError, ExportError

if TYPE_CHECKING:
    from meshsim.config import Scenario

__all__ = [
    "ENDPOINT_MODES",
    "LOOPBACK",
    "DEFAULT_NAMESPACE",
    "DEFAULT_SERVICE_PORT",
    "DEFAULT_ENDPOINT_BASE_PORT",
    "DEFAULT_SIDECAR_BASE_PORT",
    "SidecarPorts",
    "endpoint_ports",
    "sidecar_ports",
    "replica_host",
    "check_namespace",
]

#: accepted values of ``endpoints``
ENDPOINT_MODES = ("dns", "static")
#: the only address the exported bootstraps use for listeners and static endpoints
LOOPBACK = "127.0.0.1"
#: Kubernetes namespace of the services when none is given
DEFAULT_NAMESPACE = "default"
#: the port every meshsim service serves on (Istio cluster names ``outbound|80|...``)
DEFAULT_SERVICE_PORT = 80
#: first replica port in ``"static"`` mode
DEFAULT_ENDPOINT_BASE_PORT = 20000
#: first sidecar port in ``"static"`` mode (four per sidecar)
DEFAULT_SIDECAR_BASE_PORT = 15000

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class SidecarPorts:
    """The ports of one exported proxy (all on ``127.0.0.1``).

    Attributes
    ----------
    admin
        Envoy's admin interface (``/stats``, ``/clusters``, ...).
    outbound
        The outbound listener: the application sends its calls here (with
        the destination service as ``Host``).
    inbound
        The inbound listener (written when the service has a local rate limit).
    app
        Where the inbound listener forwards to: the application itself.
    """

    admin: int
    outbound: int
    inbound: int
    app: int


def check_namespace(namespace: str) -> str:
    """``namespace`` if it is a Kubernetes namespace name (an RFC 1123 label).

    Raises
    ------
    ConfigError
        Anything else.
    """
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        raise ConfigError(
            f"namespace {namespace!r} is not a Kubernetes namespace name: use 1-63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return namespace


def _check_mode(endpoints: str) -> str:
    if endpoints not in ENDPOINT_MODES:
        raise ConfigError(f"endpoints must be one of {', '.join(ENDPOINT_MODES)}; got {endpoints!r}")
    return endpoints


def _check_port(port: int, what: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{what} must be a port number in 1..65535; got {port!r}")
    return port


def dns_label(name: str) -> str:
    """A meshsim name as a DNS label: lower case, ``_`` as ``-``.

    Examples
    --------
    >>> dns_label("Reviews_v2")
    'reviews-v2'
    """
    return name.lower().replace("_", "-")


def replica_host(service: str, version: str | None, replica: int, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The Kubernetes DNS name of one replica (a StatefulSet pod behind a headless Service).

    Parameters
    ----------
    service
        The service.
    version
        The version, or ``None``/``"default"`` for a service without versions.
    replica
        The replica index, from 0.
    namespace
        The Kubernetes namespace.

    Examples
    --------
    >>> replica_host("reviews", "v2", 0)
    'reviews-v2-0.reviews.default.svc.cluster.local'
    >>> replica_host("ratings", "default", 1, "shop")
    'ratings-1.ratings.shop.svc.cluster.local'
    """
    svc = dns_label(service)
    pod = svc if version in (None, "default") else f"{svc}-{dns_label(version)}"
    return f"{pod}-{replica}.{svc}.{namespace}.svc.cluster.local"


def endpoint_ports(
    scenario: Scenario, *, base_port: int = DEFAULT_ENDPOINT_BASE_PORT
) -> dict[tuple[str, str, int], int]:
    """The loopback port of every replica in ``"static"`` endpoint mode.

    Parameters
    ----------
    scenario
        The scenario.
    base_port
        The first port (default 20000).

    Returns
    -------
    dict
        ``(service, version, replica) -> port``: services in the scenario's
        order, versions in written order (``"default"`` for a service
        without versions), replicas from 0; consecutive ports from
        ``base_port``. The same scenario always gives the same mapping, and
        adding a service at the end leaves the other ports unchanged.

    Raises
    ------
    ConfigError
        ``base_port`` is not a port, or the ports would go past 65535.

    Examples
    --------
    >>> from meshsim.config import parse_scenario
    >>> scn = parse_scenario({"name": "x", "duration": 1, "traffic": [{"to": "a", "rate": 1}],
    ...     "services": {"a": {"latency": "1ms", "replicas": 2},
    ...                  "b": {"latency": "1ms", "versions": {"v1": {}, "v2": {}}}}})
    >>> endpoint_ports(scn)
    {('a', 'default', 0): 20000, ('a', 'default', 1): 20001, ('b', 'v1', 0): 20002, ('b', 'v2', 0): 20003}
    """
    _check_port(base_port, "base_port")
    out: dict[tuple[str, str, int], int] = {}
    port = base_port
    for sname, spec in scenario.services.items():
        for vname, rv in spec.resolved_versions(sname).items():
            for i in range(rv.replicas):
                out[(sname, vname, i)] = port
                port += 1
    if port - 1 > 65535:
        raise ConfigError(
            f"the scenario has {len(out)} replicas: ports from {base_port} would go past 65535; give a lower base port"
        )
    return out


def sidecar_ports(
    scenario: Scenario,
    names: list[str],
    *,
    endpoints: str = "static",
    base_port: int = DEFAULT_SIDECAR_BASE_PORT,
    service_port: int = DEFAULT_SERVICE_PORT,
    endpoint_base_port: int = DEFAULT_ENDPOINT_BASE_PORT,
) -> dict[str, SidecarPorts]:
    """The ports of each exported proxy.

    Parameters
    ----------
    scenario
        The scenario (to keep the static sidecar ports clear of the replica ports).
    names
        The proxies, in export order (:func:`meshsim.envoy.sidecar_names`).
    endpoints
        ``"dns"``: every proxy has Istio's ports (admin 15000, outbound 15001,
        inbound 15006, application ``service_port``), as each runs in its own
        pod. ``"static"``: proxy ``k`` gets ``base_port + 4k`` (admin) to
        ``base_port + 4k + 3`` (application).

    Raises
    ------
    ConfigError
        A bad mode or port.
    ExportError
        The static sidecar ports would overlap the replica ports.
    """
    _check_mode(endpoints)
    _check_port(base_port, "base_port")
    _check_port(service_port, "service_port")
    if endpoints == "dns":
        return {n: SidecarPorts(admin=15000, outbound=15001, inbound=15006, app=service_port) for n in names}
    out = {}
    for k, name in enumerate(names):
        first = base_port + 4 * k
        out[name] = SidecarPorts(admin=first, outbound=first + 1, inbound=first + 2, app=first + 3)
    last = base_port + 4 * len(names) - 1
    replicas = endpoint_ports(scenario, base_port=endpoint_base_port)
    lo, hi = endpoint_base_port, endpoint_base_port + len(replicas) - 1
    if last > 65535 or (replicas and base_port <= hi and lo <= last):
        raise ExportError(
            f"sidecar ports {base_port}..{last} overlap the replica ports {lo}..{hi} or pass 65535; "
            "choose other base ports"
        )
    return out
