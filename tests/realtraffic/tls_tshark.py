"""tshark's view of TLS handshakes, per tcp.stream: an independent reading to check pcapstats against.

The derivation is the one in /work/shared/captures/README.md, applied to tshark's dissection
(the handshake types, session ids and extensions of the frames carrying ClientHello (1),
ServerHello (2) or Certificate (11); record types and times of every TLS frame of the stream):

- TLS <= 1.2 resumed: the ServerHello echoes the ClientHello's non-empty session_id and no
  Certificate (type 11) follows from the server;
- TLS 1.3 (and its drafts) resumed: the ServerHello carries the pre_shared_key extension (41).

A TLS 1.3 HelloRetryRequest is a ServerHello on the wire (type 2); tshark shows it with the same
type, so it is told apart here by its fixed random, SHA-256("HelloRetryRequest") (RFC 8446 4.1.3).
The negotiated version is the ServerHello's supported_versions value, else its legacy version.

End of the handshake (docs/columns.md: `tls_handshake_rtt_ns` is "ClientHello to the end of the TLS
handshake"): the last Finished. TLS <= 1.2: the Finished sent second, i.e. the first handshake
record (type 22) a side sends after its ChangeCipherSpec (20): the server's in a full handshake,
the client's in an abbreviated one (RFC 5246 7.3). TLS 1.3: the client's Finished, its first
application_data record (23; tshark's tls.record.opaque_type) after the ServerHello. Times are
those of the frames tshark reports the records in (the record's last segment), so compare only
where records fit in one segment.

Nothing here imports pcapstats: names of versions and the HRR random are spelled out again.
"""

from __future__ import annotations

import hashlib
import subprocess
from decimal import Decimal
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .lab import LabError, find_binary

HRR_RANDOM_HEX = hashlib.sha256(b"HelloRetryRequest").hexdigest()
VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
                 0x0304: "TLS 1.3"}
_FIELDS = ("tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
           "tls.handshake.type", "tls.handshake.session_id", "tls.handshake.extension.type",
           "tls.handshake.extensions.supported_version", "tls.handshake.random",
           "tls.handshake.version", "tls.handshake.extensions_server_name", "tls.record.content_type",
           "tls.record.opaque_type", "frame.time_epoch", "frame.number")
_HELLO_TYPES = {"1", "2"}

ConnKey = tuple[str, int, str, int]  # client ip, client port, server ip, server port


def version_name(code: int) -> str:
    if code in VERSION_NAMES:
        return VERSION_NAMES[code]
    if 0x7F00 <= code <= 0x7FFF:
        return f"TLS 1.3 (draft {code & 0xFF})"
    return f"0x{code:04x}"


@dataclass
class TsharkTls:
    """One tcp.stream's TLS handshake as tshark dissects it."""

    stream: int
    key: ConnKey | None = None           # from the first ClientHello's frame
    client_hellos: int = 0
    server_hellos: int = 0               # HelloRetryRequests not included
    hello_retries: int = 0
    sni: str | None = None
    client_session_id: str = ""          # of the ClientHello the ServerHello answers
    client_psk: bool = False             # that ClientHello offered pre_shared_key (41)
    server_session_id: str = ""
    server_extensions: tuple[int, ...] = ()
    version_code: int | None = None      # negotiated (ServerHello)
    server_certificate: bool = False     # a Certificate (11) from the server was dissected
    frames: list[int] = field(default_factory=list)
    t_client_hello: Decimal | None = None
    t_finished: dict[bool, Decimal] = field(default_factory=dict)  # from_client -> its <= 1.2 Finished
    t_client_app: Decimal | None = None  # client's first application_data record after the ServerHello
    _ccs: set = field(default_factory=set)  # directions that sent ChangeCipherSpec

    @property
    def handshake_ns(self) -> int | None:
        """ClientHello to the last Finished, in ns (None when the end was not seen)."""
        if self.t_client_hello is None or self.version_code is None:
            return None
        if self.tls13:
            end = self.t_client_app
        elif len(self.t_finished) == 2:
            end = max(self.t_finished.values())
        else:
            end = None
        return None if end is None else int((end - self.t_client_hello) * 1_000_000_000)

    @property
    def version(self) -> str | None:
        return None if self.version_code is None else version_name(self.version_code)

    @property
    def tls13(self) -> bool:
        v = self.version_code
        return v is not None and (v == 0x0304 or 0x7F00 <= v <= 0x7FFF)

    @property
    def offered(self) -> bool:
        """The client asked to resume: a non-empty session id (<= 1.2) or a PSK (1.3)."""
        return self.client_psk if self.tls13 else bool(self.client_session_id)

    @property
    def resumed(self) -> bool | None:
        if not self.server_hellos:
            return None
        if self.tls13:
            return 41 in self.server_extensions
        return (bool(self.client_session_id) and self.server_session_id == self.client_session_id
                and not self.server_certificate)


