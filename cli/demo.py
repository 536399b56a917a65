"""``meterlink demo``: three simulated meters, the real agent and a platform that verifies everything.

One meter speaks Modbus TCP, one Modbus RTU over a pty (the way a site's RS-485 adapter appears),
one SZY206 over a second pty. The agent polls them every 2 s and uploads every 2 s to a broker (a
private mosquitto unless ``--broker`` is given); the simulated platform verifies every message with
the gateway's public key and prints a line per upload. With ``--szy206-station HOST:PORT`` the
agent also reports as an SZY206 site terminal to that central station, every 5 s; with
``--sl651-center HOST:PORT`` as an SL651 station to that centre (a scheduled report every 10 s, an
hourly one, keep-alives; try ``meterlink sim sl651-center --listen 5051``). It sits with the
command line, above ``agent`` and ``sim``, because it launches both.

``--dir`` keeps one config (``meterlink.toml``), the keys and the store, so a second run continues
the same gateway and its seq; endpoints that change between runs (ports, the pty) are rewritten
(cli/demo_site.py writes the folder).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from meterlink.agent import config as cfgmod
from meterlink.agent import keys, logsetup
from meterlink.agent.errors import MeterlinkError
from meterlink.wire.jws import Verifier

from .demo_site import DemoSite, ensure_keys, gateway_id, host_port, write_config

if TYPE_CHECKING:
    from meterlink.agent.service import Agent
    from meterlink.sim.broker import LocalBroker
    from meterlink.sim.platform import Platform


def _duration(text: str | None) -> float | None:
    """``--duration`` in seconds: a finite number above 0 (float() alone lets nan and inf through)."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise MeterlinkError("--duration must be a positive number of seconds")
    return seconds


