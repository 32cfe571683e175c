"""Parallel runs: one large capture split on record boundaries, or many files,
analysed in parts by local processes (``jobs``) or a Dask cluster (``scheduler``),
then stitched so that the result equals the serial run.

The files, in time order, form one sequence of records cut into parts of about
equal size. A part's worker runs the ordinary per-packet loop over its records,
then goes on reading the records after them in *follow mode*: only connections
it still tracks are fed (cheaply recognised by their addresses), until each of
them has ended, has lingered long enough, or was replaced by a new connection
on the same ports (which the next part owns). Every record has a position
(part, index); every connection knows the positions of its first and last
packets. Local workers hand their results over in files in a temporary
directory (the pipe, when there is none); the last part runs in the main
process, and its result is never sent.

The merge keeps every connection as its owner (the part where it began) saw
it, and drops the copies a later part made of the same packets (a connection
that began in that part with packets a followed connection also had). When
the copies are not exactly contained in the original, or a hand-over finds
no connection starting where it should, or a reader says the parts cannot
equal the whole (a fault inside a part, interfaces described late in a
pcapng, rotated files that overlap in time), the merge declines and the run
is repeated serially: exactness is never traded for speed.

An IP fragment set cut by a part boundary also makes the merge decline. Not
stitched: ``max_connections`` eviction, which depends on what else is open (the
parallel result equals the serial one while that limit is not reached).
"""

from __future__ import annotations

import os
import struct
from collections import deque
from dataclasses import dataclass, field, replace
from itertools import compress, count, islice, repeat
from operator import is_not, itemgetter, le, not_, setitem
from operator import lt as _lt

from .ingest.decode import _AF_INET6, _ETH_VLAN, _RAW_TYPES, LINKTYPE_IPV4, LINKTYPE_IPV6
from .ingest.readers import _PCAP_MAGICS, FileInfo, _window, bad_ts_problem, read_capture
from .ingest.split import boundary_after
from .pipeline import Options, RunContext, RunResult, few_collections, run
from .records import _CONN_ID, sort_exchanges

_ROW_ID = itemgetter("conn_id")

try:    # follow mode's record filter in C (pcapstats/_fastpcap.c); same items either way
    from ._fastpcap import follow_scan as _follow_scan
except ImportError:     # pragma: no cover
    _follow_scan = None

PART_SHIFT = 40          # position = part << PART_SHIFT | record index in the part


@dataclass(frozen=True)
class Segment:
    """Records of one file between two record boundaries (None: its header / its end)."""

    file: int
    path: str
    start: int | None
    stop: int | None


@dataclass
class PartResult:
    index: int
    result: RunResult
    infos: dict[int, FileInfo]
    positions: dict[int, tuple[int, int]]
    handoffs: dict[int, int]
    ts_range: dict[int, tuple[int, int]] = field(default_factory=dict)  # file -> min, max
    refuse: str | None = None


MIN_PART = 1 << 20       # bytes: below this a part costs more than it saves
#: The last part's extra share of the records: it has no follow mode to run, and it runs
#: in this process, so its result is never pickled and sent (the other parts' transfer
#: and follow mode cost about this much on the benchmark's HTTP-heavy capture).
LAST_PART_EXTRA = 0.3


