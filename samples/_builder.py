"""Building blocks for the crafted sample captures in samples/.

Everything here is deterministic: no clocks, no randomness except what the
caller seeds.  Timestamps are integer nanoseconds since the epoch throughout;
a writer refuses a timestamp that its file's resolution cannot hold exactly.

Pieces:
- `Msg`, `http_request`, `http_response`: HTTP/1.x messages as bytes plus the
  facts about them that go into truth.json.
- `Capture`: a set of packets (`Record`s) plus the TCP connections and UDP
  flows that made them; `Capture.truth()` derives the truth from what the
  builder did (never by parsing the bytes back).
- `TcpConn`: a TCP conversation builder that tracks seq/ack for both sides,
  handshake, data (split by MSS or by explicit sizes, emitted in any order),
  retransmission, FIN and RST.
- writers: classic pcap (either byte order, usec or nsec, snaplen, a cut last
  record) and pcapng written block by block (SHB, IDB, EPB, SPB, obsolete PB).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

US = 1_000
MS = 1_000_000
S = 1_000_000_000

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "NULL", LINKTYPE_ETHERNET: "ETHERNET", LINKTYPE_RAW_DLT12: "RAW (DLT 12)",
    LINKTYPE_RAW: "RAW", LINKTYPE_LOOP: "LOOP", LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}


# ---------------------------------------------------------------- HTTP messages

@dataclass
class Msg:
    """One HTTP message: its bytes and the facts truth.json records about it."""
    data: bytes
    info: dict


def _head(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _hget(headers: list[tuple[str, str]], name: str) -> str | None:
    vals = [v for k, v in headers if k.lower() == name]
    if not vals:
        return None
    return ("; " if name == "cookie" else ", ").join(vals)


def http_request(method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b"",
                 version: str = "HTTP/1.1") -> Msg:
    headers = list(headers)
    if body and _hget(headers, "content-length") is None:
        headers.append(("Content-Length", str(len(body))))
    data = _head(f"{method} {uri} {version}", headers) + body
    info = {"method": method, "uri": uri, "version": version,
            "host": _hget(headers, "host"), "connection": _hget(headers, "connection"),
            "cookie": _hget(headers, "cookie"), "body_bytes": len(body)}
    return Msg(data, info)


def http_response(status: int, reason: str, headers: list[tuple[str, str]], body: bytes = b"",
                  version: str = "HTTP/1.1", chunks: list[bytes] | None = None,
                  content_length: bool = True) -> Msg:
    """A response.  `chunks` makes it chunked (body = the chunks joined);
    `content_length=False` leaves Content-Length out (HEAD, 304, or one the
    caller wrote itself)."""
    headers = list(headers)
    if chunks is not None:
        body_wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        body = b"".join(chunks)
    else:
        body_wire = body
        if content_length and _hget(headers, "content-length") is None:
            headers.append(("Content-Length", str(len(body))))
    data = _head(f"{version} {status} {reason}", headers) + body_wire
    info = {"status": status, "version": version, "chunked": chunks is not None,
            "connection": _hget(headers, "connection"), "set_cookie": _hget(headers, "set-cookie"),
            "body_bytes": len(body)}
    return Msg(data, info)


# ---------------------------------------------------------------- records

@dataclass(eq=False)
class Record:
    """One captured packet: an L3 scapy packet and its capture time."""
    ts: int                       # ns since epoch (None-able only for SPB in truth output)
    l3: Packet                    # IP or IPv6 packet
    order: int = 0                # insertion order, breaks timestamp ties
    iface: int = 0                # pcapng interface
    conn: "TcpConn | None" = None
    side: str | None = None       # "c" or "s" for TCP
    flags: str = ""               # TCP flags as scapy letters
    seq: int = 0
    plen: int = 0                 # TCP payload length
    l2: dict = field(default_factory=dict)   # link-layer options (vlan tags, AF value, ...)
    block: str = "EPB"            # pcapng block type for this record
    retransmission: bool = False


class Capture:
    """Packets plus the conversations that made them."""

    def __init__(self, linktype: int = LINKTYPE_ETHERNET):
        self.linktype = linktype
        self.records: list[Record] = []
        self.conns: list[TcpConn] = []
        self.udp_msgs: list[tuple[tuple, Record, dict]] = []
        self._order = 0

    def add(self, rec: Record) -> Record:
        rec.order = self._order
        self._order += 1
        self.records.append(rec)
        return rec

    def sorted_records(self) -> list[Record]:
        return sorted(self.records, key=lambda r: (r.ts, r.order))

    def tcp(self, client, server, **kw) -> "TcpConn":
        c = TcpConn(self, client, server, **kw)
        self.conns.append(c)
        return c

    def udp(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes | Packet, ts: int,
            info: dict | None = None, ipid: int = 0, ttl: int = 64, **recargs) -> Record:
        ip = _ip(src[0], dst[0], ipid=ipid, ttl=ttl, df=False)
        rec = Record(ts, ip / UDP(sport=src[1], dport=dst[1]) / payload, **recargs)
        self.add(rec)
        key = tuple(sorted([src, dst]))
        self.udp_msgs.append((key, rec, info or {}))
        return rec

    # -------------------------------------------------------------- truth

    def truth(self, included: list[Record] | None = None) -> dict:
        """Truth over `included` records (default: all), in file order."""
        recs = self.sorted_records() if included is None else included
        inc = set(map(id, recs))
        pos = {id(r): i for i, r in enumerate(recs)}
        conns = [c for c in self.conns if any(id(r) in inc for r in c.records)]
        conns.sort(key=lambda c: min(pos[id(r)] for r in c.records if id(r) in inc))
        for i, c in enumerate(conns):
            c.truth_id = i
        ctruth = [c.truth(inc, pos) for c in conns]
        udp_keys = []
        for key, rec, _ in self.udp_msgs:
            if id(rec) in inc and key not in udp_keys:
                udp_keys.append(key)
        flags = {"syn": 0, "synack": 0, "fin": 0, "rst": 0}
        for r in recs:
            f = r.flags
            if "S" in f:
                flags["synack" if "A" in f else "syn"] += 1
            flags["fin"] += "F" in f
            flags["rst"] += "R" in f
        closes = {"fin": 0, "rst": 0, "open": 0}
        for c in ctruth:
            closes[c["close"]] += 1
        per_conn = [len(c["requests"]) for c in ctruth]
        return {
            "packets": len(recs),
            "first_ts_ns": recs[0].ts if recs else None,
            "last_ts_ns": recs[-1].ts if recs else None,
            "tcp_connections": len(ctruth),
            "handshakes_complete": sum(c["handshake_complete"] for c in ctruth),
            "closes": closes,
            "closed_by": [c["closed_by"] for c in ctruth],
            "tcp_flag_packets": flags,
            "retransmissions": sum(r.retransmission for r in recs),
            "udp_flows": len(udp_keys),
            "udp_flow_list": [[f"{a[0]}:{a[1]}", f"{b[0]}:{b[1]}"] for a, b in udp_keys],
            "udp_packets": sum(1 for _, rec, _ in self.udp_msgs if id(rec) in inc),
            "http_requests": sum(per_conn),
            "http_requests_per_connection": per_conn,
            "http_responses": sum(len(c["responses"]) for c in ctruth),
            "connections": ctruth,
        }


def _ip(src: str, dst: str, *, ipid: int, ttl: int, df: bool = True) -> Packet:
    if ":" in src:
        return IPv6(src=src, dst=dst, hlim=ttl)
    return IP(src=src, dst=dst, id=ipid & 0xFFFF, ttl=ttl, flags="DF" if df else 0)


def ep(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


# ---------------------------------------------------------------- TCP builder

SYN_OPTS_CLIENT = [("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None),
                   ("SAckOK", b"")]
SYN_OPTS_SERVER = [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None),
                   ("WScale", 7)]


@dataclass
class _Message:
    kind: str                 # "request" / "response"
    info: dict
    ranges: list              # [(seq_start, seq_end)] this message occupies
    records: list             # records carrying its bytes (first transmissions)
    pipelined: bool = False
    truth: bool = True


class TcpConn:
    """A TCP conversation seen from one capture point.

    Sides are "c" (client, sends the SYN) and "s" (server).  `near` is the side
    the capture point sits next to: a packet from the far side answering the
    near side arrives one `rtt` later; the near side answers after `proc`.
    Every method that emits advances the connection's clock `t` (ns).
    """

    def __init__(self, cap: Capture, client: tuple[str, int], server: tuple[str, int], *,
                 isn_c: int, isn_s: int, t: int, rtt: int = 20 * MS, proc: int = 60 * US,
                 near: str = "s", mss: int = 1460, ttl_c: int = 64, ttl_s: int = 64,
                 ipid_c: int = 1000, ipid_s: int = 2000, win_c: int = 502, win_s: int = 509,
                 l3_hook: Callable[[str, Packet], Packet] | None = None,
                 l2: dict | None = None, iface: int = 0, tick: int = 1, role: str | None = None):
        self.cap = cap
        self.ep = {"c": client, "s": server}
        self.isn = {"c": isn_c & 0xFFFFFFFF, "s": isn_s & 0xFFFFFFFF}
        self.nxt = {"c": self.isn["c"], "s": self.isn["s"]}
        self.t = t
        self.rtt, self.proc, self.near, self.mss = rtt, proc, near, mss
        self.ttl = {"c": ttl_c, "s": ttl_s}
        self.ipid = {"c": ipid_c, "s": ipid_s}
        self.win = {"c": win_c, "s": win_s}
        self.l3_hook = l3_hook
        self.l2 = l2 or {}
        self.iface = iface
        self.tick = tick
        self.role = role
        self.records: list[Record] = []
        self.messages: list[_Message] = []
        self.last_side: str | None = None
        self.truth_id = -1

    # -------------------------------------------------------------- clock

    @staticmethod
    def other(side: str) -> str:
        return "s" if side == "c" else "c"

    def _round(self, t: int) -> int:
        return -(-t // self.tick) * self.tick

    def _auto_dt(self, side: str) -> int:
        if self.last_side is None:
            return 0
        if side == self.last_side:
            return 12 * US                  # back-to-back segments
        return self.proc if side == self.near else self.rtt

    def wait(self, dt: int) -> "TcpConn":
        self.t = self._round(self.t + dt)
        return self

    def at(self, t: int) -> "TcpConn":
        assert t >= self.t, (t, self.t)
        self.t = self._round(t)
        return self

    # -------------------------------------------------------------- emitting

    def _packet(self, side: str, flags: str, seq: int, ack: int, payload: bytes,
                options=None, window: int | None = None) -> Packet:
        src, dst = self.ep[side], self.ep[self.other(side)]
        ip = _ip(src[0], dst[0], ipid=self.ipid[side], ttl=self.ttl[side])
        self.ipid[side] += 1
        tcp = TCP(sport=src[1], dport=dst[1], seq=seq & 0xFFFFFFFF,
                  ack=(ack & 0xFFFFFFFF) if "A" in flags else 0, flags=flags,
                  window=self.win[side] if window is None else window, options=options or [])
        pkt = ip / tcp
        if payload:
            pkt = pkt / Raw(payload)
        if self.l3_hook:
            pkt = self.l3_hook(side, pkt)
        return pkt

    def emit(self, side: str, flags: str, payload: bytes = b"", *, seq: int | None = None,
             ack: int | None = None, dt: int | None = None, options=None,
             window: int | None = None, retransmission: bool = False, **recargs) -> Record:
        self.t = self._round(self.t + (self._auto_dt(side) if dt is None else dt))
        seq = self.nxt[side] if seq is None else seq
        ack = self.nxt[self.other(side)] if ack is None else ack
        pkt = self._packet(side, flags, seq, ack, payload, options, window)
        rec = Record(self.t, pkt, iface=self.iface, conn=self, side=side, flags=flags, seq=seq,
                     plen=len(payload), l2=dict(self.l2), retransmission=retransmission, **recargs)
        self.cap.add(rec)
        self.records.append(rec)
        self.last_side = side
        return rec

    def handshake(self, *, dt_synack: int | None = None, dt_ack: int | None = None) -> list[Record]:
        syn = self.emit("c", "S", options=SYN_OPTS_CLIENT, window=64240, dt=0)
        self.nxt["c"] += 1
        synack = self.emit("s", "SA", options=SYN_OPTS_SERVER, window=65160, dt=dt_synack)
        self.nxt["s"] += 1
        ack = self.emit("c", "A", dt=dt_ack)
        return [syn, synack, ack]

    def send(self, side: str, data: bytes, *, sizes: list[int] | None = None,
             order: list[int] | None = None, dt: int | None = None, gap: int | None = None,
             ack: int | None = None, fin: bool = False,
             after: Callable[[int, Record], None] | None = None) -> list[Record]:
        """Send one application write.  `sizes` fixes the segment sizes (else
        MSS-sized); `order` lists segment indexes in capture order (out of
        order on the wire); `gap` is the time between the segments.  Returns
        the records in sequence order.  `after(k, record)` runs after the k-th
        segment in capture order is emitted (e.g. to put a receiver's
        duplicate ACK between two out-of-order segments)."""
        if sizes is None:
            sizes = [min(self.mss, len(data) - i) for i in range(0, len(data), self.mss)]
        assert sum(sizes) == len(data), (sizes, len(data))
        segs, seq, off = [], self.nxt[side], 0
        for n in sizes:
            segs.append((seq, data[off:off + n]))
            seq, off = seq + n, off + n
        order = list(range(len(segs))) if order is None else order
        out: dict[int, Record] = {}
        for k, i in enumerate(order):
            s, payload = segs[i]
            last = i == len(segs) - 1
            flags = "PA" if last else "A"
            if fin and last:
                flags = "FPA"
            d = dt if k == 0 else (gap if gap is not None else 12 * US)
            out[i] = self.emit(side, flags, payload, seq=s, ack=ack, dt=d)
            if after:
                after(k, out[i])
        self.nxt[side] = seq + (1 if fin else 0)
        return [out[i] for i in range(len(segs))]

    def send_fragmented(self, side: str, data: bytes, frag_sizes: list[int], *,
                        seq: int | None = None, lost: tuple[int, ...] = (), dt: int | None = None,
                        gap: int = 15 * US, retransmission: bool = False) -> list[Record]:
        """One TCP segment (flags PA) carried in IPv4 fragments whose IP
        payloads have the given sizes (multiples of 8 except the last).
        Fragments whose index is in `lost` never reach the capture.  Does not
        advance the sequence number: the caller does, once a copy got through."""
        seq = self.nxt[side] if seq is None else seq
        pkt = self._packet(side, "PA", seq, self.nxt[self.other(side)], data)
        pkt[IP].flags = 0                       # fragmentable
        wire = bytes(pkt)                       # checksums over the whole segment
        ip = IP(wire)
        payload = wire[ip.ihl * 4:]
        assert sum(frag_sizes) == len(payload), (frag_sizes, len(payload))
        out, off = [], 0
        for i, n in enumerate(frag_sizes):
            assert i == len(frag_sizes) - 1 or n % 8 == 0
            if i not in lost:
                last = i == len(frag_sizes) - 1
                frag = IP(src=ip.src, dst=ip.dst, id=ip.id, ttl=ip.ttl, proto=6,
                          flags=0 if last else "MF", frag=off // 8) / Raw(payload[off:off + n])
                d = (self._auto_dt(side) if dt is None else dt) if not out else gap
                self.t = self._round(self.t + d)
                rec = Record(self.t, frag, iface=self.iface, conn=self, side=side,
                             flags="PA" if i == 0 else "", seq=seq, plen=len(data),
                             l2=dict(self.l2), retransmission=retransmission and not out)
                self.cap.add(rec)
                self.records.append(rec)
                self.last_side = side
                out.append(rec)
            off += n
        return out

    def ack(self, side: str, *, dt: int | None = None, ack: int | None = None) -> Record:
        return self.emit(side, "A", dt=dt, ack=ack)

    def fin(self, side: str, *, dt: int | None = None) -> Record:
        rec = self.emit(side, "FA", dt=dt)
        self.nxt[side] += 1
        return rec

    def rst(self, side: str, *, dt: int | None = None, with_ack: bool = True) -> Record:
        return self.emit(side, "RA" if with_ack else "R", dt=dt)

    def retransmit(self, rec: Record, *, dt: int | None = None) -> Record:
        payload = bytes(rec.l3[TCP].payload)
        return self.emit(rec.side, rec.flags, payload, seq=rec.seq, dt=dt, retransmission=True)

    def close(self, first: str, *, dt: int | None = None, four_way: bool = False) -> list[Record]:
        """Orderly close: FIN from `first`, then FIN+ACK (or ACK, FIN) from the
        other side, then the last ACK."""
        out = [self.fin(first, dt=dt)]
        second = self.other(first)
        if four_way:
            out.append(self.ack(second))
            out.append(self.fin(second, dt=self.proc))
        else:
            out.append(self.fin(second))
        out.append(self.ack(first))
        return out

    # -------------------------------------------------------------- HTTP

    def _message(self, kind: str, msgs: list[Msg], recs: list[Record], start: int, truth: bool):
        off = start
        for i, m in enumerate(msgs):
            rng = (off, off + len(m.data))
            carrying = [r for r in recs if r.seq < rng[1] and r.seq + r.plen > rng[0]]
            self.messages.append(_Message(kind, m.info, [rng], carrying,
                                          pipelined=i > 0 and kind == "request", truth=truth))
            off = rng[1]

    def request(self, msgs: Msg | list[Msg], **kw) -> list[Record]:
        """Client sends one write holding one request (or several: pipelined)."""
        msgs = [msgs] if isinstance(msgs, Msg) else msgs
        start = self.nxt["c"]
        recs = self.send("c", b"".join(m.data for m in msgs), **kw)
        self._message("request", msgs, recs, start, True)
        return recs

    def respond(self, msgs: Msg | list[Msg], *, truth: bool = True, **kw) -> list[Record]:
        msgs = [msgs] if isinstance(msgs, Msg) else msgs
        start = self.nxt["s"]
        recs = self.send("s", b"".join(m.data for m in msgs), **kw)
        self._message("response", msgs, recs, start, truth)
        return recs

    def exchange(self, req: Msg, resp: Msg | list[Msg], *, think: int = 0,
                 server_time: int | None = None,
                 req_kw: dict | None = None, resp_kw: dict | None = None,
                 client_ack: bool = True) -> tuple[list[Record], list[Record]]:
        """Request, response, and the client's ACK of the response."""
        if think:
            self.wait(think)
        rq = self.request(req, **(req_kw or {}))
        dt = None if server_time is None else self._auto_dt("s") + server_time
        rp = self.respond(resp, dt=dt, **(resp_kw or {}))
        if client_ack:
            self.ack("c")
        return rq, rp

    # -------------------------------------------------------------- truth

    def truth(self, inc: set, pos: dict) -> dict:
        recs = sorted((r for r in self.records if id(r) in inc), key=lambda r: pos[id(r)])
        hs = {}
        state = 0
        for r in recs:
            f = r.flags
            if state == 0 and r.side == "c" and f == "S":
                hs["syn"], state = r.ts, 1
            elif state == 1 and r.side == "s" and "S" in f and "A" in f:
                hs["synack"], state = r.ts, 2
            elif state == 2 and r.side == "c" and "A" in f and "S" not in f and "R" not in f:
                hs["ack"], state = r.ts, 3
        complete = state == 3
        rst = [r for r in recs if "R" in r.flags]
        fins = [r for r in recs if "F" in r.flags]
        if rst:
            close, closed_by = "rst", "reset"
        elif fins:
            close, closed_by = "fin", {"c": "client", "s": "server"}[fins[0].side]
        else:
            close, closed_by = "open", "open"
        sidename = {"c": "client", "s": "server"}

        def complete_msg(m: _Message) -> bool:
            return m.truth and m.records and all(id(r) in inc for r in m.records)

        def first_ts(m: _Message) -> int:
            return min(r.ts for r in m.records if r.seq <= m.ranges[0][0] < r.seq + r.plen)

        reqs = [m for m in self.messages if m.kind == "request" and complete_msg(m)]
        resps = [m for m in self.messages if m.kind == "response" and complete_msg(m)]
        rq_out = []
        for i, m in enumerate(reqs):
            d = dict(m.info)
            d.update(depth=i + 1, pipelined=m.pipelined, ts_request_ns=first_ts(m),
                     ts_request_end_ns=max(r.ts for r in m.records),
                     segments=len(m.records),
                     status=resps[i].info["status"] if i < len(resps) else None)
            rq_out.append(d)
        rp_out = []
        for m in resps:
            d = dict(m.info)
            d.update(ts_response_ns=first_ts(m), ts_response_end_ns=max(r.ts for r in m.records),
                     segments=len(m.records))
            rp_out.append(d)
        out = {
            "id": self.truth_id,
            "client": ep(self.ep["c"]),
            "server": ep(self.ep["s"]),
            "isn_client": self.isn["c"], "isn_server": self.isn["s"],
            "packets": len(recs),
            "first_ts_ns": recs[0].ts, "last_ts_ns": recs[-1].ts,
            "syn_seen": any(r.flags == "S" for r in recs),
            "handshake_complete": complete,
            "handshake_rtt_ns": ({"syn_to_synack": hs["synack"] - hs["syn"],
                                  "synack_to_ack": hs["ack"] - hs["synack"],
                                  "syn_to_ack": hs["ack"] - hs["syn"]} if complete else None),
            "close": close,
            "closed_by": closed_by,
            "fin_from": [sidename[r.side] for r in fins],
            "rst_from": [sidename[r.side] for r in rst],
            "retransmissions": sum(r.retransmission for r in recs),
            "requests": rq_out,
            "responses": rp_out,
        }
        if self.role:
            out["role"] = self.role
        return out


