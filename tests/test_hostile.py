"""Hostile captures, one case per test: each is counted (a warning or a figure) and costs
bounded time and memory. Captures are written with struct (``tests/capbuild.py``), fast.

Rules these tests pin down:

* a length field that cannot be true (a pcap record over the snaplen and 256 KiB, a
  pcapng block under 12 bytes, not a multiple of 4, over 260 KiB or past the end of the
  file) stops the file at that record, with a warning naming its byte offset; what came
  before is kept;
* a pcap record with both lengths 0 cannot be a captured packet: reading stops there
  (a gzip bomb of zeros after a valid header ends at once instead of yielding billions
  of empty records);
* compressed data that is broken or ends early stops the file the same way;
* message lengths (Content-Length, chunk sizes) are counted by arithmetic, never
  allocated; an absurd one (>= 2^63) is a malformed message;
* link and IP header chains are walked a bounded number of steps (8 VLAN tags, 16 IPv6
  extension headers), deeper is a malformed packet;
* IP fragments: first copy wins, conflicting overlaps are counted and warned about, sets
  that never complete are counted; a set is dropped past 1024 pieces or 2 datagrams of bytes;
* open connections are bounded by ``max_connections`` (evictions counted and warned about).
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

import pcapstats
from pcapstats.cli import main
from pcapstats.errors import CaptureFormatError
from pcapstats.http import HttpStream
from pcapstats.ingest.fragments import Defragmenter
from tests import capbuild as cb
from tests.capbuild import hard_limit

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MiB = 1 << 20


def measured(fn: Callable[[], Any], trace: bool = True) -> tuple[Any, float, int]:
    """(result, seconds, peak traced bytes) of fn(), under a hard time limit."""
    if trace:
        tracemalloc.start()
    t = time.perf_counter()
    try:
        with hard_limit(120):
            r = fn()
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        if trace:
            tracemalloc.stop()
    return r, time.perf_counter() - t, peak


def analyze(path: Path, trace: bool = True, **kw: Any) -> tuple[pcapstats.Analysis, float, int]:
    return measured(lambda: pcapstats.analyze(str(path), **kw), trace)


def warned(a: pcapstats.Analysis, *parts: str) -> str:
    """The warning that contains every one of `parts` (fails when there is none)."""
    for w in a.summary["warnings"]:
        if all(p in w for p in parts):
            return w
    raise AssertionError(f"no warning with {parts}: {a.summary['warnings']}")


def _good_frames(n: int = 3) -> list[bytes]:
    return cb.http_conversation(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")[:n]


# -- record and block lengths ----------------------------------------------------------------

def test_pcap_record_length_4gib(tmp_path: Path) -> None:
    good = cb.pcap(_good_frames(3))
    bad_at = len(good)
    path = tmp_path / "x.pcap"
    path.write_bytes(good + struct.pack("<IIII", 1, 0, 0xFFFFFFFF, 0xFFFFFFFF) + bytes(100))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 3
    assert a.result.files[0].stopped_at == bad_at
    warned(a, f"at byte {bad_at}:", "record length 4294967295")
    assert secs < 5 and peak < 8 * MiB

    path.write_bytes(cb.pcap_header() + struct.pack("<IIII", 1, 0, 0xFFFFFFFF, 60) + bytes(60))
    with pytest.raises(CaptureFormatError) as e:
        pcapstats.analyze(str(path))
    assert e.value.offset == 24


def test_pcapng_captured_length_4gib(tmp_path: Path) -> None:
    good = cb.pcapng(_good_frames(3))
    path = tmp_path / "x.pcapng"
    path.write_bytes(good + cb.pcapng_epb(_good_frames(1)[0], cap=0xFFFFFFFF))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 3
    warned(a, f"at byte {len(good)}:", "captured length 4294967295")
    assert secs < 5 and peak < 8 * MiB


@pytest.mark.parametrize("blen,what", [(0, "impossible length 0"),
                                       (13, "impossible length 13"),
                                       (1002, "impossible length 1002"),
                                       (0x7FFFFFF0, "impossible length 2147483632"),
                                       (1000, "truncated (needs 1000 bytes, 100 left)")])
def test_pcapng_bad_block_length(tmp_path: Path, blen: int, what: str) -> None:
    """Block length 0, not a multiple of 4, absurd, or past the end of the file."""
    good = cb.pcapng(_good_frames(3))
    path = tmp_path / "x.pcapng"
    path.write_bytes(good + struct.pack("<II", 6, blen) + bytes(92))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 3
    assert a.result.files[0].stopped_at == len(good)
    warned(a, f"at byte {len(good)}:", what)
    assert secs < 5 and peak < 8 * MiB


@pytest.mark.parametrize("code", [9, 14])
def test_pcapng_interface_option_longer_than_its_block(tmp_path: Path, code: int) -> None:
    """Found by the long fuzz run: an if_tsresol (or if_tsoffset) option whose length
    runs past the end of the interface block crashed the option parser."""
    frames = _good_frames(3)
    idb = cb.pcapng_block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", code, 200))
    path = tmp_path / "x.pcapng"
    path.write_bytes(cb.pcapng_shb() + idb + b"".join(cb.pcapng_epb(f) for f in frames))
    a = pcapstats.analyze(str(path))
    assert a.summary["capture"]["packets"] == 3
    # the broken option is ignored: the default resolution (microseconds) holds
    assert a.summary["capture"]["first_ts"] == 1_700_000_000_000_000_000


def test_pcapng_timestamp_beyond_int64_ns_is_clamped_and_warned(tmp_path: Path) -> None:
    frames = _good_frames(3)
    body = cb.pcapng_shb() + cb.pcapng_idb() + cb.pcapng_epb(frames[0])
    at = len(body)
    body += cb.pcapng_epb(frames[1], ts_us=(1 << 64) - 1) + cb.pcapng_epb(frames[2])
    path = tmp_path / "x.pcapng"
    path.write_bytes(body)
    a = pcapstats.analyze(str(path))
    assert a.summary["capture"]["packets"] == 3
    warned(a, f"at byte {at}:", "1 records have a timestamp outside")
    a.tables()      # int64 nanosecond columns build


# -- HTTP lengths ------------------------------------------------------------------------------

def _http(tmp_path: Path, request: bytes, response: bytes) -> pcapstats.Analysis:
    path = tmp_path / "h.pcap"
    path.write_bytes(cb.pcap(cb.http_conversation(request, response)))
    a, secs, peak = analyze(path)
    assert secs < 5 and peak < 16 * MiB
    return a


def test_http_content_length_2gib_is_counted_not_allocated(tmp_path: Path) -> None:
    a = _http(tmp_path, b"POST /up HTTP/1.1\r\nContent-Length: 2147483648\r\n\r\n" + b"x" * 3000,
              b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n" + b"y" * 5000)
    r = a.requests
    assert a.summary["http"]["requests"] == 1 and a.summary["http"]["responses"] == 1
    assert list(r["request_body_bytes"]) == [3000]      # what was seen of the 2 GiB
    assert list(r["response_body_bytes"]) == [5000]

    # the whole 2 GiB, as a gap the TCP layer reports: arithmetic only
    def feed() -> HttpStream:
        h = HttpStream(1)
        h.feed(True, 1, b"GET / HTTP/1.1\r\n\r\n")
        h.feed(False, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n")
        h.gap(False, 3, 2147483648)
        h.feed(False, 4, b"HTTP/1.1 204 No Content\r\n\r\n")
        return h
    h, secs, peak = measured(feed)
    ex = h.take()
    assert ex[0].response_body_bytes == 2147483648 and h.responses == 2
    assert secs < 1 and peak < 1 * MiB


def test_http_chunk_size_2_60_is_counted_and_2_64_is_malformed(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    a = _http(tmp_path, b"GET / HTTP/1.1\r\n\r\n", head + b"1000000000000000\r\n" + b"z" * 5000)
    assert a.summary["http"]["responses"] == 1
    assert list(a.requests["response_body_bytes"]) == [5000]
    assert a.summary["http"]["malformed"] == 0

    a = _http(tmp_path, b"GET / HTTP/1.1\r\n\r\n", head + b"10000000000000000\r\n" + b"z" * 5000)
    assert a.summary["http"]["malformed"] == 1
    warned(a, "1 malformed HTTP messages")

    a = _http(tmp_path, b"GET / HTTP/1.1\r\n\r\n",
              b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n" + b"z" * 50)
    warned(a, "1 malformed HTTP messages")


# -- header chains -----------------------------------------------------------------------------

def _tagged(ntags: int) -> bytes:
    tags = b"".join(b"\x81\x00" + struct.pack("!H", 100 + i) for i in range(ntags))
    return cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(40000, 80, 1, 0, cb.SYN)), tags=tags)


@pytest.mark.parametrize("ntags,ok", [(8, True), (9, False), (5000, False)])
def test_deep_vlan_stack(tmp_path: Path, ntags: int, ok: bool) -> None:
    path = tmp_path / "v.pcap"
    path.write_bytes(cb.pcap([_tagged(ntags)] * 50))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 50
    if ok:
        assert a.summary["tcp"]["connections"] == 1
        assert a.summary["capture"]["not_decoded"]["malformed"] == 0
    else:
        assert a.summary["tcp"]["connections"] == 0
        warned(a, "50 packets had malformed headers")
    assert secs < 5 and peak < 16 * MiB


def _ipv6_chain(nheaders: int) -> bytes:
    seg = cb.tcp(40000, 80, 1, 0, cb.SYN)
    chain = b""
    for i in range(nheaders):      # destination options (60), each 8 bytes, the last names TCP
        nxt = 6 if i == nheaders - 1 else 60
        chain += bytes([nxt, 0, 1, 4, 0, 0, 0, 0])
    return cb.eth(cb.ipv6(cb.CLIENT6, cb.SERVER6, 60 if nheaders else 6, chain + seg),
                  ethertype=b"\x86\xdd")


@pytest.mark.parametrize("nheaders,ok", [(8, True), (15, True), (17, False), (3000, False)])
def test_long_ipv6_extension_header_chain(tmp_path: Path, nheaders: int, ok: bool) -> None:
    path = tmp_path / "e.pcap"
    path.write_bytes(cb.pcap([_ipv6_chain(nheaders)] * 50))
    a, secs, peak = analyze(path)
    if ok:
        assert a.summary["tcp"]["connections"] == 1
    else:
        assert a.summary["tcp"]["connections"] == 0
        warned(a, "50 packets had malformed headers")
    assert secs < 5 and peak < 16 * MiB


# -- IP fragments ------------------------------------------------------------------------------

def _frag(payload: bytes, off: int, more: bool, ident: int) -> bytes:
    return cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, payload, ident=ident, frag_off=off, more=more))


def test_ipv4_fragments_overlapping_with_conflicting_bytes(tmp_path: Path) -> None:
    seg = cb.tcp(40000, 80, 1, 0, cb.SYN) + b"A" * 28            # 48 bytes
    forged = seg[:16] + b"B" * 32                               # same offsets, other bytes
    frames = [_frag(seg[:24], 0, True, 7), _frag(forged[16:40], 16, True, 7),
              _frag(seg[24:], 24, False, 7)]
    path = tmp_path / "f.pcap"
    path.write_bytes(cb.pcap(frames))
    a, secs, peak = analyze(path)
    nd = a.summary["capture"]["not_decoded"]
    assert nd["fragments_reassembled"] == 1 and nd["fragment_overlaps"] == 2
    assert nd["fragment_conflicts"] == 2
    warned(a, "2 IP fragments overlapped earlier ones with different bytes")
    assert a.summary["tcp"]["connections"] == 1
    assert secs < 5 and peak < 16 * MiB


def test_ipv4_fragments_that_never_complete(tmp_path: Path) -> None:
    seg = cb.tcp(40000, 80, 1, 0, cb.SYN) + b"A" * 28
    frames = [_frag(seg[:24], 0, True, i) for i in range(300)]   # last pieces never come
    path = tmp_path / "f.pcap"
    path.write_bytes(cb.pcap(frames))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["not_decoded"]["fragment_sets_incomplete"] == 300
    warned(a, "300 IP fragment sets never completed")
    assert secs < 5 and peak < 16 * MiB


def test_fragment_flood_into_one_set_is_bounded() -> None:
    """200k fragments per id (re-sent pieces, tiny pieces, none completing): linear, bounded."""
    def flood(n: int) -> Defragmenter:
        d = Defragmenter()
        piece = b"x" * 1400
        for i in range(n):
            d.add_v4(b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1, 6, (i % 40) * 1400, True, piece, i)
            d.add_v4(b"\x0a\0\0\x01", b"\x0a\0\0\x02", 2, 6, i * 8 % 60000, True, piece[:8], i)
        d.finish()
        return d
    d, secs, _ = measured(lambda: flood(200_000), trace=False)
    assert d.incomplete >= 1 and d.oversized >= 1
    assert secs < 30
    _, _, peak = measured(lambda: flood(5_000))
    assert peak < 2 * MiB


def test_fragment_sets_are_bounded_in_total_bytes() -> None:
    d = Defragmenter(max_bytes=1 * MiB)
    for ident in range(2000):
        d.add_v4(b"\x0a\0\0\x01", b"\x0a\0\0\x02", ident, 6, 0, True, b"y" * 1400, 0)
    assert d.held <= 1 * MiB and len(d.sets) < 2000
    d.finish()
    assert d.incomplete == 2000 and d.held == 0


# -- connections -------------------------------------------------------------------------------

def test_syn_flood_200k_one_packet_connections(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    t = time.perf_counter()
    cb.syn_flood(str(path), 200_000)
    assert time.perf_counter() - t < 5
    a, secs, _ = analyze(path, trace=False, max_connections=1000)
    tcp = a.summary["tcp"]
    assert a.summary["capture"]["packets"] == 200_000
    assert tcp["connections"] == 200_000 and tcp["syn_only"] == 200_000
    assert tcp["evicted"] == 199_000 == a.result.evicted
    warned(a, "199000 connections were emitted early: open-connection limit reached")
    assert secs < 90


def test_syn_flood_memory_follows_the_open_connection_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What stays is one summary row per connection; the per-connection state (streams,
    parsers) is released on eviction: when the capture ends, only the connections
    under the limit still have theirs."""
    import gc

    from pcapstats.tcp.connections import ConnectionTable
    from pcapstats.tcp.reassembly import HalfStream
    path = tmp_path / "flood.pcap"
    cb.syn_flood(str(path), 20_000)
    streams_at_end = []
    real = ConnectionTable.finish

    def spy(self):
        gc.collect()    # (cycles other tests left with streams in them)
        streams_at_end.append(sum(1 for o in gc.get_objects() if type(o) is HalfStream))
        return real(self)
    monkeypatch.setattr(ConnectionTable, "finish", spy)
    a, _, peak_small = analyze(path, max_connections=100)
    assert a.summary["tcp"]["evicted"] == 19_900
    _, _, peak_all = analyze(path)
    assert streams_at_end == [2 * 100, 2 * 20_000]
    assert peak_small < 20_000 * 3072
    # (at the end, each connection's state is released as its row is made, so the
    # peak of the run without a limit is no longer rows plus all states: about equal)
    assert peak_small < 1.25 * peak_all


