"""HTTP routing: route matching and weighted version choice, as Envoy does it.

Three layers, as every file in :mod:`meshsim.policies`:

* **Config** — :class:`RoutingPolicy` holds an ordered list of :class:`Route`;
  each route has OR-ed :class:`RouteMatch` entries (uri, headers, method; all
  AND-ed inside one entry) and :class:`WeightedDestination` entries naming a
  version (Istio *subset*) of the destination service with an integer weight.
  Both meshsim's short spelling (``route: {v1: 90, v3: 10}``) and Istio's
  (``route: [{destination: {host: reviews, subset: v1}, weight: 90}, ...]``)
  are accepted, as are the keys ``http`` (for ``routes``) and ``path`` (for
  ``uri``).
* **Runtime** — :class:`Router` answers "which version serves this request?"
  from the request's path, method and headers and one uniform draw. It is
  engine-free: the caller hands it the draw from its routing stream.
* **Envoy** — :func:`to_envoy` writes Envoy v3 ``config.route.v3.Route``
  messages (one per match entry, as Istio does).

Semantics (``api/envoy/config/route/v3/route_components.proto``, Istio
``pilot/pkg/networking/core/route/route.go``):

* Routes are tried in order; the **first** whose match passes wins. There is
  no longest-prefix rule. No matching route → :meth:`Router.select` returns
  ``None`` and the engine answers 404 with response flag ``NR``.
* ``uri.prefix`` tests the whole ``:path`` (query string included);
  ``uri.exact`` and ``uri.regex`` test the path with the query string removed.
  Regexes must match the **whole** string (RE2 ``FullMatch``), for uris and
  headers alike.
* A missing header never matches ``exact``/``prefix``/``regex``/``present:
  true``; ``present: false`` matches only a missing header.
* The version is chosen once per request: ``u * total`` falls in the
  cumulative interval of one destination, so a weight-0 destination is never
  chosen (Envoy's ``random % total`` over ``[Σw_<i, Σw_≤i)``). Weights need
  not sum to 100, but their sum must be positive.

A route may carry its own policies (Istio ``HTTPRoute`` fields):
``timeout`` (:class:`~meshsim.policies.timeout.TimeoutPolicy`), ``retries``
(:class:`~meshsim.policies.retry.RetryPolicy`), ``fault``
(:class:`~meshsim.policies.fault.FaultPolicy`) and ``mirror`` (:class:`Mirror`,
Envoy ``request_mirror_policies``). A route holds only what it says; the
scenario's ``MeshPolicy.route_policies`` merges them with the service-level
defaults.

Simplifications: no ``case_sensitive``/``ignore_uri_case``, query-parameter,
authority or ``withoutHeaders`` matchers; no redirects or rewrites; one mirror
per route; destinations and mirrors name versions of the destination service
only (no cross-service routing). Regexes use Python's :mod:`re`; constructs RE2 lacks (look-around,
back-references) are refused so that what is simulated can be exported.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from meshsim._exceptions import ConfigError
from meshsim.policies._model import PolicyModel, refuse, suggest
from meshsim.policies.fault import FaultPolicy, FractionalPercent
from meshsim.policies.retry import RetryPolicy
from meshsim.policies.timeout import TimeoutPolicy

__all__ = [
    "DEFAULT_VERSION",
    "StringMatch",
    "HeaderMatch",
    "RouteMatch",
    "WeightedDestination",
    "Mirror",
    "OptionalRetryPolicy",
    "Route",
    "RoutingPolicy",
    "Router",
    "cluster_name",
    "to_envoy",
    "mirror_to_envoy",
    "match_to_istio",
    "to_istio",
    "mirror_to_istio",
]

#: The name of the one implicit version of a service that declares no versions.
DEFAULT_VERSION = "default"

_RE2_UNSUPPORTED = re.compile(r"\(\?(?:=|!|<=|<!)|\\[1-9]|\(\?P=")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _compile_regex(pattern: str) -> re.Pattern[str]:
    if _RE2_UNSUPPORTED.search(pattern):
        raise refuse(
            f"regex {pattern!r} uses look-around or a back-reference, which Envoy's RE2 does not support"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise refuse(f"{pattern!r} is not a valid regex: {exc}") from None


class StringMatch(PolicyModel):
    """Match a string (uri or method) exactly, by prefix or by a full regex.

    Exactly one of the three is given. A plain string is shorthand for
    ``{exact: ...}`` (``method: GET``).

    Parameters
    ----------
    exact
        The value must equal this.
    prefix
        The value must start with this.
    regex
        The whole value must match this regular expression (RE2 subset).

    Examples
    --------
    >>> StringMatch.model_validate({"prefix": "/reviews"}).matches("/reviews/1")
    True
    >>> StringMatch.model_validate("GET").matches("POST")
    False
    """

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    _kinds: ClassVar[tuple[str, ...]] = ("exact", "prefix", "regex")
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @classmethod
    def _expand(cls, data: Any) -> Any:
        return {"exact": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        given = [k for k in self._kinds if getattr(self, k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise refuse(f"give exactly one of {', '.join(self._kinds)}; got {what}")
        if self.regex is not None:
            self._pattern = _compile_regex(self.regex)
        return self

    @property
    def kind(self) -> str:
        """Which matcher is set: ``"exact"``, ``"prefix"``, ``"regex"`` (or ``"present"``)."""
        for k in self._kinds:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("unreachable: validated model has one matcher")

    def predicate(self) -> Callable[[str], bool]:
        """A fast ``str -> bool`` function equivalent to :meth:`matches`."""
        if self.exact is not None:
            exact = self.exact
            return lambda v: v == exact
        if self.prefix is not None:
            return _startswith(self.prefix)
        pattern = self._pattern
        assert pattern is not None
        return lambda v: pattern.fullmatch(v) is not None

    def matches(self, value: str) -> bool:
        """Whether ``value`` passes this matcher."""
        return self.predicate()(value)

    def envoy_string_match(self) -> dict[str, Any]:
        """Envoy ``type.matcher.v3.StringMatcher``."""
        if self.regex is not None:
            return {"safe_regex": {"regex": self.regex}}
        if self.prefix is not None:
            return {"prefix": self.prefix}
        return {"exact": self.exact}


def _startswith(prefix: str) -> Callable[[str], bool]:
    return lambda v: v.startswith(prefix)


class HeaderMatch(StringMatch):
    """Match one request header: ``exact``, ``prefix``, ``regex`` or ``present``.

    Parameters
    ----------
    present
        ``true``: the header must be there (any value); ``false``: it must be
        absent (Envoy ``present_match: false``).

    Notes
    -----
    A missing header never passes ``exact``, ``prefix`` or ``regex``.
    """

    present: bool | None = None

    _kinds: ClassVar[tuple[str, ...]] = ("exact", "prefix", "regex", "present")

    def header_predicate(self) -> Callable[[str | None], bool]:
        """A fast ``value-or-None -> bool`` function."""
        if self.present is not None:
            want = self.present
            return lambda v: (v is not None) is want
        inner = self.predicate()
        return lambda v: v is not None and inner(v)

    def matches(self, value: str | None) -> bool:  # type: ignore[override]
        """Whether a header value (``None`` if absent) passes."""
        return self.header_predicate()(value)

    def envoy_header_matcher(self, name: str) -> dict[str, Any]:
        """Envoy ``config.route.v3.HeaderMatcher``."""
        if self.present is not None:
            return {"name": name, "present_match": self.present}
        return {"name": name, "string_match": self.envoy_string_match()}


def _header_check(
    name: str, pred: Callable[[str | None], bool]
) -> Callable[[str, str, Mapping[str, str]], bool]:
    return lambda p, meth, h: pred(h.get(name))


_RE2_SPECIAL = frozenset(".^$|?*+()[]{}\\")


def _re2_escape(text: str) -> str:
    """``text`` as a literal in a regex both RE2 and Python read alike (only metacharacters escaped)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def _digit_class(lo: str, hi: str) -> str:
    return lo if lo == hi else f"[{lo}-{hi}]"


