#!/bin/bash
# Deploy this checkout with upstream DevStack in an isolated Debian 12 root, check the
# deployment, run Tempest, and leave this machine as it found it.
#
# usage: tools/devstack-job.sh [options]
#   --worktree       deploy the working tree's tracked files (default: the checkout's HEAD)
#   --keep-root      reuse the working root of the last run (stack.sh re-run; default: a
#                    fresh root from the cached base tarball)
#   --keep-running   leave the cloud running at the end (enter it with
#                    tools/devstack/isolated-root.sh shell; stop it with
#                    tools/devstack/isolated-root.sh stop)
#   --no-tempest     deploy and check only
#   --no-plugin      deploy stock OpenStack only (no tclouds plugin)
#   --no-clean       skip the unstack.sh + clean.sh check at the end
#   --rerun          after Tempest, run stack.sh again with every service up and check
#                    the deployment again (DevStack's re-run path)
#   --replace-running  a fresh root may replace a cloud another run left up on purpose
#                    (--keep-running); a root a killed run left is always stopped
#
# Environment:
#   DEVSTACK_DIR             upstream DevStack (default ../shared/vendor/devstack)
#   TCLOUDS_REQUIREMENTS_DIR openstack/requirements files (default
#                            ../shared/vendor/openstack-requirements)
#   TCLOUDS_DEVSTACK_CACHE   caches (default /var/cache/tclouds-devstack): base root tarball,
#                            apt archives, pip cache, sdist repositories, keyed by versions
#   TCLOUDS_DEVSTACK_LOGS    logs (default /var/log/tclouds-devstack/<run>), kept per run
#   TCLOUDS_DEVSTACK_LOCAL_CONF_EXTRA  file appended to local.conf's localrc section
#   TCLOUDS_DEVSTACK_COMPUTES  number of fake compute hosts (default 2)
#
# Exit 0 only if every phase passed. Each phase's time and outcome is printed, written to
# <logs>/summary.txt and appended to <logs>/../runs.tsv.
set -euo pipefail

TOP=${TCLOUDS_DEVSTACK_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
HERE=$TOP/tools/devstack
DEVSTACK_DIR=${DEVSTACK_DIR:-$TOP/../shared/vendor/devstack}
REQ_DIR=${TCLOUDS_REQUIREMENTS_DIR:-$TOP/../shared/vendor/openstack-requirements}
export TCLOUDS_DEVSTACK_CACHE=${TCLOUDS_DEVSTACK_CACHE:-/var/cache/tclouds-devstack}
export TCLOUDS_DEVSTACK_STATE=${TCLOUDS_DEVSTACK_STATE:-/var/lib/tclouds-devstack}
LOG_BASE=${TCLOUDS_DEVSTACK_LOGS:-/var/log/tclouds-devstack}
COMPUTES=${TCLOUDS_DEVSTACK_COMPUTES:-2}
ROOT=$TCLOUDS_DEVSTACK_STATE/root
IROOT=$HERE/isolated-root.sh

worktree=0 keep_root=0 keep_running=0 tempest=1 plugin=1 clean=1 rerun=0 replace_running=0
for arg in "$@"; do
    case $arg in
        --worktree) worktree=1 ;;
        --keep-root) keep_root=1 ;;
        --keep-running) keep_running=1 ;;
        --no-tempest) tempest=0 ;;
        --no-plugin) plugin=0 ;;
        --no-clean) clean=0 ;;
        --rerun) rerun=1 ;;
        --replace-running) replace_running=1 ;;
        *) sed -n '2,32p' "$0" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "devstack-job: run as root (it builds a root file system)" >&2; exit 1; }
[[ -x $DEVSTACK_DIR/stack.sh ]] || { echo "devstack-job: no DevStack at $DEVSTACK_DIR" >&2; exit 1; }
[[ -f $REQ_DIR/upper-constraints.txt ]] || {
    echo "devstack-job: no upper-constraints.txt in $REQ_DIR" >&2; exit 1; }

# One job at a time on a machine (they share the root and the network namespace name);
# -o: the cloud left running by --keep-running does not keep holding the lock. The job runs
# from a copy of this script, so editing the checkout meanwhile cannot change it mid-run.
if [[ -z ${TCLOUDS_DEVSTACK_LOCKED:-} ]]; then
    mkdir -p "$TCLOUDS_DEVSTACK_CACHE" "$TCLOUDS_DEVSTACK_STATE"
    cp "$0" "$TCLOUDS_DEVSTACK_STATE/devstack-job.sh"
    TCLOUDS_DEVSTACK_LOCKED=1 TCLOUDS_DEVSTACK_TOP=$TOP exec flock -n -o -E 75 \
        "$TCLOUDS_DEVSTACK_CACHE/job.lock" bash "$TCLOUDS_DEVSTACK_STATE/devstack-job.sh" "$@"
