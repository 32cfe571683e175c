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
