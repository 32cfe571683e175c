"""What tshark sees in a recording's capture: an independent count to check the log against."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from .lab import LabError, find_binary
from .truth import ConnKey


def _tshark(pcap: Path, args: list[str], timeout_s: float = 60.0) -> list[list[str]]:
    tshark = find_binary("tshark")
    if tshark is None:
        raise LabError("tshark is not installed")
    done = subprocess.run([tshark, "-n", "-r", str(pcap), *args], capture_output=True,
                          text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise LabError(f"tshark failed on {pcap}: {done.stderr[-2000:]}")
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def syn_connections(pcap: Path) -> dict[int, ConnKey]:
    """tcp.stream -> (client ip, port, server ip, port) for every connection whose SYN was seen."""
    rows = _tshark(pcap, ["-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
                          "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport",
                          "-e", "ip.dst", "-e", "tcp.dstport"])
    return {int(r[0]): (r[1], int(r[2]), r[3], int(r[4])) for r in rows}


def stream_count(pcap: Path) -> int:
    rows = _tshark(pcap, ["-T", "fields", "-e", "tcp.stream"])
    return len({r[0] for r in rows if r and r[0]})


def http_requests_per_connection(pcap: Path, ports: list[int]) -> Counter[ConnKey]:
    """HTTP requests tshark's dissector finds per connection (ports decoded as HTTP)."""
    args: list[str] = []
    for p in ports:
        args += ["-d", f"tcp.port=={p},http"]
    rows = _tshark(pcap, [*args, "-Y", "http.request", "-T", "fields", "-e", "ip.src",
                          "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"])
    return Counter((r[0], int(r[1]), r[2], int(r[3])) for r in rows)
