#!/bin/sh
# The static checks CI runs before the tests: ruff's lint, ruff's formatting (checked, never
# rewritten) and mypy --strict over the package, the tests and the benchmarks (deploy/typecheck.sh).
# Tools come from $METERLINK_VENV (default ./.venv, as deploy/run-tests.sh installs it). Each check
# runs even when one before it failed, so one pass shows everything to fix; exit 1 if any failed.
set -eu
cd "$(dirname "$0")/.."
VENV="${METERLINK_VENV:-.venv}"
export METERLINK_VENV="$VENV"
failed=""
"$VENV/bin/python" -m ruff check --quiet . || failed="$failed ruff-check"
"$VENV/bin/python" -m ruff format --check --quiet . || failed="$failed ruff-format"
deploy/typecheck.sh || failed="$failed mypy"
if [ -n "$failed" ]; then
    echo "check: failed:$failed" >&2
    exit 1
fi
echo "check: ruff check, ruff format and mypy --strict clean"
