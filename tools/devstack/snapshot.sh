#!/bin/bash
# The repository DevStack clones the plugin from: a bare repository whose "master" is
#   head      the checkout's HEAD (what is committed), or
#   worktree  the checkout's files as they are in the working tree, untracked ones too
#             (but not ignored ones): development.
# usage: snapshot.sh <checkout> head|worktree <destination.git>
set -euo pipefail
src=$1 mode=$2 dest=$3
rm -rf "$dest"
case $mode in
    head)
        git clone -q --bare --no-local "$src" "$dest"
        git -C "$dest" update-ref refs/heads/master "$(git -C "$src" rev-parse HEAD)"
        git -C "$dest" symbolic-ref HEAD refs/heads/master
        ;;
    worktree)
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        (cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c \
            '[ -e "{}" ] && cp --parents -P "{}" "$0"' "$tmp")
        git -C "$tmp" init -q -b master
        git -C "$tmp" add -A -f
        git -C "$tmp" -c user.name=tclouds-devstack -c user.email=devstack@localhost \
            commit -q -m "working tree of $src at $(git -C "$src" rev-parse --short HEAD)"
        git clone -q --bare "$tmp" "$dest"
        ;;
    *) echo "snapshot.sh: mode head or worktree" >&2; exit 2 ;;
esac
