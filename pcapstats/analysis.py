"""The public API: ``analyze(paths, **options) -> Analysis``."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .errors import UsageError
from .pipeline import Options, RunResult, few_collections, run
from .request_table import RequestTable

if TYPE_CHECKING:   # pragma: no cover
    import pandas as pd

_OPTION_NAMES = {f.name for f in fields(Options)}
#: Rows (connections and requests) from which the summary is worth a forked child:
#: below, its cost (about 10 us a row) is not much more than the fork's.
FORK_MIN_ROWS = 20_000
_AFFINITY_ROWS = {"sessions": "session_rows", "backends": "backend_rows",
                  "breaks": "break_rows"}


class Analysis:
    """The result of analysing one or more capture files.

    ``summary`` is a plain JSON-serialisable dict; the tables are pandas
    DataFrames built on first access (columns documented in ``frames.py``)
    from the row dicts that :meth:`rows` returns without pandas.
    """

    def __init__(self, result: RunResult, conn_rows: list[dict],
                 request_rows: "RequestTable | list[dict]",
                 affinity: Any, summary: dict[str, Any]) -> None:
        self.result = result
        self._conn_rows = conn_rows
        self._request_rows = request_rows
        self._affinity = affinity
        self.summary = summary
        self._frames: dict[str, pd.DataFrame] = {}

    def rows(self, name: str) -> "Sequence[dict]":
        """The row dicts table ``name`` is built from ("connections", "requests",
        "sessions", "backends" or "breaks"), in table order; no pandas. Shared, not
        copied: read them, do not change them. Missing keys mean nulls. The
        connections are dict-like rows (``pcapstats._row.Row`` where the C helper is
        built: a mutable mapping with dict's methods whose keys all rows share;
        ``dict(row)`` is a plain dict, for json.dumps). The requests are a
        :class:`~pcapstats.request_table.RequestTable` (after a redaction, a list):
        a sequence whose rows are built on access (a change
        to one is not kept; ``list(...)`` gives a plain list, for json.dumps), and
        whose ``column(name)`` gives a whole column at once."""
        if name == "connections":
            return self._conn_rows
        if name == "requests":
            return self._request_rows
        if name not in _AFFINITY_ROWS:
            raise KeyError(f"no table {name!r}")
        return getattr(self._affinity, _AFFINITY_ROWS[name]) if self._affinity else []

    def _frame(self, name: str, rows: Iterable[dict]) -> "pd.DataFrame":
        if name not in self._frames:
            from . import frames
            self._frames[name] = frames.build(name, rows)
        return self._frames[name]

    @property
    def connections(self) -> "pd.DataFrame":
        """One row per TCP connection."""
        return self._frame("connections", self.rows("connections"))

    @property
    def requests(self) -> "pd.DataFrame":
        """One row per HTTP request (with its response)."""
        return self._frame("requests", self.rows("requests"))

    @property
    def sessions(self) -> "pd.DataFrame":
        """One row per client session (see ``summary['affinity']['session_key']``)."""
        return self._frame("sessions", self.rows("sessions"))

    @property
    def backends(self) -> "pd.DataFrame":
        """One row per backend."""
        return self._frame("backends", self.rows("backends"))

    @property
    def breaks(self) -> "pd.DataFrame":
        """One row per persistence break."""
        return self._frame("breaks", self.rows("breaks"))

    def tables(self) -> dict[str, "pd.DataFrame"]:
        return {"connections": self.connections, "requests": self.requests,
                "sessions": self.sessions, "backends": self.backends, "breaks": self.breaks}


def analyze(paths: str | list[str], **options: Any) -> Analysis:
    """Analyse capture files (pcap, pcapng, gzip of either; "-" for stdin).

    Several files are merged in timestamp order (rotated captures). ``jobs=N``
    analyses in N local processes, ``scheduler="tcp://HOST:PORT"`` on a Dask
    cluster (``parts``: how many parts, default N); the result equals the serial
    one (see ``pcapstats/parallel.py``). Options:
    the fields of :class:`pcapstats.pipeline.Options`, plus the affinity
    options ``session_key`` (``auto``, ``cookie:NAME``, ``client-ip``, ``xff``,
    ``header:NAME``, ``tls``), ``frontend`` and ``backend_net``; and
    ``redact`` (True, a key, or a :class:`pcapstats.redact.Redactor`) with
    ``redact_addresses``: the Analysis returned is then the redacted copy
    (cookie values, session keys, query strings, optionally addresses replaced
    by keyed hashes; figures unchanged; see ``pcapstats/redact.py``).
    Raises :class:`CaptureFormatError` only when nothing at all could be read.
    """
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = [paths]  # type: ignore[list-item]
    paths = [str(p) for p in paths]
    if not paths:
        raise UsageError("no capture file given")
    affinity_opts = {k: options.pop(k) for k in ("session_key", "frontend", "backend_net")
                     if k in options}
    from .redact import redactor_for
    redactor = redactor_for(options.pop("redact", None), options.pop("redact_addresses", False))
    jobs = int(options.pop("jobs", 1) or 1)
    scheduler = options.pop("scheduler", None)
    parts = options.pop("parts", None)
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
    if jobs < 1:
        raise UsageError(f"jobs must be 1 or more, not {jobs}")
    with few_collections(pause=True):
        if jobs > 1 or scheduler or parts:
            from .parallel import run_parallel
            res = run_parallel(paths, Options(**options), jobs, scheduler, parts)
        else:
            res = run(paths, Options(**options))
        conns = res.connections
        from .affinity.attribute import attribute
        from .forked import Forked
        from .summary import build_summary, with_affinity
        # With cores to spare (jobs), a forked child makes the summary while this process
        # attributes the requests: the summary reads nothing attribute() writes (the
        # connections' "side", the requests' session columns).
        spare = jobs > 1 and len(conns) + len(res.exchanges) >= FORK_MIN_ROWS
        with Forked(build_summary, res, conns, res.exchanges, None, fork=spare) as job:
            reqs = RequestTable(res.exchanges, conns)
            aff = attribute(conns, reqs, **affinity_opts)
            summary = with_affinity(job.result(), aff.summary if aff else None)
    analysis = Analysis(res, conns, reqs, aff, summary)
    return redactor.apply(analysis) if redactor is not None else analysis
