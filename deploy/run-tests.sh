#!/bin/sh
# Install meterlink with its test tools into ./.venv and run the whole test suite against the
# installed package (so the wheel's data files are tested too). Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
NEED_CC=1
. deploy/_prereqs.sh
"$VENV/bin/python" -m pip install -q --disable-pip-version-check ".[test]"
exec "$VENV/bin/pytest" "$@"
