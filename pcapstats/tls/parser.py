"""Sans-I/O observer of one TLS connection: handshake facts, record counts.

The TCP layer feeds the in-order byte stream of each direction (`feed`), reports
missing bytes (`gap`) and the end (`close`). Nothing is decrypted: after the
handshake (and for every encrypted record) only records and bytes are counted.

Contract with the caller: feed both directions in capture order (segment by
segment, as they arrive). Three results relate the two directions and rely on
it: the TLS 1.3 `ts_handshake_done`, the TLS 1.3 split between handshake and
application bytes, and whether a client ChangeCipherSpec switches that
direction to encrypted (not in TLS 1.3).

Memory is bounded per direction: a partial 5-byte record header, a partial
4-byte handshake header and, only for ClientHello, ServerHello and NewSessionTicket,
the message body up to `MAX_HANDSHAKE_MESSAGE`. Every other message (Certificate...) and every
record body is skipped by length, never buffered.

A broken input is counted in `malformed`, never raised. A bad record header
loses the framing: that direction stops. A bad handshake message is counted
and parsing goes on at the next message.
"""

from __future__ import annotations

from typing import Any

from pcapstats.tls.wire import (
    APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE, HEARTBEAT, HRR_RANDOM, MAX_HANDSHAKE_MESSAGE, MAX_RECORD,
    Malformed, Reader, digest, is_grease, is_tls13, looks_like_tls, text, version_name,
)

__all__ = ["TlsStream", "looks_like_tls", "version_name"]

_SSL2 = 2  # pseudo content type: SSLv2-compatible ClientHello
_CLIENT_HELLO, _SERVER_HELLO, _NEW_SESSION_TICKET, _DRAFT_HRR = 1, 2, 4, 6
_FULL_HANDSHAKE_MSGS = {11, 12, 13, 14}  # Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone
_BUFFERED = {True: {_CLIENT_HELLO}, False: {_SERVER_HELLO, _NEW_SESSION_TICKET, _DRAFT_HRR}}


class _Direction:
    """Parsing state of one direction of the connection."""

    __slots__ = ("client", "hdr", "sslv2", "rtype", "left", "count_app", "stopped", "encrypted",
                 "hs_dead", "hs_hdr", "hs_type", "hs_left", "hs_body", "hs_ts", "records", "app_bytes",
                 "finished_ts")

    def __init__(self, client: bool) -> None:
        self.client = client
        self.hdr = bytearray()     # partial record header
        self.sslv2 = False         # the header being read is a 2-byte SSLv2 one
        self.rtype = -1            # content type of the record being read; -1: reading a header
        self.left = 0              # body bytes of that record still to come
        self.count_app = False     # that record's bytes count as application data
        self.stopped = False       # framing lost (bad header, gap across records): ignore the rest
        self.encrypted = False     # ChangeCipherSpec seen (<= TLS 1.2): handshake records are opaque
        self.hs_dead = False       # handshake parsing given up (oversized message, gap)
        self.hs_hdr = bytearray()  # partial 4-byte handshake header
        self.hs_type = -1
        self.hs_left = -1          # body bytes of the current handshake message; -1: reading a header
        self.hs_body: bytearray | None = None  # buffered body (parsed types only), None: skipping
        self.hs_ts = 0             # timestamp of the segment carrying the message's first byte
        self.records = 0
        self.app_bytes = 0
        self.finished_ts: int | None = None  # <= 1.2: header of the first encrypted handshake record (Finished)

    def hs_partial(self) -> bool:
        return bool(self.hs_hdr) or self.hs_left >= 0

    def hs_reset(self) -> None:
        self.hs_hdr.clear()
        self.hs_type, self.hs_left, self.hs_body = -1, -1, None


