"""Start-up: a report runs the package from bytecode, nothing is compiled per run.

`pip install .` compiles the package; the test command's editable install does not,
and where PYTHONDONTWRITEBYTECODE is set no run would write the bytecode either, so
scripts/test.sh compiles it (0.1-0.3 s a run otherwise). ``python -v`` names the file
each module's code came from: a ``.pyc`` or, when it was compiled, the ``.py``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pcapstats

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(pcapstats.__file__).resolve().parent
CODE_FROM = re.compile(r"^# code object from '?(.+?)'?$", re.M)


def test_report_compiles_no_module_of_the_package() -> None:
    out = subprocess.run(
        [sys.executable, "-v", "-m", "pcapstats.cli", "report", "--no-files", "-q",
         str(ROOT / "samples" / "http-keepalive.pcap")],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    ours = [Path(p) for p in CODE_FROM.findall(out.stderr)
            if Path(p).resolve().is_relative_to(PACKAGE)]
    assert len(ours) >= 10, ours          # the run did load the package, from somewhere
    compiled = sorted(str(p.relative_to(PACKAGE)) for p in ours if p.suffix == ".py")
    assert not compiled, ("compiled from source on this run (python -m compileall "
                          f"pcapstats, as scripts/test.sh does): {compiled}")
