"""The summary made in a forked child while the main process attributes requests
(``pcapstats/forked.py``): the same result as in one process, and never a child
left behind.

``Forked`` does not fork while another thread runs, and this test session may
have threads left by earlier tests; so each check that needs a fork runs in a
fresh interpreter (``tests/forked_checks.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcapstats.forked import Forked

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
from bench import generate  # noqa: E402

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this system")


def _fresh(check: str, *args: str) -> None:
    """Run ``forked_checks.<check>(*args)`` in a new interpreter; fail with its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}   # this checkout
    r = subprocess.run([sys.executable, str(HERE / "forked_checks.py"), check, *args],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


@needs_fork
def test_the_function_runs_in_a_child_and_its_result_comes_back() -> None:
    _fresh("child_result")


def test_without_fork_it_runs_here_when_asked() -> None:
    with Forked(lambda n: (os.getpid(), list(range(n))), 3, fork=False) as job:
        assert not job.forked
        assert job.result() == (os.getpid(), [0, 1, 2])


@needs_fork
def test_no_fork_while_another_thread_runs() -> None:
    _fresh("no_fork_beside_a_thread")


@needs_fork
@pytest.mark.parametrize("how", ["raises", "killed"])
def test_a_failed_child_means_the_result_is_computed_here(how: str) -> None:
    _fresh("failed_child", how)


@needs_fork
def test_a_child_whose_result_is_not_wanted_is_stopped() -> None:
    _fresh("unwanted_child_stopped")


@needs_fork
def test_an_interrupt_at_the_fork_leaves_no_child() -> None:
    _fresh("interrupt_at_the_fork")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fork") / "bench.pcap"
    generate(path, 20_000, seed=11)
    return path


@needs_fork
@pytest.mark.parametrize("session_key", ["auto", "client-ip"])
def test_analysis_with_the_forked_summary_equals_serial(capture: Path, session_key: str) -> None:
    _fresh("analysis_equal", str(capture), session_key)


@needs_fork
def test_small_runs_and_one_job_do_not_fork(capture: Path) -> None:
    _fresh("small_runs_and_one_job_do_not_fork", str(capture))


@needs_fork
def test_a_failure_in_the_main_process_stops_the_child(capture: Path) -> None:
    _fresh("failure_stops_the_child", str(capture))
