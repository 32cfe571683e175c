"""tshark as an independent reference: per-stream figures derived from its dissection.

Connection figures are derived from tshark's own stream numbering and flag
fields with the definitions of DOMAIN.md (a complete handshake is SYN, then
SYN/ACK from the other side, then an ACK from the client without SYN/RST), so
a test compares pcapstats to tshark's reading of the packets, not to itself.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

TSHARK = shutil.which("tshark")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"
CAPTURES = sorted(p for p in SHARED.glob("*") if p.suffix in (".pcap", ".pcapng", ".gz")) \
    if SHARED.is_dir() else []
#: the marks of a test module that compares with tshark on the shared captures
MARKS = [
    pytest.mark.tshark,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared captures folder {SHARED} is absent"),
    pytest.mark.skipif(TSHARK is None, reason="tshark is not installed"),
]
# ICMP errors and sFlow samples quote TCP headers, which tshark dissects as TCP
# and gives stream numbers of their own; they are not connections.
TCP_FILTER = "tcp && !icmp && !icmpv6 && !sflow"


@dataclass
class StreamFigures:
    packets: int = 0
    syn: int = 0
    synack: int = 0
    fin: int = 0
    rst: int = 0
    complete: bool = False
    requests: int = 0
    responses: int = 0


def _run(args: list[str]) -> str:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-n", *args], capture_output=True, text=True, timeout=300)
    return out.stdout


def packet_count(path: str) -> int:
    return sum(1 for line in _run(["-r", path, "-T", "fields", "-e", "frame.number"]).splitlines()
               if line.strip())


def streams(path: str, http_ports: tuple[int, ...] = ()) -> dict[int, StreamFigures]:
    """Per tcp.stream: packets, SYN/SYN-ACK/FIN/RST counts, complete handshake, HTTP counts."""
    decode_as: list[str] = []
    for port in http_ports:
        decode_as += ["-d", f"tcp.port=={port},http"]
    text = _run(["-r", path, *decode_as, "-Y", TCP_FILTER, "-T", "fields",
                 "-E", "separator=\t", "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src",
                 "-e", "tcp.srcport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
                 "-e", "tcp.flags.fin", "-e", "tcp.flags.reset", "-e", "http.request.method",
                 "-e", "http.response.code"])
    out: dict[int, StreamFigures] = defaultdict(StreamFigures)
    state: dict[int, tuple[str | None, int]] = {}   # stream -> (client endpoint, step)
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) < 10 or not f[0]:
            continue
        sid = int(f[0].split(",")[0])
        src = (f[1] or f[2]).split(",")[-1] + ":" + f[3].split(",")[-1]
        syn, ack, fin, rst = (x.split(",")[-1] == "1" for x in f[4:8])
        s = out[sid]
        s.packets += 1
        s.syn += syn and not ack
        s.synack += syn and ack
        s.fin += fin
        s.rst += rst
        if f[8]:
            s.requests += len(f[8].split(","))
        if f[9]:
            s.responses += len(f[9].split(","))
        client, step = state.get(sid, (None, 0))
        if syn and not ack and step == 0:
            state[sid] = (src, 1)
        elif syn and ack and step == 1 and src != client:
            state[sid] = (client, 2)
        elif step == 2 and src == client and ack and not syn and not rst:
            state[sid] = (client, 3)
            s.complete = True
    return dict(out)