def _same_length_patterns(lo: str, hi: str) -> list[str]:
    """Regexes whose union is the decimal strings from ``lo`` to ``hi`` (equal lengths, ``lo <= hi``)."""
    n = len(lo)
    if lo == hi:
        return [lo]
    if n == 1:
        return [_digit_class(lo, hi)]
    rest = n - 1
    any_rest = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]"
    if lo[1:] == "0" * rest and hi[1:] == "9" * rest:
        return [_digit_class(lo[0], hi[0]) + any_rest]
    if lo[0] == hi[0]:
        return [lo[0] + p for p in _same_length_patterns(lo[1:], hi[1:])]
    out = [lo[0] + p for p in _same_length_patterns(lo[1:], "9" * rest)]
    if int(hi[0]) - int(lo[0]) > 1:
        out.append(_digit_class(str(int(lo[0]) + 1), str(int(hi[0]) - 1)) + any_rest)
    out += [hi[0] + p for p in _same_length_patterns("0" * rest, hi[1:])]
    return out


def _natural_patterns(lo: int, hi: int) -> list[str]:
    """Regexes for the canonical decimal forms of the integers ``lo..hi`` (``0 <= lo <= hi``)."""
    out: list[str] = []
    while lo <= hi:
        top = min(hi, 10 ** len(str(lo)) - 1)  # the largest number with as many digits as lo
        out += _same_length_patterns(str(lo), str(top))
        lo = top + 1
    return out


def _int_range_regex(start: int, end: int) -> str:
    """A regex (RE2 and Python) that fully matches the decimal integers in ``[start, end)``.

    Envoy's header ``range_match`` reads the value as a signed integer and
    matches ``start <= value < end``; this is that set, written the canonical
    way (no ``+``, no leading zeros, ``0`` not ``-0``).

    Examples
    --------
    >>> _int_range_regex(5, 12)
    '(?:[5-9]|1[0-1])'
    >>> import re; [v for v in ("-1", "0", "7", "19", "20") if re.fullmatch(_int_range_regex(-1, 20), v)]
    ['-1', '0', '7', '19']
    """
    if end <= start:
        raise ValueError(f"an empty range [{start}, {end})")
    last = end - 1
    parts: list[str] = []
    if start < 0:
        neg = _natural_patterns(max(1, -last), -start)
        parts.append("-(?:" + "|".join(neg) + ")" if len(neg) > 1 else "-" + neg[0])
    if last >= 0:
        parts += _natural_patterns(max(0, start), last)
    return "(?:" + "|".join(parts) + ")"


_APP_MESH_HEADER_KINDS = ("exact", "prefix", "suffix", "regex", "range")
_APP_MESH_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _app_mesh_header(match: Any, where: str) -> dict[str, Any]:
    """An App Mesh ``HeaderMatchMethod`` -> a :class:`HeaderMatch` mapping (no match: present)."""
    if match is None:
        return {"present": True}
    if not isinstance(match, Mapping) or len(match) != 1 or next(iter(match)) not in _APP_MESH_HEADER_KINDS:
        raise refuse(f"{match!r} must have exactly one of {', '.join(_APP_MESH_HEADER_KINDS)}", where)
    (kind, value), = match.items()
    if kind == "range":
        ok = isinstance(value, Mapping) and set(value) == {"start", "end"} and all(
            isinstance(value[k], int) and not isinstance(value[k], bool) for k in ("start", "end"))
        if not ok or value["end"] <= value["start"]:
            raise refuse(f"range {value!r} must be {{start: N, end: M}} with integers start < end", f"{where}.range")
        return {"regex": _int_range_regex(value["start"], value["end"])}
    if not isinstance(value, str) or (not value and kind != "exact"):
        raise refuse(f"{kind} {value!r} must be a non-empty string", f"{where}.{kind}")
    if kind == "suffix":
        return {"regex": ".*" + _re2_escape(value)}
    return {kind: value}


