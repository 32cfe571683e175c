"""A TLS lab on loopback: nginx with TLS 1.2/1.3, HAProxy in `mode tcp` in front of two pools of
nginx backends, recorded by tcpdump, with clients that resume sessions and record what happened.

    clients 127.0.2.x ──► nginx "direct"  127.0.0.31:<base>          (own certificate)
                     ──► nginx "hrr"     127.0.0.32:<base+7>        (secp384r1 only: HelloRetryRequest
                                                                  for an X25519 key share)
                     ──► HAProxy 127.0.0.11:<base+10>  roundrobin ──► pool A: a1 a2 a3
                                 127.0.0.11:<base+11>  source     ──►   127.0.0.41-43:<base+1..3>
                                                                        (a certificate and random
                                                                        ticket keys each)
                                 127.0.0.11:<base+12>  roundrobin ──► pool S: s1 s2 s3
                                                                        127.0.0.51-53:<base+4..6>
                                                                        (one certificate, one
                                                                        ticket key file)

Every nginx keeps its own session cache (`ssl_session_cache shared:...` is shared between the
workers of one nginx, not between nginx instances) and has session tickets on. Pool A's ticket
keys are random per process, so a session from a1 is unknown to a2 (both by id and by ticket);
pool S shares the ticket keys, so tickets resume anywhere but session ids still do not.

Truth: each client's own record per connection (`TlsClientConn`): s_client's "New"/"Reused"
lines, curl's handshake trace (a resumed handshake has no server Certificate), Python's
`SSLSocket.session_reused`; for connections that send a request, nginx's `$ssl_session_reused`
(its access log) and the backend named in the response body; HAProxy's log ties each client
connection to its backend connection.

The process handling (tcpdump first, readiness from /proc/net/tcp, stop by PID, drop check) is
`lab.Lab`'s: `TlsLab` subclasses it and only replaces the configuration.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .lab import (
    Endpoint, Lab, LabError, LabSpec, ManagedProcess, TcpdumpStats, check_free, find_binary, is_listening,
    nginx_prologue, wait_until,
)

REQUIRED_BINARIES = ("nginx", "haproxy", "tcpdump", "tshark", "curl", "openssl")
DEFAULT_PORT_BASE = 18443
"""Override with PCAPSTATS_TLS_LAB_PORT_BASE (the HTTP lab uses 18080-18084)."""
PROXY_IP = "127.0.0.11"
DIRECT_IP = "127.0.0.31"
HRR_IP = "127.0.0.32"
POOL_A_IPS = ("127.0.0.41", "127.0.0.42", "127.0.0.43")
POOL_S_IPS = ("127.0.0.51", "127.0.0.52", "127.0.0.53")
CLIENT_PREFIX = "127.0.2."
DOMAIN = "tls.test"
CLIENT_TIMEOUT_S = 10.0
LOG_TAG = "PCAPTLS"
# mode tcp: one line per client connection, at its end. %bi:%bp is the backend connection's source.
HAPROXY_LOG_FORMAT = LOG_TAG + " fe=%f ci=%ci:%cp be=%b srv=%s bi=%bi:%bp si=%si:%sp ts=%ts"

VERSIONS = {"TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if find_binary(name) is None]


def port_base_from_env() -> int:
    raw = os.environ.get("PCAPSTATS_TLS_LAB_PORT_BASE")
    if not raw:
        return DEFAULT_PORT_BASE
    try:
        value = int(raw)
    except ValueError as exc:
        raise LabError(f"PCAPSTATS_TLS_LAB_PORT_BASE={raw!r} is not a port number") from exc
    if not 1024 <= value <= 65000:
        raise LabError(f"PCAPSTATS_TLS_LAB_PORT_BASE={value} is out of range 1024..65000")
    return value


# --------------------------------------------------------------------------- certificates, configs


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for `<name>.tls.test` and `*.tls.test` (openssl CLI)."""
    openssl = find_binary("openssl")
    if openssl is None:
        raise LabError("openssl is not installed")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", f"/CN={name}.{DOMAIN}",
         "-addext", f"subjectAltName=DNS:{name}.{DOMAIN},DNS:*.{DOMAIN}",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise LabError(f"openssl req failed: {done.stderr[-1000:]}")
    return cert, key


