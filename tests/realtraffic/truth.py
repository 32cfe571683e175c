"""Truth from HAProxy's own log: per-request records, connections on both sides, persistence.

The log format is `lab.HAPROXY_LOG_FORMAT` (one line per request, plus one `<BADREQ>` line per
client connection that closed without sending a request, e.g. wrk's connect probe).

Definitions follow /work/shared/DOMAIN.md:
- client-side connection: distinct client ip:port -> frontend ip:port (%ci:%cp, %fi:%fp);
- backend-side connection: distinct source ip:port -> server ip:port (%bi:%bp, %si:%sp);
- requests per connection: log lines that are requests, grouped by those keys;
- persistence, per session key: over sessions with >= 2 requests, the share whose requests all
  reached one backend; per request, the share served by its session's most-used backend
  (computed over those same sessions; `requests_all` / `requests_on_top_all` count all sessions);
  a break is a request sent to another backend than its session's previous request.
Session keys (`session_value`): `cookie:NAME` (value of NAME in the Cookie the client sent, or,
when it sent none, the value the response set on the client - so a session's first request
belongs to it), `ip` (client IP), `xff` (first hop of the first X-Forwarded-For, else the client
IP; `xff_only`: requests without X-Forwarded-For have no session), `client` (the lab's own
client identity, from the clients' records). A scenario's first key is its primary one: the
application cookie where the clients hold one (a SERVERID value names a server, so sessions
keyed by it are few and trivially persistent).
Ties a port reuse cannot separate: a key is ip:port, so two connections on the same 4-tuple in
one capture would merge; the tests check this against the SYNs in the capture.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .lab import LOG_TAG, Endpoint

ConnKey = tuple[str, int, str, int]
"""(client_ip, client_port, server_ip, server_port) of a connection, as the client saw it."""

_TOKEN_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_HASH_ESC_RE = re.compile(r"#([0-9A-Fa-f]{2})")
_BACKSLASH_RE = re.compile(r"\\(.)")


def _unquote(raw: str, *, hash_escapes: bool) -> str:
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        raw = raw[1:-1]
        raw = _BACKSLASH_RE.sub(lambda m: m.group(1), raw)
    if hash_escapes:
        raw = _HASH_ESC_RE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    return raw


def _addr(raw: str) -> tuple[str | None, int | None]:
    ip, _, port = raw.rpartition(":")
    if not ip or ip == "-" or not port.isdigit():
        return None, None
    return ip, int(port)


def _opt(value: str) -> str | None:
    return value if value not in ("", "-") else None


def cookie_value(header: str | None, name: str) -> str | None:
    """Value of cookie `name` in a Cookie header ("a=1; b=2"), or None."""
    if not header:
        return None
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k.strip() == name:
            return v.strip()
    return None


def set_cookie_value(set_cookies: Iterable[str], name: str) -> str | None:
    for sc in set_cookies:
        k, sep, v = sc.split(";", 1)[0].strip().partition("=")
        if sep and k.strip() == name:
            return v.strip()
    return None


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One HAProxy log line."""

    index: int                      # 0-based line order (= order transactions ended)
    ts: float                       # accept date, seconds since the epoch (ms resolution)
    client_ip: str
    client_port: int
    frontend_ip: str
    frontend_port: int
    backend_name: str               # HAProxy backend ("be"), or the frontend for <NOSRV>
    server: str | None              # server name; None for <NOSRV>
    server_ip: str | None
    server_port: int | None
    source_ip: str | None           # %bi: HAProxy's address on the backend connection
    source_port: int | None         # %bp
    status: int                     # -1 when no response
    termination: str                # %tsc: termination, session state, cookie client/server
    timers: tuple[int, ...]         # Th, Ti, TR, Tw, Tc, Tr, Ta (ms, -1 = not reached)
    retries: int
    bytes_in: int
    bytes_out: int
    captured_cookie: str | None     # %CC
    captured_set_cookie: str | None  # %CS (the server's, before HAProxy rewrote it)
    host: str | None
    cookie: str | None              # Cookie header as the client sent it
    xff: str | None                 # first X-Forwarded-For line as the client sent it
    set_cookies: tuple[str, ...]    # Set-Cookie headers as the client received them (first 2)
    set_cookie_count: int
    method: str | None
    uri: str | None
    version: str | None
    request_line: str

    @property
    def is_request(self) -> bool:
        """False for a connection that closed without a request (<BADREQ>, no bytes)."""
        return self.method is not None

    @property
    def t_request(self) -> float:
        """Time the request began: accept date + handshake + idle time."""
        th, ti = self.timers[0], self.timers[1]
        return self.ts + (max(th, 0) + max(ti, 0)) / 1000.0

    @property
    def client_conn(self) -> ConnKey:
        return (self.client_ip, self.client_port, self.frontend_ip, self.frontend_port)

    @property
    def backend_conn(self) -> ConnKey | None:
        if None in (self.source_ip, self.source_port, self.server_ip, self.server_port):
            return None
        return (self.source_ip, self.source_port, self.server_ip, self.server_port)  # type: ignore[return-value]