class RouteMatch(PolicyModel):
    """One match entry of a route; every condition given must pass (AND).

    Parameters
    ----------
    uri
        :class:`StringMatch` on the request path (also accepted as ``path``).
    headers
        Header name -> :class:`HeaderMatch`. Names are case-insensitive and
        stored lower-case; a plain string value is an exact match.
    method
        :class:`StringMatch` on the HTTP method; ``GET`` means ``{exact: GET}``.
    """

    uri: StringMatch | None = None
    headers: dict[str, HeaderMatch] = Field(default_factory=dict)
    method: StringMatch | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {"path": "uri"}

    @field_validator("headers", mode="before")
    @classmethod
    def _lower_names(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out: dict[Any, Any] = {}
        for name, match in value.items():
            if isinstance(name, str) and name.startswith(":"):
                raise refuse(f"pseudo-header {name!r} cannot be matched under headers; use method or uri")
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise refuse(f"{name!r} is not a header name")
            if name.lower() in out:
                raise refuse(f"header {name!r} is given twice (names are case-insensitive)")
            out[name.lower()] = match
        return out

    @classmethod
    def from_app_mesh(cls, match: Mapping[str, Any] | None, *, kind: str = "http") -> RouteMatch:
        """The Envoy route match App Mesh writes for a route's ``match`` block.

        Parameters
        ----------
        match
            An App Mesh ``HttpRouteMatch`` (``kind`` ``"http"``, also for
            ``http2Route``) or ``GrpcRouteMatch`` (``kind`` ``"grpc"``);
            ``None`` matches every request.
        kind
            ``"http"`` or ``"grpc"``.

        Notes
        -----
        HTTP: ``prefix`` → ``uri.prefix``; ``path.exact``/``path.regex`` →
        ``uri.exact``/``uri.regex`` (the path without its query string, as
        Envoy's ``path``/``safe_regex``); ``method`` → ``method``;
        ``headers[]{name, match{exact, prefix, suffix, regex, range{start,
        end}}}`` → header matchers (``suffix`` as the regex ``.*<suffix>``,
        ``range`` as a regex over the decimal integers in ``[start, end)``, as
        Envoy's ``range_match``; no ``match``: the header must be present);
        ``scheme: http`` matches every request (meshsim's requests are plain
        HTTP). gRPC: ``serviceName``/``methodName`` → ``uri`` prefix
        ``/<service>/`` or exact ``/<service>/<method>`` (gRPC's request path);
        ``metadata`` as HTTP headers.

        Refused, with the field named: ``invert`` (meshsim's router has no
        negated matcher), ``queryParameters`` (no query matcher), ``scheme:
        https`` (the route could never match), ``port`` (listener selection:
        meshsim services have one port).

        Examples
        --------
        >>> m = RouteMatch.from_app_mesh({"prefix": "/api", "headers": [
        ...     {"name": "x-canary", "match": {"exact": "on"}}], "method": "GET"})
        >>> m.uri.prefix, m.headers["x-canary"].exact, m.method.exact
        ('/api', 'on', 'GET')
        >>> RouteMatch.from_app_mesh({"headers": [{"name": "v", "match": {"range": {"start": 5, "end": 12}}}]}
        ...                          ).matches("/", "GET", {"v": "11"})
        True
        >>> RouteMatch.from_app_mesh({"serviceName": "pkg.Svc", "methodName": "Get"}, kind="grpc").uri.exact
        '/pkg.Svc/Get'
        """
        if match is None:
            return cls()
        if not isinstance(match, Mapping):
            raise refuse(f"an App Mesh route match is a mapping; got {match!r}")
        if kind not in ("http", "grpc"):
            raise ValueError(f"kind must be 'http' or 'grpc'; got {kind!r}")
        grpc = kind == "grpc"
        allowed = (("serviceName", "methodName", "metadata", "port") if grpc
                   else ("prefix", "path", "headers", "method", "scheme", "queryParameters", "port"))
        for key in match:
            if key not in allowed:
                raise refuse(
                    f"unknown key {key!r} in App Mesh {kind} route match{suggest(key, allowed)} "
                    f"(allowed: {', '.join(allowed)})",
                    str(key),
                )
        if "port" in match:
            raise refuse(
                "port selects one of several listeners; meshsim services have one port: "
                "leave it out to import the route", "port",
            )
        out: dict[str, Any] = {}
        if grpc:
            service, method = match.get("serviceName"), match.get("methodName")
            if method is not None and service is None:
                raise refuse("methodName needs serviceName (App Mesh's rule)", "methodName")
            for key, value in (("serviceName", service), ("methodName", method)):
                if value is not None and (not isinstance(value, str) or not value or "/" in value):
                    raise refuse(f"{value!r} is not a gRPC {key[:-4]} name", key)
            if service is not None:
                out["uri"] = {"exact": f"/{service}/{method}"} if method is not None else {"prefix": f"/{service}/"}
            headers_key = "metadata"
        else:
            if "queryParameters" in match:
                raise refuse(
                    "meshsim's router has no query-parameter matcher; remove queryParameters to import the route",
                    "queryParameters",
                )
            prefix, path = match.get("prefix"), match.get("path")
            if prefix is not None and path is not None:
                raise refuse("give prefix or path, not both", "path")
            if prefix is not None:
                if not isinstance(prefix, str) or not prefix.startswith("/"):
                    raise refuse(f"prefix {prefix!r} must start with '/'", "prefix")
                out["uri"] = {"prefix": prefix}
            elif path is not None:
                if not isinstance(path, Mapping) or len(path) != 1 or next(iter(path)) not in ("exact", "regex"):
                    raise refuse(f"path {path!r} must be {{exact: /p}} or {{regex: ...}}", "path")
                out["uri"] = dict(path)
            method = match.get("method")
            if method is not None:
                if method not in _APP_MESH_METHODS:
                    raise refuse(f"method {method!r} is not one of {', '.join(_APP_MESH_METHODS)}", "method")
                out["method"] = {"exact": method}
            scheme = match.get("scheme")
            if scheme is not None and scheme != "http":
                allowed_schemes = "http" if scheme != "https" else "http; meshsim's requests are plain HTTP, so the route would never match"
                raise refuse(f"scheme {scheme!r} is not supported (allowed: {allowed_schemes})", "scheme")
            headers_key = "headers"
        headers = match.get(headers_key)
        if headers is not None:
            if not isinstance(headers, (list, tuple)):
                raise refuse(f"{headers_key} must be a list of {{name, match, invert}}", headers_key)
            out["headers"] = hdrs = {}
            for i, h in enumerate(headers):
                where = f"{headers_key}[{i}]"
                if not isinstance(h, Mapping) or "name" not in h:
                    raise refuse(f"{h!r} is not {{name, match, invert}}", where)
                extra = [k for k in h if k not in ("name", "match", "invert")]
                if extra:
                    raise refuse(f"unknown key {extra[0]!r}{suggest(extra[0], ('name', 'match', 'invert'))} "
                                 "(allowed: name, match, invert)", f"{where}.{extra[0]}")
                if h.get("invert"):
                    raise refuse("invert is not supported: meshsim's router has no negated header matcher",
                                 f"{where}.invert")
                name = h["name"]
                if not isinstance(name, str) or name.lower() in hdrs:
                    raise refuse(f"header {name!r} is not a name, or is given twice", f"{where}.name")
                hdrs[name.lower()] = _app_mesh_header(h.get("match"), f"{where}.match")
        return cls.model_validate(out)

    @property
    def is_catch_all(self) -> bool:
        """True when the entry has no condition at all."""
        return self.uri is None and not self.headers and self.method is None

    def predicate(self) -> Callable[[str, str, Mapping[str, str]], bool] | None:
        """A fast ``(path, method, headers) -> bool``; ``None`` when it always passes."""
        checks: list[Callable[[str, str, Mapping[str, str]], bool]] = []
        if self.method is not None:
            m = self.method.predicate()
            checks.append(lambda p, meth, h: m(meth))
        if self.uri is not None:
            u = self.uri.predicate()
            if self.uri.prefix is not None:
                checks.append(lambda p, meth, h: u(p))
            else:
                checks.append(lambda p, meth, h: u(p.partition("?")[0]))
        for name, hm in self.headers.items():
            checks.append(_header_check(name, hm.header_predicate()))
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]
        every = tuple(checks)

        def all_pass(path: str, method: str, headers: Mapping[str, str]) -> bool:
            for check in every:
                if not check(path, method, headers):
                    return False
            return True

        return all_pass

    def matches(self, path: str, method: str, headers: Mapping[str, str]) -> bool:
        """Whether a request passes this entry (header names lower-case)."""
        pred = self.predicate()
        return True if pred is None else pred(path, method, headers)

    def envoy_match(self) -> dict[str, Any]:
        """Envoy ``config.route.v3.RouteMatch``."""
        out: dict[str, Any]
        if self.uri is None or self.uri.prefix is not None:
            out = {"prefix": self.uri.prefix if self.uri is not None else "/"}
        elif self.uri.exact is not None:
            out = {"path": self.uri.exact}
        else:
            out = {"safe_regex": {"regex": self.uri.regex}}
        headers = [hm.envoy_header_matcher(name) for name, hm in sorted(self.headers.items())]
        if self.method is not None:
            headers.insert(0, {"name": ":method", "string_match": self.method.envoy_string_match()})
        if headers:
            out["headers"] = headers
        return out


