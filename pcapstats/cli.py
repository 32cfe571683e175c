"""The command line: click commands only. Parse options, call the API, print.

Exit codes: 0 analysed; 1 analysed with warnings and ``--strict`` given;
2 usage error; 3 unreadable input (nothing could be read).
"""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .errors import PcapstatsError

EXIT_OK, EXIT_STRICT, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3


def analysis_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that analyses captures."""
    opts = [
        click.option("--session-key", default="auto", show_default=True, metavar="KEY",
                     help="How sessions are recognised: auto, cookie:NAME, client-ip, xff, "
                          "header:NAME or tls."),
        click.option("--frontend", metavar="ADDR:PORT", multiple=True,
                     help="The balancer's client-facing address (detected when omitted)."),
        click.option("--backend-net", metavar="CIDR", multiple=True,
                     help="Networks of the backend servers (detected when omitted)."),
        click.option("--max-connections", type=click.IntRange(1), default=1_000_000,
                     show_default=True,
                     help="Open connections tracked at once; beyond it the oldest is "
                          "summarised early (counted in the warnings)."),
        click.option("--max-buffer", type=click.IntRange(1024), default=4 << 20,
                     show_default=True, help="Out-of-order bytes held per direction."),
        click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
                     help="Analyse in this many processes (one large capture is split on "
                          "record boundaries; rotated files are split between them). The "
                          "result is the same as with one."),
        click.option("--scheduler", metavar="tcp://HOST:PORT",
                     help="Run the parts on this Dask distributed scheduler instead (its "
                          "workers must reach the capture files by the same paths)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar, no report on stdout."),
        click.option("--strict", is_flag=True,
                     help="Exit 1 when the analysis produced warnings."),
        click.option("--redact", is_flag=True,
                     help="Replace cookie values, session keys and URI query strings by "
                          "keyed hashes (HMAC-SHA256) in every output; figures unchanged."),
        click.option("--redact-addresses", is_flag=True,
                     help="Also replace IP addresses by keyed hashes (implies --redact)."),
        click.option("--redact-key", metavar="KEY", envvar="PCAPSTATS_REDACT_KEY",
                     show_envvar=True,
                     help="Key of the hashes: the same key gives the same tokens in every "
                          "run (default: a random key per run)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _fail(exc: PcapstatsError) -> None:
    click.echo(f"pcapstats: error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _redactor(kw: dict[str, Any]) -> Any:
    """One Redactor per command run (so two captures get the same tokens), or None."""
    if not (kw.get("redact") or kw.get("redact_addresses")):
        return None
    from .redact import Redactor
    return Redactor(kw.get("redact_key") or None, addresses=bool(kw.get("redact_addresses")))


def _run_analysis(files: tuple[str, ...], kw: dict[str, Any], redactor: Any = None) -> Any:
    from .analysis import analyze

    progress = None
    bar = None
    if not kw.get("quiet") and sys.stderr.isatty():
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
        # redrawn by the updates themselves (auto_refresh would start a thread, and
        # with a thread running the analysis forks no helper: pcapstats/forked.py)
        bar = Progress("[progress.description]{task.description}", BarColumn(),
                       DownloadColumn(), TimeRemainingColumn(), transient=True,
                       auto_refresh=False, console=_stderr_console())
        task = bar.add_task("reading", total=None)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None, refresh=True)
    try:
        return analyze(list(files), session_key=kw["session_key"],
                       frontend=list(kw["frontend"]), backend_net=list(kw["backend_net"]),
                       max_connections=kw["max_connections"], max_buffer=kw["max_buffer"],
                       jobs=kw["jobs"], scheduler=kw["scheduler"],
                       progress=progress, redact=redactor or _redactor(kw))
    finally:
        if bar is not None:
            bar.stop()


def _few_collections() -> Any:
    """For the reports' and exports' passes over the rows: the analysis restores the
    cyclic GC's thresholds when it returns, and these passes allocate in bulk (tuples,
    lists, strings) and free it; at the default thresholds that set off full
    collections scanning every row kept, for no garbage (0.6 s after the 5M-packet
    benchmark's analysis, 1.2 s in seven collections after 500k connections)."""
    from .pipeline import few_collections
    return few_collections()


def _stderr_console() -> Any:
    from rich.console import Console
    return Console(stderr=True)


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except PcapstatsError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("pcapstats: interrupted", err=True)
            sys.exit(130)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcapstats")
def main() -> None:
    """Measure connection reuse and load-balancer persistence from packet captures.

    Exit codes: 0 ok, 1 warnings with --strict, 2 usage error, 3 unreadable input.
    """


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True, help="Report format on stdout (html: written to a file).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the report here instead of stdout (html default: reports/).")
@click.option("--no-files", is_flag=True,
              help="Do not also write reports/<name>.json and .html.")
