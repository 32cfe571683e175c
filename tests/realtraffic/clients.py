"""Clients for the lab, each recording what it sent and received (secondary truth).

- `LabHttpClient`: http.client keep-alive client with its own cookie jar, bound to its own
  127.0.1.x source address; optional small MSS (TCP_MAXSEG set before connect) with small
  writes (loopback's segmentation offload would otherwise merge them), HTTP/1.0,
  `Connection: close`; can drop its cookies or move to another source address midway.
- `run_curl`: one curl invocation (several URLs, one keep-alive connection, a cookie jar file),
  bound with `--interface`; per-request records parsed from `-v` and `-w`.
- `run_wrk`: a short, bounded keep-alive load from 127.0.0.1 (wrk cannot bind a source address);
  records only its summary.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .lab import Endpoint, LabError, find_binary

_BODY_RE = re.compile(r"backend=(\S+)(?: conn=(\d+) reqs=(\d+))?")


@dataclass
class ClientRequest:
    """One request as the client saw it."""

    client: str                 # the lab's name for the client (a user/browser)
    tool: str                   # "python" | "curl"
    seq: int                    # 1-based, per client
    client_ip: str
    client_port: int
    connection_seq: int         # 1-based count of TCP connections this client opened
    method: str
    uri: str
    version: str                # as sent: "HTTP/1.1" or "HTTP/1.0"
    status: int | None
    backend: str | None         # server named in the body ("backend=b2")
    backend_conn: int | None    # nginx $connection (per backend process)
    backend_conn_requests: int | None  # nginx $connection_requests
    cookie_sent: str | None     # Cookie header sent
    set_cookies: list[str] = field(default_factory=list)
    xff_sent: str | None = None
    t_start: float = 0.0        # time.time()
    t_end: float = 0.0
    response_bytes: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_body(body: str) -> tuple[str | None, int | None, int | None]:
    m = _BODY_RE.search(body)
    if m is None:
        return None, None, None
    conn = int(m.group(2)) if m.group(2) else None
    reqs = int(m.group(3)) if m.group(3) else None
    return m.group(1), conn, reqs


def parse_set_cookie(value: str) -> tuple[str, str] | None:
    first = value.split(";", 1)[0].strip()
    if "=" not in first:
        return None
    name, _, val = first.partition("=")
    return name.strip(), val.strip()


class _LabConnection(http.client.HTTPConnection):
    """HTTPConnection that binds its source address and sets TCP_MAXSEG before connect."""

    def __init__(self, host: str, port: int, source_ip: str, timeout: float,
                 mss: int | None, http10: bool, write_chunk: int | None = None,
                 rcvbuf: int | None = None) -> None:
        super().__init__(host, port, timeout=timeout, source_address=(source_ip, 0))
        self._source = (source_ip, 0)
        self._mss = mss
        self._write_chunk = write_chunk
        self._rcvbuf = rcvbuf
        if http10:
            self._http_vsn = 10
            self._http_vsn_str = "HTTP/1.0"

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            if self._mss is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, self._mss)
            if self._rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(self._source)
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def send(self, data: Any) -> None:
        """With `write_chunk`, one write (hence one segment) per chunk, 1 ms apart: loopback
        does segmentation offload, so a large write shows up in a capture as one big packet
        whatever the MSS is."""
        if self._write_chunk is None or not isinstance(data, (bytes, bytearray, memoryview)):
            super().send(data)
            return
        assert self.sock is not None
        view = memoryview(data)
        for i in range(0, len(view), self._write_chunk):
            self.sock.sendall(view[i:i + self._write_chunk])
            time.sleep(0.001)


class LabHttpClient:
    """A browser-like keep-alive client with a cookie jar, on its own source address."""

    def __init__(self, name: str, source_ip: str, frontend: Endpoint, *, mss: int | None = None,
                 write_chunk: int | None = None, rcvbuf: int | None = None,
                 http10: bool = False, keep_alive: bool = True, timeout_s: float = 5.0,
                 headers: dict[str, str] | None = None) -> None:
        """`mss`: TCP_MAXSEG before connect; `write_chunk`: send requests in writes of at most
        this many bytes (needed for small segments on loopback, see `_LabConnection.send`);
        `rcvbuf`: SO_RCVBUF before connect (a small window makes responses come in pieces)."""
        if not source_ip.startswith("127."):
            raise LabError(f"client {name}: source address {source_ip} is not on loopback")
        self.name = name
        self.source_ip = source_ip
        self.source_ips: list[str] = [source_ip]
        self.frontend = frontend
        self.mss = mss
        self.write_chunk = write_chunk
        self.rcvbuf = rcvbuf
        self.http10 = http10
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] = {}
        self.records: list[ClientRequest] = []
        self._conn: _LabConnection | None = None
        self._conn_seq = 0

    # -- jar and address changes
    def drop_cookies(self, names: list[str] | None = None) -> None:
        """Forget all cookies, or only `names` (the rest is still sent)."""
        if names is None:
            self.cookies.clear()
        else:
            for n in names:
                self.cookies.pop(n, None)

    def move_to(self, source_ip: str) -> None:
        """Close the connection; later requests leave from `source_ip` (cookies are kept)."""
        self.close()
        self.source_ip = source_ip
        self.source_ips.append(source_ip)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- requests
    def _connection(self) -> _LabConnection:
        if self._conn is None or self._conn.sock is None:
            if self._conn is not None:
                self._conn.close()
            self._conn = _LabConnection(self.frontend.ip, self.frontend.port, self.source_ip,
                                        self.timeout_s, self.mss, self.http10,
                                        self.write_chunk, self.rcvbuf)
            self._conn.connect()
            self._conn_seq += 1
        return self._conn

    def request(self, path: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> ClientRequest:
        conn = self._connection()
        assert conn.sock is not None
        ip, port = conn.sock.getsockname()[:2]
        all_headers = {"User-Agent": f"pcapstats-lab/{self.name}", "Accept": "*/*", **self.headers,
                       **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.http10 and self.keep_alive:
            all_headers["Connection"] = "keep-alive"
        elif not self.http10 and not self.keep_alive:
            all_headers["Connection"] = "close"
        rec = ClientRequest(
            client=self.name, tool="python", seq=len(self.records) + 1, client_ip=ip,
            client_port=port, connection_seq=self._conn_seq, method=method, uri=path,
            version="HTTP/1.0" if self.http10 else "HTTP/1.1", status=None, backend=None,
            backend_conn=None, backend_conn_requests=None, cookie_sent=all_headers.get("Cookie"),
            xff_sent=all_headers.get("X-Forwarded-For"), t_start=time.time())
        self.records.append(rec)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in all_headers.items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
            rec.t_end = time.time()
            self.close()
            raise LabError(f"client {self.name} {method} {path}: {rec.error}") from exc
        rec.t_end = time.time()
        rec.status = resp.status
        rec.response_bytes = len(data)
        rec.set_cookies = resp.msg.get_all("Set-Cookie") or []
        rec.backend, rec.backend_conn, rec.backend_conn_requests = parse_body(
            data.decode("latin-1"))
        for sc in rec.set_cookies:
            parsed = parse_set_cookie(sc)
            if parsed is not None:
                self.cookies[parsed[0]] = parsed[1]
        if resp.will_close:
            self.close()
        return rec


# --------------------------------------------------------------------------- curl

_CURL_MARK = "CURLREC"


def run_curl(name: str, source_ip: str, frontend: Endpoint, paths: list[str], jar: Path, *,
             http10: bool = False, headers: dict[str, str] | None = None,
             timeout_s: float = 10.0) -> list[ClientRequest]:
    """One curl run fetching `paths` in order (curl reuses one connection when it can), with
    its cookie jar in `jar` (read if present, written at the end)."""
    curl = find_binary("curl")
    if curl is None:
        raise LabError("curl is not installed")
    argv = [curl, "-sS", "-v", "--interface", source_ip, "--max-time", str(timeout_s),
            "-b", str(jar) if jar.exists() else "", "-c", str(jar),
            "-A", f"pcapstats-lab/{name}",
            "-w", f"\n{_CURL_MARK} %{{local_ip}} %{{local_port}} %{{http_code}} %{{num_connects}}\n"]
    if http10:
        argv.append("--http1.0")
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    argv += [f"http://{frontend.ip}:{frontend.port}{p}" for p in paths]
    t0 = time.time()
    done = subprocess.run(argv, capture_output=True, timeout=timeout_s + 5)
    t1 = time.time()
    out = done.stdout.decode("latin-1")
    err = done.stderr.decode("latin-1")
    if done.returncode != 0:
        raise LabError(f"curl {name} failed ({done.returncode}): {err[-2000:]}")
    # stderr (-v): "> GET /p HTTP/1.1", "> Cookie: ...", "< Set-Cookie: ..." per transfer
    sent: list[dict[str, Any]] = []
    for line in err.splitlines():
        if line.startswith("> ") and re.match(r"> [A-Z]+ \S+ HTTP/\d\.\d", line):
            method, uri, version = line[2:].split(" ", 2)
            sent.append({"method": method, "uri": uri, "version": version.strip(),
                         "cookie": None, "xff": None, "set_cookies": []})
        elif line.startswith("> ") and sent:
            k, _, v = line[2:].partition(":")
            if k.lower() == "cookie":
                sent[-1]["cookie"] = v.strip()
            elif k.lower() == "x-forwarded-for":
                sent[-1]["xff"] = v.strip()
        elif line.lower().startswith("< set-cookie:") and sent:
            sent[-1]["set_cookies"].append(line.split(":", 1)[1].strip())
    records: list[ClientRequest] = []
    body_parts = out.split(_CURL_MARK)
    conn_seq = 0
    for i, info in enumerate(sent):
        if i + 1 >= len(body_parts):
            raise LabError(f"curl {name}: no write-out for request {i + 1}: {out[-500:]}")
        fields = body_parts[i + 1].split("\n", 1)[0].split()
        ip, port, code, nconn = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
        conn_seq += nconn
        body = body_parts[i].split("\n", 1)[1] if i > 0 else body_parts[i]
        backend, bconn, breqs = parse_body(body)
        records.append(ClientRequest(
            client=name, tool="curl", seq=i + 1, client_ip=ip, client_port=port,
            connection_seq=conn_seq, method=info["method"], uri=info["uri"],
            version=info["version"], status=code, backend=backend, backend_conn=bconn,
            backend_conn_requests=breqs, cookie_sent=info["cookie"], xff_sent=info["xff"],
            set_cookies=info["set_cookies"], t_start=t0, t_end=t1))
    if len(records) != len(paths):
        raise LabError(f"curl {name}: {len(records)} requests seen in -v output, {len(paths)} asked")
    return records


# --------------------------------------------------------------------------- wrk

_WRK_STOP_LUA = """\
local n = 0
response = function(status, headers, body)
  n = n + 1
  if n >= {stop_after} then wrk.thread:stop() end
