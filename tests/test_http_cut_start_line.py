"""Start lines cut short by a gap (a capture's snaplen), on literal bytes.

A request whose request line was cut after "METHOD " (a known method) still counts:
method, the target as far as seen, version "unknown" unless it was seen whole, and
the exchange is flagged `gap`. A status line cut after its three digits still
counts as that response. Less than that is lost as before, and the reader
resynchronises on the next start line either way.
"""

from __future__ import annotations

from pcapstats.http import HttpStream
from pcapstats.records import HttpExchange

from tests.test_http_parser import Event, bytewise, counters, run, same_whole_and_bytewise

OK5 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def fields(e: HttpExchange) -> tuple[object, ...]:
    return (e.method, e.uri, e.version, e.host, e.req_connection, e.status, e.gap,
            e.request_body_bytes, e.response_body_bytes, e.pipelined)


# -- requests ----------------------------------------------------------------------------

def test_request_line_cut_inside_the_version_is_counted() -> None:
    # as in zeek-http-snaplen-truncated.pcap: 30 of 496 bytes kept
    events: list[Event] = [("c", 1, b"GET /images/sf.net_box.gif HTT"), ("gc", 1, 466),
                           ("s", 2, OK5)]
    s, ex = same_whole_and_bytewise(events)
    assert [fields(e) for e in ex] == \
        [("GET", "/images/sf.net_box.gif", "unknown", None, None, 200, True, 0, 5, False)]
    e = ex[0]
    assert (e.ts_request, e.ts_request_end, e.ts_response, e.ts_response_end) == (1, 1, 2, 2)
    assert e.headers == {} and e.cookie is None and e.user_agent is None
    assert counters(s) == ("http/1", 1, 1, 0, 0, 0, 0, 0)


def test_request_line_cut_inside_the_target_keeps_what_was_seen() -> None:
    s, ex = run([("c", 1, b"POST /upload/very/long/pa"), ("gc", 2, 1000), ("s", 3, OK5)])
    assert [fields(e) for e in ex] == \
        [("POST", "/upload/very/long/pa", "unknown", None, None, 200, True, 0, 5, False)]
    assert counters(s) == ("http/1", 1, 1, 0, 0, 0, 0, 0)


def test_request_line_cut_right_after_the_method() -> None:
    s, ex = run([("c", 1, b"GET "), ("gc", 2, 80), ("s", 3, OK5)])
    assert [(e.method, e.uri, e.version, e.status, e.gap) for e in ex] == \
        [("GET", "", "unknown", 200, True)]
    assert (s.requests, s.responses, s.skipped_bytes) == (1, 1, 0)


def test_request_line_cut_before_its_line_end_keeps_a_whole_version() -> None:
    # the version is whole: the Connection default follows it, as for a head cut later
    for line in (b"GET /old HTTP/1.0", b"GET /old HTTP/1.0\r"):
        s, ex = run([("c", 1, line), ("gc", 2, 40), ("s", 3, OK5)])
        assert [fields(e) for e in ex] == \
            [("GET", "/old", "HTTP/1.0", None, "close", 200, True, 0, 5, False)]
        assert (s.requests, s.responses, s.malformed, s.skipped_bytes) == (1, 1, 0, 0)


def test_implausible_cut_starts_are_still_skipped() -> None:
    # no space after the method yet, an unknown or lower-case method, a control byte
    for start in (b"GET", b"FOO /x", b"get /x", b"GET /x\x01y"):
        s, ex = run([("c", 1, start), ("gc", 2, 50), ("s", 3, OK5)])
        assert ex == []
        # the response answers the request lost in the gap
        assert (s.requests, s.responses, s.orphan_responses, s.malformed, s.skipped_bytes) \
            == (0, 1, 1, 0, len(start)), start


