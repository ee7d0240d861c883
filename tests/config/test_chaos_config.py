"""The chaos block: accepted spellings, cross-checks against the services, one-line errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

from meshsim import ConfigError
from meshsim.config import (
    Brownout,
    Crash,
    ErrorsFault,
    LatencyFault,
    Partition,
    Resets,
    Slowdown,
    Target,
    apply_overrides,
    parse_scenario,
    target_replicas,
)


def _scenario(chaos: Any, **top: Any):
    data = {"name": "c", "duration": "60s", "services": {
        "front": {"latency": "1ms", "replicas": 2, "zones": ["a", "b"], "script": [{"call": "reviews"}]},
        "reviews": {"latency": "1ms", "zones": ["a", "b"], "versions": {"v1": {"replicas": 2}, "v3": {}}},
        "db": {"latency": "1ms", "replicas": 3}},
        "traffic": [{"to": "front", "rate": "10/s"}], "chaos": chaos, **top}
    return parse_scenario(data, source="s.yaml")


def test_every_kind_parses_with_its_settings():
    scn = _scenario([
        {"kind": "crash", "target": {"service": "reviews", "version": "v3", "replica": 0}, "start": "10s",
         "duration": "5s"},
        {"kind": "crash", "target": {"zone": "b"}, "start": "1m"},
        {"kind": "latency", "target": "db", "add": "200ms"},
        {"kind": "latency", "target": "front", "multiply": 3},
        {"kind": "errors", "target": "db", "rate": "10%", "start": "20s", "duration": "1s"},
        {"kind": "slowdown", "target": {"service": "reviews", "zone": "a"}, "factor": 2},
        {"kind": "partition", "from": {"zone": "a"}, "to": {"service": "db"}, "name": "cut"},
        {"kind": "resets", "target": "reviews", "rate": 0.01},
        {"kind": "brownout", "target": {"service": "db", "replica": 2}, "rate": "5%", "status": 500, "factor": 4,
         "start": "30s"},
    ])
    kinds = [type(f) for f in scn.chaos]
    assert kinds == [Crash, Crash, LatencyFault, LatencyFault, ErrorsFault, Slowdown, Partition, Resets, Brownout]
    crash, zone, add, mult, err, slow, cut, resets, brown = scn.chaos
    assert (crash.start, crash.duration, crash.end()) == (10.0, 5.0, 15.0)
    assert zone.duration is None and math.isinf(zone.end()) and zone.end(120.0) == 120.0
    assert add.add.mean() == pytest.approx(0.2) and add.detail() == "add 200ms" and mult.multiply == 3
    assert (err.rate, err.status) == (0.1, 503)  # a broken dependency's 503 unless told otherwise
    assert cut.from_ == Target(zone="a") and cut.to == Target(service="db") and cut.name == "cut"
    assert (brown.rate, brown.status, brown.factor) == (0.05, 500, 4.0)
    assert target_replicas(scn, zone.target) == [("front", "default", 1), ("reviews", "v1", 1)]
    assert target_replicas(scn, slow.target) == [("reviews", "v1", 0), ("reviews", "v3", 0)]
    assert [t.describe() for t in (crash.target, zone.target, slow.target, add.target)] == \
        ["reviews/v3/0", "zone b", "reviews in a", "db"]
    assert resets.detail() == "rate 1%" and brown.detail() == "rate 5%, status 500, factor 4"


def test_no_chaos_is_an_empty_tuple_and_overrides_reach_into_the_block():
    assert _scenario(None).chaos == ()
    scn = _scenario([{"kind": "crash", "target": "db", "start": "1s", "duration": "2s"}])
    moved = apply_overrides(scn, {"chaos[0].start": "20s", "chaos[0].target": {"service": "db", "replica": 1}})
    assert moved.chaos[0].start == 20.0 and moved.chaos[0].target.replica == 1
    with pytest.raises(ConfigError, match=r"chaos\[0\].target.replica: replica 5 is out of range"):
        apply_overrides(moved, {"chaos[0].target.replica": 5})


BAD = [
    ({"target": "db"}, "chaos[0]: a fault needs a kind (one of: crash, latency, errors, slowdown, partition,"),
    ({"kind": "crsh", "target": "db"}, "chaos[0].kind: 'crsh' is not a fault kind; did you mean 'crash'?"),
    ({"kind": "crash"}, "chaos[0]: missing required key 'target'"),
    ({"kind": "crash", "target": "dbb"}, "chaos[0].target: 'dbb' is not a service; did you mean 'db'?"),
    ({"kind": "crash", "target": {"service": "reviews", "version": "v2"}},
     "chaos[0].target.version: 'v2' is not a version of reviews (versions: v1, v3)"),
    ({"kind": "crash", "target": {"service": "reviews", "version": "v33"}},
     "chaos[0].target.version: 'v33' is not a version of reviews; did you mean 'v3'? (versions: v1, v3)"),
    ({"kind": "crash", "target": {"service": "db", "version": "v1"}},
     "chaos[0].target.version: 'v1' is not a version: db declares no versions"),
    ({"kind": "crash", "target": {"service": "reviews", "replica": 0}},
     "chaos[0].target.replica: replica 0 needs a version: reviews has versions v1, v3"),
    ({"kind": "crash", "target": {"service": "db", "replica": 3}},
     "chaos[0].target.replica: replica 3 is out of range: db has 3 replicas (indices 0..2)"),
    ({"kind": "crash", "target": {"service": "db", "replica": -1}}, "chaos[0].target.replica: "),
    ({"kind": "crash", "target": {"zone": "c"}}, "chaos[0].target.zone: 'c' is not a zone of any replica (zones: a, b)"),
    ({"kind": "crash", "target": {"service": "db", "zone": "a"}}, "chaos[0].target: db in a selects no replica"),
    ({"kind": "crash", "target": {"version": "v1"}}, "chaos[0].target: a target names a service, a zone or both"),
    ({"kind": "crash", "target": "db", "duration": "-5s"}, "chaos[0].duration: '-5s' is negative"),
    ({"kind": "crash", "target": "db", "duration": 0}, "chaos[0].duration: 0 must be a duration > 0"),
    ({"kind": "crash", "target": "db", "start": "-1s"}, "chaos[0].start: '-1s' is negative"),
    ({"kind": "crash", "target": "db", "start": "3m"},
     "chaos[0].start: 3m is after the run ends (2m: duration 1m + drain 1m); the fault would never happen"),
    ({"kind": "crash", "target": "db", "durration": "5s"},
     "chaos[0]: unknown key 'durration'; did you mean 'duration'?"),
    ({"kind": "crash", "target": "db", "rate": "5%"}, "chaos[0]: unknown key 'rate'"),
    ({"kind": "latency", "target": "db"}, "chaos[0]: give either add (a delay such as 200ms) or multiply"),
    ({"kind": "latency", "target": "db", "add": "1ms", "multiply": 2}, "not both"),
    ({"kind": "latency", "target": "db", "multiply": 0.5}, "chaos[0].multiply: 0.5 is out of range; must be >= 1"),
    ({"kind": "latency", "target": "db", "add": "20 parsecs"}, "chaos[0].add: '20 parsecs' is not a latency"),
    ({"kind": "errors", "target": "db"}, "chaos[0]: missing required key 'rate'"),
    ({"kind": "errors", "target": "db", "rate": 0}, "chaos[0].rate: 0.0 injects nothing; the rate must be > 0"),
    ({"kind": "errors", "target": "db", "rate": 1.5}, "chaos[0].rate: 1.5 is outside [0, 1]"),
    ({"kind": "errors", "target": "db", "rate": "1%", "status": 200},
     "chaos[0].status: 200 is not an HTTP error status: expected an integer in 400..599"),
    ({"kind": "slowdown", "target": "db", "factor": 0.5}, "chaos[0].factor: 0.5 is out of range; must be >= 1"),
    ({"kind": "resets", "target": "db", "rate": 0}, "chaos[0].rate: 0.0 resets nothing"),
    ({"kind": "partition", "from": "front", "target": "db"}, "chaos[0]: unknown key 'target'"),
    ({"kind": "partition", "from": {"zone": "a"}, "to": "front"},
     "chaos[0].to: from and to both select front/default/0; a partition separates two disjoint sets"),
    ({"kind": "partition", "from": "front", "to": {"service": "dv"}}, "chaos[0].to.service: 'dv' is not a service"),
]


@pytest.mark.parametrize(("fault", "message"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_faults_are_refused_with_one_line_naming_the_field(fault, message):
    with pytest.raises(ConfigError) as info:
        _scenario([fault])
    text = str(info.value)
    assert text.startswith("s.yaml: ") and "\n" not in text
    assert message in text, text


def test_overlapping_faults_of_one_kind_on_one_replica_are_refused():
    first = {"kind": "errors", "target": "db", "rate": "10%", "start": "10s", "duration": "20s"}
    with pytest.raises(ConfigError, match=r"chaos\[1\]: overlaps chaos\[0\] \(errors, 10s\.\.30s\) on db/default/0: "
                                          r"a replica takes one error injection at a time"):
        _scenario([first, {"kind": "brownout", "target": {"service": "db", "replica": 0}, "rate": "1%", "factor": 2,
                           "start": "29s"}])
    with pytest.raises(ConfigError, match="one crash at a time"):
        _scenario([{"kind": "crash", "target": {"zone": "a"}, "start": "5s"},
                   {"kind": "crash", "target": "front", "start": "50s", "duration": "1s"}])
    # back to back, different kinds, or different replicas: accepted
    ok = _scenario([first, {"kind": "errors", "target": "db", "rate": "1%", "start": "30s"},
                    {"kind": "slowdown", "target": "db", "factor": 2, "start": "10s"},
                    {"kind": "crash", "target": {"zone": "a"}, "start": "5s", "duration": "5s"},
                    {"kind": "crash", "target": {"zone": "b"}, "start": "5s", "duration": "5s"},
                    {"kind": "partition", "from": {"zone": "a"}, "to": {"zone": "b"}},
                    {"kind": "partition", "from": "front", "to": "db"}])
    assert len(ok.chaos) == 7


def test_the_chaos_block_must_be_a_list_of_mappings():
    with pytest.raises(ConfigError, match="chaos: expected a list"):
        _scenario({"kind": "crash", "target": "db"})
    with pytest.raises(ConfigError, match=r"chaos\[0\]: 'crash' is not a fault; a fault is a mapping"):
        _scenario(["crash"])