class WeightedDestination(PolicyModel):
    """One version of the destination service and its share of the route.

    Parameters
    ----------
    version
        The version (Istio subset) name; ``"default"`` for a service that
        declares no versions.
    weight
        Integer >= 0; a version's share is ``weight / sum(weights)``.
    host
        The Istio ``destination.host`` as written, if that spelling was used
        (checked against the destination service by the scenario).

    Notes
    -----
    Istio spelling ``{destination: {host: reviews, subset: v1, port: ...},
    weight: 90}`` is accepted; ``port`` is read and ignored (meshsim
    services have one port).
    """

    version: str = DEFAULT_VERSION
    weight: int = Field(default=100, ge=0)
    host: str | None = None

    _synonyms: ClassVar[Mapping[str, str]] = {"subset": "version"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"version": data}
        if isinstance(data, Mapping) and "destination" in data:
            dest = data["destination"]
            if not isinstance(dest, Mapping):
                raise refuse(f"destination must be a mapping with host and subset; got {dest!r}")
            for key in dest:
                if key not in ("host", "subset", "port"):
                    hint = suggest(key, ["host", "subset", "port"])
                    raise refuse(f"unknown key {key!r} in destination{hint} (allowed: host, subset, port)")
            out = {k: v for k, v in data.items() if k != "destination"}
            if "host" in dest:
                out["host"] = dest["host"]
            if dest.get("subset") is not None:
                out["version"] = dest["subset"]
            return out
        return data


#: Envoy's (and Istio's) mirror share when none is given: every request.
_ALL = FractionalPercent(numerator=100, denominator="HUNDRED")


class Mirror(PolicyModel):
    """Request mirroring: a copy of a share of the route's requests goes to a version.

    Envoy ``RouteAction.request_mirror_policies`` (Istio ``mirror`` with
    ``mirrorPercentage``). The copy is fire-and-forget: its response is
    discarded and it never affects the original request.

    Parameters
    ----------
    version
        The version (Istio *subset*) that receives the copies; ``"default"``
        for a service that declares no versions. It must exist (checked by
        the scenario).
    host
        Istio's ``mirror.host`` as written; it must be the destination
        service itself (checked by the scenario).
    percentage
        Share of the route's requests mirrored
        (:class:`~meshsim.policies.fault.FractionalPercent`: ``10``, ``"10%"``,
        Istio ``{value: 10}``); default **100 %**, as in Envoy and Istio.

    Notes
    -----
    Written ``mirror: v3``, ``mirror: {version: v3, percentage: 10}`` or
    Istio's ``mirror: {host: reviews, subset: v3}`` with ``mirrorPercentage:
    {value: 10}`` (or the deprecated integer ``mirror_percent``) next to it on
    the route; ``port`` is read and ignored. Envoy decides per request with
    ``random % denominator < numerator`` (:meth:`enabled`).

    References
    ----------
    ``envoy.config.route.v3.RouteAction.RequestMirrorPolicy``
    (api/envoy/config/route/v3/route_components.proto); Istio
    ``pilot/pkg/networking/core/route/route.go`` (``mirrorPercent``).

    Examples
    --------
    >>> m = Mirror.model_validate({"host": "reviews", "subset": "v3", "percentage": {"value": 10}})
    >>> m.version, m.fraction
    ('v3', 0.1)
    >>> Mirror.model_validate("v3").fraction
    1.0
    """

    version: str = DEFAULT_VERSION
    host: str | None = None
    percentage: FractionalPercent = _ALL

    _synonyms: ClassVar[Mapping[str, str]] = {"subset": "version"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"version": data}
        if isinstance(data, Mapping) and "port" in data:
            return {k: v for k, v in data.items() if k != "port"}
        return data

    @property
    def fraction(self) -> float:
        """The mirrored share as a fraction in [0, 1]."""
        return self.percentage.percent / 100.0

    def enabled(self, u: float) -> bool:
        """Whether a request with uniform draw ``u`` in [0, 1) is mirrored (Envoy's rule)."""
        return self.percentage.enabled(u)


