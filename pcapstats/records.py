"""Record types shared between layers: one explicit record per concept.

Layers only pass these (or plain tuples on the per-packet hot path) upward;
`frames.py` turns them into DataFrames in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from itertools import starmap
from operator import attrgetter, itemgetter
from typing import Any, Sequence


@dataclass(slots=True)
class HttpExchange:
    """One HTTP/1.x request and the response paired with it (if any).

    Timestamps are integer nanoseconds since the epoch; None when not seen.
    Header values are the raw text as sent (repeated headers joined with
    ", " except Cookie, joined with "; ", and Set-Cookie, joined with "\\n").
    `headers` and `response_headers` (every field, lower-case names) are parsed
    from the header blocks on first use: few readers need them. A run moves the
    blocks of the exchanges it has finished to a file (heads.py); `request_head`
    and `response_head` read them back.
    """

    conn_id: int
    depth: int                      # 1 = first request on its connection
    method: str
    uri: str
    version: str                    # "HTTP/1.1", "HTTP/1.0"; "unknown" if the request line was cut
    host: str | None = None
    ts_request: int | None = None   # first byte of the request
    ts_request_end: int | None = None
    status: int | None = None       # final (non-1xx) status; None if no response
    ts_response: int | None = None  # first byte of the final response
    ts_response_end: int | None = None
    request_body_bytes: int = 0
    response_body_bytes: int = 0
    req_connection: str | None = None   # Connection header of the request
    resp_connection: str | None = None  # Connection header of the response
    cookie: str | None = None
    set_cookie: str | None = None
    xff: str | None = None
    user_agent: str | None = None
    pipelined: bool = False         # sent before the previous response ended
    interim: int = 0                # 1xx responses seen before the final one
    gap: bool = False               # bytes missed (gap, cut by the close) or found by resyncing
    # the header blocks as received (latin-1 text, start line included); "" when none was
    # read whole (no response, or cut by a gap or by max_header_bytes)
    request_head: str = ""
    response_head: str = ""
    _headers: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)
    _response_headers: dict[str, str] | None = field(default=None, init=False, repr=False,
                                                     compare=False)
    # the heads.HeadStore the heads are in, once a run has moved them there
    _store: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """Request header fields, lower-case names."""
        h = self._headers
        if h is None:
            from .http.headers import fields_of
            h = self._headers = fields_of(self.request_head)
        return h

    @property
    def response_headers(self) -> dict[str, str]:
        """Response header fields (of the final response), lower-case names."""
        h = self._response_headers
        if h is None:
            from .http.headers import fields_of
            h = self._response_headers = fields_of(self.response_head)
        return h

    def __reduce__(self) -> tuple[Any, tuple[tuple[Any, ...], Any]]:
        """Pickled as one tuple of the field values (heads as their handles) and the
        head store: parallel parts send many thousands (about twice as fast as the
        dataclass default, both ways; the header caches are not sent)."""
        return _exchange, (_RAW_VALUES(self), STORE.__get__(self))


def _exchange(values: tuple[Any, ...], store: Any = None) -> HttpExchange:
    ex = HttpExchange(*values)
    STORE.__set__(ex, store)
    return ex


# The heads' slots hold their text, or an int handle into the exchange's _store
# (heads.py): the public attributes are properties that give the text either way.
REQUEST_HEAD = HttpExchange.__dict__["request_head"]
RESPONSE_HEAD = HttpExchange.__dict__["response_head"]
STORE = HttpExchange.__dict__["_store"]


def _head_property(slot: Any, doc: str) -> property:
    get = slot.__get__

    def head(self: HttpExchange) -> str:
        v = get(self)
        return v if v.__class__ is str else STORE.__get__(self).get(v)
    return property(head, slot.__set__, doc=doc)


HttpExchange._raw_request_head = REQUEST_HEAD      # type: ignore[attr-defined]
HttpExchange._raw_response_head = RESPONSE_HEAD    # type: ignore[attr-defined]
HttpExchange.request_head = _head_property(        # type: ignore[assignment]
    REQUEST_HEAD, "The request's header block as received (latin-1 text).")
HttpExchange.response_head = _head_property(       # type: ignore[assignment]
    RESPONSE_HEAD, "The final response's header block as received (latin-1 text).")

_HEADS = {"request_head", "response_head"}
#: The init values as stored: heads as their handles where they are in a store.
_RAW_VALUES = attrgetter(*("_raw_" + f.name if f.name in _HEADS else f.name
                           for f in fields(HttpExchange) if f.init))


def pack_exchanges(exchanges: list[HttpExchange]) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Exchanges as plain values for pickling: their raw field values and their head
    stores (pickled once each, however many exchanges refer to one)."""
    return list(map(_RAW_VALUES, exchanges)), list(map(STORE.__get__, exchanges))


def unpack_exchanges(packed: tuple[list[tuple[Any, ...]], list[Any]]) -> list[HttpExchange]:
    values, stores = packed
    exchanges = list(starmap(HttpExchange, values))
    list(map(STORE.__set__, exchanges, stores))
    return exchanges


def sort_exchanges(exchanges: list[HttpExchange]) -> None:
    """Sort the exchanges of a run in place: by connection, then in request order (by
    (conn_id, depth), as two stable sorts on one attribute each: no key tuple per
    exchange, half the time on a run's hundreds of thousands)."""
    exchanges.sort(key=_DEPTH)
    exchanges.sort(key=_CONN_ID)


_DEPTH = attrgetter("depth")
_CONN_ID = attrgetter("conn_id")


def row_columns(rows: Sequence[dict], names: Sequence[str]) -> list[Sequence[Any]]:
    """The columns ``names`` of row dicts, one sequence per name (missing keys as None).

    One C-level lookup of all the columns per row, then a transpose: each row dict is
    touched once, which matters when there are hundreds of thousands of them (scattered
    in memory, every separate pass over them is mostly cache misses)."""
    if rows and len(names) > 1:
        try:
            return list(zip(*map(itemgetter(*names), rows)))
        except KeyError:    # rows from users may lack a column
            pass
    return [[r.get(name) for r in rows] for name in names]
