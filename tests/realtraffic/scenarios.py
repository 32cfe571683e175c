"""Scenarios: one lab configuration plus a bounded client plan, recorded into a `Recording`.

    rec = record_scenario("cookie_insert", Path("/tmp/out/cookie_insert"))
    rec.pcap, rec.log, rec.clients, rec.addresses, rec.truth

Each scenario takes a few seconds (most of it the capture tail after the last client) and a few
dozen requests. Python clients run in lock-step (round r of every client, then a 10 ms pause),
so which server round robin picks is reproducible; wrk brings the concurrency.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .clients import ClientRequest, LabHttpClient, WrkResult, run_curl, run_wrk
from .lab import FRONTEND_IP, WRK_IP, Endpoint, Lab, LabSpec, TcpdumpStats
from .truth import LogRecord, Truth, compute_truth, parse_haproxy_log


@dataclass(frozen=True)
class LabAddresses:
    frontend: Endpoint                  # HAProxy VIP:port (client side)
    proxy_source_ip: str                # source address of HAProxy's backend connections
    backends: dict[str, Endpoint]       # server name -> ip:port (backend side)
    clients: dict[str, tuple[str, ...]]  # client name -> source IPs, in the order used

    def to_json(self) -> dict[str, Any]:
        return {"frontend": str(self.frontend), "proxy_source_ip": self.proxy_source_ip,
                "backends": {k: str(v) for k, v in self.backends.items()},
                "clients": {k: list(v) for k, v in self.clients.items()}}

    @staticmethod
    def from_json(d: dict[str, Any]) -> "LabAddresses":
        def ep(s: str) -> Endpoint:
            ip, _, port = s.rpartition(":")
            return Endpoint(ip, int(port))
        return LabAddresses(ep(d["frontend"]), d["proxy_source_ip"],
                            {k: ep(v) for k, v in d["backends"].items()},
                            {k: tuple(v) for k, v in d["clients"].items()})


@dataclass(frozen=True, slots=True)
class NginxLogRecord:
    backend: str
    remote_ip: str      # = HAProxy's %bi
    remote_port: int    # = HAProxy's %bp
    connection: int     # nginx $connection
    connection_requests: int
    status: int
    request_line: str


_NGINX_RE = re.compile(r'ra=(\S+):(\d+) conn=(\d+) cr=(\d+) st=(\d+) .* r="(.*)"$')


def parse_nginx_log(name: str, text: str) -> list[NginxLogRecord]:
    out = []
    for line in text.splitlines():
        m = _NGINX_RE.match(line)
        if m:
            out.append(NginxLogRecord(name, m.group(1), int(m.group(2)), int(m.group(3)),
                                      int(m.group(4)), int(m.group(5)), m.group(6)))
    return out


@dataclass
class Recording:
    """One recorded scenario: the capture, HAProxy's log (truth), the clients' own records."""

    scenario: str
    description: str
    directory: Path
    pcap: Path
    haproxy_log: Path
    log: list[LogRecord]
    clients: list[ClientRequest]        # python + curl requests (wrk has only a summary)
    wrk: list[WrkResult]
    addresses: LabAddresses
    session_keys: tuple[str, ...]       # first = the scenario's primary session key
    expected_requests: tuple[int, int]  # (min, max) requests the log must hold
    tcpdump: TcpdumpStats
    nginx_log: dict[str, list[NginxLogRecord]]
    seconds: float                      # wall time of the recording
    truth: Truth = field(init=False)

    def __post_init__(self) -> None:
        self.truth = compute_truth(self.log, self.session_keys, self.client_names(),
                                   self.addresses.backends)

    def client_names(self) -> dict[tuple[str, int], str]:
        names = {(r.client_ip, r.client_port): r.client for r in self.clients}
        for rec in self.log:
            if rec.client_ip == WRK_IP and self.wrk:
                names.setdefault((rec.client_ip, rec.client_port), "wrk")
        return names

    def metadata_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "description": self.description,
            "pcap": self.pcap.name, "haproxy_log": self.haproxy_log.name,
            "addresses": self.addresses.to_json(), "session_keys": list(self.session_keys),
            "expected_requests": list(self.expected_requests), "tcpdump": asdict(self.tcpdump),
            "seconds": self.seconds, "clients": [c.to_json() for c in self.clients],
            "wrk": [w.to_json() for w in self.wrk],
        }

    def save(self) -> None:
        """Write recording.json (metadata, client records) and truth.json beside the capture."""
        (self.directory / "recording.json").write_text(json.dumps(self.metadata_json(), indent=1))
        truth = {"scenario": self.scenario, "description": self.description,
                 "addresses": self.addresses.to_json(), **self.truth.to_json()}
        (self.directory / "truth.json").write_text(json.dumps(truth, indent=1))


def load_recording(directory: Path) -> Recording:
    """Rebuild a Recording saved by `Recording.save` (re-parses the logs)."""
    meta = json.loads((directory / "recording.json").read_text())
    addresses = LabAddresses.from_json(meta["addresses"])
    return Recording(
        scenario=meta["scenario"], description=meta["description"], directory=directory,
        pcap=directory / meta["pcap"], haproxy_log=directory / meta["haproxy_log"],
        log=parse_haproxy_log((directory / meta["haproxy_log"]).read_text()),
        clients=[ClientRequest(**c) for c in meta["clients"]],
        wrk=[WrkResult(**w) for w in meta["wrk"]], addresses=addresses,
        session_keys=tuple(meta["session_keys"]),
        expected_requests=(meta["expected_requests"][0], meta["expected_requests"][1]),
        tcpdump=TcpdumpStats(**meta["tcpdump"]), nginx_log=_read_nginx_logs(directory, addresses),
        seconds=meta["seconds"])


def _read_nginx_logs(directory: Path, addresses: LabAddresses) -> dict[str, list[NginxLogRecord]]:
    out = {}
    for name in addresses.backends:
        path = directory / f"nginx-{name}" / "logs" / "access.log"
        out[name] = parse_nginx_log(name, path.read_text() if path.exists() else "")
    return out


# --------------------------------------------------------------------------- driving clients


class Driver:
    """What a scenario's client plan gets: client factories that register their records."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.frontend = lab.frontend
        self.python_clients: list[LabHttpClient] = []
        self.curl_records: list[ClientRequest] = []
        self.curl_ips: dict[str, list[str]] = {}
        self.wrk_results: list[WrkResult] = []

    def client(self, name: str, ip: str, **kwargs: Any) -> LabHttpClient:
        c = LabHttpClient(name, ip, self.frontend, **kwargs)
        self.python_clients.append(c)
        return c

    def curl(self, name: str, ip: str, paths: list[str], **kwargs: Any) -> list[ClientRequest]:
        jar = self.lab.workdir / f"curl-{name}.jar"
        recs = run_curl(name, ip, self.frontend, paths, jar, **kwargs)
        self.curl_records.extend(recs)
        self.curl_ips.setdefault(name, [])
        if ip not in self.curl_ips[name]:
            self.curl_ips[name].append(ip)
        return recs

    def wrk(self, path: str, **kwargs: Any) -> WrkResult:
        res = run_wrk(self.frontend, path, self.lab.workdir, **kwargs)
        self.wrk_results.append(res)
        return res

    @staticmethod
    def lockstep(clients: list[LabHttpClient], rounds: int,
                 step: Callable[[int, LabHttpClient], object], pause_s: float = 0.01) -> None:
        """Round r of every client in order, then a pause (an idle gap on kept-alive
        connections); clients close their connections at the end (the client closes first)."""
        for r in range(rounds):
            for c in clients:
                step(r, c)
            time.sleep(pause_s)
        for c in clients:
            c.close()

    def all_records(self) -> list[ClientRequest]:
        recs = [r for c in self.python_clients for r in c.records] + self.curl_records
        return sorted(recs, key=lambda r: (r.t_start, r.client, r.seq))

    def client_addresses(self) -> dict[str, tuple[str, ...]]:
        out = {c.name: tuple(c.source_ips) for c in self.python_clients}
        out.update({k: tuple(v) for k, v in self.curl_ips.items()})
        if self.wrk_results:
            out["wrk"] = (WRK_IP,)
        return out