def _no_retry_policy(value: Any) -> Any:
    """Istio ``retries: {attempts: 0}``: no retry policy at all, as Istio's ``ConvertPolicy`` writes."""
    if isinstance(value, Mapping) and set(value) == {"attempts"}:
        attempts = value["attempts"]
        if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts <= 0:
            return None
    return value


#: A ``retries`` block: a :class:`~meshsim.policies.retry.RetryPolicy` in any of its spellings, or
#: ``None``. Istio's ``{attempts: 0}`` (retries explicitly off) is read as ``None``.
OptionalRetryPolicy = Annotated[RetryPolicy | None, BeforeValidator(_no_retry_policy)]


def istio_hash_drops_previous_hosts(retries: Any) -> bool:
    """Whether Istio drops the previous-hosts predicate of this ``retries`` block on a hashing route.

    Istio's ``ConvertPolicy(in, hashPolicy)`` leaves the previous-hosts retry
    predicate out when the route's destination uses consistent hashing, unless
    the block sets ``retryIgnorePreviousHosts`` itself. ``retries`` is the block
    as written; only Istio's spelling (it has ``attempts``) is concerned.

    Examples
    --------
    >>> istio_hash_drops_previous_hosts({"attempts": 3}), istio_hash_drops_previous_hosts({"num_retries": 3})
    (True, False)
    >>> istio_hash_drops_previous_hosts({"attempts": 3, "retryIgnorePreviousHosts": True})
    False
    """
    if not isinstance(retries, Mapping) or "attempts" not in retries:
        return False
    return retries.get("retryIgnorePreviousHosts") is None


def _expand_route_destinations(value: Any) -> Any:
    """``route:`` in any accepted spelling -> a list of destination mappings."""
    if value is None or (isinstance(value, (Mapping, list, tuple)) and not value):
        raise refuse("route is empty; name a version (route: v1) or weights (route: {v1: 90, v2: 10})")
    if isinstance(value, str):
        return [{"version": value, "weight": 100}]
    if isinstance(value, Mapping):
        if "destination" in value or "version" in value or "subset" in value:
            return [value]
        return [{"version": k, "weight": w} for k, w in value.items()]
    if isinstance(value, Sequence):
        items = list(value)
        if len(items) > 1:
            for i, item in enumerate(items):
                if not (isinstance(item, Mapping) and "weight" in item):
                    raise refuse(
                        f"destination [{i}] {item!r} has no weight; "
                        "give every destination a weight when a route has several"
                    )
        return items
    return value


class Route(PolicyModel):
    """One HTTP route: when it matches, and how it splits traffic over versions.

    Parameters
    ----------
    name
        Optional route name (Envoy ``Route.name``).
    match
        List of :class:`RouteMatch`; the route matches if **any** entry
        matches (OR). Empty or absent: it matches every request. A single
        mapping is accepted for a one-entry list.
    destinations
        The weighted versions, written under the key ``route``: a version
        name (``route: v1``, weight 100), a mapping ``{v1: 90, v3: 10}``, or
        Istio's list ``[{destination: {host, subset}, weight}, ...]``.
        Absent: the service's implicit ``"default"`` version.
    timeout
        :class:`~meshsim.policies.timeout.TimeoutPolicy` of this route
        (``timeout: 1s`` or ``{timeout, per_try_timeout}``).
    retries
        :class:`~meshsim.policies.retry.RetryPolicy` (Envoy, Istio or App Mesh
        spelling); Istio's ``{attempts: 0}`` means no retry policy (``None``).
    fault
        :class:`~meshsim.policies.fault.FaultPolicy` (Envoy or Istio spelling).
    mirror
        :class:`Mirror`; Istio's ``mirrorPercentage`` (and deprecated
        ``mirror_percent``) next to it sets its percentage.

    Notes
    -----
    The four policy blocks are the route's own; a block left out comes from
    the service level (``MeshPolicy``), one written, even as ``null``,
    replaces it (:attr:`policy_fields`).

    Raises
    ------
    pydantic.ValidationError
        Weights with a zero total, or a version named twice.
    """

    name: str | None = None
    match: tuple[RouteMatch, ...] = ()
    destinations: tuple[WeightedDestination, ...] = (WeightedDestination(),)
    timeout: TimeoutPolicy | None = None
    retries: OptionalRetryPolicy = None
    fault: FaultPolicy | None = None
    mirror: Mirror | None = None
    mirror_percentage: FractionalPercent | None = Field(default=None, repr=False)

    _synonyms: ClassVar[Mapping[str, str]] = {
        "route": "destinations",
        "mirrorPercentage": "mirror_percentage",
        "mirror_percent": "mirror_percentage",
    }
    _hash_drops_previous_hosts: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_spelling(cls, data: Any, handler: Any) -> Route:
        route = handler(data)
        if isinstance(data, Mapping) and istio_hash_drops_previous_hosts(data.get("retries")):
            route._hash_drops_previous_hosts = True
        return route

    @field_validator("match", mode="before")
    @classmethod
    def _one_match(cls, value: Any) -> Any:
        if value is None:
            return ()
        return [value] if isinstance(value, Mapping) else value

    @field_validator("destinations", mode="before")
    @classmethod
    def _spellings(cls, value: Any) -> Any:
        return _expand_route_destinations(value)

    @model_validator(mode="after")
    def _weights(self) -> Route:
        if not self.destinations:
            raise refuse("route has no destination; name at least one version", subpath="route")
        seen: set[str] = set()
        for d in self.destinations:
            if d.version in seen:
                raise refuse(f"version {d.version!r} is named twice", subpath="route")
            seen.add(d.version)
        if sum(d.weight for d in self.destinations) <= 0:
            shown = ", ".join(f"{d.version}: {d.weight}" for d in self.destinations)
            raise refuse(f"weights {{{shown}}} have a zero total; at least one weight must be > 0", "route")
        return self

    @model_validator(mode="after")
    def _fold_mirror_percentage(self) -> Route:
        fold_mirror_percentage(self)
        return self

    @property
    def policy_fields(self) -> frozenset[str]:
        """The route-level policy keys written on this route (even as ``null``).

        A key written here replaces the service-level block of the same name,
        whole; ``null`` means "none on this route".
        """
        return frozenset(self.model_fields_set & _ROUTE_POLICY_FIELDS)

    @property
    def hash_drops_previous_hosts(self) -> bool:
        """Whether this route's own ``retries`` was written in Istio's spelling without
        ``retryIgnorePreviousHosts`` (see :func:`istio_hash_drops_previous_hosts`)."""
        return self._hash_drops_previous_hosts

    def __eq__(self, other: object) -> bool:
        # the same fields, whatever the spelling of its retries block
        if not isinstance(other, Route):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @property
    def total_weight(self) -> int:
        """Sum of the weights (> 0)."""
        return sum(d.weight for d in self.destinations)

    def shares(self) -> dict[str, float]:
        """Version -> expected fraction of this route's requests."""
        total = self.total_weight
        return {d.version: d.weight / total for d in self.destinations}

    def matches(self, path: str, method: str, headers: Mapping[str, str]) -> bool:
        """Whether a request takes this route (ignoring earlier routes)."""
        return not self.match or any(m.matches(path, method, headers) for m in self.match)


