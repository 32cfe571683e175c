"""HTTP/1.x over one TCP connection, sans I/O: bytes in, `HttpExchange` records out.

`HttpStream` owns the pairing of requests and responses; each direction is
read by a `_Reader`, a small state machine (states below) that is fed
in-order bytes in any segmentation. Bodies are never buffered: their length
is counted by arithmetic. What is buffered is bounded: one header or trailer
block (at most ``max_header_bytes``), a chunk-size line, the short unfinished
line kept while resynchronising, and the client bytes held while a CONNECT or
Upgrade request awaits its answer (at most ``max_header_bytes`` too).
"""

from __future__ import annotations

from collections import deque

from ..records import HttpExchange
from .headers import (H2_PREFACE_LINE, HEAD_END, REQUEST_PREFIX, STATUS_LINE,
                      default_connection, find_request_line, find_status_line, head_end,
                      is_chunked, parse_chunk_size, parse_fields, parse_length,
                      parse_request_line, status_prefix_ok)

# Reader states.
_IDLE = 0         # between messages (stray CR/LF skipped)
_HEAD = 1         # collecting a header block
_BODY = 2         # `remaining` bytes of a body of known length, or of one chunk if `chunked`
_CHUNK_SIZE = 3   # collecting a chunk-size line
_CHUNK_CRLF = 4   # the CRLF after a chunk's data
_TRAILERS = 5     # collecting the trailer block after the last chunk
_UNTIL_CLOSE = 6  # response body delimited by the end of the connection
_RESYNC = 7       # looking for the next plausible start line
_HOLD = 8         # client bytes after CONNECT/Upgrade, held until the answer says tunnel or not
_DEAD = 9         # tunnel, HTTP/2 or closed: bytes are ignored


class _Pend:
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


