"""samples/truth.json against an independent reader (tshark), and the
generator's determinism.

truth.json is what samples/make_samples.py built (truth by construction).
Here tshark reads every sample and must agree on packets, TCP connections,
SYN / SYN-ACK / FIN / RST packets, retransmissions, UDP flows and HTTP
requests per connection.  Where tshark is known to read a sample differently
from the truth, the test asserts that exact difference and says why, so a
change in either shows up.
"""

from __future__ import annotations

import collections
import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
TRUTH = json.loads((SAMPLES / "truth.json").read_text())
FILES = TRUTH["files"]
TSHARK = shutil.which("tshark")
MERGECAP = shutil.which("mergecap")

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install "
                                  "tshark); the truth cross-check needs an independent reader")

# Reassemble out-of-order segments too (off by default in Wireshark 4.0): the
# POST in http-keepalive.pcap arrives body first.
TSHARK_OPTS = ["-o", "tcp.reassemble_out_of_order:TRUE"]

FIELDS = ["frame.number", "tcp.stream", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin",
          "tcp.flags.reset", "tcp.analysis.retransmission", "http.request.method",
          "http.response.code", "tcp.completeness"]


class Read:
    """What tshark read from one capture."""

    def __init__(self, path: Path):
        proc = subprocess.run([TSHARK, "-n", "-2", "-r", str(path), *TSHARK_OPTS, "-T", "fields",
                               "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
                               *sum((["-e", f] for f in FIELDS), [])],
                              capture_output=True, text=True, timeout=120)
        self.returncode, self.stderr = proc.returncode, proc.stderr
        self.rows = [dict(zip(FIELDS, line.split("\t"))) for line in proc.stdout.splitlines()]
        self.packets = len(self.rows)
        tcp = [r for r in self.rows if r["tcp.stream"] != ""]
        self.streams = sorted({int(r["tcp.stream"]) for r in tcp})
        self.flags = {
            "syn": sum(r["tcp.flags.syn"] == "1" and r["tcp.flags.ack"] == "0" for r in tcp),
            "synack": sum(r["tcp.flags.syn"] == "1" and r["tcp.flags.ack"] == "1" for r in tcp),
            "fin": sum(r["tcp.flags.fin"] == "1" for r in tcp),
            "rst": sum(r["tcp.flags.reset"] == "1" for r in tcp),
        }
        self.retransmissions = sum(r["tcp.analysis.retransmission"] != "" for r in tcp)
        per_stream = collections.Counter()
        self.responses = 0
        for r in tcp:
            methods = [m for m in r["http.request.method"].split(",") if m]
            per_stream[int(r["tcp.stream"])] += len(methods)
            self.responses += len([c for c in r["http.response.code"].split(",") if c])
        self.requests_per_stream = [per_stream[s] for s in self.streams]
        # tcp.completeness (final value on every frame with -2): 1 SYN, 2 SYN-ACK, 4 ACK, 16 FIN, 32 RST
        comp = {}
        for r in tcp:
            if r["tcp.completeness"]:
                comp[int(r["tcp.stream"])] = int(r["tcp.completeness"].split(",")[0])
        self.completeness = [comp.get(s, 0) for s in self.streams]

    def conv(self, proto: str, path: Path) -> int:
        """Number of conversations tshark's conv table lists."""
        out = subprocess.run([TSHARK, "-n", "-r", str(path), "-q", "-z", f"conv,{proto}"],
                             capture_output=True, text=True, timeout=120).stdout
        return sum("<->" in line for line in out.splitlines())


_cache: dict[str, Read] = {}


def read(name: str) -> Read:
    if name not in _cache:
        _cache[name] = Read(SAMPLES / name)
    return _cache[name]


@pytest.fixture(scope="module")
def rotated_merged(tmp_path_factory) -> Path:
    files = TRUTH["groups"]["rotated"]["files"]
    out = tmp_path_factory.mktemp("rotated") / "merged.pcap"
    if MERGECAP:
        subprocess.run([MERGECAP, "-a", "-F", "pcap", "-w", str(out),
                        *[str(SAMPLES / f) for f in files]], check=True, capture_output=True)
    else:  # same link type and header: concatenate the records
        data = (SAMPLES / files[0]).read_bytes()
        for f in files[1:]:
            data += (SAMPLES / f).read_bytes()[24:]
        out.write_bytes(data)
    return out


# Which samples tshark reads differently from the truth, and how.  Each entry
# is checked as stated (the difference must still be exactly this).
KNOWN = {
    # tshark dissects TCP only once the IPv4 fragments reassemble: the first copy
    # of the segment never completes, so tshark never sees it as TCP and the
    # complete second copy looks like a first transmission.
    "ipv4-frags.pcap": {"retransmissions": 0},
}


