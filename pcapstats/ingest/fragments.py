"""IPv4 and IPv6 fragment reassembly, bounded in memory and time.

Policy: the first copy of a byte wins (like the TCP reassembler); a later
fragment that overlaps earlier data is counted in ``overlaps`` (and in
``conflicts`` when its bytes differ). A set that never completes is dropped
after ``timeout_ns`` of capture time, or when more than ``max_sets`` sets
are pending or more than ``max_bytes`` are held in all of them (the oldest
goes first), and counted in ``incomplete``.

Hostile input stays cheap: a fragment whose bytes are all held already is
not stored again, and a set that grows past ``MAX_PIECES`` pieces or twice
the largest datagram is dropped (counted in ``oversized`` and
``incomplete``), so the work per fragment is bounded.
"""

from __future__ import annotations

from collections import OrderedDict

#: An IP datagram cannot be larger than this.
MAX_DATAGRAM = 65535 + 40
#: Pieces one set may hold: the work per fragment is proportional to it. A 64 KiB
#: datagram over a 1500-byte MTU is 45 fragments, over 576 bytes 120; stacks cap it lower
#: still (FreeBSD keeps 16 fragments per packet, Windows 100).
MAX_PIECES = 256
#: Bytes one set may hold, duplicates and overlaps included.
MAX_SET_BYTES = 2 * MAX_DATAGRAM


class _FragSet:
    __slots__ = ("pieces", "total", "first_ts", "size")

    def __init__(self, ts: int) -> None:
        self.pieces: list[tuple[int, bytes]] = []
        self.total: int | None = None     # known once the last fragment (M=0) arrives
        self.first_ts = ts
        self.size = 0


class Defragmenter:
    def __init__(self, max_sets: int = 4096, timeout_ns: int = 60_000_000_000,
                 max_bytes: int = 64 << 20) -> None:
        self.max_sets = max_sets
        self.timeout_ns = timeout_ns
        self.max_bytes = max_bytes
        self.held = 0                   # bytes held in all pending sets
        self.sets: OrderedDict[tuple, _FragSet] = OrderedDict()
        self.reassembled = 0
        self.incomplete = 0
        self.overlaps = 0
        self.conflicts = 0
        self.oversized = 0

    def add_v4(self, src: bytes, dst: bytes, ident: int, proto: int, offset: int,
               more: bool, data: bytes, ts: int) -> bytes | None:
        return self._add((4, src, dst, ident, proto), offset, more, data, ts)

    def add_v6(self, src: bytes, dst: bytes, ident: bytes, nxt: int, offset: int,
               more: bool, data: bytes, ts: int) -> bytes | None:
        return self._add((6, src, dst, ident), offset, more, data, ts)

    def _add(self, key: tuple, offset: int, more: bool, data: bytes, ts: int) -> bytes | None:
        """Add one fragment; return the whole payload when the set is complete."""
        self._expire(ts)
        fs = self.sets.get(key)
        if fs is None:
            if len(self.sets) >= self.max_sets:
                self._drop(next(iter(self.sets)))
            fs = self.sets[key] = _FragSet(ts)
        n = len(data)
        if offset + n > MAX_DATAGRAM or len(fs.pieces) >= MAX_PIECES \
                or fs.size + n > MAX_SET_BYTES:
            self.oversized += 1
            self._drop(key)
            return None
        if not more:
            fs.total = offset + n
        # first write wins: compare with what is held; keep `data` only if it adds bytes
        covered_all = False
        for start, piece in fs.pieces:
            end = start + len(piece)
            if start < offset + n and offset < end:
                self.overlaps += 1
                lo, hi = max(start, offset), min(end, offset + n)
                if piece[lo - start:hi - start] != data[lo - offset:hi - offset]:
                    self.conflicts += 1
                if start <= offset and offset + n <= end:
                    covered_all = True
        if not covered_all:
            fs.pieces.append((offset, data))
            fs.size += n
            self.held += n
            while self.held > self.max_bytes and len(self.sets) > 1:
                oldest = next(iter(self.sets))
                if oldest == key:
                    self.sets.move_to_end(key)
                    oldest = next(iter(self.sets))
                self._drop(oldest)
        if fs.total is None or fs.size < fs.total:
            return None
        # complete when the pieces cover [0, total)
        covered = 0
        for start, piece in sorted(fs.pieces, key=lambda p: p[0]):
            if start > covered:
                return None
            covered = max(covered, start + len(piece))
        if covered < fs.total:
            return None
        out = bytearray(fs.total)
        # write in reverse arrival order so that the first arrival wins
        for start, piece in reversed(fs.pieces):
            piece = piece[:max(0, fs.total - start)]
            out[start:start + len(piece)] = piece
        del self.sets[key]
        self.held -= fs.size
        self.reassembled += 1
        return bytes(out[:fs.total])

    def _drop(self, key: tuple) -> None:
        """Give up on one pending set (counted as incomplete)."""
        fs = self.sets.pop(key)
        self.held -= fs.size
        self.incomplete += 1

    def _expire(self, now: int) -> None:
        sets = self.sets
        while sets:
            key, fs = next(iter(sets.items()))
            if now - fs.first_ts <= self.timeout_ns:
                break
            self._drop(key)

    def finish(self) -> None:
        """End of capture: every pending set is incomplete."""
        self.incomplete += len(self.sets)
        self.sets.clear()
        self.held = 0
