"""HTTP/1.x layer: sans-I/O parsing of both directions of a TCP connection.

`HttpStream` is fed the reassembled byte streams (and gaps) of one connection
and hands back `HttpExchange` records, one per request, paired in order with
its response.
"""

from __future__ import annotations

from .parser import HttpStream

__all__ = ["HttpStream"]
