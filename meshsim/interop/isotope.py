"""Import an isotope service graph (Istio's ``isotope`` benchmark topology) as a meshsim scenario.

isotope describes a mock microservice graph in one YAML document::

    defaults: {type, errorRate, requestSize, responseSize, numReplicas, script}
    services:
      - name: a
        isEntrypoint: true
        numReplicas: 2
        errorRate: 10%
        script:
          - sleep: 10ms
          - call: b
          - call: {service: c, probability: 50, extra-header: {x-a: b}}
          - [{call: d}, {call: e}]          # a concurrent step

:func:`import_isotope` turns it into a scenario whose services behave as
isotope's own service binary runs them (``isotope/service/pkg/srv``):

* **No CPU work.** isotope's server handles each request in its own goroutine
  and only sleeps and calls: each service gets ``latency: 0ms`` and
  ``concurrency: async``, so requests never wait for a worker, and ``sleep``
  is a wait that holds nothing.
* **Deterministic error spacing.** A replica counts its requests and answers
  the N-th with **500** before running its script (no sleeps, no calls), then
  starts counting again, with ``N = 10000 // int(errorRate * 10000)`` in
  integer arithmetic. That is meshsim's ``spacing: even`` with rate ``1/N``;
  an ``errorRate`` that is not ``1/N`` (30 % gives N = 3, 33.3 %) is imported
  as isotope runs it, with a warning, and a rate below 0.01 % (N undefined:
  isotope's server divides by zero) is refused.
* **Failure propagation.** A call answered with anything but 200, or not
  answered, fails the caller: its script stops and it answers 500. A
  concurrent step waits for all its calls, then fails if any failed. This is
  meshsim's rule for required calls.
* **probability** ``P`` (an integer percentage, 0 or absent = always) makes
  the call ``P`` % of the time; ``extra-header`` becomes the call's
  ``headers``.
* **Entry points** (``isEntrypoint: true``) receive the traffic, ``rate`` in
  total (isotope's runner drives its entry point with a fortio client);
  without any, the services nobody calls do, with a warning.
* ``numReplicas`` → ``replicas``; ``cluster`` → ``zone`` (so
  ``network.cross_zone`` models the delay between clusters).

Each replica keeps its own error counter, as each isotope process does (the
simulator's ``spacing: even`` counts per replica), so correlated failures in
fan-outs come out as in isotope.

Where meshsim differs (each is said in a warning or in the file's header):
load balancing is Envoy's round robin (isotope leaves it to the platform:
kube-proxy, or the mesh under test); the incoming request's headers are
forwarded on every call (isotope forwards only tracing headers); ``type: grpc`` is imported as HTTP (isotope's server speaks
HTTP whatever the type); request and response sizes, ``namespace``,
``hostname`` and ``labels`` do not affect the simulation and are reported as
warnings; a ``sleep`` inside a concurrent step cannot be expressed next to
calls (meshsim's parallel groups hold only calls) and is refused unless the
step has only sleeps (then it is the longest one).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meshsim._exceptions import ConfigError
from meshsim.interop._importing import (
    NAME_RE,
    ImportResult,
    Warnings,
    Where,
    finish,
    listing,
    mapping,
    read_documents,
    seconds_text,
)
from meshsim.policies._model import suggest
from meshsim.units import format_rate, parse_rate

__all__ = ["import_isotope", "DEFAULT_RATE", "isotope_error_period", "parse_go_duration"]

#: Requests per second sent to the entry point(s) unless ``rate`` is given.
DEFAULT_RATE = 100.0
#: Traffic is generated for this long unless ``duration`` is given.
DEFAULT_DURATION = "60s"

_TOP_KEYS = ("apiVersion", "kind", "defaults", "services")
_DEFAULT_KEYS = ("type", "errorRate", "requestSize", "responseSize", "script", "numReplicas")
_SERVICE_KEYS = ("name", "namespace", "cluster", "type", "numReplicas", "isEntrypoint", "errorRate",
                 "responseSize", "script", "labels")
_CALL_KEYS = ("service", "hostname", "extra-header", "size", "probability")
#: keys isotope's documentation mentions but its Go structs do not read (so isotope ignores them)
_IGNORED_BY_ISOTOPE = ("numRbacPolicies", "computeUsage", "memoryUsage", "payloadSize")

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_BYTE_SIZE = re.compile(r"^\s*\d+(?:\.\d+)?\s*(?:[kKmMgGtTpP]?[iI]?[bB]?)\s*$")


def parse_go_duration(text: str) -> float:
    """Seconds from a Go ``time.ParseDuration`` string (``"10ms"``, ``"1h2m3.5s"``, ``"0"``).

    Raises
    ------
    ValueError
        For anything Go refuses, and for negative durations.

    Examples
    --------
    >>> parse_go_duration("1m30s"), parse_go_duration("250us"), parse_go_duration("0")
    (90.0, 0.00025, 0.0)
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a Go duration string such as 10ms, 1.5s, 1m30s")
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if s.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    s = s.removeprefix("+")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"{text!r} is not a Go duration such as 10ms, 1.5s, 1m30s (units ns us ms s m h)")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise ValueError(f"{text!r} is not a Go duration")
    return total


