#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: tshark (differential tests), tcpdump/haproxy/nginx/wrk/curl
# (real-traffic recordings), chromium (the HTML report is opened headless).
need=()
for pair in tshark:tshark tcpdump:tcpdump haproxy:haproxy nginx:nginx wrk:wrk curl:curl \
            chromium:chromium openssl:openssl; do
    bin=${pair%%:*}; pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
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
exec python3 -m pytest -q "$@"
