"""The HTML report: escaping of capture strings, self-containment, plots, headless Chromium.

Captures are crafted with scapy into tmp directories and analysed with
``pcapstats.analyze``; nothing here depends on the sample files.
"""

from __future__ import annotations

import html
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

import pcapstats
from pcapstats.report.html import CSS, render_html

SCRIPT = "<script>alert(1)</script>"
IMG = "\"'><img src=x onerror=alert(1)>"
# Logs to the console if it ever runs: the Chromium check would see it.
CONSOLE = "<script>console.log(31337)</script>"
PAYLOADS = (SCRIPT, IMG, CONSOLE)

# --------------------------------------------------------------------------- captures


class Flow:
    """One TCP connection as packets: handshake, request/response pairs, teardown."""

    def __init__(self, pkts: list, t: float, cip: str, cport: int, sip: str, sport: int = 80):
        self.pkts, self.t = pkts, t
        self.c, self.s = (cip, cport), (sip, sport)
        self.seq = {True: 1000, False: 50000}

    def send(self, from_client: bool, flags: str, data: bytes = b"", dt: float = 0.0005) -> None:
        self.t += dt
        (src, sp), (dst, dp) = (self.c, self.s) if from_client else (self.s, self.c)
        p = Ether() / IP(src=src, dst=dst) / TCP(
            sport=sp, dport=dp, flags=flags, seq=self.seq[from_client],
            ack=0 if flags == "S" else self.seq[not from_client])
        if data:
            p = p / Raw(data)
        p.time = self.t
        self.pkts.append(p)
        self.seq[from_client] += len(data) + (1 if ("S" in flags or "F" in flags) else 0)

    def open(self) -> Flow:
        self.send(True, "S", dt=0)
        self.send(False, "SA")
        self.send(True, "A")
        return self

    def exchange(self, request: bytes, response: bytes, gap: float = 0.01) -> Flow:
        self.send(True, "PA", request, dt=gap)
        self.send(False, "PA", response, dt=0.003)
        self.send(True, "A")
        return self

    def close(self, how: str) -> float:
        if how in ("client", "server"):     # FIN, ACK, FIN, ACK
            closer = how == "client"
            self.send(closer, "FA", dt=0.05)
            self.send(not closer, "A")
            self.send(not closer, "FA")
            self.send(closer, "A")
        elif how == "reset":
            self.send(False, "R", dt=0.05)
        return self.t


def request(uri: str, host: str, ua: str, cookie: str | None) -> bytes:
    head = f"GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    return (head + "\r\n").encode()


def response(set_cookie: str | None = None, body: bytes = b"hello") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
    if set_cookie:
        head += f"Set-Cookie: {set_cookie}\r\n"
    return (head + "\r\n").encode() + body


def xss_capture(folder: Path) -> Path:
    """Capture strings full of markup: URI, Host, User-Agent, cookies, backend names, file name."""
    pkts: list = []
    t = 1_700_000_000.0
    cookie = f"JSESSIONID={IMG}; SERVERID=s1"
    f = Flow(pkts, t, "10.0.0.1", 40001, "10.0.0.10").open()
    f.exchange(request(f"/a?q={SCRIPT}", f"{SCRIPT}.example", IMG, cookie),
               response(f"JSESSIONID={IMG}; Path=/"))
    f.exchange(request(f"/b?{CONSOLE}", IMG.replace(" ", ""), SCRIPT, cookie),
               response(f"SERVERID={SCRIPT}; path=/"), gap=0.3)
    t = f.close("client")
    f = Flow(pkts, t, "10.0.0.1", 40002, "10.0.0.11").open()
    f.exchange(request("/c", "ok.example", CONSOLE, f"JSESSIONID={IMG}; SERVERID={CONSOLE}"),
               response(f"SERVERID={CONSOLE}"))
    f.close("server")
    path = folder / f"x{IMG}.pcap"      # the file name is a capture string too
    wrpcap(str(path), pkts)
    return path


def busy_capture(folder: Path) -> Path:
    """260 connections, 60 cookie sessions on 3 servers, 8 sessions that change server."""
    rng = random.Random(7)
    pkts: list = []
    servers = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    closes = ["client", "server", "reset", "open"]
    conn = 0
    for s in range(60):
        home = servers[s % 3]
        t = 1_700_000_000.0 + s * 0.7
        for k in range(5 if s < 20 else 4):
            server = servers[(s + 1) % 3] if s < 8 and k == 3 else home
            f = Flow(pkts, t, f"10.1.{s // 200}.{s % 200 + 1}", 20000 + conn, server).open()
            for _ in range(rng.randint(1, 4)):
                f.exchange(request(f"/page/{rng.randint(1, 9)}", "shop.example", "bench/1.0",
                                   f"JSESSIONID=sess{s:03d}"), response(),
                           gap=rng.uniform(0.01, 0.4))
            f.close(closes[conn % 4])
            t += rng.uniform(1.0, 4.0)
            conn += 1
    pkts.sort(key=lambda p: p.time)
    path = folder / "busy.pcap"
    wrpcap(str(path), pkts)
    return path


