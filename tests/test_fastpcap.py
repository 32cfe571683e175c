"""The C record loop (pcapstats/_fastpcap.c) gives exactly the records and the
decoding that the pure-Python reader and decoder give: record by record on the
samples, the shared captures and crafted files (both byte orders, nanosecond and
modified pcap, snaplen cuts, lying lengths, truncation, parts), and result by
result on whole runs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import pcapstats.ingest.readers as readers
from pcapstats.errors import PcapstatsError
from pcapstats.ingest import Decoder, FileInfo, read_capture
from pcapstats.pipeline import Options, run

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "captures"
C_SCAN = readers._scan
C_SCAN_EPB = readers._scan_epb


def test_the_c_loop_is_built() -> None:
    """The install builds it (setup.py); without it the tool is about 30% slower."""
    assert C_SCAN is not None and C_SCAN_EPB is not None, \
        "pcapstats._fastpcap is missing: reinstall with a C compiler"


def _captures() -> list[Path]:
    out = sorted((ROOT / "samples").glob("*.pcap*"))
    if SHARED.is_dir():
        out += sorted(p for p in SHARED.iterdir() if p.is_file())
    return out


def _records(path: str, c: bool, **kw) -> tuple[list, list, dict]:
    saved = readers._scan, readers._scan_epb
    readers._scan, readers._scan_epb = (C_SCAN, C_SCAN_EPB) if c else (None, None)
    info, problems = FileInfo(path), []
    try:
        recs = list(read_capture(path, info, problems, decoded=True, **kw))
        err = None
    except PcapstatsError as exc:
        recs, err = [], str(exc)
    finally:
        readers._scan, readers._scan_epb = saved
    state = {k: getattr(info, k) for k in ("records", "bytes_read", "stopped_at",
                                          "unsplittable", "format")}
    return recs, [repr(p) for p in problems] + [err], state


def _check_same(path: str, **kw) -> int:
    """Same records and faults either way; the C loop's decoding equals the decoder's."""
    c_recs, c_probs, c_state = _records(path, True, **kw)
    py_recs, py_probs, py_state = _records(path, False, **kw)
    assert (c_probs, c_state) == (py_probs, py_state), path
    assert len(c_recs) == len(py_recs), path
    decoder = Decoder()
    decoded = 0
    for a, b in zip(c_recs, py_recs):
        assert a[:4] == b[:4] and b[4] is None, path
        if a[4] is not None:
            decoded += 1
            assert a[4] == decoder.decode(a[1], a[2], a[3], a[0]), (path, a[2].hex())
    return decoded


def test_same_records_on_captures() -> None:
    decoded = sum(_check_same(str(p)) for p in _captures())
    assert decoded > (1000 if SHARED.is_dir() else 300)


def _pcap(records: list[tuple[int, int, bytes, int]], magic: bytes = b"\xd4\xc3\xb2\xa1",
          snaplen: int = 65535, linktype: int = 1) -> bytes:
    endian = ">" if magic == b"\xa1\xb2\xc3\xd4" else "<"
    out = [magic + struct.pack(endian + "HHiIII", 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), orig))
        if magic == b"\x34\xcd\xb2\xa1":
            out.append(b"\x00" * 8)
        out.append(data)
    return b"".join(out)


def _tcp(payload: bytes = b"GET / HTTP/1.1\r\n\r\n", flags: int = 0x18, doff: int = 0x50,
         total: int | None = None) -> bytes:
    hl = (doff >> 4) * 4
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 7, 9, doff, flags, 0, 0, 0) + b"\x02" * (hl - 20)
    ip_len = 20 + len(tcp) + len(payload) if total is None else total
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0x4000, 64, 6, 0,
                     b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x02")
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload


def _variety() -> list[tuple[int, int, bytes, int]]:
    full = _tcp()
    return [
        (1_700_000_000, 1, full, len(full)),
        (1_700_000_000, 2, full[:60], len(full)),                 # cut by the snaplen
        (1_700_000_001, 999_999, _tcp(b"", 0x02, 0x80), 66),    # a SYN with options
        (4_294_967_295, 4_294_967_295, full, len(full)),       # the largest timestamp
        (5, 0, b"\x00" * 12 + b"\x86\xdd" + b"\x00" * 40, 54),   # IPv6: the Python decoder
        (6, 0, b"\x01\x02", 2),                                   # a runt
        (7, 0, _tcp(total=2000), 2014),                           # IP length past the frame
    ]


@pytest.mark.parametrize("magic", [b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                                   b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1"])
def test_same_records_on_crafted_files(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "v.pcap"
    path.write_bytes(_pcap(_variety() * 3, magic))
    assert _check_same(str(path)) == 15


def _as_ipv6(ip: bytes, plen: int | None = None, nxt: int | None = None) -> bytes:
    """The IPv4 packet ``ip`` (20-byte header) as IPv6: the same TCP segment, addresses
    2001:db8::<IPv4 address>; ``plen`` 0 as TSO writes it, ``nxt`` another next header
    (an extension header the C loop leaves to the decoder)."""
    total = struct.unpack_from("!H", ip, 2)[0]
    pre = b"\x20\x01\x0d\xb8" + bytes(8)
    head = struct.pack("!IHBB", 0x60000000, total - 20 if plen is None else plen,
                       6 if nxt is None else nxt, 64)
    return head + pre + ip[12:16] + pre + ip[16:20] + ip[20:]


def _link(linktype: int, ip: bytes, tags: int = 0) -> bytes:
    """An IP packet behind the link header of ``linktype`` (``tags`` 802.1Q tags on
    Ethernet and Linux cooked v1/v2)."""
    version = ip[0] >> 4 if ip else 4
    etype = b"\x08\x00" if version == 4 else b"\x86\xdd"
    vlan = b"".join(b"\x81\x00" + struct.pack("!H", 10 + k) for k in range(tags))
    if linktype == 1:
        return b"\x02" * 12 + vlan + etype + ip
    if linktype == 113:
        return struct.pack("!HHH8s", 0, 1, 6, b"\x02" * 8) + vlan + etype + ip
    if linktype == 276:
        head = (b"\x81\x00" if tags else etype) + struct.pack("!HIHBB8s", 0, 3, 1, 0, 6,
                                                                b"\x02" * 8)
        if tags:        # the cooked v2 header's protocol is the first tag's type
            vlan = vlan[2:] + etype
        return head + vlan + ip
    if linktype in (0, 108):
        fam = 2 if version == 4 else 30
        return (struct.pack("<I", fam) if linktype == 0 else struct.pack("!I", fam)) + ip
    return ip           # raw IP


LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_link_types_in_c(tmp_path: Path, linktype: int) -> None:
    """The C loop decodes IPv4 and IPv6 TCP behind each link layer the decoder knows
    (VLAN tags too) exactly as the decoder does, and leaves it everything else (IPv6
    extension headers, UDP, cut headers); with the connection table (scan_lane), the
    same run as without it."""
    full = _tcp()[14:]
    syn = _tcp(b"", 0x02, 0x80)[14:]
    recs = []
    for tags in (0, 1, 2) if linktype in (1, 113, 276) else (0,):
        for ip in (full, full[:46], syn, _tcp(total=2000)[14:], b"\x60" + b"\x00" * 39,
                   full[:30],
                   # IPv6: in C (whole, cut, options, TSO's length 0), else the decoder's
                   _as_ipv6(full), _as_ipv6(full)[:66], _as_ipv6(syn), _as_ipv6(full, plen=0),
                   _as_ipv6(full, nxt=0), _as_ipv6(full)[:50]):
            frame = _link(linktype, ip, tags)
            recs += [(1_700_000_000, len(recs), frame, len(frame)),
                     (1_700_000_001, len(recs), frame[:len(frame) - len(ip) + 8], len(frame))]
    if linktype == 0:       # written on a big-endian machine: the family in its order
        frame = struct.pack("!I", 2) + full
        recs += [(1_700_000_002, 0, frame, len(frame))]
    if linktype == 1:       # an IPv6 ethertype on a packet of another version: malformed
        frame = b"\x02" * 12 + b"\x86\xdd\x40" + _as_ipv6(full)[1:]
        recs += [(1_700_000_002, 0, frame, len(frame))]
    path = tmp_path / "l.pcap"
    path.write_bytes(_pcap(recs, linktype=linktype))
    assert _check_same(str(path)) == 8 * (3 if linktype in (1, 113, 276) else 1) + \
        (linktype == 0)
    import pcapstats.pipeline as pipeline
    with_lane = _run_snapshot(str(path))
    saved = readers._scan_lane, pipeline._lane
    try:
        readers._scan_lane = pipeline._lane = None
        assert _run_snapshot(str(path)) == with_lane
    finally:
        readers._scan_lane, pipeline._lane = saved


@pytest.mark.parametrize("tail, problem", [
    (struct.pack("<IIII", 1, 0, 300000, 300000), "larger than the snaplen"),
    (struct.pack("<IIII", 1, 0, 0, 0), "length 0"),
    (struct.pack("<IIII", 1, 0, 100, 100) + b"x" * 10, "truncated"),
    (b"\x01\x02\x03", "header is truncated"),
])
def test_faults_after_ordinary_records(tmp_path: Path, tail: bytes, problem: str) -> None:
    """The C loop stops before a record it is not sure of; Python reports the fault."""
    path = tmp_path / "f.pcap"
    path.write_bytes(_pcap(_variety() * 50, snaplen=65535) + tail)
    assert _check_same(str(path)) == 250
    _, probs, state = _records(str(path), True)
    assert problem in probs[0] and state["records"] == 350


def test_windows_and_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records that straddle window refills, and parts that start and stop mid-file."""
    monkeypatch.setattr(readers, "WINDOW", 4096)
    monkeypatch.setattr(readers, "MAP_WINDOW", 4096)    # the spans a regular file is mapped in
    path = tmp_path / "w.pcap"
    recs = _variety() * 400
    path.write_bytes(_pcap(recs))
    # after each refill the Python loop reads one record itself (undecoded)
    assert 1800 < _check_same(str(path)) < 2000
    # the part boundaries: the offsets of records 700 and 2100
    offsets, off = [], 24
    for _, _, data, _ in recs:
        offsets.append(off)
        off += 16 + len(data)
    assert 900 < _check_same(str(path), start=offsets[700], stop=offsets[2100]) <= 1000
    # a stop that is not a record boundary: both loops flag the part as unsplittable
    _check_same(str(path), start=offsets[700], stop=offsets[2100] + 3)