def test_connections_that_never_close(tmp_path: Path) -> None:
    frames = []
    for i in range(2000):
        frames += cb.http_conversation(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                                       b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                       sport=1024 + i, close=False)
    path = tmp_path / "open.pcap"
    path.write_bytes(cb.pcap(frames, step_us=10))
    a, secs, peak = analyze(path)
    assert a.summary["tcp"]["closes"]["open"] == 2000
    assert a.summary["http"]["requests"] == 2000 == a.summary["http"]["responses"]
    assert secs < 60 and peak < 2000 * 16 * 1024


def test_flood_of_short_closed_connections_keeps_state_bounded() -> None:
    """20k FIN-closed connections inside one linger period, max_connections=100: the
    table, the lingering queue and the memory follow the limit, not the flood."""
    from pcapstats.tcp.connections import ACK, FIN, SYN, ConnectionTable
    emitted = []
    table = ConnectionTable(lambda c: None, emitted.append, max_connections=100)
    cip, sip = b"\x0a\0\0\x01", b"\x0a\0\0\x02"
    biggest = 0

    def flood() -> None:
        nonlocal biggest
        for i in range(20_000):
            p, ts = 1024 + i % 60000, i * 1000
            table.packet(ts, cip, sip, p, 80, SYN, 100, 0, b"", 0, b"")
            table.packet(ts, sip, cip, 80, p, SYN | ACK, 500, 101, b"", 0, b"")
            table.packet(ts, cip, sip, p, 80, FIN | ACK, 101, 501, b"", 0, b"")
            table.packet(ts, sip, cip, 80, p, FIN | ACK, 501, 102, b"", 0, b"")
            biggest = max(biggest, len(table.closing), len(table.open))
        table.finish()
    _, secs, _ = measured(flood, trace=False)
    assert len(emitted) == 20_000 and table.evicted == 19_900
    assert biggest <= 2 * 100 + 1024 + 1
    assert secs < 30


