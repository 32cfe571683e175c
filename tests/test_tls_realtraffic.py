"""TLS resumption on real traffic: nginx (TLS 1.2 and 1.3, session cache and tickets), HAProxy in
`mode tcp` in front of nginx pools, clients that resume (s_client -reconnect / -sess_out / -sess_in,
curl with two URLs, Python ssl with `session=`), recorded by tcpdump on loopback.

pcapstats' per-connection `tls_resumed`, `sni`, `tls_version` and the `summary["tls"]` counts must
equal what each client recorded about its own connections, what nginx logged
($ssl_session_reused), and tshark's reading of the same capture (tests/realtraffic/tls_tshark.py).
The lab is in tests/realtraffic/tls_lab.py; one recording (~4 s) holds every main scenario, a
second small one (~2 s) the client-segmentation scenarios.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.realtraffic.tls_compare import PcapstatsTls, analyze_tls, compare, tshark_view  # noqa: E402
from tests.realtraffic.tls_lab import (  # noqa: E402
    PROXY_IP, SCENARIOS, SPLIT_SCENARIOS, TlsRecording, TlsScenario, missing_binaries,
    record_tls)
from tests.realtraffic.tls_tshark import TsharkTls, by_connection, tls_handshakes  # noqa: E402
from tests.realtraffic.tshark import _tshark  # noqa: E402

pytestmark = [pytest.mark.realtraffic, pytest.mark.tshark]

LB_TARGETS = ("rr", "source", "rr_shared")


def _require() -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"TLS real-traffic lab needs {', '.join(missing)} (scripts/test.sh installs them: "
                    "apt-get install -y nginx haproxy tcpdump tshark curl openssl)")


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> TlsRecording:
    _require()
    return record_tls(tmp_path_factory.mktemp("tls-realtraffic"))


@pytest.fixture(scope="module")
def ps(rec: TlsRecording) -> PcapstatsTls:
    return analyze_tls(rec.pcap)


@pytest.fixture(scope="module")
def ts(rec: TlsRecording) -> dict[int, TsharkTls]:
    return tls_handshakes(rec.pcap, rec.tls_ports)


@pytest.fixture(scope="module")
def split_rec(tmp_path_factory: pytest.TempPathFactory) -> TlsRecording:
    _require()
    return record_tls(tmp_path_factory.mktemp("tls-split"), SPLIT_SCENARIOS)


@pytest.fixture(scope="module")
def split_ps(split_rec: TlsRecording) -> PcapstatsTls:
    return analyze_tls(split_rec.pcap)


# --------------------------------------------------------------------------- helpers


def _scenario(name: str) -> TlsScenario:
    return next(s for s in [*SCENARIOS, *SPLIT_SCENARIOS] if s.name == name)


def _counts(resumed: list[bool | None]) -> tuple[int, int]:
    return sum(1 for r in resumed if r is False), sum(1 for r in resumed if r is True)


def client_rows(rec: TlsRecording, ps: PcapstatsTls) -> dict[tuple[str, int], dict]:
    """(scenario, seq) -> pcapstats' row of that client connection. Each scenario has its own client
    address, and its connections are sequential: the k-th connection from that address (whatever
    pcapstats decided it carries) is the client's k-th; where the client knows its port, it must match."""
    by_ip: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(ps.all_rows, key=lambda r: r["conn_id"]):
        by_ip[r["client_ip"]].append(r)
    out = {}
    for name, ip in rec.client_ips.items():
        conns = rec.scenario(name)
        rows = by_ip.get(ip, [])
        assert len(rows) == len(conns), (name, len(rows), len(conns))
        for c, r in zip(conns, rows):
            if c.client_port is not None:
                assert r["client_port"] == c.client_port, (name, c.seq, r["client_port"], c.client_port)
            out[(name, c.seq)] = r
    return out


