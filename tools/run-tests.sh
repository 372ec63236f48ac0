#!/bin/bash
# The test command: install what the suite needs, start the services it talks to, then run
# style checks, the documentation build and the whole test suite (unit + functional).
# Extra arguments go to pytest, e.g. tools/run-tests.sh tests/unit/tpm -x
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
tools/bootstrap.sh test
tools/services.sh
export PATH="$TOP/.venv/bin:$PATH"
if [ $# -eq 0 ]; then
    echo "== style (flake8 + hacking)"
    flake8 tclouds_openstack tests benchmarks
    echo "== generated configuration sample is current"
    tools/genconfig.sh --check
    echo "== documentation (warnings are errors)"
    sphinx-build -q -E -W -b html doc/source doc/build/html
fi
if [ $# -gt 0 ]; then
    exec python -m pytest "$@"
fi
# Each area's tests run in a pytest process of their own (tests/unit/<area>,
# tests/functional/<area>), so threads, servers and global state one area leaves behind
# cannot stall another; modules that run Nova/Cinder/... in-process get a process each
# (tests/isolation.py decides which). A process that hangs is stopped after 20 minutes.
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
status=0
n=0
run() {
    n=$((n + 1))
    echo "== tests: $*"
    timeout --signal=KILL 1200 python -m pytest "$@" --junitxml="$reports/run-$n.xml" \
        </dev/null || status=1
    if [ ! -f "$reports/run-$n.xml" ]; then
        echo "== no test report from: $* (killed or crashed)"
        status=1
    fi
}
mapfile -t plan < <(python -m tests.isolation plan)
for line in "${plan[@]}"; do
    read -r kind paths <<<"$line"
    if [ "$kind" = shared ]; then
        TCLOUDS_SKIP_ISOLATED=1 run $paths
    else
        run $paths
    fi
done
python -m tests.isolation summarize "$reports"/*.xml || status=1
exit $status