#: The policy blocks a route (or a service, as defaults for its routes) may carry.
_ROUTE_POLICY_FIELDS = frozenset({"timeout", "retries", "fault", "mirror"})


def fold_mirror_percentage(model: Any) -> None:
    """Move Istio's ``mirrorPercentage`` (a sibling of ``mirror``) into ``mirror.percentage``.

    For a model with fields ``mirror`` and ``mirror_percentage``, during its
    after-validation (the frozen model is updated in place, once).
    """
    pct = model.mirror_percentage
    if pct is None:
        return
    mirror = model.mirror
    if mirror is None:
        raise refuse(
            "mirrorPercentage is given without mirror; give mirror: {host, subset} next to it",
            "mirror_percentage",
        )
    if "percentage" in mirror.model_fields_set:
        raise refuse(
            "the mirror share is given twice (mirror.percentage and mirrorPercentage); give it once",
            "mirror_percentage",
        )
    model.__dict__["mirror"] = mirror.model_copy(update={"percentage": pct})
    model.__dict__["mirror_percentage"] = None


class RoutingPolicy(PolicyModel):
    """The ordered routes of one destination service (first match wins).

    Accepts ``routes`` or Istio's key ``http``, or a bare list of routes.
    """

    routes: tuple[Route, ...] = ()

    _synonyms: ClassVar[Mapping[str, str]] = {"http": "routes"}

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            return {"routes": data}
        return data


# --------------------------------------------------------------------------------------------------
# runtime

_Matcher = Callable[[str, str, Mapping[str, str]], bool]
_Picker = Callable[[float], str]


def _picker(route: Route) -> _Picker:
    return _weighted_picker([(d.version, d.weight) for d in route.destinations])


def _weighted_picker(weights: Sequence[tuple[str, int]]) -> _Picker:
    live = [(v, w) for v, w in weights if w > 0]
    if len(live) == 1:
        only = live[0][0]
        return lambda u: only
    names = [v for v, _ in live]
    total = float(sum(w for _, w in live))
    cum: list[float] = []
    acc = 0
    for _, w in live:
        acc += w
        cum.append(float(acc))
    last = len(names) - 1

    def pick(u: float) -> str:
        i = bisect_right(cum, u * total)
        return names[i if i < last else last]

    return pick


def _route_matcher(route: Route) -> _Matcher | None:
    preds = []
    for m in route.match:
        p = m.predicate()
        if p is None:
            return None
        preds.append(p)
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    entries = tuple(preds)

    def any_passes(path: str, method: str, headers: Mapping[str, str]) -> bool:
        for entry in entries:
            if entry(path, method, headers):
                return True
        return False

    return any_passes


