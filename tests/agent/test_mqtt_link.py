"""The MQTT link against a real mosquitto: PUBACK means success, everything else is a failure."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from meterlink.agent.uplinks.base import NotConnected, Rejected, TimedOut, UplinkError
from meterlink.agent.uplinks.mqtt import MqttLink, MqttSettings
from meterlink.sim.broker import LocalBroker


def settings(broker: LocalBroker, protocol: str = "5") -> MqttSettings:
    return MqttSettings(
        broker.host,
        broker.port,
        f"test-{protocol}",
        "t/gw/status",
        protocol=protocol,
        backoff_max=0.5,
        connect_timeout=3,
    )


async def started(link: MqttLink) -> asyncio.Task[None]:
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(link.connected.wait(), 10)
    return task


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite t/#\n")
    b = LocalBroker(tmp_path / "acl-broker", acl_file=acl)
    b.start()
    yield b
    b.stop()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class Subscriber:
    """Another client of the broker, subscribed at QoS 1: what it hears, the broker really had."""

    def __init__(self, broker: LocalBroker, topic: str) -> None:
        self.broker = broker
        self.heard: list[tuple[bytes, int]] = []  # (payload, QoS it was delivered at)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.heard.append((bytes(message.payload), message.qos))

    def __enter__(self) -> Subscriber:
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the subscriber did not subscribe"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, count: int, timeout: float) -> list[tuple[bytes, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.heard) < count:
            time.sleep(0.02)
        with self.lock:
            return list(self.heard)


def test_publish_returns_after_puback(broker: LocalBroker) -> None:
    """Every publish that returned is with the broker at QoS 1, exactly once, as it was sent."""
    payloads = [b"hello", *(bytes([i]) * 1000 for i in range(32))]
    with Subscriber(broker, "t/gw/readings") as subscriber:

        async def main() -> None:
            link = MqttLink(settings(broker))
            task = await started(link)
            await link.publish("t/gw/readings", payloads[0])
            await asyncio.gather(*(link.publish("t/gw/readings", p) for p in payloads[1:]))
            await link.close()
            task.cancel()

        run(main())
        heard = subscriber.wait_for(len(payloads), 10)
    assert sorted(heard) == sorted((p, 1) for p in payloads)


def test_nothing_is_handed_to_paho_while_disconnected() -> None:
    async def main() -> None:
        link = MqttLink(MqttSettings("127.0.0.1", 1, "never", "t/s"))
        with pytest.raises(NotConnected):
            await link.publish("t/x", b"x")

    run(main())


@pytest.mark.parametrize(("protocol", "refused"), [("5", True), ("3.1.1", False)])
def test_a_publish_denied_by_acl(acl_broker: LocalBroker, protocol: str, refused: bool) -> None:
    """MQTT 5 says 'not authorized' in the PUBACK; MQTT 3.1.1 cannot, which is why 5 is the default."""

    async def main() -> None:
        link = MqttLink(settings(acl_broker, protocol))
        task = await started(link)
        await link.publish("t/allowed", b"ok")
        if refused:
            with pytest.raises(Rejected) as info:
                await link.publish("forbidden/x", b"no")
            assert info.value.code == 0x87
        else:
            await link.publish("forbidden/x", b"no")  # the broker drops it, yet acknowledges
        await link.close()
        task.cancel()

    run(main())


def test_broker_loss_fails_the_publish_and_the_link_comes_back(broker: LocalBroker) -> None:
    async def main() -> None:
        link = MqttLink(settings(broker))
        task = await started(link)
        broker.stop()
        with pytest.raises(UplinkError):
            for _ in range(50):  # the loss is noticed on the next read; until then a publish may time out
                await link.publish("t/gw/readings", b"x", timeout=0.5)
                await asyncio.sleep(0.05)
        for _ in range(100):
            if not link.connected.is_set():
                break
            await asyncio.sleep(0.05)
        assert not link.connected.is_set()
        with pytest.raises(NotConnected):  # while it is down, nothing is handed to paho to queue
            await link.publish("t/gw/readings", b"held back")
        broker.start()
        await asyncio.wait_for(link.connected.wait(), 15)
        await link.publish("t/gw/readings", b"back")
        assert link.connections >= 2
        await link.close()
        task.cancel()

    run(main())


def test_a_publish_without_puback_times_out(broker: LocalBroker) -> None:
    async def main() -> None:
        link = MqttLink(settings(broker))
        task = await started(link)
        import os
        import signal

        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # connection open, broker silent
        try:
            with pytest.raises(TimedOut):
                await link.publish("t/gw/readings", b"x", timeout=0.5)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        await link.close()
        task.cancel()

    run(main())


def test_two_gateways_with_one_client_id_back_off_instead_of_kicking_each_other(
    broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker drops the older of two sessions with one client id (a cloned SD card): each link
    sees its connection lost moments after making it, and must back off as from a failed attempt."""

    async def main() -> None:
        twins = [
            MqttLink(
                MqttSettings(broker.host, broker.port, "cloned-card", "t/gw/status", backoff_max=0.2, connect_timeout=3)
            )
            for _ in range(2)
        ]
        tasks = [asyncio.create_task(link.run()) for link in twins]
        for _ in range(200):
            lost = [
                r
                for r in caplog.records
                if "connection lost" in r.getMessage() and "after it was made" in r.getMessage()
            ]
            if len(lost) >= 4:
                break
            await asyncio.sleep(0.05)
        for link in twins:
            await link.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    with caplog.at_level("WARNING", logger="meterlink.mqtt"):
        run(main())
    retries = [r.getMessage() for r in caplog.records if "event=mqtt_connect_failed" in r.getMessage()]
    assert sum("after it was made" in m for m in retries) >= 4, retries
    assert any("attempt=2 " in m for m in retries), retries  # the backoff grew: it was not reset