def _snapshot(path: str) -> tuple:
    r = run([path], Options())
    return (r.packets, r.tcp_packets, r.udp_packets, r.wire_bytes, r.captured_bytes,
            r.first_ts, r.last_ts, r.linktypes, r.connections, [repr(e) for e in r.exchanges],
            r.decode, [repr(p) for p in r.problems])


def test_whole_runs_are_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    for path in sorted((ROOT / "samples").glob("*.pcap*")):
        if path.name.startswith("broken"):
            continue
        with_c = _snapshot(str(path))
        monkeypatch.setattr(readers, "_scan", None)
        without = _snapshot(str(path))
        monkeypatch.setattr(readers, "_scan", C_SCAN)
        assert with_c == without, path.name


# -- random files: the C loop never reads out of bounds and never disagrees ------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_frames = st.one_of(
    st.binary(max_size=120),                                       # anything at all
    st.builds(lambda p, cut: _tcp(p)[:len(_tcp(p)) - cut],         # TCP cut anywhere
              st.binary(max_size=40), st.integers(0, 80)),
    st.builds(lambda p, doff, total: _tcp(p, doff=doff, total=total),
              st.binary(max_size=20), st.sampled_from([0x00, 0x40, 0x50, 0x60, 0xF0]),
              st.integers(0, 0xFFFF)),
    st.builds(lambda p, doff, plen, cut: (lambda f: f[:len(f) - cut])(
        _tcp()[:12] + b"\x86\xdd" + _as_ipv6(_tcp(p, doff=doff)[14:], plen=plen)),
              st.binary(max_size=20), st.sampled_from([0x00, 0x40, 0x50, 0x60, 0xF0]),
              st.one_of(st.none(), st.integers(0, 0xFFFF)), st.integers(0, 80)),
)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                               _frames, st.integers(0, 2**32 - 1)), max_size=12),
       magic=st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                              b"\x34\xcd\xb2\xa1"]),
       linktype=st.sampled_from(LINKTYPES),
       linked=st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=12),
       chop=st.integers(0, 40))
