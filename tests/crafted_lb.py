"""Two crafted captures of the same F5 BIG-IP virtual server, before and after a change.

Built packet by packet with ``samples/_builder.py`` (scapy), so every figure
is known by construction. The capture point is the client side of the
balancer (clients -> VIP 192.0.2.10:80); the backend of each request is the
pool member its ``BIGipServerpool_web`` cookie names (decoded ``ip:port``).
Sessions are keyed by the application cookie ``JSESSIONID`` (32 hex digits).

``before`` (cookie persistence healthy, keep-alive timeout 5 s):
  24 sessions, client 198.51.100.(10+i), member 10.1.0.(1 + i % 2):80;
  each session: one connection carrying 3 requests (the second with a query
  string ``?item=N&token=<hex>``); the server closes it after 5 s idle.
  -> 72 requests on 24 connections, reuse 48/72, persistence 24/24 sessions
     and 72/72 requests, 0 breaks, 2 backends with 36 requests each.

``after`` (a third member 10.1.0.3 joined the pool and persistence broke for
every third session; half the clients now send ``Connection: close``;
keep-alive timeout raised to 15 s):
  sessions with i % 3 == 0: the third request lands on 10.1.0.3 (its response
  re-inserts the cookie) -> 8 breaks, 16/24 persistent sessions, 64/72
  requests on their primary backend;
  sessions with odd i: one connection per request (``Connection: close``,
  the server closes at once) -> 12 sessions x 3 connections;
  sessions with even i: one connection, 3 requests, closed after 15 s idle.
  -> 72 requests on 12 + 36 = 48 connections, reuse 24/72.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
if str(SAMPLES) not in sys.path:
    sys.path.insert(0, str(SAMPLES))

from _builder import (LINKTYPE_ETHERNET, MS, S, US, Capture, encapsulate,  # noqa: E402
                      http_request, http_response, pcap_bytes)

from pcapstats.affinity.bigip import encode_bigip_ipv4  # noqa: E402

T0 = 1710253000 * S
VIP = ("192.0.2.10", 80)
MEMBERS = [("10.1.0.1", 80), ("10.1.0.2", 80), ("10.1.0.3", 80)]
SESSIONS = 24
HOST = "shop.example.net"
POOL_COOKIE = "BIGipServerpool_web"


def _request(uri: str, cookie: str | None, close: bool) -> object:
    headers = [("Host", HOST), ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
               ("Accept", "*/*")]
    if cookie:
        headers.append(("Cookie", cookie))
    headers.append(("Connection", "close" if close else "keep-alive"))
    return http_request("GET", uri, headers)


def _response(set_cookies: list[str], close: bool, body: bytes) -> object:
    headers = [("Server", "nginx"), ("Content-Type", "text/html")]
    headers += [("Set-Cookie", c) for c in set_cookies]
    headers.append(("Connection", "close" if close else "keep-alive"))
    return http_response(200, "OK", headers, body)


def build(variant: str, path: Path) -> dict[str, str]:
    """Write the ``before`` or ``after`` capture to ``path``; return the raw secrets
    it carries (cookie values and query strings) for the redaction tests."""
    assert variant in ("before", "after")
    after = variant == "after"
    rng = random.Random(f"pcapstats-compare-{variant}")
    cap = Capture(LINKTYPE_ETHERNET)
    secrets: dict[str, str] = {}
    for i in range(SESSIONS):
        client_ip = f"198.51.100.{10 + i}"
        sid = f"{rng.getrandbits(128):032x}"
        token = f"{rng.getrandbits(64):016x}"
        secrets[f"JSESSIONID {i}"] = sid
        secrets[f"query {i}"] = f"item={i}&token={token}"
        member = MEMBERS[i % 2]
        pool = encode_bigip_ipv4(*member)
        secrets[f"pool {i}"] = pool
        uris = ["/", f"/cart?item={i}&token={token}", "/checkout"]
        split = after and i % 2 == 1               # Connection: close, one request each
        timeout = (15 if after else 5) * S
        start = T0 + i * 200 * MS
        conn = None
        for k, uri in enumerate(uris):
            moved = after and i % 3 == 0 and k == 2
            set_cookies = []
            if k == 0:
                set_cookies.append(f"JSESSIONID={sid}; Path=/; HttpOnly")
            if k == 0 or moved:
                target = MEMBERS[2] if moved else member
                set_cookies.append(f"{POOL_COOKIE}={encode_bigip_ipv4(*target)}; path=/")
                if moved:
                    secrets[f"moved {i}"] = encode_bigip_ipv4(*target)
            cookie = None if k == 0 else f"JSESSIONID={sid}; {POOL_COOKIE}={pool}"
            if conn is None:
                port = 40000 + 10 * i + k
                conn = cap.tcp((client_ip, port), VIP, isn_c=rng.getrandbits(32),
                               isn_s=rng.getrandbits(32), t=start + k * 600 * MS,
                               ipid_c=rng.getrandbits(16), ipid_s=rng.getrandbits(16),
                               near="s", rtt=20 * MS, proc=60 * US, tick=US)
                conn.handshake()
            else:
                conn.wait(300 * MS)
            conn.request(_request(uri, cookie, split))
            conn.respond(_response(set_cookies, split, b"<html>ok</html>\n"), dt=2 * MS)
            conn.ack("c")
            if split:
                conn.close("s", dt=100 * US)
                conn = None
        if conn is not None:                    # idle from the response's end: exactly timeout
            conn.close("s", dt=timeout - 20 * MS)
    recs = cap.sorted_records()
    frames = [(r.ts, encapsulate(r, cap.linktype)) for r in recs]
    data, _info = pcap_bytes(frames, cap.linktype)
    path.write_bytes(data)
    return secrets


if __name__ == "__main__":   # pragma: no cover - python tests/crafted_lb.py OUTDIR
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for v in ("before", "after"):
        build(v, out / f"{v}.pcap")