class _Reader:
    """The state machine for one direction; subclasses know requests or responses."""

    __slots__ = ("st", "max_hdr", "state", "buf", "scan", "nl", "msg_ts", "last_ts",
                 "remaining", "body", "chunked", "cr", "pend", "gapped", "resynced",
                 "carry", "line_start")

    def __init__(self, stream: HttpStream, max_hdr: int) -> None:
        self.st = stream
        self.max_hdr = max_hdr
        self.state = _IDLE
        self.buf = bytearray()       # partial header block, chunk-size line or trailers
        self.scan = 0                # how far `buf` was searched for the end of a block
        self.nl = -1                 # end of the validated first line in `buf`, -1 if not yet
        self.msg_ts = 0              # ts of the first byte of the current message
        self.last_ts = -1            # ts of the last bytes fed, -1 before any
        self.remaining = 0           # bytes left in the body or chunk
        self.body = 0                # body bytes of the current message
        self.chunked = False
        self.cr = False              # CR seen in _CHUNK_CRLF
        self.pend: _Pend | None = None   # exchange of the message being read
        self.gapped = False          # bytes of the current message were missed
        self.resynced = False        # the next message was found by resynchronising
        self.carry = b""             # unfinished last line kept while resyncing
        self.line_start = True       # does the next resync input begin a line?

    # -- subclass hooks -------------------------------------------------------------
    def _on_head(self, block: bytes, ts: int, truncated: bool) -> bool:
        raise NotImplementedError

    def _end(self, ts: int) -> None:
        raise NotImplementedError

    def _first_line_ok(self, frm: int) -> bool:
        raise NotImplementedError

    def _find(self, s: bytes, base: int, line_start: bool) -> tuple[int, int, bool]:
        raise NotImplementedError

    def _lost_start(self) -> None:
        raise NotImplementedError

    def _hold(self, ts: int, data: bytes | None, nbytes: int) -> None:
        pass

    def _start(self, ts: int) -> None:
        self.msg_ts = ts
        self.state = _HEAD
        self.nl = -1

    # -- input ------------------------------------------------------------------
    def feed(self, ts: int, data: bytes) -> None:
        self.last_ts = ts
        n = len(data)
        pos = 0
        while pos < n:
            st = self.state
            if st == _BODY:
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
                    self.state = _CHUNK_CRLF
                    self.cr = False
                else:
                    self._end(ts)
            elif st == _IDLE:
                c = data[pos]
                if c == 13 or c == 10:
                    pos += 1
                    continue
                self._start(ts)
                m = HEAD_END.search(data, pos, pos + self.max_hdr)
                if m is None:
                    data, pos = self._head(ts, data, pos)
                    n = len(data)
                elif self._on_head(data[pos:m.end()], ts, False):   # whole head in one segment
                    pos = m.end()
                else:
                    data, pos = self._junk(data, pos + 1)
                    n = len(data)
            elif st == _HEAD:
                data, pos = self._head(ts, data, pos)
                n = len(data)
            elif st == _UNTIL_CLOSE:
                self.body += n - pos
                return
            elif st == _CHUNK_SIZE:
                pos = self._chunk_size(ts, data, pos)
            elif st == _CHUNK_CRLF:
                c = data[pos]
                if c == 10:
                    self.state = _CHUNK_SIZE
                    pos += 1
                elif c == 13 and not self.cr:
                    self.cr = True
                    pos += 1
                else:
                    self._bad_framing(ts)
            elif st == _TRAILERS:
                pos = self._trailers(ts, data, pos)
            elif st == _RESYNC:
                data, pos = self._resync(data, pos)
                n = len(data)
            elif st == _HOLD:
                self._hold(ts, data[pos:] if pos else data, 0)
                return
            else:
                return

    def gap(self, ts: int, nbytes: int) -> None:
        """nbytes (<= 0: an unknown number) were never seen at this point of the stream."""
        st = self.state
        if st == _DEAD:
            return
        if st == _HOLD:
            self._hold(ts, None, nbytes)
            return
        if st == _UNTIL_CLOSE:
            self.gapped = True
            if nbytes > 0:
                self.body += nbytes
            return
        if st == _BODY and nbytes > 0:
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
                self.state = _CHUNK_CRLF
                self.cr = False
                return
            self._end(ts)           # the rest of the chunked body is unknown
            self._resync_if_idle(True)
            return
        if st == _IDLE:
            if nbytes > 0:
                self._lost_start()   # a message began in the gap
        elif st == _HEAD:
            self._lost_head(ts)
        elif st == _RESYNC:
            self.st.skipped_bytes += len(self.carry)
        else:                        # chunk framing, trailers, or a body gap of unknown size
            self.gapped = True
            self.buf.clear()
            self._end(ts)
        self._resync_if_idle(True)

    def finish(self, ts: int) -> None:
        """End of the connection: finish what can be finished, then ignore everything."""
        st = self.state
        if st == _HEAD:
            self.st.malformed += 1      # no empty line before the close
        elif st == _RESYNC:
            self.st.skipped_bytes += len(self.carry)
        elif _BODY <= st <= _UNTIL_CLOSE:
            self._end(self.last_ts if self.last_ts >= 0 else ts)
        self.kill(ts)

    def kill(self, ts: int) -> None:
        """Stop parsing this direction (tunnel, HTTP/2, close)."""
        if self.pend is not None:
            self.state = _DEAD
            self._end(ts)
        self.state = _DEAD
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
            if self.state == _DEAD:
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
        """A gap inside a header block: keep the start line if we have it."""
        buf = self.buf
        if self.nl >= 0:
            first = bytes(buf[:self.nl + 1])
            self.st.skipped_bytes += len(buf) - len(first)
            buf.clear()
            self.gapped = True
            self._on_head(first, ts, True)
        else:
            self.st.skipped_bytes += len(buf)
            buf.clear()
            self.state = _IDLE
            self._lost_start()

    # -- chunked framing ------------------------------------------------------------
    def _chunk_size(self, ts: int, data: bytes, pos: int) -> int:
        buf = self.buf
        i = data.find(b"\n", pos)
        if i < 0:
            buf += data[pos:]
            if len(buf) > self.max_hdr:
                buf.clear()
                self._bad_framing(ts, False)
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
            self.state = _BODY
            self.remaining = size
        elif size == 0:
            self.state = _TRAILERS
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
        self.state = _RESYNC
        self.carry = b""
        self.line_start = line_start
        self.resynced = True

    def _resync_if_idle(self, line_start: bool) -> None:
        if self.state == _IDLE or self.state == _RESYNC:
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
            self.state = _IDLE
            return s, k
        self.st.skipped_bytes += keep - base
        self.carry = s[keep:]
        self.line_start = at_line
        return s, len(s)