def test_a_scan_keeps_little_per_connection_while_they_linger() -> None:
    """A SYN scan: 20k connections of a SYN (with options, timestamps differing) and a
    RST, all closed inside one linger period, so all are kept for their late packets.
    What each keeps (tracemalloc): 1,941 bytes with a set of its history letters, an empty
    reassembly heap per direction and a dict of its SYN options; 1,393 without."""
    import struct

    from pcapstats.tcp.connections import ACK, RST, SYN, ConnectionTable
    table = ConnectionTable(lambda c: None, lambda c: None)
    cip, sip = b"\x0a\0\0\x01", b"\x0a\0\0\x02"

    def options(tsval: int) -> bytes:     # MSS 1460, SACK permitted, timestamps, wscale 7
        return (b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + struct.pack("!II", tsval, 0)
                + b"\x01\x03\x03\x07")

    table.packet(0, cip, sip, 999, 80, SYN, 1, 0, b"", 0, options(1))   # (first allocations)
    n = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            p, ts = 1024 + i, i * 1000
            table.packet(ts, cip, sip, p, 80, SYN, 100 + i, 0, b"", 0, options(i))
            table.packet(ts, sip, cip, 80, p, RST | ACK, 0, 101 + i, b"", 0, b"")
        per_connection = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert len(table.closing) == n
    assert per_connection < 1600, per_connection
    first, last = table.open[1], table.open[n]
    assert first.options is last.options == {"mss": 1460, "sack_permitted": 1, "timestamps": 1,
                                              "wscale": 7}
    assert first.cstream.starts is None and first.zeek.history() == "Sr"


