"""Redaction: a copy of an Analysis whose secrets are replaced by keyed hashes.

``redact(analysis, key=None, addresses=False) -> Analysis`` (or
``analyze(..., redact=True)``, or ``--redact`` on the command line) returns a
new :class:`~pcapstats.Analysis`; the original is left untouched, and every
figure of the summary is the same (redaction runs after the analysis).

What is replaced, by ``<prefix><16 hex>`` where the hex is the first 64
bits of HMAC-SHA256(key, kind + NUL + value):

- **cookie values** (``v-``): every value in the ``cookie`` column and the
  ``name=value`` pair of every ``set_cookie`` line; cookie names, empty
  values (a cookie being deleted) and Set-Cookie attributes (``path=/``,
  ``Max-Age``) are kept. For an HAProxy ``prefix`` cookie
  (``JSESSIONID=s1~abc``) the server prefix is kept and the session part
  hashed, so its token equals the session's.
- **session keys** (``v-``): the ``session`` column of the requests,
  sessions and breaks tables and ``summary.affinity.top_breaks``, when the
  key is a cookie, a header or a TLS session (the token of a session equals
  the token of the cookie value it came from). Under ``client-ip`` and
  ``xff`` the session is an address: see addresses. ``tls_session`` of the
  connections table too.
- **URI query strings and path parameters** (``q-``): ``/p?a=1&b=2`` becomes
  ``/p?q-...``; ``/p;jsessionid=X`` becomes ``/p;q-...``; user:password in
  an absolute URI becomes ``q-...@``.
- **addresses** (``ip-``, only with ``addresses=True`` /
  ``--redact-addresses``): every IPv4 and IPv6 address, wherever it appears:
  address columns, ``xff``, ``host``, backends (``ip-...:8080``, port
  kept), and any text of the summary (roles, notes, warnings, file names).

Kept: backends named by balancer cookies (``SERVERID`` names, decoded
``BIGipServer`` addresses: infrastructure, not user data; decoded addresses
are hashed with ``addresses=True`` like any other address), host names, SNI,
User-Agent, methods and paths.

The key: ``key`` (``--redact-key``), else ``$PCAPSTATS_REDACT_KEY``, else a
random key for this run. One key gives one token per value, so redacted
values stay comparable (the same session in two tables, or - with a fixed
key - in two runs), but cannot be reversed without the key. The redacted
Analysis keeps no raw HTTP exchanges (``result.exchanges`` is empty).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from typing import Any

from .affinity.cookies import classify_cookie

ENV_KEY = "PCAPSTATS_REDACT_KEY"
TOKEN_HEX = 16
_PREFIX = {"value": "v-", "query": "q-", "address": "ip-"}
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]++(?!\w)")   # candidates; validated
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


class Redactor:
    """Keyed hashing of capture strings; one instance = one key = one set of tokens."""

    def __init__(self, key: str | bytes | None = None, addresses: bool = False) -> None:
        if key is None:
            key = os.environ.get(ENV_KEY) or None
        self.random_key = key is None
        if key is None:
            key = secrets.token_bytes(32)
        self._key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        self.addresses = addresses
        self._cache: dict[tuple[str, str], str] = {}

    # -------------------------------------------------------------- tokens

    def token(self, kind: str, value: str) -> str:
        """The token of ``value`` (``kind``: value, query or address)."""
        hit = self._cache.get((kind, value))
        if hit is None:
            msg = kind.encode() + b"\0" + value.encode("utf-8", "surrogatepass")
            digest = hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:TOKEN_HEX]
            hit = self._cache[(kind, value)] = _PREFIX[kind] + digest
        return hit

    def value(self, v: str | None) -> str | None:
        if v is None or v == "":
            return v
        return self.token("value", v)

    def _address(self, m: re.Match[str]) -> str:
        text = m.group(0)
        core = text.rstrip(".")
        if core.count(":") == 1 or (":" not in core and core.count(".") != 3):
            return text
        try:
            ip = ipaddress.ip_address(core)
        except ValueError:
            return text
        return self.token("address", ip.compressed) + text[len(core):]

    def text(self, s: Any) -> Any:
        """Addresses in free text replaced (when ``addresses``); anything else as is."""
        if not self.addresses or not isinstance(s, str):
            return s
        return _IPV4.sub(self._address, _IPV6.sub(self._address, s))

    # -------------------------------------------------------------- fields

    def _cookie_pair(self, piece: str) -> str:
        name, sep, val = piece.partition("=")
        if not sep:                          # a value without a name
            return self.value(_unquote(name)) or ""
        name, val = name.strip(), _unquote(val)
        if not val:
            return f"{name}="
        info = classify_cookie(name, val)
        if info is not None and info.kind == "haproxy-prefix" and info.backend:
            return f"{name}={info.backend}~{self.value(info.session_value)}"
        return f"{name}={self.value(val)}"

    def cookie(self, header: str | None) -> str | None:
        """A Cookie header with every value hashed, names kept."""
        if not header:
            return header
        return "; ".join(self._cookie_pair(p) for p in header.split(";") if p.strip())

    def set_cookie(self, joined: str | None) -> str | None:
        """Set-Cookie lines (one per line): the name=value pair hashed, attributes kept."""
        if not joined:
            return joined
        out = []
        for line in joined.split("\n"):
            pair, semi, attrs = line.partition(";")
            out.append(self._cookie_pair(pair) + semi + attrs if pair.strip() else line)
        return "\n".join(out)

    def uri(self, uri: str | None) -> str | None:
        """Query string, path parameters and userinfo replaced by ``q-`` tokens."""
        if not uri:
            return uri
        uri = _USERINFO.sub(lambda m: m.group(1) + self.token("query", m.group(2)) + "@", uri)
        path, q, query = uri.partition("?")
        path, semi, params = path.partition(";")
        out = path
        if semi:
            out += ";" + (self.token("query", params) if params else "")
        if q:
            out += "?" + (self.token("query", query) if query else "")
        return self.text(out)

    def session(self, s: str | None, key_label: str) -> str | None:
        """A session key value: hashed, or an address under client-ip / xff."""
        if s is None:
            return None
        if key_label in ("client-ip", "xff"):
            return self.text(s)
        return self.value(s)

    # -------------------------------------------------------------- whole analysis

    def _walk(self, obj: Any) -> Any:
        """Every string (and dict key) of a JSON-like object through ``text``."""
        if isinstance(obj, dict):
            return {self.text(k): self._walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._walk(v) for v in obj]
        return self.text(obj)

    def apply(self, analysis: Any) -> Any:
        """A redacted copy of ``analysis`` (a :class:`pcapstats.Analysis`)."""
        from .affinity.attribute import AffinityResult
        from .analysis import Analysis

        summary = copy.deepcopy(analysis.summary)
        aff = summary.get("affinity") or {}
        key = aff.get("session_key", "")
        t = self.text
        conns = []
        for c in analysis._conn_rows:
            c = dict(c)
            c["client_ip"], c["server_ip"] = t(c.get("client_ip")), t(c.get("server_ip"))
            c["tls_session"] = self.value(c.get("tls_session"))
            conns.append(c)
        reqs = []
        for r in analysis._request_rows:
            r = dict(r)
            for col in ("client_ip", "server_ip", "xff", "host", "backend"):
                r[col] = t(r.get(col))
            r["uri"] = self.uri(r.get("uri"))
            r["cookie"] = self.cookie(r.get("cookie"))
            r["set_cookie"] = self.set_cookie(r.get("set_cookie"))
            r["session"] = self.session(r.get("session"), key)
            r.pop("client_addr", None)
            reqs.append(r)
        old = analysis._affinity
        new_aff = None
        if old is not None:
            sessions = [{**s, "session": self.session(s["session"], key),
                         "primary_backend": t(s.get("primary_backend"))}
                        for s in old.session_rows]
            backends = [{**b, "backend": t(b["backend"])} for b in old.backend_rows]
            breaks = [{**b, "session": self.session(b["session"], key),
                       "from_backend": t(b["from_backend"]), "to_backend": t(b["to_backend"])}
                      for b in old.break_rows]
            for tb in aff.get("top_breaks", []):
                tb["session"] = self.session(tb["session"], key)
            new_aff = AffinityResult(aff, sessions, backends, breaks)
        summary = self._walk(summary)
        if new_aff is not None:
            new_aff.summary = summary["affinity"]
        summary["redaction"] = {
            "method": f"HMAC-SHA256, first {TOKEN_HEX * 4} bits, hex",
            "key": "random" if self.random_key else "given",
            "cookie_values": True, "session_keys": True, "query_strings": True,
            "addresses": self.addresses,
        }
        result = dataclasses.replace(analysis.result, connections=conns, exchanges=[])
        return Analysis(result, conns, reqs, new_aff, summary)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def describe(summary: dict[str, Any]) -> str | None:
    """One line for the reports saying what was redacted; None if nothing was."""
    r = summary.get("redaction")
    if not r:
        return None
    what = "cookie values, session keys, query strings" + (", addresses" if r["addresses"]
                                                           else "")
    key = "a random key for this run" if r["key"] == "random" else "a given key"
    return f"{what} (HMAC-SHA256 with {key})"


def redact(analysis: Any, key: str | bytes | None = None, addresses: bool = False) -> Any:
    """A redacted copy of ``analysis``; see the module doc for what is replaced."""
    return Redactor(key, addresses).apply(analysis)


def redactor_for(redact: Any, addresses: bool = False) -> Redactor | None:
    """The Redactor an ``analyze(redact=...)`` option asks for: True (key from the
    environment or random), a key (str/bytes), a Redactor, or False/None (none,
    unless ``addresses``)."""
    if isinstance(redact, Redactor):
        if addresses:
            redact.addresses = True
        return redact
    if redact is None or redact is False:
        return Redactor(None, True) if addresses else None
    if redact is True:
        return Redactor(None, addresses)
    if isinstance(redact, (str, bytes)):
        return Redactor(redact, addresses)
    raise TypeError(f"redact: expected True, a key or a Redactor, not {type(redact).__name__}")
