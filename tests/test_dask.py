"""``--scheduler``: the same parts on a real Dask cluster (a scheduler and two
workers started here on loopback) give the same result as the local run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcapstats import analyze
from pcapstats.parallel import _dask_client, _on_dask, merge, plan
from pcapstats.pipeline import Options, run

pytest.importorskip("distributed", reason="Dask distributed is not installed")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench import generate  # noqa: E402


def _dask_cli(tool: str) -> list[str]:
    exe = shutil.which(f"dask-{tool}")
    if exe:
        return [exe]
    return [sys.executable, "-m", "distributed.cli." + {"scheduler": "dask_scheduler",
                                                         "worker": "dask_worker"}[tool]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dask")
    info = tmp / "scheduler.json"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = [subprocess.Popen(_dask_cli("scheduler") + [
        "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
        "--scheduler-file", str(info)], cwd=tmp, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):                    # up to 30 s
            if info.exists() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for n in range(2):
            procs.append(subprocess.Popen(_dask_cli("worker") + [
                address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                "--host", "127.0.0.1", "--name", f"w{n}",
                "--local-directory", str(tmp / f"w{n}")], cwd=tmp, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            workers = client.scheduler_info()["workers"]
            assert len(workers) == 2
            assert all(w.startswith("tcp://127.0.0.1:") for w in workers)
        yield address
    finally:
        for p in reversed(procs):           # only what this fixture started, by PID
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def test_dask_cluster_equals_local(cluster: str, tmp_path: Path) -> None:
    path = tmp_path / "bench.pcap"
    generate(path, 20_000, seed=3)
    layout = plan([str(path)], 4)
    assert layout is not None and len(layout) == 4
    # the parts really ran there and were stitched (merge raises if it cannot)
    with _dask_client(cluster) as client:
        merged = merge(_on_dask(client, layout, Options()), [str(path)])
    whole = run([str(path)], Options())
    assert merged.connections == whole.connections
    assert [repr(e) for e in merged.exchanges] == [repr(e) for e in whole.exchanges]
    local = analyze(str(path), jobs=2, parts=4)
    serial = analyze(str(path))
    on_dask = analyze(str(path), scheduler=cluster, parts=4)
    assert on_dask.summary == local.summary == serial.summary
    for name, frame in local.tables().items():
        assert frame.equals(on_dask.tables()[name]), name


def test_unreachable_scheduler_is_a_one_line_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pcapstats.cli import main
    path = tmp_path / "small.pcap"
    generate(path, 2_000, seed=5)
    r = CliRunner().invoke(main, ["report", str(path), "-q", "--no-files",
                                  "--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.output
    assert "Traceback" not in r.output
