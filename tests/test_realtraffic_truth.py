"""The real-traffic recordings are sane: the capture is complete, HAProxy's log (the truth)
agrees with the clients' own records, with nginx's logs and with what tshark sees."""

from __future__ import annotations

import json
import socket
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `pytest` without `python -m` and without a pythonpath setting
    sys.path.insert(0, str(_ROOT))

from tests.realtraffic import tshark  # noqa: E402
from tests.realtraffic.expected import (  # noqa: E402
    analysis_requests_per_connection, expected_figures, expected_sessions,
    persistence_from_requests)
from tests.realtraffic.fixtures import record, realtraffic_dir, recording  # noqa: E402,F401
from tests.realtraffic.lab import (  # noqa: E402
    FRONTEND_IP, Lab, LabError, LabSpec, missing_binaries, proxy_source_ports)
from tests.realtraffic.clients import ClientRequest  # noqa: E402
from tests.realtraffic.scenarios import NginxLogRecord, Recording, load_recording  # noqa: E402
from tests.realtraffic.truth import ConnKey, LogRecord, parse_log_line  # noqa: E402

pytestmark = pytest.mark.realtraffic  # registered in pyproject.toml


# --------------------------------------------------------------------------- every scenario


def test_capture_complete(recording: Recording) -> None:
    assert recording.tcpdump.dropped == 0
    assert recording.tcpdump.captured > 0
    assert recording.pcap.stat().st_size > 24


def test_log_holds_every_request(recording: Recording) -> None:
    lo, hi = recording.expected_requests
    assert lo <= recording.truth.requests <= hi
    assert recording.truth.requests > 0
    assert set(recording.truth.statuses) == {200}, recording.truth.statuses
    assert all(r.retries == 0 for r in recording.log)


def test_clients_agree_with_log(recording: Recording) -> None:
    by_conn: dict[tuple[str, int], list[LogRecord]] = defaultdict(list)
    for r in recording.log:
        if r.is_request:
            by_conn[(r.client_ip, r.client_port)].append(r)
    mine: dict[tuple[str, int], list[ClientRequest]] = defaultdict(list)
    for c in recording.clients:
        mine[(c.client_ip, c.client_port)].append(c)
    for conn, reqs in mine.items():
        logged = by_conn.get(conn, [])
        assert len(logged) == len(reqs), (conn, [r.uri for r in reqs], [r.uri for r in logged])
        for c, r in zip(sorted(reqs, key=lambda x: x.seq), logged):
            assert (c.method, c.uri, c.version) == (r.method, r.uri, r.version)
            assert c.status == r.status
            assert c.backend == r.server, (c, r)
            assert c.cookie_sent == r.cookie
            assert c.xff_sent == r.xff
    if recording.wrk:
        wrk_conns = [k for k in by_conn if k[0] == "127.0.0.1"]
        assert sum(len(by_conn[k]) for k in wrk_conns) >= sum(w.completed for w in recording.wrk)
    else:
        assert set(by_conn) == set(mine)


def test_addresses_match_lab(recording: Recording) -> None:
    a = recording.addresses
    used = {ip for ips in a.clients.values() for ip in ips}
    # each server's connections leave from its own port range, so no 4-tuple comes back
    ranges = dict(zip(a.backends, proxy_source_ports(a.frontend.port, len(a.backends))))
    for r in recording.log:
        assert (r.frontend_ip, r.frontend_port) == (a.frontend.ip, a.frontend.port)
        assert r.client_ip in used
        if r.is_request:
            assert r.server is not None
            assert r.source_ip == a.proxy_source_ip == FRONTEND_IP
            lo, hi = ranges[r.server]
            assert lo <= r.source_port <= hi, (r.server, r.source_port)
            assert (r.server_ip, r.server_port) == (a.backends[r.server].ip,
                                                   a.backends[r.server].port)


def _sides(recording: Recording, conns: dict[int, ConnKey]) -> tuple[set[ConnKey], set[ConnKey]]:
    fe = recording.addresses.frontend
    backends = {(ep.ip, ep.port) for ep in recording.addresses.backends.values()}
    client = {k for k in conns.values() if (k[2], k[3]) == (fe.ip, fe.port)}
    backend = {k for k in conns.values() if (k[2], k[3]) in backends}
    assert client | backend == set(conns.values()), "a connection of neither side"
    return client, backend


def test_capture_connections_match_log(recording: Recording) -> None:
    conns = tshark.syn_connections(recording.pcap)
    assert len(conns) == len(set(conns.values())), "a 4-tuple was reused inside one capture"
    assert tshark.stream_count(recording.pcap) == len(conns), "a connection without a SYN"
    client, backend = _sides(recording, conns)
    assert client == set(recording.truth.client_connections)
    assert backend == set(recording.truth.backend_connections)