def plan(paths: list[str], parts: int, min_part: int = 0) -> list[list[Segment]] | None:
    """Cut the files (in time order) into ``parts`` runs of segments; None when a
    parallel run cannot be made (standard input, one unsplittable file, less than
    ``min_part`` bytes a part...)."""
    if parts < 2 or "-" in paths:
        return None
    try:
        sizes_by_path = [os.path.getsize(p) for p in paths]
    except OSError:
        return None
    if sum(sizes_by_path) < max(1, parts * min_part):
        return None
    order = _time_order(paths)
    if order is None:
        return None
    sizes = [sizes_by_path[i] for i in order]
    total = sum(sizes)
    # the cut points: (position in `order`, byte offset; 0 for the file's start)
    cuts: list[tuple[int, int]] = []
    base = 0
    # every part but the last then follows its open connections into the parts after it
    # and sends its result here: the last part gets a larger share (LAST_PART_EXTRA)
    weights = [1.0] * (parts - 1) + [1.0 + LAST_PART_EXTRA]
    targets = [int(total * sum(weights[:k]) / sum(weights)) for k in range(1, parts)]
    ti = 0
    for n, (i, size) in enumerate(zip(order, sizes)):
        while ti < len(targets) and targets[ti] < base + size:
            t = targets[ti] - base
            ti += 1
            off = boundary_after(paths[i], t) if t > 0 else None
            cut = (n, off) if off is not None else (n + 1, 0)
            if cut[0] < len(order) and cut != (0, 0) and (not cuts or cut > cuts[-1]):
                cuts.append(cut)
        base += size
    if not cuts:
        return None
    out: list[list[Segment]] = []
    bounds = [(0, 0)] + cuts + [(len(order), 0)]
    for (fa, oa), (fb, ob) in zip(bounds, bounds[1:]):
        segs = []
        for n in range(fa, min(fb + 1, len(order))):
            if n == fb and ob == 0:
                break
            start = oa if n == fa and oa else None
            stop = ob if n == fb else None
            segs.append(Segment(order[n], paths[order[n]], start, stop))
        if segs:
            out.append(segs)
    return out if len(out) > 1 else None


def _time_order(paths: list[str]) -> list[int] | None:
    """File indexes by first timestamp (ties: given order); None if one cannot be read."""
    if len(paths) == 1:
        return [0]
    firsts = []
    for i, p in enumerate(paths):
        info = FileInfo(p)
        try:
            gen = read_capture(p, info, [])
            rec = next(gen, None)
            gen.close()
        except Exception:   # noqa: BLE001 - any failure: leave it to the serial run
            return None
        if rec is None:
            return None
        firsts.append((rec[0], i))
    return [i for _, i in sorted(firsts)]


def run_part(index: int, parts: list[list[Segment]], opts: Options) -> PartResult:
    """The work of one part: its own records, then follow mode over the later parts."""
    with few_collections(pause=True):
        return _run_part(index, parts, opts)


def _run_part(index: int, parts: list[list[Segment]], opts: Options) -> PartResult:
    res = RunResult([], [], [], [])
    ctx = RunContext(res, opts)
    ctx.positions = {}
    infos: dict[int, FileInfo] = {}
    ts_range: dict[int, tuple[int, int]] = {}
    many_files = len({s.file for p in parts for s in p}) > 1
    table = ctx.table
    try:
        for seg in parts[index]:
            info = infos.setdefault(seg.file, FileInfo(seg.path))
            records = read_capture(seg.path, info, res.problems, seg.start, seg.stop,
                                   decoded=True, lane=ctx.lane_table)
            if many_files:
                records = _ts_tracked(records, seg.file, ts_range)
            ctx.consume(records, (index << PART_SHIFT) + res.packets,
                        _part_progress(opts.progress, parts[index], infos), 0)
        if ctx.decoder.defrag.sets and index + 1 < len(parts):
            infos[parts[index][-1].file].unsplittable = \
                "an IP fragment set is open where the part ends"
        _follow(ctx, parts, index)
    finally:
        ctx.finish()
    refuse = next((f"{i.path}: {i.unsplittable}" for i in infos.values() if i.unsplittable),
                  None)
    return PartResult(index, res, infos, ctx.positions, table.handoffs, ts_range, refuse)


