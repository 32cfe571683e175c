"""Table building: every documented column is filled from the rows."""

from __future__ import annotations

from pathlib import Path

from pcapstats import analyze, frames

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_every_connection_column_is_in_the_rows() -> None:
    a = analyze(str(SAMPLES / "http-keepalive.pcap"))
    names = {c[0] for c in frames.TABLES["connections"]}
    for row in a._conn_rows:
        assert names <= set(row), names - set(row)
    c = a.connections
    assert (c["duration_ns"] == (c["last_ts"] - c["first_ts"]).dt.total_seconds()
            .mul(1e9).round().astype("Int64")).all()
    assert c["duration_ns"].notna().all()


def test_rows_without_some_columns_give_nulls() -> None:
    rows = [{"conn_id": 1, "depth": 1, "method": "GET"}, {"conn_id": 2, "depth": 1}]
    df = frames.build("requests", rows)
    assert list(df.columns) == [c[0] for c in frames.TABLES["requests"]]
    assert df["method"].tolist()[0] == "GET" and df["method"].isna().tolist() == [False, True]
    assert df["status"].isna().all()
