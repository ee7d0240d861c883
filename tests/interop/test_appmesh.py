"""App Mesh routes and virtual nodes, translated as App Mesh's Envoys run them (meshsim/interop/appmesh.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshsim import ConfigError
from meshsim.cli import app
from meshsim.config import apply_overrides, load_scenario, parse_scenario
from meshsim.interop.appmesh import import_appmesh, ingress_capacity
from meshsim.policies.retry import RetryPolicy
from meshsim.sim import simulate

ROOT = Path(__file__).resolve().parents[2]
BOOKINFO = sorted((ROOT / "examples" / "appmesh" / "bookinfo").glob("*.json"))
COLORAPP = ROOT / "examples" / "appmesh" / "k8s" / "colorapp.yaml"
runner = CliRunner()


def node(name: str, protocol: str = "http", backends: tuple[str, ...] = (), **listener) -> dict:
    spec: dict = {"listeners": [{"portMapping": {"port": 8080, "protocol": protocol}, **listener}]}
    if backends:
        spec["backends"] = [{"virtualService": {"virtualServiceName": b}} for b in backends]
    return {"meshName": "m", "virtualNodeName": name, "spec": spec}


def route(name: str, targets: dict[str, int], kind: str = "httpRoute", priority: int | None = None,
          router: str = "svc-router", **body) -> dict:
    body.setdefault("match", {"prefix": "/"} if kind != "grpcRoute" else {})
    body["action"] = {"weightedTargets": [{"virtualNode": n, "weight": w} for n, w in targets.items()]}
    spec: dict = {kind: body}
    if priority is not None:
        spec["priority"] = priority
    return {"meshName": "m", "virtualRouterName": router, "routeName": name, "spec": spec}


def vs(name: str, router: str | None = None, node_name: str | None = None) -> dict:
    provider = {"virtualRouter": {"virtualRouterName": router}} if router else \
        {"virtualNode": {"virtualNodeName": node_name}}
    return {"meshName": "m", "virtualServiceName": name, "spec": {"provider": provider}}


def write(tmp_path: Path, docs, name: str = "mesh.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(docs, indent=1))
    return p


def imp(tmp_path: Path, docs, **kw):
    return import_appmesh([write(tmp_path, docs)], **kw)


def canary(tmp_path: Path, **body):
    docs = [node("svc-v1"), node("svc-v2"), route("canary", {"svc-v1": 90, "svc-v2": 10}, **body)]
    return imp(tmp_path, docs)


def mesh_route(result, service: str = "svc", index: int = 0) -> dict:
    return result.scenario["mesh"][service]["routes"][index]


# --------------------------------------------------------------------------- routes


def test_weighted_targets_across_virtual_nodes_are_versions_of_one_service(tmp_path):
    r = canary(tmp_path)
    assert mesh_route(r)["route"] == {"v1": 90, "v2": 10}  # svc-router -> svc; svc-v1 -> v1
    assert set(r.scenario["services"]["svc"]["versions"]) == {"v1", "v2"}


@pytest.mark.parametrize(("events", "retry_on"), [
    ({"httpRetryEvents": ["server-error"]}, "5xx"),
    ({"httpRetryEvents": ["gateway-error"]}, "gateway-error"),
    ({"httpRetryEvents": ["client-error"]}, "retriable-4xx"),
    ({"httpRetryEvents": ["stream-error"]}, "refused-stream"),
    ({"tcpRetryEvents": ["connection-error"]}, "connect-failure"),
    ({"httpRetryEvents": ["server-error", "gateway-error"], "tcpRetryEvents": ["connection-error"]},
     "5xx,gateway-error,connect-failure"),
])
def test_retry_events_map_to_envoy_retry_on_tokens(tmp_path, events, retry_on):
    r = canary(tmp_path, retryPolicy={"maxRetries": 3, "perRetryTimeout": {"value": 400, "unit": "ms"}, **events})
    assert mesh_route(r)["retries"] == {"retry_on": retry_on, "num_retries": 3, "per_try_timeout": "400ms"}


def test_grpc_retry_events_keep_their_names_on_a_grpc_route(tmp_path):
    docs = [node("svc-v1", "grpc"), route("g", {"svc-v1": 1}, kind="grpcRoute", retryPolicy={
        "maxRetries": 1, "perRetryTimeout": {"value": 1, "unit": "s"},
        "grpcRetryEvents": ["unavailable", "deadline-exceeded"]})]
    assert mesh_route(imp(tmp_path, docs))["retries"]["retry_on"] == "deadline-exceeded,unavailable"


def test_route_without_retry_policy_gets_app_mesh_default_retry_policy(tmp_path):
    rd = mesh_route(canary(tmp_path))
    assert rd["retries"] == {"retry_on": "reset,connect-failure,refused-stream,retriable-status-codes,unavailable",
                             "num_retries": 2, "retriable_status_codes": [503]}
    assert RetryPolicy.model_validate(rd["retries"]) == RetryPolicy.app_mesh_default()


def test_legacy_account_has_no_default_retry_policy_and_envoy_default_breakers(tmp_path):
    docs = [node("svc-v1"), route("r", {"svc-v1": 1})]
    r = imp(tmp_path, docs, legacy_account=True)
    assert mesh_route(r)["retries"] is None
    cb = r.scenario["mesh"]["svc"]["versions"]["v1"]["circuit_breakers"]
    assert (cb["max_connections"], cb["max_pending_requests"], cb["max_requests"], cb["max_retries"]) == \
        (1024, 1024, 1024, 3)


def test_client_circuit_breakers_are_app_mesh_fixed_thresholds(tmp_path):
    cb = canary(tmp_path).scenario["mesh"]["svc"]["versions"]["v1"]["circuit_breakers"]
    assert cb == {"max_connections": 2147483647, "max_pending_requests": 2147483647, "max_requests": 2147483647,
                  "max_retries": 2147483647, "protocol": "http1"}


def test_route_timeout_defaults_to_15s_and_per_request_sets_it(tmp_path):
    assert mesh_route(canary(tmp_path))["timeout"] == "15s"
    r = canary(tmp_path, timeout={"perRequest": {"value": 2500, "unit": "ms"}})
    assert mesh_route(r)["timeout"] == "2500ms"


def test_per_request_zero_leaves_envoy_stream_idle_timeout_of_300s(tmp_path):
    r = canary(tmp_path, timeout={"perRequest": {"value": 0, "unit": "s"}})
    assert mesh_route(r)["timeout"] == "300s"
    r = canary(tmp_path, timeout={"perRequest": {"value": 0, "unit": "s"}, "idle": {"value": 0, "unit": "s"}})
    assert mesh_route(r)["timeout"] == "0s"


def test_idle_timeout_shorter_than_per_request_is_the_route_timeout_with_a_warning(tmp_path):
    r = canary(tmp_path, timeout={"perRequest": {"value": 10, "unit": "s"}, "idle": {"value": 3, "unit": "s"}})
    assert mesh_route(r)["timeout"] == "3s"
    assert any("408" in w for w in r.warnings)


def test_route_priority_orders_the_route_table_zero_first_then_longest_match(tmp_path):
    docs = [node("svc-v1"), node("svc-v2"),
            route("p10", {"svc-v1": 1}, priority=10),
            route("short", {"svc-v1": 1}, match={"prefix": "/a"}),
            route("p0", {"svc-v2": 1}, priority=0, match={"prefix": "/x"}),
            route("long", {"svc-v2": 1}, match={"prefix": "/a/b/c"})]
    r = imp(tmp_path, docs)
    assert [rd["name"] for rd in r.scenario["mesh"]["svc"]["routes"]] == ["p0", "p10", "long", "short"]
    assert any("without a priority" in w for w in r.warnings)


def test_equal_priorities_keep_file_order_with_a_warning(tmp_path):
    docs = [node("svc-v1"), route("a", {"svc-v1": 1}, priority=5), route("b", {"svc-v1": 1}, priority=5)]
    r = imp(tmp_path, docs)
    assert [rd["name"] for rd in r.scenario["mesh"]["svc"]["routes"]] == ["a", "b"]
    assert any("same priority 5" in w for w in r.warnings)


def test_http_match_prefix_path_method_and_headers(tmp_path):
    match = {"path": {"exact": "/reviews/1"}, "method": "POST", "headers": [
        {"name": "X-User", "match": {"exact": "jason"}},
        {"name": "x-pre", "match": {"prefix": "be"}},
        {"name": "x-suf", "match": {"suffix": ".com"}},
        {"name": "x-re", "match": {"regex": "v[0-9]+"}},
        {"name": "x-range", "match": {"range": {"start": 10, "end": 20}}},
        {"name": "x-present"}]}
    rd = mesh_route(canary(tmp_path, match=match))
    m = rd["match"][0]
    assert m["uri"] == {"exact": "/reviews/1"} and m["method"] == {"exact": "POST"}
    assert m["headers"]["x-user"] == {"exact": "jason"} and m["headers"]["x-pre"] == {"prefix": "be"}
    assert m["headers"]["x-present"] == {"present": True}
    scn = parse_scenario(canary(tmp_path, match=match).scenario)
    (rt,) = scn.mesh_for("svc").routes
    ok = {"x-user": "jason", "x-pre": "beta", "x-suf": "a.com", "x-re": "v12", "x-range": "19", "x-present": ""}
    assert rt.matches("/reviews/1", "POST", ok)
    for header, bad in (("x-suf", "a.co"), ("x-range", "20"), ("x-range", "9"), ("x-re", "v")):
        assert not rt.matches("/reviews/1", "POST", {**ok, header: bad})
    assert rt.matches("/reviews/1?x=1", "POST", ok)  # an exact path ignores the query string
    assert not rt.matches("/reviews/2", "POST", ok)


def test_grpc_match_is_the_grpc_request_path(tmp_path):
    docs = [node("svc-v1", "grpc"), route("g", {"svc-v1": 1}, kind="grpcRoute",
                                          match={"serviceName": "shop.Cart", "methodName": "Add",
                                                 "metadata": [{"name": "tenant", "match": {"exact": "a"}}]})]
    r = imp(tmp_path, docs)
    m = mesh_route(r)["match"][0]
    assert m == {"uri": {"exact": "/shop.Cart/Add"}, "headers": {"tenant": {"exact": "a"}}}
    assert r.scenario["mesh"]["svc"]["versions"]["v1"]["circuit_breakers"]["protocol"] == "http2"


@pytest.mark.parametrize(("match", "fragment"), [
    ({"prefix": "/", "headers": [{"name": "a", "match": {"exact": "b"}, "invert": True}]},
     "match.headers[0].invert: invert is not supported"),
    ({"prefix": "/", "queryParameters": [{"name": "q", "match": {"exact": "1"}}]},
     "match.queryParameters: meshsim's router has no query-parameter matcher"),
    ({"prefix": "/", "scheme": "https"}, "match.scheme: scheme 'https' is not supported"),
    ({"prefx": "/"}, "match.prefx: unknown key 'prefx' in App Mesh http route match; did you mean 'prefix'?"),
    ({"prefix": "/", "method": "FETCH"}, "match.method: method 'FETCH' is not one of"),
    ({"prefix": "/", "headers": [{"name": "a", "match": {"range": {"start": 5, "end": 5}}}]},
     "match.headers[0].match.range"),
])
def test_matchers_meshsim_cannot_express_are_refused_naming_the_field(tmp_path, match, fragment):
    with pytest.raises(ConfigError) as err:
        canary(tmp_path, match=match)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'mesh.json'}: document 2 (Route canary): spec.httpRoute.")
    assert fragment in msg and "\n" not in msg


@pytest.mark.parametrize(("targets", "fragment"), [
    ({"svc-v1": 0, "svc-v2": 0}, "weightedTargets: the weights add up to 0"),
    ({"svc-v1": 101}, "weightedTargets[0].weight: 101 is out of range; App Mesh allows whole numbers 0 to 100"),
])
def test_invalid_weights_are_refused(tmp_path, targets, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        imp(tmp_path, [node("svc-v1"), node("svc-v2"), route("r", targets)])


# --------------------------------------------------------------------------- virtual nodes


OD = {"maxServerErrors": 5, "interval": {"value": 10, "unit": "s"},
      "baseEjectionDuration": {"value": 30, "unit": "s"}, "maxEjectionPercent": 50}


def test_outlier_detection_goes_to_the_callers_cluster_of_that_version(tmp_path):
    docs = [node("svc-v1", outlierDetection=OD), node("svc-v2"), route("r", {"svc-v1": 1, "svc-v2": 1})]
    r = imp(tmp_path, docs)
    versions = r.scenario["mesh"]["svc"]["versions"]
    assert versions["v1"]["outlier_detection"] == {"consecutive_5xx": 5, "interval": "10s",
                                                   "base_ejection_time": "30s", "max_ejection_percent": 50}
    assert "outlier_detection" not in versions["v2"]
    od = parse_scenario(r.scenario).mesh_for("svc").cluster_policies("v1").outlier_detection
    assert (od.consecutive_5xx, od.interval, od.base_ejection_time) == (5, 10.0, 30.0)


def test_outlier_detection_with_dns_discovery_is_warned(tmp_path):
    n = node("svc-v1", outlierDetection=OD)
    n["spec"]["serviceDiscovery"] = {"dns": {"hostname": "svc.local"}}
    r = imp(tmp_path, [n, route("r", {"svc-v1": 1})])
    assert any("DNS service discovery" in w for w in r.warnings)


def test_http_health_check_is_run_by_the_callers(tmp_path):
    hc = {"protocol": "http", "path": "/ping", "healthyThreshold": 2, "unhealthyThreshold": 3,
          "intervalMillis": 5000, "timeoutMillis": 2000}
    r = imp(tmp_path, [node("svc-v1", healthCheck=hc), route("r", {"svc-v1": 1})])
    assert r.scenario["mesh"]["svc"]["versions"]["v1"]["health_check"] == {
        "timeout": "2s", "interval": "5s", "unhealthy_threshold": 3, "healthy_threshold": 2, "path": "/ping"}


def test_connection_pool_limits_the_nodes_own_envoy_toward_its_app(tmp_path):
    pool = {"http": {"maxConnections": 4, "maxPendingRequests": 8}}
    r = imp(tmp_path, [node("svc-v1", connectionPool=pool), route("r", {"svc-v1": 1})])
    v1 = r.scenario["services"]["svc"]["versions"]["v1"]
    assert (v1["workers"], v1["queue"]) == (4, 8)
    assert r.scenario["mesh"]["svc"]["versions"]["v1"]["circuit_breakers"]["max_connections"] == 2147483647


@pytest.mark.parametrize(("args", "expected"), [
    ((8, None, "http", 4, 8, None), (4, 8)),          # the pool binds: 4 at the app, 8 pending in Envoy
    ((8, None, "http", 12, None, None), (8, None)),   # 12 at the app (8 serve, 4 queue), pending unlimited
    ((8, None, "http", 12, 1, None), (8, 5)),
    ((8, 2, "http", 20, 5, None), (8, 2)),            # the app refuses at 10 before the pool fills
    ((8, None, "http2", None, None, 6), (6, 0)),      # HTTP/2: max_requests, no pending queue
    ((4, None, "grpc", None, None, 10), (4, 6)),
    ((4, None, "tcp", 3, None, None), (3, 0)),
])
def test_ingress_capacity(args, expected):
    workers, queue, protocol, mc, mp, mr = args
    assert ingress_capacity(workers, queue, protocol=protocol, max_connections=mc, max_pending_requests=mp,
                            max_requests=mr) == expected


def test_connection_pool_must_match_the_listener_protocol(tmp_path):
    with pytest.raises(ConfigError, match=r"listeners\[0\]\.connectionPool: a http listener takes "
                                          r"connectionPool\.http only"):
        imp(tmp_path, [node("svc-v1", connectionPool={"grpc": {"maxRequests": 3}}), route("r", {"svc-v1": 1})])


def test_listener_timeout_shorter_than_the_route_ends_the_try_first(tmp_path):
    docs = [node("svc-v1", timeout={"http": {"perRequest": {"value": 3, "unit": "s"}}}),
            route("r", {"svc-v1": 1}, timeout={"perRequest": {"value": 30, "unit": "s"}})]
    r = imp(tmp_path, docs)
    rd = mesh_route(r)
    assert rd["timeout"] == "30s" and rd["retries"]["per_try_timeout"] == "3s"
    assert any("listener timeout 3s (as given)" in w for w in r.warnings)


def test_route_timeout_above_15s_is_capped_by_the_nodes_default_listener_timeout(tmp_path):
    # AWS: "if you set a higher timeout, make sure [it] is set for each App Mesh resource in a conversation"
    docs = [node("svc-v1"), route("r", {"svc-v1": 1}, timeout={"perRequest": {"value": 60, "unit": "s"}})]
    r = imp(tmp_path, docs)
    assert mesh_route(r)["retries"]["per_try_timeout"] == "15s"
    assert any("App Mesh's default" in w for w in r.warnings)
    r = imp(tmp_path, [node("svc-v1", timeout={"http": {"perRequest": {"value": 60, "unit": "s"}}}),
                       route("r", {"svc-v1": 1}, timeout={"perRequest": {"value": 60, "unit": "s"}})])
    assert "per_try_timeout" not in mesh_route(r)["retries"] and not r.warnings


def test_virtual_service_provided_by_a_node_gets_app_mesh_route_defaults(tmp_path):
    r = imp(tmp_path, [node("details-v1"), vs("details.shop.local", node_name="details-v1")])
    rd = r.scenario["mesh"]["details"]["routes"][0]
    assert rd["route"] == "v1" and rd["timeout"] == "15s" and rd["retries"]["num_retries"] == 2


def test_tls_logging_and_gateways_are_warned_not_simulated(tmp_path):
    n = node("svc-v1", tls={"mode": "STRICT", "certificate": {"file": {"certificateChain": "a", "privateKey": "b"}}})
    n["spec"]["logging"] = {"accessLog": {"file": {"path": "/dev/stdout"}}}
    n["spec"]["backendDefaults"] = {"clientPolicy": {"tls": {"validation": {}}}}
    gw = {"meshName": "m", "virtualGatewayName": "gw", "spec": {}}
    r = imp(tmp_path, [n, route("r", {"svc-v1": 1}), gw])
    text = "\n".join(r.warnings)
    assert "TLS is not simulated" in text and "access logging" in text and "VirtualGateway is not imported" in text


def test_minimal_topology_calls_follow_backends_and_traffic_enters_at_the_clients(tmp_path):
    docs = [node("front", backends=("svc.m.local",)), node("svc-v1"), node("svc-v2"),
            route("r", {"svc-v1": 1, "svc-v2": 1}), vs("svc.m.local", router="svc-router")]
    r = imp(tmp_path, docs, rate="40/s")
    assert r.scenario["services"]["front"]["script"] == ["work", {"call": "svc"}]
    assert r.scenario["traffic"] == [{"name": "clients", "to": "front", "rate": "40/s"}]
    assert "PLACEHOLDERS" in r.text


# --------------------------------------------------------------------------- documents and errors


def test_kubernetes_crds_import_like_the_cli_json(tmp_path):
    r = import_appmesh([COLORAPP])
    rd = r.scenario["mesh"]["color"]["routes"][0]
    assert rd["route"] == {"blue": 50, "red": 50}  # versions from the podSelector's version label
    assert rd["retries"] == {"retry_on": "5xx,connect-failure", "num_retries": 3, "per_try_timeout": "500ms"}
    assert r.scenario["services"]["front"]["script"] == ["work", {"call": "color"}]
    red = r.scenario["services"]["color"]["versions"]["red"]
    assert (red["workers"], red["queue"]) == (4, 8)


def test_describe_output_is_unwrapped(tmp_path):
    docs = [{"virtualNode": {**node("svc-v1"), "metadata": {"version": 1}, "status": {"status": "ACTIVE"}}},
            {"route": {**route("r", {"svc-v1": 1}), "metadata": {}, "status": {}}}]
    assert mesh_route(imp(tmp_path, docs))["route"] == "v1"


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda d: d[2]["spec"]["httpRoute"].update(retryPolicy={"maxRetries": 2, "perRetryTimeout":
                                                             {"value": 1, "unit": "s"},
                                                             "httpRetryEvents": ["server-errors"]}),
     "document 2 (Route canary): spec.httpRoute.retryPolicy.httpRetryEvents: httpRetryEvents event 'server-errors' "
     "is not an App Mesh retry event; did you mean 'server-error'?"),
    (lambda d: d[0]["spec"]["listeners"][0].update(outlierDetection={"maxServerErrors": 0}),
     "document 0 (VirtualNode svc-v1): spec.listeners[0].outlierDetection"),
    (lambda d: d[0]["spec"].update(listner=[]),
     "document 0 (VirtualNode svc-v1): spec.listner: unknown key 'listner' in a VirtualNode spec; did you mean "
     "'listeners'?"),
    (lambda d: d[2]["spec"].update(priority=1001),
     "document 2 (Route canary): spec.priority: 1001 is out of range; App Mesh allows 0 to 1000"),
    (lambda d: d[1]["spec"]["listeners"][0]["portMapping"].update(protocol="udp"),
     "spec.listeners[0].portMapping.protocol: 'udp' is not a listener protocol (allowed: http, http2, grpc, tcp)"),
    (lambda d: d.append({"hello": 1}), "document 3: not an App Mesh resource"),
])
def test_errors_name_file_document_and_field(tmp_path, mutate, fragment):
    docs = [node("svc-v1"), node("svc-v2"), route("canary", {"svc-v1": 90, "svc-v2": 10})]
    mutate(docs)
    with pytest.raises(ConfigError) as err:
        imp(tmp_path, docs)
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "mesh.json") + ": ") and fragment in msg and "\n" not in msg


def test_cli_error_is_one_line_exit_2_and_nothing_is_written(tmp_path):
    docs = [node("svc-v1"), route("r", {"svc-v1": 1}, priority=-1)]
    src = write(tmp_path, docs)
    out = tmp_path / "out.yaml"
    res = runner.invoke(app, ["import", "appmesh", str(src), "-o", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "spec.priority: -1 is out of range" in lines[0]
    assert not out.exists() and set(tmp_path.iterdir()) == {src}


def test_cli_refuses_a_missing_file(tmp_path):
    res = runner.invoke(app, ["import", "appmesh", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o.yaml")])
    assert res.exit_code == 2 and "no such file" in res.stderr


# --------------------------------------------------------------------------- topology and examples


def test_topology_gives_services_and_traffic_and_the_mesh_entry_is_replaced(tmp_path):
    r = import_appmesh(BOOKINFO, topology=ROOT / "scenarios" / "bookinfo.yaml")
    topo = load_scenario(ROOT / "scenarios" / "bookinfo.yaml")
    scn = parse_scenario(r.scenario)
    assert scn.traffic == topo.traffic and set(scn.services) == set(topo.services)
    routes = r.scenario["mesh"]["reviews"]["routes"]
    assert [(rd["name"], rd["route"]) for rd in routes] == [("jason", "v2"), ("canary", {"v1": 90, "v3": 10})]
    v3 = scn.services["reviews"].resolved_versions("reviews")["v3"]
    assert (v3.workers, v3.queue) == (4, 16)  # reviews-v3's connectionPool over the topology's 8 workers
    assert "details" in r.scenario["mesh"] and "ratings" in r.scenario["mesh"]
    assert any("mesh policies for 'reviews' are replaced" in w for w in r.warnings)
    assert r.text.startswith("# Imported by `meshsim import appmesh`")


def test_topology_names_can_be_mapped_with_rename(tmp_path):
    docs = [node("blue"), node("green"), route("r", {"blue": 1, "green": 1}, router="colour-vr")]
    topo = tmp_path / "topo.yaml"
    topo.write_text("name: t\nduration: 10s\nservices:\n  paint:\n    latency: 1ms\n"
                    "    versions: {b: {}, g: {}}\ntraffic: [{to: paint, rate: 10/s}]\n")
    with pytest.raises(ConfigError, match=r"virtual router 'colour-vr' matches no service of the topology"):
        imp(tmp_path, docs, topology=topo)
    r = imp(tmp_path, docs, topology=topo, rename={"colour-vr": "paint", "blue": "b", "green": "g"})
    assert mesh_route(r, "paint")["route"] == {"b": 1, "g": 1}
    with pytest.raises(ConfigError, match="--rate applies to a minimal topology"):
        imp(tmp_path, docs, topology=topo, rate="5/s")


@pytest.mark.parametrize("files", [BOOKINFO, [COLORAPP]])
def test_examples_import_and_run(tmp_path, files):
    out = tmp_path / "s.yaml"
    res = runner.invoke(app, ["import", "appmesh", *map(str, files), "-o", str(out)])
    assert res.exit_code == 0, res.output
    scn = apply_overrides(load_scenario(out), {"duration": "3s", "drain": "1s"})
    s = simulate(scn, seed=2).summary
    assert s["end_to_end"]["requests"] > 200 and s["end_to_end"]["success_rate"] > 0.95


def test_import_is_deterministic(tmp_path):
    a = import_appmesh(BOOKINFO, topology=ROOT / "scenarios" / "bookinfo.yaml")
    b = import_appmesh(list(BOOKINFO), topology=ROOT / "scenarios" / "bookinfo.yaml")
    assert a.text == b.text and a.warnings == b.warnings
    assert copy.deepcopy(a.scenario) == b.scenario


def test_a_client_nodes_own_listener_timeout_bounds_the_requests_it_receives(tmp_path):
    front = node("front", backends=("svc.m.local",), timeout={"http": {"perRequest": {"value": 4, "unit": "s"}}})
    docs = [front, node("svc-v1"), route("r", {"svc-v1": 1}), vs("svc.m.local", router="svc-router")]
    r = imp(tmp_path, docs)
    assert r.scenario["mesh"]["front"] == {"timeout": "4s"}
    assert parse_scenario(r.scenario).mesh_for("front").route_policies(None).timeout.timeout == 4.0


def test_a_topology_service_without_versions_takes_one_virtual_node(tmp_path):
    topo = tmp_path / "topo.yaml"
    topo.write_text("name: t\nduration: 10s\nservices:\n  svc: {latency: 1ms}\ntraffic: [{to: svc, rate: 10/s}]\n")
    r = imp(tmp_path, [node("svc-v1"), route("r", {"svc-v1": 1})], topology=topo)
    assert mesh_route(r)["route"] == "default"
    with pytest.raises(ConfigError, match=r"the topology's 'svc' has no versions: give it one per virtual node"):
        imp(tmp_path, [node("svc-v1"), node("svc-v2"), route("r", {"svc-v1": 1, "svc-v2": 1})], topology=topo)
