"""Load balancing: which upstream host serves an attempt, as Envoy chooses it.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`LoadBalancerPolicy`: ``lb_policy`` (``ROUND_ROBIN``,
  Envoy's default, ``LEAST_REQUEST``, ``RANDOM``, ``RING_HASH``, ``MAGLEV``)
  with its settings, ``healthy_panic_threshold``, Envoy zone-aware routing
  (:class:`ZoneAwareConfig`) and Istio locality load balancing
  (:class:`LocalityLbSetting`). Envoy's cluster spelling
  (``least_request_lb_config``, ``ring_hash_lb_config``, ``common_lb_config``,
  ...) and Istio's DestinationRule ``loadBalancer`` spelling (``simple``,
  ``consistentHash``, ``localityLbSetting``, ``warmup``) are both accepted;
  :meth:`LoadBalancerPolicy.from_istio` adds Istio's own defaults.
* **Runtime** — :class:`LoadBalancer` holds one cluster's hosts and their
  health and answers :meth:`LoadBalancer.choose` with a host, or ``None``
  (the router then answers 503 ``no healthy upstream``, flag ``UH``).
* **Envoy** — :func:`to_envoy` writes the cluster fields, and
  :func:`envoy_hash_policy` the route ``hash_policy`` of consistent hashing.

Semantics (``source/extensions/load_balancing_policies/``: ``common/load_balancer_impl.cc``,
``round_robin/round_robin_lb.h``, ``least_request/least_request_lb.cc``,
``random/random_lb.cc``, ``ring_hash/ring_hash_lb.cc``, ``maglev/maglev_lb.cc``,
``common/thread_aware_lb_impl.cc``, ``source/common/upstream/edf_scheduler.h``;
envoy.md 4.5, 5, 9.2):

* **Priorities and panic** (:func:`priority_loads`). Each priority gets load
  ``min(100, 140 × healthy / hosts)`` (overprovisioning factor 1.4), in order.
  A priority is in **panic** when ``100 × healthy / hosts <
  healthy_panic_threshold`` (default 50 %), unless the priorities together
  have 100 % availability: it then routes to **all** its hosts, ejected and
  failed ones included (stat ``lb_healthy_panic``). With a threshold of 0 and
  no healthy host, :meth:`~LoadBalancer.choose` returns ``None``. Without
  Istio locality failover there is one priority.
* **ROUND_ROBIN**: equal weights → ``hosts[i++ % n]`` with ``i`` starting at a
  random seed per load balancer and kept per host source across host-set
  changes; unequal weights → EDF schedule (deadline ``now + 1/weight``, ties
  in insertion order) built with the seed as a number of pre-picks.
* **LEAST_REQUEST**: equal weights → ``choice_count`` (default 2) hosts drawn
  with replacement, the one with strictly fewer active requests replaces the
  first (P2C); unequal weights → EDF on ``weight / (active + 1) **
  active_request_bias`` (bias default 1.0), recomputed when a host is
  re-queued after its pick.
* **RANDOM**: ``hosts[random % n]``, weights ignored.
* **RING_HASH** (:func:`build_ring`): each host gets about ``scale ×
  weight/Σweight`` ring entries ``xxHash64("<name>_<i>")`` with ``scale =
  min(ceil(min_w × minimum_ring_size) / min_w, maximum_ring_size)``; a
  request hash picks the first entry ≥ it, wrapping (ketama). A host-selection
  retry ``k`` takes the entry ``k`` places further. The scale depends on the
  lightest host's share, so when a host leaves, the survivors get more entries
  and a few of their keys move too (about 8 % of keys for 5 → 4 equal hosts).
* **MAGLEV** (:func:`maglev_table`): the Maglev permutation fill of a prime
  ``table_size`` (default 65537), weighted; lookup ``table[hash % size]``; a
  host-selection retry ``k`` looks up ``hash ^ (2**64 - k)``.
* Consistent hashing without a key (no header, ...) uses a random hash, as Envoy does.
* **Zone-aware routing** (:func:`zone_routing_plan`, Envoy's
  ``zone_aware_lb_config`` with a local cluster) for ROUND_ROBIN, LEAST_REQUEST
  and RANDOM, priority 0 only: skipped with fewer than ``min_cluster_size``
  (default 6) healthy upstream hosts or fewer than two zones; all traffic stays
  in the caller's zone when that zone's share of upstream hosts ≥ its share of
  callers, otherwise ``upstream% / local%`` of it stays and the rest spills
  over to zones with spare capacity.
* **Istio locality load balancing** (:func:`istio_locality_priority`): endpoints
  get priorities relative to the caller's locality (0 same
  region/zone/subzone, 1 same region/zone, 2 same region, 3 other, 4 other and
  not the ``failover`` target of the caller's region), so traffic fails over
  by Envoy's priority rule above. ``distribute`` sets locality weights
  instead. A locality is written ``region/zone/subzone``; a plain name (``a``)
  is a region of its own, so plain zone names fail over zone by zone.

Hosts are opaque objects the engine owns, read through attributes: ``weight``
(int >= 1, default 1), ``zone`` (locality string or ``None``) and ``name``
(a stable string, Envoy's address, used as the hash key; default ``str(host)``).
Least request reads live load through ``active(host) -> int`` (default: the
host's ``active_requests`` attribute).

Simplifications: one worker (``--concurrency 1``); no degraded hosts, no
excluded hosts, no ``hash_balance_factor`` (bounded load), no
``slow_start_config``/Istio ``warmup`` in the simulation (they are exported),
no ``fail_traffic_on_panic``, the local cluster of zone-aware routing is never
in panic, no Istio ``failoverPriority``; the random LB draws the priority and
the host from separate draws (Envoy reuses one). ``lb_policy`` PASSTHROUGH
(ORIGINAL_DST) is refused.
"""

from __future__ import annotations

import functools
import heapq
import math
import operator
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from pydantic import Field, field_validator, model_validator

from meshsim.latency import PositiveDuration
from meshsim.policies._model import PolicyModel, Trap, refuse, suggest
from meshsim.units import proto_duration

__all__ = [
    "LB_POLICIES",
    "DEFAULT_LB_POLICY",
    "ISTIO_DEFAULT_LB_POLICY",
    "DEFAULT_CHOICE_COUNT",
    "DEFAULT_ACTIVE_REQUEST_BIAS",
    "DEFAULT_MINIMUM_RING_SIZE",
    "DEFAULT_MAXIMUM_RING_SIZE",
    "DEFAULT_TABLE_SIZE",
    "MAX_TABLE_SIZE",
    "DEFAULT_HEALTHY_PANIC_THRESHOLD",
    "DEFAULT_MIN_CLUSTER_SIZE",
    "DEFAULT_ROUTING_ENABLED",
    "OVERPROVISIONING_FACTOR",
    "HashKey",
    "ZoneAwareConfig",
    "LocalityFailover",
    "LocalityDistribute",
    "LocalityLbSetting",
    "SlowStartConfig",
    "LoadBalancerPolicy",
    "LoadBalancer",
    "ZonePlan",
    "xxhash64",
    "murmur_hash2_64",
    "ring_hash_scale",
    "build_ring",
    "ring_lookup",
    "maglev_table",
    "priority_loads",
    "panic_unhealthy_hosts",
    "zone_routing_plan",
    "istio_locality_priority",
    "locality_matches",
    "to_envoy",
    "envoy_hash_policy",
    "envoy_locality",
    "depends_on_caller_zone",
    "LocalityGroup",
    "locality_groups",
    "to_envoy_endpoints",
    "to_istio",
    "unsupported",
    "lint",
]

#: The load balancing policies meshsim simulates.
LB_POLICIES = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV")
#: Envoy's ``Cluster.lb_policy`` default.
DEFAULT_LB_POLICY = "ROUND_ROBIN"
#: Istio's default when a DestinationRule sets no ``simple``/``consistentHash``
#: (``defaultLBAlgorithm``; ROUND_ROBIN only with ``ENABLE_LEGACY_LB_ALGORITHM_DEFAULT``).
ISTIO_DEFAULT_LB_POLICY = "LEAST_REQUEST"
#: ``least_request_lb_config.choice_count`` default (P2C).
DEFAULT_CHOICE_COUNT = 2
#: ``least_request_lb_config.active_request_bias`` default.
DEFAULT_ACTIVE_REQUEST_BIAS = 1.0
#: ``ring_hash_lb_config.minimum_ring_size`` default.
DEFAULT_MINIMUM_RING_SIZE = 1024
#: ``ring_hash_lb_config.maximum_ring_size`` default and upper bound (8M).
DEFAULT_MAXIMUM_RING_SIZE = 8_388_608
#: ``maglev_lb_config.table_size`` default (a prime).
DEFAULT_TABLE_SIZE = 65537
#: ``maglev_lb_config.table_size`` upper bound (Envoy validation).
MAX_TABLE_SIZE = 5_000_011
#: ``common_lb_config.healthy_panic_threshold`` default, percent.
DEFAULT_HEALTHY_PANIC_THRESHOLD = 50.0
#: ``zone_aware_lb_config.min_cluster_size`` default.
DEFAULT_MIN_CLUSTER_SIZE = 6
#: ``zone_aware_lb_config.routing_enabled`` default, percent.
DEFAULT_ROUTING_ENABLED = 100.0
#: Envoy's default ``overprovisioning_factor`` (140 = 1.4).
OVERPROVISIONING_FACTOR = 140

_MASK64 = (1 << 64) - 1
_EDF_MAX_PICKS = 429496729  # UINT32_MAX / 10, EdfScheduler::createWithPicks


# ==================================================================================================
# pure math: hashes


_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _MASK64
    return (_rotl(acc, 31) * _P1) & _MASK64


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _MASK64


def xxhash64(data: bytes | str, seed: int = 0) -> int:
    """XXH64 of ``data`` (what Envoy's ``HashUtil::xxHash64`` computes).

    Pure Python, exact (checked against the reference implementation's
    values); a string is hashed as UTF-8.

    Examples
    --------
    >>> xxhash64(b"")
    17241709254077376921
    >>> hex(xxhash64("abc"))
    '0x44bc2cf5ad770999'
    """
    if isinstance(data, str):
        data = data.encode()
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _MASK64
        v2 = (seed + _P2) & _MASK64
        v3 = seed & _MASK64
        v4 = (seed - _P1) & _MASK64
        limit = n - 32
        frm = int.from_bytes
        while i <= limit:
            v1 = _round(v1, frm(data[i : i + 8], "little"))
            v2 = _round(v2, frm(data[i + 8 : i + 16], "little"))
            v3 = _round(v3, frm(data[i + 16 : i + 24], "little"))
            v4 = _round(v4, frm(data[i + 24 : i + 32], "little"))
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK64
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _MASK64
    h = (h + n) & _MASK64
    while i + 8 <= n:
        k1 = _round(0, int.from_bytes(data[i : i + 8], "little"))
        h ^= k1
        h = (_rotl(h, 27) * _P1 + _P4) & _MASK64
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i : i + 4], "little") * _P1) & _MASK64
        h = (_rotl(h, 23) * _P2 + _P3) & _MASK64
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _MASK64
        h = (_rotl(h, 11) * _P1) & _MASK64
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _MASK64
    h ^= h >> 29
    h = (h * _P3) & _MASK64
    h ^= h >> 32
    return h


_MURMUR_MUL = (0xC6A4A793 << 32) + 0x5BD1E995
#: Envoy's ``MurmurHash::STD_HASH_SEED``.
_MURMUR_SEED = 0xC70F6907