def udp_only_capture(folder: Path) -> Path:
    pkts = []
    for i in range(3):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=5000 + i, dport=53) / \
            Raw(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        p.time = 1_700_000_000.0 + i
        pkts.append(p)
    path = folder / "dns.pcap"
    wrpcap(str(path), pkts)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("html-report")


@pytest.fixture(scope="module")
def xss(folder: Path) -> tuple[Any, str]:
    a = pcapstats.analyze(str(xss_capture(folder)))
    return a, render_html(a)


@pytest.fixture(scope="module")
def busy(folder: Path) -> tuple[Any, str]:
    a = pcapstats.analyze(str(busy_capture(folder)))
    return a, render_html(a)


# --------------------------------------------------------------------------- page structure


class Tags(HTMLParser):
    """Every start tag with its attributes, plus the raw text of <style> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "nav", "a",
    "main", "section", "table", "thead", "tbody", "tr", "th", "td", "code", "br", "ul", "li",
    "figure", "figcaption", "svg", "desc", "rect", "text", "line", "path", "circle", "g",
}


def parse(page: str) -> Tags:
    p = Tags()
    p.feed(page)
    p.close()
    return p


def svgs(page: str) -> list[ET.Element]:
    """Every inline <svg>, parsed as XML (which also proves each one is well-formed)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def texts(el: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in el.iter("{http://www.w3.org/2000/svg}text")]


def test_capture_strings_are_escaped_everywhere(xss: tuple[Any, str]) -> None:
    a, page = xss
    # the analysis really carries the payloads (else this test would prove nothing)
    r = a.requests
    assert r["uri"].str.contains(SCRIPT, regex=False).any()
    assert r["host"].astype(str).str.contains(SCRIPT, regex=False).any()
    assert r["user_agent"].str.contains(IMG, regex=False).any()
    assert r["cookie"].str.contains(IMG, regex=False).any()
    assert a.sessions["session"].tolist() == [IMG]
    assert SCRIPT in set(a.backends["backend"].astype(str))

    for payload in PAYLOADS:
        assert payload not in page
        assert html.escape(payload, quote=True) in page
    lower = page.lower()
    assert "<script" not in lower
    assert "<img" not in lower
    assert "javascript:" not in lower
    # 'onerror=' may only occur as text: never as an attribute of any element
    parsed = parse(page)
    tags = {t for t, _ in parsed.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name != "style", tag
            assert name not in ("src", "srcdoc", "action", "formaction"), (tag, name)
            if name == "href":
                assert value is not None and value.startswith("#"), value
            for payload in PAYLOADS:
                assert payload not in (value or ""), (tag, name)
    # the only style sheet is the constant one
    assert "".join(parsed.styles) == CSS
    # escaped in table text and in SVG tooltips alike
    esc_img, esc_script = html.escape(IMG, quote=True), html.escape(SCRIPT, quote=True)
    assert re.search(r"<title>[^<]*" + re.escape(esc_img), page), "session tooltip"
    assert re.search(r"<title>[^<]*" + re.escape(esc_script), page), "backend tooltip"
    assert f"<td><code>{esc_script}.example</code></td>" in page
    assert html.escape(f"x{IMG}.pcap", quote=True) in page     # the file name
    # and the tooltips really hold the strings once unescaped
    titles = [t.text or "" for s in svgs(page) for t in s.iter("{http://www.w3.org/2000/svg}title")]
    assert any(IMG in t for t in titles) and any(SCRIPT in t for t in titles)


def test_page_is_self_contained(xss: tuple[Any, str]) -> None:
    _, page = xss
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;' \
        in page
    without_ns = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_ns and "https://" not in without_ns
    assert "url(" not in CSS and "@import" not in CSS and "@font-face" not in CSS
    assert "<link" not in page


def test_sections_in_terminal_order_and_ratios_with_counts(xss: tuple[Any, str]) -> None:
    a, page = xss
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == ["capture", "tcp", "http", "persistence", "breaks", "warnings"]
    aff, http = a.summary["affinity"], a.summary["http"]
    assert (aff["persistence_requests"]["numerator"], aff["breaks"]) == (1, 2)
    assert "requests on primary</th><td>33.3% (1/3)</td>" in page
    assert "persistent sessions</th><td>0.0% (0/1)</td>" in page
    assert (http["reuse"]["numerator"], http["reuse"]["denominator"]) == (1, 3)
    assert "reuse ratio</th><td>33.3% (1/3)</td>" in page
    # every percentage anywhere on the page comes with its numerator/denominator
    visible = html.unescape(re.sub(r"<[^>]+>", " ", page.split("<body>", 1)[1]))
    for m in re.finditer(r"\d%", visible):
        assert re.match(r"\d% \([\d,]+/[\d,]+\)", visible[m.start():]), \
            visible[max(0, m.start() - 60):m.start() + 40]
    for w in a.summary["warnings"]:
        assert html.escape(w, quote=True) in page


def test_plots_have_title_axes_and_legend(xss: tuple[Any, str]) -> None:
    _, page = xss
    plots = {s.findtext("{http://www.w3.org/2000/svg}title"): s for s in svgs(page)}
    assert set(plots) == {"Connection timeline", "Requests per connection", "Load per backend",
                          "Session-to-backend timeline"}
    expect = {
        "Connection timeline": ["time since the start of the capture (ms)",
                                "connection (by start time)", "request sent",
                                "closed by the client (first FIN)", "reset (RST seen)",
                                "closed by the server (first FIN)",
                                "still open at the end of the capture"],
        "Requests per connection": ["HTTP requests carried by the connection", "connections",
                                    "2 or more requests (reused)"],
        "Load per backend": ["requests", "requests served (colour = backend)"],
        "Session-to-backend timeline": ["session", "persistence break", SCRIPT, "s1"],
    }
    for title, labels in expect.items():
        got = texts(plots[title])
        assert title in got
        for label in labels:
            assert label in got, (title, label)


def test_busy_capture_samples_rows_and_says_so(busy: tuple[Any, str]) -> None:
    a, page = busy
    assert len(a.connections) == 260 and len(a.sessions) == 60
    assert (a.sessions["breaks"] > 0).sum() == 8
    plots = {s.findtext("{http://www.w3.org/2000/svg}title"): s for s in svgs(page)}
    conn_tips = [t for t in re.findall(r"<title>(connection \d+: [^<]*)</title>", page)]
    assert len(conn_tips) == 200
    assert "Showing 200 of 260 connections: the busiest (most requests)" in page
    # the busiest connections are the ones drawn
    drawn = {int(t.split(":")[0].split()[1]) for t in conn_tips}
    fewest_drawn = a.connections.set_index("conn_id").loc[sorted(drawn), "requests"].min()
    left_out = a.connections[~a.connections["conn_id"].isin(drawn)]["requests"].max()
    assert fewest_drawn >= left_out
    # every close kind appears, and idle gaps show between requests in flight
    for kind in ("closed by the client", "closed by the server", "reset (RST seen)",
                 "still open at the end"):
        assert any(kind in t for t in conn_tips), kind
    assert "Showing 50 of 60 sessions: those with persistence breaks first" in page
    sess_tips = re.findall(r"<title>(session sess\d{3} [^<]*)</title>", page)
    assert len(sess_tips) == 50
    breaks = [int(b) for t in sess_tips for b in re.findall(r"(\d+) break\(s\)", t)]
    assert len(breaks) == 50
    assert all(b > 0 for b in breaks[:8]) and not any(breaks[8:])
    assert len(re.findall(r"<title>persistence break at ", page)) == int(a.sessions["breaks"].sum())
    # load per backend: requests and connections panels, three backends
    load = texts(plots["Load per backend"])
    assert "backend-side connections (when seen)" in load
    for b in a.backends.itertuples():
        assert f"{b.backend}" in load
        total = int(a.backends["requests"].sum())
        assert any(f"({b.requests:,}/{total:,})" in t for t in load)
    assert "Backends" in page and "req/conn (requests/conns)" in page
    assert len(page) < 2_000_000


def test_capture_without_tcp(folder: Path) -> None:
    a = pcapstats.analyze(str(udp_only_capture(folder)))
    page = render_html(a)
    assert "No TCP connections in this capture." in page
    assert "No HTTP/1.x requests found." in page
    assert "<svg" not in page or "Session-to-backend timeline" not in page
    parse(page)


# --------------------------------------------------------------------------- headless Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONSOLE_LINE = re.compile(r":CONSOLE[:(]|Uncaught", re.I)


def run_chromium(page: Path, shot: Path, profile: Path, timeout: float = 90) -> str:
    """Screenshot ``page`` headless; return Chromium's stderr. Killed (whole group) on timeout."""
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--hide-scrollbars",
           "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--force-device-scale-factor=1", f"--screenshot={shot}", "--window-size=1200,3000",
           page.resolve().as_uri()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {timeout} s")
    finally:
        try:    # helpers chromium left behind in its own session
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return err.decode(errors="replace")


def png_pixels(path: Path) -> tuple[int, int, Any]:
    """Decode an 8-bit RGB/RGBA PNG (zlib + struct; numpy for speed) to (w, h, HxWxC array)."""
    import numpy as np

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].copy()
        if f == 1:      # Sub: running sum per channel, modulo 256
            line = np.cumsum(line.reshape(w, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif f == 2:    # Up
            line = line + prev
        elif f in (3, 4):   # Average, Paeth: sequential within the row
            cur, up = line.tolist(), prev.tolist()
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                ul = up[i - bpp] if i >= bpp else 0
                if f == 3:
                    pred = (left + up[i]) // 2
                else:
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else ul
                cur[i] = (cur[i] + pred) & 0xFF
            line = np.array(cur, dtype=np.uint8)
        out[y] = line
        prev = line
    return w, h, out.reshape(h, w, bpp)[:, :, :3]


CONTROL_PAGE = """<!DOCTYPE html><html><body><p>control</p>
<script>console.error("pcapstats-control-error"); throw new Error("pcapstats-uncaught");</script>
</body></html>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package "
                    "'chromium'; scripts/test.sh installs it)")
def test_report_in_headless_chromium(xss: tuple[Any, str], tmp_path: Path) -> None:
    import numpy as np

    # control: a page that logs and throws must be seen, or the console check below is blind
    control = tmp_path / "control.html"
    control.write_text(CONTROL_PAGE, encoding="utf-8")
    err = run_chromium(control, tmp_path / "control.png", tmp_path / "profile-control")
    seen = [ln for ln in err.splitlines() if CONSOLE_LINE.search(ln)]
    assert any("pcapstats-control-error" in ln for ln in seen), err[-3000:]
    assert any("pcapstats-uncaught" in ln for ln in seen), err[-3000:]

    # the report (with its markup payloads): no console message at all, a real picture
    page = tmp_path / "report.html"
    page.write_text(xss[1], encoding="utf-8")
    shot = tmp_path / "report.png"
    err = run_chromium(page, shot, tmp_path / "profile-report")
    console = [ln for ln in err.splitlines() if CONSOLE_LINE.search(ln)]
    assert not console, "\n".join(console)
    w, h, px = png_pixels(shot)
    assert (w, h) == (1200, 3000)
    packed = (px[:, :, 0].astype(np.uint32) << 16) | (px[:, :, 1].astype(np.uint32) << 8) \
        | px[:, :, 2]
    colours, counts = np.unique(packed, return_counts=True)
    assert len(colours) >= 20, len(colours)
    assert counts.max() < 0.9 * w * h        # not one flat background
    present = {f"#{int(c):06x}" for c in colours}
    # solid fills the page must show: header, the two backends, histogram bars, in-flight bars
    for colour in ("#1f3a5f", "#1f77b4", "#ff7f0e", "#aec7e8", "#9ecae1"):
        assert colour in present, colour


@pytest.mark.parametrize("seed", range(8))
def test_busiest_connections_are_the_ones_a_plain_sort_picks(seed: int) -> None:
    """The rows drawn when there are too many: most requests, then longest (nulls as
    0), then by connection number (nulls last), ties in table order - as a stable sort
    with that key picks them, also with nulls, missing keys and many ties."""
    from pcapstats.report.html import _asc, _busiest
    rng = random.Random(seed)
    rows = []
    for i in range([5, 250, 300, 2000][seed % 4]):
        row = {"requests": rng.choice([None, 0, 0, 1, 2, 5]),
               "duration_ns": rng.choice([None, 0, 7, rng.randrange(10**9)]),
               "conn_id": rng.choice([None, i, i])}
        if seed >= 4 and rng.random() < 0.1:
            del row[rng.choice(list(row))]
        rows.append(row)
    want = sorted(rows, key=lambda c: (-(c.get("requests") or 0), -(c.get("duration_ns") or 0),
                                       _asc(c.get("conn_id"))))[:200]
    got = _busiest(rows, 200)
    assert [id(r) for r in got] == [id(r) for r in want]


def test_busiest_connections_count_missing_requests_as_zero() -> None:
    """Rows without a request count rank with those of 0 requests (by duration), not
    above them."""
    from pcapstats.report.html import _busiest
    rows = ([{"requests": 1, "duration_ns": 5, "conn_id": i} for i in range(100)]
            + [{"requests": None, "duration_ns": 1, "conn_id": 100 + i} for i in range(150)]
            + [{"requests": 0, "duration_ns": 9, "conn_id": 250 + i} for i in range(100)])
    got = _busiest(rows, 200)
    assert [r["conn_id"] for r in got] == list(range(100)) + list(range(250, 350))