def _part_progress(progress, segments: list[Segment], infos: dict[int, FileInfo]):
    """A part's progress callback for the records loop: ``progress(done, total)`` with the
    bytes of the part's own segments read so far and in all; None without one."""
    if progress is None:
        return None
    spans = []
    for seg in segments:
        start = seg.start or 0
        try:
            stop = seg.stop if seg.stop is not None else os.path.getsize(seg.path)
        except OSError:
            stop = start
        spans.append((seg.file, start, max(stop - start, 0)))
    own = sum(n for _, _, n in spans)

    def report(_done: int, _total: int) -> None:
        progress(sum(min(max(infos[f].disk_read - start, 0), n) if f in infos else 0
                     for f, start, n in spans), own)
    return report


def _ts_tracked(records, file: int, ts_range: dict[int, tuple[int, int]]):
    """The records, the range of their timestamps kept in ts_range[file] (records the C
    loop did come as a count with their first and last timestamps)."""
    lo = hi = None
    try:
        for rec in records:
            a = b = rec[0]
            if a is None:
                a, b = rec[4][0], rec[4][1]
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
            yield rec
    finally:
        if lo is not None:
            old = ts_range.get(file)
            ts_range[file] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))


class _Watched:
    """The address keys (as they appear in Ethernet frames, both directions) of the
    connections follow mode still tracks, kept up to date as they end.

    ``keys`` is a new set at each change: the record filter notices a set that
    is not the one it scanned with, and filters again. In follow mode connections
    only end (a packet that would start one hands over instead), so a change
    removes the keys of those gone, unless a tracked one has the same key.
    Rebuilding the whole set at every change was 0.2 s of a part's follow mode on
    the benchmark's 1M-packet capture: a sweep ends connections every 8192 records.
    """

    __slots__ = ("table", "by_conn", "uses", "keys")

    def __init__(self, table) -> None:
        self.table = table
        self._rebuild()

    def _rebuild(self) -> None:
        self.by_conn: dict[int, tuple[bytes, bytes]] = {}
        uses: dict[bytes, int] = {}
        for cid, c in self.table.open.items():
            ports = struct.pack("!HH", c.client_port, c.server_port)
            pair = (c.client_ip + c.server_ip + ports,
                    c.server_ip + c.client_ip + ports[2:] + ports[:2])
            self.by_conn[cid] = pair
            for k in pair:
                uses[k] = uses.get(k, 0) + 1
        self.uses = uses
        self.keys = set(uses)

    @property
    def count(self) -> int:
        """How many connections the keys are of (the table's open ones when they were
        last updated)."""
        return len(self.by_conn)

    def update(self) -> None:
        """Call when ``len(table.open)`` is no longer ``count``."""
        open_ = self.table.open
        gone = self.by_conn.keys() - open_.keys()
        if len(self.by_conn) - len(gone) != len(open_):     # one was added: start again
            self._rebuild()
            return
        uses, drop = self.uses, []
        for cid in gone:
            for k in self.by_conn.pop(cid):
                if uses[k] > 1:
                    uses[k] -= 1
                else:
                    del uses[k]
                    drop.append(k)
        self.keys = self.keys.difference(drop)


def _follow(ctx: RunContext, parts: list[list[Segment]], index: int) -> None:
    table = ctx.table
    if not table.open:
        return
    from .ingest import Decoder
    decode = Decoder().decode       # its own: what it counts belongs to other parts
    follow = table.follow
    watched = _Watched(table)
    holder = [watched.keys]
    for j in range(index + 1, len(parts)):
        base = j << PART_SHIFT
        for seg in parts[j]:
            count = 0
            for i, ts, lt, data, orig in _candidates(seg, holder):
                if ts is None:          # the end of the segment: ``i`` records
                    count = i
                    break
                pos = base + i
                if ts > table.now:
                    table.now = ts
                if not i & 0x1FFF:
                    table.sweep()
                if data is not None:
                    r = decode(lt, data, orig, ts)
                    if r is not None and r[0] == 6:
                        table.pos = pos
                        follow(ts, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                               r[10])
                if len(table.open) != watched.count:
                    if not table.open:
                        return
                    watched.update()
                    holder[0] = watched.keys
            base += count