def test_truth_lists_every_sample_file():
    on_disk = {p.name for p in SAMPLES.iterdir()
               if p.suffix in (".pcap", ".pcapng", ".gz")}
    assert on_disk == set(FILES)


@needs_tshark
@pytest.mark.parametrize("name", sorted(FILES))
def test_packet_count(name):
    r, t = read(name), FILES[name]
    assert r.packets == t["packets"]
    if name == "broken-truncated.pcap":
        # tshark reads the complete records, then stops at the cut one with an error.
        assert r.returncode != 0
        assert "cut short in the middle of a packet" in r.stderr
        size = (SAMPLES / name).stat().st_size
        assert t["truncated_record_offset"] + t["truncated_record_bytes_present"] == size
        assert t["truncated_record_bytes_present"] < t["truncated_record_bytes_declared"]
    else:
        assert r.returncode == 0, r.stderr


def _check_tcp(r: Read, t: dict, name: str, path: Path):
    known = KNOWN.get(name, {})
    # connections: Wireshark 4.0 starts a new tcp.stream (and a new row of the
    # conv,tcp table) for a SYN with a new ISN on a 4-tuple that was reset, as
    # the truth does (port-reuse.pcap).
    assert len(r.streams) == t["tcp_connections"]
    assert r.conv("tcp", path) == t["tcp_connections"]
    assert r.flags == t["tcp_flag_packets"]
    assert r.retransmissions == known.get("retransmissions", t["retransmissions"])
    # handshake / close per connection from tshark's completeness bits
    for comp, c in zip(r.completeness, t["connections"]):
        assert (comp & 7 == 7) == c["handshake_complete"], (name, c["id"], comp)
        close = "rst" if comp & 32 else "fin" if comp & 16 else "open"
        assert close == c["close"], (name, c["id"], comp)


def _check_http(r: Read, t: dict, name: str):
    # snaplen.pcap agrees too: the request and status lines lie inside the 42
    # payload bytes each cut frame keeps, and tshark parses what is there.
    if name == "broken-truncated.pcap":
        # the cut record held the start of response 2: tshark never gets it.
        assert r.requests_per_stream == t["http_requests_per_connection"] == [2]
        assert r.responses == t["http_responses"] == 1
        return
    assert r.requests_per_stream == t["http_requests_per_connection"]
    assert r.responses == t["http_responses"]


@needs_tshark
@pytest.mark.parametrize("name", sorted(FILES))
def test_tcp_and_http_agree(name):
    r, t = read(name), FILES[name]
    _check_tcp(r, t, name, SAMPLES / name)
    _check_http(r, t, name)


@needs_tshark
@pytest.mark.parametrize("name", sorted(FILES))
def test_udp_flows_agree(name):
    r = read(name)
    assert r.conv("udp", SAMPLES / name) == FILES[name]["udp_flows"]


@needs_tshark
def test_rotated_files_merge_to_group_truth(rotated_merged):
    g = TRUTH["groups"]["rotated"]
    assert sum(FILES[f]["packets"] for f in g["files"]) == g["packets"]
    r = Read(rotated_merged)
    assert r.packets == g["packets"]
    _check_tcp(r, g, "rotated", rotated_merged)
    _check_http(r, g, "rotated")