def ip(n: int) -> str:
    """Client address 127.0.1.n."""
    return f"127.0.1.{n}"


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    spec: LabSpec
    session_keys: tuple[str, ...]
    plan: Callable[[Driver], None]


COOKIE_INSERT = "balance roundrobin\ncookie SERVERID insert indirect nocache"


def _browse(r: int, c: LabHttpClient) -> None:
    if r == 0:
        c.request("/app/login")
    elif r == 3:
        c.request("/app/form", method="POST", body=b"user=" + c.name.encode() + b"&x=1",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    elif r == 4:
        c.request("/")
    else:
        c.request(f"/app/page{r}")


def plan_cookie_insert(d: Driver) -> None:
    clients = [d.client(f"c{i}", ip(i)) for i in range(1, 6)]
    d.lockstep(clients, 6, _browse)
    d.curl("k1", ip(6), ["/app/a", "/app/b", "/app/c", "/"])
    d.curl("k2", ip(7), ["/app/a", "/app/b", "/", "/app/d"])


def plan_app_cookie(d: Driver) -> None:
    clients = [d.client(f"c{i}", ip(i)) for i in range(1, 6)]
    d.lockstep(clients, 6, lambda r, c: c.request(f"/app/p{r}"))
    d.curl("k1", ip(6), ["/app/a", "/app/b", "/app/c", "/app/d"])


def plan_stick_table(d: Driver) -> None:
    clients = [d.client(f"c{i}", ip(i)) for i in range(1, 6)]

    def step(r: int, c: LabHttpClient) -> None:
        if r == 3 and c.name == "c5":
            c.drop_cookies()           # a new application session for the same client
        c.request(f"/app/p{r}")
    d.lockstep(clients, 6, step)


def plan_balance_source(d: Driver) -> None:
    clients = [d.client(f"c{i}", ip(i)) for i in range(1, 7)]
    mover = d.client("m1", ip(7))

    def step(r: int, c: LabHttpClient) -> None:
        if c is mover and r == 3:
            c.move_to(ip(8))
        c.request(f"/p{r}")
    d.lockstep([*clients, mover], 5, step)


def plan_server_close(d: Driver) -> None:
    clients = [d.client(f"c{i}", ip(i)) for i in range(1, 5)]
    d.lockstep(clients, 6, lambda r, c: c.request(f"/p{r}"))


def plan_close_http10(d: Driver) -> None:
    close11 = [d.client(f"a{i}", ip(i), keep_alive=False) for i in range(1, 4)]
    http10 = [d.client(f"h{i}", ip(3 + i), http10=True, keep_alive=False) for i in range(1, 3)]
    http10_ka = [d.client("k1", ip(6), http10=True, keep_alive=True)]
    d.lockstep([*close11, *http10, *http10_ka], 4, lambda r, c: c.request(f"/p{r}"))
    d.curl("u1", ip(7), ["/a", "/b", "/c"], http10=True)


def plan_reuse_always(d: Driver) -> None:
    short = [d.client(f"a{i}", ip(i), keep_alive=False) for i in range(1, 7)]
    long = [d.client(f"k{i}", ip(6 + i)) for i in range(1, 3)]
    d.lockstep([*short, *long], 4, lambda r, c: c.request(f"/p{r}"))


def plan_wrk(d: Driver) -> None:
    d.wrk("/", connections=4, duration_s=1, stop_after=40)


def plan_forwardfor(d: Driver) -> None:
    # Two upstream proxies multiplexing end users on one keep-alive connection each; user
    # 203.0.113.3 comes through both. Two clients connect directly (no X-Forwarded-For).
    p1 = d.client("proxy1", ip(20))
    p2 = d.client("proxy2", ip(21))
    users = {"proxy1": ["203.0.113.1", "203.0.113.2", "203.0.113.3"],
             "proxy2": ["203.0.113.3", "203.0.113.4", "203.0.113.5"]}
    direct = [d.client(f"d{i}", ip(i)) for i in range(1, 3)]

    def step(r: int, c: LabHttpClient) -> None:
        if c.name in users:
            for u in users[c.name]:
                xff = u if c.name == "proxy1" else f"{u}, 10.9.8.7"
                c.request(f"/u/{u}/p{r}", headers={"X-Forwarded-For": xff})
        else:
            c.request(f"/p{r}")
    d.lockstep([p1, p2, *direct], 3, step)
    for c in direct:            # a few more direct requests
        c.request("/more")
        c.request("/more2")
        c.close()


def plan_midway(d: Driver) -> None:
    n1 = d.client("n1", ip(1))
    drop_srv = d.client("d1", ip(2))
    drop_all = d.client("d2", ip(3))
    mover = d.client("m1", ip(4))
    mover_drop = d.client("m2", ip(5))

    def step(r: int, c: LabHttpClient) -> None:
        if r == 3:
            if c is drop_srv:
                c.drop_cookies(["SERVERID"])       # keeps JSESSIONID: the app session moves
            elif c is drop_all:
                c.drop_cookies()                   # a new session
            elif c is mover:
                c.move_to(ip(14))                  # new source address, same cookies
            elif c is mover_drop:
                c.move_to(ip(15))
                c.drop_cookies(["SERVERID"])
        c.request(f"/app/p{r}")
    d.lockstep([n1, drop_srv, drop_all, mover, mover_drop], 6, step)


PADDING = "x" * 1500
SMALL_WRITE = 512   # < 536 - 12 bytes of TCP timestamp option: one write = one real segment
LONG_QUERY = "q=" + "abcdefghij" * 80


def plan_small_segments(d: Driver) -> None:
    clients = [d.client(f"s{i}", ip(i), mss=536, write_chunk=SMALL_WRITE, rcvbuf=2048,
                        headers={"X-Padding": PADDING}) for i in range(1, 4)]

    def step(r: int, c: LabHttpClient) -> None:
        if r == 0:
            c.request("/app/login")
        elif r == 1:
            c.request(f"/app/long?{LONG_QUERY}")
        elif r == 2:
            c.request("/big")
        elif r == 3:
            c.request("/app/form", method="POST", body=b"f=" + b"y" * 3000,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            c.request("/big")
    d.lockstep(clients, 5, step)
    d.curl("k1", ip(4), ["/app/a", "/big", f"/app/long?{LONG_QUERY}"],
           headers={"X-Padding": PADDING})


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("cookie_insert", "HAProxy inserts SERVERID (insert indirect nocache); the app sets "
             "JSESSIONID on /app/; 5 python keep-alive clients + 2 curl",
             LabSpec("cookie_insert", COOKIE_INSERT, server_options="cookie {name}"),
             ("cookie:JSESSIONID", "cookie:SERVERID"), plan_cookie_insert),
    Scenario("cookie_prefix", "HAProxy prefixes the app cookie (cookie JSESSIONID prefix nocache)",
             LabSpec("cookie_prefix", "balance roundrobin\ncookie JSESSIONID prefix nocache",
                     server_options="cookie {name}", capture_cookie="JSESSIONID"),
             ("cookie:JSESSIONID",), plan_app_cookie),
    Scenario("stick_table", "stick table on the app cookie (store-response / match JSESSIONID); "
             "one client drops its cookie midway",
             LabSpec("stick_table", "balance roundrobin\n"
                     "stick-table type string len 64 size 1m expire 1h\n"
                     "stick store-response res.cook(JSESSIONID)\n"
                     "stick match req.cook(JSESSIONID)", capture_cookie="JSESSIONID"),
             ("cookie:JSESSIONID",), plan_stick_table),
    Scenario("balance_source", "balance source; one client changes source address midway",
             LabSpec("balance_source", "balance source"), ("ip",), plan_balance_source),
    Scenario("roundrobin_server_close", "round robin, no persistence, option http-server-close "
             "(one backend connection per request)",
             LabSpec("roundrobin_server_close", "balance roundrobin\noption http-server-close"),
             ("ip",), plan_server_close),
    Scenario("close_and_http10", "clients sending Connection: close, HTTP/1.0 without and with "
             "keep-alive, curl --http1.0",
             LabSpec("close_and_http10", "balance roundrobin"), ("ip",), plan_close_http10),
    Scenario("reuse_always", "http-reuse always: short client connections (Connection: close) "
             "and keep-alive ones share a few backend connections (TCP multiplexing)",
             LabSpec("reuse_always", "balance roundrobin\nhttp-reuse always"), ("ip",),
             plan_reuse_always),
    Scenario("wrk_keepalive", "wrk -t1 -c4, about 40 requests, keep-alive, from 127.0.0.1",
             LabSpec("wrk_keepalive", "balance roundrobin"), ("ip",), plan_wrk),
    Scenario("forwardfor", "option forwardfor + stick on the first X-Forwarded-For hop; two "
             "upstream proxies carry several users, two clients connect directly",
             LabSpec("forwardfor", "balance roundrobin\noption forwardfor\n"
                     "stick-table type ip size 1m expire 1h\n"
                     "stick on req.hdr_ip(x-forwarded-for,1)"),
             ("xff", "xff_only"), plan_forwardfor),
    Scenario("midway_changes", "SERVERID insert + JSESSIONID; clients drop SERVERID, drop all "
             "cookies, change source address midway",
             LabSpec("midway_changes", COOKIE_INSERT, server_options="cookie {name}"),
             ("cookie:JSESSIONID", "cookie:SERVERID"), plan_midway),
    Scenario("small_segments", "client MSS 536 + 512-byte writes + 4 kB receive buffer, HAProxy "
             "bind mss 536; 1.5 kB header, long URI, 3 kB POST, 6 kB responses: requests and "
             "responses span segments (curl k1: MSS 536 only, loopback offload merges its writes)",
             LabSpec("small_segments", COOKIE_INSERT, server_options="cookie {name}",
                     bind_options="mss 536"),
             ("cookie:JSESSIONID", "cookie:SERVERID"), plan_small_segments),
]}


