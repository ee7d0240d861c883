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

**D1 (known, simulator): a retry decided on a 5xx response closes the HTTP/1.1 upstream connection in Envoy.**
Evidence: `upstream_cx_total` per request is ≈0.30-0.39 on Envoy and ≈0.007 in the simulator in every retry
experiment (`retry-*`), i.e. Envoy opens one new connection per retry (`upstream_cx_destroy_local_with_active_rq`
equals `upstream_rq_retry` in the raw stats); reference/envoy.md D.3. Source: `source/common/router/router.cc`
`Filter::onUpstreamHeaders`: when `retry_state_->shouldRetryHeaders(...)` returns `RetryStatus::Yes`, the router
runs `if (!end_stream || !upstream_request.encodeComplete()) upstream_request.resetStream();` before scheduling
the retry; a response with a body (end_stream false at headers) is therefore reset, and a reset HTTP/1.1 stream
closes its connection. The simulator's `_try_done` (`meshsim/sim/_sidecar.py`) calls
`pool.on_response_complete(att, now)` before the retry decision, so the connection goes back to the pool.
Proposed fix: in `_try_done`, decide first; when `_judge` returns a retry (`RetryDecision.YES`) for a response,
release the try with `pool.on_reset(att, now)` (the connection is closed) instead of `on_response_complete`.
The simulator has no response bodies, so treat every retried response as having one (Envoy keeps the
connection only for a headers-only response). It matters when `max_connections` is small (each retry then
needs a new connection slot and a handshake) and for `upstream_cx_*` dashboards.

**D2 (known, simulator recording): attempts of a request refused by the breaker.** Envoy's
`%UPSTREAM_REQUEST_ATTEMPT_COUNT%` is 1 for a request that overflowed (`UO`, `x-envoy-overloaded`): an upstream
request was created and failed in the pool. The simulator's `requests.attempts` is 0 for it (`cb-*`: attempts per
request 1.00 on Envoy, equal to the success share in the simulator). Proposed fix: count the overflowed try in
the request row (`try_no + 1` in `_local_reply` for pool overflows), as the attempts table already does.

**D3 (known, simulator stats): counters per cluster.** Envoy counts requests and connections on the cluster
that carried them. The simulator reports a whole-service cluster's request counters only under its versions
(`svc|v1`, ...) and its connection counters under `svc|*` (the harness adds the versions into `svc|*` to
compare), and keeps no connection counters at all for a subset cluster (`weighted`: `upstream_cx_total` per request
0.0076 on Envoy, absent in the simulator). Proposed fix (`meshsim/sim/_result.py` `sidecar_counters` and the
pool stats): key every counter by the cluster Envoy would use (`outbound|80||svc` ↔ `svc|*`,
`outbound|80|v1|svc` ↔ `svc|v1`) and emit the pool counters for subset clusters.

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
counts at a new pending request and at a connection close with requests queued); it disagreed in all three full
runs made (0.35 vs 0.31). In an earlier run the real median latency at 150/s (`retry-high`) was ≈5 ms above the
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
