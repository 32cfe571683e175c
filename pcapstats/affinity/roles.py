"""Who is who in a capture: clients, a balancer (proxy) and its backends.

An address that is a *server* to some HTTP connections and a *client* of
others is a proxy. Connections to the proxy's listening endpoints are the
client side; connections from the proxy are the backend side. The user can
name the frontend (``--frontend ADDR:PORT``) and the backend networks
(``--backend-net CIDR``) instead; what was given always wins.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..errors import UsageError


@dataclass
class Roles:
    proxies: set[str] = field(default_factory=set)
    frontends: set[tuple[str, int]] = field(default_factory=set)
    backend_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    detected: bool = False
    how: str = ""

    @property
    def two_sided(self) -> bool:
        return bool(self.frontends or self.backend_nets)


def parse_frontend(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--frontend {text!r}: expected ADDR:PORT, e.g. 10.0.0.10:80")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--frontend {text!r}: {host!r} is not an IP address") from None
    return host, int(port)


def parse_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"--backend-net {text!r}: expected a CIDR such as 10.0.2.0/24") from None


def detect_roles(conns: list[dict], frontend: list[str] | tuple[str, ...] = (),
                 backend_net: list[str] | tuple[str, ...] = ()) -> Roles:
    roles = Roles(frontends={parse_frontend(f) for f in frontend},
                  backend_nets=[parse_net(n) for n in backend_net])
    if roles.frontends or roles.backend_nets:
        roles.proxies = {ip for ip, _ in roles.frontends}
        roles.how = "given on the command line"
        return roles
    http = [c for c in conns if c["requests"] or c["app"] == "tls"]
    servers = {c["server_ip"] for c in http}
    clients = {c["client_ip"] for c in http}
    proxies = servers & clients
    if not proxies:
        return roles
    roles.proxies = proxies
    roles.frontends = {(c["server_ip"], c["server_port"]) for c in http
                       if c["server_ip"] in proxies}
    roles.detected = True
    roles.how = ("detected: " + ", ".join(sorted(proxies))
                 + " is a server to clients and a client to servers")
    return roles


def side_of(conn: dict, roles: Roles) -> str:
    """'client', 'backend' or '' for one connection row."""
    if not roles.two_sided:
        return ""
    if (conn["server_ip"], conn["server_port"]) in roles.frontends:
        return "client"
    if roles.backend_nets:
        ip = ipaddress.ip_address(conn["server_ip"])
        if any(ip in net for net in roles.backend_nets):
            return "backend"
        return "client" if not roles.frontends else ""
    if conn["client_ip"] in roles.proxies:
        return "backend"
    return ""
