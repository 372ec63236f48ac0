#!/bin/bash
# Install what tclouds-openstack needs on a Debian/Ubuntu machine, idempotently:
#   1. system packages listed in bindep.txt (only the missing ones; profile "demo" or "test"),
#   2. a virtualenv in .venv (Debian's python3.11, so nbdkit's embedded Python can use it too)
#      with the pinned requirements and the project installed in develop mode.
# Usage: tools/bootstrap.sh [demo|test]      Safe to run any number of times.
set -euo pipefail
PROFILE=${1:-test}
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

bindep_packages() {
    # bindep.txt lines look like "name [platform:dpkg test]"; a line whose profiles (other than
    # platform:*) do not include $PROFILE is skipped.
    grep -v '^\s*#' bindep.txt | grep -v '^\s*$' | while read -r name rest; do
        profiles=$(echo "$rest" | tr -d '[]' | tr ' ' '\n' | grep -v '^platform:' | grep -v '^$' || true)
        if [ -z "$profiles" ] || echo "$profiles" | grep -qx "$PROFILE"; then
            echo "$name"
        fi
    done
}

missing=()
for pkg in $(bindep_packages); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=/usr/bin/python3.11
VENV="$TOP/.venv"
STAMP="$VENV/.tclouds-requirements"
want=$(cat requirements.txt test-requirements.txt upper-constraints.txt setup.cfg | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing pinned Python requirements into $VENV"
    "$VENV/bin/pip" install -q -c upper-constraints.txt -r requirements.txt -r test-requirements.txt
    "$VENV/bin/pip" install -q --no-deps -e .
    echo "$want" > "$STAMP"
fi

# Keylime (test reference) imports gpg, which only Debian's python3-gpg provides for 3.11.
GPG=/usr/lib/python3/dist-packages/gpg
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ -d "$GPG" ] && [ ! -e "$SITE/gpg" ]; then
    ln -s "$GPG" "$SITE/gpg"
fi

# Swift's own functional suite ships only in its sdist (test/functional): the cloud-of-clouds
# tests run it against the middleware. Fetch it once, for the pinned Swift version.
if [ "$PROFILE" = test ]; then
    SWIFT_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("swift"))')
    SDIST_DIR=${TCLOUDS_SWIFT_SDIST_DIR:-$HOME/.cache/tclouds-openstack/swift-sdist}
    if [ ! -f "$SDIST_DIR/swift-$SWIFT_VERSION.tar.gz" ]; then
        echo "bootstrap: fetching the Swift $SWIFT_VERSION sdist (its functional test suite)"
        mkdir -p "$SDIST_DIR"
        "$VENV/bin/pip" download -q --no-deps --no-binary :all: "swift==$SWIFT_VERSION" -d "$SDIST_DIR"
    fi
fi
