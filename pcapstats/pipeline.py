"""The analysis run: wires ingest → tcp → http/tls and collects plain records.

This module owns the per-packet loop. It keeps no per-packet table: each
finished connection is summarised into one plain dict (its row) and its
buffers are released, so memory follows open connections.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections.abc import MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Callable, Iterator

from .heads import HeadStore, spill
from .http import HttpStream
from .ingest import Decoder, FileInfo, ReadProblem, read_captures
from .records import HttpExchange, pack_exchanges, sort_exchanges, unpack_exchanges
from .tcp import Connection, ConnectionTable
from .tls import TlsStream, looks_like_tls

#: Finished exchanges whose heads are moved out of memory at once (heads.py): one pass
#: over the batch, which holds 1-8 MB of heads (300 B to 2 kB a request).
SPILL_EVERY = 4096


@dataclass
class Options:
    """Knobs of one run (the CLI and ``analyze(**options)`` fill these)."""

    max_connections: int = 1_000_000      # open connections tracked before the oldest is emitted
    max_buffer: int = 4 << 20             # out-of-order bytes held per direction
    linger_s: float = 60.0                # capture seconds a closed connection absorbs late packets
    http: bool = True
    tls: bool = True
    progress: Callable[[int, int], None] | None = None   # (bytes read so far, total bytes)


@dataclass
class RunResult:
    """Everything one run learnt, as plain Python records."""

    files: list[FileInfo]
    problems: list[ReadProblem]
    connections: list[dict]
    exchanges: list[HttpExchange]
    packets: int = 0
    wire_bytes: int = 0
    captured_bytes: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    tcp_packets: int = 0
    udp_packets: int = 0
    udp_flows: int = 0
    udp_flows_by_port: dict[int, int] = field(default_factory=dict)
    decode: dict = field(default_factory=dict)
    evicted: int = 0
    linktypes: dict[int, int] = field(default_factory=dict)
    udp: dict[tuple, int] = field(default_factory=dict, repr=False)  # flow -> packets

    def __getstate__(self) -> dict:
        """Pickled with the exchanges as tuples of their fields, one list: a parallel
        part's result goes to the main process this way, and each exchange's own
        __reduce__ is a Python call (half of the 0.54 s the 125k exchanges of half
        the 5M-packet benchmark took; as tuples 0.25 s)."""
        state = self.__dict__.copy()
        state["exchanges"] = pack_exchanges(self.exchanges)
        return state

    def __setstate__(self, state: dict) -> None:
        state["exchanges"] = unpack_exchanges(state["exchanges"])
        self.__dict__.update(state)

    def count_udp_flows(self) -> None:
        by_port: dict[int, int] = {}
        for (a, b) in self.udp:
            port = min(a[1], b[1])
            by_port[port] = by_port.get(port, 0) + 1
        self.udp_flows = len(self.udp)
        self.udp_flows_by_port = by_port


def _ip(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


class _AddressText(dict):
    """Address bytes -> text, converted once per distinct address (at most 65,536 kept):
    the rows of one client's or server's connections then share one string, about
    120 bytes less per row for the two addresses."""

    def __missing__(self, raw: bytes) -> str:
        if len(self) >= 1 << 16:
            self.clear()
        text = self[raw] = _ip(raw)
        return text


class AppStream:
    """Per-connection consumer: picks TLS or HTTP on the first bytes, then feeds it."""

    __slots__ = ("conn_id", "impl", "held", "use_http", "use_tls")

    def __init__(self, conn_id: int, use_http: bool, use_tls: bool) -> None:
        self.conn_id = conn_id
        self.impl: HttpStream | TlsStream | None = None
        self.held: tuple[bool, int, bytes] | None = None   # first bytes, too few to decide
        self.use_http = use_http
        self.use_tls = use_tls

    def _choose(self, first: bytes) -> HttpStream | TlsStream | None:
        if self.use_tls and looks_like_tls(first):
            self.impl = TlsStream()
        elif self.use_http:
            self.impl = HttpStream(self.conn_id)
        return self.impl

    def _release(self) -> HttpStream | TlsStream | None:
        """Decide on the held bytes as they are and feed them."""
        from_client, ts, first = self.held  # type: ignore[misc]
        self.held = None
        impl = self._choose(first)
        if impl is not None:
            impl.feed(from_client, ts, first)
        return impl

    def data(self, from_client: bool, ts: int, data: bytes) -> None:
        impl = self.impl
        if impl is None:
            if self.held is not None:
                if self.held[0] == from_client:
                    data = self.held[2] + data
                    self.held = None
                else:
                    impl = self._release()
            if impl is None and self.impl is None:
                # a TLS record header needs 3 bytes; a first segment of 1-2 bytes that
                # could start one is held until more arrive
                if len(data) < 3 and self.use_tls and data and (20 <= data[0] <= 23
                                                                 or data[0] & 0x80):
                    self.held = (from_client, ts, data)
                    return
                impl = self._choose(data)
            if impl is None:
                return
        impl.feed(from_client, ts, data)

    def gap(self, from_client: bool, ts: int, nbytes: int) -> None:
        impl = self.impl
        if impl is None and self.held is not None:
            impl = self._release()
        if impl is None:
            if not self.use_http:
                return
            impl = self.impl = HttpStream(self.conn_id)
        impl.gap(from_client, ts, nbytes)

    def close(self, ts: int) -> None:
        if self.impl is None and self.held is not None:
            self._release()
        if self.impl is not None:
            self.impl.close(ts)


@contextmanager
def few_collections(pause: bool = False) -> Iterator[None]:
    """Raise the cyclic GC's thresholds for a run, then restore them; with ``pause``,
    no collection at all inside (a run, and analyze() around it: see below).

    A run keeps hundreds of thousands of long-lived containers (connection rows,
    exchanges) and makes few reference cycles (the parsers break theirs when a
    connection closes); with CPython's default thresholds the collector rescans the
    kept ones again and again: 1.4 s of a 9 s analysis of 1M packets, in 829
    collections. The young generation's threshold is set so high that most per-
    connection state dies before a collection sees it: GC time on the benchmark's
    1M-packet capture 0.19 s (19 collections, at 50,000) -> 0.07 s; 5M packets
    1.16 s -> 0.43 s; peak memory the same, no cycle garbage found after the run.

    On the way out, what the run kept goes to the oldest generation at once (freeze
    and unfreeze: list splices, no scan), unless the caller has frozen objects of its
    own: with the restored thresholds, the next young collection would otherwise scan
    up to half a million objects, and the one after it, of the middle generation,
    them again (0.17 s after a 1M-packet analysis, while its report was written).

    Paused: where connections linger (every one closed in the last minute of capture
    time is kept for its late packets), most young objects survive, and each young
    collection scans half a million live ones for nothing: a capture of 500k SYN-scan
    connections spent 1.35-1.65 s of a 9 s run in 31 of them, and its summary 0.5 s
    in two more. The reference cycles an analysis leaves are a constant few, its
    closures (gc.collect() after analyze() with the collector off: at most 58 objects
    for each of the 50 shared captures, the benchmark's 1M packets and the scan), so
    nothing piles up while it is off (tests/test_gc_thresholds.py).
    """
    old = gc.get_threshold()
    enabled = gc.isenabled()
    gc.set_threshold(max(old[0], 500_000), max(old[1], 20), max(old[2], 100))
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.set_threshold(*old)
        if pause and enabled:
            gc.enable()


def run(paths: list[str], opts: Options) -> RunResult:
    """Analyse ``paths`` in this process, record by record."""
    res = RunResult([], [], [], [])
    ctx = RunContext(res, opts)
    records = read_captures(paths, res.files, res.problems, decoded=True,
                            lane=ctx.lane_table)
    total = sum(_size(p) for p in paths)
    with few_collections(pause=True):
        try:
            ctx.consume(records, 0, opts.progress, total)
        finally:
            ctx.finish()
    if opts.progress is not None:
        opts.progress(total, total)
    return res


class RunContext:
    """The state of one run: the connection table, the decoder and the counters.

    ``consume`` is the per-packet loop; a parallel part (``parallel.py``) calls it
    for its own records, then ``follow`` for the records after them."""

    def __init__(self, res: RunResult, opts: Options) -> None:
        self.res = res
        use_http, use_tls = opts.http, opts.tls
        conns, exchanges = res.connections, res.exchanges

        def factory(conn: Connection) -> AppStream:
            return AppStream(conn.conn_id, use_http, use_tls)

        text = _AddressText()

        def finished(conn: Connection) -> None:
            conns.append(_conn_row(conn, exchanges, text))
            if len(exchanges) - self.spilled >= SPILL_EVERY:
                self.spill()
            if self.positions is not None:
                self.positions[conn.conn_id] = (conn.first_pos, conn.last_pos)

        self.positions: dict[int, tuple[int, int]] | None = None
        self.heads: HeadStore | None = None
        self.spilled = 0        # exchanges[:spilled] have their heads in self.heads
        self.table = ConnectionTable(factory, finished, max_pending=opts.max_buffer,
                                     linger_ns=int(opts.linger_s * 1e9),
                                     max_connections=opts.max_connections)
        self.decoder = Decoder()

    @property
    def lane_table(self) -> ConnectionTable | None:
        """What to give the reader as ``lane``: the table, when the C fast lane is built."""
        return self.table if _lane is not None else None

    def consume(self, records, base: int, progress, total: int) -> None:
        """Process ``records`` (read with ``decoded=True``, and ``lane=self.table`` where
        the reader may run the fast lane); record ``i`` of them is at position
        ``base + i``."""
        res = self.res
        files = res.files
        table = self.table
        decode = self.decoder.decode
        packet = table.packet
        lane = _lane
        udp = res.udp
        linktypes = res.linktypes
        npk, tcp, nudp = res.packets, res.tcp_packets, res.udp_packets
        wire, cap = res.wire_bytes, res.captured_bytes
        first, last = res.first_ts, res.last_ts
        pos = table.pos = base - 1
        fast = fast6 = 0
        tick = npk + 0x4000
        try:
            for ts, lt, data, orig, r in records:
                if ts is None:
                    # ``lt`` TCP records (of link type ``ltype``, ``v6`` of them IPv6) the C
                    # loop gave to the table itself (read with ``lane``): only their counts
                    # come here
                    lo, hi, ltype, v6 = r
                    npk += lt
                    pos += lt
                    tcp += lt
                    fast += lt - v6
                    fast6 += v6
                    wire += data
                    cap += orig
                    if first is None:
                        first, last = lo, hi
                    else:
                        if lo < first:
                            first = lo
                        if hi > last:
                            last = hi
                    linktypes[ltype] = linktypes.get(ltype, 0) + lt
                    if progress is not None and npk >= tick:
                        tick = npk + 0x4000
                        progress(sum(f.disk_read for f in files), total)
                    continue
                npk += 1
                pos += 1
                table.pos = pos     # (the C loop of ``lane`` reads it)
                wire += orig
                cap += len(data)
                if first is None:
                    first = last = ts
                elif ts > last:     # type: ignore[operator]
                    last = ts
                elif ts < first:
                    first = ts
                linktypes[lt] = linktypes.get(lt, 0) + 1
                if r is None:
                    r = decode(lt, data, orig, ts)
                    if r is None:
                        continue
                elif len(r[1]) == 4:    # decoded by the C record loop
                    fast += 1
                else:
                    fast6 += 1
                if r[0] == 6:
                    tcp += 1
                    if lane is None or not lane(table, ts, r):
                        packet(ts, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
                else:
                    nudp += 1
                    a, b = (r[1], r[3]), (r[2], r[4])
                    k = (a, b) if a <= b else (b, a)
                    udp[k] = udp.get(k, 0) + 1
                if progress is not None and npk >= tick:
                    tick = npk + 0x4000
                    progress(sum(f.disk_read for f in files), total)
        finally:
            self.decoder.count_fast(fast, fast6)
            res.packets, res.tcp_packets, res.udp_packets = npk, tcp, nudp
            res.wire_bytes, res.captured_bytes = wire, cap
            res.first_ts, res.last_ts = first, last

    def spill(self) -> None:
        """Move the heads of the exchanges finished since the last call out of memory
        (heads.py)."""
        exchanges = self.res.exchanges
        if len(exchanges) > self.spilled:
            if self.heads is None:
                self.heads = HeadStore()
            spill(exchanges[self.spilled:], self.heads)
            self.spilled = len(exchanges)

    def finish(self) -> None:
        """End of input: emit every connection and fill in the result's totals."""
        res = self.res
        self.table.finish()
        self.spill()
        self.decoder.finish()
        res.connections.sort(key=itemgetter("conn_id"))
        sort_exchanges(res.exchanges)
        res.count_udp_flows()
        st = self.decoder.stats
        df = self.decoder.defrag
        res.decode = {
            "non_ip": st.non_ip, "other_ip": st.other_ip, "malformed": st.malformed,
            "unknown_linktypes": dict(st.unknown_linktype), "ip_fragments": st.fragments,
            "fragments_reassembled": df.reassembled, "fragment_sets_incomplete": df.incomplete,
            "fragment_overlaps": df.overlaps, "fragment_conflicts": df.conflicts,
            "ipv4_packets": st.ip_versions.get(4, 0),
            "ipv6_packets": st.ip_versions.get(6, 0),
        }
        res.evicted = self.table.evicted


# The C fast lane for the commonest TCP segment (pcapstats/_fastpcap.c): it does what
# ConnectionTable.packet would, or declines and packet() runs. None without the module.
try:
    from ._fastpcap import lane as _lane, setup_lane as _setup_lane
    from .tcp.reassembly import HalfStream as _HalfStream
    from .tcp.zeek import ZeekState as _ZeekState
    # (the HTTP classes' slots were found when pcapstats.http was imported: setup_http)
    _setup_lane(Connection, _HalfStream, _ZeekState, AppStream)
except (ImportError, TypeError):    # pragma: no cover - no compiler; a class lost its slots
    _lane = None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path) if path != "-" else 0
    except OSError:
        return 0


