"""docs/lint.md documents every code with an example; every code the policy modules and the linter emit is in the table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshsim.lint import CODES, Severity

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8")


def _sections() -> dict[str, tuple[str, str]]:
    out = {}
    for code, title, body in re.findall(r"^### (MS\d{3}) (.*?)\n(.*?)(?=^### |^## |\Z)", DOC, flags=re.S | re.M):
        out[code] = (title, body)
    return out


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_a_section_with_its_severity_and_an_example(code: str) -> None:
    sections = _sections()
    assert code in sections, f"docs/lint.md has no section for {code}"
    title, body = sections[code]
    expected = "note" if CODES[code].severity is Severity.INFO else "warning"
    assert f"({expected}" in title
    assert "```" in body and code in body.split("```")[1], "one example showing the code"


def test_the_docs_list_no_unknown_code() -> None:
    assert set(_sections()) == set(CODES)


def test_every_emitted_code_is_in_the_table() -> None:
    emitted = set()
    for path in [*(ROOT / "meshsim" / "policies").glob("*.py"), *(ROOT / "meshsim" / "lint").glob("*.py")]:
        emitted |= set(re.findall(r'"(MS\d{3})"', path.read_text(encoding="utf-8")))
    assert emitted <= set(CODES), emitted - set(CODES)
    assert set(CODES) <= emitted


@pytest.mark.parametrize("name", ["meshsim.lint._views", "meshsim.lint._load", "meshsim.lint._checks",
                                  "meshsim.policies._model"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
