"""Tests of the meshsim command line (typer CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import meshsim
import meshsim.sim
from meshsim.cli import app

runner = CliRunner()

# `meshsim run -o` writes through meshsim.sim.write_run (meshsim/sim/_output.py), which
# meshsim/sim/__init__.py does not export yet. Remove this marker once it does.
needs_write_run = pytest.mark.skipif(
    not hasattr(meshsim.sim, "write_run"), reason="meshsim.sim does not export write_run yet"
)

GOOD = """\
name: t
duration: 10s
services: {a: {latency: 10ms}}
traffic: [{to: a, rate: 10/s}]
"""
UNKNOWN_KEY = GOOD.replace("{latency: 10ms}", "{latency: 10ms, colour: red}")
ZERO_RATE = GOOD.replace("rate: 10/s", "rate: 0/s")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in {"good": GOOD, "unknown_key": UNKNOWN_KEY, "zero_rate": ZERO_RATE}.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text)
    return out


def _error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.strip()]


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result)
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- root


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"meshsim {meshsim.__version__}"


def test_no_arguments_prints_help():
    result = runner.invoke(app, [])
    assert "Usage" in result.output and "validate" in result.output


# --------------------------------------------------------------------------- validate


def test_validate_good_file(files):
    result = runner.invoke(app, ["validate", str(files["good"])])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok  {files['good']}  (1 service, 1 source)\n"


@pytest.mark.parametrize(("name", "fragment"), [("unknown_key", "colour"), ("zero_rate", "rate")])
def test_validate_bad_file_is_one_line_and_exit_2(files, name, fragment):
    result = runner.invoke(app, ["validate", str(files[name])])
    _assert_one_line_error(result, f"{name}.yaml", fragment)


def test_validate_reports_every_file(files, tmp_path):
    missing = tmp_path / "missing.yaml"
    args = ["validate", str(files["good"]), str(files["unknown_key"]), str(missing), str(files["zero_rate"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout.startswith(f"ok  {files['good']}")
    errors = _error_lines(result)
    assert len(errors) == 3 and all(ln.startswith("error: ") for ln in errors)
    assert "unknown_key.yaml" in errors[0] and f"{missing}: no such file" in errors[1]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- run: errors


def test_run_bad_scenario_is_one_line_and_exit_2(files, tmp_path):
    result = runner.invoke(app, ["run", str(files["unknown_key"]), "-o", str(tmp_path / "out")])
    _assert_one_line_error(result, "colour")
    assert not (tmp_path / "out").exists()


def test_run_missing_file(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    _assert_one_line_error(result, "nope.yaml: no such file")


@pytest.mark.parametrize("args", [["--record", "everything"], ["--format", "xlsx"], ["--replications", "0"],
                                  ["--seed", "-1"]])
def test_bad_option_values_exit_2(files, args):
    result = runner.invoke(app, ["run", str(files["good"]), *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.output and "Traceback" not in result.output


def test_engine_errors_become_one_line(files, monkeypatch):
    def fail(scn, progress=None):
        raise meshsim.SimulationError("replica pool exhausted\n  at t=3.2s")

    monkeypatch.setattr(meshsim.sim, "run", fail)
    result = runner.invoke(app, ["run", str(files["good"])])
    _assert_one_line_error(result, "error: replica pool exhausted; at t=3.2s")


def test_unexpected_exceptions_are_not_swallowed(files, monkeypatch):
    def bug(scn, progress=None):
        raise KeyError("bug")

    monkeypatch.setattr(meshsim.sim, "run", bug)
    result = runner.invoke(app, ["run", str(files["good"])])
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)


def test_progress_bar_is_fed_on_a_terminal_and_off_otherwise(files, monkeypatch):
    seen = []

    class Result:
        summary = {"scenario": "t"}

    def fake_run(scn, progress=None):
        seen.append(progress)
        if progress is not None:
            for f in (0.0, 0.5, 1.0):
                progress(f)
        return Result()

    monkeypatch.setattr(meshsim.sim, "run", fake_run)
    assert runner.invoke(app, ["run", str(files["good"])]).exit_code == 0
    assert seen == [None]  # stderr is not a terminal

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats the streams as a terminal
    assert runner.invoke(app, ["run", str(files["good"])]).exit_code == 0
    assert callable(seen[-1])
    assert runner.invoke(app, ["run", str(files["good"]), "--quiet"]).exit_code == 0
    assert seen[-1] is None


# --------------------------------------------------------------------------- run: the real engine


def test_run_prints_the_summary(files):
    result = runner.invoke(app, ["run", str(files["good"]), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("t · seed 3 · 1 replication")
    assert "end-to-end" in result.stdout


def test_quiet_prints_nothing(files):
    result = runner.invoke(app, ["run", str(files["good"]), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output == ""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_run_writes_the_run_directory_byte_identically(files, tmp_path, fmt):
    dirs = [tmp_path / "one", tmp_path / "two"]
    for d in dirs:
        result = runner.invoke(app, ["run", str(files["good"]), "--seed", "11", "-o", str(d), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert f"wrote 4 files to {d}" in result.stdout
    names = sorted(p.name for p in dirs[0].iterdir())
    assert names == sorted([f"requests.{fmt}", f"attempts.{fmt}", f"timeseries.{fmt}", "summary.json"])
    for name in names:
        assert (dirs[0] / name).read_bytes() == (dirs[1] / name).read_bytes(), name
    summary = json.loads((dirs[0] / "summary.json").read_text())
    assert summary["seed"] == 11 and summary["end_to_end"]["requests"] > 0


def test_overrides_reach_the_run(files, tmp_path):
    out = tmp_path / "out"
    args = ["run", str(files["good"]), "--seed", "5", "--replications", "2", "--record", "summary", "-o", str(out),
            "--format", "csv", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "timeseries.csv"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 5 and summary["replications"] == 2


def test_set_overrides_fields_with_yaml_values(files, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(files["good"]), "-q", "--set", "duration=2s",
                                 "--set", "services.a.replicas=3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["duration_s"] == 2.0
    assert summary["services"]["a"]["versions"]["default"]["replicas"] == 3


@pytest.mark.parametrize("arg, fragment", [("nonsense", "expected PATH=VALUE"),
                                           ("services.a.replicaz=2", "replicaz"),
                                           ("services.a.replicas=-1", "replicas")])
def test_bad_set_is_one_line_and_exit_2(files, arg, fragment):
    result = runner.invoke(app, ["run", str(files["good"]), "--set", arg])
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output


def test_run_warns_on_stderr_about_an_outlier_policy_that_can_never_eject(tmp_path):
    path = tmp_path / "trap.yaml"
    path.write_text(
        "name: trap\nduration: 2s\nservices:\n  a: {latency: 1ms, replicas: 3, workers: 4}\n"
        "traffic: [{to: a, rate: 10/s}]\nmesh:\n  a: {outlier_detection: {consecutive_5xx: 5}}\n")
    result = runner.invoke(app, ["run", str(path), "-q"])
    assert result.exit_code == 0
    # the lint finding (MS301), printed before the run; the engine's own warning saying the same is not repeated
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"warning: {path}: mesh.a.outlier_detection.max_ejection_percent = 10 (default): MS301 ")
    assert "one of 3 hosts" in line