fi

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
LOGS=$LOG_BASE/$RUN_ID
mkdir -p "$LOGS"
exec > >(tee -a "$LOGS/job.log") 2>&1
echo "devstack-job: run $RUN_ID, logs in $LOGS"
echo "devstack-job: load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"


declare -a PHASES=()
STATUS=0
JOB_START=$(date +%s)

# CPU seconds used so far by the job, into CPU_NOW: what it ran and reaped (bash's
# "times": stack.sh, Tempest, ...) plus what runs or ran inside the root (its daemons).
# Wall time depends on the machine's load; CPU time says what the job costs on an idle
# machine. Not called in a $(...) subshell: a forked shell's "times" starts from zero.
cpu_seconds() {
    local tfile root
    tfile=$(mktemp)
    times >"$tfile"
    root=$("$IROOT" cpu 2>/dev/null || echo 0)
    CPU_NOW=$(python3 - "$tfile" "$root" <<'PY'
import re
import sys
children = open(sys.argv[1]).read().splitlines()[-1]
total = sum(int(m) * 60 + float(s) for m, s in re.findall(r'(\d+)m([\d.]+)s', children))
print('%.0f' % (total + float(sys.argv[2])))
PY
)
    rm -f "$tfile"
}

# phase <name> <command...>: run, time and record; a failed phase fails the job.
phase() {
    local name=$1 start rc cpu0 cpu
    shift
    echo "== phase $name: start $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
    start=$(date +%s)
    cpu_seconds
    cpu0=$CPU_NOW
    set +e
    ( set -e; "$@" )
    rc=$?
    set -e
    cpu_seconds
    cpu=$(( CPU_NOW - cpu0 ))
    PHASES+=("$name $(( $(date +%s) - start ))s cpu=${cpu}s rc=$rc")
    echo "== phase $name: rc=$rc after $(( $(date +%s) - start ))s, ${cpu} CPU-s," \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
    if (( rc != 0 )); then
        STATUS=1
    fi
    return $rc
}