class _CountingSink:
    """A reassembly sink that counts the bytes delivered and the bytes missed."""
    n = 0

    def data(self, c: bool, ts: int, d: bytes) -> None:
        self.n += len(d)

    def gap(self, c: bool, ts: int, k: int) -> None:
        self.n += k


def test_tiny_out_of_order_segments_behind_a_hole_are_linear() -> None:
    """200k one-byte segments held behind a hole, then ACKs: no per-segment scan of them."""
    from pcapstats.tcp.reassembly import HalfStream

    def run() -> tuple[HalfStream, _CountingSink]:
        h, sink = HalfStream(True, 4 << 20), _CountingSink()
        h.start(1)
        for i in range(200_000):
            h.segment(101 + 2 * i, b"x", 0, 0, sink)     # every other byte missing
            if i % 100 == 0:
                h.acked(50, 0, sink)
        h.flush(0, sink)
        return h, sink
    (h, sink), secs, _ = measured(run, trace=False)
    assert sink.n == h.offset and not h.pending
    assert secs < 20


def test_retransmission_over_a_long_run_of_held_pieces() -> None:
    """A segment covering 50k held one-byte pieces (once: a recursion per piece)."""
    from pcapstats.tcp.reassembly import HalfStream

    h, sink = HalfStream(True, 4 << 20), _CountingSink()
    h.start(1)
    for i in range(50_000):
        h.segment(101 + i, b"x", 0, 0, sink)
    h.segment(101, b"y" * 60_000, 0, 0, sink)
    h.segment(1, b"z" * 100, 0, 0, sink)
    h.flush(0, sink)
    assert sink.n == h.offset == 60_100 and h.retrans >= 50_000


