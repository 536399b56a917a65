"""Security of the link: TLS verified by default, never dropped; mutual TLS; credentials kept secret."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from support.configs import BASE, write_site
from support.tls import Pki, make_pki

from meterlink.agent import config as cfgmod
from meterlink.agent.assembly import mqtt_settings
from meterlink.agent.uplinks.mqtt import MqttLink
from meterlink.cli.main import main
from meterlink.sim.broker import LocalBroker, TlsFiles, make_password_file


def site(tmp_path: Path, broker: LocalBroker, extra: str = "", host: str = "localhost") -> cfgmod.Config:
    text = BASE.replace(
        'broker = "mqtt://127.0.0.1:1883"',
        f'broker = "{"mqtts" if broker.tls else "mqtt"}://{host}:{broker.port}"\n{extra}',
    )
    # An adapter that is not plugged in (a warning), not /dev/null (not a tty: an error check-config reports).
    text = text.replace('device = "/dev/null"', 'device = "/dev/ttyUSB-meterlink-test"')
    return cfgmod.load(write_site(tmp_path / "site", text))


def attempt(config: cfgmod.Config, seconds: float = 3.0) -> MqttLink:
    """Run the link for a while; return it to inspect whether it connected and why not."""

    async def go() -> MqttLink:
        link = MqttLink(mqtt_settings(config, backoff_max=0.3))
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), seconds)
            await link.publish("meterlink/gw-test/readings", b"x")
        except TimeoutError:
            pass
        connected = link.connections
        await link.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        link.connections = connected
        return link

    return asyncio.run(go())


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def tls_broker(
    tmp_path: Path, pki: Pki, *, cert: tuple[Path, Path] | None = None, require_client: bool = False, **kw: object
) -> LocalBroker:
    certfile, keyfile = cert or pki.issue("broker")
    b = LocalBroker(tmp_path / "tls-broker", tls=TlsFiles(pki.ca, certfile, keyfile, require_client), **kw)  # type: ignore[arg-type]
    b.start()
    return b


def test_tls_with_the_right_ca_connects(tmp_path: Path, pki: Pki) -> None:
    broker = tls_broker(tmp_path, pki)
    try:
        link = attempt(site(tmp_path, broker, f'ca = "{pki.ca}"'))
    finally:
        broker.stop()
    assert link.connections == 1


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong_ca", "self-signed certificate in certificate chain"),
        ("expired", "certificate has expired"),
        ("wrong_host", "mismatch"),
        ("system_cas", "certificate refused"),  # no ca configured: the system CAs do not know ours
    ],
)
def test_a_bad_certificate_is_refused_and_never_retried_in_plain_text(
    tmp_path: Path, pki: Pki, case: str, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = make_pki(tmp_path / "other", "other-ca")
    cert = None
    ca_line = f'ca = "{pki.ca}"'
    if case == "wrong_ca":
        ca_line = f'ca = "{other.ca}"'
    elif case == "expired":
        cert = pki.issue("expired", days=-1, not_before_days=-10)
    elif case == "wrong_host":
        cert = pki.issue("elsewhere", hosts=("broker.example.cn",))
    elif case == "system_cas":
        ca_line = ""
    broker = tls_broker(tmp_path, pki, cert=cert)
    caplog.set_level(logging.WARNING, logger="meterlink.mqtt")
    try:
        link = attempt(site(tmp_path, broker, ca_line), seconds=2.5)
    finally:
        broker.stop()
    assert link.connections == 0
    assert says in link.last_error, link.last_error
    failures = [r.getMessage() for r in caplog.records if "event=mqtt_connect_failed" in r.getMessage()]
    assert len(failures) >= 2, "retries go on (always with TLS)"
    assert all("TLS" in f for f in failures)
    # The broker saw only TLS handshakes: a plain MQTT CONNECT would be logged as a protocol error.
    assert "protocol error" not in broker.log_tail(50).lower()


def test_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    broker = tls_broker(tmp_path, pki, require_client=True)
    client_cert, client_key = pki.issue("gw-test", client=True)
    try:
        without = attempt(site(tmp_path, broker, f'ca = "{pki.ca}"'), seconds=2)
        with_cert = attempt(
            site(tmp_path, broker, f'ca = "{pki.ca}"\nclient_cert = "{client_cert}"\nclient_key = "{client_key}"')
        )
    finally:
        broker.stop()
    assert without.connections == 0
    assert with_cert.connections == 1


def test_username_and_password_from_a_file_or_the_environment_never_leak(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "Zq9-very-secret"
    pwfile = make_password_file(tmp_path / "passwd", {"gw-test": secret})
    broker = LocalBroker(tmp_path / "auth-broker", password_file=pwfile)
    broker.start()
    (tmp_path / "mqtt.pass").write_text(secret + "\n")
    caplog.set_level(logging.DEBUG)
    try:
        good = attempt(site(tmp_path, broker, f'username = "gw-test"\npassword_file = "{tmp_path / "mqtt.pass"}"'))
        monkeypatch.setenv("ML_MQTT_PW", secret)
        from_env = attempt(site(tmp_path, broker, 'username = "gw-test"\npassword_env = "ML_MQTT_PW"'))
        monkeypatch.setenv("ML_MQTT_PW", "wrong")
        bad = attempt(site(tmp_path, broker, 'username = "gw-test"\npassword_env = "ML_MQTT_PW"'), seconds=2)
        config_path = tmp_path / "site" / "meterlink.toml"
        assert main(["check-config", str(config_path)]) == 0
    finally:
        broker.stop()
    assert good.connections == 1 and from_env.connections == 1 and bad.connections == 0
    assert "refused" in bad.last_error
    everything = caplog.text + capsys.readouterr().out + bad.last_error + repr(site(tmp_path, broker))
    assert secret not in everything and "wrong" not in caplog.text
