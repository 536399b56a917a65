"""Building the agent's parts from its config: the uplinks, the pollers and the rulebook.

Plain functions of the config and the callbacks the parts call back into the running agent with;
agent/service.py builds with them at start and again on a reload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meterlink.drivers.base import Driver, Reading
from meterlink.wire import jws

from . import keys, rules_config
from .buses import build_bus, quality_check
from .clock import ClockCheck
from .config import Config
from .latest import LatestValues
from .monitor import Monitor, meter_rows
from .outbox import Outbox
from .pollcost import poll_cost_ms
from .receipts import ReceiptBook
from .rulebook import Rulebook
from .scheduler import BusPoller, ScheduledMeter
from .uplinks.mqtt import MqttLink, MqttSettings, make_tls_context
from .uploader import Uploader

if TYPE_CHECKING:
    from .uplinks.sl651 import Sl651Station
    from .uplinks.szy206 import SiteTerminal

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]


def mqtt_settings(config: Config, *, backoff_max: float = 60.0) -> MqttSettings:
    m = config.uplink.mqtt
    assert m is not None
    gw = config.gateway.id
    tls = None
    if m.tls:
        tls = make_tls_context(
            str(m.ca) if m.ca else None,
            str(m.client_cert) if m.client_cert else None,
            str(m.client_key) if m.client_key else None,
        )
    return MqttSettings(
        host=m.host,
        port=m.port,
        client_id=m.client_id or f"meterlink-{gw}",
        status_topic=f"{m.topic_prefix}/{gw}/status",
        protocol=m.protocol,
        tls=tls,
        username=m.username,
        password=m.password(),
        keepalive=m.keepalive,
        connect_timeout=min(m.publish_timeout, 30.0),
        backoff_max=backoff_max,
    )


def build_mqtt(
    cfg: Config,
    key: Ed25519PrivateKey,
    outbox: Outbox,
    monitor: Monitor,
    on_receipt: Callable[[str, bytes], None],
    *,
    backoff_max: float,
) -> tuple[MqttLink | None, Uploader | None]:
    """The MQTT link and the uploader that drains the store through it, when configured."""
    m = cfg.uplink.mqtt
    if m is None:
        return None, None
    signer = jws.Signer(key, compress=m.compression == "deflate")
    link = MqttLink(mqtt_settings(cfg, backoff_max=backoff_max))
    receipts = None
    if m.receipts:
        verifier = jws.Verifier([keys.load_public_key(m.receipt_key)]) if m.receipt_key else None
        receipts = ReceiptBook(cfg.gateway.id, int(m.receipt_timeout * 1000), verifier)
        link.subscriptions.append(f"{m.topic_prefix}/{cfg.gateway.id}/receipts")
        link.on_message = on_receipt
    uploader = Uploader(
        outbox,
        link,
        signer,
        gateway=cfg.gateway.id,
        topic_prefix=m.topic_prefix,
        interval_s=m.upload_interval,
        batch_size=m.batch_size,
        publish_timeout=m.publish_timeout,
        backfill_rate=m.backfill_rate,
        receipts=receipts,
    )
    uploader.on_delivered = monitor.delivered
    return link, uploader


def build_terminal(
    cfg: Config, outbox: Outbox, latest: LatestValues, event: EventSink, *, backoff_max: float
) -> SiteTerminal | None:
    """The SZY206 site terminal toward a central station, when configured."""
    if cfg.uplink.szy206 is None:
        return None
    from .uplinks.szy206 import SiteTerminal  # the SZY206 stack is loaded only where it is used

    positions = {mc.szy206_position: mc.id for mc in cfg.enabled_meters if mc.szy206_position}
    return SiteTerminal(cfg.uplink.szy206, positions, outbox, latest, event, backoff_max=backoff_max)


def build_sl651(
    cfg: Config, outbox: Outbox, latest: LatestValues, event: EventSink, *, backoff_max: float
) -> Sl651Station | None:
    """The SL651 station toward a centre, when configured."""
    if cfg.uplink.sl651 is None:
        return None
    from .uplinks.sl651 import Sl651Station  # the SL651 codec is loaded only where it is used

    return Sl651Station(cfg.uplink.sl651, outbox, latest, event, backoff_max=backoff_max)


def build_pollers(
    cfg: Config,
    monitor: Monitor,
    sink: Callable[[Sequence[Reading]], Awaitable[None]],
    event: EventSink,
    clock_check: ClockCheck,
    on_report: Callable[[str, list[Reading]], Awaitable[None]],
) -> tuple[list[BusPoller], list[Driver]]:
    """A poller per bus with enabled meters, over the driver its protocol asks for (the pollers see
    it through the monitor, which counts every poll)."""
    buses: list[Driver] = []
    pollers = []
    for name, bus_cfg in cfg.buses.items():
        configured = [mc for mc in cfg.enabled_meters if mc.bus == name]
        if not configured:
            continue
        driver, built = build_bus(name, bus_cfg, configured, on_report=on_report)
        meters = [
            ScheduledMeter(
                m,
                cfg.poll_interval(mc) * 1000,
                meter_cost_ms=poll_cost_ms(bus_cfg, m),
                quality=quality_check(mc, m),
            )
            for mc, m in built
        ]
        buses.append(driver)
        observed = monitor.observe(name, driver, meter_rows(cfg, name))
        pollers.append(BusPoller(name, observed, meters, sink, monitor.events(event), clock_check))
    return pollers, buses


def build_rulebook(
    cfg: Config,
    outbox: Outbox,
    pollers: list[BusPoller],
    clock_offset: Callable[[], tuple[float | None, str]],
    on_recorded: Callable[[], None],
) -> Rulebook:
    mqtt = cfg.uplink.mqtt
    wrap_at = {
        m.meter.id: m.quality.moduli.get("volume_total") if m.quality else None for p in pollers for m in p.meters
    }
    return Rulebook(
        outbox,
        rules_config.meter_settings(cfg, wrap_at),
        zone=cfg.gateway.zone,
        intakes=rules_config.intakes(cfg),
        settings=rules_config.anomaly_settings(cfg),
        upload_interval_ms=mqtt.upload_interval * 1000 if mqtt is not None else None,
        clock_offset=clock_offset,
        on_recorded=on_recorded,
    )


def link_terminal_to_pollers(terminal: SiteTerminal | None, pollers: list[BusPoller]) -> None:
    """The site terminal asks the pollers whether a meter is failing (its reports then say so)."""
    if terminal is not None:
        states = {m.meter.id: m.state for p in pollers for m in p.meters}
        terminal.meter_failing = lambda meter: meter in states and states[meter].online is False
