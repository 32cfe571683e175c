"""HTTP/1.x over one TCP connection, sans I/O: bytes in, `HttpExchange` records out.

`HttpStream` pairs requests with responses in order; each direction is read
by a `framing.DirectionReader` subclass defined here, which knows what a
request or a response head means: exchanges, pipelining, 1xx, HEAD/204/304,
CONNECT and Upgrade (tunnels), the HTTP/2 preface, and what a gap implies for
pairing. The client bytes sent after a CONNECT or Upgrade request are held
(at most ``max_header_bytes``) until the answer tells tunnel or not.
"""

from __future__ import annotations

from collections import deque
from sys import intern
from typing import cast

from ..records import HttpExchange
from .framing import (BODY, CHUNK_SIZE, DEAD, HEAD, HOLD, IDLE, UNTIL_CLOSE, DirectionReader,
                      Pending)
from .headers import (H2_PREFACE_LINE, REQUEST_PREFIX, STATUS_LINE, find_request_line,
                      fields_of, find_status_line, is_chunked, parse_cut_request_line,
                      parse_length, parse_request_line, status_prefix_ok)

UNKNOWN_VERSION = "unknown"
"""HttpExchange.version of a request whose request line was cut before its version."""

RequestInfo = tuple[str | None, str | None, str | None, str | None, str | None, str,
                    str | None, str | None]
"""What a request's header fields tell the parser: Host, Cookie, X-Forwarded-For,
User-Agent, Connection, Upgrade (or ""), Transfer-Encoding, Content-Length."""

_NO_INFO: RequestInfo = (None, None, None, None, None, "", None, None)   # a truncated head
_NO_FIELDS: dict[str, str] = {}     # the fields of a truncated response head (only ever read)


def _shared(value: str | None) -> str | None:
    """One copy of a header value that many exchanges repeat (Host, User-Agent, Cookie...):
    the exchanges kept until the end then cost memory per distinct value, not per request."""
    return None if value is None else intern(value)


def _request_info(fields: dict[str, str]) -> RequestInfo:
    get = fields.get
    return (_shared(get("host")), _shared(get("cookie")), _shared(get("x-forwarded-for")),
            _shared(get("user-agent")), _shared(get("connection")), get("upgrade", ""),
            get("transfer-encoding"), get("content-length"))


