"""A long outage, injected: the store of a site whose broker was away for days, then the recovery."""

from __future__ import annotations

import random
from pathlib import Path

from meterlink.agent.store import Store
from meterlink.drivers.base import Flag, Reading

MINUTE = 60_000


def inject_outage(store_path: Path, gateway: str, *, meters: int, days: float, end_ms: int, seed: int = 7) -> int:
    """Fill a store with ``meters`` x 1-minute readings for ``days`` ending at ``end_ms``; nothing sent."""
    rng = random.Random(seed)
    store = Store(store_path, gateway, capacity_bytes=None)
    minutes = int(days * 24 * 60)
    start = end_ms - minutes * MINUTE
    totals = [rng.uniform(1_000, 90_000) for _ in range(meters)]
    batch: list[Reading] = []
    for minute in range(minutes):
        slot = start + minute * MINUTE
        for m in range(meters):
            totals[m] += rng.uniform(0, 2)
            batch.append(
                Reading(
                    f"well-{m:02d}",
                    "volume_total",
                    round(totals[m], 3),
                    "m3",
                    slot + rng.randrange(50, 800),
                    slot,
                    int(Flag.NONE),
                )
            )
        if len(batch) >= 20_000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)
    count = store.next_seq - 1
    store.close()
    return count