#: A connection row's keys, in order, and a new row's values: each row starts as a Row of
#: these (below), or as a copy of this dict without the C helper (a copy of a dict of
#: the same keys is one block copy; building the 52 keys one by one, as a literal does,
#: took twice as long: 1.6 us of a row's time, on 500k connections 0.65 s)
_ROW = dict.fromkeys((
    "conn_id", "client_ip", "client_port", "server_ip", "server_port", "ip_version",
    "first_ts", "last_ts", "duration_ns", "packets", "packets_client", "packets_server",
    "bytes_client", "bytes_server", "syn", "synack", "handshake_ack", "handshake_complete",
    "handshake_rtt_ns", "fin_client", "fin_server", "rst_client", "rst_server", "close",
    "closed_by", "close_ts", "setup_packets", "teardown_packets", "retransmissions",
    "missed_bytes", "overlap_conflicts", "conn_state", "history", "mss", "evicted", "app",
    "requests", "responses", "http_malformed", "http_skipped_bytes", "tls_version", "sni",
    "alpn", "tls_resumed", "tls_session", "tls_handshake_rtt_ns", "tls_client_hello",
    "reused", "idle_max_ns", "idle_before_close_ns", "race_408", "side"))
_ROW.update(app="", requests=0, responses=0, http_malformed=0, http_skipped_bytes=0,
            tls_client_hello=False, reused=False, race_408=0, side="")