def record_scenario(name: str, directory: Path, port_base: int | None = None) -> Recording:
    """Run scenario `name` in `directory` (created; its files are the recording)."""
    scenario = SCENARIOS[name]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    lab = Lab(scenario.spec, directory) if port_base is None else Lab(scenario.spec, directory,
                                                                      port_base)
    with lab:
        driver = Driver(lab)
        scenario.plan(driver)
        for c in driver.python_clients:
            c.close()
        stats = lab.stop()
    records = driver.all_records()
    n = len(records)
    lo, hi = n, n
    for w in driver.wrk_results:
        lo += w.completed
        hi += w.completed + w.connections
    addresses = LabAddresses(lab.frontend, FRONTEND_IP, dict(lab.backends),
                             driver.client_addresses())
    rec = Recording(
        scenario=name, description=scenario.description, directory=directory, pcap=lab.pcap_path,
        haproxy_log=lab.haproxy_log_path, log=parse_haproxy_log(lab.haproxy_log_path.read_text()),
        clients=records, wrk=driver.wrk_results, addresses=addresses,
        session_keys=scenario.session_keys, expected_requests=(lo, hi), tcpdump=stats,
        nginx_log=_read_nginx_logs(directory, addresses), seconds=time.monotonic() - t0)
    rec.save()
    return rec
