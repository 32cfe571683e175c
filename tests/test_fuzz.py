"""Hostile input, fuzzed: whatever the bytes, pcapstats answers an Analysis or its own error.

Invariants, for every example: ``analyze()`` returns an :class:`Analysis` or raises a
:class:`PcapstatsError` subclass (never another exception), finishes within a hard
per-example time limit (SIGALRM: a hang fails the test instead of stalling CI), and stays
within a memory bound (tracemalloc) on moderate inputs. The layers are fuzzed directly too:
``Decoder.decode``, ``HalfStream``, ``HttpStream`` and ``TlsStream``.

Also here: the truncation test (a real capture cut at every byte offset of its first
2 KB and at random later ones). The hostile cases one by one are in ``test_hostile.py``;
a longer run is ``python scripts/fuzz_long.py --minutes N``.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import tracemalloc
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import pcapstats
from pcapstats.errors import CaptureFormatError, PcapstatsError
from pcapstats.http import HttpStream
from pcapstats.ingest.decode import Decoder, tcp_options
from pcapstats.records import HttpExchange
from pcapstats.tcp.reassembly import MAX_PIECES, HalfStream
from pcapstats.tls import MAX_HANDSHAKE_MESSAGE, TlsStream
from tests import capbuild
from tests.capbuild import hard_limit

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared" / "captures"      # beside the clone, as in CI

SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*.pcap*") if p.stat().st_size < 64 * 1024)
SHARED_FILES = sorted(p for p in SHARED.glob("*.pcap*") if p.stat().st_size < 96 * 1024) \
    if SHARED.is_dir() else []
NO_SHARED = f"shared captures folder {SHARED} is absent"

#: Hypothesis' own per-example deadline: generous (2 shared cores), but catches a slow path.
DEADLINE = timedelta(seconds=6)
CI = bool(os.environ.get("CI"))
FUZZ = dict(deadline=DEADLINE, derandomize=CI, database=None if CI else settings.default.database,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.large_base_example])


def _note(what: str) -> None:
    """Count an outcome in hypothesis' statistics (outside a hypothesis test: nothing)."""
    try:
        event(what)
    except Exception:       # hypothesis.errors.InvalidArgument: not inside @given
        pass


def analyze_ok(path: Path, tables: bool = False) -> pcapstats.Analysis | PcapstatsError:
    """analyze() with the invariants checked; returns the Analysis or our error."""
    with hard_limit():
        try:
            a = pcapstats.analyze(str(path))
        except PcapstatsError as exc:
            _note("error: " + re.sub(r"\d+", "N", getattr(exc, "problem", str(exc)))[:48])
            if isinstance(exc, CaptureFormatError):
                assert exc.offset is None or exc.offset >= 0
            assert "\n" not in str(exc)
            return exc
        assert isinstance(a, pcapstats.Analysis)
        s = a.summary
        _note("analysed, stopped early" if any(f.stopped_at is not None for f in a.result.files)
              else "analysed to the end")
        json.dumps(s)                        # the JSON report can always be written
        assert s["capture"]["packets"] == sum(f.records for f in a.result.files)
        assert all(isinstance(w, str) for w in s["warnings"])
        for f in a.result.files:
            if f.stopped_at is not None:
                assert any(f"at byte {f.stopped_at}:" in w for w in s["warnings"])
        if tables:
            a.tables()                       # the DataFrames (int64 timestamps, dtypes) build
        return a


# -- mutations of real captures --------------------------------------------------------------

_FIELDS = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x40000, 0x40001, 0xFFFF, 0x10000,
           12, 13, 16, 28, 32]

