"""Line- and field-level pieces of HTTP/1.x parsing, with no state.

Start lines, header fields, body sizes and the search for a plausible start
line when resynchronising. `parser.py` drives them; everything here works on
one complete line or header block, or scans a given buffer.
"""

from __future__ import annotations

import re

try:    # the C reading of a common header block (pcapstats/_fastpcap.c)
    from .._fastpcap import head_fields as _head_fields
except ImportError:     # pragma: no cover - parse_fields alone gives the same fields
    _head_fields = None

ABSURD_SIZE = 1 << 63
"""A Content-Length or chunk size at or above this is malformed, not counted."""

RESYNC_LINE_MAX = 8192
"""Longest start line the resynchronising search accepts."""

_TAIL_MAX = RESYNC_LINE_MAX + 64   # longest partial line kept between segments while resyncing
_STATUS_LINE_MAX = 1100            # "HTTP/1.x NNN " + reason up to 1000 bytes + CRLF

_TCHAR = r"!#$%&'*+.^_`|~0-9A-Za-z-"

REQUEST_LINE = re.compile(
    r"([A-Za-z][" + _TCHAR + r"]{0,31})[ \t]+([^\r\n]+?)[ \t]+(HTTP/1\.[0-9])[ \t]*\r?\Z")
"""Lenient request line (str): method token, target (spaces tolerated), HTTP/1.x."""

STATUS_LINE = re.compile(r"(HTTP/1\.[0-9])[ \t]+([0-9]{3})(?:[ \t][^\r\n]*)?[ \t]*\r?\Z")
"""Lenient status line (str): HTTP/1.x, three digits, optional reason."""

REQUEST_PREFIX = re.compile(
    rb"[A-Za-z][" + _TCHAR.encode() + rb"]{0,31}(?:[ \t]|\Z)")
"""Match on the first 33 bytes of a partial request: can it still become a request line?"""

H2_PREFACE_LINE = "PRI * HTTP/2.0"

_TARGET = re.compile(rb"[!-~]+")
_METHOD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
KNOWN_METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT",
                 b"TRACE", b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK",
                 b"UNLOCK", b"REPORT", b"SEARCH", b"PURGE")
"""Methods recognised when resynchronising on a request line glued to earlier bytes."""
_RESYNC_STATUS = re.compile(rb"HTTP/1\.[0-9] [1-5][0-9][0-9](?: [^\r\n]{0,1000})?\r?\n")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

_WS = " \t\r"
_JOIN = {"cookie": "; ", "set-cookie": "\n"}

_CUT_REQUEST = re.compile(r"(" + "|".join(m.decode() for m in KNOWN_METHODS) + r")[ \t]+"
                          r"([^\x00-\x08\x0a-\x1f\x7f]*)\Z")
"""A request line cut short: a known method, white space, then no control character."""
_VERSION_PREFIX = re.compile(r"H(?:T(?:T(?:P(?:/(?:1(?:\.[0-9]?)?)?)?)?)?)?\Z")
"""A beginning of "HTTP/1.x"."""


HEAD_END = re.compile(rb"\n\r?\n")
"""The empty line that ends a header block (CRLF, bare LF or a mix)."""


def head_end(buf: bytes | bytearray, start: int, stop: int) -> int:
    """Index just past the empty line ending a header block in buf[start:stop], or -1.

    The block must not begin with an empty line. Accepts CRLF, bare LF and mixes.
    """
    m = HEAD_END.search(buf, start, stop)
    return -1 if m is None else m.end()


def parse_fields(lines: list[str]) -> dict[str, str]:
    """Header fields of a complete header block split into lines.

    lines[0] is the start line and the last two lines are the empty line and
    what follows it. Names are lower-cased; repeated fields are joined with
    ", " (Cookie with "; ", Set-Cookie with a newline); obsolete line folding
    is unfolded with one space; lines without a colon are ignored.
    """
    hl = lines[1:-2]
    fields: dict[str, str] = {}
    for line in hl:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.lower()] = value.strip(_WS)
    if len(fields) != len(hl):
        return _parse_fields_lenient(lines)     # repeated names, lines without a colon
    names = "".join(fields)
    if " " in names or "\t" in names:
        return _parse_fields_lenient(lines)     # folded lines, white space before a colon
    return fields


