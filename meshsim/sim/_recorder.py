"""The recorder: columnar buffers during the run, DataFrames and a summary at the end.

Two modes (the scenario's ``record:``):

``full``
    One row per end-to-end request and one per attempt, kept as tuples and
    packed into float64 arrays every 65,536 rows (about 90 bytes a row).
    The summary's quantiles are exact.
``summary``
    No rows: bounded-memory log histograms (<= 0.1 % relative error on
    quantiles) and counters per source, service version and end to end, so
    a 10-million-request run fits in a fixed amount of memory.

Statistics cover requests *started* in the window ``[warmup, duration)``;
full-mode rows include the warmup so a user can look at it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["Recorder", "QUANTILES"]

#: summary quantiles: key -> probability
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
_CHUNK = 65536

# raw attempt row: request id, caller code, host id (or -(service index + 1) for a local reply), try,
# sent, arrived at the callee, first worker start, callee response, back at the caller, status, flags
_ATT_COLS = ["request_id", "caller", "host", "attempt", "t_send", "t_arrive", "t_start", "t_done", "t_end",
             "status", "flags"]
_REQ_COLS = ["request_id", "source", "start_s", "end_s", "status", "attempts", "flags"]
#: flag bit of an attempt row that is also its request's whole story (one try, answered): the
#: request row is derived from it when the tables are built instead of being recorded twice
SOLE = 1 << 30
#: flag bit of an attempt row that is a mirror's shadow copy: Envoy counts it on the mirror's subset
#: cluster, whatever cluster the route used (stripped from ``flags`` like ``SOLE``)
SHADOW = 1 << 29


class _Rows:
    """Tuples appended on the hot path, packed into float64 blocks every ``_CHUNK`` rows."""

    __slots__ = ("rows", "blocks", "ncols")

    def __init__(self, ncols: int) -> None:
        self.rows: list[tuple] = []
        self.blocks: list[np.ndarray] = []
        self.ncols = ncols

    def pack(self) -> None:
        if self.rows:
            self.blocks.append(np.array(self.rows, dtype=np.float64).reshape(-1, self.ncols))
            self.rows = []

    def array(self) -> np.ndarray:
        self.pack()
        if not self.blocks:
            return np.empty((0, self.ncols))
        return np.concatenate(self.blocks)


class _Group:
    """Summary-mode statistics of one group (a source, a service version).

    Latencies and statuses are appended to two lists on the hot path and
    folded into a ``LogHistogram`` and a status count every ``_CHUNK`` values.
    """

    __slots__ = ("hist", "status", "lat", "st")

    def __init__(self) -> None:
        from meshsim.sim._histogram import LogHistogram

        self.hist = LogHistogram()
        self.status: dict[int, int] = {}
        self.lat: list[float] = []
        self.st: list[int] = []

    def add(self, latency: float, status: int) -> None:
        self.lat.append(latency)
        self.st.append(status)
        if len(self.st) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.st:
            return
        st = np.array(self.st, dtype=np.int64)
        lat = np.array(self.lat, dtype=np.float64)
        self.hist.add_array(lat[st != 0])
        codes, counts = np.unique(st, return_counts=True)
        for c, k in zip(codes.tolist(), counts.tolist(), strict=True):
            self.status[c] = self.status.get(c, 0) + k
        self.lat = []
        self.st = []

    @property
    def n(self) -> int:
        self.flush()
        return sum(self.status.values())


class Recorder:
    """Receives finished attempts and requests from the engine."""

    def __init__(self, sim, *, summary_only: bool) -> None:
        self.sim = sim
        self.summary_only = summary_only
        self.warmup = sim.warmup
        self.att = _Rows(len(_ATT_COLS))
        self.req = _Rows(len(_REQ_COLS))
        self.svc_index = {name: i for i, name in enumerate(sim.services)}
        self.nservices = len(sim.services)
        if summary_only:
            self.g_src = [_Group() for _ in sim.scenario.traffic]
            self.g_ver = [_Group() for _ in sim.versions]
            self.g_svc_local = {name: _Group() for name in sim.services}  # answers without a host
            self.local_replies = [0] * len(sim.versions)  # per version: answers without a host
            self.shadow_status: dict[int, dict[int, int]] = {}  # per version: mirror shadows' statuses
            self.attempt = self._attempt_summary
            self.entry = self._entry_summary
            self.entry_open = self._entry_open_summary
        else:
            self.attempt = self._attempt_full
            self.entry = self._entry_full
            self.entry_open = self._entry_open_full
        self.open: dict = {}
        self.cx_width = sim.cx_width  # a source's slot in the plain path's connection lists: code + width

    # ------------------------------------------------------------------ hot path
    def _attempt_full(self, att) -> None:
        if att.is_call:  # a router-level request: its tries were recorded one by one
            return
        h = att.host
        rows = self.att.rows
        rows.append((
            att.rid, att.caller, self._local_code(att) if h is None else h.hid, att.try_no,
            att.t_send, att.t_arrive, att.t_start, att.t_done, self.sim.env._now, att.status, att.flags,
        ))
        if len(rows) >= _CHUNK:
            self.att.pack()

    def shadow(self, att) -> None:
        """A mirror's shadow copy was answered (its response is discarded): an attempt row, marked."""
        if self.summary_only:
            if att.t_send >= self.warmup:
                counts = self.shadow_status.setdefault(att.host.ver.vid, {})
                counts[att.status] = counts.get(att.status, 0) + 1
        else:
            att.flags |= SHADOW
        self.attempt(att)

    def _entry_open_full(self, att) -> None:
        """An open-loop request is answered: it is no longer open, and its row is recorded.

        The body of ``_entry_full``, inlined: this runs once per request of every open-loop run.
        It also frees the source's plain-path connection to the host (the engine's
        ``Simulation._request_done_closed`` does it for closed loops).
        """
        if att.abandoned:
            return
        att.abandoned = True
        self.open.pop(att.rid, None)
        if att.is_call:
            self._request_row(att)
            return
        h = att.host
        if h is not None:
            h.cx_free[att.caller + self.cx_width] += 1
        rows = self.att.rows
        rows.append((
            att.rid, att.caller, self._local_code(att) if h is None else h.hid, att.try_no,
            att.t_send, att.t_arrive, att.t_start, att.t_done, self.sim.env._now, att.status, att.flags | SOLE,
        ))
        if len(rows) >= _CHUNK:
            self.att.pack()

    def _entry_open_summary(self, att) -> None:
        if att.abandoned:
            return
        att.abandoned = True
        self.open.pop(att.rid, None)
        h = att.host  # (a sidecar's Call has none)
        if h is not None:  # the source's plain-path connection is idle again
            h.cx_free[att.caller + self.cx_width] += 1
        self._entry_summary(att)

    def _request_row(self, call) -> None:
        """An explicit request row (a request whose story is more than one attempt)."""
        rows = self.req.rows
        rows.append((call.rid, call.parent.index, call.t_send, self.sim.env._now, call.status, call.try_no,
                     call.flags))
        if len(rows) >= _CHUNK:
            self.req.pack()

    def _local_code(self, att) -> int:
        """Host column of a local reply: ``-(1 + service)``, or ``-(1 + services + version)`` when the
        sidecar had picked the cluster (overflow, no healthy upstream, fault abort)."""
        if att.local_vid >= 0:
            return -1 - self.nservices - att.local_vid
        return -1 - att.service.idx

    def _entry_full(self, att) -> None:
        """An entry attempt answered its end-to-end request by itself: one row, marked ``SOLE``."""
        if att.is_call:
            self._request_row(att)
            return
        h = att.host
        rows = self.att.rows
        rows.append((
            att.rid, att.caller, self._local_code(att) if h is None else h.hid, att.try_no,
            att.t_send, att.t_arrive, att.t_start, att.t_done, self.sim.env._now, att.status, att.flags | SOLE,
        ))
        if len(rows) >= _CHUNK:
            self.att.pack()

    def _attempt_summary(self, att) -> None:
        if att.t_send < self.warmup or att.is_call:
            return
        h = att.host
        if h is not None:
            g = self.g_ver[h.ver.vid]
        elif att.local_vid >= 0:
            g = self.g_ver[att.local_vid]
            self.local_replies[att.local_vid] += 1
        else:
            g = self.g_svc_local[att.service.name]
        g.lat.append(self.sim.env._now - att.t_send)
        g.st.append(att.status)
        if len(g.st) >= _CHUNK:
            g.flush()

    def _entry_summary(self, att) -> None:
        if att.t_send < self.warmup:
            return
        lat = self.sim.env._now - att.t_send
        st = att.status
        if not att.is_call:  # a call's tries were counted one by one
            h = att.host
            g = self.g_svc_local[att.service.name] if h is None else self.g_ver[h.ver.vid]
            g.lat.append(lat)
            g.st.append(st)
            if len(g.st) >= _CHUNK:
                g.flush()
        g = self.g_src[att.parent.index]  # end to end = the union of the sources, merged at the end
        g.lat.append(lat)
        g.st.append(st)
        if len(g.st) >= _CHUNK:
            g.flush()

    def unfinished(self, att) -> None:
        """A request still open when the run stopped: recorded once, status 0, no end."""
        if self.summary_only:
            if att.t_send >= self.warmup:
                self.g_src[att.parent.index].add(math.nan, 0)
            return
        self.req.rows.append((att.rid, att.parent.index, att.t_send, math.nan, 0, att.try_no, att.flags))

    # ------------------------------------------------------------------ tables
    def tables(self) -> Tables | None:
        """The recorded rows, packed (full mode), or None (summary mode)."""
        if self.summary_only:
            return None
        sim = self.sim
        hosts = sim.hosts
        zone_names = sorted({h.zone for h in hosts if h.zone is not None})
        zone_code = {z: i for i, z in enumerate(zone_names)}
        labels = _Labels(
            sources=[s.name for s in sim.sources],
            services=list(sim.services),
            versions=[v.name for v in sim.versions],
            version_service=np.array([v.service.idx for v in sim.versions], dtype=np.int64),
            host_service=np.array([h.ver.service.idx for h in hosts], dtype=np.int64),
            host_version=np.array([h.ver.vid for h in hosts], dtype=np.int64),
            host_replica=np.array([h.index for h in hosts], dtype=np.int64),
            host_zone=np.array([zone_code.get(h.zone, -1) for h in hosts], dtype=np.int64),
            zones=zone_names,
        )
        return Tables(self.req.array(), self.att.array(), labels)

    def timeseries_frame(self) -> pd.DataFrame:
        sim = self.sim
        nsec = max(1, int(math.ceil(sim.t_end)))
        parts = []
        for v in sim.versions:
            workers = max(1, v.workers_total)
            parts.append(pd.DataFrame({
                "t_s": np.arange(nsec, dtype=np.int64),
                "service": v.service.name,
                "version": v.name,
                "arrivals": np.asarray(v.arrivals[:nsec], dtype=np.int64),
                "completions": np.asarray(v.completions[:nsec], dtype=np.int64),
                "errors": np.asarray(v.errors[:nsec], dtype=np.int64),
                "in_flight": np.asarray(v.ts_in_flight[:nsec], dtype=np.int64),
                "queue_len": np.asarray(v.ts_queue[:nsec], dtype=np.int64),
                "utilization": np.asarray(v.ts_area[:nsec], dtype=np.float64) / workers,
                "ejected": np.asarray(v.ts_ejected[:nsec], dtype=np.int64),
                "up": (np.asarray(v.ts_up[:nsec], dtype=np.float64) if v.ts_up is not None
                       else np.full(nsec, float(len(v.hosts)))),
            }))
        df = pd.concat(parts, ignore_index=True)
        df["service"] = df["service"].astype("category")
        df["version"] = df["version"].astype("category")
        return df


