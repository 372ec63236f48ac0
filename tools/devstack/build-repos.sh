#!/bin/bash
# Make the git repositories DevStack clones (GIT_BASE=file://<dir>) from PyPI sdists, for
# machines that reach PyPI but no git hosting.
#
# usage: build-repos.sh <versions file> <requirements dir> <cache dir>
# Prints the directory to use as GIT_BASE. Repositories are cached in
# <cache dir>/repos/<key>, key = hash of the versions file, this script and the
# requirements files, so a changed version builds a new set and an unchanged one costs
# nothing. Downloads are kept in <cache dir>/sdists.
set -euo pipefail

versions=$1
reqdir=$2
cache=$3

key=$( (cat "$versions" "$0" "$(dirname "$0")/constraints-overrides.txt"; cat "$reqdir/upper-constraints.txt" "$reqdir/global-requirements.txt") \
    | sha256sum | cut -c1-16)
out=$cache/repos/$key
if [[ -f $out/.complete ]]; then
    echo "$out"
    exit 0
fi
mkdir -p "$cache/sdists" "$cache/repos"
work=$(mktemp -d "$cache/repos/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/openstack"

# _commit_tree <source dir> <repo name> <tag>: a bare repository whose master is the tree.
_commit_tree() {
    local src=$1 name=$2 tag=$3
    git -C "$src" init -q -b master
    git -C "$src" add -A -f
    git -C "$src" -c user.name=tclouds-devstack -c user.email=devstack@localhost \
        commit -q -m "$name $tag from its PyPI sdist"
    git -C "$src" tag -a -m "$tag" "$tag"
    git clone -q --bare "$src" "$work/openstack/$name.git"
}

# _find_sdist <project> <version>: the downloaded sdist (PyPI normalises - to _), if any.
_find_sdist() {
    local f
    for f in "$cache/sdists/$1-$2.tar.gz" "$cache/sdists/${1//-/_}-$2.tar.gz"; do
        [[ -f $f ]] && { echo "$f"; return 0; }
    done
    return 0
}

while read -r name project version; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    sdist=$(_find_sdist "$project" "$version")
    if [[ -z "$sdist" ]]; then
        pip download -q --no-deps --no-binary :all: \
            -d "$cache/sdists" "$project==$version" >&2
        sdist=$(_find_sdist "$project" "$version")
        [[ -n "$sdist" ]] || { echo "no sdist of $project $version" >&2; exit 1; }
    fi
    mkdir -p "$work/src/$name"
    tar -xzf "$sdist" -C "$work/src/$name" --strip-components=1
    if [[ $name == requirements ]]; then
        # the constraints DevStack installs everything with: the current ones; and the
        # setuptools that still has pkg_resources, which this old edit-constraints imports
        cp "$reqdir"/*.txt "$work/src/$name/"
        echo 'setuptools<81 # pkg_resources' >>"$work/src/$name/requirements.txt"
        local_overrides=$(dirname "$0")/constraints-overrides.txt
        while read -r pin; do
            [[ -z "$pin" || "$pin" == \#* ]] && continue
            sed -i -E "s/^${pin%%===*}===[^;]*/$pin/" "$work/src/$name/upper-constraints.txt"
            grep -qx -- "$pin" "$work/src/$name/upper-constraints.txt" || \
                { echo "override $pin matches no pin" >&2; exit 1; }
        done < "$local_overrides"
    fi
    _commit_tree "$work/src/$name" "$name" "$version"
    echo "repo $name: $project $version" >&2
done < "$versions"

# openstack/os-test-images is not on PyPI. DevStack's configure_tempest clones it and runs
# "tox -e generate" for the manifest of the image-format tests of Tempest's image API
# (not in the job's selection): a stand-in with an empty manifest.
mkdir -p "$work/src/os-test-images"
cat >"$work/src/os-test-images/README.rst" <<'README'
Stand-in for openstack/os-test-images made by tclouds-openstack's DevStack job
(tools/devstack/build-repos.sh): "tox -e generate" writes an empty images/manifest.yaml,
so Tempest's image-format tests find no test images.
README
cat >"$work/src/os-test-images/tox.ini" <<'TOX'
[tox]
skipsdist = True

[testenv:generate]
skip_install = True
allowlist_externals = sh
commands = sh -c "mkdir -p images && echo 'images: []' > images/manifest.yaml"
TOX
_commit_tree "$work/src/os-test-images" os-test-images stand-in

rm -rf "$work/src"
touch "$work/.complete"
mv "$work" "$out"
trap - EXIT
# repositories of other versions are stale now
find "$cache/repos" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build-*' \
    -exec rm -rf {} +
echo "$out"