def test_random_files_agree(tmp_path_factory: pytest.TempPathFactory, recs: list,
                            magic: bytes, linktype: int, linked: list, chop: int) -> None:
    # (some frames behind the link type's own header, VLAN tags and all)
    recs = [(sec, frac, _link(linktype, data[14:], tags) if wrap else data, orig)
            for (sec, frac, data, orig), (tags, wrap) in zip(recs, linked + [(0, False)] * 12)]
    body = _pcap(recs, magic, linktype=linktype)
    path = tmp_path_factory.mktemp("r") / "r.pcap"
    path.write_bytes(body[:len(body) - chop] if chop < len(body) else body)
    _check_same(str(path))


# -- the TCP fast lane: ConnectionTable.packet for the commonest segment, in C --------

def _run_snapshot(path: str) -> tuple:
    r = run([path], Options())
    return (r.packets, r.tcp_packets, r.connections, [repr(e) for e in r.exchanges],
            r.decode, [repr(p) for p in r.problems])


def _bench_capture(tmp_path: Path, packets: int) -> str:
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    path = tmp_path / "bench.pcap"
    bench.generate(path, packets)
    return str(path)


def test_lane_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run equals the run without the lane, whether the lane is called per packet
    from Python or runs inside the C record loop (scan_lane): the samples, the shared
    captures and an HTTP-heavy capture of the benchmark's shape (keep-alive, split heads,
    multi-segment bodies, delayed ACKs, retransmissions), where most segments take it."""
    import pcapstats.pipeline as pipeline
    lane, scan_lane = pipeline._lane, readers._scan_lane
    assert lane is not None and scan_lane is not None, \
        "pcapstats._fastpcap is missing: reinstall with a C compiler"
    taken = [0, 0]          # records: by the lane called from Python, inside the C loop

    def counting_lane(table, ts, r):
        ok = lane(table, ts, r)
        taken[0] += ok
        return ok

    def counting_scan(*args):
        out = scan_lane(*args)
        taken[1] += out[1]
        return out

    for path in _captures() + [Path(_bench_capture(tmp_path, 30_000))]:
        try:
            monkeypatch.setattr(pipeline, "_lane", None)
            without = _run_snapshot(str(path))
        except PcapstatsError:
            continue
        monkeypatch.setattr(pipeline, "_lane", counting_lane)
        monkeypatch.setattr(readers, "_scan_lane", None)
        assert _run_snapshot(str(path)) == without, path.name
        monkeypatch.setattr(readers, "_scan_lane", counting_scan)
        assert _run_snapshot(str(path)) == without, path.name
    assert taken[0] > 20_000 and taken[1] > 20_000


def _count_lane(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Installs a scan_lane that counts, in the list returned, the records it does."""
    scan_lane, taken = readers._scan_lane, [0]

    def counting(*args):
        out = scan_lane(*args)
        taken[0] += out[1]
        return out

    monkeypatch.setattr(readers, "_scan_lane", counting)
    return taken


@pytest.mark.parametrize("linktype, tags, ipv6", [(276, 0, False), (1, 0, True),
                                                  (113, 1, True), (0, 0, True)])
