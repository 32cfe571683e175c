"""Persistence (affinity) figures over requests already attributed to a session and a backend.

Pure computation: the caller decides each request's session key and backend
(see cookies.py and DOMAIN.md) and hands in `RequestView`s; nothing here
reads a capture.

Rules (DOMAIN.md "persistence ratio", "persistence break"):

- Requests are taken in (ts, idx) order.  A request whose ``session`` is
  None is left out of every session figure (it still counts in the backend
  load and the client-IP grouping).  A request whose ``backend`` is None is
  part of its session (requests, times, client IPs) but never counts for or
  against persistence.
- A session is **eligible** when it has >= 2 requests with a known backend.
  Only eligible sessions enter the two ratios; a single-request session is
  trivially persistent and would only inflate them.
- ``persistent``: all of the session's requests with a known backend reached
  one backend (vacuously True for a session with fewer than 2 such requests:
  check ``eligible``).
- ``primary_backend``: the session's most-used known backend; on a tie, the
  one it used first.
- **persistence_ratio_sessions** = persistent eligible sessions / eligible
  sessions.  **persistence_ratio_requests** = requests of eligible sessions
  served by their session's primary backend / requests of eligible sessions
  with a known backend.
- A **break** is a request with a known backend different from the backend
  of the session's previous request with a known backend.  Its cause, first
  match wins: ``cookie-missing`` (the request's cause_hint says so),
  ``new-client-address`` (client_ip differs from that previous request's),
  ``cookie-changed`` (cause_hint says so), else ``unknown``.  Other hints
  are ignored.
- **backend load**: every request with a known backend, with or without a
  session; ``sessions`` counts the sessions whose primary backend it is.
  Evenness (figures.py) is over the backends seen, by requests.
- **by_client_ip**: the same two ratios with each client IP as the session,
  over all requests (with or without a session key).
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from pcapstats.affinity.figures import Evenness, Ratio, evenness, reuse_figures

__all__ = [
    "BREAK_CAUSES",
    "BackendLoad",
    "BreakRecord",
    "GroupRatios",
    "PersistenceResult",
    "RequestView",
    "SessionRecord",
    "compute_persistence",
    "group_by_client_ip",
    "reuse_figures",
]

BREAK_CAUSES = ("cookie-missing", "new-client-address", "cookie-changed", "unknown")


class RequestView(NamedTuple):
    """One HTTP request as the affinity layer sees it (immutable; a named tuple, which is
    built 3x faster than a frozen dataclass: the caller makes one per request)."""

    idx: int                        # row index in the requests table
    ts: int                         # ns since the epoch
    session: str | None             # session key value; None: no key -> out of session figures
    backend: str | None             # "ip:port" or server name; None: unknown
    client_ip: str
    cause_hint: str | None = None   # e.g. "cookie-missing", "cookie-changed"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session: the requests that share a session key."""

    session: str
    requests: int                   # all requests of the session
    known_requests: int             # requests with a known backend
    backends: int                   # distinct known backends reached
    primary_backend: str | None     # most-used known backend (tie: first used); None if none known
    primary_requests: int           # requests served by primary_backend
    persistent: bool                # all known-backend requests reached one backend
    first_ts: int
    last_ts: int
    breaks: int                     # persistence breaks within the session
    client_ips: int                 # distinct client addresses

    @property
    def eligible(self) -> bool:
        """True when the session counts in the ratios (>= 2 requests with a known backend)."""
        return self.known_requests >= 2


@dataclass(frozen=True, slots=True)
class BreakRecord:
    """A request sent to another backend than the session's previous one."""

    session: str
    ts: int
    idx: int                        # the request that broke persistence
    prev_idx: int                   # the session's previous request with a known backend
    from_backend: str
    to_backend: str
    cause: str                      # one of BREAK_CAUSES


@dataclass(frozen=True, slots=True)
class BackendLoad:
    """Load one backend received."""

    backend: str
    requests: int                   # requests with this backend (with or without a session)
    sessions: int                   # sessions whose primary backend this is


@dataclass(frozen=True, slots=True)
class GroupRatios:
    """The two persistence ratios for one way of grouping requests into sessions."""

    key: str                        # "session" or "client_ip"
    groups: int                     # groups (sessions) found
    eligible_groups: int            # groups with >= 2 requests with a known backend
    sessions_ratio: Ratio           # persistent eligible groups / eligible groups
    requests_ratio: Ratio           # primary-served requests / known-backend requests, eligible groups


