#!/usr/bin/env python3
"""Regenerate the crafted sample captures and their truth.

    python samples/make_samples.py [OUTDIR]      (default: the samples/ folder)

Every capture here is built packet by packet, so its truth is known by
construction: truth.json records what the generator put on the wire (TCP
connections, handshakes, closes, HTTP requests per connection, sessions and
backends), never what a tool reads back.  The output is byte-identical on
every run: fixed seeds, fixed timestamps (integer nanoseconds), no clock.

Definitions used in truth.json are those of shared/DOMAIN.md:
- a connection is keyed by 4-tuple and ISNs; connections are listed in the
  order of their first packet in the file; `client` sent the SYN (without a
  SYN: the side that sent the HTTP request);
- `close` is "rst" if any RST was seen on it, else "fin" if any FIN, else
  "open"; `closed_by` is "reset" for an rst close, else the side that sent
  the first FIN ("client"/"server"), else "open";
- `handshake_complete`: SYN, then SYN/ACK from the other side, then an ACK
  from the client without SYN or RST, in that order;
- requests are HTTP request messages (a pipelined pair in one segment is 2);
  a request counts when all of its bytes are in the capture;
- a request's `ts_request_ns` is the capture time of the segment holding its
  first byte, `ts_request_end_ns` the latest capture time among the segments
  holding its bytes (first copies, not retransmissions); same for responses;
- `udp_flows`: distinct unordered pairs of (ip, port) endpoints.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import sys
import zlib
from email.utils import formatdate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: E402
from scapy.layers.inet import IP, IPOption_Router_Alert, IPOption_RR  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, PadN  # noqa: E402

from _builder import (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,  # noqa: E402
                      LINKTYPE_LOOP, LINKTYPE_NAMES, LINKTYPE_NULL, LINKTYPE_RAW,
                      LINKTYPE_RAW_DLT12, MS, S, US, Capture, Msg, TcpConn, encapsulate, ep,
                      http_request, http_response, pcap_bytes, pcapng_epb, pcapng_idb,
                      pcapng_pb, pcapng_shb, pcapng_spb, tsresol_units)

T0 = 1710252300 * S          # 2024-03-12 14:05:00 UTC; every file starts at T0 + a whole second

UA_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0"
UA_CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
             "(KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36")
UA_CURL = "curl/8.5.0"

WORDS = ("packet capture connection request response server client keep alive session "
         "backend proxy balancer cookie header segment window latency handshake stream").split()


# ---------------------------------------------------------------- content

def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def html_body(rng: random.Random, title: str, paras: int) -> bytes:
    body = "".join(f"<p>{words(rng, 14)}.</p>\n" for _ in range(paras))
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
            f"<title>{title}</title>\n<link rel=\"stylesheet\" href=\"/css/site.css\">\n"
            f"<script src=\"/js/app.js\" defer></script></head>\n<body>\n<h1>{title}</h1>\n"
            f"{body}<img src=\"/img/logo.png\" alt=\"logo\">\n</body>\n</html>\n").encode()


def css_body(rng: random.Random, rules: int) -> bytes:
    out = [f".{rng.choice(WORDS)}-{i} {{ margin: {i % 5}px; color: #{rng.getrandbits(24):06x}; }}"
           for i in range(rules)]
    return ("body { font-family: sans-serif; }\n" + "\n".join(out) + "\n").encode()


def js_body(rng: random.Random, funcs: int) -> bytes:
    out = [f"function {rng.choice(WORDS)}{i}(a, b) {{ return a * {i} + b; /* {words(rng, 6)} */ }}"
           for i in range(funcs)]
    return ("'use strict';\n" + "\n".join(out) + "\n").encode()


def blob(rng: random.Random, magic: bytes, n: int) -> bytes:
    return magic + rng.randbytes(n - len(magic))


ICO = b"\x00\x00\x01\x00\x01\x00"


def png(rng: random.Random, w: int, h: int) -> bytes:
    """A valid RGB PNG of random pixels.  The zlib stream uses stored
    (uncompressed) deflate blocks, so no zlib version can change the bytes."""
    raw = b"".join(b"\0" + rng.randbytes(3 * w) for _ in range(h))
    deflate = b"".join(struct.pack("<BHH", int(i + 65535 >= len(raw)), len(raw[i:i + 65535]),
                                   0xFFFF ^ len(raw[i:i + 65535])) + raw[i:i + 65535]
                       for i in range(0, len(raw), 65535))
    idat = b"\x78\x01" + deflate + struct.pack(">I", zlib.adler32(raw))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def http_date(t: int) -> str:
    return formatdate(t // S, usegmt=True)


def nginx(conn: TcpConn, status: int, reason: str, ctype: str | None, body: bytes = b"", *,
          extra: list | None = None, keep: bool = True, **kw) -> Msg:
    headers = [("Server", "nginx/1.24.0"), ("Date", http_date(conn.t))]
    if ctype:
        headers.append(("Content-Type", ctype))
    headers += extra or []
    if "chunks" in kw:
        headers.append(("Transfer-Encoding", "chunked"))
    headers.append(("Connection", "keep-alive" if keep else "close"))
    return http_response(status, reason, headers, body, **kw)


def get(uri: str, host: str, ua: str, *, accept: str = "*/*", extra: list | None = None,
        version: str = "HTTP/1.1", connection: str | None = "keep-alive", method: str = "GET",
        body: bytes = b"") -> Msg:
    headers = [("Host", host), ("User-Agent", ua), ("Accept", accept)]
    headers += extra or []
    if connection:
        headers.append(("Connection", connection))
    return http_request(method, uri, headers, body, version=version)


def new_conn(cap: Capture, rng: random.Random, client, server, t: int, **kw) -> TcpConn:
    return cap.tcp(client, server, isn_c=rng.getrandbits(32), isn_s=rng.getrandbits(32), t=t,
                   ipid_c=rng.getrandbits(16), ipid_s=rng.getrandbits(16), **kw)


def short_http(cap: Capture, rng: random.Random, client, server, t: int, *,
               host: str = "example.com", uri: str = "/index.html", body_paras: int = 2,
               **kw) -> TcpConn:
    """Handshake, one GET, a 200 response, client ACK, FIN teardown by the client."""
    kw.setdefault("near", "c")
    kw.setdefault("rtt", 18 * MS)
    c = new_conn(cap, rng, client, server, t, **kw)
    c.handshake()
    req = get(uri, host, UA_CURL)
    c.request(req)
    c.respond(nginx(c, 200, "OK", "text/html", html_body(rng, "Example", body_paras)),
              dt=(c.proc if c.near == "s" else c.rtt) + 2 * MS)
    c.ack("c")
    c.wait(30 * MS)
    c.close("c")
    return c


# ---------------------------------------------------------------- writing

def _pcap_entry(cap: Capture, frames_info: dict, *, fmt: str, endian: str, nano: bool, snaplen: int,
                description: str, included=None) -> dict:
    entry = {
        "description": description,
        "format": fmt,
        "byte_order": "big" if endian == ">" else "little",
        "ts_resolution": "ns" if nano else "us",
        "snaplen": snaplen,
        "link_types": [cap.linktype],
        "link_type_names": [LINKTYPE_NAMES[cap.linktype]],
    }
    entry.update(cap.truth(included))
    entry["records_cut_by_snaplen"] = frames_info["records_cut_by_snaplen"]
    return entry


def write_pcap(outdir: str, name: str, cap: Capture, description: str, *, endian: str = "<",
               nano: bool = False, snaplen: int = 262144, gz: bool = False,
               cut_last_at: int | None = None) -> dict:
    recs = cap.sorted_records()
    frames = [(r.ts, encapsulate(r, cap.linktype, endian)) for r in recs]
    data, info = pcap_bytes(frames, cap.linktype, endian=endian, nano=nano, snaplen=snaplen,
                            cut_last_at=cut_last_at)
    if gz:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(data)
    included = recs[:-1] if cut_last_at is not None else None
    entry = _pcap_entry(cap, info, fmt="pcap+gzip" if gz else "pcap", endian=endian, nano=nano,
                        snaplen=snaplen, description=description, included=included)
    if cut_last_at is not None:
        entry["truncated_record_offset"] = info["cut_record_offset"]
        entry["truncated_record_bytes_present"] = cut_last_at
        entry["truncated_record_bytes_declared"] = 16 + min(len(frames[-1][1]), snaplen)
        entry["file_bytes"] = len(data)
    return entry


# ---------------------------------------------------------------- 1. http-keepalive

def sample_http_keepalive(outdir: str) -> dict:
    """Server-side capture of a small web site (nginx on 203.0.113.80:80)."""
    rng = random.Random("http-keepalive")
    cap = Capture(LINKTYPE_ETHERNET)
    srv = ("203.0.113.80", 80)
    host = "www.example.com"
    # clients: A Firefox on Windows, B scripts on Linux, C Chrome on macOS
    A, B, C = "198.51.100.20", "198.51.100.21", "198.51.100.22"
    t = T0 + 10 * S
    win = dict(ttl_c=116, ttl_s=64)
    lin = dict(ttl_c=52, ttl_s=64)
    acc_html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    # --- c1: Firefox, 5 requests, chunked page, retransmission, 304; closed by the client
    c1 = new_conn(cap, rng, (A, 50412), srv, t, rtt=28 * MS, **win)
    c1.handshake()
    page = html_body(rng, "Example Store", 6)
    cut = len(page) * 3 // 5
    resp = nginx(c1, 200, "OK", "text/html; charset=utf-8", chunks=[page[:cut], page[cut:]])
    split = resp.data.index(b"\r\n\r\n") + 4 + len(b"%x\r\n" % cut) + cut + 2
    c1.exchange(get("/", host, UA_FIREFOX, accept=acc_html,
                    extra=[("Accept-Language", "en-US,en;q=0.5")]),
                resp, server_time=3 * MS,
                resp_kw=dict(sizes=[split, len(resp.data) - split], gap=4 * MS))
    css = css_body(rng, 14)
    c1.exchange(get("/css/site.css", host, UA_FIREFOX, accept="text/css,*/*;q=0.1",
                    extra=[("Referer", "http://www.example.com/")]),
                nginx(c1, 200, "OK", "text/css", css, extra=[("ETag", '"65f0a1b2-%x"' % len(css))]),
                think=2 * MS, server_time=400 * US)
    # /js/app.js: 2 segments; the first is lost after the capture point, the client's
    # duplicate ACK comes back, the server retransmits on RTO.
    js = js_body(rng, 22)
    c1.wait(1 * MS)
    c1.request(get("/js/app.js", host, UA_FIREFOX, extra=[("Referer", "http://www.example.com/")]))
    rp = c1.respond(nginx(c1, 200, "OK", "application/javascript", js,
                          extra=[("ETag", '"65f0a1b3-%x"' % len(js))]), dt=500 * US)
    assert len(rp) == 2
    c1.ack("c", ack=rp[0].seq)                 # duplicate ACK: first segment missing
    c1.retransmit(rp[0], dt=230 * MS)          # RTO
    c1.ack("c")
    c1.exchange(get("/img/logo.png", host, UA_FIREFOX, accept="image/avif,image/webp,*/*",
                    extra=[("Referer", "http://www.example.com/"),
                           ("If-None-Match", '"65f0a1b4-3e8"')]),
                nginx(c1, 304, "Not Modified", None, extra=[("ETag", '"65f0a1b4-3e8"')],
                      content_length=False),
                think=3 * MS, server_time=200 * US)
    c1.exchange(get("/favicon.ico", host, UA_FIREFOX, accept="image/avif,image/webp,*/*"),
                nginx(c1, 200, "OK", "image/x-icon", blob(rng, ICO, 318)),
                think=40 * MS, server_time=300 * US)
    c1.wait(4200 * MS)
    c1.close("c")                              # user left: FIN from the client

    # --- c2: Firefox's second connection: 1 request, then a pipelined pair; the
    # server closes it at its keep-alive timeout (5 s).
    c2 = new_conn(cap, rng, (A, 50413), srv, t + 65 * MS, rtt=28 * MS, **win)
    c2.handshake()
    c2.exchange(get("/img/hero.png", host, UA_FIREFOX, accept="image/avif,image/webp,*/*"),
                nginx(c2, 200, "OK", "image/png", png(rng, 14, 12)), server_time=700 * US)
    pa = get("/img/a.png", host, UA_FIREFOX, accept="image/avif,image/webp,*/*")
    pb = get("/img/b.png", host, UA_FIREFOX, accept="image/avif,image/webp,*/*")
    c2.wait(5 * MS)
    c2.request([pa, pb])                       # pipelined: two requests, one segment
    c2.respond(nginx(c2, 200, "OK", "image/png", png(rng, 6, 6)), dt=300 * US)
    c2.respond(nginx(c2, 200, "OK", "image/png", png(rng, 7, 6)), dt=150 * US)
    c2.ack("c")
    c2.wait(5 * S)
    c2.close("s", four_way=True)               # keepalive_timeout 5s

    # --- c3: a Go client with Connection: close (1 request); the server closes.
    c3 = new_conn(cap, rng, (B, 41822), srv, t + 1200 * MS, rtt=11 * MS, **lin)
    c3.handshake()
    c3.request(get("/api/status", host, "Go-http-client/1.1", accept="application/json",
                   connection="close", extra=[("Accept-Encoding", "gzip")]))
    c3.respond(nginx(c3, 200, "OK", "application/json", b'{"status":"ok","version":"1.8.2"}\n',
                     keep=False), dt=900 * US)
    c3.close("s", dt=40 * US, four_way=True)

    # --- c4: ApacheBench, HTTP/1.0 without keep-alive (no Connection header at all).
    c4 = new_conn(cap, rng, (B, 41830), srv, t + 1500 * MS, rtt=11 * MS, **lin)
    c4.handshake()
    c4.request(get("/robots.txt", host, "ApacheBench/2.3", version="HTTP/1.0", connection=None))
    robots = b"User-agent: *\nDisallow: /account\nDisallow: /api/\n"
    c4.respond(nginx(c4, 200, "OK", "text/plain", robots, keep=False), dt=250 * US)
    c4.close("s", dt=30 * US)

    # --- c5: Chrome, keep-alive, one HEAD; then the tab is closed: RST from the client.
    c5 = new_conn(cap, rng, (C, 58230), srv, t + 2000 * MS, rtt=35 * MS, ttl_c=52)
    c5.handshake()
    c5.exchange(get("/downloads/pcapstats-1.0.tar.gz", host, UA_CHROME, method="HEAD"),
                nginx(c5, 200, "OK", "application/gzip", content_length=False,
                      extra=[("Content-Length", "48213"), ("Accept-Ranges", "bytes")]),
                server_time=150 * US)
    c5.wait(1500 * MS)
    c5.rst("c")

    # --- c6: Chrome preconnect: handshake, never used; still open at the end.
    c6 = new_conn(cap, rng, (C, 58231), srv, t + 2250 * MS, rtt=35 * MS, ttl_c=52)
    c6.handshake()

    # --- c7: Chrome, 2 requests: headers split over 2 segments (mid Cookie value);
    # then a POST whose header and body segments arrive out of order; left open.
    c7 = new_conn(cap, rng, (C, 58232), srv, t + 2300 * MS, rtt=35 * MS, ttl_c=52)
    c7.handshake()
    cookie = "session=9f2c4e71b8a04d3c; cart=3; consent=analytics%3Dno"
    acct = get("/account", host, UA_CHROME, accept=acc_html, extra=[("Cookie", cookie)])
    cut = acct.data.index(b"cart=3")
    c7.exchange(acct, nginx(c7, 200, "OK", "text/html; charset=utf-8", html_body(rng, "Account", 3),
                            extra=[("Cache-Control", "private")]),
                server_time=6 * MS, req_kw=dict(sizes=[cut, len(acct.data) - cut], gap=180 * US))
    body = b'{"sku":"PC-1042","qty":2}'
    post = http_request("POST", "/api/cart", [("Host", host), ("User-Agent", UA_CHROME),
                                             ("Accept", "application/json"),
                                             ("Content-Type", "application/json"),
                                             ("Origin", "http://www.example.com"), ("Cookie", cookie),
                                             ("Connection", "keep-alive")], body)
    head_len = len(post.data) - len(body)
    head_seq = c7.nxt["c"]

    def dup_ack(k, rec):                       # the server sees the body first
        if k == 0:
            c7.emit("s", "A", ack=head_seq, dt=30 * US)
    c7.wait(1200 * MS)
    c7.request(post, sizes=[head_len, len(body)], order=[1, 0], gap=210 * US, after=dup_ack)
    c7.respond(nginx(c7, 201, "Created", "application/json", b'{"cart":{"items":5}}\n',
                     extra=[("Location", "/api/cart/5")]), dt=4 * MS)
    c7.ack("c")

    entry = write_pcap(outdir, "http-keepalive.pcap", cap,
                       "README demo: server-side capture of a web site; keep-alive connections "
                       "carrying 5, 3 (1 + a pipelined pair), 1 (HEAD) and 2 requests, a "
                       "Connection: close request, an HTTP/1.0 request, a preconnect that carried "
                       "none, a chunked response, a 304, a retransmission, an out-of-order pair, "
                       "headers split over 2 segments; closes by client FIN, server FIN, RST, "
                       "and 2 connections still open")
    entry["out_of_order_pairs"] = 1
    entry["notes"] = [
        "conn 0: response 3's first segment was lost after the capture point: a duplicate ACK, "
        "then the same segment again 230 ms later (retransmissions: 1)",
        "conn 1: requests 2 and 3 are pipelined in one segment",
        "conn 6: request 1's headers span 2 segments (split inside the Cookie value); request "
        "2's body segment is captured before its header segment, with the server's duplicate "
        "ACK between them",
        "conn 5 carries no request (a browser preconnect)",
    ]
    return {"http-keepalive.pcap": entry}


# ---------------------------------------------------------------- 2. lb-both-sides

def _parse_head(msg: Msg) -> tuple[str, list[tuple[str, str]], bytes]:
    head, _, body = msg.data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], [tuple(x.split(": ", 1)) for x in lines[1:]], body


def haproxy_forward(req: Msg, client_ip: str) -> Msg:
    """The request as HAProxy 2.x sends it to the server: header names lower
    case, hop-by-hop Connection removed, the SERVERID cookie stripped
    (`cookie SERVERID insert indirect nocache`), x-forwarded-for appended."""
    start, headers, body = _parse_head(req)
    out = []
    for k, v in headers:
        k = k.lower()
        if k == "connection":
            continue
        if k == "cookie":
            v = "; ".join(c for c in v.split("; ") if not c.startswith("SERVERID="))
            if not v:
                continue
        out.append((k, v))
    out.append(("x-forwarded-for", client_ip))
    method, uri, version = start.split(" ")
    return http_request(method, uri, out, body, version=version)


def haproxy_response(resp: Msg, insert: str | None, close: bool) -> Msg:
    """The backend's response as the client gets it: lower-case names, the
    persistence cookie inserted when the request had none (or a stale one)."""
    start, headers, body = _parse_head(resp)
    out = [(k.lower(), v) for k, v in headers if k.lower() != "connection"]
    if insert:
        out += [("set-cookie", f"SERVERID={insert}; path=/"), ("cache-control", "private")]
    if close:
        out.append(("connection", "close"))
    version, status, reason = start.split(" ", 2)
    return http_response(int(status), reason, out, body, version=version)


def sample_lb(outdir: str) -> dict:
    """Capture on an HAProxy host seeing both its client side and server side."""
    rng = random.Random("lb-both-sides")
    cap = Capture(LINKTYPE_ETHERNET)
    vip = ("10.0.0.10", 80)
    backends = {"s1": ("10.0.2.1", 8080), "s2": ("10.0.2.2", 8080)}
    host = "shop.example.com"
    t = T0 + 20 * S
    links: list[tuple] = []        # (client conn, client msg, backend conn, backend msg, info)
    pool: dict[str, list[TcpConn]] = {"s1": [], "s2": []}
    busy_until: dict[int, int] = {}
    closed: set[int] = set()
    rr = ["s1", "s2"]
    rr_next = [0]
    lb_port = [40110]

    def backend_conn(name: str, at: int) -> TcpConn:
        for bc in pool[name]:
            if busy_until.get(id(bc), 0) <= at and id(bc) not in closed:
                return bc
        bc = new_conn(cap, rng, ("10.0.0.10", lb_port[0]), backends[name], at, near="c",
                      rtt=300 * US, proc=40 * US, role="backend")
        lb_port[0] += 2
        bc.handshake()
        pool[name].append(bc)
        return bc

    def client_conn(ip: str, port: int, at: int) -> TcpConn:
        cc = new_conn(cap, rng, (ip, port), vip, at, near="s", rtt=24 * MS, proc=50 * US,
                      ttl_c=63, role="client")
        cc.handshake()
        return cc

    def proxied(cc: TcpConn, req: Msg, at: int, app_time: int, body: bytes, ctype: str,
                *, close_client: bool = False, backend_close: bool = False) -> None:
        cookies = dict(c.split("=", 1) for c in (req.info["cookie"] or "").split("; ") if c)
        sid = cookies.get("SERVERID")
        if sid in backends:
            name, insert = sid, None
        else:
            name = rr[rr_next[0] % 2]
            rr_next[0] += 1
            insert = name
        cc.at(at)
        cc.request(req)
        creq = cc.messages[-1]
        bc = backend_conn(name, cc.t + 60 * US)
        bc.at(max(bc.t + 20 * US, cc.t + 60 * US))
        fwd = haproxy_forward(req, cc.ep["c"][0])
        bc.request(fwd, dt=0)
        breq = bc.messages[-1]
        bresp = nginx(bc, 200, "OK", ctype, body, keep=not backend_close,
                      extra=[("X-Served-By", name)])
        bc.respond(bresp, dt=bc.rtt + app_time)
        if backend_close:
            bc.close("s", dt=20 * US)
            closed.add(id(bc))
        else:
            bc.ack("c")
        busy_until[id(bc)] = bc.t
        cc.at(bc.t + 50 * US)
        cc.respond(haproxy_response(bresp, insert, close_client), dt=0)
        if close_client:
            cc.close("s", dt=20 * US)
        else:
            cc.ack("c")
        head = fwd.data.split(b"\r\n\r\n")[0].decode() + "\r\n\r\n"
        links.append((cc, creq, bc, breq, {"cookie_serverid": sid, "set_cookie_serverid": insert,
                                            "backend_name": name, "forwarded_head": head}))

    # health checks: option httpchk GET /health; HAProxy closes checks with an RST
    for i, name in enumerate(["s1", "s2"]):
        hc = new_conn(cap, rng, ("10.0.0.10", 40100 + 2 * i), backends[name], t + i * 3 * MS,
                      near="c", rtt=300 * US, role="health-check")
        hc.handshake()
        hc.request(http_request("GET", "/health", [], version="HTTP/1.0"))
        hc.respond(nginx(hc, 200, "OK", "text/plain", b"OK\n", keep=False), dt=hc.rtt + 200 * US)
        hc.rst("c")

    ua = UA_FIREFOX
    acc = "text/html,*/*;q=0.8"
    page = lambda title: html_body(rng, title, 1)  # noqa: E731
    ms = lambda x: t + x * MS  # noqa: E731
    c1 = client_conn("10.0.1.11", 52100, ms(500))
    proxied(c1, get("/", host, ua, accept=acc), c1.t, 4 * MS, page("Shop"), "text/html")
    proxied(c1, get("/static/app.css", host, ua, extra=[("Cookie", "SERVERID=s1")]), ms(700),
            1 * MS, css_body(rng, 4), "text/css")
    c2 = client_conn("10.0.1.12", 40522, ms(900))
    proxied(c2, get("/", host, ua, accept=acc, extra=[("Cookie", "lang=en")]), c2.t, 5 * MS,
            page("Shop"), "text/html")
    c3 = client_conn("10.0.1.13", 61000, ms(1100))
    proxied(c3, get("/", host, ua, accept=acc), c3.t, 4 * MS, page("Shop"), "text/html")
    proxied(c2, get("/products?page=2", host, ua, accept=acc,
                    extra=[("Cookie", "SERVERID=s2; lang=en")]), ms(1300), 9 * MS,
            page("Products"), "text/html")
    proxied(c3, get("/static/app.css", host, ua, extra=[("Cookie", "SERVERID=s1")]), ms(1500),
            1 * MS, css_body(rng, 4), "text/css")
    c2.wait(300 * MS)
    c2.close("c")
    c4 = client_conn("10.0.1.12", 40530, ms(2500))
    proxied(c4, get("/account", host, ua, accept=acc, extra=[("Cookie", "lang=en; SERVERID=s2")]),
            c4.t, 7 * MS, page("Account"), "text/html")
    # client 10.0.1.13 lost its cookie: the balancer picks by round robin -> s2 (a break)
    c5 = client_conn("10.0.1.13", 61008, ms(3000))
    proxied(c5, get("/", host, ua, accept=acc), c5.t, 4 * MS, page("Shop"), "text/html")
    proxied(c5, get("/static/app.css", host, ua, extra=[("Cookie", "SERVERID=s2")]), ms(3150),
            1 * MS, css_body(rng, 4), "text/css")
    # a slow POST on s1, and meanwhile a new client also sent to s1: a second backend connection
    proxied(c1, get("/api/cart", host, ua, method="POST", accept="application/json",
                    extra=[("Cookie", "SERVERID=s1"), ("Content-Type", "application/json")],
                    body=b'{"sku":"A-17","qty":1}'), ms(3190), 90 * MS, b'{"items":1}\n',
            "application/json")
    c6 = client_conn("10.0.1.14", 53000, ms(3200))
    proxied(c6, get("/api/stock", host, UA_CURL, connection="close"), c6.t, 3 * MS,
            b'{"stock":12}\n', "application/json", close_client=True)
    # nginx keepalive_requests reached on s2's connection: it answers with Connection: close
    proxied(c5, get("/static/app.js", host, ua, extra=[("Cookie", "SERVERID=s2")]), ms(3450),
            1 * MS, js_body(rng, 3), "application/javascript", backend_close=True)
    c4.at(ms(3600))
    c4.close("s")                              # timeout http-keep-alive
    c1.at(ms(4200))
    c1.close("c")

    entry = write_pcap(outdir, "lb-both-sides.pcap", cap,
                       "HAProxy host capture of both sides: clients 10.0.1.x -> VIP 10.0.0.10:80, "
                       "proxy -> backends s1 10.0.2.1:8080 and s2 10.0.2.2:8080; cookie SERVERID "
                       "insert indirect nocache, round robin, http-reuse always, option forwardfor, "
                       "option httpchk GET /health")
    # affinity truth
    reqs = []
    for cc, creq, bc, breq, info in links:
        bi = [m for m in bc.messages if m.kind == "request"].index(breq)
        ci = [m for m in cc.messages if m.kind == "request"].index(creq)
        reqs.append({
            "client_conn": cc.truth_id, "depth": ci + 1, "client": ep(cc.ep["c"]),
            "method": creq.info["method"], "uri": creq.info["uri"],
            "ts_request_ns": creq.records[0].ts,
            "cookie": creq.info["cookie"], "cookie_serverid": info["cookie_serverid"],
            "set_cookie_serverid": info["set_cookie_serverid"],
            "session_cookie": info["cookie_serverid"] or info["set_cookie_serverid"],
            "session_client_ip": cc.ep["c"][0],
            "backend": ep(bc.ep["s"]), "backend_name": info["backend_name"],
            "backend_conn": bc.truth_id, "backend_depth": bi + 1,
            "forwarded_request_head": info["forwarded_head"],
        })
    reqs.sort(key=lambda r: r["ts_request_ns"])
    sessions: dict[str, dict] = {}
    breaks = []
    for r in reqs:
        s = sessions.setdefault(r["session_client_ip"], {"requests": 0, "backends": {}})
        if s["requests"] and r["backend"] != s["last"]:
            breaks.append({"session_client_ip": r["session_client_ip"], "ts_ns": r["ts_request_ns"],
                           "client_conn": r["client_conn"], "depth": r["depth"],
                           "from": s["last"], "to": r["backend"]})
        s["requests"] += 1
        s["backends"][r["backend"]] = s["backends"].get(r["backend"], 0) + 1
        s["last"] = r["backend"]
    for s in sessions.values():
        del s["last"]
    multi = [s for s in sessions.values() if s["requests"] >= 2]
    conns = entry["connections"]
    client_conns = [c for c in conns if c["role"] == "client"]
    backend_conns = [c for c in conns if c["role"] == "backend"]
    entry["affinity"] = {
        "cookie_name": "SERVERID",
        "cookie_values": {k: ep(v) for k, v in backends.items()},
        "note": "session = the client IP (each client is one user); the SERVERID value names a "
                "server, not a session.  session_cookie is the SERVERID the request was bound to "
                "(sent, else inserted in its response).",
        "requests": reqs,
        "health_checks": [{"conn": c["id"], "backend": c["server"]} for c in conns
                          if c["role"] == "health-check"],
        "sessions_by_client_ip": sessions,
        "persistence_breaks": breaks,
        "persistence": {
            "sessions_with_2plus_requests": len(multi),
            "sessions_on_one_backend": sum(len(s["backends"]) == 1 for s in multi),
            "requests_in_those_sessions": sum(s["requests"] for s in multi),
            "requests_on_session_main_backend": sum(max(s["backends"].values()) for s in multi),
        },
        "multiplexing": {
            "client_side_connections": len(client_conns),
            "backend_side_connections": len(backend_conns),
            "client_side_requests": sum(len(c["requests"]) for c in client_conns),
            "backend_side_requests": sum(len(c["requests"]) for c in backend_conns),
            "health_check_connections": len(conns) - len(client_conns) - len(backend_conns),
        },
    }
    return {"lb-both-sides.pcap": entry}


# ---------------------------------------------------------------- 3. format variety

CLI, SRV = ("192.168.1.50", 51514), ("93.184.216.34", 80)


def one_conn_capture(seed: str, linktype: int, *, t: int, **kw) -> Capture:
    cap = Capture(linktype)
    rng = random.Random(seed)
    short_http(cap, rng, kw.pop("client", CLI), kw.pop("server", SRV), t, **kw)
    return cap


def sample_formats(outdir: str) -> dict:
    out = {}
    cap = one_conn_capture("be-usec", LINKTYPE_ETHERNET, t=T0 + 30 * S)
    out["be-usec.pcap"] = write_pcap(outdir, "be-usec.pcap", cap,
                                     "big-endian classic pcap, microseconds", endian=">")
    cap = one_conn_capture("le-nsec", LINKTYPE_ETHERNET, t=T0 + 31 * S + 123_456_789,
                           rtt=17_654_321, proc=48_777)
    out["le-nsec.pcap"] = write_pcap(outdir, "le-nsec.pcap", cap,
                                     "little-endian pcap, nanosecond magic 0xa1b23c4d; timestamps "
                                     "use all 9 digits", nano=True)
    cap = one_conn_capture("gzip", LINKTYPE_ETHERNET, t=T0 + 32 * S)
    out["gzip.pcap.gz"] = write_pcap(outdir, "gzip.pcap.gz", cap,
                                     "gzip-compressed little-endian microsecond pcap (mtime 0)",
                                     gz=True)
    cap = one_conn_capture("sll", LINKTYPE_LINUX_SLL, t=T0 + 33 * S)
    for r in cap.records:
        r.l2["pkttype"] = 4 if r.side == "c" else 0   # tcpdump -i any on the client: 4 outgoing, 0 to us
    out["sll.pcap"] = write_pcap(outdir, "sll.pcap", cap, "LINKTYPE_LINUX_SLL (113), tcpdump -i any "
                                 "on the client: packet type 4 outgoing, 0 to us")
    cap = one_conn_capture("sll2", LINKTYPE_LINUX_SLL2, t=T0 + 34 * S)
    for r in cap.records:
        r.l2["pkttype"] = 4 if r.side == "c" else 0
        r.l2["ifindex"] = 2
    out["sll2.pcap"] = write_pcap(outdir, "sll2.pcap", cap, "LINKTYPE_LINUX_SLL2 (276), ifindex 2")
    cap = one_conn_capture("raw-ip", LINKTYPE_RAW, t=T0 + 35 * S, client=("10.8.0.6", 40312),
                           server=("10.8.0.1", 80))
    out["raw-ip.pcap"] = write_pcap(outdir, "raw-ip.pcap", cap, "LINKTYPE_RAW (101): IPv4 packets, "
                                    "no link header (a tun interface)")
    cap = one_conn_capture("raw-dlt12", LINKTYPE_RAW_DLT12, t=T0 + 36 * S,
                           client=("10.8.0.6", 40314), server=("10.8.0.1", 80))
    out["raw-dlt12.pcap"] = write_pcap(outdir, "raw-dlt12.pcap", cap, "link type 12 (DLT_RAW as "
                                       "most BSDs and Linux number it): IPv4, no link header")
    cap = one_conn_capture("loop", LINKTYPE_LOOP, t=T0 + 37 * S, client=("127.0.0.1", 33870),
                           server=("127.0.0.1", 8080), rtt=60 * US, proc=30 * US)
    out["loop.pcap"] = write_pcap(outdir, "loop.pcap", cap, "DLT_LOOP (108, OpenBSD loopback): "
                                  "4-byte address family in network byte order (AF_INET = 2)")

    # VLAN: one connection with a single 802.1Q tag, one with 802.1ad outer + 802.1Q inner
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("vlan-qinq")
    a = short_http(cap, rng, ("192.168.10.5", 49822), ("192.168.20.8", 80), T0 + 38 * S,
                   l2={"vlans": [("802.1q", 10)]})
    b = short_http(cap, rng, ("172.16.30.7", 51002), ("172.16.40.9", 80), T0 + 38 * S + 300 * MS,
                   l2={"vlans": [("802.1ad", 100), ("802.1q", 30)]})
    e = write_pcap(outdir, "vlan-qinq.pcap", cap, "Ethernet with VLAN tags: connection 0 single "
                   "802.1Q (VID 10); connection 1 QinQ, 802.1ad (0x88a8, VID 100) outer, 802.1Q "
                   "(VID 30) inner")
    e["vlan_tags_per_connection"] = [[["802.1q", 10]], [["802.1ad", 100], ["802.1q", 30]]]
    assert (a.truth_id, b.truth_id) == (0, 1)
    out["vlan-qinq.pcap"] = e

    # DLT_NULL, little-endian file = little-endian capturing host
    cap = Capture(LINKTYPE_NULL)
    rng = random.Random("null-loopback")
    short_http(cap, rng, ("127.0.0.1", 52410), ("127.0.0.1", 8000), T0 + 39 * S,
               rtt=80 * US, proc=30 * US, l2={"af": 2})
    short_http(cap, rng, ("::1", 52412), ("::1", 8000), T0 + 39 * S + 200 * MS,
               rtt=80 * US, proc=30 * US, l2={"af": 30})
    q = DNS(id=0x4A11, rd=1, qd=DNSQR(qname="localhost.", qtype="AAAA"))
    ans = DNS(id=0x4A11, qr=1, rd=1, ra=1, qd=DNSQR(qname="localhost.", qtype="AAAA"),
              an=DNSRR(rrname="localhost.", type="AAAA", ttl=0, rdata="::1"))
    cap.udp(("::1", 60001), ("::1", 53), q, T0 + 39 * S + 500 * MS, l2={"af": 24})
    cap.udp(("::1", 53), ("::1", 60001), ans, T0 + 39 * S + 500 * MS + 90 * US, l2={"af": 28})
    e = write_pcap(outdir, "null-loopback.pcap", cap, "DLT_NULL (0), address family in the "
                   "capturing host's (little-endian) byte order: IPv4 connection with AF 2, IPv6 "
                   "connection with AF 30 (macOS), IPv6 UDP query with AF 24 (NetBSD/OpenBSD) and "
                   "its answer with AF 28 (FreeBSD)")
    e["address_families"] = {"2": "IPv4 connection 0", "30": "IPv6 connection 1",
                             "24": "IPv6 UDP query", "28": "IPv6 UDP answer"}
    e["address_family_packets"] = {str(af): sum(r.l2["af"] == af for r in cap.records)
                                   for af in (2, 30, 24, 28)}
    out["null-loopback.pcap"] = e

    # IPv6 with hop-by-hop and destination options before TCP (client's packets only)
    def v6ext(side, pkt):
        if side != "c":
            return pkt
        ip6 = pkt[IPv6]
        tcp = ip6.payload
        ip6.remove_payload()
        return (ip6 / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * 4)])
                / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * 4)]) / tcp)
    cap = one_conn_capture("ipv6-ext", LINKTYPE_ETHERNET, t=T0 + 40 * S,
                           client=("2001:db8:1::50", 50110), server=("2001:db8:2::80", 80),
                           l3_hook=v6ext)
    e = write_pcap(outdir, "ipv6-ext.pcap", cap, "IPv6; every client packet carries a hop-by-hop "
                   "options header and a destination options header (PadN) before TCP; server "
                   "packets have none")
    e["ipv6_extension_headers"] = {"client": ["hop-by-hop (0)", "destination options (60)"],
                                   "server": []}
    out["ipv6-ext.pcap"] = e

    # IPv4 options: client packets Router Alert (IHL 6), server packets Record Route (IHL 15)
    def v4opts(side, pkt):
        ip = pkt[IP]
        ip.options = ([IPOption_Router_Alert()] if side == "c"
                      else [IPOption_RR(pointer=12, routers=["192.0.2.1", "192.0.2.2"] + ["0.0.0.0"] * 7)])
        return pkt
    cap = one_conn_capture("ipv4-options", LINKTYPE_ETHERNET, t=T0 + 41 * S, l3_hook=v4opts)
    e = write_pcap(outdir, "ipv4-options.pcap", cap, "IPv4 with options: client packets Router "
                   "Alert (IHL 6), server packets Record Route with 9 slots (IHL 15, the maximum)")
    e["ipv4_ihl"] = {"client": 6, "server": 15}
    out["ipv4-options.pcap"] = e

    out.update(sample_frags(outdir))
    out.update(sample_multi_if(outdir))
    return out


def sample_frags(outdir: str) -> dict:
    """The client's request segment crosses a link with MTU 500: routers fragment it.
    The first copy loses its middle fragment (a set that never completes); the
    client retransmits on RTO and all three fragments of the copy arrive."""
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("ipv4-frags")
    c = new_conn(cap, rng, ("198.51.100.33", 47120), ("203.0.113.80", 80), T0 + 42 * S,
                 rtt=40 * MS, near="s", ttl_c=55)
    c.handshake()
    req = http_request("POST", "/upload", [("Host", "www.example.com"), ("User-Agent", UA_CURL),
                                           ("Accept", "*/*"),
                                           ("Content-Type", "application/octet-stream")],
                       bytes(rng.randrange(256) for _ in range(860)))
    seq0 = c.nxt["c"]
    frag_sizes = [480, 480, len(req.data) + 20 - 960]
    c.send_fragmented("c", req.data, frag_sizes, lost=(1,), dt=5 * MS)
    recs = c.send_fragmented("c", req.data, frag_sizes, dt=(270 * MS), retransmission=True)
    c.nxt["c"] = seq0 + len(req.data)
    c._message("request", [req], recs, seq0, True)
    c.respond(nginx(c, 201, "Created", "text/plain", b"stored 860 bytes\n"), dt=2 * MS)
    c.ack("c")
    c.close("c")
    e = write_pcap(outdir, "ipv4-frags.pcap", cap, "a TCP segment of about 1 kB (an HTTP POST) in "
                   "IPv4 fragments of 480+480+rest bytes: the first copy misses its middle "
                   "fragment and never completes; the retransmitted copy is complete")
    e["ipv4_fragments"] = {"records": 5, "sets_complete": 1, "sets_incomplete": 1,
                           "incomplete_set_ip_id": recs[0].l3.id - 1,
                           "complete_set_ip_id": recs[0].l3.id}
    e["notes"] = ["retransmissions counts the TCP sender's second copy of the segment, although "
                  "the first copy never completed in the capture"]
    return {"ipv4-frags.pcap": e}


def sample_multi_if(outdir: str) -> dict:
    """pcapng, little-endian, written block by block: 3 interfaces."""
    ifaces = [  # (link type, if_tsresol byte, name, snaplen)
        (LINKTYPE_ETHERNET, 6, "eth0", 262144),
        (LINKTYPE_RAW, 9, "tun0", 262144),
        (LINKTYPE_ETHERNET, 0x8A, "eth1", 262144),     # 2^-10 s units
    ]
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("multi-if")
    a = short_http(cap, rng, ("192.168.1.50", 51600), ("198.51.100.7", 80), T0 + 43 * S,
                   iface=0)
    b = short_http(cap, rng, ("10.8.0.6", 40400), ("10.8.0.1", 80), T0 + 43 * S + 37 * MS + 11,
                   iface=1, rtt=23_456_789, proc=51_113)
    c = short_http(cap, rng, ("172.16.5.20", 55001), ("172.16.5.1", 80), T0 + 43 * S + 80 * MS,
                   iface=2, tick=1_953_125, rtt=10 * 1_953_125, proc=1_953_125)
    # one SPB: client's ACK of the response on eth0; one obsolete PB: request on tun0
    a_ack = [r for r in a.records if r.side == "c" and r.flags == "A"][1]
    a_ack.block = "SPB"
    b_req = [r for r in b.records if r.plen][0]
    b_req.block = "PB"

    blocks = [pcapng_shb([(2, b"x86_64"), (3, b"Linux 6.1.0"), (4, b"pcapstats samples/make_samples.py")])]
    for lt, res, name, snap in ifaces:
        blocks.append(pcapng_idb(lt, snap, [(2, name.encode()), (9, bytes([res]))]))
    truth = cap.truth()                        # numbers the connections
    detail = []
    for r in cap.sorted_records():
        lt, res, _, snap = ifaces[r.iface]
        frame = encapsulate(r, lt)
        units = tsresol_units(r.ts, res)
        direction = 2 if r.side == "c" else 1            # epb_flags: 1 inbound, 2 outbound
        if r.block == "EPB":
            blocks.append(pcapng_epb(r.iface, units, frame, snap, [(2, direction.to_bytes(4, "little"))]))
        elif r.block == "SPB":
            assert r.iface == 0
            blocks.append(pcapng_spb(frame, snap))
        else:
            blocks.append(pcapng_pb(r.iface, units, frame, snap, drops=0))
        detail.append({"block": r.block, "interface": r.iface,
                       "ts_ns": None if r.block == "SPB" else r.ts,
                       "ts_units": None if r.block == "SPB" else units,
                       "caplen": min(len(frame), snap), "origlen": len(frame),
                       "tcp_connection": r.conn.truth_id if r.conn else None})
    data = b"".join(blocks)
    with open(os.path.join(outdir, "multi-if.pcapng"), "wb") as f:
        f.write(data)
    e = {"description": "pcapng (little-endian, written block by block): SHB, 3 IDBs (eth0 "
                        "Ethernet us; tun0 LINKTYPE_RAW ns; eth1 Ethernet 2^-10 s), EPBs, one "
                        "Simple Packet Block (no timestamp, interface 0) and one obsolete Packet "
                        "Block (type 2, interface 1)",
         "format": "pcapng", "byte_order": "little",
         "ts_resolution": ["us", "ns", "2^-10 s"], "snaplen": [i[3] for i in ifaces],
         "link_types": [i[0] for i in ifaces],
         "link_type_names": [LINKTYPE_NAMES[i[0]] for i in ifaces],
         "interfaces": [{"link_type": lt, "if_tsresol": res, "name": name, "snaplen": snap}
                        for lt, res, name, snap in ifaces]}
    e.update(truth)
    e["records_cut_by_snaplen"] = 0
    e["blocks"] = {"SHB": 1, "IDB": 3, "EPB": sum(d["block"] == "EPB" for d in detail),
                   "SPB": 1, "PB": 1}
    e["packet_detail"] = detail
    e["connection_interface"] = [a.iface, b.iface, c.iface]
    return {"multi-if.pcapng": e}


# ---------------------------------------------------------------- more scenarios

def sample_dns(outdir: str) -> dict:
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("dns-udp")
    me, resolver = "192.168.1.10", ("192.168.1.1", 53)
    t = T0 + 50 * S
    queries = [  # (src port, id, name, qtype, answer records, rcode, dt query, dt answer)
        (51234, 0x1A2B, "www.example.com.", "A",
         [DNSRR(rrname="www.example.com.", type="A", ttl=300, rdata="203.0.113.80")], 0, 0, 9 * MS),
        (51234, 0x3C4D, "www.example.com.", "AAAA",
         [DNSRR(rrname="www.example.com.", type="AAAA", ttl=300, rdata="2001:db8::80")], 0,
         40 * US, 9 * MS + 300 * US),
        (40113, 0x5E6F, "cdn.example.net.", "A",
         [DNSRR(rrname="cdn.example.net.", type="CNAME", ttl=60, rdata="edge7.cdn.example.net."),
          DNSRR(rrname="edge7.cdn.example.net.", type="A", ttl=60, rdata="198.51.100.77")], 0,
         300 * MS, 300 * MS + 22 * MS),
        (53012, 0x7081, "nosuch.example.com.", "A", [], 3, 320 * MS, 320 * MS + 14 * MS),
    ]
    ipid = rng.getrandbits(16)
    for sport, qid, name, qtype, ans, rcode, dq, da in queries:
        q = DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
        r = DNS(id=qid, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=name, qtype=qtype),
                an=ans or None)
        cap.udp((me, sport), resolver, q, t + dq, ipid=ipid)
        cap.udp(resolver, (me, sport), r, t + da, ipid=ipid + 1000)
        ipid += 1
    short_http(cap, rng, (me, 50500), ("203.0.113.80", 80), t + 12 * MS, host="www.example.com",
               uri="/")
    e = write_pcap(outdir, "dns-udp.pcap", cap, "DNS over UDP: A and AAAA from one socket (one "
                   "flow, 2 queries), a CNAME answer, an NXDOMAIN; and one HTTP connection")
    e["dns"] = {"queries": 4, "responses": 4, "nxdomain": 1}
    return {"dns-udp.pcap": e}


def sample_rotated(outdir: str) -> dict:
    """One capture split at whole seconds (as tcpdump -G 1 would), 3 files.
    A response's two segments fall into files 1 and 2; a connection runs
    from file 2 into file 3."""
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("rotated")
    t = T0 + 60 * S
    srv, host = ("203.0.113.80", 80), "www.example.com"
    c1 = new_conn(cap, rng, ("198.51.100.40", 50001), srv, t + 400 * MS, rtt=30 * MS)
    c1.handshake()
    c1.exchange(get("/", host, UA_CURL), nginx(c1, 200, "OK", "text/html", html_body(rng, "Home", 4)),
                server_time=1 * MS)
    c1.at(t + 999 * MS)
    c1.request(get("/big.css", host, UA_CURL))
    c1.respond(nginx(c1, 200, "OK", "text/css", css_body(rng, 30)), dt=500 * US, gap=900 * US)
    c1.ack("c")
    c1.at(t + 1700 * MS)
    c2 = new_conn(cap, rng, ("198.51.100.41", 50002), srv, t + 1800 * MS, rtt=30 * MS)
    c2.handshake()
    c2.exchange(get("/a", host, UA_CURL), nginx(c2, 200, "OK", "text/plain", b"a" * 100),
                server_time=1 * MS)
    c1.close("c")
    c2.at(t + 2300 * MS)
    c2.exchange(get("/b", host, UA_CURL), nginx(c2, 200, "OK", "text/plain", b"b" * 100),
                server_time=1 * MS)
    c2.close("s")
    recs = cap.sorted_records()
    bounds = [t + S, t + 2 * S]
    parts = [[r for r in recs if r.ts < bounds[0]],
             [r for r in recs if bounds[0] <= r.ts < bounds[1]],
             [r for r in recs if r.ts >= bounds[1]]]
    # the response straddles the first boundary
    assert any(r.conn is c1 and r.side == "s" and r.plen for r in parts[0][-3:])
    out = {}
    names = [f"rotated-{i}.pcap" for i in (1, 2, 3)]
    for name, part in zip(names, parts):
        frames = [(r.ts, encapsulate(r, cap.linktype)) for r in part]
        data, _ = pcap_bytes(frames, cap.linktype)
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        out[name] = {"description": "one of 3 files of a capture rotated at whole seconds; "
                                    "this entry is the truth of this file alone (a connection "
                                    "whose SYN is in an earlier file has no handshake here, a "
                                    "message cut by the rotation is not counted); the merged "
                                    "truth is groups.rotated",
                     "format": "pcap", "byte_order": "little", "ts_resolution": "us",
                     "snaplen": 262144, "link_types": [cap.linktype],
                     "link_type_names": [LINKTYPE_NAMES[cap.linktype]],
                     "group": "rotated"}
        out[name].update(cap.truth(part))
        out[name]["records_cut_by_snaplen"] = 0
    g = {"files": names, "description": "rotated-1..3 read as one capture, in file order; "
                                        "connection ids here are those of the merged set",
         "link_types": [cap.linktype]}
    g.update(cap.truth())
    g["notes"] = ["conn 0's response to GET /big.css has its first segment in rotated-1.pcap and "
                  "the rest in rotated-2.pcap", "conn 0 closes in rotated-2.pcap; conn 1 starts in "
                  "rotated-2.pcap and closes in rotated-3.pcap"]
    return out, {"rotated": g}


def sample_port_reuse(outdir: str) -> dict:
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("port-reuse")
    cli, srv = ("192.168.1.60", 50123), ("192.168.1.5", 8080)
    a = new_conn(cap, rng, cli, srv, T0 + 70 * S, near="c", rtt=1 * MS)
    a.handshake()
    a.exchange(get("/v1/items", "api.internal", UA_CURL), nginx(a, 200, "OK", "application/json",
                                                                b'{"items":[]}\n'), server_time=2 * MS)
    a.wait(50 * MS)
    a.rst("c")                                 # SO_LINGER 0 close: RST, no TIME_WAIT
    b = new_conn(cap, rng, cli, srv, a.t + 800 * MS, near="c", rtt=1 * MS)
    assert b.isn["c"] != a.isn["c"]
    b.handshake()
    b.exchange(get("/v1/items/7", "api.internal", UA_CURL),
               nginx(b, 200, "OK", "application/json", b'{"id":7}\n'), server_time=2 * MS)
    b.wait(20 * MS)
    b.close("c")
    e = write_pcap(outdir, "port-reuse.pcap", cap, "one 4-tuple, two connections: the first "
                   "closed by RST, then a new SYN with a new ISN 800 ms later")
    return {"port-reuse.pcap": e}


def sample_midstream(outdir: str) -> dict:
    """Starts mid-connection: the tail of an earlier response first, no SYN.
    The client uses a low port (1042, an old Windows range) and the server
    8080, so 'the higher port is the client' would pick wrong."""
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("midstream")
    c = new_conn(cap, rng, ("192.168.1.70", 1042), ("192.168.1.8", 8080), T0 + 80 * S,
                 near="c", rtt=2 * MS, ttl_s=64, ttl_c=128)
    c.send("s", html_body(rng, "earlier page", 5)[:700])   # tail of a response that began earlier
    c.ack("c")
    c.wait(1500 * MS)
    c.exchange(get("/app/status", "intranet:8080", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1)"),
               nginx(c, 200, "OK", "text/plain", b"running\n"), server_time=3 * MS)
    c.wait(200 * MS)
    c.close("c")
    e = write_pcap(outdir, "midstream.pcap", cap, "capture starts mid-connection (no SYN): first "
                   "packet is the server's tail of an earlier response; the client (port 1042) "
                   "is the side that sends the HTTP request, not the higher port (8080)")
    e["notes"] = ["the 700-byte server segment at the start is the tail of a response whose "
                  "start is not in the capture: it is not counted as a response"]
    return {"midstream.pcap": e}


def sample_snaplen(outdir: str) -> dict:
    cap = one_conn_capture("snaplen", LINKTYPE_ETHERNET, t=T0 + 90 * S, body_paras=4)
    e = write_pcap(outdir, "snaplen.pcap", cap, "snaplen 96: every frame longer than 96 bytes is "
                   "cut (incl_len 96 < orig_len); HTTP payload past byte 42 of each segment is "
                   "missing; the request and status lines are inside the first 42 bytes",
                   snaplen=96)
    e["notes"] = ["http_requests / http_responses count the messages sent on the wire; only "
                  "their first 42 bytes are in the file"]
    return {"snaplen.pcap": e}


def sample_broken(outdir: str) -> dict:
    cap = Capture(LINKTYPE_ETHERNET)
    rng = random.Random("broken-truncated")
    c = new_conn(cap, rng, ("192.168.1.80", 50600), ("203.0.113.80", 80), T0 + 95 * S, near="c",
                 rtt=15 * MS)
    c.handshake()
    c.exchange(get("/", "www.example.com", UA_CURL), nginx(c, 200, "OK", "text/html",
                                                           html_body(rng, "Home", 2)), server_time=2 * MS)
    c.wait(300 * MS)
    c.request(get("/report.csv", "www.example.com", UA_CURL))
    body = "".join(f"{i},{words(rng, 3)},{rng.randrange(10**6)}\n" for i in range(90)).encode()
    segs = c.respond(nginx(c, 200, "OK", "text/csv", body), truth=True, dt=c.rtt + 4 * MS)
    assert len(segs) >= 2
    # tcpdump was killed while writing the first segment of that response: drop the rest
    for r in segs[1:]:
        cap.records.remove(r)
        c.records.remove(r)
    e = write_pcap(outdir, "broken-truncated.pcap", cap, "valid capture whose last record (the "
                   "first segment of the second response) is cut after 700 of its bytes (16-byte record "
                   "header included)",
                   cut_last_at=700)
    e["notes"] = ["truth counts the complete records before the cut one; the second request is "
                  "complete, its response is not"]
    return {"broken-truncated.pcap": e}


# ---------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    outdir = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(outdir, exist_ok=True)
    files: dict = {}
    files.update(sample_http_keepalive(outdir))
    files.update(sample_lb(outdir))
    files.update(sample_formats(outdir))
    files.update(sample_dns(outdir))
    rot, groups = sample_rotated(outdir)
    files.update(rot)
    files.update(sample_port_reuse(outdir))
    files.update(sample_midstream(outdir))
    files.update(sample_snaplen(outdir))
    files.update(sample_broken(outdir))
    truth = {
        "about": __doc__.strip().split("\n\n", 2)[2],
        "generator": "samples/make_samples.py",
        "timestamps": "integer nanoseconds since the Unix epoch",
        "files": dict(sorted(files.items())),
        "groups": groups,
    }
    with open(os.path.join(outdir, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
