"""A load-balancing lab on loopback: nginx backends behind HAProxy, recorded by tcpdump.

Everything runs as children of the calling process, on 127.0.0.0/8 only:

    clients 127.0.1.x  ──►  HAProxy 127.0.0.10:<base>  ──►  nginx b1 127.0.0.21:<base+1>
    (wrk: 127.0.0.1)        (backend connections             nginx b2 127.0.0.22:<base+2>
                             leave from 127.0.0.10,          nginx b3 127.0.0.23:<base+3>
                             ports from a range of their own: proxy_source_ports)

HAProxy logs one line per request to its stdout (a file in the lab directory) in a
key=value format that names the client connection (%ci:%cp), the frontend (%fi:%fp),
the chosen server (%s, %si:%sp), the backend connection's source (%bi:%bp), the request
line, status, cookies and X-Forwarded-For; `truth.py` parses it.

Order of a run (see `Lab.__enter__` / `Lab.stop`): refuse if an address:port is taken,
start tcpdump and wait until it listens, start nginx and HAProxy and wait (by reading
/proc/net/tcp, so no probe connection lands in the capture) until they listen, let the
clients run, stop HAProxy and nginx, wait until `CAPTURE_TAIL_S` after the last client,
stop tcpdump with SIGINT and check it dropped nothing. Every process is stopped by its own
PID, also when something fails; every wait has a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

# --------------------------------------------------------------------------- addresses

FRONTEND_IP = "127.0.0.10"
"""HAProxy's VIP; HAProxy also uses it as the source address of backend connections."""
BACKEND_IPS = ("127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24")
CLIENT_PREFIX = "127.0.1."
"""Python and curl clients bind to 127.0.1.<n>; wrk cannot bind and comes from 127.0.0.1."""
WRK_IP = "127.0.0.1"
PROXY_SOURCE_PORTS = 1500
"""How many source ports each server's connections take in turn (see proxy_source_ports)."""
DEFAULT_PORT_BASE = 18080
"""Frontend port; backend i listens on base + i. Override with PCAPSTATS_LAB_PORT_BASE."""
CAPTURE_TAIL_S = 1.5
"""tcpdump keeps running this long after the last client finished."""
READY_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0

REQUIRED_BINARIES = ("haproxy", "nginx", "tcpdump", "tshark", "wrk", "curl")
DEBIAN_PACKAGES = ("haproxy", "nginx", "tcpdump", "tshark", "wrk", "curl")

LOG_TAG = "PCAPLAB"
# One line per request. Quoted free text (+E inside literal quotes) escapes \" \\ \]; %r and
# the capture-cookie fields use HAProxy's #XX escaping. Timers: Th/Ti/TR/Tw/Tc/Tr/Ta in ms.
HAPROXY_LOG_FORMAT = (
    LOG_TAG + " ts=%Ts.%ms ci=%ci:%cp fi=%fi:%fp fe=%f be=%b srv=%s si=%si:%sp bi=%bi:%bp"
    " st=%ST tsc=%tsc t=%Th/%Ti/%TR/%Tw/%Tc/%Tr/%Ta rc=%rc bytes=%U/%B"
    " cc=%{+Q}CC cs=%{+Q}CS"
    ' host=\\"%{+E}[var(txn.host)]\\" ck=\\"%{+E}[var(txn.ck)]\\" xff=\\"%{+E}[var(txn.xff)]\\"'
    ' nsc=%[var(txn.nsc)] sc1=\\"%{+E}[var(txn.sc1)]\\" sc2=\\"%{+E}[var(txn.sc2)]\\"'
    " r=%{+Q}r"
)


class LabError(RuntimeError):
    """The lab could not be set up or run (address taken, process died, timeout, drops)."""


