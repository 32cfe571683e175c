#!/usr/bin/env python3
"""Record real load-balanced traffic on loopback (HAProxy + nginx, captured by tcpdump).

    sudo python3 scripts/record_scenarios.py OUT_DIR [scenario ...]

Writes OUT_DIR/<scenario>/ with capture.pcap, haproxy.log (the truth), truth.json (figures
computed from the log), recording.json (lab addresses, the clients' own records), the configs
and the nginx logs; then prints one summary line per scenario. Needs root (tcpdump) and
haproxy, nginx, tcpdump, tshark, wrk, curl (`--install` installs them with apt-get).
Everything runs on 127.0.0.0/8; set PCAPSTATS_LAB_PORT_BASE to move off ports 18080-18083.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.realtraffic.lab import LabError, ensure_packages, missing_binaries  # noqa: E402
from tests.realtraffic.scenarios import SCENARIOS, record_scenario  # noqa: E402


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the recordings into")
    parser.add_argument("scenarios", nargs="*", metavar="scenario",
                        help=f"default: all ({', '.join(SCENARIOS)})")
    parser.add_argument("--install", action="store_true",
                        help="apt-get install the missing packages first")
    args = parser.parse_args(argv)
    if args.install:
        ensure_packages()
    missing = missing_binaries()
    if missing:
        print(f"missing: {', '.join(missing)} (try --install)", file=sys.stderr)
        return 2
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    print(f"{'scenario':25} {'req':>4} {'c-conn':>6} {'b-conn':>6} {'req/c':>5} {'req/b':>5} "
          f"{'key':18} {'sess':>4} {'pers':>5} {'req%':>5}  secs")
    for name in names:
        try:
            rec = record_scenario(name, args.out / name)
        except LabError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
        t = rec.truth
        p = t.persistence[t.primary_session_key]
        c_used = sum(1 for n in t.client_connections.values() if n > 0)
        print(f"{name:25} {t.requests:4} {len(t.client_connections):6} "
              f"{len(t.backend_connections):6} {t.requests / max(c_used, 1):5.1f} "
              f"{t.backend_requests / max(len(t.backend_connections), 1):5.1f} "
              f"{t.primary_session_key:18} {p.multi_sessions:4} {_fmt(p.session_ratio):>5} "
              f"{_fmt(p.request_ratio):>5}  {rec.seconds:.1f}")
    print(f"recorded {len(names)} scenario(s) into {args.out} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
