"""Match each client-side request to the backend-side request it was forwarded as.

A proxy rewrites what it forwards (header names lower-cased, persistence
cookies stripped or unprefixed, ``X-Forwarded-For`` appended) and shares its
backend connections between clients, so addresses say nothing: we match on
content, order and time.

Rule: candidates share method and URI, were sent to a backend no earlier than
the client began sending, and at most ``window_ns`` later; when both sides'
responses are known the status must agree and the backend response must not
start after the client response; when the forwarded request carries
``X-Forwarded-For``, its last hop must be the client's address. Client requests
are taken in order of their last byte (when the proxy had them whole) and
each picks the earliest free candidate.
"""

from __future__ import annotations

from bisect import bisect_left
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


def match_requests(client: list[dict], backend: list[dict],
                   window_ns: int = 30_000_000_000) -> tuple[dict[int, int], MatchStats]:
    """Map client request row index -> backend request row index.

    Each request dict needs ``idx``, ``method``, ``uri``, ``ts_request``,
    ``ts_request_end``, ``ts_response``, ``status``, ``xff`` and ``client_ip``.
    """
    by_key: dict[tuple[str, str], list[dict]] = {}
    for b in backend:
        if b["ts_request"] is None:
            continue
        by_key.setdefault((b["method"], b["uri"]), []).append(b)
    times: dict[tuple[str, str], list[int]] = {}
    for k, lst in by_key.items():
        lst.sort(key=lambda r: (r["ts_request"], r["idx"]))
        times[k] = [r["ts_request"] for r in lst]
    taken: set[int] = set()
    out: dict[int, int] = {}
    stats = MatchStats(client_requests=len(client))
    order = sorted(client, key=lambda r: (r["ts_request_end"] or r["ts_request"] or 0, r["idx"]))
    for c in order:
        k = (c["method"], c["uri"])
        lst = by_key.get(k)
        start = c["ts_request"]
        if not lst or start is None:
            stats.unmatched_no_candidate += 1
            continue
        i = bisect_left(times[k], start)
        hit = None
        for b in lst[i:]:
            if b["ts_request"] - start > window_ns:
                break
            if b["idx"] in taken:
                continue
            if c["status"] is not None and b["status"] is not None and c["status"] != b["status"]:
                continue
            if c["ts_response"] is not None and b["ts_response"] is not None \
                    and b["ts_response"] > c["ts_response"]:
                continue
            hop = _last_hop(b["xff"])
            if hop is not None and hop != c["client_ip"]:
                continue
            hit = b
            break
        if hit is None:
            stats.unmatched_no_candidate += 1
            continue
        taken.add(hit["idx"])
        out[c["idx"]] = hit["idx"]
    stats.matched = len(out)
    stats.backend_unmatched = len(backend) - len(taken)
    return out, stats
