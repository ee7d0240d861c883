"""isotope service graphs imported with isotope's runtime semantics (meshsim/interop/isotope.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshsim import ConfigError
from meshsim.cli import app
from meshsim.config import apply_overrides, load_scenario, parse_scenario
from meshsim.interop.isotope import import_isotope, isotope_error_period, parse_go_duration
from meshsim.sim import simulate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "isotope" / "three-tier.yaml"
runner = CliRunner()


def _graph(tmp_path: Path, text: str, name: str = "graph.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _imp(tmp_path: Path, text: str, **kw):
    return import_isotope(_graph(tmp_path, text), **kw)


CHAIN = """\
services:
- name: a
  isEntrypoint: true
  errorRate: 10%
  script:
  - call: b
- name: b
  errorRate: 0.1
"""


# --------------------------------------------------------------------------- error spacing


@pytest.mark.parametrize(("rate", "period"), [(0.1, 10), (0.3, 3), (0.6, 1), (1.0, 1), (0.0001, 10000),
                                              (0.02, 50), (0.07, 14)])
def test_error_period_is_isotopes_integer_arithmetic(rate, period):
    # service/pkg/srv/handler.go: reqCount >= 10000/uint64(ErrorRate*10000)
    assert isotope_error_period(rate) == period


def test_error_rate_below_one_in_ten_thousand_is_refused_as_isotope_divides_by_zero(tmp_path):
    with pytest.raises(ConfigError, match=r"services\[0\] \(a\): errorRate: .*below 0.01%"):
        _imp(tmp_path, "services: [{name: a, isEntrypoint: true, errorRate: 0.00001}]")


def test_error_rate_becomes_even_spacing_one_in_n_with_status_500(tmp_path):
    r = _imp(tmp_path, CHAIN)
    assert r.scenario["services"]["a"]["errors"] == {"rate": 0.1, "status": 500, "spacing": "even"}
    assert r.scenario["services"]["b"]["errors"] == {"rate": 0.1, "status": 500, "spacing": "even"}


def test_error_rate_that_is_not_one_in_n_is_imported_as_isotope_runs_it_with_a_warning(tmp_path):
    r = _imp(tmp_path, "services: [{name: a, isEntrypoint: true, errorRate: 30%}]")
    assert r.scenario["services"]["a"]["errors"]["rate"] == pytest.approx(1 / 3)
    assert any("fail every 3rd request (33.33%)" in w for w in r.warnings)
    scn = parse_scenario(r.scenario)
    from fractions import Fraction
    assert Fraction(scn.services["a"].errors.rate).limit_denominator(10**9) == Fraction(1, 3)


@pytest.mark.parametrize(("value", "ok"), [("10%", True), (0.1, True), (1, True), ("0.1", False), (1.5, False),
                                           ("150%", False), (True, False)])
def test_error_rate_is_a_number_in_0_1_or_a_percent_string(tmp_path, value, ok):
    text = f"services: [{{name: a, isEntrypoint: true, errorRate: {value!r}}}]".replace("'", '"')
    if ok:
        _imp(tmp_path, text)
    else:
        with pytest.raises(ConfigError, match=r"errorRate"):
            _imp(tmp_path, text)


# --------------------------------------------------------------------------- services and scripts


def test_services_do_no_cpu_work_and_sleep_is_a_wait(tmp_path):
    r = _imp(tmp_path, """\
        services:
        - name: a
          isEntrypoint: true
          script: [{sleep: 1m30s}, {sleep: 250us}, {sleep: 1.5ms}]
        """)
    a = r.scenario["services"]["a"]
    assert a["latency"] == "0ms" and a["concurrency"] == "async"
    assert a["script"] == [{"sleep": "90s"}, {"sleep": 0.00025}, {"sleep": 0.0015}]
    steps = parse_scenario(r.scenario).services["a"].resolved_versions("a")["default"].script
    assert [s.kind for s in steps] == ["work", "sleep", "sleep", "sleep"]


@pytest.mark.parametrize(("text", "seconds"), [("10ms", 0.01), ("1h2m3s", 3723.0), ("0", 0.0), ("1.5s", 1.5),
                                               ("100ns", 1e-7), ("2µs", 2e-6)])
def test_sleep_reads_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "-1s", "ms", "1d", ""])
def test_sleep_refuses_what_go_refuses(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_defaults_fill_what_a_service_leaves_out(tmp_path):
    r = _imp(tmp_path, """\
        defaults: {numReplicas: 4, errorRate: 50%, script: [{sleep: 5ms}]}
        services:
        - {name: a, isEntrypoint: true, script: [{call: b}]}
        - {name: b, numReplicas: 1, errorRate: 0}
        """)
    a, b = r.scenario["services"]["a"], r.scenario["services"]["b"]
    assert a["replicas"] == 4 and a["errors"]["rate"] == 0.5 and a["script"] == [{"call": "b"}]
    assert "replicas" not in b and "errors" not in b and b["script"] == [{"sleep": "5ms"}]


def test_call_forms_probability_and_extra_headers(tmp_path):
    r = _imp(tmp_path, """\
        services:
        - name: a
          isEntrypoint: true
          script:
          - call: b
          - call: {service: b, probability: 30, extra-header: {x-user: jason}}
          - call: {service: b, probability: 100}
          - call: {service: b, probability: 0}
        - name: b
        """)
    assert r.scenario["services"]["a"]["script"] == [
        {"call": "b"},
        {"call": {"service": "b", "probability": 0.3, "headers": {"x-user": "jason"}}},
        {"call": "b"},
        {"call": "b"},  # isotope: 0 means "not set", always called
    ]


def test_concurrent_steps_become_parallel_groups(tmp_path):
    r = _imp(tmp_path, """\
        services:
        - name: a
          isEntrypoint: true
          script:
          - [{call: b}, {call: c}]
          - []
          - [{sleep: 5ms}, {sleep: 20ms}]
        - {name: b}
        - {name: c}
        """)
    assert r.scenario["services"]["a"]["script"] == [
        {"parallel": [{"call": "b"}, {"call": "c"}]},
        {"sleep": "20ms"},  # only sleeps, run at once: the longest
    ]


@pytest.mark.parametrize(("script", "fragment"), [
    ("[[{call: b}, {sleep: 5ms}]]", "script[0]: a concurrent step with both sleep and call"),
    ("[[[{call: b}]]]", "script[0][0]: concurrent commands may not be nested"),
    ("[{call: c}]", "script[0].call: cannot call undefined service 'c'"),
    ("[{call: b, sleep: 1ms}]", "script[0]: a command is a mapping with one key"),
    ("[{slep: 1ms}]", "script[0].slep: unknown command 'slep'; did you mean 'sleep'?"),
    ("[{call: {service: b, probability: 150}}]", "script[0].call.probability: 150 is out of range"),
    ("[{sleep: 10}]", "script[0].sleep: 10 is not a Go duration"),
])
def test_script_errors_name_the_service_entry_and_the_field(tmp_path, script, fragment):
    with pytest.raises(ConfigError) as err:
        _imp(tmp_path, f"services:\n- {{name: a, isEntrypoint: true, script: {script}}}\n- {{name: b}}\n")
    msg = str(err.value)
    assert "graph.yaml: services[0] (a): " in msg and fragment in msg and "\n" not in msg


def test_unknown_keys_are_refused_with_a_suggestion_and_ignored_ones_warned(tmp_path):
    with pytest.raises(ConfigError, match=r"services\[0\] \(a\): errorRat: unknown key 'errorRat'; did you mean "
                                          r"'errorRate'\?"):
        _imp(tmp_path, "services: [{name: a, isEntrypoint: true, errorRat: 1%}]")
    r = _imp(tmp_path, "defaults: {numRbacPolicies: 3}\nservices: [{name: a, isEntrypoint: true, memoryUsage: 80%}]")
    assert any("numRbacPolicies" in w and "not read by isotope" in w for w in r.warnings)
    assert any("memoryUsage" in w for w in r.warnings)


def test_fields_without_effect_on_the_simulation_are_warned(tmp_path):
    r = _imp(tmp_path, """\
        defaults: {requestSize: 1 KB, responseSize: 16 KB}
        services:
        - {name: a, isEntrypoint: true, type: grpc, namespace: n1, cluster: east, labels: {x: y},
           script: [{call: {service: b, hostname: b.n2:8080, size: 10K}}]}
        - {name: b, cluster: west}
        """)
    text = "\n".join(r.warnings)
    for what in ("request sizes", "response sizes", "type grpc is imported as HTTP", "namespace",
                 "labels", "hostname"):
        assert what in text
    assert r.scenario["services"]["a"]["zone"] == "east" and r.scenario["services"]["b"]["zone"] == "west"
    assert r.scenario["traffic"][0]["zone"] == "east"


def test_entrypoints_receive_the_traffic_split_evenly(tmp_path):
    r = _imp(tmp_path, "services: [{name: a, isEntrypoint: true}, {name: b, isEntrypoint: true}]", rate="300/s")
    assert [(t["to"], t["rate"]) for t in r.scenario["traffic"]] == [("a", "150/s"), ("b", "150/s")]
    r = _imp(tmp_path, "services: [{name: a, script: [{call: b}]}, {name: b}]")
    assert [t["to"] for t in r.scenario["traffic"]] == ["a"]
    assert r.scenario["traffic"][0]["rate"] == "100/s"  # the documented default
    assert any("no service has isEntrypoint" in w for w in r.warnings)


def test_a_cycle_needs_max_depth(tmp_path):
    text = "services: [{name: a, isEntrypoint: true, script: [{call: b}]}, {name: b, script: [{call: a}]}]"
    with pytest.raises(ConfigError, match=r"cycle a -> b -> a.*--max-depth"):
        _imp(tmp_path, text)
    assert _imp(tmp_path, text, max_depth=4).scenario["max_depth"] == 4


@pytest.mark.parametrize(("text", "fragment"), [
    ("services: [{name: a, numReplicas: 0}]", "numReplicas: 0: meshsim services need at least 1 replica"),
    ("services: [{name: a.b}]", "name: 'a.b' is not a meshsim service name"),
    ("services: [{name: a}, {name: a}]", "service 'a' is defined twice"),
    ("services: []", "services is empty"),
    ("servics: []", "unknown key 'servics'; did you mean 'services'?"),
    ("services: [{name: a, type: tcp}]", "'tcp' is not a service type"),
])
def test_invalid_graphs_are_refused_in_one_line(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        _imp(tmp_path, text)
    assert fragment in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- runs


def _run(scenario: dict, seed: int, duration: str = "20s"):
    scn = apply_overrides(parse_scenario(scenario), {"duration": duration, "drain": "1s"})
    return simulate(scn, seed=seed).summary


@pytest.mark.parametrize("seed", [1, 2])
def test_chain_of_two_ten_percent_services_succeeds_81_percent(tmp_path, seed):
    # isotope: a fails every 10th request before calling b; b fails every 10th request it gets;
    # a failed call fails a. End to end: 0.9 * 0.9 = 0.81, and b sees 90 % of a's requests.
    # The spacing is deterministic, so the only slack is at the window's edges (a counter's
    # phase, requests still open at the end): under 1 % of ~4,000 requests, whatever the seed.
    s = _run(_imp(tmp_path, CHAIN, rate="200/s").scenario, seed)
    assert s["end_to_end"]["success_rate"] == pytest.approx(0.81, abs=0.01)
    a, b = s["services"]["a"]["requests"], s["services"]["b"]["requests"]
    assert b / a == pytest.approx(0.9, abs=0.01)
    assert s["services"]["b"]["success_rate"] == pytest.approx(0.9, abs=0.005)


def test_fan_out_fails_the_caller_when_any_concurrent_call_fails(tmp_path):
    text = """\
        services:
        - {name: a, isEntrypoint: true, script: [[{call: b}, {call: c}]]}
        - {name: b, errorRate: 10%}
        - {name: c, errorRate: 20%}
        """
    s = _run(_imp(tmp_path, text, rate="200/s").scenario, seed=3)
    # b and c see the same requests in the same order, and isotope's counters are deterministic:
    # b's failures (every 10th) fall on c's (every 5th), so 80 % succeed, not 0.9 * 0.8 = 72 %
    assert s["end_to_end"]["success_rate"] == pytest.approx(0.8, abs=0.005)
    assert s["services"]["b"]["requests"] == s["services"]["c"]["requests"] == s["services"]["a"]["requests"]


def test_example_imports_and_runs_and_import_is_deterministic(tmp_path):
    r1, r2 = import_isotope(EXAMPLE), import_isotope(EXAMPLE)
    assert r1.text == r2.text and r1.warnings == r2.warnings
    out = tmp_path / "three-tier.yaml"
    r1.write(out)
    scn = apply_overrides(load_scenario(out), {"duration": "3s", "drain": "1s"})
    s1, s2 = simulate(scn, seed=5).summary, simulate(scn, seed=5).summary
    assert s1["end_to_end"] == s2["end_to_end"]
    assert s1["end_to_end"]["requests"] > 200 and s1["end_to_end"]["success_rate"] < 1.0


# --------------------------------------------------------------------------- command line


def test_cli_writes_the_scenario_and_prints_warnings(tmp_path):
    out = tmp_path / "s.yaml"
    res = runner.invoke(app, ["import", "isotope", str(EXAMPLE), "-o", str(out), "--rate", "50/s"])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("# Imported by `meshsim import isotope`")
    assert load_scenario(out).traffic[0].rate == 50.0
    assert "warning: " in res.stderr and "wrote" in res.stdout


def test_cli_error_is_one_line_exit_2_and_nothing_is_written(tmp_path):
    bad = _graph(tmp_path, "services: [{name: a, isEntrypoint: true, script: [{call: nope}]}]")
    out = tmp_path / "s.yaml"
    out.write_text("keep me\n")
    res = runner.invoke(app, ["import", "isotope", str(bad), "-o", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "script[0].call" in lines[0]
    assert "Traceback" not in res.output
    assert out.read_text() == "keep me\n"
    assert set(tmp_path.iterdir()) == {bad, out}  # no temporary file left behind


def test_each_replica_keeps_its_own_error_counter(tmp_path):
    # isotope's counter lives in each replica's process: b's two replicas each fail their own 10th
    # request, i.e. requests 19 and 20 of every 20 under round robin, while c fails 5, 10, 15, 20;
    # a fails when either does: 5 of every 20 (75 %), not the 80 % of one counter for all of b
    text = """\
        services:
        - {name: a, isEntrypoint: true, script: [[{call: b}, {call: c}]]}
        - {name: b, numReplicas: 2, errorRate: 10%}
        - {name: c, errorRate: 20%}
        """
    s = _run(_imp(tmp_path, text, rate="200/s").scenario, seed=4)
    assert s["end_to_end"]["success_rate"] == pytest.approx(0.75, abs=0.005)
    assert s["services"]["b"]["success_rate"] == pytest.approx(0.9, abs=0.005)