class Router:
    """Runtime route selection for one destination service.

    Parameters
    ----------
    policy
        The service's :class:`RoutingPolicy` (or a sequence of :class:`Route`).
    versions
        The versions the service has, to check every destination against.

    Raises
    ------
    ConfigError
        A route names a version not in ``versions``.

    Notes
    -----
    Matchers are compiled to closures once; routes after the first
    unconditional route can never match and are dropped. When the first
    route is unconditional (the common case), :meth:`select` is a single
    call of its weighted picker.

    Examples
    --------
    >>> policy = RoutingPolicy.model_validate({"routes": [
    ...     {"match": {"headers": {"end-user": {"exact": "jason"}}}, "route": "v2"},
    ...     {"route": {"v1": 90, "v3": 10}}]})
    >>> r = Router(policy, ["v1", "v2", "v3"])
    >>> r.select("/", "GET", {"end-user": "jason"}, 0.95)
    'v2'
    >>> r.select("/", "GET", {}, 0.5), r.select("/", "GET", {}, 0.95)
    ('v1', 'v3')
    """

    __slots__ = ("routes", "versions", "_compiled", "_first", "_weights")

    def __init__(self, policy: RoutingPolicy | Sequence[Route], versions: Sequence[str]) -> None:
        routes = tuple(policy.routes if isinstance(policy, RoutingPolicy) else policy)
        known = list(versions)
        for i, route in enumerate(routes):
            for j, d in enumerate(route.destinations):
                if d.version not in known:
                    raise ConfigError(
                        f"routes[{i}].route[{j}]: {d.version!r} is not a version; versions: {', '.join(known)}",
                        path=f"routes[{i}].route[{j}]",
                    )
        self.routes: tuple[Route, ...] = routes
        self.versions: tuple[str, ...] = tuple(known)
        compiled: list[tuple[_Matcher | None, _Picker]] = []
        for route in routes:
            matcher = _route_matcher(route)
            compiled.append((matcher, _picker(route)))
            if matcher is None:
                break
        self._compiled = tuple(compiled)
        self._first: _Picker | None = compiled[0][1] if compiled and compiled[0][0] is None else None
        self._weights: list[tuple[tuple[str, int], ...]] = [
            tuple((d.version, d.weight) for d in route.destinations) for route in routes[: len(compiled)]]

    def weights(self, route_index: int) -> dict[str, int]:
        """The current weight of each destination of route ``route_index`` (after :meth:`set_weights`)."""
        self._check_index(route_index)
        return dict(self._weights[route_index])

    def set_weights(self, route_index: int, weights: Mapping[str, int]) -> None:
        """Change the weighted destinations of route ``route_index`` from now on (progressive delivery).

        Parameters
        ----------
        route_index
            Index in :attr:`routes` (a route after the first unconditional one never matches
            and cannot be changed).
        weights
            Version -> integer weight >= 0, with a positive sum; versions must be in
            :attr:`versions`. Destinations not named get weight 0.

        Notes
        -----
        Only the route's weighted picker is replaced: matching, the route's policies and
        :attr:`routes` (the configured weights, as exported to Envoy) are unchanged, and
        :meth:`select` and :meth:`pick` cost the same as before. The same uniform draw maps
        to versions through the new cumulative weights, as Envoy's ``random % total``.

        Examples
        --------
        >>> r = Router(RoutingPolicy.model_validate({"routes": [{"route": {"v1": 100}}]}), ["v1", "v2"])
        >>> r.set_weights(0, {"v1": 90, "v2": 10})
        >>> r.select("/", "GET", {}, 0.95), r.weights(0)
        ('v2', {'v1': 90, 'v2': 10})
        """
        self._check_index(route_index)
        pairs: list[tuple[str, int]] = []
        for version, weight in weights.items():
            if version not in self.versions:
                raise ConfigError(f"set_weights: {version!r} is not a version; versions: {', '.join(self.versions)}",
                                  path=f"routes[{route_index}].route")
            if isinstance(weight, bool) or int(weight) != weight or weight < 0:
                raise ConfigError(f"set_weights: weight {weight!r} of {version!r} must be a whole number >= 0",
                                  path=f"routes[{route_index}].route")
            pairs.append((version, int(weight)))
        if sum(w for _, w in pairs) <= 0:
            raise ConfigError(f"set_weights: the weights {dict(weights)!r} must have a positive sum",
                              path=f"routes[{route_index}].route")
        picker = _weighted_picker(pairs)
        compiled = list(self._compiled)
        matcher = compiled[route_index][0]
        compiled[route_index] = (matcher, picker)
        self._compiled = tuple(compiled)
        if route_index == 0 and matcher is None:
            self._first = picker
        self._weights[route_index] = tuple(pairs)

    def _check_index(self, route_index: int) -> None:
        if not 0 <= route_index < len(self._compiled):
            raise ConfigError(f"route index {route_index!r} is out of range: this router has "
                              f"{len(self._compiled)} reachable route(s)")

    def match(self, path: str, method: str, headers: Mapping[str, str]) -> int | None:
        """Index in :attr:`routes` of the first route that matches, or ``None`` (404 ``NR``)."""
        for i, (matcher, _) in enumerate(self._compiled):
            if matcher is None or matcher(path, method, headers):
                return i
        return None

    def pick(self, route_index: int, u: float) -> str:
        """The version route ``route_index`` sends a request with uniform draw ``u`` to."""
        return self._compiled[route_index][1](u)

    def select(self, path: str, method: str, headers: Mapping[str, str], u: float) -> str | None:
        """The version that serves the request, or ``None`` when no route matches.

        Parameters
        ----------
        path
            Request path, query string included (``/reviews/1?x=2``).
        method
            HTTP method (``GET``).
        headers
            Request headers with **lower-case** names.
        u
            A uniform draw in [0, 1) from the caller's routing stream; the
            same ``u`` always gives the same version (common random numbers).
        """
        first = self._first
        if first is not None:
            return first(u)
        for matcher, pick in self._compiled:
            if matcher is None or matcher(path, method, headers):
                return pick(u)
        return None

    def __repr__(self) -> str:
        return f"Router(routes={len(self.routes)}, versions={list(self.versions)!r})"


# --------------------------------------------------------------------------------------------------
# Envoy


def cluster_name(service: str, version: str, *, port: int = 80) -> str:
    """Istio's cluster name for a version of a service.

    The implicit ``"default"`` version is the whole service (empty subset).

    Examples
    --------
    >>> cluster_name("reviews", "v1")
    'outbound|80|v1|reviews'
    >>> cluster_name("reviews", "default")
    'outbound|80||reviews'
    """
    subset = "" if version == DEFAULT_VERSION else version
    return f"outbound|{port}|{subset}|{service}"


def to_envoy(
    route: Route | RoutingPolicy,
    *,
    service: str,
    cluster_name: Callable[[str, str], str] = cluster_name,
) -> list[dict[str, Any]]:
    """Envoy v3 ``config.route.v3.Route`` messages for a route (or a whole policy).

    Parameters
    ----------
    route
        One :class:`Route`, or a :class:`RoutingPolicy` (its routes in order).
    service
        The destination service, for cluster names.
    cluster_name
        ``(service, version) -> cluster name``; default Istio's
        ``outbound|80|<version>|<service>``.

    Returns
    -------
    list of dict
        One Envoy route per match entry (Envoy has no OR inside a route; Istio
        emits one route per ``match[]`` entry, in order), at least one.
        One live destination → ``route.cluster``; several →
        ``route.weighted_clusters.clusters[{name, weight}]`` with weight-0
        destinations dropped, as Istio does.

    Examples
    --------
    >>> r = Route.model_validate({"name": "jason", "match": {"headers": {"end-user": "jason"}},
    ...                           "route": {"v2": 100}})
    >>> to_envoy(r, service="reviews")  # doctest: +NORMALIZE_WHITESPACE
    [{'name': 'jason',
      'match': {'prefix': '/', 'headers': [{'name': 'end-user', 'string_match': {'exact': 'jason'}}]},
      'route': {'cluster': 'outbound|80|v2|reviews'}}]
    """
    if isinstance(route, RoutingPolicy):
        return [er for r in route.routes for er in to_envoy(r, service=service, cluster_name=cluster_name)]
    live = [d for d in route.destinations if d.weight > 0]
    action: dict[str, Any]
    if len(live) == 1:
        action = {"cluster": cluster_name(service, live[0].version)}
    else:
        action = {
            "weighted_clusters": {
                "clusters": [{"name": cluster_name(service, d.version), "weight": d.weight} for d in live]
            }
        }
    matches = [m.envoy_match() for m in route.match] or [{"prefix": "/"}]
    out = []
    for m in matches:
        er: dict[str, Any] = {}
        if route.name is not None:
            er["name"] = route.name
        er["match"] = m
        er["route"] = action
        out.append(er)
    return out