def parse_log_line(line: str, index: int) -> LogRecord | None:
    line = line.strip()
    if not line.startswith(LOG_TAG + " "):
        return None
    f = {k: v for k, v in _TOKEN_RE.findall(line[len(LOG_TAG) + 1:])}
    ci, cp = _addr(f["ci"])
    fi, fp = _addr(f["fi"])
    si, sp = _addr(f["si"])
    bi, bp = _addr(f["bi"])
    assert ci is not None and cp is not None and fi is not None and fp is not None, line
    missing = {"ts", "ci", "fi", "be", "srv", "si", "bi", "st", "tsc", "t", "r"} - set(f)
    raw_r = f.get("r", "")
    if missing or len(raw_r) < 2 or not (raw_r[0] == raw_r[-1] == '"') or not line.endswith('"'):
        raise ValueError(f"log line {index} is malformed or truncated (missing {sorted(missing)}): "
                         f"{line[:200]}...{line[-100:]}")
    request_line = _unquote(raw_r, hash_escapes=True)
    parts = request_line.split(" ")
    method = uri = version = None
    if request_line != "<BADREQ>" and len(parts) >= 2:
        method, uri = parts[0], parts[1]
        version = parts[2] if len(parts) > 2 else "HTTP/0.9"
    bytes_in, _, bytes_out = f["bytes"].partition("/")
    sc = tuple(s for s in (_opt(_unquote(f["sc1"], hash_escapes=False)),
                           _opt(_unquote(f["sc2"], hash_escapes=False))) if s)
    nsc = f.get("nsc", "")
    return LogRecord(
        index=index, ts=float(f["ts"]), client_ip=ci, client_port=cp, frontend_ip=fi,
        frontend_port=fp, backend_name=f["be"], server=None if f["srv"] == "<NOSRV>" else f["srv"],
        server_ip=si, server_port=sp, source_ip=bi, source_port=bp, status=int(f["st"]),
        termination=f["tsc"], timers=tuple(int(x) for x in f["t"].split("/")),
        retries=int(f["rc"].lstrip("+")), bytes_in=int(bytes_in), bytes_out=int(bytes_out),
        captured_cookie=_opt(_unquote(f["cc"], hash_escapes=True)),
        captured_set_cookie=_opt(_unquote(f["cs"], hash_escapes=True)),
        host=_opt(_unquote(f["host"], hash_escapes=False)),
        cookie=_opt(_unquote(f["ck"], hash_escapes=False)),
        xff=_opt(_unquote(f["xff"], hash_escapes=False)),
        set_cookies=sc, set_cookie_count=int(nsc) if nsc.isdigit() else len(sc),
        method=method, uri=uri, version=version, request_line=request_line)


def parse_haproxy_log(text: str) -> list[LogRecord]:
    """Records of the lab's log lines, in file order; other lines (HAProxy notices) ignored."""
    out: list[LogRecord] = []
    for line in text.splitlines():
        rec = parse_log_line(line, len(out))
        if rec is not None:
            out.append(rec)
    return out


# --------------------------------------------------------------------------- sessions


def session_value(rec: LogRecord, key: str, client_names: Mapping[tuple[str, int], str] | None = None
                  ) -> str | None:
    """The session a request belongs to under `key` (see module doc), or None."""
    if key == "ip":
        return rec.client_ip
    if key in ("xff", "xff_only"):
        if rec.xff:
            return rec.xff.split(",")[0].strip()
        return rec.client_ip if key == "xff" else None
    if key == "client":
        if client_names is None:
            return None
        return client_names.get((rec.client_ip, rec.client_port))
    if key.startswith("cookie:"):
        name = key.split(":", 1)[1]
        return cookie_value(rec.cookie, name) or set_cookie_value(rec.set_cookies, name)
    raise ValueError(f"unknown session key {key!r}")