class TlsStream:
    """Observer of one TLS connection. Results are the attributes below (each documented
    where it is declared) and the properties version, resumed, ticket_identity, session_key.
    """

    def __init__(self) -> None:
        self._c, self._s = _Direction(True), _Direction(False)
        self._closed = False
        self._full_seen = False   # server sent Certificate/ServerKeyExchange/CertificateRequest/ServerHelloDone
        self._server_ccs = False  # server sent ChangeCipherSpec (<= 1.2 meaning)
        self._ticket_hash: str | None = None  # digest of the offered session_ticket
        self._psk_hash: str | None = None     # digest of the first offered PSK identity
        # ClientHello fields hold the last ClientHello's values (the second one after an HRR).
        self.client_hello = False  # a ClientHello was seen (SSLv2-compatible ones too)
        self.client_hellos = 0  # ClientHellos seen (2 after a HelloRetryRequest)
        self.server_hello = False  # a ServerHello was seen (a HelloRetryRequest does not count)
        self.version_code: int | None = None  # negotiated: ServerHello supported_versions, else its version
        self.cipher_suite: int | None = None  # selected by the ServerHello
        self.sni: str | None = None  # first host_name of the client's server_name
        self.alpn: str | None = None  # selected in the ServerHello (<= 1.2; encrypted in 1.3)
        self.alpn_offered: tuple[str, ...] = ()  # the client's ALPN list, GREASE dropped
        self.versions_offered: tuple[str, ...] = ()  # the client's supported_versions, GREASE dropped
        self.client_session_id: str | None = None  # hex, None if empty (1.3: random compat value)
        self.server_session_id: str | None = None  # hex, None if empty
        self.ticket_offered = False  # the ClientHello's session_ticket extension is non-empty
        self.ticket_issued: str | None = None  # digest of a plaintext (<= 1.2) NewSessionTicket's ticket
        self.psk_offered = False  # pre_shared_key in the ClientHello
        self.psk_accepted = False  # pre_shared_key in the ServerHello
        self.new_session_ticket = False  # server sent NewSessionTicket (visible in <= 1.2 only)
        self.hello_retry = False  # a TLS 1.3 HelloRetryRequest was seen
        self.ts_client_hello: int | None = None  # segment carrying the first ClientHello's first byte
        # The last handshake message, the Finished sent second. <= 1.2: header of the first
        # encrypted handshake record (a Finished, after a ChangeCipherSpec) of the side that sends
        # it second: the server in a full handshake, the client in an abbreviated (resumed) one
        # (RFC 5246 7.3); the server's alone when the handshake was full (client side not seen).
        # 1.3: header of the client's first application_data record after the ServerHello (its
        # encrypted Finished; the server's cannot be told from its other encrypted records).
        self.ts_handshake_done: int | None = None
        self.records_client = 0  # records with a valid header, sent by the client
        self.records_server = 0
        # application_data payload bytes received (ciphertext with MAC/tag; headers and bytes
        # lost in gaps excluded). In 1.3 the server's records before done and the client's
        # Finished record carry the encrypted handshake and are left out.
        self.app_bytes_client = 0
        self.app_bytes_server = 0
        # problems: bad record header or length, handshake message shorter than its fields,
        # oversized hello, handshake message cut by another record type, record or message
        # left incomplete at close.
        self.malformed = 0
        self.gap_bytes = 0  # bytes reported missing by the TCP layer
        self.stopped_client = False  # framing lost in that direction (bad header, gap): rest ignored
        self.stopped_server = False

    # ---------------------------------------------------------------- derived results
    @property
    def version(self) -> str | None:
        """Negotiated version name ("TLS 1.3", "TLS 1.2", ... "SSL 3.0"); None before a
        ServerHello or HelloRetryRequest. Drafts read "TLS 1.3 (draft 19)"."""
        return None if self.version_code is None else version_name(self.version_code)

    @property
    def _tls13(self) -> bool:
        """TLS 1.3 negotiated, or (no ServerHello yet) offered by the client."""
        if self.version_code is not None:
            return is_tls13(self.version_code)
        return any(v.startswith("TLS 1.3") for v in self.versions_offered)

    @property
    def resumed(self) -> bool | None:
        """Abbreviated handshake? None without a ServerHello or while it cannot be told yet.

        TLS 1.3: the ServerHello selected a PSK. TLS <= 1.2: False once the server sent
        Certificate, ServerKeyExchange, CertificateRequest or ServerHelloDone (full
        handshake); else True if the ServerHello echoed the client's non-empty session id,
        or the server went straight to ChangeCipherSpec (session ticket resumption).
        """
        if not self.server_hello:
            return None
        if is_tls13(self.version_code):
            return self.psk_accepted
        if self._full_seen:
            return False
        if self.client_session_id is not None and self.server_session_id == self.client_session_id:
            return True
        return True if self._server_ccs else None

    @property
    def ticket_identity(self) -> str | None:
        """Hash of the offered session ticket or first PSK identity (TLS 1.3 prefers the PSK)."""
        first, second = (self._psk_hash, self._ticket_hash) if self._tls13 else (self._ticket_hash, self._psk_hash)
        return first if first is not None else second

    @property
    def session_key(self) -> str | None:
        """Identity of the TLS session, for affinity grouping.

        TLS 1.3 (negotiated, or offered when no ServerHello was seen): "ticket:<hash>" of the
        first PSK identity offered, else None (1.3 session ids are random, tickets encrypted).
        TLS <= 1.2, first that applies: the offered ticket "ticket:<hash>"; the client's
        session id "sid:<hex>" (the session it asks to resume, accepted or not); the ticket
        issued in this connection "ticket:<hash>" (what the client will offer next); the
        server's new session id "sid:<hex>". A resumption thus shares the key of the
        connection that created the session (one ticket rotation deep: chain longer ones
        with ticket_identity -> ticket_issued).
        """
        if self._tls13:
            return None if self._psk_hash is None else f"ticket:{self._psk_hash}"
        ticket = self._ticket_hash or self._psk_hash
        if ticket is not None:
            return f"ticket:{ticket}"
        if self.client_session_id is not None:
            return f"sid:{self.client_session_id}"
        if self.ticket_issued is not None:
            return f"ticket:{self.ticket_issued}"
        if self.server_session_id is not None:
            return f"sid:{self.server_session_id}"
        return None

    def as_dict(self) -> dict[str, Any]:
        """Every result, by name (attributes and properties)."""
        names = ("client_hello", "client_hellos", "server_hello", "version", "version_code", "cipher_suite",
                 "sni", "alpn", "alpn_offered", "versions_offered", "client_session_id", "server_session_id",
                 "ticket_offered", "ticket_identity", "ticket_issued", "psk_offered", "psk_accepted",
                 "new_session_ticket", "resumed", "hello_retry", "ts_client_hello", "ts_handshake_done",
                 "records_client", "records_server", "app_bytes_client", "app_bytes_server",
                 "malformed", "gap_bytes", "session_key", "stopped_client", "stopped_server")
        return {name: getattr(self, name) for name in names}

    # ---------------------------------------------------------------- input
    def feed(self, from_client: bool, ts_ns: int, data: bytes) -> None:
        """Next in-order bytes of one direction."""
        d = self._c if from_client else self._s
        if self._closed or d.stopped:
            return
        mv, i, n = memoryview(data), 0, len(data)
        while i < n and not d.stopped:
            if d.rtype < 0:  # reading a record header
                if not d.hdr and from_client and d.records == 0 and mv[i] & 0x80:
                    d.sslv2 = True
                take = min((2 if d.sslv2 else 5) - len(d.hdr), n - i)
                d.hdr += mv[i:i + take]
                i += take
                if len(d.hdr) == (2 if d.sslv2 else 5):
                    self._begin_record(d, ts_ns)
                continue
            take = min(d.left, n - i)
            chunk = mv[i:i + take]
            i += take
            d.left -= take
            if d.count_app:
                d.app_bytes += take
            if d.rtype == _SSL2 or (d.rtype == HANDSHAKE and not d.encrypted and not d.hs_dead):
                self._handshake_bytes(d, ts_ns, chunk)
            if d.left == 0:
                self._end_record(d)
        self._publish(d)

    def gap(self, from_client: bool, ts_ns: int, nbytes: int) -> None:
        """`nbytes` of this direction are missing. Inside the current record body they are
        skipped (the handshake message they hit is skipped too, if its body was not being
        buffered, else handshake parsing stops); a gap reaching a record header stops the
        direction."""
        d = self._c if from_client else self._s
        if nbytes <= 0 or self._closed:
            return
        self.gap_bytes += nbytes
        if d.stopped:
            return
        if d.rtype not in (-1, _SSL2) and nbytes <= d.left:
            d.left -= nbytes
            if d.rtype == HANDSHAKE and not d.encrypted and not d.hs_dead:
                if d.hs_left >= nbytes and d.hs_body is None:
                    d.hs_left -= nbytes
                    if d.hs_left == 0:
                        d.hs_reset()
                else:
                    d.hs_dead = True
                    d.hs_reset()
            if d.left == 0:
                self._end_record(d)
        else:
            d.stopped = True
        self._publish(d)

    def close(self, ts_ns: int) -> None:
        """End of the connection (or capture): a record or handshake message left
        incomplete counts as malformed (truncated), once per direction."""
        if self._closed:
            return
        self._closed = True
        for d in (self._c, self._s):
            if not d.stopped and (d.hdr or d.rtype >= 0 or (d.hs_partial() and not d.hs_dead)):
                self.malformed += 1

    # ---------------------------------------------------------------- records
    def _publish(self, d: _Direction) -> None:
        if d.client:
            self.records_client, self.app_bytes_client, self.stopped_client = d.records, d.app_bytes, d.stopped
        else:
            self.records_server, self.app_bytes_server, self.stopped_server = d.records, d.app_bytes, d.stopped

    def _begin_record(self, d: _Direction, ts: int) -> None:
        h = bytes(d.hdr)
        d.hdr.clear()
        if d.sslv2:
            d.sslv2 = False
            length = (h[0] & 0x7F) << 8 | h[1]
            if length < 9:
                self.malformed += 1
                d.stopped = True
                return
            d.records += 1
            d.rtype, d.left, d.count_app = _SSL2, length, False
            d.hs_hdr += b"\x01" + length.to_bytes(3, "big")  # present it as a handshake message
            d.hs_ts = ts
            return
        ctype, length = h[0], h[3] << 8 | h[4]
        if not CHANGE_CIPHER_SPEC <= ctype <= HEARTBEAT or h[1] != 3 or h[2] > 4 or length > MAX_RECORD:
            self.malformed += 1
            d.stopped = True
            return
        d.records += 1
        d.rtype, d.left, d.count_app = ctype, length, False
        if ctype != HANDSHAKE and d.hs_partial() and not d.hs_dead:
            self.malformed += 1  # a handshake message cut by another record type
            d.hs_reset()
        if ctype == APPLICATION_DATA:
            d.count_app = True
            if is_tls13(self.version_code) and self.server_hello and self.ts_handshake_done is None:
                d.count_app = False  # encrypted TLS 1.3 handshake flight
                if d.client:
                    self.ts_handshake_done = ts
        elif ctype == HANDSHAKE and d.encrypted and d.finished_ts is None:
            d.finished_ts = ts
            other = self._s if d.client else self._c
            if self.ts_handshake_done is None and (other.finished_ts is not None
                                                   or (not d.client and self._full_seen)):
                self.ts_handshake_done = ts
        if length == 0:
            if ctype != APPLICATION_DATA:
                self.malformed += 1  # only application data may be empty
            self._end_record(d)

    def _end_record(self, d: _Direction) -> None:
        if d.rtype == CHANGE_CIPHER_SPEC and not is_tls13(self.version_code):
            # TLS 1.3 sends a compatibility CCS, possibly before a plaintext second ClientHello.
            d.encrypted = True
            if not d.client:
                self._server_ccs = True
        d.rtype, d.count_app = -1, False

    # ---------------------------------------------------------------- handshake messages
    def _handshake_bytes(self, d: _Direction, ts: int, chunk: memoryview) -> None:
        i, n = 0, len(chunk)
        while i < n and not d.hs_dead:
            if d.hs_left < 0:  # reading a 4-byte handshake header
                if not d.hs_hdr:
                    d.hs_ts = ts
                take = min(4 - len(d.hs_hdr), n - i)
                d.hs_hdr += chunk[i:i + take]
                i += take
                if len(d.hs_hdr) < 4:
                    continue
                d.hs_type, d.hs_left = d.hs_hdr[0], int.from_bytes(d.hs_hdr[1:4], "big")
                d.hs_hdr.clear()
                if d.hs_type in _BUFFERED[d.client] or d.rtype == _SSL2:
                    if d.hs_left > MAX_HANDSHAKE_MESSAGE:
                        self.malformed += 1
                        d.hs_dead = True
                        d.hs_reset()
                        return
                    d.hs_body = bytearray()
                elif not d.client and d.hs_type in _FULL_HANDSHAKE_MSGS:
                    self._full_seen = True
            else:
                take = min(d.hs_left, n - i)
                if d.hs_body is not None:
                    d.hs_body += chunk[i:i + take]
                i += take
                d.hs_left -= take
            if d.hs_left == 0:
                body, mtype = d.hs_body, d.hs_type
                d.hs_reset()
                if body is not None:
                    self._message(d, mtype, bytes(body), d.hs_ts)

    def _message(self, d: _Direction, mtype: int, body: bytes, ts: int) -> None:
        try:
            if d.rtype == _SSL2:
                self._sslv2_client_hello(body, ts)
            elif mtype == _CLIENT_HELLO:
                self._client_hello(body, ts)
            elif mtype == _SERVER_HELLO:
                self._server_hello(body)
            elif mtype == _NEW_SESSION_TICKET:
                self.new_session_ticket = True
                r = Reader(body)
                r.take(4)  # lifetime hint
                ticket = r.vec(2).rest()
                if ticket:
                    self.ticket_issued = digest(ticket)
            elif mtype == _DRAFT_HRR:  # TLS 1.3 drafts <= 21 had their own HelloRetryRequest
                self.hello_retry = True
                self.version_code = Reader(body).uint(2)
        except Malformed:
            self.malformed += 1

    def _sslv2_client_hello(self, body: bytes, ts: int) -> None:
        self.client_hello = True
        self.client_hellos += 1
        if self.ts_client_hello is None:
            self.ts_client_hello = ts
        r = Reader(body)
        if r.uint(1) != _CLIENT_HELLO:
            raise Malformed
        r.take(2)  # version
        ncipher, nsid, nchallenge = r.uint(2), r.uint(2), r.uint(2)
        r.take(ncipher)
        self.client_session_id = r.take(nsid).hex() or None
        r.take(nchallenge)
        if not r.done() or ncipher % 3:
            raise Malformed

    def _client_hello(self, body: bytes, ts: int) -> None:
        self.client_hello = True
        self.client_hellos += 1
        if self.ts_client_hello is None:
            self.ts_client_hello = ts
        r = Reader(body)
        r.take(2 + 32)  # legacy_version, random
        sid = r.vec(1).rest()
        if len(sid) > 32:
            raise Malformed
        self.client_session_id = sid.hex() or None
        if len(r.vec(2).rest()) % 2:  # cipher suites
            raise Malformed
        r.vec(1)  # compression methods
        for etype, data in r.extensions():
            if etype == 0:  # server_name
                names = data.vec(2)
                while not names.done():
                    kind, name = names.uint(1), names.vec(2).rest()
                    if kind == 0:
                        self.sni = text(name)
                        break
            elif etype == 16:  # application_layer_protocol_negotiation
                protos, offered = data.vec(2), []
                while not protos.done():
                    proto = protos.vec(1).rest()
                    if not (len(proto) == 2 and is_grease(int.from_bytes(proto, "big"))):
                        offered.append(text(proto))
                self.alpn_offered = tuple(offered)
            elif etype == 35:  # session_ticket
                ticket = data.rest()
                self.ticket_offered = bool(ticket)
                self._ticket_hash = digest(ticket) if ticket else None
            elif etype == 41:  # pre_shared_key: identities, then binders
                self.psk_offered = True
                identities = data.vec(2)
                self._psk_hash = digest(identities.vec(2).rest())
                identities.take(4)  # obfuscated_ticket_age
            elif etype == 43:  # supported_versions
                versions = data.vec(1)
                offered = []
                while not versions.done():
                    v = versions.uint(2)
                    if not is_grease(v):
                        offered.append(version_name(v))
                self.versions_offered = tuple(offered)
            elif etype == 45:  # psk_key_exchange_modes
                data.vec(1)

    def _server_hello(self, body: bytes) -> None:
        r = Reader(body)
        legacy = r.uint(2)
        hrr = r.take(32) == HRR_RANDOM
        draft = 0x7F00 <= legacy <= 0x7FFF  # drafts <= 21: no session id, no compression
        sid = b"" if draft else r.vec(1).rest()
        suite = r.uint(2)
        if not draft:
            r.uint(1)  # compression method
        if hrr:
            self.hello_retry = True
        else:
            self.server_hello = True
            self.server_session_id = sid.hex() or None
            self.cipher_suite = suite
        self.version_code = legacy
        for etype, data in r.extensions():
            if etype == 43:  # supported_versions: the selected one
                self.version_code = data.uint(2)
            elif etype == 41 and not hrr:  # pre_shared_key: selected identity
                data.uint(2)
                self.psk_accepted = True
            elif etype == 16 and not hrr:  # ALPN: exactly one protocol
                self.alpn = text(data.vec(2).vec(1).rest())