finish() {
    local rc=$? outcome=PASS
    # the job itself failing (not a phase) fails it too
    if (( rc != 0 )); then
        STATUS=1
    fi
    if (( STATUS != 0 )); then
        outcome=FAIL
    fi
    collect_logs || true
    if (( keep_running == 0 )); then
        "$IROOT" stop || true
    fi
    {
        echo "run $RUN_ID: $outcome in $(( $(date +%s) - JOB_START ))s"
        printf '  %s\n' "${PHASES[@]}"
        echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$LOGS/summary.txt"
    printf '%s\t%s\t%ss\t%s\n' "$RUN_ID" "$outcome" "$(( $(date +%s) - JOB_START ))" \
        "$(IFS=';'; echo "${PHASES[*]}")" >>"$LOG_BASE/runs.tsv"
    echo "devstack-job: logs in $LOGS"
    # A complete pass of the committed tree: CI need not run the job again for it.
    if (( STATUS == 0 && !worktree && plugin && tempest && clean && !keep_running )); then
        "$HERE/ci-gate.sh" record "$RUN_ID"
    fi
    if (( keep_running )); then
        echo "$RUN_ID" >"$TCLOUDS_DEVSTACK_STATE/kept-running"
        echo "devstack-job: the cloud is running; enter it with: $IROOT shell"
        echo "devstack-job: stop it with: $IROOT stop"
    fi
}

in_root() { "$IROOT" exec "$@"; }
as_stack() { "$IROOT" exec su - stack -c "$*"; }

prepare_host() {
    # What an earlier run left behind must not fail this one: a root still running (a
    # killed job, or --keep-running) is stopped unless this run re-uses it (--keep-root)
    # or it was left up on purpose; half-built caches of a killed build are removed (the
    # job lock is held: nobody else builds).
    if "$IROOT" status >/dev/null 2>&1 && (( ! keep_root )); then
        if [[ -f $TCLOUDS_DEVSTACK_STATE/kept-running ]] && (( ! replace_running )); then
            echo "devstack-job: the cloud of run $(cat "$TCLOUDS_DEVSTACK_STATE/kept-running")" \
                "was left running on purpose: stop it ($IROOT stop) or pass --replace-running"
            return 1
        fi
        echo "devstack-job: stopping the root an earlier run left running"
        "$IROOT" stop
    fi
    rm -rf "$TCLOUDS_DEVSTACK_CACHE"/.root-build-* "$TCLOUDS_DEVSTACK_CACHE"/repos/.build-*
    "$IROOT" build >/dev/null
    "$HERE/host-check.sh" | grep -v -e '^network namespaces:' -e '^mounts of the root:' \
        >"$LOGS/host-before.txt"
}

prepare_sources() {
    local git_base branch
    git_base=$("$HERE/build-repos.sh" "$HERE/versions" "$REQ_DIR" "$TCLOUDS_DEVSTACK_CACHE")
    if (( keep_root )); then
        "$IROOT" create --keep
    else
        "$IROOT" create
    fi
    "$IROOT" start
    # DevStack itself (stack.sh writes beside itself), the service repositories, and this
    # checkout as a repository DevStack clones like any plugin.
    rm -rf "$ROOT/opt/stack/devstack" "$ROOT/opt/tclouds-devstack"
    if (( keep_root )); then
        # RECLONE=False keeps what is cloned: drop the clones that are not what this run
        # deploys (the plugin always, the services when their versions changed).
        rm -rf "$ROOT/opt/stack/tclouds-openstack"
        local repo name
        for repo in "$git_base"/openstack/*.git; do
            name=$(basename "$repo" .git)
            if [[ -d $ROOT/opt/stack/$name/.git && "$(git -c safe.directory="*" -C "$ROOT/opt/stack/$name" rev-parse HEAD)" != \
                "$(git -C "$repo" rev-parse master)" ]]; then
                rm -rf "${ROOT:?}/opt/stack/$name"
            fi
        done
    fi
    mkdir -p "$ROOT/opt/tclouds-devstack/git" "$ROOT/opt/tclouds-devstack/images"
    head -c 1048576 /dev/urandom >"$ROOT/opt/tclouds-devstack/images/tclouds-fake-disk.raw"
    cp -a "$DEVSTACK_DIR" "$ROOT/opt/stack/devstack"
    cp -a "$git_base/openstack" "$ROOT/opt/tclouds-devstack/git/"
    if (( worktree )); then
        "$HERE/snapshot.sh" "$TOP" worktree "$ROOT/opt/tclouds-devstack/git/tclouds-openstack.git"
    else
        "$HERE/snapshot.sh" "$TOP" head "$ROOT/opt/tclouds-devstack/git/tclouds-openstack.git"
    fi
    chown -R 1000:1000 "$ROOT/opt/stack/devstack" "$ROOT/opt/tclouds-devstack"
    chmod -R u+w "$ROOT/opt/stack/devstack"
    write_local_conf >"$ROOT/opt/stack/devstack/local.conf"
    chown 1000:1000 "$ROOT/opt/stack/devstack/local.conf"
    cp "$ROOT/opt/stack/devstack/local.conf" "$LOGS/local.conf"
}

write_local_conf() {
    local password swift_hash plugin_line="" tempest_service="" extra=""
    # Secrets of a throw-away cloud that lives in its own root and network namespace;
    # kept in the root's local.conf for those who enter it.
    password=$(cat "$TCLOUDS_DEVSTACK_STATE/password" 2>/dev/null || true)
    if [[ -z $password ]]; then
        password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
        (umask 077; echo "$password" >"$TCLOUDS_DEVSTACK_STATE/password")
    fi
    swift_hash=$(echo "$password" | sha256sum | cut -c1-32)
    if (( plugin )); then
        plugin_line="enable_plugin tclouds-openstack file:///opt/tclouds-devstack/git/tclouds-openstack.git master"
    fi
    if (( tempest )); then
        tempest_service="enable_service tempest"
    fi
    if [[ -n ${TCLOUDS_DEVSTACK_LOCAL_CONF_EXTRA:-} ]]; then
        extra=$(cat "$TCLOUDS_DEVSTACK_LOCAL_CONF_EXTRA")
    fi
    python3 - "$HERE/local.conf.in" <<EOF
import sys
text = open(sys.argv[1]).read()
for key, value in {
        'PASSWORD': '$password', 'SWIFT_HASH': '$swift_hash',
        'GIT_BASE': '/opt/tclouds-devstack/git', 'HOSTNAME': 'devstack',
        'COMPUTES': '$COMPUTES', 'PLUGIN': '''$plugin_line''',
        'TEMPEST_SERVICE': '$tempest_service',
        'INSTALL_TEMPEST': '$( (( tempest )) && echo True || echo False)',
        'EXTRA': '''$extra'''}.items():
    text = text.replace('@%s@' % key, value)
sys.stdout.write(text)
EOF
}

stack() {
    # A kept root may hold an install a stopped run interrupted.
    if (( keep_root )); then
        in_root env DEBIAN_FRONTEND=noninteractive dpkg --configure -a </dev/null
    fi
    as_stack "cd /opt/stack/devstack && ./stack.sh" </dev/null
}

post_deploy_check() {
    as_stack "/opt/stack/tclouds-openstack/devstack/tools/check-deployment.sh" </dev/null
}

run_tempest() {
    as_stack "/opt/stack/tclouds-openstack/devstack/tools/run-tempest.sh" </dev/null
}

unstack_and_clean() {
    as_stack "cd /opt/stack/devstack && ./unstack.sh -a && ./clean.sh" </dev/null
    # No OpenStack or tclouds process may be left (they are Python, uwsgi or swtpm; the
    # system's apache and memcached are DevStack's to keep).
    local left
    left=$(in_root ps -eo pid=,args= | grep -E 'python|uwsgi|swtpm' | grep -v -E 'systemctl3|grep' \
        || true)
    if [[ -n $left ]]; then
        echo "devstack-job: still running after unstack.sh -a + clean.sh:"
        echo "$left"
        return 1
    fi
}

check_host() {
    local after
    after=$("$HERE/host-check.sh")
    grep -v -e '^network namespaces:' -e '^mounts of the root:' <<<"$after" \
        >"$LOGS/host-after.txt"
    if ! diff -u "$LOGS/host-before.txt" "$LOGS/host-after.txt"; then
        echo "devstack-job: this machine changed during the job (see the diff above)"
        return 1
    fi
    # the root stopped: nothing of it is left (its namespaces, its mounts)
    if ! grep -qx 'network namespaces: 0' <<<"$after" || \
        ! grep -qx 'mounts of the root: 0' <<<"$after"; then
        echo "devstack-job: the stopped root left something behind:"
        grep -e '^network namespaces:' -e '^mounts of the root:' <<<"$after"
        return 1
    fi
    echo "devstack-job: this machine's services and files are as they were"
}

collect_logs() {
    [[ -d $ROOT/opt/stack/logs ]] || return 0
    mkdir -p "$LOGS/root"
    cp -a "$ROOT/opt/stack/logs" "$LOGS/root/" 2>/dev/null || true
    cp -a "$ROOT/var/log/journal" "$LOGS/root/journal" 2>/dev/null || true
    local d
    for d in nova cinder swift keystone glance neutron placement tclouds tempest; do
        [[ -d $ROOT/etc/$d ]] && cp -a "$ROOT/etc/$d" "$LOGS/root/etc-$d" 2>/dev/null
    done
    cp -a "$ROOT/opt/stack/tempest/etc/tempest.conf" "$ROOT/opt/stack/tempest/tempest-"*.txt \
        "$ROOT/opt/stack/tempest/tempest-"*.subunit "$LOGS/root/" 2>/dev/null || true
    # Secrets stay in the root: the passwords in the copied configuration are redacted.
    find "$LOGS/root" -type f \( -name '*.conf' -o -name '*.ini' \) -print0 2>/dev/null \
        | xargs -0 -r sed -i -E 's/^((password|.*_passwords?|.*transport_url|connection|.*_key) *=).*/\1 <redacted>/' \
        2>/dev/null || true
    chmod -R go-rwx "$LOGS"
}

trap finish EXIT
phase host-prepare prepare_host
phase sources prepare_sources
phase stack.sh stack
if (( plugin )); then
    phase post-deploy-check post_deploy_check || true
fi
if (( tempest )); then
    phase tempest run_tempest || true
fi
if (( rerun )); then
    phase stack.sh-again stack || true
    if (( plugin )); then
        phase post-deploy-check-again post_deploy_check || true
    fi
fi
# clean.sh removes the services' logs: keep them first
collect_logs || true
if (( clean && ! keep_running )); then
    phase unstack+clean unstack_and_clean || true
fi
if (( ! keep_running )); then
    "$IROOT" stop
    phase host-unchanged check_host || true
fi
exit $STATUS
