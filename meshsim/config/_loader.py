"""Reading scenarios: YAML files, plain mappings, and dotted-path overrides."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from meshsim._exceptions import ConfigError
from meshsim._yaml import load_yaml, read_text
from meshsim.config._errors import _vocabulary, config_error, format_path, parse_path
from meshsim.config._scenario import Scenario
from meshsim.policies._model import suggest

__all__ = ["load_scenario", "parse_scenario", "apply_overrides"]

_TOP_KEYS = "name, duration, services, traffic"


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as a mapping (as loaded from YAML or JSON).

    Parameters
    ----------
    data
        The scenario's keys (``name``, ``duration``, ``services``, ``traffic``,
        ...); see ``docs/scenario.md``.
    source
        Where it came from, used as the prefix of error messages.

    Returns
    -------
    Scenario
        Validated, with every cross-field check passed.

    Raises
    ------
    ConfigError
        The first problem, as ``"<source>: <field path>: <message>"``.

    Examples
    --------
    >>> scn = parse_scenario({"name": "one", "duration": "10s",
    ...                       "services": {"api": {"latency": "20ms"}},
    ...                       "traffic": [{"to": "api", "rate": "50/s"}]})
    >>> scn.traffic[0].rate, scn.traffic[0].name
    (50.0, 'traffic-0')
    >>> parse_scenario({"name": "one", "duration": "10s", "services": {"api": {"latency": "20ms"}},
    ...                 "traffic": [{"to": "apj", "rate": "50/s"}]})
    Traceback (most recent call last):
    ...
    meshsim._exceptions.ConfigError: <scenario>: traffic[0].to: 'apj' is not a service; did you mean 'api'? (services: api)
    """
    if isinstance(data, Scenario):
        return data
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
            f"a scenario is a mapping with keys such as {_TOP_KEYS}; the top level is {kind}", source=source
        )
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, data, source) from None
    scenario._source = source
    return scenario


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a YAML scenario file.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    Scenario

    Raises
    ------
    ConfigError
        Missing or unreadable file, YAML syntax error (with line and column),
        duplicate key, empty file, or any invalid field (with its path).
    """
    source = str(path)
    text = read_text(path, "a scenario file")
    data = load_yaml(text, source)
    if data is None:
        raise ConfigError(f"the file is empty; a scenario needs at least {_TOP_KEYS}", source=source)
    return parse_scenario(data, source=source)


# --------------------------------------------------------------------------------------------------
# overrides


def _override_value(value: Any) -> Any:
    """Strings that look like YAML flow collections (``[a, b]``, ``{p50: 1ms}``) are parsed."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


_SYNONYMS = {"routes": ("http",), "uri": ("path",), "destinations": ("route",), "route": ("destinations",)}


def _alternatives(key: str) -> tuple[str, ...]:
    """Other spellings of ``key`` that may be in the input (``circuit_breakers`` <-> ``connectionPool``)."""
    synonyms = _vocabulary()[1]
    out = list(_SYNONYMS.get(key, ())) + list(synonyms.get(key, ()))
    out += [field for field, alts in synonyms.items() if key in alts]
    return tuple(dict.fromkeys(a for a in out if a != key))


# below these keys, a missing key is a name (service, version, ...), not a field to create
_NAMED = ("services", "versions", "mesh")


def _locate(node: Any, key: str | int, dotted: str, *, create: bool) -> str | int:
    """The key or index to use for ``key`` in ``node`` (synonyms and source names followed)."""
    if isinstance(node, list):
        if isinstance(key, int):
            if not 0 <= key < len(node):
                raise ConfigError(f"overrides: {dotted!r}: index {key} is out of range (0..{len(node) - 1})")
            return key
        names = [
            (item.get("name") or f"traffic-{i}") if isinstance(item, Mapping) else None
            for i, item in enumerate(node)
        ]
        if key in names:
            return names.index(key)
        known = [n for n in names if n]
        raise ConfigError(f"overrides: {dotted!r}: no item named {key!r}{suggest(key, known)}")
    assert isinstance(node, dict)
    if key in node:
        return key
    if isinstance(key, int) and str(key) in node:
        return str(key)
    for alt in _alternatives(str(key)):
        if alt in node:
            return alt
    if create:
        return str(key)
    raise ConfigError(
        f"overrides: {dotted!r}: there is no {key!r}{suggest(str(key), [str(k) for k in node])}"
        f" (have: {', '.join(map(str, node))})"
    )


def apply_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """A copy of ``scenario`` with dotted-path fields replaced, re-validated.

    Parameters
    ----------
    scenario
        A validated scenario.
    overrides
        ``{"services.reviews.replicas": 3, "traffic[0].rate": "300/s",
        "seed": "9"}``. Values may be strings as typed on a command line
        (units included; ``[a, b]`` and ``{p50: 1ms}`` are read as YAML) or
        Python objects. List items are addressed by index (``traffic[0]``,
        ``traffic.0``) or, for traffic, by source name (``traffic.users``).

    Returns
    -------
    Scenario
        A new scenario; the original is unchanged.

    Raises
    ------
    ConfigError
        A path that does not exist (naming it), or a value the scenario
        refuses.

    Examples
    --------
    >>> scn = parse_scenario({"name": "one", "duration": "10s",
    ...                       "services": {"api": {"latency": "20ms"}},
    ...                       "traffic": [{"to": "api", "rate": "50/s"}]})
    >>> apply_overrides(scn, {"services.api.replicas": "3", "seed": 9}).services["api"].replicas
    3
    """
    if scenario._raw is None:
        raise ConfigError(
            "overrides: this scenario was built without validation (model_construct); parse it first"
        )
    data = copy.deepcopy(scenario._raw)
    for dotted, value in overrides.items():
        dotted = str(dotted)
        try:
            parts = [int(p) if isinstance(p, str) and p.isdigit() else p for p in parse_path(dotted)]
        except ValueError as exc:
            raise ConfigError(
                f"overrides: {dotted!r} is not a field path such as services.api.replicas ({exc})"
            ) from None
        node: Any = data
        for i, key in enumerate(parts):
            final = i == len(parts) - 1
            # under mesh, missing names (services, versions) are created: validation checks them
            named = i > 0 and parts[i - 1] in _NAMED and parts[0] != "mesh"
            if not isinstance(node, (dict, list)):
                where = format_path(parts[:i])
                raise ConfigError(
                    f"overrides: {dotted!r}: {where} is {node!r}, not a mapping; override {where} as a whole"
                )
            k: Any = _locate(node, key, dotted, create=final or (isinstance(key, str) and not named))
            container: Any = node
            if final:
                container[k] = _override_value(value)
                break
            child = container[k] if isinstance(container, list) or k in container else None
            if child is None:
                child = {}
            elif isinstance(child, Mapping) and not isinstance(child, dict):
                child = dict(child)
            container[k] = child
            node = child
    return parse_scenario(data, source=scenario.source)
