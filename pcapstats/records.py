"""Record types shared between layers: one explicit record per concept.

Layers only pass these (or plain tuples on the per-packet hot path) upward;
`frames.py` turns them into DataFrames in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class HttpExchange:
    """One HTTP/1.x request and the response paired with it (if any).

    Timestamps are integer nanoseconds since the epoch; None when not seen.
    Header values are the raw text as sent (repeated headers joined with
    ", " except Cookie, joined with "; ", and Set-Cookie, joined with "\\n").
    """

    conn_id: int
    depth: int                      # 1 = first request on its connection
    method: str
    uri: str
    version: str                    # "HTTP/1.1", "HTTP/1.0"
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
    headers: dict[str, str] = field(default_factory=dict)  # request headers, lower-case names
    response_headers: dict[str, str] = field(default_factory=dict)
    gap: bool = False               # bytes missed (gap, cut by the close) or found by resyncing
