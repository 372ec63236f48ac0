#!/bin/bash
# The test command: install what the suite needs, start the services it talks to, then run
# style checks, the documentation build and the whole test suite (unit + functional).
#
#   tools/run-tests.sh                  style, docs, the whole suite
#   tools/run-tests.sh --suite          the whole suite only
#   tools/run-tests.sh tests/unit/tpm -x    one pytest process; arguments go to pytest
#
# Which tested set (tools/bootstrap.sh): TCLOUDS_CONSTRAINTS=tested (default, .venv, the exact
# versions of constraints.txt) or TCLOUDS_CONSTRAINTS=openstack (.venv-uc, OpenStack's
# upper-constraints plus constraints.txt for what it does not pin), or TCLOUDS_CONSTRAINTS=both
# (what CI runs: the same command under the tested set and, at the same time, the suite or the
# given paths under upper-constraints; the suite waits on servers, sockets and subprocesses
# more than it computes, so the two overlap well on two cores; output lines are prefixed
# [tested] / [openstack]; the exit status fails if either fails).
#
# TCLOUDS_TEST_REPORTS=<dir> keeps the JUnit report of every pytest process there (for
# comparing two runs: python -m tests.isolation compare DIR_A DIR_B).
#
# No wall-clock limit: a pytest process is stopped only when it is stuck, i.e. it and its
# children used no CPU for TCLOUDS_STUCK_MINUTES (default 5), or when it used more than
# TCLOUDS_CPU_BUDGET_MINUTES of CPU (default 60); see tests/watchdog.py.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
if [ "${TCLOUDS_CONSTRAINTS:-}" = both ]; then
    TCLOUDS_CONSTRAINTS=tested tools/bootstrap.sh test
    TCLOUDS_CONSTRAINTS=openstack tools/bootstrap.sh test
    tools/services.sh
    status_dir=$(mktemp -d)
    trap 'rm -rf "$status_dir"' EXIT
    run_set() {     # run_set tested|openstack ARGS...: this command under one set, prefixed
        local set=$1
        shift
        { TCLOUDS_CONSTRAINTS=$set TCLOUDS_TEST_REPORTS=${TCLOUDS_TEST_REPORTS:+$TCLOUDS_TEST_REPORTS/$set} \
              tools/run-tests.sh "$@" </dev/null 2>&1
          echo $? > "$status_dir/$set"; } | sed -u "s/^/[$set] /"
    }
    uc_args=("$@")
    if [ $# -eq 0 ]; then uc_args=(--suite); fi    # style and docs once, under the tested set
    set +e
    run_set tested "$@" &
    run_set openstack "${uc_args[@]}" &
    wait
    tested=$(cat "$status_dir/tested" 2>/dev/null || echo 1)
    openstack=$(cat "$status_dir/openstack" 2>/dev/null || echo 1)
    echo "== both sets: tested exit $tested, openstack exit $openstack"
    [ "$tested" = 0 ] && [ "$openstack" = 0 ]
    exit $?
fi
tools/bootstrap.sh test
tools/services.sh
VENV=$(tools/bootstrap.sh --venv)
export PATH="$VENV/bin:$PATH"
echo "== tested set: ${TCLOUDS_CONSTRAINTS:-tested} ($VENV)"

SUITE_ONLY=0
if [ "${1:-}" = --suite ]; then
    SUITE_ONLY=1
    shift
fi
if [ $# -gt 0 ]; then
    exec python -m tests.watchdog -- python -m pytest "$@"
fi
if [ $SUITE_ONLY = 0 ]; then
    echo "== style (flake8 + hacking)"
    flake8 tclouds_openstack tests benchmarks
    echo "== generated configuration sample is current"
    tools/genconfig.sh --check
    echo "== documentation (warnings are errors)"
    sphinx-build -q -E -W -b html doc/source doc/build/html
fi
# Each area's tests run in a pytest process of their own (tests/unit/<area>,
# tests/functional/<area>), so threads, servers and global state one area leaves behind
# cannot stall another; modules that run Nova/Cinder/... in-process get a process each
# (tests/isolation.py decides which).
if [ -n "${TCLOUDS_TEST_REPORTS:-}" ]; then
    reports=$TCLOUDS_TEST_REPORTS
    mkdir -p "$reports"
else
    reports=$(mktemp -d)
    trap 'rm -rf "$reports"' EXIT
fi
status=0
n=0
start=$SECONDS
run() {
    n=$((n + 1))
    echo "== tests: $*"
    python -m tests.watchdog -- python -m pytest "$@" --junitxml="$reports/run-$n.xml" \
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
echo "== suite: $((SECONDS - start)) s (${TCLOUDS_CONSTRAINTS:-tested} set)"
exit $status
