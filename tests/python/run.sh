#!/usr/bin/env bash
# Build and install the Python package into a venv, then run its tests.
#   RUNQ_VENV   venv to create or reuse (default: ./.venv-test)
#   extra arguments go to pytest.
# Exit code: pytest's.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${RUNQ_VENV:-./.venv-test}
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel >/dev/null
"$venv/bin/python" -m pip install -q pytest mypy opentelemetry-api opentelemetry-sdk
# Always rebuild from this tree (the CMake build dir under build/ is reused).
"$venv/bin/python" -m pip install -q --no-deps --force-reinstall .
set +e
"$venv/bin/python" -m pytest tests/python -q "$@"
exit $?
