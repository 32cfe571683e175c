"""Message framing of one direction of an HTTP/1.x connection, sans I/O.

`DirectionReader` is a small state machine (states below) fed in-order bytes
in any segmentation: it finds header blocks, skips bodies by arithmetic
(Content-Length, chunked with extensions and trailers, until close), absorbs
gaps inside bodies of known length, and resynchronises on the next plausible
start line after junk or a gap. What a header block means (request or
response, pairing, tunnels) is left to the subclasses in `parser.py`.

Buffering is bounded: one header or trailer block (at most ``max_hdr``), a
chunk-size line, and the unfinished line kept while resynchronising.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..records import HttpExchange
from .headers import HEAD_END, head_end, parse_chunk_size

if TYPE_CHECKING:
    from .parser import HttpStream

# Reader states.
IDLE = 0         # between messages (stray CR/LF skipped)
HEAD = 1         # collecting a header block
BODY = 2         # `remaining` bytes of a body of known length, or of one chunk if `chunked`
CHUNK_SIZE = 3   # collecting a chunk-size line
CHUNK_CRLF = 4   # the CRLF after a chunk's data
TRAILERS = 5     # collecting the trailer block after the last chunk
UNTIL_CLOSE = 6  # response body delimited by the end of the connection
RESYNC = 7       # looking for the next plausible start line
HOLD = 8         # client bytes after CONNECT/Upgrade, held until the answer says tunnel or not
DEAD = 9         # tunnel, HTTP/2 or closed: bytes are ignored


class Pending:
    """One exchange until it is handed out; `ex` is None for a request lost in a gap."""

    __slots__ = ("ex", "head", "connect", "upgrade", "req_done", "resp_done", "resolved")

    def __init__(self, ex: HttpExchange | None, method: str = "", upgrade: str = "") -> None:
        self.ex = ex
        self.head = method == "HEAD"
        self.connect = method == "CONNECT"
        self.upgrade = upgrade          # Upgrade header of the request
        self.req_done = False           # request fully received
        self.resp_done = False          # final response fully received (or given up)
        self.resolved = False           # final response head seen


class DirectionReader:
    """The state machine for one direction; subclasses know requests or responses."""

    __slots__ = ("st", "max_hdr", "state", "buf", "scan", "nl", "msg_ts", "last_ts",
                 "remaining", "body", "chunked", "cr", "pend", "gapped", "resynced",
                 "carry", "line_start")

    def __init__(self, stream: HttpStream, max_hdr: int) -> None:
        self.st = stream
        self.max_hdr = max_hdr
        self.state = IDLE
        self.buf = bytearray()       # partial header block, chunk-size line or trailers
        self.scan = 0                # how far `buf` was searched for the end of a block
        self.nl = -1                 # end of the validated first line in `buf`, -1 if not yet
        self.msg_ts = 0              # ts of the first byte of the current message
        self.last_ts = -1            # ts of the last bytes fed, -1 before any
        self.remaining = 0           # bytes left in the body or chunk
        self.body = 0                # body bytes of the current message
        self.chunked = False
        self.cr = False              # CR seen in CHUNK_CRLF
        self.pend: Pending | None = None   # exchange of the message being read
        self.gapped = False          # bytes of the current message were missed
        self.resynced = False        # the next message was found by resynchronising
        self.carry = b""             # unfinished last line kept while resyncing
        self.line_start = True       # does the next resync input begin a line?

    # -- subclass hooks -------------------------------------------------------------
    def _on_head(self, block: bytes, ts: int, truncated: bool) -> bool:
        """A header block (or, if truncated, only its start line) arrived: return False
        if its start line is not HTTP, else act on it and set the next state."""
        raise NotImplementedError

    def _end(self, ts: int) -> None:
        """The current message ends at ts: record it, then go IDLE (unless DEAD)."""
        raise NotImplementedError

    def _first_line_ok(self, frm: int) -> bool:
        """Can the partial block in `buf` (new bytes from frm) still be a message?
        Sets `nl` once the first line is complete and valid."""
        raise NotImplementedError

    def _find(self, s: bytes, base: int, line_start: bool) -> tuple[int, int, bool]:
        """Resync search: see headers.find_request_line."""
        raise NotImplementedError

    def _lost_start(self) -> None:
        """A gap swallowed the start of a message: tell the pairing."""
        raise NotImplementedError

    def _cut_start(self, ts: int) -> bool:
        """A gap cut the start line in `buf` short: if enough of it was seen, act on it
        (as on a truncated head) and return True."""
        return False

    def _hold(self, ts: int, data: bytes | None, nbytes: int) -> None:
        """Bytes (or a gap) arriving in HOLD; only the request side holds."""

    def _start(self, ts: int) -> None:
        self.msg_ts = ts
        self.state = HEAD
        self.nl = -1

    # -- input ------------------------------------------------------------------
    def feed(self, ts: int, data: bytes) -> None:
        self.last_ts = ts
        n = len(data)
        pos = 0
        while pos < n:
            st = self.state
            if st == BODY:
                rem = self.remaining
                avail = n - pos
                if avail < rem:
                    self.remaining = rem - avail
                    self.body += avail
                    return
                self.body += rem
                self.remaining = 0
                pos += rem
                if self.chunked:
                    self.state = CHUNK_CRLF
                    self.cr = False
                else:
                    self._end(ts)
            elif st == IDLE:
                c = data[pos]
                if c == 13 or c == 10:
                    pos += 1
                    continue
                self._start(ts)
                m = HEAD_END.search(data, pos, pos + self.max_hdr)
                if m is None:
                    data, pos = self._head(ts, data, pos)
                    n = len(data)
                else:                   # the whole head in one segment
                    e = m.end()
                    if self._on_head(data[pos:e], ts, False):
                        pos = e
                    else:
                        data, pos = self._junk(data, pos + 1)
                        n = len(data)
            elif st == HEAD:
                data, pos = self._head(ts, data, pos)
                n = len(data)
            elif st == UNTIL_CLOSE:
                self.body += n - pos
                return
            elif st == CHUNK_SIZE:
                pos = self._chunk_size(ts, data, pos)
            elif st == CHUNK_CRLF:
                c = data[pos]
                if c == 10:
                    self.state = CHUNK_SIZE
                    pos += 1
                elif c == 13 and not self.cr:
                    self.cr = True
                    pos += 1
                else:
                    self._bad_framing(ts)
            elif st == TRAILERS:
                pos = self._trailers(ts, data, pos)
            elif st == RESYNC:
                data, pos = self._resync(data, pos)
                n = len(data)
            elif st == HOLD:
                self._hold(ts, data[pos:] if pos else data, 0)
                return
            else:
                return

    def gap(self, ts: int, nbytes: int) -> None:
        """nbytes (<= 0: an unknown number) were never seen at this point of the stream."""
        st = self.state
        if st == DEAD:
            return
        if st == HOLD:
            self._hold(ts, None, nbytes)
            return
        if st == UNTIL_CLOSE:
            self.gapped = True
            if nbytes > 0:
                self.body += nbytes
            return
        if st == BODY and nbytes > 0:
            self.gapped = True
            rem = self.remaining
            if nbytes < rem:
                self.remaining = rem - nbytes
                self.body += nbytes
                return
            self.body += rem
            self.remaining = 0
            if not self.chunked:
                self._end(ts)
                if nbytes > rem:
                    self.gap(ts, nbytes - rem)
                return
            if nbytes == rem:
                self.state = CHUNK_CRLF
                self.cr = False
                return
            self._end(ts)           # the rest of the chunked body is unknown
            self._resync_if_idle(True)
            return
        if st == IDLE:
            if nbytes > 0:
                self._lost_start()   # a message began in the gap
        elif st == HEAD:
            self._lost_head(ts)
        elif st == RESYNC:
            self.st.skipped_bytes += len(self.carry)
        else:                        # chunk framing, trailers, or a body gap of unknown size
            self.gapped = True
            self.buf.clear()
            self._end(ts)
        self._resync_if_idle(True)

    def finish(self, ts: int) -> None:
        """End of the connection: finish what can be finished, then ignore everything."""
        st = self.state
        if st == HEAD:
            self.st.malformed += 1      # no empty line before the close
        elif st == RESYNC:
            self.st.skipped_bytes += len(self.carry)
        elif BODY <= st <= UNTIL_CLOSE:
            if st != UNTIL_CLOSE:
                self.gapped = True      # cut before its declared end
            self._end(self.last_ts if self.last_ts >= 0 else ts)
        self.kill(ts)

    def kill(self, ts: int) -> None:
        """Stop parsing this direction (tunnel, HTTP/2, close)."""
        if self.pend is not None:
            self.state = DEAD
            self._end(ts)
        self.state = DEAD
        self.buf.clear()
        self.carry = b""

    # -- header blocks ------------------------------------------------------------
    def _head(self, ts: int, data: bytes, pos: int) -> tuple[bytes, int]:
        """Collect a header block spread over several segments (feed() has already
        looked for a whole one in data[pos:pos + max_hdr] when `buf` is empty)."""
        buf = self.buf
        n = len(data)
        old = len(buf)
        take = n - pos
        room = self.max_hdr - old
        if take > room:
            take = room
        buf += data[pos:pos + take]
        if old:
            e = head_end(buf, self.scan - 2 if self.scan > 2 else 0, len(buf))
            if e >= 0:
                block = bytes(buf[:e])
                buf.clear()
                used = pos + e - old
                if self._on_head(block, ts, False):
                    return data, used
                return self._junk(block + data[used:], 1)
        self.scan = len(buf)
        pos += take
        if self.nl < 0:
            ok = self._first_line_ok(old)
            if self.state == DEAD:
                return data, n
            if not ok:
                rest = bytes(buf) + data[pos:]
                buf.clear()
                return self._junk(rest, 1)
        if len(buf) >= self.max_hdr:
            return self._oversize(ts, data, pos)
        return data, pos

    def _junk(self, s: bytes, k: int) -> tuple[bytes, int]:
        """The message starting at s[k-1] is not HTTP: count it, skip a byte, resync."""
        self.st.malformed += 1
        self.st.skipped_bytes += 1
        self._enter_resync(False)
        return s, k

    def _oversize(self, ts: int, data: bytes, pos: int) -> tuple[bytes, int]:
        """The header block outgrew max_header_bytes: keep its start line, skip the rest."""
        self.st.malformed += 1
        buf = self.buf
        if self.nl < 0:
            rest = bytes(buf) + data[pos:]
            buf.clear()
            self.st.skipped_bytes += 1
            self._enter_resync(False)
            return rest, 1
        first = bytes(buf[:self.nl + 1])
        rest = bytes(buf[self.nl + 1:]) + data[pos:]
        buf.clear()
        self._on_head(first, ts, True)
        return rest, 0

    def _lost_head(self, ts: int) -> None:
        """A gap inside a header block: keep the start line if we have it, or the part of
        it that says what the message is."""
        buf = self.buf
        if self.nl >= 0:
            first = bytes(buf[:self.nl + 1])
            self.st.skipped_bytes += len(buf) - len(first)
            buf.clear()
            self.gapped = True
            self._on_head(first, ts, True)
        elif not self._cut_start(ts):
            self.st.skipped_bytes += len(buf)
            buf.clear()
            self.state = IDLE
            self._lost_start()

    # -- chunked framing ------------------------------------------------------------
    def _chunk_size(self, ts: int, data: bytes, pos: int) -> int:
        buf = self.buf
        i = data.find(b"\n", pos)
        if len(buf) + (len(data) if i < 0 else i) - pos > self.max_hdr:
            # longer than any chunk-size line: given up where it outgrows the limit, as
            # when it comes a byte at a time (the rest is looked through for a message)
            k = pos + self.max_hdr + 1 - len(buf)
            buf.clear()
            self._bad_framing(ts, False)
            return k
        if i < 0:
            buf += data[pos:]
            return len(data)
        if buf:
            buf += data[pos:i]
            line = bytes(buf)
            buf.clear()
        else:
            line = data[pos:i]
        pos = i + 1
        size = parse_chunk_size(line) if len(line) <= self.max_hdr else -1
        if size > 0:
            self.state = BODY
            self.remaining = size
        elif size == 0:
            self.state = TRAILERS
            buf += b"\n"
            self.scan = 0
        elif line.strip(b" \t\r"):
            self._bad_framing(ts)
        return pos

    def _trailers(self, ts: int, data: bytes, pos: int) -> int:
        buf = self.buf
        n = len(data)
        if len(buf) == 1:               # common case: no trailer fields
            c = data[pos]
            if c == 10:
                buf.clear()
                self._end(ts)
                return pos + 1
            if c == 13 and pos + 1 < n and data[pos + 1] == 10:
                buf.clear()
                self._end(ts)
                return pos + 2
        old = len(buf)
        take = n - pos
        room = self.max_hdr + 1 - old
        if take > room:
            take = room
        buf += data[pos:pos + take]
        e = head_end(buf, self.scan - 2 if self.scan > 2 else 0, len(buf))
        if e >= 0:
            buf.clear()
            self._end(ts)
            return pos + e - old
        self.scan = len(buf)
        if len(buf) > self.max_hdr:
            buf.clear()
            self._bad_framing(ts, False)
        return pos + take

    def _bad_framing(self, ts: int, line_start: bool = True) -> None:
        """Broken body framing: end the message here and look for the next one."""
        self.st.malformed += 1
        self._end(ts)
        self._resync_if_idle(line_start)

    # -- resynchronising ------------------------------------------------------------
    def _enter_resync(self, line_start: bool) -> None:
        self.state = RESYNC
        self.carry = b""
        self.line_start = line_start
        self.resynced = True

    def _resync_if_idle(self, line_start: bool) -> None:
        if self.state == IDLE or self.state == RESYNC:
            self._enter_resync(line_start)

    def _resync(self, data: bytes, pos: int) -> tuple[bytes, int]:
        carry = self.carry
        if carry:
            s = carry + (data[pos:] if pos else data)
            base = 0
            self.carry = b""
        else:
            s = data
            base = pos
        k, keep, at_line = self._find(s, base, self.line_start)
        if k >= 0:
            self.st.skipped_bytes += k - base
            self.state = IDLE
            return s, k
        self.st.skipped_bytes += keep - base
        self.carry = s[keep:]
        self.line_start = at_line
        return s, len(s)
