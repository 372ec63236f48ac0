#!/bin/bash
# Install what tclouds-openstack needs on a Debian/Ubuntu machine, idempotently:
#   1. system packages listed in bindep.txt (only the missing ones; profile "demo" or "test"),
#   2. a virtualenv (Debian's python3.11, so nbdkit's embedded Python can use it too) with
#      requirements.txt and test-requirements.txt installed under one of the two tested sets
#      of constraints, and the project installed in develop mode:
#        TCLOUDS_CONSTRAINTS=tested     (default) .venv, constraints.txt: the exact versions
#                                       the project develops with;
#        TCLOUDS_CONSTRAINTS=openstack  .venv-uc, OpenStack's upper-constraints plus
#                                       constraints.txt for what it does not pin
#                                       (tools/constraints.py; TCLOUDS_UPPER_CONSTRAINTS names
#                                       another upper-constraints file or URL).
#      TCLOUDS_VENV overrides the virtualenv's directory.
# Usage: tools/bootstrap.sh [demo|test]      Safe to run any number of times: the venv is
#        tools/bootstrap.sh --venv           (re)installed only when the requirements, the
#                                            constraints or setup.cfg changed; --venv prints
#                                            the virtualenv's directory and does nothing else.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"

CONSTRAINTS=${TCLOUDS_CONSTRAINTS:-tested}
case "$CONSTRAINTS" in
    tested) VENV=${TCLOUDS_VENV:-$TOP/.venv} ;;
    openstack) VENV=${TCLOUDS_VENV:-$TOP/.venv-uc} ;;
    *) echo "bootstrap: TCLOUDS_CONSTRAINTS must be tested or openstack, not '$CONSTRAINTS'" >&2
       exit 2 ;;
esac
if [ "${1:-}" = --venv ]; then
    echo "$VENV"
    exit 0
fi
PROFILE=${1:-test}

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
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip
fi
# The constraints this venv is installed with, kept beside it (pip reads them from there).
CONSTRAINTS_FILE="$VENV/tclouds-constraints.txt"
new=$(mktemp)
trap 'rm -f "$new"' EXIT
"$PY" tools/constraints.py "$CONSTRAINTS" > "$new"
STAMP="$VENV/.tclouds-requirements"
want=$(cat requirements.txt test-requirements.txt "$new" setup.cfg | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing the requirements into $VENV ($CONSTRAINTS constraints)"
    cp "$new" "$CONSTRAINTS_FILE"
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS_FILE" -r requirements.txt -r test-requirements.txt
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
# tests run it against the middleware. Fetch it once, for the installed Swift version.
if [ "$PROFILE" = test ]; then
    SWIFT_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("swift"))')
    SDIST_DIR=${TCLOUDS_SWIFT_SDIST_DIR:-$HOME/.cache/tclouds-openstack/swift-sdist}
    if [ ! -f "$SDIST_DIR/swift-$SWIFT_VERSION.tar.gz" ]; then
        echo "bootstrap: fetching the Swift $SWIFT_VERSION sdist (its functional test suite)"
        mkdir -p "$SDIST_DIR"
        "$VENV/bin/pip" download -q --no-deps --no-binary :all: "swift==$SWIFT_VERSION" -d "$SDIST_DIR"
    fi
fi
