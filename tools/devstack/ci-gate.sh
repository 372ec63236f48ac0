#!/bin/bash
# Whether CI must run the DevStack job: yes when what it deploys (devstack/, the job, the
# code OpenStack services load: Nova/Cinder/Swift plugins, the key manager, the WSGI
# entry points, the Tempest plugin, requirements) differs from every tree that passed the
# job on this machine.
# usage: ci-gate.sh key          print the key of the checkout's HEAD
#        ci-gate.sh check        exit 0 = run the job, 1 = it passed before (says which run)
#        ci-gate.sh record RUN   remember that HEAD's key passed in run RUN
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${TCLOUDS_DEVSTACK_CACHE:-/var/cache/tclouds-devstack}
PATHS=(devstack tools/devstack-job.sh tools/devstack requirements.txt setup.cfg)
PATHS+=(tclouds_openstack/nova tclouds_openstack/cinder tclouds_openstack/swift)
PATHS+=(tclouds_openstack/keymgr tclouds_openstack/wsgi tclouds_openstack/tests/tempest)
PATHS+=(tclouds_openstack/securelog/driver.py)

key() {
    local p
    for p in "${PATHS[@]}"; do
        echo "$p $(git -C "$TOP" rev-parse -q --verify "HEAD:$p" || echo absent)"
    done | sha256sum | cut -c1-16
}

case ${1:-} in
    key) key ;;
    check)
        k=$(key)
        if [[ -f $CACHE/passed/$k ]]; then
            echo "DevStack job: this tree's DevStack integration ($k) passed in run $(cat "$CACHE/passed/$k")"
            exit 1
        fi
        echo "DevStack job: integration $k has not passed on this machine yet"
        ;;
    record)
        mkdir -p "$CACHE/passed"
        echo "${2:?run id}" >"$CACHE/passed/$(key)"
        ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
