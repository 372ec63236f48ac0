#!/bin/bash
# Post-deployment check of a DevStack cloud with the tclouds-openstack plugin (see
# check-deployment.py): run as the DevStack user after stack.sh. The plugin wrote what it
# deployed (capabilities, compute hosts) to /etc/tclouds/devstack.env.
set -euo pipefail
ENV_FILE=${TCLOUDS_DEVSTACK_ENV:-/etc/tclouds/devstack.env}
[[ -r $ENV_FILE ]] || { echo "check-deployment: no $ENV_FILE (did stack.sh run the plugin?)" >&2; exit 1; }
# shellcheck disable=SC1090
source "$ENV_FILE"
export OS_CLOUD=${OS_CLOUD:-devstack-admin}
exec "$TCLOUDS_PYTHON" "$(dirname "$0")/check-deployment.py" \
    --capabilities "$TCLOUDS_ENABLED_CAPABILITIES" --hosts "$TCLOUDS_DEPLOYED_HOSTS" \
    --hostname "$TCLOUDS_HOSTNAME" "$@"