def run_demo(args: argparse.Namespace) -> int:
    args.duration = _duration(args.duration)
    if args.broker is not None:
        url = urlsplit(args.broker)
        if url.scheme != "mqtt" or not url.hostname:
            raise MeterlinkError("--broker must look like mqtt://HOST:PORT (the demo uses plain MQTT)")
    host_port(args.szy206_station, "--szy206-station")
    host_port(args.sl651_center, "--sl651-center")
    logsetup.setup("warning")
    if args.dir is None:
        with tempfile.TemporaryDirectory(prefix="meterlink-demo-") as tmp:
            return asyncio.run(_demo(Path(tmp), args))
    folder = Path(args.dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MeterlinkError(f"--dir {folder}: {exc.strerror}") from None
    return asyncio.run(_demo(folder.resolve(), args))


def site_time(ms: int, utc_offset_h: float) -> str:
    """A slot as the station shows it: in the site's zone (not this machine's), e.g. ``12:45:45 (UTC+8)``."""
    at = datetime.fromtimestamp(ms / 1000, UTC) + timedelta(hours=utc_offset_h)
    return f"{at:%H:%M:%S} ({_zone_name(utc_offset_h)})"


def _zone_name(utc_offset_h: float) -> str:
    if not utc_offset_h:
        return "UTC"
    hours, minutes = divmod(round(abs(utc_offset_h) * 60), 60)
    return f"UTC{'+' if utc_offset_h > 0 else '-'}{hours}" + (f":{minutes:02d}" if minutes else "")


def say(text: str) -> None:
    print(text, flush=True)


async def _demo(folder: Path, args: argparse.Namespace) -> int:
    # Imported here, when the demo runs: `meterlink run` never loads the simulators.
    from meterlink.agent.service import Agent
    from meterlink.protocols.szy206.fields import Address
    from meterlink.sim.meter_model import SimMeter
    from meterlink.sim.modbus_server import ModbusSimServer
    from meterlink.sim.szy206_meter import SimSzy206Meter
    from meterlink.sim.szy206_meter_server import Szy206SimServer

    config_path = folder / "meterlink.toml"
    gateway = gateway_id(config_path)
    pub_path = ensure_keys(folder)
    broker, broker_url = _start_broker(args.broker)
    tcp_sim = ModbusSimServer({1: SimMeter("tuf2000", 1, seed=1)})
    rtu_sim = ModbusSimServer({1: SimMeter("emf_generic", 1, seed=2)})
    szy_sim = Szy206SimServer([SimSzy206Meter(Address(division="530381", station=13), seed=3)])
    platform = None
    agent = None
    try:
        tcp_port = await tcp_sim.start_tcp()
        pty = rtu_sim.start_pty()
        szy206_pty = szy_sim.start_pty()
        site = DemoSite(gateway, tcp_port, pty, szy206_pty, broker_url, args.szy206_station, args.sl651_center)
        write_config(config_path, site)
        config = cfgmod.load(config_path)
        _announce(site, folder, private_broker=broker is not None)
        platform = _platform(site, pub_path)
        try:
            await asyncio.get_running_loop().run_in_executor(None, platform.start)
        except (OSError, TimeoutError) as exc:
            raise MeterlinkError(f"cannot subscribe at {broker_url}: {exc}") from None
        agent = Agent(config, backoff_max=2.0)
        agent.build()
        _say_confirmations(agent)
        await _run(agent, platform, args.duration)
    finally:
        if platform is not None:
            platform.stop()
        await tcp_sim.stop()
        await rtu_sim.stop()
        await szy_sim.stop()
        if broker is not None:
            broker.stop()
            shutil.rmtree(broker.workdir, ignore_errors=True)
    return _summary(platform, agent)


def _start_broker(url: str | None) -> tuple[LocalBroker | None, str]:
    """A private mosquitto when no ``--broker`` is given (the broker, its URL); else (None, the URL)."""
    from meterlink.sim.broker import BrokerError, LocalBroker

    if url is not None:
        return None, url
    # The broker's own files live apart: --dir holds exactly one config, the keys and the store.
    broker = LocalBroker(Path(tempfile.mkdtemp(prefix="meterlink-mqtt-")))
    try:
        broker.start()
    except BrokerError as exc:
        raise MeterlinkError(str(exc)) from None
    return broker, broker.url


def _announce(site: DemoSite, folder: Path, *, private_broker: bool) -> None:
    say(f"meterlink demo: gateway {site.gateway}, folder {folder}")
    say(f"  meter intake-ultrasonic (TUF-2000 profile) on Modbus TCP 127.0.0.1:{site.tcp_port}")
    say(f"  meter outlet-emf (electromagnetic converter) on Modbus RTU over {site.pty}")
    say(f"  meter well-szy206 (SZY206 terminal 530381:13) over {site.szy206_pty}")
    if site.szy206_station is not None:
        say(f"  reporting as SZY206 site terminal 430100:7 to the station at {site.szy206_station} every 5 s")
    if site.sl651_center is not None:
        say(f"  reporting as SL651 station 0043010007 to the centre at {site.sl651_center} every 10 s")
    private = " (private mosquitto)" if private_broker else ""
    say(f"  broker {site.broker_url}{private}; polling and uploading every 2 s")


def _platform(site: DemoSite, pub_path: Path) -> Platform:
    """The simulated platform: verifies every message with the gateway's key, says a line per batch."""
    from meterlink.sim.platform import Platform

    verifier = Verifier([keys.load_public_key(pub_path)])
    url = urlsplit(site.broker_url)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    return Platform(host, port, verifier, gateway=site.gateway, on_batch=_on_batch, on_reject=_on_reject)


def _on_batch(kind: str, payload: dict, new: int) -> None:  # type: ignore[type-arg]
    if kind == "readings":
        rows = payload["readings"]
        meters = sorted({r["meter"] for r in rows})
        say(
            f"upload batch {payload['batch']}: {len(rows)} readings, seq {rows[0]['seq']}-{rows[-1]['seq']}, "
            f"from {', '.join(meters)}: signature verified"
        )
    elif kind == "events":
        say(f"events batch {payload['batch']}: {', '.join(e['kind'] for e in payload['events'])}: signature verified")
    elif kind == "daily":
        days = ", ".join(f"{d['meter']} {d['day']} {d['volume']} m3" for d in payload["daily"])
        say(f"day summaries batch {payload['batch']}: {days}: signature verified")
    elif kind == "archive":
        say(f"meter archive batch {payload['batch']}: {len(payload['archive'])} meters: signature verified")


def _on_reject(topic: str, why: str) -> None:
    say(f"REJECTED message on {topic}: {why}")


def _say_confirmations(agent: Agent) -> None:
    """A line for each report the SZY206 station confirms or the SL651 centre acknowledges."""
    assert agent.parts is not None
    if agent.parts.terminal is not None:
        zone = agent.parts.terminal.cfg.utc_offset_hours
        agent.parts.terminal.on_confirmed = lambda slot, backfill: say(
            f"szy206 report of {site_time(slot, zone)} confirmed by the station" + (" (backfilled)" if backfill else "")
        )
    if agent.parts.sl651 is not None:
        zone = agent.parts.sl651.cfg.utc_offset_hours
        agent.parts.sl651.on_acknowledged = lambda report, backfill: say(
            f"sl651 report {report.function:02X}H of {site_time(report.slot, zone)} acknowledged by the centre"
            + (" (backfilled)" if backfill else "")
        )


async def _run(agent: Agent, platform: Platform, duration: float | None) -> None:
    """Run the agent until Ctrl-C, SIGTERM or ``duration``, then let the platform take what is in flight."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.stop)
    if duration is not None:
        loop.call_later(duration, agent.stop)
    await agent.run(final_flush=True)
    assert agent.parts is not None
    sent_upto = agent.parts.outbox.next_seq - 1
    # Give the platform a moment for the last messages in flight to it.
    await loop.run_in_executor(
        None, platform.wait_for, lambda r: bool(r.readings) and max(s for _, s in r.readings) >= sent_upto, 3.0
    )


def _summary(platform: Platform, agent: Agent | None) -> int:
    """The closing lines: what the platform received and verified, what the station and centre took."""
    got = platform.received
    readings = len(got.readings)
    say(f"{readings} readings from {len(got.meters())} meters, {readings} verified, {got.rejected} rejected")
    if agent is not None and agent.parts is not None and agent.parts.terminal is not None:
        stats = agent.parts.terminal.stats
        say(f"szy206: {stats.reports_confirmed} reports confirmed by the station, {stats.resends} resent")
    if agent is not None and agent.parts is not None and agent.parts.sl651 is not None:
        counts = agent.parts.sl651.stats
        say(
            f"sl651: {counts.reports_acknowledged} reports acknowledged by the centre, {counts.resends} resent, "
            f"{counts.reports_given_up} kept for later"
        )
    if got.rejected or not readings:
        if not readings:
            print("meterlink demo: no readings arrived; see the log lines above", file=sys.stderr)
        return 1
    return 0
