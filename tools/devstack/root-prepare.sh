#!/bin/bash
# Runs once inside a freshly debootstrapped root (chroot), before it is cached as a tarball:
# the "stack" user DevStack runs as, systemctl, and the settings a Debian 12 machine has
# that a minimal root lacks.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# DevStack's user: home = DEST, passwordless sudo (what devstack/tools/create-stack-user.sh
# does).
useradd -s /bin/bash -d /opt/stack -m stack
chmod 755 /opt/stack
echo "stack ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/stack
chmod 440 /etc/sudoers.d/stack

# A Debian 12 machine has the updates and security suites too.
cat >/etc/apt/sources.list <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES

# The DevStack source and the plugin are bind-mounted repositories owned by another user.
git config --system --add safe.directory '*'

# systemd is not PID 1 in the root: docker-systemctl-replacement reads DevStack's and the
# packages' unit files and runs them. Our wrapper (systemctl-shim) answers "start" of an
# already active unit with success, as systemd does, so stack.sh can be run again.
# dpkg-divert: the systemd package DevStack pulls in installs its own systemctl and
# journalctl beside ours (.distrib) instead of over them (/bin is /usr/bin).
for f in /usr/bin/systemctl /bin/systemctl /usr/bin/journalctl /bin/journalctl; do
    dpkg-divert --local --no-rename --divert "$f.distrib" --add "$f" >/dev/null
done
python3 -m venv /opt/systemctl
/opt/systemctl/bin/pip install -q --no-index /tmp/docker_systemctl_replacement-*.whl
install -m 755 /dev/stdin /usr/bin/systemctl <<'SHIM'
#!/bin/bash
# systemctl for a root without systemd: docker-systemctl-replacement, plus systemd's
# answer (success) to "start" of a unit that is already running.
real=(/opt/systemctl/bin/python3 -m systemctl3)
# systemd's own daemons do not run here: DevStack's restart of journald is a no-op.
case "${1:-} ${2:-}" in
    "restart systemd-journald"|"restart systemd-journald.service") exit 0 ;;
esac
if [[ ${1:-} == start ]]; then
    shift
    rc=0
    for unit in "$@"; do
        [[ $unit == -* ]] && continue
        if "${real[@]}" is-active "$unit" >/dev/null 2>&1; then
            continue
        fi
        "${real[@]}" start "$unit" || rc=$?
    done
    exit $rc
fi
exec "${real[@]}" "$@"
SHIM
install -m 755 /dev/stdin /usr/bin/journalctl <<'SHIM'
#!/bin/bash
exec /opt/systemctl/bin/python3 -m systemctl2.journalctl3 "$@"
SHIM

# Daemons must not start from their packages' maintainer scripts (no systemd to ask, so
# invoke-rc.d would fall back to /etc/init.d): DevStack starts them through systemctl.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
sed -i 's/^# *\(en_US.UTF-8\)/\1/' /etc/locale.gen
locale-gen >/dev/null