class _RequestReader(_Reader):
    """Client to server: requests."""

    __slots__ = ("pipe", "held", "held_bytes", "hold_for", "replaying")

    def __init__(self, stream: HttpStream, max_hdr: int) -> None:
        super().__init__(stream, max_hdr)
        self.pipe = False                   # the current request was pipelined
        self.held: list[tuple[int, bytes | None, int]] = []   # (ts, data or None, gap size)
        self.held_bytes = 0
        self.hold_for: _Pend | None = None  # the CONNECT/Upgrade exchange we wait on
        self.replaying = False

    def _start(self, ts: int) -> None:
        self.msg_ts = ts
        self.state = _HEAD
        self.nl = -1
        st = self.st
        self.pipe = self.replaying or bool(st._unanswered) or st._resp.pend is not None

    def _first_line_ok(self, frm: int) -> bool:
        buf = self.buf
        i = buf.find(b"\n", frm)
        if i < 0:
            return REQUEST_PREFIX.match(buf, 0, 33) is not None
        line = buf[:i].decode("latin-1")
        if parse_request_line(line) is not None:
            self.nl = i
            if self.st.protocol == "unknown":
                self.st.protocol = "http/1"
            return True
        if line.rstrip() == H2_PREFACE_LINE:
            self.st._become("h2c", self.last_ts)
            return True
        return False

    def _find(self, s: bytes, base: int, line_start: bool) -> tuple[int, int, bool]:
        return find_request_line(s, base, line_start)

    def _lost_start(self) -> None:
        self.st._unanswered.append(_Pend(None))

    def _on_head(self, block: bytes, ts: int, truncated: bool) -> bool:
        lines = block.decode("latin-1").split("\n")
        start = parse_request_line(lines[0])
        st = self.st
        if start is None:
            if lines[0].rstrip() == H2_PREFACE_LINE:
                st._become("h2c", ts)
                return True
            return False
        method, uri, version = start
        fields = {} if truncated else parse_fields(lines)
        if st.protocol == "unknown":
            st.protocol = "http/1"
        self.pend = st._add_request(method, uri, version, fields, self.msg_ts, self.pipe,
                                    self.gapped or self.resynced)
        self.resynced = False
        self.body = 0
        self.chunked = False
        if not truncated:
            te = fields.get("transfer-encoding")
            if te is not None:
                if is_chunked(te):
                    self.chunked = True
                    self.state = _CHUNK_SIZE
                    return True
            else:
                cl = fields.get("content-length")
                if cl is None:
                    size = 0
                elif cl.isdecimal() and len(cl) < 19:
                    size = int(cl)
                else:
                    size = parse_length(cl)
                if size > 0:
                    self.state = _BODY
                    self.remaining = size
                    return True
                if size == 0:
                    self._end(ts)
                    return True
            st.malformed += 1           # unusable framing: TE without chunked, bad length
        self._end(ts)
        self._resync_if_idle(True)
        return True

    def _end(self, ts: int) -> None:
        pend = self.pend
        state = _IDLE
        if pend is not None:
            self.pend = None
            ex = pend.ex
            assert ex is not None
            ex.ts_request_end = ts
            ex.request_body_bytes = self.body
            if self.gapped:
                ex.gap = True
            pend.req_done = True
            if (pend.connect or pend.upgrade) and not pend.resolved:
                state = _HOLD
                self.hold_for = pend
            if pend.resp_done:
                self.st._flush()
        if self.state != _DEAD:
            self.state = state
        self.body = 0
        self.gapped = False
        self.chunked = False

    def _hold(self, ts: int, data: bytes | None, nbytes: int) -> None:
        self.held.append((ts, data, nbytes))
        if data is not None:
            self.held_bytes += len(data)
            if self.held_bytes > self.max_hdr:
                self.release()

    def release(self) -> None:
        """The held bytes are HTTP after all: parse them (as pipelined requests)."""
        held = self.held
        self.held = []
        self.held_bytes = 0
        self.hold_for = None
        self.state = _IDLE
        last = self.last_ts
        replaying = self.replaying
        self.replaying = True
        for ts, data, nbytes in held:
            if data is None:
                self.gap(ts, nbytes)
            else:
                self.feed(ts, data)
        self.replaying = replaying
        if last > self.last_ts:
            self.last_ts = last

    def finish(self, ts: int) -> None:
        while self.state == _HOLD and self.held:
            self.release()
        super().finish(ts)

    def kill(self, ts: int) -> None:
        self.held = []
        self.held_bytes = 0
        self.hold_for = None
        super().kill(ts)


