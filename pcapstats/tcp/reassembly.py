"""One direction of a TCP connection, reassembled into an in-order byte stream.

Policy (RFC 9293 reading of overlaps): the first copy of a byte wins. Bytes
that arrive again are not delivered again; when a later copy *differs* from
a copy still held out of order, it is counted as a conflicting overlap.
Bytes never seen are delivered as a gap (``sink.gap``) at the offset where
they were missing, so the layer above can resynchronise.

Sequence numbers are unwrapped into 64-bit stream offsets relative to the
first byte, so connections longer than 4 GiB and ISNs near 2^32 work.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Protocol


class StreamSink(Protocol):
    def data(self, from_client: bool, ts: int, data: bytes) -> None: ...
    def gap(self, from_client: bool, ts: int, nbytes: int) -> None: ...


_MASK = 0xFFFFFFFF
_HALF = 0x80000000
#: Out-of-order pieces held per direction before giving up on the hole (tiny segments
#: would otherwise hold millions of entries under the byte limit).
MAX_PIECES = 65536


class HalfStream:
    """Reassembly state of the bytes one endpoint sends."""

    __slots__ = ("next_seq", "offset", "pending", "pending_bytes", "missed", "retrans",
                 "overlaps", "conflicts", "max_pending", "from_client", "fin_seq",
                 "fin_acked", "starts")

    def __init__(self, from_client: bool, max_pending: int) -> None:
        self.next_seq: int | None = None    # absolute sequence number of the next expected byte
        self.offset = 0                     # stream offset of next_seq (bytes delivered or missed)
        self.pending: dict[int, bytes] = {}  # stream offset -> out-of-order bytes
        # heap of the keys of `pending` (stale ones skipped); None until a segment is held
        # out of order, as in most connections none is (the list cost 56 bytes a direction)
        self.starts: list[int] | None = None
        self.pending_bytes = 0
        self.missed = 0
        self.retrans = 0
        self.overlaps = 0
        self.conflicts = 0
        self.max_pending = max_pending
        self.from_client = from_client
        self.fin_seq: int | None = None     # sequence number just after the FIN
        self.fin_acked = False              # the peer's pure ACK of that FIN was seen

    def start(self, isn_plus_one: int) -> None:
        if self.next_seq is None:
            self.next_seq = isn_plus_one & _MASK

    def segment(self, seq: int, payload: bytes, missing: int, ts: int,
                sink: StreamSink | None) -> None:
        """Take one segment's payload (``missing`` more bytes were sent but not captured)."""
        if self.next_seq is None:
            self.next_seq = seq
        rel = ((seq - self.next_seq + _HALF) & _MASK) - _HALF
        length = len(payload) + missing
        if rel == 0 and not self.pending:
            self._deliver(payload, missing, ts, sink)
            return
        if rel < 0:
            if rel + length <= 0:
                # entirely old data; a one-byte keep-alive probe is not a retransmission
                if not (length <= 1 and rel == -1):
                    self.retrans += 1
                return
            self.retrans += 1
            cut = -rel
            if cut >= len(payload):
                missing -= cut - len(payload)
                payload = b""
            else:
                payload = payload[cut:]
            rel = 0
            if not self.pending:
                self._deliver(payload, missing, ts, sink)
                return
        off = self.offset + rel
        if payload:
            self._hold(off, payload)
        if missing:
            # bytes the capture cut off: remembered as an explicit hole marker
            self._hold_missing(off + len(payload), missing)
        self._drain(ts, sink)
        if self.pending_bytes > self.max_pending or len(self.pending) > MAX_PIECES:
            self.skip_to_pending(ts, sink)

    def _deliver(self, payload: bytes, missing: int, ts: int, sink: StreamSink | None) -> None:
        n = len(payload)
        if n:
            if sink is not None:
                sink.data(self.from_client, ts, payload)
            self.offset += n
        if missing:
            self.missed += missing
            if sink is not None:
                sink.gap(self.from_client, ts, missing)
            self.offset += missing
        self.next_seq = (self.next_seq + n + missing) & _MASK  # type: ignore[operator]

    def _hold(self, off: int, payload: bytes) -> None:
        pending = self.pending
        old = pending.get(off)
        while old is not None:      # a loop, not recursion: a long run of held pieces is fine
            self.overlaps += 1
            self.retrans += 1
            common = min(len(old), len(payload))
            if isinstance(old, bytes) and old[:common] != payload[:common]:
                self.conflicts += 1
            if len(payload) <= len(old):
                return
            payload = payload[len(old):]
            off += len(old)
            old = pending.get(off)
        self._push(off)
        pending[off] = payload
        self.pending_bytes += len(payload)

    def _hold_missing(self, off: int, n: int) -> None:
        if off not in self.pending:
            self.pending[off] = _Missing(n)  # type: ignore[assignment]
            self._push(off)

    def _push(self, off: int) -> None:
        if self.starts is None:
            self.starts = [off]
        else:
            heappush(self.starts, off)

    def _first(self) -> int | None:
        """The lowest offset held (O(log n): a scan of `pending` per segment is quadratic)."""
        starts, pending = self.starts, self.pending
        while starts:
            o = starts[0]
            if o in pending:
                return o
            heappop(starts)
        return None

    def _drain(self, ts: int, sink: StreamSink | None) -> None:
        """Deliver held segments that have become contiguous."""
        pending = self.pending
        while pending:
            off = self.offset
            piece = pending.pop(off, None)
            if piece is None:
                # an earlier-starting piece may overlap the current offset
                best = self._first()
                if best is None or best >= off:
                    return
                piece = pending.pop(best)
                self._unhold(piece)
                skip = off - best
                if isinstance(piece, _Missing):
                    if piece.n > skip:
                        self._deliver(b"", piece.n - skip, ts, sink)
                    continue
                self.overlaps += 1
                if len(piece) > skip:
                    self._deliver(piece[skip:], 0, ts, sink)
                continue
            self._unhold(piece)
            if isinstance(piece, _Missing):
                self._deliver(b"", piece.n, ts, sink)
            else:
                self._deliver(piece, 0, ts, sink)

    def _unhold(self, piece: bytes) -> None:
        if not isinstance(piece, _Missing):
            self.pending_bytes -= len(piece)

    def acked(self, ack: int, ts: int, sink: StreamSink | None) -> None:
        """The peer acknowledged up to ``ack``: bytes before it that we never saw are a gap."""
        if self.next_seq is None:
            return
        rel = ((ack - self.next_seq + _HALF) & _MASK) - _HALF
        if rel <= 0 or rel > 0x40000000:
            return
        if self.fin_seq is not None and ack == self.fin_seq:
            rel -= 1            # the FIN takes a sequence number but carries no byte
            if rel <= 0:
                return
        upto = self.offset + rel
        first = self._first()
        if first is not None and first < upto:
            upto = first
        if upto > self.offset:
            self._deliver(b"", upto - self.offset, ts, sink)
            self._drain(ts, sink)

    def skip_to_pending(self, ts: int, sink: StreamSink | None) -> None:
        """Give up waiting: declare a gap up to the first held segment and go on from there."""
        while self.pending:
            first = self._first()
            assert first is not None
            if first > self.offset:
                self._deliver(b"", first - self.offset, ts, sink)
            self._drain(ts, sink)

    def flush(self, ts: int, sink: StreamSink | None) -> None:
        """End of the connection: deliver everything held, with gaps for holes."""
        self.skip_to_pending(ts, sink)
        self.pending_bytes = 0
        self.starts = None


class _Missing:
    """A hole of ``n`` bytes that the capture cut off (snaplen): known missing, never coming."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n
