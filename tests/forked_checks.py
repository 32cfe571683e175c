"""Checks of ``pcapstats/forked.py`` that need a process with no other thread.

``Forked`` does not fork while another thread runs, and a test session may have
threads left by earlier tests (Dask's, for one). ``tests/test_forked.py`` runs
each check here in a fresh interpreter: ``python forked_checks.py NAME [ARGS]``;
a failed assertion exits non-zero with its traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pandas as pd

import pcapstats.analysis as analysis_mod
import pcapstats.forked as forked_mod
from pcapstats import analyze
from pcapstats.forked import Forked

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


def _fails_in_a_child(n: int) -> tuple[int, list[int]]:
    if os.getpid() != PARENT:
        raise RuntimeError("only in the child")
    return _where(n)


def _killed_in_a_child(n: int) -> tuple[int, list[int]]:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return _where(n)


def _slow(n: int) -> int:
    threading.Event().wait(30)
    return n


def child_result() -> None:
    assert threading.active_count() == 1
    with Forked(_where, 300_000) as job:     # (larger than a pipe's buffer)
        assert job.forked
        pid = job._pid
        where, values = job.result()
    assert where == pid and pid != PARENT
    assert values == list(range(300_000))
    assert _gone(pid)


def failed_child(how: str) -> None:
    fn = {"raises": _fails_in_a_child, "killed": _killed_in_a_child}[how]
    with Forked(fn, 4) as job:
        assert job.forked
        pid = job._pid
        assert job.result() == (PARENT, [0, 1, 2, 3])
    assert _gone(pid)


def unwanted_child_stopped() -> None:
    pid = None
    try:
        with Forked(_slow, 1) as job:
            assert job.forked
            pid = job._pid
            raise KeyError("the caller failed")
    except KeyError:
        pass
    assert pid is not None and _gone(pid)


def interrupt_at_the_fork() -> None:
    """A Ctrl-C that comes while the child is being made is held back until the child
    is recorded, then raised here, and the child is stopped and reaped."""
    real_fork = os.fork
    made: list[int] = []

    def fork() -> int:
        os.kill(PARENT, signal.SIGINT)      # (held back: delivered after the fork)
        pid = real_fork()
        if pid:
            made.append(pid)
        return pid
    os.fork = fork
    try:
        Forked(_slow, 1)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt was lost")
    finally:
        os.fork = real_fork
    assert len(made) == 1 and _gone(made[0])


def no_fork_beside_a_thread() -> None:
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
    with Forked(_where, 3) as job:      # the thread is gone: a child again
        assert job.forked and job.result()[0] != PARENT


def _spy() -> list:
    made: list = []
    real = forked_mod.Forked.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self._pid)
    forked_mod.Forked.__init__ = spy
    return made


def analysis_equal(capture: str, session_key: str) -> None:
    import pcapstats.summary as summary_mod
    serial = analyze(capture, session_key=session_key)
    made = _spy()
    here: list[int] = []        # calls of build_summary in this process (the child's
    real = summary_mod.build_summary    # are in its own memory)

    def counted(*args):
        here.append(os.getpid())
        return real(*args)
    summary_mod.build_summary = counted
    analysis_mod.FORK_MIN_ROWS = 0
    par = analyze(capture, jobs=2, parts=3, session_key=session_key)
    summary_mod.build_summary = real
    assert len(made) == 1 and made[0] is not None, "the summary was not forked"
    assert here == [], "the summary was made here (the child failed)"
    assert _gone(made[0])
    assert json.dumps(par.summary) == json.dumps(serial.summary)    # keys in the same order
    assert list(par.summary) == ["schema_version", "tool", "capture", "tcp", "udp", "http",
                                 "tls", "affinity", "warnings"]
    assert par.summary["affinity"]["sessions"] > 0
    for name, frame in serial.tables().items():
        pd.testing.assert_frame_equal(frame, par.tables()[name], obj=name)


def small_runs_and_one_job_do_not_fork(capture: str) -> None:
    made = _spy()
    analyze(capture, jobs=2, parts=2)       # fewer rows than FORK_MIN_ROWS
    analysis_mod.FORK_MIN_ROWS = 0
    analyze(capture)                        # one job: one process
    assert made == [None, None]
    analyze(capture, jobs=2, parts=2)       # (and the spy does see a fork)
    assert made[2] is not None


def failure_stops_the_child(capture: str) -> None:
    import pcapstats.affinity.attribute as attribute_mod
    made = _spy()
    analysis_mod.FORK_MIN_ROWS = 0

    def fails(*args, **kwargs):
        raise RuntimeError("attribution failed")
    attribute_mod.attribute = fails
    try:
        analyze(capture, jobs=2, parts=2)
    except RuntimeError as exc:
        assert "attribution failed" in str(exc)
    else:
        raise AssertionError("no failure")
    assert len(made) == 1 and made[0] is not None and _gone(made[0])


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
    print("ok")
