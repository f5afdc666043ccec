#!/usr/bin/env bash
# Prove deterministic mode on this machine or cluster: `mpigrad check-determinism` on the default
# job at world sizes 1, 2 and 4 for STEPS steps; further arguments go to it (--worlds 1,2,4,8,
# --launcher "srun -n {n}", --config FILE, ...).
#   bash scripts/check_determinism.sh [STEPS] [arguments...]       (PYTHON may be set)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
shift || true
exec "${PYTHON:-.venv/bin/python}" -m mpigrad check-determinism --set steps="$STEPS" "$@"
