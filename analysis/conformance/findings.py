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

**D3 (found here, fixed in the simulator): counters per cluster.** Envoy counts requests and connections on the
cluster that carried them. The simulator reported a whole-service cluster's request counters under its versions
(`svc|v1`, ...) and its connection counters under `svc|*` (the harness added the versions into `svc|*` to
compare), and a destination whose mesh entry sets nothing beyond routes (`weighted`) took the simulator's plain
path, which counted no connections at all (`upstream_cx_total` per request 0.0076 on Envoy, 0 simulated). Fix
(`meshsim/sim/_result.py` `cluster_keys`, `meshsim/sim/_engine.py` `send`): every counter is keyed by the cluster
Envoy would use (`outbound|80||svc` ↔ `svc|*`, or `svc|default` for a service without declared versions;
`outbound|80|v1|svc` ↔ `svc|v1`; a mirror's shadow on its subset), the per-version view staying in the
summary's `services.<svc>.versions` and the attempt rows; and the plain path counts the HTTP/1.1 connections
each caller's sidecar opens to each host as Envoy does with its default breakers and no retries: a new one
exactly when a request finds every connection to the host busy, kept open afterwards (1 h idle timeout), closed
by a route-timeout reset (`upstream_cx_total` = the peak number of requests in flight per caller and host). It
costs an idle-connection count per caller and host, read and written once per request and once per response
(≈2 % more instructions per request on the bookinfo plain-path run). After the fix `weighted` agrees:
`upstream_cx_total` per request 0.0069 and 0.0076 real in two runs of three vs 0.0067 simulated (tolerance
0.0057-0.0058), and the harness compares the simulator's counters as they are.

**D4 (explained: the harness, not the simulator): the 2nd-try latency band of `pertry`.** Requests answered
at their 2nd try take a median ≈125-128 ms through Envoy against ≈122 ms simulated (per-try timeout 100 ms +
back-off U[0, 25 ms) + 10 ms). The stand-ins log when each try arrives, so the harness now compares the gap
between a request's 1st and 2nd try where the upstream sees it (`try_gap_p50_ms`: the per-try timeout plus the
back-off, which is what the simulator models): 112.5 ms real (44 requests, one 15 s run) and 113 vs 111 ms
simulated over the full experiment, inside the tolerance, as are the 2nd try's served time (10.4 ms for a
drawn 10 ms) and its queueing (0). The band's extra 2-6 ms end to end is therefore the real path's own time
(the first try reaches the stand-in ≈1 ms after Envoy starts its per-try timer, Envoy's timers fire on whole
milliseconds, the stand-in's `asyncio.sleep` wakes late, and the proxy adds ≈1 ms each way), which the
latency allowance covers. The two band metrics stay listed as known so that CI does not flap on a loaded
machine; the gap metric is judged.

**D5 (explained, Envoy's event loop; not modelled): `upstream_cx_overflow` in the breaker experiments.**
Envoy counts 3-15 % more connection overflows per request than the simulator in every `cb-*` experiment
(`cb-closed-3`: 0.34-0.36 real against 0.31 simulated, outside the tolerance in most full runs; the others
inside it), while the 503 share, `upstream_rq_pending_overflow` and the attempt counts agree. Source
(`source/common/conn_pool/conn_pool_base.cc`): both count an overflow when a request goes pending and no
connection may be opened, and when a connection closes with requests pending; Envoy also counts one at the
end of `onUpstreamReady()` when requests are still pending. For HTTP/1.1 the attach of a pending request to a
connection whose stream just closed is deferred to the end of the event-loop iteration
(`scheduleOnUpstreamReady`); a new request that arrives in that same iteration finds the connection ready,
takes it, and the deferred `onUpstreamReady()` then finds the pending request still waiting and counts again.
How often two events share an iteration depends on the machine's speed, not on a policy, so the simulator
(which attaches the pending request at once) does not model it; `upstream_cx_overflow/rq` is listed as known
in the breaker experiments.

**Harness latency.** In an earlier run the real median latency at 150/s (`retry-high`) was ≈5 ms above the
simulated one (it agrees in the final run): the load generator, the stand-ins and Envoy share two busy cores at
that rate, so this is most likely the harness, not Envoy. Real latencies run 1.5-4 ms above the simulated ones
at the median everywhere (proxy overhead plus millisecond timers), inside the stated allowance.

**Multi-hop (family 6: `chain-retry`, `fanout`, `bookinfo`): agrees.** Services that call services run as a
small mesh: the ingress Envoy, one Envoy per calling service (its exported sidecar's outbound listener) and
stand-ins that run each version's whole script as the simulator does (error draw after the first `work`, a
failed required call answers 500 at once, a parallel group waits for all its calls, `optional` failures are
ignored, `blocking` workers are held across calls and sleeps, `async` ones per `work` step, cross-zone delay
served on both legs), calling through their own sidecar with the incoming headers forwarded (so the `jason`
header route deeper in Bookinfo works). Success rate and status mix at the entry, requests per service version
per end-to-end request, per-replica shares, per caller and cluster `upstream_rq_total`/`_2xx`/`_5xx`/`_retry`/
`_retry_success` (Envoy charges a response class only to the answer it did not retry; the harness counts the
simulator's attempt rows the same way) and `upstream_rq_retry_limit_exceeded` all agree: e.g. `bookinfo`
(ratings failing 3 %) 0.49 % 500s real vs 0.30 % simulated (tolerance 0.81 pp), reviews v3 10.6 % vs 9.1 % of
requests (tolerance 2.4 pp; 9.4 % vs 9.3 % over 2 x 12 000 requests at the scenario's 200/s); `fanout` 5.7 % vs
4.6 % 500s (tolerance 1.9 pp) while the optional callee fails 19 % vs 21 %. End-to-end latency runs 2-4 ms above
the simulated one at the median (`bookinfo` 23.6 vs 20.2 ms, tolerance 8.3; `chain-retry` 16.6 vs 14.4): the
whole real path's own time (measured per request: client latency minus the entry's served time plus what each
stand-in reports as its own) is 4.2 ms at the median in `bookinfo`: three Envoys and four Python hops, each call
≈1 ms round trip through Envoy and the stand-ins' client against the scenario's 0.4 ms of `network.latency` per
call, and each stand-in sleep ending ≈0.1-0.25 ms late on the loaded machine (they wake on a timerfd, not on
`asyncio.sleep`'s whole milliseconds); per-service served times of the leaves agree within 0.1-0.6 ms. Harness,
not simulator. Structural difference kept on
purpose: the harness runs one Envoy per calling *service*, the simulator keeps one sidecar per calling
*replica* (connection pools, breakers, outlier detection and least-request state are per replica there), so
`upstream_cx_total` to a service called by a 3-replica caller is about twice Envoy's in the simulator
(`bookinfo` reviews v1: 0.016 vs 0.007 per request); the harness leaves `upstream_cx_*` of a service more than
one replica calls out of the comparison (named in the notes). Scenarios whose callers carry breakers or
outlier detection would need one Envoy per calling replica to compare those.

**Harness limits.** Stand-in service times come from `asyncio.sleep`, which wakes on whole milliseconds
(constant 10 ms is served as ≈11 ms), and the real path adds ≈1 ms of proxy overhead per request; latency
tolerances include both (see above), and the KS distance is judged against the stand-ins' own measured
distortion. The scenario cannot carry `update_merge_window` yet: the harness writes it into the Envoy clusters and
sets the simulator's `HostSetUpdateMerger` default for that run alike.
"""
