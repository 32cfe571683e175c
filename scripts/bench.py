#!/usr/bin/env python3
"""Benchmark: pcapstats against tshark and a plain dpkt loop on the same capture.

    python scripts/bench.py --packets 1000000 [--keep DIR] [--runs 1] [--no-tshark]

Generates a deterministic HTTP-heavy capture with its own generator (keep-alive
connections, headers split across segments, multi-segment responses with delayed
ACKs, some retransmissions, many connections open at once), shaped like the
reference capture of the speed issue: per million packets about 830 MB, 17k
connections and 60k requests. Then runs each tool in
alternation on the same file and prints wall time, packets/s, MB/s and peak
memory (max RSS of the child process), with ratios against pcapstats.
With ``--scan N`` the same tools then run on a generated capture of N packets of
SYN scans (two packets a connection: the many-connections extreme of public
traces, where per-connection work decides the speed); with ``--browser N``, pcapstats
and tcptrace on N packets of the main shape with a browser's headers (what a request
weighs in memory). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ETH = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
_rec = struct.Struct("<IIII")


def _ip(a: int) -> bytes:
    return struct.pack("!I", a)


def _packet(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
            payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
    total = 20 + 20 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, _ip(src), _ip(dst))
    return ETH + ip + tcp + payload


def _browser_heads(rng: random.Random, client: int, n: int) -> tuple[str, str]:
    """A browser's request header lines after Host (about 1 kB: the agent, Accept
    lists, a referrer, the session cookie among analytics ones; no final CRLF) and the
    extra lines of its response (about 350 bytes: caching, security headers, a request
    id), varying per request as real ones do."""
    ga = f"GA1.2.{rng.randrange(10**9)}.{1700000000 + (client & 0xFFFF)}"
    req = ("User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
           "like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
           "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
           "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
           "Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-GB,en;q=0.9,"
           "de;q=0.8,fr;q=0.7\r\n"
           f"Referer: https://shop.example/category/{rng.randrange(500)}?page={n}&sort=price\r\n"
           'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"\r\n'
           "sec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: \"Windows\"\r\n"
           "Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: same-origin\r\n"
           f"Cookie: _ga={ga}; _gid=GA1.2.{rng.randrange(10**9)}.{n}; consent=analytics%3Dtrue"
           f"%26ads%3Dfalse; JSESSIONID=s{client & 0xFFF}; cart={rng.getrandbits(128):032x}; "
           f"recently_viewed={'%2C'.join(str(rng.randrange(10**6)) for _ in range(6))}")
    resp = ("Cache-Control: private, max-age=0, must-revalidate\r\n"
            f"ETag: W/\"{rng.getrandbits(80):020x}\"\r\n"
            "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
            "X-Content-Type-Options: nosniff\r\nX-Frame-Options: SAMEORIGIN\r\n"
            "Vary: Accept-Encoding, Cookie\r\n"
            f"X-Request-Id: {rng.getrandbits(128):032x}\r\n"
            "Server: nginx\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n")
    return req, resp


def generate(path: Path, packets: int, seed: int = 1, browser: bool = False) -> dict:
    """Write a capture of about ``packets`` packets; return what was built. ``browser``:
    with a browser's headers (about 1.1 kB a request head, 450 B a response head)
    instead of a script's (190 B and 80 B)."""
    rng = random.Random(seed)
    server = 0x0A000050
    out = open(path, "wb", buffering=1 << 22)
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    ts = 1_700_000_000_000_000
    written = conns = requests = 0
    active: list[list] = []
    body = b"x" * 1400
    while written < packets:
        while len(active) < 40:
            cport = 1024 + (conns * 7) % 60000
            client = 0x0A010000 + (conns % 5000)
            nreq = rng.randint(1, 6)
            active.append([client, cport, rng.randrange(1 << 32), rng.randrange(1 << 32),
                           nreq, 0, 0])
            conns += 1
        st = active[rng.randrange(len(active))]
        client, cport, cseq, sseq, nreq, done, phase = st
        pk: list[bytes] = []
        if phase == 0:
            pk.append(_packet(client, server, cport, 80, cseq, 0, 0x02, b""))
            pk.append(_packet(server, client, 80, cport, sseq, cseq + 1, 0x12, b""))
            pk.append(_packet(client, server, cport, 80, cseq + 1, sseq + 1, 0x10, b""))
            cseq += 1
            sseq += 1
            phase = 1
        elif done < nreq:
            lines = f"User-Agent: bench/1.0\r\nAccept: */*\r\nCookie: JSESSIONID=s{client & 0xFFF}"
            more_resp = ""
            if browser:
                lines, more_resp = _browser_heads(rng, client, done)
            req = (f"GET /item/{rng.randrange(10**6)}?session=abc HTTP/1.1\r\nHost: shop.example\r\n"
                   f"{lines}\r\n\r\n").encode()
            cut = len(req) // 2 if rng.random() < 0.3 else len(req)
            for part in (req[:cut], req[cut:]):
                if part:
                    pk.append(_packet(client, server, cport, 80, cseq, sseq, 0x18, part))
                    cseq += len(part)
            nseg = rng.randint(1, 17)
            size = 1400 * nseg - rng.randrange(200)
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                    f"Content-Length: {size}\r\n{more_resp}\r\n").encode()
            resp = head + body[:0] + (b"x" * size)
            off = n = 0
            while off < len(resp):
                seg = resp[off:off + 1400]
                pk.append(_packet(server, client, 80, cport, sseq + off, cseq, 0x18, seg))
                if rng.random() < 0.01:   # a retransmission
                    pk.append(_packet(server, client, 80, cport, sseq + off, cseq, 0x18, seg))
                off += len(seg)
                n += 1
                if n % 2 == 0 and off < len(resp):    # delayed ACK: one per two segments
                    pk.append(_packet(client, server, cport, 80, cseq, sseq + off, 0x10, b""))
            sseq += len(resp)
            pk.append(_packet(client, server, cport, 80, cseq, sseq, 0x10, b""))
            done += 1
            requests += 1
        else:
            pk.append(_packet(client, server, cport, 80, cseq, sseq, 0x11, b""))
            pk.append(_packet(server, client, 80, cport, sseq, cseq + 1, 0x11, b""))
            pk.append(_packet(client, server, cport, 80, cseq + 1, sseq + 1, 0x10, b""))
            active.remove(st)
            st = None
        if st is not None:
            st[2], st[3], st[5], st[6] = cseq, sseq, done, phase
        for p in pk:
            ts += rng.randrange(5, 400)
            out.write(_rec.pack(ts // 1_000_000, ts % 1_000_000, len(p), len(p)))
            out.write(p)
            written += 1
    out.close()
    return {"packets": written, "connections": conns, "requests": requests,
            "bytes": path.stat().st_size}


def generate_scan(path: Path, packets: int, seed: int = 1) -> dict:
    """A capture of many short connections, the other extreme of public traces: SYN
    scans of random addresses and ports, each SYN answered by a RST/ACK (Zeek's REJ),
    two packets a connection, 10 us apart. Per-connection work decides the speed
    here, not per-packet work."""
    rnd = random.Random(seed)
    ts = 1_700_000_000_000_000      # microseconds
    with open(path, "wb", buffering=1 << 22) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for _ in range(packets // 2):
            client = (10 << 24) | rnd.getrandbits(24)
            server = (192 << 24) | (168 << 16) | rnd.randrange(1024)
            sport, dport = rnd.randrange(1024, 65535), rnd.choice(
                (22, 23, 80, 443, 3389, 8080, rnd.randrange(1, 65535)))
            seq = rnd.getrandbits(32)
            for frame in (_packet(client, server, sport, dport, seq, 0, 0x02, b""),
                          _packet(server, client, dport, sport, 0, seq + 1, 0x14, b"")):
                ts += 10
                f.write(_rec.pack(ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
                f.write(frame)
    return {"connections": packets // 2}


SHAPES = ("sll2", "ipv6", "rotated")


def reshape(src: Path, shape: str) -> list[Path]:
    """The packets of ``src`` (Ethernet, IPv4) in another shape real captures have, made
    once next to it: "sll2", each behind a Linux cooked v2 header (what ``tcpdump -i any``
    writes); "ipv6", as IPv6 (addresses 2001:db8::<IPv4 address>); "rotated", cut into 10
    files of consecutive packets (``tcpdump -C``/``-G``)."""
    outs = [src.with_name(f"{src.stem}-{shape}-{k}.pcap") for k in range(10)] \
        if shape == "rotated" else [src.with_name(f"{src.stem}-{shape}.pcap")]
    if all(p.exists() for p in outs):
        return outs
    # (read record by record: a benchmark process of the capture's size would count in
    # the peak memory of the tools it then starts)
    src_f = open(src, "rb", buffering=1 << 22)
    header = bytearray(src_f.read(24))
    if shape == "sll2":
        struct.pack_into("<I", header, 20, 276)
    files = [open(p, "wb", buffering=1 << 22) for p in outs]
    for f in files:
        f.write(header)
    total = src.stat().st_size
    pos = 24
    pre = b"\x20\x01\x0d\xb8" + bytes(8)
    while pos + 16 <= total:
        sec, usec, incl, orig = _rec.unpack(src_f.read(16))
        frame = src_f.read(incl)
        out = files[min(9, (pos * 10) // total)] if shape == "rotated" else files[0]
        if shape == "sll2":
            frame = frame[12:14] + struct.pack("!HIHBB8s", 0, 2, 1, 0, 6, frame[6:12] + bytes(2)) \
                + frame[14:]
        elif shape == "ipv6":
            ip = frame[14:]
            plen = struct.unpack_from("!H", ip, 2)[0] - 20
            frame = frame[:12] + b"\x86\xdd" + struct.pack("!IHBB", 0x60000000, plen, 6, 64) \
                + pre + ip[12:16] + pre + ip[16:20] + ip[20:]
        out.write(_rec.pack(sec, usec, len(frame), orig - incl + len(frame)))
        out.write(frame)
        pos += 16 + incl
    src_f.close()
    for f in files:
        f.close()
    return outs


DPKT_LOOP = r"""
import sys, dpkt
flows = {}
with open(sys.argv[1], "rb") as f:
    for ts, buf in dpkt.pcap.Reader(f):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        t = ip.data
        k = (ip.src, t.sport, ip.dst, t.dport)
        if k not in flows and (ip.dst, t.dport, ip.src, t.sport) in flows:
            k = (ip.dst, t.dport, ip.src, t.sport)
        flows[k] = flows.get(k, 0) + 1
print(len(flows))
"""


def run(cmd: list[str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds (user + system, with the
    workers it waited for) of one child process."""
    t0 = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ)  # noqa: S606
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="Folder to keep the generated capture in.")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--no-dpkt", action="store_true")
    ap.add_argument("--jobs", type=int, nargs="*", default=[2],
                    help="Also time pcapstats with --jobs N (peak MB: the largest process).")
    ap.add_argument("--scan", type=int, default=0, metavar="PACKETS",
                    help="Then time the same tools on a generated capture of that many packets "
                         "of SYN scans (two packets a connection).")
    ap.add_argument("--browser", type=int, default=0, metavar="PACKETS",
                    help="Then time pcapstats and tcptrace on a generated capture of that many "
                         "packets of the same shape, with a browser's headers (1.1 kB a request).")
    ap.add_argument("--shapes", nargs="*", default=[], choices=SHAPES,
                    help="Also time pcapstats on the same packets as Linux cooked v2 frames, "
                         "as IPv6, or cut into 10 rotated files.")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pcapstats-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    cap = folder / f"bench-{args.packets}.pcap"
    if not cap.exists():
        info = generate(cap, args.packets)
        print(f"generated {cap}: {info}")
    # time the command as an installed package runs it, from bytecode: a checkout run with
    # PYTHONDONTWRITEBYTECODE set would otherwise compile every module on every run
    import compileall
    import pcapstats
    compileall.compile_dir(os.path.dirname(pcapstats.__file__), quiet=1)
    table(cap, args.packets, tools_for(cap, args), args.runs, folder)
    if args.scan:
        scan = folder / f"scan-{args.scan}.pcap"
        if not scan.exists():
            print(f"generated {scan}: {generate_scan(scan, args.scan)}")
        table(scan, args.scan // 2 * 2, tools_for(scan, args, shapes=False), args.runs, folder)
    if args.browser:
        browser = folder / f"browser-{args.browser}.pcap"
        if not browser.exists():
            print(f"generated {browser}: {generate(browser, args.browser, browser=True)}")
        tools = tools_for(browser, args, shapes=False)
        table(browser, args.browser, {k: v for k, v in tools.items()
                                      if k.startswith(("pcapstats", "tcptrace"))},
              args.runs, folder)


def tools_for(cap: Path, args: argparse.Namespace, shapes: bool = True) -> dict[str, list[str]]:
    """The commands timed on ``cap``: the whole job of pcapstats (every layer, the JSON
    and the HTML report; the terminal report rendered to /dev/null, as for a user), with
    --jobs and in other shapes, and the other tools."""
    report = [sys.executable, "-m", "pcapstats.cli", "report", str(cap)]
    tools: dict[str, list[str]] = {"pcapstats report": report}
    for jobs in args.jobs:
        tools[f"pcapstats report -j {jobs}"] = report + ["--jobs", str(jobs)]
    for shape in args.shapes if shapes else ():
        tools[f"pcapstats report ({shape})"] = report[:-1] + [str(p) for p in reshape(cap, shape)]
    if shutil.which("tcptrace"):
        tools["tcptrace -n (no HTTP)"] = ["tcptrace", "-n", str(cap)]
    if not args.no_dpkt:
        tools["dpkt loop (flow table)"] = [sys.executable, "-c", DPKT_LOOP, str(cap)]
    if not args.no_tshark and shutil.which("tshark"):
        tools["tshark -Y http.request"] = [
            "tshark", "-n", "-r", str(cap), "-Y", "http.request", "-T", "fields",
            "-e", "tcp.stream", "-e", "http.request.method"]
        tools["tshark -z conv,tcp"] = ["tshark", "-n", "-q", "-r", str(cap), "-z", "conv,tcp"]
    return tools


def table(cap: Path, npk: int, tools: dict[str, list[str]], runs: int, folder: Path) -> None:
    """Run the tools in alternation ``runs`` times on ``cap`` (``npk`` packets) and print
    their table."""
    size = cap.stat().st_size
    # warm cache, as the reference figures were taken: read the file once first (else the
    # first tool of the first run pays for the disk)
    with open(cap, "rb") as f:
        while f.read(8 << 20):
            pass
    results: dict[str, list[tuple[float, int, float]]] = {k: [] for k in tools}
    os.chdir(folder)        # pcapstats writes reports/ here
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    for _ in range(runs):
        for name, cmd in tools.items():
            os.dup2(devnull, 1)
            try:
                results[name].append(run(cmd))
            finally:
                os.dup2(saved, 1)
    base = min(w for w, _, _ in results["pcapstats report"])
    cbase = min(c for _, _, c in results["pcapstats report"])
    print(f"\ncapture: {npk:,} packets, {size / 1e6:,.0f} MB; {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}; Python {sys.version.split()[0]}")
    # CPU seconds are steadier than wall seconds on a shared virtual machine
    print(f"{'tool':<26} {'wall s':>8} {'pkts/s':>10} {'MB/s':>7} {'peak MB':>8} "
          f"{'x pcapstats':>11} {'cpu s':>7} {'cpu x':>6}")
    for name, rs in results.items():
        wall = min(w for w, _, _ in rs)
        rss = max(r for _, r, _ in rs)
        cpu = min(c for _, _, c in rs)
        print(f"{name:<26} {wall:>8.2f} {npk / wall:>10,.0f} {size / wall / 1e6:>7.1f} "
              f"{rss / 1e6:>8.0f} {wall / base:>11.2f} {cpu:>7.2f} {cpu / cbase:>6.2f}")


if __name__ == "__main__":
    main()
