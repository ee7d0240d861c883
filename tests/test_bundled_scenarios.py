"""The bundled scenarios: every file loads and validates; each demonstration shows its phenomenon.

Each demonstration runs once with its own seed (a few seconds each) and is checked against the
number its header comment states, with the tolerance given in the test.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from meshsim.cli import app
from meshsim.config import apply_overrides, load_scenario
from meshsim.sim import simulate

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))


def test_the_demonstrations_are_bundled():
    names = {p.stem for p in FILES}
    assert {"retry-storm", "circuit-breaker", "outlier-ejection", "header-canary", "zone-outage"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_scenario_loads_and_validates(path: Path):
    scn = load_scenario(path)
    assert scn.name == path.stem
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok  {path}")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_scenario_says_what_it_shows_and_how_to_run_it(path: Path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "What it shows" in text
    assert f"meshsim run scenarios/{path.name}" in text


@cache
def _scenario(stem: str):
    return load_scenario(SCENARIOS / f"{stem}.yaml")


def _run(stem: str, overrides: dict | None = None):
    scn = _scenario(stem)
    return simulate(apply_overrides(scn, overrides) if overrides else scn)


# --------------------------------------------------------------------------- retry storm

RETRY_LAYERS = ("frontend", "api", "db")


def _db_attempts_per_request(res):
    att, req = res.attempts, res.requests
    per = att[att["service"] == "db"].groupby("request_id").size()
    return per.reindex(req["request_id"], fill_value=0)


def test_retry_storm_multiplies_the_load_on_the_browned_out_db():
    res = _run("retry-storm")
    per = _db_attempts_per_request(res)
    # 3 tries per layer, db failing half: 1.75 x (1 + 1/8 + 1/64) x (1 + 1/512 + 1/512^2) db attempts
    # per request. The standard error of the mean is ~0.03 with ~1,900 requests; the default
    # max_retries breaker (3) refuses a few per cent of the retries, which only lowers it.
    p = 0.5
    expected = (1 + p + p**2) * (1 + p**3 + p**6) * (1 + p**9 + p**18)
    assert expected == pytest.approx(2.0, abs=1e-3)
    amplification = per.mean()
    assert expected - 0.15 < amplification < expected + 0.1
    assert per.max() > 3  # retries above db's own: the layers multiply
    assert per.max() <= 27
    assert (per >= 1).all()
    ok = (res.requests["status"] == 200).mean()
    assert ok > 0.99  # without retries: 50 %
    db = res.summary["stats"]["db|default"]
    assert db["upstream_rq_retry"] > 0.5 * len(res.requests)


def test_retry_storm_without_retries_is_one_attempt_per_request_and_half_fail():
    res = _run("retry-storm", {f"mesh.{s}.retries": None for s in RETRY_LAYERS})
    per = _db_attempts_per_request(res)
    assert (per == 1).all()
    req = res.requests
    k = int((req["status"] == 200).sum())
    assert stats.binomtest(k, len(req), 0.5).pvalue > 1e-3
    assert all("upstream_rq_retry" not in res.summary["stats"].get(f"{s}|default", {}) for s in RETRY_LAYERS)


# --------------------------------------------------------------------------- circuit breaker


def test_circuit_breaker_fails_overflow_fast_and_bounds_the_frontend_latency():
    with_cb = _run("circuit-breaker")
    without = _run("circuit-breaker", {"mesh.recommendations.circuit_breakers": None})

    att = with_cb.attempts
    rec = att[att["service"] == "recommendations"]
    uo = rec[rec["flags"] == "UO"]
    assert len(uo) > 0.1 * len(rec)
    assert (uo["status"] == 503).all() and (uo["replica"] == -1).all()
    # Envoy's counters cover the measurement window (after the warm-up), as the rest of the summary
    in_window = uo[uo["start_s"] >= with_cb.summary["warmup_s"]]
    overflow = with_cb.summary["stats"]["recommendations|default"]
    # Envoy 1.40 counts a request refused by max_requests as active overflow, by max_pending as pending
    assert overflow.get("upstream_rq_active_overflow", 0) + overflow.get("upstream_rq_pending_overflow", 0) \
        == len(in_window)
    assert with_cb.summary["stats"]["recommendations|default"]["upstream_rq_503"] == len(in_window)
    # the calls are optional: every page is served, with or without the breaker
    assert with_cb.summary["end_to_end"]["success_rate"] == 1.0
    assert without.summary["end_to_end"]["success_rate"] == 1.0

    p99_cb = with_cb.summary["services"]["frontend"]["latency_s"]["p99"]
    p99_without = without.summary["services"]["frontend"]["latency_s"]["p99"]
    # bounded: recommendations' p99 is 300 ms and a call waits for at most 2 ahead of it
    assert p99_cb < 0.6
    # without: the queue at recommendations grows ~35/s for 20 s; several seconds at the end
    assert p99_without > 3.0
    assert p99_without > 10 * p99_cb
    no_cb = without.attempts
    assert not (no_cb["flags"] == "UO").any()
    assert "upstream_rq_pending_overflow" not in without.summary["stats"]["recommendations|default"]
    assert "upstream_rq_active_overflow" not in without.summary["stats"]["recommendations|default"]


# --------------------------------------------------------------------------- outlier ejection


def _bad_share(res) -> tuple[int, int]:
    calls = res.attempts[res.attempts["service"] == "backend"]
    return int((calls["version"] == "bad").sum()), len(calls)


def test_outlier_ejection_takes_the_bad_replica_out_and_back_in_with_growing_ejections():
    res = _run("outlier-ejection")
    ev = res.outlier_events
    ejections = ev[ev["action"] == "eject"]
    assert len(ejections) >= 4  # at least two per caller sidecar
    assert set(ev["host"]) == {"backend-bad-0"}
    stats_ = res.summary["stats"]["backend|*"]
    assert stats_["outlier_detection.ejections_enforced_total"] == len(ejections)
    assert stats_.get("outlier_detection.ejections_overflow", 0) == 0
    # the cycle, per sidecar: out for 5 s then 10 s (base_ejection_time x times ejected),
    # back on the first 1 s interval tick after that
    for _, side in ev.groupby("sidecar"):
        times = side["time_s"].tolist()
        assert side["action"].tolist()[:4] == ["eject", "uneject", "eject", "uneject"]
        assert 5.0 <= times[1] - times[0] <= 6.0 + 1e-9
        assert 10.0 <= times[3] - times[2] <= 11.0 + 1e-9
    bad, total = _bad_share(res)
    # round robin would give it 20 %; ejected it gets a few per cent (2.3 % with seed 3)
    assert bad / total < 0.05


def test_outlier_ejection_at_the_default_max_ejection_percent_never_ejects_one_of_five():
    block = _scenario("outlier-ejection").mesh["backend"]
    assert block.cluster_policies(None).outlier_detection.max_ejection_percent == 50
    default_percent = {"consecutive_5xx": 5, "interval": "1s", "base_ejection_time": "5s"}
    res = _run("outlier-ejection", {"mesh.backend.outlier_detection": default_percent})
    ev = res.outlier_events
    assert not (ev["action"] == "eject").any()
    assert res.summary["stats"]["backend|*"]["outlier_detection.ejections_overflow"] > 0
    bad, total = _bad_share(res)
    assert stats.binomtest(bad, total, 0.2).pvalue > 1e-3


# --------------------------------------------------------------------------- header canary


def test_header_canary_sends_opted_in_users_to_v2_and_a_weighted_slice_of_the_rest():
    res = _run("header-canary")
    req = res.requests.set_index("request_id")["source"]
    calls = res.attempts[res.attempts["service"] == "checkout"]
    source = calls["request_id"].map(req)
    on_v2 = calls["version"] == "v2"

    opted_in = source == "canary-users"
    assert opted_in.sum() > 0
    assert on_v2[opted_in].all()  # the first route matches x-canary: true, every time

    rest = calls[~opted_in]
    k = int((rest["version"] == "v2").sum())
    assert stats.binomtest(k, len(rest), 0.05).pvalue > 1e-3

    # 10 % opted in + 5 % of the other 90 %; the two Poisson sources make it binomial overall
    p = 0.10 + 0.05 * 0.90
    assert math.isclose(p, 0.145)
    assert stats.binomtest(int(on_v2.sum()), len(calls), p).pvalue > 1e-3


def test_header_canary_route_order_matters():
    """Weighted route first: it matches everything, so opted-in users get v2 only 5 % of the time."""
    scn = _scenario("header-canary")
    routes = scn.mesh["checkout"].routes
    assert [r.name for r in routes] == ["opted-in", "weighted"]
    weighted = {"name": "weighted", "route": {"v1": 95, "v2": 5}}
    pinned = {"name": "opted-in", "match": [{"headers": {"x-canary": {"exact": "true"}}}], "route": "v2"}
    swapped = apply_overrides(scn, {"mesh.checkout.routes": [weighted, pinned], "duration": "10s"})
    res = simulate(swapped)
    req = res.requests.set_index("request_id")["source"]
    calls = res.attempts[res.attempts["service"] == "checkout"]
    opted_in = calls["request_id"].map(req) == "canary-users"
    k = int((calls.loc[opted_in, "version"] == "v2").sum())
    assert stats.binomtest(k, int(opted_in.sum()), 0.05).pvalue > 1e-3
