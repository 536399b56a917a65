"""Make the worked examples and the size figures of docs/wire-format.md with the real code.

Simulated meters (:class:`meterlink.sim.meter_model.SimMeter`) are read by the real Modbus driver
through a stand-in bus that answers from the meter's register image and advances a fake clock by
the time an RS-485 exchange at 9600 baud takes. Each poll cycle goes into a real
:class:`~meterlink.agent.store.Store`; messages are built by ``readings_message`` /
``events_message`` and signed by :class:`~meterlink.wire.jws.Signer`, exactly as the agent
does. Everything is driven by fixed times and seeds, and Ed25519 signatures are deterministic, so
the output is the same on every run.

The signing key is the example key of RFC 8037 appendix A, so anyone can check the examples. It
is public: never use it on a gateway.

    .venv/bin/python bench/make_wire_example.py            # print examples and figures
    .venv/bin/python bench/make_wire_example.py --sizes    # figures only
    .venv/bin/python bench/make_wire_example.py --update-doc   # rewrite the doc's example blocks

``tests/docs/test_wire_format_doc.py`` checks that the examples in the doc still verify and are
byte for byte what the code produces.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import tempfile
from pathlib import Path
from typing import Any, cast
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meterlink.agent.store import Store
from meterlink.drivers.base import Reading
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.modbus.registermap import Profile
from meterlink.protocols.modbus.plan import ReadRequest
from meterlink.sim.meter_model import SimMeter
from meterlink.wire.jws import Signer
from meterlink.wire.payload import events_message, readings_message

RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
GATEWAY = "hn-430100-0007"
START_MS = 1_764_374_400_000  # 2025-11-29T00:00:00Z, 08:00 site time (UTC+8): the morning peak
POLL_MS = 60_000
UPLOAD_OFFSET_MS = 10_000  # the uploader runs min(interval / 4, 10 s) after each upload slot

# Several meters of 4 quantities each (the two built-in profiles with exactly 4).
METERS: list[tuple[str, str, int]] = [
    ("well-1", "mfe600h", 1),
    ("well-2", "mfe600h", 2),
    ("well-3", "xintai_water_meter", 3),
    ("well-4", "xintai_water_meter", 4),
    ("well-5", "mfe600h", 5),
]


def rfc8037_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(RFC8037_D + "="))


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def seconds(self) -> float:
        return self.ms / 1000


class SimBus:
    """Answers ModbusDriver's reads from simulated meters; each exchange costs RS-485 time."""

    def __init__(self, meters: dict[int, SimMeter], clock: FakeClock) -> None:
        self.meters = meters
        self.clock = clock

    async def read(self, unit_id: int, request: ReadRequest) -> list[int]:
        registers = self.meters[unit_id].registers(request.function, request.address, request.count)
        chars = 8 + 5 + 2 * request.count  # request frame + response frame, 11 bits a character at 9600 baud
        self.clock.ms += math.ceil(chars * 11 / 9.6) + 4 + 18  # + inter-frame gaps + the meter's turnaround
        return list(registers)

    async def close(self) -> None:
        pass


class Site:
    """A gateway with a few meters on one RS-485 line, its store and its signer."""

    def __init__(self, folder: Path, meters: list[tuple[str, str, int]], *, compress: bool) -> None:
        self.clock = FakeClock(START_MS)
        self.sims = {unit: SimMeter(profile, unit, seed=7, clock=self.clock.seconds) for _, profile, unit in meters}
        self.meters = []
        for meter_id, _, unit in meters:
            profile: Profile = self.sims[unit].profile
            self.meters.append(ModbusMeter(meter_id, unit, profile.value_specs(), max_gap=profile.max_gap))
        self.driver = ModbusDriver(cast(Any, SimBus(self.sims, self.clock)), clock=self.clock)  # duck-typed bus
        self.store = Store(folder / "meterlink.db", GATEWAY)
        self.signer = Signer(rfc8037_key(), compress=compress)
        self.slot = START_MS

    async def poll_cycle(self) -> None:
        """One wake-up of the bus: every meter once, one transaction (as BusPoller.cycle does)."""
        self.clock.ms = self.slot + 3  # the poller wakes a few ms after the slot boundary
        readings: list[Reading] = []
        for meter in self.meters:
            readings.extend(await self.driver.read(meter, self.slot))
        self.store.append(readings)
        self.slot += POLL_MS

    def upload(self, limit: int) -> tuple[bytes, bytes]:
        """The next readings message of at most ``limit`` readings: (payload JSON, signed message)."""
        rows = self.store.pending(limit)
        batch = self.store.reserve_batches(1)
        sent_at = self.slot - POLL_MS + UPLOAD_OFFSET_MS + 37
        payload = readings_message(GATEWAY, batch, sent_at, rows)
        self.store.mark_sent(rows[0].seq, rows[-1].seq, sent_at)
        return payload, self.signer.sign(payload)


