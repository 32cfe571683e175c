"""The summary: a JSON-serialisable dict of every figure the report shows.

Keys are stable (documented in ``docs/figures.md``); every ratio comes with the
counts it was computed from. Built from plain records, no pandas.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import __version__
from .affinity.figures import EXCHANGES_PER_CONNECTION, distribution, reuse_figures
from .ingest import LINKTYPE_NAMES
from .pipeline import RunResult

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


def tcp_section(conns: list[dict]) -> dict[str, Any]:
    n = len(conns)
    closes = Counter(c["close"] for c in conns)
    closed_by = Counter(c["closed_by"] or "open" for c in conns)
    setup = sum(c["setup_packets"] for c in conns)
    teardown = sum(c["teardown_packets"] for c in conns)
    rtts = sorted(c["handshake_rtt_ns"] for c in conns if c["handshake_rtt_ns"] is not None)
    rtt = distribution(rtts)
    return {
        "connections": n,
        "handshakes_complete": sum(1 for c in conns if c["handshake_complete"]),
        "syn_only": sum(1 for c in conns if c["syn"] and not c["synack"]),
        "closes": {"fin": closes.get("fin", 0), "rst": closes.get("rst", 0),
                   "open": closes.get("open", 0)},
        "closed_by": {"client": closed_by.get("client", 0), "server": closed_by.get("server", 0),
                      "open": closed_by.get("open", 0)},
        "setup_packets": setup,
        "teardown_packets": teardown,
        "exchanges_per_connection": (setup + teardown) / n if n else None,
        "handshake_rtt_ms": {k: (v / 1e6 if v is not None else None) for k, v in rtt.items()},
        "retransmissions": sum(c["retransmissions"] for c in conns),
        "missed_bytes": sum(c["missed_bytes"] for c in conns),
        "connections_with_gaps": sum(1 for c in conns if c["missed_bytes"]),
        "conn_states": dict(sorted(Counter(c["conn_state"] for c in conns).items())),
        "evicted": sum(1 for c in conns if c["evicted"]),
    }


def http_section(conns: list[dict], exchanges: list) -> dict[str, Any]:
    http_conns = [c for c in conns if c["app"] in ("http/1", "h2c", "tunnel")]
    fig = reuse_figures([c["requests"] for c in conns])
    requests = fig["requests"]
    versions = Counter(e.version for e in exchanges)
    idle = [c["idle_max_ns"] for c in conns if c.get("idle_max_ns") is not None]
    ka = [c for c in conns if c.get("idle_before_close_ns") is not None]
    ka_server = sorted(c["idle_before_close_ns"] for c in ka if c["closed_by"] == "server")
    ka_client = sorted(c["idle_before_close_ns"] for c in ka if c["closed_by"] == "client")
    setup = sum(c["setup_packets"] + c["teardown_packets"] for c in conns if c["requests"])
    hist = Counter(min(c["requests"], 10) for c in conns if c["requests"])
    return {
        "requests": requests,
        "responses": sum(c["responses"] for c in conns),
        "connections_with_requests": fig["connections_with_requests"],
        "http_connections": len(http_conns),
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
        "pipelined_requests": sum(1 for e in exchanges if e.pipelined),
        "unanswered_requests": sum(1 for e in exchanges if e.status is None),
        "malformed": sum(c["http_malformed"] for c in conns),
        "h2c_connections": sum(1 for c in conns if c["app"] == "h2c"),
        "tunnels": sum(1 for c in conns if c["app"] == "tunnel"),
        "idle_gap_ms": {k: (v / 1e6 if v is not None else None)
                        for k, v in distribution(sorted(idle)).items()},
        "keepalive_timeout_ms": {
            "closed_by_server": {k: (v / 1e6 if v is not None else None)
                                 for k, v in distribution(ka_server).items()},
            "closed_by_client": {k: (v / 1e6 if v is not None else None)
                                 for k, v in distribution(ka_client).items()},
        },
        "closes_by_side": dict(Counter(c["closed_by"] or "open" for c in conns
                                       if c["requests"])),
        "races_408": sum(c.get("race_408", 0) for c in conns),
    }


def tls_section(conns: list[dict]) -> dict[str, Any]:
    tls = [c for c in conns if c["app"] == "tls"]
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


def warnings(res: RunResult, conns: list[dict]) -> list[str]:
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
    gaps = sum(1 for c in conns if c["missed_bytes"])
    if gaps:
        missed = sum(c["missed_bytes"] for c in conns)
        out.append(f"{gaps} connections have gaps ({missed} bytes never seen)")
    bad = sum(c["http_malformed"] for c in conns)
    if bad:
        out.append(f"{bad} malformed HTTP messages")
    if res.evicted:
        out.append(f"{res.evicted} connections were emitted early: open-connection limit reached")
    return out


def build_summary(res: RunResult, conns: list[dict], exchanges: list,
                  affinity: dict[str, Any] | None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pcapstats", "version": __version__},
        "capture": capture_section(res),
        "tcp": tcp_section(conns),
        "udp": {"flows": res.udp_flows,
                "flows_by_port": {str(k): v for k, v in sorted(res.udp_flows_by_port.items())}},
        "http": http_section(conns, exchanges),
        "tls": tls_section(conns),
    }
    if affinity is not None:
        summary["affinity"] = affinity
    summary["warnings"] = warnings(res, conns)
    return summary