def backend_rows(rec: TlsRecording, ps: PcapstatsTls) -> dict[tuple[str, int], dict]:
    """(scenario, seq) -> pcapstats' row of HAProxy's backend connection for that client
    connection, tied through HAProxy's log (%ci:%cp -> %bi:%bp)."""
    # the lines of one client address and port, in order (a port the kernel gives again,
    # _nth_on_its_ports, has a line per connection, written as each one ends)
    log: dict[tuple, list] = defaultdict(list)
    for line in rec.proxy_log:
        ip, port = rec.frontends[line.frontend].rsplit(":", 1)
        log[(line.client_ip, line.client_port, ip, int(port))].append(line)
    # by the whole 4-tuple: HAProxy may reuse a source port for a later backend
    # connection to another server, or to the same one, within one recording
    rows: dict[tuple, list[dict]] = defaultdict(list)
    for r in sorted(ps.all_rows, key=lambda r: r["conn_id"]):
        rows[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])].append(r)
    crow = client_rows(rec, ps)
    nth = _nth_on_its_ports(ps.all_rows)
    out = {}
    for c in rec.clients:
        if c.target not in LB_TARGETS:
            continue
        front = crow[(c.scenario, c.seq)]
        line = log[(front["client_ip"], front["client_port"], front["server_ip"],
                    front["server_port"])][nth[front["conn_id"]]]
        assert line.proxy_ip == PROXY_IP
        legs = rows[(line.proxy_ip, line.proxy_port, line.server_ip, line.server_port)]
        # the leg HAProxy opened for this connection: the first one on those ports that
        # began after it
        out[(c.scenario, c.seq)] = next(r for r in legs if r["first_ts"] >= front["first_ts"])
    return out


def _nth_on_its_ports(rows: list[dict]) -> dict[int, int]:
    """conn_id -> how many earlier connections (pcapstats' rows) had its 4-tuple: the
    kernel may give a later connection of a recording the ports of a finished one (on
    loopback Linux reuses TIME_WAIT ports, tcp_tw_reuse=2), and tshark then numbers it
    as a new stream of the same 4-tuple (tls_tshark.by_connection keeps them in order)."""
    seen: dict[tuple, int] = defaultdict(int)
    out = {}
    for r in sorted(rows, key=lambda r: r["conn_id"]):
        key = (r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])
        out[r["conn_id"]] = seen[key]
        seen[key] += 1
    return out


def _nth_with_hello(ps: PcapstatsTls) -> dict[int, int]:
    """_nth_on_its_ports among the connections with a ClientHello, the ones tshark's
    streams are kept for (tls_tshark.tls_handshakes)."""
    return _nth_on_its_ports([r for r in ps.all_rows if ps.streams.get(r["conn_id"]) is not None
                              and ps.streams[r["conn_id"]].client_hellos > 0])


def _table(problems: list[tuple]) -> str:
    return "\n".join("  " + " | ".join(str(x) for x in p) for p in problems)


# --------------------------------------------------------------------------- the recording itself


def test_capture_complete(rec: TlsRecording) -> None:
    assert rec.tcpdump.dropped == 0
    assert rec.tcpdump.captured > 0
    assert rec.seconds < 25, f"the recording took {rec.seconds:.1f}s"


def test_clients_did_what_each_scenario_is_meant_to(rec: TlsRecording) -> None:
    """The truth is what the scenario claims to show (else the environment changed, not pcapstats)."""
    for sc in SCENARIOS:
        conns = rec.scenario(sc.name)
        assert _counts([c.resumed for c in conns]) == sc.expected, (sc.name, [c.resumed for c in conns])
        assert {c.version for c in conns} == {sc.version}, sc.name
        assert all(c.sni == sc.sni for c in conns)
        for c in conns:
            if c.server_reused is not None:     # nginx said it too, in the response body
                assert c.server_reused == c.resumed, (sc.name, c.seq)
    # the balancers did what they are for
    backends = {sc.name: [c.backend for c in rec.scenario(sc.name)] for sc in SCENARIOS if sc.target in LB_TARGETS}
    for name, seq in backends.items():
        target = _scenario(name).target
        if target == "source":
            assert len(set(seq)) == 1, (name, seq)
        else:
            assert all(a != b for a, b in zip(seq, seq[1:])), (name, seq)
            assert len(set(seq)) == 3, (name, seq)
    log = {(line.client_ip, line.client_port): line for line in rec.proxy_log}
    for c in rec.clients:
        if c.target in LB_TARGETS:
            assert log[(c.client_ip, c.client_port)].server == c.backend
            assert log[(c.client_ip, c.client_port)].frontend == c.target