class _Labels:
    """Names behind the integer codes of the rows."""

    def __init__(self, *, sources, services, versions, version_service, host_service, host_version, host_replica,
                 host_zone, zones) -> None:
        self.version_service = version_service
        self.sources = sources
        self.services = services
        self.versions = versions
        self.host_service = host_service
        self.host_version = host_version
        self.host_replica = host_replica
        self.host_zone = host_zone
        self.zones = zones


class Tables:
    """A run's rows as packed float64 arrays; DataFrames are built on first access.

    The summary reads the arrays directly; ``requests()`` and ``attempts()``
    build (and keep) the labelled DataFrames when someone asks for them.
    """

    def __init__(self, explicit_requests: np.ndarray, attempts: np.ndarray, labels: _Labels) -> None:
        a = attempts  # in completion order; the DataFrames are sorted when built
        flags = a[:, 10].astype(np.int64)
        sole = (flags & SOLE) != 0
        self.att = a
        #: the rows of mirror shadows (counted on the mirror's subset cluster)
        self.att_shadow = (flags & SHADOW) != 0
        self.att_flags = flags & ~(SOLE | SHADOW)
        code = a[:, 2].astype(np.int64)
        hid = np.where(code >= 0, code, -1)
        lb = labels
        nsvc = len(lb.services)
        host_service = np.append(lb.host_service, -1)
        local_vid = np.where(code <= -1 - nsvc, -code - 1 - nsvc, -1)  # local replies of a known version
        version_service = np.append(lb.version_service, -1)
        self.att_hid = hid
        self.att_service = np.where(code >= 0, host_service[hid],
                                    np.where(local_vid >= 0, version_service[local_vid], -code - 1))
        self.att_version = np.where(local_vid >= 0, local_vid, np.append(lb.host_version, -1)[hid])
        self.sole = sole
        self.explicit = explicit_requests
        self.labels = labels
        self._requests: pd.DataFrame | None = None
        self._attempts: pd.DataFrame | None = None
        self._req: np.ndarray | None = None

    def _req_col(self, explicit_col: int, att_col: int) -> np.ndarray:
        """One request column: the explicit rows, then those derived from sole attempts."""
        derived = self.att[self.sole, att_col]
        return np.concatenate([self.explicit[:, explicit_col], derived]) if len(self.explicit) else derived

    @property
    def req(self) -> np.ndarray:
        """All request rows (explicit ones first), columns as ``_REQ_COLS``."""
        if self._req is None:
            s = self.att[self.sole]
            derived = np.column_stack([s[:, 0], -s[:, 1] - 1, s[:, 4], s[:, 8], s[:, 9], s[:, 3],
                                       self.att_flags[self.sole].astype(np.float64)])
            self._req = np.concatenate([self.explicit, derived]) if len(self.explicit) else derived
        return self._req

    # numpy columns for the summary
    @property
    def req_start(self) -> np.ndarray:
        return self._req_col(2, 4)

    @property
    def req_latency(self) -> np.ndarray:
        return self._req_col(3, 8) - self._req_col(2, 4)

    @property
    def req_status(self) -> np.ndarray:
        return self._req_col(4, 9).astype(np.int64)

    @property
    def req_source(self) -> np.ndarray:
        if len(self.explicit):
            return np.concatenate([self.explicit[:, 1], -self.att[self.sole, 1] - 1]).astype(np.int64)
        return (-self.att[self.sole, 1] - 1).astype(np.int64)

    @property
    def att_start(self) -> np.ndarray:
        return self.att[:, 4]

    @property
    def att_latency(self) -> np.ndarray:
        return self.att[:, 8] - self.att[:, 4]

    @property
    def att_status(self) -> np.ndarray:
        return self.att[:, 9].astype(np.int64)

    def requests(self) -> pd.DataFrame:
        if self._requests is None:
            a = self.req[np.argsort(self.req[:, 0], kind="stable")]
            self._requests = pd.DataFrame({
                "request_id": a[:, 0].astype(np.int64),
                "source": pd.Categorical.from_codes(a[:, 1].astype(np.int64), categories=self.labels.sources),
                "start_s": a[:, 2],
                "end_s": a[:, 3],
                "latency_s": a[:, 3] - a[:, 2],
                "status": a[:, 4].astype(np.int16),
                "attempts": a[:, 5].astype(np.int16),
                "flags": _flag_strings(a[:, 6]),
            })
        return self._requests

    def attempts(self) -> pd.DataFrame:
        if self._attempts is None:
            order = np.lexsort((self.att[:, 4], self.att[:, 0]))  # by request, then by send time
            a = self.att[order]
            lb = self.labels
            nsrc = len(lb.sources)
            caller_codes = a[:, 1].astype(np.int64)
            caller_idx = np.where(caller_codes < 0, -caller_codes - 1, nsrc + caller_codes)
            caller_names = lb.sources + [lb.services[i] for i in lb.host_service]
            caller_versions = [""] * nsrc + [lb.versions[i] for i in lb.host_version]
            hid = self.att_hid[order]
            vcats = sorted(set(lb.versions))
            vcode = {n: i for i, n in enumerate(vcats)}
            vmap = np.array([vcode[n] for n in lb.versions] + [-1], dtype=np.int64)
            cn = sorted(set(caller_names))
            cnc = {n: i for i, n in enumerate(cn)}
            cmap = np.array([cnc[n] for n in caller_names], dtype=np.int64)
            cvc = sorted(set(caller_versions))
            cvcc = {n: i for i, n in enumerate(cvc)}
            cvmap = np.array([cvcc[n] for n in caller_versions], dtype=np.int64)
            t_arrive, t_start, t_done = a[:, 5], a[:, 6], a[:, 7]
            self._attempts = pd.DataFrame({
                "request_id": a[:, 0].astype(np.int64),
                "caller": pd.Categorical.from_codes(cmap[caller_idx], categories=cn),
                "caller_version": pd.Categorical.from_codes(cvmap[caller_idx], categories=cvc),
                "service": pd.Categorical.from_codes(self.att_service[order], categories=lb.services),
                "version": pd.Categorical.from_codes(vmap[self.att_version[order]], categories=vcats),
                "replica": np.append(lb.host_replica, -1)[hid],
                "zone": pd.Categorical.from_codes(np.append(lb.host_zone, -1)[hid], categories=lb.zones),
                "attempt": a[:, 3].astype(np.int16),
                "start_s": a[:, 4],
                "wait_s": np.where((t_start >= 0) & (t_arrive >= 0), t_start - t_arrive, np.nan),
                "server_s": np.where((t_done >= 0) & (t_arrive >= 0), t_done - t_arrive, np.nan),
                "end_s": a[:, 8],
                "latency_s": a[:, 8] - a[:, 4],
                "status": a[:, 9].astype(np.int16),
                "flags": _flag_strings(self.att_flags[order].astype(np.float64)),
            })
        return self._attempts


def _flag_strings(codes: np.ndarray) -> pd.Categorical:
    from meshsim.sim._runtime import FLAG_NAMES

    ints = codes.astype(np.int64)
    uniq = np.unique(ints)
    labels = []
    for u in uniq:
        labels.append(",".join(name for bit, name in FLAG_NAMES.items() if int(u) & bit))
    cats = sorted(set(labels))
    code_of = {c: i for i, c in enumerate(cats)}
    lut = {int(u): code_of[lab] for u, lab in zip(uniq, labels, strict=True)}
    mapped = np.array([lut[int(x)] for x in uniq], dtype=np.int64)
    idx = np.searchsorted(uniq, ints)
    return pd.Categorical.from_codes(mapped[idx] if len(ints) else np.empty(0, np.int64), categories=cats)
