"""pcapstats against the truth on every real-traffic recording.

Each scenario of tests/realtraffic/scenarios.py is recorded once per test run (the session-scoped
fixtures of tests/realtraffic/fixtures.py, shared with test_realtraffic_truth.py) and analysed by
`pcapstats.analyze`; HAProxy's log is the truth (tests/realtraffic/truth.py). Every figure is
compared exactly: connections and complete handshakes per side, requests per connection per side
(keyed by 4-tuple), requests and responses, each client request's backend, persistence for every
session key pcapstats can express, the breaks and their causes, the by-client-IP ratios, reuse per
side and the multiplexing ratio, and that no health check leaks into the client figures. One more
recording, made here (not a scenario: HAProxy does not log health checks, so the truth of the
checks is nginx's log), has HAProxy checking every server every 100 ms.

Naming: the truth's session keys are `ip`, `xff`, `xff_only`, `cookie:NAME` and `client`
(truth.py); pcapstats' are `client-ip`, `xff`, `cookie:NAME` (`xff_only` and `client` have no
pcapstats equivalent: `xff_only` is checked from the requests table, `client` is the lab's own
identity of a client, which no capture shows).

Ordering of a session's requests: the truth takes them in log order (the order transactions
ended), pcapstats in order of their first byte (DOMAIN.md: a break is a request sent to another
backend than the *previous* request of its session). They agree whenever a session's requests are
sequential, which is the case in every scenario but `wrk_keepalive`, where one client address
(127.0.0.1) runs four connections at once; there the expected breaks are the truth's own
per-request servers taken in the order the requests began in the capture (the log's millisecond
timestamps cannot order them).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `pytest` without `python -m` and without a pythonpath setting
    sys.path.insert(0, str(_ROOT))

import pcapstats  # noqa: E402
from pcapstats.affinity.cookies import parse_cookie_header  # noqa: E402
from tests.realtraffic.expected import (  # noqa: E402
    analysis_requests_per_connection, expected_figures, expected_sessions,
    persistence_from_requests)
from tests.realtraffic.fixtures import (  # noqa: E402,F401
    record, realtraffic_dir, recording, require_lab)
from tests.realtraffic.lab import FRONTEND_IP, Lab, LabSpec  # noqa: E402
from tests.realtraffic.scenarios import (  # noqa: E402
    SCENARIOS, Driver, LabAddresses, Recording, _read_nginx_logs, parse_haproxy_log)
from tests.realtraffic.truth import ConnKey, LogRecord, session_value  # noqa: E402

pytestmark = pytest.mark.realtraffic  # registered in pyproject.toml

# What `--session-key auto` must pick per scenario, and why that is the sensible key:
# an application session cookie where the clients hold one (never SERVERID, whose value names a
# server: every "session" would be one server), the first X-Forwarded-For hop when most requests
# come through upstream proxies, else the client address.
AUTO_KEYS = {
    "cookie_insert": "cookie:JSESSIONID",
    "cookie_prefix": "cookie:JSESSIONID",
    "stick_table": "cookie:JSESSIONID",
    "balance_source": "client-ip",
    "roundrobin_server_close": "client-ip",
    "close_and_http10": "client-ip",
    "reuse_always": "client-ip",
    "wrk_keepalive": "client-ip",
    "forwardfor": "xff",
    "midway_changes": "cookie:JSESSIONID",
    "small_segments": "cookie:JSESSIONID",
}

# Scenarios where one session sends requests on several connections at once (see module doc).
CONCURRENT_SESSIONS = {"wrk_keepalive"}

BALANCER_COOKIE = "SERVERID"


def test_every_scenario_has_an_auto_key() -> None:
    assert set(AUTO_KEYS) == set(SCENARIOS)


def pcapstats_key(truth_key: str) -> str | None:
    """The pcapstats --session-key for a truth session key, or None if it has none."""
    if truth_key == "ip":
        return "client-ip"
    if truth_key == "xff" or truth_key.startswith("cookie:"):
        return truth_key
    return None


_ANALYSES: dict[tuple[str, str], Any] = {}


def analysis(rec: Recording, session_key: str = "auto") -> Any:
    """pcapstats.analyze on the recording, once per (capture, session key) in this run."""
    k = (str(rec.pcap), session_key)
    if k not in _ANALYSES:
        _ANALYSES[k] = pcapstats.analyze(rec.pcap, session_key=session_key)
    return _ANALYSES[k]


def rows(df: Any) -> list[dict[str, Any]]:
    """DataFrame rows as dicts with None for every null (pd.NA, NaN, NaT)."""
    obj = df.astype(object)
    return obj.where(df.notna(), None).to_dict("records")


def conn_key(r: dict[str, Any]) -> ConnKey:
    return (str(r["client_ip"]), int(r["client_port"]), str(r["server_ip"]), int(r["server_port"]))


def ns(ts: Any) -> int:
    return int(ts.value)


def server_ep(rec: Recording, name: str) -> str:
    return str(rec.addresses.backends[name])


# --------------------------------------------------------------------------- pairing requests


def request_pairs(rec: Recording, an: Any) -> list[tuple[LogRecord, dict[str, Any]]]:
    """Every client request of the log (log order) with pcapstats' row for it, matched by
    client ip:port (one connection per 4-tuple in a recording) and position on the connection."""
    by_conn: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows(an.requests):
        if r["side"] == "client":
            by_conn[(str(r["client_ip"]), int(r["client_port"]))].append(r)
    for lst in by_conn.values():
        lst.sort(key=lambda r: r["depth"])
    pos: Counter[tuple[str, int]] = Counter()
    out = []
    for lr in rec.log:
        if not lr.is_request:
            continue
        conn = (lr.client_ip, lr.client_port)
        got = by_conn.get(conn, [])
        assert pos[conn] < len(got), f"pcapstats lacks request {pos[conn] + 1} on {conn}: {lr}"
        out.append((lr, got[pos[conn]]))
        pos[conn] += 1
    extra = {c: len(v) - pos[c] for c, v in by_conn.items() if len(v) != pos[c]}
    assert not extra, f"client requests pcapstats found that the log lacks: {extra}"
    return out


def in_capture_order(pairs: list[tuple[LogRecord, dict[str, Any]]]
                     ) -> list[tuple[LogRecord, dict[str, Any]]]:
    return sorted(pairs, key=lambda p: (ns(p[1]["ts_request"]), p[1]["conn_id"], p[1]["depth"]))


# --------------------------------------------------------------------------- connections


def test_connections_per_side(recording: Recording) -> None:
    t = recording.truth
    an = analysis(recording)
    conns = rows(an.connections)
    sides: dict[str, list[ConnKey]] = defaultdict(list)
    for c in conns:
        sides[str(c["side"])].append(conn_key(c))
    assert set(sides) == {"client", "backend"}, {k: len(v) for k, v in sides.items()}
    assert sorted(sides["client"]) == sorted(t.client_connections)
    assert sorted(sides["backend"]) == sorted(t.backend_connections)
    s = an.summary
    assert s["tcp"]["connections"] == len(t.client_connections) + len(t.backend_connections)
    aff = s["affinity"]["sides"]
    assert aff["client"]["connections"] == len(t.client_connections)
    assert aff["backend"]["connections"] == len(t.backend_connections)
    fe = recording.addresses.frontend
    assert s["affinity"]["roles"]["frontends"] == [str(fe)]
    assert s["affinity"]["roles"]["proxies"] == [recording.addresses.proxy_source_ip]


def test_handshakes_complete(recording: Recording) -> None:
    """The capture starts before the lab and ends after it: every connection's handshake was
    recorded, on both sides."""
    t = recording.truth
    an = analysis(recording)
    conns = rows(an.connections)
    per_side = Counter(str(c["side"]) for c in conns if c["handshake_complete"])
    assert per_side == Counter({"client": len(t.client_connections),
                                "backend": len(t.backend_connections)})
    assert an.summary["tcp"]["handshakes_complete"] == len(conns)
    assert an.summary["tcp"]["syn_only"] == 0
    for c in conns:
        assert c["syn"] >= 1 and c["synack"] >= 1 and c["handshake_ack"], c
        assert c["handshake_rtt_ns"] is not None and c["handshake_rtt_ns"] >= 0, c


# --------------------------------------------------------------------------- requests


def test_requests_per_connection_per_side(recording: Recording) -> None:
    exp = expected_figures(recording)
    an = analysis(recording)
    assert analysis_requests_per_connection(an) == exp.requests_per_connection
    conns = rows(an.connections)
    got: dict[str, dict[ConnKey, int]] = {"client": {}, "backend": {}}
    empty: set[ConnKey] = set()
    for c in conns:
        if c["requests"] > 0:
            got[str(c["side"])][conn_key(c)] = int(c["requests"])
        elif c["side"] == "client":
            empty.add(conn_key(c))
        else:
            raise AssertionError(f"a backend connection without requests: {c}")
    assert got["client"] == exp.client_side
    assert got["backend"] == exp.backend_side
    assert empty == exp.client_connections_without_requests
    errors = unsolicited_responses(recording)
    for c in conns:                      # every request was answered (truth: all 200)
        assert c["responses"] == c["requests"] + errors.get(conn_key(c), 0), c


def unsolicited_responses(rec: Recording) -> Counter[ConnKey]:
    """Client connections on which HAProxy answered without a request: a connection closed
    before sending one (wrk's connect probe) is logged as <BADREQ> with the status HAProxy
    sent (400, its error page, seen in the capture before the client's RST)."""
    return Counter(lr.client_conn for lr in rec.log if not lr.is_request and lr.status > 0)


def test_requests_and_responses(recording: Recording) -> None:
    t = recording.truth
    an = analysis(recording)
    h = an.summary["http"]
    assert h["requests"] == t.requests + t.backend_requests
    assert h["responses"] == t.requests + t.backend_requests + sum(
        unsolicited_responses(recording).values())
    assert h["unanswered_requests"] == 0
    assert h["malformed"] == 0
    sides = an.summary["affinity"]["sides"]
    assert sides["client"]["requests"] == t.requests
    assert sides["backend"]["requests"] == t.backend_requests
    assert an.summary["affinity"]["requests"] == t.requests   # sessions: client side only
    assert Counter(int(s) for s in an.requests["status"]) == Counter(
        {s: n * 2 for s, n in t.statuses.items()})            # each request on both sides


def test_client_requests_match_log(recording: Recording) -> None:
    """Each client-side request, matched to its log line by client ip:port and order: same
    request, same answer, and the backend HAProxy logged for it."""
    an = analysis(recording)
    pairs = request_pairs(recording, an)
    assert len(pairs) == recording.truth.requests
    for lr, r in pairs:
        assert (r["method"], r["uri"], r["version"]) == (lr.method, lr.uri, lr.version), lr
        assert r["status"] == lr.status, lr
        assert lr.server is not None
        assert r["backend"] == f"{lr.server_ip}:{lr.server_port}" == server_ep(recording,
                                                                                lr.server), lr
        assert r["cookie"] == lr.cookie, lr
        assert r["xff"] == lr.xff, lr
        assert r["health_check"] is False, lr


def test_backend_requests_match_log(recording: Recording) -> None:
    """Each backend-side request, matched by backend connection 4-tuple and order."""
    an = analysis(recording)
    by_conn: dict[ConnKey, list[dict[str, Any]]] = defaultdict(list)
    for r in rows(an.requests):
        if r["side"] == "backend":
            by_conn[conn_key(r)].append(r)
    log: dict[ConnKey, list[LogRecord]] = defaultdict(list)
    for lr in recording.log:
        if lr.is_request and lr.backend_conn is not None:
            log[lr.backend_conn].append(lr)
    assert set(by_conn) == set(log)
    for k, lst in by_conn.items():
        lst.sort(key=lambda r: r["depth"])
        assert [(r["method"], r["uri"], r["status"]) for r in lst] == \
            [(lr.method, lr.uri, lr.status) for lr in log[k]], k
        assert {r["backend"] for r in lst} == {f"{k[2]}:{k[3]}"}
        assert not any(r["health_check"] for r in lst)


def test_every_client_request_matched_to_its_forwarded_request(recording: Recording) -> None:
    a = analysis(recording).summary["affinity"]
    assert a["matched_requests"] == recording.truth.requests
    assert a["unmatched_requests"] == 0
    assert a["requests_unknown_backend"] == 0


# --------------------------------------------------------------------------- persistence


def _keys(rec: Recording) -> list[str]:
    """Truth session keys of the scenario that pcapstats can express (primary first)."""
    return [k for k in dict.fromkeys([*rec.session_keys, "ip"]) if pcapstats_key(k)]


def _ratio(num: int, den: int) -> dict[str, Any]:
    return {"numerator": num, "denominator": den, "value": num / den if den else None}


def test_persistence_every_key(recording: Recording) -> None:
    """persistence_ratio_sessions / _requests with their counts, for the primary key and every
    other key the scenario names, with --session-key given explicitly."""
    t = recording.truth
    for key in _keys(recording):
        p = t.persistence[key]
        an = analysis(recording, pcapstats_key(key))  # type: ignore[arg-type]
        a = an.summary["affinity"]
        assert a["session_key"] == pcapstats_key(key)
        assert a["persistence_sessions"] == _ratio(p.persistent_sessions, p.multi_sessions), key
        assert a["persistence_requests"] == _ratio(p.requests_on_top, p.requests), key
        assert a["persistence_ratio_sessions"] == p.session_ratio, key
        assert a["persistence_ratio_requests"] == p.request_ratio, key
        assert a["sessions"] == p.sessions, key
        assert a["sessions_with_two_or_more"] == p.multi_sessions, key
        assert a["requests_without_session"] == p.unkeyed_requests == 0, key


def test_sessions_match_truth(recording: Recording) -> None:
    """Each client request's session under every key is the truth's (up to naming: pcapstats
    strips HAProxy's `server~` prefix from a prefixed cookie), and the sessions table agrees
    with the truth's requests per session and server."""
    t = recording.truth
    for key in _keys(recording):
        an = analysis(recording, pcapstats_key(key))  # type: ignore[arg-type]
        pairs = request_pairs(recording, an)
        want = expected_sessions(recording, key)
        got = [r["session"] for _, r in pairs]
        assert len(want) == len(got)
        to_got: dict[str | None, str | None] = {}
        to_want: dict[str | None, str | None] = {}
        for w, g in zip(want, got):
            assert to_got.setdefault(w, g) == g, (key, w, g)
            assert to_want.setdefault(g, w) == w, (key, w, g)
        assert None not in to_got
        table = {str(s["session"]): s for s in rows(an.sessions)}
        per_session = t.persistence[key].requests_per_session
        assert set(table) == {to_got[s] for s in per_session}, key
        for s, servers in per_session.items():
            row = table[to_got[s]]  # type: ignore[index]
            assert row["requests"] == sum(servers.values()), (key, s)
            assert row["backends"] == len(servers), (key, s)
            assert row["persistent"] == (len(servers) == 1), (key, s)
            top = max(servers.values())
            assert row["primary_backend"] in {server_ep(recording, n) for n, c in servers.items()
                                              if c == top}, (key, s)
            assert row["key"] == pcapstats_key(key)


def test_persistence_from_per_request_attribution(recording: Recording) -> None:
    """The figures recomputed from pcapstats' own requests table (session and backend per
    client request) equal the truth's: the summary is backed by the per-request attribution."""
    t = recording.truth
    key = t.primary_session_key
    an = analysis(recording, pcapstats_key(key))  # type: ignore[arg-type]
    r = an.requests
    client = r[r["side"] == "client"].sort_values(["ts_request", "conn_id", "depth"])
    got = persistence_from_requests(client)
    want = expected_figures(recording).persistence[key]
    assert (got.multi_sessions, got.persistent_sessions, got.requests, got.requests_on_top) == \
        (want.multi_sessions, want.persistent_sessions, want.requests, want.requests_on_top)


def test_auto_key(recording: Recording) -> None:
    """`auto` picks the scenario's primary key, says why, and gives the same figures."""
    t = recording.truth
    want = AUTO_KEYS[recording.scenario]
    assert want == pcapstats_key(t.primary_session_key)
    auto = analysis(recording).summary["affinity"]
    explicit = analysis(recording, want).summary["affinity"]
    assert auto["session_key"] == want
    assert auto["session_key_reason"] and "--session-key" not in auto["session_key_reason"]
    if want.startswith("cookie:"):
        assert want.split(":", 1)[1] in auto["session_key_reason"]
        if any(BALANCER_COOKIE in (lr.cookie or "") for lr in recording.log):
            assert f"{BALANCER_COOKIE} names a backend" in auto["session_key_reason"]
    elif want == "xff":
        assert "X-Forwarded-For" in auto["session_key_reason"]
    for k in ("persistence_sessions", "persistence_requests", "sessions", "breaks",
              "break_causes", "by_client_ip_ratios", "sides", "multiplexing_ratio"):
        assert auto[k] == explicit[k], k


# --------------------------------------------------------------------------- breaks


def _cookie(lr: LogRecord, name: str) -> str | None:
    for n, v in parse_cookie_header(lr.cookie or ""):
        if n == name:
            return v
    return None


def _expected_cause(key: str, lr: LogRecord, prev: LogRecord) -> str:
    """The cause of a break (persistence.py's precedence), from what the log says the client
    sent: the session cookie itself missing (the session came from the response's Set-Cookie)
    or the balancer cookie the previous request sent missing; another client address; another
    balancer cookie; else unknown."""
    def balancer(x: LogRecord) -> str | None:
        return _cookie(x, BALANCER_COOKIE)
    if key.startswith("cookie:") and _cookie(lr, key.split(":", 1)[1]) is None:
        return "cookie-missing"
    if balancer(prev) is not None and balancer(lr) is None:
        return "cookie-missing"
    if lr.client_ip != prev.client_ip:
        return "new-client-address"
    if balancer(prev) != balancer(lr):
        return "cookie-changed"
    return "unknown"


def test_breaks(recording: Recording) -> None:
    """Breaks under every key: which requests, from and to which backend, when, and why."""
    t = recording.truth
    names = recording.client_names()
    for key in _keys(recording):
        an = analysis(recording, pcapstats_key(key))  # type: ignore[arg-type]
        pairs = request_pairs(recording, an)
        # expected: the truth's per-request sessions and servers, in the order requests began
        last: dict[str, tuple[LogRecord, dict[str, Any]]] = {}
        want = []
        for lr, r in in_capture_order(pairs):
            s = session_value(lr, key, names)
            assert s is not None and lr.server is not None
            if s in last and last[s][0].server != lr.server:
                want.append((lr, r, last[s][0]))
            last[s] = (lr, r)
        truth_breaks = t.persistence[key].breaks
        if recording.scenario not in CONCURRENT_SESSIONS:
            assert [(b.from_server, b.to_server, b.t) for b in truth_breaks] == \
                [(p.server, lr.server, lr.t_request) for lr, _, p in want], key
        got = sorted(rows(an.breaks), key=lambda b: (ns(b["ts"]), b["request_index"]))
        a = an.summary["affinity"]
        assert a["breaks"] == len(got) == len(want), key
        req_rows = rows(an.requests)
        causes: Counter[str] = Counter()
        for g, (lr, r, prev) in zip(got, want):
            row = req_rows[int(g["request_index"])]
            assert (row["conn_id"], row["depth"]) == (r["conn_id"], r["depth"]), (key, lr)
            assert ns(g["ts"]) == ns(r["ts_request"])
            # the log has milliseconds, and HAProxy reads the request a little after the capture
            assert abs(ns(g["ts"]) / 1e9 - lr.t_request) < 0.050, (key, lr)
            assert (g["from_backend"], g["to_backend"]) == (
                server_ep(recording, prev.server), server_ep(recording, lr.server)), (key, lr)
            assert g["session"] == r["session"]
            cause = _expected_cause(key, lr, prev)
            assert g["cause"] == cause, (key, lr, prev)
            causes[cause] += 1
        assert a["break_causes"] == {c: causes.get(c, 0) for c in
                                     ("cookie-missing", "new-client-address", "cookie-changed",
                                      "unknown")}, key


# --------------------------------------------------------------------------- by client IP


def test_by_client_ip(recording: Recording) -> None:
    p = recording.truth.persistence["ip"]
    a = analysis(recording).summary["affinity"]
    assert a["by_client_ip_ratios"] == {
        "sessions": _ratio(p.persistent_sessions, p.multi_sessions),
        "requests": _ratio(p.requests_on_top, p.requests)}
    assert a["by_client_ip"]["persistence_ratio_sessions"] == p.session_ratio
    assert a["by_client_ip"]["persistence_ratio_requests"] == p.request_ratio
    assert a["by_client_ip"]["clients"] == p.sessions


# --------------------------------------------------------------------------- reuse, multiplexing


def _distribution(values: list[int]) -> dict[str, Any]:
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"mean": sum(v) / n, "median": med, "p95": v[math.ceil(0.95 * n) - 1], "max": v[-1]}


def test_reuse_per_side_and_multiplexing(recording: Recording) -> None:
    t = recording.truth
    exp = expected_figures(recording)
    a = analysis(recording).summary["affinity"]
    for side, per_conn, total, ratio in (
            ("client", exp.client_side, t.requests, exp.reuse_ratio_client),
            ("backend", exp.backend_side, t.backend_requests, exp.reuse_ratio_backend)):
        s = a["sides"][side]
        assert s["connections_with_requests"] == len(per_conn), side
        assert s["requests"] == total, side
        assert s["reuse_ratio"] == ratio, side
        assert a["reuse_ratio"][side] == ratio, side
        assert s["exchanges_saved"] == 7 * (total - len(per_conn)), side
        assert s["requests_per_connection"] == _distribution(list(per_conn.values())), side
        assert a["requests_per_connection"][side] == s["requests_per_connection"]
    assert a["multiplexing_ratio"] == exp.multiplexing_ratio
    conns_per_server = Counter(server_ep(recording, n)
                               for n in t.backend_connection_server.values())
    per_server = {server_ep(recording, n): c for n, c in t.requests_per_server.items()}
    backends = {b["backend"]: b for b in a["backends"]}
    assert {k: b["requests"] for k, b in backends.items()} == per_server
    assert {k: b["connections"] for k, b in backends.items()} == dict(conns_per_server)


# --------------------------------------------------------------------------- health checks


def test_health_checks_kept_out_of_client_figures(recording: Recording) -> None:
    """The lab configures no health checks: nothing is flagged, and the client figures count
    exactly the log's requests (a request wrongly flagged would drop out of them)."""
    an = analysis(recording)
    a = an.summary["affinity"]
    assert a["health_checks"] == 0
    assert not any(r["health_check"] for r in rows(an.requests))
    assert a["requests"] == a["sides"]["client"]["requests"] == recording.truth.requests


# --------------------------------------------------------------------------- per scenario


def test_forwardfor_sessions(record: Callable[[str], Recording]) -> None:
    """`xff`: the first X-Forwarded-For hop, else the connection's client address (direct
    clients); the truth's `xff_only` (direct clients have no session) from the requests table."""
    rec = record("forwardfor")
    t = rec.truth
    an = analysis(rec, "xff")
    pairs = request_pairs(rec, an)
    direct = {lr.client_ip for lr, _ in pairs if not lr.xff}
    assert direct == {"127.0.1.1", "127.0.1.2"}
    sessions = {r["session"] for _, r in pairs}
    assert sessions == {f"203.0.113.{i}" for i in range(1, 6)} | direct
    assert an.summary["affinity"]["requests_without_session"] == 0
    r = an.requests
    client = r[r["side"] == "client"].sort_values(["ts_request", "conn_id", "depth"]).copy()
    client["first_hop"] = [x.split(",")[0].strip() if isinstance(x, str) else None
                           for x in client["xff"]]
    got = persistence_from_requests(client, session_col="first_hop")
    want = t.persistence["xff_only"]
    assert (got.multi_sessions, got.persistent_sessions, got.requests, got.requests_on_top,
            got.breaks) == (want.multi_sessions, want.persistent_sessions, want.requests,
                            want.requests_on_top, len(want.breaks))
    # backend side: HAProxy appended the proxy's own client address as the last hop
    back = [x for x in rows(an.requests) if x["side"] == "backend"]
    assert all(x["xff"] and x["xff"].rsplit(",", 1)[-1].strip().startswith("127.0.1.")
               for x in back)


def test_midway_changes_break_causes(record: Callable[[str], Recording]) -> None:
    """Under JSESSIONID, only a client that dropped SERVERID (d1; m2, which also moved) can
    land on another server: every break is `cookie-missing`, and there is at least one."""
    rec = record("midway_changes")
    an = analysis(rec, "cookie:JSESSIONID")
    n = len(rec.truth.persistence["cookie:JSESSIONID"].breaks)
    assert n >= 1
    assert an.summary["affinity"]["break_causes"] == {
        "cookie-missing": n, "new-client-address": 0, "cookie-changed": 0, "unknown": 0}
    moved = rec.addresses.clients["m1"]
    assert not any(str(b["session"]) == _cookie(lr, "JSESSIONID")
                   for b in rows(an.breaks) for lr in rec.log if lr.client_ip in moved)


def test_cookie_prefix_session_is_the_application_value(
        record: Callable[[str], Recording]) -> None:
    """With `cookie JSESSIONID prefix`, the client holds `<server>~<app value>`: pcapstats keys
    the session by the application's value, and names the backend from the prefix too."""
    rec = record("cookie_prefix")
    an = analysis(rec, "cookie:JSESSIONID")
    for lr, r in request_pairs(rec, an):
        value = session_value(lr, "cookie:JSESSIONID")
        assert value is not None and "~" in value
        server, _, app = value.partition("~")
        assert r["session"] == app
        assert server == lr.server


# --------------------------------------------------------------------------- real health checks
#
# Not one of SCENARIOS: HAProxy does not log its health checks, so the capture holds backend
# connections the log (the truth of test_realtraffic_truth.py) does not know. nginx logs them:
# here the truth of the checks is nginx's access log, the rest is HAProxy's log as everywhere.

HEALTH_URI = "/health"
HEALTH_SPEC = LabSpec("health_checks", "balance roundrobin\n"
                      f"option httpchk GET {HEALTH_URI}\n"
                      "cookie SERVERID insert indirect nocache",
                      server_options="cookie {name} check inter 100ms")
_HEALTH: list[Recording] = []


@pytest.fixture(scope="module")
def health_recording(realtraffic_dir: Path) -> Recording:
    """Cookie persistence with HAProxy checking every server every 100 ms (recorded once)."""
    require_lab()
    if not _HEALTH:
        directory = realtraffic_dir / HEALTH_SPEC.name
        directory.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with Lab(HEALTH_SPEC, directory) as lab:
            driver = Driver(lab)
            clients = [driver.client(f"c{i}", f"127.0.1.{i}") for i in range(1, 4)]
            time.sleep(0.3)                      # a few checks before the first client
            driver.lockstep(clients, 5, lambda r, c: c.request(f"/app/p{r}"), pause_s=0.05)
            stats = lab.stop()
        records = driver.all_records()
        addresses = LabAddresses(lab.frontend, FRONTEND_IP, dict(lab.backends),
                                 driver.client_addresses())
        _HEALTH.append(Recording(
            scenario=HEALTH_SPEC.name, description="health checks", directory=directory,
            pcap=lab.pcap_path, haproxy_log=lab.haproxy_log_path,
            log=parse_haproxy_log(lab.haproxy_log_path.read_text()), clients=records, wrk=[],
            addresses=addresses, session_keys=("cookie:JSESSIONID", "cookie:SERVERID"),
            expected_requests=(len(records), len(records)), tcpdump=stats,
            nginx_log=_read_nginx_logs(directory, addresses), seconds=time.monotonic() - t0))
    return _HEALTH[0]


def test_health_checks_flagged_and_kept_out(health_recording: Recording) -> None:
    rec = health_recording
    t = rec.truth
    assert t.requests == 15 and set(t.statuses) == {200}
    checks: set[ConnKey] = set()        # nginx: requests HAProxy sent by itself
    for name, lines in rec.nginx_log.items():
        ep = rec.addresses.backends[name]
        for line in lines:
            k = (line.remote_ip, line.remote_port, ep.ip, ep.port)
            if k not in t.backend_connections:
                assert line.request_line.split(" ")[1] == HEALTH_URI, line
                checks.add(k)
    assert len(checks) >= 3 * 5                   # every server, every 100 ms
    an = analysis(rec, "cookie:JSESSIONID")
    a = an.summary["affinity"]
    reqs = rows(an.requests)
    flagged = [r for r in reqs if r["health_check"]]
    assert {conn_key(r) for r in flagged} == checks
    assert len(flagged) == len(checks) == a["health_checks"]
    assert all(r["side"] == "backend" and r["uri"] == HEALTH_URI for r in flagged)
    # client figures: exactly the log's requests, backends and persistence
    assert a["requests"] == a["sides"]["client"]["requests"] == t.requests
    for lr, r in request_pairs(rec, an):
        assert r["backend"] == f"{lr.server_ip}:{lr.server_port}", lr
    p = t.persistence["cookie:JSESSIONID"]
    assert a["persistence_sessions"] == _ratio(p.persistent_sessions, p.multi_sessions)
    assert a["persistence_requests"] == _ratio(p.requests_on_top, p.requests)
    assert a["by_client_ip_ratios"]["requests"] == _ratio(t.persistence["ip"].requests_on_top,
                                                          t.persistence["ip"].requests)
    assert a["matched_requests"] == t.requests and a["unmatched_requests"] == 0
    # backend side: check connections are connections, but carry no request of the figures
    b = a["sides"]["backend"]
    conns = rows(an.connections)
    assert {conn_key(c) for c in conns if c["side"] == "backend" and c["requests"]} == \
        set(t.backend_connections) | checks
    assert b["connections"] == sum(1 for c in conns if c["side"] == "backend")
    assert b["connections_with_requests"] == len(t.backend_connections)
    assert b["requests"] == t.backend_requests
    assert b["reuse_ratio"] == t.backend_reuse_ratio
    assert a["multiplexing_ratio"] == t.multiplexing_ratio
    per_server = Counter(server_ep(rec, n) for n in t.backend_connection_server.values())
    assert {x["backend"]: x["connections"] for x in a["backends"]} == dict(per_server)
    assert {x["backend"]: x["requests"] for x in a["backends"]} == {
        server_ep(rec, n): c for n, c in t.requests_per_server.items()}
