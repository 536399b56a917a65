#!/bin/sh
# Install meterlink into ./.venv and run the demo: simulated meters, the agent and a platform
# that verifies every signed message. Usage: deploy/try-demo.sh [SECONDS]   (default 30)
set -eu
cd "$(dirname "$0")/.."
. deploy/_prereqs.sh
"$VENV/bin/python" -m pip install -q --disable-pip-version-check .
exec "$VENV/bin/meterlink" demo --duration "${1:-30}"
