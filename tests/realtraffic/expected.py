"""=== COMPARISON HELPERS FOR pcapstats.analyze — what its figures must be on a Recording ===

For the tests comparing pcapstats with the truth (to be written once `pcapstats.analyze` exists).
Contract assumed: `pcapstats.analyze(paths) -> Analysis` with
  `.connections` DataFrame: conn_id, client_ip, client_port, server_ip, server_port, ..., requests
  `.requests`    DataFrame: conn_id, depth, method, host, uri, status, cookie, set_cookie, xff,
                            session, backend, side
so a test is one assert away, e.g.

    exp = expected_figures(rec)
    an = pcapstats.analyze([rec.pcap])
    assert analysis_requests_per_connection(an) == exp.requests_per_connection
    p = exp.persistence[rec.truth.primary_session_key]
    assert (p.multi_sessions, p.persistent_sessions) == (...from pcapstats' summary...)

Keys are (client_ip, client_port, server_ip, server_port) with the client = the side that sent
the SYN: on the client side that is (127.0.1.x, port, VIP, port); on the backend side
(127.0.0.10, port, backend ip, port).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from .scenarios import Recording
from .truth import ConnKey, PersistenceTruth, session_value


@dataclass(frozen=True)
class ExpectedRequest:
    side: str               # "client" (client -> VIP) or "backend" (HAProxy -> server)
    conn: ConnKey
    depth: int              # 1 = first request on its connection
    method: str
    uri: str
    status: int             # -1: no response (client went away first)
    backend: str | None     # server "ip:port" the request reached (None: HAProxy answered)
    server_name: str | None


@dataclass(frozen=True)
class PersistenceFigures:
    key: str
    multi_sessions: int
    persistent_sessions: int
    session_ratio: float | None
    requests: int
    requests_on_top: int
    request_ratio: float | None
    breaks: int

    @staticmethod
    def of(p: PersistenceTruth) -> "PersistenceFigures":
        return PersistenceFigures(p.key, p.multi_sessions, p.persistent_sessions, p.session_ratio,
                                  p.requests, p.requests_on_top, p.request_ratio, len(p.breaks))


@dataclass(frozen=True)
class ExpectedFigures:
    requests_per_connection: dict[ConnKey, int]     # both sides; connections with >= 1 request
    client_side: dict[ConnKey, int]
    backend_side: dict[ConnKey, int]
    client_connections_without_requests: frozenset[ConnKey]  # e.g. wrk's connect probe
    requests: list[ExpectedRequest]                 # client side, then backend side
    persistence: dict[str, PersistenceFigures]      # session key -> figures
    reuse_ratio_client: float | None
    reuse_ratio_backend: float | None
    multiplexing_ratio: float | None                # client conns per backend conn


def expected_figures(rec: Recording) -> ExpectedFigures:
    t = rec.truth
    client_side = {k: n for k, n in t.client_connections.items() if n > 0}
    backend_side = dict(t.backend_connections)
    depth_c: Counter[ConnKey] = Counter()
    depth_b: Counter[ConnKey] = Counter()
    client_reqs: list[ExpectedRequest] = []
    backend_reqs: list[ExpectedRequest] = []
    for r in rec.log:
        if not r.is_request:
            continue
        assert r.method is not None and r.uri is not None
        backend = f"{r.server_ip}:{r.server_port}" if r.server_ip else None
        depth_c[r.client_conn] += 1
        client_reqs.append(ExpectedRequest("client", r.client_conn, depth_c[r.client_conn],
                                           r.method, r.uri, r.status, backend, r.server))
        bkey = r.backend_conn
        if bkey is not None:
            depth_b[bkey] += 1
            backend_reqs.append(ExpectedRequest("backend", bkey, depth_b[bkey], r.method, r.uri,
                                                r.status, backend, r.server))
    return ExpectedFigures(
        requests_per_connection={**client_side, **backend_side}, client_side=client_side,
        backend_side=backend_side,
        client_connections_without_requests=frozenset(
            k for k, n in t.client_connections.items() if n == 0),
        requests=client_reqs + backend_reqs,
        persistence={k: PersistenceFigures.of(p) for k, p in t.persistence.items()},
        reuse_ratio_client=t.client_reuse_ratio, reuse_ratio_backend=t.backend_reuse_ratio,
        multiplexing_ratio=t.multiplexing_ratio)


def expected_sessions(rec: Recording, key: str) -> list[str | None]:
    """Session value of each client-side request (log order) under `key`, as truth defines it."""
    names = rec.client_names()
    return [session_value(r, key, names) for r in rec.log if r.is_request]


# --- reading the same figures out of a pcapstats Analysis (column names per the contract) ---


def analysis_requests_per_connection(analysis: Any) -> dict[ConnKey, int]:
    """{(client_ip, client_port, server_ip, server_port): requests} of connections that carried
    requests (two connections on one 4-tuple are summed, as the truth keys them the same)."""
    df = analysis.connections
    df = df[df["requests"] > 0]
    out: dict[ConnKey, int] = defaultdict(int)
    for row in df[["client_ip", "client_port", "server_ip", "server_port", "requests"]].itertuples(
            index=False):
        out[(str(row[0]), int(row[1]), str(row[2]), int(row[3]))] += int(row[4])
    return dict(out)


def persistence_from_requests(requests: Any, session_col: str = "session",
                              backend_col: str = "backend") -> PersistenceFigures:
    """The DOMAIN.md persistence figures computed from a requests DataFrame (rows in time order;
    rows without session or backend are skipped), to check pcapstats' per-request attribution
    against `ExpectedFigures.persistence` independently of how it names sessions or backends."""
    import pandas as pd

    per: dict[str, Counter[str]] = defaultdict(Counter)
    last: dict[str, str] = {}
    breaks = 0
    for s, b in requests[[session_col, backend_col]].itertuples(index=False):
        if pd.isna(s) or pd.isna(b):        # None, NaN, pd.NA
            continue
        s, b = str(s), str(b)
        per[s][b] += 1
        if s in last and last[s] != b:
            breaks += 1
        last[s] = b
    multi = [c for c in per.values() if sum(c.values()) >= 2]
    n_req = sum(sum(c.values()) for c in multi)
    on_top = sum(max(c.values()) for c in multi)
    persistent = sum(1 for c in multi if len(c) == 1)
    return PersistenceFigures(session_col, len(multi), persistent,
                              persistent / len(multi) if multi else None, n_req, on_top,
                              on_top / n_req if n_req else None, breaks)