def isotope_error_period(rate: float) -> int:
    """isotope's failure period: a replica fails every N-th request, ``N = 10000 // int(rate * 10000)``.

    The arithmetic is the service's (``reqCount >= 10000/uint64(ErrorRate*10000)``,
    float64 product truncated, then integer division).

    Raises
    ------
    ValueError
        For ``0 < rate < 0.0001``: the divisor is 0 and isotope's server
        crashes on its first request.

    Examples
    --------
    >>> isotope_error_period(0.1), isotope_error_period(0.3), isotope_error_period(0.6), isotope_error_period(0.0001)
    (10, 3, 1, 10000)
    """
    k = int(rate * 10000.0)
    if k <= 0:
        raise ValueError(f"errorRate {rate!r} is below 0.01%: isotope divides by int(errorRate*10000) = 0")
    return 10000 // k


def _percentage(value: Any, where: Where) -> float:
    """isotope's ``pct.Percentage``: a number in [0, 1] or a string ``"<0-100>%"``."""
    if isinstance(value, bool) or value is None:
        raise where.error(f"{value!r} is not a percentage: give a number in [0, 1] or a string such as 10%")
    if isinstance(value, (int, float)):
        f = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            f = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise where.error(f"{value!r} is not a percentage such as 10% or 0.1") from None
    else:
        raise where.error(f"{value!r} is not a percentage: give a number in [0, 1] or a string such as 10%")
    if not math.isfinite(f) or not 0.0 <= f <= 1.0:
        raise where.error(f"{value!r} is out of range; isotope allows 0 to 1 (0% to 100%)")
    return f


def _byte_size(value: Any, where: Where) -> None:
    ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
        isinstance(value, str) and _BYTE_SIZE.match(value))
    if not ok:
        raise where.error(f"{value!r} is not a byte size such as 1024, 1 KB, 16k")