def find_binary(name: str) -> str | None:
    """Path of `name` on PATH or in /usr/sbin, /sbin (not on a non-root PATH on Debian)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if find_binary(name) is None]


def ensure_packages(*, timeout_s: float = 900.0) -> list[str]:
    """Install the Debian packages the lab needs when a binary is missing; return what was installed.

    For the test set-up script (needs root and apt); tests never call it.
    """
    missing = missing_binaries()
    if not missing:
        return []
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    apt = find_binary("apt-get")
    if apt is None:
        raise LabError(f"missing {', '.join(missing)} and no apt-get to install them")
    subprocess.run([apt, "update"], check=True, env=env, timeout=timeout_s)
    subprocess.run([apt, "install", "-y", *DEBIAN_PACKAGES], check=True, env=env, timeout=timeout_s)
    still = missing_binaries()
    if still:
        raise LabError(f"still missing after apt-get install: {', '.join(still)}")
    return missing


def port_base_from_env() -> int:
    raw = os.environ.get("PCAPSTATS_LAB_PORT_BASE")
    if not raw:
        return DEFAULT_PORT_BASE
    try:
        value = int(raw)
    except ValueError as exc:
        raise LabError(f"PCAPSTATS_LAB_PORT_BASE={raw!r} is not a port number") from exc
    if not 1024 <= value <= 65000:
        raise LabError(f"PCAPSTATS_LAB_PORT_BASE={value} is out of range 1024..65000")
    return value


# --------------------------------------------------------------------------- sockets


def _listening_sockets() -> set[tuple[str, int]]:
    """(ip, port) of every IPv4 TCP socket in LISTEN state, from /proc/net/tcp."""
    result: set[tuple[str, int]] = set()
    with open("/proc/net/tcp", encoding="ascii") as fh:
        next(fh, None)
        for line in fh:
            parts = line.split()
            if len(parts) < 4 or parts[3] != "0A":
                continue
            hex_ip, hex_port = parts[1].split(":")
            ip = socket.inet_ntoa(struct.pack("<I", int(hex_ip, 16)))
            result.add((ip, int(hex_port, 16)))
    return result


def is_listening(ip: str, port: int) -> bool:
    listening = _listening_sockets()
    return (ip, port) in listening


def _listening_check(ep: "Endpoint") -> Callable[[], bool]:
    return lambda: is_listening(ep.ip, ep.port)


def check_free(endpoints: list[tuple[str, int]]) -> None:
    """Raise LabError if any ip:port is already listened on (also via 0.0.0.0) or cannot be bound."""
    listening = _listening_sockets()
    for ip, port in endpoints:
        if (ip, port) in listening or ("0.0.0.0", port) in listening:
            raise LabError(
                f"{ip}:{port} is already in use by another listener; stop it or set "
                "PCAPSTATS_LAB_PORT_BASE to another port range"
            )
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((ip, port))
        except OSError as exc:
            raise LabError(f"{ip}:{port} cannot be bound ({exc}); is it taken?") from exc
        finally:
            probe.close()


# --------------------------------------------------------------------------- processes


class ManagedProcess:
    """One child process with stdout/stderr in files, stopped by its own PID only."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            # A session of its own: a Ctrl-C on the terminal reaches us, and we stop it in order.
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fail_if_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(
                f"{self.name} (pid {self.proc.pid}) exited with {self.proc.returncode}: "
                f"{self.stderr_text().strip()[-2000:]}"
            )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Send `sig` to our PID, wait up to `timeout_s`, then SIGKILL. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        return proc.returncode


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float,
               check: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if check is not None:
            check()
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class LabSpec:
    """What differs between scenarios: the HAProxy directives and the frontend bind options."""

    name: str
    backend_directives: str = "balance roundrobin"
    """Lines for HAProxy's backend section (balance, cookie, stick-table, options)."""
    server_options: str = ""
    """Appended to every `server` line; `{name}` is replaced by the server name (e.g. `cookie {name}`)."""
    frontend_directives: str = ""
    bind_options: str = ""
    """e.g. `mss 536`."""
    capture_cookie: str = "SERVERID"
    """The cookie HAProxy captures into %CC/%CS (one per proxy)."""
    app_cookie: str = "JSESSIONID"
    """The cookie nginx sets on /app/ when the request has none."""
    n_backends: int = 3
    nbthread: int = 1


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class TcpdumpStats:
    captured: int
    received: int
    dropped: int


BIG_BODY_BYTES = 6000


def nginx_prologue(p: Path) -> str:
    """The start of every lab nginx config: run as root (its temp dir is root-only), pid,
    logs and temp paths in the lab's folder, and the opening of the http block."""
    return textwrap.dedent(f"""\
        user root;
        worker_processes 1;
        pid {p}/nginx.pid;
        error_log {p}/logs/error.log warn;
        events {{ worker_connections 512; }}
        http {{
          client_body_temp_path {p}/tmp/body;
          proxy_temp_path {p}/tmp/proxy;
          fastcgi_temp_path {p}/tmp/fastcgi;
          uwsgi_temp_path {p}/tmp/uwsgi;
          scgi_temp_path {p}/tmp/scgi;
        """)


