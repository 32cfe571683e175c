"""TLS wire format: record-header recognition, version names, a bounds-checked reader.

Pure functions and constants shared by `parser.py`; no state, no I/O.
"""

from __future__ import annotations

import hashlib

__all__ = ["ALERT", "APPLICATION_DATA", "CHANGE_CIPHER_SPEC", "HANDSHAKE", "HEARTBEAT", "HRR_RANDOM",
           "MAX_HANDSHAKE_MESSAGE", "MAX_RECORD", "Malformed", "Reader", "digest", "is_grease", "is_tls13",
           "looks_like_tls", "text", "version_name"]

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
MAX_RECORD = 2**14 + 2048              # largest TLSCiphertext fragment (RFC 5246 6.2.3)
MAX_HANDSHAKE_MESSAGE = 64 * 1024      # cap on a buffered ClientHello/ServerHello
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()  # RFC 8446 4.1.3
_VERSION_NAMES = {0x0002: "SSL 2.0", 0x0300: "SSL 3.0", 0x0301: "TLS 1.0",
                  0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}


def version_name(code: int) -> str:
    """Readable protocol version: 0x0303 -> "TLS 1.2", 0x7f13 -> "TLS 1.3 (draft 19)"."""
    if code in _VERSION_NAMES:
        return _VERSION_NAMES[code]
    if 0x7F00 <= code <= 0x7FFF:
        return f"TLS 1.3 (draft {code & 0xFF})"
    return f"0x{code:04x}"


def is_tls13(code: int | None) -> bool:
    return code is not None and (code == 0x0304 or 0x7F00 <= code <= 0x7FFF)


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values 0x0a0a, 0x1a1a ... 0xfafa."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def digest(data: bytes) -> str:
    """Short stable identity of an opaque ticket (first 64 bits of SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()[:16]


def text(data: bytes) -> str:
    return data.decode("ascii", errors="backslashreplace")


def looks_like_tls(first_bytes: bytes) -> bool:
    """Whether a stream starting with these bytes is TLS, judged on its first 5 bytes.

    A TLS record header: content type 20-23, version major 3 and minor 0-4, and
    (once 5 bytes are there) a length of at most 2^14+2048, non-zero except for
    application data. With 3 or 4 bytes only type and version are checked; with
    fewer than 3 the answer is False (not enough evidence). An SSLv2-compatible
    ClientHello (2-byte header with the top bit set, message type 1, version
    0x0002 or 3.x) needs 5 bytes.
    """
    b = first_bytes[:5]
    if len(b) < 3:
        return False
    if 20 <= b[0] <= 23 and b[1] == 3 and b[2] <= 4:
        if len(b) < 5:
            return True
        length = b[3] << 8 | b[4]
        return length <= MAX_RECORD and (length > 0 or b[0] == APPLICATION_DATA)
    if len(b) == 5 and b[0] & 0x80 and b[2] == 1:  # ClientHello
        length = (b[0] & 0x7F) << 8 | b[1]
        return length >= 9 and ((b[3] == 0 and b[4] == 2) or (b[3] == 3 and b[4] <= 4))
    return False


class Malformed(Exception):
    """A handshake message is shorter than its own lengths say (caught by the parser)."""


class Reader:
    """Bounds-checked big-endian reader over one message (raises Malformed)."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf, self.pos, self.end = buf, pos, len(buf) if end is None else end

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise Malformed
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, len_bytes: int) -> Reader:
        """The length-prefixed vector that follows, as its own reader."""
        n = self.uint(len_bytes)
        self.take(n)
        return Reader(self.buf, self.pos - n, self.pos)

    def rest(self) -> bytes:
        return self.take(self.end - self.pos)

    def done(self) -> bool:
        return self.pos >= self.end

    def extensions(self) -> list[tuple[int, Reader]]:
        """The optional extensions block ending the message, GREASE types dropped."""
        if self.done():
            return []
        block = self.vec(2)
        if not self.done():
            raise Malformed  # trailing bytes after the extensions
        out = []
        while not block.done():
            etype, data = block.uint(2), block.vec(2)
            if not is_grease(etype):
                out.append((etype, data))
        return out
