#!/usr/bin/env bash
# Prove deterministic mode on this machine or cluster: `mpigrad check-determinism` on the default
# job at world sizes 1, 2 and 4 for STEPS steps; further arguments go to it (--worlds 1,2,4,8,
# --launcher "srun -n {n}", --config FILE, ...), paths in them relative to where you call it.
#   bash scripts/check_determinism.sh [STEPS] [arguments...]       (PYTHON may be set)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${1:-20}
shift || true
exec "${PYTHON:-$ROOT/.venv/bin/python}" -m mpigrad check-determinism --set steps="$STEPS" "$@"
