"""Tests of meshsim.report sweep and capacity reports: curves and heatmaps rendered headless, the files written."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from meshsim.cli import app  # noqa: E402
from meshsim.experiments.capacity import CapacityResult, parse_slo  # noqa: E402
from meshsim.report import (  # noqa: E402
    build_capacity_report,
    build_sweep_report,
    capacity_figure,
    slo_heatmap_figure,
    sweep_curves_figure,
    write_sweep_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
SLO = parse_slo("p99<=50ms")


def _table(rates=("100/s",)) -> pd.DataFrame:
    """A sweep table by hand: replicas 1..5 (x rates), end to end and two services; p99 falls with replicas."""
    rows, point = [], 0
    for rate in rates:
        load = float(rate.split("/")[0]) / 100
        for replicas in range(1, 6):
            for scope, service, scale in (("end_to_end", "", 1.0), ("service", "web", 0.4), ("service", "api", 0.6)):
                p99 = scale * (0.02 + 0.2 * load / replicas ** 2)
                util = math.nan if scope == "end_to_end" else min(0.99, scale * load / replicas)
                row = {"point": point, "replicas": replicas, "rate": rate, "scope": scope, "service": service,
                       "version": "", "replications": 3, "requests": 100.0}
                for name, v in (("rps", 100.0), ("success_rate", 1.0), ("mean_s", p99 / 3), ("p50_s", p99 / 4),
                                ("p90_s", p99 / 2), ("p99_s", p99), ("utilization", util)):
                    row[name], row[f"{name}_low"], row[f"{name}_high"] = v, 0.9 * v, 1.1 * v
                rows.append(row)
            point += 1
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.lines]


def _vlines(ax) -> list[str]:
    """Labels of the vertical marker lines (answer, knee, decision)."""
    return [line.get_label() for line in ax.lines if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]


def test_curves_per_scope_with_target_answer_and_knee():
    fig = sweep_curves_figure(_table(), slos=[SLO])
    ax, ax_u = fig.axes
    assert ax.get_ylabel() == "p99 latency (ms)" and ax_u.get_ylabel() == "utilization"
    assert ax_u.get_xlabel() == "replicas"
    labels = _labels(ax)
    assert labels[:3] == ["end to end", "web", "api"]
    assert "SLO p99<=50ms" in labels
    # p99 end to end = 20 + 200/r^2 ms: 220, 70, 42.2, ... -> the bound (x1.1, 46.4) first <= 50 at r=3
    assert any(lb == "answer: replicas=3" for lb in _vlines(ax))
    assert any(lb.startswith("knee: replicas=") for lb in _vlines(ax))
    assert [line.get_label() for line in ax_u.lines][:2] == ["web", "api"]
    assert len(ax.collections) >= 3  # a CI band per scope


def test_two_fields_give_one_curve_per_value_and_a_heatmap():
    table = _table(rates=("100/s", "200/s"))
    fig = sweep_curves_figure(table, slos=[SLO])
    ax = fig.axes[0]
    assert _labels(ax)[:2] == ["rate=100/s", "rate=200/s"]
    heat = slo_heatmap_figure(table, slos=[SLO])
    hax = heat.axes[0]
    assert hax.get_xlabel() == "replicas" and hax.get_ylabel() == "rate"
    cells = [t for t in hax.texts if t.get_gid() == "cell"]
    assert len(cells) == 10
    ok = hax.images[0].get_array()
    assert ok.shape == (2, 5) and ok[0, 4] == 1 and ok[0, 0] == 0 and ok[1, 0] == 0
    # without an SLO: coloured by the metric, with a colour bar
    plain = slo_heatmap_figure(table)
    assert len(plain.axes) == 2 and "p99" in plain.axes[1].get_ylabel()
    assert slo_heatmap_figure(_table()) is None


def test_sweep_report_html_is_self_contained_and_deterministic(tmp_path):
    table = _table(rates=("100/s", "200/s"))
    rep = build_sweep_report(table, slos=[SLO])
    assert list(rep.figures) == ["capacity-curves.png", "slo-heatmap.png"]
    assert all(png.startswith(PNG) for png in rep.figures.values())
    html = rep.html()
    assert html.count('src="data:image/png;base64,') == 2 and "<script" not in html
    assert build_sweep_report(table, slos=[SLO]).figures == rep.figures
    paths = write_sweep_report(table, tmp_path, slos=[SLO])
    assert {p.name for p in paths} >= {"sweep.md", "sweep.html", "capacity-curves.png"}
    assert "![" in (tmp_path / "sweep.md").read_text() and (tmp_path / "plots" / "slo-heatmap.png").is_file()


def _capacity_result() -> CapacityResult:
    ev = pd.DataFrame({
        "index": [0, 1, 3, 5, 7], "value": [1, 2, 4, 6, 8],
        "phase": ["search", "search", "search", "knee", "search"], "replications": [3, 6, 12, 3, 3],
        "verdict": ["fail", "fail", "pass", "pass", "pass"],
        "p99": [0.3, 0.08, 0.045, 0.03, 0.025], "p99_bound": [0.32, 0.09, 0.049, 0.033, 0.027],
        "busiest": ["api"] * 5, "busiest_utilization": [0.98, 0.6, 0.3, 0.2, 0.15]})
    return CapacityResult(vary="services.api.replicas", values=list(range(1, 9)), slos=[SLO], scope="end_to_end",
                          maximize=False, confidence=0.95, answer=4, evaluations=ev, search_runs=27, knee_runs=3,
                          grid_runs=96, min_replications=3, max_replications=12, knee_value=2,
                          knee_utilization=0.6, utilization={"api": 0.3})


def test_capacity_figure_marks_target_answer_knee_and_verdicts():
    fig = capacity_figure(_capacity_result())
    ax, ax_u = fig.axes
    assert ax.get_ylabel() == "p99 (ms)" and ax_u.get_ylabel() == "utilization"
    assert ax_u.get_xlabel() == "services.api.replicas"
    handles, labels = ax.get_legend_handles_labels()
    assert {"pass", "fail", "SLO p99<=50ms", "answer: 4", "knee: 2"} <= set(labels)
    assert "undecided" not in labels
    assert ax.lines[-3].get_ydata()[0] == pytest.approx(50.0)  # the target, in ms


def test_capacity_report():
    rep = build_capacity_report(_capacity_result())
    md = rep.markdown()
    assert "services.api.replicas" in md and ": 4." in md and "p99 (ms)" in md
    assert list(rep.figures) == ["capacity.png"] and rep.html().count("data:image/png;base64,") == 1


def _tiny_scenario(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "seed": 5, "duration": "1s", "warmup": "0.2s", "record": "summary",
        "network": {"latency": 0},
        "services": {"station": {"replicas": 1, "workers": 2, "latency": {"type": "exponential", "mean": "1ms"}}},
        "traffic": [{"name": "poisson", "to": "station", "rate": "1k/s"}]}), encoding="utf-8")
    return path


def test_cli_sweep_and_capacity_reports(tmp_path):
    scn = _tiny_scenario(tmp_path)
    res = CliRunner().invoke(app, ["sweep", str(scn), "--set", "services.station.replicas=1..3",
                                   "--replications", "2", "--workers", "1", "-q", "-o", str(tmp_path / "t.csv"),
                                   "--slo", "p99<=5ms", "--report", str(tmp_path / "sweep")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "sweep" / "sweep.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and (tmp_path / "t.csv").is_file()
    res = CliRunner().invoke(app, ["capacity", str(scn), "--slo", "p99<=5ms", "--vary",
                                   "services.station.replicas=1..4", "--min-replications", "2",
                                   "--max-replications", "4", "--knee-points", "0", "--workers", "1", "-q",
                                   "--report", str(tmp_path / "cap")])
    assert res.exit_code in (0, 1), res.output
    assert (tmp_path / "cap" / "capacity.md").is_file() and (tmp_path / "cap" / "plots" / "capacity.png").is_file()
    assert "data:image/png;base64," in (tmp_path / "cap" / "capacity.html").read_text()
