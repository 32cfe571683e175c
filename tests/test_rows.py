"""Connection rows share the strings they repeat (memory follows distinct values)."""

from __future__ import annotations

from pathlib import Path

from pcapstats.pipeline import Options, _AddressText, run

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_rows_of_one_address_share_its_text() -> None:
    rows = run([str(SAMPLES / "http-keepalive.pcap")], Options()).connections
    assert len(rows) >= 2
    for key in ("client_ip", "server_ip", "history"):
        by_value: dict[str, str] = {}
        for r in rows:
            first = by_value.setdefault(r[key], r[key])
            assert first is r[key], key
    assert len({r["server_ip"] for r in rows}) < len(rows)


def test_address_text_is_bounded() -> None:
    text = _AddressText()
    for i in range(70_000):
        raw = i.to_bytes(4, "big")
        assert text[raw] == f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
        assert len(text) <= 1 << 16
    assert text[b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"] == "2001:db8::1"


def test_rows_keep_their_keys_in_one_order() -> None:
    """Every row has the same keys in the same order (rows start as copies of one
    dict; json and CSV dumps of the rows show that order), with the defaults of a
    connection without HTTP or TLS."""
    from pcapstats.frames import CONNECTIONS
    rows = run([str(SAMPLES / "http-keepalive.pcap")], Options()).connections
    order = [k for k in rows[0]]
    assert order == [
        "conn_id", "client_ip", "client_port", "server_ip", "server_port", "ip_version",
        "first_ts", "last_ts", "duration_ns", "packets", "packets_client", "packets_server",
        "bytes_client", "bytes_server", "syn", "synack", "handshake_ack", "handshake_complete",
        "handshake_rtt_ns", "fin_client", "fin_server", "rst_client", "rst_server", "close",
        "closed_by", "close_ts", "setup_packets", "teardown_packets", "retransmissions",
        "missed_bytes", "overlap_conflicts", "conn_state", "history", "mss", "evicted", "app",
        "requests", "responses", "http_malformed", "http_skipped_bytes", "tls_version", "sni",
        "alpn", "tls_resumed", "tls_session", "tls_handshake_rtt_ns", "tls_client_hello",
        "reused", "idle_max_ns", "idle_before_close_ns", "race_408", "side"]
    assert set(order) == {name for name, _, _ in CONNECTIONS} | {"tls_client_hello", "race_408"}
    assert all(list(r) == order for r in rows)
    quiet = [r for r in rows if r["app"] == ""]
    assert quiet, "the sample has no connection without payload"
    for r in quiet:
        assert (r["requests"], r["reused"], r["idle_max_ns"], r["race_408"], r["tls_client_hello"],
                r["tls_version"], r["side"]) == (0, False, None, 0, False, None, "")


class _Watched(dict):
    """A row that records the keys written to it."""

    def __init__(self, row: dict) -> None:
        super().__init__(row)
        self.written: list[str] = []

    def __setitem__(self, key: str, value: object) -> None:
        self.written.append(key)
        super().__setitem__(key, value)


def _attributed(sample: str) -> list[_Watched]:
    from pcapstats.affinity.attribute import attribute
    from pcapstats.request_table import RequestTable
    res = run([str(SAMPLES / sample)], Options())
    rows = [_Watched(r) for r in res.connections]
    attribute(rows, RequestTable(res.exchanges, rows))
    return rows


def test_attribution_writes_only_the_sides_that_change() -> None:
    """A forked child reads the rows while attribute() runs after a parallel run: every
    row written costs a copied page. Rows begin with side "", so one side only writes
    none; both sides of a proxy write exactly the rows that are not ""."""
    one_sided = _attributed("http-keepalive.pcap")
    assert one_sided and all(r["side"] == "" and r.written == [] for r in one_sided)
    both = _attributed("lb-both-sides.pcap")
    sides = {r["side"] for r in both}
    assert {"client", "backend"} <= sides
    assert all(r.written == (["side"] if r["side"] else []) for r in both)