@dataclass(frozen=True)
class TlsServer:
    name: str
    ep: Endpoint
    cert: str            # certificate name (several servers may share one)
    ticket_key: bool     # use the lab's shared ticket key file
    curve: str | None = None  # ssl_ecdh_curve: "secp384r1" makes clients that send an X25519
                              # key share get a HelloRetryRequest


def nginx_tls_config(server: TlsServer, root: Path, cert: Path, key: Path, ticket_key: Path | None) -> str:
    """TLS 1.2 and 1.3, a session cache and session tickets; every response names the server and
    says what nginx saw ($ssl_protocol, $ssl_session_reused); the access log says it too."""
    p, ep, name = root, server.ep, server.name
    ticket_line = f"ssl_session_ticket_key {ticket_key};" if ticket_key is not None else ""
    curve_line = f"ssl_ecdh_curve {server.curve};" if server.curve else ""
    return nginx_prologue(p) + textwrap.dedent(f"""\
          log_format tls 'ra=$remote_addr:$remote_port proto=$ssl_protocol sni="$ssl_server_name" '
                         'reused=$ssl_session_reused r="$request"';
          access_log {p}/logs/access.log tls;
          server_tokens off;
          keepalive_timeout 10s;
          server {{
            listen {ep.ip}:{ep.port} ssl;
            ssl_certificate {cert};
            ssl_certificate_key {key};
            ssl_protocols TLSv1.2 TLSv1.3;
            ssl_session_cache shared:TLS_{name}:1m;
            ssl_session_timeout 10m;
            ssl_session_tickets on;
            {ticket_line}
            {curve_line}
            default_type text/plain;
            location / {{
              return 200 "backend={name} proto=$ssl_protocol reused=$ssl_session_reused\\n";
            }}
          }}
        }}
        """)


def haproxy_tcp_config(frontends: dict[str, Endpoint], pools: dict[str, tuple[str, list[TlsServer]]]) -> str:
    """`mode tcp`: TLS passes through untouched; frontend name -> (balance algorithm, servers)."""
    out = [
        "global",
        "  log stdout format raw local0",
        "  nbthread 1",
        "  maxconn 500",
        "defaults",
        "  mode tcp",
        "  log global",
        f'  log-format "{HAPROXY_LOG_FORMAT}"',
        "  timeout connect 2s",
        "  timeout client 10s",
        "  timeout server 10s",
    ]
    for fe, ep in frontends.items():
        balance, servers = pools[fe]
        out += [f"frontend fe_{fe}", f"  bind {ep.ip}:{ep.port}", f"  default_backend be_{fe}",
                f"backend be_{fe}", f"  balance {balance}", f"  source {PROXY_IP}"]
        out += [f"  server {s.name} {s.ep.ip}:{s.ep.port}" for s in servers]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the lab


