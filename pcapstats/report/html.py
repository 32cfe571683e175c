"""The HTML report: one self-contained page (inline CSS and SVG, no script, no fetch).

Sections and wording follow the terminal report (``render.py``); the figures
come from ``Analysis.summary``, the plots from the tables' row dicts
(``Analysis.rows``: no pandas, no DataFrame is built). Every string that
came from a capture goes through :func:`svg.esc` (``html.escape`` with
quotes) wherever it lands: text, attribute values and SVG ``<title>``
tooltips. The page has no ``<script>``, no event attribute, no style built
from data, and a Content-Security-Policy that forbids scripts and fetches.
"""

from __future__ import annotations

import heapq
import math
from itertools import compress, repeat
from operator import ge, methodcaller
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

from ..redact import describe
from ..request_table import columns_of, table_columns
from . import svg
from .fmt import num, pct
from .svg import esc

MAX_CONNECTION_ROWS = 200
MAX_SESSION_ROWS = 50
MAX_BACKEND_BARS = 30

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;
margin:0;color:#1d1d1f;background:#f4f5f7;line-height:1.4}
header{background:#1f3a5f;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#d7e1ee;font-size:13px}
nav{padding:8px 28px;background:#e6ebf2;font-size:14px}nav a{margin-right:16px;color:#1f3a5f}
main{padding:8px 28px 40px;max-width:1160px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:6px 20px 16px;
margin:16px 0}
h2{font-size:18px;margin:10px 0 8px;color:#1f3a5f}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;font-size:14px;margin:4px 0 8px}
table.kv th{text-align:left;font-weight:normal;color:#0a6e8a;padding:2px 18px 2px 0;
vertical-align:top;white-space:nowrap}
table.kv td{padding:2px 0;overflow-wrap:anywhere}
table.grid th{background:#eef1f5;text-align:left;padding:4px 10px;border-bottom:1px solid #ccd}
table.grid td{padding:3px 10px;border-bottom:1px solid #eee;overflow-wrap:anywhere}
table.grid td.n,table.grid th.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:12px 0;overflow-x:auto}figcaption{font-size:13px;color:#555;margin-top:4px}
figure svg{display:block;max-width:100%;height:auto}
.warn{color:#8a5300}.muted{color:#666}.ok{color:#2d6a2d}
ul.warnings{padding-left:20px}ul.warnings li{margin:2px 0}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
"""

# No script, no fetch, no form: a safety net under the escaping.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
       "form-action 'none'")


# ----------------------------------------------------------------- formatting

_pct = pct
_num = num


def _ratio(r: dict[str, Any] | None) -> str:
    if not r:
        return "n/a"
    return f"{_pct(r['value'])} ({r['numerator']:,}/{r['denominator']:,})"


def _share(num: int, den: int) -> str:
    return _ratio({"numerator": num, "denominator": den, "value": num / den if den else None})


def _per(value: float | None, den: int, what: str) -> str:
    """A mean shown with its counts: 'x (total/den)'; the total is exact (sums of integers)."""
    if value is None or not den:
        return "n/a"
    return f"{value:,.2f} ({round(value * den):,} {what}/{den:,})"


def _utc(ns: int | None) -> str:
    if ns is None:
        return "n/a"
    t = (datetime.fromtimestamp(ns // 10**9, timezone.utc)
         + timedelta(microseconds=ns % 10**9 // 1000))
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _kv(rows: list[tuple[str, str]]) -> str:
    """A key/value table; keys are constants, values already escaped."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _grid(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """A table; cells already escaped; ``numeric`` columns right-aligned."""
    def cls(i: int) -> str:
        return ' class="n"' if i in numeric else ""
    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(svg_text: str, caption: str) -> str:
    return f"<figure>{svg_text}<figcaption>{caption}</figcaption></figure>"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def _na(v: Any) -> Any:
    """A value as a DataFrame cell prints it: a null as ``<NA>``."""
    return "<NA>" if v is None else v


# ----------------------------------------------------------------- the page

def render_html(analysis: Any) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    s = analysis.summary
    cap = s["capture"]
    names = ", ".join(Path(f["path"]).name for f in cap["files"]) or "capture"
    t0 = cap.get("first_ts")
    span = max((cap.get("duration_s") or 0.0), 1e-6)
    sections = [
        ("capture", "Capture", _capture(s)),
        ("tcp", "TCP connections", _tcp(s, analysis, t0, span)),
        ("http", "HTTP reuse", _http(s, analysis)),
    ]
    if s["tls"]["connections"]:
        sections.append(("tls", "TLS", _tls(s["tls"])))
    if s.get("affinity") is not None:
        sections.append(("persistence", "Persistence and backends",
                         _persistence(s["affinity"], analysis, t0, span)))
        sections.append(("breaks", "Sessions with persistence breaks",
                         _top_breaks(s["affinity"], analysis, t0)))
    sections.append(("warnings", "Warnings", _warnings(s["warnings"])))
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    tool = s.get("tool", {})
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pcapstats report: {esc(names, 120)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>pcapstats report: {esc(names, 120)}</h1>"
        f"<p>{esc(tool.get('name', 'pcapstats'))} {esc(tool.get('version', ''))}; "
        f"capture from {esc(_utc(cap.get('first_ts')))} to {esc(_utc(cap.get('last_ts')))}; "
        "every ratio is shown with the counts it was computed from (numerator/denominator)."
        f"</p></header><nav>{nav}</nav><main>"
        + "".join(_section(sid, title, body) for sid, title, body in sections)
        + "</main></body></html>\n")


def _capture(s: dict[str, Any]) -> str:
    cap = s["capture"]
    files = []
    for f in cap["files"]:
        extra = ", gzip" if f.get("compressed") else ""
        stop = (f", reading stopped at byte {f['stopped_at']:,}"
                if f.get("stopped_at") is not None else "")
        files.append(f"<code>{esc(Path(f['path']).name, 120)}</code> "
                     f"({esc(f['format'])}{extra}, {f['records']:,} records{stop})")
    return _kv([
        ("files", "<br>".join(files) or "-"),
        ("packets", f"{cap['packets']:,} ({cap['bytes']:,} bytes on the wire, "
                    f"{cap['captured_bytes']:,} captured)"),
        ("duration", f"{cap['duration_s']:.3f} s"),
        ("first / last packet", f"{esc(_utc(cap['first_ts']))} / {esc(_utc(cap['last_ts']))}"),
        ("link types", esc(", ".join(f"{k}: {v:,}" for k, v in cap["link_types"].items())
                           or "-")),
        ("TCP / UDP", f"{cap['tcp_packets']:,} / {cap['udp_packets']:,} packets; "
                      f"{s['udp']['flows']:,} UDP flows"),
    ] + [("redacted", esc(n)) for n in [describe(s)] if n])


def _tcp(s: dict[str, Any], analysis: Any, t0: int | None, span: float) -> str:
    t = s["tcp"]
    n = t["connections"]
    rtt = t["handshake_rtt_ms"]
    hs = _share(t["handshakes_complete"], n)
    if rtt["median"] is not None:
        hs += f"; RTT median {_num(rtt['median'], 3)} ms, p95 {_num(rtt['p95'], 3)} ms"
    table = _kv([
        ("connections", f"{n:,}"),
        ("complete handshakes", hs),
        ("closes", f"fin {t['closes']['fin']:,}, rst {t['closes']['rst']:,}, "
                   f"open {t['closes']['open']:,}"),
        ("closed first by", f"client {t['closed_by']['client']:,}, "
                            f"server {t['closed_by']['server']:,}, "
                            f"still open {t['closed_by']['open']:,}"),
        ("setup packets", f"{t['setup_packets']:,}"),
        ("teardown packets", f"{t['teardown_packets']:,}"),
        ("exchanges/connection", _per(t["exchanges_per_connection"], n, "packets")),
        ("retransmissions", f"{t['retransmissions']:,}"),
        ("missed bytes", f"{t['missed_bytes']:,} in {t['connections_with_gaps']:,} connections"),
        ("states (Zeek)", esc(", ".join(f"{k} {v:,}" for k, v in t["conn_states"].items())
                              or "-")),
    ])
    if not n:
        return table + '<p class="muted">No TCP connections in this capture.</p>'
    lanes, caption = _connection_lanes(analysis, t0, n)
    plot = svg.connection_timeline(lanes, span, caption)
    return table + _figure(plot, esc(caption) + ". Hover a row for the connection's details.")


def _http(s: dict[str, Any], analysis: Any) -> str:
    h = s["http"]
    if h["requests"] == 0:
        return "<p>No HTTP/1.x requests found.</p>"
    rpc = h["requests_per_connection"]
    cwr = h["connections_with_requests"]
    ka = h["keepalive_timeout_ms"]["closed_by_server"]
    table = _kv([
        ("requests", f"{h['requests']:,} ({h['responses']:,} responses, "
                     f"{h['unanswered_requests']:,} unanswered)"),
        ("connections", f"{cwr:,} carried requests; {h['reused_connections']:,} carried 2 or "
                        f"more ({_ratio(h['reused_share'])})"),
        ("per connection", f"mean {_per(rpc['mean'], cwr, 'requests')}, median "
                           f"{_num(rpc['median'], 1)}, p95 {_num(rpc['p95'])}, "
                           f"max {_num(rpc['max'])}"),
        ("histogram", esc("  ".join(f"{k}:{v:,}" for k, v in
                                    h["requests_per_connection_histogram"].items()))),
        ("reuse ratio", _ratio(h["reuse"])),
        ("exchanges saved", f"{h['exchanges_saved']:,} packets against one connection per "
                            f"request (7 each)"),
        ("exchanges/request", _per(h["exchanges_per_request"], h["requests"], "packets")
         + f" (baseline {h['exchanges_per_request_baseline']})"),
        ("versions", esc(", ".join(f"{k} {v:,}" for k, v in h["versions"].items()), 300)),
        ("pipelined", f"{h['pipelined_requests']:,}"),
        ("idle gap max", f"median {_num(h['idle_gap_ms']['median'], 1)} ms, "
                         f"max {_num(h['idle_gap_ms']['max'], 1)} ms"),
        ("keep-alive closes", f"server after idle median {_num(ka['median'], 1)} ms, "
                              f"max {_num(ka['max'], 1)} ms"),
        ("closes by side", esc(", ".join(f"{k} {v:,}" for k, v in
                                         sorted(h.get("closes_by_side", {}).items())) or "-")),
        ("408 races", f"{h.get('races_408', 0):,}"),
        ("h2c / tunnels", f"{h['h2c_connections']:,} / {h['tunnels']:,}"),
        ("malformed", f"{h['malformed']:,}"),
    ])
    plot = svg.histogram(h["requests_per_connection_histogram"])
    return (table + _figure(plot, f"Connections that carried HTTP requests: {cwr:,}; "
                                  "connections with 10 or more requests share the last bar.")
            + _hosts(analysis.rows("requests"), h["requests"]))


def _hosts(reqs: Sequence[dict], total: int) -> str:
    """The busiest Host headers, with their share of the requests (ties in order
    of first appearance)."""
    counts = Counter(table_columns(reqs, ("host",))[0])
    if None in counts:      # (merged with a Host header of that text, if one came)
        named: dict[str, int] = {}
        for h, n in counts.items():
            h = "(no Host header)" if h is None else h
            named[h] = named.get(h, 0) + n
        counts = Counter(named)
    counts = counts.most_common()
    if not counts:
        return ""
    rows = [[f"<code>{esc(host, 100)}</code>", f"{n:,}", _share(n, total)]
            for host, n in counts[:10]]
    note = f" (top 10 of {len(counts):,})" if len(counts) > 10 else ""
    return f"<h3>Requests by Host{note}</h3>" + _grid(
        ["Host", "requests", "share (requests/all)"], rows, {1, 2})


def _tls(tl: dict[str, Any]) -> str:
    out = _kv([
        ("connections", f"{tl['connections']:,}"),
        ("handshakes", f"full {tl['full']:,}, resumed {tl['resumed']:,}, "
                       f"unknown {tl['unknown']:,}"),
        ("resumption", _ratio(tl["resumption"])),
        ("versions", esc(", ".join(f"{k} {v:,}" for k, v in tl["versions"].items()), 300)),
        ("ALPN", esc(", ".join(f"{k} {v:,}" for k, v in tl["alpn"].items()), 300)),
    ])
    sni = sorted(tl.get("by_sni", {}).items(), key=lambda kv: (-kv[1]["denominator"], kv[0]))
    if sni:
        rows = [[esc(k or "(no SNI)", 80), _ratio(r)] for k, r in sni[:15]]
        note = f" (top 15 of {len(sni):,})" if len(sni) > 15 else ""
        out += f"<h3>Resumption by server name{note}</h3>" + _grid(
            ["server name (SNI)", "resumed (resumed/known)"], rows, {1})
    return out


def _persistence(a: dict[str, Any], analysis: Any, t0: int | None, span: float) -> str:
    rows = [("session key", f"<code>{esc(a['session_key'], 80)}</code>"),
            ("why", esc(a.get("session_key_reason", ""), 300)),
            ("sessions", f"{a['sessions']:,} ({a.get('sessions_with_two_or_more', 0):,} "
                         f"with 2 or more requests)")]
    if a.get("persistence_sessions"):
        rows.append(("persistent sessions", _ratio(a["persistence_sessions"])))
        rows.append(("requests on primary", _ratio(a["persistence_requests"])))
    rows.append(("persistence breaks", f"{a['breaks']:,}" + (
        " (" + esc(", ".join(f"{k} {v:,}" for k, v in a.get("break_causes", {}).items() if v))
        + ")" if a["breaks"] else "")))
    bci = a.get("by_client_ip_ratios")
    if bci:
        rows.append(("by client IP", f"sessions {_ratio(bci['sessions'])}; "
                                     f"requests {_ratio(bci['requests'])}"))
    sides = a.get("sides", {})
    for side in ("client", "backend"):
        sd = sides.get(side)
        if sd:
            reused = sd["requests"] - sd["connections_with_requests"]
            rows.append((f"{side} side", f"{sd['requests']:,} requests on "
                         f"{sd['connections_with_requests']:,} connections, reuse "
                         f"{_share(reused, sd['requests'])}"))
    if a.get("multiplexing_ratio") is not None:
        c, b = (sides["client"]["connections_with_requests"],
                sides["backend"]["connections_with_requests"])
        rows.append(("multiplexing", f"{a['multiplexing_ratio']:.2f} client connections per "
                                     f"backend connection ({c:,}/{b:,})"))
    if a.get("unmatched_requests"):
        rows.append(("unmatched", f"{a['unmatched_requests']:,} client requests not matched "
                                  f"to a backend request"))
    if a.get("health_checks"):
        rows.append(("health checks", f"{a['health_checks']:,} (kept out of client figures)"))
    for note in a.get("notes", []):
        rows.append(("note", esc(note, 300)))
    out = _kv(rows)
    backends = a.get("backends") or []
    colours = _backend_colours(backends)
    if backends:
        total = sum(int(b["requests"] or 0) for b in backends)
        shown = backends[:MAX_BACKEND_BARS]
        table = [[esc(b["backend"], 60), f"{b['requests']:,}", _share(b["requests"], total),
                  f"{b['sessions']:,}", _num(b.get("connections")),
                  _per(b.get("requests_per_connection"), b.get("connections") or 0, "requests")]
                 for b in shown]
        more = (f" (the {len(shown)} busiest of {len(backends):,})"
                if len(backends) > len(shown) else "")
        out += f"<h3>Backends{more}</h3>" + _grid(
            ["backend", "requests", "share (requests/all attributed)", "sessions", "conns",
             "req/conn (requests/conns)"], table, {1, 2, 3, 4, 5})
        out += _figure(svg.backend_load(backends, colours, MAX_BACKEND_BARS),
                       f"Backends shown: {len(shown):,} of {len(backends):,} (busiest first)."
                       " Backend-side connections are counted only where the capture sees "
                       "the balancer-to-server side.")
    lanes, legend, caption = _session_lanes(analysis, t0, colours)
    if lanes:
        out += _figure(svg.session_timeline(lanes, span, caption, legend),
                       esc(caption) + ". Hover a dot row or a break for details.")
    return out


def _top_breaks(a: dict[str, Any], analysis: Any, t0: int | None) -> str:
    top = a.get("top_breaks") or []
    if not top:
        return "<p>No session changed backend.</p>"
    rows = [[f"<code>{esc(b['session'], 60)}</code>", f"{b['requests']:,}", f"{b['breaks']:,}",
             esc(b["backends"], 200), esc(b["cause"], 40)] for b in top[:10]]
    out = (f"<p class=\"muted\">The {len(rows)} sessions with the most breaks, of "
           f"{a['breaks']:,} breaks in all.</p>"
           + _grid(["session", "req", "breaks", "backends", "first cause"], rows, {1, 2}))
    breaks, reqs = analysis.rows("breaks"), analysis.rows("requests")
    brk = breaks[:20]
    if not brk:
        return out
    detail = []
    origin = _origin(analysis, t0)
    for b in brk:
        t = _second(b.get("ts"), origin)
        i = b.get("request_index")
        r = reqs[int(i)] if i is not None and 0 <= int(i) < len(reqs) else {}
        detail.append([_num(t, 3), f"<code>{esc(_na(b.get('session')), 40)}</code>",
                       esc(f"{_na(b.get('from_backend'))} → {_na(b.get('to_backend'))}", 120),
                       esc(b.get("cause") or "unknown", 30),
                       esc(f"{r.get('method') or ''} {r.get('host') or ''} {r.get('uri') or ''}",
                           160), esc(r.get("user_agent") or "", 80),
                       esc(r.get("cookie") or "(no Cookie header)", 160)])
    more = f"the first 20 of {len(breaks):,}" if len(breaks) > 20 else "all"
    return out + f"<h3>Persistence breaks ({more}), with the request that broke</h3>" + _grid(
        ["time (s)", "session", "from → to", "cause", "request", "User-Agent", "Cookie"],
        detail, {0})


def _warnings(warnings: list[str]) -> str:
    if not warnings:
        return '<p class="ok">none</p>'
    return '<ul class="warnings">' + "".join(
        f'<li class="warn">{esc(w, 400)}</li>' for w in warnings) + "</ul>"


# ----------------------------------------------------------------- plot data

def _second(ts: int | None, t0: int | None) -> float | None:
    """A timestamp (ns) → seconds since t0, as pandas' ``total_seconds`` rounds it:
    whole seconds plus the fraction, kept off a whole second beyond 2**53 ns."""
    if ts is None or t0 is None:
        return None
    d = ts - t0
    whole, frac = divmod(d, 10**9)
    v = whole + frac / 10**9
    if frac and abs(d) > 2**53 and abs(whole) < 2**52:
        if v == whole:
            v = math.nextafter(v, math.inf)
        elif v == whole + 1:
            v = math.nextafter(v, -math.inf)
    return v


def _origin(analysis: Any, t0: int | None) -> int | None:
    """Time zero (ns): the first packet, else the first connection's start (None
    when no connection has one), else the epoch."""
    if t0 is not None:
        return int(t0)
    conns = analysis.rows("connections")
    if not conns:
        return 0
    return min((c["first_ts"] for c in conns if c.get("first_ts") is not None), default=None)


def _asc(v: Any) -> tuple[bool, Any]:
    """A sort key part: ascending, nulls last."""
    return (True, 0) if v is None else (False, v)


def _busiest_connection(c: dict) -> tuple[Any, ...]:
    """Most requests, then longest (nulls as 0), then by connection number."""
    return -(c.get("requests") or 0), -(c.get("duration_ns") or 0), _asc(c.get("conn_id"))


def _most_requests(conns: Sequence[dict], n: int) -> Sequence[dict]:
    """The rows that can be among the ``n`` busiest (`_busiest_connection`): those with
    at least as many requests as the n-th most, in their order. Found with C-level
    passes, so the Python sort key then runs on these few instead of on every row."""
    counts = list(map(methodcaller("get", "requests"), conns))
    if None in counts:
        counts = [c or 0 for c in counts]
    least = heapq.nlargest(n, counts)[-1]
    return list(compress(conns, map(ge, counts, repeat(least))))


def _busiest(conns: Sequence[dict], n: int) -> list[dict]:
    """The ``n`` busiest rows, busiest first (`_busiest_connection`; ties in table order)."""
    return heapq.nsmallest(n, _most_requests(conns, n), key=_busiest_connection)


def _connection_lanes(analysis: Any, t0: int | None, n: int) -> tuple[list[svg.ConnLane], str]:
    conns = analysis.rows("connections")
    origin = _origin(analysis, t0)
    if n > MAX_CONNECTION_ROWS:
        conns = _busiest(conns, MAX_CONNECTION_ROWS)
        caption = (f"Showing {len(conns):,} of {n:,} connections: the busiest (most requests), "
                   f"then the longest; rows sorted by start time")
    else:
        caption = f"All {n:,} connections, sorted by start time"
    conns = sorted(conns, key=lambda c: (_asc(c.get("first_ts")), _asc(c.get("conn_id"))))
    shown = {c.get("conn_id") for c in conns}
    busy: dict[int, list[tuple[float, float]]] = {}
    marks: dict[int, list[float]] = {}
    for cid, ts_request, *ends in columns_of(analysis.rows("requests"), "conn_id", "ts_request",
                                             "ts_response_end", "ts_response",
                                             "ts_request_end", where=("conn_id", shown)):
        a = _second(ts_request, origin)
        if a is None:
            continue
        end = next((v for v in ends if v is not None), None)
        b = _second(end, origin)
        marks.setdefault(cid, []).append(a)
        busy.setdefault(cid, []).append((a, b if b is not None and b >= a else a))
    lanes = []
    for row in conns:
        st, en, cl = (_second(row.get(k), origin) for k in ("first_ts", "last_ts", "close_ts"))
        closed_by = row.get("closed_by")
        kind = ("reset" if row.get("close") == "rst" else
                closed_by if closed_by in ("client", "server") else "open")
        cid = int(row["conn_id"])
        idle = row.get("idle_max_ns")
        before = row.get("idle_before_close_ns")
        tip = (f"connection {cid}: {row.get('client_ip')}:{row.get('client_port')} → "
               f"{row.get('server_ip')}:{row.get('server_port')}; "
               f"{row.get('requests') or 0} request(s); "
               f"{_num(st, 3)} s to {_num(en, 3)} s; {svg.CLOSE_STYLE[kind][2]}"
               + (f" at {_num(cl, 3)} s" if cl is not None else "")
               + (f"; longest idle gap {idle / 1e6:,.1f} ms" if idle is not None else "")
               + (f"; idle before close {before / 1e6:,.1f} ms" if before is not None else "")
               + f"; state {row.get('conn_state')} {row.get('history') or ''}")
        lanes.append(svg.ConnLane(label=esc(f"#{cid}"), tooltip=esc(tip, 600),
                                  start=st or 0.0, end=en if en is not None else st or 0.0,
                                  close=kind, close_at=cl, busy=busy.get(cid, []),
                                  marks=marks.get(cid, [])))
    return lanes, caption


def _backend_colours(backends: list[dict[str, Any]]) -> dict[str, str]:
    return {str(b["backend"]): svg.BACKEND_COLOURS[i]
            for i, b in enumerate(backends[:len(svg.BACKEND_COLOURS)])}


def _top_session(s: dict) -> tuple[Any, ...]:
    """Most breaks, then most requests (nulls as 0), then by start and key."""
    return (-(s.get("breaks") or 0), -(s.get("requests") or 0), _asc(s.get("first_ts")),
            _asc(s.get("session")))


def _session_lanes(analysis: Any, t0: int | None, colours: dict[str, str]
                   ) -> tuple[list[svg.SessionLane], list[tuple[str, str]], str]:
    sessions = analysis.rows("sessions")
    n = len(sessions)
    if not n:
        return [], [], ""
    origin = _origin(analysis, t0)
    ranked = heapq.nsmallest(MAX_SESSION_ROWS, sessions, key=_top_session)
    with_breaks = sum(1 for s in ranked if (s.get("breaks") or 0) > 0)
    what = (f"Showing {len(ranked):,} of {n:,} sessions" if n > len(ranked)
            else f"All {n:,} sessions")
    caption = (f"{what}: those with persistence breaks first ({with_breaks:,} shown, most "
               f"breaks first), then the sessions with the most requests")
    keys = {s.get("session") for s in ranked}
    dots: dict[str, list[tuple[float, str]]] = {}
    used: dict[str, str] = {}
    for sess, ts_request, backend in columns_of(analysis.rows("requests"), "session",
                                                "ts_request", "backend",
                                                where=("session", keys)):
        t = _second(ts_request, origin)
        if t is None:
            continue
        name = "unknown backend" if backend is None else str(backend)
        colour = colours.get(name, "#d0d0d0" if backend is None else svg.OTHER_COLOUR)
        used[name if name in colours or backend is None else "other backends"] = colour
        dots.setdefault(sess, []).append((t, colour))
    marks: dict[str, list[tuple[float, str]]] = {}
    for b in analysis.rows("breaks"):
        sess = b.get("session")
        if sess not in keys:
            continue
        t = _second(b.get("ts"), origin)
        if t is not None:
            tip = (f"persistence break at {t:,.3f} s: {_na(b.get('from_backend'))} → "
                   f"{_na(b.get('to_backend'))} ({b.get('cause') or 'unknown'})")
            marks.setdefault(sess, []).append((t, esc(tip, 400)))
    lanes = []
    for row in ranked:
        sess = row.get("session")
        tip = (f"session {sess} ({row.get('key')}): {row.get('requests') or 0} request(s), "
               f"{row.get('backends') or 0} backend(s), primary {row.get('primary_backend')}, "
               f"{row.get('breaks') or 0} break(s), {row.get('client_ips') or 0} "
               f"client address(es)")
        lanes.append(svg.SessionLane(label=esc(sess, 24), tooltip=esc(tip, 600),
                                     dots=dots.get(sess, []), breaks=marks.get(sess, [])))
    order = {name: i for i, name in enumerate(colours)}
    legend = sorted(used.items(), key=lambda kv: order.get(kv[0], len(order)))
    return lanes, legend, caption
