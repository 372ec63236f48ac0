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
# Modules that run Nova/Cinder/... in-process each get their own pytest process (they keep
# process-wide state); everything else runs in one. tests/isolation.py decides which.
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
status=0
echo "== tests"
TCLOUDS_SKIP_ISOLATED=1 python -m pytest tests --junitxml="$reports/main.xml" || status=1
n=0
for module in $(python -m tests.isolation list); do
    n=$((n + 1))
    echo "== tests in their own process: $module"
    python -m pytest "$module" --junitxml="$reports/isolated-$n.xml" || status=1
done
python -m tests.isolation summarize "$reports"/*.xml || status=1
exit $status
