"""Compare two analyses (before / after a change): ``compare(a, b) -> dict``, ``format_text``.

Pure: reads ``Analysis.summary`` (and, for the keep-alive timeout's
observation count, the connections table); no I/O. Every figure is given
before, after and as a delta (after - before; for ratios a fraction, so
0.05 is 5 percentage points), with a ``significant`` flag and, when set, a
short ``reason``.

The rule (``RULE``; also in docs/figures.md, "Comparing two captures"):

- **ratio** (a share with its counts): significant when it moves by at least
  5 percentage points and both denominators are at least 20; or when it is
  measured on one side only, with a denominator of at least 20 there.
- **mean** (requests per connection, exchanges per request, multiplexing):
  significant when it moves by at least 20 % of its before value and both
  counts (connections, requests) are at least 20.
- **time** (the observed keep-alive timeout): significant when it moves by
  at least 1000 ms and at least 20 % with at least 3 observations on each
  side; or when it is observed (3 or more times) on one side only.
- **count** (requests, exchanges saved): never significant by itself; counts
  grow with the capture's length, the ratios above carry the signal.
- **backend**: significant when it appears (serves requests after, none
  before) or disappears, or when its share of the attributed requests moves
  by at least 5 points with at least 20 attributed requests on each side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

SCHEMA_VERSION = 1
RULE: dict[str, Any] = {
    "ratio_points": 5.0, "min_denominator": 20,
    "mean_relative": 0.20, "min_count": 20,
    "time_ms": 1000.0, "time_relative": 0.20, "min_time_observations": 3,
    "backend_share_points": 5.0, "min_backend_requests": 20,
}
_EPS = 1e-9


def _ratio(num: int, den: int) -> dict[str, Any]:
    return {"numerator": num, "denominator": den, "value": num / den if den else None}


def _aff(a: Any) -> dict[str, Any]:
    return a.summary.get("affinity") or {}


def _side_reuse(side: str) -> Callable[[Any], dict[str, Any] | None]:
    def get(a: Any) -> dict[str, Any] | None:
        sd = _aff(a).get("sides", {}).get(side)
        if not sd:
            return None
        return _ratio(sd["requests"] - sd["connections_with_requests"], sd["requests"])
    return get


def _closes(who: str) -> Callable[[Any], dict[str, Any]]:
    def get(a: Any) -> dict[str, Any]:
        cbs = a.summary["http"].get("closes_by_side", {})
        return _ratio(cbs.get(who, 0), sum(cbs.values()))
    return get


def _breaks(a: Any) -> dict[str, Any] | None:
    af = _aff(a)
    return _ratio(af["breaks"], af["requests"]) if af else None


def _rpc(a: Any) -> dict[str, Any]:
    h = a.summary["http"]
    return {"value": h["requests_per_connection"]["mean"],
            "count": h["connections_with_requests"]}


def _epr(a: Any) -> dict[str, Any]:
    h = a.summary["http"]
    return {"value": h["exchanges_per_request"], "count": h["requests"]}


def _mux(a: Any) -> dict[str, Any] | None:
    af = _aff(a)
    if af.get("multiplexing_ratio") is None:
        return None
    return {"value": af["multiplexing_ratio"],
            "count": af["sides"]["backend"]["connections_with_requests"]}


def _keepalive(a: Any) -> dict[str, Any]:
    c = a.connections
    n = int(((c["closed_by"] == "server") & c["idle_before_close_ns"].notna()).sum())
    value = a.summary["http"]["keepalive_timeout_ms"]["closed_by_server"]["max"]
    return {"value": value, "count": n}


def _resumption(a: Any) -> dict[str, Any]:
    return a.summary["tls"]["resumption"]


# (name, label, kind, getter); the order is the report's
FIGURES: list[tuple[str, str, str, Callable[[Any], dict[str, Any] | None]]] = [
    ("requests", "requests", "count", lambda a: {"value": a.summary["http"]["requests"]}),
    ("persistence_sessions", "persistent sessions", "ratio",
     lambda a: _aff(a).get("persistence_sessions")),
    ("persistence_requests", "requests on primary", "ratio",
     lambda a: _aff(a).get("persistence_requests")),
    ("breaks", "breaks per request", "ratio", _breaks),
    ("reuse", "reuse ratio", "ratio", lambda a: a.summary["http"]["reuse"]),
    ("reuse_client_side", "reuse, client side", "ratio", _side_reuse("client")),
    ("reuse_backend_side", "reuse, backend side", "ratio", _side_reuse("backend")),
    ("requests_per_connection", "requests/connection", "mean", _rpc),
    ("multiplexing", "multiplexing", "mean", _mux),
    ("exchanges_per_request", "exchanges/request", "mean", _epr),
    ("exchanges_saved", "exchanges saved", "count",
     lambda a: {"value": a.summary["http"]["exchanges_saved"]}),
    ("closed_by_client", "closed by client", "ratio", _closes("client")),
    ("closed_by_server", "closed by server", "ratio", _closes("server")),
    ("still_open", "still open", "ratio", _closes("open")),
    ("keepalive_timeout", "keep-alive timeout", "time", _keepalive),
    ("tls_resumption", "TLS resumption", "ratio", _resumption),
]


def _judge(kind: str, b: dict[str, Any] | None, a: dict[str, Any] | None
           ) -> tuple[float | None, bool, str | None]:
    """(delta, significant, reason) for one figure under ``RULE``."""
    bv = b.get("value") if b else None
    av = a.get("value") if a else None
    delta = av - bv if av is not None and bv is not None else None
    if kind == "ratio":
        bn = b["denominator"] if b else 0
        an = a["denominator"] if a else 0
        mind = RULE["min_denominator"]
        if delta is not None:
            pts = 100 * delta
            if bn >= mind and an >= mind and abs(pts) + _EPS >= RULE["ratio_points"]:
                return delta, True, f"{pts:+.1f} pts (n = {bn:,} before, {an:,} after)"
        elif bv is None and av is not None and an >= mind:
            return delta, True, f"measured after only (n = {an:,})"
        elif av is None and bv is not None and bn >= mind:
            return delta, True, f"no longer measured (n = {bn:,} before)"
        return delta, False, None
    if kind == "mean":
        if delta is None or not bv:
            return delta, False, None
        rel = delta / bv
        bc, ac = b["count"], a["count"]  # type: ignore[index]
        if bc >= RULE["min_count"] and ac >= RULE["min_count"] \
                and abs(rel) + _EPS >= RULE["mean_relative"]:
            return delta, True, f"{100 * rel:+.0f}% (n = {bc:,} before, {ac:,} after)"
        return delta, False, None
    if kind == "time":
        bc = b["count"] if b else 0
        ac = a["count"] if a else 0
        mino = RULE["min_time_observations"]
        if delta is not None:
            big = abs(delta) + _EPS >= RULE["time_ms"] and bv \
                and abs(delta / bv) + _EPS >= RULE["time_relative"]
            if bc >= mino and ac >= mino and big:
                return delta, True, (f"{delta:+,.0f} ms ({100 * delta / bv:+.0f}%; "  # type: ignore[operator]
                                     f"n = {bc:,} before, {ac:,} after)")
        elif bv is None and av is not None and ac >= mino:
            return delta, True, f"observed after only (n = {ac:,})"
        elif av is None and bv is not None and bc >= mino:
            return delta, True, f"no longer observed (n = {bc:,} before)"
        return delta, False, None
    return delta, False, None          # counts


def _requests(row: dict[str, Any]) -> str:
    n = row["requests"]
    return f"{n:,} request" + ("" if n == 1 else "s")


def _backends(before: Any, after: Any) -> list[dict[str, Any]]:
    rows_b = {r["backend"]: r for r in _aff(before).get("backends", [])}
    rows_a = {r["backend"]: r for r in _aff(after).get("backends", [])}
    tot_b = sum(r["requests"] for r in rows_b.values())
    tot_a = sum(r["requests"] for r in rows_a.values())
    names = list(rows_b) + [n for n in rows_a if n not in rows_b]
    out = []
    for name in names:
        rb, ra = rows_b.get(name), rows_a.get(name)
        b = {"requests": rb["requests"], "share": rb["requests"] / tot_b} if rb else None
        a = {"requests": ra["requests"], "share": ra["requests"] / tot_a} if ra else None
        sb = b["share"] if b else 0.0
        sa = a["share"] if a else 0.0
        delta = sa - sb
        significant, reason = False, None
        if rb is None and ra is not None and ra["requests"]:
            significant, reason = True, f"appeared ({_requests(ra)} after, none before)"
        elif ra is None and rb is not None and rb["requests"]:
            significant, reason = True, f"disappeared ({_requests(rb)} before, none after)"
        elif tot_b >= RULE["min_backend_requests"] and tot_a >= RULE["min_backend_requests"] \
                and abs(100 * delta) + _EPS >= RULE["backend_share_points"]:
            significant = True
            reason = f"share {100 * delta:+.1f} pts (of {tot_b:,} before, {tot_a:,} after)"
        out.append({"backend": name, "before": b, "after": a, "delta_share": delta,
                    "significant": significant, "reason": reason})
    return out


def _capture(a: Any) -> dict[str, Any]:
    cap = a.summary["capture"]
    return {"files": [Path(f["path"]).name for f in cap["files"]],
            "packets": cap["packets"], "duration_s": cap["duration_s"],
            "session_key": _aff(a).get("session_key")}


def compare(before: Any, after: Any) -> dict[str, Any]:
    """Compare two :class:`~pcapstats.Analysis` objects; see the module doc for the rule."""
    figures = []
    for name, label, kind, get in FIGURES:
        b, a = get(before), get(after)
        if b is None and a is None:
            continue
        delta, significant, reason = _judge(kind, b, a)
        figures.append({"name": name, "label": label, "kind": kind, "before": b, "after": a,
                        "delta": delta, "significant": significant, "reason": reason})
    backends = _backends(before, after)
    notes = []
    kb, ka = _capture(before)["session_key"], _capture(after)["session_key"]
    if kb != ka:
        notes.append(f"the session key differs ({kb} before, {ka} after): persistence "
                     f"figures count different things; give both --session-key")
    for tag, an in (("before", before), ("after", after)):
        if an.summary.get("warnings"):
            notes.append(f"the {tag} capture has {len(an.summary['warnings'])} warning(s); "
                         f"see its report")
    return {
        "schema_version": SCHEMA_VERSION,
        "before": _capture(before), "after": _capture(after),
        "rule": dict(RULE),
        "figures": figures,
        "backends": backends,
        "significant": [f["name"] for f in figures if f["significant"]]
                       + [f"backend:{b['backend']}" for b in backends if b["significant"]],
        "notes": notes,
    }


# ----------------------------------------------------------------- text

WIDTH = 80
_COLS = (19, 20, 20)          # label, before, after; the change takes the rest


def _fit(s: str, width: int) -> str:
    return s if len(s) <= width else s[:width - 1] + "…"


def _value(kind: str, v: dict[str, Any] | None, width: int) -> str:
    if v is None or v.get("value") is None:
        return "n/a"
    x = v["value"]
    if kind == "ratio":
        for s in (f"{100 * x:.1f}% ({v['numerator']:,}/{v['denominator']:,})",
                  f"{100 * x:.1f}% ({v['numerator']}/{v['denominator']})",
                  f"{100 * x:.1f}% (n={v['denominator']})"):
            if len(s) <= width:
                return s
        return _fit(f"{100 * x:.1f}%", width)
    if kind == "mean":
        return _fit(f"{x:,.2f} (n={v['count']:,})", width)
    if kind == "time":
        return _fit(f"{x:,.0f} ms (n={v['count']:,})", width)
    return _fit(f"{x:,}", width)


def _change(kind: str, f: dict[str, Any]) -> str:
    d = f["delta"]
    if d is None:
        return "-"
    if abs(d) < _EPS:
        return "="
    if kind == "ratio":
        return f"{100 * d:+.1f} pts"
    if kind == "mean":
        bv = f["before"]["value"]
        return f"{d:+,.2f} ({100 * d / bv:+.0f}%)" if bv else f"{d:+,.2f}"
    if kind == "time":
        return f"{d:+,.0f} ms"
    return f"{d:+,}"


def _row(mark: str, cells: list[str], widths: tuple[int, ...]) -> str:
    parts = [_fit(c, w).ljust(w) for c, w in zip(cells, widths)]
    rest = WIDTH - 2 - sum(widths) - len(widths)
    line = f"{mark:<2}" + " ".join(parts) + " " + _fit(cells[-1], rest)
    return line.rstrip()


def _files(tag: str, c: dict[str, Any]) -> str:
    tail = f" ({c['packets']:,} packets, {c['duration_s']:.1f} s)"
    names = ", ".join(c["files"]) or "-"
    return f"{tag:<7}" + _fit(names, WIDTH - 7 - len(tail)) + tail


def _wrap(prefix: str, text: str) -> list[str]:
    import textwrap
    return textwrap.wrap(text, WIDTH, initial_indent=prefix, subsequent_indent="  ") or [prefix]


def format_text(cmp: dict[str, Any]) -> str:
    """The comparison as plain text, at most 80 columns; ``!`` marks changes that matter."""
    lines = ["Comparison", _files("before", cmp["before"]), _files("after", cmp["after"]), ""]
    lines.append(_row("", ["figure", "before", "after", "change"], _COLS))
    for f in cmp["figures"]:
        lines.append(_row("!" if f["significant"] else "",
                          [f["label"], _value(f["kind"], f["before"], _COLS[1]),
                           _value(f["kind"], f["after"], _COLS[2]), _change(f["kind"], f)],
                          _COLS))
    if cmp["backends"]:
        bw = (25, 17, 17)
        lines += ["", _row("", ["backend", "before", "after", "share change"], bw)]
        for b in cmp["backends"]:
            cells = [b["backend"]]
            for side in ("before", "after"):
                v = b[side]
                cells.append(f"{v['requests']:,} ({100 * v['share']:.1f}%)" if v else "-")
            if b["before"] is None:
                cells.append("appeared")
            elif b["after"] is None:
                cells.append("disappeared")
            else:
                d = 100 * b["delta_share"]
                cells.append("=" if abs(d) < _EPS else f"{d:+.1f} pts")
            lines.append(_row("!" if b["significant"] else "", cells, bw))
    lines.append("")
    sig = [f for f in cmp["figures"] if f["significant"]]
    sigb = [b for b in cmp["backends"] if b["significant"]]
    if sig or sigb:
        lines.append("Changes that matter:")
        for f in sig:
            lines += _wrap("! ", f"{f['label']}: {f['reason']}")
        for b in sigb:
            lines += _wrap("! ", f"backend {b['backend']}: {b['reason']}")
    else:
        lines.append("No change that matters.")
    lines += _wrap("", "Rule (docs/figures.md): a ratio moving 5 pts or more with 20 or "
                       "more in each denominator; a mean moving 20% or more with 20 or more "
                       "counted on each side; the keep-alive timeout moving 1 s and 20% or "
                       "more (3 or more closes on each side); a backend appearing, "
                       "disappearing, or its share moving 5 pts or more.")
    for note in cmp["notes"]:
        lines += _wrap("note: ", note)
    return "\n".join(lines) + "\n"
