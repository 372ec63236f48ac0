#!/bin/bash
# Run a command on a machine that looks like one where tclouds-openstack and the OpenStack
# services are installed with broken configuration: garbage in /etc/tclouds/tclouds.conf,
# /etc/nova/nova.conf, ... (see below), while nothing changes for any other process.
# The suite and the benchmarks must give the same results with and without it: no test
# reads machine configuration (tests/conftest.py guards it).
#
#   tools/with-machine-config.sh tools/run-tests.sh --suite
#   tools/with-machine-config.sh --plausible .venv/bin/python -m benchmarks scheduling --quick
#
# Garbage by default; --plausible writes what DevStack would (valid files pointing at services
# that do not exist here). How: a private mount namespace (unshare) in which /etc and $HOME
# are overlays whose upper layer holds the files; needs root (CAP_SYS_ADMIN).
set -euo pipefail
MODE=garbage
if [ "${1:-}" = --plausible ]; then
    MODE=plausible
    shift
fi
if [ $# -eq 0 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
SERVICES="tclouds nova cinder keystone swift glance placement"
WORK=$(mktemp -d /tmp/tclouds-machine-config.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export WORK MODE SERVICES
unshare --mount --propagation private bash -euo pipefail -c '
overlay() {     # overlay DIR NAME: DIR shows its own files plus what we write into it
    mkdir -p "$WORK/$2/upper" "$WORK/$2/work"
    mount -t overlay overlay -o "lowerdir=$1,upperdir=$WORK/$2/upper,workdir=$WORK/$2/work" "$1"
}
content() {     # content SERVICE
    if [ "$MODE" = garbage ]; then
        printf "[DEFAULT\n\377\376 this is = = not an ini file\n[%s]\nhost =\n" "$1"
    else
        printf "[DEFAULT]\ndebug = True\ntransport_url = rabbit://%s:secret@192.0.2.1:5672/\n" "$1"
        printf "state_path = /opt/stack/data/%s\n[oslo_concurrency]\nlock_path = /opt/stack/data/%s\n" "$1" "$1"
        printf "[database]\nconnection = mysql+pymysql://root:secret@192.0.2.1/%s\n" "$1"
        printf "[keystone_authtoken]\nauth_url = http://192.0.2.1/identity\n"
        printf "[oslo_policy]\nenforce_scope = True\nenforce_new_defaults = True\n"
    fi
}
overlay /etc etc
overlay "$HOME" home
for s in $SERVICES; do
    for d in "/etc/$s" "$HOME/.$s"; do
        mkdir -p "$d/$s.conf.d" "$d/policy.d"
        content "$s" > "$d/$s.conf"
        content "$s" > "$d/$s.conf.d/00-machine.conf"
        content "$s" > "$d/policy.yaml"
        content "$s" > "$d/policy.d/00-machine.yaml"
    done
    content "$s" > "/etc/$s.conf"
done
content swift > /etc/swift/swift.conf
for f in proxy-server account-server container-server object-server internal-client \
        container-sync-realms; do
    content swift > "/etc/swift/$f.conf"
done
for f in api-paste.ini rootwrap.conf; do
    for s in nova cinder; do content "$s" > "/etc/$s/$f"; done
done
echo "with-machine-config: $MODE configuration in /etc/{${SERVICES// /,}} and ~/.{...} for: $*" >&2
exec "$@"
' with-machine-config "$@"
