"""`meshsim lint` and the lint step of `meshsim run`: output, --strict, --json, --no-measure, exit codes."""

from __future__ import annotations

import json

import pytest
import yaml
from lint_cases import BASE, bootstrap, destination_rule
from typer.testing import CliRunner

from meshsim.cli import app

runner = CliRunner()


def _scenario_text(mesh: dict | None) -> str:
    data = {**BASE, "services": {**BASE["services"]}}
    if mesh is not None:
        data["mesh"] = {"api": mesh}
    return yaml.safe_dump(data, sort_keys=False)


TRAP = _scenario_text({"outlier_detection": {"consecutive_5xx": 5, "interval": "1s"}})
CLEAN = _scenario_text({"retries": {"retry_on": "5xx", "num_retries": 2}, "timeout": "2s"})
NOTE_ONLY = _scenario_text({"timeout": 0})


def _one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_findings_are_printed_with_file_path_value_and_measured_effect(write) -> None:
    path = write("trap.yaml", TRAP)
    result = runner.invoke(app, ["lint", path])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == f"{path}: mesh.api.outlier_detection.max_ejection_percent = 10 (default)"
    assert out[1].startswith("  MS301 warning: api: ejecting one of 5 hosts is 20 %")
    assert out[2].startswith("  measured: probe: 5 hosts, 1 failing every request")
    assert out[-1] == "1 warning, 0 notes in 1 file"


def test_no_measure_skips_the_simulation(write) -> None:
    result = runner.invoke(app, ["lint", write("trap.yaml", TRAP), "--no-measure"])
    assert result.exit_code == 0 and "measured" not in result.stdout and "MS301" in result.stdout


def test_strict_fails_on_warnings_only(write) -> None:
    assert runner.invoke(app, ["lint", "--strict", "--no-measure", write("trap.yaml", TRAP)]).exit_code == 1
    assert runner.invoke(app, ["lint", "--strict", write("clean.yaml", CLEAN)]).exit_code == 0
    note = runner.invoke(app, ["lint", "--strict", write("note.yaml", NOTE_ONLY)])
    assert note.exit_code == 0 and "MS202 info" in note.stdout and "0 warnings, 1 note" in note.stdout


def test_clean_input_says_so(write) -> None:
    result = runner.invoke(app, ["lint", write("clean.yaml", CLEAN)])
    assert result.exit_code == 0 and result.stdout == "0 warnings, 0 notes in 1 file\n"


def test_json_output(write) -> None:
    result = runner.invoke(app, ["lint", "--json", "--no-measure", write("trap.yaml", TRAP),
                                 write("dr.yaml", destination_rule({"outlierDetection": {}}))])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["warnings"] == 2 and doc["infos"] == 0
    first, second = doc["findings"]
    assert first["code"] == "MS301" and first["severity"] == "warning" and first["document"] is None
    assert first["path"] == "mesh.api.outlier_detection.max_ejection_percent" and first["effect"] is None
    assert second["document"] == "1, DestinationRule api" and second["file"].endswith("dr.yaml")


def test_envoy_bootstraps_in_json_are_linted(tmp_path) -> None:
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(bootstrap(cluster={"outlier_detection": {"consecutive_5xx": 5}})))
    result = runner.invoke(app, ["lint", "--strict", str(path)])
    assert result.exit_code == 1 and "static_resources.clusters[0].outlier_detection.max_ejection_percent" in result.stdout


@pytest.mark.parametrize(("name", "text", "fragments"), [
    ("missing.yaml", None, ("missing.yaml", "no such file")),
    ("list.yaml", "- a\n- b\n", ("list.yaml", "not a meshsim scenario")),
    ("broken.yaml", "a: [1,\n", ("broken.yaml", "YAML syntax error")),
    ("bad.yaml", _scenario_text({"retries": {"retry_on": "5xx,gateway-errors"}}), ("bad.yaml", "gateway-error")),
    ("refused.yaml", yaml.safe_dump(bootstrap(route={"retry_policy": {
        "retry_on": "5xx", "retry_back_off": {"base_interval": "1s", "max_interval": "0.1s"}}})),
     ("refused.yaml", "retry_back_off", "refuses")),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, name, text, fragments) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    _one_error_line(runner.invoke(app, ["lint", str(path)]), *fragments)


def test_run_prints_lint_warnings_once_before_running(write) -> None:
    path = write("trap.yaml", TRAP)
    result = runner.invoke(app, ["run", path, "--quiet"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    # the lint finding, and not the engine's run-time warning saying the same ("can never eject a host")
    (line,) = lines
    assert line.startswith(f"warning: {path}: mesh.api.outlier_detection.max_ejection_percent = 10 (default): MS301 ")
    assert "can never eject" not in result.stderr and "measured" not in result.stderr
