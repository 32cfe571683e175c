"""The summary: a JSON-serialisable dict of every figure the report shows.

Keys are stable (documented in ``docs/figures.md``); every ratio comes with the
counts it was computed from. Built from plain records, no pandas.
"""

from __future__ import annotations

from collections import Counter
from itertools import compress, repeat
from operator import and_, attrgetter, eq, is_not, not_, truth
from typing import Any, Sequence

from . import __version__
from .affinity.figures import EXCHANGES_PER_CONNECTION, distribution, reuse_figures
from .ingest import LINKTYPE_NAMES
from .pipeline import RunResult
from .records import row_columns

SCHEMA_VERSION = 1


def _ratio(num: int, den: int) -> dict[str, Any]:
    return {"numerator": num, "denominator": den, "value": (num / den) if den else None}


def capture_section(res: RunResult) -> dict[str, Any]:
    dur = (res.last_ts - res.first_ts) if res.first_ts is not None else 0  # type: ignore[operator]
    return {
        "files": [{
            "path": f.path, "format": f.format, "compressed": f.compressed,
            "records": f.records, "link_types": sorted(f.linktypes or ()),
            "stopped_at": f.stopped_at,
        } for f in res.files],
        "packets": res.packets,
        "bytes": res.wire_bytes,
        "captured_bytes": res.captured_bytes,
        "first_ts": res.first_ts, "last_ts": res.last_ts,
        "duration_s": dur / 1e9,
        "link_types": {f"{lt} {LINKTYPE_NAMES.get(lt, 'unknown')}": n
                       for lt, n in sorted(res.linktypes.items())},
        "tcp_packets": res.tcp_packets,
        "udp_packets": res.udp_packets,
        "not_decoded": res.decode,
    }


# the connection columns the sections read, taken from the rows in one pass (each row
# dict touched once: with hundreds of thousands of rows, a pass is mostly cache misses)
_CONN_COLUMNS = ("close", "closed_by", "setup_packets", "teardown_packets", "handshake_rtt_ns",
                 "handshake_complete", "syn", "synack", "retransmissions", "missed_bytes",
                 "conn_state", "evicted", "app", "requests", "responses", "idle_max_ns",
                 "idle_before_close_ns", "http_malformed", "race_408")
Columns = dict[str, Sequence[Any]]


def conn_columns(conns: list[dict]) -> Columns:
    return dict(zip(_CONN_COLUMNS, row_columns(conns, _CONN_COLUMNS)))


def _known(values: Sequence[Any], where: Any = None) -> list[Any]:
    """The values (a sequence: read twice) that are not None, and where ``where`` is
    true, sorted. (These passes over the columns are C-level: on 500k connections a
    generator each took 0.1-0.2 s.)"""
    known = map(is_not, values, repeat(None))
    return sorted(compress(values, known if where is None else map(and_, known, where)))


def _by_side(closed_by: Sequence[str | None], where: Sequence[Any] | None = None
             ) -> dict[str, int]:
    """Connections per closing side (where ``where`` is true), "open" for none, in the
    order the sides first appear."""
    out: dict[str, int] = {}
    for side, n in Counter(closed_by if where is None else compress(closed_by, where)).items():
        side = side or "open"
        out[side] = out.get(side, 0) + n
    return out


def _ms(values: list[int]) -> dict[str, Any]:
    return {k: (v / 1e6 if v is not None else None) for k, v in distribution(values).items()}


def tcp_section(col: Columns) -> dict[str, Any]:
    n = len(col["close"])
    close, closed_by, rtt, missed = col["close"], col["closed_by"], col["handshake_rtt_ns"], \
        col["missed_bytes"]
    closes = Counter(close)
    by = _by_side(closed_by)
    setup = sum(col["setup_packets"])
    teardown = sum(col["teardown_packets"])
    return {
        "connections": n,
        "handshakes_complete": sum(map(bool, col["handshake_complete"])),
        "syn_only": sum(map(and_, map(truth, col["syn"]), map(not_, col["synack"]))),
        "closes": {"fin": closes.get("fin", 0), "rst": closes.get("rst", 0),
                   "open": closes.get("open", 0)},
        "closed_by": {"client": by.get("client", 0), "server": by.get("server", 0),
                      "open": by.get("open", 0)},
        "setup_packets": setup,
        "teardown_packets": teardown,
        "exchanges_per_connection": (setup + teardown) / n if n else None,
        "handshake_rtt_ms": _ms(_known(rtt)),
        "retransmissions": sum(col["retransmissions"]),
        "missed_bytes": sum(missed),
        "connections_with_gaps": sum(map(bool, missed)),
        "conn_states": dict(sorted(Counter(col["conn_state"]).items())),
        "evicted": sum(map(bool, col["evicted"])),
    }