# -- compressed input --------------------------------------------------------------------------

def test_gzip_bomb_of_zeros_after_a_valid_pcap(tmp_path: Path) -> None:
    """1 GiB of zeros after a pcap header and 3 records: stop at the first zero record."""
    good = cb.pcap(_good_frames(3))
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(cb.gzip_bomb(good, 1024))
    assert path.stat().st_size < 2 * MiB
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 3
    assert a.result.files[0].bytes_read < 4 * MiB
    warned(a, f"at byte {len(good)}:", "record of length 0")
    assert secs < 5 and peak < 16 * MiB


def test_gzip_bomb_of_zeros_after_a_valid_pcapng(tmp_path: Path) -> None:
    good = cb.pcapng(_good_frames(3))
    path = tmp_path / "bomb.pcapng.gz"
    path.write_bytes(cb.gzip_bomb(good, 1024))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 3
    warned(a, f"at byte {len(good)}:", "impossible length 0")
    assert secs < 5 and peak < 16 * MiB


def test_gzip_bomb_of_zeros_right_after_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(cb.gzip_bomb(cb.pcap_header(), 1024))
    (err, secs, peak) = measured(lambda: pytest.raises(CaptureFormatError,
                                                       pcapstats.analyze, str(path)))
    assert err.value.offset == 24 and "length 0" in err.value.problem
    assert secs < 5 and peak < 16 * MiB


