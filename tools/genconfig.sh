#!/bin/bash
# Regenerate etc/tclouds/tclouds.conf.sample from the options in tclouds_openstack/conf/,
# or with --check fail when the committed sample is not current.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
GEN="oslo-config-generator"
[ -x .venv/bin/oslo-config-generator ] && GEN=.venv/bin/oslo-config-generator
if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    "$GEN" --config-file etc/tclouds/config-generator.conf --output-file "$tmp"
    if ! diff -u etc/tclouds/tclouds.conf.sample "$tmp"; then
        echo "etc/tclouds/tclouds.conf.sample is out of date: run tools/genconfig.sh" >&2
        exit 1
    fi
else
    "$GEN" --config-file etc/tclouds/config-generator.conf
fi