def _count(value: Any, where: Where, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 2**31 - 1:
        raise where.error(f"{value!r} is not a whole number >= {low}")
    return value


class _Reader:
    def __init__(self, path: str, warnings: Warnings) -> None:
        self.file = path
        self.w = warnings
        self.names: list[str] = []

    # ---- script
    def call(self, value: Any, where: Where) -> dict[str, Any]:
        if isinstance(value, str):
            service, out = value, value
        elif isinstance(value, Mapping):
            for key in value:
                if key in _IGNORED_BY_ISOTOPE:
                    self.w.add(where.at(key), f"{key!r} is not read by isotope (ignored)", key=f"ignored:{key}")
                elif key not in _CALL_KEYS:
                    raise where.at(str(key)).error(
                        f"unknown key {key!r} in call{suggest(str(key), _CALL_KEYS)} (allowed: {', '.join(_CALL_KEYS)})")
            service = value.get("service")
            if not isinstance(service, str) or not service:
                raise where.at("service").error(f"{service!r}: a call needs the name of the service it calls")
            call: dict[str, Any] = {"service": service}
            if "probability" in value:
                p = value["probability"]
                if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 100:
                    raise where.at("probability").error(
                        f"{p!r} is out of range; isotope takes a whole percentage 0..100 (0 or absent: always)")
                if 0 < p < 100:
                    call["probability"] = p / 100.0
            if "extra-header" in value:
                hdrs = value["extra-header"]
                if not isinstance(hdrs, Mapping) or not all(
                        isinstance(k, str) and isinstance(v, str) for k, v in hdrs.items()):
                    raise where.at("extra-header").error(f"{hdrs!r} must map header names to string values")
                if hdrs:
                    call["headers"] = dict(hdrs)
            if "hostname" in value:
                self.w.add(where.at("hostname"), "hostname is not simulated: the call goes to its service",
                           key="hostname")
            if "size" in value:
                _byte_size(value["size"], where.at("size"))
                self.w.add(where.at("size"), "request sizes are not simulated", key="requestSize")
            out = call if len(call) > 1 else service
        else:
            raise where.error(f"{value!r} is not a call: give a service name or {{service, probability, ...}}")
        if service not in self.names:
            raise where.error(
                f"cannot call undefined service {service!r}{suggest(service, self.names)} "
                f"(services: {', '.join(self.names)})")
        return {"call": out}

    def command(self, step: Any, where: Where) -> tuple[str, Any]:
        """One command: ("sleep", seconds) or ("call", meshsim step)."""
        if not isinstance(step, Mapping) or len(step) != 1:
            what = "several keys" if isinstance(step, Mapping) else repr(step)
            raise where.error(f"a command is a mapping with one key, sleep or call; got {what}")
        (key, value), = step.items()
        if key == "sleep":
            try:
                return "sleep", parse_go_duration(value)
            except ValueError as exc:
                raise where.at("sleep").error(str(exc)) from None
        if key == "call":
            return "call", self.call(value, where.at("call"))
        raise where.at(str(key)).error(f"unknown command {key!r}{suggest(str(key), ('sleep', 'call'))} "
                                       "(allowed: sleep, call, or a list of them run concurrently)")

    def script(self, value: Any, where: Where) -> list[Any]:
        if value is None:
            return []
        steps = listing(value, where, "script")
        out: list[Any] = []
        for i, step in enumerate(steps):
            at = where.at(i)
            if isinstance(step, list):
                cmds = []
                for j, sub in enumerate(step):
                    if isinstance(sub, list):
                        raise at.at(j).error("concurrent commands may not be nested (isotope's rule)")
                    cmds.append(self.command(sub, at.at(j)))
                if not cmds:
                    continue  # an empty concurrent step does nothing
                sleeps = [v for k, v in cmds if k == "sleep"]
                calls = [v for k, v in cmds if k == "call"]
                if calls and sleeps:
                    raise at.error(
                        "a concurrent step with both sleep and call cannot be imported: meshsim's parallel groups "
                        "hold only calls (the step would last max(sleep, calls)); move the sleep out of the list")
                out.append({"sleep": seconds_text(max(sleeps))} if sleeps else {"parallel": calls})
            else:
                kind, v = self.command(step, at)
                out.append({"sleep": seconds_text(v)} if kind == "sleep" else v)
        return out


def _has_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in graph:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _called(step: Any) -> list[str]:
    if "call" in step:
        c = step["call"]
        return [c if isinstance(c, str) else c["service"]]
    if "parallel" in step:
        return [n for s in step["parallel"] for n in _called(s)]
    return []


def import_isotope(
    path: str | os.PathLike[str],
    *,
    rate: float | str | None = None,
    duration: str | float = DEFAULT_DURATION,
    max_depth: int | None = None,
    name: str | None = None,
) -> ImportResult:
    """Read an isotope service-graph YAML file into a scenario (see the module docstring).

    Parameters
    ----------
    path
        The isotope file (one YAML document with ``services`` and optional
        ``defaults``).
    rate
        Requests per second sent to the entry point(s) in total, split evenly
        (a number or ``"200/s"``); default :data:`DEFAULT_RATE`.
    duration
        How long traffic is generated; default 60 s.
    max_depth
        Bound on the call depth, required when the graph has a cycle (isotope
        would recurse without end).
    name
        Scenario name; default the file's stem.

    Returns
    -------
    ImportResult
        The validated scenario mapping, its YAML text and the warnings.

    Raises
    ------
    ConfigError
        One line naming the file, the service entry, the field path, the
        value and what is allowed.
    """
    source = str(path)
    warnings = Warnings()
    docs = read_documents(path)
    top = Where(source)
    if len(docs) != 1:
        raise top.error(f"an isotope service graph is one YAML document; this file has {len(docs)}")
    doc = mapping(docs[0], top, "an isotope service graph")
    for key in doc:
        if key == "default":
            warnings.add(top.at("default"), "'default' is not read by isotope, which reads 'defaults'; ignored")
        elif key not in _TOP_KEYS:
            raise top.at(str(key)).error(
                f"unknown key {key!r}{suggest(str(key), _TOP_KEYS)} (allowed: {', '.join(_TOP_KEYS)})")
    reader = _Reader(source, warnings)

    # ---- defaults
    dwhere = top.at("defaults")
    defaults = mapping(doc.get("defaults") or {}, dwhere, "defaults")
    for key in defaults:
        if key in _IGNORED_BY_ISOTOPE:
            warnings.add(dwhere.at(key), f"{key!r} is not read by isotope (ignored)", key=f"ignored:{key}")
        elif key not in _DEFAULT_KEYS:
            raise dwhere.at(str(key)).error(
                f"unknown key {key!r}{suggest(str(key), _DEFAULT_KEYS)} (allowed: {', '.join(_DEFAULT_KEYS)})")
    d_type = defaults.get("type", "http")
    d_rate = _percentage(defaults["errorRate"], dwhere.at("errorRate")) if "errorRate" in defaults else 0.0
    d_replicas = _count(defaults["numReplicas"], dwhere.at("numReplicas"), 0) if "numReplicas" in defaults else 1
    for key, what in (("requestSize", "request"), ("responseSize", "response")):
        if key in defaults:
            _byte_size(defaults[key], dwhere.at(key))
            warnings.add(dwhere.at(key), f"{what} sizes are not simulated", key=key)

    # ---- services: names first (calls are checked against them)
    swhere = top.at("services")
    if "services" not in doc:
        raise top.error("an isotope service graph needs services: [{name: ...}, ...]")
    entries = listing(doc["services"], swhere, "services")
    if not entries:
        raise swhere.error("services is empty; give at least one service")
    for i, entry in enumerate(entries):
        at = swhere.at(i)
        entry = mapping(entry, at, "a service")
        n = entry.get("name")
        if not isinstance(n, str) or not n:
            raise at.at("name").error(f"{n!r}: every service needs a name (isotope's rule)")
        if not NAME_RE.match(n):
            raise at.at("name").error(
                f"{n!r} is not a meshsim service name (letters, digits, '-' and '_', starting and ending with a "
                "letter or digit)")
        if n in reader.names:
            raise at.at("name").error(f"service {n!r} is defined twice")
        reader.names.append(n)

    services: dict[str, Any] = {}
    entry_points: list[str] = []
    zones: dict[str, str] = {}
    for i, entry in enumerate(entries):
        sname = entry["name"]
        at = Where(source, f"services[{i}] ({sname})")
        for key in entry:
            if key in _IGNORED_BY_ISOTOPE:
                warnings.add(at.at(key), f"{key!r} is not read by isotope (ignored)", key=f"ignored:{key}")
            elif key not in _SERVICE_KEYS:
                raise at.at(str(key)).error(
                    f"unknown key {key!r}{suggest(str(key), _SERVICE_KEYS)} (allowed: {', '.join(_SERVICE_KEYS)})")
        stype = entry.get("type", d_type)
        if stype not in ("http", "grpc"):
            raise at.at("type").error(f"{stype!r} is not a service type (allowed: http, grpc)")
        if stype == "grpc":
            warnings.add(at.at("type"), "type grpc is imported as HTTP: isotope's service answers HTTP whatever "
                                        "its type", key="grpc")
        replicas = _count(entry["numReplicas"], at.at("numReplicas"), 0) if "numReplicas" in entry else d_replicas
        if replicas < 1:
            raise at.at("numReplicas").error(
                f"{replicas}: meshsim services need at least 1 replica (with 0, every call to it fails)")
        err = _percentage(entry["errorRate"], at.at("errorRate")) if "errorRate" in entry else d_rate
        if "responseSize" in entry:
            _byte_size(entry["responseSize"], at.at("responseSize"))
            warnings.add(at.at("responseSize"), "response sizes are not simulated", key="responseSize")
        is_entry = entry.get("isEntrypoint", False)
        if not isinstance(is_entry, bool):
            raise at.at("isEntrypoint").error(f"{is_entry!r} must be true or false")
        if is_entry:
            entry_points.append(sname)
        if "namespace" in entry:
            warnings.add(at.at("namespace"), "namespace is not simulated", key="namespace")
        if "labels" in entry:
            warnings.add(at.at("labels"), "labels are not simulated", key="labels")
        spec: dict[str, Any] = {}
        if replicas != 1:
            spec["replicas"] = replicas
        spec["concurrency"] = "async"
        spec["latency"] = "0ms"
        if err > 0.0:
            try:
                period = isotope_error_period(err)
            except ValueError as exc:
                raise at.at("errorRate").error(str(exc)) from None
            if abs(1.0 / period - err) > 1e-12:
                warnings.add(at.at("errorRate"),
                             f"errorRate {err:.6g} makes isotope fail every {_ordinal(period)} request "
                             f"({100.0 / period:.2f}%); imported as isotope runs it")
            spec["errors"] = {"rate": 1.0 / period, "status": 500, "spacing": "even"}
        cluster = entry.get("cluster")
        if cluster is not None:
            if isinstance(cluster, str) and NAME_RE.match(cluster):
                spec["zone"] = zones.setdefault(sname, cluster)
            else:
                warnings.add(at.at("cluster"), f"cluster {cluster!r} is not a zone name meshsim accepts; not "
                                               "simulated", key="cluster")
        script = entry["script"] if "script" in entry else defaults.get("script")
        swhere_s = at.at("script") if "script" in entry else dwhere.at("script")
        steps = reader.script(script, swhere_s)
        if steps:
            spec["script"] = steps
        services[sname] = spec

    # ---- the call graph, entry points and traffic
    graph = {s: [c for step in spec.get("script", []) for c in _called(step)] for s, spec in services.items()}
    cycle = _has_cycle(graph)
    if cycle and max_depth is None:
        raise top.at("services").error(
            f"the call graph has a cycle {' -> '.join(cycle)}: isotope would recurse without end; "
            "give a maximum call depth (--max-depth N) to import it")
    if not entry_points:
        called = {c for cs in graph.values() for c in cs}
        entry_points = [s for s in services if s not in called]
        if not entry_points:
            raise top.at("services").error("no service has isEntrypoint: true, and every service is called by "
                                           "another: mark the entry point")
        warnings.add(top.at("services"), f"no service has isEntrypoint: true; traffic goes to the services no "
                                         f"other calls: {', '.join(entry_points)}")
    try:
        total = parse_rate(DEFAULT_RATE if rate is None else rate)
    except ValueError as exc:
        raise ConfigError(f"--rate: {exc}") from None
    if total <= 0:
        raise ConfigError(f"--rate: {rate!r} must be above 0")
    each = total / len(entry_points)
    traffic = []
    for ep in entry_points:
        src: dict[str, Any] = {"name": "client" if len(entry_points) == 1 else f"client-{ep}", "to": ep,
                               "rate": format_rate(each) if _exact_rate(each) else each}
        if ep in zones:
            src["zone"] = zones[ep]
        traffic.append(src)

    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(source).stem).strip("-_") or "isotope"
    scenario: dict[str, Any] = {
        "name": name or stem,
        "description": f"isotope service graph {Path(source).name}, imported by meshsim",
        "duration": duration,
    }
    if max_depth is not None:
        scenario["max_depth"] = max_depth
    scenario["services"] = services
    scenario["traffic"] = traffic
    header = _header(source, entry_points, total, bool(zones))
    return finish(scenario, header, warnings, source=f"{source} (imported)")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _exact_rate(r: float) -> bool:
    try:
        return parse_rate(format_rate(r)) == r
    except ValueError:
        return False


