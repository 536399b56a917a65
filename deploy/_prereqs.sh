# Sourced by try-demo.sh and run-tests.sh: make sure python3 venv support and mosquitto (and, for the
# tests, a C compiler) exist, installing them from Debian / Raspberry Pi OS packages only when missing.
set -eu

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "meterlink: need root to install $*; run as root or install sudo" >&2; exit 1; fi
}

missing=""
python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$missing python3-venv"
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
# The power-cut test compiles a small C shim; only run-tests.sh sets NEED_CC (the demo needs no compiler).
if [ "${NEED_CC:-}" = 1 ]; then
    command -v gcc >/dev/null || missing="$missing gcc"
    [ -e /usr/include/stdio.h ] || missing="$missing libc6-dev"
    # The technician guide's doc test runs its commands as written: mosquitto_sub and curl.
    command -v mosquitto_sub >/dev/null || missing="$missing mosquitto-clients"
    command -v curl >/dev/null || missing="$missing curl"
fi
if [ -n "$missing" ]; then
    if ! command -v apt-get >/dev/null; then
        echo "meterlink: please install:$missing (no apt-get on this system)" >&2; exit 1
    fi
    echo "installing from the distribution:$missing" >&2
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# The packaged mosquitto starts a system broker on 1883; meterlink's demo and tests start their own.

VENV="${METERLINK_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
