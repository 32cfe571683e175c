"""Rendering only: the terminal report (rich), the JSON report, and report files.

Every figure comes from ``Analysis.summary``; nothing is computed here but
formatting. Strings that came from a capture are escaped for the terminal
(no escape sequences pass through) and for rich markup.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from .fmt import num, pct

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(text: Any, limit: int = 200) -> str:
    """A capture string made safe for a terminal: control characters shown as \\xNN."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def _esc(text: Any, limit: int = 200) -> str:
    from rich.markup import escape
    return escape(safe(text, limit))


_pct = pct
_num = num


def _ratio(r: dict[str, Any]) -> str:
    return f"{_pct(r['value'])} ({r['numerator']:,}/{r['denominator']:,})"


def render(analysis: Any, fmt: str, color: bool = False) -> str:
    if fmt == "json":
        return json.dumps(analysis.summary, indent=2, sort_keys=False) + "\n"
    return render_text(analysis, color=color)


def render_text(analysis: Any, color: bool = False, width: int = 80) -> str:
    from rich.console import Console
    from rich.table import Table

    s = analysis.summary
    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=color, no_color=not color,
                  color_system="standard" if color else None, highlight=False,
                  emoji=False)

    def section(title: str) -> None:
        con.print()
        con.print(f"[bold]{title}[/bold]")

    def kv(rows: list[tuple[str, str]]) -> None:
        t = Table.grid(padding=(0, 2))
        t.add_column(style="cyan", no_wrap=True)
        t.add_column(overflow="fold")
        for k, v in rows:
            t.add_row(k, v)
        con.print(t)

    cap = s["capture"]
    section("Capture")
    files = ", ".join(_esc(Path(f["path"]).name, 60) + f" ({f['format']}"
                      + (", gzip" if f["compressed"] else "") + ")" for f in cap["files"])
    kv([
        ("files", files),
        ("packets", f"{cap['packets']:,} ({cap['bytes']:,} bytes on the wire)"),
        ("duration", f"{cap['duration_s']:.3f} s"),
        ("link types", ", ".join(f"{k}: {v:,}" for k, v in cap["link_types"].items()) or "-"),
        ("TCP / UDP", f"{cap['tcp_packets']:,} / {cap['udp_packets']:,} packets; "
                      f"{s['udp']['flows']:,} UDP flows"),
    ] + _redacted(s))

    t = s["tcp"]
    section("TCP connections")
    n = t["connections"]
    kv([
        ("connections", f"{n:,}"),
        ("complete handshakes", f"{t['handshakes_complete']:,}"
         + (f"  (RTT median {_num(t['handshake_rtt_ms']['median'], 3)} ms, "
            f"p95 {_num(t['handshake_rtt_ms']['p95'], 3)} ms)"
            if t["handshake_rtt_ms"]["median"] is not None else "")),
        ("closes", f"fin {t['closes']['fin']:,}, rst {t['closes']['rst']:,}, "
                   f"open {t['closes']['open']:,}"),
        ("closed first by", f"client {t['closed_by']['client']:,}, "
                            f"server {t['closed_by']['server']:,}"),
        ("setup packets", f"{t['setup_packets']:,}"),
        ("teardown packets", f"{t['teardown_packets']:,}"),
        ("exchanges/connection", _num(t["exchanges_per_connection"])),
        ("retransmissions", f"{t['retransmissions']:,}"),
        ("missed bytes", f"{t['missed_bytes']:,} in {t['connections_with_gaps']:,} connections"),
        ("states (Zeek)", ", ".join(f"{k} {v:,}" for k, v in t["conn_states"].items()) or "-"),
    ])

    h = s["http"]
    section("HTTP reuse")
    if h["requests"] == 0:
        con.print("No HTTP/1.x requests found.")
    else:
        rpc = h["requests_per_connection"]
        kv([
            ("requests", f"{h['requests']:,} ({h['responses']:,} responses, "
                         f"{h['unanswered_requests']:,} unanswered)"),
            ("connections", f"{h['connections_with_requests']:,} carried requests; "
                            f"{h['reused_connections']:,} carried 2 or more "
                            f"({_ratio(h['reused_share'])})"),
            ("per connection", f"mean {_num(rpc['mean'])}, median {_num(rpc['median'], 1)}, "
                               f"p95 {_num(rpc['p95'])}, max {_num(rpc['max'])}"),
            ("histogram", "  ".join(f"{k}:{v:,}" for k, v in
                                    h["requests_per_connection_histogram"].items())),
            ("reuse ratio", _ratio(h["reuse"])),
            ("exchanges saved", f"{h['exchanges_saved']:,} packets against one connection "
                                f"per request (7 each)"),
            ("exchanges/request", _num(h["exchanges_per_request"])),
            ("versions", ", ".join(f"{_esc(k, 20)} {v:,}" for k, v in h["versions"].items())),
            ("pipelined", f"{h['pipelined_requests']:,}"),
            ("idle gap max", f"median {_num(h['idle_gap_ms']['median'], 1)} ms, "
                             f"max {_num(h['idle_gap_ms']['max'], 1)} ms"),
            ("keep-alive closes", "server after idle median "
             f"{_num(h['keepalive_timeout_ms']['closed_by_server']['median'], 1)} ms, "
             f"max {_num(h['keepalive_timeout_ms']['closed_by_server']['max'], 1)} ms"),
            ("h2c / tunnels", f"{h['h2c_connections']:,} / {h['tunnels']:,}"),
            ("malformed", f"{h['malformed']:,}"),
        ])

    tl = s["tls"]
    if tl["connections"]:
        section("TLS")
        kv([
            ("connections", f"{tl['connections']:,}"),
            ("handshakes", f"full {tl['full']:,}, resumed {tl['resumed']:,}, "
                           f"unknown {tl['unknown']:,}"),
            ("resumption", _ratio(tl["resumption"])),
            ("versions", ", ".join(f"{_esc(k, 20)} {v:,}" for k, v in tl["versions"].items())),
            ("ALPN", ", ".join(f"{_esc(k, 20)} {v:,}" for k, v in tl["alpn"].items())),
        ])

    a = s.get("affinity")
    if a is not None:
        _render_affinity(con, a, analysis, section, kv)

    section("Warnings")
    if s["warnings"]:
        for w in s["warnings"]:
            con.print(f"[yellow]![/yellow] {_esc(w, 300)}")
    else:
        con.print("none")
    return buf.getvalue()