@dataclass
class TlsLab(Lab):
    """`Lab` with TLS servers: the direct nginx, pools A and S, HAProxy with three frontends."""

    port_base: int = field(default_factory=port_base_from_env)
    servers: dict[str, TlsServer] = field(init=False)
    frontends: dict[str, Endpoint] = field(init=False)
    pools: dict[str, tuple[str, list[TlsServer]]] = field(init=False)
    ticket_key_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        b = self.port_base
        servers = [TlsServer("direct", Endpoint(DIRECT_IP, b), "direct", False),
                   TlsServer("hrr", Endpoint(HRR_IP, b + 7), "direct", False, curve="secp384r1")]
        servers += [TlsServer(f"a{i}", Endpoint(ip, b + i), f"a{i}", False)
                    for i, ip in enumerate(POOL_A_IPS, 1)]
        servers += [TlsServer(f"s{i}", Endpoint(ip, b + 3 + i), "pool-s", True)
                    for i, ip in enumerate(POOL_S_IPS, 1)]
        self.servers = {s.name: s for s in servers}
        pool_a = [s for s in servers if s.name.startswith("a")]
        pool_s = [s for s in servers if s.name.startswith("s")]
        self.frontends = {"rr": Endpoint(PROXY_IP, b + 10), "source": Endpoint(PROXY_IP, b + 11),
                          "rr_shared": Endpoint(PROXY_IP, b + 12)}
        self.pools = {"rr": ("roundrobin", pool_a), "source": ("source", pool_a),
                      "rr_shared": ("roundrobin", pool_s)}
        self.frontend = self.frontends["rr"]
        self.backends = {s.name: s.ep for s in servers}
        self.pcap_path = self.workdir / "capture.pcap"
        self.haproxy_log_path = self.workdir / "haproxy.log"
        self.ticket_key_path = self.workdir / "ticket.key"

    @property
    def endpoints(self) -> list[Endpoint]:
        return [s.ep for s in self.servers.values()] + list(self.frontends.values())

    @property
    def tls_ports(self) -> list[int]:
        return sorted({ep.port for ep in self.endpoints})

    @property
    def bpf_filter(self) -> str:
        parts = [f"(host {ep.ip} and port {ep.port})" for ep in self.endpoints]
        return "tcp and (" + " or ".join(parts) + ")"

    def server_by_ip(self, ip: str) -> TlsServer | None:
        return next((s for s in self.servers.values() if s.ep.ip == ip), None)

    def nginx_access_log(self, name: str) -> Path:
        return self.workdir / f"nginx-{name}" / "logs" / "access.log"

    def start(self) -> None:
        missing = missing_binaries()
        if missing:
            raise LabError(f"missing binaries: {', '.join(missing)}")
        check_free([(ep.ip, ep.port) for ep in self.endpoints])
        self.workdir.mkdir(parents=True, exist_ok=True)
        certs = {name: make_certificate(self.workdir, name)
                 for name in sorted({s.cert for s in self.servers.values()})}
        self.ticket_key_path.write_bytes(os.urandom(80))  # nginx: 80 bytes = AES-256 keys
        self._certs = certs
        self._start_tcpdump()
        for name, server in self.servers.items():
            self._start_nginx(name, server.ep)
        self._start_haproxy()
        for name, server in self.servers.items():
            ep = server.ep
            wait_until(lambda ep=ep: is_listening(ep.ip, ep.port), f"nginx {name} on {ep}", 5.0,
                       self._nginx[name].fail_if_dead)
        assert self._haproxy is not None
        for fe, ep in self.frontends.items():
            wait_until(lambda ep=ep: is_listening(ep.ip, ep.port), f"haproxy {fe} on {ep}", 5.0,
                       self._haproxy.fail_if_dead)

    def _start_nginx(self, name: str, ep: Endpoint) -> None:
        server = self.servers[name]
        root = self.workdir / f"nginx-{name}"
        for sub in ("logs", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        cert, key = self._certs[server.cert]
        conf = root / "nginx.conf"
        conf.write_text(nginx_tls_config(server, root, cert, key,
                                         self.ticket_key_path if server.ticket_key else None))
        argv = [find_binary("nginx") or "nginx", "-g", "daemon off;", "-p", str(root),
                "-e", str(root / "logs" / "error.log"), "-c", str(conf)]
        proc = ManagedProcess(f"nginx-{name}", argv, self.workdir)
        self._procs.append(proc)
        self._nginx[name] = proc
        proc.start()

    def _start_haproxy(self) -> None:
        conf = self.workdir / "haproxy.cfg"
        conf.write_text(haproxy_tcp_config(self.frontends, self.pools))
        binary = find_binary("haproxy") or "haproxy"
        check = subprocess.run([binary, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise LabError(f"haproxy rejects {conf}: {check.stdout}{check.stderr}")
        proc = ManagedProcess("haproxy", [binary, "-db", "-f", str(conf)], self.workdir)
        proc.stdout_path = self.haproxy_log_path
        self._procs.append(proc)
        self._haproxy = proc
        proc.start()


# --------------------------------------------------------------------------- truth records


@dataclass
class TlsClientConn:
    """One TLS connection as its client saw it."""

    scenario: str
    tool: str                  # "s_client" | "curl" | "python"
    client_ip: str
    client_port: int | None    # None when the tool does not say (s_client): match by order
    seq: int                   # 0-based, per scenario (each scenario has its own client address)
    target: str                # "direct" or the HAProxy frontend ("rr", "source", "rr_shared")
    sni: str
    version: str | None        # negotiated, as the client reports it ("TLS 1.2", "TLS 1.3")
    resumed: bool
    offered: bool | None       # the client offered a session (None: the tool does not say)
    backend: str | None = None  # the nginx that answered (from the response body)
    server_reused: bool | None = None  # nginx's $ssl_session_reused in that body
    first_segment: int | None = None   # size of the client's first data segment, when it chose it
    alpn: str | None = None            # protocol the server selected, as the client reports it

    def to_json(self) -> dict:
        return asdict(self)


_BODY_RE = re.compile(r"backend=(\S+) proto=(\S+) reused=(\S)")


def _parse_body(text: str) -> tuple[str | None, bool | None]:
    m = _BODY_RE.search(text)
    if m is None:
        return None, None
    return m.group(1), m.group(3) == "r"


def _request(sni: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode()


def run_s_client_reconnect(scenario: str, client_ip: str, ep: Endpoint, sni: str, version: str,
                           extra: tuple[str, ...] = ()) -> list[TlsClientConn]:
    """`openssl s_client -reconnect`: one handshake and 5 reconnections with the same session
    (no request is sent). Truth: its "New, TLSv1.x" / "Reused, TLSv1.x" line per connection."""
    out = _s_client(client_ip, ep, sni, version, ["-reconnect", *extra], stdin=b"")
    conns = _s_client_lines(out)
    if len(conns) != 6:
        raise LabError(f"s_client -reconnect printed {len(conns)} New/Reused lines, not 6:\n{out[-3000:]}")
    return [TlsClientConn(scenario, "s_client", client_ip, None, i, "direct", sni, v, reused,
                          offered=(i > 0)) for i, (reused, v) in enumerate(conns)]


def run_s_client_session_file(scenario: str, client_ip: str, ep: Endpoint, sni: str, version: str,
                              sess_file: Path, extra: tuple[str, ...] = ()) -> list[TlsClientConn]:
    """Two s_client runs: `-sess_out FILE`, then `-sess_in FILE`. Each sends one request and waits
    for the server to close (`-ign_eof`), so TLS 1.3 tickets arrive before the session is saved."""
    if sess_file.exists():
        sess_file.unlink()
    records = []
    for i, opt in enumerate(("-sess_out", "-sess_in")):
        out = _s_client(client_ip, ep, sni, version, [opt, str(sess_file), "-ign_eof", *extra],
                        stdin=_request(sni))
        conns = _s_client_lines(out)
        if len(conns) != 1:
            raise LabError(f"s_client {opt} printed {len(conns)} New/Reused lines:\n{out[-3000:]}")
        backend, server_reused = _parse_body(out)
        records.append(TlsClientConn(scenario, "s_client", client_ip, None, i, "direct", sni, conns[0][1],
                                     conns[0][0], offered=(i == 1), backend=backend,
                                     server_reused=server_reused))
        if i == 0 and not sess_file.exists():
            raise LabError(f"s_client -sess_out wrote no session:\n{out[-3000:]}")
    return records


def _s_client(client_ip: str, ep: Endpoint, sni: str, version: str, args: list[str], stdin: bytes) -> str:
    openssl = find_binary("openssl")
    if openssl is None:
        raise LabError("openssl is not installed")
    flag = {"TLS 1.2": "-tls1_2", "TLS 1.3": "-tls1_3"}[version]
    argv = [openssl, "s_client", "-connect", f"{ep.ip}:{ep.port}", "-bind", f"{client_ip}:0",
            "-servername", sni, flag, *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=CLIENT_TIMEOUT_S)
    out = done.stdout.decode("latin-1")
    if done.returncode != 0:
        raise LabError(f"s_client failed ({done.returncode}): {done.stderr.decode('latin-1')[-2000:]}")
    return out


_S_CLIENT_LINE = re.compile(r"^(New|Reused), (TLSv1\.[0-3]|SSLv3), Cipher is ", re.M)


def _s_client_lines(out: str) -> list[tuple[bool, str]]:
    return [(m.group(1) == "Reused", VERSIONS.get(m.group(2), m.group(2))) for m in _S_CLIENT_LINE.finditer(out)]


_CURL_MARK = "@@TLSLAB"


def run_curl_two_urls(scenario: str, client_ip: str, ep: Endpoint, sni: str, version: str) -> list[TlsClientConn]:
    """One curl invocation, two URLs; `Connection: close` makes it open a second connection, on
    which it offers the session of the first from its session cache. Truth: its `-v` handshake
    trace per connection (a resumed handshake has no "(IN), TLS handshake, Certificate (11)")."""
    curl = find_binary("curl")
    if curl is None:
        raise LabError("curl is not installed")
    vflags = {"TLS 1.2": ["--tlsv1.2", "--tls-max", "1.2"], "TLS 1.3": ["--tlsv1.3"]}[version]
    url = f"https://{sni}:{ep.port}/"
    argv = [curl, "-sS", "-v", "-k", *vflags, "--interface", client_ip, "--max-time", str(CLIENT_TIMEOUT_S),
            "--resolve", f"{sni}:{ep.port}:{ep.ip}", "-H", "Connection: close",
            "-w", f"\n{_CURL_MARK} %{{local_ip}} %{{local_port}} %{{num_connects}}\n",
            url + "one", url + "two"]
    done = subprocess.run(argv, capture_output=True, timeout=CLIENT_TIMEOUT_S + 5)
    out, err = done.stdout.decode("latin-1"), done.stderr.decode("latin-1")
    if done.returncode != 0:
        raise LabError(f"curl failed ({done.returncode}): {err[-2000:]}")
    blocks = re.split(r"^\* Connected to ", err, flags=re.M)[1:]
    parts = out.split(_CURL_MARK)
    marks = [p.split("\n", 1)[0].split() for p in parts[1:]]
    if len(blocks) != 2 or len(marks) != 2 or any(m[2] != "1" for m in marks):
        raise LabError(f"curl: expected 2 connections, got {len(blocks)}:\n{err[-3000:]}")
    records = []
    for i, (block, mark) in enumerate(zip(blocks, marks)):
        m = re.search(r"SSL connection using (TLSv1\.[0-3])", block)
        if m is None or "(IN), TLS handshake, Server hello (2)" not in block:
            raise LabError(f"curl connection {i}: no handshake in its trace:\n{block[-2000:]}")
        resumed = "(IN), TLS handshake, Certificate (11)" not in block
        backend, server_reused = _parse_body(parts[i])
        alpn = re.search(r"ALPN: server accepted (\S+)", block)
        records.append(TlsClientConn(scenario, "curl", mark[0], int(mark[1]), i, "direct", sni,
                                     VERSIONS[m.group(1)], resumed, offered="SSL re-using session ID" in block,
                                     backend=backend, server_reused=server_reused,
                                     alpn=alpn.group(1) if alpn else None))
    return records


def run_python(scenario: str, client_ip: str, ep: Endpoint, target: str, sni: str, version: str,
               n: int, *, tickets: bool = True) -> list[TlsClientConn]:
    """`n` sequential connections with Python's ssl; each offers the session of the previous one
    (`wrap_socket(session=...)`), sends a request and reads the response to the end (a TLS 1.3
    session only exists once its NewSessionTicket, sent after the handshake, has been read).
    `tickets=False` sets OP_NO_TICKET: TLS 1.2 resumes by session id only.
    Truth: `session_reused`, `version()`, `getsockname()`, the backend named in the body."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = {"TLS 1.2": ssl.TLSVersion.TLSv1_2, "TLS 1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx.minimum_version = ctx.maximum_version = v
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    session: ssl.SSLSession | None = None
    records = []
    for i in range(n):
        raw = socket.create_connection((ep.ip, ep.port), timeout=CLIENT_TIMEOUT_S, source_address=(client_ip, 0))
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as s:
            local = s.getsockname()
            s.sendall(_request(sni))
            data = b""
            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            while time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            backend, server_reused = _parse_body(data.decode("latin-1"))
            tls_version = s.version()
            records.append(TlsClientConn(scenario, "python", local[0], local[1], i, target, sni,
                                         VERSIONS.get(tls_version or "", tls_version), s.session_reused,
                                         offered=session is not None, backend=backend,
                                         server_reused=server_reused))
            session = s.session
    return records


def run_python_split(scenario: str, client_ip: str, ep: Endpoint, sni: str, version: str, n: int,
                     chunks: tuple[int, ...], step: int) -> list[TlsClientConn]:
    """Like `run_python`, but the client's TLS bytes go through a memory BIO and are written in
    small pieces (`chunks` first, then `step` bytes at a time, TCP_NODELAY and a 1 ms pause between
    writes), so each piece is a TCP segment of its own: loopback's segmentation offload would keep
    a whole flight in one packet whatever the MSS. Records `first_segment`, the size of the first."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = {"TLS 1.2": ssl.TLSVersion.TLSv1_2, "TLS 1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx.minimum_version = ctx.maximum_version = v
    session: ssl.SSLSession | None = None
    records = []
    for i in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(CLIENT_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((client_ip, 0))
            sock.connect((ep.ip, ep.port))
            local = sock.getsockname()
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni, session=session)
            sizes = list(chunks)

            def flush() -> None:
                data = outgoing.read()
                pos = 0
                while pos < len(data):
                    size = sizes.pop(0) if sizes else step
                    sock.sendall(data[pos:pos + size])
                    pos += size
                    time.sleep(0.001)

            def receive() -> bool:
                data = sock.recv(65536)
                if data:
                    incoming.write(data)
                else:
                    incoming.write_eof()
                return bool(data)

            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    if time.monotonic() > deadline or not receive():
                        raise LabError(f"{scenario}: handshake did not complete") from None
            flush()
            obj.write(_request(sni))
            flush()
            body = b""
            while time.monotonic() < deadline:
                try:
                    chunk = obj.read(4096)
                except ssl.SSLWantReadError:
                    flush()
                    if not receive():
                        break
                    continue
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    break
                if not chunk:
                    break
                body += chunk
            backend, server_reused = _parse_body(body.decode("latin-1"))
            tls_version = obj.version()
            records.append(TlsClientConn(scenario, "python-bio", local[0], local[1], i, "direct", sni,
                                         VERSIONS.get(tls_version or "", tls_version), obj.session_reused,
                                         offered=session is not None, backend=backend,
                                         server_reused=server_reused, first_segment=chunks[0] if chunks else step))
            session = obj.session
        finally:
            sock.close()
    return records


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class TlsScenario:
    name: str
    description: str
    run: Callable[[TlsLab, str, str, Path], list[TlsClientConn]]  # (lab, name, client ip, workdir)
    expected: tuple[int, int]        # (full, resumed) the scenario is meant to produce
    target: str = "direct"

    @property
    def version(self) -> str:
        """The version the scenario asks for (its name ends in tls12 or tls13, maybe + a suffix)."""
        return "TLS 1.3" if "tls13" in self.name else "TLS 1.2"

    @property
    def sni(self) -> str:
        return _sni(self.name)


def _direct(lab: TlsLab) -> Endpoint:
    return lab.servers["direct"].ep


def _sni(name: str) -> str:
    return f"{name.replace('_', '-')}.{DOMAIN}"


SCENARIOS: list[TlsScenario] = [
    TlsScenario("sclient_reconnect_tls12", "s_client -reconnect, TLS 1.2 (session ticket offered)",
                lambda lab, n, ip, d: run_s_client_reconnect(n, ip, _direct(lab), _sni(n), "TLS 1.2"), (1, 5)),
    TlsScenario("sclient_reconnect_tls12_sessionid", "s_client -reconnect -no_ticket, TLS 1.2 (session id)",
                lambda lab, n, ip, d: run_s_client_reconnect(n, ip, _direct(lab), _sni(n), "TLS 1.2",
                                                             ("-no_ticket",)), (1, 5)),
    TlsScenario("sclient_reconnect_tls13",
                "s_client -reconnect, TLS 1.3: it reconnects before the ticket (sent after the "
                "handshake) has been read, so every connection is a full handshake",
                lambda lab, n, ip, d: run_s_client_reconnect(n, ip, _direct(lab), _sni(n), "TLS 1.3"), (6, 0)),
    TlsScenario("sclient_sess_file_tls12", "s_client -sess_out, then -sess_in, TLS 1.2",
                lambda lab, n, ip, d: run_s_client_session_file(n, ip, _direct(lab), _sni(n), "TLS 1.2",
                                                                d / f"{n}.sess"), (1, 1)),
    TlsScenario("sclient_sess_file_tls13", "s_client -sess_out, then -sess_in, TLS 1.3 (PSK)",
                lambda lab, n, ip, d: run_s_client_session_file(n, ip, _direct(lab), _sni(n), "TLS 1.3",
                                                                d / f"{n}.sess"), (1, 1)),
    TlsScenario("sclient_hrr_tls13",
                "s_client -sess_out/-sess_in, TLS 1.3, key share X25519 to a server that only takes "
                "secp384r1: a HelloRetryRequest and a second ClientHello in both connections",
                lambda lab, n, ip, d: run_s_client_session_file(n, ip, lab.servers["hrr"].ep, _sni(n), "TLS 1.3",
                                                                d / f"{n}.sess", ("-groups", "X25519:secp384r1")),
                (1, 1)),
    TlsScenario("curl_tls12", "curl, two URLs, Connection: close, TLS 1.2",
                lambda lab, n, ip, d: run_curl_two_urls(n, ip, _direct(lab), _sni(n), "TLS 1.2"), (1, 1)),
    TlsScenario("curl_tls13", "curl, two URLs, Connection: close, TLS 1.3",
                lambda lab, n, ip, d: run_curl_two_urls(n, ip, _direct(lab), _sni(n), "TLS 1.3"), (1, 1)),
    TlsScenario("python_tls12", "Python ssl, session=, TLS 1.2, 3 connections",
                lambda lab, n, ip, d: run_python(n, ip, _direct(lab), "direct", _sni(n), "TLS 1.2", 3), (1, 2)),
    TlsScenario("python_tls13", "Python ssl, session= after reading the response, TLS 1.3, 3 connections",
                lambda lab, n, ip, d: run_python(n, ip, _direct(lab), "direct", _sni(n), "TLS 1.3", 3), (1, 2)),
    # HAProxy mode tcp; 6 sequential connections, each offering the previous connection's session.
    TlsScenario("rr_tls12_sessionid",
                "roundrobin over pool A, TLS 1.2 session ids: each resumption lands on another backend, "
                "whose session cache does not know the id -> full handshakes",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["rr"], "rr", _sni(n), "TLS 1.2", 6,
                                                 tickets=False), (6, 0), "rr"),
    TlsScenario("rr_tls12_ticket",
                "roundrobin over pool A, TLS 1.2 tickets: other backends cannot decrypt the ticket",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["rr"], "rr", _sni(n), "TLS 1.2", 6),
                (6, 0), "rr"),
    TlsScenario("rr_tls13", "roundrobin over pool A, TLS 1.3 PSK: refused by the other backends",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["rr"], "rr", _sni(n), "TLS 1.3", 6),
                (6, 0), "rr"),
    TlsScenario("source_tls12_sessionid", "balance source over pool A, TLS 1.2 session ids: same backend",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["source"], "source", _sni(n), "TLS 1.2", 6,
                                                 tickets=False), (1, 5), "source"),
    TlsScenario("source_tls13", "balance source over pool A, TLS 1.3 PSK: same backend",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["source"], "source", _sni(n), "TLS 1.3", 6),
                (1, 5), "source"),
    TlsScenario("rr_shared_tls12_ticket",
                "roundrobin over pool S (shared ticket keys), TLS 1.2 tickets: every backend resumes",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["rr_shared"], "rr_shared", _sni(n),
                                                 "TLS 1.2", 6), (1, 5), "rr_shared"),
    TlsScenario("rr_shared_tls12_sessionid",
                "roundrobin over pool S, TLS 1.2 session ids: shared ticket keys do not share the "
                "session caches -> full handshakes",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["rr_shared"], "rr_shared", _sni(n),
                                                 "TLS 1.2", 6, tickets=False), (6, 0), "rr_shared"),
    TlsScenario("rr_shared_tls13", "roundrobin over pool S (shared ticket keys), TLS 1.3 PSK: resumed",
                lambda lab, n, ip, d: run_python(n, ip, lab.frontends["rr_shared"], "rr_shared", _sni(n),
                                                 "TLS 1.3", 6), (1, 5), "rr_shared"),
]


