"""Affinity layer: load-balancer cookies, persistence and reuse figures (pure functions).

Nothing here does I/O.  The modules:

- `bigip`: F5 BIG-IP persistence cookie decoders (all K6917 layouts).
- `cookies`: Cookie / Set-Cookie parsing, balancer and session cookie
  recognition, and the ``--session-key auto`` rule.
- `persistence`: sessions, persistence ratios and breaks over attributed requests.
- `figures`: `Ratio`, nearest-rank percentiles, evenness and connection reuse figures.
"""

from __future__ import annotations

from pcapstats.affinity.bigip import BigipMember, decode_bigip, decode_bigip_member, encode_bigip_ipv4
from pcapstats.affinity.cookies import (
    BALANCER_KINDS,
    COOKIE_KINDS,
    CookieInfo,
    choose_session_cookie,
    classify_cookie,
    classify_cookies,
    cookie_kind,
    is_session_cookie_name,
    observe_cookies,
    parse_cookie_header,
    parse_set_cookie,
    parse_set_cookies,
    request_backend_cookie,
    split_set_cookie,
)
from pcapstats.affinity.figures import Distribution, Evenness, Ratio, ReuseFigures, nearest_rank, reuse_figures
from pcapstats.affinity.persistence import (
    BREAK_CAUSES,
    BackendLoad,
    BreakRecord,
    GroupRatios,
    PersistenceResult,
    RequestView,
    SessionRecord,
    compute_persistence,
    group_by_client_ip,
)

__all__ = [
    "BALANCER_KINDS",
    "BREAK_CAUSES",
    "COOKIE_KINDS",
    "BackendLoad",
    "BigipMember",
    "BreakRecord",
    "CookieInfo",
    "Distribution",
    "Evenness",
    "GroupRatios",
    "PersistenceResult",
    "Ratio",
    "RequestView",
    "ReuseFigures",
    "SessionRecord",
    "choose_session_cookie",
    "classify_cookie",
    "classify_cookies",
    "compute_persistence",
    "cookie_kind",
    "decode_bigip",
    "decode_bigip_member",
    "encode_bigip_ipv4",
    "group_by_client_ip",
    "is_session_cookie_name",
    "nearest_rank",
    "observe_cookies",
    "parse_cookie_header",
    "parse_set_cookie",
    "parse_set_cookies",
    "request_backend_cookie",
    "reuse_figures",
    "split_set_cookie",
]