def nginx_config(name: str, ep: Endpoint, root: Path, app_cookie: str) -> str:
    """nginx serving: `/` and anything else (text naming the backend), `/app/` (also sets the
    app cookie when the request has none; value = $request_id), `/big` (a 6 kB static file whose
    first line names the backend). Every response has `X-Backend: <name>`."""
    body = f"backend={name} conn=$connection reqs=$connection_requests uri=$request_uri\\n"
    p = root
    return nginx_prologue(p) + textwrap.dedent(f"""\
          log_format lab 'ra=$remote_addr:$remote_port conn=$connection cr=$connection_requests '
                         'st=$status rid=$request_id ck="$http_cookie" xff="$http_x_forwarded_for" '
                         'r="$request"';
          access_log {p}/logs/access.log lab;
          server_tokens off;
          keepalive_timeout 30s;
          keepalive_requests 10000;
          map $cookie_{app_cookie} $lab_set_app_cookie {{
            "" "{app_cookie}=$request_id; Path=/";
            default "";
          }}
          server {{
            listen {ep.ip}:{ep.port};
            default_type text/plain;
            add_header X-Backend {name} always;
            location / {{
              return 200 "{body}";
            }}
            location /app/ {{
              add_header X-Backend {name} always;
              add_header Set-Cookie $lab_set_app_cookie;
              return 200 "{body}";
            }}
            location = /big {{
              alias {p}/www/big.txt;
            }}
          }}
        }}
        """)


def big_body(name: str) -> str:
    head = f"backend={name} static=big\n"
    line = "0123456789abcdefghijklmnopqrstuvwxyz" * 2 + "\n"
    out = head
    while len(out) + len(line) <= BIG_BODY_BYTES:
        out += line
    return out


def proxy_source_ports(port_base: int, servers: int) -> list[tuple[int, int]]:
    """The ports each server's connections leave from: a range of its own (HAProxy takes
    one per server), which HAProxy hands out first in, first out. With the kernel
    choosing (at connect), the port of a finished connection in TIME_WAIT may come back
    for the same backend on loopback (net.ipv4.tcp_tw_reuse), and one 4-tuple then
    names two connections in the capture; from a range a port returns only after every
    other one was used. Below the kernel's ephemeral ports, clear of the lab's own."""
    n = PROXY_SOURCE_PORTS
    lo = 20000 if not 19900 < port_base < 20000 + servers * n else 26100
    return [(lo + i * n, lo + (i + 1) * n - 1) for i in range(servers)]


def haproxy_config(spec: LabSpec, frontend: Endpoint, backends: dict[str, Endpoint]) -> str:
    servers = "\n".join(
        f"  server {name} {ep.ip}:{ep.port} source {FRONTEND_IP}:{lo}-{hi} "
        f"{spec.server_options.format(name=name)}".rstrip()
        for (name, ep), (lo, hi) in zip(backends.items(),
                                        proxy_source_ports(frontend.port, len(backends)))
    )
    frontend_extra = textwrap.indent(textwrap.dedent(spec.frontend_directives).strip(), "  ")
    backend_extra = textwrap.indent(textwrap.dedent(spec.backend_directives).strip(), "  ")
    return (
        "global\n"
        "  log stdout len 16384 format raw local0\n"
        "  tune.http.logurilen 8192\n"
        f"  nbthread {spec.nbthread}\n"
        "  maxconn 2000\n"
        "defaults\n"
        "  mode http\n"
        "  log global\n"
        "  option httplog\n"
        "  timeout connect 2s\n"
        "  timeout client 10s\n"
        "  timeout server 10s\n"
        "  timeout http-request 5s\n"
        "  timeout http-keep-alive 5s\n"
        "frontend fe\n"
        f"  bind {frontend.ip}:{frontend.port} {spec.bind_options}".rstrip() + "\n"
        f"  capture cookie {spec.capture_cookie} len 63\n"
        "  http-request set-var(txn.host) req.fhdr(host)\n"
        "  http-request set-var(txn.ck) req.fhdr(cookie)\n"
        "  http-request set-var(txn.xff) req.fhdr(x-forwarded-for,1)\n"
        "  http-after-response set-var(txn.nsc) res.fhdr_cnt(set-cookie)\n"
        "  http-after-response set-var(txn.sc1) res.fhdr(set-cookie,1)\n"
        "  http-after-response set-var(txn.sc2) res.fhdr(set-cookie,2)\n"
        f'  log-format "{HAPROXY_LOG_FORMAT}"\n'
        + (frontend_extra + "\n" if frontend_extra else "")
        + "  default_backend be\n"
        "backend be\n"
        f"  source {FRONTEND_IP}\n"
        + (backend_extra + "\n" if backend_extra else "")
        + servers + "\n"
    )