def _candidates(seg: Segment, holder: list[set[bytes]]):
    """The records of ``seg`` that may belong to a followed connection, as
    (index in segment, ts, linktype, data, orig); data is None for every 8192nd
    record when it is not a candidate (the caller advances its clock on those);
    last, (count, None, None, None, None)."""
    with open(seg.path, "rb") as f:
        head = f.read(24)
        fmt = _PCAP_MAGICS.get(head[:4])
        if fmt is None or len(head) < 24:     # pcapng: the ordinary reader, then the filter
            # (the reader's C loop filters the records it reads, by the keys of the time:
            # _refiltered; the blocks its Python loop reads are filtered here)
            n = 0
            for rec in read_capture(seg.path, FileInfo(seg.path), [], seg.start, seg.stop,
                                    follow=holder if _follow_scan is not None else None):
                if rec[0] is None:
                    _, items, keys, count = rec
                    yield from _refiltered(items, keys, holder)
                    n += count
                    continue
                ts, lt, data, orig = rec
                if _candidate(data, holder[0], lt):
                    yield n, ts, lt, data, orig
                elif not n & 0x1FFF:
                    yield n, ts, lt, None, orig
                n += 1
            yield n, None, None, None, None
            return
        endian, mult, rl = fmt
        linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0x03FFFFFF
        offset = seg.start if seg.start is not None else 24
        stop = seg.stop if seg.stop is not None else 1 << 62
        # mapped in windows like the ordinary reader (read() and joining a window's tail
        # to the next copied every byte twice: 0.1 s of a part's follow mode over 250 MB)
        win = _window(f, b"", False, None)
        win.seek(offset, f)
        hdr = struct.Struct(endian + "IIII").unpack_from
        n = 0
        while offset < stop and win.fill(rl):
            buf, pos = win.buf, win.pos
            if _follow_scan is not None:
                # the same loop in C, over the whole records in the window; below, one
                # record in Python: the window's last, cut, or the end
                keys = holder[0]
                win.pos, n, items, ended = _follow_scan(buf, pos, stop - offset + pos,
                                                        endian == ">", mult, rl, linktype,
                                                        keys, n, 4096)
                offset += win.pos - pos
                yield from _refiltered(items, keys, holder)
                if ended:
                    break
                if win.pos != pos:
                    continue
            sec, frac, incl, orig = hdr(buf, pos)
            if incl > 1 << 24 or not (incl or orig) or not win.fill(rl + incl):
                break
            d = win.pos + rl
            frame = win.buf[d:d + incl]
            win.pos = d + incl
            offset += rl + incl
            i = n
            n += 1
            if not _candidate(frame, holder[0], linktype):
                if not i & 0x1FFF:
                    yield i, sec * 1_000_000_000 + frac * mult, linktype, None, orig
                continue
            yield i, sec * 1_000_000_000 + frac * mult, linktype, frame, orig
        yield n, None, None, None, None


def _refiltered(items: list[tuple], keys: set[bytes], holder: list[set[bytes]]):
    """``items`` picked in C by ``keys``, as the one-record-at-a-time loop would yield
    them: the caller shrinks the keys as connections end (``holder[0]``), so an item
    picked by keys since replaced is filtered again by the keys of now."""
    for item in items:
        if holder[0] is not keys and item[3] is not None \
                and not _candidate(item[3], holder[0], item[2]):
            if item[0] & 0x1FFF:
                continue
            item = item[:3] + (None, item[4])
        yield item


def _candidate(d: bytes, keys: set[bytes], linktype: int) -> bool:
    """What _candidates' Python loop decides for the frame ``d`` with ``keys`` (the C loop's
    follow_key): an unfragmented IPv4 TCP packet, or an IPv6 TCP packet without
    extension headers, behind a link layer _ip_start reads, is one when its addresses
    and ports are a key; any other frame always is."""
    ip, version = _ip_start(linktype, d)
    if ip < 0:
        return True
    if version == 6:
        return len(d) - ip < 44 or d[ip + 6] != 6 or d[ip + 8:ip + 44] in keys
    if len(d) - ip < 24 or d[ip] != 0x45 or d[ip + 9] != 6 or d[ip + 6] & 0x3F or d[ip + 7]:
        return True
    return d[ip + 12:ip + 24] in keys