try:
    # rows as pcapstats._row.Row: dict-like, over these keys shared by every row (a row is
    # then 464 bytes before its values instead of 1.6 kB); else dicts, copies of _ROW
    from . import _row
    _row.layout(tuple(_ROW), tuple(_ROW.values()))
    _new_row: Callable[[], dict] = _row.new
    MutableMapping.register(_row.Row)
except ImportError:     # pragma: no cover - no compiler
    _new_row = _ROW.copy


#: The row's fields that are the Connection's attributes of the same name, read at once
_SAME_NAMED = ("conn_id", "client_port", "server_port", "ip_version", "first_ts", "last_ts",
               "packets", "packets_client", "packets_server", "bytes_client", "bytes_server",
               "syn", "synack", "handshake_complete", "handshake_rtt_ns", "fin_client",
               "fin_server", "rst_client", "rst_server", "close", "closed_by", "close_ts",
               "retransmissions", "missed_bytes", "evicted")
_SAME_VALUES = attrgetter(*_SAME_NAMED)


def _conn_row(conn: Connection, exchanges: list[HttpExchange], text: dict[bytes, str]) -> dict:
    """Summarise a finished connection into its row; the Connection is then dropped.
    ``text``: address bytes -> text (an _AddressText, shared by a run's rows)."""
    z = conn.zeek
    row = _new_row()
    row.update(zip(_SAME_NAMED, _SAME_VALUES(conn)))
    row["client_ip"] = text[conn.client_ip]
    row["server_ip"] = text[conn.server_ip]
    row["duration_ns"] = row["last_ts"] - row["first_ts"]
    row["handshake_ack"] = hs_ack = conn.hs_ack
    row["setup_packets"] = row["syn"] + row["synack"] + (1 if hs_ack else 0)
    row["teardown_packets"] = (row["fin_client"] + row["fin_server"] + row["rst_client"]
                               + row["rst_server"] + conn.teardown_acks)
    row["overlap_conflicts"] = conn.cstream.conflicts + conn.sstream.conflicts
    row["conn_state"] = z.conn_state(row["bytes_client"], row["bytes_server"])
    row["history"] = sys.intern(z.history())    # a few histories, repeated: one string each
    if conn.options:
        row["mss"] = conn.options.get("mss")
    impl = conn.consumer.impl if conn.consumer is not None else None
    mine: list[HttpExchange] = []
    if isinstance(impl, HttpStream):
        row["app"] = impl.protocol
        row["requests"] = impl.requests
        row["responses"] = impl.responses
        row["http_malformed"] = impl.malformed
        row["http_skipped_bytes"] = impl.skipped_bytes
        mine = impl.take()
        exchanges.extend(mine)
    elif isinstance(impl, TlsStream):
        row["app"] = "tls"
        row["tls_version"] = impl.version
        row["sni"] = impl.sni
        row["alpn"] = impl.alpn
        row["tls_resumed"] = impl.resumed
        row["tls_client_hello"] = impl.client_hello
        row["tls_session"] = impl.session_key
        if impl.ts_client_hello is not None and impl.ts_handshake_done is not None:
            row["tls_handshake_rtt_ns"] = impl.ts_handshake_done - impl.ts_client_hello
    conn.consumer = None
    _http_figures(row, mine)
    return row


def _http_figures(c: dict, ex: list[HttpExchange]) -> None:
    """A connection's HTTP figures from its exchanges (in request order): reuse, idle
    gaps, keep-alive timeout, 408 races (the row has None and 0 for them already)."""
    c["reused"] = c["requests"] >= 2
    if not ex:
        return
    gaps = [b.ts_request - a.ts_response_end for a, b in zip(ex, ex[1:])
            if a.ts_response_end is not None and b.ts_request is not None
            and b.ts_request >= a.ts_response_end]
    if gaps:
        c["idle_max_ns"] = max(gaps)
    last = ex[-1]
    if c["close_ts"] is not None and last.ts_response_end is not None \
            and c["close_ts"] >= last.ts_response_end:
        c["idle_before_close_ns"] = c["close_ts"] - last.ts_response_end
    # the race: the server closes (or answers 408) while a request is in flight
    if last.status == 408 or (last.status is None and c["closed_by"] == "server"):
        c["race_408"] = 1
