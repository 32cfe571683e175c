#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: tshark (differential tests), tcpdump/haproxy/nginx/wrk/curl
# (real-traffic recordings), chromium (the HTML report is opened headless), gcc and the
# Python headers (the install builds the C record loop, pcapstats/_fastpcap.c).
need=()
for pair in tshark:tshark tcpdump:tcpdump haproxy:haproxy nginx:nginx wrk:wrk curl:curl \
            chromium:chromium openssl:openssl gcc:gcc; do
    bin=${pair%%:*}; pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(
    os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null
    else
        echo "missing Debian packages (run as root to install): ${need[*]}" >&2
    fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# An editable install writes no bytecode, and where PYTHONDONTWRITEBYTECODE is set no run
# writes it either: every command would compile the package again (0.1-0.3 s). Compile
# it once here, as `pip install .` does.
python3 -m compileall -q pcapstats >/dev/null
exec python3 -m pytest -q "$@"