def test_capture_http_requests_match_log(recording: Recording) -> None:
    a = recording.addresses
    ports = [a.frontend.port, *(ep.port for ep in a.backends.values())]
    seen = tshark.http_requests_per_connection(recording.pcap, ports)
    exp = expected_figures(recording)
    assert dict(seen) == exp.requests_per_connection


def test_nginx_logs_match_haproxy(recording: Recording) -> None:
    truth = recording.truth
    nginx: Counter[ConnKey] = Counter()
    for name, lines in recording.nginx_log.items():
        ep = recording.addresses.backends[name]
        for line in lines:
            nginx[(line.remote_ip, line.remote_port, ep.ip, ep.port)] += 1
    assert dict(nginx) == dict(truth.backend_connections)
    for lines in recording.nginx_log.values():
        for conn_lines in _group(lines).values():   # $connection_requests counts 1, 2, 3, ...
            assert [x.connection_requests for x in conn_lines] == list(range(1, len(conn_lines) + 1))


def _group(lines: list[NginxLogRecord]) -> dict[int, list[NginxLogRecord]]:
    out: dict[int, list[NginxLogRecord]] = defaultdict(list)
    for x in lines:
        out[x.connection].append(x)
    return out


def test_comparison_helpers_reproduce_truth(recording: Recording) -> None:
    """The helpers the pcapstats tests will use, fed with DataFrames shaped like the contract
    (built here from the log), give back the truth: the figures are one assert away."""
    pd = pytest.importorskip("pandas")
    exp = expected_figures(recording)
    key = recording.truth.primary_session_key
    conns = pd.DataFrame(
        [(i, *k, n) for i, (k, n) in enumerate(
            [*recording.truth.client_connections.items(),
             *recording.truth.backend_connections.items()])],
        columns=["conn_id", "client_ip", "client_port", "server_ip", "server_port", "requests"])
    assert analysis_requests_per_connection(SimpleNamespace(connections=conns)) == \
        exp.requests_per_connection
    client_reqs = [r for r in exp.requests if r.side == "client"]
    reqs = pd.DataFrame({"session": expected_sessions(recording, key),
                         "backend": [r.backend for r in client_reqs]})
    got = persistence_from_requests(reqs)
    want = exp.persistence[key]
    assert (got.multi_sessions, got.persistent_sessions, got.requests, got.requests_on_top,
            got.breaks) == (want.multi_sessions, want.persistent_sessions, want.requests,
                            want.requests_on_top, want.breaks)
    assert len(client_reqs) == recording.truth.requests
    assert sum(exp.backend_side.values()) == recording.truth.backend_requests


def test_saved_recording_loads_back(record: Callable[[str], Recording]) -> None:
    rec = record("cookie_insert")
    again = load_recording(rec.directory)
    assert again.truth.to_json() == rec.truth.to_json()
    assert again.addresses == rec.addresses and again.clients == rec.clients
    assert json.loads((rec.directory / "truth.json").read_text())["requests"] == rec.truth.requests


# --------------------------------------------------------------------------- per scenario


def test_cookie_insert_persists(record: Callable[[str], Recording]) -> None:
    t = record("cookie_insert").truth
    for key in ("cookie:SERVERID", "cookie:JSESSIONID", "client"):
        p = t.persistence[key]
        assert p.multi_sessions > 0 and p.session_ratio == 1.0 and not p.breaks, key
    assert len(t.requests_per_server) == 3


def test_cookie_prefix_persists(record: Callable[[str], Recording]) -> None:
    rec = record("cookie_prefix")
    p = rec.truth.persistence["cookie:JSESSIONID"]
    assert p.multi_sessions == len(rec.addresses.clients) and p.session_ratio == 1.0
    for c in rec.clients:
        for sc in c.set_cookies:  # the client holds <server>~<app value>
            if sc.startswith("JSESSIONID="):
                assert sc.split("=", 1)[1].split("~")[0] == c.backend


def test_stick_table_persists(record: Callable[[str], Recording]) -> None:
    t = record("stick_table").truth
    p = t.persistence["cookie:JSESSIONID"]
    assert p.session_ratio == 1.0 and p.multi_sessions == 6  # 5 clients, one restarted


def test_balance_source_persists_per_ip(record: Callable[[str], Recording]) -> None:
    t = record("balance_source").truth
    assert t.persistence["ip"].session_ratio == 1.0
    assert t.persistence["ip"].multi_sessions == 8      # 6 clients + the mover's 2 addresses


def test_server_close_one_backend_connection_per_request(
        record: Callable[[str], Recording]) -> None:
    t = record("roundrobin_server_close").truth
    assert set(t.backend_connections.values()) == {1}
    assert len(t.client_connections) == 4 and t.requests == 24
    assert t.persistence["ip"].session_ratio == 0.0       # round robin spreads every client