@needs_tshark
def test_lb_forwarded_requests_match_backend_side():
    """Every client request of the affinity truth was forwarded as the request
    at (backend_conn, backend_depth): tshark sees it there, with the same
    method and URI, from the proxy to the named backend."""
    name = "lb-both-sides.pcap"
    t = FILES[name]
    out = subprocess.run([TSHARK, "-n", "-r", str(SAMPLES / name), "-Y", "http.request",
                          "-T", "fields", "-E", "separator=/t", "-e", "tcp.stream", "-e", "ip.dst",
                          "-e", "tcp.dstport", "-e", "http.request.method", "-e", "http.request.uri",
                          "-e", "http.cookie", "-e", "http.x_forwarded_for"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    by_stream = collections.defaultdict(list)
    for line in out.splitlines():
        s, dst, port, method, uri, cookie, xff = line.split("\t")
        by_stream[int(s)].append((f"{dst}:{port}", method, uri, cookie, xff))
    for q in t["affinity"]["requests"]:
        dst, method, uri, cookie, xff = by_stream[q["backend_conn"]][q["backend_depth"] - 1]
        assert (dst, method, uri) == (q["backend"], q["method"], q["uri"])
        assert "SERVERID" not in cookie
        assert xff == q["session_client_ip"]
        cdst, cmethod, curi, ccookie, _ = by_stream[q["client_conn"]][q["depth"] - 1]
        assert (cmethod, curi) == (q["method"], q["uri"])
        assert ("SERVERID=" + q["cookie_serverid"] in ccookie) if q["cookie_serverid"] else \
            "SERVERID" not in ccookie


def fields(name: str, *names: str, opts: tuple[str, ...] = ()) -> list[list[str]]:
    out = subprocess.run([TSHARK, "-n", "-r", str(SAMPLES / name), *opts, "-T", "fields",
                          "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
                          *sum((["-e", f] for f in names), [])],
                         capture_output=True, text=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


@needs_tshark
@pytest.mark.parametrize("name", sorted(FILES))
def test_checksums_are_correct(name):
    """Every IPv4, TCP and UDP checksum is right (frames cut by the snaplen
    cannot be verified and show as unverified, never bad)."""
    rows = fields(name, "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
                  opts=("-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                        "-o", "udp.check_checksum:TRUE"))
    statuses = [v for row in rows for cell in row for v in cell.split(",") if v]
    assert statuses and "0" not in statuses          # 0 = bad, 1 = good, 2 = unverified


def _epoch(ts_ns: int) -> str:
    return f"{ts_ns // 10**9}.{ts_ns % 10**9:09d}"


@needs_tshark
@pytest.mark.parametrize("name", sorted(FILES))
def test_first_and_last_timestamps(name):
    """Exact to the nanosecond (le-nsec.pcap uses all 9 digits)."""
    times = [row[0] for row in fields(name, "frame.time_epoch")]
    assert (times[0], times[-1]) == (_epoch(FILES[name]["first_ts_ns"]),
                                     _epoch(FILES[name]["last_ts_ns"]))


@needs_tshark
def test_pcapng_interfaces_and_timestamps():
    """multi-if.pcapng: tshark's interface and exact timestamp of every packet,
    including the 2^-10 s interface and the obsolete Packet Block; the Simple
    Packet Block has no timestamp."""
    t = FILES["multi-if.pcapng"]
    rows = fields("multi-if.pcapng", "frame.interface_id", "frame.time_epoch", "frame.cap_len",
                  "frame.len")
    assert len(rows) == len(t["packet_detail"])
    for (iface, ts, caplen, origlen), d in zip(rows, t["packet_detail"]):
        assert int(iface) == d["interface"]
        want = "" if d["ts_ns"] is None else _epoch(d["ts_ns"])
        assert ts == want
        assert (int(caplen), int(origlen)) == (d["caplen"], d["origlen"])


@needs_tshark
def test_link_layer_details():
    # VLAN tags per connection, outer first (Wireshark names an 802.1ad tag ieee8021ad)
    tags = {}
    for stream, etype, sid, vid in fields("vlan-qinq.pcap", "tcp.stream", "eth.type",
                                          "ieee8021ad.id", "vlan.id"):
        got = ([["802.1ad", int(sid)]] if sid else []) + [["802.1q", int(vid)]]
        assert etype == ("0x88a8" if sid else "0x8100")
        tags.setdefault(int(stream), []).append(got)
    want = FILES["vlan-qinq.pcap"]["vlan_tags_per_connection"]
    assert tags == {i: [w] * len(tags[i]) for i, w in enumerate(want)}
    # DLT_NULL address families, host byte order
    fams = collections.Counter(row[0] for row in fields("null-loopback.pcap", "null.family"))
    assert fams == FILES["null-loopback.pcap"]["address_family_packets"]
    # IPv4 header lengths with options
    ihl = {(src, int(hl) // 4) for src, hl in fields("ipv4-options.pcap", "ip.src", "ip.hdr_len")}
    c = FILES["ipv4-options.pcap"]["connections"][0]
    assert ihl == {(c["client"].split(":")[0], 6), (c["server"].split(":")[0], 15)}
    # IPv6 extension headers on the client's packets only
    c = FILES["ipv6-ext.pcap"]["connections"][0]
    ext = {(src, nxt) for src, nxt in fields("ipv6-ext.pcap", "ipv6.src", "ipv6.nxt")}
    assert ext == {(c["client"].split("]")[0][1:], "0"), (c["server"].split("]")[0][1:], "6")}


def test_generator_is_deterministic(tmp_path):
    subprocess.run([sys.executable, str(SAMPLES / "make_samples.py"), str(tmp_path)], check=True,
                   timeout=300, cwd=ROOT)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(list(FILES) + ["truth.json"])
    match, mismatch, errors = filecmp.cmpfiles(SAMPLES, tmp_path, made, shallow=False)
    assert not mismatch and not errors, f"regenerated files differ: {mismatch + errors}"