class RequestReader(DirectionReader):
    """Client to server: requests."""

    __slots__ = ("pipe", "held", "held_bytes", "hold_for", "replaying", "last_rest",
                 "last_info", "start_line")

    def __init__(self, stream: HttpStream, max_hdr: int) -> None:
        super().__init__(stream, max_hdr)
        self.pipe = False                   # the current request was pipelined
        self.held: list[tuple[int, bytes | None, int]] = []   # (ts, data or None, gap size)
        self.held_bytes = 0
        self.hold_for: Pending | None = None  # the CONNECT/Upgrade exchange we wait on
        self.replaying = False
        # The header fields of the previous request, as text (from the end of its request
        # line) and what they tell: a client on a persistent connection mostly repeats them.
        self.last_rest = ""
        self.last_info = _NO_INFO
        self.start_line: tuple[str, str, str] | None = None  # parsed, once `nl` is set

    def _start(self, ts: int) -> None:
        self.msg_ts = ts
        self.state = HEAD
        self.nl = -1
        st = self.st
        self.pipe = self.replaying or bool(st._unanswered) or st._resp.pend is not None

    def _first_line_ok(self, frm: int) -> bool:
        buf = self.buf
        i = buf.find(b"\n", frm)
        if i < 0:
            return REQUEST_PREFIX.match(buf, 0, 33) is not None
        line = buf[:i].decode("latin-1")
        start = parse_request_line(line)
        if start is not None:
            self.start_line = start
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
        self.st._unanswered.append(Pending(None))

    def _on_head(self, block: bytes, ts: int, truncated: bool) -> bool:
        text = block.decode("latin-1")
        nl = text.find("\n")
        # a head that came in pieces had its request line parsed already
        start = self.start_line if self.nl >= 0 else None
        if start is None:
            line = text[:nl] if nl >= 0 else text
            start = parse_request_line(line)
            if start is None:
                if line.rstrip() == H2_PREFACE_LINE:
                    self.st._become("h2c", ts)
                    return True
                return False
        if truncated:
            self._request(ts, start[0], start[1], start[2], _NO_INFO, "", True)
            return True
        rest = self.last_rest
        if len(text) - nl == len(rest) and text.startswith(rest, nl):
            info = self.last_info       # parse_fields reads nothing before the first "\n"
        else:
            info = self.last_info = _request_info(fields_of(text))
            self.last_rest = text[nl:]
        self._request(ts, start[0], start[1], start[2], info, text, False)
        return True

    def _cut_start(self, ts: int) -> bool:
        start = parse_cut_request_line(self.buf.decode("latin-1"))
        if start is None:
            return False
        self.buf.clear()
        self.gapped = True
        method, uri, version = start
        self._request(ts, method, uri, version or UNKNOWN_VERSION, _NO_INFO, "", True)
        return True

    def _request(self, ts: int, method: str, uri: str, version: str, info: RequestInfo,
                 head: str, truncated: bool) -> None:
        """A request head (truncated: only its start line, or less) was read."""
        st = self.st
        if st.protocol == "unknown":
            st.protocol = "http/1"
        # A new exchange (its response will be paired in order).
        st.requests += 1
        depth = st._depth = st._depth + 1
        pipe = self.pipe
        if pipe:
            st.pipelined += 1
        host, cookie, xff, user_agent, conn, upgrade, te, cl = info
        if conn is None and version != UNKNOWN_VERSION:
            conn = "close" if version == "HTTP/1.0" else "keep-alive"
        ex = HttpExchange(st.conn_id, depth, intern(method), uri, intern(version), host,
                          self.msg_ts, None, None, None, None, 0, 0, conn, None, cookie, None, xff,
                          user_agent, pipe, 0, self.gapped or self.resynced, head)
        self.pend = pend = Pending(ex, method, upgrade)
        st._open.append(pend)
        st._unanswered.append(pend)
        self.resynced = False
        if not truncated:
            if te is not None:
                if is_chunked(te):
                    self.chunked = True
                    self.state = CHUNK_SIZE
                    return
            else:
                if cl is None:
                    size = 0
                elif cl.isdecimal() and len(cl) < 19:
                    size = int(cl)
                else:
                    size = parse_length(cl)
                if size > 0:
                    self.state = BODY
                    self.remaining = size
                    return
                if size == 0:
                    if pend.connect or pend.upgrade:
                        self._end(ts)
                        return
                    # what _end(ts) does for a whole head without a body, not a tunnel
                    # and not answered yet (ex.gap, body and chunked are already right)
                    self.pend = None
                    ex.ts_request_end = ts
                    pend.req_done = True
                    self.state = IDLE
                    self.gapped = False
                    return
            st.malformed += 1           # unusable framing: TE without chunked, bad length
        self._end(ts)
        self._resync_if_idle(True)

    def _end(self, ts: int) -> None:
        pend = self.pend
        state = IDLE
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
                state = HOLD
                self.hold_for = pend
            if pend.resp_done:
                self.st._flush()
        if self.state != DEAD:
            self.state = state
        self.body = 0
        self.gapped = False
        self.chunked = False

    def _hold(self, ts: int, data: bytes | None, nbytes: int) -> None:
        self.held.append((ts, data, nbytes))
        # a held gap costs a list entry: charge it, so many gaps cannot grow the list unbounded
        self.held_bytes += len(data) if data is not None else 64
        if self.held_bytes > self.max_hdr:
            self.release()

    def release(self) -> None:
        """The held bytes are HTTP after all: parse them (as pipelined requests)."""
        held = self.held
        self.held = []
        self.held_bytes = 0
        self.hold_for = None
        self.state = IDLE
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
        while self.state == HOLD and self.held:
            self.release()
        super().finish(ts)

    def kill(self, ts: int) -> None:
        self.held = []
        self.held_bytes = 0
        self.hold_for = None
        super().kill(ts)


