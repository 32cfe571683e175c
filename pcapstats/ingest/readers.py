"""Capture readers: the only code in pcapstats that opens files.

Every reader is a generator of records ``(ts_ns, linktype, data, orig_len)``
where ``ts_ns`` is an integer count of nanoseconds since the epoch and
``data`` the captured bytes. Files are read in windows (never whole), so
memory does not grow with the capture. A fault in the middle of a file stops
that file: what came before is kept and the fault is recorded as a
:class:`ReadProblem` in the ``problems`` list the caller passed in. A file of
which nothing at all can be read raises :class:`CaptureFormatError`.

Supported: classic pcap (both byte orders, micro- and nanosecond magic, and
the "modified" Kuznetzov variant), pcapng (any number of sections and
interfaces, link type and ``if_tsresol``/``if_tsoffset`` per interface, EPB,
SPB and the obsolete PB), either of them gzip-compressed, and standard input.

The ordinary records of a window (pcap records, pcapng EPBs) are read by the C
loops of ``pcapstats._fastpcap`` when it is built; they stop at anything unusual,
which the Python loops below then take, so both give the same records and faults.
"""

from __future__ import annotations

import gzip
import heapq
import mmap
import os
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import CaptureFormatError

Record = tuple[int, int, bytes, int]

try:    # the C record loop, built at install when a compiler is there (setup.py)
    from .._fastpcap import scan as _scan
    from .._fastpcap import scan_epb as _scan_epb
    from .._fastpcap import scan_lane as _scan_lane
except ImportError:     # pragma: no cover - the pure-Python loop gives the same records
    _scan = _scan_epb = _scan_lane = None

WINDOW = 1 << 20
#: The span of a regular file mapped at once (see _MappedWindow).
MAP_WINDOW = 2 << 20
#: A record larger than this is a lying length field (libpcap's own ceiling is 256 KiB).
MAX_RECORD = 262144
#: The largest pcapng block we accept (generous: a block holds one packet).
MAX_BLOCK = MAX_RECORD + 4096
_UNBOUNDED = [(1 << 63) - 1]    # read_capture's ``bound`` when there is none (never changed)
#: Timestamps are kept as int64 nanoseconds (the tables' datetime64[ns]); later ones are clamped.
MAX_TS = (1 << 63) - 1

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),   # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),      # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),   # Kuznetzov's modified pcap (8 extra bytes a record)
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_GZIP = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """A fault that stopped (or degraded) the reading of one file."""

    path: str
    offset: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path} at byte {self.offset}: {self.problem}"


@dataclass(slots=True)
class FileInfo:
    """What a reader learnt about one file; filled in while reading."""

    path: str
    format: str = "unknown"           # "pcap", "pcap-nsec", "pcapng"
    compressed: bool = False
    size: int | None = None           # on-disk size, when known
    records: int = 0
    bytes_read: int = 0               # uncompressed bytes consumed so far
    disk_read: int = 0                # bytes of the file itself read so far (compressed ones
                                      # for gzip): what progress compares with ``size``
    linktypes: set[int] | None = None
    stopped_at: int | None = None     # byte offset of a fault that ended reading
    bad_ts: int = 0                   # records whose timestamp was out of range (clamped)
    bad_ts_offset: int | None = None  # offset of the first of them
    part: bool = False                # read as one part of a split file (see ingest/split.py)
    unsplittable: str | None = None   # why reading this file in parts may differ from whole