@dataclass(slots=True)
class PersistenceResult:
    """Everything `compute_persistence` finds (see the module doc for the rules)."""

    sessions: list[SessionRecord]           # sorted by first_ts, then session key
    breaks: list[BreakRecord]               # sorted by ts, then idx
    persistence_ratio_sessions: Ratio
    persistence_ratio_requests: Ratio
    backends: list[BackendLoad]             # sorted by requests (desc), then backend
    load_evenness: Evenness                 # of requests over backends
    by_client_ip: GroupRatios
    requests: int = 0                       # requests given
    requests_without_session: int = 0
    requests_unknown_backend: int = 0       # among all requests given
    break_causes: dict[str, int] = field(default_factory=dict)  # every BREAK_CAUSES key, in order

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (ratios as {numerator, denominator, value})."""

        def ratios(group: GroupRatios) -> dict[str, Any]:
            return {
                "key": group.key,
                "groups": group.groups,
                "eligible_groups": group.eligible_groups,
                "sessions_ratio": group.sessions_ratio.to_dict(),
                "requests_ratio": group.requests_ratio.to_dict(),
            }

        ev = self.load_evenness
        return {
            "requests": self.requests,
            "requests_without_session": self.requests_without_session,
            "requests_unknown_backend": self.requests_unknown_backend,
            "sessions": [
                {**_record_dict(s), "eligible": s.eligible} for s in self.sessions
            ],
            "breaks": [_record_dict(b) for b in self.breaks],
            "break_causes": dict(self.break_causes),
            "persistence_ratio_sessions": self.persistence_ratio_sessions.to_dict(),
            "persistence_ratio_requests": self.persistence_ratio_requests.to_dict(),
            "backends": [_record_dict(b) for b in self.backends],
            "load_evenness": {
                "items": ev.items, "total": ev.total, "mean": ev.mean,
                "max_to_mean": ev.max_to_mean, "cv": ev.cv,
            },
            "by_client_ip": ratios(self.by_client_ip),
        }


def _record_dict(record: SessionRecord | BreakRecord | BackendLoad) -> dict[str, Any]:
    return asdict(record)


# --------------------------------------------------------------------------- core

def _order(reqs: Iterable[RequestView]) -> list[RequestView]:
    """In (ts, idx) order: sorted by idx (one pass when they come in that order), then
    stably by ts; a third of the time of one sort on (ts, idx) tuples."""
    out = sorted(reqs, key=_IDX)
    out.sort(key=_TS)
    return out


_IDX = itemgetter(0)       # RequestView.idx
_TS = itemgetter(1)        # RequestView.ts


def _group(reqs: Sequence[RequestView], key: str) -> dict[str, list[RequestView]]:
    """Group time-ordered requests by ``key`` ("session" or "client_ip"), dropping None keys
    (groups in order of first request)."""
    groups: defaultdict[str | None, list[RequestView]] = defaultdict(list)
    # each request appended to its group's list, the loop in C (maps drained by a deque)
    deque(map(list.append, map(groups.__getitem__, map(attrgetter(key), reqs)), reqs), 0)
    groups.pop(None, None)
    groups.default_factory = None
    return groups     # type: ignore[return-value]


def _break_cause(req: RequestView, prev: RequestView) -> str:
    if req.cause_hint == "cookie-missing":
        return "cookie-missing"
    if req.client_ip != prev.client_ip:
        return "new-client-address"
    if req.cause_hint == "cookie-changed":
        return "cookie-changed"
    return "unknown"


_BACKEND = attrgetter("backend")
_SESSION = attrgetter("session")
_CLIENT_IP = attrgetter("client_ip")


def _session(key: str, reqs: Sequence[RequestView]) -> tuple[SessionRecord, list[BreakRecord]]:
    """Figures for one session's requests, already in (ts, idx) order."""
    backends = list(map(_BACKEND, reqs))
    uses = Counter(backends)
    uses.pop(None, None)
    breaks: list[BreakRecord] = []
    if len(uses) > 1:               # the session moved: find where (else one backend, no break)
        prev: RequestView | None = None
        for req, backend in zip(reqs, backends):
            if backend is None:
                continue
            if prev is not None and backend != prev.backend:
                breaks.append(BreakRecord(
                    session=key, ts=req.ts, idx=req.idx, prev_idx=prev.idx,
                    from_backend=prev.backend, to_backend=backend,   # type: ignore[arg-type]
                    cause=_break_cause(req, prev),
                ))
            prev = req
        # most requests, then first used
        primary = min(uses, key=lambda b: (-uses[b], backends.index(b)))
    else:
        primary = next(iter(uses), None)
    record = SessionRecord(
        session=key,
        requests=len(reqs),
        known_requests=sum(uses.values()),
        backends=len(uses),
        primary_backend=primary,
        primary_requests=uses[primary] if primary is not None else 0,
        persistent=len(uses) <= 1,
        first_ts=reqs[0].ts,
        last_ts=reqs[-1].ts,
        breaks=len(breaks),
        client_ips=len(set(map(_CLIENT_IP, reqs))),
    )
    return record, breaks


