"""Record boundaries near chosen offsets of a capture file, to read it in parts.

A part reader starts at a boundary found here and the reader of the part before
stops there; that reader, coming from the file's start record by record, checks
that a record really begins at the boundary (``FileInfo.unsplittable`` otherwise),
so a wrong guess is caught, never silently used.

A guess must look like a chain of records: ``CHAIN`` consecutive headers with
plausible lengths (and, for pcap, timestamps near the file's first one), each
starting where the one before ends.
"""

from __future__ import annotations

import os
import struct

from .readers import _PCAP_MAGICS, _PCAPNG_SHB, MAX_BLOCK, MAX_RECORD

CHAIN = 12
SCAN = 1 << 20          # bytes searched after a target offset
_YEAR = 366 * 86400


def boundary_after(path: str, target: int) -> int | None:
    """The first record boundary at or after byte ``target`` of ``path``; None when
    there is none to be found (compressed or unknown format, nothing
    record-like within ``SCAN`` bytes, or ``target`` past the last record)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] in _PCAP_MAGICS:
                check, tag = _pcap_checker(head)
            elif head[:4] == _PCAPNG_SHB and len(head) >= 12:
                check, tag = _pcapng_checker(head)
            else:
                return None
            if check is None:
                return None
            target = max(target, 64)
            f.seek(target)
            window = f.read(SCAN + CHAIN * (MAX_BLOCK + 32))
    except OSError:
        return None
    span = min(SCAN, len(window))
    off = 0
    while off < span:
        if tag is not None:         # pcapng: only where a packet block type is written
            off = min((i for i in (window.find(t, off, span) for t in tag) if i >= 0),
                      default=-1)
            if off < 0:
                return None
        if check(window, off):
            return target + off if target + off < size else None
        off += 1
    return None


def _pcap_checker(head: bytes):
    endian, ts_mult, rec_len = _PCAP_MAGICS[head[:4]]
    if len(head) < 24 + rec_len:
        return None, None
    snaplen = struct.unpack_from(endian + "I", head, 16)[0]
    limit = max(MAX_RECORD, snaplen if snaplen < (1 << 24) else 0)
    first_sec = struct.unpack_from(endian + "I", head, 24)[0]
    lo, hi = first_sec - _YEAR, first_sec + 20 * _YEAR
    frac_max = 1_000_000 if ts_mult == 1000 else 1_000_000_000
    unpack = struct.Struct(endian + "IIII").unpack_from

    def check(buf: bytes, off: int) -> bool:
        end = len(buf)
        for _ in range(CHAIN):
            if off + rec_len > end:
                return off == end      # the chain ran to the end of the file
            sec, frac, incl, orig = unpack(buf, off)
            if not (lo <= sec <= hi and frac < frac_max and 0 < incl <= limit
                    and incl <= orig <= 1 << 20):
                return False
            off += rec_len + incl
        return True

    return check, None      # no tag to search for: every offset is tried


def _pcapng_checker(head: bytes):
    bom = head[8:12]
    endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else None
    if endian is None:
        return None, None
    tags = tuple(struct.pack(endian + "I", t) for t in (6, 3, 2))
    unpack2 = struct.Struct(endian + "II").unpack_from
    unpack1 = struct.Struct(endian + "I").unpack_from

    def check(buf: bytes, off: int) -> bool:
        end = len(buf)
        first = True
        for _ in range(CHAIN):
            if off + 12 > end:
                return off == end and not first
            btype, blen = unpack2(buf, off)
            if first and btype not in (2, 3, 6):     # a part begins with a packet
                return False
            if blen < 12 or blen % 4 or blen > MAX_BLOCK or btype > 0x0FFFFFFF \
                    or off + blen > end or unpack1(buf, off + blen - 4)[0] != blen:
                return False
            if btype in (2, 6) and blen < 32:
                return False
            off += blen
            first = False
        return True

    return check, tags
