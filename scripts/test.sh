#!/usr/bin/env bash
# Whole test suite: creates/refreshes .venv, runs the serial tests, then the MPI tests at
# world sizes 1-4 and once more over MPICH's network path (MPIR_CVAR_NOLOCAL=1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[mpich,test,plot]'
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
BIN=.venv/bin

echo "== serial tests"
"$BIN/python" -m pytest -q tests

for n in 1 2 3 4; do
    echo "== MPI tests, world size $n"
    timeout 600 "$BIN/mpiexec" -n "$n" "$BIN/python" -m pytest -q --with-mpi -m mpi tests
done

echo "== MPI tests, world size 2, network path"
MPIR_CVAR_NOLOCAL=1 timeout 600 "$BIN/mpiexec" -n 2 "$BIN/python" -m pytest -q --with-mpi -m mpi tests