# --------------------------------------------------------------------------- pcapstats vs the clients


def test_each_connection_equals_what_its_client_recorded(rec: TlsRecording, ps: PcapstatsTls) -> None:
    rows = client_rows(rec, ps)
    problems = []
    for c in rec.clients:
        r = rows[(c.scenario, c.seq)]
        mine = (r["app"], r["tls_resumed"], r["sni"], r["tls_version"])
        truth = ("tls", c.resumed, c.sni, c.version)
        if mine != truth:
            problems.append((c.scenario, c.seq, c.client_port, "pcapstats", mine, "client", truth))
        # ALPN: visible in a <= 1.2 ServerHello only (TLS 1.3 sends it encrypted)
        alpn = c.alpn if c.version == "TLS 1.2" else None
        if r["alpn"] != alpn:
            problems.append((c.scenario, c.seq, "alpn", r["alpn"], "client", c.alpn))
    assert not problems, "pcapstats differs from the clients:\n" + _table(problems)


def test_counts_per_scenario_and_summary_equal_the_clients(rec: TlsRecording, ps: PcapstatsTls) -> None:
    rows = client_rows(rec, ps)
    for sc in SCENARIOS:
        conns = rec.scenario(sc.name)
        truth = _counts([c.resumed for c in conns])
        assert _counts([rows[(sc.name, c.seq)]["tls_resumed"] for c in conns]) == truth, sc.name
    tls = ps.analysis.summary["tls"]
    lb = [c for c in rec.clients if c.target in LB_TARGETS]
    # every load-balanced connection is in the capture twice: client -> HAProxy, HAProxy -> backend
    full, resumed = _counts([c.resumed for c in rec.clients + lb])
    assert (tls["connections"], tls["full"], tls["resumed"], tls["unknown"]) == (full + resumed, full, resumed, 0)
    assert tls["resumption"] == {"numerator": resumed, "denominator": full + resumed,
                                 "value": resumed / (full + resumed)}
    for sc in SCENARIOS:
        conns = rec.scenario(sc.name)
        n, k = len(conns), sum(c.resumed for c in conns)
        ip = rec.client_ips[sc.name]
        assert (tls["by_client_ip"][ip]["numerator"], tls["by_client_ip"][ip]["denominator"]) == (k, n), sc.name
        twice = 2 if sc.target in LB_TARGETS else 1
        by_sni = tls["by_sni"][sc.sni]
        assert (by_sni["numerator"], by_sni["denominator"]) == (k * twice, n * twice), sc.name
    proxy = tls["by_client_ip"][PROXY_IP]
    assert (proxy["numerator"], proxy["denominator"]) == (sum(c.resumed for c in lb), len(lb))
    versions = Counter(c.version for c in rec.clients + lb)
    assert tls["versions"] == dict(versions)


def test_nginx_logs_agree(rec: TlsRecording, ps: PcapstatsTls) -> None:
    """Every request nginx logged: the connection it came on (client's or HAProxy's) is resumed
    exactly when nginx says $ssl_session_reused, with the version and SNI nginx saw."""
    # a 4-tuple's connections: several where the kernel gave its ports again
    # (_nth_on_its_ports); nginx's lines carry no time, so a line must agree with one of
    # them (with exactly one, as almost always, that one)
    rows: dict[tuple, list[dict]] = defaultdict(list)
    for r in ps.rows:
        rows[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])].append(r)
    servers = {name: tuple(ep.rsplit(":", 1)) for name, ep in rec.servers.items()}
    assert len(rec.nginx_log) >= sum(1 for c in rec.clients if c.server_reused is not None)
    problems = []
    for line in rec.nginx_log:
        ip, port = servers[line.server]
        seen = [(r["tls_resumed"], r["tls_version"], r["sni"])
                for r in rows[(line.remote_ip, line.remote_port, ip, int(port))]]
        if (line.reused, line.version, line.sni) not in seen:
            problems.append((line, seen))
    assert not problems, _table(problems)