def fields_of(head: str) -> dict[str, str]:
    """parse_fields of a whole header block as text (start line included); {} for "".

    The common block (one field per line, each once, ASCII names) is read by
    ``_fastpcap.head_fields`` where it is built; it gives what parse_fields gives
    (tests/test_http_parser.py checks both on random blocks)."""
    if not head:
        return {}
    if _head_fields is not None:
        fields = _head_fields(head)
        if fields is not None:
            return fields
    return parse_fields(head.split("\n"))


def _parse_fields_lenient(lines: list[str]) -> dict[str, str]:
    """parse_fields for blocks with folded lines or white space before a colon."""
    fields: dict[str, str] = {}
    name = ""
    for line in lines[1:]:
        if not line:
            continue
        c = line[0]
        if c == " " or c == "\t":
            if name:
                more = line.strip(_WS)
                if more:
                    fields[name] = fields[name] + " " + more
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip(_WS).lower()
        value = value.strip(_WS)
        old = fields.get(key)
        fields[key] = value if old is None else old + _JOIN.get(key, ", ") + value
        name = key
    return fields


_VERSIONS = {"HTTP/1.1": "HTTP/1.1", "HTTP/1.0": "HTTP/1.0",
             "HTTP/1.1\r": "HTTP/1.1", "HTTP/1.0\r": "HTTP/1.0"}


def parse_request_line(line: str) -> tuple[str, str, str] | None:
    """(method, target, version) of a request line (trailing CR allowed), or None."""
    parts = line.split(" ")
    if len(parts) == 3:
        method, target, v = parts
        version = _VERSIONS.get(v)          # the common versions, with their CR dropped
        if version is not None and target and "\t" not in target \
                and method.isalpha() and method.isascii() and len(method) <= 32:
            return method, target, version
    m = REQUEST_LINE.match(line)
    if m is None:
        return None
    return m.group(1), m.group(2), m.group(3)


def parse_cut_request_line(line: str) -> tuple[str, str, str | None] | None:
    """(method, target as far as seen, version or None) of a request line cut short (by
    the capture's snaplen), or None when it is not plausibly one: a known method and
    white space must have been seen. A last word that is the beginning of "HTTP/1.x"
    is taken for the cut version, not part of the target.
    """
    if line[-1:] == "\r":
        line = line[:-1]
    m = _CUT_REQUEST.match(line)
    if m is None:
        return None
    method, target = m.groups()
    target = target.rstrip(" \t")
    version = None
    i = max(target.rfind(" "), target.rfind("\t"))
    if i >= 0:
        tail = target[i + 1:]
        if _VERSION_PREFIX.match(tail) is not None:
            if len(tail) == 8:
                version = tail
            target = target[:i].rstrip(" \t")
    return method, target, version


def parse_length(value: str) -> int:
    """Content-Length as an int; -1 when invalid, conflicting ("5, 6") or absurd."""
    v = value.strip(_WS)
    if "," in v:
        parts = {p.strip(_WS) for p in v.split(",")}
        if len(parts) != 1:
            return -1
        v = parts.pop()
    if not v or len(v) > 19 or not (v.isascii() and v.isdigit()):
        return -1
    n = int(v)
    return n if n < ABSURD_SIZE else -1


def parse_chunk_size(line: bytes) -> int:
    """Size of a chunk from its size line (extensions ignored); -1 when invalid or absurd."""
    semi = line.find(b";")
    part = (line[:semi] if semi >= 0 else line).strip(b" \t\r")
    if _HEX.fullmatch(part) is None:
        return -1
    n = int(part, 16)
    return n if n < ABSURD_SIZE else -1


