"""Affinity for a whole capture: session keys, backends, persistence and reuse per side.

Takes the connection and request rows the lower layers produced and fills in
each request's ``session``, ``backend``, ``side`` and ``health_check``; returns
the session, backend and break tables and ``summary["affinity"]``.

Backend of a request, first that applies:
1. a capture of both sides of a proxy: the backend of the forwarded request
   it was matched to (``matcher.py``);
2. a balancer cookie naming the server: the ``Set-Cookie`` of its response
   (the balancer sets it on the response of the server that answered), else
   the request's own cookie; server names are translated to ``ip:port``
   wherever a matched request showed which address a name stands for;
3. otherwise the server address of the connection (the capture sees the
   balancer-to-server side, or clients talking to servers directly).

Session key ``xff`` (DOMAIN.md: "the first hop of X-Forwarded-For behind
another proxy"): the first hop of the request's X-Forwarded-For when it has
one, else the address of the connection's client - a client that reaches the
balancer directly sends no X-Forwarded-For, and its own address is then the
first hop.  So every request has a session under ``xff``; requests of a user
behind an upstream proxy and of a direct client are keyed alike.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, not_
from typing import Any, Callable

from ..errors import UsageError
from ..http.headers import fields_of
from ..records import HttpExchange
from .cookies import (_unquote, choose_session_cookie, classify_cookie, observe_cookies,
                      cookie_pairs, header_backend_cookie, parse_set_cookies,
                      request_backend_cookie)
from .figures import reuse_figures
from .matcher import match_requests
from .persistence import RequestView, compute_persistence
from .roles import detect_roles, side_of
from ..request_table import RequestTable

_SERVER = itemgetter("server_ip", "server_port")
_CLIENT_IP = itemgetter("client_ip")
_HEALTH_URI = re.compile(r"health|status|ping|alive|ready|check", re.I)


@dataclass
class AffinityResult:
    summary: dict[str, Any]
    session_rows: list[dict] = field(default_factory=list)
    backend_rows: list[dict] = field(default_factory=list)
    break_rows: list[dict] = field(default_factory=list)


def _parse_key(key: str) -> tuple[str, str | None]:
    if key in ("auto", "client-ip", "xff", "tls"):
        return key, None
    for prefix in ("cookie:", "header:"):
        if key.startswith(prefix) and len(key) > len(prefix):
            return prefix[:-1], key[len(prefix):]
    raise UsageError(f"--session-key {key!r}: expected auto, cookie:NAME, client-ip, xff, "
                     f"header:NAME or tls")


def _first_hop(xff: str | None) -> str | None:
    if not xff:
        return None
    return xff.split(",", 1)[0].strip() or None


def _xff_client(xff: str | None, client_ip: str | None) -> str | None:
    """Session under ``--session-key xff``: the first X-Forwarded-For hop, else the
    connection's client address (a direct client sends no X-Forwarded-For)."""
    return _first_hop(xff) or client_ip


def _first_value(header: str | None, name: str) -> str | None:
    """The value of the first ``name`` pair of a Cookie header (as `cookie_pairs` would
    read it), found with C-level searches: no pair before or after it is read."""
    if not header:
        return None
    if name and name == name.strip() and ";" not in name and "=" not in name:
        i = header.find(name)
        while i >= 0:
            start = header.rfind(";", 0, i) + 1
            after = i + len(name)
            end = header.find(";", after)
            if end < 0:
                end = len(header)
            eq = header.find("=", after, end)
            before, between = header[start:i], header[after:eq]
            if eq >= 0 and (not before or before.isspace()) and \
                    (not between or between.isspace()):
                return _unquote(header[eq + 1:end])
            i = header.find(name, i + 1)
        return None
    for n, v in cookie_pairs(header):   # a name no pair of a header can have, or ""
        if n == name:
            return v
    return None



