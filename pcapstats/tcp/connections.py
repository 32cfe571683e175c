"""The TCP connection table: packets in, connection records and stream events out.

Sans-I/O: :meth:`ConnectionTable.packet` takes the decoded fields of one TCP
segment; in-order bytes and gaps go to the per-connection consumer made by
``consumer_factory``; finished connections go to ``on_finished``.

A connection is keyed by its 4-tuple *and* its initial sequence numbers: a
SYN with a new ISN on a known 4-tuple starts a new connection (port reuse).
The client is the side that sent the SYN; without a SYN, the side whose first
payload is an HTTP request (or the other side of one that starts with an HTTP
response), else the side on the higher port.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Callable, Protocol

from .reassembly import HalfStream, StreamSink
from .zeek import ZeekState

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_REQUEST_STARTS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                   b"CONNECT ", b"TRACE ", b"PRI * HTTP/2")


class StreamConsumer(StreamSink, Protocol):
    def close(self, ts: int) -> None: ...


#: The distinct option sets of SYNs seen, each one dict that the connections with it share
#: (read only): most clients send one of a few, and a dict of its own cost each connection
#: about 230 bytes. Keyed by the parsed values (the raw bytes carry timestamps); bounded.
_OPTION_SETS: dict[tuple, dict[str, int]] = {}


def _option_set(opts: bytes) -> dict[str, int]:
    from ..ingest.decode import tcp_options
    parsed = tcp_options(opts)
    key = tuple(parsed.items())
    shared = _OPTION_SETS.get(key)
    if shared is None:
        if len(_OPTION_SETS) >= 4096:
            _OPTION_SETS.clear()
        shared = _OPTION_SETS[key] = parsed
    return shared


class Connection:
    """State and figures of one TCP connection. Field meanings: see ``frames.py``."""

    __slots__ = (
        "conn_id", "client_ip", "client_port", "server_ip", "server_port", "first_ts",
        "last_ts", "packets", "packets_client", "packets_server", "syn", "synack",
        "hs_ack", "handshake_complete", "syn_ts", "handshake_rtt_ns", "isn_client",
        "isn_server", "fin_client", "fin_server", "rst_client", "rst_server", "closed_by",
        "close_ts", "teardown_acks", "cstream", "sstream", "consumer", "zeek", "oriented",
        "done", "options", "ip_version", "evicted", "hs_step", "first_pos", "last_pos",
    )

    def __init__(self, conn_id: int, cip: bytes, cport: int, sip: bytes, sport: int,
                 ts: int, max_pending: int) -> None:
        self.conn_id = conn_id
        self.client_ip, self.client_port = cip, cport
        self.server_ip, self.server_port = sip, sport
        self.first_ts = self.last_ts = ts
        self.packets = self.packets_client = self.packets_server = 0
        self.syn = self.synack = 0
        self.hs_ack = False
        self.hs_step = 0           # 1: SYN seen, 2: then SYN/ACK, 3: then the client's ACK
        self.handshake_complete = False
        self.syn_ts: int | None = None
        self.handshake_rtt_ns: int | None = None
        self.isn_client: int | None = None
        self.isn_server: int | None = None
        self.fin_client = self.fin_server = self.rst_client = self.rst_server = 0
        self.closed_by = ""
        self.close_ts: int | None = None
        self.teardown_acks = 0
        self.cstream = HalfStream(True, max_pending)
        self.sstream = HalfStream(False, max_pending)
        self.consumer: StreamConsumer | None = None
        self.zeek = ZeekState()
        self.oriented = False      # True once the client side is known for sure
        self.done = False          # streams flushed and consumer closed
        self.options: dict[str, int] | None = None   # of the first SYN; shared: read only
        self.ip_version = 6 if len(cip) == 16 else 4
        self.evicted = False
        self.first_pos = self.last_pos = 0   # record positions (parallel runs stitch by them)

    @property
    def payload_seen(self) -> bool:
        """Payload was seen: the stream consumer is made on the first payload byte."""
        return self.consumer is not None

    @property
    def close(self) -> str:
        if self.rst_client or self.rst_server:
            return "rst"
        if self.fin_client or self.fin_server:
            return "fin"
        return "open"

    @property
    def retransmissions(self) -> int:
        return self.cstream.retrans + self.sstream.retrans

    @property
    def missed_bytes(self) -> int:
        return self.cstream.missed + self.sstream.missed

    @property
    def bytes_client(self) -> int:
        return self.cstream.offset

    @property
    def bytes_server(self) -> int:
        return self.sstream.offset

    def flip(self) -> None:
        """Swap client and server (allowed until the first payload is delivered)."""
        self.client_ip, self.server_ip = self.server_ip, self.client_ip
        self.client_port, self.server_port = self.server_port, self.client_port
        self.packets_client, self.packets_server = self.packets_server, self.packets_client
        self.fin_client, self.fin_server = self.fin_server, self.fin_client
        self.rst_client, self.rst_server = self.rst_server, self.rst_client
        self.isn_client, self.isn_server = self.isn_server, self.isn_client
        self.cstream, self.sstream = self.sstream, self.cstream
        self.cstream.from_client, self.sstream.from_client = True, False
        if self.closed_by:
            self.closed_by = "server" if self.closed_by == "client" else "client"
        self.zeek.flip()


class ConnectionTable:
    """Tracks open connections; emits each one once it is finished."""

    def __init__(self, consumer_factory: Callable[[Connection], StreamConsumer],
                 on_finished: Callable[[Connection], None], *,
                 max_pending: int = 4 << 20, linger_ns: int = 60_000_000_000,
                 max_connections: int = 1_000_000) -> None:
        self.factory = consumer_factory
        self.on_finished = on_finished
        self.max_pending = max_pending
        self.linger_ns = linger_ns
        self.max_connections = max_connections
        self.table: dict[tuple, Connection] = {}
        self.open: OrderedDict[int, Connection] = OrderedDict()   # by conn_id, oldest first
        self.next_id = 0
        self.now = 0
        self.evicted = 0
        self.closing: deque[Connection] = deque()   # done connections, in order of closing
        self._since_sweep = 0
        self.pos = 0        # position of the current record, set by the reader loop
        self.handoffs: dict[int, int] = {}   # follow mode: conn_id -> position it ended at

    # -- the per-packet hot path ---------------------------------------------------------
    def packet(self, ts: int, src: bytes, dst: bytes, sport: int, dport: int, flags: int,
               seq: int, ack: int, payload: bytes, missing: int, opts: bytes) -> None:
        if ts > self.now:
            self.now = ts
        key = (src, sport, dst, dport)
        conn = self.table.get(key)
        if conn is None:
            conn = self._new(key, ts, flags, payload)
        elif (flags & SYN and not flags & ACK and self._is_new_syn(conn, src, sport, seq)) \
                or (conn.done and ts - conn.last_ts > self.linger_ns):
            # port reuse, or a packet after a closed connection's linger ended: a new one
            # (checked here, not left to the sweep, so that the outcome never depends on
            # when the sweep last ran)
            self._finish(conn)
            conn = self._new(key, ts, flags, payload)
        conn.last_ts = ts
        conn.last_pos = self.pos
        conn.packets += 1
        from_client = src == conn.client_ip and sport == conn.client_port
        if src == dst and sport == dport:   # a connection to itself: the first sender is client
            from_client = True
        if from_client:
            conn.packets_client += 1
            mine, peer = conn.cstream, conn.sstream
        else:
            conn.packets_server += 1
            mine, peer = conn.sstream, conn.cstream
        plen = len(payload) + missing
        conn.zeek.packet(from_client, flags, plen)

        if flags & SYN:
            self._syn(conn, from_client, flags, seq, ts, opts)
            mine.start(seq + 1)
        elif flags & ACK and from_client and conn.hs_step == 2 and not flags & RST:
            conn.hs_ack = True
            conn.hs_step = 3
            conn.handshake_complete = True
            if conn.syn_ts is not None:
                conn.handshake_rtt_ns = ts - conn.syn_ts
        if flags & ACK and not plen and not flags & (FIN | SYN | RST) \
                and peer.fin_seq is not None and not peer.fin_acked and ack == peer.fin_seq:
            conn.teardown_acks += 1         # the pure ACK of the peer's FIN, counted once
            peer.fin_acked = True
        if conn.done:
            return
        sink = conn.consumer
        if plen:
            if not conn.oriented and payload:
                # without a SYN, the first payload that starts an HTTP message tells the
                # client; a capture may begin with the tail of an earlier message
                decided = self._orient(conn, from_client, payload)
                if decided is not None:
                    if decided:     # the stream objects moved with the flip; only the label
                        from_client = not from_client
                        if conn.consumer is not None:   # it saw only a tail: start afresh
                            sink = conn.consumer = self.factory(conn)
                            sink.gap(True, ts, 0)
                            sink.gap(False, ts, 0)
                    conn.oriented = True
                elif conn.packets > 16:
                    conn.oriented = True
            if sink is None:        # the first payload: the consumer starts here
                sink = conn.consumer = self.factory(conn)
            if seq == mine.next_seq and not missing and not mine.pending and not flags & SYN:
                # the common case, in order with nothing held: what HalfStream.segment
                # does then, without its two calls (no retransmission, nothing missed)
                sink.data(mine.from_client, ts, payload)
                mine.offset += len(payload)
                mine.next_seq = (seq + len(payload)) & 0xFFFFFFFF
            else:
                retrans, missed = mine.retrans, mine.missed
                mine.segment(seq + 1 if flags & SYN else seq, payload, missing, ts, sink)
                if mine.retrans != retrans:
                    conn.zeek.add_letter("T", from_client)
                if mine.missed != missed:
                    conn.zeek.add_letter("G", from_client)
        # An ACK beyond bytes we never saw means they were lost from the capture; but not
        # from a RST, nor before the handshake got its SYN/ACK (challenge ACKs lie).
        if flags & ACK and ack != peer.next_seq and peer.next_seq is not None \
                and not flags & RST and (conn.synack or not conn.syn):
            peer.acked(ack, ts, sink)       # (an ACK of exactly next_seq tells nothing)
        if flags & (FIN | RST):
            self._fin_rst(conn, from_client, flags, seq, plen, ts)
        self._since_sweep += 1
        if self._since_sweep >= 8192:
            self.sweep()

    def follow(self, ts: int, src: bytes, dst: bytes, sport: int, dport: int, flags: int,
               seq: int, ack: int, payload: bytes, missing: int, opts: bytes) -> None:
        """Follow mode (past the end of a part): a packet of a connection still tracked
        is processed; one that would start a new connection ends the tracked one there
        (``handoffs``), since the next part owns the new one; any other is ignored."""
        conn = self.table.get((src, sport, dst, dport))
        if conn is None:
            return
        if (flags & SYN and not flags & ACK and self._is_new_syn(conn, src, sport, seq)) \
                or (conn.done and ts - conn.last_ts > self.linger_ns):
            self.handoffs[conn.conn_id] = self.pos
            self._finish(conn)
            return
        self.packet(ts, src, dst, sport, dport, flags, seq, ack, payload, missing, opts)

    # -- helpers ----------------------------------------------------------------------------
    def _new(self, key: tuple, ts: int, flags: int, payload: bytes) -> Connection:
        src, sport, dst, dport = key
        if flags & SYN and not flags & ACK:
            client_first, oriented = True, True
        elif flags & SYN:                  # a SYN/ACK: its sender is the server
            client_first, oriented = False, True
        else:
            client_first = sport >= dport
            oriented = False
        if client_first:
            conn = Connection(self.next_id, src, sport, dst, dport, ts, self.max_pending)
        else:
            conn = Connection(self.next_id, dst, dport, src, sport, ts, self.max_pending)
        conn.oriented = oriented
        conn.first_pos = self.pos
        self.next_id += 1
        self.table[key] = conn
        self.table[(dst, dport, src, sport)] = conn
        self.open[conn.conn_id] = conn
        if len(self.open) > self.max_connections:
            self._evict_oldest()
        return conn

    @staticmethod
    def _is_new_syn(conn: Connection, src: bytes, sport: int, seq: int) -> bool:
        """A SYN on a known 4-tuple: a retransmission, or a new connection (port reuse)?"""
        if src == conn.client_ip and sport == conn.client_port:
            if conn.isn_client is None:
                return conn.packets > 0 and (conn.payload_seen or conn.close != "open")
            return seq != conn.isn_client
        # the former server now opens a connection on the same ports
        return conn.close != "open" or conn.payload_seen

    @staticmethod
    def _orient(conn: Connection, from_client: bool, payload: bytes) -> bool | None:
        """Client of a connection seen without SYN: True if flipped, False if kept,
        None if this payload does not tell."""
        is_request = payload.startswith(_REQUEST_STARTS)
        is_response = payload.startswith(b"HTTP/1.")
        if not is_request and not is_response:
            return None
        if (is_request and not from_client) or (is_response and from_client):
            conn.flip()
            return True
        return False

    @staticmethod
    def _syn(conn: Connection, from_client: bool, flags: int, seq: int, ts: int,
             opts: bytes) -> None:
        if flags & ACK:
            if not from_client:
                conn.synack += 1
                if conn.hs_step == 1:
                    conn.hs_step = 2
                if conn.isn_server is None:
                    conn.isn_server = seq
        elif from_client:
            conn.syn += 1
            if conn.hs_step == 0:
                conn.hs_step = 1
            if conn.isn_client is None:
                conn.isn_client = seq
                conn.syn_ts = ts
            if opts and conn.options is None:
                conn.options = _option_set(opts)

    def _fin_rst(self, conn: Connection, from_client: bool, flags: int, seq: int, plen: int,
                 ts: int) -> None:
        side = "client" if from_client else "server"
        if flags & RST:
            if from_client:
                conn.rst_client += 1
            else:
                conn.rst_server += 1
        else:
            stream = conn.cstream if from_client else conn.sstream
            if stream.fin_seq is None:
                stream.fin_seq = (seq + plen + (1 if flags & SYN else 0) + 1) & 0xFFFFFFFF
            if from_client:
                conn.fin_client += 1
            else:
                conn.fin_server += 1
        if not conn.closed_by:
            conn.closed_by = side
            conn.close_ts = ts
        if (flags & RST and self._rst_in_window(conn, from_client, seq)) \
                or (conn.fin_client and conn.fin_server):
            self._close_streams(conn, ts)

    @staticmethod
    def _rst_in_window(conn: Connection, from_client: bool, seq: int) -> bool:
        """A RST ends the connection only near the sequence its sender is at (RFC 5961);
        a blind or stale one far outside is counted but does not close the streams."""
        stream = conn.cstream if from_client else conn.sstream
        if stream.next_seq is None:
            return True
        dist = ((seq - stream.next_seq + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        return -(1 << 24) <= dist <= (1 << 24)

    def _close_streams(self, conn: Connection, ts: int, linger: bool = True) -> None:
        """Flush reassembly, close the consumer and release buffers; the record lingers."""
        if conn.done:
            return
        sink = conn.consumer
        conn.cstream.flush(ts, sink)
        conn.sstream.flush(ts, sink)
        if sink is not None:
            sink.close(ts)
        conn.done = True
        if linger:
            self.closing.append(conn)

    def _finish(self, conn: Connection) -> None:
        self._close_streams(conn, conn.last_ts, linger=False)
        key = (conn.client_ip, conn.client_port, conn.server_ip, conn.server_port)
        for k in (key, (key[2], key[3], key[0], key[1])):
            if self.table.get(k) is conn:
                del self.table[k]
        self.open.pop(conn.conn_id, None)
        self.on_finished(conn)
        # One emitted before its linger ended (evicted, port reuse) may still be queued in
        # `closing`; drop those once they outnumber the open connections, so that memory
        # follows the open connections (max_connections) under a flood of short ones.
        if len(self.closing) > 2 * len(self.open) + 1024:
            self.closing = deque(c for c in self.closing if c.conn_id in self.open)

    def _evict_oldest(self) -> None:
        _, conn = next(iter(self.open.items()))
        conn.evicted = True
        self.evicted += 1
        self._finish(conn)

    def sweep(self) -> None:
        """Emit closed connections that have lingered long enough (memory follows open ones)."""
        self._since_sweep = 0
        limit = self.now - self.linger_ns
        while self.closing and self.closing[0].last_ts < limit:   # _finish may compact it
            conn = self.closing.popleft()
            if conn.conn_id in self.open:
                self._finish(conn)

    def finish(self) -> None:
        """End of capture: every connection still tracked is emitted, oldest first.

        What _finish does for each, without taking them out of the lookups one by one
        (two tuples, four dict operations on a table of every open connection: a fifth
        of the time at the end of a capture of 500k connections): the lookups are
        emptied at once, and the lingering queue dropped: each connection in it is emitted
        here or was already (kept, it would hold up to a thousand alive as long as the
        table, which a run's closures keep in a cycle)."""
        pending = list(self.open.values())
        self.closing.clear()
        self.table.clear()
        self.open.clear()
        pending.reverse()
        close, emit = self._close_streams, self.on_finished
        while pending:
            conn = pending.pop()    # (released once its row is made)
            close(conn, conn.last_ts, linger=False)
            emit(conn)
