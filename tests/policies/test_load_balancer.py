"""Load balancing: Envoy's host choice per policy, panic, hashing, zones, Istio localities (no engine)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from meshsim.policies.load_balancer import (
    LoadBalancer,
    LoadBalancerPolicy,
    _Edf,
    build_ring,
    envoy_hash_policy,
    istio_locality_priority,
    lint,
    maglev_table,
    murmur_hash2_64,
    priority_loads,
    ring_hash_scale,
    to_envoy,
    xxhash64,
    zone_routing_plan,
)


class Host:
    """A minimal host as the engine provides it."""

    def __init__(self, name: str, weight: int = 1, zone: str | None = None) -> None:
        self.name = name
        self.weight = weight
        self.zone = zone
        self.active_requests = 0

    def __repr__(self) -> str:
        return self.name


def hosts(n: int, **kw: object) -> list[Host]:
    return [Host(f"10.0.0.{i}:8080", **kw) for i in range(n)]  # type: ignore[arg-type]


def lb(policy: dict | str | None = None, hs: list[Host] | None = None, **kw: object) -> LoadBalancer:
    p = LoadBalancerPolicy.model_validate(policy or {})
    return LoadBalancer(p, hs if hs is not None else hosts(3), rng=kw.pop("rng", 7), **kw)  # type: ignore[arg-type]


def binom_tol(n: int, p: float, sigmas: float = 4.0) -> float:
    """Tolerance on a count: ``sigmas`` standard deviations of Binomial(n, p)."""
    return sigmas * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------------------------------- round robin


def test_round_robin_equal_weights_visits_hosts_in_turn() -> None:
    hs = hosts(4)
    b = lb("ROUND_ROBIN", hs, initial_offset=0)
    assert [b.choose() for _ in range(8)] == hs + hs


def test_round_robin_starts_at_the_per_lb_random_seed() -> None:
    hs = hosts(5)
    firsts = {lb("ROUND_ROBIN", hs, rng=seed).choose().name for seed in range(40)}  # type: ignore[union-attr]
    assert len(firsts) == 5  # Envoy seeds rr_index with random(), so proxies do not move in lock-step
    b = lb("ROUND_ROBIN", hs, initial_offset=3)
    assert [b.choose() for _ in range(5)] == hs[3:] + hs[:3]


def test_round_robin_index_survives_a_host_set_change_per_host_source() -> None:
    hs = hosts(3)
    b = lb("ROUND_ROBIN", hs, initial_offset=0)
    [b.choose() for _ in range(4)]
    b.set_hosts(hs)  # same source (healthy hosts): rr_indexes_.insert() keeps the index
    assert b.choose() is hs[1]


def test_weighted_round_robin_follows_edf_order_for_weights_1_2_3() -> None:
    a, bb, c = Host("a", 1), Host("b", 2), Host("c", 3)
    b = lb("ROUND_ROBIN", [a, bb, c], initial_offset=0)
    # deadlines 1/w: c(1/3) b(1/2) c(2/3) then a, b, c tie at 1 and go in insertion order
    assert [b.choose() for _ in range(12)] == [c, bb, c, a, bb, c] * 2


def test_weighted_round_robin_shares_are_the_weights_for_any_seed() -> None:
    hs = [Host("a", 1), Host("b", 2), Host("c", 3)]
    for seed in range(5):
        b = lb("ROUND_ROBIN", hs, rng=seed)
        counts = Counter(b.choose().name for _ in range(6000))  # type: ignore[union-attr]
        assert abs(counts["a"] - 1000) <= 1 and abs(counts["b"] - 2000) <= 1 and abs(counts["c"] - 3000) <= 1


@pytest.mark.parametrize("picks", [1, 5, 23, 1000, 12345])
def test_edf_created_with_pre_picks_equals_picking_from_an_empty_schedule(picks: int) -> None:
    weights = [1.7, 3.3, 0.9, 5.1]  # no exact deadline ties (Envoy: ties may break differently)
    empty = _Edf(weights, 0)
    for _ in range(picks):
        empty.pick(weights.__getitem__)
    pre = _Edf(weights, picks)
    # Envoy's EdfSchedulerTest compares the queues with EXPECT_NEAR(deadline, 1e-5): the direct
    # computation and the repeated additions differ in the last bits, so near-ties may flip later.
    deadlines = lambda e: {i: d for d, _, i in e.heap}  # noqa: E731
    assert deadlines(pre).keys() == deadlines(empty).keys()
    assert all(abs(deadlines(pre)[i] - deadlines(empty)[i]) < 1e-5 for i in deadlines(pre))
    if picks < 100:
        assert [pre.pick(weights.__getitem__) for _ in range(20)] == [
            empty.pick(weights.__getitem__) for _ in range(20)
        ]


# ---------------------------------------------------------------------------------------------- least request


def test_p2c_picks_the_less_loaded_of_two_so_the_busier_of_two_hosts_still_wins_a_quarter() -> None:
    busy, idle = Host("busy"), Host("idle")
    busy.active_requests = 5
    b = lb("LEAST_REQUEST", [busy, idle])
    n = 20000
    wins = sum(b.choose() is busy for _ in range(n))
    assert abs(wins - n / 4) <= binom_tol(n, 0.25)


def test_n_choices_samples_with_replacement_so_choice_count_n_can_miss_the_least_loaded() -> None:
    hs = hosts(4)
    for i, h in enumerate(hs):
        h.active_requests = 10 - i  # the last host is the least loaded
    b = lb({"lb_policy": "LEAST_REQUEST", "choice_count": 4}, hs)
    n = 20000
    miss = sum(b.choose() is not hs[3] for _ in range(n))
    p_miss = (3 / 4) ** 4  # none of the 4 draws (with replacement) hits it
    assert abs(miss - n * p_miss) <= binom_tol(n, p_miss)


def test_full_scan_always_picks_the_least_loaded_and_breaks_ties_at_random() -> None:
    hs = hosts(4)
    for i, h in enumerate(hs):
        h.active_requests = [3, 1, 2, 1][i]
    b = lb({"lb_policy": "LEAST_REQUEST", "selection_method": "FULL_SCAN"}, hs)
    counts = Counter(b.choose().name for _ in range(4000))  # type: ignore[union-attr]
    assert set(counts) == {hs[1].name, hs[3].name}
    assert abs(counts[hs[1].name] - 2000) <= binom_tol(4000, 0.5)


def test_least_request_reads_load_through_the_active_callable() -> None:
    hs = hosts(2)
    load = {hs[0].name: 0, hs[1].name: 9}
    b = lb({"lb_policy": "LEAST_REQUEST", "choice_count": 2}, hs, active=lambda h: load[h.name])
    assert sum(b.choose() is hs[0] for _ in range(2000)) > 1400  # 75 % expected


def test_least_request_unequal_weights_divide_weight_by_active_plus_one_to_the_bias() -> None:
    a, c = Host("a", 1), Host("c", 2)
    c.active_requests = 3  # dynamic weights: a = 1/1, c = 2/4 -> a gets 2/3
    b = lb("LEAST_REQUEST", [a, c], initial_offset=0)
    counts = Counter(b.choose().name for _ in range(3000))  # type: ignore[union-attr]
    assert abs(counts["a"] - 2000) <= 2
    flat = lb({"lb_policy": "LEAST_REQUEST", "active_request_bias": 0}, [a, c], initial_offset=0)
    counts = Counter(flat.choose().name for _ in range(3000))  # type: ignore[union-attr]
    assert abs(counts["c"] - 2000) <= 2  # bias 0 is weighted round robin


def test_random_ignores_weights() -> None:
    hs = [Host("a", 1), Host("b", 9)]
    n = 20000
    b = lb("RANDOM", hs)
    counts = Counter(b.choose().name for _ in range(n))  # type: ignore[union-attr]
    assert abs(counts["a"] - n / 2) <= binom_tol(n, 0.5)


# ---------------------------------------------------------------------------------------------- panic


def test_with_three_of_five_hosts_ejected_the_default_panic_threshold_routes_to_all_five() -> None:
    hs = hosts(5)
    b = lb("ROUND_ROBIN", hs)
    b.set_hosts(hs, healthy=[True, True, False, False, False])  # 40 % healthy < 50 %
    seen = Counter(b.choose().name for _ in range(100))  # type: ignore[union-attr]
    assert len(seen) == 5
    assert b.stats["lb_healthy_panic"] == 100


def test_with_two_of_five_hosts_ejected_only_healthy_hosts_get_traffic() -> None:
    hs = hosts(5)
    b = lb("LEAST_REQUEST", hs)
    b.set_hosts(hs, healthy=[True, True, True, False, False])  # 60 % >= 50 %
    seen = {b.choose().name for _ in range(300)}  # type: ignore[union-attr]
    assert seen == {h.name for h in hs[:3]}
    assert b.stats["lb_healthy_panic"] == 0


def test_panic_threshold_zero_with_no_healthy_host_gives_no_host_uh() -> None:
    hs = hosts(3)
    b = lb({"healthy_panic_threshold": 0}, hs)
    b.set_hosts(hs, healthy=[False, False, False])
    assert b.choose() is None
    assert b.stats["upstream_cx_none_healthy"] == 1


def test_a_cluster_without_hosts_gives_no_host_uh() -> None:
    for kind in ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"):
        b = lb(kind, [])
        assert b.choose("k") is None, kind
        assert b.stats["upstream_cx_none_healthy"] == 1


def test_panic_also_applies_to_hashing_policies() -> None:
    hs = hosts(4)
    b = lb("MAGLEV", hs)
    b.set_hosts(hs, healthy=[True, False, False, False])
    assert len({b.choose(f"k{i}").name for i in range(200)}) == 4  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "healthy_pct, loads",
    # Envoy docs (priority levels): P0's share with P1 fully healthy, overprovisioning factor 1.4
    [(100, [100, 0]), (72, [100, 0]), (71, [99, 1]), (50, [70, 30]), (25, [35, 65]), (0, [0, 100])],
)
def test_priority_load_follows_envoy_overprovisioning_example(healthy_pct: int, loads: list[int]) -> None:
    assert priority_loads([(healthy_pct, 100), (100, 100)])[0] == loads


def test_total_panic_splits_load_by_host_counts() -> None:
    loads, panic = priority_loads([(0, 3), (1, 6)])  # both priorities below 50 % healthy
    assert panic == [True, True] and loads == [34, 66]  # 33/66 plus the remainder to the first


def test_no_panic_when_the_priorities_together_are_fully_available() -> None:
    # P0 has 10 % healthy but P1 makes the total 100 %: Envoy never sets panic then
    assert priority_loads([(1, 10), (10, 10)])[1] == [False, False]


# ---------------------------------------------------------------------------------------------- hashing


def test_hashes_match_the_reference_implementations() -> None:
    # xxhash 0.8 (python-xxhash) and libstdc++ std::_Hash_bytes with Envoy's seed 0xc70f6907
    assert xxhash64(b"") == 17241709254077376921
    assert xxhash64("10.0.0.1:80_0") == 8431885850995268104
    assert xxhash64("a:80", seed=1) == 3450358494221332138
    assert murmur_hash2_64("") == 6142509188972423790
    assert murmur_hash2_64("10.0.0.1:80_0") == 13659246566588789388
    assert murmur_hash2_64("abcdefghi") == 13036955925923793583


def test_ring_size_is_envoys_scale_for_the_lightest_host() -> None:
    assert ring_hash_scale([1 / 3] * 3, 1024, 8388608)[1] == 1026
    assert ring_hash_scale([0.25, 0.75], 1024, 8388608)[1] == 1024
    assert ring_hash_scale([0.001, 0.999], 1024, 1500)[1] == 1500  # capped by maximum_ring_size
    ring, owners = build_ring(("a", "b", "c"), (1.0, 1.0, 2.0))
    assert Counter(owners) == {0: 256, 1: 256, 2: 512}  # weights 1:1:2 -> scale 1024
    assert list(ring) == sorted(ring)


def test_ring_hash_sends_the_same_key_to_the_same_host() -> None:
    b = lb({"lb_policy": "RING_HASH", "hash_key": {"header_name": "x-user"}}, hosts(5))
    for i in range(50):
        assert len({b.choose(f"user-{i}") for _ in range(5)}) == 1


def test_ring_hash_spreads_keys_over_hosts() -> None:
    b = lb("RING_HASH", hosts(4))
    counts = Counter(b.choose(f"user-{i}").name for i in range(4000))  # type: ignore[union-attr]
    assert len(counts) == 4
    assert all(600 <= c <= 1400 for c in counts.values())  # a 1024-entry ring: shares within ±40 %


def test_removing_a_host_moves_its_keys_and_a_few_more_because_envoy_rescales_the_ring() -> None:
    hs = hosts(5)
    b = lb("RING_HASH", hs)
    before = {i: b.choose(f"k{i}") for i in range(5000)}
    b.set_hosts([h for h in hs if h is not hs[2]])
    after = {i: b.choose(f"k{i}") for i in range(5000)}
    moved = [i for i in before if before[i] is not after[i]]
    assert all(after[i] is not hs[2] for i in after)
    assert all(i in moved for i in before if before[i] is hs[2])
    # 5 hosts: 205 entries each (ring 1025); 4 hosts: 256 each (ring 1024). The 51 new
    # entries per host take some keys from the other survivors: about 8 % here, not 0.
    others = sum(1 for i in moved if before[i] is not hs[2]) / 5000
    assert 0.02 < others < 0.15
    assert abs(len(moved) / 5000 - (1 / 5 + others)) < 0.06


def test_ring_hash_host_selection_retry_walks_forward_on_the_ring() -> None:
    hs = hosts(3)
    b = lb("RING_HASH", hs)
    first = b.choose("key")
    other = b.choose("key", avoid={first}, max_attempts=5)
    assert other is not first


def test_ring_hash_without_a_key_uses_a_random_hash() -> None:
    b = lb("RING_HASH", hosts(3))
    assert len({b.choose() for _ in range(100)}) == 3


def test_maglev_table_is_fully_populated_and_equal_weights_differ_by_at_most_one_slot() -> None:
    keys = tuple(f"10.0.0.{i}:8080" for i in range(7))
    table = maglev_table(keys, (1.0,) * 7, 65537)
    counts = Counter(table)
    assert len(table) == 65537 and -1 not in counts
    assert max(counts.values()) - min(counts.values()) <= 1


def test_maglev_weights_set_the_shares() -> None:
    table = maglev_table(("a", "b", "c"), (1.0, 2.0, 1.0), 10007)
    counts = Counter(table)
    assert abs(counts[1] / len(table) - 0.5) < 0.01 and abs(counts[0] / len(table) - 0.25) < 0.01


def test_maglev_same_key_same_host_and_removing_a_host_disrupts_little() -> None:
    hs = hosts(6)
    b = lb({"lb_policy": "MAGLEV", "table_size": 10007}, hs)
    before = {i: b.choose(f"k{i}") for i in range(3000)}
    assert all(b.choose(f"k{i}") is before[i] for i in range(100))
    b.set_hosts(hs[:5])
    after = {i: b.choose(f"k{i}") for i in range(3000)}
    moved_elsewhere = sum(1 for i in before if before[i] is not hs[5] and after[i] is not before[i])
    assert moved_elsewhere / 3000 < 0.05  # Maglev: minimal disruption beyond the removed host's keys


# ---------------------------------------------------------------------------------------------- zones


def zoned(counts: dict[str, int]) -> list[Host]:
    return [Host(f"{z}-{i}", zone=z) for z, n in counts.items() for i in range(n)]


def test_zone_routing_plan_reproduces_envoys_worked_example() -> None:
    plan = zone_routing_plan({"a": 4, "b": 4, "c": 2}, {"a": 1, "b": 2, "c": 1}, "a")
    assert (plan.direct, plan.local_percent_to_route, plan.residual) == (False, 6250, (0, 1000, 1500))


def test_zone_aware_routing_keeps_all_traffic_local_when_zones_are_balanced() -> None:
    hs = zoned({"a": 2, "b": 2, "c": 2})
    b = lb({"zone_aware": {}}, hs, local_zones={"a": 3, "b": 3, "c": 3})
    assert {b.choose(zone="b").zone for _ in range(200)} == {"b"}  # type: ignore[union-attr]
    assert b.stats["lb_zone_routing_all_directly"] == 200


def test_zone_aware_routing_spills_over_when_the_local_zone_is_smaller() -> None:
    hs = zoned({"a": 1, "b": 3, "c": 2})
    b = lb({"zone_aware": {}}, hs, local_zones={"a": 1, "b": 1, "c": 1})
    n = 20000
    counts = Counter(b.choose(zone="a").zone for _ in range(n))  # type: ignore[union-attr]
    # upstream a = 1666/10000, local a = 3333 -> keep 4998/10000 local; residual only in b
    assert abs(counts["a"] - n * 0.4998) <= binom_tol(n, 0.4998)
    assert counts["c"] == 0 and counts["a"] + counts["b"] == n
    assert b.stats["lb_zone_routing_sampled"] == counts["a"]
    assert b.stats["lb_zone_routing_cross_zone"] == counts["b"]


def test_zone_aware_routing_is_skipped_below_min_cluster_size() -> None:
    hs = zoned({"a": 2, "b": 2, "c": 1})
    b = lb({"zone_aware": {}}, hs, local_zones={"a": 1, "b": 1, "c": 1})
    assert len({b.choose(zone="a").zone for _ in range(60)}) == 3  # type: ignore[union-attr]
    assert b.stats["lb_zone_cluster_too_small"] == 1


# ---------------------------------------------------------------------------------------------- Istio


def test_istio_default_policy_is_least_request_not_envoys_round_robin() -> None:
    assert LoadBalancerPolicy().lb_policy == "ROUND_ROBIN"
    assert LoadBalancerPolicy.from_istio(None).lb_policy == "LEAST_REQUEST"
    assert (
        LoadBalancerPolicy.from_istio({"localityLbSetting": {"enabled": True}}).lb_policy == "LEAST_REQUEST"
    )
    assert LoadBalancerPolicy.from_istio({"simple": "LEAST_CONN"}).lb_policy == "LEAST_REQUEST"


def test_an_istio_spelled_block_without_simple_is_least_request_whichever_reader() -> None:
    # the model reads Istio's spelling as istiod does: no simple/consistentHash -> LEAST_REQUEST
    for block in ({"localityLbSetting": {"enabled": True}}, {"warmupDurationSecs": "10s"}, {"simple": "UNSPECIFIED"}):
        assert LoadBalancerPolicy.model_validate(block).lb_policy == "LEAST_REQUEST", block
        assert LoadBalancerPolicy.from_istio(block).lb_policy == "LEAST_REQUEST", block
    # Envoy's spelling keeps Envoy's default, and an explicit lb_policy wins
    assert LoadBalancerPolicy.model_validate({"healthy_panic_threshold": 20}).lb_policy == "ROUND_ROBIN"
    assert LoadBalancerPolicy.model_validate({"lb_policy": "RANDOM", "localityLbSetting": {}}).lb_policy == "RANDOM"


def test_istio_ring_size_zero_is_unset() -> None:
    # istiod writes no ring_hash_lb_config for minimumRingSize 0, so Envoy's 1024 applies
    p = LoadBalancerPolicy.model_validate({"consistentHash": {"httpHeaderName": "x", "ringHash": {"minimumRingSize": 0}}})
    assert (p.lb_policy, p.minimum_ring_size) == ("RING_HASH", 1024)


def test_istio_outlier_detection_sets_the_panic_threshold_to_min_health_percent() -> None:
    assert LoadBalancerPolicy.from_istio({}, outlier_detection={}).healthy_panic_threshold == 0
    assert (
        LoadBalancerPolicy.from_istio({}, outlier_detection={"minHealthPercent": 30}).healthy_panic_threshold
        == 30
    )
    assert LoadBalancerPolicy.from_istio({}).healthy_panic_threshold == 50


def test_istio_locality_failover_needs_outlier_detection() -> None:
    lbs = {"failover": [{"from": "a", "to": "b"}]}
    assert LoadBalancerPolicy.from_istio({"localityLbSetting": lbs}).locality_lb is None
    p = LoadBalancerPolicy.from_istio({"localityLbSetting": lbs}, outlier_detection={})
    assert p.locality_lb is not None and p.locality_lb.failover[0].to == "b"


def test_istio_locality_priority_ranks_subzone_zone_region() -> None:
    assert istio_locality_priority("r/z/s", "r/z/s") == 0
    assert istio_locality_priority("r/z/s", "r/z/t") == 1
    assert istio_locality_priority("r/z/s", "r/y/s") == 2
    assert istio_locality_priority("r/z/s", "q/z/s") == 3
    assert istio_locality_priority("r", "q", [("r", "p")]) == 4


def test_istio_failover_prefers_the_local_zone_then_the_failover_target() -> None:
    hs = zoned({"a": 3, "b": 3, "c": 3})
    p = LoadBalancerPolicy.from_istio(
        {"simple": "ROUND_ROBIN", "localityLbSetting": {"failover": [{"from": "a", "to": "c"}]}},
        outlier_detection={},
    )
    b = LoadBalancer(p, hs, rng=3)
    assert {b.choose(zone="a").zone for _ in range(90)} == {"a"}  # type: ignore[union-attr]
    b.set_hosts(hs, healthy=[False] * 3 + [True] * 6)
    assert {b.choose(zone="a").zone for _ in range(90)} == {"c"}  # type: ignore[union-attr]
    assert {b.choose(zone="b").zone for _ in range(90)} == {"b"}  # type: ignore[union-attr]  # b's own view


def test_istio_failover_spills_gradually_with_the_overprovisioning_factor() -> None:
    hs = zoned({"a": 5, "b": 5})
    p = LoadBalancerPolicy.from_istio({"simple": "RANDOM"}, outlier_detection={})
    b = LoadBalancer(p, hs, rng=5)
    b.set_hosts(hs, healthy=[True, True, True, False, False] + [True] * 5)  # a: 60 % -> health 84
    n = 20000
    local = sum(b.choose(zone="a").zone == "a" for _ in range(n))  # type: ignore[union-attr]
    assert abs(local - 0.84 * n) <= binom_tol(n, 0.84)


def test_istio_distribute_splits_traffic_by_locality_weight() -> None:
    hs = zoned({"a": 2, "b": 2, "c": 2})
    p = LoadBalancerPolicy.model_validate(
        {"localityLbSetting": {"distribute": [{"from": "a/*", "to": {"a/*": 80, "b/*": 20}}]}}
    )
    b = LoadBalancer(p, hs, rng=1)
    counts = Counter(b.choose(zone="a").zone for _ in range(1000))  # type: ignore[union-attr]
    assert counts == {"a": 800, "b": 200}  # EDF over locality weights; c is dropped


# ---------------------------------------------------------------------------------------------- config


def test_envoy_cluster_spelling_is_flattened() -> None:
    p = LoadBalancerPolicy.model_validate(
        {
            "lb_policy": "LEAST_REQUEST",
            "least_request_lb_config": {"choice_count": 3, "active_request_bias": {"default_value": 0.5}},
            "common_lb_config": {"healthy_panic_threshold": {"value": 25.0}},
        }
    )
    assert (p.choice_count, p.active_request_bias, p.healthy_panic_threshold) == (3, 0.5, 25.0)


def test_istio_consistent_hash_spelling_maps_to_ring_hash_or_maglev() -> None:
    p = LoadBalancerPolicy.model_validate(
        {"consistentHash": {"useSourceIp": True, "maglev": {"tableSize": 131}}}
    )
    assert (p.lb_policy, p.table_size, p.hash_key.kind) == ("MAGLEV", 131, "source_ip")  # type: ignore[union-attr]
    p = LoadBalancerPolicy.model_validate({"consistentHash": {"httpCookie": {"name": "s", "ttl": "0s"}}})
    assert (p.lb_policy, p.minimum_ring_size, p.hash_key.cookie) == ("RING_HASH", 1024, "s")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lb_policy": "ROUND_ROBINN"}, "did you mean 'ROUND_ROBIN'"),
        ({"choice_count": 1}, "greater than or equal to 2"),
        ({"table_size": 65536}, "not a prime"),
        (
            {"minimum_ring_size": 4096, "maximum_ring_size": 2048},
            "minimum_ring_size (4096) > maximum_ring_size",
        ),
        ({"simple": "PASSTHROUGH"}, "not simulated"),
        ({"healthy_panic_threshold": 150}, "less than or equal to 100"),
        ({"choise_count": 3}, "did you mean 'choice_count'"),
        ({"simple": "RANDOM", "consistentHash": {"useSourceIp": True}}, "not both"),
    ],
)
def test_invalid_policies_are_refused_with_the_field_and_what_is_allowed(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LoadBalancerPolicy.model_validate(data)


def test_to_envoy_writes_only_non_default_fields() -> None:
    assert to_envoy(LoadBalancerPolicy()) == {"lb_policy": "ROUND_ROBIN"}
    p = LoadBalancerPolicy.model_validate(
        {
            "consistentHash": {"httpHeaderName": "x-user", "ringHash": {"minimumRingSize": 2048}},
            "zone_aware": {"min_cluster_size": 3},
        }
    )
    assert to_envoy(p) == {
        "lb_policy": "RING_HASH",
        "ring_hash_lb_config": {"minimum_ring_size": 2048},
        "common_lb_config": {"zone_aware_lb_config": {"min_cluster_size": 3}},
    }
    assert envoy_hash_policy(p) == [{"header": {"header_name": "x-user"}}]
    warm = LoadBalancerPolicy.model_validate({"simple": "ROUND_ROBIN", "warmupDurationSecs": "30s"})
    assert to_envoy(warm) == {
        "lb_policy": "ROUND_ROBIN",
        "round_robin_lb_config": {"slow_start_config": {"slow_start_window": "30s"}},
    }


def test_lint_explains_when_panic_starts_for_the_host_count() -> None:
    (msg,) = lint(LoadBalancerPolicy(), hosts=5)
    assert "3 or more unhealthy" in msg and msg.code == "MS312"
    from meshsim.policies.load_balancer import panic_unhealthy_hosts

    # one priority: panic below 50 % healthy, never while 1.4 x healthy share >= 100 %
    assert [panic_unhealthy_hosts(n) for n in (1, 2, 3, 4, 5, 10)] == [1, 2, 2, 3, 3, 6]
    assert panic_unhealthy_hosts(10, 80.0) == 3  # 7 healthy: 140 x 0.7 < 100 and 70 % < 80 %
    assert panic_unhealthy_hosts(10, 0.0) is None
    assert lint(LoadBalancerPolicy.model_validate({"healthy_panic_threshold": 0}), hosts=5) == []


def test_bad_host_weights_and_health_masks_are_refused() -> None:
    b = lb("ROUND_ROBIN", hosts(2))
    with pytest.raises(ValueError, match="2 hosts"):
        b.set_hosts(hosts(2), healthy=[True])
    with pytest.raises(ValueError, match="weight 0"):
        b.set_hosts([Host("z", weight=0)])


def test_round_robin_retry_predicate_skips_the_avoided_host() -> None:
    hs = hosts(3)
    b = lb("ROUND_ROBIN", hs, initial_offset=0)
    assert b.choose(avoid={hs[0]}, max_attempts=3) is hs[1]
