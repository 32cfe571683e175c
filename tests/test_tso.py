"""Captures taken on a sender with TCP segmentation offload: the kernel hands the NIC
one large segment whose IPv4 total length is 0 (the NIC fills it in per frame), and
tcpdump on that host records it so. The segment is decoded up to the captured end."""

from __future__ import annotations

import struct

import capbuild as cb
from pcapstats import analyze


def _zero_ip_length(frame: bytes) -> bytes:
    return frame[:16] + struct.pack("!H", 0) + frame[18:]


def test_tso_segments_with_ip_total_length_zero_are_decoded(tmp_path) -> None:
    body = bytes(range(256)) * 40                       # 10,240 bytes, sent as one segment (larger than any MTU)
    response = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    request = b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n"
    sport, c, s = 40000, 1001, 5001
    frames = [
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, 1000, 0, cb.SYN))),
        cb.eth(cb.ipv4(cb.SERVER, cb.CLIENT, 6, cb.tcp(80, sport, 5000, c, cb.SYN | cb.ACK))),
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, c, s, cb.ACK))),
        # the client is the capturing host too: its request also leaves with length 0
        _zero_ip_length(cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6,
                                       cb.tcp(sport, 80, c, s, cb.PSH | cb.ACK, request)))),
        _zero_ip_length(cb.eth(cb.ipv4(cb.SERVER, cb.CLIENT, 6,
                                       cb.tcp(80, sport, s, c + len(request), cb.PSH | cb.ACK,
                                              response)))),
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, c + len(request),
                                                       s + len(response), cb.FIN | cb.ACK))),
        cb.eth(cb.ipv4(cb.SERVER, cb.CLIENT, 6, cb.tcp(80, sport, s + len(response),
                                                       c + len(request) + 1, cb.FIN | cb.ACK))),
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, c + len(request) + 1,
                                                       s + len(response) + 1, cb.ACK))),
    ]
    path = tmp_path / "tso.pcap"
    path.write_bytes(cb.pcap(frames))
    a = analyze(str(path))
    assert a.result.decode.get("malformed", 0) == 0
    [conn] = a.rows("connections")
    assert (conn["bytes_client"], conn["bytes_server"]) == (len(request), len(response))
    assert conn["conn_state"] == "SF" and conn["requests"] == 1 and conn["responses"] == 1
    [req] = a.rows("requests")
    assert (req["method"], req["uri"], req["status"]) == ("GET", "/big", 200)
    assert req["response_body_bytes"] == len(body)


def test_length_zero_on_a_minimum_size_frame_is_not_taken_for_tso(tmp_path) -> None:
    """A 60-byte Ethernet frame may end in padding: with IP total length 0 its bytes
    cannot be told from payload, so it stays a malformed packet (a bare ACK has nothing
    to offload anyway)."""
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    sport, c, s = 40000, 1001, 5001
    ack = cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, c + len(request), s,
                                                          cb.ACK)))
    ack = _zero_ip_length(ack + b"\0" * (60 - len(ack)))
    frames = [
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, 1000, 0, cb.SYN))),
        cb.eth(cb.ipv4(cb.SERVER, cb.CLIENT, 6, cb.tcp(80, sport, 5000, c, cb.SYN | cb.ACK))),
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, c, s, cb.ACK))),
        cb.eth(cb.ipv4(cb.CLIENT, cb.SERVER, 6, cb.tcp(sport, 80, c, s, cb.PSH | cb.ACK,
                                                       request))),
        ack,
    ]
    path = tmp_path / "pad.pcap"
    path.write_bytes(cb.pcap(frames))
    a = analyze(str(path))
    assert a.result.decode["malformed"] == 1
    [conn] = a.rows("connections")
    assert conn["bytes_client"] == len(request) and conn["packets"] == 4