def test_garbage_after_valid_records_stops_at_the_first_impossible_record(tmp_path: Path) -> None:
    import random
    good = cb.pcap(_good_frames(3))
    garbage = random.Random(1).randbytes(8 * MiB)
    path = tmp_path / "g.pcap.gz"
    import gzip
    path.write_bytes(gzip.compress(good + garbage, 1))
    a, secs, peak = analyze(path)
    assert a.summary["capture"]["packets"] == 3
    assert a.result.files[0].stopped_at == len(good)
    assert secs < 5 and peak < 16 * MiB


def test_gzip_that_ends_early(tmp_path: Path) -> None:
    import gzip
    plain = cb.pcap(_good_frames(7) * 2500)       # > 1 MiB: more than one read window
    ends, packet_ends = cb.boundaries(plain)
    raw = gzip.compress(plain, 6)
    cut = raw[:len(raw) // 2]
    readable = len(zlib.decompressobj(31).decompress(cut))
    path = tmp_path / "early.pcap.gz"
    path.write_bytes(cut)
    a, secs, peak = analyze(path)
    # every record the surviving half holds is kept, up to the last complete one
    assert a.summary["capture"]["packets"] == sum(1 for e in packet_ends if e <= readable) > 0
    before = max(e for e in ends if e <= readable)
    warned(a, f"at byte {before}:", "compressed data is broken")
    assert secs < 10 and peak < 16 * MiB

    path.write_bytes(raw + b"trailing garbage that is not a gzip member")
    a = pcapstats.analyze(str(path))
    assert a.summary["capture"]["packets"] == len(packet_ends)
    warned(a, f"at byte {len(plain)}:", "compressed data is broken")


# -- the command line --------------------------------------------------------------------------

def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)      # click < 8.2
    except TypeError:
        return CliRunner()                      # click >= 8.2: stderr is always apart


def test_cli_strict_exits_1_on_warnings(tmp_path: Path) -> None:
    runner = _runner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        capture = str(SAMPLES / "broken-truncated.pcap")
        r = runner.invoke(main, ["report", "--no-files", "-q", capture])
        assert r.exit_code == 0, r.output
        r = runner.invoke(main, ["report", "--no-files", "-q", "--strict", capture])
        assert r.exit_code == 1, r.output
        r = runner.invoke(main, ["report", "--no-files", "-q", "--strict",
                                 str(SAMPLES / "http-keepalive.pcap")])
        assert r.exit_code == 0, r.output


@pytest.mark.parametrize("content", [b"", b"not a capture at all", cb.pcap_header()[:10],
                                     cb.pcap_header() + struct.pack("<IIII", 0, 0, 1 << 31, 9)])
def test_cli_unreadable_file_one_line_exit_3(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    runner = _runner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        r = runner.invoke(main, ["report", "--no-files", str(bad)])
    assert r.exit_code == 3
    err = r.stderr
    assert err.count("\n") == 1 and err.startswith("pcapstats: error: ")
    assert str(bad) in err and "Traceback" not in err + r.stdout
    assert r.exception is None or isinstance(r.exception, SystemExit)
