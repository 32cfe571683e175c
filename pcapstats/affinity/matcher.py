"""Match each client-side request to the backend-side request it was forwarded as.

A proxy rewrites what it forwards (header names lower-cased, persistence
cookies stripped or unprefixed, ``X-Forwarded-For`` appended) and shares its
backend connections between clients, so addresses say nothing: we match on
content, order and time.

Rule: candidates share method and URI, were sent to a backend no earlier than
the client began sending, and at most ``window_ns`` later; when both sides'
responses are known the status must agree and the backend response must not
start after the client response; when the forwarded request carries
``X-Forwarded-For``, its last hop must be the client's address.

Preference: a proxy relays the response, so its end-to-end headers (ETag,
Content-Length, Last-Modified, an ``X-Served-By`` the server adds, ...) are
the same on both sides. Given both sides' response headers, a candidate whose
response disagrees on fewer of the headers both responses carry is
preferred; hop-by-hop headers and those balancers insert or rewrite
(``Set-Cookie``, ``Date``, ``Server``, ``Via``, ``Age``) are not compared.
This tells apart identical requests that the proxy took in an order the
capture cannot show (several arriving within microseconds: HAProxy serves
the connections one poll returns in its own order).

Order: client requests are taken in order of their last byte (when the proxy
had them whole) and each picks, among the candidates it prefers most, the
free one the proxy dispatched first: a proxy forwards requests in about the
order it received them. A request that opened its backend connection (the
first on it) was dispatched when the proxy began to connect - the
connection's first packet - not when it could finally be sent; meanwhile a
later client request may have gone out on an idle connection, and ordering
by send time would swap the two (and their backends). The caller gives those
times (``dispatch_ns``; default: the send time).

Repair: when a client request finds every candidate taken, the assignment is
repaired along an augmenting path (the request holding one of its candidates
moves to another candidate of its own, recursively, within bounds). Without
it, identical concurrent requests (one client address, several connections,
the same ``GET /``) lose a match whenever an earlier request took the
forwarded copy of a later, quickly answered one. The repair never unmatches
a request: it only adds matches.

What stays ambiguous: identical requests that arrived together, whose
forwarded copies the proxy sent in another order, with responses that carry
no telling header; they are paired in arrival order, which may swap their
backends.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(slots=True)
class MatchStats:
    client_requests: int = 0
    matched: int = 0
    unmatched_no_candidate: int = 0      # no backend request with that method and URI in time
    backend_unmatched: int = 0           # forwarded-looking requests left over


def _last_hop(xff: str | None) -> str | None:
    if not xff:
        return None
    return xff.rsplit(",", 1)[-1].strip() or None


# Bounds of the repair of one unmatched client request (see the module doc).
_MAX_DEPTH = 32
_MAX_STEPS = 2_000


# Response headers a proxy may change or drop (RFC 9110 7.6.1 hop-by-hop, and what
# balancers insert or rewrite): never compared between the two sides.
_NOT_RELAYED = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                          "transfer-encoding", "upgrade", "set-cookie", "date", "server", "via",
                          "age"})


def match_requests(client: list[dict], backend: list[dict],
                   window_ns: int = 30_000_000_000,
                   response_headers: Mapping[int, Mapping[str, str]] | None = None,
                   dispatch_ns: Mapping[int, int] | None = None,
                   ) -> tuple[dict[int, int], MatchStats]:
    """Map client request row index -> backend request row index.

    Each request dict needs ``idx``, ``method``, ``uri``, ``ts_request``,
    ``ts_request_end``, ``ts_response``, ``status``, ``xff`` and ``client_ip``.
    ``response_headers``: row index -> that request's response headers
    (lower-case names), where known; ``dispatch_ns``: backend row index -> when
    the proxy dispatched it (module doc), where it differs from ``ts_request``.
    """
    headers = response_headers or {}
    dispatch = dispatch_ns or {}
    by_key: dict[tuple[str, str], list[dict]] = {}
    for b in backend:
        if b["ts_request"] is None:
            continue
        by_key.setdefault((b["method"], b["uri"]), []).append(b)
    times: dict[tuple[str, str], list[int]] = {}
    for k, lst in by_key.items():
        lst.sort(key=lambda r: (r["ts_request"], r["idx"]))
        times[k] = [r["ts_request"] for r in lst]

    candidates: dict[int, list[int]] = {}      # client idx -> fitting backend idx, preferred first

    def cands(c: dict) -> list[int]:
        got = candidates.get(c["idx"])
        if got is None:
            got = candidates[c["idx"]] = _candidates(c, by_key, times, window_ns, headers, dispatch)
        return got

    owner: dict[int, dict] = {}                 # backend idx -> client request holding it
    out: dict[int, int] = {}
    steps = [0]

    def assign(c: dict, depth: int, visited: set[int]) -> bool:
        """Give `c` a free candidate, else take one whose holder can move (Kuhn's step)."""
        mine = cands(c)
        for b in mine:
            if b not in owner:
                owner[b] = c
                out[c["idx"]] = b
                return True
        if depth >= _MAX_DEPTH:
            return False
        for b in mine:
            if b in visited:
                continue
            visited.add(b)
            steps[0] += 1
            if steps[0] > _MAX_STEPS:
                return False
            holder = owner[b]
            if assign(holder, depth + 1, visited):     # the holder moved to another one
                owner[b] = c
                out[c["idx"]] = b
                return True
        return False

    stats = MatchStats(client_requests=len(client))
    order = sorted(client, key=lambda r: (r["ts_request_end"] or r["ts_request"] or 0, r["idx"]))
    for c in order:
        steps[0] = 0
        if not cands(c) or not assign(c, 0, set()):
            stats.unmatched_no_candidate += 1
    stats.matched = len(out)
    stats.backend_unmatched = len(backend) - len(owner)
    return out, stats


def _candidates(c: dict, by_key: dict[tuple[str, str], list[dict]],
                times: dict[tuple[str, str], list[int]], window_ns: int,
                headers: Mapping[int, Mapping[str, str]],
                dispatch: Mapping[int, int]) -> list[int]:
    """Backend requests `c` may have been forwarded as (module doc rule): fewest response
    header disagreements first, then in dispatch order."""
    k = (c["method"], c["uri"])
    lst = by_key.get(k)
    start = c["ts_request"]
    if not lst or start is None:
        return []
    out: list[tuple[int, int, int, int]] = []
    resp = c["ts_response"]
    mine = headers.get(c["idx"])
    for b in lst[bisect_left(times[k], start):]:
        if b["ts_request"] - start > window_ns:
            break
        if resp is not None and b["ts_request"] > resp:
            break       # sent after the client had its answer: nor can any later one fit
        if c["status"] is not None and b["status"] is not None and c["status"] != b["status"]:
            continue
        if resp is not None and b["ts_response"] is not None and b["ts_response"] > resp:
            continue
        hop = _last_hop(b["xff"])
        if hop is not None and hop != c["client_ip"]:
            continue
        out.append((_disagreements(mine, headers.get(b["idx"])),
                    dispatch.get(b["idx"], b["ts_request"]), b["ts_request"], b["idx"]))
    out.sort()
    return [idx for *_, idx in out]


def _disagreements(a: Mapping[str, str] | None, b: Mapping[str, str] | None) -> int:
    """Relayed response headers both carry with different values."""
    if not a or not b:
        return 0
    if len(b) < len(a):
        a, b = b, a
    return sum(1 for name, value in a.items()
               if name not in _NOT_RELAYED and name in b and b[name] != value)
