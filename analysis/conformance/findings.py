"""The report's findings, written after reading the measurements (numbers: the tables below)."""

FINDINGS = """
**What agrees.** Circuit breaking (1, 2, 3 closed-loop connections and Poisson at 20/s and 50/s: the 503 share,
`upstream_rq_pending_overflow`, the M/G/1/2-like blocking), retries (success rate, `URX`/`UO` shares,
`upstream_rq_retry`, `_success`, `_overflow`, `_limit_exceeded` at 20/s, at 150/s where the default
`max_retries: 3` overflows, and with it raised), outlier detection (5 requests to the bad host before the first
ejection, the ejection length rounded up to the 1 s tick, ~5.5 s, the ~10 requests the bad host still gets
after its second ejection with the default 1 s `update_merge_window` and 0 with it set to 0 s), per-try
timeouts (504 share, `URX,UT`, `upstream_rq_per_try_timeout`, the 3rd-try band), weighted routing 90/10 and
the round-robin and least-request host shares. Every metric not listed below agrees within its tolerance.

**D1 (found here, fixed in the simulator): a retry decided on a 5xx response closes the HTTP/1.1 upstream
connection in Envoy.** Envoy opened ≈0.30-0.39 new connections per request in every retry experiment against
≈0.007 in the simulator (`upstream_cx_destroy_local_with_active_rq` equals `upstream_rq_retry` in Envoy's raw
stats; reference/envoy.md D.3). Source: `source/common/router/router.cc` `Filter::onUpstreamHeaders` resets
the upstream stream of a response it retries (`upstream_request.resetStream()`), and a reset HTTP/1.1 stream
closes its connection. The simulator returned the connection to the pool before deciding. Fix
(`meshsim/sim/_sidecar.py` `_try_done`/`_judge`): the retry is decided with the try still active (retry
budgets count it, as Envoy's do), then a retried response's stream is reset (`pool.on_reset`) and any other
response completes it. After the fix `upstream_cx_total` per request agrees in every `retry-*` experiment
(e.g. `retry-high` 0.312 real vs 0.306 simulated, tolerance 0.038).

**D2 (found here, fixed in the simulator): attempts of a request refused by the breaker.** Envoy's
`%UPSTREAM_REQUEST_ATTEMPT_COUNT%` is 1 for a request that overflowed (`UO`): an upstream request was created
and failed in the pool. The simulator recorded 0. Fix (`_sidecar.py` `_try`/`_local_reply`): a pool overflow
counts as a try (a "no healthy upstream" answer, made before any upstream request, still counts none). After
the fix `attempts/rq` agrees in every `cb-*` experiment.

**D3 (known, simulator stats): counters per cluster.** Envoy counts requests and connections on the cluster
that carried them. The simulator reports a whole-service cluster's request counters under its versions
(`svc|v1`, ...) and its connection counters under `svc|*` (the harness adds the versions into `svc|*` to
compare). A destination whose mesh entry sets nothing beyond routes (`weighted`) takes the simulator's plain
path, which models no connection pool, so it has no `upstream_cx_*` counters at all (`upstream_cx_total` per
request 0.0076 on Envoy). Proposed fix: key every counter by the cluster Envoy would use (`outbound|80||svc` ↔
`svc|*`, `outbound|80|v1|svc` ↔ `svc|v1`); connection counters on the plain path would cost its speed and are
left out on purpose (the plain path exists to make policy-free destinations cheap).

**D4 (watch, not yet explained): the 2nd-try latency band of `pertry`.** Requests answered at their 2nd try
take a median ≈125-128 ms through Envoy against ≈122 ms simulated (per-try timeout 100 ms + back-off
U[0, 25 ms) + 10 ms): within tolerance in the final run (125 vs 122, tolerance 7), outside it in an earlier
one (128 vs 122, tolerance 4); the 3rd-try band agrees. It is listed as a known disagreement so that CI does
not flap on it. Candidates: the per-try timer starts only once the upstream stream is attached (reference/envoy.md
1.4), and the retry after a per-try reset needs a new connection (Envoy's 1 ms timer granularity, the stand-in's
accept); the simulator does close the connection on a per-try timeout (`upstream_cx_total` agrees). Next step:
an upstream access log per try and a direct comparison of try start times.

**Unexplained, reported as disagreements where they show:** `cb-closed-3` `upstream_cx_overflow` per request
≈0.35 on Envoy against ≈0.31 simulated (tolerance ≈0.03; the 503 share and `upstream_rq_pending_overflow` agree):
Envoy counts an overflow at every `tryCreateNewConnections` call that finds `max_connections` reached
(`source/common/conn_pool/conn_pool_base.cc`), and may call it at more points than the simulator's pool (which
counts at a new pending request and at a connection close with requests queued); it disagreed in the three full
runs before the D1/D2 fixes (0.35 vs 0.31) and agreed narrowly in this one (0.342 vs 0.314, tolerance 0.030), so
Envoy still counts ~9 % more: a watch item. In an earlier run the real median latency at 150/s (`retry-high`) was ≈5 ms above the
simulated one (it agrees in the final run): the load generator, the stand-ins and Envoy share two busy cores at
that rate, so this is most likely the harness, not Envoy. Real latencies run 1.5-4 ms above the simulated ones
at the median everywhere (proxy overhead plus millisecond timers), inside the stated allowance.

**Harness limits.** Stand-in service times come from `asyncio.sleep`, which wakes on whole milliseconds
(constant 10 ms is served as ≈11 ms), and the real path adds ≈1 ms of proxy overhead per request; latency
tolerances include both (see above), and the KS distance is judged against the stand-ins' own measured
distortion. Only one-hop scenarios (traffic sources → entry services whose script is one `work` step) run on the
real Envoy. The scenario cannot carry `update_merge_window` yet: the harness writes it into the Envoy clusters and
sets the simulator's `HostSetUpdateMerger` default for that run alike.
"""
