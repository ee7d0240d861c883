"""Tests of meshsim.sim._output.write_run: byte-stable, round-tripping, all or nothing."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from meshsim import ConfigError
from meshsim.sim._output import summary_json, write_run


def _tables() -> dict[str, pd.DataFrame | None]:
    rng = np.random.default_rng(3)
    n = 500
    start = np.sort(rng.uniform(0, 3600, n))
    requests = pd.DataFrame({
        "request_id": np.arange(n, dtype=np.int64),
        "source": pd.Categorical(rng.choice(["users", "bots"], n)),
        "start_s": start,
        "end_s": start + rng.lognormal(-4, 1, n),
        "status": rng.choice([200, 503], n, p=[0.99, 0.01]).astype(np.int32),
        "ok": rng.random(n) < 0.99,
    })
    timeseries = pd.DataFrame({"t_s": np.arange(10.0), "rps": rng.uniform(0, 300, 10), "note": list("abcdefghij")})
    return {"requests": requests, "attempts": None, "timeseries": timeseries}


SUMMARY = {
    "scenario": "t",
    "seed": 7,
    "duration_s": 60.0,
    "end_to_end": {"requests": np.int64(11000), "success_rate": 0.1 + 0.2, "status": {200: 10978, "503": 22},
                   "latency_s": {"mean": np.float64(0.031), "p99": math.nan, "max": math.inf}},
    "ci": {"end_to_end.latency_s.p99": (0.11, 0.13)},
    "flags": [np.bool_(True), None],
    "b": 1,
    "a": 2,
}


def test_summary_json_is_stable_ordered_and_nulls_non_finite():
    text = summary_json(SUMMARY)
    assert text == summary_json(SUMMARY) and text.endswith("}\n")
    assert "0.30000000000000004" in text  # Python's repr, not rounded
    assert '  "scenario": "t",' in text.splitlines()[1:2][0]
    data = json.loads(text)
    assert list(data) == list(SUMMARY)  # insertion order, not sorted
    lat = data["end_to_end"]["latency_s"]
    assert lat == {"mean": 0.031, "p99": None, "max": None}
    assert data["end_to_end"]["status"] == {"200": 10978, "503": 22}
    assert data["ci"]["end_to_end.latency_s.p99"] == [0.11, 0.13]
    assert data["flags"] == [True, None]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_two_writes_are_byte_identical(tmp_path, fmt):
    a = write_run(tmp_path / "a", tables=_tables(), summary=SUMMARY, fmt=fmt)
    b = write_run(tmp_path / "b", tables=_tables(), summary=SUMMARY, fmt=fmt)
    assert [p.name for p in a] == [f"requests.{fmt}", f"timeseries.{fmt}", "summary.json"]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary directory left


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_round_trip(tmp_path, fmt):
    tables = _tables()
    write_run(tmp_path, tables=tables, summary=SUMMARY, fmt=fmt)
    for name in ("requests", "timeseries"):
        path = tmp_path / f"{name}.{fmt}"
        back = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
        expected = tables[name]
        if fmt == "csv":  # CSV keeps values, not dtypes such as category or int32
            expected = expected.astype({c: object for c in expected.select_dtypes("category")})
            pd.testing.assert_frame_equal(back, expected, check_dtype=False)
        else:
            pd.testing.assert_frame_equal(back, expected)
    assert not (tmp_path / f"attempts.{fmt}").exists()


def test_auto_format_is_parquet_when_pyarrow_is_installed(tmp_path):
    pytest.importorskip("pyarrow")
    paths = write_run(tmp_path, tables=_tables(), summary=SUMMARY)
    assert paths[0].name == "requests.parquet"


def test_existing_files_are_replaced_and_stale_outputs_removed(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    write_run(tmp_path, tables={**_tables(), "attempts": _tables()["timeseries"]}, summary={"run": 1}, fmt="csv")
    assert (tmp_path / "attempts.csv").exists()
    write_run(tmp_path, tables=_tables(), summary={"run": 2}, fmt="parquet")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["keep.txt", "requests.parquet", "summary.json", "timeseries.parquet"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"run": 2}


def test_a_failure_part_way_leaves_outdir_untouched(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TypeError, match="cannot be written as JSON"):
        write_run(out, tables=_tables(), summary={"bad": object()}, fmt="csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither outdir nor a temporary directory

    out.mkdir()
    (out / "summary.json").write_text("old")
    with pytest.raises(TypeError):
        write_run(out, tables=_tables(), summary={1.5: "float key"}, fmt="csv")
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert (out / "summary.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="`fmt` must be one of"):
        write_run(tmp_path, tables={}, summary={}, fmt="xlsx")
    with pytest.raises(ValueError, match="plain file name"):
        write_run(tmp_path, tables={"../x": None}, summary={}, fmt="csv")
    assert list(tmp_path.iterdir()) == []