def _redacted(s: dict[str, Any]) -> list[tuple[str, str]]:
    from ..redact import describe
    note = describe(s)
    return [("redacted", note)] if note else []


def _render_affinity(con: Any, a: dict[str, Any], analysis: Any, section: Any, kv: Any) -> None:
    from rich.table import Table

    section("Persistence and backends")
    rows = [
        ("session key", _esc(a["session_key"], 80)),
        ("why", _esc(a.get("session_key_reason", ""), 200)),
        ("sessions", f"{a['sessions']:,}"),
    ]
    if a.get("persistence_sessions"):
        rows.append(("persistent sessions", _ratio(a["persistence_sessions"])))
        rows.append(("requests on primary", _ratio(a["persistence_requests"])))
    rows.append(("persistence breaks", f"{a['breaks']:,}"))
    bci = a.get("by_client_ip_ratios")
    if bci:
        rows.append(("by client IP", f"sessions {_ratio(bci['sessions'])}; "
                                     f"requests {_ratio(bci['requests'])}"))
    for side in ("client", "backend"):
        sd = a.get("sides", {}).get(side)
        if sd:
            rows.append((f"{side} side", f"{sd['requests']:,} requests on "
                         f"{sd['connections_with_requests']:,} connections, reuse "
                         f"{_pct(sd['reuse_ratio'])}"))
    if a.get("multiplexing_ratio") is not None:
        rows.append(("multiplexing", f"{a['multiplexing_ratio']:.2f} client connections per "
                                     f"backend connection"))
    if a.get("unmatched_requests"):
        rows.append(("unmatched", f"{a['unmatched_requests']:,} client requests not matched "
                                  f"to a backend request"))
    if a.get("health_checks"):
        rows.append(("health checks", f"{a['health_checks']:,} (kept out of client figures)"))
    for note in a.get("notes", []):
        rows.append(("note", _esc(note, 300)))
    kv(rows)
    backends = a.get("backends") or []
    if backends:
        t = Table(box=None, padding=(0, 1), header_style="bold")
        for col in ("backend", "requests", "share", "sessions", "conns", "req/conn"):
            t.add_column(col, justify="left" if col == "backend" else "right")
        for b in backends[:12]:
            t.add_row(_esc(b["backend"], 32), f"{b['requests']:,}", _pct(b["share"]),
                      f"{b['sessions']:,}", _num(b.get("connections")),
                      _num(b.get("requests_per_connection")))
        con.print(t)
    top = a.get("top_breaks") or []
    if top:
        con.print("Sessions with persistence breaks:")
        t = Table(box=None, padding=(0, 1), header_style="bold")
        for col in ("session", "req", "breaks", "backends", "first cause"):
            t.add_column(col, justify="left" if col in ("session", "first cause") else "right")
        for b in top[:10]:
            t.add_row(_esc(b["session"], 28), f"{b['requests']:,}", f"{b['breaks']:,}",
                      _esc(b["backends"], 40), _esc(b["cause"], 24))
        con.print(t)


def default_path(files: tuple[str, ...] | list[str], folder: Path, ext: str) -> Path:
    """reports/<first capture's name>.<ext>; the name is sanitised to stay in ``folder``."""
    first = files[0] if files else "capture"
    stem = "stdin" if first == "-" else Path(first).name
    for suffix in (".gz", ".pcapng", ".pcap", ".cap"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or "capture"
    return folder / f"{stem}.{ext}"


def write_html(analysis: Any, target: Path) -> None:
    from .html import render_html
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(analysis), encoding="utf-8")


def write_files(analysis: Any, files: tuple[str, ...], folder: Path) -> list[Path]:
    """Write reports/<name>.json and reports/<name>.html; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    js = default_path(files, folder, "json")
    js.write_text(render(analysis, "json"), encoding="utf-8")
    html = default_path(files, folder, "html")
    write_html(analysis, html)
    return [js, html]