def murmur_hash2_64(data: bytes | str, seed: int = _MURMUR_SEED) -> int:
    """64-bit MurmurHash2 as libstdc++'s ``std::hash<std::string>`` (Envoy's ``murmurHash2``).

    Used for ring entries when ``hash_function: MURMUR_HASH_2``.

    Examples
    --------
    >>> murmur_hash2_64("") == murmur_hash2_64(b"")
    True
    """
    if isinstance(data, str):
        data = data.encode()
    mul = _MURMUR_MUL
    n = len(data)
    aligned = n & ~7
    h = (seed ^ (n * mul)) & _MASK64
    for p in range(0, aligned, 8):
        k = (int.from_bytes(data[p : p + 8], "little") * mul) & _MASK64
        k = ((k ^ (k >> 47)) * mul) & _MASK64
        h ^= k
        h = (h * mul) & _MASK64
    if n & 7:
        h ^= int.from_bytes(data[aligned:], "little")
        h = (h * mul) & _MASK64
    h = ((h ^ (h >> 47)) * mul) & _MASK64
    return h ^ (h >> 47)


# ==================================================================================================
# pure math: ring hash and maglev


def ring_hash_scale(weights: Sequence[float], minimum_ring_size: int, maximum_ring_size: int) -> tuple[float, int]:
    """Envoy's ring scale and ring size for normalized host ``weights`` (summing to 1).

    ``scale = min(ceil(min_w × minimum_ring_size) / min_w, maximum_ring_size)``,
    ``ring_size = ceil(scale)``: the lightest host gets a whole number of entries.

    Examples
    --------
    Three equal hosts with the default minimum 1024: 342 entries each.

    >>> ring_hash_scale([1/3, 1/3, 1/3], 1024, 8388608)
    (1026.0, 1026)
    """
    min_w = min(weights)
    scale = min(math.ceil(min_w * minimum_ring_size) / min_w, float(maximum_ring_size))
    return scale, math.ceil(scale)