def test_backend_legs_equal_their_client_connection(rec: TlsRecording, ps: PcapstatsTls) -> None:
    """HAProxy in mode tcp relays the TLS bytes: the backend connection shows the same handshake,
    towards the backend the client got its answer from."""
    legs = backend_rows(rec, ps)
    servers = {name: ep for name, ep in rec.servers.items()}
    problems = []
    for c in rec.clients:
        if c.target not in LB_TARGETS:
            continue
        r = legs[(c.scenario, c.seq)]
        got = (f"{r['server_ip']}:{r['server_port']}", r["tls_resumed"], r["sni"], r["tls_version"])
        want = (servers[c.backend], c.resumed, c.sni, c.version)
        if got != want:
            problems.append((c.scenario, c.seq, got, want))
    assert not problems, _table(problems)


def test_resumption_behind_the_balancer_depends_on_affinity(rec: TlsRecording, ps: PcapstatsTls,
                                                           ts: dict[int, TsharkTls]) -> None:
    """Round robin without shared keys: each connection offers its session to a backend that does not
    know it, and gets a full handshake; `balance source` keeps the client on one backend and every
    offer is accepted; shared ticket keys make tickets (1.2) and PSKs (1.3) work across backends,
    but not session ids (the session caches stay per backend)."""
    rows = client_rows(rec, ps)
    tsh = by_connection(ts)
    expected = {"rr_tls12_sessionid": (6, 0), "rr_tls12_ticket": (6, 0), "rr_tls13": (6, 0),
                "source_tls12_sessionid": (1, 5), "source_tls13": (1, 5),
                "rr_shared_tls12_ticket": (1, 5), "rr_shared_tls12_sessionid": (6, 0),
                "rr_shared_tls13": (1, 5)}
    for name, counts in expected.items():
        conns = rec.scenario(name)
        mine = [rows[(name, c.seq)] for c in conns]
        assert _counts([r["tls_resumed"] for r in mine]) == counts, name
        # every connection but the first offered a session (tshark: a non-empty session id in 1.2,
        # pre_shared_key in 1.3), accepted or not
        nth = _nth_with_hello(ps)
        offered = [tsh[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])]
                   [nth[r["conn_id"]]].offered for r in mine]
        assert offered == [c.offered for c in conns] == [False] + [True] * 5, name


def test_tls12_resumptions_share_the_session_key_of_an_earlier_connection(rec: TlsRecording,
                                                                          ps: PcapstatsTls) -> None:
    """`tls_session` groups a <= 1.2 resumption with the connection that created the session."""
    rows = client_rows(rec, ps)
    for sc in SCENARIOS:
        if sc.version != "TLS 1.2":
            continue
        seen: set[str] = set()
        for c in rec.scenario(sc.name):
            key = rows[(sc.name, c.seq)]["tls_session"]
            if c.resumed:
                assert key in seen, (sc.name, c.seq, key, seen)
            if key is not None:
                seen.add(key)


def test_handshake_time_ends_at_the_last_finished(ps: PcapstatsTls, ts: dict[int, TsharkTls]) -> None:
    """`tls_handshake_rtt_ns` is "ClientHello to the end of the TLS handshake" (docs/columns.md): to
    the Finished sent second, the client's in a resumed TLS 1.2 handshake (the server's Finished
    comes first there) and in TLS 1.3, the server's in a full TLS 1.2 one. tshark's frames give the
    same instants (every record here fits in one segment)."""
    tsh = by_connection(ts)
    nth = _nth_with_hello(ps)
    problems = []
    for r in ps.rows:
        rtt = r["tls_handshake_rtt_ns"]
        t = tsh[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])][nth[r["conn_id"]]]
        if rtt is None or not 0 < rtt <= (r["last_ts"] - r["first_ts"]).value or rtt != t.handshake_ns:
            problems.append((r["client_ip"], r["client_port"], r["tls_version"], r["tls_resumed"], rtt,
                             "tshark", t.handshake_ns))
    assert not problems, _table(problems)


