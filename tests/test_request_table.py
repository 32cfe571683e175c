"""The requests table kept as columns (pcapstats/request_table.py): its rows, its
columns and the DataFrame built from either agree, on a capture of both sides of a
balancer (matched requests, backends, sessions) and one of keep-alive traffic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pcapstats import analyze, frames
from pcapstats.request_table import RequestTable, columns_of

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NAMES = [c[0] for c in frames.REQUESTS]


@pytest.mark.parametrize("sample", ["lb-both-sides.pcap", "http-keepalive.pcap"])
def test_rows_columns_and_frame_agree(sample: str) -> None:
    a = analyze(str(SAMPLES / sample))
    table = a.rows("requests")
    assert isinstance(table, RequestTable) and len(table) == len(a.result.exchanges) > 0
    rows = list(table)
    assert [r["idx"] for r in rows] == list(range(len(rows)))
    for name in NAMES:
        assert table.column(name) == [r[name] for r in rows], name
    assert table[-1] == rows[-1] and table[1:3] == rows[1:3]
    assert table == rows and rows == table and table != rows[:-1]
    assert list(rows[0])[:6] == ["conn_id", "depth", "client_ip", "client_port", "server_ip",
                                 "server_port"]
    with pytest.raises(IndexError):
        table[len(rows)]
    with pytest.raises(KeyError):
        table.column("no_such_column")
    # each row joins its exchange and its connection
    conns = {c["conn_id"]: c for c in a.rows("connections")}
    for r, e in zip(rows, a.result.exchanges):
        c = conns[e.conn_id]
        assert (r["uri"], r["status"], r["client_ip"], r["server_port"], r["side"]) == \
            (e.uri, e.status, c["client_ip"], c["server_port"], c["side"])
        assert r["ttfb_ns"] == (None if e.ts_response is None or e.ts_request_end is None
                                else e.ts_response - e.ts_request_end)
    # the DataFrame from whole columns equals the one from row dicts
    pd.testing.assert_frame_equal(a.requests, frames.build("requests", rows))
    assert list(columns_of(table, "uri", "backend")) == \
        list(columns_of(rows, "uri", "backend")) == [(r["uri"], r["backend"]) for r in rows]
    # only the rows of some connections (or sessions): every kind of column, both ways
    some = {rows[0]["conn_id"], rows[-1]["conn_id"]}
    picked = [r for r in rows if r["conn_id"] in some]
    for names in (("idx", "uri", "client_ip", "session", "ttfb_ns"), ("conn_id",)):
        assert list(columns_of(table, *names, where=("conn_id", some))) == \
            list(columns_of(rows, *names, where=("conn_id", some))) == \
            [tuple(r[n] for n in names) for r in picked] != []
    assert list(columns_of(table, "uri", where=("session", set()))) == []


def test_both_sides_sample_has_attribution_in_the_table() -> None:
    a = analyze(str(SAMPLES / "lb-both-sides.pcap"))
    table = a.rows("requests")
    sides = set(table.column("side"))
    assert sides == {"client", "backend"}
    # every client-side request of this sample was matched to a backend
    assert all(b is not None for s, b in columns_of(table, "side", "backend") if s == "client")
    assert sum(table.column("health_check")) == a.summary["affinity"]["health_checks"]
    # the address each session request counts for: the client side's own client address
    for side, addr, ip in columns_of(table, "side", "client_addr", "client_ip"):
        assert addr == (ip if side == "client" else None)


def test_exchange_columns_in_one_pass_equal_the_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    import pcapstats.request_table as rt
    a = analyze(str(SAMPLES / "http-keepalive.pcap"))
    table = a.rows("requests")
    n = len(table)
    assert n > 3
    monkeypatch.setattr(rt, "_CHUNK", 2)        # several chunks, the last one short
    names = ("conn_id", "cookie", "set_cookie", "xff", "ts_request", "uri")
    assert table.exchange_columns(*names) == [table.column(c) for c in names]
    assert table.exchange_columns("uri") == [table.column("uri")]
    assert RequestTable([], []).exchange_columns("uri", "xff") == [[], []]