_flip = st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7))
_byte = st.tuples(st.just("byte"), st.floats(0, 1), st.integers(0, 255))
mutation = st.one_of(
    _flip, _flip, _flip, _byte, _byte,          # weighted: most damage is inside packets
    st.tuples(st.just("head"), st.floats(0, 0.05), st.integers(0, 7)),
    st.tuples(st.just("field"), st.floats(0, 1), st.sampled_from(_FIELDS)),
    st.tuples(st.just("length"), st.integers(0, 1000), st.sampled_from(_FIELDS)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.integers(0, 0)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("splice"), st.floats(0, 1), st.integers(1, 4096)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, ops: list[tuple], other: bytes) -> bytes:
    b = bytearray(data)
    ends, _ = capbuild.boundaries(data)
    for kind, where, arg in ops:
        if not b:
            break
        # past the 24-byte file header (hypothesis likes 0.0): "head" damages the header
        lo = 0 if kind == "head" or len(b) <= 24 else 24
        i = lo + int(where * (len(b) - 1 - lo)) if isinstance(where, float) else 0
        if kind in ("flip", "head"):
            b[i] ^= 1 << arg
        elif kind == "byte":
            b[i] = arg
        elif kind == "field":
            b[i:i + 4] = arg.to_bytes(4, "little" if i % 2 else "big")
        elif kind == "length":
            # the length field of one record/block, where a reader trusts it most:
            # pcap incl_len (+8), pcapng block total length (+4)
            start = ends[1 + where % max(1, len(ends) - 1)] if len(ends) > 1 else 0
            at = start + (4 if b[:4] == b"\x0a\x0d\x0d\x0a" else 8)
            b[at:at + 4] = arg.to_bytes(4, "little" if b[:1] in (b"\xd4", b"M", b"4", b"\n")
                                        else "big")
        elif kind == "truncate":
            del b[i:]
        elif kind == "delete":
            del b[i:i + arg]
        elif kind == "splice":
            j = int(where * max(0, len(other) - 1))
            b[i:i] = other[j:j + arg]
        elif kind == "insert":
            b[i:i] = arg
    return bytes(b)


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


@settings(max_examples=300, **FUZZ)
@given(src=st.sampled_from(SAMPLE_FILES), other=st.sampled_from(SAMPLE_FILES),
       ops=st.lists(mutation, min_size=1, max_size=6), compress=st.booleans())
def test_mutated_samples(tmp_path_factory, src, other, ops, compress):
    data = mutate(_plain(src), ops, _plain(other))
    path = tmp_path_factory.mktemp("m") / ("x.pcap.gz" if compress else "x.pcap")
    path.write_bytes(gzip.compress(data, 1) if compress else data)
    analyze_ok(path, tables=True)


@pytest.mark.skipif(not SHARED_FILES, reason=NO_SHARED)
@settings(max_examples=120, **FUZZ)
@given(idx=st.integers(0, 10_000), other=st.sampled_from(SAMPLE_FILES),
       ops=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_shared_captures(tmp_path_factory, idx, other, ops):
    src = SHARED_FILES[idx % len(SHARED_FILES)]
    data = mutate(_plain(src), ops, _plain(other))
    path = tmp_path_factory.mktemp("m") / "x.pcap"
    path.write_bytes(data)
    analyze_ok(path, tables=True)


@settings(max_examples=40, **FUZZ)
@given(src=st.sampled_from([p for p in SAMPLE_FILES if p.suffix == ".gz"]
                           + [SAMPLES / "http-keepalive.pcap"]),
       ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_gzip_stream(tmp_path_factory, src, ops):
    """Damage inside the compressed bytes: corrupt deflate, bad CRC, early end, garbage."""
    raw = gzip.compress(_plain(src), 6)
    path = tmp_path_factory.mktemp("g") / "x.pcap.gz"
    path.write_bytes(mutate(raw, [o for o in ops if o[0] != "length"], raw))
    analyze_ok(path)


_MAGICS = [b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1",
           b"\x0a\x0d\x0d\x0a", b"\x1f\x8b"]


@settings(max_examples=150, **FUZZ)
@given(magic=st.sampled_from(_MAGICS), body=st.binary(max_size=4096))
@example(magic=b"\xd4\xc3\xb2\xa1", body=bytes(4000))
@example(magic=b"\x0a\x0d\x0d\x0a", body=bytes(4000))
@example(magic=b"\x0a\x0d\x0d\x0a", body=b"\x1c\0\0\0\x4d\x3c\x2b\x1a" + bytes(100))
def test_random_bytes(tmp_path_factory, magic, body):
    path = tmp_path_factory.mktemp("r") / "x.pcap"
    path.write_bytes(magic + body)
    analyze_ok(path, tables=True)


@settings(max_examples=40, **FUZZ)
@given(src=st.sampled_from(SAMPLE_FILES + SHARED_FILES), other=st.sampled_from(SAMPLE_FILES),
       ops=st.lists(mutation, min_size=1, max_size=4))
def test_memory_bounded_on_moderate_inputs(tmp_path_factory, src, other, ops):
    """A capture under 100 KB (mutated) is analysed in well under 32 MB of Python memory."""
    data = mutate(_plain(src), ops, _plain(other))
    path = tmp_path_factory.mktemp("mem") / "x.pcap"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        analyze_ok(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak} bytes for a {len(data)}-byte capture"


# -- the layers, directly ---------------------------------------------------------------------

_LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
_ETH_TCP = capbuild.eth(capbuild.ipv4(capbuild.CLIENT, capbuild.SERVER, 6,
                                      capbuild.tcp(1234, 80, 1, 0, 0x02) + b"GET /"))


@settings(max_examples=600, **FUZZ)
@given(lt=st.one_of(st.sampled_from(_LINKTYPES), st.integers(0, 1 << 16)),
       data=st.one_of(st.binary(max_size=300),
                      st.builds(lambda ops: mutate(_ETH_TCP, ops, _ETH_TCP),
                                st.lists(mutation, max_size=4))),
       ts=st.integers(0, 1 << 63))
def test_decoder_random_packets(lt, data, ts):
    dec = Decoder(max_fragment_sets=8)
    for _ in range(2):      # twice: a fragment may complete with its own copy
        r = dec.decode(lt, data, len(data), ts)
        if r is not None:
            assert r[0] in (6, 17)
            assert len(r) == (11 if r[0] == 6 else 5)
            assert len(r[1]) in (4, 16) and len(r[1]) == len(r[2])
            if r[0] == 6:
                assert isinstance(r[8], bytes) and r[9] >= 0
                tcp_options(r[10])
    dec.finish()
    tcp_options(data[:60])


class _Sink:
    def __init__(self) -> None:
        self.n = 0

    def data(self, from_client: bool, ts: int, data: bytes) -> None:
        assert data
        self.n += len(data)

    def gap(self, from_client: bool, ts: int, nbytes: int) -> None:
        assert nbytes > 0
        self.n += nbytes


seg_op = st.tuples(st.sampled_from(["seg", "seg", "seg", "ack", "flush"]),
                   st.integers(-70_000, 70_000), st.integers(0, 3000), st.integers(0, 2000))


@settings(max_examples=300, **FUZZ)
@given(isn=st.integers(0, 0xFFFFFFFF), ops=st.lists(seg_op, max_size=60),
       max_pending=st.sampled_from([1024, 1 << 16, 4 << 20]))
def test_halfstream_any_segments(isn, ops, max_pending):
    h = HalfStream(True, max_pending)
    h.start(isn + 1)
    sink = _Sink()
    for kind, rel, n, missing in ops:
        seq = (isn + 1 + rel) & 0xFFFFFFFF
        if kind == "seg":
            h.segment(seq, bytes([rel & 0xFF]) * n, missing if rel % 3 == 0 else 0, 0, sink)
        elif kind == "ack":
            h.acked(seq, 0, sink)
        else:
            h.flush(0, sink)
            assert not h.pending
        # everything delivered or declared missing, nothing twice
        assert sink.n == h.offset
        assert h.pending_bytes <= max_pending + 3000
        assert len(h.pending) <= MAX_PIECES + 2
        assert h.pending_bytes == sum(len(p) for p in h.pending.values() if isinstance(p, bytes))
    h.flush(0, sink)
    assert sink.n == h.offset and not h.pending


_HTTP = [b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
         b"CONNECT a:443 HTTP/1.1\r\n\r\n", b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\n\r\n",
         b"POST /x HTTP/1.0\r\nContent-Length: 2147483648\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
         b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         b"HTTP/1.1 100 Continue\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
         b"HEAD / HTTP/1.1\r\n\r\n", b"HTTP/1.1 304 Not Modified\r\n\r\n",
         b"0\r\nTrailer: x\r\n\r\n", b"\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nuntil close"]

http_op = st.one_of(
    st.tuples(st.just("feed"), st.booleans(), st.builds(
        lambda k, ops, cuts: (mutate(_HTTP[k], ops, _HTTP[(k + 1) % len(_HTTP)]), cuts),
        st.integers(0, len(_HTTP) - 1), st.lists(mutation, max_size=3),
        st.lists(st.integers(0, 200), max_size=4))),
    st.tuples(st.just("gap"), st.booleans(), st.sampled_from([0, -1, 1, 7, 1400, 1 << 31, 1 << 62])),
    st.tuples(st.just("raw"), st.booleans(), st.binary(max_size=64)),
)


@settings(max_examples=600, **FUZZ)
@given(ops=st.lists(http_op, max_size=14), max_hdr=st.sampled_from([64, 300, 65536]),
       close_twice=st.booleans())
def test_http_stream_any_input(ops, max_hdr, close_twice):
    h = HttpStream(1, max_header_bytes=max_hdr)
    out: list[HttpExchange] = []
    for ts, (kind, client, arg) in enumerate(ops):
        if kind == "feed":
            data, cuts = arg
            points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
            for a, b in zip(points, points[1:]):
                h.feed(client, ts, data[a:b])
        elif kind == "gap":
            h.gap(client, ts, arg)
        else:
            h.feed(client, ts, arg)
        out += h.take()
        for r in (getattr(h, "_req", None), getattr(h, "_resp", None)):
            # what a direction buffers stays bounded by the header limit
            assert len(getattr(r, "buf", b"")) <= max(max_hdr, 64) + 1
            assert len(getattr(r, "carry", b"")) <= max(max_hdr, 64) + 4096
    h.close(len(ops))
    if close_twice:
        h.close(len(ops) + 1)
        h.feed(True, 0, b"GET / HTTP/1.1\r\n\r\n")
        h.gap(False, 0, 5)
    out += h.take()
    assert all(isinstance(e, HttpExchange) for e in out)
    assert len(out) == h.requests            # every request comes out once, after close
    assert [e.depth for e in out] == list(range(1, len(out) + 1))
    assert min(h.responses, h.malformed, h.skipped_bytes, h.pipelined) >= 0


_TLS = [b"\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00",
        b"\x16\x03\x03\x00\x4a\x02\x00\x00\x46\x03\x03" + bytes(32) + b"\x20" + bytes(32)
        + b"\x13\x01\x00",
        b"\x17\x03\x03\x00\x05hello", b"\x14\x03\x03\x00\x01\x01", b"\x15\x03\x03\x00\x02\x02\x28",
        b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + bytes(37),
        b"\x16\x03\x03\x40\x00\x0b\xff\xff\xff", b"\x16\x03\x03\x00\x04\x04\x00\x00\x00"]

tls_op = st.one_of(
    st.tuples(st.just("feed"), st.booleans(), st.builds(
        lambda k, ops: mutate(_TLS[k], ops, _TLS[(k + 3) % len(_TLS)]),
        st.integers(0, len(_TLS) - 1), st.lists(mutation, max_size=3))),
    st.tuples(st.just("gap"), st.booleans(), st.sampled_from([0, -1, 1, 5, 70_000])),
    st.tuples(st.just("raw"), st.booleans(), st.binary(max_size=64)),
)


@settings(max_examples=500, **FUZZ)
@given(ops=st.lists(tls_op, max_size=12), split=st.integers(1, 7))
def test_tls_stream_any_input(ops, split):
    t = TlsStream()
    for ts, (kind, client, arg) in enumerate(ops):
        if kind == "gap":
            t.gap(client, ts, arg)
        else:
            for i in range(0, len(arg), split):
                t.feed(client, ts, arg[i:i + split])
        for d in (t._c, t._s):
            assert len(d.hdr) <= 5 and len(d.hs_hdr) <= 4
            assert d.hs_body is None or len(d.hs_body) <= MAX_HANDSHAKE_MESSAGE
    t.close(len(ops))
    t.close(len(ops) + 1)
    json.dumps(t.as_dict())
    assert t.malformed >= 0 and t.gap_bytes >= 0


# -- truncation at every offset --------------------------------------------------------------

def _expect_cut(path: Path, data: bytes, cut: int, ends: list[int], packet_ends: list[int]) -> None:
    """Cut `data` at `cut`: complete records are counted and the cut offset is named."""
    path.write_bytes(data[:cut])
    before = max(e for e in ends if e <= cut)      # start of the record the cut falls in
    complete = sum(1 for e in packet_ends if e <= cut)
    r = analyze_ok(path)
    if isinstance(r, PcapstatsError):
        assert isinstance(r, CaptureFormatError), r
        assert complete == 0, f"cut at {cut}: {r} although {complete} records are complete"
        assert r.offset == before, f"cut at {cut}: {r}"
        return
    assert r.summary["capture"]["packets"] == complete, f"cut at {cut}"
    stopped = r.result.files[0].stopped_at
    if cut == before:
        assert stopped is None, f"clean cut at {cut} reported a fault at {stopped}"
    else:
        assert stopped == before, f"cut at {cut}: stopped_at {stopped}, expected {before}"
        assert any(f"at byte {before}:" in w for w in r.summary["warnings"]), \
            r.summary["warnings"]


@pytest.mark.parametrize("name", ["http-keepalive.pcap", "multi-if.pcapng", "be-usec.pcap"])
def test_truncated_at_every_offset(tmp_path: Path, name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    ends, packet_ends = capbuild.boundaries(data)
    assert ends[-1] == len(data)
    rnd = random.Random(name)
    cuts = list(range(min(len(data), 2048) + 1))
    cuts += sorted(rnd.sample(range(2049, len(data)), min(60, max(0, len(data) - 2049))))
    path = tmp_path / ("cut" + "".join(Path(name).suffixes))
    for cut in cuts:
        _expect_cut(path, data, cut, ends, packet_ends)


def expect_gzip_cut(path: Path, raw: bytes, plain: bytes, cut: int) -> None:
    """A .gz cut at `cut`: every record that the surviving compressed bytes hold is counted."""
    d = zlib.decompressobj(31)
    try:
        readable = len(d.decompress(raw[:cut]))
    except zlib.error:
        readable = 0
    ends, packet_ends = capbuild.boundaries(plain)
    before = max(e for e in ends if e <= readable)
    complete = sum(1 for e in packet_ends if e <= readable)
    path.write_bytes(raw[:cut])
    r = analyze_ok(path)
    if isinstance(r, PcapstatsError):
        assert isinstance(r, CaptureFormatError), r
        assert complete == 0 and r.offset == before, f"cut at {cut}: {r}"
        return
    assert r.summary["capture"]["packets"] == complete, f"cut at {cut}"
    if cut == len(raw):
        assert r.result.files[0].stopped_at is None
    else:
        assert r.result.files[0].stopped_at == before, f"cut at {cut}"
        assert any(f"at byte {before}: compressed data is broken" in w
                   for w in r.summary["warnings"]), r.summary["warnings"]


def test_truncated_gzip_at_every_offset(tmp_path: Path) -> None:
    raw = (SAMPLES / "gzip.pcap.gz").read_bytes()
    plain = gzip.decompress(raw)
    for cut in range(len(raw) + 1):
        expect_gzip_cut(tmp_path / "cut.pcap.gz", raw, plain, cut)


def test_truncated_large_gzip(tmp_path: Path) -> None:
    """Several MiB decompressed (more than one read window), cut at random places."""
    plain = capbuild.pcap(capbuild.http_conversation(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", random.Random(3).randbytes(300_000)) * 10)
    raw = gzip.compress(plain, 6)
    assert len(plain) > 3 << 20
    rnd = random.Random(4)
    for cut in [len(raw) - 1, len(raw) - 9, *rnd.sample(range(len(raw)), 8)]:
        expect_gzip_cut(tmp_path / "cut.pcap.gz", raw, plain, cut)
