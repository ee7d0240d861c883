"""The traps Envoy's validator lets through: configurations Envoy accepts that do not do what they say.

Public API
----------
lint_scenario(scenario, measure=False, seed=None) -> list[Finding]
    A meshsim scenario's mesh policies.
lint_envoy(config, file="<envoy>", measure=False, seed=1) -> list[Finding]
    An Envoy v3 bootstrap (a parsed mapping).
lint_istio(documents) -> list[Finding]
    Istio VirtualService / DestinationRule documents.
lint_files(paths, measure=True, seed=None) -> list[Finding]
    Files of any of the three kinds (told apart by their content).
CODES
    Code -> (title, severity, concept), documented in ``docs/lint.md``.

Checks that belong to one concept live in that policy module's ``lint()``
(``meshsim.policies.retry.lint``, ``timeout``, ``outlier``, ``load_balancer``,
``fault``, ``rate_limit``); this package reads each input into those
policies, runs them, and adds the checks that need more than one policy or a
host count or a load (:mod:`meshsim.lint._checks`, the retry-breaker estimate
in :mod:`meshsim.lint._load`). With ``measure``, short simulations show the
effect (:mod:`meshsim.lint._measure`); the engine is imported only then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from meshsim._exceptions import ConfigError
from meshsim._yaml import read_text, yaml_error
from meshsim.lint._finding import CODES, Code, Finding, Severity
from meshsim.lint._istio import ISTIO_KINDS, is_istio
from meshsim.lint._istio import lint_istio as _lint_istio
from meshsim.lint._scenario import lint_scenario

__all__ = [
    "Finding",
    "Severity",
    "Code",
    "CODES",
    "lint_scenario",
    "lint_envoy",
    "lint_istio",
    "lint_files",
    "runtime_warning_covered",
]


def lint_envoy(config: Mapping[str, Any], *, file: str = "<envoy>", measure: bool = False,
               seed: int = 1) -> list[Finding]:
    """Lint an Envoy v3 bootstrap given as a parsed mapping.

    Parameters
    ----------
    config
        The bootstrap (``static_resources`` with listeners and clusters).
    file
        Name used in findings.
    measure
        Run a short probe simulation for each outlier finding whose cluster
        lists its endpoints.
    seed
        Seed of the probes.
    """
    from dataclasses import replace

    from meshsim.lint._envoy import lint_envoy as _lint

    findings, probes = _lint(config, file=file)
    if measure and probes:
        from meshsim.lint._measure import measure_probe

        effects = {id(p.finding): measure_probe(p, seed=seed) for p in probes}
        findings = [replace(f, effect=effects[id(f)]) if id(f) in effects else f for f in findings]
    return findings


def lint_istio(documents: Iterable[Mapping[str, Any]], *, file: str = "<istio>") -> list[Finding]:
    """Lint Istio ``VirtualService`` and ``DestinationRule`` documents (parsed mappings) of one file."""
    docs = [(file, i + 1, d) for i, d in enumerate(documents) if is_istio(d) and d.get("kind") in ISTIO_KINDS]
    return _lint_istio(docs)


def _load_documents(path: Path) -> list[Any]:
    import yaml

    source = str(path)
    if not path.exists():
        raise ConfigError("no such file", source=source)
    if not path.is_file():
        raise ConfigError("not a file", source=source)
    text = read_text(path)
    if path.suffix.lower() == ".json":
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"JSON syntax error: {exc}", source=source) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    # a Kubernetes List (what `kubectl get ... -o yaml` prints) is read item by item
    out: list[Any] = []
    for d in docs:
        if isinstance(d, Mapping) and d.get("kind") == "List" and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def _kind(docs: list[Any]) -> str:
    from meshsim.lint._envoy import is_bootstrap

    if docs and all(isinstance(d, Mapping) for d in docs) and any(is_istio(d) for d in docs):
        return "istio"
    if len(docs) == 1 and is_bootstrap(docs[0]):
        return "envoy"
    if len(docs) == 1 and isinstance(docs[0], Mapping) and "services" in docs[0]:
        return "scenario"
    return ""


def lint_files(paths: Sequence[str | os.PathLike[str]], *, measure: bool = True,
               seed: int | None = None) -> list[Finding]:
    """Lint files: meshsim scenarios, Envoy bootstraps (YAML or JSON) and Istio resources.

    Each file's kind is told from its content. All Istio files are linted
    together (a DestinationRule subset is checked against every
    VirtualService given).

    Raises
    ------
    ConfigError
        A file that cannot be read, is none of the three kinds, or holds a
        value Envoy (or Istio) would refuse; one line naming the file.
    """
    findings: list[Finding] = []
    istio: list[tuple[str, int, Any]] = []
    for p in paths:
        path = Path(p)
        docs = _load_documents(path)
        kind = _kind(docs)
        if kind == "scenario":
            from meshsim.config import load_scenario

            findings += lint_scenario(load_scenario(path), measure=measure, seed=seed)
        elif kind == "envoy":
            findings += lint_envoy(docs[0], file=str(path), measure=measure, seed=1 if seed is None else seed)
        elif kind == "istio":
            istio += [(str(path), i + 1, d) for i, d in enumerate(docs)
                      if is_istio(d) and d.get("kind") in ISTIO_KINDS]
        else:
            raise ConfigError(
                "not a meshsim scenario (services, traffic), an Envoy bootstrap (static_resources) or Istio "
                "resources (apiVersion networking.istio.io/..., kind VirtualService or DestinationRule)",
                source=str(path),
            )
    if istio:
        findings += _lint_istio(istio)
    return findings


#: a lint code -> the field its run-time twin (a warning the engine emits itself) names
_RUNTIME_TWINS = {"MS301": "max_ejection_percent"}


def runtime_warning_covered(message: str, findings: Iterable[Finding]) -> bool:
    """Whether a warning the simulator emitted says what one of ``findings`` already says.

    The engine warns at run time about a ``max_ejection_percent`` that can
    never eject (``mesh.<service>...max_ejection_percent: ...``); ``meshsim
    run`` prints the lint finding instead of repeating it.
    """
    for f in findings:
        field = _RUNTIME_TWINS.get(f.code)
        if field is None:
            continue
        service = f.path.split(".")[1] if f.path.startswith("mesh.") else ""
        if field in message and service and message.startswith(f"mesh.{service}"):
            return True
    return False


for _obj in (Finding, Severity, Code, lint_scenario):
    _obj.__module__ = "meshsim.lint"
del _obj
