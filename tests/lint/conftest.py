"""Fixtures of the lint tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def write(tmp_path):
    """Write YAML documents (or text) to a file in tmp_path and return its path."""
    import yaml

    def _write(name: str, *docs: Any) -> str:
        path = tmp_path / name
        if len(docs) == 1 and isinstance(docs[0], str):
            path.write_text(docs[0])
        else:
            path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
        return str(path)

    return _write