SPLIT_SCENARIOS: list[TlsScenario] = [
    TlsScenario("split7_tls12",
                "Python ssl via a memory BIO, TLS 1.2, the client's records written 7 bytes at a time: "
                "record and handshake headers straddle TCP segments",
                lambda lab, n, ip, d: run_python_split(n, ip, _direct(lab), _sni(n), "TLS 1.2", 2, (), 7),
                (1, 1)),
    TlsScenario("split2_tls13",
                "Python ssl via a memory BIO, TLS 1.3: the first segment holds only the first 2 bytes of "
                "the ClientHello's record header, the rest follows in 100-byte segments",
                lambda lab, n, ip, d: run_python_split(n, ip, _direct(lab), _sni(n), "TLS 1.3", 2, (2,), 100),
                (1, 1)),
]
"""Recorded apart (`record_tls(..., SPLIT_SCENARIOS)`): they exercise segmentation, and a finding
in one of them must not blur the counts of the main recording."""


# --------------------------------------------------------------------------- logs, recording


@dataclass(frozen=True)
class ProxyLogLine:
    frontend: str        # "rr", "source", "rr_shared"
    client_ip: str
    client_port: int
    server: str          # "a1"...
    proxy_ip: str        # source of the backend connection (%bi:%bp)
    proxy_port: int
    server_ip: str
    server_port: int


