#!/usr/bin/env bash
# tests/e2e/run.sh [BUILD_DIR]: the end-to-end suites that are not part of a
# language's own suite (the OpenResty e2e runs with the Lua suite).
set -u
here=$(cd "$(dirname "$0")" && pwd)
"$here/cross/run.sh" "${1:-./build}"