_RAW_IP = (*_RAW_TYPES, LINKTYPE_IPV4, LINKTYPE_IPV6)


def _ip_start(linktype: int, d: bytes) -> tuple[int, int]:
    """Where an IP header starts in the frame as the decoder finds it (Ethernet, VLAN
    tags, Linux cooked v1 and v2, raw IP, NULL and LOOP), and its version; (-1, 0) when
    it is not one of those (the C loop's ip_start, for the filter to decide alike)."""
    n = len(d)
    if linktype == 1:
        if n < 14:
            return -1, 0
        etype, off = (d[12] << 8) | d[13], 14
    elif linktype == 276:
        if n < 20:
            return -1, 0
        etype, off = (d[0] << 8) | d[1], 20
    elif linktype == 113:
        if n < 16:
            return -1, 0
        etype, off = (d[14] << 8) | d[15], 16
    elif linktype in _RAW_IP:
        return (0, d[0] >> 4) if n and d[0] >> 4 in (4, 6) else (-1, 0)
    elif linktype in (0, 108):
        if n < 4:
            return -1, 0
        fam = int.from_bytes(d[:4], "big" if linktype == 108 else "little")
        if linktype == 0 and fam > 0xFFFF:
            fam = int.from_bytes(d[:4], "big")
        return (4, 4) if fam == 2 else (4, 6) if fam in _AF_INET6 else (-1, 0)
    else:
        return -1, 0
    for _ in range(8):
        if etype not in _ETH_VLAN:
            break
        if off + 4 > n:
            return -1, 0
        etype = (d[off + 2] << 8) | d[off + 3]
        off += 4
    else:
        if etype in _ETH_VLAN:
            return -1, 0
    return (off, 4) if etype == 0x0800 else (off, 6) if etype == 0x86DD else (-1, 0)


class Declined(Exception):
    """The parts cannot be stitched into exactly the serial result (the message says why)."""


