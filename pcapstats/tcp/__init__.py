"""TCP: connection table, per-direction reassembly, Zeek-compatible states (no I/O)."""

from .connections import Connection, ConnectionTable, StreamConsumer
from .reassembly import HalfStream, StreamSink

__all__ = ["Connection", "ConnectionTable", "HalfStream", "StreamConsumer", "StreamSink"]
