#!/usr/bin/env bash
# The main job: creates/refreshes .venv, then trains the built-in default model on NP ranks
# (default 2). Extra arguments go to `mpigrad train`, e.g. --set steps=50 --out runs/try.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[mpich]'
code=0
.venv/bin/mpiexec -n "${NP:-2}" .venv/bin/mpigrad train "$@" || code=$?
cat <<NEXT

mpigrad and mpiexec live in .venv/bin; to call them by name in this shell:
    source .venv/bin/activate
then, for example:
    mpiexec -n ${NP:-2} mpigrad train --out runs/mine --set steps=200
NEXT
exit $code