@functools.lru_cache(maxsize=32)
def build_ring(
    keys: tuple[str, ...],
    weights: tuple[float, ...],
    minimum_ring_size: int = DEFAULT_MINIMUM_RING_SIZE,
    maximum_ring_size: int = DEFAULT_MAXIMUM_RING_SIZE,
    hash_function: str = "XX_HASH",
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sorted ring of Envoy's ring hash LB: (entry hashes, host index of each entry).

    Parameters
    ----------
    keys
        Each host's hash key (Envoy: its address, ``"10.0.0.1:8080"``).
    weights
        Host weights (any positive scale; normalized here).
    minimum_ring_size, maximum_ring_size
        Envoy's ring bounds.
    hash_function
        ``"XX_HASH"`` (default) or ``"MURMUR_HASH_2"``.

    Notes
    -----
    Entries are ``hash("<key>_<i>")``; each host's count follows running sums
    of ``scale × weight`` so fractional shares add up over the ring. Ties in
    hash keep insertion order (Envoy's ``std::sort`` leaves them unspecified).
    Results are cached: rings are rebuilt on every health change.

    Examples
    --------
    >>> hashes, owners = build_ring(("a:80", "b:80"), (1.0, 1.0))
    >>> len(hashes), owners.count(0), owners.count(1)
    (1024, 512, 512)
    """
    if not keys:
        return (), ()
    total = float(sum(weights))
    norm = [w / total for w in weights]
    scale, _ = ring_hash_scale(norm, minimum_ring_size, maximum_ring_size)
    hfn = murmur_hash2_64 if hash_function == "MURMUR_HASH_2" else xxhash64
    entries: list[tuple[int, int]] = []
    current = 0.0
    target = 0.0
    for idx, (key, w) in enumerate(zip(keys, norm, strict=True)):
        target += scale * w
        i = 0
        prefix = key + "_"
        while current < target:
            entries.append((hfn(prefix + str(i)), idx))
            i += 1
            current += 1
    entries.sort(key=operator.itemgetter(0))
    return tuple(e[0] for e in entries), tuple(e[1] for e in entries)


def ring_lookup(hashes: Sequence[int], h: int, attempt: int = 0) -> int:
    """Ring position for request hash ``h``: the first entry ≥ ``h``, wrapping; ``+attempt``.

    Examples
    --------
    >>> ring_lookup([10, 20, 30], 15), ring_lookup([10, 20, 30], 31), ring_lookup([10, 20, 30], 20, 2)
    (1, 0, 0)
    """
    n = len(hashes)
    pos = bisect_left(hashes, h)
    if pos == n:
        pos = 0
    if attempt > 0:
        pos = (pos + attempt) % n
    return pos


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


@functools.lru_cache(maxsize=16)
def maglev_table(keys: tuple[str, ...], weights: tuple[float, ...], table_size: int = DEFAULT_TABLE_SIZE) -> tuple[int, ...]:
    """Envoy's Maglev lookup table: the host index of each of ``table_size`` slots.

    Parameters
    ----------
    keys
        Each host's hash key; hosts are taken in sorted key order, as Envoy does.
    weights
        Host weights (any positive scale).
    table_size
        A prime.

    Notes
    -----
    Host ``k`` has ``offset = xxHash64(key) % M`` and ``skip = xxHash64(key,
    seed=1) % (M - 1) + 1`` and walks ``(offset + skip × j) % M``. Rounds go
    over the hosts in key order; a host of normalized weight ``w`` takes its
    turn when ``round × w ≥`` its running target, which then grows by the
    largest weight (so the heaviest host claims a slot every round). A turn
    takes the next free slot on the host's walk. Results are cached.

    Examples
    --------
    >>> t = maglev_table(("a:80", "b:80", "c:80"), (1.0, 1.0, 1.0), 13)
    >>> len(t), sorted(set(t)), max(t.count(i) for i in range(3)) - min(t.count(i) for i in range(3)) <= 1
    (13, [0, 1, 2], True)
    """
    if not keys:
        return ()
    m = table_size
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    total = float(sum(weights))
    norm = [weights[i] / total for i in order]
    max_w = max(norm)
    offsets = [xxhash64(keys[i]) % m for i in order]
    skips = [xxhash64(keys[i], 1) % (m - 1) + 1 for i in order]
    nexts = [0] * len(order)
    targets = [0.0] * len(order)
    table = [-1] * m
    filled = 0
    iteration = 1
    nh = len(order)
    while filled < m:
        for k in range(nh):
            if filled >= m:
                break
            if iteration * norm[k] < targets[k]:
                continue
            targets[k] += max_w
            off = offsets[k]
            sk = skips[k]
            j = nexts[k]
            c = (off + sk * j) % m
            while table[c] != -1:
                j += 1
                c = (off + sk * j) % m
            table[c] = order[k]
            nexts[k] = j + 1
            filled += 1
        iteration += 1
    return tuple(table)


# ==================================================================================================
# pure math: priorities, zones, localities


def priority_loads(
    levels: Sequence[tuple[int, int]],
    panic_threshold: float = DEFAULT_HEALTHY_PANIC_THRESHOLD,
    overprovisioning_factor: int = OVERPROVISIONING_FACTOR,
) -> tuple[list[int], list[bool]]:
    """Percent of traffic per priority and which priorities are in panic.

    Parameters
    ----------
    levels
        ``(healthy, hosts)`` counts per priority, highest priority first.
    panic_threshold
        ``healthy_panic_threshold`` in percent (truncated to whole percent, as Envoy).
    overprovisioning_factor
        140 by default (1.4).

    Returns
    -------
    loads, panic
        Integer loads summing to 100, and a panic flag per priority.

    Notes
    -----
    ``health_P = min(100, factor × healthy / hosts // 100)``; loads go in
    priority order, ``min(remaining, health_P × 100 / Σhealth)`` with ``Σhealth``
    capped at 100, the rounding remainder to the first available priority.
    Panic: ``100 × healthy / hosts < threshold``, never when ``Σhealth`` is 100.
    All priorities in panic: loads by host counts. Threshold 0 and no healthy
    host anywhere: all load to priority 0, no panic (no host can be chosen).

    Examples
    --------
    Envoy's docs: P0 with 71 % healthy keeps 99 %; at 50 % it keeps 70 %.

    >>> priority_loads([(71, 100), (100, 100)])
    ([99, 1], [False, False])
    >>> priority_loads([(1, 2), (2, 2)])
    ([70, 30], [False, False])

    One priority, 5 hosts: 2 ejected keep routing to the 3 healthy ones; 3
    ejected put the priority in panic (40 % < 50 %).

    >>> priority_loads([(3, 5)]), priority_loads([(2, 5)])
    (([100], [False]), ([100], [True]))
    """
    n = len(levels)
    threshold = min(100, int(panic_threshold))
    health = []
    for healthy, hosts in levels:
        health.append(min(100, overprovisioning_factor * healthy // hosts) if hosts > 0 else 0)
    nta = min(100, sum(health))
    loads = [0] * n
    if nta > 0:
        remaining = 100
        first = -1
        for i in range(n):
            if first < 0 and health[i] > 0:
                first = i
            loads[i] = min(remaining, health[i] * 100 // nta)
            remaining -= loads[i]
        if remaining:
            loads[first] += remaining
    if threshold == 0 and nta == 0:
        loads = [0] * n
        loads[0] = 100
        return loads, [False] * n
    panic = [False] * n
    if nta != 100:
        for i, (healthy, hosts) in enumerate(levels):
            pct = 100.0 * healthy / hosts if hosts > 0 else 0.0
            panic[i] = pct < threshold
    if all(panic):
        total_hosts = sum(h for _, h in levels)
        loads = [0] * n
        if total_hosts == 0:
            loads[0] = 100
        else:
            remaining = 100
            first = -1
            for i, (_, hosts) in enumerate(levels):
                if first < 0 and hosts:
                    first = i
                loads[i] = 100 * hosts // total_hosts
                remaining -= loads[i]
            loads[first] += remaining
    return loads, panic


class ZonePlan(NamedTuple):
    """Envoy's zone-aware routing state for one caller zone (:func:`zone_routing_plan`).

    Attributes
    ----------
    direct
        True: every request stays in the local zone (``LocalityDirect``).
    local_percent_to_route
        Out of 10 000: the share of requests kept local in residual mode.
    zones
        Upstream zones, the local zone first when it has upstream hosts.
    residual
        Cumulative spare capacity of each zone in ``zones`` (out of 10 000),
        for the cross-zone share.
    has_local
        Whether ``zones[0]`` is the local zone.
    """

    direct: bool
    local_percent_to_route: int
    zones: tuple[Any, ...]
    residual: tuple[int, ...]
    has_local: bool


def zone_routing_plan(
    local_counts: Mapping[Any, int], upstream_healthy: Mapping[Any, int], local_zone: Any
) -> ZonePlan:
    """Envoy's ``regenerateLocalityRoutingStructures`` for one caller zone.

    Parameters
    ----------
    local_counts
        Zone -> number of callers (Envoy: hosts of the local cluster).
    upstream_healthy
        Zone -> healthy upstream hosts; every upstream zone appears, with 0
        if it has no healthy host.
    local_zone
        The caller's zone.

    Notes
    -----
    Shares are in units of 1/10 000: ``local% = 10000 × local_count / Σlocal``,
    ``upstream% = 10000 × healthy / Σhealthy``. The local zone routes directly
    when ``upstream%[local] > 0`` and ``≥ local%[local]``; otherwise it keeps
    ``upstream% × 10000 / local%`` of its traffic, and zones with
    ``upstream% > local%`` share the rest in proportion to the difference.

    Examples
    --------
    The example in Envoy's source: local 40/40/20 %, upstream 25/50/25 %.

    >>> plan = zone_routing_plan({"a": 4, "b": 4, "c": 2}, {"a": 1, "b": 2, "c": 1}, "a")
    >>> plan.direct, plan.local_percent_to_route, plan.zones, plan.residual
    (False, 6250, ('a', 'b', 'c'), (0, 1000, 1500))
    >>> zone_routing_plan({"a": 1, "b": 1}, {"a": 3, "b": 3}, "a").direct
    True
    """
    total_local = sum(local_counts.values())
    total_up = sum(upstream_healthy.values())
    has_local = local_zone in upstream_healthy
    others = sorted((z for z in upstream_healthy if z != local_zone), key=_sort_key)
    zones = ((local_zone,) if has_local else ()) + tuple(others)

    def pct(z: Any) -> tuple[int, int]:
        up = upstream_healthy.get(z, 0)
        if up == 0:
            return 0, 0
        loc = 10000 * local_counts.get(z, 0) // total_local if total_local > 0 else 0
        return loc, 10000 * up // total_up if total_up > 0 else 0

    if has_local:
        loc0, up0 = pct(local_zone)
        if up0 > 0 and up0 >= loc0:
            return ZonePlan(True, 10000, zones, tuple(0 for _ in zones), True)
        local_to_route = up0 * 10000 // loc0 if loc0 > 0 else 0
    else:
        local_to_route = 0
    residual = []
    acc = 0
    for i, z in enumerate(zones):
        if not (i == 0 and has_local):
            loc, up = pct(z)
            if up > loc:
                acc += up - loc
        residual.append(acc)
    return ZonePlan(False, local_to_route, zones, tuple(residual), has_local)


def _sort_key(z: Any) -> tuple[int, str]:
    return (0, "") if z is None else (1, str(z))


def _split_locality(loc: str | None) -> tuple[str, str, str]:
    if not loc:
        return ("", "", "")
    parts = (str(loc).split("/") + ["", ""])[:3]
    return (parts[0], parts[1], parts[2])


def locality_matches(locality: str | None, pattern: str) -> bool:
    """Istio's ``util.LocalityMatch``: ``region/zone/subzone`` against a pattern with ``*``.

    Examples
    --------
    >>> locality_matches("us-east/us-east-1a/x", "us-east/*"), locality_matches("eu", "us-east/*")
    (True, False)
    >>> locality_matches("a", "*"), locality_matches("a", "a")
    (True, True)
    """
    region, zone, subzone = _split_locality(locality)
    pat = pattern.split("/")
    for have, want in zip((region, zone, subzone), pat, strict=False):
        if want == "*":
            return True
        if have != want:
            return False
    return True


def istio_locality_priority(
    proxy: str | None, endpoint: str | None, failover: Sequence[tuple[str, str]] = ()
) -> int:
    """Istio's endpoint priority relative to the calling proxy's locality.

    0 = same region, zone and subzone; 1 = same region and zone; 2 = same
    region; 3 = other region; 4 = other region that is not the ``failover``
    target of the proxy's region (``failover`` = ``(from_region, to_region)``
    pairs). Istio then renumbers the priorities in use to 0..N
    (``applyLocalityFailover``).

    Examples
    --------
    >>> istio_locality_priority("us/us-1a", "us/us-1a"), istio_locality_priority("us/us-1a", "us/us-1b")
    (0, 2)
    >>> istio_locality_priority("a", "b", [("a", "c")]), istio_locality_priority("a", "c", [("a", "c")])
    (4, 3)
    """
    pr, pz, ps = _split_locality(proxy)
    er, ez, es = _split_locality(endpoint)
    if pr == er:
        if pz == ez:
            return 0 if ps == es else 1
        return 2
    for frm, to in failover:
        if frm == pr:
            return 4 if er != to or not endpoint else 3
    return 3


# ==================================================================================================
# config


class HashKey(PolicyModel):
    """What consistent hashing hashes (Envoy route ``hash_policy``; Istio ``consistentHash`` key).

    Exactly one of:

    Parameters
    ----------
    header_name
        Hash the value of this request header (Istio ``httpHeaderName``).
    use_source_ip
        Hash the caller (Envoy ``connection_properties.source_ip``; Istio
        ``useSourceIp``). meshsim hashes the caller's id.
    cookie
        Hash this cookie's value (Istio ``httpCookie.name``).
    query_parameter
        Hash this query parameter (Istio ``httpQueryParameterName``).

    Notes
    -----
    The engine extracts the value and passes it to
    :meth:`LoadBalancer.choose` as ``hash_key``; a missing value means a
    random hash, as in Envoy.
    """

    header_name: str | None = None
    use_source_ip: bool | None = None
    cookie: str | None = None
    query_parameter: str | None = None

    @model_validator(mode="after")
    def _one(self) -> HashKey:
        given = [k for k in ("header_name", "use_source_ip", "cookie", "query_parameter") if getattr(self, k)]
        if len(given) != 1:
            raise refuse(
                "give exactly one hash key: header_name, use_source_ip, cookie or query_parameter; "
                f"got {' and '.join(given) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        """``"header"``, ``"source_ip"``, ``"cookie"`` or ``"query_parameter"``."""
        if self.header_name:
            return "header"
        if self.use_source_ip:
            return "source_ip"
        return "cookie" if self.cookie else "query_parameter"


class ZoneAwareConfig(PolicyModel):
    """Envoy ``Cluster.CommonLbConfig.ZoneAwareLbConfig``.

    Parameters
    ----------
    routing_enabled
        Percent of requests that try zone-aware routing; default 100.
    min_cluster_size
        Fewer healthy upstream hosts than this → no zone-aware routing; default 6.

    Notes
    -----
    Envoy routes zone-aware whenever the bootstrap names a local cluster
    (``cluster_manager.local_cluster_name``); meshsim does so when the policy
    has this block and the engine gives the callers' zones
    (:meth:`LoadBalancer.set_local_zones`).
    """

    routing_enabled: float = Field(default=DEFAULT_ROUTING_ENABLED, ge=0, le=100)
    min_cluster_size: int = Field(default=DEFAULT_MIN_CLUSTER_SIZE, ge=0)

    @field_validator("routing_enabled", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return _percent_value(value, "routing_enabled")


class LocalityFailover(PolicyModel):
    """Istio ``LocalityLoadBalancerSetting.Failover``: region ``from`` fails over to region ``to``."""

    from_: str = Field(alias="from")
    to: str

    model_config = {**PolicyModel.model_config, "populate_by_name": True}

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """``from`` and ``to``."""
        return ["from", "to", "from_"]


class LocalityDistribute(PolicyModel):
    """Istio ``LocalityLoadBalancerSetting.Distribute``: callers in ``from`` split traffic by ``to``."""

    from_: str = Field(alias="from")
    to: dict[str, int]

    model_config = {**PolicyModel.model_config, "populate_by_name": True}

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """``from`` and ``to``."""
        return ["from", "to", "from_"]

    @field_validator("to")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        for loc, w in value.items():
            if w < 0:
                raise refuse(f"distribute weight {w} for {loc!r} is negative")
        if value and sum(value.values()) == 0:
            raise refuse("distribute weights sum to 0")
        return value


class LocalityLbSetting(PolicyModel):
    """Istio ``LocalityLoadBalancerSetting`` (``localityLbSetting``).

    Parameters
    ----------
    enabled
        Default true (the mesh default enables locality load balancing).
    failover
        ``[{from: region, to: region}]``: where a region's traffic goes when
        no healthy endpoint is left in it.
    distribute
        ``[{from: locality-pattern, to: {locality-pattern: weight}}]``; Istio
        applies either ``distribute`` or failover, ``distribute`` first.

    Notes
    -----
    Istio writes failover priorities only when the cluster has outlier
    detection; :meth:`LoadBalancerPolicy.from_istio` applies that rule.
    """

    enabled: bool = True
    failover: tuple[LocalityFailover, ...] = ()
    distribute: tuple[LocalityDistribute, ...] = ()

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("failoverPriority"):
            raise refuse("failoverPriority (label-based failover) is not simulated; use failover")
        if isinstance(data, Mapping) and "failoverPriority" in data:
            data = {k: v for k, v in data.items() if k != "failoverPriority"}
        return data


class SlowStartConfig(PolicyModel):
    """Envoy ``SlowStartConfig`` (Istio ``warmup``/``warmupDurationSecs``); exported, not simulated.

    Parameters
    ----------
    slow_start_window
        Duration a new host ramps up over.
    aggression
        Default 1.0.
    min_weight_percent
        Default 10.
    """

    slow_start_window: PositiveDuration
    aggression: float = Field(default=1.0, gt=0)
    min_weight_percent: float = Field(default=10.0, ge=0, le=100)

    _synonyms: ClassVar[Mapping[str, str]] = {
        "duration": "slow_start_window",
        "minimumPercent": "min_weight_percent",
    }

    @field_validator("aggression", "min_weight_percent", mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "default_value" in value:
            return value["default_value"]
        if isinstance(value, Mapping) and "value" in value:
            return value["value"]
        return value


def _percent_value(value: Any, name: str) -> Any:
    """Envoy ``Percent`` ``{value: x}``, ``"x%"`` or a number -> the number (0..100)."""
    if isinstance(value, Mapping):
        if set(value) != {"value"}:
            raise refuse(f"{name} must be a percentage (a number in [0, 100] or {{value: x}})")
        value = value["value"]
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1])
        except ValueError:
            raise refuse(f"{name} {value!r} is not a percentage") from None
    return value


_ENVOY_NESTED = {
    "least_request_lb_config": ("choice_count", "active_request_bias", "slow_start_config", "selection_method"),
    "round_robin_lb_config": ("slow_start_config",),
    "ring_hash_lb_config": ("minimum_ring_size", "maximum_ring_size", "hash_function"),
    "maglev_lb_config": ("table_size",),
}
_ISTIO_SIMPLE = {
    "ROUND_ROBIN": "ROUND_ROBIN",
    "LEAST_REQUEST": "LEAST_REQUEST",
    "LEAST_CONN": "LEAST_REQUEST",
    "RANDOM": "RANDOM",
}


def _flatten_envoy(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for block, keys in _ENVOY_NESTED.items():
        if block in out:
            inner = out.pop(block)
            if not isinstance(inner, Mapping):
                raise refuse(f"{block} must be a mapping")
            for k, v in inner.items():
                if k not in keys:
                    raise refuse(f"unknown key {k!r} in {block}{suggest(k, keys)} (allowed: {', '.join(keys)})")
                if k == "slow_start_config":
                    k = "slow_start"
                if k in out:
                    raise refuse(f"{k!r} is given twice (at top level and in {block})")
                out[k] = v
    if "common_lb_config" in out:
        common = out.pop("common_lb_config")
        allowed = ("healthy_panic_threshold", "zone_aware_lb_config", "locality_weighted_lb_config")
        if not isinstance(common, Mapping):
            raise refuse("common_lb_config must be a mapping")
        for k, v in common.items():
            if k not in allowed:
                raise refuse(
                    f"unknown key {k!r} in common_lb_config{suggest(k, allowed)} (allowed: {', '.join(allowed)})"
                )
            if k == "zone_aware_lb_config":
                out["zone_aware"] = v
            elif k == "healthy_panic_threshold":
                out["healthy_panic_threshold"] = v
            else:
                out["locality_weighted"] = True
    return out


#: Keys that make a load-balancer mapping Istio's ``LoadBalancerSettings``.
_ISTIO_LB_KEYS = ("simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup")


def _expand_istio(data: Mapping[str, Any]) -> dict[str, Any]:
    """Istio's ``LoadBalancerSettings`` -> meshsim fields, as istiod's ``applyLoadBalancer`` reads it.

    A block in Istio's spelling (any of :data:`_ISTIO_LB_KEYS`) without
    ``simple`` (or with ``simple: UNSPECIFIED``) or ``consistentHash`` is
    **LEAST_REQUEST**, istiod's default, not Envoy's ROUND_ROBIN. A
    ``minimumRingSize`` of 0 is unset (istiod then writes Envoy's 1024).
    """
    out = dict(data)
    istio_spelled = any(k in data for k in _ISTIO_LB_KEYS)
    if "simple" in out:
        simple = out.pop("simple")
        if simple == "PASSTHROUGH":
            raise refuse("simple: PASSTHROUGH (ORIGINAL_DST) is not simulated")
        if simple not in (*_ISTIO_SIMPLE, "UNSPECIFIED"):
            raise refuse(
                f"simple {simple!r} is not one of ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, "
                f"PASSTHROUGH, UNSPECIFIED{suggest(simple, _ISTIO_SIMPLE)}"
            )
        if simple != "UNSPECIFIED":
            if "lb_policy" in out:
                raise refuse("give either 'simple' or 'lb_policy', not both")
            out["lb_policy"] = _ISTIO_SIMPLE[simple]
    if "consistentHash" in out:
        ch = out.pop("consistentHash")
        if not isinstance(ch, Mapping):
            raise refuse("consistentHash must be a mapping")
        if "lb_policy" in out:
            raise refuse("give either 'simple' or 'consistentHash', not both (Istio's lbPolicy is a oneof)")
        allowed = (
            "httpHeaderName",
            "httpCookie",
            "useSourceIp",
            "httpQueryParameterName",
            "ringHash",
            "maglev",
            "minimumRingSize",
        )
        for k in ch:
            if k not in allowed:
                raise refuse(f"unknown key {k!r} in consistentHash{suggest(k, allowed)} (allowed: {', '.join(allowed)})")
        if "maglev" in ch:
            out["lb_policy"] = "MAGLEV"
            mag = ch["maglev"] or {}
            if "tableSize" in mag:
                out["table_size"] = mag["tableSize"]
        else:
            out["lb_policy"] = "RING_HASH"
            ring = ch.get("ringHash") or {}
            if ring.get("minimumRingSize"):
                out["minimum_ring_size"] = ring["minimumRingSize"]
            elif ch.get("minimumRingSize"):
                out["minimum_ring_size"] = ch["minimumRingSize"]
        if "httpHeaderName" in ch:
            out["hash_key"] = {"header_name": ch["httpHeaderName"]}
        elif ch.get("useSourceIp"):
            out["hash_key"] = {"use_source_ip": True}
        elif "httpCookie" in ch:
            cookie = ch["httpCookie"]
            out["hash_key"] = {"cookie": cookie.get("name") if isinstance(cookie, Mapping) else cookie}
        elif "httpQueryParameterName" in ch:
            out["hash_key"] = {"query_parameter": ch["httpQueryParameterName"]}
    if "localityLbSetting" in out:
        out["locality_lb"] = out.pop("localityLbSetting")
    if "warmupDurationSecs" in out:
        out["slow_start"] = {"slow_start_window": out.pop("warmupDurationSecs")}
    if "warmup" in out:
        out["slow_start"] = out.pop("warmup")
    if istio_spelled and "lb_policy" not in out and "type" not in out:
        out["lb_policy"] = ISTIO_DEFAULT_LB_POLICY  # istiod's defaultLBAlgorithm
    return out


class LoadBalancerPolicy(PolicyModel):
    """A cluster's load balancing (Envoy ``Cluster.lb_policy`` and friends; Istio ``loadBalancer``).

    Parameters
    ----------
    lb_policy
        ``ROUND_ROBIN`` (Envoy's default), ``LEAST_REQUEST``, ``RANDOM``,
        ``RING_HASH`` or ``MAGLEV``. Also accepted as ``type``; Istio
        ``simple`` (``LEAST_CONN`` → ``LEAST_REQUEST``) and ``consistentHash``
        map onto it.
    choice_count
        LEAST_REQUEST: hosts sampled per pick, >= 2 (Envoy validation); default 2.
    active_request_bias
        LEAST_REQUEST with unequal weights: exponent of ``active + 1``, >= 0;
        default 1.0 (0 gives weighted round robin).
    selection_method
        LEAST_REQUEST with equal weights: ``N_CHOICES`` (default) or ``FULL_SCAN``.
    minimum_ring_size, maximum_ring_size
        RING_HASH ring bounds, <= 8 388 608; defaults 1024 and 8 388 608.
    hash_function
        RING_HASH entry hash: ``XX_HASH`` (default) or ``MURMUR_HASH_2``.
    table_size
        MAGLEV table size: a prime <= 5 000 011; default 65537.
    hash_key
        RING_HASH/MAGLEV: :class:`HashKey` (route ``hash_policy``).
    healthy_panic_threshold
        Percent, 0..100; default 50. Envoy ``common_lb_config.healthy_panic_threshold``
        (Istio: ``outlierDetection.minHealthPercent``, see :meth:`from_istio`).
    zone_aware
        :class:`ZoneAwareConfig`: Envoy zone-aware routing.
    locality_lb
        :class:`LocalityLbSetting`: Istio ``localityLbSetting``.
    locality_weighted
        Envoy ``common_lb_config.locality_weighted_lb_config`` was given
        (exported; locality weights come from ``locality_lb.distribute``).
    slow_start
        :class:`SlowStartConfig` (exported only).

    Notes
    -----
    Envoy's cluster spelling (``least_request_lb_config: {choice_count}``,
    ``ring_hash_lb_config``, ``maglev_lb_config``, ``round_robin_lb_config``,
    ``common_lb_config: {healthy_panic_threshold: {value: 50},
    zone_aware_lb_config}``) is flattened onto these fields. Model validation
    keeps Envoy's defaults; :meth:`from_istio` applies Istio's.

    References
    ----------
    ``api/envoy/config/cluster/v3/cluster.proto`` (``LbPolicy``,
    ``LeastRequestLbConfig``, ``RingHashLbConfig``, ``MaglevLbConfig``,
    ``CommonLbConfig``); Istio ``networking/v1alpha3/destination_rule.proto``
    (``LoadBalancerSettings``), ``pilot/pkg/networking/core/cluster_traffic_policy.go``.

    Examples
    --------
    >>> LoadBalancerPolicy().lb_policy
    'ROUND_ROBIN'
    >>> p = LoadBalancerPolicy.model_validate({"consistentHash": {"httpHeaderName": "x-user",
    ...                                         "ringHash": {"minimumRingSize": 2048}}})
    >>> p.lb_policy, p.minimum_ring_size, p.hash_key.header_name
    ('RING_HASH', 2048, 'x-user')
    """

    lb_policy: Literal["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"] = "ROUND_ROBIN"
    choice_count: int = Field(default=DEFAULT_CHOICE_COUNT, ge=2)
    active_request_bias: float = Field(default=DEFAULT_ACTIVE_REQUEST_BIAS, ge=0)
    selection_method: Literal["N_CHOICES", "FULL_SCAN"] = "N_CHOICES"
    minimum_ring_size: int = Field(default=DEFAULT_MINIMUM_RING_SIZE, ge=1, le=DEFAULT_MAXIMUM_RING_SIZE)
    maximum_ring_size: int = Field(default=DEFAULT_MAXIMUM_RING_SIZE, ge=1, le=DEFAULT_MAXIMUM_RING_SIZE)
    hash_function: Literal["XX_HASH", "MURMUR_HASH_2"] = "XX_HASH"
    table_size: int = Field(default=DEFAULT_TABLE_SIZE, ge=2, le=MAX_TABLE_SIZE)
    hash_key: HashKey | None = None
    healthy_panic_threshold: float = Field(default=DEFAULT_HEALTHY_PANIC_THRESHOLD, ge=0, le=100)
    zone_aware: ZoneAwareConfig | None = None
    locality_lb: LocalityLbSetting | None = None
    locality_weighted: bool = False
    slow_start: SlowStartConfig | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {"type": "lb_policy"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"lb_policy": data}
        if not isinstance(data, Mapping):
            return data
        out = _flatten_envoy(data)
        return _expand_istio(out)

    @field_validator("lb_policy", mode="before")
    @classmethod
    def _known_policy(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in LB_POLICIES:
            if value in ("LEAST_CONN",):
                return "LEAST_REQUEST"
            if value in ("CLUSTER_PROVIDED", "LOAD_BALANCING_POLICY_CONFIG", "ORIGINAL_DST_LB", "PASSTHROUGH"):
                raise refuse(f"lb_policy {value} is not simulated; use one of {', '.join(LB_POLICIES)}")
            raise refuse(f"lb_policy {value!r} is not one of {', '.join(LB_POLICIES)}{suggest(value, LB_POLICIES)}")
        return value

    @field_validator("healthy_panic_threshold", mode="before")
    @classmethod
    def _panic_percent(cls, value: Any) -> Any:
        return _percent_value(value, "healthy_panic_threshold")

    @field_validator("active_request_bias", mode="before")
    @classmethod
    def _runtime_double(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "default_value" in value:
            return value["default_value"]
        return value

    @field_validator("table_size")
    @classmethod
    def _prime(cls, value: int) -> int:
        if not _is_prime(value):
            raise refuse(f"table_size {value} is not a prime number (Envoy: 'The table size of maglev must be prime')")
        return value

    @model_validator(mode="after")
    def _ring_bounds(self) -> LoadBalancerPolicy:
        if self.minimum_ring_size > self.maximum_ring_size:
            raise refuse(
                f"minimum_ring_size ({self.minimum_ring_size}) > maximum_ring_size ({self.maximum_ring_size})"
            )
        return self

    @classmethod
    def from_istio(
        cls,
        load_balancer: Mapping[str, Any] | None,
        *,
        outlier_detection: Mapping[str, Any] | None = None,
        mesh_locality_lb: bool = True,
    ) -> LoadBalancerPolicy:
        """The Envoy-side policy Istio writes for a DestinationRule's ``loadBalancer``.

        Parameters
        ----------
        load_balancer
            The DR's ``trafficPolicy.loadBalancer`` (``None``: no block).
        outlier_detection
            The DR's ``outlierDetection`` block, if any. Istio then sets
            ``healthy_panic_threshold = minHealthPercent`` (default **0**, so
            panic is off) and writes locality failover priorities.
        mesh_locality_lb
            MeshConfig ``localityLbSetting.enabled`` (Istio's default: true).

        Notes
        -----
        * No ``simple``/``consistentHash`` → **LEAST_REQUEST** (Istio's
          ``defaultLBAlgorithm``), not Envoy's ROUND_ROBIN.
        * Locality failover is applied only with outlier detection
          (``enableFailover := c.OutlierDetection != nil``); ``distribute``
          always is. A DR's ``localityLbSetting`` replaces the mesh's; with
          neither, the mesh default (enabled, no explicit failover) applies.

        Examples
        --------
        >>> LoadBalancerPolicy.from_istio(None).lb_policy
        'LEAST_REQUEST'
        >>> p = LoadBalancerPolicy.from_istio({"simple": "ROUND_ROBIN"}, outlier_detection={})
        >>> p.healthy_panic_threshold, p.locality_lb.enabled
        (0.0, True)
        """
        data: dict[str, Any] = dict(load_balancer or {})
        if not any(k in data for k in ("simple", "consistentHash", "lb_policy", "type")) or (
            data.get("simple") == "UNSPECIFIED"
        ):
            data.pop("simple", None)
            data["lb_policy"] = ISTIO_DEFAULT_LB_POLICY
        dr_locality = data.pop("localityLbSetting", data.pop("locality_lb", None))
        if outlier_detection is not None:
            data["healthy_panic_threshold"] = outlier_detection.get("minHealthPercent", 0)
        policy = cls.model_validate(data)
        locality: LocalityLbSetting | None
        if dr_locality is not None:
            locality = LocalityLbSetting.model_validate(dr_locality)
        elif mesh_locality_lb:
            locality = LocalityLbSetting()
        else:
            locality = None
        if locality is not None and locality.enabled:
            if outlier_detection is None and not locality.distribute:
                locality = None  # Istio writes no priorities without outlier detection
            elif outlier_detection is None:
                locality = locality.model_copy(update={"failover": ()})
        else:
            locality = None
        return policy.model_copy(update={"locality_lb": locality})

    @property
    def is_hashing(self) -> bool:
        """Whether this is a consistent-hash policy (RING_HASH or MAGLEV)."""
        return self.lb_policy in ("RING_HASH", "MAGLEV")


# ==================================================================================================
# runtime


def _rand_source(rng: np.random.Generator) -> Callable[[], int]:
    """``() -> int``: random 64-bit integers drawn from ``rng`` in blocks of 2048 (the same sequence
    as :class:`_Rand`), as a C-level ``__next__`` (each call costs a third of a Python method's)."""
    from itertools import chain

    block = _Rand._BLOCK
    return chain.from_iterable(
        iter(lambda: rng.integers(0, 1 << 64, size=block, dtype=np.uint64).tolist(), None)).__next__


class _Rand:
    """Random 64-bit integers drawn from a numpy Generator in blocks."""

    __slots__ = ("_rng", "_buf", "_i")

    _BLOCK = 2048

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[int] = []
        self._i = 0

    def __call__(self) -> int:
        i = self._i
        buf = self._buf
        if i >= len(buf):
            buf = self._buf = self._rng.integers(0, 1 << 64, size=self._BLOCK, dtype=np.uint64).tolist()
            i = 0
        self._i = i + 1
        return buf[i]


class _Edf:
    """Envoy's ``EdfScheduler`` over indices ``0..n-1`` (``createWithPicks`` + ``pickAndAdd``)."""

    __slots__ = ("heap", "now", "order")

    def __init__(self, weights: Sequence[float], picks: int) -> None:
        picks %= _EDF_MAX_PICKS
        aug = [w + 1e-13 for w in weights]
        total = 0.0
        for a in aug:
            total += a
        entries = []
        done = 0
        max_time = 0.0
        for i, a in enumerate(aug):
            fp = int(a * picks / total)
            if fp > 0 and fp / a >= picks / total:
                fp -= 1
            max_time = max(max_time, fp / a)
            entries.append(((fp + 1) / a, i, i))
            done += fp
        heapq.heapify(entries)
        self.heap = entries
        self.now = max_time
        self.order = len(aug)
        while done < picks:
            self.pick(weights.__getitem__)
            done += 1

    def pick(self, weight: Callable[[int], float]) -> int:
        deadline, _, i = heapq.heappop(self.heap)
        self.now = deadline
        heapq.heappush(self.heap, (deadline + 1.0 / weight(i), self.order, i))
        self.order += 1
        return i


_Host = Any


class _Picker:
    """Host choice inside one host source (Envoy ``HostsSource``)."""

    __slots__ = ("hosts", "n")

    def __init__(self) -> None:
        self.hosts: tuple[_Host, ...] = ()
        self.n = 0

    def refresh(self, hosts: tuple[_Host, ...]) -> None:
        self.hosts = hosts
        self.n = len(hosts)

    def pick(self) -> _Host | None:
        raise NotImplementedError


class _RoundRobin(_Picker):
    __slots__ = ("lb", "index", "edf", "weights")

    def __init__(self, lb: LoadBalancer) -> None:
        super().__init__()
        self.lb = lb
        self.index = lb.seed  # rr_indexes_.insert({source, seed_})
        self.edf: _Edf | None = None
        self.weights: list[float] = []

    def refresh(self, hosts: tuple[_Host, ...]) -> None:
        super().refresh(hosts)
        weights = [float(getattr(h, "weight", 1)) for h in hosts]
        self.weights = weights
        if len(hosts) > 1 and len(set(weights)) > 1:
            self.edf = _Edf(weights, self.lb.seed & 0xFFFFFFFF)
        else:
            self.edf = None

    def pick(self) -> _Host | None:
        n = self.n
        if n == 0:
            return None
        edf = self.edf
        if edf is not None:
            return self.hosts[edf.pick(self.weights.__getitem__)]
        i = self.index
        self.index = i + 1
        return self.hosts[i % n]


class _LeastRequest(_Picker):
    __slots__ = ("lb", "edf", "choices", "active", "bias", "full_scan", "rand")

    def __init__(self, lb: LoadBalancer) -> None:
        super().__init__()
        self.lb = lb
        self.edf: _Edf | None = None
        self.choices = lb.policy.choice_count
        self.active = lb.active
        self.bias = lb.policy.active_request_bias
        self.full_scan = lb.policy.selection_method == "FULL_SCAN"
        self.rand = lb._rand

    def _weight(self, i: int) -> float:
        host = self.hosts[i]
        w = float(getattr(host, "weight", 1))
        bias = self.bias
        if bias == 0.0:
            return w
        a = self.active(host) + 1
        return w / a if bias == 1.0 else w / a**bias

    def refresh(self, hosts: tuple[_Host, ...]) -> None:
        super().refresh(hosts)
        weights = [float(getattr(h, "weight", 1)) for h in hosts]
        if len(hosts) > 1 and len(set(weights)) > 1:
            self.edf = _Edf([self._weight(i) for i in range(len(hosts))], self.lb.seed & 0xFFFFFFFF)
        else:
            self.edf = None

    def pick(self) -> _Host | None:
        n = self.n
        if n == 0:
            return None
        if self.edf is not None:
            return self.hosts[self.edf.pick(self._weight)]
        hosts = self.hosts
        active = self.active
        rand = self.rand
        if self.full_scan:
            best = hosts[0]
            best_a = active(best)
            ties = 1
            for h in hosts[1:]:
                a = active(h)
                if a < best_a:
                    best, best_a, ties = h, a, 1
                elif a == best_a:
                    ties += 1
                    if rand() % ties == 0:
                        best = h
            return best
        best = hosts[rand() % n]
        if self.choices == 2:
            other = hosts[rand() % n]
            return other if active(other) < active(best) else best
        best_a = active(best)
        for _ in range(self.choices - 1):
            h = hosts[rand() % n]
            a = active(h)
            if a < best_a:
                best, best_a = h, a
        return best


class _Random(_Picker):
    __slots__ = ("rand",)

    def __init__(self, lb: LoadBalancer) -> None:
        super().__init__()
        self.rand = lb._rand

    def pick(self) -> _Host | None:
        n = self.n
        if n == 0:
            return None
        return self.hosts[self.rand() % n]


class _Level:
    """One priority of one caller's view: its hosts, health and pickers."""

    __slots__ = ("hosts", "healthy", "panic", "all_picker", "healthy_picker", "hash_lb", "plan",
                 "zone_pickers", "zone_hosts", "locality_edf", "locality_pickers", "locality_weights")

    def __init__(self) -> None:
        self.hosts: tuple[_Host, ...] = ()
        self.healthy: tuple[_Host, ...] = ()
        self.panic = False
        self.all_picker: _Picker | None = None
        self.healthy_picker: _Picker | None = None
        self.hash_lb: _HashLb | None = None
        self.plan: ZonePlan | None = None
        self.zone_pickers: tuple[_Picker, ...] = ()
        self.zone_hosts: tuple[tuple[_Host, ...], ...] = ()
        self.locality_edf: _Edf | None = None
        self.locality_pickers: tuple[_Picker, ...] = ()
        self.locality_weights: list[float] = []


class _HashLb:
    """A ring or Maglev table over one host list."""

    __slots__ = ("hosts", "ring", "owners", "table", "size")

    def __init__(self, policy: LoadBalancerPolicy, hosts: Sequence[_Host], keys: tuple[str, ...],
                 weights: tuple[float, ...]) -> None:
        self.hosts = tuple(hosts)
        self.ring: tuple[int, ...] = ()
        self.owners: tuple[int, ...] = ()
        self.table: tuple[int, ...] = ()
        self.size = 0
        if not hosts:
            return
        if policy.lb_policy == "RING_HASH":
            self.ring, self.owners = build_ring(
                keys, weights, policy.minimum_ring_size, policy.maximum_ring_size, policy.hash_function
            )
            self.size = len(self.ring)
        else:
            self.table = maglev_table(keys, weights, policy.table_size)
            self.size = len(self.table)

    def pick(self, h: int, attempt: int) -> _Host | None:
        if self.size == 0:
            return None
        if self.ring:
            return self.hosts[self.owners[ring_lookup(self.ring, h, attempt)]]
        if attempt > 0:
            h ^= ((1 << 64) - attempt) & _MASK64
        return self.hosts[self.table[h % self.size]]


class _View:
    """Everything one caller zone needs to choose: priorities, loads, pickers."""

    __slots__ = ("levels", "cum_loads", "single")

    def __init__(self, levels: list[_Level], loads: list[int]) -> None:
        self.levels = levels
        cum = []
        acc = 0
        for load in loads:
            acc += load
            cum.append(acc)
        self.cum_loads = cum
        self.single: _Level | None = levels[0] if len(levels) == 1 else None


def _default_name(host: _Host) -> str:
    name = getattr(host, "name", None)
    return name if isinstance(name, str) else str(host)


def _default_active(host: _Host) -> int:
    return host.active_requests  # type: ignore[no-any-return]


_STAT_NAMES = (
    "lb_healthy_panic",
    "lb_zone_routing_all_directly",
    "lb_zone_routing_sampled",
    "lb_zone_routing_cross_zone",
    "lb_zone_cluster_too_small",
    "lb_zone_no_capacity_left",
    "lb_local_cluster_not_ok",
    "lb_recalculate_zone_structures",
    "upstream_cx_none_healthy",
)


class LoadBalancer:
    """Runtime host choice for one cluster, as one Envoy worker makes it (engine-free).

    Parameters
    ----------
    policy
        The :class:`LoadBalancerPolicy`.
    hosts
        The cluster's hosts (opaque objects with ``weight``, ``zone``, ``name``).
    rng
        ``numpy.random.Generator`` or seed; the LB's own stream.
    active
        ``active(host) -> int``: requests in flight to ``host`` (LEAST_REQUEST);
        default reads ``host.active_requests``.
    key
        ``key(host) -> str``: the host's hash key (Envoy: its address);
        default ``host.name`` or ``str(host)``.
    local_zones
        Zone -> number of callers (Envoy's local cluster), for zone-aware routing.
    initial_offset
        The per-LB random seed Envoy draws at construction (round-robin start
        index and EDF pre-picks); drawn from ``rng`` when ``None``.

    Attributes
    ----------
    stats
        Counters with Envoy's names: ``lb_healthy_panic``, ``lb_zone_*``,
        ``lb_local_cluster_not_ok``, ``lb_recalculate_zone_structures`` and
        ``upstream_cx_none_healthy`` (each ``None`` answer).

    Notes
    -----
    The engine calls :meth:`set_hosts` when hosts come or go and whenever
    health changes (outlier ejection or un-ejection, active health check
    result), then :meth:`choose` once per attempt. Host-set changes rebuild
    the per-caller structures at once (Envoy merges updates over
    ``update_merge_window``, 1 s by default, envoy.md D.8).

    Examples
    --------
    >>> class H:
    ...     def __init__(self, name): self.name, self.weight, self.zone = name, 1, None
    ...     def __repr__(self): return self.name
    >>> hosts = [H("a"), H("b"), H("c")]
    >>> lb = LoadBalancer(LoadBalancerPolicy(), hosts, rng=1, initial_offset=0)
    >>> [lb.choose() for _ in range(4)]
    [a, b, c, a]
    >>> lb.set_hosts(hosts, healthy=[True, False, True])
    >>> [lb.choose() for _ in range(4)]  # the healthy source keeps its own index
    [a, c, a, c]
    """

    __slots__ = (
        "policy",
        "stats",
        "seed",
        "active",
        "key",
        "_rand",
        "_hosts",
        "_healthy",
        "_local_zones",
        "_views",
        "_pickers",
        "_zone_dependent",
        "_hashing",
        "_hash_cache",
        "_panic_threshold",
        "_routing_enabled",
        "_min_cluster_size",
        "_failover",
        "fast_pick",
    )

    def __init__(
        self,
        policy: LoadBalancerPolicy,
        hosts: Iterable[_Host] = (),
        rng: np.random.Generator | int | None = None,
        *,
        active: Callable[[_Host], int] | None = None,
        key: Callable[[_Host], str] | None = None,
        local_zones: Mapping[Any, int] | None = None,
        initial_offset: int | None = None,
    ) -> None:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.policy = policy
        self.stats: dict[str, int] = dict.fromkeys(_STAT_NAMES, 0)
        self._rand = _rand_source(gen)
        self.seed = self._rand() if initial_offset is None else int(initial_offset)
        self.active = active if active is not None else _default_active
        self.key = key if key is not None else _default_name
        self._hashing = policy.is_hashing
        self._hash_cache: dict[str, int] = {}
        self._panic_threshold = policy.healthy_panic_threshold
        za = policy.zone_aware
        self._routing_enabled = int(za.routing_enabled) if za is not None else 100
        self._min_cluster_size = za.min_cluster_size if za is not None else DEFAULT_MIN_CLUSTER_SIZE
        loc = policy.locality_lb
        self._failover = loc is not None and loc.enabled
        self._local_zones: dict[Any, int] | None = dict(local_zones) if local_zones is not None else None
        self._views: dict[Any, _View] = {}
        self._pickers: dict[Hashable, _Picker] = {}
        self._hosts: tuple[_Host, ...] = ()
        self._healthy: tuple[bool, ...] = ()
        self._zone_dependent = False
        #: the picker :meth:`choose` uses when no zone, hash or retry predicate is involved (one
        #: healthy level, no panic); ``None`` until the first :meth:`choose` builds the view, and after
        #: every host-set change. Callers on a hot path may call it directly when it is set.
        self.fast_pick: Callable[[], _Host | None] | None = None
        self.set_hosts(hosts)

    # ------------------------------------------------------------------ host set

    def set_hosts(self, hosts: Iterable[_Host], healthy: Sequence[bool] | None = None) -> None:
        """Replace the host set and its health.

        Parameters
        ----------
        hosts
            Every host of the cluster (ejected and failed ones included).
        healthy
            One flag per host; ``False`` for a host that is outlier-ejected or
            failing active health checks. ``None``: all healthy.
        """
        hs = tuple(hosts)
        if healthy is None:
            flags = (True,) * len(hs)
        else:
            flags = tuple(bool(f) for f in healthy)
            if len(flags) != len(hs):
                raise ValueError(f"healthy has {len(flags)} flags for {len(hs)} hosts")
        for h in hs:
            w = getattr(h, "weight", 1)
            if not isinstance(w, (int, float)) or w < 1:
                raise ValueError(f"host {h!r} has weight {w!r}; weights are integers >= 1")
        self._hosts = hs
        self._healthy = flags
        self._views = {}
        self.fast_pick = None
        za_on = self.policy.zone_aware is not None and self._local_zones is not None
        self._zone_dependent = bool(self._failover or za_on)

    def set_local_zones(self, local_zones: Mapping[Any, int] | None) -> None:
        """Set the callers per zone (Envoy's local cluster) for zone-aware routing."""
        self._local_zones = dict(local_zones) if local_zones is not None else None
        self.set_hosts(self._hosts, self._healthy)

    @property
    def membership_total(self) -> int:
        """Envoy gauge ``membership_total``."""
        return len(self._hosts)

    @property
    def membership_healthy(self) -> int:
        """Envoy gauge ``membership_healthy``."""
        return sum(self._healthy)

    # ------------------------------------------------------------------ views

    def _picker(self, source: Hashable, hosts: tuple[_Host, ...]) -> _Picker:
        p = self._pickers.get(source)
        if p is None:
            kind = self.policy.lb_policy
            if kind == "LEAST_REQUEST":
                p = _LeastRequest(self)
            elif kind == "RANDOM":
                p = _Random(self)
            else:
                p = _RoundRobin(self)
            self._pickers[source] = p
        p.refresh(hosts)
        return p

    def _view(self, zone: Any) -> _View:
        key = zone if self._zone_dependent else None
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = self._build_view(key)
            lvl = view.single
            if (
                not self._zone_dependent
                and not self._hashing
                and lvl is not None
                and not lvl.panic
                and lvl.plan is None
                and lvl.locality_edf is None
                and lvl.healthy
            ):
                self.fast_pick = lvl.healthy_picker.pick  # type: ignore[union-attr]
        return view

    def _build_view(self, zone: Any) -> _View:
        policy = self.policy
        hosts = self._hosts
        flags = self._healthy
        loc = policy.locality_lb
        locality_weights: dict[Any, float] | None = None
        prios = [0] * len(hosts)
        if self._failover and loc is not None:
            if loc.distribute:
                # Istio applies distribute or failover, never both
                dist = next((d for d in loc.distribute if locality_matches(zone, d.from_)), None)
                if dist is not None:
                    zones = [getattr(h, "zone", None) for h in hosts]
                    locality_weights, keep = _distribute_weights(dist, zones)
                    hosts = tuple(h for h, k in zip(hosts, keep, strict=True) if k)
                    flags = tuple(f for f, k in zip(flags, keep, strict=True) if k)
                    prios = [0] * len(hosts)
            else:
                pairs = [(f.from_, f.to) for f in loc.failover]
                raw = [istio_locality_priority(zone, getattr(h, "zone", None), pairs) for h in hosts]
                used = sorted(set(raw))
                prios = [used.index(p) for p in raw]
        n_levels = max(prios) + 1 if prios else 1
        groups: list[list[int]] = [[] for _ in range(n_levels)]
        for i, p in enumerate(prios):
            groups[p].append(i)
        counts = [(sum(1 for i in g if flags[i]), len(g)) for g in groups]
        loads, panic = priority_loads(counts, self._panic_threshold)
        levels = []
        for p, g in enumerate(groups):
            lvl = _Level()
            lvl.hosts = tuple(hosts[i] for i in g)
            lvl.healthy = tuple(hosts[i] for i in g if flags[i])
            lvl.panic = panic[p]
            if self._hashing:
                use = lvl.hosts if lvl.panic else lvl.healthy
                keys = tuple(self.key(h) for h in use)
                weights = tuple(_hash_weights(use, locality_weights))
                lvl.hash_lb = _HashLb(policy, use, keys, weights)
            else:
                lvl.all_picker = self._picker((zone, p, "all"), lvl.hosts)
                lvl.healthy_picker = self._picker((zone, p, "healthy"), lvl.healthy)
                if locality_weights is not None:
                    _setup_locality_weighted(self, lvl, zone, p, locality_weights)
                elif p == 0:
                    self._setup_zone_aware(lvl, zone)
            levels.append(lvl)
        return _View(levels, loads)

    def _setup_zone_aware(self, lvl: _Level, zone: Any) -> None:
        if self.policy.zone_aware is None or self._local_zones is None:
            return
        self.stats["lb_recalculate_zone_structures"] += 1
        upstream: dict[Any, int] = {}
        for h in lvl.hosts:
            upstream.setdefault(getattr(h, "zone", None), 0)
        for h in lvl.healthy:
            upstream[getattr(h, "zone", None)] += 1
        local = self._local_zones
        if len(upstream) < 2 or sum(1 for v in local.values() if v > 0) < 2:
            return
        if local.get(zone, 0) <= 0:
            self.stats["lb_local_cluster_not_ok"] += 1
            return
        if len(lvl.healthy) < self._min_cluster_size:
            self.stats["lb_zone_cluster_too_small"] += 1
            return
        plan = zone_routing_plan(local, upstream, zone)
        lvl.plan = plan
        zone_hosts = tuple(tuple(h for h in lvl.healthy if getattr(h, "zone", None) == z) for z in plan.zones)
        lvl.zone_hosts = zone_hosts
        lvl.zone_pickers = tuple(
            self._picker((zone, 0, "zone", z), hs) for z, hs in zip(plan.zones, zone_hosts, strict=True)
        )

    # ------------------------------------------------------------------ choice

    def _hash_of(self, hash_key: str) -> int:
        cache = self._hash_cache
        h = cache.get(hash_key)
        if h is None:
            if len(cache) >= 65536:
                cache.clear()
            h = cache[hash_key] = xxhash64(hash_key)
        return h

    def _level(self, view: _View, r: int) -> _Level:
        single = view.single
        if single is not None:
            return single
        x = r % 100 + 1
        cum = view.cum_loads
        for i, c in enumerate(cum):
            if x <= c:
                return view.levels[i]
        return view.levels[0]

    def _choose_once(self, view: _View) -> _Host | None:
        single = view.single
        lvl = single if single is not None else self._level(view, self._rand())
        if lvl.panic:
            self.stats["lb_healthy_panic"] += 1
            return lvl.all_picker.pick()  # type: ignore[union-attr]
        if lvl.locality_edf is not None:
            i = lvl.locality_edf.pick(lvl.locality_weights.__getitem__)
            return lvl.locality_pickers[i].pick()
        plan = lvl.plan
        if plan is None:
            return lvl.healthy_picker.pick()  # type: ignore[union-attr]
        rand = self._rand
        if self._routing_enabled < 100 and rand() % 100 >= self._routing_enabled:
            return lvl.healthy_picker.pick()  # type: ignore[union-attr]
        stats = self.stats
        if plan.direct:
            stats["lb_zone_routing_all_directly"] += 1
            return lvl.zone_pickers[0].pick()
        if rand() % 10000 < plan.local_percent_to_route:
            stats["lb_zone_routing_sampled"] += 1
            return lvl.zone_pickers[0].pick()
        stats["lb_zone_routing_cross_zone"] += 1
        residual = plan.residual
        total = residual[-1]
        if total == 0:
            stats["lb_zone_no_capacity_left"] += 1
            return lvl.zone_pickers[rand() % len(residual)].pick()
        threshold = rand() % total
        i = 0
        while threshold >= residual[i]:
            i += 1
        return lvl.zone_pickers[i].pick()

    def choose(
        self,
        hash_key: str | None = None,
        zone: Any = None,
        *,
        avoid: Any = None,
        max_attempts: int = 1,
    ) -> _Host | None:
        """The host for one attempt, or ``None`` (503 ``no healthy upstream``, flag ``UH``).

        Parameters
        ----------
        hash_key
            RING_HASH/MAGLEV: the request's key value (header value, caller id,
            ...); ``None`` → a random hash. Ignored by other policies.
        zone
            The caller's zone/locality (zone-aware routing, Istio locality LB).
        avoid
            A container of hosts a retry host predicate rejects (Envoy's
            ``previous_hosts``); requires ``max_attempts > 1`` to matter.
        max_attempts
            ``host_selection_retry_max_attempts + 1``: picks tried while the
            host is in ``avoid``; the last pick is returned regardless.
        """
        fast = self.fast_pick
        if fast is not None and avoid is None:
            return fast()
        view = self._views.get(zone if self._zone_dependent else None)
        if view is None:
            view = self._view(zone)
        if self._hashing:
            h = self._hash_of(hash_key) if hash_key is not None else self._rand()
            lvl = view.single if view.single is not None else self._level(view, h)
            if lvl.panic:
                self.stats["lb_healthy_panic"] += 1
            hlb = lvl.hash_lb
            host = None
            for attempt in range(max(1, max_attempts)):
                host = hlb.pick(h, attempt)  # type: ignore[union-attr]
                if host is None or avoid is None or host not in avoid:
                    break
        else:
            host = None
            for _ in range(max(1, max_attempts)):
                host = self._choose_once(view)
                if host is None or avoid is None or host not in avoid:
                    break
        if host is None:
            self.stats["upstream_cx_none_healthy"] += 1
        return host

    def __repr__(self) -> str:
        return (
            f"LoadBalancer({self.policy.lb_policy}, hosts={len(self._hosts)}, "
            f"healthy={sum(self._healthy)})"
        )


def _distribute_weights(dist: LocalityDistribute, zones: Sequence[Any]) -> tuple[dict[Any, float], list[bool]]:
    """Istio ``applyLocalityWeights``: locality weight per zone, and which hosts stay."""
    weights: dict[Any, float] = {}
    claimed: set[Any] = set()
    distinct = sorted(set(zones), key=_sort_key)
    for pattern, w in dist.to.items():
        matched = [z for z in distinct if z not in claimed and locality_matches(z, pattern)]
        # each matched locality gets the pattern's weight split by its share of
        # endpoints (Istio divides per endpoint group; with equal endpoint weights
        # that is proportional to the endpoint count).
        total = sum(zones.count(z) for z in matched)
        for z in matched:
            claimed.add(z)
            share = w * zones.count(z) / total if total else 0.0
            if share > 0:
                weights[z] = float(math.ceil(share))
    keep = [z in weights for z in zones]
    return weights, keep


def _hash_weights(hosts: Sequence[_Host], locality_weights: Mapping[Any, float] | None) -> list[float]:
    ws = [float(getattr(h, "weight", 1)) for h in hosts]
    if locality_weights is None:
        return ws
    per_zone: dict[Any, float] = {}
    for h, w in zip(hosts, ws, strict=True):
        z = getattr(h, "zone", None)
        per_zone[z] = per_zone.get(z, 0.0) + w
    total_lw = sum(locality_weights.get(z, 0.0) for z in per_zone)
    if total_lw <= 0:
        return ws
    return [
        w / per_zone[getattr(h, "zone", None)] * locality_weights.get(getattr(h, "zone", None), 0.0) / total_lw
        for h, w in zip(hosts, ws, strict=True)
    ]


def _setup_locality_weighted(lb: LoadBalancer, lvl: _Level, zone: Any, p: int, weights: Mapping[Any, float]) -> None:
    """Envoy locality-weighted LB: EDF over ``weight × min(1, 1.4 × healthy/hosts)``."""
    zones = sorted({getattr(h, "zone", None) for h in lvl.hosts}, key=_sort_key)
    eff = []
    pickers = []
    for z in zones:
        all_z = [h for h in lvl.hosts if getattr(h, "zone", None) == z]
        healthy_z = tuple(h for h in lvl.healthy if getattr(h, "zone", None) == z)
        avail = min(1.0, OVERPROVISIONING_FACTOR / 100.0 * len(healthy_z) / len(all_z)) if all_z else 0.0
        eff.append(weights.get(z, 0.0) * avail)
        pickers.append(lb._picker((zone, p, "locality", z), healthy_z))
    live = [i for i, w in enumerate(eff) if w > 0]
    if not live:
        return
    lvl.locality_weights = [eff[i] for i in live]
    lvl.locality_pickers = tuple(pickers[i] for i in live)
    lvl.locality_edf = _Edf(lvl.locality_weights, lb.seed & 0xFFFFFFFF)


# ==================================================================================================
# Envoy


def to_envoy(policy: LoadBalancerPolicy) -> dict[str, Any]:
    """Envoy ``config.cluster.v3.Cluster`` load-balancing fields (proto3 JSON).

    Defaults are left out, as Envoy fills them; ``healthy_panic_threshold``
    is written when not 50. LEAST_REQUEST with ``selection_method:
    FULL_SCAN`` is written as the typed ``load_balancing_policy`` extension
    (``LeastRequest``), the only place Envoy accepts that field. Istio locality priorities are written on the
    endpoints by the exporter of ``load_assignment``, not here.

    Examples
    --------
    >>> to_envoy(LoadBalancerPolicy.model_validate({"lb_policy": "LEAST_REQUEST", "choice_count": 3}))
    {'lb_policy': 'LEAST_REQUEST', 'least_request_lb_config': {'choice_count': 3}}
    >>> to_envoy(LoadBalancerPolicy.model_validate({"type": "MAGLEV", "healthy_panic_threshold": 0}))
    {'lb_policy': 'MAGLEV', 'common_lb_config': {'healthy_panic_threshold': {'value': 0.0}}}
    """
    out: dict[str, Any] = {"lb_policy": policy.lb_policy}
    kind = policy.lb_policy
    slow = _slow_start_envoy(policy.slow_start)
    if kind == "LEAST_REQUEST" and policy.selection_method != "N_CHOICES":
        return _least_request_extension(policy, slow)
    if kind == "LEAST_REQUEST":
        cfg: dict[str, Any] = {}
        if policy.choice_count != DEFAULT_CHOICE_COUNT:
            cfg["choice_count"] = policy.choice_count
        if policy.active_request_bias != DEFAULT_ACTIVE_REQUEST_BIAS:
            cfg["active_request_bias"] = {
                "default_value": policy.active_request_bias,
                "runtime_key": "upstream.least_request.active_request_bias",
            }
        if slow:
            cfg["slow_start_config"] = slow
        if cfg:
            out["least_request_lb_config"] = cfg
    elif kind == "ROUND_ROBIN":
        if slow:
            out["round_robin_lb_config"] = {"slow_start_config": slow}
    elif kind == "RING_HASH":
        cfg = {}
        if policy.minimum_ring_size != DEFAULT_MINIMUM_RING_SIZE:
            cfg["minimum_ring_size"] = policy.minimum_ring_size
        if policy.maximum_ring_size != DEFAULT_MAXIMUM_RING_SIZE:
            cfg["maximum_ring_size"] = policy.maximum_ring_size
        if policy.hash_function != "XX_HASH":
            cfg["hash_function"] = policy.hash_function
        if cfg:
            out["ring_hash_lb_config"] = cfg
    elif kind == "MAGLEV" and policy.table_size != DEFAULT_TABLE_SIZE:
        out["maglev_lb_config"] = {"table_size": policy.table_size}
    common: dict[str, Any] = {}
    if policy.healthy_panic_threshold != DEFAULT_HEALTHY_PANIC_THRESHOLD:
        common["healthy_panic_threshold"] = {"value": float(policy.healthy_panic_threshold)}
    if policy.zone_aware is not None:
        za: dict[str, Any] = {}
        if policy.zone_aware.routing_enabled != DEFAULT_ROUTING_ENABLED:
            za["routing_enabled"] = {"value": float(policy.zone_aware.routing_enabled)}
        if policy.zone_aware.min_cluster_size != DEFAULT_MIN_CLUSTER_SIZE:
            za["min_cluster_size"] = policy.zone_aware.min_cluster_size
        common["zone_aware_lb_config"] = za
    elif _locality_weighted(policy):
        common["locality_weighted_lb_config"] = {}
    if common:
        out["common_lb_config"] = common
    return out


#: the typed load-balancing extension that carries what the cluster's ``least_request_lb_config`` cannot
_LEAST_REQUEST_EXTENSION = "envoy.load_balancing_policies.least_request"
_LEAST_REQUEST_TYPE = "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"


def _least_request_extension(policy: LoadBalancerPolicy, slow: dict[str, Any]) -> dict[str, Any]:
    """LEAST_REQUEST with ``selection_method`` as the ``load_balancing_policy`` extension.

    The cluster's ``least_request_lb_config`` (``Cluster.LeastRequestLbConfig``)
    has no ``selection_method``; Envoy 1.40 refuses it there. The extension
    ``LeastRequest`` has it, with the locality settings in its own
    ``locality_lb_config``; the panic threshold stays in the cluster's
    ``common_lb_config``.
    """
    cfg: dict[str, Any] = {"@type": _LEAST_REQUEST_TYPE}
    if policy.choice_count != DEFAULT_CHOICE_COUNT:
        cfg["choice_count"] = policy.choice_count
    if policy.active_request_bias != DEFAULT_ACTIVE_REQUEST_BIAS:
        cfg["active_request_bias"] = {
            "default_value": policy.active_request_bias,
            "runtime_key": "upstream.least_request.active_request_bias",
        }
    if slow:
        cfg["slow_start_config"] = slow
    locality = {k: v for k, v in to_envoy(policy.model_copy(update={"selection_method": "N_CHOICES"}))
                .get("common_lb_config", {}).items() if k != "healthy_panic_threshold"}
    if locality:
        cfg["locality_lb_config"] = locality
    cfg["selection_method"] = policy.selection_method
    out: dict[str, Any] = {
        "load_balancing_policy": {
            "policies": [{"typed_extension_config": {"name": _LEAST_REQUEST_EXTENSION, "typed_config": cfg}}]
        }
    }
    if policy.healthy_panic_threshold != DEFAULT_HEALTHY_PANIC_THRESHOLD:
        out["common_lb_config"] = {"healthy_panic_threshold": {"value": float(policy.healthy_panic_threshold)}}
    return out


def _slow_start_envoy(slow: SlowStartConfig | None) -> dict[str, Any]:
    if slow is None:
        return {}
    out: dict[str, Any] = {"slow_start_window": proto_duration(slow.slow_start_window)}
    if slow.aggression != 1.0:
        out["aggression"] = {"default_value": slow.aggression, "runtime_key": "upstream.slow_start.aggression"}
    if slow.min_weight_percent != 10.0:
        out["min_weight_percent"] = {"value": slow.min_weight_percent}
    return out


def envoy_hash_policy(policy: LoadBalancerPolicy) -> list[dict[str, Any]]:
    """The route ``hash_policy`` list for consistent hashing (empty when there is no key).

    Examples
    --------
    >>> envoy_hash_policy(LoadBalancerPolicy.model_validate({"consistentHash": {"useSourceIp": True}}))
    [{'connection_properties': {'source_ip': True}}]
    """
    key = policy.hash_key
    if key is None or not policy.is_hashing:
        return []
    if key.header_name:
        return [{"header": {"header_name": key.header_name}}]
    if key.use_source_ip:
        return [{"connection_properties": {"source_ip": True}}]
    if key.cookie:
        return [{"cookie": {"name": key.cookie}}]
    return [{"query_parameter": {"name": key.query_parameter}}]


def _locality_weighted(policy: LoadBalancerPolicy) -> bool:
    """Whether the cluster gets ``common_lb_config.locality_weighted_lb_config``."""
    loc = policy.locality_lb
    return policy.zone_aware is None and (
        policy.locality_weighted or (loc is not None and loc.enabled and bool(loc.distribute or loc.failover))
    )


def envoy_locality(zone: str | None) -> dict[str, str]:
    """Envoy ``config.core.v3.Locality`` of a meshsim zone.

    A zone is written ``region/zone/subzone``; a plain name is a region of its
    own, as in Istio's locality matching (:func:`locality_matches`). Empty
    parts are left out; ``None`` gives ``{}``.

    Examples
    --------
    >>> envoy_locality("us-east/us-east-1a"), envoy_locality("zone-a")
    ({'region': 'us-east', 'zone': 'us-east-1a'}, {'region': 'zone-a'})
    """
    region, zone_, subzone = _split_locality(zone)
    out = {"region": region, "zone": zone_, "sub_zone": subzone}
    return {k: v for k, v in out.items() if v}


def depends_on_caller_zone(policy: LoadBalancerPolicy) -> bool:
    """Whether the cluster's Envoy form depends on the calling proxy's zone.

    True for Istio locality load balancing (failover priorities and
    ``distribute`` weights are relative to the caller's locality) and for
    zone-aware routing (the caller's locality and its local cluster).
    """
    loc = policy.locality_lb
    return policy.zone_aware is not None or (loc is not None and loc.enabled)


class LocalityGroup(NamedTuple):
    """One Envoy ``LocalityLbEndpoints`` entry: the hosts of one zone at one priority.

    Attributes
    ----------
    zone
        The zone (``None``: hosts without a zone).
    priority
        Envoy priority, 0 (highest) to N, without gaps.
    weight
        ``load_balancing_weight`` of the locality (>= 1), or ``None`` when the
        cluster is not locality-weighted.
    hosts
        Indices of the hosts (into the list given), in their order.
    """

    zone: str | None
    priority: int
    weight: int | None
    hosts: tuple[int, ...]


def locality_groups(
    policy: LoadBalancerPolicy, zones: Sequence[str | None], proxy_zone: str | None
) -> list[LocalityGroup]:
    """How a cluster's hosts are grouped into Envoy localities and priorities, as the simulation groups them.

    Parameters
    ----------
    policy
        The cluster's load-balancing policy.
    zones
        The zone of each host, in host order.
    proxy_zone
        The calling proxy's zone (Istio's locality priorities and
        ``distribute`` weights are relative to it).

    Returns
    -------
    list of LocalityGroup
        Sorted by priority, then zone (``None`` first). Istio locality
        failover gives each host the priority :func:`istio_locality_priority`
        computes, renumbered to 0..N; a ``distribute`` rule matching the
        proxy's zone gives localities its weights and drops the hosts it
        gives no weight (Istio's ``applyLocalityWeights``). A
        locality-weighted cluster without a ``distribute`` weight gets the
        number of hosts as the locality weight (Istio's EDS does the same
        with equal endpoint weights). Without zones and weights: one group.

    Examples
    --------
    >>> p = LoadBalancerPolicy.model_validate({"locality_lb": {"failover": [{"from": "a", "to": "b"}]}})
    >>> [(g.zone, g.priority, g.hosts) for g in locality_groups(p, ["a", "b", "c", "a"], "a")]
    [('a', 0, (0, 3)), ('b', 1, (1,)), ('c', 2, (2,))]
    """
    loc = policy.locality_lb
    keep = [True] * len(zones)
    prios = [0] * len(zones)
    dist_weights: dict[Any, float] | None = None
    if loc is not None and loc.enabled:
        if loc.distribute:
            dist = next((d for d in loc.distribute if locality_matches(proxy_zone, d.from_)), None)
            if dist is not None:
                dist_weights, keep = _distribute_weights(dist, list(zones))
        else:
            pairs = [(f.from_, f.to) for f in loc.failover]
            raw = [istio_locality_priority(proxy_zone, z, pairs) for z in zones]
            used = sorted(set(raw))
            prios = [used.index(p) for p in raw]
    weighted = _locality_weighted(policy)
    groups: dict[tuple[int, tuple[int, str]], list[int]] = {}
    names: dict[tuple[int, tuple[int, str]], str | None] = {}
    for i, z in enumerate(zones):
        if not keep[i]:
            continue
        key = (prios[i], _sort_key(z))
        groups.setdefault(key, []).append(i)
        names[key] = z
    out = []
    for key in sorted(groups):
        z, hosts = names[key], tuple(groups[key])
        weight: int | None = None
        if weighted:
            weight = int(dist_weights[z]) if dist_weights is not None else len(hosts)
        out.append(LocalityGroup(z, key[0], weight, hosts))
    return out


def to_envoy_endpoints(
    policy: LoadBalancerPolicy,
    lb_endpoints: Sequence[Mapping[str, Any]],
    zones: Sequence[str | None],
    proxy_zone: str | None = None,
) -> list[dict[str, Any]]:
    """The ``load_assignment.endpoints`` list (``LocalityLbEndpoints``) of a cluster.

    Parameters
    ----------
    policy
        The cluster's load-balancing policy.
    lb_endpoints
        One Envoy ``LbEndpoint`` per host, in host order.
    zones
        The zone of each host.
    proxy_zone
        The calling proxy's zone (see :func:`locality_groups`).

    Examples
    --------
    >>> eps = [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]
    >>> to_envoy_endpoints(LoadBalancerPolicy(), eps, [None]) == [{"lb_endpoints": eps}]
    True
    >>> to_envoy_endpoints(LoadBalancerPolicy(), eps, ["us/us-1a"])[0]["locality"]
    {'region': 'us', 'zone': 'us-1a'}
    """
    out = []
    for g in locality_groups(policy, zones, proxy_zone):
        entry: dict[str, Any] = {}
        if g.zone is not None:
            entry["locality"] = envoy_locality(g.zone)
        entry["lb_endpoints"] = [dict(lb_endpoints[i]) for i in g.hosts]
        if g.weight is not None:
            entry["load_balancing_weight"] = g.weight
        if g.priority:
            entry["priority"] = g.priority
        out.append(entry)
    return out


def to_istio(policy: LoadBalancerPolicy, *, outlier_detection: bool = False) -> dict[str, Any]:
    """The DestinationRule ``trafficPolicy.loadBalancer`` istiod turns into this policy.

    Parameters
    ----------
    policy
        The cluster's load balancing, resolved (as
        :meth:`meshsim.config.MeshPolicy.cluster_policies` gives it).
    outlier_detection
        Whether the cluster has outlier detection. The default MeshConfig
        enables locality load balancing, and istiod applies its locality
        failover priorities to every cluster with outlier detection, so a
        policy without ``locality_lb`` is written with ``localityLbSetting:
        {enabled: false}`` there.

    Notes
    -----
    ``simple`` (always written: istiod's default is LEAST_REQUEST, Envoy's
    ROUND_ROBIN), or ``consistentHash`` with the hash key and ``ringHash:
    {minimumRingSize}`` or ``maglev: {tableSize}``; ``localityLbSetting``;
    slow start as ``warmupDurationSecs`` (or ``warmup`` when aggression or
    minimum weight differ from the defaults; ROUND_ROBIN and LEAST_REQUEST
    only, as istiod applies it). The panic threshold goes into the outlier
    block (``minHealthPercent``, see :func:`meshsim.policies.outlier.to_istio`).
    Not expressible in Istio, and reported by the exporter: ``choice_count``,
    ``active_request_bias``, ``selection_method``, ``maximum_ring_size``,
    ``hash_function``, Envoy zone-aware routing (``zone_aware``).

    Examples
    --------
    >>> to_istio(LoadBalancerPolicy())
    {'simple': 'ROUND_ROBIN'}
    >>> to_istio(LoadBalancerPolicy.model_validate({"lb_policy": "RING_HASH", "hash_key": {"header_name": "x-user"}}))
    {'consistentHash': {'httpHeaderName': 'x-user', 'ringHash': {'minimumRingSize': 1024}}}
    >>> to_istio(LoadBalancerPolicy(lb_policy="LEAST_REQUEST"), outlier_detection=True)
    {'simple': 'LEAST_REQUEST', 'localityLbSetting': {'enabled': False}}
    """
    from meshsim.policies._istio import istio_duration

    out: dict[str, Any] = {}
    if policy.is_hashing:
        ch: dict[str, Any] = {}
        key = policy.hash_key
        if key is not None:
            if key.header_name:
                ch["httpHeaderName"] = key.header_name
            elif key.use_source_ip:
                ch["useSourceIp"] = True
            elif key.cookie:
                ch["httpCookie"] = {"name": key.cookie}
            elif key.query_parameter:
                ch["httpQueryParameterName"] = key.query_parameter
        if policy.lb_policy == "MAGLEV":
            ch["maglev"] = {"tableSize": policy.table_size}
        else:
            ch["ringHash"] = {"minimumRingSize": policy.minimum_ring_size}
        out["consistentHash"] = ch
    else:
        out["simple"] = policy.lb_policy
    loc = policy.locality_lb
    if loc is not None:
        setting: dict[str, Any] = {}
        if not loc.enabled:
            setting["enabled"] = False
        if loc.distribute:
            setting["distribute"] = [{"from": d.from_, "to": dict(d.to)} for d in loc.distribute]
        if loc.failover:
            setting["failover"] = [{"from": f.from_, "to": f.to} for f in loc.failover]
        if setting:  # enabled, nothing else: the mesh default
            out["localityLbSetting"] = setting
    elif outlier_detection:
        out["localityLbSetting"] = {"enabled": False}
    ss = policy.slow_start
    if ss is not None and policy.lb_policy in ("ROUND_ROBIN", "LEAST_REQUEST"):
        if ss.aggression == 1.0 and ss.min_weight_percent == 10.0:
            out["warmupDurationSecs"] = istio_duration(ss.slow_start_window)
        else:
            out["warmup"] = {
                "duration": istio_duration(ss.slow_start_window),
                "minimumPercent": ss.min_weight_percent,
                "aggression": ss.aggression,
            }
    return out


def unsupported(policy: LoadBalancerPolicy) -> list[str]:
    """Fields of ``policy`` that Envoy cannot express (always empty)."""
    return []


def panic_unhealthy_hosts(hosts: int, panic_threshold: float = DEFAULT_HEALTHY_PANIC_THRESHOLD) -> int | None:
    """The fewest unhealthy hosts (ejected or failing health checks) that put a cluster in panic.

    One priority of ``hosts`` equal-weight hosts (:func:`priority_loads`
    decides); ``None`` when no number of unhealthy hosts does (threshold 0).

    Examples
    --------
    >>> panic_unhealthy_hosts(5), panic_unhealthy_hosts(3), panic_unhealthy_hosts(1)
    (3, 2, 1)
    >>> panic_unhealthy_hosts(10, 0) is None
    True
    """
    for k in range(1, hosts + 1):
        if priority_loads([(hosts - k, hosts)], panic_threshold)[1][0]:
            return k
    return None


def lint(policy: LoadBalancerPolicy, *, hosts: int | None = None) -> list[Trap]:
    """Warnings about load-balancing settings that surprise people.

    Parameters
    ----------
    policy
        The policy.
    hosts
        The number of hosts, when known: adds when the cluster panics.

    Returns
    -------
    list of Trap
        Codes (``docs/lint.md``): **MS310** consistent hashing without a hash
        key (random), **MS311** a hash key the policy ignores, **MS312** how
        many unhealthy hosts put the cluster in panic (only with ``hosts``),
        **MS390** exported but not simulated.

    Examples
    --------
    >>> lint(LoadBalancerPolicy.model_validate({"lb_policy": "RING_HASH"}))  # doctest: +ELLIPSIS
    [Trap('RING_HASH without hash_key: every request gets a random hash, so this behaves like RANDOM', code='MS310', ...)]
    """
    out: list[Trap] = []
    if policy.is_hashing and policy.hash_key is None:
        out.append(Trap(
            f"{policy.lb_policy} without hash_key: every request gets a random hash, so this behaves like RANDOM",
            code="MS310", field="hash_key", value="unset",
        ))
    if not policy.is_hashing and policy.hash_key is not None:
        out.append(Trap(f"hash_key is ignored by {policy.lb_policy}", code="MS311", field="hash_key",
                        value=policy.lb_policy))
    if policy.healthy_panic_threshold > 0 and hosts is not None and hosts > 0:
        k = panic_unhealthy_hosts(hosts, policy.healthy_panic_threshold)
        if k is not None:
            out.append(Trap(
                f"healthy_panic_threshold {policy.healthy_panic_threshold:g} %: with {hosts} hosts, "
                f"{k} or more unhealthy (ejected or failing health checks) put the cluster in panic "
                "and traffic goes to all hosts again, unhealthy ones included",
                code="MS312", field="healthy_panic_threshold", value=f"{policy.healthy_panic_threshold:g}",
            ))
    if policy.slow_start is not None:
        out.append(Trap("slow_start is exported but not simulated", code="MS390", field="slow_start",
                        value="set"))
    return out
