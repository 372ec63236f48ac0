#!/bin/bash
# The main job: the all-in-one demo on embedded defaults (sqlite, local swtpm hosts,
# in-process services). Installs what it needs first. Extra arguments go to tclouds-demo.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
tools/bootstrap.sh demo
exec "$(tools/bootstrap.sh --venv)/bin/tclouds-demo" "$@"
