"""Unit and property tests of the sans-I/O TLS observer, on handshakes built byte by byte."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapstats.tls import MAX_HANDSHAKE_MESSAGE, TlsStream, looks_like_tls, version_name
from pcapstats.tls.wire import HRR_RANDOM

Flight = tuple[bool, bytes]  # (from_client, bytes sent in one go)
CLIENT, SERVER = True, False


# --------------------------------------------------------------------------- wire builders
def vec8(data: bytes) -> bytes:
    return struct.pack("!B", len(data)) + data


def vec16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def vec24(data: bytes) -> bytes:
    return struct.pack("!I", len(data))[1:] + data


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def handshake(mtype: int, body: bytes) -> bytes:
    return struct.pack("!B", mtype) + vec24(body)


def ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!H", etype) + vec16(data)


def sni(name: str) -> bytes:
    return ext(0, vec16(b"\x00" + vec16(name.encode())))


def alpn(*protos: bytes) -> bytes:
    return ext(16, vec16(b"".join(vec8(p) for p in protos)))


def versions_offered(*versions: int) -> bytes:
    return ext(43, vec8(b"".join(struct.pack("!H", v) for v in versions)))


def version_selected(version: int) -> bytes:
    return ext(43, struct.pack("!H", version))


def session_ticket(ticket: bytes) -> bytes:
    return ext(35, ticket)


def psk_offer(*identities: bytes) -> bytes:
    ids = b"".join(vec16(i) + struct.pack("!I", 12345) for i in identities)
    binders = b"".join(vec8(bytes(32)) for _ in identities)
    return ext(41, vec16(ids) + vec16(binders))


def psk_selected(index: int = 0) -> bytes:
    return ext(41, struct.pack("!H", index))


def psk_modes(*modes: int) -> bytes:
    return ext(45, vec8(bytes(modes)))


def key_share(size: int = 32) -> bytes:
    return ext(51, vec16(struct.pack("!H", 0x001D) + vec16(bytes(size))))


def client_hello(*exts: bytes, sid: bytes = b"", version: int = 0x0303,
                 suites: Sequence[int] = (0x1301, 0xC02F)) -> bytes:
    body = (struct.pack("!H", version) + bytes(range(32)) + vec8(sid)
            + vec16(b"".join(struct.pack("!H", s) for s in suites)) + vec8(b"\x00"))
    if exts:
        body += vec16(b"".join(exts))
    return handshake(1, body)


def server_hello(*exts: bytes, sid: bytes = b"", suite: int = 0xC02F, version: int = 0x0303,
                 random: bytes = bytes(range(100, 132))) -> bytes:
    body = struct.pack("!H", version) + random + vec8(sid) + struct.pack("!HB", suite, 0)
    if exts:
        body += vec16(b"".join(exts))
    return handshake(2, body)


def new_session_ticket(ticket: bytes) -> bytes:
    return handshake(4, struct.pack("!I", 7200) + vec16(ticket))


CERTIFICATE = handshake(11, vec24(vec24(b"\x30\x82" + bytes(600))))
SERVER_KEY_EXCHANGE = handshake(12, bytes(100))
SERVER_HELLO_DONE = handshake(14, b"")
CLIENT_KEY_EXCHANGE = handshake(16, vec16(bytes(66)))
CCS = record(20, b"\x01")


def opaque(ctype: int, n: int, seed: int = 7) -> bytes:
    """An encrypted record: n bytes that look random."""
    return record(ctype, bytes((seed * 31 + i * 17) % 256 for i in range(n)))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# --------------------------------------------------------------------------- conversations
SID = bytes(range(0x40, 0x60))
TICKET = b"opaque-ticket-" + bytes(range(150))
IDENTITY = b"tls13-psk-identity-" + bytes(range(90))
COMPAT_SID = bytes(range(0xA0, 0xC0))


def tls12_full() -> list[Flight]:
    return [
        (CLIENT, record(22, client_hello(sni("www.example.com"), alpn(b"h2", b"http/1.1"),
                                         session_ticket(b"")), version=0x0301)),
        (SERVER, record(22, server_hello(alpn(b"h2"), session_ticket(b""), sid=SID)
                        + CERTIFICATE + SERVER_KEY_EXCHANGE + SERVER_HELLO_DONE)),
        (CLIENT, record(22, CLIENT_KEY_EXCHANGE) + CCS + opaque(22, 40)),
        (SERVER, record(22, new_session_ticket(TICKET)) + CCS + opaque(22, 40)),
        (CLIENT, opaque(23, 100)),
        (SERVER, opaque(23, 500) + opaque(23, 300)),
        (CLIENT, opaque(21, 26)),
    ]


def tls12_sid_resumption() -> list[Flight]:
    return [
        (CLIENT, record(22, client_hello(sni("www.example.com"), sid=SID))),
        (SERVER, record(22, server_hello(sid=SID)) + CCS + opaque(22, 40)),
        (CLIENT, CCS + opaque(22, 40)),
        (CLIENT, opaque(23, 120)),
        (SERVER, opaque(23, 700)),
    ]


def tls12_ticket_resumption(server_sid: bytes = b"") -> list[Flight]:
    random_sid = bytes(range(32))  # RFC 5077 3.4: a client-chosen id, echoed on acceptance
    return [
        (CLIENT, record(22, client_hello(session_ticket(TICKET), sid=random_sid))),
        (SERVER, record(22, server_hello(session_ticket(b""), sid=server_sid)) + CCS + opaque(22, 40)),
        (CLIENT, CCS + opaque(22, 40) + opaque(23, 64)),
        (SERVER, opaque(23, 900)),
    ]


def tls13_full() -> list[Flight]:
    return [
        (CLIENT, record(22, client_hello(sni("api.example.org"), versions_offered(0x0304, 0x0303),
                                         key_share(), alpn(b"h2"), psk_modes(1), sid=COMPAT_SID,
                                         suites=(0x1301, 0x1302)), version=0x0301)),
        (SERVER, record(22, server_hello(version_selected(0x0304), key_share(), sid=COMPAT_SID,
                                         suite=0x1301)) + CCS + opaque(23, 2500)),
        (CLIENT, CCS + opaque(23, 53)),
        (CLIENT, opaque(23, 200)),
        (SERVER, opaque(23, 250) + opaque(23, 1000)),
    ]


def tls13_psk(accepted: bool = True) -> list[Flight]:
    selected = (psk_selected(0),) if accepted else ()
    return [
        (CLIENT, record(22, client_hello(sni("api.example.org"), versions_offered(0x0304), key_share(),
                                         psk_modes(1), psk_offer(IDENTITY, b"second"), sid=COMPAT_SID))),
        (SERVER, record(22, server_hello(version_selected(0x0304), key_share(), *selected, sid=COMPAT_SID,
                                         suite=0x1301)) + CCS + opaque(23, 80 if accepted else 2500)),
        (CLIENT, CCS + opaque(23, 53) + opaque(23, 300)),
        (SERVER, opaque(23, 4000)),
    ]


def tls13_hello_retry() -> list[Flight]:
    hello = (versions_offered(0x0304, 0x0303), key_share(), alpn(b"h2"))
    return [
        (CLIENT, record(22, client_hello(sni("first.example"), *hello, sid=COMPAT_SID))),
        (SERVER, record(22, server_hello(version_selected(0x0304), ext(51, b"\x00\x17"), sid=COMPAT_SID,
                                         random=HRR_RANDOM, suite=0x1301)) + CCS),
        (CLIENT, CCS + record(22, client_hello(sni("second.example"), *hello, sid=COMPAT_SID))),
        (SERVER, record(22, server_hello(version_selected(0x0304), key_share(), sid=COMPAT_SID,
                                         suite=0x1301)) + opaque(23, 3000)),
        (CLIENT, opaque(23, 53)),
    ]


def run(flights: Sequence[Flight], cuts: Sequence[Sequence[int]] | None = None) -> TlsStream:
    """Feed the flights in order (each split at its cut points), one timestamp per flight."""
    tls = TlsStream()
    for k, (from_client, data) in enumerate(flights):
        points = sorted({0, len(data), *(c % (len(data) + 1) for c in (cuts[k] if cuts else ()))})
        for a, b in zip(points, points[1:]):
            tls.feed(from_client, 1000 * (k + 1), data[a:b])
    tls.close(1000 * (len(flights) + 1))
    return tls


SCENARIOS = {
    "tls12_full": tls12_full, "tls12_sid_resumption": tls12_sid_resumption,
    "tls12_ticket_resumption": tls12_ticket_resumption, "tls13_full": tls13_full,
    "tls13_psk": tls13_psk, "tls13_hello_retry": tls13_hello_retry,
}


# --------------------------------------------------------------------------- looks_like_tls
@pytest.mark.parametrize("data", [
    b"\x16\x03\x01\x02\x00", b"\x16\x03\x03", b"\x17\x03\x03\x40\x00", b"\x15\x03\x03\x00\x02",
    b"\x14\x03\x03\x00\x01\x01", b"\x16\x03\x00\x00\x30", tls12_full()[0][1],
    b"\x80\x2e\x01\x03\x01\x00\x15", b"\x80\x2e\x01\x00\x02",
])
def test_looks_like_tls_accepts_record_headers(data: bytes) -> None:
    assert looks_like_tls(data)


@pytest.mark.parametrize("data", [
    b"", b"\x16", b"\x16\x03", b"GET / HTTP/1.1\r\n", b"SSH-2.0-OpenSSH", b"\x16\x02\x01\x00\x10",
    b"\x16\x03\x05\x00\x10", b"\x18\x03\x03\x00\x10", b"\x16\x03\x01\xff\xff", b"\x16\x03\x01\x00\x00",
    b"\x80\x2e\x02\x03\x01", b"\x80\x2e\x01\x04\x01", b"HTTP/1.1 200 OK",
])
def test_looks_like_tls_rejects_other_bytes(data: bytes) -> None:
    assert not looks_like_tls(data)


def test_version_names() -> None:
    assert [version_name(v) for v in (0x0300, 0x0301, 0x0303, 0x0304, 0x7F13, 0xFB17)] == [
        "SSL 3.0", "TLS 1.0", "TLS 1.2", "TLS 1.3", "TLS 1.3 (draft 19)", "0xfb17"]


# --------------------------------------------------------------------------- handshakes
def test_tls12_full_handshake() -> None:
    t = run(tls12_full())
    assert (t.client_hello, t.server_hello, t.version, t.version_code) == (True, True, "TLS 1.2", 0x0303)
    assert t.sni == "www.example.com" and t.alpn == "h2" and t.alpn_offered == ("h2", "http/1.1")
    assert t.cipher_suite == 0xC02F
    assert t.client_session_id is None and t.server_session_id == SID.hex()
    assert not t.ticket_offered and t.ticket_identity is None
    assert t.new_session_ticket and t.ticket_issued == digest(TICKET)
    assert t.resumed is False and not t.hello_retry and not t.psk_offered
    assert t.ts_client_hello == 1000 and t.ts_handshake_done == 4000
    assert (t.records_client, t.records_server) == (6, 6)  # the closing alert is a record too
    assert (t.app_bytes_client, t.app_bytes_server) == (100, 800)
    assert t.malformed == 0 and t.gap_bytes == 0
    # the issued ticket is what the client offers next: that is this session's identity
    assert t.session_key == f"ticket:{digest(TICKET)}"


def test_tls12_full_handshake_without_ticket_keys_on_server_session_id() -> None:
    flights = [(CLIENT, record(22, client_hello(sni("a.example")))),
               (SERVER, record(22, server_hello(sid=SID) + CERTIFICATE + SERVER_HELLO_DONE))]
    t = run(flights)
    assert t.resumed is False and t.session_key == f"sid:{SID.hex()}" and t.ts_handshake_done is None


def test_tls12_session_id_resumption() -> None:
    t = run(tls12_sid_resumption())
    assert t.resumed is True and t.version == "TLS 1.2"
    assert t.client_session_id == t.server_session_id == SID.hex()
    assert t.session_key == f"sid:{SID.hex()}"
    assert t.ts_handshake_done == 3000  # the client's Finished: in an abbreviated handshake it is sent last
    assert (t.app_bytes_client, t.app_bytes_server) == (120, 700) and t.malformed == 0


def test_tls12_session_id_refused_is_a_full_handshake_keyed_on_the_offered_id() -> None:
    new_sid = bytes(32)
    flights = [(CLIENT, record(22, client_hello(sid=SID))),
               (SERVER, record(22, server_hello(sid=new_sid) + CERTIFICATE + SERVER_HELLO_DONE))]
    t = run(flights)
    assert t.resumed is False and t.server_session_id == new_sid.hex()
    assert t.session_key == f"sid:{SID.hex()}"  # the session the client asked for: a persistence break


@pytest.mark.parametrize("server_sid", [b"", bytes(range(32))])
def test_tls12_ticket_resumption(server_sid: bytes) -> None:
    t = run(tls12_ticket_resumption(server_sid))
    assert t.ticket_offered and t.ticket_identity == digest(TICKET)
    assert t.resumed is True and not t.new_session_ticket
    assert t.session_key == f"ticket:{digest(TICKET)}"
    assert t.ts_handshake_done == 3000 and t.app_bytes_client == 64 and t.malformed == 0


def test_tls12_handshake_ends_with_the_finished_sent_second() -> None:
    """Full: client Finished, then server Finished (the end). Abbreviated: the reverse (RFC 5246 7.3)."""
    full = run(tls12_full())
    assert (full.ts_client_hello, full.ts_handshake_done) == (1000, 4000)
    short = run(tls12_sid_resumption()[:2])  # the client's Finished never came
    assert short.resumed is True and short.ts_handshake_done is None
    server_only = TlsStream()  # a full handshake whose client side was lost still ends at the server's
    for from_client, data in tls12_full():
        if not from_client:
            server_only.feed(False, 7, data)
    assert server_only.ts_handshake_done == 7


def test_ticket_resumption_shares_the_session_key_of_the_issuing_connection() -> None:
    assert run(tls12_full()).session_key == run(tls12_ticket_resumption()).session_key


def test_tls12_resumption_unknown_until_the_server_says() -> None:
    t = run([(CLIENT, record(22, client_hello(session_ticket(TICKET)))),
             (SERVER, record(22, server_hello()))])
    assert t.server_hello and t.resumed is None
    assert run(tls12_full()[:1]).resumed is None  # no ServerHello at all


def test_tls13_full_handshake() -> None:
    t = run(tls13_full())
    assert t.version == "TLS 1.3" and t.version_code == 0x0304 and t.cipher_suite == 0x1301
    assert t.versions_offered == ("TLS 1.3", "TLS 1.2")
    assert t.resumed is False and not t.psk_offered and not t.psk_accepted
    assert t.sni == "api.example.org" and t.alpn is None and t.alpn_offered == ("h2",)
    assert t.client_session_id == t.server_session_id == COMPAT_SID.hex()
    assert t.session_key is None  # compat session ids are random; 1.3 tickets are encrypted
    assert t.ts_handshake_done == 3000  # the client's encrypted Finished
    # the server's encrypted flight and the client's Finished are handshake, not application data
    assert (t.app_bytes_client, t.app_bytes_server) == (200, 1250)
    assert (t.records_client, t.records_server) == (4, 5) and t.malformed == 0


def test_tls13_psk_resumption() -> None:
    t = run(tls13_psk())
    assert t.psk_offered and t.psk_accepted and t.resumed is True
    assert t.ticket_identity == digest(IDENTITY) and t.session_key == f"ticket:{digest(IDENTITY)}"
    assert not t.ticket_offered and t.ts_handshake_done == 3000 and t.app_bytes_client == 300


def test_tls13_psk_refused() -> None:
    t = run(tls13_psk(accepted=False))
    assert t.psk_offered and not t.psk_accepted and t.resumed is False
    assert t.session_key == f"ticket:{digest(IDENTITY)}"


def test_tls13_draft_server_hello_without_session_id() -> None:
    body = struct.pack("!H", 0x7F13) + bytes(32) + struct.pack("!H", 0x1301) + vec16(psk_selected(0))
    t = run([(CLIENT, record(22, client_hello(versions_offered(0x7F13, 0x0303), psk_offer(IDENTITY)))),
             (SERVER, record(22, handshake(2, body)) + opaque(23, 100)),
             (CLIENT, opaque(23, 53))])
    assert t.version == "TLS 1.3 (draft 19)" and t.resumed is True and t.malformed == 0
    assert t.ts_handshake_done == 3000


def test_hello_retry_request() -> None:
    t = run(tls13_hello_retry())
    assert t.hello_retry and t.server_hello and t.version == "TLS 1.3" and t.resumed is False
    # the second ClientHello follows a compatibility CCS but is plaintext: it is parsed
    assert t.sni == "second.example" and t.ts_client_hello == 1000
    assert t.ts_handshake_done == 5000 and t.malformed == 0


def test_hello_retry_request_alone_is_not_a_server_hello() -> None:
    t = run(tls13_hello_retry()[:2])
    assert t.hello_retry and not t.server_hello and t.resumed is None and t.version == "TLS 1.3"


def test_grease_and_unknown_extensions_are_skipped() -> None:
    hello = client_hello(ext(0x0A0A, b""), sni("grease.example"), ext(0xFE0D, bytes(200)),
                         alpn(b"\x3a\x3a", b"h2", b"http/1.1"), ext(0x4469, vec16(vec8(b"h2"))),
                         versions_offered(0x2A2A, 0x0304, 0x0303), ext(0x1A1A, b"\x00"), key_share(),
                         psk_modes(0x6A, 1), ext(0xFAFA, b""), suites=(0xDADA, 0x1301, 0xC02B))
    t = run([(CLIENT, record(22, hello))])
    assert t.client_hello and t.sni == "grease.example" and t.alpn_offered == ("h2", "http/1.1")
    assert t.versions_offered == ("TLS 1.3", "TLS 1.2") and t.malformed == 0


def test_handshake_message_fragmented_across_records() -> None:
    hello = client_hello(sni("fragmented.example"), key_share(1216 + 32), alpn(b"h2"))  # post-quantum size
    assert len(hello) > 1300
    parts = [hello[:5], hello[5:700], hello[700:]]
    t = run([(CLIENT, b"".join(record(22, p) for p in parts)),
             (SERVER, record(22, server_hello(sid=SID)[:30]) + record(22, server_hello(sid=SID)[30:]
                                                                      + CERTIFICATE[:10])
              + record(22, CERTIFICATE[10:] + SERVER_HELLO_DONE))])
    assert t.sni == "fragmented.example" and t.records_client == 3 and t.server_hello
    assert t.resumed is False and t.malformed == 0


def test_records_split_one_byte_at_a_time() -> None:
    for name, make in SCENARIOS.items():
        flights = make()
        whole = run(flights).as_dict()
        single = run(flights, [range(len(data)) for _, data in flights]).as_dict()
        assert single == whole, name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_any_segmentation_gives_the_same_result(name: str, data: st.DataObject) -> None:
    flights = SCENARIOS[name]()
    cuts = [data.draw(st.lists(st.integers(0, len(f)), max_size=12)) for _, f in flights]
    assert run(flights, cuts).as_dict() == run(flights).as_dict()


def test_sslv2_compatible_client_hello() -> None:
    body = b"\x01\x03\x01" + struct.pack("!HHH", 6, 0, 16) + b"\x00\x00\x2f\x00\x00\x35" + bytes(16)
    hello = struct.pack("!H", 0x8000 | len(body)) + body
    assert looks_like_tls(hello)
    t = run([(CLIENT, hello), (SERVER, record(22, server_hello(version=0x0301, sid=SID) + CERTIFICATE))])
    assert t.client_hello and t.server_hello and t.version == "TLS 1.0" and t.ts_client_hello == 1000
    assert t.records_client == 1 and t.malformed == 0


# --------------------------------------------------------------------------- gaps, malformed input
def test_gap_inside_application_data_keeps_the_framing() -> None:
    t = TlsStream()
    for k, (c, data) in enumerate(tls12_sid_resumption()[:3]):
        t.feed(c, k, data)
    big = opaque(23, 3000)
    t.feed(CLIENT, 10, big[:1000])
    t.gap(CLIENT, 11, 1500)
    t.feed(CLIENT, 12, big[2500:] + opaque(23, 10))
    t.close(13)
    assert not t.stopped_client and t.records_client == 5 and t.app_bytes_client == 1510
    assert t.gap_bytes == 1500 and t.malformed == 0


def test_gap_across_a_record_boundary_stops_that_direction() -> None:
    t = TlsStream()
    t.feed(CLIENT, 1, opaque(23, 100)[:50])
    t.gap(CLIENT, 2, 200)
    t.feed(CLIENT, 3, opaque(23, 10))
    t.feed(SERVER, 3, opaque(23, 10))
    t.close(4)
    assert t.stopped_client and not t.stopped_server and t.records_client == 1 and t.records_server == 1
    assert t.malformed == 0  # a lost segment is not malformed TLS


def test_gap_inside_a_certificate_still_sees_the_rest_of_the_handshake() -> None:
    flights = tls12_full()
    server = flights[1][1]
    t = TlsStream()
    t.feed(CLIENT, 1, flights[0][1])
    t.feed(SERVER, 2, server[:200])
    t.gap(SERVER, 2, 300)
    t.feed(SERVER, 2, server[500:])
    for k, (c, data) in enumerate(flights[2:], start=3):
        t.feed(c, k, data)
    t.close(10)
    assert t.resumed is False and t.new_session_ticket and t.ts_handshake_done == 4 and t.malformed == 0


def test_gap_inside_a_client_hello_gives_up_on_the_handshake_only() -> None:
    hello = record(22, client_hello(sni("lost.example")))
    t = TlsStream()
    t.feed(CLIENT, 1, hello[:20])
    t.gap(CLIENT, 2, 10)
    t.feed(CLIENT, 3, hello[30:] + CCS + opaque(23, 40))
    t.close(4)
    assert not t.client_hello and t.records_client == 3 and t.app_bytes_client == 40 and t.malformed == 0


def test_non_tls_bytes_are_counted_not_raised() -> None:
    t = run([(CLIENT, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (SERVER, b"HTTP/1.1 200 OK\r\n\r\n")])
    assert t.malformed == 2 and t.stopped_client and t.stopped_server
    assert t.records_client == t.records_server == 0 and not t.client_hello


def test_record_longer_than_allowed() -> None:
    t = run([(CLIENT, struct.pack("!BHH", 23, 0x0303, 18433) + bytes(100))])
    assert t.malformed == 1 and t.records_client == 0 and t.stopped_client


def test_truncated_record_at_close() -> None:
    t = run([(CLIENT, record(22, client_hello(sni("cut.example")))[:-10])])
    assert t.malformed == 1 and not t.client_hello and t.records_client == 1


def test_bad_inner_length_is_counted_and_parsing_goes_on() -> None:
    hello = bytearray(client_hello(sni("bad.example"), alpn(b"h2")))
    hello[-5] = 0x7F  # ALPN list length now points past the message
    t = run([(CLIENT, record(22, bytes(hello))), (SERVER, record(22, server_hello(sid=SID) + CERTIFICATE))])
    assert t.malformed == 1 and t.client_hello and t.sni == "bad.example"
    assert t.server_hello and t.resumed is False


def test_handshake_message_cut_by_another_record_type() -> None:
    hello = client_hello(sni("x.example"))
    t = run([(CLIENT, record(22, hello[:40]) + record(21, b"\x02\x28") + record(22, client_hello()))])
    assert t.malformed == 1 and t.client_hello and t.sni is None and t.records_client == 3


def test_empty_handshake_record_is_malformed() -> None:
    t = run([(CLIENT, record(22, b"") + record(22, client_hello(sni("y.example"))))])
    assert t.malformed == 1 and t.sni == "y.example"


def test_oversized_handshake_message_stops_handshake_parsing_not_counting() -> None:
    header = handshake(1, b"")[:1] + (MAX_HANDSHAKE_MESSAGE + 1).to_bytes(3, "big")
    t = run([(CLIENT, record(22, header + bytes(16000)) + record(22, bytes(16000)) + opaque(23, 10))])
    assert t.malformed == 1 and not t.client_hello and t.records_client == 3 and t.app_bytes_client == 10


def test_memory_stays_bounded_on_a_long_stream() -> None:
    t = TlsStream()
    for k, (c, data) in enumerate(tls12_full()):
        t.feed(c, k, data)
    chunk = b"".join(opaque(23, 16384) for _ in range(8))
    for i in range(0, len(chunk), 1460):
        t.feed(SERVER, 100 + i, chunk[i:i + 1460])
    assert t.records_server == 6 + 8 and t.app_bytes_server == 800 + 8 * 16384
    assert len(t._s.hdr) <= 5 and t._s.hs_body is None and t._c.hs_body is None


def test_close_is_idempotent_and_ends_input() -> None:
    t = run(tls12_full())
    before = t.as_dict()
    t.close(10**9)
    t.feed(CLIENT, 10**9, opaque(23, 10))
    assert t.as_dict() == before


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300), st.integers(0, 400)), max_size=25))
def test_random_bytes_never_raise(chunks: list[tuple[bool, bytes, int]]) -> None:
    t = TlsStream()
    for k, (c, data, gap) in enumerate(chunks):
        if gap > 350:
            t.gap(c, k, gap - 350)
        t.feed(c, k, data)
    t.close(len(chunks))
    assert t.malformed >= 0 and isinstance(t.as_dict(), dict)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_corrupted_handshakes_never_raise_and_ignore_segmentation(name: str, data: st.DataObject) -> None:
    flights = [(c, bytearray(f)) for c, f in SCENARIOS[name]()]
    for _ in range(data.draw(st.integers(1, 6))):
        k = data.draw(st.integers(0, len(flights) - 1))
        f = flights[k][1]
        f[data.draw(st.integers(0, len(f) - 1))] = data.draw(st.integers(0, 255))
    corrupted = [(c, bytes(f)) for c, f in flights[:data.draw(st.integers(0, len(flights)))]]
    cuts = [data.draw(st.lists(st.integers(0, len(f)), max_size=8)) for _, f in corrupted]
    # broken or not, the result never depends on how the bytes were segmented
    assert run(corrupted, cuts).as_dict() == run(corrupted).as_dict()