def _header(source: str, entry_points: Sequence[str], total: float, has_zones: bool) -> list[str]:
    lines = [
        f"Imported by `meshsim import isotope` from {source} (an isotope service graph).",
        "",
        "isotope's runtime semantics, as this scenario reproduces them:",
        "* a service does no CPU work (isotope serves each request in its own goroutine): latency 0ms and",
        "  concurrency async, so requests never wait for a worker; `sleep` is a wait that holds nothing;",
        "* errorRate: every N-th request a replica receives is answered 500 before its script runs,",
        "  N = 10000 // int(errorRate * 10000) (errors: {rate: 1/N, spacing: even}, one counter per replica);",
        "* a call answered with anything but 200 fails the caller at once with 500 (meshsim's rule for",
        "  required calls); a concurrent step (parallel) waits for all its calls first;",
        "* probability P makes the call P % of the time; extra-header sets the call's headers;",
        f"* the entry point(s) {', '.join(entry_points)} receive {format_rate(total)} in total (isotope's fortio",
        "  client); change it with `meshsim run FILE --set traffic[0].rate=500/s`.",
    ]
    if has_zones:
        lines.append("* isotope clusters are zones: set network.cross_zone for the delay between clusters.")
    lines += [
        "Where meshsim differs: load balancing is Envoy's round robin; incoming headers are forwarded on",
        "every call (isotope forwards tracing headers only); request and response sizes are not simulated;",
        "the network between sidecars is meshsim's default (network.latency).",
        "",
    ]
    return lines
