"""Tests for pcapstats.affinity.matcher: client requests paired with their forwarded copies.

The timings (microseconds) come from real HAProxy captures (tests/realtraffic, scenario
wrk_keepalive: wrk's four connections from 127.0.0.1 all sending `GET /`), where HAProxy's log
says which backend request each client request became.
"""

from __future__ import annotations

from pcapstats.affinity.matcher import match_requests

US = 1_000


def req(idx: int, start: int, resp: int | None, *, end: int | None = None,
        status: int | None = 200, xff: str | None = None, uri: str = "/",
        client_ip: str = "127.0.0.1") -> dict:
    return {"idx": idx, "method": "GET", "uri": uri, "ts_request": start * US,
            "ts_request_end": (end if end is not None else start) * US,
            "ts_response": None if resp is None else resp * US, "status": status, "xff": xff,
            "client_ip": client_ip}


def test_late_forward_does_not_starve_a_quick_request() -> None:
    # c7 came first but HAProxy forwarded it late (b84); c18 went out at once (b66) and was
    # answered before b84 was even answered: c7 must not take b66, or c18 has nothing.
    c7, c18 = req(7, 9397, 9967), req(18, 9442, 9628)
    b66, b84 = req(66, 9539, 9582), req(84, 9555, 9771)
    got, stats = match_requests([c7, c18], [b66, b84])
    assert got == {7: 84, 18: 66}
    assert (stats.matched, stats.unmatched_no_candidate, stats.backend_unmatched) == (2, 0, 0)


def test_first_request_on_a_new_backend_connection_was_dispatched_at_its_syn() -> None:
    # c4 was forwarded on a new connection (SYN at 3815, request sent at 3917); c21, later,
    # on an idle one at 3853. By send time c4 would take b45 and swap the two backends.
    c4, c21 = req(4, 3727, 3984), req(21, 3768, 3947)
    b45, b67 = req(45, 3853, 3871), req(67, 3917, 3947)
    assert match_requests([c4, c21], [b45, b67], dispatch_ns={67: 3815 * US})[0] == \
        {4: 67, 21: 45}
    assert match_requests([c4, c21], [b45, b67])[0] == {4: 45, 21: 67}


def test_relayed_response_headers_tell_simultaneous_requests_apart() -> None:
    # Four identical requests within 23 us; HAProxy served c0's connection last. Only the
    # relayed response headers (nginx's X-Backend, Content-Length) say which copy is whose.
    c0, c10, c19, c32 = req(0, 0, 3630), req(10, 10, 3584), req(19, 17, 1989), req(32, 23, 3509)
    b43, b51, b55, b62 = (req(43, 267, 2201), req(51, 282, 584), req(55, 293, 2118),
                          req(62, 359, 3385))
    server = {0: "b1", 43: "b1", 62: "b1", 10: "b1", 19: "b2", 51: "b2", 32: "b3", 55: "b3"}
    length = {0: "158", 62: "158", 10: "160", 43: "160"}
    headers = {i: {"x-backend": s, "content-length": length.get(i, "158"), "date": str(i),
                   "connection": "close" if i < 40 else "keep-alive"}
               for i, s in server.items()}
    clients, backends = [c0, c10, c19, c32], [b43, b51, b55, b62]
    assert match_requests(clients, backends)[0] == {0: 43, 10: 55, 19: 51, 32: 62}  # FIFO
    assert match_requests(clients, backends, response_headers=headers)[0] == \
        {0: 62, 10: 43, 19: 51, 32: 55}


def test_fifo_when_nothing_tells_the_requests_apart() -> None:
    # three identical requests forwarded in arrival order, answered in reverse
    clients = [req(9, 8, 3978), req(22, 15, 3924), req(29, 22, 3840)]
    backends = [req(51, 1549, 2775), req(55, 1564, 1766), req(61, 1577, 1672)]
    assert match_requests(clients, backends)[0] == {9: 51, 22: 55, 29: 61}


def test_constraints() -> None:
    c = req(1, 100, 500, client_ip="10.0.0.1")
    assert match_requests([c], [req(2, 90, 200)])[0] == {}                # sent before
    assert match_requests([c], [req(2, 150, 600)])[0] == {}               # answered after
    assert match_requests([c], [req(2, 600, None)])[0] == {}              # sent after the answer
    assert match_requests([c], [req(2, 150, 200, status=503)])[0] == {}   # another status
    assert match_requests([c], [req(2, 150, 200, uri="/x")])[0] == {}     # another URI
    assert match_requests([c], [req(2, 150, 200, xff="10.0.0.2")])[0] == {}
    assert match_requests([c], [req(2, 150, 200, xff="1.2.3.4, 10.0.0.1")])[0] == {1: 2}
    assert match_requests([c], [req(2, 150, None)])[0] == {1: 2}          # backend unanswered
    unanswered = req(1, 100, None)
    assert match_requests([unanswered], [req(2, 5000, None)])[0] == {1: 2}
    got, stats = match_requests([c], [req(2, 150, 200)], window_ns=10 * US)
    assert got == {} and stats.unmatched_no_candidate == 1


def test_many_identical_overlapping_requests_one_copy_each() -> None:
    # 300 identical requests whose spans all overlap, their copies sent in reverse order of
    # arrival: every request gets one copy and no copy is used twice.
    n = 300
    clients = [req(i, i, 10_000 + i) for i in range(n)]
    backends = [req(n + i, 2 * n - i, 5_000 + i) for i in range(n)]
    got, stats = match_requests(clients, backends)
    assert len(got) == n and len(set(got.values())) == n and stats.unmatched_no_candidate == 0
