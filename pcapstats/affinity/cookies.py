"""Cookie parsing and load-balancer cookie recognition (pure functions, no I/O).

Parsing is lenient and never raises on any string: a capture holds whatever
clients and servers really sent.

Recognition (`classify_cookie`) needs no configuration.  It knows:

==================  ===========================================  =======================================
kind                cookie names                                 backend
==================  ===========================================  =======================================
``haproxy-insert``  SERVERID, SRVID, SERVER, SRV (any case)      the server's cookie value (a name);
                                                                 ``s1|date|date`` (maxidle/maxlife) -> s1
``haproxy-prefix``  an application session cookie whose value   the prefix (``JSESSIONID=s1~abc`` -> s1;
                    is ``<server>~<session>``                    session_value ``abc``)
``bigip``           ``BIGipServer<pool>``                        decoded ``ip:port`` (see bigip.py);
                                                                 None when encrypted (``!...``)
``aws``             AWSALB, AWSALBCORS, AWSALBTG, AWSALBTGCORS,  None: the value is opaque (see below)
                    AWSALBAPP-<n>, AWSELB, AWSELBCORS
``nginx-sticky``    ``route`` (nginx-sticky-module-ng default),  the value (a hash or index naming one
                    ``srv_id`` (NGINX Plus ``sticky cookie``)    server, stable per server)
``traefik``         ``_TRAEFIK_BACKEND`` (Traefik 1.x), or a     ``host:port`` of the backend URL in the
                    ``_<5 hex>`` name whose value is a URL       value (``http://10.0.0.5:80``)
``app``             application session cookies (`is_session_cookie_name`)   None
==================  ===========================================  =======================================

Opaque balancer values (AWS, encrypted BIG-IP): equal values mean the same
target, but the balancer re-issues them (AWS re-encrypts AWSALB on
responses), so different values do not prove different targets.
`CookieInfo.backend_label` exposes such a value for a caller that wants to
use it as a backend label anyway.
"""

from __future__ import annotations

import functools

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pcapstats.affinity.bigip import decode_bigip

__all__ = [
    "BALANCER_KINDS",
    "COOKIE_KINDS",
    "CookieInfo",
    "choose_session_cookie",
    "classify_cookie",
    "classify_cookies",
    "cookie_kind",
    "decode_bigip",
    "is_session_cookie_name",
    "observe_cookies",
    "parse_cookie_header",
    "parse_set_cookie",
    "parse_set_cookies",
    "request_backend_cookie",
    "split_set_cookie",
]

COOKIE_KINDS = ("haproxy-insert", "haproxy-prefix", "bigip", "aws", "nginx-sticky", "traefik", "app")
BALANCER_KINDS = frozenset(COOKIE_KINDS) - {"app"}
# Balancer cookies whose value names a server, not a client: never a session key.
_PER_SERVER_KINDS = frozenset({"haproxy-insert", "bigip", "nginx-sticky", "traefik"})
# Balancer cookies whose value is opaque; it can still serve as a backend label.
_OPAQUE_KINDS = frozenset({"aws", "bigip"})

_HAPROXY_INSERT_NAMES = frozenset({"serverid", "srvid", "server", "srv"})
_AWS_NAMES = frozenset({"AWSALB", "AWSALBCORS", "AWSALBTG", "AWSALBTGCORS", "AWSELB", "AWSELBCORS"})
_AWS_APP_RE = re.compile(r"AWSALBAPP-[0-9]{1,2}", re.ASCII)
_NGINX_STICKY_NAMES = frozenset({"route", "srv_id"})
_TRAEFIK_HASH_NAME_RE = re.compile(r"_[0-9a-f]{5}", re.ASCII)
_APP_EXACT_NAMES = frozenset({
    "jsessionid", "phpsessid", "asp.net_sessionid", "cfid", "cftoken", "connect.sid",
    "laravel_session", "_session_id", "sessionid", "session_id", "sessid",
})
# JSESSIONID, PHPSESSID, SESSID, session-id, MYAPPSESSIONID ... (checked lower-cased)
_APP_NAME_RE = re.compile(r"[a-z0-9_.-]{0,40}sess(?:ion)?[_.-]?id", re.ASCII)
# Drupal: SESS<md5 of the host>, SSESS<...> over HTTPS.
_DRUPAL_NAME_RE = re.compile(r"S?SESS[0-9a-f]{32}", re.ASCII)
# A server label as HAProxy and nginx write it: short, no blanks or separators.
_SERVER_TOKEN_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)
_PREFIX_RE = re.compile(r"([A-Za-z0-9._:-]{1,64})~(.+)", re.ASCII | re.DOTALL)
# A comma that starts another Set-Cookie (`, name=`), not the one in `Expires=Wed, 21 Oct`.
_SET_COOKIE_COMMA_RE = re.compile(r",(?=\s*[^\s;,=]+=)")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "h2c": 80}


