#!/bin/bash
# The TClouds scenarios on a deployed cloud, as its tenants with the standard CLIs:
#
#   tools/scenario.sh healthcare [options]    a hospital: trusted EU hosts, encrypted
#                                             volume, EU-only cloud-of-clouds documents, a
#                                             compromised host, the auditor's offline check
#   tools/scenario.sh lighting [options]      an energy utility: a lighting-control service
#                                             on cloud-of-clouds state while a storage cloud
#                                             goes away, another corrupts data and a compute
#                                             host fails attestation
#   tools/scenario.sh <scenario> --dry-run    the steps and expected outcomes, nothing run
#   tools/scenario.sh <scenario> --help       every option
#
# Exit 0 only when every expected outcome was observed and the run's HTML report passed
# the headless Chromium check; the run's files (observations.json, transcript.json, the
# project's report, report.html, report.png) go to --output (default
# scenario-runs/<run id>). See doc/source/scenarios.rst.
#
# On a DevStack node (tools/devstack-job.sh --keep-running; run this inside the isolated
# root, e.g. tools/devstack/isolated-root.sh exec su - stack -c '.../tools/scenario.sh
# healthcare'), the defaults come from the deployment: DevStack's Python
# (/etc/tclouds/devstack.env), the admin cloud devstack-admin of clouds.yaml, Tempest's
# [tclouds] options (which DevStack's test-config phase writes, with the secure log's
# public key securelog_vkey_file). Elsewhere give --cloud (or OS_* variables),
# --tempest-config and --log-vkey.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)

PY=${TCLOUDS_PYTHON:-}
extra=()
if [[ -r /etc/tclouds/devstack.env ]]; then
    # shellcheck disable=SC1091
    source /etc/tclouds/devstack.env
    PY=${PY:-${TCLOUDS_PYTHON:-}}
    export OS_CLOUD=${OS_CLOUD:-devstack-admin}
    if [[ -z "${TEMPEST_CONFIG:-}" && -r /opt/stack/tempest/etc/tempest.conf ]]; then
        export TEMPEST_CONFIG=/opt/stack/tempest/etc/tempest.conf
    fi
    # the log's public key: tempest.conf [tclouds] securelog_vkey_file (devstack/lib/securelog)
    if [[ -n "${TCLOUDS_LOG_VKEY:-}" && " $* " != *" --log-vkey "* ]]; then
        extra+=(--log-vkey "$TCLOUDS_LOG_VKEY")
    fi
fi
if [[ -z "$PY" ]]; then
    if [[ " $* " == *" --dry-run "* || " $* " == *" --help "* || " $* " == *" -h "* ]]; then
        PY=$("$TOP/tools/bootstrap.sh" --venv)/bin/python
        [[ -x "$PY" ]] || PY=python3
    else
        "$TOP/tools/bootstrap.sh" test >&2
        PY=$("$TOP/tools/bootstrap.sh" --venv)/bin/python
    fi
fi
# This checkout's scenarios, whatever version of the package the Python has installed (in
# the driver only: the openstack CLI it runs keeps the installed plugin).
exec "$PY" -c 'import sys; sys.path.insert(0, sys.argv.pop(1))
from tclouds_openstack.scenarios.__main__ import main
sys.exit(main())' "$TOP" "$@" "${extra[@]}"
