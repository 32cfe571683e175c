"""Ingestion: capture files in, decoded packets out. The only layer that opens files."""

from .decode import LINKTYPE_NAMES, Decoder, DecodeStats, tcp_options
from .readers import FileInfo, ReadProblem, read_capture, read_captures

__all__ = ["Decoder", "DecodeStats", "FileInfo", "LINKTYPE_NAMES", "ReadProblem",
           "read_capture", "read_captures", "tcp_options"]
