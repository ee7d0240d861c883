"""``meshsim export istio`` and ``meshsim import istio``: exit codes, messages, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from meshsim.cli import app
from meshsim.config import load_scenario

runner = CliRunner()

VS = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
    timeout: 2s
"""


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_export_writes_one_file_per_service(tmp_path: Path) -> None:
    code, out, err = run("export", "istio", "scenarios/bookinfo.yaml", "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert "wrote 1 file" in out and "reviews.yaml" in out
    assert "warning: productpage, details, ratings: no mesh: entry" in err
    docs = list(yaml.safe_load_all((tmp_path / "out" / "reviews.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["VirtualService", "DestinationRule"]


def test_export_all_services_and_namespace(tmp_path: Path) -> None:
    code, out, err = run("export", "istio", "scenarios/bookinfo.yaml", "-o", str(tmp_path / "o"),
                         "--all-services", "--namespace", "bookinfo", "-q")
    assert (code, out, err) == (0, "", "")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "details.yaml", "productpage.yaml", "ratings.yaml", "reviews.yaml"]
    vs = next(yaml.safe_load_all((tmp_path / "o" / "details.yaml").read_text()))
    assert vs["metadata"]["namespace"] == "bookinfo"


def test_export_strict_writes_nothing_and_exits_1(tmp_path: Path) -> None:
    code, _, err = run("export", "istio", "scenarios/outlier-ejection.yaml", "-o", str(tmp_path / "o"), "--strict")
    assert code == 1
    assert "warning: backend: outlier_detection: enforcing_success_rate 100" in err
    assert "error: 2 warnings with --strict: nothing written" in err
    assert not (tmp_path / "o").exists()


def test_export_of_a_bad_scenario_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration: 1s\nservices: {a: {latency: 1ms}}\ntraffic: [{to: b, rate: 1/s}]\n")
    code, _, err = run("export", "istio", str(bad), "-o", str(tmp_path / "o"))
    assert code == 2 and err.startswith(f"error: {bad}: traffic[0].to:") and err.count("\n") == 1
    code, _, err = run("export", "istio", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o"))
    assert code == 2 and "no such file" in err


def test_import_writes_a_scenario_that_loads(tmp_path: Path) -> None:
    src = tmp_path / "vs.yaml"
    src.write_text(VS)
    out = tmp_path / "scn.yaml"
    code, stdout, err = run("import", "istio", str(src), "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}: 1 service, mesh policies for ratings" in stdout
    scn = load_scenario(out)
    assert scn.mesh_for("ratings").route_policies(None).timeout.timeout == 2.0
    assert out.read_text().startswith("# Imported from Istio by `meshsim import istio`")


def test_import_with_topology_and_merge(tmp_path: Path) -> None:
    src = tmp_path / "vs.yaml"
    src.write_text(VS)
    out = tmp_path / "scn.yaml"
    code, _, err = run("import", "istio", str(src), "--topology", "scenarios/bookinfo.yaml", "--merge", "-o", str(out))
    assert code == 0, err
    scn = load_scenario(out)
    assert list(scn.services) == ["productpage", "details", "reviews", "ratings"]
    assert [r.name for r in scn.mesh_for("reviews").routes] == ["jason", "canary"]  # kept by --merge
    code, _, err = run("import", "istio", str(src), "--merge", "-o", str(out))
    assert code == 2 and "--merge needs --topology" in err


def test_bad_istio_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "vs.yaml"
    src.write_text("---\n" + VS.replace("timeout: 2s", "timeout: 2s\n    retries: {attempts: 2, retryOn: 5xxx}"))
    out = tmp_path / "scn.yaml"
    code, _, err = run("import", "istio", str(src), "-o", str(out))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {src}: document 1 (VirtualService ratings): spec.http[0].retries.retryOn: ")
    assert "'5xxx' is not an Envoy retry condition; did you mean '5xx'?; Istio's validation refuses it" in err
    assert not out.exists()
    out.write_text("keep me\n")
    code, _, _ = run("import", "istio", str(src), "-o", str(out))
    assert code == 2 and out.read_text() == "keep me\n"
    code, _, err = run("import", "istio", str(tmp_path / "nope.yaml"), "-o", str(out))
    assert code == 2 and "nope.yaml: no such file" in err
