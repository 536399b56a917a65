"""Draining a backlog: readings from the store, signed, published at QoS 1, marked sent on PUBACK.

    .venv/bin/python bench/bench_drain.py [--readings 1000000] [--batch 1000] [--broker mqtt://HOST:PORT]

Targets (issue 2): a backlog of 1,000,000 readings drained at >= 100,000 readings/s against a local
mosquitto; and bytes on the wire per reading, at a batch of 100 (aim: <= 80). Without --broker a
private mosquitto is started on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from _common import figure, header
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store
from meterlink.agent.uplinks.mqtt import MqttLink, MqttSettings
from meterlink.agent.uploader import Uploader
from meterlink.drivers.base import Reading
from meterlink.sim.broker import LocalBroker
from meterlink.wire.jws import Signer
from meterlink.wire.payload import StoredReading, readings_message

T0 = 1_764_374_400_000
QUANTITIES = (("flow_rate", "m3/h"), ("volume_total", "m3"), ("velocity", "m/s"), ("volume_net", "m3"))


def backlog(n: int, meters: int = 64) -> list[Reading]:
    """Realistic values: 64 meters, 4 quantities each, polled every minute."""
    rng = random.Random(1)
    out = []
    per_cycle = meters * len(QUANTITIES)
    for i in range(n):
        cycle, k = divmod(i, per_cycle)
        meter, q = divmod(k, len(QUANTITIES))
        name, unit = QUANTITIES[q]
        slot = T0 + cycle * 60_000
        value = round(rng.uniform(5, 120), 3) if q != 1 else round(50_000 + cycle * 1.7 + meter, 3)
        out.append(Reading(f"well-{meter:02d}", name, value, unit, slot + rng.randrange(40, 900), slot))
    return out


def publish_packet_size(topic: str, payload: bytes, mqtt5: bool = True) -> int:
    """Bytes of an MQTT PUBLISH at QoS 1 (fixed header, topic, packet id, properties, payload)."""
    remaining = 2 + len(topic.encode()) + 2 + (1 if mqtt5 else 0) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


def wire_per_reading(batch: int, compress: bool) -> float:
    rows = backlog(batch)
    stored = [
        StoredReading(i + 1, r.meter, r.quantity, r.value, r.unit, r.ts, r.slot, r.flags) for i, r in enumerate(rows)
    ]
    message = Signer(Ed25519PrivateKey.generate(), compress=compress).sign(
        readings_message("hn-430100-0007", 123456, T0 + 5000, stored)
    )
    topic = "meterlink/hn-430100-0007/readings"
    return publish_packet_size(topic, message) / batch


async def drain(store: Store, host: str, port: int, batch: int) -> tuple[float, int]:
    link = MqttLink(MqttSettings(host, port, "bench-drain", "bench/gw/status"))
    link_task = asyncio.create_task(link.run())
    await asyncio.wait_for(link.connected.wait(), 10)
    outbox = Outbox(store)
    uploader = Uploader(
        outbox,
        link,
        Signer(Ed25519PrivateKey.generate()),
        gateway="gw",
        topic_prefix="bench",
        interval_s=3600,
        batch_size=batch,
        publish_timeout=30,
    )
    started = time.perf_counter()
    sent = await uploader.upload_once()
    elapsed = time.perf_counter() - started
    await link.close()
    link_task.cancel()
    return elapsed, sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="readings per message while draining")
    parser.add_argument("--broker", help="mqtt://HOST:PORT (default: a private mosquitto)")
    args = parser.parse_args()
    header(f"drain: {args.readings:,} pending readings -> signed messages of {args.batch} -> PUBACK -> marked sent")
    for compress in (True, False):
        label = "compressed (cty json+deflate)" if compress else "uncompressed JSON"
        figure(
            f"wire bytes per reading, batch of 100, {label}",
            wire_per_reading(100, compress),
            "bytes",
            80,
            higher_is_better=False,
        )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "drain.db", "gw")
        rows = backlog(args.readings)
        for i in range(0, len(rows), 10_000):
            store.append(rows[i : i + 10_000])
        del rows
        broker = None
        if args.broker:
            url = urlsplit(args.broker)
            host, port = url.hostname or "127.0.0.1", url.port or 1883
        else:
            broker = LocalBroker(Path(tmp) / "broker")
            broker.start()
            host, port = broker.host, broker.port
        try:
            elapsed, sent = asyncio.run(drain(store, host, port, args.batch))
        finally:
            if broker:
                broker.stop()
        left = store.stats().pending
        store.close()
    figure("readings drained (signed, acknowledged, marked sent)", sent, "readings")
    figure("pending after the drain", left, "readings")
    figure("drain rate", sent / elapsed, "readings/s", 100_000)


if __name__ == "__main__":
    main()
