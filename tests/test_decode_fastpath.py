"""The decoder's fast path (Ethernet, IPv4 without options, TCP) gives exactly what
the general path gives, on every record of the samples and the shared captures,
and on crafted edge cases."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pcapstats.errors import PcapstatsError
from pcapstats.ingest import Decoder, FileInfo, read_capture

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "captures"


def _files() -> list[Path]:
    out = sorted(p for p in (ROOT / "samples").glob("*.pcap*"))
    if SHARED.is_dir():
        out += sorted(p for p in SHARED.iterdir() if p.is_file())
    return out


def _same_decoding(records) -> int:
    fast, slow = Decoder(), Decoder()
    fast_hits = 0
    for ts, lt, data, orig in records:
        a = fast.decode(lt, data, orig, ts)
        b = slow._decode(lt, data, len(data), ts)
        assert a == b, (lt, data.hex())
        fast_hits += lt == 1 and a is not None
    fast.finish()
    slow.finish()
    assert fast.stats == slow.stats
    return fast_hits


def test_fast_path_equals_general_path_on_captures() -> None:
    hits = 0
    for path in _files():
        try:
            hits += _same_decoding(read_capture(str(path), FileInfo(str(path)), []))
        except PcapstatsError:
            continue
    # the samples alone take the fast path 374 times; the shared captures add thousands
    assert hits > (1000 if SHARED.is_dir() else 300)


def _frame(vihl=0x45, total=None, frag=0, proto=6, doff=0x50, flags=0x18,
           payload=b"hello", cut=0) -> bytes:
    hl = (doff >> 4) * 4
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 2, doff, flags, 0, 0, 0) + b"\x01" * (hl - 20)
    ip_len = 20 + len(tcp) + len(payload) if total is None else total
    ip = struct.pack("!BBHHHBBH4s4s", vihl, 0, ip_len, 7, frag, 64, proto, 0,
                     b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02")
    frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload
    return frame[:len(frame) - cut] if cut else frame


@pytest.mark.parametrize("kw", [
    {}, {"payload": b""}, {"cut": 3}, {"cut": 5}, {"total": 20}, {"total": 39},
    {"total": 0}, {"total": 2000}, {"doff": 0x40}, {"doff": 0x80, "flags": 0x02},
    {"doff": 0xF0}, {"frag": 0x2000}, {"frag": 0x4000}, {"frag": 0x0001},
    {"proto": 17}, {"vihl": 0x46}, {"vihl": 0x55}, {"payload": b"x" * 3, "cut": 1},
    {"doff": 0xF0, "total": 50, "cut": 35},
])
def test_fast_path_edge_cases(kw: dict) -> None:
    data = _frame(**kw)
    _same_decoding([(0, 1, data, len(data))])


def test_tcp_header_past_the_ip_end_misses_nothing() -> None:
    """Found by the long fuzz run: a TCP header longer than what the IP length leaves,
    in a frame cut by the snaplen, gave a negative count of missed bytes (which later
    crashed reassembly)."""
    data = _frame(doff=0xF0, total=50, payload=b"", cut=35)
    r = Decoder().decode(1, data, len(data) + 35, 0)
    assert r is not None and r[8] == b"" and r[9] == 0