def _set_cookie_value(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for n, v, _attrs in parse_set_cookies(header):
        if n == name and v:
            return v
    return None


def _cookie_session(cookie: str | None, set_cookie: str | None,
                    name: str) -> tuple[str | None, str | None]:
    """(session, cause hint) under ``--session-key cookie:NAME``: the request's cookie,
    else the one its response set (the request then went without: "cookie-missing")."""
    v = _first_value(cookie, name)
    hint = None
    if v is None:
        v = _set_cookie_value(set_cookie, name)
        hint = "cookie-missing"
    return (_session_value(name, v) if v else None), hint


def _session_value(name: str, value: str) -> str:
    info = classify_cookie(name, value)
    return info.session_value if info is not None else value


def _cookie_backend(e: HttpExchange) -> str | None:
    """The server a balancer cookie says served this request (response first)."""
    return _cookie_backend_of((e.set_cookie, e.cookie))


def _cookie_backend_of(headers: tuple[str | None, str | None]) -> str | None:
    """`_cookie_backend` of a request's (Set-Cookie of its response, Cookie)."""
    set_cookie, cookie = headers
    if set_cookie:
        pairs = [(n, v) for n, v, _ in parse_set_cookies(set_cookie) if v]
        info = request_backend_cookie(pairs)
        if info is not None:
            return info.backend_label
    if cookie:
        info = header_backend_cookie(cookie)
        if info is not None:
            return info.backend_label
    return None


class _Memo(dict):
    """``fn(key)`` for each distinct key, computed on first use: ``map(memo.__getitem__,
    keys)`` then reads a column of repeated values (a session repeats its headers) in C."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.fn(key)
        return value


def _is_health_check(e: HttpExchange) -> bool:
    return e.method == "OPTIONS" or bool(_HEALTH_URI.search(e.uri or ""))


def attribute(conns: list[dict], reqs: RequestTable,
              session_key: str = "auto", frontend: list[str] | tuple[str, ...] = (),
              backend_net: list[str] | tuple[str, ...] = ()) -> AffinityResult:
    """Fill ``reqs``' session, backend, side and health_check columns and each
    connection's ``side``; return the affinity tables and summary."""
    kind, arg = _parse_key(session_key)
    roles = detect_roles(conns, frontend, backend_net)
    conn_by_id = {c["conn_id"]: c for c in conns}
    notes: list[str] = []
    ex = reqs.exchanges
    n = len(ex)
    # (a row is written only where its side changes: rows begin with side "", and after
    # a parallel run a forked child reads them while this runs - each row written costs a
    # copied page then, 0.5 s on 500k connections)
    two_sided = roles.two_sided
    for c in conns:
        s = side_of(c, roles) if two_sided else ""  # (side_of would say "" for each)
        if c.get("side") != s:
            c["side"] = s
    if two_sided:
        side = [conn_by_id[e.conn_id]["side"] for e in ex]
        client_side = [i for i in range(n) if side[i] == "client"]
        backend_side = [i for i in range(n) if side[i] == "backend"]
    else:
        side, client_side, backend_side = [""] * n, [], []
    reqs.side = side
    health, backend, session = reqs.health_check, reqs.backend, reqs.session

    conn_ids, cookies, set_cookies, xffs, ts_requests = reqs.exchange_columns(
        "conn_id", "cookie", "set_cookie", "xff", "ts_request")
    # conn_id -> "ip:port" of its server, for the connections with requests (each server
    # formatted once)
    with_requests = list(dict.fromkeys(conn_ids))
    server = dict(zip(with_requests, map(
        _Memo(lambda a: _hostport(*a)).__getitem__,
        map(_SERVER, map(conn_by_id.__getitem__, with_requests))))).__getitem__
    del with_requests

    # 1. both sides of a proxy: match client requests to forwarded ones
    match_stats = None
    if client_side and backend_side:
        # the proxy dispatched a connection's first request when it began to connect
        dispatch: dict[int, int] = {}
        for i in backend_side:
            e = ex[i]
            first = conn_by_id[e.conn_id]["first_ts"]
            if e.depth == 1 and first is not None and e.ts_request is not None \
                    and first <= e.ts_request:
                dispatch[i] = first
        # (parsed here, not through the exchanges' cached .response_headers: the cache
        # would keep a dict of every response's fields for as long as the exchanges)
        resp_headers = {i: fields_of(ex[i].response_head)
                        for i in (*client_side, *backend_side)}
        mapping, match_stats = match_requests([reqs.row(i) for i in client_side],
                                              [reqs.row(i) for i in backend_side],
                                              response_headers=resp_headers,
                                              dispatch_ns=dispatch)
        matched_backend = set(mapping.values())
        for i in backend_side:
            backend[i] = server(ex[i].conn_id)
            if i not in matched_backend and _is_health_check(ex[i]):
                health[i] = True
        names: dict[str, str] = {}
        for ci, bi in mapping.items():
            backend[ci] = backend[bi]
            label = _cookie_backend(ex[ci])
            if label is not None:
                names.setdefault(label, backend[bi])  # type: ignore[arg-type]
        for ci in client_side:
            if backend[ci] is None:
                label = _cookie_backend(ex[ci])
                if label is not None:
                    backend[ci] = names.get(label, label)
        if match_stats.unmatched_no_candidate:
            notes.append(f"{match_stats.unmatched_no_candidate} client requests had no "
                         f"forwarded request with the same method and URI in time; their "
                         f"backend comes from a cookie or stays unknown")
    elif client_side and not backend_side:
        notes.append("the capture shows the client side of the balancer only: backends "
                     "come from balancer cookies")
    if None in backend:
        # the rest: a balancer cookie, else (not on the client side) the connection's server
        labels = map(_Memo(_cookie_backend_of).__getitem__, zip(set_cookies, cookies))
        backend[:] = [b if b is not None else label if label is not None or s == "client"
                      else server(cid) for b, label, s, cid in zip(backend, labels, side,
                                                                    conn_ids)]

    # 2. the requests that make sessions: client side of a proxy, else all but health checks
    if client_side:
        sess_reqs = client_side
    else:
        sess_reqs = [i for i in range(n) if not health[i]]
        if backend_side:
            sess_reqs = [i for i in sess_reqs if not _is_health_check(ex[i])]
            for i in backend_side:
                if _is_health_check(ex[i]):
                    health[i] = True

    # 3. the session key. Columns of the session requests, whole lists where those are
    # all (what each request needs is read once per distinct value: _Memo)
    every = len(sess_reqs) == n

    def pick(col: list[Any]) -> list[Any]:
        return col if every else [col[i] for i in sess_reqs]

    s_cookies, s_xffs, s_side = pick(cookies), pick(xffs), pick(side)
    reason = ""
    if kind == "auto":
        name, why = choose_session_cookie(observe_cookies(s_cookies, keys_only=True))
        if name is not None:
            kind, arg, reason = "cookie", name, why
        elif sum(map(bool, s_xffs)) * 2 > len(sess_reqs) > 0:
            kind = "xff"
            reason = ("no session cookie found; most requests carry X-Forwarded-For, so its "
                      "first hop names the client (the connection's client address where a "
                      "request has none)" + why.partition("client address")[2])
        else:
            kind, reason = "client-ip", why
    key_label = f"{kind}:{arg}" if arg else kind
    if kind == "tls":
        notes.append("--session-key tls groups TLS connections; HTTP requests inside TLS "
                     "are not visible")
    client_ips = list(map(_CLIENT_IP, map(conn_by_id.__getitem__, pick(conn_ids))))
    # the address a request counts for: a forwarded one's first X-Forwarded-For hop
    addrs = client_ips if "backend" not in s_side else [
        _first_hop(x) if sd == "backend" and x else ip
        for ip, x, sd in zip(client_ips, s_xffs, s_side)]
    hints: list[str | None] = [None] * len(sess_reqs)
    if kind == "cookie":
        def by_cookies(k: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
            return _cookie_session(k[0], k[1], arg)  # type: ignore[arg-type]
        got = list(map(_Memo(by_cookies).__getitem__,
                       zip(s_cookies, pick(set_cookies))))
        sessions = [g[0] for g in got]
        hints = [g[1] for g in got]
        del got
    elif kind == "client-ip":
        sessions = addrs
    elif kind == "xff":
        sessions = list(map(_xff_client, s_xffs, client_ips))
    elif kind == "header":
        sessions = [ex[i].headers.get(arg.lower()) for i in sess_reqs]  # type: ignore[union-attr]
    else:
        sessions = [None] * len(sess_reqs)
    # why a session might change backend: its balancer cookie went missing or changed
    # since its previous request (none can when no request sends a balancer cookie)
    nows = list(map(_Memo(_balancer_label).__getitem__, s_cookies))
    if any(nows):
        last_balancer: dict[str, str] = {}  # session -> balancer cookie its previous request sent
        for k, (sess, hint, now) in enumerate(zip(sessions, hints, nows)):
            if sess is not None and hint is None:
                hints[k] = _balancer_cookie_hint(now, sess, last_balancer)
    if every:
        session[:] = sessions
        reqs.client_addr[:] = addrs
    else:
        for i, sess, addr in zip(sess_reqs, sessions, addrs):
            session[i] = sess
            reqs.client_addr[i] = addr
    # The views are where this function holds the most: the per-request lists they do not
    # need go first, and the rest after them (at 5M packets about 20 MB of that peak)
    del cookies, set_cookies, xffs, s_cookies, s_xffs, client_ips, nows
    views = list(map(RequestView, sess_reqs, (t or 0 for t in pick(ts_requests)),
                     sessions, pick(backend), (a or "" for a in addrs), hints))
    del ts_requests, addrs, sessions, hints
    tls_figures = None
    if kind == "tls":
        views, tls_figures = _tls_views(conns)
    result = compute_persistence(views)

    # 4. reuse per side, multiplexing, per-backend connections
    sides: dict[str, Any] = {}
    per_conn = Counter(conn_ids if not any(health) else compress(conn_ids, map(not_, health)))
    for which in ("client", "backend") if roles.two_sided else ():
        counts = [per_conn.get(c["conn_id"], 0) for c in conns if c["side"] == which]
        if counts:
            fig = reuse_figures(counts)
            sides[which] = {"connections": fig["connections"],
                            "connections_with_requests": fig["connections_with_requests"],
                            "requests": fig["requests"],
                            "requests_per_connection": fig["requests_per_connection"],
                            "reuse_ratio": fig["reuse_ratio"],
                            "exchanges_saved": fig["exchanges_saved"]}
    mux = None
    if "client" in sides and "backend" in sides and sides["backend"]["connections_with_requests"]:
        mux = (sides["client"]["connections_with_requests"]
               / sides["backend"]["connections_with_requests"])
    backend_conns: dict[str, int] = {}
    for c in conns:
        if per_conn.get(c["conn_id"]) and (c["side"] == "backend" or not roles.two_sided):
            hp = server(c["conn_id"])
            backend_conns[hp] = backend_conns.get(hp, 0) + 1
    total_known = sum(b.requests for b in result.backends)
    backend_rows = []
    for b in result.backends:
        nconn = backend_conns.get(b.backend)
        backend_rows.append({
            "backend": b.backend, "requests": b.requests, "sessions": b.sessions,
            "connections": nconn,
            "requests_per_connection": (b.requests / nconn) if nconn else None,
            "share": b.requests / total_known if total_known else None,
        })
    session_rows = [{
        "session": s.session, "key": key_label, "requests": s.requests, "backends": s.backends,
        "primary_backend": s.primary_backend, "persistent": s.persistent, "breaks": s.breaks,
        "client_ips": s.client_ips, "first_ts": s.first_ts, "last_ts": s.last_ts,
    } for s in result.sessions]
    break_rows = [{
        "session": b.session, "ts": b.ts, "request_index": b.idx,
        "from_backend": b.from_backend, "to_backend": b.to_backend, "cause": b.cause,
    } for b in result.breaks]
    first_cause: dict[str, str] = {}
    for b in result.breaks:
        first_cause.setdefault(b.session, b.cause)
    top = sorted((s for s in result.sessions if s.breaks),
                 key=lambda s: (-s.breaks, -s.requests, s.session))[:10]
    backends_of: dict[str, set[str]] = {s.session: set() for s in top}
    if backends_of:
        for v in views:
            if v.backend is not None and v.session in backends_of:
                backends_of[v.session].add(v.backend)
    health_checks = sum(health)
    if not sess_reqs:
        notes.append("no HTTP requests: persistence cannot be measured from this capture")
    elif result.requests_unknown_backend:
        notes.append(f"{result.requests_unknown_backend} requests have no known backend")
    if result.requests_without_session:
        notes.append(f"{result.requests_without_session} requests carry no session key")
    summary = {
        "session_key": key_label,
        "session_key_reason": reason or f"chosen with --session-key {session_key}",
        "roles": {"proxies": sorted(roles.proxies),
                  "frontends": sorted(f"{_hostport(ip, port)}" for ip, port in roles.frontends),
                  "how": roles.how},
        "requests": len(sess_reqs),
        "sessions": len(result.sessions),
        "sessions_with_two_or_more": sum(1 for s in result.sessions if s.eligible),
        "persistence_ratio_sessions": result.persistence_ratio_sessions.value,
        "persistence_ratio_requests": result.persistence_ratio_requests.value,
        "persistence_sessions": result.persistence_ratio_sessions.to_dict(),
        "persistence_requests": result.persistence_ratio_requests.to_dict(),
        "breaks": len(result.breaks),
        "break_causes": result.break_causes,
        "by_client_ip": {
            "persistence_ratio_sessions": result.by_client_ip.sessions_ratio.value,
            "persistence_ratio_requests": result.by_client_ip.requests_ratio.value,
            "clients": result.by_client_ip.groups,
        },
        "by_client_ip_ratios": {"sessions": result.by_client_ip.sessions_ratio.to_dict(),
                                "requests": result.by_client_ip.requests_ratio.to_dict()},
        "requests_without_session": result.requests_without_session,
        "requests_unknown_backend": result.requests_unknown_backend,
        "backends": backend_rows,
        "load_evenness": {"max_to_mean": result.load_evenness.max_to_mean,
                          "cv": result.load_evenness.cv},
        "sides": sides,
        "requests_per_connection": {s: d["requests_per_connection"] for s, d in sides.items()},
        "reuse_ratio": {s: d["reuse_ratio"] for s, d in sides.items()},
        "multiplexing_ratio": mux,
        "matched_requests": match_stats.matched if match_stats else None,
        "unmatched_requests": match_stats.unmatched_no_candidate if match_stats else 0,
        "health_checks": health_checks,
        "top_breaks": [{"session": s.session, "requests": s.requests, "breaks": s.breaks,
                        "backends": ", ".join(sorted(backends_of.get(s.session, ()))),
                        "cause": first_cause.get(s.session, "")} for s in top],
        "notes": notes,
    }
    if tls_figures is not None:
        summary["tls"] = tls_figures
    return AffinityResult(summary, session_rows, backend_rows, break_rows)


def _balancer_label(cookie: str | None) -> str | None:
    """The balancer cookie of a Cookie header as "name=backend", or None."""
    info = header_backend_cookie(cookie) if cookie else None
    return f"{info.name}={info.backend_label}" if info is not None else None


def _balancer_cookie_hint(now: str | None, sess: str, last: dict[str, str]) -> str | None:
    """Why a request might change backend: its balancer cookie (`now`, from
    `_balancer_label`) went missing or changed since the session's previous request."""
    before = last.get(sess)
    if now is not None:
        last[sess] = now
    if before is None:
        return None
    if now is None:
        return "cookie-missing"
    return "cookie-changed" if now != before else None


def _tls_views(conns: list[dict]) -> tuple[list[RequestView], dict[str, Any]]:
    """``--session-key tls``: each TLS connection is one unit of a TLS session.

    Backend: the server address of the connection; for a TLS-passthrough proxy
    seen on both sides, a client-side connection takes the backend of the
    proxy's connection that carried the same ClientHello (same session identity
    and SNI) soonest after it. A refused resumption (an identity offered, a full
    handshake followed) on another backend than the session's previous
    connection is the "resumption failed because the client landed elsewhere"
    count. ``request_index`` in the breaks table is then the conn_id.
    """
    tls = [c for c in conns if c["app"] == "tls" and c["tls_session"]]
    backend_side = sorted((c for c in tls if c.get("side") == "backend"),
                          key=lambda c: (c["first_ts"], c["conn_id"]))
    taken: set[int] = set()
    views = []
    by_session_last: dict[str, str] = {}
    failed_elsewhere = failed_same = offered = 0
    for c in sorted(tls, key=lambda c: (c["first_ts"], c["conn_id"])):
        if c.get("side") == "backend":
            continue
        backend = _hostport(c["server_ip"], c["server_port"])
        if c.get("side") == "client":
            backend = None
            for b in backend_side:
                if b["conn_id"] in taken or b["first_ts"] < c["first_ts"]:
                    continue
                if b["tls_session"] == c["tls_session"] and b["sni"] == c["sni"]:
                    taken.add(b["conn_id"])
                    backend = _hostport(b["server_ip"], b["server_port"])
                    break
        sess = c["tls_session"]
        prev = by_session_last.get(sess)
        if prev is not None:
            offered += 1
            if c["tls_resumed"] is False:
                if backend is not None and backend != prev:
                    failed_elsewhere += 1
                else:
                    failed_same += 1
        if backend is not None:
            by_session_last[sess] = backend
        views.append(RequestView(c["conn_id"], c["first_ts"], sess, backend, c["client_ip"]))
    return views, {
        "connections": len(views),
        "resumptions_offered_again": offered,
        "resumption_failed_other_backend": failed_elsewhere,
        "resumption_failed_same_backend": failed_same,
    }


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