# --------------------------------------------------------------------------- tshark


def test_pcapstats_equals_tshark_on_every_connection(rec: TlsRecording, ps: PcapstatsTls,
                                                    ts: dict[int, TsharkTls]) -> None:
    """ClientHellos (2 after a HelloRetryRequest), negotiated version, SNI and resumed, per
    connection, for both legs of every load-balanced connection."""
    same, diff = compare(ps, by_connection(ts))
    assert not diff, "pcapstats | tshark:\n" + _table([(k, v[0], v[1]) for k, v in diff.items()])
    lb = sum(1 for c in rec.clients if c.target in LB_TARGETS)
    assert sum(len(v[0]) for v in same.values()) == len(rec.clients) + lb   # connections, not 4-tuples
    hrr = [h for k, v in same.items() if k[0] == rec.client_ips["sclient_hrr_tls13"] for h in v[1]]
    assert [h["client_hellos"] for h in hrr] == [2, 2]


def test_tshark_equals_the_clients(rec: TlsRecording, ps: PcapstatsTls, ts: dict[int, TsharkTls]) -> None:
    """The reference itself agrees with the truth (so the test above means something)."""
    rows = client_rows(rec, ps)
    tsh = by_connection(ts)
    nth = _nth_with_hello(ps)
    problems = []
    for c in rec.clients:
        r = rows[(c.scenario, c.seq)]
        t = tsh[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])]
        k = nth[r["conn_id"]]
        view = tshark_view(t[k]) if k < len(t) else {}
        if (view.get("resumed"), view.get("sni"), view.get("version")) != (c.resumed, c.sni, c.version):
            problems.append((c.scenario, c.seq, view, c))
    assert not problems, _table(problems)


# --------------------------------------------------------------------------- client segmentation


def _first_client_segments(rec: TlsRecording) -> dict[int, int]:
    """client port -> length of the first segment with payload it sent (tshark)."""
    out: dict[int, int] = {}
    rows = _tshark(rec.pcap, ["-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.len"])
    for port, length in rows:
        out.setdefault(int(port), int(length))
    return out


def test_split_scenarios_segment_as_meant(split_rec: TlsRecording) -> None:
    assert split_rec.tcpdump.dropped == 0
    first = _first_client_segments(split_rec)
    for c in split_rec.clients:
        assert first[c.client_port] == c.first_segment, c
    for sc in SPLIT_SCENARIOS:
        assert _counts([c.resumed for c in split_rec.scenario(sc.name)]) == sc.expected


def _split_problems(rec: TlsRecording, ps: PcapstatsTls, name: str) -> list[tuple]:
    rows = client_rows(rec, ps)
    ts = by_connection(tls_handshakes(rec.pcap, rec.tls_ports))
    nth = _nth_with_hello(ps)
    problems = []
    for c in rec.scenario(name):
        r = rows[(name, c.seq)]
        t = tshark_view(ts[(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])]
                        [nth[r["conn_id"]]])
        mine = (r["app"], r["tls_resumed"], r["sni"], r["tls_version"])
        if mine != ("tls", c.resumed, c.sni, c.version) or (t["resumed"], t["sni"]) != (c.resumed, c.sni):
            problems.append((name, c.seq, "pcapstats", mine, "tshark", t, "client", c.resumed))
    return problems


def test_client_hello_in_7_byte_segments(split_rec: TlsRecording, split_ps: PcapstatsTls) -> None:
    problems = _split_problems(split_rec, split_ps, "split7_tls12")
    assert not problems, _table(problems)


def test_client_hello_whose_first_segment_has_2_bytes(split_rec: TlsRecording, split_ps: PcapstatsTls) -> None:
    problems = _split_problems(split_rec, split_ps, "split2_tls13")
    assert not problems, _table(problems)
