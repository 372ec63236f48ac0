#!/bin/bash
# Run Tempest (installed by DevStack in its own virtualenv) against this DevStack cloud:
# the documented selection of Tempest's API tests (devstack/tempest-include-list.txt minus
# devstack/tempest-exclude-list.txt) and every test of the tclouds plugin. Run as the
# DevStack user after stack.sh; extra arguments go to "tempest run".
# The output is kept in $TEMPEST_DIR/tempest-run.txt and the subunit stream in
# $TEMPEST_DIR/tempest-run.subunit.
set -euo pipefail
PLUGIN_DIR=$(cd "$(dirname "$0")/.." && pwd)
TCLOUDS_DIR=$(dirname "$PLUGIN_DIR")
TEMPEST_DIR=${TEMPEST_DIR:-/opt/stack/tempest}
VENV=${TEMPEST_VENV:-$TEMPEST_DIR/.tox/tempest}
[[ -x $VENV/bin/tempest ]] || { echo "run-tempest: no Tempest in $VENV (INSTALL_TEMPEST=True?)" >&2; exit 1; }

# The plugin goes into Tempest's virtualenv without the service's own dependencies: its
# tests import only Tempest and the pure parts of tclouds_openstack.
if ! "$VENV/bin/python" -c 'import tclouds_openstack.tests.tempest.plugin' 2>/dev/null; then
    "$VENV/bin/pip" install -q --no-deps -e "$TCLOUDS_DIR"
fi
cd "$TEMPEST_DIR"
"$VENV/bin/tempest" list-plugins | grep -q tclouds || { echo "run-tempest: plugin not registered" >&2; exit 1; }
# 1. the API tests, in parallel; 2. the plugin's scenario tests one at a time (one of them
# turns a compute host untrusted for a while, which must not surprise other tests).
set +e
"$VENV/bin/tempest" run --include-list "$PLUGIN_DIR/tempest-include-list.txt" \
    --exclude-list "$PLUGIN_DIR/tempest-exclude-list.txt" \
    --exclude-regex '^tclouds_openstack\.tests\.tempest\.scenario\.' \
    --concurrency "${TEMPEST_CONCURRENCY:-2}" "$@" 2>&1 | tee "$TEMPEST_DIR/tempest-run.txt"
rc=${PIPESTATUS[0]}
"$VENV/bin/stestr" last --subunit >"$TEMPEST_DIR/tempest-run.subunit" 2>/dev/null || true
"$VENV/bin/tempest" run --regex '^tclouds_openstack\.tests\.tempest\.scenario\.' \
    --exclude-list "$PLUGIN_DIR/tempest-exclude-list.txt" --serial "$@" 2>&1 \
    | tee "$TEMPEST_DIR/tempest-scenario.txt"
rc2=${PIPESTATUS[0]}
"$VENV/bin/stestr" last --subunit >"$TEMPEST_DIR/tempest-scenario.subunit" 2>/dev/null || true
set -e
# One closing line for both runs, from stestr's totals.
total() {
    grep -h -- "^ - $1: " "$TEMPEST_DIR/tempest-run.txt" "$TEMPEST_DIR/tempest-scenario.txt" \
        | awk '{s += $3} END {print s + 0}'
}
echo "tempest: $(total Passed) passed, $(total Failed) failed, $(total Skipped) skipped"
if (( rc != 0 || rc2 != 0 )); then
    exit 1
fi