class _Window:
    """Buffered reads over a stream, keeping only a window of it in memory.

    A read that fails (gzip that ends early or is corrupt, an I/O error) does not lose
    what was read before it: the error is kept in ``error``, the stream counts as ended,
    and the bytes before it can still be parsed into records.
    """

    __slots__ = ("read", "buf", "pos", "base", "eof", "error", "compressed", "info",
                 "disk_pos")

    def __init__(self, f: BinaryIO, initial: bytes = b"", compressed: bool = False,
                 info: FileInfo | None = None,
                 disk_pos: Callable[[], int] | None = None) -> None:
        # GzipFile.read(n) drops what it decompressed if the stream breaks before n bytes;
        # read1 returns each piece as it comes, and raises only when nothing is left.
        self.read = f.read1 if compressed else f.read  # type: ignore[attr-defined]
        self.buf = initial
        self.pos = 0
        self.base = 0      # stream offset of buf[0]
        self.eof = False
        self.error: str | None = None
        self.compressed = compressed
        self.info = info   # its bytes_read follows each refill (a progress bar reads it)
        self.disk_pos = disk_pos   # position in the file under a gzip stream

    def fill(self, need: int) -> bool:
        """Make ``need`` bytes available at ``pos``; False if the stream ends first."""
        if len(self.buf) - self.pos >= need:
            return True
        if self.eof:
            return False
        return self._refill(need)

    def _refill(self, need: int) -> bool:
        """fill() when the window holds too few bytes and the stream has not ended."""
        have = len(self.buf) - self.pos
        parts = [self.buf[self.pos:]]
        self.base += self.pos
        self.pos = 0
        self.account()
        try:
            while have < need:
                chunk = self.read(max(WINDOW, need - have))
                if not chunk:
                    self.eof = True
                    break
                parts.append(chunk)
                have += len(chunk)
        except (EOFError, zlib.error, OSError) as exc:
            self.eof = True
            what = str(exc) or exc.__class__.__name__
            self.error = (f"compressed data is broken: {what}" if self.compressed
                          else f"read error: {what}")
        finally:
            self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        return have >= need

    def why(self, problem: str) -> str:
        """``problem``, or the read error that caused it."""
        return f"{self.error} ({problem})" if self.error else problem

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def account(self) -> None:
        """Set the file's bytes_read (and disk_read) to what was consumed so far."""
        info = self.info
        if info is None:
            return
        info.bytes_read = info.disk_read = self.offset
        if self.disk_pos is not None:
            try:
                info.disk_read = self.disk_pos()
            except (OSError, ValueError):   # closed, or not a file after all
                pass

    def seek(self, offset: int, f: BinaryIO) -> None:
        """Continue reading at ``offset`` of an uncompressed file."""
        f.seek(offset)
        self.buf, self.pos, self.base, self.eof = b"", 0, offset, False


class _MappedWindow(_Window):
    """A _Window over a regular uncompressed file that maps spans of it instead of
    reading them: the bytes are not copied into new buffers at every refill, which was
    half a second of a 1M-packet run (read() and joining the tail of a window to the
    next). ``buf`` is then an mmap (slices of it are bytes). Only ``MAP_WINDOW`` bytes
    are mapped at a time, so the pages of the file held do not grow with it.

    The file's size is read again when a span reaches its end, so a capture that is
    still being written is read as far as it goes, as with read(). (A file that is cut
    shorter while it is being read is beyond both.)
    """

    __slots__ = ("file", "size", "mapped")

    def __init__(self, f: BinaryIO, info: FileInfo | None) -> None:
        super().__init__(f, b"", False, info)
        self.file = f
        self.size = os.fstat(f.fileno()).st_size
        self.mapped = True

    def _refill(self, need: int) -> bool:
        if not self.mapped:
            return super()._refill(need)
        start = self.base + self.pos
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        try:
            if start + need > self.size:
                self.size = os.fstat(self.file.fileno()).st_size
            length = min(self.size - aligned, max(MAP_WINDOW, start - aligned + need))
            buf = mmap.mmap(self.file.fileno(), length, flags=_MAP_FLAGS,
                            prot=mmap.PROT_READ, offset=aligned) \
                if length > start - aligned else b""
        except (OSError, ValueError):
            # a file system that cannot map files: read it from here on
            self.mapped = False
            try:
                self.file.seek(self.base + len(self.buf))
            except (OSError, ValueError) as exc:
                self.eof = True
                self.error = f"read error: {exc.strerror or exc}"
                return False
            return super()._refill(need)
        self.buf = buf
        self.base, self.pos = (aligned, start - aligned) if buf else (start, 0)
        self.account()
        have = len(buf) - self.pos
        if have < need:
            self.eof = True
        return have >= need


_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def _window(stream: BinaryIO, head: bytes, compressed: bool, info: FileInfo) -> _Window:
    """The window to read ``stream`` through: mapped for a regular file, else read."""
    if not compressed:
        try:
            if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                return _MappedWindow(stream, info)
        except (OSError, ValueError, AttributeError):   # no descriptor (a test's BytesIO)
            pass
    return _Window(stream, head, compressed, info, _disk_pos(stream) if compressed else None)