@dataclass(frozen=True)
class PersistenceBreak:
    session: str
    t: float            # request start (log accept + idle), seconds since the epoch
    from_server: str
    to_server: str


@dataclass(frozen=True)
class PersistenceTruth:
    key: str
    sessions: int                   # sessions with at least one request reaching a backend
    multi_sessions: int             # ... with >= 2 such requests
    persistent_sessions: int        # ... of which all reached one backend
    requests: int                   # requests in multi-request sessions
    requests_on_top: int            # ... served by their session's most-used backend
    requests_all: int               # requests with a session and a backend
    requests_on_top_all: int
    unkeyed_requests: int           # requests with a backend but no session under this key
    breaks: tuple[PersistenceBreak, ...]
    requests_per_session: Mapping[str, Mapping[str, int]] = field(repr=False)

    @property
    def session_ratio(self) -> float | None:
        return self.persistent_sessions / self.multi_sessions if self.multi_sessions else None

    @property
    def request_ratio(self) -> float | None:
        return self.requests_on_top / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "sessions": self.sessions, "multi_sessions": self.multi_sessions,
            "persistent_sessions": self.persistent_sessions, "session_ratio": self.session_ratio,
            "requests": self.requests, "requests_on_top": self.requests_on_top,
            "request_ratio": self.request_ratio, "requests_all": self.requests_all,
            "requests_on_top_all": self.requests_on_top_all,
            "unkeyed_requests": self.unkeyed_requests,
            "breaks": [b.__dict__ for b in self.breaks],
            "requests_per_session": {s: dict(c) for s, c in self.requests_per_session.items()},
        }


def persistence(records: Iterable[LogRecord], key: str,
                client_names: Mapping[tuple[str, int], str] | None = None) -> PersistenceTruth:
    per_session: dict[str, Counter[str]] = defaultdict(Counter)
    last: dict[str, str] = {}
    breaks: list[PersistenceBreak] = []
    unkeyed = 0
    # log order = order transactions ended; a session's requests are sequential in the lab
    for rec in records:
        if not rec.is_request or rec.server is None:
            continue
        s = session_value(rec, key, client_names)
        if s is None:
            unkeyed += 1
            continue
        per_session[s][rec.server] += 1
        if s in last and last[s] != rec.server:
            breaks.append(PersistenceBreak(s, rec.t_request, last[s], rec.server))
        last[s] = rec.server
    multi = {s: c for s, c in per_session.items() if sum(c.values()) >= 2}
    return PersistenceTruth(
        key=key, sessions=len(per_session), multi_sessions=len(multi),
        persistent_sessions=sum(1 for c in multi.values() if len(c) == 1),
        requests=sum(sum(c.values()) for c in multi.values()),
        requests_on_top=sum(max(c.values()) for c in multi.values()),
        requests_all=sum(sum(c.values()) for c in per_session.values()),
        requests_on_top_all=sum(max(c.values()) for c in per_session.values()),
        unkeyed_requests=unkeyed, breaks=tuple(breaks),
        requests_per_session={s: dict(c) for s, c in per_session.items()})


# --------------------------------------------------------------------------- truth


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def conn_str(key: ConnKey) -> str:
    return f"{key[0]}:{key[1]}->{key[2]}:{key[3]}"