def is_chunked(transfer_encoding: str) -> bool:
    """True when the last transfer coding is chunked."""
    return transfer_encoding.rpartition(",")[2].strip(_WS).lower() == "chunked"


def default_connection(version: str) -> str:
    """The Connection behaviour a message has without a Connection header."""
    return "close" if version == "HTTP/1.0" else "keep-alive"


def status_prefix_ok(buf: bytes | bytearray) -> bool:
    """Can this partial first line still become a status line?"""
    k = len(buf)
    if k > 8:
        k = 8
    if buf[:7] != b"HTTP/1."[:k]:
        return False
    return k < 8 or 48 <= buf[7] <= 57


def _tail(s: bytes, base: int, line_start: bool) -> tuple[int, bool]:
    """What to keep of s[base:] for the next segment: (start, does it begin a line?).

    Any candidate still unfinished at the end of s lies within its last line
    and within the last `_TAIL_MAX` bytes, so that is all that is kept.
    """
    keep = s.rfind(b"\n", base) + 1
    if keep < base:
        keep = base
    if len(s) - keep > _TAIL_MAX:
        keep = len(s) - _TAIL_MAX
    at_line = s[keep - 1] == 10 if keep > base else line_start
    return keep, at_line


def _request_start(s: bytes, base: int, line_start: bool, i: int) -> int:
    """Start of the request line whose " HTTP/1.x" is at s[i], or -1 if implausible.

    At a line start any upper-case method is plausible. Glued to earlier bytes
    (the tail of a body), only a known method that ends the run of upper-case
    letters before the target is.
    """
    lo = i - RESYNC_LINE_MAX
    if lo < base:
        lo = base
    sp = s.rfind(b" ", lo, i)
    if sp < 0 or _TARGET.fullmatch(s, sp + 1, i) is None:
        return -1
    stop = sp - 32
    if stop < lo:
        stop = lo
    k = sp
    while k > stop and s[k - 1] in _METHOD_BYTES:
        k -= 1
    if k == sp:
        return -1
    if (k > base and s[k - 1] == 10) or (k == base and line_start):
        return k if 65 <= s[k] <= 90 else -1
    word = s[k:sp]
    for m in KNOWN_METHODS:
        if word.endswith(m):
            return sp - len(m)
    return -1


def find_request_line(s: bytes, base: int, line_start: bool) -> tuple[int, int, bool]:
    """First plausible request line in s[base:] (`line_start`: does s[base] begin a line?).

    Returns (index, 0, False) when found, else (-1, keep, at_line): the bytes from
    keep on may still begin a request line and are to be kept for the next
    segment (at_line says whether they begin a line).
    """
    n = len(s)
    i = s.find(b" HTTP/1.", base)
    while i >= 0:
        if i + 10 > n:
            break
        c = s[i + 9]
        if c == 13 and i + 11 > n:
            break
        if 48 <= s[i + 8] <= 57 and (c == 10 or (c == 13 and s[i + 10] == 10)):
            k = _request_start(s, base, line_start, i)
            if k >= 0:
                return k, 0, False
        i = s.find(b" HTTP/1.", i + 1)
    keep, at_line = _tail(s, base, line_start)
    return -1, keep, at_line


def find_status_line(s: bytes, base: int, line_start: bool) -> tuple[int, int, bool]:
    """First plausible status line in s[base:], even glued to earlier bytes; see above."""
    n = len(s)
    i = s.find(b"HTTP/1.", base)
    while i >= 0:
        e = s.find(b"\n", i, i + _STATUS_LINE_MAX)
        if e < 0:
            if n - i < _STATUS_LINE_MAX:
                break
        elif _RESYNC_STATUS.fullmatch(s, i, e + 1) is not None:
            return i, 0, False
        i = s.find(b"HTTP/1.", i + 1)
    keep, at_line = _tail(s, base, line_start)
    return -1, keep, at_line