async def worked_example() -> dict[str, str]:
    """One meter, polled every minute, uploaded every minute: the 3rd upload, both ways."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Site(Path(tmp), METERS[:1], compress=False)
        for _ in range(3):
            await site.poll_cycle()
            payload, plain = site.upload(500)
    compressed = Signer(rfc8037_key(), compress=True).sign(payload)
    return {
        "payload": payload.decode("utf-8"),
        "uncompressed": plain.decode("ascii"),
        "compressed": compressed.decode("ascii"),
    }


async def events_example() -> bytes:
    """The gateway's store is lost; the agent starts on a new one.

    The ``store_replaced`` event is the one the real :class:`Store` writes when it is created after
    a used one (the durable seq mark is ahead); only its clock is fixed, so the output is the same
    on every run. ``agent_started`` is added as ``Agent.run`` adds it, with a fixed host and pid.
    """
    with tempfile.TemporaryDirectory() as tmp:
        site = Site(Path(tmp), METERS[:1], compress=False)
        for _ in range(3):
            await site.poll_cycle()
            site.upload(500)
        site.store.close()
        for suffix in ("", "-wal", "-shm"):  # the store file is gone; its .seqmark beside it is not
            (Path(tmp) / f"meterlink.db{suffix}").unlink(missing_ok=True)
        opened = site.slot + 41_652  # the agent is back 41.652 s after the slot it missed
        with mock.patch("time.time", return_value=(opened + 0.5) / 1000):
            store = Store(Path(tmp) / "meterlink.db", GATEWAY)
        assert store.seq_jump is not None, "the new store did not continue above the durable mark"
        started = opened + 35  # Agent.run adds agent_started once the parts are built
        store.add_event("agent_started", started, {"host": "rtu-0007", "pid": 612})
        events = store.pending_events(100)
        assert [e.kind for e in events] == ["store_replaced", "agent_started"] and events[0].ts == opened
        batch = store.reserve_batches(1000)  # the uploader's first block on the new store
        message = events_message(GATEWAY, batch, started + 353, events)
        store.close()
    return bytes(message)


async def sizes(batch: int, *, compress: bool, batches: int = 3) -> tuple[float, float]:
    """Mean (message bytes per reading, payload JSON bytes per reading) over ``batches`` messages."""
    per_slot = sum(len(SimMeter(p, u).profile.value_specs()) for _, p, u in METERS)
    with tempfile.TemporaryDirectory() as tmp:
        site = Site(Path(tmp), METERS, compress=compress)
        for _ in range(math.ceil(batch * batches / per_slot)):
            await site.poll_cycle()
        wire = json_bytes = 0
        for _ in range(batches):
            payload, message = site.upload(batch)
            assert len(json.loads(payload)["readings"]) == batch
            wire += len(message)
            json_bytes += len(payload)
    n = batch * batches
    return wire / n, json_bytes / n


DOC = Path(__file__).resolve().parents[1] / "docs" / "wire-format.md"


async def blocks() -> dict[str, str]:
    """The contents of the doc's generated example blocks, by marker name."""
    ex = await worked_example()
    flagged = json.loads(ex["payload"])["readings"][0] | {"flags": ["clock_unsynced"]}
    return {
        "readings-payload": ex["payload"],
        "readings-uncompressed": ex["uncompressed"],
        "readings-compressed": ex["compressed"],
        "events-payload": json.dumps(json.loads(await events_example()), indent=2, ensure_ascii=False),
        "reading-with-flags": json.dumps(flagged, ensure_ascii=False, separators=(",", ":")),
    }


def update_doc(doc: str, contents: dict[str, str]) -> str:
    """Replace the fenced block after each ``<!-- example: NAME -->`` line named in ``contents``."""
    lines = doc.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        name = lines[i].strip().removeprefix("<!-- example:").removesuffix("-->").strip()
        if lines[i].strip().startswith("<!-- example:") and name in contents:
            i += 1
            while not lines[i].startswith("```"):  # blank lines between marker and fence
                out.append(lines[i])
                i += 1
            out.append(lines[i])  # opening fence
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            out.extend(contents[name].split("\n"))
            out.append(lines[i])  # closing fence
        i += 1
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    if args.update_doc:
        DOC.write_text(update_doc(DOC.read_text(encoding="utf-8"), await blocks()), encoding="utf-8")
        print(f"updated the example blocks of {DOC}")
        return
    if not args.sizes:
        for name, text in (await blocks()).items():
            print(f"== {name} ==\n{text}\n")
    print(f"{len(METERS)} meters x 4 quantities ({', '.join(f'{m}={p}' for m, p, _ in METERS)}), one slot a minute")
    for batch in (20, 100, 500):
        for compress in (False, True):
            wire, raw = await sizes(batch, compress=compress)
            name = "deflate" if compress else "none"
            print(
                f"batch {batch:3d}  compression {name:7s}  {wire:6.1f} bytes/reading on the wire "
                f"(payload JSON {raw:.1f} bytes/reading)"
            )


def main() -> None:
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true", help="only the bytes-per-reading figures")
    parser.add_argument("--update-doc", action="store_true", help="rewrite the example blocks in docs/wire-format.md")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
