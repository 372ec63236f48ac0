#!/bin/bash
# DevStack plugin of tclouds-openstack.
# Enable with "enable_plugin tclouds-openstack <repository> [branch]" in local.conf.
# Each capability keeps its steps in devstack/lib/<capability> as functions named
# tclouds_<phase>_<capability>; devstack/lib/common holds what they share. This file only
# dispatches DevStack's phases to them, in the order of TCLOUDS_CAPABILITIES.
#
# When each phase runs, relative to the services it configures (stack.sh):
#   stack install      after every project is installed and configured, before Keystone
#                      starts: install, then "preconfigure" (what Keystone reads)
#   stack post-config  Keystone runs; Nova, Cinder, Swift, Glance are configured but not
#                      started: "configure" (their configuration files, our users/endpoints)
#   stack extra        every OpenStack service runs: "start" (our daemons), then "init"
#                      (appraisal policy, host enrolment, aggregates)
#   stack test-config  tempest.conf written: "test_config"
#   unstack / clean    "stop" / "clean"

_XTRACE_TCLOUDS=$(set +o | grep xtrace)
set -o xtrace

TCLOUDS_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$TCLOUDS_PLUGIN_DIR/lib/common"
for _tclouds_cap in $TCLOUDS_CAPABILITIES; do
    source "$TCLOUDS_PLUGIN_DIR/lib/$_tclouds_cap"
done

if tclouds_any_enabled; then
    case "$1/${2:-}" in
        stack/pre-install)
            tclouds_check_capabilities
            ;;
        stack/install)
            echo_summary "Installing tclouds-openstack"
            install_tclouds
            tclouds_run_hooks install
            configure_tclouds_base
            tclouds_run_hooks preconfigure
            ;;
        stack/post-config)
            echo_summary "Configuring tclouds-openstack"
            tclouds_run_hooks configure
            ;;
        stack/extra)
            echo_summary "Starting tclouds-openstack services"
            tclouds_run_hooks start
            tclouds_run_hooks init
            tclouds_write_deployment_env
            ;;
        stack/test-config)
            configure_tempest_tclouds
            tclouds_run_hooks test_config
            ;;
        unstack/*)
            tclouds_run_hooks stop
            ;;
        clean/*)
            tclouds_run_hooks clean
            cleanup_tclouds_base
            ;;
    esac
fi

$_XTRACE_TCLOUDS
