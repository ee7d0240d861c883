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
                 "services: {a: {latency: 1ms, script: [{call: b}]}, b: {latency: 1ms}}\n"
                 "chaos: [{name: c, kind: crash, target: {service: b}, start: 0s, duration: 1s}]\n")
    res = CliRunner().invoke(app, ["conformance", str(f)])
    assert res.exit_code == 2
    assert "chaos" in res.output


def test_multihop_scenarios_are_recognized():
    from meshsim.conformance import check_multihop_scope, is_multihop

    assert not is_multihop(_scn())
    assert is_multihop(_scn([{"call": "b"}]))
    assert is_multihop(_scn(["work", {"sleep": "1ms"}]))
    check_multihop_scope(_scn([{"call": "b"}]))


def test_standin_script_places_the_error_draw_as_the_simulator_does():
    from meshsim.config import Call, Parallel, Sleep, Work
    from meshsim.conformance._standin import compile_script

    call = Call(service="b")
    kinds = [k[0] for k in compile_script((Work(), call, Work()), has_errors=True)]
    assert kinds == ["work", "err", "call", "work"]  # after the first work step only
    kinds = [k[0] for k in compile_script((Sleep(latency="1ms"), Parallel(parallel=(call, call))), has_errors=True)]
    assert kinds == ["err", "sleep", "par"]  # no work step: first of all
    assert [k[0] for k in compile_script((Work(), call), has_errors=False)] == ["work", "call"]
    (_, spec), = compile_script((call,), has_errors=False)
    assert (spec.service, spec.host, spec.path, spec.method, spec.optional) == ("b", "b", "/", "GET", False)


def test_precise_sleep_wakes_close_to_its_deadline():
    import asyncio
    import time

    from meshsim.conformance._standin import PreciseSleep

    async def main() -> list[float]:
        sleep = PreciseSleep(asyncio.get_running_loop())
        late = []
        try:
            for d in (0.0003, 0.0021, 0.0047):
                t = time.monotonic()
                await sleep(d)
                late.append(time.monotonic() - t - d)
        finally:
            sleep.close()
        return late

    late = asyncio.run(main())
    assert min(late) >= 0
    assert sorted(late)[1] < 0.001  # asyncio.sleep would end up to 1 ms late (epoll's whole milliseconds)


def test_version_clusters_follow_the_exported_routes():
    from meshsim.conformance._multihop import version_clusters

    scn = parse_scenario({"name": "x", "duration": "1s", "traffic": [{"to": "a", "rate": 1}],
                          "services": {"a": {"latency": "1ms", "script": ["work", {"call": "b"}, {"call": "c"}]},
                                       "b": {"latency": "1ms", "versions": {"v1": {}, "v2": {}}},
                                       "c": {"latency": "1ms", "versions": {"v1": {}, "v2": {}}}},
                          "mesh": {"b": {"routes": [{"route": {"v1": 50, "v2": 50}}]}}})
    vc = version_clusters(scn)
    assert vc[("ingress", "a", "default")] == "outbound|80||a"
    assert vc[("a", "b", "v2")] == "outbound|80|v2|b"  # routed by version: the version's subset cluster
    assert vc[("a", "c", "v2")] == "outbound|80||c"  # no routes: the whole service's cluster
    assert ("ingress", "b", "v1") not in vc


def test_calling_replicas_count_the_simulators_sidecars_towards_a_service():
    from meshsim.conformance._multihop import calling_replicas

    scn = parse_scenario({"name": "x", "duration": "1s", "traffic": [{"to": "a", "rate": 1}],
                          "services": {"a": {"latency": "1ms", "replicas": 3,
                                             "script": ["work", {"parallel": [{"call": "b"}, {"call": "b"}]}]},
                                       "b": {"latency": "1ms", "versions": {
                                           "v1": {"replicas": 2}, "v2": {"script": ["work", {"call": "c"}]}}},
                                       "c": {"latency": "1ms"}}})
    assert calling_replicas(scn) == {"b": 3, "c": 1}
