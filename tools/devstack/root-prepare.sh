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
# packages' unit files and runs them.
# dpkg-divert: the systemd package DevStack pulls in installs its own systemctl and
# journalctl beside ours (.distrib) instead of over them (/bin is /usr/bin).
for f in /usr/bin/systemctl /bin/systemctl /usr/bin/journalctl /bin/journalctl; do
    dpkg-divert --local --no-rename --divert "$f.distrib" --add "$f" >/dev/null
done
python3 -m venv /opt/systemctl
/opt/systemctl/bin/pip install -q --no-index /tmp/docker_systemctl_replacement-*.whl
# /usr/bin/systemctl itself (tools/devstack/systemctl-shim) is installed at each start.
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