def test_lane_behind_other_link_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       linktype: int, tags: int, ipv6: bool) -> None:
    """The benchmark's shape behind Linux cooked headers, VLAN tags, BSD loopback, and
    as IPv6: the C loop and the lane take nearly every packet, and the run equals the one
    without them (connections, exchanges, IPv4/IPv6 counts, link types)."""
    import pcapstats.pipeline as pipeline
    path = _relinked(_bench_capture(tmp_path, 8_000), linktype, tags, ipv6)
    taken = _count_lane(monkeypatch)

    def snapshot() -> tuple:
        r = run([path], Options())
        return (_run_snapshot(path), r.linktypes, r.decode["ipv6_packets"],
                r.decode["ipv4_packets"])

    with_c = snapshot()
    assert taken[0] > 0.95 * 2 * with_c[0][0] and with_c[2] == (with_c[0][0] if ipv6 else 0)
    monkeypatch.setattr(readers, "_scan_lane", None)
    monkeypatch.setattr(readers, "_scan", None)
    monkeypatch.setattr(pipeline, "_lane", None)
    assert snapshot() == with_c


def test_c_http_changes_nothing(tmp_path: Path) -> None:
    """Whole runs with the C reading of common request and response segments (http_req,
    http_resp: called by the lane and by HttpStream.feed) equal the runs without it: the
    samples, the shared captures and the benchmark's shape, where it takes most heads."""
    import pcapstats.http.parser as parser
    import pcapstats.pipeline as pipeline
    counted = [0, 0]
    c_req, c_resp = parser._C_REQ, parser._C_RESP

    def counting(which: int, fast):
        def call(st, ts, data):
            done = fast(st, ts, data)
            counted[which] += done
            return done
        return call

    for path in _captures() + [Path(_bench_capture(tmp_path, 30_000))]:
        try:
            parser.use_c_http(False)
            without = _run_snapshot(str(path))
        except PcapstatsError:
            continue
        finally:
            parser.use_c_http(True)
        assert _run_snapshot(str(path)) == without, path.name
    # without the lane, every segment reaches HttpStream.feed, which calls them
    saved = readers._scan_lane, pipeline._lane
    try:
        readers._scan_lane = pipeline._lane = None
        parser._C_REQ, parser._C_RESP = counting(0, c_req), counting(1, c_resp)
        _run_snapshot(_bench_capture(tmp_path, 30_000))
    finally:
        readers._scan_lane, pipeline._lane = saved
        parser._C_REQ, parser._C_RESP = c_req, c_resp
    assert counted[0] > 1_000 and counted[1] > 2_000, counted


def _seg(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
         payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 1, 0x4000, 64, 6, 0,
                     struct.pack("!I", src), struct.pack("!I", dst))
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload


