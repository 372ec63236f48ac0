#!/bin/bash
# An isolated Debian 12 root for DevStack: its own file system tree, mount, PID, UTS, IPC and
# network namespaces, so that stack.sh can install and reconfigure MariaDB, RabbitMQ, apache,
# memcached and /etc/* as it likes without touching this machine's own services.
#
# usage: isolated-root.sh build           debootstrap the base root (cached tarball)
#        isolated-root.sh create [--keep]  lay the working root from the cached tarball
#                                          (--keep: reuse the existing working root)
#        isolated-root.sh start            start the namespaces (init = tini, PID 1 inside)
#        isolated-root.sh exec CMD...      run CMD inside as root (stdin/stdout passed)
#        isolated-root.sh shell            an interactive shell inside as user stack
#        isolated-root.sh stop             end every process inside and the namespaces
#        isolated-root.sh destroy          stop, then delete the working root
#        isolated-root.sh status
#        isolated-root.sh cpu             CPU seconds used inside so far (every process of
#                                          the root's PID namespace, with what it reaped)
#
# Network: a network namespace whose only links are loopback and a slirp4netns tap
# (user-space NAT, no iptables rule or sysctl changed on this machine, host loopback not
# reachable), so the root reaches the package registries but none of this machine's
# listening services; services inside bind 127.0.0.1 of their own namespace.
#
# Environment: TCLOUDS_DEVSTACK_CACHE (default /var/cache/tclouds-devstack): base root
# tarballs, apt archives and pip cache; TCLOUDS_DEVSTACK_STATE (default
# /var/lib/tclouds-devstack): the working root and the ids of the running namespaces.
set -euo pipefail

CACHE=${TCLOUDS_DEVSTACK_CACHE:-/var/cache/tclouds-devstack}
STATE=${TCLOUDS_DEVSTACK_STATE:-/var/lib/tclouds-devstack}
ROOT=$STATE/root
NETNS=${TCLOUDS_DEVSTACK_NETNS:-tclouds-devstack}
HOSTNAME_INSIDE=${TCLOUDS_DEVSTACK_HOSTNAME:-devstack}
SUITE=bookworm
MIRROR=${TCLOUDS_DEVSTACK_MIRROR:-http://deb.debian.org/debian}
SYSTEMCTL_REPLACEMENT=docker-systemctl-replacement==1.7.1097
# Packages of the base root: what DevStack expects before it starts, plus tini (PID 1).
INCLUDE=sudo,git,lsb-release,ca-certificates,python3,python3-venv,iproute2,procps,curl,psmisc,gnupg,locales,tini,iputils-ping,net-tools,xfsprogs,kmod
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "isolated-root: $*" >&2; exit 1; }

# The cache key of the base root: suite, package list, and how it is prepared (this file).
_base_key() {
    (echo "$SUITE $MIRROR $INCLUDE $SYSTEMCTL_REPLACEMENT"; cat "$HERE/root-prepare.sh") \
        | sha256sum | cut -c1-16
}