_PROXY_RE = re.compile(LOG_TAG + r" fe=fe_(\S+) ci=([\d.]+):(\d+) be=\S+ srv=(\S+) bi=([\d.]+):(\d+) "
                       r"si=([\d.]+):(\d+) ts=(\S+)")


def parse_proxy_log(text: str) -> list[ProxyLogLine]:
    out = []
    for line in text.splitlines():
        m = _PROXY_RE.search(line)
        if m is None:
            continue
        if m.group(9) != "--":
            raise LabError(f"HAProxy ended a connection abnormally (termination state {m.group(9)}): {line}")
        out.append(ProxyLogLine(m.group(1), m.group(2), int(m.group(3)), m.group(4), m.group(5),
                                int(m.group(6)), m.group(7), int(m.group(8))))
    return out


@dataclass(frozen=True)
class NginxTlsLine:
    server: str
    remote_ip: str
    remote_port: int
    version: str
    sni: str
    reused: bool


_NGINX_RE = re.compile(r'ra=([\d.]+):(\d+) proto=(\S+) sni="([^"]*)" reused=(\S)')


def parse_nginx_log(server: str, text: str) -> list[NginxTlsLine]:
    out = []
    for line in text.splitlines():
        m = _NGINX_RE.search(line)
        if m:
            out.append(NginxTlsLine(server, m.group(1), int(m.group(2)), VERSIONS.get(m.group(3), m.group(3)),
                                    m.group(4), m.group(5) == "r"))
    return out