class _ResponseReader(_Reader):
    """Server to client: responses, paired in order with the requests."""

    __slots__ = ()

    def _first_line_ok(self, frm: int) -> bool:
        buf = self.buf
        i = buf.find(b"\n", frm)
        if i < 0:
            return status_prefix_ok(buf)
        if STATUS_LINE.match(buf[:i].decode("latin-1")) is None:
            return False
        self.nl = i
        if self.st.protocol == "unknown":
            self.st.protocol = "http/1"
        return True

    def _find(self, s: bytes, base: int, line_start: bool) -> tuple[int, int, bool]:
        return find_status_line(s, base, line_start)

    def _lost_start(self) -> None:
        self.st._lost_response()

    def _on_head(self, block: bytes, ts: int, truncated: bool) -> bool:
        lines = block.decode("latin-1").split("\n")
        m = STATUS_LINE.match(lines[0])
        if m is None:
            return False
        st = self.st
        if st.protocol == "unknown":
            st.protocol = "http/1"
        version = m.group(1)
        code = int(m.group(2))
        fields = {} if truncated else parse_fields(lines)
        self.body = 0
        self.chunked = False
        u = st._unanswered
        if 100 <= code < 200 and code != 101:
            st.interim_responses += 1
            if u and u[0].ex is not None:
                u[0].ex.interim += 1
            self.pend = None
            self._end(ts)
            if truncated:
                self._resync_if_idle(True)
            return True
        st.responses += 1
        pend = u.popleft() if u else None
        if pend is None or pend.ex is None:
            st.orphan_responses += 1
            pend = None
        else:
            ex = pend.ex
            ex.status = code
            ex.ts_response = self.msg_ts
            ex.response_headers = fields
            conn = fields.get("connection")
            ex.resp_connection = conn if conn is not None else default_connection(version)
            ex.set_cookie = fields.get("set-cookie")
            if self.gapped or self.resynced:
                ex.gap = True
            pend.resolved = True
        self.resynced = False
        self.pend = pend
        if code == 101 or (pend is not None and pend.connect and 200 <= code < 300):
            up = fields.get("upgrade") or (pend.upgrade if pend is not None else "")
            self._end(ts)
            st._become("h2c" if code == 101 and "h2c" in up.lower() else "tunnel", ts)
            return True
        if truncated:
            self._end(ts)
            self._resync_if_idle(True)
        elif (pend is not None and pend.head) or code == 204 or code == 304:
            self._end(ts)
        else:
            te = fields.get("transfer-encoding")
            cl = fields.get("content-length")
            if te is not None:
                if is_chunked(te):
                    self.chunked = True
                    self.state = _CHUNK_SIZE
                else:
                    self.state = _UNTIL_CLOSE
            elif cl is None:
                self.state = _UNTIL_CLOSE
            else:
                size = int(cl) if cl.isdecimal() and len(cl) < 19 else parse_length(cl)
                if size > 0:
                    self.state = _BODY
                    self.remaining = size
                elif size == 0:
                    self._end(ts)
                else:
                    st.malformed += 1
                    self._end(ts)
                    self._resync_if_idle(True)
        if pend is not None:
            st._resolved(pend)
        return True

    def _end(self, ts: int) -> None:
        pend = self.pend
        if pend is not None:
            self.pend = None
            ex = pend.ex
            assert ex is not None
            ex.ts_response_end = ts
            ex.response_body_bytes = self.body
            if self.gapped:
                ex.gap = True
            pend.resp_done = True
            if pend.req_done:
                self.st._flush()
        if self.state != _DEAD:
            self.state = _IDLE
        self.body = 0
        self.gapped = False
        self.chunked = False