# ---------------------------------------------------------------- link layers

def mac_for(ip: str) -> str:
    """A stable, locally administered MAC address for a host."""
    h = 0
    for ch in ip.encode():
        h = (h * 131 + ch) & 0xFFFFFFFF
    return "02:%02x:%02x:%02x:%02x:%02x" % (0x10, (h >> 24) & 255, (h >> 16) & 255,
                                             (h >> 8) & 255, h & 255)


def _l3_src_dst(l3: Packet) -> tuple[str, str]:
    return l3.src, l3.dst


def encapsulate(rec: Record, linktype: int, endian: str = "<") -> bytes:
    """Frame bytes of a record for a link type."""
    l3 = rec.l3
    v6 = isinstance(l3, IPv6)
    if linktype == LINKTYPE_ETHERNET:
        src, dst = _l3_src_dst(l3)
        eth = Ether(src=rec.l2.get("src_mac", mac_for(src)), dst=rec.l2.get("dst_mac", mac_for(dst)))
        for kind, vid in rec.l2.get("vlans", []):
            eth = eth / (Dot1AD(vlan=vid) if kind == "802.1ad" else Dot1Q(vlan=vid))
        return bytes(eth / l3)
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_DLT12):
        return bytes(l3)
    if linktype == LINKTYPE_NULL:
        af = rec.l2.get("af", 24 if v6 else 2)
        return struct.pack(endian + "I", af) + bytes(l3)
    if linktype == LINKTYPE_LOOP:
        af = rec.l2.get("af", 24 if v6 else 2)
        return struct.pack(">I", af) + bytes(l3)
    if linktype == LINKTYPE_LINUX_SLL:
        src, _ = _l3_src_dst(l3)
        return bytes(CookedLinux(pkttype=rec.l2.get("pkttype", 0), lladdrtype=1, lladdrlen=6,
                                 src=_macbytes(mac_for(src)) + b"\0\0") / l3)
    if linktype == LINKTYPE_LINUX_SLL2:
        src, _ = _l3_src_dst(l3)
        return bytes(CookedLinuxV2(ifindex=rec.l2.get("ifindex", 2), lladdrtype=1,
                                   pkttype=rec.l2.get("pkttype", 0), lladdrlen=6,
                                   src=_macbytes(mac_for(src)) + b"\0\0") / l3)
    raise ValueError(f"no encapsulation for link type {linktype}")


