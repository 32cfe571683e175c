"""Inline SVG plots for the HTML report: plain Python, no plotting library.

Every function takes plain data (numbers, strings, lists) and returns one
``<svg>`` element as a string; the HTML report places it inline, so the page
needs no script, no font and no network. Text that came from a capture is
passed through :func:`esc` (HTML/XML escaping with quotes, control and bidi
characters made visible) before it lands in text, attributes or ``<title>``
tooltips. Colours, classes and ids are never built from capture strings.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# Controls, DEL/C1, and bidi overrides (a capture must not reorder the page's text).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# Backend colours (Tableau 10 without its red, which marks persistence breaks).
BACKEND_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                   "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#7b4173")
OTHER_COLOUR = "#7f7f7f"
BREAK_COLOUR = "#d62728"
BUSY_COLOUR = "#9ecae1"
MARK_COLOUR = "#08306b"
IDLE_COLOUR = "#b0b0b0"
# Who closed a connection: colour and marker shape.
CLOSE_STYLE: dict[str, tuple[str, str, str]] = {
    "client": ("#2ca02c", "circle", "closed by the client (first FIN)"),
    "server": ("#ff7f0e", "square", "closed by the server (first FIN)"),
    "reset": ("#d62728", "cross", "reset (RST seen)"),
    "open": ("#7f7f7f", "arrow", "still open at the end of the capture"),
}


def esc(text: Any, limit: int = 200) -> str:
    """A string made safe for HTML text, attribute values and SVG <title>s."""
    s = "" if text is None else str(text)
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    s = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                    else f"\\u{ord(m.group()):04x}", s)
    return html.escape(s, quote=True)


def _f(v: float) -> str:
    """A coordinate: short and locale-free."""
    return f"{v:.1f}".rstrip("0").rstrip(".") if math.isfinite(v) else "0"


def nice_ticks(lo: float, hi: float, target: int = 6, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, target)
    if integer:
        raw = max(raw, 1.0)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def tick_label(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.6g}" if abs(v) >= 1 else f"{v:.6g}"


def time_unit(span_s: float) -> tuple[float, str]:
    """(divisor, unit) to show times of a capture lasting ``span_s`` seconds."""
    if span_s < 2:
        return 1e-3, "ms"
    if span_s > 2 * 3600:
        return 3600.0, "h"
    if span_s > 600:
        return 60.0, "min"
    return 1.0, "s"


class Figure:
    """An SVG canvas with a title, a legend row and a plot area."""

    def __init__(self, width: int, height: int, title: str, desc: str) -> None:
        self.width, self.height = width, height
        self.title, self.desc = title, desc
        self.parts: list[str] = []

    def add(self, part: str) -> None:
        self.parts.append(part)

    def text(self, x: float, y: float, s: str, size: int = 12, anchor: str = "start",
             weight: str = "normal", fill: str = "#222", rotate: bool = False) -> None:
        """Text ``s`` must already be escaped (use :func:`esc`)."""
        rot = f' transform="rotate(-90 {_f(x)} {_f(y)})"' if rotate else ""
        self.add(f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}"{rot}>{s}</text>')

    def legend(self, items: Sequence[tuple[str, str]], x: float, y: float,
               max_x: float | None = None) -> float:
        """Legend entries (swatch SVG drawn at (0,0)-(12,12), escaped label); returns next y."""
        cx, cy = x, y
        limit = max_x if max_x is not None else self.width - 10
        for swatch, label in items:
            w = 22 + 6.6 * len(html.unescape(label)) + 18
            if cx + w > limit and cx > x:
                cx, cy = x, cy + 18
            self.add(f'<g transform="translate({_f(cx)} {_f(cy)})">{swatch}'
                     f'<text x="18" y="10.5" font-size="12" fill="#222">{label}</text></g>')
            cx += w
        return cy + 18

    def x_axis(self, x0: float, x1: float, y: float, lo: float, hi: float, label: str,
               grid_to: float | None = None, divisor: float = 1.0, labels_above: bool = False,
               show_label: bool = True, integer: bool = False) -> None:
        """A horizontal axis for values lo..hi drawn from x0 to x1 at height y."""
        self.add(f'<line x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x1)}" y2="{_f(y)}" stroke="#444"/>')
        span = (hi - lo) or 1.0
        for t in nice_ticks(lo / divisor, hi / divisor, integer=integer):
            x = x0 + (t * divisor - lo) / span * (x1 - x0)
            if x < x0 - 0.5 or x > x1 + 0.5:
                continue
            d = -5 if labels_above else 5
            self.add(f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(x)}" y2="{_f(y + d)}" '
                     f'stroke="#444"/>')
            if grid_to is not None:
                self.add(f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(x)}" y2="{_f(grid_to)}" '
                         f'stroke="#e4e4e4"/>')
            self.text(x, y - 8 if labels_above else y + 17, tick_label(t), size=11,
                      anchor="middle", fill="#444")
        if show_label:
            self.text((x0 + x1) / 2, y - 24 if labels_above else y + 34, label, anchor="middle")

    def y_label(self, x: float, top: float, bottom: float, label: str) -> None:
        """A rotated axis label centred on top..bottom (see :func:`body_height`)."""
        self.text(x, (top + bottom) / 2, label, anchor="middle", rotate=True)

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'font-family="{FONT}"><title>{esc(self.title)}</title>'
                f'<desc>{esc(self.desc, 600)}</desc>'
                f'<rect width="100%" height="100%" fill="#fff"/>'
                f'<text x="10" y="22" font-size="15" font-weight="bold" fill="#111">'
                f'{esc(self.title)}</text>' + "".join(self.parts) + "</svg>")


def body_height(rows: int, row_h: float, y_label: str) -> float:
    """Height of a plot area: its rows, but tall enough for its rotated axis label."""
    return max(rows * row_h, 7.0 * len(y_label) + 10)


def swatch(colour: str, shape: str = "rect", opacity: float = 1.0) -> str:
    """A 12x12 legend swatch."""
    op = f' fill-opacity="{opacity}"' if opacity != 1.0 else ""
    if shape == "line":
        return f'<line x1="0" y1="6" x2="12" y2="6" stroke="{colour}" stroke-width="1.5"/>'
    if shape == "tick":
        return f'<line x1="6" y1="0" x2="6" y2="12" stroke="{colour}" stroke-width="1.5"/>'
    return marker(shape, 6, 6, colour, 5) if shape != "rect" else \
        f'<rect x="0" y="0" width="12" height="12" fill="{colour}"{op}/>'


def marker(shape: str, x: float, y: float, colour: str, r: float) -> str:
    """A close marker (circle, square, cross or arrow) centred at (x, y)."""
    if shape == "circle":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" fill="{colour}"/>'
    if shape == "square":
        return (f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{_f(2 * r)}" '
                f'height="{_f(2 * r)}" fill="{colour}"/>')
    if shape == "cross":
        return (f'<path d="M{_f(x - r)} {_f(y - r)}L{_f(x + r)} {_f(y + r)}M{_f(x - r)} '
                f'{_f(y + r)}L{_f(x + r)} {_f(y - r)}" stroke="{colour}" stroke-width="2.2"/>')
    if shape == "break":
        return (f'<path d="M{_f(x)} {_f(y - r - 2)}V{_f(y + r + 2)}" stroke="{colour}" '
                f'stroke-width="2.5"/><path d="M{_f(x - r)} {_f(y - r - 3)}h{_f(2 * r)}'
                f'l{_f(-r)} {_f(r)}z" fill="{colour}"/>')
    return (f'<path d="M{_f(x - r)} {_f(y - r)}L{_f(x + r)} {_f(y)}L{_f(x - r)} {_f(y + r)}z" '
            f'fill="{colour}"/>')


# ----------------------------------------------------------------- histogram

def histogram(hist: dict[str, int]) -> str:
    """Connections per number of requests they carried ("1".."9", "10+")."""
    keys = list(hist)
    counts = [int(hist[k]) for k in keys]
    fig = Figure(720, 330, "Requests per connection",
                 "Histogram: how many connections carried 1, 2, ... 10 or more HTTP requests.")
    reused, single = "#1f77b4", "#aec7e8"
    fig.legend([(swatch(single), "1 request (not reused)"),
                (swatch(reused), "2 or more requests (reused)")], 70, 34)
    x0, x1, y0, y1 = 70.0, 700.0, 70.0, 260.0
    top = max(counts) if counts else 1
    ticks = nice_ticks(0, top, 5, integer=True)
    ymax = max(ticks[-1], top) or 1
    for t in ticks:
        y = y1 - t / ymax * (y1 - y0)
        fig.add(f'<line x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x1)}" y2="{_f(y)}" stroke="#e4e4e4"/>')
        fig.text(x0 - 6, y + 4, tick_label(t), size=11, anchor="end", fill="#444")
    n = max(1, len(keys))
    slot = (x1 - x0) / n
    for i, (k, c) in enumerate(zip(keys, counts)):
        h = c / ymax * (y1 - y0)
        x = x0 + i * slot + slot * 0.12
        colour = single if k == "1" else reused
        fig.add(f'<g><title>{esc(k)} request(s): {c:,} connection(s)</title>'
                f'<rect x="{_f(x)}" y="{_f(y1 - h)}" width="{_f(slot * 0.76)}" '
                f'height="{_f(h)}" fill="{colour}"/></g>')
        fig.text(x + slot * 0.38, y1 - h - 4, f"{c:,}", size=11, anchor="middle")
        fig.text(x + slot * 0.38, y1 + 16, esc(k), size=11, anchor="middle", fill="#444")
    fig.add(f'<line x1="{_f(x0)}" y1="{_f(y1)}" x2="{_f(x1)}" y2="{_f(y1)}" stroke="#444"/>')
    fig.text((x0 + x1) / 2, y1 + 36, "HTTP requests carried by the connection", anchor="middle")
    fig.y_label(22, y0, y1, "connections")
    return fig.render()


# ----------------------------------------------------------------- backend load

def backend_load(backends: Sequence[dict[str, Any]], colours: dict[str, str],
                 shown: int) -> str:
    """Two bar panels per backend: requests served, and backend-side connections."""
    rows = list(backends)[:shown]
    total = sum(int(b.get("requests") or 0) for b in backends)
    panels = 2 if any(b.get("connections") is not None for b in rows) else 1
    label_w, panel_w, gap = 190.0, 300.0, 110.0
    row_h = 22.0
    width = int(label_w + panels * (panel_w + gap) + 10)
    y0 = 78.0
    height = int(y0 + row_h * len(rows) + 56)
    fig = Figure(width, height, "Load per backend",
                 "Requests each backend served and backend-side connections to it.")
    items = [(swatch(OTHER_COLOUR), "requests served (colour = backend)"),
             (swatch(OTHER_COLOUR, opacity=0.45), "backend-side connections")]
    fig.legend(items[:panels], 10, 34)
    px = [label_w, label_w + panel_w + gap]
    maxima = [max([int(b.get("requests") or 0) for b in rows] + [1]),
              max([int(b.get("connections") or 0) for b in rows] + [1])]
    names = ["requests served", "backend-side connections (when seen)"]
    for p in range(panels):
        fig.text(px[p] + panel_w / 2, y0 - 8, names[p], size=12, anchor="middle",
                 weight="bold")
    yb = y0 + row_h * len(rows) + 4
    for i, b in enumerate(rows):
        y = y0 + i * row_h
        name = str(b.get("backend"))
        colour = colours.get(name, OTHER_COLOUR)
        fig.text(label_w - 8, y + 15, esc(name, 30), size=12, anchor="end")
        req = int(b.get("requests") or 0)
        conns = b.get("connections")
        for p, (v, op) in enumerate(((req, 1.0), (conns, 0.45))[:panels]):
            if v is None:
                fig.text(px[p] + 4, y + 15, "not seen", size=11, fill="#777")
                continue
            w = int(v) / maxima[p] * panel_w
            tip = (f"{esc(name)}: {req:,} of {total:,} requests" if p == 0 else
                   f"{esc(name)}: {int(v):,} backend-side connection(s), "
                   f"{req:,} requests on them")
            fig.add(f'<g><title>{tip}</title><rect x="{_f(px[p])}" y="{_f(y + 3)}" '
                    f'width="{_f(max(w, 1))}" height="{_f(row_h - 6)}" fill="{colour}" '
                    f'fill-opacity="{op}"/></g>')
            lab = (f"{100 * req / total:.1f}% ({req:,}/{total:,})" if p == 0 and total
                   else f"{int(v):,}")
            fig.text(px[p] + w + 5, y + 15, lab, size=11, fill="#333")
    for p in range(panels):
        fig.x_axis(px[p], px[p] + panel_w, yb, 0, maxima[p],
                   "requests" if p == 0 else "connections", integer=True)
    return fig.render()


# ----------------------------------------------------------------- timelines

@dataclass
class ConnLane:
    """One connection row; times are seconds since the capture started."""

    label: str                  # short row label (already escaped)
    tooltip: str                # already escaped
    start: float
    end: float
    close: str                  # client, server, reset, open
    close_at: float | None
    busy: list[tuple[float, float]] = field(default_factory=list)   # request..response end
    marks: list[float] = field(default_factory=list)                # request starts


@dataclass
class SessionLane:
    label: str                  # already escaped
    tooltip: str                # already escaped
    dots: list[tuple[float, str]] = field(default_factory=list)     # (time, colour)
    breaks: list[tuple[float, str]] = field(default_factory=list)   # (time, escaped tooltip)


def _scale(lo: float, hi: float, x0: float, x1: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda t: x0 + (t - lo) / span * (x1 - x0)


def _merge(intervals: Iterable[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a - out[-1][1] < min_gap:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _timeline_frame(title: str, subtitle: str, items: list[tuple[str, str]], n: int,
                    row_h: float, span: float, left: float, right: float,
                    y_label: str) -> tuple[Figure, float, Any]:
    """The frame both timelines share: title, legend, time axes above and below, y label.
    Returns the figure, the y of the first row and the time-to-x scale."""
    fig = Figure(1100, 100, title, subtitle)
    fig.text(10, 40, esc(subtitle, 300), size=12, fill="#444")
    top = fig.legend(items, 10, 50) + 34
    bottom = top + body_height(n, row_h, y_label)
    fig.height = int(bottom + 62)
    divisor, unit = time_unit(span)
    fig.x_axis(left, right, top - 4, 0.0, span, "", grid_to=bottom, divisor=divisor,
               labels_above=True, show_label=False)
    fig.x_axis(left, right, bottom + 4, 0.0, span,
               f"time since the start of the capture ({unit})", divisor=divisor)
    fig.y_label(14, top, bottom, y_label)
    return fig, top, _scale(0.0, span, left, right)


def connection_timeline(lanes: Sequence[ConnLane], span: float, subtitle: str) -> str:
    """A row per connection: lifetime, requests in flight, request marks, who closed."""
    n = max(1, len(lanes))
    row_h = max(7.0, min(16.0, 900.0 / n))
    left, right = 64.0, 1080.0
    items = [(swatch(IDLE_COLOUR, "line"), "connection open, idle"),
             (swatch(BUSY_COLOUR), "request in flight (request to end of response)"),
             (swatch(MARK_COLOUR, "tick"), "request sent")]
    items += [(swatch(c, shape), esc(text)) for c, shape, text in CLOSE_STYLE.values()]
    fig, top, sx = _timeline_frame("Connection timeline", subtitle, items, n, row_h, span,
                                   left, right, "connection (by start time)")
    r = max(2.5, min(4.5, row_h * 0.4))
    for i, ln in enumerate(lanes):
        y = top + i * row_h + row_h / 2
        xs, xe = sx(ln.start), max(sx(ln.end), sx(ln.start) + 1)
        parts = [f'<line x1="{_f(xs)}" y1="{_f(y)}" x2="{_f(xe)}" y2="{_f(y)}" '
                 f'stroke="{IDLE_COLOUR}" stroke-width="1.5"/>']
        busy = _merge(((sx(a), sx(b)) for a, b in ln.busy), 0.6)
        if busy:
            bh = row_h * 0.56
            d = "".join(f"M{_f(a)} {_f(y - bh / 2)}h{_f(max(b - a, 1.0))}v{_f(bh)}"
                        f"h{_f(-max(b - a, 1.0))}z" for a, b in busy)
            parts.append(f'<path d="{d}" fill="{BUSY_COLOUR}"/>')
        if ln.marks:
            mh = row_h * 0.8
            xs_marks = sorted({round(sx(t) * 2) / 2 for t in ln.marks})
            d = "".join(f"M{_f(x)} {_f(y - mh / 2)}v{_f(mh)}" for x in xs_marks)
            parts.append(f'<path d="{d}" stroke="{MARK_COLOUR}" stroke-width="1"/>')
        colour, shape, _ = CLOSE_STYLE.get(ln.close, CLOSE_STYLE["open"])
        cx = xe + r if ln.close == "open" else sx(ln.close_at if ln.close_at is not None
                                                  else ln.end)
        parts.append(marker(shape, cx, y, colour, r))
        fig.add(f'<g><title>{ln.tooltip}</title>{"".join(parts)}</g>')
        if row_h >= 9:
            fig.text(left - 6, y + 3.5, ln.label, size=min(11, int(row_h) - 1), anchor="end",
                     fill="#555")
    return fig.render()


def session_timeline(lanes: Sequence[SessionLane], span: float, subtitle: str,
                     legend: Sequence[tuple[str, str]]) -> str:
    """A row per session: a dot per request coloured by backend, breaks marked."""
    n = max(1, len(lanes))
    row_h = max(12.0, min(20.0, 700.0 / n))
    left, right = 190.0, 1080.0
    items = [(swatch(c), esc(name, 40)) for name, c in legend]
    items.append((marker("break", 6, 6, BREAK_COLOUR, 4), "persistence break"))
    fig, top, sx = _timeline_frame("Session-to-backend timeline", subtitle, items, n, row_h,
                                   span, left, right, "session")
    for i, ln in enumerate(lanes):
        y = top + i * row_h + row_h / 2
        if i % 2:
            fig.add(f'<rect x="{_f(left)}" y="{_f(y - row_h / 2)}" width="{_f(right - left)}" '
                    f'height="{_f(row_h)}" fill="#f6f6f6"/>')
        parts = []
        if ln.dots:
            times = [t for t, _ in ln.dots]
            parts.append(f'<line x1="{_f(sx(min(times)))}" y1="{_f(y)}" '
                         f'x2="{_f(sx(max(times)))}" y2="{_f(y)}" stroke="#ccc"/>')
        seen: set[tuple[float, str]] = set()
        for t, colour in ln.dots:
            key = (round(sx(t)), colour)
            if key not in seen:
                seen.add(key)
                parts.append(f'<circle cx="{_f(sx(t))}" cy="{_f(y)}" r="3.5" fill="{colour}"/>')
        for t, tip in ln.breaks:    # under the dots, so the new backend's colour shows
            fig.add(f'<g><title>{tip}</title>'
                    f'{marker("break", sx(t), y, BREAK_COLOUR, min(4.0, row_h / 4))}</g>')
        fig.add(f'<g><title>{ln.tooltip}</title>{"".join(parts)}</g>')
        fig.text(left - 6, y + 4, ln.label, size=11, anchor="end", fill="#333")
    return fig.render()
