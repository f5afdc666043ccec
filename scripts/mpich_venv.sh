#!/usr/bin/env bash
# Makes .venv: this checkout's development venv with MPICH (PyPI's `mpich` wheel), fast from the second time on.
#
# The packages of pyproject.toml (dependencies and the mpich, test and plot extras) are installed once
# into a cache shared by every checkout on the machine and kept across CI runs (MPIGRAD_CACHE, default
# ~/.cache/mpigrad; rebuilt when pyproject.toml's lists change; delete it to refresh). .venv itself is
# then a thin venv made in seconds: a .pth file adds the cached packages, MPICH's tools are linked
# into .venv/bin, and mpigrad is installed editable (so `.venv/bin/mpigrad` and `.venv/bin/mpiexec`
# exist as with a plain pip install). A .venv you made yourself with pip is kept and only refreshed
# when pyproject.toml changed. Needs only python3 and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACKAGES=$("$PY" - <<'PYTHON'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
print(" ".join(["setuptools", "wheel", *project["dependencies"], *extras["mpich"], *extras["test"], *extras["plot"]]))
PYTHON
)
# shellcheck source=scripts/package_cache.sh
source scripts/package_cache.sh
CACHE=$(cache_path mpich)
STAMP=$(sha1sum pyproject.toml | cut -c1-16)

if [ -x .venv/bin/python ] && [ ! -f .venv/mpigrad-thin ]; then  # your own full venv
    if [ "$(cat .venv/mpigrad-stamp 2>/dev/null)" != "$STAMP" ]; then
        .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[mpich,test,plot]'
        echo "$STAMP" > .venv/mpigrad-stamp
    fi
    exit 0
fi

fill_cache "$CACHE" "$PACKAGES"

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv --without-pip .venv
    touch .venv/mpigrad-thin
fi
SITE=$(purelib .venv/bin/python)
purelib "$CACHE/bin/python" > "$SITE/mpigrad-mpich-packages.pth"
# mpi4py looks for libmpi under sys.prefix/lib, the thin venv's: link the cached one (and the
# libraries it loads from $ORIGIN/mpich) there. Not MPI4PY_LIBMPI: child processes would inherit it,
# .venv-openmpi's Python among them.
for file in "$CACHE"/lib/libmpi* "$CACHE"/lib/mpich "$CACHE"/bin/mpi* "$CACHE"/bin/hydra_*; do
    ln -sfn "$file" ".venv/${file#"$CACHE"/}"
done
if [ "$(cat .venv/mpigrad-stamp 2>/dev/null)" != "$STAMP" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$STAMP" > .venv/mpigrad-stamp
fi
