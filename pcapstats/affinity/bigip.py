"""Decoders for F5 BIG-IP persistence cookies (`BIGipServer<pool>`).

BIG-IP's cookie-insert persistence writes the chosen pool member's address
and port into the cookie value.  F5 article K6917 ("Overview of BIG-IP
persistence cookie encoding") publishes four plain layouts and one
encrypted form:

=========================  =============================================  ======================
member                     layout (value)                                 example -> decoded
=========================  =============================================  ======================
IPv4                       ``A.P.0000``                                   ``1677787402.36895.0000``
                           A: address as a little-endian 32-bit integer   -> ``10.1.1.100:8080``
                           P: port with its two bytes swapped
IPv4, route domain N       ``rd<N>o00000000000000000000ffff<8 hex>o<P>``  ``rd5o00000000000000000000ffffc0000201o80``
                           address in plain (network order) hex,          -> ``192.0.2.1:80``
                           port in plain decimal
IPv6                       ``vi<32 hex>.<P>``                             ``vi20010112000000000000000000000030.20480``
                           address in plain hex, P byte-swapped           -> ``[2001:112::30]:80``
IPv6, route domain N       ``rd<N>o<32 hex>o<P>``                         ``rd3o20010112000000000000000000000030o80``
                           address in plain hex, port in plain decimal    -> ``[2001:112::30]:80``
encrypted                  ``!`` followed by base64                       opaque -> None
=========================  =============================================  ======================

Note the byte orders differ between layouts: only the default IPv4 address
is little-endian, and only the two dotted layouts byte-swap the port.

Everything here is a pure function that never raises on any input string:
a value that fits no layout decodes to None.  Digits are ASCII only
(`int()` would otherwise accept e.g. Arabic-Indic digits).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = [
    "BigipMember",
    "decode_bigip",
    "decode_bigip_member",
    "encode_bigip_ipv4",
    "is_encrypted_bigip",
]

# Default IPv4 layout.  The third field is "reserved, always 0000" per K6917;
# we accept any short digit run there (or none) so a future use still decodes.
_IPV4_RE = re.compile(r"([0-9]{1,10})\.([0-9]{1,5})(?:\.[0-9]{1,8})?", re.ASCII)
# Route-domain layouts (IPv4-mapped or IPv6 address in 32 hex digits).
_RD_RE = re.compile(r"rd([0-9]{1,5})o([0-9a-fA-F]{32})o([0-9]{1,5})", re.ASCII)
# IPv6 layout in the default route domain.
_VI_RE = re.compile(r"vi([0-9a-fA-F]{32})\.([0-9]{1,5})", re.ASCII)


@dataclass(frozen=True, slots=True)
class BigipMember:
    """A pool member decoded from a BIG-IP persistence cookie."""

    address: str                # "10.1.1.100" or "2001:112::30" (compressed form)
    port: int                   # 0..65535 (0: a wildcard "any port" member)
    route_domain: int | None    # N of an "rd<N>o..." value; None for the default domain
    layout: str                 # "ipv4", "ipv4-rd", "ipv6", "ipv6-rd"

    @property
    def endpoint(self) -> str:
        """``ip:port`` with IPv6 addresses in brackets (``[v6]:port``)."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def _swap16(value: int) -> int:
    """Swap the two bytes of a 16-bit integer (0x901F -> 0x1F90)."""
    return ((value & 0xFF) << 8) | (value >> 8)


def _clean(value: str) -> str:
    """Strip blanks and one pair of surrounding double quotes."""
    text = value.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    return text


def _hex_address(hex32: str) -> tuple[str, bool]:
    """32 hex digits -> (address text, is IPv4-mapped)."""
    addr = ipaddress.IPv6Address(bytes.fromhex(hex32))
    mapped = addr.ipv4_mapped
    if mapped is not None:
        return str(mapped), True
    return str(addr), False


def decode_bigip_member(value: str) -> BigipMember | None:
    """Decode a BIG-IP persistence cookie value into its pool member.

    Returns None for encrypted values (leading ``!``), for values that fit
    no published layout, and for numbers out of range (address > 2**32-1,
    port > 65535).  Never raises.
    """
    if not isinstance(value, str):
        return None
    text = _clean(value)
    if not text or text.startswith("!"):
        return None

    m = _IPV4_RE.fullmatch(text)
    if m is not None:
        raw_addr, raw_port = int(m.group(1)), int(m.group(2))
        if raw_addr > 0xFFFFFFFF or raw_port > 0xFFFF:
            return None
        address = str(ipaddress.IPv4Address(raw_addr.to_bytes(4, "little")))
        return BigipMember(address, _swap16(raw_port), None, "ipv4")

    m = _RD_RE.fullmatch(text)
    if m is not None:
        route_domain, port = int(m.group(1)), int(m.group(3))
        if port > 0xFFFF:
            return None
        address, mapped = _hex_address(m.group(2))
        return BigipMember(address, port, route_domain, "ipv4-rd" if mapped else "ipv6-rd")

    m = _VI_RE.fullmatch(text)
    if m is not None:
        raw_port = int(m.group(2))
        if raw_port > 0xFFFF:
            return None
        address, _mapped = _hex_address(m.group(1))
        return BigipMember(address, _swap16(raw_port), None, "ipv6")

    return None


def decode_bigip(value: str) -> str | None:
    """Decode a BIG-IP persistence cookie value to ``"ip:port"``.

    IPv6 members come back as ``"[v6]:port"``; the route domain, if any, is
    dropped (use `decode_bigip_member` to keep it).  Encrypted (``!...``)
    and malformed values give None.  Never raises.

    >>> decode_bigip("1677787402.36895.0000")
    '10.1.1.100:8080'
    >>> decode_bigip("rd5o00000000000000000000ffffc0000201o80")
    '192.0.2.1:80'
    >>> decode_bigip("vi20010112000000000000000000000030.20480")
    '[2001:112::30]:80'
    """
    member = decode_bigip_member(value)
    return None if member is None else member.endpoint


def is_encrypted_bigip(value: str) -> bool:
    """True when the value is an encrypted BIG-IP cookie (leading ``!``)."""
    return isinstance(value, str) and _clean(value).startswith("!")


def encode_bigip_ipv4(address: str, port: int) -> str:
    """Encode an IPv4 member the way BIG-IP does (inverse of the default layout).

    Used by tests and by anyone building a synthetic capture; raises
    ValueError on a bad address or port (this is not a parser).

    >>> encode_bigip_ipv4("10.1.1.100", 8080)
    '1677787402.36895.0000'
    """
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    packed = ipaddress.IPv4Address(address).packed
    return f"{int.from_bytes(packed, 'little')}.{_swap16(port)}.0000"