class ResponseReader(DirectionReader):
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

    def _cut_start(self, ts: int) -> bool:
        # a status line cut short still tells the status once its three digits are seen
        if STATUS_LINE.match(self.buf.decode("latin-1")) is None:
            return False
        block = bytes(self.buf) + b"\n"
        self.buf.clear()
        self.gapped = True
        return self._on_head(block, ts, True)

    def _on_head(self, block: bytes, ts: int, truncated: bool) -> bool:
        text = block.decode("latin-1")
        nl = text.find("\n")
        m = STATUS_LINE.match(text, 0, nl if nl >= 0 else len(text))
        if m is None:
            return False
        st = self.st
        if st.protocol == "unknown":
            st.protocol = "http/1"
        version, code_s = m.groups()
        code = int(code_s)
        if truncated:
            fields = _NO_FIELDS
            text = ""
        else:
            fields = fields_of(text)
        u = st._unanswered
        if code < 200 and code >= 100 and code != 101:
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
            ex.response_head = text
            conn = _shared(fields.get("connection"))
            if conn is None:
                conn = "close" if version == "HTTP/1.0" else "keep-alive"
            ex.resp_connection = conn
            ex.set_cookie = _shared(fields.get("set-cookie"))
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
                    self.state = CHUNK_SIZE
                else:
                    self.state = UNTIL_CLOSE
            elif cl is None:
                self.state = UNTIL_CLOSE
            else:
                size = int(cl) if cl.isdecimal() and len(cl) < 19 else parse_length(cl)
                if size > 0:
                    self.state = BODY
                    self.remaining = size
                elif size == 0:
                    self._end(ts)
                else:
                    st.malformed += 1
                    self._end(ts)
                    self._resync_if_idle(True)
        if pend is not None:
            r = st._req
            if r.state == HOLD and r.hold_for is pend:
                r.release()             # not a tunnel after all: parse the held bytes
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
        if self.state != DEAD:
            self.state = IDLE
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
        max_hdr = max(max_header_bytes, 64)     # below that not even a start line fits
        self._req = RequestReader(self, max_hdr)
        self._resp = ResponseReader(self, max_hdr)
        self._open: deque[Pending] = deque()        # exchanges not handed out yet, in order
        self._unanswered: deque[Pending] = deque()  # waiting for a final response head
        self._out: list[HttpExchange] = []
        self._depth = 0
        self._closed = False

    def feed(self, from_client: bool, ts_ns: int, data: bytes) -> None:
        """In-order bytes of one direction (any segmentation)."""
        if not data:
            return
        if _c_fast and (_C_REQ if from_client else _C_RESP)(self, ts_ns, data):
            return                      # a common request or response segment, done in C
        r = self._req if from_client else self._resp
        if r.state == BODY:            # the common case: more of a body of known length
            n = len(data)
            rem = r.remaining
            if n < rem:
                r.remaining = rem - n
                r.body += n
                r.last_ts = ts_ns
                return
            if n == rem and not r.chunked:  # ... that ends with this segment
                r.remaining = 0
                r.body += n
                r.last_ts = ts_ns
                r._end(ts_ns)
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
        # a reader between messages has nothing to finish (and is dropped below)
        req, resp = self._req, self._resp
        if req.state != IDLE or req.pend is not None:
            req.finish(ts_ns)
        if resp.state != IDLE or resp.pend is not None:
            resp.finish(ts_ns)
        self._closed = True
        for p in self._open:
            if p.ex is not None:
                self._out.append(p.ex)
        self._open.clear()
        self._unanswered.clear()
        # a closed connection may linger (and its exchanges wait for take()): keep only
        # those and the counters; input from now on goes to a reader that ignores it
        self._req = cast(RequestReader, _CLOSED)
        self._resp = cast(ResponseReader, _CLOSED)

    def take(self) -> list[HttpExchange]:
        """Exchanges finished since the last call, in request order."""
        out = self._out
        if out:
            self._out = []
        return out

    # -- used by the readers ------------------------------------------------------
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

    def _resolved(self, p: Pending) -> None:
        r = self._req
        if r.state == HOLD and r.hold_for is p:
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


class _ClosedReader(DirectionReader):
    """Both directions of every closed HttpStream: feed and gap do nothing."""

    __slots__ = ()

    def feed(self, ts: int, data: bytes) -> None:
        pass

    def gap(self, ts: int, nbytes: int) -> None:
        pass


_CLOSED = _ClosedReader(None, 64)   # type: ignore[arg-type]
_CLOSED.state = DEAD


def _request_info_of(text: str) -> RequestInfo:
    """What a request head's fields tell (the C reading of request heads calls it)."""
    return _request_info(fields_of(text))


def _setup_c() -> None:
    _setup_http(HttpStream, DirectionReader, ResponseReader, Pending, HttpExchange,
                RequestReader, _request_info_of)


# What feed() does with the commonest segments, in C (pcapstats/_fastpcap.c): a whole
# response head with Content-Length answering a plain request, the end of a body
# (http_resp), a segment that is one whole request head without a body (http_req). The
# fast lane calls them too. _c_fast is False without the module (or turned off).
try:
    from .._fastpcap import http_req as _C_REQ, http_resp as _C_RESP, setup_http as _setup_http
    _setup_c()
    _C_OK = True
except (ImportError, TypeError):    # pragma: no cover - no compiler; a class lost its slots
    _C_OK = False
_c_fast = _C_OK


def use_c_http(on: bool) -> None:
    """Turn the C reading of common segments on or off (for tests: both ways must give
    the same exchanges)."""
    global _c_fast
    if not _C_OK:
        return
    if on:
        _setup_c()
    else:
        _setup_http()
    _c_fast = on