def _run(pcap: Path, args: list[str], timeout_s: float = 120.0) -> list[list[str]]:
    tshark = find_binary("tshark")
    if tshark is None:
        raise LabError("tshark is not installed")
    done = subprocess.run([tshark, "-n", "-r", str(pcap), *args], capture_output=True, text=True,
                          timeout=timeout_s)
    if done.returncode != 0:
        raise LabError(f"tshark failed on {pcap}: {done.stderr[-2000:]}")
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def _first(value: str) -> str:
    return value.split(",")[0]


def tls_handshakes(pcap: Path | str, tls_ports: list[int] | tuple[int, ...] = ()) -> dict[int, TsharkTls]:
    """tcp.stream -> its TLS handshake, for every stream where tshark dissected a hello.

    `tls_ports`: ports tshark should decode as TLS (it knows 443 and a few others only)."""
    args: list[str] = []
    for port in tls_ports:
        args += ["-d", f"tcp.port=={port},tls"]
    args += ["-Y", "tcp && tls", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in _FIELDS:
        args += ["-e", name]
    out: dict[int, TsharkTls] = {}
    server_of: dict[int, tuple[str, int]] = {}
    for f in _run(Path(pcap), args):
        f += [""] * (len(_FIELDS) - len(f))
        (stream_s, ip4s, ip6s, sport, ip4d, ip6d, dport, types_s, sids, exts, svers, randoms,
         hvers, sni, ctypes, otypes, when, frame) = f[:len(_FIELDS)]
        if not stream_s:
            continue
        stream = int(_first(stream_s))
        src = (_first(ip4s) or _first(ip6s), int(_first(sport)))
        dst = (_first(ip4d) or _first(ip6d), int(_first(dport)))
        types = [t for t in types_s.split(",") if t]
        hellos = [t for t in types if t in _HELLO_TYPES]
        if len(hellos) > 1:
            raise LabError(f"frame {frame} of {pcap} holds {len(hellos)} hellos: not handled")
        if "1" not in types and stream not in out:
            continue  # TLS seen before any ClientHello (mid-stream): not a handshake
        s = out.setdefault(stream, TsharkTls(stream))
        s.frames.append(int(frame))
        t = Decimal(when)
        ext_types = tuple(int(e) for e in exts.split(",") if e)
        if "1" in types:
            s.client_hellos += 1
            if s.key is None:
                s.key = (src[0], src[1], dst[0], dst[1])
                server_of[stream] = dst
                s.t_client_hello = t
            s.client_session_id = sids.replace(":", "")
            s.client_psk = 41 in ext_types
            if sni:
                s.sni = sni.split(",")[0]
        from_client = server_of.get(stream) != src
        if "2" in types:
            random = randoms.replace(":", "")
            selected = [int(v, 16) for v in svers.split(",") if v]
            code = selected[-1] if selected else int(_first(hvers), 16)
            if random == HRR_RANDOM_HEX:
                s.hello_retries += 1
            else:
                s.server_hellos += 1
                s.server_session_id = sids.replace(":", "")
                s.server_extensions = ext_types
                s.version_code = code
        if "11" in types and not from_client:
            s.server_certificate = True
        for ct in (c for c in ctypes.split(",") if c):
            if ct == "20":
                s._ccs.add(from_client)
            elif ct == "22" and from_client in s._ccs and from_client not in s.t_finished:
                s.t_finished[from_client] = t
        # TLS 1.3 records show their outer type as tls.record.opaque_type
        if "23" in otypes.split(",") + ctypes.split(",") and from_client and s.server_hellos \
                and s.t_client_app is None:
            s.t_client_app = t
    return out


def by_connection(streams: dict[int, TsharkTls]) -> dict[ConnKey, list[TsharkTls]]:
    """The streams with a ClientHello, by 4-tuple (several only when ports are reused), in order."""
    out: dict[ConnKey, list[TsharkTls]] = defaultdict(list)
    for sid in sorted(streams):
        s = streams[sid]
        if s.key is not None:
            out[s.key].append(s)
    return dict(out)
