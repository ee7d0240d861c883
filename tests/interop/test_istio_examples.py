"""The worked example of the README: examples/istio/ imports into Bookinfo, runs, and goes back out."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

from meshsim.config import apply_overrides, load_scenario
from meshsim.interop.istio import export_istio, import_istio, write_istio, write_scenario
from meshsim.sim import simulate

EXAMPLES = sorted(glob.glob("examples/istio/*.yaml"))


def test_the_examples_exist() -> None:
    assert [Path(p).name for p in EXAMPLES] == ["ratings.yaml", "reviews.yaml"]


@pytest.fixture(scope="module")
def bookinfo_istio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = import_istio(EXAMPLES, topology="scenarios/bookinfo.yaml")
    assert res.warnings == [
        "examples/istio/ratings.yaml: document 2 (DestinationRule ratings): spec.trafficPolicy.tls: kept for "
        "export, not simulated: TLS is not simulated"]
    return write_scenario(tmp_path_factory.mktemp("wk") / "bookinfo-istio.yaml", res)


def test_the_examples_import_into_bookinfo_and_run(bookinfo_istio: Path) -> None:
    scn = load_scenario(bookinfo_istio)
    reviews = scn.mesh_for("reviews")
    assert [r.name for r in reviews.routes] == ["jason", "canary"]
    assert reviews.route_policies(0).timeout.timeout == 0  # the README's point: no route timeout
    assert reviews.route_policies(1).timeout.timeout == 2.0
    assert scn.mesh_for("ratings").route_policies(0).fault.delay.fixed_delay == 7.0
    short = apply_overrides(scn, {"duration": "3s", "warmup": 0, "drain": "20s", "record": "summary"})
    stats = simulate(short).summary["stats"]
    assert stats["ratings|default"]["fault.delays_injected"] > 0  # jason's calls to ratings are delayed
    assert stats["reviews|v1"]["upstream_rq_total"] > 0


def test_the_adjusted_scenario_goes_back_out_with_the_kept_fields(bookinfo_istio: Path, tmp_path: Path) -> None:
    text = bookinfo_istio.read_text()
    # the README's edit: the jason route of reviews gets a 1 s timeout
    jason = text.index("    - name: jason")
    edited = text[:jason] + re.sub(r"timeout: 0s", "timeout: 1s", text[jason:], count=1)
    adjusted = tmp_path / "adjusted.yaml"
    adjusted.write_text(edited)
    scn = load_scenario(adjusted)
    assert scn.mesh_for("reviews").route_policies(0).timeout.timeout == 1.0
    paths = write_istio(tmp_path / "istio", export_istio(scn))
    assert [p.name for p in paths] == ["productpage.yaml", "details.yaml", "reviews.yaml", "ratings.yaml"]
    assert "    timeout: 1s\n" in (tmp_path / "istio" / "reviews.yaml").read_text()
    assert "tls: {mode: ISTIO_MUTUAL}" in (tmp_path / "istio" / "ratings.yaml").read_text()


def test_the_readme_section_uses_these_files_and_commands() -> None:
    readme = Path("README.md").read_text()
    section = readme[readme.index("## From your mesh to meshsim and back"):]
    section = section[: section.index("\n## ", 5)]
    for command in ("meshsim import istio examples/istio/*.yaml --topology scenarios/bookinfo.yaml -o "
                    "bookinfo-istio.yaml", "meshsim run bookinfo-istio.yaml",
                    "meshsim export istio bookinfo-istio.yaml -o istio",
                    "meshsim export envoy bookinfo-istio.yaml -o envoy --validate"):
        assert command in section, command
