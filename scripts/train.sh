#!/usr/bin/env bash
# The main job: creates/refreshes .venv, then trains the built-in default model on NP ranks
# (default 2). Extra arguments go to `mpigrad train`, e.g. --set steps=50 --out runs/try.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[mpich]'
exec .venv/bin/mpiexec -n "${NP:-2}" .venv/bin/mpigrad train "$@"