def _macbytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


# ---------------------------------------------------------------- classic pcap

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D


def pcap_bytes(frames: list[tuple[int, bytes]], linktype: int, *, endian: str = "<",
               nano: bool = False, snaplen: int = 262144, cut_last_at: int | None = None) -> tuple[bytes, dict]:
    """A classic pcap file.  frames: [(ts_ns, frame bytes)], each cut to the
    snaplen.  `cut_last_at` keeps only that many bytes of the last record
    (header included), as a capture killed mid-write leaves it.  Returns the
    bytes and facts (record offsets, truncated records)."""
    out = bytearray(struct.pack(endian + "IHHiIII", PCAP_MAGIC_NS if nano else PCAP_MAGIC_US,
                                2, 4, 0, 0, snaplen, linktype))
    offsets, cut_frames = [], 0
    for ts, frame in frames:
        sec, frac = divmod(ts, S)
        if not nano:
            assert frac % US == 0, f"timestamp {ts} is not whole microseconds"
            frac //= US
        incl = frame[:snaplen]
        cut_frames += len(incl) < len(frame)
        offsets.append(len(out))
        out += struct.pack(endian + "IIII", sec, frac, len(incl), len(frame)) + incl
    info = {"record_offsets": offsets, "records_cut_by_snaplen": cut_frames}
    if cut_last_at is not None:
        start = offsets[-1]
        del out[start + cut_last_at:]
        info["cut_record_offset"] = start
    return bytes(out), info


