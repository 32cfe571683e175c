"""The summary made in a forked child while the main process attributes requests
(``pcapstats/forked.py``): the same result as in one process, and never a child
left behind."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

import pcapstats.analysis as analysis_mod
import pcapstats.forked as forked_mod
from pcapstats import analyze
from pcapstats.forked import Forked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench import generate  # noqa: E402

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this system")
PARENT = os.getpid()


def _gone(pid: int) -> bool:
    """Whether ``pid`` is no child of this process any more (reaped)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _where(n: int) -> tuple[int, list[int]]:
    return os.getpid(), list(range(n))


@needs_fork
def test_the_function_runs_in_a_child_and_its_result_comes_back() -> None:
    with Forked(_where, 300_000) as job:     # (larger than a pipe's buffer)
        assert job.forked
        pid = job._pid
        where, values = job.result()
    assert where not in (PARENT, None) and where == pid
    assert values == list(range(300_000))
    assert _gone(pid)


def test_without_fork_it_runs_here_when_asked() -> None:
    with Forked(_where, 3, fork=False) as job:
        assert not job.forked
        assert job.result() == (PARENT, [0, 1, 2])


@needs_fork
def test_no_fork_while_another_thread_runs() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, args=(30,))
    t.start()
    try:
        with Forked(_where, 3) as job:
            assert not job.forked
            assert job.result() == (PARENT, [0, 1, 2])
    finally:
        stop.set()
        t.join()


def _fails_in_a_child(n: int) -> tuple[int, list[int]]:
    if os.getpid() != PARENT:
        raise RuntimeError("only in the child")
    return _where(n)


def _killed_in_a_child(n: int) -> tuple[int, list[int]]:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return _where(n)


@needs_fork
@pytest.mark.parametrize("fn", [_fails_in_a_child, _killed_in_a_child])
def test_a_failed_child_means_the_result_is_computed_here(fn) -> None:
    with Forked(fn, 4) as job:
        assert job.forked
        pid = job._pid
        assert job.result() == (PARENT, [0, 1, 2, 3])
    assert _gone(pid)


def _slow(n: int) -> int:
    threading.Event().wait(30)
    return n


@needs_fork
def test_a_child_whose_result_is_not_wanted_is_stopped() -> None:
    with pytest.raises(KeyError):
        with Forked(_slow, 1) as job:
            pid = job._pid
            raise KeyError("the caller failed")
    assert _gone(pid)


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fork") / "bench.pcap"
    generate(path, 20_000, seed=11)
    return path


@needs_fork
@pytest.mark.parametrize("session_key", ["auto", "client-ip"])
def test_analysis_with_the_forked_summary_equals_serial(
        capture: Path, monkeypatch: pytest.MonkeyPatch, session_key: str) -> None:
    serial = analyze(str(capture), session_key=session_key)
    children = []
    real = forked_mod.Forked.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        children.append(self._pid)
    monkeypatch.setattr(forked_mod.Forked, "__init__", spy)
    monkeypatch.setattr(analysis_mod, "FORK_MIN_ROWS", 0)
    par = analyze(str(capture), jobs=2, parts=3, session_key=session_key)
    assert len(children) == 1 and children[0] is not None, "the summary was not forked"
    assert _gone(children[0])
    assert json.dumps(par.summary) == json.dumps(serial.summary)    # keys in the same order
    assert list(par.summary) == ["schema_version", "tool", "capture", "tcp", "udp", "http",
                                 "tls", "affinity", "warnings"]
    assert par.summary["affinity"]["sessions"] > 0
    for name, frame in serial.tables().items():
        pd.testing.assert_frame_equal(frame, par.tables()[name], obj=name)


@needs_fork
def test_small_runs_and_one_job_do_not_fork(capture: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    real = forked_mod.Forked.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self.forked)
    monkeypatch.setattr(forked_mod.Forked, "__init__", spy)
    analyze(str(capture), jobs=2, parts=2)      # fewer rows than FORK_MIN_ROWS
    monkeypatch.setattr(analysis_mod, "FORK_MIN_ROWS", 0)
    analyze(str(capture))                       # one job: one process
    assert made == [False, False]


@needs_fork
def test_a_failure_in_the_main_process_stops_the_child(
        capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pcapstats.affinity.attribute as attribute_mod
    children = []
    real = forked_mod.Forked.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        children.append(self._pid)

    def fails(*args, **kwargs):
        raise RuntimeError("attribution failed")
    monkeypatch.setattr(forked_mod.Forked, "__init__", spy)
    monkeypatch.setattr(analysis_mod, "FORK_MIN_ROWS", 0)
    monkeypatch.setattr(attribute_mod, "attribute", fails)
    with pytest.raises(RuntimeError, match="attribution failed"):
        analyze(str(capture), jobs=2, parts=2)
    assert len(children) == 1 and children[0] is not None and _gone(children[0])