def _ratios(key: str, records: Sequence[SessionRecord]) -> GroupRatios:
    eligible = [s for s in records if s.eligible]
    return GroupRatios(
        key=key,
        groups=len(records),
        eligible_groups=len(eligible),
        sessions_ratio=Ratio(sum(1 for s in eligible if s.persistent), len(eligible)),
        requests_ratio=Ratio(
            sum(s.primary_requests for s in eligible), sum(s.known_requests for s in eligible)
        ),
    )


def _sessions(ordered: Sequence[RequestView], key: str) -> tuple[list[SessionRecord], list[BreakRecord]]:
    records: list[SessionRecord] = []
    breaks: list[BreakRecord] = []
    for name, group in _group(ordered, key).items():
        record, found = _session(name, group)
        records.append(record)
        breaks.extend(found)
    records.sort(key=lambda s: (s.first_ts, s.session))
    breaks.sort(key=lambda b: (b.ts, b.idx))
    return records, breaks


def _group_ratios(ordered: Sequence[RequestView], key: str) -> GroupRatios:
    """`_ratios` of `_sessions` without making the records and breaks: a group's known
    requests, whether they reached one backend, and its primary backend's count (the
    most used one's; which one wins a tie does not change the count)."""
    groups = _group(ordered, key)
    eligible = persistent = primary = known = 0
    for group in groups.values():
        uses = Counter(map(_BACKEND, group))
        uses.pop(None, None)
        k = sum(uses.values())
        if k >= 2:
            eligible += 1
            persistent += len(uses) == 1
            primary += max(uses.values())
            known += k
    return GroupRatios(key=key, groups=len(groups), eligible_groups=eligible,
                       sessions_ratio=Ratio(persistent, eligible),
                       requests_ratio=Ratio(primary, known))


def group_by_client_ip(reqs: Iterable[RequestView]) -> GroupRatios:
    """The two persistence ratios taking each client IP as one session (all requests)."""
    return _group_ratios(_order(reqs), "client_ip")


def compute_persistence(reqs: Iterable[RequestView]) -> PersistenceResult:
    """Sessions, breaks, ratios and backend load from attributed requests (see module doc)."""
    ordered = _order(reqs)
    sessions, breaks = _sessions(ordered, "session")
    by_session = _ratios("session", sessions)

    load = Counter(map(_BACKEND, ordered))
    unknown_backend = load.pop(None, 0)
    primaries: dict[str, int] = {}
    for s in sessions:
        if s.primary_backend is not None:
            primaries[s.primary_backend] = primaries.get(s.primary_backend, 0) + 1
    backends = sorted(
        (BackendLoad(b, n, primaries.get(b, 0)) for b, n in load.items()),
        key=lambda b: (-b.requests, b.backend),
    )
    causes = {cause: 0 for cause in BREAK_CAUSES}
    for brk in breaks:
        causes[brk.cause] += 1

    return PersistenceResult(
        sessions=sessions,
        breaks=breaks,
        persistence_ratio_sessions=by_session.sessions_ratio,
        persistence_ratio_requests=by_session.requests_ratio,
        backends=backends,
        load_evenness=evenness([b.requests for b in backends]),
        by_client_ip=_group_ratios(ordered, "client_ip"),
        requests=len(ordered),
        requests_without_session=list(map(_SESSION, ordered)).count(None),
        requests_unknown_backend=unknown_backend,
        break_causes=causes,
    )
