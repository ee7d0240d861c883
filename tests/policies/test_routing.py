"""Routing policy: matching, weighted choice, spellings, Envoy form (no engine)."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from meshsim import ConfigError
from meshsim.policies.routing import (
    HeaderMatch,
    Route,
    RouteMatch,
    Router,
    RoutingPolicy,
    StringMatch,
    cluster_name,
    to_envoy,
)

VERSIONS = ["v1", "v2", "v3"]


def policy(*routes: dict) -> RoutingPolicy:
    return RoutingPolicy.model_validate({"routes": list(routes)})


def grid(n: int = 1000) -> list[float]:
    """Evenly spaced draws in [0, 1): the share of each version is exact up to 1/n."""
    return [(i + 0.5) / n for i in range(n)]


# ---------------------------------------------------------------------------------------------- matching


def test_first_match_wins_even_if_a_later_route_is_more_specific() -> None:
    r = Router(
        policy(
            {"match": {"uri": {"prefix": "/"}}, "route": "v1"},
            {"match": {"uri": {"prefix": "/reviews"}}, "route": "v2"},
        ),
        VERSIONS,
    )
    assert r.select("/reviews/1", "GET", {}, 0.3) == "v1"


def test_no_match_returns_none() -> None:
    r = Router(policy({"match": {"uri": {"exact": "/a"}}, "route": "v1"}), VERSIONS)
    assert r.select("/b", "GET", {}, 0.5) is None
    assert r.match("/b", "GET", {}) is None
    assert r.match("/a", "GET", {}) == 0


def test_unconditional_route_takes_everything() -> None:
    r = Router(policy({"route": "v2"}, {"route": "v1"}), VERSIONS)
    assert {r.select(p, "POST", {"x": "y"}, u) for p in ("/", "/zz") for u in (0.0, 0.99)} == {"v2"}


@pytest.mark.parametrize(
    ("matcher", "value", "expected"),
    [
        ({"exact": "jason"}, "jason", True),
        ({"exact": "jason"}, "jason2", False),
        ({"exact": "jason"}, None, False),
        ({"prefix": "ja"}, "jason", True),
        ({"prefix": "ja"}, "bob", False),
        ({"prefix": "ja"}, None, False),
        ({"regex": "j.*n"}, "jason", True),
        ({"regex": "j.*n"}, "jasonx", False),  # full match, like RE2 FullMatch
        ({"regex": "j.*n"}, None, False),
        ({"present": True}, "", True),
        ({"present": True}, None, False),
        ({"present": False}, None, True),
        ({"present": False}, "x", False),
        ("jason", "jason", True),  # plain string = exact
    ],
)
def test_header_matchers(matcher: object, value: str | None, expected: bool) -> None:
    r = Router(policy({"match": {"headers": {"end-user": matcher}}, "route": "v2"}), VERSIONS)
    headers = {} if value is None else {"end-user": value}
    assert (r.select("/", "GET", headers, 0.5) == "v2") is expected
    assert HeaderMatch.model_validate(matcher).matches(value) is expected


def test_header_names_are_case_insensitive_in_config() -> None:
    m = RouteMatch.model_validate({"headers": {"End-User": "jason"}})
    assert list(m.headers) == ["end-user"]
    assert m.matches("/", "GET", {"end-user": "jason"})


def test_all_conditions_of_one_entry_must_hold_and_entries_are_ored() -> None:
    r = Router(
        policy(
            {
                "match": [
                    {"uri": {"prefix": "/reviews"}, "method": "GET", "headers": {"x-a": "1"}},
                    {"uri": {"exact": "/other"}},
                ],
                "route": "v3",
            },
            {"route": "v1"},
        ),
        VERSIONS,
    )
    assert r.select("/reviews/2", "GET", {"x-a": "1"}, 0.5) == "v3"
    assert r.select("/reviews/2", "POST", {"x-a": "1"}, 0.5) == "v1"
    assert r.select("/reviews/2", "GET", {"x-a": "2"}, 0.5) == "v1"
    assert r.select("/ratings", "GET", {"x-a": "1"}, 0.5) == "v1"
    assert r.select("/other", "DELETE", {}, 0.5) == "v3"


@pytest.mark.parametrize(
    ("method", "expected"),
    [({"exact": "GET"}, ["GET"]), ("POST", ["POST"]), ({"regex": "P(OST|UT)"}, ["POST", "PUT"])],
)
def test_method_match(method: object, expected: list[str]) -> None:
    r = Router(policy({"match": {"method": method}, "route": "v1"}), VERSIONS)
    got = [m for m in ("GET", "POST", "PUT", "DELETE") if r.select("/", m, {}, 0.1) == "v1"]
    assert got == expected


def test_uri_exact_and_regex_ignore_query_prefix_sees_it() -> None:
    assert RouteMatch.model_validate({"uri": {"exact": "/a"}}).matches("/a?x=1", "GET", {})
    assert RouteMatch.model_validate({"uri": {"regex": "/a/[0-9]+"}}).matches("/a/12?x", "GET", {})
    assert not RouteMatch.model_validate({"uri": {"regex": "/a/[0-9]+"}}).matches("/a/12x", "GET", {})
    assert RouteMatch.model_validate({"path": {"prefix": "/a?x"}}).matches("/a?x=1", "GET", {})


def test_path_is_accepted_for_uri() -> None:
    assert RouteMatch.model_validate({"path": {"prefix": "/r"}}) == RouteMatch.model_validate(
        {"uri": {"prefix": "/r"}}
    )


# ---------------------------------------------------------------------------------------------- weights


def test_weighted_shares_on_a_uniform_grid() -> None:
    r = Router(policy({"route": {"v1": 90, "v3": 10}}), VERSIONS)
    counts = Counter(r.select("/", "GET", {}, u) for u in grid(1000))
    assert counts == {"v1": 900, "v3": 100}


def test_weights_need_not_sum_to_100_and_zero_weight_is_never_chosen() -> None:
    r = Router(policy({"route": {"v1": 3, "v2": 0, "v3": 4}}), VERSIONS)
    counts = Counter(r.select("/", "GET", {}, u) for u in grid(7000))
    assert counts == {"v1": 3000, "v3": 4000}


def test_choice_is_cumulative_in_written_order_and_deterministic() -> None:
    r = Router(policy({"route": {"v2": 50, "v1": 50}}), VERSIONS)
    assert r.select("/", "GET", {}, 0.0) == "v2"
    assert r.select("/", "GET", {}, 0.4999) == "v2"
    assert r.select("/", "GET", {}, 0.5) == "v1"
    assert r.select("/", "GET", {}, 0.9999999999999999) == "v1"
    assert [r.pick(0, u) for u in (0.1, 0.9)] == ["v2", "v1"]


def test_route_shares() -> None:
    route = Route.model_validate({"route": {"v1": 1, "v2": 3}})
    assert route.shares() == {"v1": 0.25, "v2": 0.75}
    assert route.total_weight == 4


# ---------------------------------------------------------------------------------------------- spellings


def test_istio_spelling_equals_shorthand() -> None:
    istio = RoutingPolicy.model_validate(
        {
            "http": [
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                        {
                            "destination": {"host": "reviews", "subset": "v3", "port": {"number": 9080}},
                            "weight": 10,
                        },
                    ]
                }
            ]
        }
    )
    short = RoutingPolicy.model_validate({"routes": [{"route": {"v1": 90, "v3": 10}}]})
    strip = [[(d.version, d.weight) for d in r.destinations] for r in istio.routes]
    assert strip == [[(d.version, d.weight) for d in r.destinations] for r in short.routes]
    ri, rs = Router(istio, VERSIONS), Router(short, VERSIONS)
    assert [ri.select("/", "GET", {}, u) for u in grid(200)] == [
        rs.select("/", "GET", {}, u) for u in grid(200)
    ]
    assert to_envoy(istio, service="reviews") == to_envoy(short, service="reviews")


@pytest.mark.parametrize(
    "spelling",
    [
        "v1",
        {"v1": 100},
        [{"destination": {"host": "reviews", "subset": "v1"}}],
        [{"version": "v1", "weight": 7}],
    ],
)
def test_single_version_spellings(spelling: object) -> None:
    route = Route.model_validate({"route": spelling})
    assert [d.version for d in route.destinations] == ["v1"]


def test_route_without_destination_is_the_default_version() -> None:
    route = Route.model_validate({"match": {"uri": {"prefix": "/"}}})
    assert [(d.version, d.weight) for d in route.destinations] == [("default", 100)]


def test_bare_list_and_single_match_mapping() -> None:
    p = RoutingPolicy.model_validate([{"match": {"method": "GET"}, "route": "v1"}])
    assert len(p.routes) == 1 and len(p.routes[0].match) == 1


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"route": {"v1": 0, "v2": 0}}, "zero total"),
        ({"route": {"v1": -1}}, "greater than or equal to 0"),
        ({"route": [{"destination": {"subset": "v1"}}, {"destination": {"subset": "v2"}}]}, "has no weight"),
        ({"route": {"v1": 50}, "match": {"uri": {"prefix": "/", "exact": "/"}}}, "exactly one"),
        ({"route": "v1", "match": {"uri": {}}}, "got none"),
        ({"route": "v1", "match": {"headers": {"x": {"regex": "(a"}}}}, "not a valid regex"),
        ({"route": "v1", "match": {"headers": {"x": {"regex": "(?=a)b"}}}}, "RE2"),
        ({"route": "v1", "match": {"uri": {"prefx": "/"}}}, "did you mean 'prefix'"),
        ({"route": "v1", "match": {"uri": {"prefix": "/"}, "path": {"prefix": "/"}}}, "not both"),
        ({"route": [{"destination": {"host": "r", "subst": "v1"}}]}, "did you mean 'subset'"),
        ({"route": "v1", "match": {"headers": {":method": "GET"}}}, "use method or uri"),
        ({"route": None}, "route is empty"),
        ({"route": []}, "route is empty"),
        ({"route": [{"version": "v1", "weight": 1}, {"version": "v1", "weight": 2}]}, "named twice"),
        ({"route": "v1", "match": {"headers": {"bad name": "x"}}}, "is not a header name"),
        ({"route": {"v1": 50, "v1 ": 50}, "nmae": "x"}, "did you mean 'name'"),
    ],
)
def test_invalid_routes(data: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle.replace("(", r"\(")):
        Route.model_validate(data)


def test_router_refuses_unknown_version() -> None:
    with pytest.raises(ConfigError, match=r"'v9' is not a version; versions: v1, v2, v3"):
        Router(policy({"route": {"v1": 1, "v9": 1}}), VERSIONS)


def test_string_match_helpers() -> None:
    assert StringMatch.model_validate("GET").kind == "exact"
    assert StringMatch.model_validate({"prefix": ""}).matches("anything")
    assert HeaderMatch.model_validate({"present": True}).kind == "present"


def test_models_are_frozen() -> None:
    route = Route.model_validate({"route": "v1"})
    with pytest.raises(ValidationError):
        route.name = "x"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- Envoy


def test_to_envoy_shape() -> None:
    route = Route.model_validate(
        {
            "name": "jason",
            "match": [
                {
                    "uri": {"prefix": "/reviews"},
                    "method": "GET",
                    "headers": {
                        "end-user": {"exact": "jason"},
                        "x-b": {"present": True},
                        "x-a": {"regex": "a+"},
                    },
                },
                {"uri": {"regex": "/r/[0-9]+"}},
                {"uri": {"exact": "/x"}},
            ],
            "route": {"v1": 90, "v2": 0, "v3": 10},
        }
    )
    out = to_envoy(route, service="reviews")
    assert len(out) == 3  # one Envoy route per OR-ed match entry
    first = out[0]
    assert first["name"] == "jason"
    assert first["match"] == {
        "prefix": "/reviews",
        "headers": [
            {"name": ":method", "string_match": {"exact": "GET"}},
            {"name": "end-user", "string_match": {"exact": "jason"}},
            {"name": "x-a", "string_match": {"safe_regex": {"regex": "a+"}}},
            {"name": "x-b", "present_match": True},
        ],
    }
    assert first["route"] == {
        "weighted_clusters": {
            "clusters": [
                {"name": "outbound|80|v1|reviews", "weight": 90},
                {"name": "outbound|80|v3|reviews", "weight": 10},
            ]
        }
    }
    assert out[1]["match"] == {"safe_regex": {"regex": "/r/[0-9]+"}}
    assert out[2]["match"] == {"path": "/x"}


def test_to_envoy_single_cluster_catch_all_and_custom_names() -> None:
    route = Route.model_validate({"route": "v2"})
    assert to_envoy(route, service="reviews") == [
        {"match": {"prefix": "/"}, "route": {"cluster": "outbound|80|v2|reviews"}}
    ]
    out = to_envoy(route, service="reviews", cluster_name=lambda s, v: f"{s}_{v}")
    assert out[0]["route"] == {"cluster": "reviews_v2"}


def test_cluster_name_default_version_is_the_whole_service() -> None:
    assert cluster_name("details", "default") == "outbound|80||details"
    assert cluster_name("reviews", "v1", port=9080) == "outbound|9080|v1|reviews"
