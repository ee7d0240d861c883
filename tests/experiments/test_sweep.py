"""meshsim.experiments.sweep: grid parsing and its errors, the tidy table, CIs, seeds, files, CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from meshsim import ConfigError
from meshsim.cli import app
from meshsim.experiments.sweep import (
    COUNTERS,
    grid_points,
    parse_grid,
    parse_values,
    point_seed,
    sweep,
)

runner = CliRunner()


# ---------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("spec, expected", [
    ("2..5", [2, 3, 4, 5]),
    ("2..12:5", [2, 7, 12]),
    ("2..11:5", [2, 7]),
    ("0.1..0.3:0.1", [0.1, 0.2, 0.3]),
    ("1.5..2.5", [1.5, 2.5]),
    ("500/s,1k/s,2k/s", ["500/s", "1k/s", "2k/s"]),
    ("500/s..1500/s:500/s", ["500/s", "1000/s", "1500/s"]),
    ("1k/s..3k/s", ["1k/s", "2k/s", "3k/s"]),
    ("100ms..300ms:100ms", ["100ms", "200ms", "300ms"]),
    ("1,2..3,7", [1, 2, 3, 7]),
    ("3", [3]),
    ("[5xx, reset],[5xx]", [["5xx", "reset"], ["5xx"]]),
    ("0.5%,1%", ["0.5%", "1%"]),
])
def test_parse_values(spec, expected):
    assert parse_values(spec) == expected


@pytest.mark.parametrize("text, says", [
    ("services.api.replicas=5..2", "empty"),
    ("services.api.replicas=1..3:0", "step must be > 0"),
    ("services.api.replicas=1..3:-1", "step must be > 0"),
    ("traffic.users.rate=500/s..2k/min", "share one unit"),
    ("services.api.replicas=a..b", "not a range"),
    ("services.api.replicas=", "no values"),
    ("services.api.replicas=1,,2", "empty item"),
    ("services.api.replicas", "expected PATH=VALUES"),
    ("services.api.replicas=1..100000", "at most"),
])
def test_parse_errors_name_the_set_and_what_is_allowed(text, says):
    with pytest.raises(ConfigError) as err:
        parse_grid([text])
    message = str(err.value)
    assert message.startswith("--set ") and says in message and "\n" not in message
    assert "allowed" in message or "at most" in message


def test_values_are_validated_by_the_scenario_model(two_tier):
    with pytest.raises(ConfigError, match=r"^--set traffic.users.rate=fast: traffic\[0\].rate: 'fast' is not a rate"):
        parse_grid(["traffic.users.rate=500/s,fast"], two_tier)
    with pytest.raises(ConfigError, match=r"^--set services.nope.replicas=1: .*have: web, api"):
        parse_grid(["services.nope.replicas=1,2"], two_tier)
    with pytest.raises(ConfigError, match=r"^--set services.web.replicas=0: "):
        parse_grid(["services.web.replicas=0..2"], two_tier)


def test_traffic_sources_are_addressed_by_name(two_tier):
    grid = parse_grid(["traffic.users.rate=100/s,1k/s", "services.web.workers=2..3"], two_tier)
    assert grid == {"traffic.users.rate": ["100/s", "1k/s"], "services.web.workers": [2, 3]}
    points = grid_points(grid)
    assert points == [
        {"traffic.users.rate": "100/s", "services.web.workers": 2},
        {"traffic.users.rate": "100/s", "services.web.workers": 3},
        {"traffic.users.rate": "1k/s", "services.web.workers": 2},
        {"traffic.users.rate": "1k/s", "services.web.workers": 3},
    ]


def test_single_values_hold_while_the_others_are_checked(two_tier):
    # duration=1s alone is fine; warmup=2s alone is not (longer than the 2 s duration): both together are
    grid = parse_grid(["duration=5s", "warmup=2s", "services.web.workers=1,2"], two_tier)
    assert grid["warmup"] == ["2s"]
    with pytest.raises(ConfigError, match=r"^--set duration=1s --set warmup=2s: warmup"):
        parse_grid(["duration=1s", "warmup=2s"], two_tier)


def test_a_field_every_version_overrides_is_refused(two_tier):
    with pytest.raises(ConfigError, match=r"every version of api \(v1, v2\) sets its own replicas"):
        parse_grid(["services.api.replicas=1..3"], two_tier)
    parse_grid(["services.api.versions.v1.replicas=1..3", "services.api.workers=2,4"], two_tier)


def test_point_seed_depends_on_the_values_not_their_order():
    assert point_seed(7, {"a": 1, "b": "x"}) == point_seed(7, {"b": "x", "a": 1})
    assert point_seed(7, {"a": 1}) != point_seed(7, {"a": 2}) != point_seed(8, {"a": 2})


# ---------------------------------------------------------------------------- the table
@pytest.fixture(scope="module")
def result(two_tier):
    return sweep(two_tier, {"traffic.users.rate": ["100/s", "300/s"], "services.api.workers": "2,4"},
                 replications=3, workers=1, progress=False)


def test_tidy_table_shape(result):
    t = result.table
    # per point: end to end, web, api, api/v1, api/v2
    assert len(t) == 4 * 5 and result.runs == 4 * 3
    assert list(t.columns[:4]) == ["point", "traffic.users.rate", "services.api.workers", "scope"]
    assert t.groupby("point").size().tolist() == [5] * 4
    assert t[t.point == 0].scope.tolist() == ["end_to_end", "service", "service", "version", "version"]
    assert t[t.scope == "version"].version.unique().tolist() == ["v1", "v2"]
    for col in ("rps", "success_rate", "p50_s", "p90_s", "p99_s", "utilization"):
        assert {col, f"{col}_low", f"{col}_high"} <= set(t.columns)
    for name in COUNTERS:
        assert name.rsplit(".", 1)[-1] in t.columns
    assert (t.replications == 3).all()
    assert t["traffic.users.rate"].tolist()[::5] == ["100/s", "100/s", "300/s", "300/s"]


def test_metrics_and_confidence_intervals(result):
    t = result.table
    e2e = t[t.scope == "end_to_end"]
    assert np.allclose(e2e.rps, [100, 100, 300, 300], rtol=0.25)
    for col in ("rps", "p50_s", "p99_s", "success_rate"):
        assert (e2e[f"{col}_low"] <= e2e[col] + 1e-12).all() and (e2e[col] <= e2e[f"{col}_high"] + 1e-12).all()
    svc = t[t.scope == "service"]
    assert svc.utilization.between(0, 1).all() and e2e.utilization.isna().all()
    api = t[(t.scope == "service") & (t.service == "api")]
    assert (api.upstream_rq_retry > 0).all() and (api.upstream_rq_total > api.requests * 0.99).all()
    # api has no routes: Envoy counts its requests and retries on the whole-service cluster (api|*),
    # which only the service row carries; the version rows keep their own request counts
    versions = t[t.scope == "version"]
    assert np.allclose(versions.groupby("point").requests.sum().to_numpy(), api.requests.to_numpy())
    assert (versions.requests > 0).all()
    assert (versions.upstream_rq_total == 0).all() and (versions.upstream_rq_retry == 0).all()
    # more load, more utilization (common random numbers make this hold point by point)
    web = t[(t.scope == "service") & (t.service == "web")].utilization.to_numpy()
    assert web[2] > web[0] and web[3] > web[1]


def test_one_replication_has_no_interval(two_tier):
    t = sweep(two_tier, ["services.web.workers=4"], replications=1, workers=1, progress=False).table
    assert t.p99_s.notna().all() and t.p99_s_low.isna().all() and t.p99_s_high.isna().all()


def test_common_and_independent_seeds(two_tier):
    grid = ["services.web.workers=8,9"]  # changes nothing the arrivals see
    common = sweep(two_tier, grid, replications=2, workers=1, progress=False)
    arrivals = [s[0]["end_to_end"]["requests"] for s in common.summaries]
    assert arrivals[0] == arrivals[1]
    indep = sweep(two_tier, grid, replications=2, workers=1, progress=False, seeds="independent")
    assert [s[0]["end_to_end"]["requests"] for s in indep.summaries] != arrivals
    assert [s[0]["seed"] for s in indep.summaries] == [point_seed(3, p) for p in indep.points]
    with pytest.raises(ConfigError, match="--seeds 'random'"):
        sweep(two_tier, grid, seeds="random", workers=1)


def test_write_csv_and_parquet(result, tmp_path):
    csv = result.write(tmp_path / "out.csv")
    back = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    assert back.shape == result.table.shape and list(back.columns) == list(result.table.columns)
    pytest.importorskip("pyarrow")
    pq = result.write(tmp_path / "sub" / "out.parquet")
    back = pd.read_parquet(pq)
    pd.testing.assert_frame_equal(back, result.table)


# ---------------------------------------------------------------------------- CLI
def test_cli_sweep_writes_the_table(tmp_path):
    out = tmp_path / "sweep.csv"
    res = runner.invoke(app, ["sweep", "scenarios/mmc.yaml", "--set", "services.station.workers=4,5",
                              "--set", "duration=2s", "--set", "warmup=0.5s", "--replications", "2",
                              "--workers", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out)
    assert t["services.station.workers"].tolist() == [4, 4, 5, 5]
    assert t.scope.tolist() == ["end_to_end", "service"] * 2
    assert t.p99_s[0] > t.p99_s[2]  # a fifth worker shortens the queue
    assert "p99_ms" in res.stdout


@pytest.mark.parametrize("args, says", [
    (["--set", "traffic.poisson.rate=fast"], "--set traffic.poisson.rate=fast: traffic[0].rate: 'fast' is not a rate"),
    (["--set", "services.station.workers=9..2"], "the range is empty"),
    (["--set", "services.station.workers=1..3", "--seeds", "random"], "--seeds 'random'"),
    (["--set", "services.station.workers=1,2", "-o", "x.csv", "--scheduler", "localhost:1"],
     "expected an address such as tcp://"),
])
def test_cli_sweep_errors_are_one_line_exit_2(args, says):
    res = runner.invoke(app, ["sweep", "scenarios/mmc.yaml", *args])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --") and says in lines[0], res.stderr


def test_nan_free_for_answered_requests(result):
    t = result.table
    assert not math.isnan(t.p99_s.min())