def _open_stream(path: str) -> tuple[BinaryIO, bytes, bool, int | None]:
    """Open ``path`` (or stdin for "-"), undo gzip; return stream, first bytes, compressed, size."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
        size = None
    else:
        try:
            raw = open(path, "rb")
            size = os.fstat(raw.fileno()).st_size
        except OSError as exc:
            raise CaptureFormatError(path, None, exc.strerror or str(exc)) from None
    head = raw.read(2)
    if head == _GZIP:
        stream: BinaryIO = gzip.GzipFile(fileobj=_Prepend(raw, head), mode="rb")  # type: ignore[assignment]
        return stream, b"", True, size
    return raw, head, False, size


def _disk_pos(stream: BinaryIO) -> Callable[[], int] | None:
    """How far the file under a gzip stream has been read, if it can tell (not stdin)."""
    raw = getattr(getattr(stream, "fileobj", None), "f", None)
    try:
        if raw is None or not raw.seekable():
            return None
    except (OSError, ValueError):
        return None
    return raw.tell


class _Prepend:
    """A read-only stream that yields ``head`` before the rest of ``f``."""

    def __init__(self, f: BinaryIO, head: bytes) -> None:
        self.f = f
        self.head = head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            if n < 0:
                return out + self.f.read()
            if n > len(out):
                out += self.f.read(n - len(out))
            return out
        return self.f.read(n)

    def close(self) -> None:
        self.f.close()


def read_capture(path: str, info: FileInfo, problems: list[ReadProblem],
                 start: int | None = None, stop: int | None = None,
                 decoded: bool = False, lane: Any = None,
                 bound: list[int] | None = None,
                 follow: list[set[bytes]] | None = None) -> Iterator[Any]:
    """Yield the records of one capture file; see the module docstring.

    ``decoded``: yield ``(ts_ns, linktype, data, orig_len, fast)`` instead, where
    ``fast`` is what :meth:`Decoder.decode` gives for the packet when the C record
    loop decoded it already (Ethernet/IPv4/TCP), else None (the pipeline's form).
    ``lane`` (with ``decoded``): a ConnectionTable to which the C loop gives the TCP
    packets it decodes (its fast lane, else ``packet()``) in a pcap or pcapng; it then
    also yields ``(None, n, wire_bytes, captured_bytes, (first_ts, last_ts, linktype,
    ipv6))`` for ``n`` records done whole, ``ipv6`` of them IPv6. ``bound`` (with
    ``lane``): a one-item list; the C loop gives the table no record at ``bound[0]`` ns
    or later, but yields it as it is (the merge of several files sets it: see
    `read_captures`). ``follow`` (without
    ``decoded``): a one-item list of follow mode's keys; in a pcapng, the C loop then
    filters the records it reads as parallel._candidates does and yields ``(None,
    items, keys, n)`` for ``n`` records (``items`` as _candidates yields them, numbered
    from the records before; ``keys``: ``follow[0]`` when they were filtered); the
    records its Python loop reads come as usual.

    ``start``/``stop`` read one part of an uncompressed file: the records from the
    record boundary ``start`` (after the file's header) to the boundary ``stop``.
    A part never raises for a fault: it records it, and marks ``info.unsplittable``
    when reading in parts cannot equal reading the whole file.
    """
    stream, head, compressed, size = _open_stream(path)
    info.compressed = compressed
    info.size = size
    info.part = start is not None or stop is not None
    if info.part and compressed:
        raise ValueError("a compressed file cannot be read in parts")
    win = _window(stream, head, compressed, info)
    bounds = (start, (1 << 62) if stop is None else stop, stream)
    try:
        try:
            if not win.fill(4):
                if win.error:
                    raise CaptureFormatError(path, 0, win.error)
                if win.offset == 0 and len(win.buf) == 0:
                    raise CaptureFormatError(path, 0, "empty file")
                raise CaptureFormatError(path, 0, "too short to be a capture")
            magic = win.buf[win.pos:win.pos + 4]
            if magic in _PCAP_MAGICS:
                yield from _read_pcap(path, win, magic, info, problems, bounds, decoded, lane,
                                      bound or _UNBOUNDED)
            elif magic == _PCAPNG_SHB:
                yield from _read_pcapng(path, win, info, problems, bounds, decoded, lane,
                                        bound or _UNBOUNDED, follow)
            else:
                raise CaptureFormatError(
                    path, 0, f"not a pcap or pcapng capture (starts with {magic.hex()})")
            if win.error and info.stopped_at is None:
                # the stream broke exactly between two records
                _stop(path, win.offset, win.error, info, problems)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            # gzip that ends early or is corrupt: keep what was read.
            what = str(exc) or exc.__class__.__name__
            _stop(path, win.offset, f"compressed data is broken: {what}", info, problems)
    finally:
        win.account()
        if stop is not None and info.stopped_at is not None:
            # a fault ends the whole file when it is read at once: the parts after
            # this one would read what the whole-file reading never reaches
            info.unsplittable = f"a fault at byte {info.stopped_at}"
        if info.bad_ts and not info.part:    # parts: the merge reports the whole file's
            problems.append(bad_ts_problem(info))
        if path != "-":
            inner = getattr(stream, "fileobj", None) if compressed else None
            stream.close()
            if inner is not None:
                inner.close()       # GzipFile leaves a file object it was given open


def bad_ts_problem(info: FileInfo) -> ReadProblem:
    return ReadProblem(info.path, info.bad_ts_offset or 0,
                       f"{info.bad_ts} records have a timestamp outside 1970-2262 (clamped)")


def _stop(path: str, offset: int, problem: str, info: FileInfo,
          problems: list[ReadProblem]) -> None:
    if not info.part and info.records == 0:
        raise CaptureFormatError(path, offset, problem)
    info.stopped_at = offset
    problems.append(ReadProblem(path, offset, problem))


def _read_pcap(path: str, win: _Window, magic: bytes, info: FileInfo,
               problems: list[ReadProblem], bounds: tuple, decoded: bool,
               lane: Any, bound: list[int]) -> Iterator[Any]:
    endian, ts_mult, rec_len = _PCAP_MAGICS[magic]
    info.format = "pcap-nsec" if ts_mult == 1 else "pcap"
    if not win.fill(24):
        raise CaptureFormatError(path, 0, win.why("pcap file header is truncated"))
    _, vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack_from(
        endian + "IHHiIII", win.buf, win.pos)
    linktype = network & 0x03FFFFFF           # upper bits carry FCS length flags
    info.linktypes = {linktype}
    win.pos += 24
    start, stop, stream = bounds
    if start is not None and start > win.offset:
        win.seek(start, stream)
    limit = max(MAX_RECORD, snaplen if snaplen < (1 << 24) else 0)
    hdr = struct.Struct(endian + "IIII")
    unpack = hdr.unpack_from
    records = 0
    scan = _scan if decoded else None
    fused = _scan_lane if scan is not None and lane is not None else None
    big = endian == ">"
    try:
        while True:
            if fused is not None:
                # the C loop also gives the TCP packets it decodes to ``lane`` (a
                # ConnectionTable): those come as one count, then the record it stopped
                # after, if any (see _fastpcap.scan_lane and RunContext.consume)
                win.pos, taken, wire, cap, lo, hi, rec, taken6 = fused(
                    win.buf, win.pos, stop - win.base, big, ts_mult, rec_len, limit, 4096,
                    lane, linktype, bound[0])
                if taken:
                    records += taken
                    info.records = records
                    yield (None, taken, wire, cap, (lo, hi, linktype, taken6))
                if rec is not None:
                    records += 1
                    info.records = records
                    yield rec
                if taken or rec is not None:
                    continue
            elif scan is not None:
                # the C loop takes every ordinary record of the window; this loop below
                # takes the one it stopped at (refill, fault, stop offset, end)
                win.pos, batch = scan(win.buf, win.pos, stop - win.base, big, ts_mult,
                                      rec_len, linktype, limit, 4096)
                for rec in batch:
                    records += 1
                    yield rec
                if batch:
                    info.records = records
                    continue
            buf, pos = win.buf, win.pos
            if win.base + pos >= stop:
                if win.base + pos > stop:
                    info.unsplittable = f"no record starts at byte {stop}"
                return
            if len(buf) - pos < rec_len:
                if not win.fill(rec_len):
                    if len(win.buf) - win.pos:
                        _stop(path, win.offset, win.why(
                              f"last record header is truncated ({len(win.buf) - win.pos} of "
                              f"{rec_len} bytes)"), info, problems)
                    return
                buf, pos = win.buf, win.pos
            sec, frac, incl, orig = unpack(buf, pos)
            if incl > limit:
                _stop(path, win.offset,
                      f"record length {incl} is larger than the snaplen ({snaplen}) and "
                      f"the {limit}-byte limit", info, problems)
                return
            if not incl and not orig:
                # a packet of no bytes cannot have been captured: the rest is padding or
                # garbage (a stream of zeros would otherwise read as billions of records)
                _stop(path, win.offset, "record of length 0 (the rest of the file is not "
                      "packets)", info, problems)
                return
            end = pos + rec_len + incl
            if end > len(buf):
                if not win.fill(rec_len + incl):
                    _stop(path, win.offset, win.why(
                          f"last record is truncated ({len(win.buf) - win.pos - rec_len} of "
                          f"{incl} bytes)"), info, problems)
                    return
                buf, pos = win.buf, win.pos
                end = pos + rec_len + incl
            win.pos = end
            records += 1
            info.records = records
            if decoded:
                yield (sec * 1_000_000_000 + frac * ts_mult, linktype,
                       buf[pos + rec_len:end], orig, None)
            else:
                yield (sec * 1_000_000_000 + frac * ts_mult, linktype,
                       buf[pos + rec_len:end], orig)
    finally:
        info.records = records
        win.account()


def _clamp_ts(ts: int, info: FileInfo, offset: int) -> int:
    """A timestamp that int64 nanoseconds cannot hold: count it and clamp it."""
    info.bad_ts += 1
    if info.bad_ts_offset is None:
        info.bad_ts_offset = offset
    return 0 if ts < 0 else MAX_TS


def _tsresol_factor(code: int) -> tuple[int, int]:
    """Map an ``if_tsresol`` byte to (multiplier, divisor) giving nanoseconds."""
    if code & 0x80:
        # 2^-n seconds: ns = ts * 1e9 / 2^n
        return 1_000_000_000, 1 << (code & 0x7F)
    n = code & 0x7F
    if n <= 9:
        return 10 ** (9 - n), 1
    return 1, 10 ** (n - 9)


class _Interface:
    __slots__ = ("linktype", "snaplen", "mult", "div", "offset_ns")

    def __init__(self, linktype: int, snaplen: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.mult, self.div = 1000, 1       # default resolution: microseconds
        self.offset_ns = 0


def _parse_idb_options(iface: _Interface, body: bytes, endian: str) -> None:
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        pos += 4
        if code == 0 or pos + length > len(body):
            break       # the end, or an option running past its block: ignore the rest
        value = body[pos:pos + length]
        if code == 9 and length >= 1:
            iface.mult, iface.div = _tsresol_factor(value[0])
        elif code == 14 and length == 8:
            iface.offset_ns = struct.unpack(endian + "q", value)[0] * 1_000_000_000
        pos += (length + 3) & ~3


def _iface_ts(iface: _Interface, hi: int, lo: int, info: FileInfo, offset: int) -> int:
    """A pcapng timestamp in nanoseconds, by the interface's resolution and offset."""
    ts = ((hi << 32) | lo) * iface.mult // iface.div + iface.offset_ns
    if not 0 <= ts <= MAX_TS:
        ts = _clamp_ts(ts, info, offset)
    return ts


def _read_pcapng(path: str, win: _Window, info: FileInfo,
                 problems: list[ReadProblem], bounds: tuple, decoded: bool,
                 lane: Any, bound: list[int],
                 follow: list[set[bytes]] | None = None) -> Iterator[Any]:
    info.format = "pcapng"
    start, stop, stream = bounds
    packets_begun = False   # a packet block was met: later interface blocks break parts
    info.linktypes = set()
    endian = "<"
    ifaces: list[_Interface] = []
    records = 0
    last_ts = 0     # a simple packet block has no timestamp: it inherits the previous one
    scan = _scan_epb
    try:
        while True:
            if scan is not None and ifaces and (packets_begun or not info.part):
                # the C loop takes the Enhanced Packet Blocks it is sure of (with ``lane``,
                # as in _read_pcap: counts, then the record it stopped after); the loop
                # below takes any other block, and the one the C loop stopped at
                keys = follow[0] if follow is not None and not decoded else None
                win.pos, batch, ts, taken, wire, cap, lo, hi, taken_lt, taken6 = scan(
                    win.buf, win.pos, stop - win.base, endian == ">", MAX_BLOCK,
                    tuple((i.linktype, i.mult, i.div, i.offset_ns) for i in ifaces), 4096,
                    lane if decoded else None, bound[0], keys, records)
                if ts is not None:
                    last_ts = ts
                if keys is not None:
                    if taken:       # ``taken`` records read, ``batch`` their follow items
                        records += taken
                        info.records = records
                        yield (None, batch, keys, taken)
                        continue
                elif taken:
                    records += taken
                    info.records = records
                    yield (None, taken, wire, cap, (lo, hi, taken_lt, taken6))
                if batch:
                    for rec in batch:
                        records += 1
                        yield rec if decoded else rec[:4]
                    info.records = records
                if taken or batch:
                    continue
            if not win.fill(12):
                if len(win.buf) - win.pos:
                    _stop(path, win.offset, win.why("last block header is truncated"), info,
                          problems)
                return
            buf, pos = win.buf, win.pos
            if win.base + pos >= stop:
                if win.base + pos > stop:
                    info.unsplittable = f"no block starts at byte {stop}"
                return
            btype_raw = buf[pos:pos + 4]
            if btype_raw == _PCAPNG_SHB:
                bom = buf[pos + 8:pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    _stop(path, win.offset, "section header has a bad byte-order magic",
                          info, problems)
                    return
                ifaces = []
            btype, blen = struct.unpack_from(endian + "II", buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_BLOCK and btype != 0x0A0D0D0A:
                _stop(path, win.offset, f"block of type {btype:#x} has an impossible length "
                      f"{blen}", info, problems)
                return
            if btype == 0x0A0D0D0A and blen > MAX_BLOCK:
                _stop(path, win.offset, f"section header block length {blen} is too large",
                      info, problems)
                return
            if not win.fill(blen):
                _stop(path, win.offset, win.why(f"block of type {btype:#x} is truncated (needs "
                      f"{blen} bytes, {len(win.buf) - win.pos} left)"), info, problems)
                return
            buf, pos = win.buf, win.pos
            (trailer,) = struct.unpack_from(endian + "I", buf, pos + blen - 4)
            if trailer != blen:
                _stop(path, win.offset, f"block of type {btype:#x} has mismatched lengths "
                      f"({blen} and {trailer})", info, problems)
                return
            if info.part:
                if btype in (1, 0x0A0D0D0A) and packets_begun:
                    info.unsplittable = "interfaces are described after the first packet"
                elif btype in (2, 3, 6):
                    if btype == 3:
                        info.unsplittable = "simple packet blocks take the previous timestamp"
                    if not packets_begun:
                        packets_begun = True
                        if start is not None and start > win.offset:
                            win.seek(start, stream)
                            continue
            win.pos = pos + blen
            if btype == 6:      # Enhanced Packet Block
                if blen < 32:
                    _stop(path, win.offset - blen, "enhanced packet block too short",
                          info, problems)
                    return
                ifid, hi, lo, cap, orig = struct.unpack_from(endian + "IIIII", buf, pos + 8)
                if ifid >= len(ifaces) or cap > blen - 32:
                    why = ("names an interface that was not described" if ifid >= len(ifaces)
                           else f"captured length {cap} is larger than the block")
                    _stop(path, win.offset - blen, f"enhanced packet block {why}",
                          info, problems)
                    return
                iface = ifaces[ifid]
                ts = _iface_ts(iface, hi, lo, info, win.offset - blen)
                records += 1
                info.records = records
                last_ts = ts
                rec = (ts, iface.linktype, buf[pos + 28:pos + 28 + cap], orig)
                yield rec + (None,) if decoded else rec
            elif btype == 3:    # Simple Packet Block: interface 0, no timestamp
                if not ifaces:
                    _stop(path, win.offset - blen, "simple packet block before any interface",
                          info, problems)
                    return
                (orig,) = struct.unpack_from(endian + "I", buf, pos + 8)
                iface = ifaces[0]
                cap = min(orig, blen - 16, iface.snaplen or orig)
                records += 1
                info.records = records
                rec = (last_ts, iface.linktype, buf[pos + 12:pos + 12 + cap], orig)
                yield rec + (None,) if decoded else rec
            elif btype == 2:    # obsolete Packet Block
                if blen < 32:
                    _stop(path, win.offset - blen, "packet block too short", info, problems)
                    return
                ifid, _drops, hi, lo, cap, orig = struct.unpack_from(
                    endian + "HHIIII", buf, pos + 8)
                if ifid >= len(ifaces) or cap > blen - 32:
                    _stop(path, win.offset - blen, "packet block is inconsistent",
                          info, problems)
                    return
                iface = ifaces[ifid]
                ts = _iface_ts(iface, hi, lo, info, win.offset - blen)
                records += 1
                info.records = records
                last_ts = ts
                rec = (ts, iface.linktype, buf[pos + 28:pos + 28 + cap], orig)
                yield rec + (None,) if decoded else rec
            elif btype == 1:    # Interface Description Block
                if blen < 20:
                    _stop(path, win.offset - blen, "interface block too short", info, problems)
                    return
                linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, pos + 8)
                iface = _Interface(linktype, snaplen)
                _parse_idb_options(iface, buf[pos + 8:pos + blen - 4], endian)
                ifaces.append(iface)
                info.linktypes.add(linktype)
            # every other block (name resolution, statistics, secrets, custom) is skipped
    finally:
        info.records = records
        win.account()


def read_captures(paths: list[str], infos: list[FileInfo], problems: list[ReadProblem],
                  decoded: bool = False, lane: Any = None) -> Iterator[Any]:
    """Records of several files merged in timestamp order (rotated captures).

    ``infos`` receives one :class:`FileInfo` per path, in order. A file that
    cannot be read at all raises :class:`CaptureFormatError` when it is reached.
    """
    if len(paths) == 1:
        info = FileInfo(paths[0])
        infos.append(info)
        return read_capture(paths[0], info, problems, decoded=decoded, lane=lane)
    failures: list[CaptureFormatError] = []
    gens = []
    bounds = [[-1 << 63] for _ in paths]
    for path, bound in zip(paths, bounds):
        info = FileInfo(path)
        infos.append(info)
        gens.append(_guarded(read_capture(path, info, problems, decoded=decoded, lane=lane,
                                          bound=bound), info, problems, failures))
    merged = heapq.merge(*gens, key=_ts_of) if lane is None else _merge_bounded(gens, bounds)
    return _all_or_raise(merged, len(paths), failures)


def _merge_bounded(gens: list[Iterator[Any]], bounds: list[list[int]]) -> Iterator[Any]:
    """What heapq.merge(*gens, key=_ts_of) yields, for readers that give a connection table
    the records before their ``bound`` themselves (read_capture's ``lane``): the file
    whose next record comes first (the earliest timestamp; of equal ones, the first
    file's) reads on, its C loop doing every record up to where another file's next one
    comes first, so that rotated files that follow each other are each read at full
    speed. A record at its file's bound or later comes back as it is, and waits as that
    file's next record. Counts of records done (ts None) pass through as they come.
    """
    heads: list[Any] = [next(g, None) for g in gens]    # (a bound of -2**63: none done)
    heap = [(h[0], i) for i, h in enumerate(heads) if h is not None]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        yield heads[i]
        # file i reads on while its records come before the next file's (ties: by order)
        limit = heap[0][0] + (i < heap[0][1]) if heap else _UNBOUNDED[0]
        bounds[i][0] = limit
        for rec in gens[i]:
            if rec[0] is None or rec[0] < limit:
                yield rec
            else:
                heads[i] = rec
                heapq.heappush(heap, (rec[0], i))
                break


def _guarded(gen: Iterator[Record], info: FileInfo, problems: list[ReadProblem],
             failures: list[CaptureFormatError]) -> Iterator[Record]:
    """One file of several: a file that cannot be read at all becomes a problem, not a stop."""
    try:
        yield from gen
    except CaptureFormatError as exc:
        info.stopped_at = exc.offset if exc.offset is not None else 0
        problems.append(ReadProblem(exc.path, info.stopped_at, exc.problem))
        failures.append(exc)


def _all_or_raise(merged: Iterator[Record], nfiles: int,
                  failures: list[CaptureFormatError]) -> Iterator[Record]:
    yield from merged
    if len(failures) == nfiles:
        raise failures[0]


def _ts_of(rec: Record) -> int:
    return rec[0]