def merge(results: list[PartResult], paths: list[str]) -> RunResult:
    """Stitch the parts; raises Declined when they cannot equal the serial run.

    Only a connection a part followed past its own records can have copies in the
    parts after it, and only among their first connections (a part's rows are in the
    order they began): those are compared one by one, the others are taken in bulk.
    (Comparing every row took 0.36-0.44 s at 5M packets and 1.7 s on 500k connections;
    now 0.19 s and 0.35 s.) Nothing is renumbered before every check has passed."""
    results = sorted(results, key=lambda r: r.index)
    for r in results:
        if r.refuse:
            raise Declined(r.refuse)
    if not _files_in_order(results, len(paths)):
        raise Declined("the files overlap in time")
    # (the merge's own tables are made small: what it allocates stays in the arenas of the
    # process that then runs the affinity work and the reports, next to the rows kept)
    reach: dict[tuple, int] = {}    # key -> last position of a connection followed past its part
    expect: list[tuple[tuple, int]] = []        # hand-overs: a connection must begin there
    out = RunResult([], [], [], [])
    ids_in_order: list[int] = []
    kept_by_part: list[tuple[int, list[dict], list[int]]] = []   # part, rows, first positions
    renumber: list[tuple[list, list[int], list[dict], int]] = []  # exchanges, ids, rows, from
    offset = 0
    last_first = -1
    for r in results:
        rows, positions, handoffs = r.result.connections, r.positions, r.handoffs
        old = list(map(_ROW_ID, rows))
        if not _increasing(old):        # (a part sorts them: they are)
            rows = sorted(rows, key=_ROW_ID)
            old = list(map(_ROW_ID, rows))
            if not _increasing(old):
                raise Declined(f"part {r.index} numbers two connections alike")
        dropped: set[int] = set()       # conn_ids of copies of followed connections
        cut = max(reach.values(), default=-1)
        for row in rows:                # those that began where an earlier part followed
            cid = row["conn_id"]
            first, last = positions[cid]
            if first > cut:
                break
            key = _key(row)
            covered = reach.get(key)
            if covered is not None and first <= covered:
                if last > covered:
                    raise Declined(f"connection {key} outgrew the one followed into part "
                                   f"{r.index}")
                dropped.add(cid)
        by_id = _by_id(rows)
        kept = rows
        if dropped:
            keep = list(map(not_, map(dropped.__contains__, old)))
            kept, old = list(compress(rows, keep)), list(compress(old, keep))
        firsts = list(map(itemgetter(0), map(positions.__getitem__, old)))
        if not _ascending(firsts) or (firsts and firsts[0] <= last_first):
            # (a part numbers its connections as they begin, each in its own records:
            # what the prefix above and the numbering below rely on)
            raise Declined(f"the connections of part {r.index} are not in the order they began")
        if firsts:
            last_first = firsts[-1]
        beyond = (r.index + 1) << PART_SHIFT    # followed past this part: in reach
        for cid in compress(positions, map(le, repeat(beyond),
                                           map(itemgetter(1), positions.values()))):
            if cid not in dropped:
                reach[_key(by_id(cid))] = positions[cid][1]
        for cid, pos in handoffs.items():
            if cid not in dropped:
                expect.append((_key(by_id(cid)), pos))
        # numbered on from the parts before; ids that already are (offset, offset + 1,
        # ...: those of a first part that began at 0, strictly increasing) are left
        new_ids = bool(old) and (old[0] != offset or old[-1] != offset + len(old) - 1)
        rr = r.result
        exchanges = rr.exchanges
        if new_ids or dropped:
            new_id = dict(zip(old, count(offset)))
            ids = list(map(new_id.get, map(_CONN_ID, exchanges)))
            if None in ids:                 # the exchanges of connections dropped as copies
                kept_ones = list(map(is_not, ids, repeat(None)))
                exchanges = list(compress(exchanges, kept_ones))
                ids = list(compress(ids, kept_ones))
            if new_ids:
                renumber.append((exchanges, ids, kept, offset))
        else:
            ids = list(map(_CONN_ID, exchanges))
        out.exchanges.extend(exchanges)
        ids_in_order.extend(ids)
        _add_counts(out, rr)
        out.connections.extend(kept)
        kept_by_part.append((r.index, kept, firsts))
        offset += len(kept)
    del reach
    if expect:
        _check_handoffs(expect, kept_by_part)
    for exchanges, ids, kept, first_id in renumber:
        deque(map(setattr, exchanges, repeat("conn_id"), ids), 0)
        deque(map(setitem, kept, repeat("conn_id"), count(first_id)), 0)
    # each part's exchanges are in (conn_id, depth) order and a connection's are all in
    # one part: with the new ids ascending, the list is already what the sort would make
    if not _ascending(ids_in_order):
        sort_exchanges(out.exchanges)
    out.count_udp_flows()
    _merge_files(out, results, paths)
    return out


def _increasing(values: list) -> bool:
    """Whether ``values`` strictly increase (compared in C)."""
    return all(map(_lt, values, islice(values, 1, None)))


def _by_id(rows: list[dict]):
    """conn_id -> row for a part's rows (in strictly increasing conn_id order: numbered
    0, 1, ... they are their own index)."""
    if rows and rows[0]["conn_id"] == 0 and rows[-1]["conn_id"] == len(rows) - 1:
        return rows.__getitem__
    return {row["conn_id"]: row for row in rows}.__getitem__


