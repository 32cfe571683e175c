"""Link, network and transport decoding on the per-packet hot path.

:meth:`Decoder.decode` turns one captured record into a flat tuple, with no
object per packet:

* TCP: ``(6, src, dst, sport, dport, flags, seq, ack, payload, missing, options)``
* UDP: ``(17, src, dst, sport, dport)``
* anything else: ``None`` (counted in :class:`DecodeStats`).

Addresses are the raw 4- or 16-byte strings (cheap to hash; turned into text
once per connection). ``missing`` is the number of TCP payload bytes the
capture did not keep (snaplen): the IP header says they were sent.
``options`` holds the TCP option bytes on SYN segments only.

A malformed packet is counted, never raised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .fragments import Defragmenter

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_NAMES = {
    0: "NULL (BSD loopback)", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP",
    108: "LOOP (OpenBSD loopback)", 113: "Linux cooked (SLL)", 228: "raw IPv4",
    229: "raw IPv6", 276: "Linux cooked v2 (SLL2)",
}
_RAW_TYPES = (12, 14, LINKTYPE_RAW)
# Address families seen in NULL/LOOP headers for IPv6 on the various BSDs, Linux, macOS.
_AF_INET6 = (10, 24, 28, 30)

_ETH_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)
_ETH_MPLS = (0x8847, 0x8848)
_ETH_PPPOE_SESSION = 0x8864

_u16 = struct.Struct("!H").unpack_from
_ipv4_hdr = struct.Struct("!BBHHHBB2x4s4s").unpack_from
_tcp_hdr = struct.Struct("!HHIIBB").unpack_from
_ports = struct.Struct("!HH").unpack_from
# Ethernet + IPv4 without options + TCP, the common case, in one unpack:
# ethertype, version/IHL, total length, flags/fragment offset, protocol, addresses,
# ports, sequence, acknowledgement, data offset, flags
_eth_ip4_tcp = struct.Struct("!12xHBxH2xHxB2x4s4sHHIIBB").unpack_from

_IPV6_EXT = (0, 43, 60, 135, 139, 140)   # hop-by-hop, routing, dest. options, mobility, HIP, shim6


@dataclass(slots=True)
class DecodeStats:
    """Counters of what the decoder could not or would not turn into TCP/UDP."""

    non_ip: int = 0                 # ARP, LLDP, STP...: not IP at all
    other_ip: int = 0               # ICMP, ESP, GRE...: IP but not TCP/UDP
    malformed: int = 0              # headers cut short or inconsistent
    unknown_linktype: dict[int, int] = field(default_factory=dict)
    fragments: int = 0              # IP fragments seen
    ip_versions: dict[int, int] = field(default_factory=dict)


class Decoder:
    """Stateful only for IP fragment reassembly; otherwise a pure function."""

    def __init__(self, max_fragment_sets: int = 4096) -> None:
        self.stats = DecodeStats()
        self.defrag = Defragmenter(max_fragment_sets)
        self._v4 = 0
        self._v6 = 0

    def finish(self) -> None:
        """Fold hot counters into :attr:`stats` (call once at the end)."""
        self.stats.ip_versions = {4: self._v4, 6: self._v6}
        self.defrag.finish()

    def count_fast(self, n: int, n6: int = 0) -> None:
        """``n`` IPv4 and ``n6`` IPv6 packets were decoded by the C record loop."""
        self._v4 += n
        self._v6 += n6

    def decode(self, linktype: int, data: bytes, orig_len: int, ts: int) -> tuple | None:
        """Decode one record; see the module docstring for the result."""
        n = len(data)
        if linktype == LINKTYPE_ETHERNET and n >= 54:
            # the fast path; gives exactly what the general path below gives
            (etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, doff,
             flags) = _eth_ip4_tcp(data, 0)
            hl = (doff >> 4) << 2
            if etype == 0x0800 and vihl == 0x45 and proto == 6 and total >= 20 \
                    and not frag & 0x3FFF and hl >= 20:
                self._v4 += 1
                end = 14 + total
                pstart = 34 + hl
                if end > n:     # cut by the snaplen (a TCP header past the IP end: none)
                    missing = end - (n if n > pstart else pstart)
                    if missing < 0:
                        missing = 0
                    payload = data[pstart:n] if pstart < n else b""
                else:
                    missing = 0
                    payload = data[pstart:end] if pstart < end else b""
                opts = data[54:pstart] if flags & 0x02 and hl > 20 else b""
                return (6, src, dst, sport, dport, flags, seq, ack, payload, missing, opts)
        return self._decode(linktype, data, n, ts)

    def _decode(self, linktype: int, data: bytes, n: int, ts: int) -> tuple | None:
        if linktype == LINKTYPE_ETHERNET:
            if n < 14:
                self.stats.malformed += 1
                return None
            etype = (data[12] << 8) | data[13]
            off = 14
            if etype == 0x0800:
                return self.ipv4(data, off, ts)
            if etype == 0x86DD:
                return self.ipv6(data, off, ts)
            return self._ether_rest(data, etype, off, ts)
        if linktype == LINKTYPE_LINUX_SLL2:
            if n < 20:
                self.stats.malformed += 1
                return None
            return self._ether_rest(data, (data[0] << 8) | data[1], 20, ts)
        if linktype == LINKTYPE_LINUX_SLL:
            if n < 16:
                self.stats.malformed += 1
                return None
            return self._ether_rest(data, (data[14] << 8) | data[15], 16, ts)
        if linktype in _RAW_TYPES or linktype == LINKTYPE_IPV4 or linktype == LINKTYPE_IPV6:
            return self._by_version(data, 0, ts)
        if linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
            if n < 4:
                self.stats.malformed += 1
                return None
            if linktype == LINKTYPE_LOOP:
                fam = int.from_bytes(data[:4], "big")
            else:   # host byte order of the capturing machine: try both
                fam = int.from_bytes(data[:4], "little")
                if fam > 0xFFFF:
                    fam = int.from_bytes(data[:4], "big")
            if fam == 2:
                return self.ipv4(data, 4, ts)
            if fam in _AF_INET6:
                return self.ipv6(data, 4, ts)
            self.stats.non_ip += 1
            return None
        unknown = self.stats.unknown_linktype
        unknown[linktype] = unknown.get(linktype, 0) + 1
        return None

    def _ether_rest(self, data: bytes, etype: int, off: int, ts: int) -> tuple | None:
        """Continue after an ethertype: VLAN stacks, MPLS, PPPoE, then IP."""
        n = len(data)
        depth = 0
        while etype in _ETH_VLAN:
            depth += 1
            if off + 4 > n or depth > 8:
                self.stats.malformed += 1
                return None
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if etype == 0x0800:
            return self.ipv4(data, off, ts)
        if etype == 0x86DD:
            return self.ipv6(data, off, ts)
        if etype in _ETH_MPLS:
            for _ in range(16):
                if off + 4 > n:
                    self.stats.malformed += 1
                    return None
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    return self._by_version(data, off, ts)
            self.stats.malformed += 1
            return None
        if etype == _ETH_PPPOE_SESSION:
            if off + 8 > n:
                self.stats.malformed += 1
                return None
            proto = (data[off + 6] << 8) | data[off + 7]
            if proto == 0x0021:
                return self.ipv4(data, off + 8, ts)
            if proto == 0x0057:
                return self.ipv6(data, off + 8, ts)
        self.stats.non_ip += 1
        return None

    def _by_version(self, data: bytes, off: int, ts: int) -> tuple | None:
        if off >= len(data):
            self.stats.malformed += 1
            return None
        v = data[off] >> 4
        if v == 4:
            return self.ipv4(data, off, ts)
        if v == 6:
            return self.ipv6(data, off, ts)
        self.stats.non_ip += 1
        return None

    def ipv4(self, data: bytes, off: int, ts: int) -> tuple | None:
        if len(data) - off < 20:
            self.stats.malformed += 1
            return None
        vihl, _tos, total, ident, frag, _ttl, proto, src, dst = _ipv4_hdr(data, off)
        ihl = (vihl & 0x0F) << 2
        # total 0: TSO (captured on the sender, the length left for the NIC to fill in) -
        # unless the packet is no longer than a minimum Ethernet frame's 46 bytes, which
        # may be padding (TSO is for segments of more than one MSS anyway)
        if vihl >> 4 != 4 or ihl < 20 or (total < ihl and (total != 0
                                                           or len(data) - off <= 46)):
            self.stats.malformed += 1
            return None
        self._v4 += 1
        end = off + total if total else len(data)
        start = off + ihl
        if frag & 0x3FFF:       # MF set or a non-zero offset: a fragment
            self.stats.fragments += 1
            whole = self.defrag.add_v4(src, dst, ident, proto, (frag & 0x1FFF) << 3,
                                       bool(frag & 0x2000), data[start:end], ts)
            if whole is None:
                return None
            return self._l4(proto, src, dst, whole, 0, len(whole))
        return self._l4(proto, src, dst, data, start, end)

    def ipv6(self, data: bytes, off: int, ts: int) -> tuple | None:
        if len(data) - off < 40:
            self.stats.malformed += 1
            return None
        if data[off] >> 4 != 6:
            self.stats.malformed += 1
            return None
        self._v6 += 1
        plen = _u16(data, off + 4)[0]
        nxt = data[off + 6]
        src = data[off + 8:off + 24]
        dst = data[off + 24:off + 40]
        pos = off + 40
        end = pos + plen if plen else len(data)   # 0: jumbogram or TSO
        for _ in range(16):
            if nxt in _IPV6_EXT:
                if pos + 8 > len(data):
                    self.stats.malformed += 1
                    return None
                nxt, hlen = data[pos], (data[pos + 1] + 1) << 3
                pos += hlen
            elif nxt == 51:     # AH: length in 4-byte units, minus 2
                if pos + 8 > len(data):
                    self.stats.malformed += 1
                    return None
                nxt, hlen = data[pos], (data[pos + 1] + 2) << 2
                pos += hlen
            elif nxt == 44:     # fragment header
                if pos + 8 > len(data):
                    self.stats.malformed += 1
                    return None
                fnext = data[pos]
                fo_m = _u16(data, pos + 2)[0]
                ident = data[pos + 4:pos + 8]
                pos += 8
                if fo_m & 0xFFF9 == 0:    # atomic fragment: offset 0, M clear
                    nxt = fnext
                    continue
                self.stats.fragments += 1
                whole = self.defrag.add_v6(src, dst, ident, fnext, fo_m & 0xFFF8,
                                           bool(fo_m & 1), data[pos:end], ts)
                if whole is None:
                    return None
                return self._l4(fnext, src, dst, whole, 0, len(whole))
            else:
                break
        else:
            self.stats.malformed += 1
            return None
        if pos > end:
            self.stats.malformed += 1
            return None
        return self._l4(nxt, src, dst, data, pos, end)

    def _l4(self, proto: int, src: bytes, dst: bytes, data: bytes, start: int,
            end: int) -> tuple | None:
        """TCP or UDP at ``data[start:end]`` (``end`` as the IP header says; may pass the capture)."""
        if proto == 6:
            if len(data) - start < 20:
                self.stats.malformed += 1
                return None
            sport, dport, seq, ack, doff, flags = _tcp_hdr(data, start)
            hl = (doff >> 4) << 2
            if hl < 20:
                self.stats.malformed += 1
                return None
            pstart = start + hl
            have = len(data)
            if end > have:
                # cut by the snaplen; a TCP header reaching past the IP end misses nothing
                missing = max(0, end - max(have, pstart))
                payload = data[pstart:have] if pstart < have else b""
            else:
                missing = 0
                payload = data[pstart:end] if pstart < end else b""
            opts = data[start + 20:pstart] if flags & 0x02 and hl > 20 else b""
            return (6, src, dst, sport, dport, flags, seq, ack, payload, missing, opts)
        if proto == 17:
            if len(data) - start < 8:
                self.stats.malformed += 1
                return None
            sport, dport = _ports(data, start)
            return (17, src, dst, sport, dport)
        self.stats.other_ip += 1
        return None


def tcp_options(opts: bytes) -> dict[str, int]:
    """MSS, window scale, SACK-permitted and timestamps from SYN option bytes."""
    out: dict[str, int] = {}
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            break
        ln = opts[i + 1]
        if ln < 2 or i + ln > n:
            break
        if kind == 2 and ln == 4:
            out["mss"] = _u16(opts, i + 2)[0]
        elif kind == 3 and ln == 3:
            out["wscale"] = opts[i + 2]
        elif kind == 4:
            out["sack_permitted"] = 1
        elif kind == 8 and ln == 10:
            out["timestamps"] = 1
        i += ln
    return out