def test_lane_takes_handshake_and_teardown(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The SYN/ACK (and its repeat), the client's ACK that completes the handshake, a
    server's ACK during it, the first FIN, and the ACKs on a closed connection while it
    lingers (the last one of the teardown counted once) are the lane's; the SYN (a new
    connection), the FIN that closes and an ACK after the linger time (it starts a
    connection) are not. Figures by construction, and equal to the run without the lane."""
    import pcapstats.pipeline as pipeline
    SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08
    cl, sv, c, s = 0x0A000001, 0x0A000002, 1000, 5000      # addresses, ISNs
    req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    c1, s1 = c + 1 + len(req), s + 1 + len(resp)
    up = [(cl, sv, 40000, 80), (sv, cl, 80, 40000)]         # client to server, and back
    segs = [  # (ms, direction, seq, ack, flags, payload, the lane takes it)
        (0, 0, c, 0, SYN, b"", False),
        (1, 1, s, c + 1, SYN | ACK, b"", True),
        (2, 1, s, c + 1, SYN | ACK, b"", True),         # sent again
        (2, 1, s, c + 1, ACK, b"", True),               # the server ACKs in the handshake
        (3, 0, c + 1, s + 1, ACK, b"", True),           # completes it: RTT 3 ms
        (4, 0, c + 1, s + 1, PSH | ACK, req, True),
        (5, 1, s + 1, c1, PSH | ACK, resp, True),
        (6, 0, c1, s1, FIN | ACK, b"", True),
        (7, 1, s1, c1 + 1, FIN | ACK, b"", False),      # the connection closes
        (8, 0, c1 + 1, s1 + 1, ACK, b"", True),         # the last ACK: teardown
        (9, 0, c1 + 1, s1 + 1, ACK, b"", True),         # again: counted as a packet only
        (70_000, 0, c1 + 1, s1 + 1, ACK, b"", False),   # after the linger: a new connection
    ]
    base = 1_700_000_000_000
    recs = []
    for ms, d, seq, ack, flags, payload, _ in segs:
        t = base + ms
        frame = _seg(*up[d][:2], *up[d][2:], seq, ack, flags, payload)
        recs.append((t // 1000, (t % 1000) * 1000, frame, len(frame)))
    path = tmp_path / "hs.pcap"
    path.write_bytes(_pcap(recs))
    lane = pipeline._lane
    taken: list[int] = []

    def recording_lane(table, ts, r):
        ok = lane(table, ts, r)
        if ok:
            taken.append(ts)
        return ok

    monkeypatch.setattr(readers, "_scan_lane", None)        # the lane, called per packet
    monkeypatch.setattr(pipeline, "_lane", recording_lane)
    with_lane = run([str(path)], Options())
    monkeypatch.setattr(pipeline, "_lane", None)
    without = run([str(path)], Options())
    assert taken == [(base + ms) * 1_000_000 for ms, *_, lane_takes in segs if lane_takes]
    assert with_lane.connections == without.connections
    first, late = with_lane.connections
    assert (first["packets"], first["handshake_rtt_ns"], first["handshake_complete"],
            first["setup_packets"], first["teardown_packets"], first["history"],
            first["conn_state"], first["requests"]) == \
        (11, 3_000_000, True, 4, 3, "ShaADdFf", "SF", 1)
    assert late["packets"] == 1 and late["first_ts"] == (base + 70_000) * 1_000_000


def _relinked(path: str, linktype: int, tags: int = 0, ipv6: bool = False) -> str:
    """The capture at ``path`` (Ethernet, IPv4) with each packet behind another link
    header (and made IPv6)."""
    recs = list(read_capture(path, FileInfo(path), []))
    out = f"{path}.{linktype}.{tags}.{int(ipv6)}.pcap"
    frames = []
    for ts, _, d, o in recs:
        frame = _link(linktype, _as_ipv6(d[14:]) if ipv6 else d[14:], tags)
        frames.append((ts // 10**9, ts % 10**9 // 1000, frame, o - len(d) + len(frame)))
    Path(out).write_bytes(_pcap(frames, linktype=linktype))
    return out


@pytest.mark.parametrize("linktype, tags, ipv6", [(1, 0, False), (276, 0, False),
                                                  (1, 2, False), (113, 1, False),
                                                  (101, 0, False), (0, 0, False),
                                                  (1, 0, True), (113, 1, True)])
def test_follow_filter_same_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  linktype: int, tags: int, ipv6: bool) -> None:
    """Follow mode's record filter (parallel._candidates) yields the same items with its
    C loop as without, for a segment cut mid-file and a key set that picks some flows,
    behind each kind of link layer it reads addresses from."""
    import pcapstats.parallel as parallel
    path = _bench_capture(tmp_path, 30_000)
    if (linktype, tags, ipv6) != (1, 0, False):
        path = _relinked(path, linktype, tags, ipv6)
    recs = list(read_capture(path, FileInfo(path), []))
    ip = len(_link(linktype, b"\x60" if ipv6 else b"\x45", tags)) - 1
    a, b = (ip + 8, ip + 44) if ipv6 else (ip + 12, ip + 24)
    keys = {data[a:b] for _, _, data, _ in recs[::97] if len(data) >= b}
    offsets, off = [], 24
    for _, _, data, _ in recs:
        offsets.append(off)
        off += 16 + len(data)
    seg = parallel.Segment(0, path, offsets[5_000], offsets[25_000])
    with_c = list(parallel._candidates(seg, [set(keys)]))
    monkeypatch.setattr(parallel, "_follow_scan", None)
    without = list(parallel._candidates(seg, [set(keys)]))
    assert with_c == without
    candidates = [it for it in with_c if it[3] is not None]
    assert 2_000 < len(candidates) < 19_000 and with_c[-1][0] == 20_000


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_follow_filter_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              linktype: int) -> None:
    """Which frames the filter passes: an IPv4 TCP packet when its addresses and ports
    are a key; a fragment, a UDP or IPv6 packet or a cut header always (the decoder
    decides); the C loop and the Python loop alike."""
    import pcapstats.parallel as parallel
    ip = _tcp()[14:]
    key = ip[12:24]
    other = ip[:12] + b"\x0a\x00\x00\x09" + ip[16:]          # another source address
    frag = other[:6] + b"\x20\x00" + other[8:]              # MF set
    udp = other[:9] + b"\x11" + other[10:]
    frames = [_link(linktype, p) for p in (ip, frag, other, udp, ip[:22], b"\x60" + ip[1:],
                                           _as_ipv6(ip), _as_ipv6(other), _as_ipv6(ip)[:43],
                                           _as_ipv6(ip, nxt=0))]
    path = tmp_path / "f.pcap"
    path.write_bytes(_pcap([(1_700_000_000, i + 1, f, len(f)) for i, f in enumerate(frames)],
                           linktype=linktype))
    seg = parallel.Segment(0, str(path), None, None)
    keys = {key, _as_ipv6(ip)[8:44]}

    def passed() -> list[int]:
        return [it[0] for it in parallel._candidates(seg, [keys]) if it[3] is not None]

    with_c = passed()
    assert with_c == [0, 1, 3, 4, 5, 6, 8, 9]
    # the same frames in a pcapng (its reader's C loop filters them), two of them in
    # blocks the Python loop reads (simple packet blocks)
    ng = tmp_path / "f.pcapng"
    ng.write_bytes(_shb() + _idb(linktype) + b"".join(
        _epb(0, 1_700_000_000_000_000 + i, f) if i not in (2, 3) else _block(3, struct.pack(
            "<I", len(f)) + f) for i, f in enumerate(frames)))
    seg_ng = parallel.Segment(0, str(ng), None, None)
    assert [it[0] for it in parallel._candidates(seg_ng, [keys]) if it[3] is not None] \
        == with_c
    monkeypatch.setattr(parallel, "_follow_scan", None)
    assert passed() == with_c
    assert [it[0] for it in parallel._candidates(seg_ng, [keys]) if it[3] is not None] \
        == with_c


def test_follow_filter_pcapng_as_pcap(tmp_path: Path) -> None:
    """A pcapng segment is filtered like the pcap of the same records: the same items
    (candidates, and every 8192nd record's time), keys shrinking on the way."""
    import pcapstats.parallel as parallel
    path = _bench_capture(tmp_path, 20_000)
    recs = list(read_capture(path, FileInfo(path), []))
    ng = tmp_path / "b.pcapng"
    ng.write_bytes(_shb() + _idb(tsresol=6)
                   + b"".join(_epb(0, ts // 1000, d, o) for ts, _, d, o in recs))
    keys = sorted({data[26:38] for _, _, data, _ in recs[::61] if len(data) >= 38})

    def items(p: str) -> list:
        holder, out = [set(keys)], []
        for item in parallel._candidates(parallel.Segment(0, p, None, None), holder):
            out.append(item)
            if len(out) % 40 == 0 and holder[0]:
                holder[0] = set(sorted(holder[0])[1:])
        return out

    got = items(str(ng))
    assert got == items(path)
    assert 500 < sum(it[3] is not None for it in got) < 15_000
    # the reader's C loop filters nearly all the records (the blocks its Python loop
    # reads, at the windows' edges, come as records), numbering its items on from them
    read = list(read_capture(str(ng), FileInfo(str(ng)), [], follow=[set(keys)]))
    in_c = sum(r[3] for r in read if r[0] is None)
    assert in_c + sum(r[0] is not None for r in read) == len(recs)
    assert in_c > 0.99 * len(recs)
    # the pcapng filter in C against the Python loop
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "_follow_scan", None)
        assert items(str(ng)) == got


def test_follow_filter_keys_shrinking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller drops keys as followed connections end, in the middle of what the C loop
    filtered as one batch: the items must still be what the Python loop yields."""
    import pcapstats.parallel as parallel
    path = _bench_capture(tmp_path, 30_000)
    recs = list(read_capture(path, FileInfo(path), []))
    keys = sorted({data[26:38] for _, _, data, _ in recs[::53] if len(data) >= 38})
    seg = parallel.Segment(0, path, None, None)

    def consume() -> list:
        holder = [set(keys)]
        out = []
        for item in parallel._candidates(seg, holder):
            out.append(item)
            if len(out) % 50 == 0 and holder[0]:   # a connection ends: a new, smaller set
                holder[0] = set(sorted(holder[0])[1:])
        return out

    with_c = consume()
    monkeypatch.setattr(parallel, "_follow_scan", None)
    assert with_c == consume()


# -- pcapng: the Enhanced Packet Block loop ----------------------------------------------

def _block(btype: int, body: bytes, endian: str = "<", blen: int | None = None,
           trailer: int | None = None) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body) if blen is None else blen
    return (struct.pack(endian + "II", btype, n) + body
            + struct.pack(endian + "I", n if trailer is None else trailer))


def _shb(endian: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def _idb(linktype: int = 1, tsresol: int | None = None, tsoffset: int | None = None,
         endian: str = "<") -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack(endian + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3
    if tsoffset is not None:
        opts += struct.pack(endian + "HHq", 14, 8, tsoffset)
    if opts:
        opts += struct.pack(endian + "HH", 0, 0)
    return _block(1, struct.pack(endian + "HHI", linktype, 0, 65535) + opts, endian)


def _epb(ifid: int, ts: int, data: bytes, orig: int | None = None, endian: str = "<",
         cap: int | None = None) -> bytes:
    return _block(6, struct.pack(endian + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF,
                                 len(data) if cap is None else cap,
                                 len(data) if orig is None else orig) + data, endian)


def test_pcapng_crafted(tmp_path: Path) -> None:
    """Two sections (both byte orders), interfaces with other resolutions and offsets and
    link types, simple and other blocks between packet blocks, a timestamp that must be
    clamped, and faults: the same records, faults and decoding either way."""
    full, cut = _tcp(), _tcp()[:60]
    body = b"".join([
        _shb(), _idb(), _idb(101, tsresol=9), _idb(1, tsresol=0x80 | 20, tsoffset=-5),
        _epb(0, 1_700_000_000_000_000, full), _epb(0, 1_700_000_000_000_001, cut, len(full)),
        _epb(1, 5, b"\x45" + b"\x00" * 30), _epb(2, 1 << 40, full),
        _block(3, struct.pack("<I", len(full)) + full),           # simple packet block
        _block(5, b"stats"), _epb(0, 2**64 - 1, full),            # clamped timestamp
        _epb(0, 9, full),
        _shb(">"), _idb(endian=">"), _epb(0, 77, full, endian=">"), _epb(0, 78, cut, 99, ">"),
    ])
    for tail in (b"", _epb(5, 1, full), _epb(0, 1, full, cap=5000), _epb(0, 1, full)[:-3],
                 _block(6, b"\x00" * 8), _epb(0, 1, full)[:-4] + b"\x01\x00\x00\x00"):
        path = tmp_path / "c.pcapng"
        path.write_bytes(body + tail)
        assert _check_same(str(path)) >= 5


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(packets=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1), _frames,
                                  st.integers(0, 2**32 - 1)), max_size=10),
       endian=st.sampled_from(["<", ">"]), chop=st.integers(0, 40))
def test_pcapng_random(tmp_path_factory: pytest.TempPathFactory, packets: list, endian: str,
                       chop: int) -> None:
    body = _shb(endian) + _idb(endian=endian) + _idb(1, 3, 7, endian) \
        + b"".join(_epb(i, ts, d, o, endian) for i, ts, d, o in packets)
    path = tmp_path_factory.mktemp("g") / "r.pcapng"
    path.write_bytes(body[:len(body) - chop] if chop < len(body) else body)
    _check_same(str(path))


def test_pcapng_whole_run_and_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark-shaped capture as pcapng: a whole run equals the pcap's and the run
    without the C loops and the lane, and the parts of a parallel run equal the serial
    run (the C loop starts after the seek)."""
    import pcapstats
    import pcapstats.pipeline as pipeline
    src = _bench_capture(tmp_path, 20_000)
    recs = list(read_capture(src, FileInfo(src), []))
    ng = tmp_path / "b.pcapng"
    ng.write_bytes(_shb() + _idb(tsresol=6)
                   + b"".join(_epb(0, ts // 1000, d, o) for ts, _, d, o in recs))
    a, b = _run_snapshot(src), _run_snapshot(str(ng))
    assert a == b
    with monkeypatch.context() as m:
        m.setattr(pipeline, "_lane", None)
        m.setattr(readers, "_scan_epb", None)
        assert _run_snapshot(str(ng)) == b
    serial = pcapstats.analyze(str(ng))
    split = pcapstats.analyze(str(ng), jobs=2, parts=3)
    assert serial.result.connections == split.result.connections
    assert serial.summary["http"] == split.summary["http"]


def test_pcapng_link_types_mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pcapng whose packets come from an Ethernet and a Linux cooked v2 interface in
    turn (``tcpdump -i any`` beside a NIC): the C loop and the lane take both, and the run
    equals the one without them, the packets of each link type counted as such."""
    import pcapstats.pipeline as pipeline
    src = _bench_capture(tmp_path, 6_000)
    recs = list(read_capture(src, FileInfo(src), []))
    ng = tmp_path / "mixed.pcapng"
    ng.write_bytes(_shb() + _idb(tsresol=6) + _idb(276, tsresol=6) + b"".join(
        _epb(0, ts // 1000, d, o) if (i // 7) % 2 else
        _epb(1, ts // 1000, _link(276, d[14:]), o + 6) for i, (ts, _, d, o) in enumerate(recs)))

    def snapshot() -> tuple:
        r = run([str(ng)], Options())
        return _run_snapshot(str(ng)), r.linktypes, r.wire_bytes, r.captured_bytes

    taken = [0]
    scan_epb = readers._scan_epb

    def counting(*args):
        out = scan_epb(*args)
        taken[0] += out[3]
        return out

    monkeypatch.setattr(readers, "_scan_epb", counting)
    with_c = snapshot()
    assert set(with_c[1]) == {1, 276} and taken[0] > 0.9 * 2 * len(recs)
    monkeypatch.setattr(pipeline, "_lane", None)
    monkeypatch.setattr(readers, "_scan_epb", None)
    assert snapshot() == with_c


def _as_read(path: str) -> tuple[list, list, dict]:
    """Records (without the C loop's decoding: where a window ends, the Python loop
    reads one record itself, undecoded), faults and state of reading ``path``."""
    recs, probs, state = _records(path, True)
    return [r[:4] for r in recs], probs, state


@pytest.mark.parametrize("tail", [b"", struct.pack("<IIII", 1, 0, 100, 100) + b"x" * 10,
                                  b"\x01\x02\x03"])
def test_mapped_file_reads_as_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   tail: bytes) -> None:
    """A regular file is mapped in spans (readers._MappedWindow); it gives the records,
    faults and offsets that reading the same bytes through read() gives, with records
    straddling the spans, and where mapping fails (it then reads)."""
    monkeypatch.setattr(readers, "WINDOW", 4096)
    monkeypatch.setattr(readers, "MAP_WINDOW", 4096)
    path = tmp_path / "m.pcap"
    path.write_bytes(_pcap(_variety() * 300) + tail)
    mapped = _as_read(str(path))
    with monkeypatch.context() as m:          # not a regular file: the read() window
        m.setattr(readers.stat, "S_ISREG", lambda mode: False)
        read = _as_read(str(path))
    assert mapped == read and len(mapped[0]) == 2100
    assert mapped[2]["bytes_read"] == path.stat().st_size - (len(tail) if tail else 0)

    calls = []

    def refuse(*args, **kw):                  # a file system that cannot map files
        calls.append(args)
        if len(calls) > 3:
            raise OSError(19, "No such device")
        return real(*args, **kw)
    real = readers.mmap.mmap
    monkeypatch.setattr(readers.mmap, "mmap", refuse)
    assert _as_read(str(path)) == read and len(calls) == 4


def test_mapped_file_that_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture still being written is read as far as it has gone when the reader gets
    there, as read() does: the size is read again at the end of what was mapped."""
    monkeypatch.setattr(readers, "MAP_WINDOW", 4096)
    path = tmp_path / "g.pcap"
    recs = _variety() * 50
    path.write_bytes(_pcap(recs))
    info, problems = FileInfo(str(path)), []
    it = read_capture(str(path), info, problems)
    first = [next(it) for _ in range(10)]
    with open(path, "ab") as f:
        f.write(_pcap(recs)[24:])             # 350 more records
    rest = list(it)
    assert len(first) + len(rest) == 700 and problems == [] and isinstance(info.size, int)
    assert [r[2] for r in first + rest] == [r[2] for r in recs * 2]


# -- several files: the merge that lets each file's C loop run ----------------------------

def _split(path: str, out: Path, parts: int, how: str) -> list[str]:
    """The records of ``path`` in ``parts`` files: one after the other ("rotated"), dealt
    in turn ("interleaved": the files overlap all along), or in runs of random length."""
    import random
    recs = list(read_capture(path, FileInfo(path), []))
    rng = random.Random(11)
    files: list[list] = [[] for _ in range(parts)]
    k = 0
    for n, (ts, lt, d, o) in enumerate(recs):
        if how == "rotated":
            k = n * parts // len(recs)
        elif how == "interleaved":
            k = n % parts
        elif rng.random() < 0.05:
            k = rng.randrange(parts)
        files[k].append((ts // 10**9, ts % 10**9 // 1000, d, o))
    names = []
    for k, f in enumerate(files):
        p = out / f"{how}-{k}.pcap"
        p.write_bytes(_pcap(f))
        names.append(str(p))
    return names


@pytest.mark.parametrize("how", ["rotated", "interleaved", "runs"])
def test_several_files_with_the_lane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     how: str) -> None:
    """Files read together are merged in time order (ties: the earlier file first) with
    each file's C loop doing the records before the next file's turn: the same run as
    the record-by-record merge without the lane, for files that follow each other,
    that overlap all along or in runs, given out of order, with equal timestamps across
    files, a truncated one and one that is not a capture."""
    import pcapstats.pipeline as pipeline
    src = _bench_capture(tmp_path, 12_000)
    names = _split(src, tmp_path, 4, how)
    with open(names[1], "r+b") as f:          # cut inside a record
        f.truncate(f.seek(0, 2) - 100)
    recs = list(read_capture(names[2], FileInfo(names[2]), []))
    ties = tmp_path / "ties.pcap"             # the same timestamps as another file's
    ties.write_bytes(_pcap([(ts // 10**9, ts % 10**9 // 1000, d, o) for ts, _, d, o in recs[:50]]))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    paths = [names[3], str(ties), names[0], str(junk), names[2], names[1]]
    taken = _count_lane(monkeypatch)

    def snapshot() -> tuple:
        r = run(paths, Options())
        return (r.packets, r.connections, [repr(e) for e in r.exchanges], r.decode,
                [repr(p) for p in r.problems], [repr(f) for f in r.files], r.first_ts,
                r.last_ts)

    with_lane = snapshot()
    # (files dealt in turn: each record is the next file's turn, none left to the C loop)
    assert taken[0] >= {"rotated": 0.9, "runs": 0.3, "interleaved": 0}[how] * with_lane[0]
    monkeypatch.setattr(pipeline, "_lane", None)
    assert snapshot() == with_lane


@pytest.mark.parametrize("server_first", [False, True])
def test_several_files_equal_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        server_first: bool) -> None:
    """A client's packets in one file, its server's in another, each pair at the same
    instant (two capture points with coarse clocks): the earlier file's packet comes
    first, so the order of the files decides who opened each connection and what was
    answered; with the lane as without it."""
    import pcapstats.pipeline as pipeline
    c, srv = 0x0A000001, 0x0A000002
    cli, ser = [], []
    t = 1_700_000_000
    for k in range(300):
        port, cs, ss = 20000 + k, 1000 * k, 50000 * k
        req = b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % k
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        cli += [(t, k * 10, _seg(c, srv, port, 80, cs, 0, 0x02)),
                (t, k * 10 + 1, _seg(c, srv, port, 80, cs + 1, ss + 1, 0x10)),
                (t, k * 10 + 2, _seg(c, srv, port, 80, cs + 1, ss + 1, 0x18, req)),
                (t, k * 10 + 3, _seg(c, srv, port, 80, cs + 1 + len(req), ss + 1 + len(resp),
                                     0x11))]
        ser += [(t, k * 10, _seg(srv, c, 80, port, ss, cs + 1, 0x12)),
                (t, k * 10 + 1, _seg(srv, c, 80, port, ss + 1, cs + 1, 0x10)),
                (t, k * 10 + 2, _seg(srv, c, 80, port, ss + 1, cs + 1 + len(req), 0x18, resp)),
                (t, k * 10 + 3, _seg(srv, c, 80, port, ss + 1 + len(resp), cs + 2 + len(req),
                                     0x11))]
    a, b = tmp_path / "client.pcap", tmp_path / "server.pcap"
    a.write_bytes(_pcap([(s, f, d, len(d)) for s, f, d in cli]))
    b.write_bytes(_pcap([(s, f, d, len(d)) for s, f, d in ser]))
    paths = [str(b), str(a)] if server_first else [str(a), str(b)]

    def snapshot() -> tuple:
        r = run(paths, Options())
        return r.connections, [repr(e) for e in r.exchanges]

    with_lane = snapshot()
    monkeypatch.setattr(pipeline, "_lane", None)
    assert snapshot() == with_lane
    assert sum(r["handshake_complete"] for r in with_lane[0]) == (0 if server_first else 300)
