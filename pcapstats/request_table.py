"""The requests table, kept as columns over the HTTP exchanges.

A request row would repeat what its exchange and its connection already hold,
and a dict per request costs about 0.8 KB, nearly as much as the exchange it
repeats (about 1.1 KB with its strings). So the table keeps the exchanges,
a lookup of the connection rows, and one list per column that affinity fills
(``session``, ``backend``, ``side``, ``health_check``). Readers take whole
columns (:meth:`RequestTable.column`, what the DataFrame and the HTML page
use) or rows: indexing and iterating give a fresh dict per request, with the
columns of ``frames.REQUESTS``, ``idx`` (the row's position) and ``client_addr``
(see below); ``list(table)`` is the plain list of row dicts (for json.dumps).
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from itertools import compress
from operator import attrgetter
from typing import Any, Iterator, overload

from .records import HttpExchange, row_columns

EXCHANGE_COLUMNS = ("conn_id", "depth", "method", "host", "uri", "version", "status",
                    "ts_request", "ts_request_end", "ts_response", "ts_response_end",
                    "request_body_bytes", "response_body_bytes", "req_connection",
                    "resp_connection", "pipelined", "cookie", "set_cookie", "xff",
                    "user_agent")
CONNECTION_COLUMNS = ("client_ip", "client_port", "server_ip", "server_port")
ATTRIBUTION_COLUMNS = ("session", "backend", "side", "health_check", "client_addr")
_NO_CONNECTION = dict.fromkeys(CONNECTION_COLUMNS)
_CHUNK = 1 << 14


def ttfb(e: HttpExchange) -> int | None:
    """Time from the request's last byte to the response's first, in ns."""
    if e.ts_response is None or e.ts_request_end is None:
        return None
    return e.ts_response - e.ts_request_end


class RequestTable(Sequence[dict]):
    """One row per exchange, in the exchanges' order; see the module docstring."""

    def __init__(self, exchanges: list[HttpExchange], conns: list[dict]) -> None:
        self.exchanges = exchanges
        self._conns = {c["conn_id"]: c for c in conns}
        n = len(exchanges)
        self.session: list[str | None] = [None] * n
        self.backend: list[str | None] = [None] * n
        self.side: list[str | None] = [None] * n
        self.health_check: list[bool] = [False] * n
        # the client address a session request counts for (first X-Forwarded-For hop of a
        # forwarded request, else the connection's client); not a DataFrame column
        self.client_addr: list[str | None] = [None] * n

    def __len__(self) -> int:
        return len(self.exchanges)

    def connection(self, i: int) -> dict:
        """The connection row of request ``i`` (nulls if it has none)."""
        return self._conns.get(self.exchanges[i].conn_id, _NO_CONNECTION)

    def column(self, name: str, only: Sequence[int] | None = None) -> list[Any]:
        """Column ``name`` of every row (or of the rows numbered in ``only``), as a new
        list."""
        ex = self.exchanges if only is None else [self.exchanges[i] for i in only]
        if name in EXCHANGE_COLUMNS:
            return list(map(attrgetter(name), ex))
        if name in CONNECTION_COLUMNS:
            conns, none = self._conns, _NO_CONNECTION
            return [conns.get(e.conn_id, none)[name] for e in ex]
        if name in ATTRIBUTION_COLUMNS:
            col = getattr(self, name)
            return list(col) if only is None else [col[i] for i in only]
        if name == "ttfb_ns":
            return [ttfb(e) for e in ex]
        if name == "idx":
            return list(range(len(ex))) if only is None else list(only)
        raise KeyError(name)

    def exchange_columns(self, *names: str) -> list[list[Any]]:
        """Columns ``names`` (of EXCHANGE_COLUMNS) of every row, as new lists, read in one
        pass over the exchanges: each exchange is touched once instead of once a column
        (on hundreds of thousands, scattered in memory, each pass is mostly cache misses).
        The exchanges are read in chunks, so the row tuples in between stay few."""
        if len(names) < 2:
            return [self.column(n) for n in names]
        get = attrgetter(*names)
        cols: list[list[Any]] = [[] for _ in names]
        ex = self.exchanges
        for start in range(0, len(ex), _CHUNK):
            for col, part in zip(cols, zip(*map(get, ex[start:start + _CHUNK]))):
                col.extend(part)
        return cols

    def row(self, i: int) -> dict:
        """Row ``i`` as a new dict."""
        e = self.exchanges[i]
        c = self._conns.get(e.conn_id, _NO_CONNECTION)
        return {
            "conn_id": e.conn_id, "depth": e.depth,
            "client_ip": c["client_ip"], "client_port": c["client_port"],
            "server_ip": c["server_ip"], "server_port": c["server_port"],
            "method": e.method, "host": e.host, "uri": e.uri, "version": e.version,
            "status": e.status, "ts_request": e.ts_request, "ts_request_end": e.ts_request_end,
            "ts_response": e.ts_response, "ts_response_end": e.ts_response_end,
            "ttfb_ns": ttfb(e), "request_body_bytes": e.request_body_bytes,
            "response_body_bytes": e.response_body_bytes,
            "req_connection": e.req_connection, "resp_connection": e.resp_connection,
            "pipelined": e.pipelined, "cookie": e.cookie, "set_cookie": e.set_cookie,
            "xff": e.xff, "user_agent": e.user_agent, "session": self.session[i],
            "backend": self.backend[i], "side": self.side[i], "idx": i,
            "health_check": self.health_check[i], "client_addr": self.client_addr[i],
        }

    @overload
    def __getitem__(self, i: int) -> dict: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict]: ...

    def __getitem__(self, i: int | slice) -> dict | list[dict]:
        if isinstance(i, slice):
            return [self.row(k) for k in range(*i.indices(len(self)))]
        n = len(self.exchanges)
        if not -n <= i < n:
            raise IndexError("request index out of range")
        return self.row(i % n)

    def __iter__(self) -> Iterator[dict]:
        return map(self.row, range(len(self.exchanges)))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same rows (a list of row dicts, another table)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]   # like a list


def table_columns(rows: Sequence[dict], names: Sequence[str],
                  where: tuple[str, Container[Any]] | None = None) -> list[Sequence[Any]]:
    """The named columns of a RequestTable (whole columns at once) or of any sequence
    of row dicts (missing keys as None), one sequence per name. ``where`` (a column
    and values): only the rows whose value in that column is one of them."""
    if where is not None:
        key, values = where
        if isinstance(rows, RequestTable):
            col = rows.column(key)
            only = list(compress(range(len(col)), map(values.__contains__, col)))
            return [rows.column(n, only) for n in names]
        rows = [r for r in rows if r.get(key) in values]
    if isinstance(rows, RequestTable):
        return [rows.column(n) for n in names]
    return row_columns(rows, names)


def columns_of(rows: Sequence[dict], *names: str,
               where: tuple[str, Container[Any]] | None = None) -> Iterator[tuple[Any, ...]]:
    """Tuples of the named columns, row by row (see `table_columns`)."""
    return zip(*table_columns(rows, names, where))
