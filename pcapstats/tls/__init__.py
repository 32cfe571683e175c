"""TLS layer: recognise TLS by its record header and observe one connection's handshake.

Sans-I/O: the TCP layer feeds reassembled bytes; nothing here reads files or prints.
`wire` holds the record format and helpers, `parser` the per-connection state machine.
"""

from __future__ import annotations

from pcapstats.tls.parser import TlsStream
from pcapstats.tls.wire import MAX_HANDSHAKE_MESSAGE, MAX_RECORD, looks_like_tls, version_name

__all__ = ["MAX_HANDSHAKE_MESSAGE", "MAX_RECORD", "TlsStream", "looks_like_tls", "version_name"]