host_prerequisites() {
    local missing=() cmd
    for cmd in debootstrap:debootstrap slirp4netns:slirp4netns zstd:zstd unshare:util-linux \
        nsenter:util-linux ip:iproute2; do
        command -v "${cmd%%:*}" >/dev/null || missing+=("${cmd#*:}")
    done
    if (( ${#missing[@]} )); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
}

cmd_build() {
    host_prerequisites
    local key tarball build
    key=$(_base_key)
    tarball=$CACHE/root-$SUITE-$key.tar.zst
    if [[ -f $tarball ]]; then
        echo "$tarball"
        return 0
    fi
    mkdir -p "$CACHE/apt-archives/partial" "$CACHE/pip" "$CACHE/wheels"
    build=$(mktemp -d "$CACHE/.root-build-XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$build'" EXIT
    echo "isolated-root: debootstrap $SUITE into $build" >&2
    debootstrap --variant=minbase --include="$INCLUDE" \
        --cache-dir="$CACHE/apt-archives" "$SUITE" "$build/root" "$MIRROR" >&2
    pip download -q --no-deps -d "$CACHE/wheels" "$SYSTEMCTL_REPLACEMENT" >&2
    cp "$CACHE"/wheels/docker_systemctl_replacement-*.whl "$build/root/tmp/"
    cp "$HERE/root-prepare.sh" "$build/root/tmp/root-prepare.sh"
    unshare --mount --propagation private bash -c "
        mount -t proc proc '$build/root/proc'
        chroot '$build/root' /bin/bash /tmp/root-prepare.sh
        umount '$build/root/proc'" >&2
    rm -f "$build/root"/tmp/*.whl "$build/root/tmp/root-prepare.sh"
    rm -rf "$build/root"/var/cache/apt/archives/*.deb "$build/root"/var/lib/apt/lists/*
    tar -C "$build/root" --numeric-owner -cf - . | zstd -q -T0 -o "$tarball.part"
    mv "$tarball.part" "$tarball"
    # the caches of other preparations are stale now
    find "$CACHE" -maxdepth 1 -name "root-$SUITE-*.tar.zst" ! -name "$(basename "$tarball")" -delete
    rm -rf "$build"
    trap - EXIT
    echo "$tarball"
}

_running_pid() {
    local pid
    [[ -f $STATE/init.pid ]] || return 1
    pid=$(cat "$STATE/init.pid")
    [[ -d /proc/$pid ]] || return 1
    [[ "$(readlink "/proc/$pid/ns/net")" == \
       "$(ip netns exec "$NETNS" readlink /proc/self/ns/net 2>/dev/null)" ]] || return 1
    echo "$pid"
}

cmd_create() {
    local tarball
    if [[ ${1:-} == --keep && -x $ROOT/bin/bash ]]; then
        echo "isolated-root: keeping $ROOT" >&2
        return 0
    fi
    _running_pid >/dev/null && die "a root is running; stop it first"
    tarball=$(cmd_build)
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    zstd -q -d -c "$tarball" | tar -C "$ROOT" --numeric-owner -xf -
}

# Mounts of the root, done by PID 1 of the new namespaces before it chroots (see _init).
_init_script() {
    cat <<EOF
set -e
mount --make-rprivate /
mount --bind '$ROOT' '$ROOT'
mount -t proc proc '$ROOT/proc'
mount -t sysfs sysfs '$ROOT/sys'
mount --rbind /dev '$ROOT/dev'
mount -t tmpfs -o mode=1777 shm '$ROOT/dev/shm'
mount -t tmpfs -o mode=755 run '$ROOT/run'
# what systemd's tmpfiles would create at boot (/run/lock for apache, ...)
install -d -m 1777 '$ROOT/run/lock'
if [ -x '$ROOT/usr/bin/systemd-tmpfiles' ]; then
    chroot '$ROOT' /usr/bin/systemd-tmpfiles --create >/dev/null 2>&1 || true
fi
mkdir -p '$ROOT/var/cache/apt/archives' '$ROOT/root/.cache/pip' '$ROOT/opt/stack/.cache/pip'
mount --bind '$CACHE/apt-archives' '$ROOT/var/cache/apt/archives'
mount --bind '$CACHE/pip' '$ROOT/root/.cache/pip'
mount --bind '$CACHE/pip-stack' '$ROOT/opt/stack/.cache/pip'
hostname '$HOSTNAME_INSIDE'
ip link set lo up
exec chroot '$ROOT' /usr/bin/tini -s -- /bin/sleep infinity
EOF
}

# The registries may be reached through a TLS-inspecting proxy whose CA only this machine's
# bundle holds: give the root the same trust (system bundle and pip).
_host_trust() {
    local bundle=${TCLOUDS_DEVSTACK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
    [[ -f $bundle ]] || return 0
    mkdir -p "$ROOT/usr/local/share/ca-certificates/host"
    rm -f "$ROOT"/usr/local/share/ca-certificates/host/*.crt
    awk -v dir="$ROOT/usr/local/share/ca-certificates/host" '
        /BEGIN CERTIFICATE/ { n++; f = sprintf("%s/host-%03d.crt", dir, n) }
        f { print > f }
        /END CERTIFICATE/ { close(f); f = "" }' "$bundle"
    chroot "$ROOT" update-ca-certificates >/dev/null 2>&1
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$ROOT/etc/pip.conf"
}

cmd_start() {
    local pid slirp
    host_prerequisites
    if pid=$(_running_pid); then
        echo "isolated-root: already running (init pid $pid)" >&2
        return 0
    fi
    [[ -x $ROOT/usr/bin/tini ]] || die "no root at $ROOT: run '$0 create' first"
    mkdir -p "$STATE"
    ip netns del "$NETNS" 2>/dev/null || true
    ip netns add "$NETNS"
    # user-space NAT for the registries; --disable-host-loopback: this machine's
    # 127.0.0.1 services (MariaDB, RabbitMQ, ...) stay out of reach from inside.
    slirp4netns --configure --mtu=65520 --disable-host-loopback \
        --netns-type=path "/run/netns/$NETNS" tap0 >"$STATE/slirp4netns.log" 2>&1 &
    slirp=$!
    echo "$slirp" >"$STATE/slirp.pid"
    _host_trust
    install -m 755 "$HERE/systemctl-shim" "$ROOT/usr/bin/systemctl"
    printf 'nameserver 10.0.2.3\n' >"$ROOT/etc/resolv.conf"
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$HOSTNAME_INSIDE" >"$ROOT/etc/hosts"
    echo "$HOSTNAME_INSIDE" >"$ROOT/etc/hostname"
    # pip's caches: root's (DevStack's sudo pip) and the stack user's (tox, Tempest).
    mkdir -p "$CACHE/pip" "$CACHE/pip-stack" "$CACHE/apt-archives/partial"
    chown "$(stat -c %u:%g "$ROOT/opt/stack")" "$CACHE/pip-stack"
    _init_script >"$STATE/init.sh"
    # setsid: the namespaces outlive this shell (and the job that started them).
    setsid ip netns exec "$NETNS" unshare --mount --uts --ipc --pid --fork \
        --propagation private bash "$STATE/init.sh" >"$STATE/init.log" 2>&1 </dev/null &
    # PID 1 of the new PID namespace (tini) is found by its network namespace.
    local netid p
    netid=$(ip netns exec "$NETNS" readlink /proc/self/ns/net)
    pid=""
    for _ in $(seq 1 600); do
        for p in $(pgrep -x tini || true); do
            [[ $(readlink "/proc/$p/ns/net" 2>/dev/null) == "$netid" ]] && pid=$p
        done
        [[ -n $pid ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || { cat "$STATE/init.log" >&2; die "the root did not start"; }
    echo "$pid" >"$STATE/init.pid"
    for _ in $(seq 1 100); do
        cmd_exec ip -4 addr show tap0 2>/dev/null | grep -q 'inet ' && break
        sleep 0.1
    done
    echo "isolated-root: running, init pid $pid, network namespace $NETNS" >&2
}

cmd_exec() {
    local pid
    pid=$(_running_pid) || die "not running"
    nsenter -t "$pid" -m -u -i -n -p -r -w -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

cmd_shell() {
    cmd_exec su - stack
}

cmd_stop() {
    local pid
    if pid=$(_running_pid); then
        # PID 1 of the namespace gone = the kernel ends every process inside.
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [[ -f $STATE/slirp.pid ]]; then
        kill "$(cat "$STATE/slirp.pid")" 2>/dev/null || true
        rm -f "$STATE/slirp.pid"
    fi
    ip netns del "$NETNS" 2>/dev/null || true
    rm -f "$STATE/init.pid" "$STATE/kept-running"
}

cmd_destroy() {
    cmd_stop
    rm -rf "$ROOT"
}

cmd_status() {
    local pid
    if pid=$(_running_pid); then
        echo "running: init pid $pid, root $ROOT, network namespace $NETNS"
    else
        echo "not running (root $ROOT $( [[ -d $ROOT ]] && echo exists || echo absent))"
        return 1
    fi
}

# The processes of the root's PID namespace: their user+system time and that of the
# children they reaped (daemons are reaped by PID 1, tini). What ran through "exec" and
# ended is accounted to the caller's children instead (bash's "times").
cmd_cpu() {
    local pid
    pid=$(_running_pid) || { echo 0; return 0; }
    python3 - "$pid" <<'PY'
import os
import sys

ns = os.readlink('/proc/%s/ns/pid' % sys.argv[1])
ticks = 0
for name in os.listdir('/proc'):
    if not name.isdigit():
        continue
    try:
        if os.readlink('/proc/%s/ns/pid' % name) != ns:
            continue
        with open('/proc/%s/stat' % name) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        continue
    ticks += sum(int(v) for v in fields[11:15])   # utime stime cutime cstime
print('%.1f' % (ticks / os.sysconf('SC_CLK_TCK')))
PY
}

[[ $(id -u) == 0 ]] || die "run as root"
sub=${1:-}
shift || true
case $sub in
    build) cmd_build ;;
    create) cmd_create "$@" ;;
    start) cmd_start ;;
    exec) cmd_exec "$@" ;;
    shell) cmd_shell ;;
    stop) cmd_stop ;;
    destroy) cmd_destroy ;;
    status) cmd_status ;;
    cpu) cmd_cpu ;;
    *) sed -n '2,32p' "$0" >&2; exit 2 ;;
esac
