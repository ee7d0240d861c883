"""Readers of canary input (meshsim.canary.io): every format, alignment, counter resets, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meshsim import CanaryError
from meshsim.canary.io import (
    detect_format,
    histogram_quantile,
    is_error,
    per_minute,
    read_arm,
    read_arms,
)

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def _raw_csv(path: Path, t: np.ndarray, lat_ms: np.ndarray, status: np.ndarray, *, iso: bool = True,
             latency_col: str = "latency_ms") -> Path:
    stamps = (pd.to_datetime(T0 + t, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if iso else T0 + t)
    pd.DataFrame({"timestamp": stamps, latency_col: lat_ms, "status": status}).to_csv(path, index=False)
    return path


def _matrix(series: list[tuple[dict, list[tuple[float, float | str]]]]) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": [[ts, str(v)] for ts, v in values]} for labels, values in series]}}


def _write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------------------- raw requests


def test_raw_csv_iso_timestamps_and_per_minute_aggregates(tmp_path):
    t = np.array([1.0, 30.0, 59.0, 61.0, 62.0, 130.0])
    lat = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    status = np.array([200, 503, 200, 0, 404, 200])
    b = _raw_csv(tmp_path / "b.csv", t, lat, status)
    c = _raw_csv(tmp_path / "c.csv", t + 0.5, lat * 2, np.full(6, 200))
    base, can = read_arms(b, c)
    assert base.name == "baseline" and can.name == "canary" and base.source == str(b)
    assert base.requests["t"].tolist() == pytest.approx(t - 1.0)  # minute 0 at the earlier first timestamp
    assert base.requests["latency_s"].tolist() == pytest.approx(lat / 1000.0)
    assert per_minute(base, "requests").tolist() == [3, 2, 1]
    assert per_minute(base, "errors").tolist() == [1, 1, 0]  # 503 and 0 (no response) are errors, 404 is not
    assert per_minute(base, "error_rate") == pytest.approx([1 / 3, 1 / 2, 0.0])
    assert per_minute(base, "latency_p50_s") == pytest.approx([0.02, 0.045, 0.06])
    assert per_minute(base, "latency_p99_s")[0] == pytest.approx(np.quantile([0.01, 0.02, 0.03], 0.99))
    assert per_minute(can, "latency_mean_s")[1] == pytest.approx(0.09)


def test_epoch_seconds_latency_unit_option_and_parquet(tmp_path):
    t = np.arange(0.0, 180.0, 2.0)
    lat = np.full(len(t), 0.25)
    df = pd.DataFrame({"ts": T0 + t, "latency": lat, "code": 200})
    df.to_parquet(tmp_path / "b.parquet")
    df.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(CanaryError, match=r"b\.parquet: column 'latency' has no unit.*--latency-unit"):
        read_arms(tmp_path / "b.parquet", tmp_path / "c.csv")
    base, can = read_arms(tmp_path / "b.parquet", tmp_path / "c.csv", latency_unit="s")
    assert detect_format(tmp_path / "b.parquet") == "requests"
    assert per_minute(base, "requests").tolist() == [30, 30, 30]
    assert per_minute(can, "latency_p99_s") == pytest.approx([0.25] * 3)


def test_arms_align_to_the_earlier_start_and_share_one_grid(tmp_path):
    b = _raw_csv(tmp_path / "b.csv", np.arange(0.0, 300.0, 5.0), np.full(60, 10.0), np.full(60, 200))
    c = _raw_csv(tmp_path / "c.csv", np.arange(120.0, 300.0, 5.0), np.full(36, 12.0), np.full(36, 200))
    base, can = read_arms(b, c)
    assert can.requests["t"].iloc[0] == pytest.approx(120.0)
    assert len(per_minute(base, "requests")) == len(per_minute(can, "requests")) == 5
    req = per_minute(can, "requests")
    assert np.isnan(req[:2]).all() and req[2:].tolist() == [12, 12, 12]  # before the canary existed: unknown
    assert np.isnan(per_minute(can, "latency_p50_s")[:2]).all()
    assert can.until(3).requests["t"].max() < 180.0
    assert set(can.until(3).minutes["minute"]) == {0, 1, 2}


def test_minute_without_requests_is_zero_traffic_with_nan_latency(tmp_path):
    t = np.array([5.0, 10.0, 130.0, 140.0])
    base, _ = read_arms(_raw_csv(tmp_path / "b.csv", t, np.full(4, 5.0), np.full(4, 200)),
                        _raw_csv(tmp_path / "c.csv", t, np.full(4, 5.0), np.full(4, 200)))
    assert per_minute(base, "requests").tolist() == [2, 0, 2]
    assert np.isnan(per_minute(base, "latency_p99_s")[1])
    assert np.isnan(per_minute(base, "error_rate")[1])


def test_is_error():
    assert is_error(503) and is_error(0) and not is_error(404) and not is_error(200)
    assert is_error(np.array([200, 500, 0])).tolist() == [False, True, True]


# --------------------------------------------------------------------------------------- aggregates


def test_per_minute_aggregates_long_form(tmp_path):
    rows = []
    for m in range(4):
        ts = pd.Timestamp(T0 + 60 * m, unit="s", tz="UTC").isoformat()
        rows += [(ts, "requests", 100 + m, 100 + m), (ts, "errors", m, 100 + m),
                 (ts, "latency_p99_ms", np.nan if m == 2 else 200.0 + m, 100 + m), (ts, "cpu", 0.5, np.nan)]
    df = pd.DataFrame(rows, columns=["timestamp", "metric", "value", "count"])
    df.to_csv(tmp_path / "b.csv", index=False)
    df.to_csv(tmp_path / "c.csv", index=False)
    assert detect_format(tmp_path / "b.csv") == "minutes"
    base, can = read_arms(tmp_path / "b.csv", tmp_path / "c.csv")
    assert base.requests is None
    p99 = per_minute(base, "latency_p99_s")
    assert p99[[0, 1, 3]] == pytest.approx([0.2, 0.201, 0.203]) and math.isnan(p99[2])  # NaN minute kept
    assert per_minute(base, "errors").tolist() == [0, 1, 2, 3]
    assert per_minute(base, "cpu").tolist() == [0.5] * 4
    assert list(base.minutes.columns) == ["minute", "metric", "value", "count"]


def test_aggregates_by_minute_number_and_missing_minutes(tmp_path):
    df = pd.DataFrame({"minute": [0, 1, 3], "metric": "requests", "value": [10, 12, 9]})
    df.to_csv(tmp_path / "b.csv", index=False)
    arm = read_arm(tmp_path / "b.csv", name="baseline")
    req = per_minute(arm, "requests")
    assert req[[0, 1, 3]].tolist() == [10, 12, 9] and math.isnan(req[2])  # a minute the input leaves out is unknown


@pytest.mark.parametrize("rows, message", [
    ([(0, "requests", 10), (0, "requests", 11)], r"rows 2 and 3: two values of 'requests' for minute 0"),
    ([(0, "requests", 10), (0, "errors", 11)], r"minute 0: errors 11 > requests 10"),
    ([(0, "latency_p99_ms", -1)], r"row 2: latency_p99_ms = -1 is negative"),
    ([(0, "latency_p99", 5)], r"'latency_p99' has no unit"),
    ([(0, "requests", "many")], r"column 'value', row 2: 'many' is not a number"),
    ([(0, "requests", np.nan)], r"every value is empty or NaN"),
])
def test_bad_aggregates(tmp_path, rows, message):
    df = pd.DataFrame(rows, columns=["minute", "metric", "value"])
    df.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(CanaryError, match=message) as info:
        read_arms(tmp_path / "b.csv", tmp_path / "b.csv")
    assert str(info.value).startswith(str(tmp_path / "b.csv")) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------- Prometheus


def _counter_series(code: str, per_step: list[float], start_value: float = 0.0, reset_at: int | None = None,
                    step: float = 15.0) -> tuple[dict, list[tuple[float, float]]]:
    values, v = [], start_value
    values.append((T0, v))
    for i, inc in enumerate(per_step, start=1):
        v = inc if reset_at == i else v + inc  # at a reset the counter restarts from 0 and counts inc
        values.append((T0 + step * i, v))
    return {"__name__": "istio_requests_total", "response_code": code, "pod": "a"}, values


def test_prometheus_counters_by_response_code_with_a_reset(tmp_path):
    ok = _counter_series("200", [10.0] * 12, start_value=500.0, reset_at=6)  # 3 minutes of 15 s steps
    bad = _counter_series("503", [1.0, 0, 0, 0] * 3, start_value=7.0)
    f = _write_json(tmp_path / "requests.json", _matrix([ok, bad]))
    arm = read_arm(f, name="canary")
    assert per_minute(arm, "requests").tolist() == [41.0, 41.0, 41.0]  # the reset is undone: 40 a minute + 1 error
    assert per_minute(arm, "errors").tolist() == [1.0, 1.0, 1.0]
    assert per_minute(arm, "error_rate") == pytest.approx([1 / 41] * 3)


def test_prometheus_histogram_buckets_give_histograms_and_quantiles(tmp_path):
    le_counts = {"10": 50.0, "50": 90.0, "100": 99.0, "+Inf": 100.0}  # cumulative per minute, ms
    series = []
    for le, per_min in le_counts.items():
        vals = [(T0 + 60 * i, per_min * i) for i in range(4)]
        series.append(({"__name__": "istio_request_duration_milliseconds_bucket", "le": le}, vals))
    arm = read_arm(_write_json(tmp_path / "latency.json", _matrix(series)), name="baseline")
    hist = arm.histograms
    assert sorted(hist["minute"].unique()) == [0, 1, 2]
    h0 = hist[hist["minute"] == 0]
    assert h0["le"].tolist() == pytest.approx([0.01, 0.05, 0.1, math.inf])
    assert h0["count"].tolist() == [50.0, 90.0, 99.0, 100.0]
    assert per_minute(arm, "latency_p50_s") == pytest.approx([0.01] * 3)
    assert per_minute(arm, "latency_p90_s") == pytest.approx([0.05] * 3)
    assert per_minute(arm, "latency_p99_s") == pytest.approx([0.1] * 3)
    assert per_minute(arm, "requests").tolist() == [100.0] * 3  # from the +Inf bucket when no request counter


def test_histogram_quantile_follows_prometheus():
    le = [0.1, 0.2, 0.4, math.inf]
    assert histogram_quantile(0.5, le, [10, 20, 20, 20]) == pytest.approx(0.1)
    assert histogram_quantile(0.75, le, [10, 20, 20, 20]) == pytest.approx(0.15)
    assert histogram_quantile(0.99, le, [10, 20, 20, 30]) == pytest.approx(0.4)  # rank in +Inf: highest bound
    assert math.isnan(histogram_quantile(0.5, le, [0, 0, 0, 0]))
    assert math.isnan(histogram_quantile(0.5, [0.1, 0.2], [1, 2]))  # no +Inf bucket


def test_prometheus_directory_mapping_gauges_and_nan_minutes(tmp_path):
    d = tmp_path / "prom"
    d.mkdir()
    ok = _counter_series("200", [5.0] * 12)
    _write_json(d / "requests.json", _matrix([ok]))
    cpu = [({"pod": "a"}, [(T0 + 30 * i, 1.0) for i in range(6)]),
           ({"pod": "b"}, [(T0 + 30 * i, "NaN" if i in (2, 3) else 3.0) for i in range(6)])]
    _write_json(d / "cpu.json", _matrix(cpu))
    arm = read_arm(d, name="canary")
    assert detect_format(d) == "prometheus"
    assert per_minute(arm, "cpu").tolist() == [2.0, 1.0, 2.0]  # per-series minute mean, then mean over series
    assert per_minute(arm, "requests").tolist() == [20.0, 20.0, 20.0]
    mapping = tmp_path / "canary.yaml"
    mapping.write_text("requests: prom/requests.json\nprocessor: prom/cpu.json\n")
    arm2 = read_arm(mapping, name="canary")
    assert per_minute(arm2, "processor").tolist() == [2.0, 1.0, 2.0]
    gap = _write_json(tmp_path / "gap.json", _matrix([({"__name__": "istio_requests_total", "response_code": "200"},
                                                        [(T0, 0.0), (T0 + 60, 10.0), (T0 + 180, 30.0)])]))
    req = per_minute(read_arm(gap), "requests")
    assert req[0] == 10.0 and math.isnan(req[1]) and req[2] == 20.0  # a missing scrape leaves a NaN minute


@pytest.mark.parametrize("doc, message", [
    ({"status": "success", "data": {"resultType": "vector", "result": []}}, r"'vector' is not allowed.*query_range"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error"}, r"Prometheus returned an error: bad_data"),
    ({"data": {}}, r"'data.result' missing"),
    (_matrix([({"__name__": "x"}, [(T0, "NaN"), (T0 + 60, "NaN")])]), r"every sample is NaN"),
    (_matrix([({"__name__": "h_seconds_bucket", "le": "0.1"}, [(T0, 1.0), (T0 + 60, 2.0)])]), r'no le="\+Inf"'),
])
def test_bad_prometheus(tmp_path, doc, message):
    f = _write_json(tmp_path / "p.json", doc)
    with pytest.raises(CanaryError, match=message):
        read_arm(f)


def test_prometheus_not_json(tmp_path):
    f = tmp_path / "p.json"
    f.write_text("{not json")
    with pytest.raises(CanaryError, match=r"p\.json: not JSON \(line 1"):
        read_arm(f)


# --------------------------------------------------------------------------------------- run directories


def _fake_run(d: Path, fmt: str = "csv") -> Path:
    """A run directory as `meshsim run -o` writes it: checkout v1/v2 attempts and a summary."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows = []
    for version, scale, n in (("v1", 1.0, 600), ("v2", 1.3, 200)):
        start = np.sort(rng.uniform(0, 180, n))
        lat = rng.lognormal(np.log(0.02 * scale), 0.3, n)
        status = np.where(rng.random(n) < 0.01, 503, 200)
        for s, la, st in zip(start, lat, status, strict=True):
            rows.append((1, "frontend", "default", "checkout", version, 0, "", 1, s, 0.0, la, s + la, la, st, ""))
    rows.append((2, "frontend", "default", "checkout", "v2", 0, "", 1, 179.9, 0.0, np.nan, np.nan, np.nan, 0, ""))
    rows.append((3, "users", "", "frontend", "default", 0, "", 1, 5.0, 0.0, 0.01, 5.01, 0.01, 200, ""))
    cols = ["request_id", "caller", "caller_version", "service", "version", "replica", "zone", "attempt", "start_s",
            "wait_s", "server_s", "end_s", "latency_s", "status", "flags"]
    df = pd.DataFrame(rows, columns=cols)
    if fmt == "csv":
        df.to_csv(d / "attempts.csv", index=False)
    else:
        df.to_parquet(d / "attempts.parquet", index=False)
    summary = {"scenario": "t", "seed": 1, "duration_s": 180.0, "warmup_s": 0.0,
               "services": {"frontend": {"versions": {"default": {}}},
                            "checkout": {"versions": {"v1": {}, "v2": {}}}}}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_run_directory_two_versions_of_a_service(tmp_path, fmt):
    d = _fake_run(tmp_path / "run", fmt)
    assert detect_format(d) == "run"
    base, can = read_arms(d, d, service="checkout", baseline_version="v1", canary_version="v2")
    assert len(base.requests) == 600 and len(can.requests) == 200  # the unfinished attempt is dropped
    assert per_minute(base, "requests").sum() == 600
    assert np.nanmedian(can.requests["latency_s"]) > np.nanmedian(base.requests["latency_s"])
    auto_b, auto_c = read_arms(d, d)  # the one service with two versions, first = baseline
    assert auto_b.source.endswith("(checkout v1)") and auto_c.source.endswith("(checkout v2)")


