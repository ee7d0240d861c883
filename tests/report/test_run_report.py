"""Tests of meshsim.report run reports: plots rendered headless (Agg) and checked by content, the HTML and Markdown files."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from meshsim.cli import app  # noqa: E402
from meshsim.config import apply_overrides, load_scenario  # noqa: E402
from meshsim.report import (  # noqa: E402
    build_run_report,
    latency_cdf_figure,
    percentiles_figure,
    read_run_dir,
    resilience_figure,
    service_graph_figure,
    success_figure,
    throughput_figure,
    write_run_report,
)
from meshsim.sim import run, write_run  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bookinfo_dir(tmp_path_factory):
    """A short Bookinfo run written as a CSV run directory (no chaos)."""
    scn = apply_overrides(load_scenario("scenarios/bookinfo.yaml"), {"seed": 7, "duration": "4s", "warmup": "1s"})
    result = run(scn)
    out = tmp_path_factory.mktemp("bookinfo") / "run"
    write_run(out, tables=result.tables(), summary=result.summary, fmt="csv")
    return out


@pytest.fixture(scope="module")
def outage():
    """Zone b crashes from 4 s to 8 s: retries, ejections and a fault window."""
    scn = apply_overrides(load_scenario("scenarios/zone-outage.yaml"),
                          {"duration": "10s", "warmup": "1s", "chaos.0.start": "4s", "chaos.0.duration": "4s"})
    return run(scn)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.lines]


def _fault_spans(ax) -> list:
    return [p for p in ax.patches if (p.get_gid() or "").startswith("fault:")]


# ---------------------------------------------------------------------------- plots
def test_service_graph_has_the_call_edges_with_rates(bookinfo_dir):
    fig = service_graph_figure(bookinfo_dir)
    (ax,) = fig.axes
    gids = {t.get_gid() for t in ax.texts if t.get_gid()}
    edges = {g for g in gids if g.startswith("edge:")}
    assert edges == {"edge:users->productpage", "edge:productpage->details", "edge:productpage->reviews",
                     "edge:reviews->ratings"}
    assert {g for g in gids if g.startswith("node:")} == {"node:users", "node:productpage", "node:details",
                                                          "node:reviews", "node:ratings"}
    labels = [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("edge:") and t.get_text()]
    assert len(labels) == 4 and all(re.fullmatch(r"[\d.,]+/s · [\d.]+% err", s) for s in labels)
    # layered: callers left of callees
    x = {t.get_gid()[5:]: t.get_position()[0] for t in ax.texts if (t.get_gid() or "").startswith("node:")}
    assert x["users"] < x["productpage"] < x["reviews"] < x["ratings"]
    assert x["details"] == x["reviews"]
    assert "service graph" in ax.get_title()


def test_latency_cdfs_one_panel_per_service_one_line_per_version(bookinfo_dir):
    fig = latency_cdf_figure(bookinfo_dir)
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(by_title) == {"latency CDF: end to end", "latency CDF: productpage", "latency CDF: details",
                             "latency CDF: reviews", "latency CDF: ratings"}
    reviews = by_title["latency CDF: reviews"]
    assert [lab.split(" ")[0] for lab in _labels(reviews)] == ["v1", "v2", "v3"]
    assert reviews.get_xlabel() == "latency (ms)" and reviews.get_xscale() == "log"
    y = reviews.lines[0].get_ydata()
    assert y[0] == 0.0 and y[-1] == 1.0


def test_percentiles_over_time_with_the_fault_window_shaded(outage, bookinfo_dir):
    fig = percentiles_figure(outage, "catalog")
    (ax,) = fig.axes
    assert _labels(ax)[:2] == ["catalog p50", "catalog p99"]
    assert ax.get_ylabel() == "latency (ms)" and ax.get_xlabel() == "time (s)"
    (span,) = _fault_spans(ax)
    assert span.get_gid() == "fault:zone-b-outage"
    x0, x1 = sorted(span.get_xy()[:, 0]) if hasattr(span.get_xy(), "shape") else (
        span.get_x(), span.get_x() + span.get_width())
    assert min(x0, x1) == pytest.approx(4.0) and max(x0, x1) == pytest.approx(8.0)
    ax2 = percentiles_figure(bookinfo_dir, "reviews").axes[0]
    assert _labels(ax2) == ["v1 p50", "v1 p99", "v2 p50", "v2 p99", "v3 p50", "v3 p99"]
    assert _fault_spans(ax2) == []


def test_success_rate_and_throughput_series(outage, bookinfo_dir):
    ax = success_figure(bookinfo_dir).axes[0]
    assert _labels(ax) == ["end to end", "productpage", "details", "reviews v1", "reviews v2", "reviews v3",
                           "ratings"]
    assert ax.get_ylabel() == "success rate (%)"
    ax = throughput_figure(outage).axes[0]
    assert _labels(ax) == ["end to end", "frontend", "catalog"]
    assert len(_fault_spans(ax)) == 1
    # about 300 requests per second end to end in full seconds
    e2e = ax.lines[0].get_ydata()
    assert 200 < sorted(e2e)[len(e2e) // 2] < 400


def test_resilience_panels_only_where_there_is_something(outage, bookinfo_dir):
    fig = resilience_figure(outage)
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split(" (")[0] for t in titles] == ["retries", "ejected hosts"]
    retries = fig.axes[0]
    assert "catalog" in _labels(retries)
    assert all(len(_fault_spans(ax)) == 1 for ax in fig.axes)
    assert max(fig.axes[1].lines[_labels(fig.axes[1]).index("catalog")].get_ydata()) >= 1
    assert resilience_figure(bookinfo_dir) is None


# ---------------------------------------------------------------------------- files
class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])


def test_html_is_one_self_contained_file(outage, tmp_path):
    report = build_run_report(outage)
    paths = report.write(html=tmp_path / "r.html")
    assert paths == [tmp_path / "r.html"] and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    parser = _Images()
    parser.feed((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "script" not in parser.tags and "link" not in parser.tags and parser.external == []
    # graph, CDF, 2 services' percentiles, success, throughput, resilience
    assert len(parser.images) == len(report.figures) == 7
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG) and b"Software" not in png and b"matplotlib" not in png
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    for heading in ("Summary", "Faults (chaos)", "Service graph", "Latency", "Success rate and throughput",
                    "Retries, ejections and overflows", "Envoy stats (non-zero)"):
        assert f"<h2>{heading}</h2>" in text
    assert "zone-b-outage" in text and "upstream_rq_retry" in text


def test_same_run_same_bytes_and_markdown_links(bookinfo_dir, tmp_path):
    a = write_run_report(bookinfo_dir, html=tmp_path / "a" / "report.html", markdown=tmp_path / "a" / "report.md")
    b = write_run_report(bookinfo_dir, html=tmp_path / "b" / "report.html", markdown=tmp_path / "b" / "report.md")
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.endswith(".tmp")]
    md = (tmp_path / "a" / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 8 and all((tmp_path / "a" / link).read_bytes().startswith(PNG) for link in links)
    assert "| reviews |" in md and "| latency in ms | requests | rps | ok | p50 |" in md
    assert "No retries, outlier ejections or circuit-breaker overflows" in md


def test_summary_only_run_and_reading_errors(tmp_path):
    scn = apply_overrides(load_scenario("scenarios/bookinfo.yaml"), {"duration": "3s", "warmup": "1s",
                                                                    "record": "summary"})
    result = run(scn)
    write_run(tmp_path / "run", tables=result.tables(), summary=result.summary, fmt="csv")
    data = read_run_dir(tmp_path / "run")
    assert data.attempts is None and data.timeseries is not None
    report = build_run_report(tmp_path / "run")
    assert list(report.figures) == ["success-rate.png", "throughput.png"]
    assert "record: summary" in report.markdown()
    from meshsim import ConfigError

    with pytest.raises(ConfigError, match="not a run directory"):
        read_run_dir(tmp_path)


# ---------------------------------------------------------------------------- CLI
def test_cli_run_report_and_report(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["run", "scenarios/mmc.yaml", "--set", "duration=2s", "--set", "warmup=0.5s",
                              "--set", "traffic.0.rate=200/s", "-q", "--format", "csv", "-o", str(run_dir),
                              "--report"])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    assert (run_dir / "plots" / "service-graph.png").is_file()
    res = runner.invoke(app, ["report", str(run_dir), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x.html").read_bytes() == (run_dir / "report.html").read_bytes()
    res = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "not a run directory" in res.output
    res = runner.invoke(app, ["run", "scenarios/mmc.yaml", "--report", "-q"])
    assert res.exit_code == 2 and "--report needs -o" in res.output