end
"""


@dataclass
class WrkResult:
    completed: int          # requests wrk counted as done
    connections: int        # -c
    stop_after: int         # per-thread bound given to the Lua script
    source_ip: str
    output: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_wrk(frontend: Endpoint, path: str, workdir: Path, *, connections: int = 4,
            duration_s: int = 1, stop_after: int = 40) -> WrkResult:
    """wrk, one thread, `connections` keep-alive connections, for at most `duration_s` seconds
    and (via Lua) about `stop_after` responses. Requests in flight when it stops still reach
    HAProxy, so the log may hold up to `connections` more requests than `completed`."""
    wrk = find_binary("wrk")
    if wrk is None:
        raise LabError("wrk is not installed")
    script = workdir / "wrk-stop.lua"
    script.write_text(_WRK_STOP_LUA.format(stop_after=stop_after))
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "2s",
            "-s", str(script), f"http://{frontend.ip}:{frontend.port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 10)
    if done.returncode != 0:
        raise LabError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    m = re.search(r"(\d+) requests in", done.stdout)
    if m is None:
        raise LabError(f"wrk printed no request count: {done.stdout[-1000:]}")
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise LabError(f"wrk saw errors: {done.stdout}")
    return WrkResult(completed=int(m.group(1)), connections=connections, stop_after=stop_after,
                     source_ip="127.0.0.1", output=done.stdout)