@dataclass(frozen=True)
class Truth:
    """Everything the log says about one recording. Counts are exact; ratios derive from them."""

    requests: int                                   # client requests (log lines with a request)
    backend_requests: int                           # of which forwarded on a backend connection
    statuses: Mapping[int, int]
    requests_per_server: Mapping[str, int]
    client_connections: Mapping[ConnKey, int]       # every client connection -> its requests (0 = none)
    backend_connections: Mapping[ConnKey, int]      # every backend connection -> its requests
    backend_connection_server: Mapping[ConnKey, str]
    client_connections_per_backend_connection: Mapping[ConnKey, int]
    persistence: Mapping[str, PersistenceTruth]
    primary_session_key: str

    @property
    def backend_connections_per_server(self) -> dict[str, int]:
        return dict(Counter(self.backend_connection_server.values()))

    @property
    def client_reuse_ratio(self) -> float | None:
        used = sum(1 for n in self.client_connections.values() if n > 0)
        return _ratio(self.requests - used, self.requests)

    @property
    def backend_reuse_ratio(self) -> float | None:
        used = sum(1 for n in self.backend_connections.values() if n > 0)
        return _ratio(self.backend_requests - used, self.backend_requests)

    @property
    def multiplexing_ratio(self) -> float | None:
        """Client-side connections (that carried requests) per backend-side connection."""
        used = sum(1 for n in self.client_connections.values() if n > 0)
        return _ratio(used, len(self.backend_connections))

    def to_json(self) -> dict[str, Any]:
        def dist(values: Iterable[int]) -> dict[str, Any]:
            v = sorted(values)
            if not v:
                return {"n": 0}
            return {"n": len(v), "sum": sum(v), "mean": sum(v) / len(v), "max": v[-1],
                    "median": v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2,
                    "share_2plus": sum(1 for x in v if x >= 2) / len(v)}

        return {
            "requests": self.requests,
            "backend_requests": self.backend_requests,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "requests_per_server": dict(sorted(self.requests_per_server.items())),
            "client_connections": len(self.client_connections),
            "client_connections_without_requests": sum(
                1 for n in self.client_connections.values() if n == 0),
            "backend_connections": len(self.backend_connections),
            "backend_connections_per_server": dict(sorted(self.backend_connections_per_server.items())),
            "requests_per_client_connection": dist(
                n for n in self.client_connections.values() if n > 0),
            "requests_per_backend_connection": dist(self.backend_connections.values()),
            "client_reuse_ratio": self.client_reuse_ratio,
            "backend_reuse_ratio": self.backend_reuse_ratio,
            "multiplexing_ratio": self.multiplexing_ratio,
            "client_connection_requests": {conn_str(k): v for k, v in self.client_connections.items()},
            "backend_connection_requests": {conn_str(k): v for k, v in self.backend_connections.items()},
            "client_connections_per_backend_connection": {
                conn_str(k): v for k, v in self.client_connections_per_backend_connection.items()},
            "primary_session_key": self.primary_session_key,
            "persistence": {k: p.to_json() for k, p in self.persistence.items()},
        }


def compute_truth(records: list[LogRecord], session_keys: Iterable[str],
                  client_names: Mapping[tuple[str, int], str] | None = None,
                  backends: Mapping[str, Endpoint] | None = None) -> Truth:
    """Truth over `records`. `session_keys`: the first is the primary one; `ip` is always added,
    and `client` when `client_names` ((ip, port) -> client name) is given."""
    keys = list(dict.fromkeys([*session_keys, "ip", *(["client"] if client_names else [])]))
    client_conns: dict[ConnKey, int] = {}
    backend_conns: dict[ConnKey, int] = {}
    backend_server: dict[ConnKey, str] = {}
    fan_in: dict[ConnKey, set[ConnKey]] = defaultdict(set)
    statuses: Counter[int] = Counter()
    per_server: Counter[str] = Counter()
    n_requests = n_backend = 0
    for rec in records:
        client_conns.setdefault(rec.client_conn, 0)
        if not rec.is_request:
            continue
        n_requests += 1
        client_conns[rec.client_conn] += 1
        statuses[rec.status] += 1
        bkey = rec.backend_conn
        if rec.server is not None:
            per_server[rec.server] += 1
            if backends is not None and rec.server in backends:
                ep = backends[rec.server]
                if (rec.server_ip, rec.server_port) != (ep.ip, ep.port):
                    raise ValueError(f"log line {rec.index}: server {rec.server} at "
                                     f"{rec.server_ip}:{rec.server_port}, lab says {ep}")
        if bkey is not None:
            n_backend += 1
            backend_conns[bkey] = backend_conns.get(bkey, 0) + 1
            backend_server[bkey] = rec.server or "?"
            fan_in[bkey].add(rec.client_conn)
    return Truth(
        requests=n_requests, backend_requests=n_backend, statuses=dict(statuses),
        requests_per_server=dict(per_server), client_connections=client_conns,
        backend_connections=backend_conns, backend_connection_server=backend_server,
        client_connections_per_backend_connection={k: len(v) for k, v in fan_in.items()},
        persistence={k: persistence(records, k, client_names) for k in keys},
        primary_session_key=keys[0])
