"""The examples in docs/scenario.md are valid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshsim.config import parse_scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenario.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _wrap_fragment(data: dict[str, Any]) -> dict[str, Any]:
    """Complete a documented fragment into a runnable scenario."""
    scn: dict[str, Any] = {"name": "doc", "duration": "60s", **data}
    services = scn.setdefault("services", {})
    services.setdefault("productpage", {"latency": "1ms"})
    for name in ("details", "ratings"):
        services.setdefault(name, {"latency": "1ms"})
    if "reviews" not in services:
        services["reviews"] = {"latency": "1ms", "versions": {"v1": {}, "v2": {}, "v3": {}}}
    scn.setdefault("traffic", [{"to": "productpage", "rate": "1/s"}])
    return scn


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_examples_parse(block: str) -> None:
    data = yaml.safe_load(block)
    if block.startswith("# fragment"):
        data = _wrap_fragment(data)
    parse_scenario(data, source="docs/scenario.md")
