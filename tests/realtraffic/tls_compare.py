"""pcapstats' TLS view of a capture, lined up with tshark's (`tls_tshark`) connection by connection."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import pcapstats
from pcapstats import pipeline
from pcapstats.tls import TlsStream

from .tls_tshark import ConnKey, TsharkTls


@dataclass
class PcapstatsTls:
    analysis: Any                          # pcapstats.Analysis
    all_rows: list[dict]                   # every connection row (plain Python values)
    rows: list[dict]                       # those with app == "tls"
    streams: dict[int, TlsStream]          # conn_id -> its TLS observer (for figures not in the row)

    def by_connection(self) -> dict[ConnKey, list[dict]]:
        out: dict[ConnKey, list[dict]] = defaultdict(list)
        for r in sorted(self.rows, key=lambda r: r["conn_id"]):
            out[(r["client_ip"], int(r["client_port"]), r["server_ip"], int(r["server_port"]))].append(r)
        return dict(out)


def analyze_tls(path: Path | str) -> PcapstatsTls:
    """`pcapstats.analyze(path)`, also keeping each TLS connection's TlsStream: the row has no
    ClientHello count, so `pipeline._conn_row` is wrapped for the duration of the call."""
    streams: dict[int, TlsStream] = {}
    original = pipeline._conn_row

    def keep(conn: Any, *rest: Any) -> dict:
        impl = conn.consumer.impl if conn.consumer is not None else None
        row = original(conn, *rest)
        if isinstance(impl, TlsStream):
            streams[row["conn_id"]] = impl
        return row

    pipeline._conn_row = keep  # type: ignore[assignment]
    try:
        analysis = pcapstats.analyze(str(path))
    finally:
        pipeline._conn_row = original  # type: ignore[assignment]
    all_rows = analysis.connections.to_dict("records")
    for r in all_rows:
        for k, v in r.items():  # pandas NA/NaN -> None
            if not isinstance(v, (str, bytes, list, tuple, dict)) and pd.isna(v):
                r[k] = None
    return PcapstatsTls(analysis, all_rows, [r for r in all_rows if r["app"] == "tls"], streams)


def tls_view(row: dict, stream: TlsStream | None) -> dict[str, Any]:
    """The figures compared with tshark, pcapstats side."""
    return {"client_hellos": stream.client_hellos if stream is not None else None,
            "version": row["tls_version"], "sni": row["sni"],
            "resumed": None if row["tls_resumed"] is None else bool(row["tls_resumed"])}


def tshark_view(t: TsharkTls) -> dict[str, Any]:
    return {"client_hellos": t.client_hellos, "version": t.version, "sni": t.sni, "resumed": t.resumed}


def compare(ps: PcapstatsTls, tshark: dict[ConnKey, list[TsharkTls]]) -> tuple[dict, dict[ConnKey, tuple]]:
    """(matches, mismatches): per connection with a ClientHello in either view, both views.

    Connections pcapstats sees as TLS but without a ClientHello (mid-stream) are left out, like
    tshark streams without one. Several connections on one 4-tuple are paired in order."""
    mine = {k: [r for r in rs if ps.streams.get(r["conn_id"]) is not None
                and ps.streams[r["conn_id"]].client_hellos > 0]
            for k, rs in ps.by_connection().items()}
    keys = {k for k, rs in mine.items() if rs} | set(tshark)
    same: dict = {}
    diff: dict[ConnKey, tuple] = {}
    for k in sorted(keys):
        a = [tls_view(r, ps.streams.get(r["conn_id"])) for r in mine.get(k, [])]
        b = [tshark_view(t) for t in tshark.get(k, [])]
        (same if a == b else diff)[k] = (a, b)
    return same, diff