def http_section(col: Columns, exchanges: list) -> dict[str, Any]:
    nreq, idle_before_close, closed_by = col["requests"], col["idle_before_close_ns"], \
        col["closed_by"]
    apps = Counter(col["app"])
    fig = reuse_figures(nreq)
    requests = fig["requests"]
    # one C-level pass per field (a transpose with zip(*...) of hundreds of thousands of
    # tuples took ten times as long)
    versions = Counter(map(attrgetter("version"), exchanges))
    pipelined = map(attrgetter("pipelined"), exchanges)
    unanswered = list(map(attrgetter("status"), exchanges)).count(None)
    idle = _known(col["idle_max_ns"])
    ka_server = _known(idle_before_close, map(eq, closed_by, repeat("server")))
    ka_client = _known(idle_before_close, map(eq, closed_by, repeat("client")))
    setup = sum(compress(col["setup_packets"], nreq)) + sum(compress(col["teardown_packets"],
                                                                     nreq))
    hist: Counter[int] = Counter()
    for r, k in Counter(filter(None, nreq)).items():
        hist[min(r, 10)] += k
    return {
        "requests": requests,
        "responses": sum(col["responses"]),
        "connections_with_requests": fig["connections_with_requests"],
        "http_connections": apps["http/1"] + apps["h2c"] + apps["tunnel"],
        "requests_per_connection": fig["requests_per_connection"],
        "requests_per_connection_histogram": {
            (str(k) if k < 10 else "10+"): v for k, v in sorted(hist.items())},
        "reused_connections": fig["reused_connections"],
        "reused_share": _ratio(fig["reused_connections"], fig["connections_with_requests"]),
        "reuse_ratio": fig["reuse_ratio"],
        "reuse": _ratio(fig["reused_requests"], requests),
        "exchanges_saved": fig["exchanges_saved"],
        "exchanges_per_request": (setup / requests) if requests else None,
        "exchanges_per_request_baseline": EXCHANGES_PER_CONNECTION,
        "versions": dict(sorted(versions.items())),
        "pipelined_requests": sum(map(bool, pipelined)),
        "unanswered_requests": unanswered,
        "malformed": sum(col["http_malformed"]),
        "h2c_connections": apps["h2c"],
        "tunnels": apps["tunnel"],
        "idle_gap_ms": _ms(idle),
        "keepalive_timeout_ms": {"closed_by_server": _ms(ka_server),
                                 "closed_by_client": _ms(ka_client)},
        "closes_by_side": _by_side(closed_by, nreq),
        "races_408": sum(filter(None, col["race_408"])),
    }


def tls_section(conns: list[dict], apps: Sequence[str]) -> dict[str, Any]:
    """``apps``: the rows' "app" column (the TLS rows are picked in C, without touching
    the others)."""
    tls = list(compress(conns, map(eq, apps, repeat("tls"))))
    full = sum(1 for c in tls if c["tls_resumed"] is False)
    resumed = sum(1 for c in tls if c["tls_resumed"] is True)
    by_ip: dict[str, list[int]] = {}
    by_sni: dict[str, list[int]] = {}
    for c in tls:
        if c["tls_resumed"] is None:
            continue
        for key, d in ((c["client_ip"], by_ip), (c["sni"] or "", by_sni)):
            slot = d.setdefault(key, [0, 0])
            slot[0] += bool(c["tls_resumed"])
            slot[1] += 1
    return {
        "connections": len(tls),
        "handshakes": sum(1 for c in tls if c["tls_client_hello"]),
        "full": full,
        "resumed": resumed,
        "unknown": len(tls) - full - resumed,
        "resumption_ratio": (resumed / (full + resumed)) if (full + resumed) else None,
        "resumption": _ratio(resumed, full + resumed),
        "versions": dict(sorted(Counter(c["tls_version"] or "unknown" for c in tls).items())),
        "alpn": dict(sorted(Counter(c["alpn"] or "none" for c in tls).items())),
        "by_client_ip": {k: _ratio(*v) for k, v in sorted(by_ip.items())},
        "by_sni": {k: _ratio(*v) for k, v in sorted(by_sni.items())},
        "bytes": sum(c["bytes_client"] + c["bytes_server"] for c in tls),
    }


def warnings(res: RunResult, col: Columns) -> list[str]:
    out = [str(p) for p in res.problems]
    d = res.decode
    if d.get("malformed"):
        out.append(f"{d['malformed']} packets had malformed headers and were skipped")
    for lt, n in d.get("unknown_linktypes", {}).items():
        out.append(f"{n} packets have link type {lt}, which pcapstats does not decode")
    if d.get("fragment_sets_incomplete"):
        out.append(f"{d['fragment_sets_incomplete']} IP fragment sets never completed")
    if d.get("fragment_conflicts"):
        out.append(f"{d['fragment_conflicts']} IP fragments overlapped earlier ones with "
                   "different bytes (the first copy was kept)")
    missed, malformed = col["missed_bytes"], col["http_malformed"]
    gaps = sum(map(bool, missed))
    if gaps:
        out.append(f"{gaps} connections have gaps ({sum(missed)} bytes never seen)")
    bad = sum(malformed)
    if bad:
        out.append(f"{bad} malformed HTTP messages")
    if res.evicted:
        out.append(f"{res.evicted} connections were emitted early: open-connection limit reached")
    return out


def build_summary(res: RunResult, conns: list[dict], exchanges: list,
                  affinity: dict[str, Any] | None) -> dict[str, Any]:
    col = conn_columns(conns)
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pcapstats", "version": __version__},
        "capture": capture_section(res),
        "tcp": tcp_section(col),
        "udp": {"flows": res.udp_flows,
                "flows_by_port": {str(k): v for k, v in sorted(res.udp_flows_by_port.items())}},
        "http": http_section(col, exchanges),
        "tls": tls_section(conns, col["app"]),
    }
    summary["warnings"] = warnings(res, col)
    return with_affinity(summary, affinity)


def with_affinity(summary: dict[str, Any], affinity: dict[str, Any] | None) -> dict[str, Any]:
    """``summary`` (built without affinity) with ``summary["affinity"]`` added, in its
    place before the warnings; ``summary`` itself when ``affinity`` is None."""
    if affinity is None:
        return summary
    out = {k: v for k, v in summary.items() if k != "warnings"}
    out["affinity"] = affinity
    out["warnings"] = summary["warnings"]
    return out
