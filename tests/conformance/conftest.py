"""Fixtures of the conformance tests: the real Envoy binary (skip when it is absent)."""

from __future__ import annotations

import pytest

from meshsim.envoy import EnvoyNotFoundError, find_envoy


@pytest.fixture(scope="session")
def envoy_bin():
    try:
        return find_envoy()
    except EnvoyNotFoundError as exc:
        pytest.skip(f"no envoy binary for the conformance tests: {exc}")