# ---------------------------------------------------------------- pcapng

def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def _opts(opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    return b"".join(_opt(c, v) for c, v in opts) + struct.pack("<HH", 0, 0)


def _block(btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def pcapng_shb(opts: list[tuple[int, bytes]]) -> bytes:
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _opts(opts))


def pcapng_idb(linktype: int, snaplen: int, opts: list[tuple[int, bytes]]) -> bytes:
    return _block(1, struct.pack("<HHI", linktype, 0, snaplen) + _opts(opts))


def tsresol_units(ts_ns: int, tsresol: int) -> int:
    """Timestamp in the interface's units; exact or an AssertionError."""
    if tsresol & 0x80:
        num, den = ts_ns * (1 << (tsresol & 0x7F)), S
    else:
        num, den = ts_ns * 10 ** tsresol, S
    assert num % den == 0, f"timestamp {ts_ns} not exact at if_tsresol {tsresol:#x}"
    return num // den


def pcapng_epb(iface: int, units: int, frame: bytes, snaplen: int,
               opts: list[tuple[int, bytes]] = ()) -> bytes:
    incl = frame[:snaplen]
    return _block(6, struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(incl),
                                 len(frame)) + _pad4(incl) + _opts(list(opts)))


def pcapng_spb(frame: bytes, snaplen: int) -> bytes:
    return _block(3, struct.pack("<I", len(frame)) + _pad4(frame[:snaplen]))


def pcapng_pb(iface: int, units: int, frame: bytes, snaplen: int, drops: int = 0,
              opts: list[tuple[int, bytes]] = ()) -> bytes:
    incl = frame[:snaplen]
    return _block(2, struct.pack("<HHIIII", iface, drops, units >> 32, units & 0xFFFFFFFF,
                                 len(incl), len(frame)) + _pad4(incl) + _opts(list(opts)))
