"""The measured effects: what the findings say is what the simulation shows (fixed seeds, stated tolerances)."""

from __future__ import annotations

import re

from lint_cases import bootstrap, scenario

from meshsim.config import apply_overrides, parse_scenario
from meshsim.lint import lint_envoy, lint_scenario
from meshsim.policies.outlier import OutlierPolicy
from meshsim.sim import simulate

OD = {"consecutive_5xx": 5, "interval": "1s"}


def _finding(findings, code):
    (f,) = [f for f in findings if f.code == code]
    return f


def test_max_ejection_probe_reports_what_the_simulation_shows() -> None:
    f = _finding(lint_scenario(scenario({"outlier_detection": OD}), measure=True), "MS301")
    m = re.search(r"5 hosts, 1 failing .*?: 0 ejections \((\d+) refused as ejections_overflow\), the failing host "
                  r"answered (\d+) % of requests; with max_ejection_percent 20: ejected after its (\d+)th request, "
                  r"([\d.]+) % of requests", f.effect)
    assert m, f.effect
    refused, share, after, share_fixed = int(m[1]), int(m[2]), int(m[3]), float(m[4])
    # round robin over 5 hosts: the failing one answers a fifth of the ~1000 requests (200 503s); with
    # nothing ejected, every 5th failure in a row is a refused detection of both the 5xx and the gateway
    # detector (the gateway one is not enforced, but its overflow is counted): 2 x 200 / 5 = 80
    assert abs(share - 20) <= 2
    assert abs(refused - 80) <= 5
    # consecutive_5xx 5: ejected on its 5th failure, then out for the rest of the probe (30 s base ejection)
    assert after == 5 and share_fixed < 2.0
    # the same probe built by hand, run by the engine: the same count
    probe = parse_scenario({
        "name": "probe", "seed": 3, "duration": 10, "drain": 1,
        "services": {"probe": {"workers": 64, "latency": "5ms", "versions": {
            "ok": {"replicas": 4}, "failing": {"replicas": 1, "errors": {"rate": 1.0, "status": 503}}}}},
        "traffic": [{"name": "client", "to": "probe", "rate": 100}],
        "mesh": {"probe": {"outlier_detection": OutlierPolicy.model_validate(OD)}},
    })
    stats = simulate(probe).summary["stats"]["probe|*"]
    assert stats["outlier_detection.ejections_overflow"] == refused
    assert "outlier_detection.ejections_enforced_total" not in stats


def test_retry_overflow_is_measured_in_the_scenario_and_the_estimate_is_near_it() -> None:
    scn = scenario({"retries": {"retry_on": "5xx", "num_retries": 2}},
                   api={"replicas": 2, "errors": {"rate": "50%", "status": 503}}, duration="5s")
    f = _finding(lint_scenario(scn, measure=True), "MS107")
    est = float(re.search(r"an estimated (\d+)% of retries overflow", f.message)[1]) / 100
    m = re.search(r"measured over 5 s of this scenario \(seed 3\): (\d+) of (\d+) retries to api overflowed",
                  f.effect)
    assert m, f.effect
    overflow, decided = int(m[1]), int(m[2])
    # the same short run, by hand
    short = apply_overrides(scn, {"duration": 5, "warmup": 0, "drain": 2, "record": "summary"})
    stats = simulate(short, seed=3).summary["stats"]["api|default"]
    assert stats["upstream_rq_retry_overflow"] == overflow
    assert stats["upstream_rq_retry"] + overflow == decided
    # the first-order estimate (Little's law + Erlang loss) against a long run: within a factor of 4
    long = simulate(apply_overrides(scn, {"duration": 60, "record": "summary"}), seed=3).summary["stats"]["api|default"]
    share = long["upstream_rq_retry_overflow"] / (long["upstream_rq_retry"] + long["upstream_rq_retry_overflow"])
    assert 0.005 < share and share / 4 <= est <= share * 4, (est, share)


def test_panic_probe_shows_traffic_returning_to_ejected_hosts() -> None:
    scn = scenario({"outlier_detection": {**OD, "max_ejection_percent": 100}}, api={"replicas": 3})
    f = _finding(lint_scenario(scn, measure=True), "MS302")
    m = re.search(r"3 hosts, 2 failing .*?: 2 ejections, yet the failing hosts answered (\d+) % of requests "
                  r"\(lb_healthy_panic (\d+)\); with healthy_panic_threshold 0: ([\d.]+) %", f.effect)
    assert m, f.effect
    assert int(m[1]) >= 50 and int(m[2]) > 0 and float(m[3]) < 10


def test_envoy_clusters_are_probed_with_their_listed_endpoints() -> None:
    cfg = bootstrap(cluster={"outlier_detection": {"consecutive_5xx": 3}}, hosts=3)
    (f,) = lint_envoy(cfg, measure=True)
    assert f.code == "MS301" and f.effect.startswith("probe: 3 hosts, 1 failing")
    assert "with max_ejection_percent 34: ejected after its 3rd request" in f.effect
    (g,) = lint_envoy(cfg)
    assert g.effect is None
