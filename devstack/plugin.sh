#!/bin/bash
# DevStack plugin for tclouds-openstack.
# Enable with "enable_plugin tclouds-openstack <repo> [branch]" in local.conf.
# Each capability keeps its steps in devstack/lib/<capability>; this file only dispatches.

TCLOUDS_PLUGIN_DIR=$(dirname "${BASH_SOURCE[0]}")
for lib in "$TCLOUDS_PLUGIN_DIR"/lib/*; do
    [ -f "$lib" ] && source "$lib"
done

function install_tclouds {
    # bindep.txt names the system packages (swtpm, tpm2-tools, libtss2-dev, ...).
    install_package swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config gcc
    setup_develop "$TCLOUDS_DIR"
}

function configure_tclouds {
    sudo install -d -o "$STACK_USER" "$TCLOUDS_CONF_DIR"
    oslo-config-generator --config-file "$TCLOUDS_DIR/etc/tclouds/config-generator.conf" \
        --output-file "$TCLOUDS_CONF"
    iniset "$TCLOUDS_CONF" tpm tcti "$TCLOUDS_TPM_TCTI"
}

# Capability hooks are functions named tclouds_<phase>_<capability>, defined in lib/*.
function _tclouds_run_hooks {
    local phase=$1 fn
    for fn in $(declare -F | awk '{print $3}' | grep "^tclouds_${phase}_"); do
        $fn
    done
}

if is_service_enabled tclouds; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing tclouds-openstack"
        install_tclouds
        _tclouds_run_hooks install
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring tclouds-openstack"
        configure_tclouds
        _tclouds_run_hooks configure
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting tclouds-openstack services"
        _tclouds_run_hooks start
    fi
    if [[ "$1" == "unstack" ]]; then
        _tclouds_run_hooks stop
    fi
    if [[ "$1" == "clean" ]]; then
        _tclouds_run_hooks clean
        sudo rm -rf "$TCLOUDS_CONF_DIR"
    fi
fi