def _check_handoffs(expect: list[tuple[tuple, int]],
                    kept_by_part: list[tuple[int, list[dict], list[int]]]) -> None:
    """Each connection followed to a hand-over (a new connection on its ports) must see
    a kept connection with its key begin at that position."""
    starts: dict[int, dict] = {}     # first position -> kept row, for the parts needed
    # (a connection begins in its own part's records: follow mode begins none)
    parts_needed = {pos >> PART_SHIFT for _, pos in expect}
    for index, kept, firsts in kept_by_part:
        if index in parts_needed:
            starts.update(zip(firsts, kept))
    for key, pos in expect:
        row = starts.get(pos)
        if row is None or _key(row) != key:
            raise Declined(f"no connection {key} begins where the followed one ended")


def _ascending(values: list) -> bool:
    """Whether ``values`` never decrease (compared in C, no Python call per item)."""
    return all(map(le, values, islice(values, 1, None)))


def _key(row: dict) -> tuple:
    """A connection's addresses and ports, the same whichever end is the client."""
    ci, cp, si, sp = row["client_ip"], row["client_port"], row["server_ip"], row["server_port"]
    return (ci, cp, si, sp) if (ci, cp) <= (si, sp) else (si, sp, ci, cp)


def _files_in_order(results: list[PartResult], nfiles: int) -> bool:
    """Rotated files: serial reading merges them by timestamp; parts take them one
    after the other, which is the same only if they do not overlap in time."""
    if nfiles < 2:
        return True
    ranges: dict[int, tuple[int, int]] = {}
    order: list[int] = []
    for r in results:
        for f, (lo, hi) in r.ts_range.items():
            if f not in ranges:
                order.append(f)
                ranges[f] = (lo, hi)
            else:
                ranges[f] = (min(ranges[f][0], lo), max(ranges[f][1], hi))
    for a, b in zip(order, order[1:]):
        if ranges[a][1] > ranges[b][0] or (ranges[a][1] == ranges[b][0] and a > b):
            return False
    return True


def _add_counts(out: RunResult, rr: RunResult) -> None:
    for name in ("packets", "wire_bytes", "captured_bytes", "tcp_packets", "udp_packets",
                 "evicted"):
        setattr(out, name, getattr(out, name) + getattr(rr, name))
    if rr.first_ts is not None:
        out.first_ts = rr.first_ts if out.first_ts is None else min(out.first_ts, rr.first_ts)
        out.last_ts = rr.last_ts if out.last_ts is None else max(out.last_ts, rr.last_ts)
    for k, v in rr.linktypes.items():
        out.linktypes[k] = out.linktypes.get(k, 0) + v
    for k, v in rr.udp.items():
        out.udp[k] = out.udp.get(k, 0) + v
    for k, v in rr.decode.items():
        if isinstance(v, dict):
            d = out.decode.setdefault(k, {})
            for kk, vv in v.items():
                d[kk] = d.get(kk, 0) + vv
        else:
            out.decode[k] = out.decode.get(k, 0) + v


def _merge_files(out: RunResult, results: list[PartResult], paths: list[str]) -> None:
    infos = [FileInfo(p) for p in paths]
    for r in results:
        for f, part in sorted(r.infos.items()):
            info = infos[f]
            info.format, info.compressed, info.size = part.format, part.compressed, part.size
            info.records += part.records
            info.bytes_read = max(info.bytes_read, part.bytes_read)
            info.disk_read = max(info.disk_read, part.disk_read)
            info.linktypes = (info.linktypes or set()) | (part.linktypes or set())
            if part.stopped_at is not None:
                info.stopped_at = part.stopped_at
            if part.bad_ts:
                info.bad_ts += part.bad_ts
                if info.bad_ts_offset is None:
                    info.bad_ts_offset = part.bad_ts_offset
        out.problems.extend(r.result.problems)
    for info in infos:
        if info.bad_ts:
            out.problems.append(bad_ts_problem(info))
    out.files = infos