# --------------------------------------------------------------------------- parsing

def _unquote(text: str) -> str:
    """Strip blanks and one pair of surrounding double quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def _split_pair(piece: str) -> tuple[str, str]:
    """``name=value`` -> (name, value); no ``=`` -> ("", piece) as browsers do."""
    name, sep, value = piece.partition("=")
    if not sep:
        return "", _unquote(name)
    return name.strip(), _unquote(value)


def parse_cookie_header(value: str) -> list[tuple[str, str]]:
    """Parse a ``Cookie`` request header into (name, value) pairs, in order.

    Rules (RFC 6265 §4.2 and §5.4 as browsers apply them, made lenient):
    pairs are split on ``;`` only (a cookie value cannot hold one); blanks
    around names and values are dropped; one pair of surrounding double
    quotes is removed from a value; a piece without ``=`` is a value with an
    empty name (what a browser sends for ``Set-Cookie: token``); only the
    first ``=`` separates (``a=b=c`` -> ("a", "b=c")); empty pieces are
    skipped; repeated names are all kept, in order.  Never raises.

    >>> parse_cookie_header('a=1; b="x y"; flag; a=2')
    [('a', '1'), ('b', 'x y'), ('', 'flag'), ('a', '2')]
    """
    if not isinstance(value, str):
        return []
    return list(cookie_pairs(value))


def cookie_pairs(value: str) -> tuple[tuple[str, str], ...]:
    """`parse_cookie_header` as a tuple, cached: a session sends the same header again
    and again, and the affinity layer reads each request's cookies several times.
    (Only short headers are cached, so that hostile ones cannot fill the memory.)"""
    if len(value) <= 1024:
        return _cookie_pairs_cached(value)
    return _cookie_pairs(value)


def _cookie_pairs(value: str) -> tuple[tuple[str, str], ...]:
    # (_split_pair and _unquote inlined: a browser's header holds 5-20 pairs, and most
    # headers are read once, 1.5 us a pair as calls)
    out = []
    for piece in value.split(";"):
        name, sep, val = piece.partition("=")
        if sep:
            name = name.strip()
        else:
            val = name
            name = ""
            if not val or val.isspace():
                continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        out.append((name, val))
    return tuple(out)


_cookie_pairs_cached = functools.lru_cache(maxsize=1 << 14)(_cookie_pairs)


def parse_set_cookie(value: str) -> tuple[str, str, dict[str, str]]:
    """Parse one ``Set-Cookie`` value into (name, value, attributes).

    The first ``;``-separated piece is the cookie (same rules as
    `parse_cookie_header`); every later piece is an attribute, its name
    stripped and lower-cased, its value stripped ("" for a flag such as
    ``HttpOnly``).  A repeated attribute keeps its last value (RFC 6265
    §5.3).  Never raises; a non-string gives ("", "", {}).

    >>> parse_set_cookie("SERVERID=s1; Path=/; HttpOnly")
    ('SERVERID', 's1', {'path': '/', 'httponly': ''})
    """
    if not isinstance(value, str):
        return "", "", {}
    first, *rest = value.split(";")
    name, cookie_value = _split_pair(first)
    attrs: dict[str, str] = {}
    for piece in rest:
        key, _sep, attr_value = piece.partition("=")
        key = key.strip().lower()
        if key:
            attrs[key] = attr_value.strip()
    return name, cookie_value, attrs


def split_set_cookie(joined: str, *, commas: bool = False) -> list[str]:
    """Split several Set-Cookie values joined with newlines (as `HttpExchange` stores them).

    Blank lines are dropped.  With ``commas=True`` a line is also split at a
    comma that starts a new ``name=`` (for tools that joined with ", "); the
    comma inside ``Expires=Wed, 21 Oct 2015 ...`` is not such a comma.
    Never raises.
    """
    if not isinstance(joined, str):
        return []
    out: list[str] = []
    for line in joined.splitlines():
        parts = _SET_COOKIE_COMMA_RE.split(line) if commas else [line]
        out.extend(part.strip() for part in parts if part.strip())
    return out


def parse_set_cookies(joined: str, *, commas: bool = False) -> list[tuple[str, str, dict[str, str]]]:
    """`split_set_cookie` then `parse_set_cookie` on each value."""
    return [parse_set_cookie(item) for item in split_set_cookie(joined, commas=commas)]


# --------------------------------------------------------------------------- recognition

@dataclass(frozen=True, slots=True)
class CookieInfo:
    """What one cookie tells about persistence."""

    name: str               # cookie name as sent
    kind: str               # one of COOKIE_KINDS
    backend: str | None     # "ip:port" or server name the cookie names; None: unknown/opaque
    session_value: str      # the value to use as a session key (prefix removed for haproxy-prefix)

    @property
    def is_balancer(self) -> bool:
        """True for a cookie written by a balancer (every kind but "app")."""
        return self.kind != "app"

    @property
    def backend_label(self) -> str | None:
        """`backend`, else the opaque value of an AWS / encrypted BIG-IP cookie, else None."""
        if self.backend is not None:
            return self.backend
        if self.kind in _OPAQUE_KINDS and self.session_value:
            return self.session_value
        return None


@functools.lru_cache(maxsize=4096)
def is_session_cookie_name(name: str) -> bool:
    """True for a well-known application session cookie name (conservative).

    Exact names (any case): JSESSIONID, PHPSESSID, ASP.NET_SessionId, CFID,
    CFTOKEN, connect.sid, laravel_session, _session_id, sessionid,
    session_id, SESSID; classic ASP's ``ASPSESSIONID<8 letters>``; Drupal's
    ``SESS<32 hex>`` / ``SSESS<32 hex>``; and any name ending in
    ``sessid`` / ``sessionid`` / ``session_id`` / ``session-id``.
    Client-side session stores whose value changes on every write (Rails
    ``_app_session``, Flask ``session``) are not included.
    """
    if not isinstance(name, str):
        return False
    low = name.strip().lower()
    return (
        low in _APP_EXACT_NAMES
        or low.startswith("aspsessionid")
        or _APP_NAME_RE.fullmatch(low) is not None
        or _DRUPAL_NAME_RE.fullmatch(name.strip()) is not None
    )


@functools.lru_cache(maxsize=4096)
def cookie_kind(name: str) -> str | None:
    """The kind a cookie name alone implies (no value needed), or None.

    A prefix-mode cookie can only be told from its value, so it is "app"
    here; a ``_<5 hex>`` Traefik name needs its value too and gives None.
    """
    if not isinstance(name, str):
        return None
    stripped = name.strip()
    low = stripped.lower()
    if low.startswith("bigipserver"):
        return "bigip"
    if low in _HAPROXY_INSERT_NAMES:
        return "haproxy-insert"
    if stripped in _AWS_NAMES or _AWS_APP_RE.fullmatch(stripped):
        return "aws"
    if low in _NGINX_STICKY_NAMES:
        return "nginx-sticky"
    if stripped == "_TRAEFIK_BACKEND":
        return "traefik"
    if is_session_cookie_name(stripped):
        return "app"
    return None


def _url_endpoint(value: str) -> str | None:
    """``http://10.0.0.5:8080/`` -> "10.0.0.5:8080" (default port by scheme); else None."""
    if "://" not in value:
        return None
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not host or scheme not in _DEFAULT_PORTS:
        return None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@functools.lru_cache(maxsize=65536)