class HttpStream:
    """HTTP/1.x conversation over one TCP connection, fed the two in-order byte streams.

    Never raises on input and never does I/O. Counters (readable at any time):

    - ``protocol``: "unknown" until a plausible request or status line is seen,
      then "http/1"; "h2c" (HTTP/2 prior-knowledge preface, or 101 to an h2c
      upgrade) or "tunnel" (2xx to CONNECT, any other 101), after which the
      connection is no longer parsed.
    - ``requests``: request heads parsed (one exchange each).
    - ``responses``: final responses whose status line was parsed (101 included,
      orphans included); ``interim_responses``: other 1xx responses.
    - ``orphan_responses``: final responses with no request to pair with.
    - ``malformed``: messages that are not HTTP or have unusable framing.
    - ``skipped_bytes``: bytes seen but skipped while resynchronising.
    - ``pipelined``: requests started before the previous response had ended.
    """

    __slots__ = ("conn_id", "protocol", "requests", "responses", "interim_responses",
                 "orphan_responses", "malformed", "skipped_bytes", "pipelined",
                 "_req", "_resp", "_open", "_unanswered", "_out", "_depth", "_closed")

    def __init__(self, conn_id: int, max_header_bytes: int = 65536) -> None:
        self.conn_id = conn_id
        self.protocol = "unknown"
        self.requests = 0
        self.responses = 0
        self.interim_responses = 0
        self.orphan_responses = 0
        self.malformed = 0
        self.skipped_bytes = 0
        self.pipelined = 0
        max_hdr = max(max_header_bytes, 64)
        self._req = _RequestReader(self, max_hdr)
        self._resp = _ResponseReader(self, max_hdr)
        self._open: deque[_Pend] = deque()        # exchanges not handed out yet, in order
        self._unanswered: deque[_Pend] = deque()  # waiting for a final response head
        self._out: list[HttpExchange] = []
        self._depth = 0
        self._closed = False

    def feed(self, from_client: bool, ts_ns: int, data: bytes) -> None:
        """In-order bytes of one direction (any segmentation)."""
        r = self._req if from_client else self._resp
        if r.state == _BODY:            # the common case: more of a body of known length
            n = len(data)
            rem = r.remaining
            if n < rem:
                r.remaining = rem - n
                r.body += n
                r.last_ts = ts_ns
                return
        if not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        r.feed(ts_ns, data)

    def gap(self, from_client: bool, ts_ns: int, nbytes: int) -> None:
        """nbytes of that direction were never seen (nbytes <= 0: unknown amount).

        Inside a body or chunk of known length the gap is just counted as body;
        anywhere else the reader resynchronises on the next plausible start line.
        Call it with 0 before the first data when the start of the connection
        was not captured, so the partial first message is skipped, not malformed.
        """
        if self._closed:
            return
        (self._req if from_client else self._resp).gap(ts_ns, nbytes)

    def close(self, ts_ns: int) -> None:
        """End of the connection or capture: finish what can be, emit everything left."""
        if self._closed:
            return
        self._req.finish(ts_ns)
        self._resp.finish(ts_ns)
        self._closed = True
        for p in self._open:
            if p.ex is not None:
                self._out.append(p.ex)
        self._open.clear()
        self._unanswered.clear()

    def take(self) -> list[HttpExchange]:
        """Exchanges finished since the last call, in request order."""
        out = self._out
        if out:
            self._out = []
        return out

    # -- used by the readers ------------------------------------------------------
    def _busy(self) -> bool:
        """Is an earlier response still unfinished (so a request now is pipelined)?"""
        return bool(self._unanswered) or self._resp.pend is not None

    def _add_request(self, method: str, uri: str, version: str, fields: dict[str, str],
                     ts: int, pipelined: bool, gap: bool) -> _Pend:
        self.requests += 1
        self._depth += 1
        if pipelined:
            self.pipelined += 1
        conn = fields.get("connection")
        ex = HttpExchange(
            self.conn_id, self._depth, method, uri, version,
            host=fields.get("host"), ts_request=ts,
            req_connection=conn if conn is not None else default_connection(version),
            cookie=fields.get("cookie"), xff=fields.get("x-forwarded-for"),
            user_agent=fields.get("user-agent"), pipelined=pipelined, headers=fields,
            gap=gap)
        p = _Pend(ex, method, fields.get("upgrade", ""))
        self._open.append(p)
        self._unanswered.append(p)
        return p

    def _lost_response(self) -> None:
        """A response began in a gap: it answered the oldest waiting request."""
        u = self._unanswered
        if not u:
            return
        p = u.popleft()
        if p.ex is None:
            return
        p.ex.gap = True
        p.resolved = True
        p.resp_done = True
        self._flush()
        self._resolved(p)

    def _resolved(self, p: _Pend) -> None:
        r = self._req
        if r.state == _HOLD and r.hold_for is p:
            r.release()

    def _become(self, protocol: str, ts: int) -> None:
        self.protocol = protocol
        self._req.kill(ts)
        self._resp.kill(ts)

    def _flush(self) -> None:
        op = self._open
        out = self._out
        while op:
            p = op[0]
            if not (p.req_done and p.resp_done):
                return
            op.popleft()
            assert p.ex is not None
            out.append(p.ex)
