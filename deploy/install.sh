#!/bin/sh
# Install meterlink as a service on Debian / Raspberry Pi OS (run as root from a clone):
#   /opt/meterlink (a venv), user "meterlink", /etc/meterlink/site.toml, keys in /var/lib/meterlink/keys.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo deploy/install.sh)" >&2; exit 1; }
python3 -c 'import venv, ensurepip' 2>/dev/null || apt-get install -y -qq python3-venv
id meterlink >/dev/null 2>&1 || useradd --system --home-dir /var/lib/meterlink --shell /usr/sbin/nologin \
    --groups dialout meterlink
[ -x /opt/meterlink/bin/python ] || python3 -m venv /opt/meterlink
/opt/meterlink/bin/pip install -q --disable-pip-version-check .
cp README.md /opt/meterlink/README.md
install -d -o meterlink -g meterlink -m 0750 /var/lib/meterlink /var/lib/meterlink/keys
install -d -m 0755 /etc/meterlink
if [ ! -f /var/lib/meterlink/keys/gateway.key ]; then
    runuser -u meterlink -- /opt/meterlink/bin/meterlink keygen --out /var/lib/meterlink/keys
fi
if [ ! -f /etc/meterlink/site.toml ]; then
    install -m 0640 -g meterlink deploy/examples/site.toml /etc/meterlink/site.toml
    echo "edit /etc/meterlink/site.toml, then: meterlink check-config /etc/meterlink/site.toml"
fi
install -m 0644 deploy/meterlink.service /etc/systemd/system/meterlink.service
systemctl daemon-reload
echo "gateway public key (give it to the platform): /var/lib/meterlink/keys/gateway.pub"
echo "start with: systemctl enable --now meterlink"
