#!/bin/sh
# Install meterlink with its test tools into ./.venv and run the whole test suite against the
# installed package (so the wheel's data files are tested too). Extra arguments go to pytest.
# The whole suite (no arguments, as CI runs it) starts with deploy/check.sh: a lint finding, an
# unformatted file or a type error fails the run as a failing test does.
set -eu
cd "$(dirname "$0")/.."
NEED_CC=1
. deploy/_prereqs.sh
"$VENV/bin/python" -m pip install -q --disable-pip-version-check ".[test]"
if [ $# -eq 0 ]; then
    METERLINK_VENV="$VENV" deploy/check.sh
fi
exec "$VENV/bin/pytest" "$@"