def classify_cookie(name: str, value: str) -> CookieInfo | None:
    """Recognise a balancer or application session cookie; None if unknown.

    See the module table for the kinds.  The value is stripped of blanks and
    one pair of double quotes.  An empty value (a balancer deleting its
    cookie) keeps the kind with backend None.  A ``route`` / ``srv_id``
    cookie is recognised only when its value looks like a server label.
    Never raises.
    """
    if not isinstance(name, str) or not isinstance(value, str):
        return None
    name = name.strip()
    val = _unquote(value)
    kind = cookie_kind(name)
    if kind == "bigip":
        return CookieInfo(name, kind, decode_bigip(val), val)
    if kind == "haproxy-insert":
        server = val.split("|", 1)[0].strip()
        return CookieInfo(name, kind, server or None, val)
    if kind == "aws":
        return CookieInfo(name, kind, None, val)
    if kind == "nginx-sticky":
        if not val:
            return CookieInfo(name, kind, None, val)
        if _SERVER_TOKEN_RE.fullmatch(val):
            return CookieInfo(name, kind, val, val)
        return None
    if kind == "traefik":
        return CookieInfo(name, kind, _url_endpoint(val) or val or None, val)
    if _TRAEFIK_HASH_NAME_RE.fullmatch(name):
        endpoint = _url_endpoint(val)
        return CookieInfo(name, "traefik", endpoint, val) if endpoint else None
    if kind == "app":
        m = _PREFIX_RE.fullmatch(val)
        if m is not None:
            return CookieInfo(name, "haproxy-prefix", m.group(1), m.group(2))
        return CookieInfo(name, kind, None, val)
    return None


