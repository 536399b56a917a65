#!/bin/sh
# Install meterlink as a service on Debian / Raspberry Pi OS (run as root from a clone):
#   /opt/meterlink (a venv), user and group "meterlink" (also in dialout, for the serial ports),
#   /etc/meterlink/site.toml, the state folder /var/lib/meterlink with the signing key in keys/,
#   and the systemd unit. Run it again after `git pull` to upgrade: the key and the config are kept.
#
#   deploy/install.sh [--root DIR] [--uninstall [--purge]]
#
# --root DIR   install under DIR instead of / (an image being built, or a test's throw-away root):
#              users and groups go to DIR/etc/passwd and DIR/etc/group (useradd --prefix), and
#              systemd is not asked to reload. DIR/etc needs passwd, group, shadow and gshadow with
#              a dialout group. The venv's scripts name DIR in their first line.
# --uninstall  stop and remove the service, the unit and /opt/meterlink; the store, the keys, the
#              config and the user stay, so a reinstall continues the same gateway and seq.
# --purge      with --uninstall: also delete /var/lib/meterlink (store and keys: the gateway's
#              identity), /etc/meterlink and the user.
set -eu
cd "$(dirname "$0")/.."

ROOT=""
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a folder" >&2; exit 2; }
                ROOT=$(cd "$2" 2>/dev/null && pwd) || { echo "install.sh: --root $2: no such folder" >&2; exit 2; }
                shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (--root DIR, --uninstall, --purge)" >&2; exit 2 ;;
    esac
done
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || { echo "install.sh: --purge goes with --uninstall" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo deploy/install.sh)" >&2; exit 1; }
if [ -n "$ROOT" ]; then
    for f in passwd group shadow gshadow; do
        [ -f "$ROOT/etc/$f" ] || { echo "install.sh: --root $ROOT: no $ROOT/etc/$f" >&2; exit 2; }
    done
fi

VENV="$ROOT/opt/meterlink"
STATE="$ROOT/var/lib/meterlink"
ETC="$ROOT/etc/meterlink"
UNIT="$ROOT/etc/systemd/system/meterlink.service"
USERS_AT=""  # useradd, userdel: the prefix whose etc/ they change
[ -z "$ROOT" ] || USERS_AT="--prefix $ROOT"

# systemd is asked only about the running system, and only where it runs.
systemd_up() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
# The user's and group's numbers, from the passwd file being installed into (not the host's NSS).
ids() { awk -F: '$1 == "meterlink" { print $3 ":" $4 }' "$ROOT/etc/passwd"; }

if [ "$UNINSTALL" = 1 ]; then
    if systemd_up; then
        systemctl disable --now meterlink 2>/dev/null || true
    fi
    rm -f "$UNIT"
    systemd_up && systemctl daemon-reload
    rm -rf "$VENV"
    if [ "$PURGE" = 1 ]; then
        rm -rf "$STATE" "$ETC"
        # shellcheck disable=SC2086
        [ -z "$(ids)" ] || userdel $USERS_AT meterlink
        # userdel keeps the user's group where login.defs lacks USERGROUPS_ENAB (a bare --root has none).
        # shellcheck disable=SC2086
        if grep -q '^meterlink:' "$ROOT/etc/group"; then groupdel $USERS_AT meterlink; fi
        echo "meterlink removed, with its store, keys, config and user"
    else
        echo "meterlink removed; kept: $STATE (store and keys), $ETC and the user (--purge deletes them)"
    fi
    exit 0
fi

python3 -c 'import venv, ensurepip' 2>/dev/null || apt-get install -y -qq python3-venv
if [ -z "$(ids)" ]; then
    # shellcheck disable=SC2086
    useradd $USERS_AT --system --user-group --home-dir /var/lib/meterlink --shell /usr/sbin/nologin \
        --groups dialout meterlink
fi
OWNER=$(ids)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check .
cp README.md "$VENV/README.md"
install -d -o "${OWNER%:*}" -g "${OWNER#*:}" -m 0750 "$STATE" "$STATE/keys"
install -d -m 0755 "$ETC" "$(dirname "$UNIT")"
if [ ! -f "$STATE/keys/gateway.key" ]; then
    # Made by root, then given to the user: the same key mode (0600) either way, and it works for a
    # --root whose user the running system does not know.
    "$VENV/bin/meterlink" keygen --out "$STATE/keys" >/dev/null
    chown "$OWNER" "$STATE/keys/gateway.key" "$STATE/keys/gateway.pub"
fi
if [ ! -f "$ETC/site.toml" ]; then
    install -m 0640 -g "${OWNER#*:}" deploy/examples/site.toml "$ETC/site.toml"
    echo "edit $ETC/site.toml, then: meterlink check-config /etc/meterlink/site.toml"
fi
install -m 0644 deploy/meterlink.service "$UNIT"
systemd_up && systemctl daemon-reload
echo "gateway public key (give it to the platform): $STATE/keys/gateway.pub"
echo "start with: systemctl enable --now meterlink"
