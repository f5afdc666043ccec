#!/usr/bin/env bash
# Prove deterministic mode on this machine or cluster: trains the default job for a few steps
# at world sizes 1, 2 and 4 and compares the final parameters byte for byte.
#   bash scripts/check_determinism.sh [steps]       (MPIEXEC, PYTHON may be set)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
PY=${PYTHON:-.venv/bin/python}
MPIEXEC=${MPIEXEC:-$(dirname "$PY")/mpiexec}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for n in 1 2 4; do
    timeout 1200 "$MPIEXEC" -n "$n" "$PY" -m mpigrad train --quiet --out "$OUT/w$n" \
        --set deterministic=true --set steps="$STEPS" --set checkpoint_every=0 --set sample_chars=0
    echo "world $n: sha256 $(sha256sum "$OUT/w$n/final.npz" | cut -c1-16)"
done
if cmp -s "$OUT/w1/final.npz" "$OUT/w2/final.npz" && cmp -s "$OUT/w1/final.npz" "$OUT/w4/final.npz"; then
    echo "bitwise identical at world sizes 1, 2 and 4 after $STEPS steps"
else
    echo "NOT identical across world sizes" >&2
    exit 1
fi