@dataclass
class TlsRecording:
    directory: Path
    pcap: Path
    clients: list[TlsClientConn]
    client_ips: dict[str, str]                 # scenario -> client address
    proxy_log: list[ProxyLogLine]
    nginx_log: list[NginxTlsLine]
    tcpdump: TcpdumpStats
    tls_ports: list[int]
    servers: dict[str, str]                    # server name -> ip:port
    frontends: dict[str, str]                  # frontend name -> ip:port
    seconds: float

    def scenario(self, name: str) -> list[TlsClientConn]:
        return [c for c in self.clients if c.scenario == name]

    def save(self) -> None:
        (self.directory / "clients.json").write_text(json.dumps(
            {"clients": [c.to_json() for c in self.clients], "client_ips": self.client_ips,
             "servers": self.servers, "frontends": self.frontends, "seconds": self.seconds}, indent=1))


def record_tls(directory: Path, scenarios: list[TlsScenario] | None = None,
               port_base: int | None = None) -> TlsRecording:
    """Run `scenarios` (default SCENARIOS) in one lab (one capture), each from its own client
    address 127.0.2.<i>."""
    scenarios = SCENARIOS if scenarios is None else scenarios
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    spec = LabSpec("tls", n_backends=1)  # Lab's HTTP knobs; unused by TlsLab
    lab = TlsLab(spec, directory) if port_base is None else TlsLab(spec, directory, port_base)
    clients: list[TlsClientConn] = []
    client_ips: dict[str, str] = {}
    with lab:
        for i, sc in enumerate(scenarios, 1):
            ip = f"{CLIENT_PREFIX}{i}"
            client_ips[sc.name] = ip
            clients += sc.run(lab, sc.name, ip, directory)
        stats = lab.stop()
    nginx = []
    for name in lab.servers:
        path = lab.nginx_access_log(name)
        if path.exists():
            nginx += parse_nginx_log(name, path.read_text())
    rec = TlsRecording(directory, lab.pcap_path, clients, client_ips,
                       parse_proxy_log(lab.haproxy_log_path.read_text()), nginx, stats, lab.tls_ports,
                       {k: str(s.ep) for k, s in lab.servers.items()},
                       {k: str(v) for k, v in lab.frontends.items()}, time.monotonic() - t0)
    rec.save()
    return rec