def mirror_to_envoy(
    mirror: Mirror, *, service: str, cluster_name: Callable[[str, str], str] = cluster_name
) -> dict[str, Any]:
    """One Envoy ``RouteAction.RequestMirrorPolicy`` for a :class:`Mirror`.

    Examples
    --------
    >>> m = Mirror.model_validate({"version": "v3", "percentage": 10})
    >>> mirror_to_envoy(m, service="reviews")  # doctest: +NORMALIZE_WHITESPACE
    {'cluster': 'outbound|80|v3|reviews',
     'runtime_fraction': {'default_value': {'numerator': 10, 'denominator': 'HUNDRED'}}}
    """
    return {
        "cluster": cluster_name(service, mirror.version),
        "runtime_fraction": {"default_value": mirror.percentage.to_envoy()},
    }


# --------------------------------------------------------------------------------------------------
# Istio


def match_to_istio(match: RouteMatch) -> dict[str, Any]:
    """Istio ``HTTPMatchRequest`` for one match entry (istiod turns it back into this entry).

    ``uri``, ``method`` and ``headers`` keep their ``exact``/``prefix``/
    ``regex``. A header that must be present is ``{}`` under ``headers`` (istiod
    writes ``present_match: true`` for a ``StringMatch`` without a type), one
    that must be absent is ``{}`` under ``withoutHeaders`` (inverted presence).
    Header names are sorted, as istiod sorts the matchers.

    Examples
    --------
    >>> m = RouteMatch.model_validate({"uri": {"prefix": "/api"}, "method": "GET",
    ...                                "headers": {"x-b": {"present": False}, "x-a": "1"}})
    >>> match_to_istio(m)
    {'uri': {'prefix': '/api'}, 'method': {'exact': 'GET'}, 'headers': {'x-a': {'exact': '1'}}, 'withoutHeaders': {'x-b': {}}}
    """
    out: dict[str, Any] = {}
    if match.uri is not None:
        out["uri"] = {match.uri.kind: getattr(match.uri, match.uri.kind)}
    if match.method is not None:
        out["method"] = {match.method.kind: getattr(match.method, match.method.kind)}
    headers: dict[str, Any] = {}
    without: dict[str, Any] = {}
    for name in sorted(match.headers):
        hm = match.headers[name]
        if hm.present is True:
            headers[name] = {}
        elif hm.present is False:
            without[name] = {}
        elif hm.kind in ("exact", "prefix", "regex"):
            headers[name] = {hm.kind: getattr(hm, hm.kind)}
    if headers:
        out["headers"] = headers
    if without:
        out["withoutHeaders"] = without
    return out


def _istio_destination(host: str, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"host": host}
    if version != DEFAULT_VERSION:
        out["subset"] = version
    return out


def to_istio(route: Route, *, host: str) -> dict[str, Any]:
    """Istio ``HTTPRoute`` fields for a route's name, matches and weighted destinations.

    Parameters
    ----------
    route
        The route.
    host
        The destination service's host as the VirtualService writes it
        (``reviews`` or ``reviews.prod.svc.cluster.local``).

    Returns
    -------
    dict
        ``name``, ``match`` (one ``HTTPMatchRequest`` per entry, see
        :func:`match_to_istio`) and ``route``: one destination without a weight
        (istiod ignores it), or several with their weights (weight-0
        destinations kept; istiod drops them, as Envoy never picks them). The
        implicit ``default`` version is the whole service: no ``subset``. The
        route's policy blocks are written by their own modules.

    Examples
    --------
    >>> r = Route.model_validate({"name": "canary", "route": {"v1": 90, "v3": 10}})
    >>> to_istio(r, host="reviews")  # doctest: +NORMALIZE_WHITESPACE
    {'name': 'canary', 'route': [{'destination': {'host': 'reviews', 'subset': 'v1'}, 'weight': 90},
                                 {'destination': {'host': 'reviews', 'subset': 'v3'}, 'weight': 10}]}
    """
    out: dict[str, Any] = {}
    if route.name is not None:
        out["name"] = route.name
    if route.match:
        out["match"] = [match_to_istio(m) for m in route.match]
    if len(route.destinations) == 1:
        out["route"] = [{"destination": _istio_destination(host, route.destinations[0].version)}]
    else:
        out["route"] = [
            {"destination": _istio_destination(host, d.version), "weight": d.weight} for d in route.destinations
        ]
    return out


def mirror_to_istio(mirror: Mirror, *, host: str) -> dict[str, Any]:
    """Istio's ``mirror`` (and ``mirrorPercentage`` unless it is istiod's default of 100 %) for a route.

    Examples
    --------
    >>> mirror_to_istio(Mirror.model_validate({"version": "v3", "percentage": 5}), host="reviews")
    {'mirror': {'host': 'reviews', 'subset': 'v3'}, 'mirrorPercentage': {'value': 5.0}}
    >>> mirror_to_istio(Mirror.model_validate("v3"), host="reviews")
    {'mirror': {'host': 'reviews', 'subset': 'v3'}}
    """
    from meshsim.policies.fault import percentage_to_istio

    out: dict[str, Any] = {"mirror": _istio_destination(host, mirror.version)}
    pct = mirror.percentage
    if pct.numerator != pct.denominator_value:  # istiod's default is every request
        out["mirrorPercentage"] = percentage_to_istio(pct)
    return out
