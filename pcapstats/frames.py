"""The DataFrame schemas: the one place that says which columns each table has.

Every column is declared once, with its dtype and a one-line doc; the
column reference in the docs is generated from these declarations
(``pcapstats columns``) and a test fails if an exported column has no doc.
pandas is imported lazily: nothing here runs before a table is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Iterable

from .request_table import table_columns

if TYPE_CHECKING:   # pragma: no cover
    import pandas as pd

# dtype shorthands: "int" (nullable Int64), "bool" (nullable boolean), "str" (string),
# "cat" (category), "ts" (datetime64[ns, UTC] from integer ns), "float"
Column = tuple[str, str, str]

CONNECTIONS: list[Column] = [
    ("conn_id", "int", "Connection number, in order of first packet (0-based, like tshark's tcp.stream)."),
    ("client_ip", "cat", "Client address: the side that sent the SYN (else the HTTP requester, else the higher port)."),
    ("client_port", "int", "Client TCP port."),
    ("server_ip", "cat", "Server address."),
    ("server_port", "int", "Server TCP port."),
    ("ip_version", "int", "IP version of the connection: 4 or 6."),
    ("first_ts", "ts", "Time of the first packet (UTC)."),
    ("last_ts", "ts", "Time of the last packet (UTC)."),
    ("duration_ns", "int", "last_ts - first_ts in nanoseconds."),
    ("packets", "int", "TCP packets of this connection, both directions."),
    ("packets_client", "int", "Packets sent by the client."),
    ("packets_server", "int", "Packets sent by the server."),
    ("bytes_client", "int", "Payload bytes the client sent, in sequence space (retransmissions counted once, missed bytes included)."),
    ("bytes_server", "int", "Payload bytes the server sent, in sequence space."),
    ("syn", "int", "SYN packets (without ACK) the client sent; more than 1 means SYN retransmissions."),
    ("synack", "int", "SYN/ACK packets the server sent."),
    ("handshake_ack", "bool", "The client's ACK completing the handshake was seen."),
    ("handshake_complete", "bool", "SYN, then SYN/ACK from the other side, then the client's ACK (no SYN/RST) were seen in that order."),
    ("handshake_rtt_ns", "int", "Time from the first SYN to the handshake's final ACK (empty unless the handshake is complete)."),
    ("fin_client", "int", "FIN packets the client sent."),
    ("fin_server", "int", "FIN packets the server sent."),
    ("rst_client", "int", "RST packets the client sent."),
    ("rst_server", "int", "RST packets the server sent."),
    ("close", "cat", "'rst' if any RST was seen, else 'fin' if any FIN was seen, else 'open'."),
    ("closed_by", "cat", "Side that sent the first FIN or RST: 'client', 'server', or empty while open."),
    ("close_ts", "ts", "Time of the first FIN or RST."),
    ("setup_packets", "int", "Handshake packets seen: SYNs + SYN/ACKs + the handshake's final ACK."),
    ("teardown_packets", "int", "Teardown packets seen: FINs + RSTs + the pure ACKs of FINs."),
    ("retransmissions", "int", "Data segments that repeated bytes already seen (keep-alive probes excluded)."),
    ("missed_bytes", "int", "Payload bytes never seen (capture loss, snaplen cuts), like Zeek's missed_bytes."),
    ("overlap_conflicts", "int", "Overlapping segments whose bytes differed from the first copy (first copy kept)."),
    ("conn_state", "cat", "Zeek-compatible connection state (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH)."),
    ("history", "str", "Zeek-compatible history letters (client upper case, server lower case)."),
    ("mss", "int", "MSS option of the client's SYN."),
    ("evicted", "bool", "Emitted early because the open-connection limit was reached."),
    ("app", "cat", "Application protocol found: 'http/1', 'h2c', 'tunnel', 'tls', 'unknown', or empty (no payload)."),
    ("requests", "int", "HTTP requests parsed from the reassembled client stream."),
    ("responses", "int", "Final HTTP responses parsed from the server stream."),
    ("reused", "bool", "The connection carried two or more HTTP requests."),
    ("http_malformed", "int", "Malformed HTTP messages on this connection."),
    ("http_skipped_bytes", "int", "Bytes skipped while resynchronising HTTP after gaps or junk."),
    ("idle_max_ns", "int", "Longest gap between the end of a response and the next request."),
    ("idle_before_close_ns", "int", "Gap between the last response's end and the first FIN/RST: the keep-alive timeout in force when the closer is the server."),
    ("tls_version", "cat", "Negotiated TLS version."),
    ("sni", "cat", "Server name from the ClientHello."),
    ("alpn", "cat", "Application protocol the server selected (ALPN)."),
    ("tls_resumed", "bool", "Abbreviated (resumed) TLS handshake; empty when unknown."),
    ("tls_session", "str", "TLS session identity (session ID or ticket hash) for grouping."),
    ("tls_handshake_rtt_ns", "int", "ClientHello to the end of the TLS handshake."),
    ("side", "cat", "'client' (client to balancer) or 'backend' (balancer to server) in a capture of both sides of a proxy, else empty."),
]

REQUESTS: list[Column] = [
    ("conn_id", "int", "Connection that carried the request."),
    ("depth", "int", "Position of the request on its connection (1 = first)."),
    ("client_ip", "cat", "Client address of the connection."),
    ("client_port", "int", "Client port of the connection."),
    ("server_ip", "cat", "Server address of the connection."),
    ("server_port", "int", "Server port of the connection."),
    ("method", "cat", "Request method."),
    ("host", "cat", "Host header."),
    ("uri", "str", "Request target as sent."),
    ("version", "cat", "HTTP version of the request."),
    ("status", "int", "Status of the final response; empty if none was seen."),
    ("ts_request", "ts", "First byte of the request."),
    ("ts_request_end", "ts", "Last byte of the request."),
    ("ts_response", "ts", "First byte of the final response."),
    ("ts_response_end", "ts", "Last byte of the final response."),
    ("ttfb_ns", "int", "Time from the request's last byte to the response's first byte."),
    ("request_body_bytes", "int", "Request body bytes (after de-chunking)."),
    ("response_body_bytes", "int", "Response body bytes (after de-chunking)."),
    ("req_connection", "str", "Connection header of the request."),
    ("resp_connection", "str", "Connection header of the response."),
    ("pipelined", "bool", "Sent before the previous response on the connection had ended."),
    ("cookie", "str", "Cookie header as sent."),
    ("set_cookie", "str", "Set-Cookie headers of the response, one per line."),
    ("xff", "str", "X-Forwarded-For header."),
    ("user_agent", "str", "User-Agent header."),
    ("session", "str", "Session key value of the request (see summary affinity.session_key)."),
    ("backend", "cat", "Backend that served the request: 'ip:port', or a server name from a cookie."),
    ("side", "cat", "'client' or 'backend' in a capture of both sides of a proxy, else empty."),
    ("health_check", "bool", "A request the proxy sent by itself (health check), kept out of client figures."),
]

SESSIONS: list[Column] = [
    ("session", "str", "Session key value."),
    ("key", "cat", "What the key is: 'cookie:NAME', 'client-ip', 'xff', 'header:NAME', 'tls'."),
    ("requests", "int", "Requests of the session."),
    ("backends", "int", "Distinct backends that served it."),
    ("primary_backend", "cat", "The backend that served most of its requests."),
    ("persistent", "bool", "All its requests with a known backend reached one backend."),
    ("breaks", "int", "Persistence breaks in the session."),
    ("client_ips", "int", "Distinct client addresses it came from."),
    ("first_ts", "ts", "First request."),
    ("last_ts", "ts", "Last request."),
]

BACKENDS: list[Column] = [
    ("backend", "cat", "Backend: 'ip:port' or server name."),
    ("requests", "int", "Requests it served."),
    ("sessions", "int", "Sessions whose primary backend it is."),
    ("connections", "int", "Backend-side connections to it (when the capture sees them)."),
    ("requests_per_connection", "float", "Requests per backend-side connection."),
    ("share", "float", "Share of all attributed requests."),
]

BREAKS: list[Column] = [
    ("session", "str", "Session that broke persistence."),
    ("ts", "ts", "Time of the request that went to another backend."),
    ("request_index", "int", "Row of that request in the requests table."),
    ("from_backend", "cat", "Backend of the session's previous request."),
    ("to_backend", "cat", "Backend of this request."),
    ("cause", "cat", "Likely cause: 'cookie-missing', 'cookie-changed', 'new-client-address' or 'unknown'."),
]

TABLES: dict[str, list[Column]] = {
    "connections": CONNECTIONS, "requests": REQUESTS, "sessions": SESSIONS,
    "backends": BACKENDS, "breaks": BREAKS,
}


def _series(values: list[Any], kind: str) -> "pd.Series":
    import pandas as pd

    if kind == "int":
        return pd.array(values, dtype="Int64")
    if kind == "bool":
        return pd.array(values, dtype="boolean")
    if kind == "str":
        return pd.array(values, dtype="string")
    if kind == "cat":
        return pd.array(values, dtype="string").astype("category")
    if kind == "float":
        return pd.array(values, dtype="Float64")
    if kind == "ts":
        ints = pd.array(values, dtype="Int64")
        return pd.to_datetime(ints, unit="ns", utc=True)
    raise ValueError(kind)


def build(table: str, rows: Iterable[dict]) -> "pd.DataFrame":
    """Build one table from row dicts (or a column store with ``column(name)``, such as
    the RequestTable); missing keys become nulls, extra keys are dropped."""
    import pandas as pd

    cols = TABLES[table]
    names = [c[0] for c in cols]
    columns = table_columns(rows if isinstance(rows, Sequence) else list(rows), names)
    data = {name: _series(list(values), kind)
            for (name, kind, _), values in zip(cols, columns)}
    return pd.DataFrame(data, columns=names)


def column_docs() -> dict[str, dict[str, str]]:
    """{table: {column: doc}} for the reference docs and the documentation test."""
    return {t: {name: doc for name, _, doc in cols} for t, cols in TABLES.items()}


def reference(fmt: str = "text", table: str | None = None) -> str:
    """The column reference (``pcapstats columns``): plain text, or markdown
    (docs/columns.md is this output, checked by tests/test_docs.py)."""
    out: list[str] = []
    if fmt == "markdown":
        out += ["# Table columns", "",
                "Generated by `pcapstats columns --format markdown` from "
                "`pcapstats/frames.py`; do not edit by hand.", "",
                "Types: int (nullable Int64), bool (nullable boolean), str (string), "
                "cat (category), ts (datetime64[ns, UTC]), float (Float64).", ""]
    for name, cols in TABLES.items():
        if table and name != table:
            continue
        if fmt == "markdown":
            out += [f"## {name}", "", "| column | type | meaning |", "| --- | --- | --- |"]
            out += [f"| `{col}` | {kind} | {doc.replace('|', chr(92) + '|')} |"
                    for col, kind, doc in cols]
        else:
            out.append(f"{name}:")
            out += [f"  {col:<24} {kind:<6} {doc}" for col, kind, doc in cols]
        out.append("")
    return "\n".join(out) + "\n"