def test_close_and_http10_one_request_per_client_connection(
        record: Callable[[str], Recording]) -> None:
    rec = record("close_and_http10")
    per_client: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for c in rec.clients:
        per_client[c.client].add((c.client_ip, c.client_port))
    for name in ("a1", "a2", "a3", "h1", "h2", "u1"):
        n = sum(1 for c in rec.clients if c.client == name)
        assert len(per_client[name]) == n, name          # no reuse
    assert len(per_client["k1"]) == 1                    # HTTP/1.0 keep-alive reuses


def test_reuse_always_multiplexes(record: Callable[[str], Recording]) -> None:
    t = record("reuse_always").truth
    assert len(t.client_connections) == 6 * 4 + 2
    assert len(t.backend_connections) <= 2 * len(t.backend_connections_per_server)
    assert t.multiplexing_ratio is not None and t.multiplexing_ratio > 4
    assert max(t.client_connections_per_backend_connection.values()) > 4


def test_wrk_keepalive(record: Callable[[str], Recording]) -> None:
    t = record("wrk_keepalive").truth
    used = [n for n in t.client_connections.values() if n > 0]
    assert len(used) == 4 and min(used) >= 2


def test_forwardfor_persists_per_first_hop(record: Callable[[str], Recording]) -> None:
    rec = record("forwardfor")
    t = rec.truth
    assert t.persistence["xff"].session_ratio == 1.0
    assert {r.xff.split(",")[0] for r in rec.log if r.xff} == {
        f"203.0.113.{i}" for i in range(1, 6)}


def test_midway_changes(record: Callable[[str], Recording]) -> None:
    rec = record("midway_changes")
    t = rec.truth
    assert set(rec.addresses.clients["m1"]) == {"127.0.1.4", "127.0.1.14"}
    # moving keeps cookies: m1 stays on one server
    m1 = {c.backend for c in rec.clients if c.client == "m1"}
    assert len(m1) == 1
    # the SERVERID-keyed sessions never break; dropping SERVERID breaks a JSESSIONID session
    assert not t.persistence["cookie:SERVERID"].breaks
    assert t.persistence["cookie:JSESSIONID"].breaks


def test_small_segments_split_messages(record: Callable[[str], Recording]) -> None:
    rec = record("small_segments")
    fe = rec.addresses.frontend
    python_ips = {c.client_ip for c in rec.clients if c.tool == "python"}
    rows = tshark._tshark(rec.pcap, ["-Y", f"tcp.port=={fe.port} && tcp.len>0", "-T", "fields",
                                     "-e", "ip.src", "-e", "tcp.srcport", "-e", "tcp.len"])
    up: Counter[tuple[str, int]] = Counter()
    down = 0
    for src, port, length in rows:
        if src in python_ips:               # client -> HAProxy: at most one MSS per segment
            assert int(length) <= 536 - 12
            up[(src, int(port))] += 1
        elif src == fe.ip:
            down += 1
    requests = Counter((r.client_ip, r.client_port) for r in rec.log if r.client_ip in python_ips)
    for conn, n in requests.items():
        assert up[conn] >= 3 * n            # every request spans >= 3 segments
    assert down > 2 * len(rec.log)          # and responses span several too


# --------------------------------------------------------------------------- no processes


def test_lab_refuses_taken_address(tmp_path: Path) -> None:
    if missing_binaries():
        pytest.skip("lab binaries missing")
    port = 18980
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((FRONTEND_IP, port))
        s.listen(1)
        with pytest.raises(LabError, match="already in use"):
            with Lab(LabSpec("x"), tmp_path, port_base=port):
                pass
    finally:
        s.close()
    assert not (tmp_path / "capture.pcap").exists()


def test_log_line_parser_unescapes() -> None:
    line = ('PCAPLAB ts=1795258406.094 ci=127.0.1.2:38052 fi=127.0.0.10:18080 fe=fe be=be srv=b1 '
            'si=127.0.0.21:18081 bi=127.0.0.10:34312 st=200 tsc=--II t=0/1/0/0/0/1/1 rc=0 '
            'bytes=90/200 cc="SERVERID=zz" cs="" host="h" ck="a=\\"q|x\\\\y \\]\\"; SERVERID=zz" '
            'xff="1.2.3.4, 10.0.0.1" nsc=1 sc1="SERVERID=b1; path=/" sc2="-" r="GET /a#22b HTTP/1.1"')
    r = parse_log_line(line, 0)
    assert r is not None
    assert r.cookie == 'a="q|x\\y ]"; SERVERID=zz'
    assert r.uri == '/a"b' and r.version == "HTTP/1.1"
    assert r.set_cookies == ("SERVERID=b1; path=/",)
    assert r.backend_conn == ("127.0.0.10", 34312, "127.0.0.21", 18081)
    assert r.t_request == pytest.approx(1795258406.095)