def classify_cookies(pairs: Iterable[tuple[str, str]]) -> list[CookieInfo]:
    """`classify_cookie` over (name, value) pairs, keeping the recognised ones in order."""
    out: list[CookieInfo] = []
    for name, value in pairs:
        info = classify_cookie(name, value)
        if info is not None:
            out.append(info)
    return out


def request_backend_cookie(pairs: Iterable[tuple[str, str]]) -> CookieInfo | None:
    """The balancer cookie that best names a request's backend, or None.

    First balancer cookie with a decoded `backend`; failing that, the first
    with an opaque `backend_label`.
    """
    labelled: CookieInfo | None = None
    for info in classify_cookies(pairs):
        if not info.is_balancer:
            continue
        if info.backend is not None:
            return info
        if labelled is None and info.backend_label is not None:
            labelled = info
    return labelled


# What a header must contain, lower-cased, to hold a balancer cookie (a superset): a
# balancer kind's name (bigip..., server/srv..., aws..., route, srv_id, _TRAEFIK...),
# a Traefik URL value ("://"), or a prefix-mode value ("~"). (Substring tests of the
# lower-cased header: a case-blind regex of these took 13 us a header, these 1 us.)
_BALANCER_HINTS = ("bigip", "serv", "srv", "aws", "route", "traefik", "://", "~")


def _may_hold_balancer(value: str) -> bool:
    low = value.lower()
    for hint in _BALANCER_HINTS:
        if hint in low:
            return True
    return False


def header_backend_cookie(value: str) -> CookieInfo | None:
    """`request_backend_cookie` of one Cookie header, cached like `cookie_pairs` (the
    affinity layer asks it of every request, twice; CookieInfo is frozen). A header
    that cannot hold a balancer cookie is not parsed: most headers of a browser hold
    none, and many are new on every request (analytics cookies)."""
    if not _may_hold_balancer(value):
        return None
    if len(value) <= 1024:
        return _header_backend_cookie_cached(value)
    return request_backend_cookie(_cookie_pairs(value))


def _header_backend_cookie(value: str) -> CookieInfo | None:
    return request_backend_cookie(cookie_pairs(value))


