"""The harness's own pieces: stats parsing, scope checks, process cleanup, the CLI's refusal."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from meshsim.config import parse_scenario
from meshsim.conformance import Child, ConformanceError, check_scope, cluster_sim_keys, free_port_block
from meshsim.conformance._envoy import parse_stats


def test_parse_stats_splits_exported_cluster_names():
    text = "\n".join([
        "cluster.outbound|80||backend.upstream_rq_total: 12",
        "cluster.outbound|80|v1|up.outlier_detection.ejections_active: 1",
        "cluster.outbound|80|v1|up.upstream_rq_time: P0(nan,1) P25(nan,2)",
        "http.outbound.rq_total: 3",
    ])
    assert parse_stats(text) == {
        "outbound|80||backend": {"upstream_rq_total": 12},
        "outbound|80|v1|up": {"outlier_detection.ejections_active": 1},
    }


def _scn(script=None):
    svc = {"latency": "1ms"}
    if script is not None:
        svc["script"] = script
    return parse_scenario({"name": "x", "duration": "1s", "traffic": [{"to": "a", "rate": 1}],
                           "services": {"a": svc, "b": {"latency": "1ms", "versions": {"v1": {}, "v2": {}}}}})


def test_scope_refuses_entry_services_that_call_others():
    check_scope(_scn())
    with pytest.raises(ConformanceError, match="services.a"):
        check_scope(_scn([{"call": "b"}]))


def test_cluster_names_map_to_simulator_stat_keys():
    keys = cluster_sim_keys(_scn())
    assert keys["outbound|80||a"] == "a|default"
    assert keys["outbound|80||b"] == "b|*"
    assert keys["outbound|80|v2|b"] == "b|v2"


def test_child_is_stopped_by_pid_even_on_failure():
    with pytest.raises(RuntimeError), Child([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        proc = child.proc
        raise RuntimeError("boom")
    assert proc.poll() is not None


def test_free_port_block_is_bindable():
    import socket

    base = free_port_block(3)
    for p in range(base, base + 3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_cli_refuses_a_scenario_out_of_scope(tmp_path):
    from meshsim.cli import app

    f = tmp_path / "s.yaml"
    f.write_text("name: x\nduration: 1s\ntraffic: [{to: a, rate: 1}]\n"
                 "services: {a: {latency: 1ms, script: [{call: b}]}, b: {latency: 1ms}}\n")
    res = CliRunner().invoke(app, ["conformance", str(f)])
    assert res.exit_code == 2
    assert "services.a" in res.output
