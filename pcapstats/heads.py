"""Where the header blocks of finished HTTP exchanges wait: out of memory.

An exchange keeps its request and response heads as text (`HttpExchange.request_head`,
`.response_head`) for the few readers that need every header field: two-sided request
matching, ``--session-key header:NAME``, and users' notebooks. They are most of what an
exchange weighs: about 300 bytes each in the benchmark's requests, 1-2 kB each in real
browsers' (cookies, user agents, Accept lists). Kept in memory, they made a run's memory
grow with every request of the capture.

A run therefore moves the heads of the exchanges it has finished into a `HeadStore`: a
temporary file (unlinked at once, in ``TMPDIR``; closed when the last exchange holding
it goes) written in 1 MB appends. The exchange keeps an int handle (offset and length)
in place of each head and reads the text back on access, with one ``pread``. Without a
writable temporary directory the store keeps the bytes in memory, as before.

A store pickles as its bytes (a parallel part's exchanges reach the main process, or a
Dask client, with the store they refer to written once) and unpickles into a new file;
a local worker hands its stores over as files instead (`handover`).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from itertools import accumulate, repeat
from typing import Any, Iterator, Sequence

from .http import parser
from .records import REQUEST_HEAD, RESPONSE_HEAD, STORE

try:
    from ._fastpcap import spill_heads as _c_spill
except ImportError:     # pragma: no cover - built without a compiler
    _c_spill = None

#: Bytes kept in memory before they are appended to the file.
CHUNK = 1 << 20
#: Handle = offset << LEN_BITS | length; a longer head stays text.
LEN_BITS = 24
_LEN_MASK = (1 << LEN_BITS) - 1


class HeadStore:
    """Latin-1 texts appended once, read back by handle (module doc)."""

    __slots__ = ("_file", "_fd", "_buf", "_base", "_full")

    def __init__(self, data: bytes = b"", adopt: str | None = None) -> None:
        """A store holding ``data``; or, with ``adopt``, the store a worker handed over
        as that file (`handover`), which is unlinked: the store owns it from here on."""
        self._buf = bytearray()
        self._base = 0      # bytes already in the file
        self._full = False  # the file could not take more: the buffer keeps the rest
        if adopt is not None:
            self._file: Any = open(adopt, "rb+")    # noqa: SIM115 - closed with the store
            os.unlink(adopt)
            self._fd = self._file.fileno()
            self._base = os.fstat(self._fd).st_size
            return
        try:
            self._file = tempfile.TemporaryFile()
            self._fd = self._file.fileno()
        except OSError:     # no writable temporary directory: kept in memory
            self._file = None
            self._fd = -1
        if data:
            self._buf += data
            self._flush()

    def __len__(self) -> int:
        return self._base + len(self._buf)

    def put_many(self, texts: Sequence[str]) -> list[int]:
        """Append ``texts`` (latin-1); their handles, in order."""
        blob = "".join(texts).encode("latin-1")
        start = len(self)
        ends = list(accumulate(map(len, texts), initial=start))
        self._buf += blob
        self._flush_if_full()
        return [a << LEN_BITS | (b - a) for a, b in zip(ends, ends[1:])]

    def get(self, handle: int) -> str:
        at, n = handle >> LEN_BITS, handle & _LEN_MASK
        rel = at - self._base
        if rel >= 0:
            if rel + n > len(self._buf):
                raise OSError(f"head store: no {n} bytes at offset {at}")
            return self._buf[rel:rel + n].decode("latin-1")
        return _read(self._fd, n, at).decode("latin-1")

    def getvalue(self) -> bytes:
        """Everything appended, as one bytes object."""
        return (_read(self._fd, self._base, 0) if self._base else b"") + bytes(self._buf)

    def _flush_if_full(self) -> None:
        if len(self._buf) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._file is None or self._full or not self._buf:
            return
        try:
            _write(self._fd, self._buf, self._base)
        except OSError:     # the temporary directory is full: the rest stays in memory
            self._full = True
            return
        self._base += len(self._buf)
        self._buf = bytearray()

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        if _handover is not None and self._file is not None and not self._full:
            return HeadStore, (b"", self._hand_over(_handover))
        return HeadStore, (self.getvalue(),)

    def _hand_over(self, folder: str) -> str:
        """A copy of the store as a file in ``folder``, made by the kernel; its path.
        OSError if the store's own file cannot take what is still in memory (the
        worker then sends its result by value, heads included)."""
        self._flush()
        if self._buf:
            raise OSError("head store: its file is full, the heads are not all in it")
        fd, path = tempfile.mkstemp(dir=folder, suffix=".heads")
        try:
            at = 0
            while at < self._base:
                sent = os.sendfile(fd, self._fd, at, self._base - at)
                if not sent:
                    raise OSError(f"head store: {self._base - at} bytes not copied")
                at += sent
        finally:
            os.close(fd)
        return path


#: The folder this process hands stores over in while it pickles (handover()).
_handover: str | None = None


@contextmanager
def handover(folder: str) -> Iterator[None]:
    """Pickle the stores in the body as files in ``folder``, which only a process of
    this machine reads back (a local worker's spool): the heads then go file to file
    in the kernel, not through the pickle and the memory of both processes (at 5M
    packets with a browser's headers, 180 MB a part, held twice by the reader)."""
    global _handover
    old, _handover = _handover, folder
    try:
        yield
    finally:
        _handover = old


def _write(fd: int, data: bytearray, at: int) -> None:
    """All of ``data`` at offset ``at`` (pwrite: no buffer left holding a part of it if
    the disk is full, and the offset readers share is not moved)."""
    n = os.pwrite(fd, data, at)
    while n < len(data):            # a short write (rare): the rest, as a copy
        n += os.pwrite(fd, data[n:], at + n)


def _read(fd: int, n: int, at: int) -> bytes:
    """``n`` bytes at ``at`` of the store's file (pread: a forked reader shares the
    file's offset, so nothing here moves it)."""
    parts = []
    while n > 0:
        got = os.pread(fd, n, at)
        if not got:
            raise OSError(f"head store: {n} bytes missing at offset {at}")
        parts.append(got)
        n -= len(got)
        at += len(got)
    return b"".join(parts)


def spill(exchanges: list[Any], store: HeadStore) -> None:
    """Move the heads of ``exchanges`` that hold them as text (latin-1, shorter than
    16 MB) and are in no store yet into ``store``; each exchange then reads them back
    from it. In C where the HTTP fast path is on (one pass, no handle list), else in
    Python."""
    if _c_spill is not None and parser._c_fast:
        _c_spill(exchanges, store._buf, store._base, store)
        store._flush_if_full()
        return
    exchanges = [e for e in exchanges if STORE.__get__(e) is None]
    for slot in (REQUEST_HEAD, RESPONSE_HEAD):
        held = [(e, t) for e, t in zip(exchanges, map(slot.__get__, exchanges))
                if t.__class__ is str and len(t) <= _LEN_MASK]
        try:
            handles = store.put_many([t for _, t in held])
        except UnicodeEncodeError:      # (a parser's heads are latin-1 text)
            continue
        list(map(slot.__set__, [e for e, _ in held], handles))
    list(map(STORE.__set__, exchanges, repeat(store)))