_header_backend_cookie_cached = functools.lru_cache(maxsize=1 << 14)(_header_backend_cookie)


# --------------------------------------------------------------------------- choosing a session key

def observe_cookies(cookie_headers: Iterable[str | None],
                    keys_only: bool = False) -> dict[str, tuple[int, int]]:
    """Cookie name -> (requests carrying it, distinct values), from Cookie headers.

    A request carrying the same name twice counts once; distinct values are
    counted on the raw (unquoted) values.  Input for `choose_session_cookie`,
    which reads only the names with a `cookie_kind`: ``keys_only`` counts only
    those (a browser's analytics cookies, new on every request, then cost no set
    of every value seen).
    """
    # a session sends one header again and again: read each distinct header once
    headers = Counter(filter(None, cookie_headers))
    requests: dict[str, int] = {}
    values: dict[str, set[str]] = {}
    kinds: dict[str, bool] = {}
    for header, times in headers.items():
        seen: set[str] = set()
        for name, value in _cookie_pairs(header):    # (each header once: not cached)
            if keys_only:
                keep = kinds.get(name)
                if keep is None:
                    keep = kinds[name] = cookie_kind(name) is not None
                if not keep:
                    continue
            got = values.get(name)
            if got is None:
                got = values[name] = set()
            got.add(value)
            if name not in seen:
                seen.add(name)
                requests[name] = requests.get(name, 0) + times
    return {name: (requests[name], len(values[name])) for name in sorted(requests)}


def _describe(name: str, counts: tuple[int, int]) -> str:
    return f"{name} ({counts[0]} requests, {counts[1]} values)"


def choose_session_cookie(observed: Mapping[str, tuple[int, int]]) -> tuple[str | None, str]:
    """Pick the session cookie for ``--session-key auto``; return (name or None, reason).

    ``observed`` maps a cookie name to (requests carrying it, distinct
    values), e.g. from `observe_cookies`.  The rule:

    1. A cookie can be a session key only if its values repeat: carried by
       at least 2 requests, with fewer distinct values than requests.  A
       cookie with a new value on every request (re-encrypted on each
       response, such as laravel_session or AWSALB often are) would make
       every request its own session.
    2. Prefer an application session cookie (`is_session_cookie_name`;
       this includes one in HAProxy prefix mode).
    3. Else an opaque per-client balancer cookie (the AWS ones).
    4. Never a cookie whose value names a backend (HAProxy insert, BIG-IP,
       nginx sticky, Traefik): every "session" would be one server and
       persistence trivially 100%.  These give the request's backend.
    5. Within a tier: most requests, then most distinct values, then name.
    6. No candidate: (None, reason); the caller falls back to the client IP.
    """
    app: list[tuple[str, tuple[int, int]]] = []
    opaque: list[tuple[str, tuple[int, int]]] = []
    rejected: list[str] = []
    for name, counts in observed.items():
        try:
            reqs, distinct = int(counts[0]), int(counts[1])
        except (TypeError, ValueError, IndexError):
            continue
        kind = cookie_kind(name)
        if kind is None or reqs <= 0:
            continue
        if kind in _PER_SERVER_KINDS:
            rejected.append(f"{name} names a backend")
            continue
        if reqs < 2 or distinct >= reqs:
            rejected.append(f"{_describe(name, (reqs, distinct))} never repeats a value")
            continue
        (app if kind == "app" else opaque).append((name, (reqs, distinct)))

    def rank(item: tuple[str, tuple[int, int]]) -> tuple[int, int, str]:
        return (-item[1][0], -item[1][1], item[0])

    also = "; ".join(sorted(rejected))
    tail = f"; not used: {also}" if also else ""
    for tier, label in ((app, "application session cookie"), (opaque, "per-client balancer cookie")):
        if tier:
            tier.sort(key=rank)
            name, counts = tier[0]
            others = ", ".join(_describe(n, c) for n, c in tier[1:])
            more = f"; other candidates: {others}" if others else ""
            return name, f"{label} {_describe(name, counts)}{more}{tail}"
    return None, f"no session cookie found, use the client address{tail}"