# --------------------------------------------------------------------------- the lab


_TCPDUMP_STATS = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received": re.compile(r"(\d+) packets? received by filter"),
    "dropped": re.compile(r"(\d+) packets? dropped by kernel"),
}


@dataclass
class Lab:
    """Context manager running one scenario's servers and capture in `workdir`.

    >>> with Lab(spec, workdir) as lab:       # doctest: +SKIP
    ...     run_clients(lab.frontend)
    ...     stats = lab.stop()                # after the last client; raises on drops
    """

    spec: LabSpec
    workdir: Path
    port_base: int = field(default_factory=port_base_from_env)
    frontend: Endpoint = field(init=False)
    backends: dict[str, Endpoint] = field(init=False)
    pcap_path: Path = field(init=False)
    haproxy_log_path: Path = field(init=False)
    tcpdump_stats: TcpdumpStats | None = field(init=False, default=None)
    _procs: list[ManagedProcess] = field(init=False, default_factory=list)
    _tcpdump: ManagedProcess | None = field(init=False, default=None)
    _haproxy: ManagedProcess | None = field(init=False, default=None)
    _nginx: dict[str, ManagedProcess] = field(init=False, default_factory=dict)
    _stopped: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if not 1 <= self.spec.n_backends <= len(BACKEND_IPS):
            raise LabError(f"n_backends must be 1..{len(BACKEND_IPS)}")
        self.workdir = Path(self.workdir)
        self.frontend = Endpoint(FRONTEND_IP, self.port_base)
        self.backends = {
            f"b{i}": Endpoint(BACKEND_IPS[i - 1], self.port_base + i)
            for i in range(1, self.spec.n_backends + 1)
        }
        self.pcap_path = self.workdir / "capture.pcap"
        self.haproxy_log_path = self.workdir / "haproxy.log"

    # -- paths of what a run leaves behind
    def nginx_access_log(self, name: str) -> Path:
        return self.workdir / f"nginx-{name}" / "logs" / "access.log"

    @property
    def bpf_filter(self) -> str:
        parts = [f"(host {self.frontend.ip} and port {self.frontend.port})"]
        parts += [f"(host {ep.ip} and port {ep.port})" for ep in self.backends.values()]
        return "tcp and (" + " or ".join(parts) + ")"

    # -- start
    def __enter__(self) -> "Lab":
        try:
            self.start()
        except BaseException:
            self._kill_all()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None and not self._stopped:
            self.stop()
        else:
            self._kill_all()

    def start(self) -> None:
        missing = missing_binaries()
        if missing:
            raise LabError(f"missing binaries: {', '.join(missing)}")
        check_free([(self.frontend.ip, self.frontend.port)]
                   + [(ep.ip, ep.port) for ep in self.backends.values()])
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_tcpdump()
        for name, ep in self.backends.items():
            self._start_nginx(name, ep)
        self._start_haproxy()
        for name, ep in self.backends.items():
            wait_until(_listening_check(ep), f"nginx {name} on {ep}", READY_TIMEOUT_S,
                       self._nginx[name].fail_if_dead)
        assert self._haproxy is not None
        wait_until(lambda: is_listening(self.frontend.ip, self.frontend.port),
                   f"haproxy on {self.frontend}", READY_TIMEOUT_S, self._haproxy.fail_if_dead)

    def _start_tcpdump(self) -> None:
        if self.pcap_path.exists():
            self.pcap_path.unlink()
        argv = [find_binary("tcpdump") or "tcpdump", "-i", "lo", "-n", "-s", "0", "-Z", "root",
                "-U", "--immediate-mode", "-B", "32768", "-w", str(self.pcap_path), self.bpf_filter]
        proc = ManagedProcess("tcpdump", argv, self.workdir)
        self._procs.append(proc)
        self._tcpdump = proc
        proc.start()
        wait_until(lambda: "listening on" in proc.stderr_text(), "tcpdump to listen on lo",
                   READY_TIMEOUT_S, proc.fail_if_dead)

    def _start_nginx(self, name: str, ep: Endpoint) -> None:
        root = self.workdir / f"nginx-{name}"
        for sub in ("logs", "tmp", "www"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "www" / "big.txt").write_text(big_body(name))
        conf = root / "nginx.conf"
        conf.write_text(nginx_config(name, ep, root, self.spec.app_cookie))
        argv = [find_binary("nginx") or "nginx", "-g", "daemon off;", "-p", str(root),
                "-e", str(root / "logs" / "error.log"), "-c", str(conf)]
        proc = ManagedProcess(f"nginx-{name}", argv, self.workdir)
        self._procs.append(proc)
        self._nginx[name] = proc
        proc.start()

    def _start_haproxy(self) -> None:
        conf = self.workdir / "haproxy.cfg"
        conf.write_text(haproxy_config(self.spec, self.frontend, self.backends))
        binary = find_binary("haproxy") or "haproxy"
        check = subprocess.run([binary, "-c", "-f", str(conf)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise LabError(f"haproxy rejects {conf}: {check.stdout}{check.stderr}")
        proc = ManagedProcess("haproxy", [binary, "-db", "-f", str(conf)], self.workdir)
        # HAProxy's stdout is its log: name the file for what it is.
        proc.stdout_path = self.haproxy_log_path
        self._procs.append(proc)
        self._haproxy = proc
        proc.start()

    # -- stop
    def stop(self, last_client_done: float | None = None) -> TcpdumpStats:
        """Stop HAProxy (soft stop, closes idle connections) and nginx inside the capture, then
        tcpdump `CAPTURE_TAIL_S` after the last client (`time.monotonic()`, default: now).
        Raises LabError if tcpdump dropped packets or a server had died during the run."""
        if self._stopped:
            assert self.tcpdump_stats is not None
            return self.tcpdump_stats
        done = time.monotonic() if last_client_done is None else last_client_done
        self._stopped = True
        try:
            died = [p for p in [self._haproxy, *self._nginx.values()] if p is not None and not p.alive()]
            if died:
                names = ", ".join(f"{p.name}: {p.stderr_text().strip()[-500:]}" for p in died)
                raise LabError(f"server(s) died during the run: {names}")
            time.sleep(max(0.0, done + 0.2 - time.monotonic()))
            if self._haproxy is not None:
                self._haproxy.stop(signal.SIGUSR1, timeout_s=3.0)
            for proc in self._nginx.values():
                proc.stop(signal.SIGQUIT, timeout_s=3.0)
            time.sleep(max(0.0, done + CAPTURE_TAIL_S - time.monotonic()))
            assert self._tcpdump is not None
            self._tcpdump.stop(signal.SIGINT, timeout_s=STOP_TIMEOUT_S)
            self.tcpdump_stats = self._read_tcpdump_stats()
        finally:
            self._kill_all()
        if self.tcpdump_stats.dropped != 0:
            raise LabError(f"tcpdump dropped {self.tcpdump_stats.dropped} packets; the capture "
                           "is incomplete (machine too busy?)")
        return self.tcpdump_stats

    def _read_tcpdump_stats(self) -> TcpdumpStats:
        assert self._tcpdump is not None
        text = self._tcpdump.stderr_text()
        values: dict[str, int] = {}
        for key, pattern in _TCPDUMP_STATS.items():
            m = pattern.search(text)
            if m is None:
                raise LabError(f"tcpdump printed no '{key}' count: {text.strip()[-1000:]}")
            values[key] = int(m.group(1))
        return TcpdumpStats(**values)

    def _kill_all(self) -> None:
        """Stop every process we started, by PID, newest first (servers before tcpdump)."""
        for proc in reversed(self._procs):
            if proc.alive():
                sig = signal.SIGINT if proc is self._tcpdump else signal.SIGTERM
                proc.stop(sig, timeout_s=STOP_TIMEOUT_S)