@analysis_options
@handle_errors
def report(files: tuple[str, ...], fmt: str, output: str | None, no_files: bool,
           **kw: Any) -> None:
    """Analyse CAPTURE files (pcap, pcapng, .gz; - for stdin) and print the report.

    Several files are merged in time order (rotated captures). Besides the
    report on stdout, a JSON and an HTML report are written under reports/.
    """
    from .report import render

    analysis = _run_analysis(files, kw)
    with _few_collections():
        written = []
        if not no_files and fmt == "text" and output is None:
            written = render.write_files(analysis, files, Path("reports"))
        if fmt == "html":
            target = (Path(output) if output
                      else render.default_path(files, Path("reports"), "html"))
            render.write_html(analysis, target)
            if not kw["quiet"]:
                click.echo(f"HTML report written to {target}")
        elif output or not kw["quiet"]:     # (-q without -o: no report to render)
            text = render.render(analysis, fmt, color=output is None and sys.stdout.isatty())
            if output:
                Path(output).write_text(text, encoding="utf-8")
            else:
                click.echo(text, nl=not text.endswith("\n"))
    if written and not kw["quiet"]:
        click.echo("Also written: " + ", ".join(str(p) for p in written))
    if kw["strict"] and analysis.summary["warnings"]:
        sys.exit(EXIT_STRICT)


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl"]),
              default="parquet", show_default=True)
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default="export",
              show_default=True, help="Folder for one file per table.")
@analysis_options
@handle_errors
def export(files: tuple[str, ...], fmt: str, outdir: str, **kw: Any) -> None:
    """Analyse CAPTURE files and write one file per table (connections, requests, ...)."""
    from .report import exports

    analysis = _run_analysis(files, kw)
    with _few_collections():
        paths = exports.write_tables(analysis, Path(outdir), fmt)
    if not kw["quiet"]:
        for p in paths:
            click.echo(str(p))
    if kw["strict"] and analysis.summary["warnings"]:
        sys.exit(EXIT_STRICT)


@main.command()
@click.argument("before", metavar="BEFORE")
@click.argument("after", metavar="AFTER")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Comparison format on stdout.")
@analysis_options
@handle_errors
def compare(before: str, after: str, fmt: str, **kw: Any) -> None:
    """Compare two captures (before / after a change); `!` marks changes that matter.

    Each of BEFORE and AFTER is one capture file. Every figure is shown
    before, after and as a change; the rule for "matters" is in
    docs/figures.md (ratios: 5 points with 20 or more in each denominator).
    """
    import json

    from .compare import compare as compare_analyses
    from .compare import format_text

    redactor = _redactor(kw)
    a = _run_analysis((before,), kw, redactor)
    b = _run_analysis((after,), kw, redactor)
    result = compare_analyses(a, b)
    if not kw["quiet"]:
        if fmt == "json":
            click.echo(json.dumps(result, indent=2))
        else:
            click.echo(format_text(result), nl=False)
    if kw["strict"] and (a.summary["warnings"] or b.summary["warnings"]):
        sys.exit(EXIT_STRICT)


@main.command()
@click.option("--table", type=click.Choice(["connections", "requests", "sessions", "backends",
                                            "breaks"]), help="Only this table.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text",
              show_default=True, help="markdown: the reference as docs/columns.md has it.")
def columns(table: str | None, fmt: str) -> None:
    """Print the reference of every column of every table."""
    from .frames import reference

    click.echo(reference(fmt, table), nl=False)


def entry() -> None:
    """The ``pcapstats`` command: ``main`` in a process that ends with it.

    What the analysis kept is frozen on the way out (the exit of ``main`` raises
    SystemExit), so the collection at interpreter shutdown does not scan it: 0.15 s
    after a 1M-packet report. (Tests call ``main`` itself, in a process that goes on.)
    """
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    entry()
