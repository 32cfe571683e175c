"""IPv4 and IPv6 fragment reassembly, bounded in memory and time.

Policy: the first copy of a byte wins (like the TCP reassembler); a later
fragment that overlaps earlier data is counted in ``overlaps`` (and in
``conflicts`` when its bytes differ). A set that never completes is dropped
after ``timeout_ns`` of capture time, or when more than ``max_sets`` sets
are pending (the oldest goes first), and counted in ``incomplete``.
"""

from __future__ import annotations

from collections import OrderedDict

#: An IP datagram cannot be larger than this.
MAX_DATAGRAM = 65535 + 40


class _FragSet:
    __slots__ = ("pieces", "total", "first_ts", "size")

    def __init__(self, ts: int) -> None:
        self.pieces: list[tuple[int, bytes]] = []
        self.total: int | None = None     # known once the last fragment (M=0) arrives
        self.first_ts = ts
        self.size = 0


class Defragmenter:
    def __init__(self, max_sets: int = 4096, timeout_ns: int = 60_000_000_000) -> None:
        self.max_sets = max_sets
        self.timeout_ns = timeout_ns
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
                self.sets.popitem(last=False)
                self.incomplete += 1
            fs = self.sets[key] = _FragSet(ts)
        if offset + len(data) > MAX_DATAGRAM:
            self.oversized += 1
            del self.sets[key]
            self.incomplete += 1
            return None
        if not more:
            fs.total = offset + len(data)
        # first write wins: keep only the parts of `data` not already covered
        for start, piece in fs.pieces:
            end = start + len(piece)
            if start < offset + len(data) and offset < end:
                self.overlaps += 1
                lo, hi = max(start, offset), min(end, offset + len(data))
                if piece[lo - start:hi - start] != data[lo - offset:hi - offset]:
                    self.conflicts += 1
        fs.pieces.append((offset, data))
        fs.size += len(data)
        if fs.total is None:
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
        self.reassembled += 1
        return bytes(out[:fs.total])

    def _expire(self, now: int) -> None:
        sets = self.sets
        while sets:
            key, fs = next(iter(sets.items()))
            if now - fs.first_ts <= self.timeout_ns:
                break
            del sets[key]
            self.incomplete += 1

    def finish(self) -> None:
        """End of capture: every pending set is incomplete."""
        self.incomplete += len(self.sets)
        self.sets.clear()
