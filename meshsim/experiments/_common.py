"""Pieces the experiment files (chaos experiments, rollout plans) share."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshsim._exceptions import ConfigError
from meshsim.config import Scenario, load_scenario, parse_scenario

__all__ = ["scenario_of"]


def scenario_of(ref: str | Mapping[str, Any], base: Path, source: str, what: str) -> Scenario:
    """The ``scenario:`` of an experiment file: a path (relative to ``base``, the file's directory) or
    an inline mapping. ``what`` names the file kind in the error, e.g. ``"experiment"``."""
    if isinstance(ref, str):
        path = Path(ref)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ConfigError(f"scenario: {ref!r}: no such file (relative paths are taken from the {what} "
                              f"file's directory, {base})", path="scenario", source=source)
        return load_scenario(path)
    return parse_scenario(ref, source=f"{source}: scenario")
