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
echo "== tests"
exec python -m pytest "${@:-tests}"