@pytest.mark.parametrize("kwargs, message", [
    ({"service": "payments"}, r"--service 'payments' is not a service of this run; allowed: frontend, checkout"),
    ({"service": "checkout", "canary_version": "v3"}, r"--canary-version 'v3' is not a version of checkout"),
    ({"service": "checkout", "baseline_version": "v1", "canary_version": "v1"}, r"both 'v1'"),
])
def test_run_directory_bad_selection(tmp_path, kwargs, message):
    d = _fake_run(tmp_path / "run")
    with pytest.raises(CanaryError, match=message):
        read_arms(d, d, **kwargs)


# --------------------------------------------------------------------------------------- bad input, one line each


@pytest.mark.parametrize("content, message", [
    ("", r"file is empty"),
    ("timestamp,latency_ms,status\n", r"no data rows"),
    ("time,status\n1,200\n", r"no latency column; expected one of latency_ms"),
    ("latency_ms,status\n1,200\n", r"no timestamp column; expected one of timestamp"),
    ("timestamp,latency_ms\n1,5\n", r"no status column"),
    ("timestamp,latency_ms,status\nyesterday,5,200\n", r"column 'timestamp', row 2: 'yesterday' is not a timestamp"),
    ("timestamp,latency_ms,status\n1,-5,200\n", r"column 'latency_ms', row 2: -5(\.0)? is negative; latencies must be >= 0"),
    ("timestamp,latency_ms,status\n1,5,ok\n", r"column 'status', row 2: 'ok' is not an HTTP status"),
    ("timestamp,latency_ms,status\n1,,200\n2,,200\n", r"every latency is empty or NaN"),
    ("timestamp,latency_ms,status\n1,fast,200\n", r"column 'latency_ms', row 2: 'fast' is not a number"),
])
def test_bad_raw_input_is_one_line_naming_file_column_and_value(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    good = _raw_csv(tmp_path / "good.csv", np.array([1.0, 2.0]), np.array([5.0, 6.0]), np.array([200, 200]))
    with pytest.raises(CanaryError, match=message) as info:
        read_arms(good, bad)
    text = str(info.value)
    assert text.startswith(str(bad)) and "\n" not in text


def test_mismatched_time_ranges(tmp_path):
    b = _raw_csv(tmp_path / "b.csv", np.arange(0.0, 600.0, 10.0), np.full(60, 5.0), np.full(60, 200))
    c = _raw_csv(tmp_path / "c.csv", np.arange(0.0, 600.0, 10.0) + 86_400.0, np.full(60, 5.0), np.full(60, 200))
    with pytest.raises(CanaryError, match=r"time ranges do not overlap \(baseline 2024-05-01T12:00:00Z\.\.") as info:
        read_arms(b, c)
    assert "\n" not in str(info.value)


def test_unknown_file_type_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CanaryError, match=r"unknown file type '\.txt'"):
        read_arm(tmp_path / "x.txt")
    with pytest.raises(CanaryError, match=r"no such file or directory"):
        read_arm(tmp_path / "nope.csv")
    with pytest.raises(CanaryError, match=r"--format 'xml' is not one of auto, requests"):
        read_arms(tmp_path / "x.txt", tmp_path / "x.txt", fmt="xml")


def test_reading_is_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 600, 500))
    b = _raw_csv(tmp_path / "b.csv", t, rng.lognormal(3, 0.5, 500), np.full(500, 200))
    one = read_arms(b, b)
    two = read_arms(b, b)
    pd.testing.assert_frame_equal(one[0].minutes, two[0].minutes)
    pd.testing.assert_frame_equal(one[1].requests, two[1].requests)


def test_prometheus_sum_and_count_give_the_mean_latency(tmp_path):
    sums = ({"__name__": "http_request_duration_seconds_sum"}, [(T0 + 60 * i, 0.5 * i) for i in range(4)])
    counts = ({"__name__": "http_request_duration_seconds_count"}, [(T0 + 60 * i, 10.0 * i) for i in range(4)])
    arm = read_arm(_write_json(tmp_path / "lat.json", _matrix([sums, counts])))
    assert per_minute(arm, "latency_mean_s") == pytest.approx([0.05] * 3)
    assert per_minute(arm, "requests").tolist() == [10.0] * 3
