"""The progress callback (the CLI's progress bar) advances while a capture is read,
with the fast lane's counted records as with the per-record path, and ends at the total."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import pcapstats
import pcapstats.pipeline as pipeline

ROOT = Path(__file__).resolve().parents[1]


def _capture(tmp_path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    path = tmp_path / "p.pcap"
    bench.generate(path, 60_000)       # ~49 MB: several 1 MiB windows
    return path


@pytest.mark.parametrize("lane", [True, False])
def test_progress_advances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lane: bool) -> None:
    path = _capture(tmp_path)
    if not lane:
        monkeypatch.setattr(pipeline, "_lane", None)
    seen: list[tuple[int, int]] = []
    pcapstats.analyze(str(path), progress=lambda done, total: seen.append((done, total)))
    size = path.stat().st_size
    done = [d for d, _ in seen]
    assert all(t == size for _, t in seen)
    assert done == sorted(done) and done[-1] == size
    assert len({d for d in done if 0 < d < size}) >= 2     # it moved before the end


def test_progress_of_a_gzip_capture_counts_compressed_bytes(tmp_path: Path) -> None:
    """The total is the file's size on disk, so what was read is counted on disk too:
    with uncompressed bytes the bar would pass 100% early on a gzip capture."""
    import gzip
    path = _capture(tmp_path)
    gz = tmp_path / "p.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    size = gz.stat().st_size
    assert size < path.stat().st_size // 2
    seen: list[tuple[int, int]] = []
    a = pcapstats.analyze(str(gz), progress=lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert all(t == size for _, t in seen)
    assert done == sorted(done) and done[-1] == size
    assert len({d for d in done if 0 < d < size}) >= 2      # it moved before the end
    info = a.result.files[0]
    assert info.compressed and info.disk_read == size and info.bytes_read == path.stat().st_size


def test_cli_progress_bar_runs_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the CLI draws a bar, redrawn by the progress updates: a refresh
    thread would keep the analysis from forking its helper (pcapstats/forked.py)."""
    import io
    import sys
    import threading

    import pcapstats.analysis as analysis_mod
    from pcapstats import cli

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("TERM", "xterm-256color")    # (rich does not redraw a dumb one)
    before = set(threading.enumerate())
    during: list[set] = []
    real = analysis_mod.analyze

    def spy(*args, **kwargs):
        during.append(set(threading.enumerate()))
        return real(*args, **kwargs)
    monkeypatch.setattr(analysis_mod, "analyze", spy)
    path = _capture(tmp_path)
    result = cli._run_analysis((str(path),), {"quiet": False, "session_key": "auto",
                                              "frontend": (), "backend_net": (),
                                              "max_connections": 1_000_000,
                                              "max_buffer": 4 << 20, "jobs": 1,
                                              "scheduler": None, "redact": None,
                                              "redact_addresses": False})
    assert len(during) == 1 and during[0] <= before     # no thread of its own
    monkeypatch.setattr(analysis_mod, "analyze", real)
    assert result.summary == pcapstats.analyze(str(path)).summary
    assert err.getvalue().count("reading") >= 3     # redrawn as the capture was read


def test_progress_advances_with_jobs(tmp_path: Path) -> None:
    """With --jobs the part this process runs reports its share read as the share of
    the whole, so the bar moves while the parts run, and ends at the total."""
    from pcapstats.parallel import MIN_PART
    path = _capture(tmp_path)
    size = path.stat().st_size
    assert size >= 2 * MIN_PART
    seen: list[tuple[int, int]] = []
    a = pcapstats.analyze(str(path), jobs=2,
                          progress=lambda done, total: seen.append((done, total)))
    assert a.summary == pcapstats.analyze(str(path)).summary
    done = [d for d, _ in seen]
    assert all(t == size for _, t in seen)
    assert done == sorted(done) and done[-1] == size
    assert {d for d in done if 0 < d < size}     # it moved before the end
