"""Loading scenario files: YAML errors with line and column, file problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshsim import ConfigError
from meshsim.config import load_scenario


def write(tmp_path: Path, text: str, name: str = "scn.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_full_file_loads(tmp_path: Path, full_yaml: str) -> None:
    p = write(tmp_path, full_yaml)
    s = load_scenario(p)
    assert s.name == "bookinfo"
    assert s.source == str(p)
    assert load_scenario(str(p)) == s


def test_field_errors_carry_the_file_name(tmp_path: Path, full_yaml: str) -> None:
    p = write(tmp_path, full_yaml.replace("rate: 200/s", "rate: 0/s"))
    with pytest.raises(ConfigError) as info:
        load_scenario(p)
    assert str(info.value).startswith(f"{p}: traffic[0].rate: '0/s'")


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nduration: 10s\nservices:\n  a: {latency: 1ms\ntraffic: []\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: line 5, column 8: YAML syntax error")
    assert "\n" not in msg


def test_yaml_indentation_error(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\n  duration: 10s\n")
    with pytest.raises(ConfigError, match=r"line 2, column 11: YAML syntax error"):
        load_scenario(p)


def test_tab_indentation_error(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nservices:\n\ta: 1\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: YAML syntax error"):
        load_scenario(p)


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nservices:\n  a: {latency: 1ms}\n  a: {latency: 2ms}\n")
    with pytest.raises(ConfigError, match=r"line 4, column 3: duplicate key 'a' \(first at line 3\)"):
        load_scenario(p)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="the file is empty"):
        load_scenario(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a str"), ("42\n", "a int")]
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"the top level is {kind}"):
        load_scenario(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_scenario(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_scenario(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_scenario(p)


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(
        ConfigError, match="line 1, column 7: unsupported YAML: could not determine a constructor"
    ):
        load_scenario(p)
