"""Fast builders of hostile captures for the fuzz and hostile-input tests (struct only, no scapy),
and the hard time limit those tests run under."""

from __future__ import annotations

import contextlib
import signal
import struct
import zlib
from typing import Iterator

#: Hard limit of one fuzz example (seconds): a hang fails the test instead of stalling CI.
HARD_LIMIT = 30


@contextlib.contextmanager
def hard_limit(seconds: int = HARD_LIMIT) -> Iterator[None]:
    """Raise TimeoutError in the body if it runs longer than ``seconds`` (SIGALRM)."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s: a hang")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)

PCAP_HDR = struct.Struct("<IHHiIII")
REC_HDR = struct.Struct("<IIII")


def pcap_header(linktype: int = 1, snaplen: int = 65535) -> bytes:
    return PCAP_HDR.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(data: bytes, ts_us: int = 0, orig: int | None = None) -> bytes:
    return REC_HDR.pack(ts_us // 1_000_000, ts_us % 1_000_000, len(data),
                        len(data) if orig is None else orig) + data


def pcap(frames: list[bytes], linktype: int = 1, step_us: int = 1000) -> bytes:
    return pcap_header(linktype) + b"".join(
        pcap_record(f, 1_700_000_000_000_000 + i * step_us) for i, f in enumerate(frames))


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1,
         frag_off: int = 0, more: bool = False) -> bytes:
    flags = (0x2000 if more else 0) | (frag_off >> 3)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, proto, 0,
                      src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


ETH_IP = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00"


def eth(ip_packet: bytes, ethertype: bytes = b"\x08\x00", tags: bytes = b"") -> bytes:
    return ETH_IP[:12] + tags + ethertype + ip_packet


CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SYN, ACK, FIN, PSH, RST = 0x02, 0x10, 0x01, 0x08, 0x04


def syn_flood(path: str, n: int) -> None:
    """``n`` one-packet connections: SYNs from distinct source ports and addresses, written fast."""
    rec = REC_HDR.pack
    base = bytearray(eth(ipv4(CLIENT, SERVER, 6, tcp(1, 80, 1000, 0, SYN))))
    out = bytearray(pcap_header())
    for i in range(n):
        # source address 10.x.y.z and port vary; checksums are not checked by pcapstats
        base[26:30] = struct.pack("!I", 0x0A000000 | (i >> 14))
        base[34:36] = struct.pack("!H", 1024 + (i & 0x3FFF))
        out += rec(1_700_000_000 + i // 1000, i % 1000 * 1000, len(base), len(base))
        out += base
    with open(path, "wb") as f:
        f.write(out)


def http_conversation(request: bytes, response: bytes, *, sport: int = 40000,
                      close: bool = True) -> list[bytes]:
    """Frames of one TCP connection: handshake, one request, one response, FINs."""
    c, s = 1000, 5000
    fr = [eth(ipv4(CLIENT, SERVER, 6, tcp(sport, 80, c, 0, SYN))),
          eth(ipv4(SERVER, CLIENT, 6, tcp(80, sport, s, c + 1, SYN | ACK))),
          eth(ipv4(CLIENT, SERVER, 6, tcp(sport, 80, c + 1, s + 1, ACK)))]
    c += 1
    s += 1
    fr.append(eth(ipv4(CLIENT, SERVER, 6, tcp(sport, 80, c, s, PSH | ACK, request))))
    c += len(request)
    for i in range(0, len(response), 1400):
        part = response[i:i + 1400]
        fr.append(eth(ipv4(SERVER, CLIENT, 6, tcp(80, sport, s, c, PSH | ACK, part))))
        s += len(part)
    if close:
        fr.append(eth(ipv4(CLIENT, SERVER, 6, tcp(sport, 80, c, s, FIN | ACK))))
        fr.append(eth(ipv4(SERVER, CLIENT, 6, tcp(80, sport, s, c + 1, FIN | ACK))))
        fr.append(eth(ipv4(CLIENT, SERVER, 6, tcp(sport, 80, c + 1, s + 1, ACK))))
    return fr


def gzip_bomb(header: bytes, zeros_mib: int) -> bytes:
    """A valid gzip file: ``header`` then ``zeros_mib`` MiB of zero bytes (~1000:1).

    Built in milliseconds: after a full flush, deflate output for the same input is the
    same bytes, so one compressed MiB of zeros is repeated; CRC and size are exact.
    """
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    head = co.compress(header) + co.flush(zlib.Z_FULL_FLUSH)
    mib = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    tail = co.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(zeros_mib):
        crc = zlib.crc32(zeros, crc)
    size = (len(header) + (zeros_mib << 20)) & 0xFFFFFFFF
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + head + mib * zeros_mib + tail
            + struct.pack("<II", crc, size))


def boundaries(data: bytes) -> tuple[list[int], list[int]]:
    """Where a pcap or pcapng file may be cut cleanly, read independently of pcapstats.

    Returns (ends, packet_ends): every offset at which a header, record or block ends
    (with 0 first), and the end offset of each packet record, in order.
    """
    ends, packets = [0], []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        pos, endian = 0, "<"
        while pos + 12 <= len(data):
            if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
                endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(endian + "II", data, pos)
            if blen < 12 or pos + blen > len(data):
                break
            pos += blen
            ends.append(pos)
            if btype in (2, 3, 6):
                packets.append(pos)
        return ends, packets
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    rec = 24 if data[:4] in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34") else 16
    pos = 24
    ends.append(pos)
    while pos + rec <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        if pos + rec + incl > len(data):
            break
        pos += rec + incl
        ends.append(pos)
        packets.append(pos)
    return ends, packets


def pcapng_block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_shb() -> bytes:
    return pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def pcapng_idb(linktype: int = 1, snaplen: int = 65535) -> bytes:
    return pcapng_block(1, struct.pack("<HHI", linktype, 0, snaplen))


def pcapng_epb(data: bytes, ts_us: int = 1_700_000_000_000_000, ifid: int = 0,
               cap: int | None = None) -> bytes:
    hdr = struct.pack("<IIIII", ifid, ts_us >> 32, ts_us & 0xFFFFFFFF,
                      len(data) if cap is None else cap, len(data))
    return pcapng_block(6, hdr + data)


def pcapng(frames: list[bytes], linktype: int = 1) -> bytes:
    return pcapng_shb() + pcapng_idb(linktype) + b"".join(
        pcapng_epb(f, 1_700_000_000_000_000 + i * 1000) for i, f in enumerate(frames))


def ipv6(src: bytes, dst: bytes, nxt: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, src, dst) + payload


CLIENT6, SERVER6 = b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02"