def test_after_a_cut_request_line_the_reader_resyncs_on_the_next_request() -> None:
    events: list[Event] = [
        ("c", 1, b"GET /first?q=1 HT"), ("gc", 1, 60),
        ("s", 2, b"HTTP/1.1 304 Not Modified\r\n\r\n"),
        ("c", 3, b"t: h\r\nAccept: */*\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("s", 4, OK5),
    ]
    s, ex = same_whole_and_bytewise(events)
    assert [fields(e) for e in ex] == [
        ("GET", "/first?q=1", "unknown", None, None, 304, True, 0, 0, False),
        ("GET", "/second", "HTTP/1.1", "h", "keep-alive", 200, True, 0, 5, False),
    ]
    assert s.skipped_bytes == len(b"t: h\r\nAccept: */*\r\n\r\n")
    assert counters(s)[:6] == ("http/1", 2, 2, 0, 0, 0)


def test_a_cut_request_line_is_parsed_the_same_in_any_segmentation() -> None:
    line = b"DELETE /items/42?force=tr"
    whole = [("c", 1, b"GET /a HTTP/1.1\r\n\r\n"), ("s", 2, OK5), ("c", 3, line),
             ("gc", 3, 200), ("s", 4, OK5)]
    s1, ex1 = run(whole)
    s2, ex2 = run(bytewise(whole))
    assert ex1 == ex2 and counters(s1) == counters(s2)
    assert [(e.method, e.uri, e.version, e.depth, e.gap) for e in ex1] == \
        [("GET", "/a", "HTTP/1.1", 1, False), ("DELETE", "/items/42?force=tr", "unknown", 2, True)]


def test_a_cut_request_line_sent_before_the_previous_response_is_pipelined() -> None:
    s, ex = run([("c", 1, b"GET /a HTTP/1.1\r\n\r\n"), ("c", 2, b"GET /b HT"), ("gc", 2, 30),
                 ("s", 3, OK5), ("s", 4, OK5)])
    assert [(e.uri, e.version, e.status, e.pipelined, e.gap) for e in ex] == \
        [("/a", "HTTP/1.1", 200, False, False), ("/b", "unknown", 200, True, True)]
    assert (s.requests, s.responses, s.pipelined) == (2, 2, 1)


# -- responses ---------------------------------------------------------------------------

def test_status_line_cut_after_the_code_is_counted() -> None:
    events: list[Event] = [
        ("c", 1, b"GET /1 HTTP/1.1\r\n\r\n"), ("s", 2, b"HTTP/1.1 404 Not Fo"), ("gs", 2, 300),
        ("c", 3, b"GET /2 HTTP/1.1\r\n\r\n"), ("s", 4, OK5),
    ]
    s, ex = same_whole_and_bytewise(events)
    assert [(e.uri, e.status, e.gap, e.response_body_bytes, e.resp_connection) for e in ex] == \
        [("/1", 404, True, 0, "keep-alive"), ("/2", 200, True, 5, "keep-alive")]
    assert ex[0].response_headers == {}
    assert (s.responses, s.orphan_responses, s.malformed, s.skipped_bytes) == (2, 0, 0, 0)


def test_status_line_cut_inside_the_code_is_a_lost_response() -> None:
    events: list[Event] = [
        ("c", 1, b"GET /1 HTTP/1.1\r\n\r\n"), ("s", 2, b"HTTP/1.1 20"), ("gs", 2, 300),
        ("c", 3, b"GET /2 HTTP/1.1\r\n\r\n"), ("s", 4, OK5),
    ]
    s, ex = same_whole_and_bytewise(events)
    assert [(e.uri, e.status, e.gap) for e in ex] == [("/1", None, True), ("/2", 200, True)]
    assert (s.responses, s.orphan_responses, s.skipped_bytes) == (1, 0, len(b"HTTP/1.1 20"))


def test_interim_status_line_cut_short_then_the_final_response() -> None:
    s, ex = run([("c", 1, b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"),
                 ("s", 2, b"HTTP/1.1 100 Conti"), ("gs", 2, 10), ("s", 3, OK5)])
    assert [(e.status, e.interim, e.response_body_bytes, e.gap) for e in ex] == \
        [(200, 1, 5, True)]
    assert (s.responses, s.interim_responses, s.orphan_responses) == (1, 1, 0)


def test_cut_status_line_of_an_orphan_response() -> None:
    s, ex = run([("s", 1, b"HTTP/1.0 500"), ("gs", 1, 100)])
    assert ex == []
    assert (s.protocol, s.responses, s.orphan_responses, s.skipped_bytes) == ("http/1", 1, 1, 0)


# -- the parsed header fields of repeated requests ------------------------------------------

def test_repeated_request_headers_give_equal_but_separate_fields() -> None:
    same = b"Host: a.example\r\nCookie: s=1\r\nUser-Agent: ua/1\r\n\r\n"
    events: list[Event] = [
        ("c", 1, b"GET /1 HTTP/1.1\r\n" + same), ("s", 2, OK5),
        ("c", 3, b"GET /2 HTTP/1.1\r\n" + same), ("s", 4, OK5),
        ("c", 5, b"POST /3 HTTP/1.0\r\n" + same[:-2] + b"Content-Length: 3\r\n\r\nxyz"),
        ("s", 6, OK5),
        ("c", 7, b"GET /4 HTTP/1.1\r\nHost: b.example\r\n\r\n"), ("s", 8, OK5),
        ("c", 9, b"GET /5 HTTP/1.1\r\n" + same), ("s", 10, OK5),
    ]
    s, ex = same_whole_and_bytewise(events)
    assert [(e.uri, e.host, e.cookie, e.user_agent, e.req_connection, e.request_body_bytes)
            for e in ex] == [
        ("/1", "a.example", "s=1", "ua/1", "keep-alive", 0),
        ("/2", "a.example", "s=1", "ua/1", "keep-alive", 0),
        ("/3", "a.example", "s=1", "ua/1", "close", 3),
        ("/4", "b.example", None, None, "keep-alive", 0),
        ("/5", "a.example", "s=1", "ua/1", "keep-alive", 0),
    ]
    ex[0].headers["host"] = "changed"
    assert ex[1].headers == {"host": "a.example", "cookie": "s=1", "user-agent": "ua/1"}
    assert ex[4].headers["host"] == "a.example"


def test_closed_stream_ignores_input_and_keeps_its_counters() -> None:
    s = HttpStream(1)
    s.feed(True, 1, b"GET / HTTP/1.1\r\n\r\n")
    s.feed(False, 2, b"HTTP/1.0 200 OK\r\n\r\nbody")
    s.close(3)
    s.feed(True, 4, b"GET /late HTTP/1.1\r\n\r\n")
    s.feed(False, 4, b"more")
    s.gap(True, 5, 10)
    s.close(6)
    ex = s.take()
    assert [(e.uri, e.status, e.response_body_bytes, e.ts_response_end) for e in ex] == \
        [("/", 200, 4, 2)]
    assert counters(s) == ("http/1", 1, 1, 0, 0, 0, 0, 0)