def run_parallel(paths: list[str], opts: Options, jobs: int, scheduler: str | None = None,
                 parts: int | None = None) -> RunResult:
    """Analyse in ``parts`` parts (default: ``jobs``) on ``jobs`` local processes, or on
    the Dask cluster at ``scheduler``; the result equals ``run(paths, opts)``."""
    client = _dask_client(scheduler) if scheduler is not None else None
    try:
        if client is not None and not parts:    # a part for each worker thread
            parts = max(2, jobs, sum(client.nthreads().values()))
        layout = plan(paths, parts or jobs, 0 if parts else MIN_PART)
        if layout is None:
            return run(paths, opts)
        wopts = replace(opts, progress=None)
        if client is not None:
            results = _on_dask(client, layout, wopts)
        elif jobs <= 1:
            results = [run_part(i, layout, wopts) for i in range(len(layout))]
        else:
            # the part this process runs shows the progress: its own share read, as the
            # share of the whole (the parts run side by side at about the same pace)
            mine = wopts
            if opts.progress is not None:
                whole = sum(os.path.getsize(p) for p in paths)
                mine = replace(opts, progress=lambda done, own, _p=opts.progress: _p(
                    done * whole // own if own else 0, whole))
            results = _on_processes(jobs, layout, wopts, mine)
    finally:
        if client is not None:
            client.close()
    progress = opts.progress
    try:
        merged = merge(results, paths)
    except Declined:
        return run(paths, opts)
    if progress is not None:
        total = sum(os.path.getsize(p) for p in paths)
        progress(total, total)
    return merged


def _on_processes(jobs: int, layout: list[list[Segment]], opts: Options,
                  mine_opts: Options) -> list[PartResult]:
    import multiprocessing as mp
    import shutil
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    # This process runs the last part itself (it has no follow mode, so it is the one
    # made largest) while jobs - 1 workers run the others: one process fewer to start,
    # and one part's result that is never pickled and sent.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    last = len(layout) - 1
    try:
        spool: str | None = tempfile.mkdtemp(prefix="pcapstats-parts-")
    except OSError:         # no writable temporary directory: results come by the pipe
        spool = None
    try:
        with ProcessPoolExecutor(max_workers=min(jobs - 1, last), mp_context=ctx) as pool:
            futures = [pool.submit(_run_part_spooled, i, layout, opts, spool)
                       for i in range(last)]
            mine = run_part(last, layout, mine_opts)
            return [_load_part(f.result()) for f in futures] + [mine]
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def _run_part_spooled(index: int, parts: list[list[Segment]], opts: Options,
                      spool: str | None) -> str | PartResult:
    """``run_part`` in a local worker: the result goes to a file in ``spool`` and only
    its name comes back. Sent through the pool's pipe, tens of megabytes are read by
    a thread of this process while its own part runs, 64 KB at a time, each read
    waiting for the interpreter lock its part's C loop holds: that slowed its part
    by a quarter. From a file it is read once, after the part, in large frames.
    Without a spool, or when the file cannot be written (a full disk), the result
    itself comes back."""
    result = run_part(index, parts, opts)
    if spool is None:
        return result
    path = os.path.join(spool, f"part-{index}.pickle")
    try:
        _spool_write(result, path)
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return result
    return path


def _spool_write(result: PartResult, path: str) -> None:
    import pickle

    from .heads import handover
    with open(path, "wb") as f, handover(os.path.dirname(path)):
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load_part(got: str | PartResult) -> PartResult:
    """A worker's result: itself, or read back from the file _spool_write made."""
    if isinstance(got, PartResult):
        return got
    import pickle
    with open(got, "rb") as f:
        result = pickle.load(f)
    os.unlink(got)
    return result


def _dask_client(address: str):
    from .errors import UsageError
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'pcapstats[dask]'") from None
    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def _on_dask(client, layout: list[list[Segment]], opts: Options) -> list[PartResult]:
    futures = [client.submit(run_part, i, layout, opts, pure=False)
               for i in range(len(layout))]
    return client.gather(futures)
