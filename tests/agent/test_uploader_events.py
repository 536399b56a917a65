"""Events reach the platform whoever writes them: the agent, or the store itself when it is full."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store
from meterlink.agent.uplinks.mqtt import MqttLink, MqttSettings
from meterlink.agent.uploader import Uploader
from meterlink.drivers.base import Reading
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Signer, Verifier

T0 = 1_764_374_400_000


def cycle(first: int, n: int) -> list[Reading]:
    return [Reading(f"m{i % 8}", "volume_total", 1000.0 + first + i, "m3", T0 + first + i, T0) for i in range(n)]


def test_readings_dropped_by_a_full_store_are_reported_at_the_next_upload(tmp_path: Path, broker: LocalBroker) -> None:
    key = Ed25519PrivateKey.generate()
    platform = Platform(broker.host, broker.port, Verifier([key.public_key()]), gateway="gw-full")
    platform.start()
    # Nothing is uploaded while the readings pile up (a broker away, seen from the store), so the store drops.
    store = Store(tmp_path / "s.db", "gw-full", capacity_bytes=1024 * 1024)

    async def main() -> None:
        link = MqttLink(
            MqttSettings(
                broker.host, broker.port, "gw-full", "meterlink/gw-full/status", backoff_max=0.5, connect_timeout=3
            )
        )
        outbox = Outbox(store)
        uploader = Uploader(
            outbox,
            link,
            Signer(key),
            gateway="gw-full",
            topic_prefix="meterlink",
            interval_s=60,
            batch_size=1000,
            publish_timeout=5,
        )
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            await outbox.call(store.append, cycle(0, 10))
            assert await uploader.upload_once() == 10  # the start-up look at the events is behind us
            n = 10
            while store.dropped == 0:
                await outbox.call(store.append, cycle(n, 2000))
                n += 2000
            await uploader.upload_once()
        finally:
            await link.close()
            task.cancel()
            await outbox.close()

    try:
        asyncio.run(main())
        arrived = platform.wait_for(lambda r: any(e.get("kind") == "readings_dropped" for e in r.events), timeout=10)
        assert arrived, platform.received.events
        (event,) = [e for e in platform.received.events if e.get("kind") == "readings_dropped"]
        assert event["first_seq"] == 11 and event["count"] == store.dropped
    finally:
        platform.stop()
