"""pcapstats: connection reuse and load-balancer persistence, measured from packet captures.

>>> import pcapstats
>>> a = pcapstats.analyze("samples/http-keepalive.pcap")    # doctest: +SKIP
>>> a.summary["http"]["reuse_ratio"], a.connections.shape    # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .analysis import Analysis, analyze  # noqa: E402
from .errors import CaptureFormatError, PcapstatsError, UsageError  # noqa: E402

__all__ = ["Analysis", "CaptureFormatError", "PcapstatsError", "UsageError", "__version__",
           "analyze"]
