"""From the site's config to what the platform's rules need: meters, intakes, thresholds, the archive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import Config
from .config_meters import BusConfig, ManualMeterConfig, MeterConfig
from .rulebook import MeterRuleSettings
from .rules.anomalies import AnomalySettings
from .rules.archive import archive_document
from .rules.permits import Intake

NEVER_MS = 10**15  # no_data never raised


def _slots_ms(config: Config, m: MeterConfig) -> tuple[int, int]:
    """(interval, no_data_after) in ms; a no_data_after of 0 means twice the interval."""
    if isinstance(m, ManualMeterConfig):  # read once a month or so: one slot a day, and no no_data of its own
        return 86_400_000, (m.no_data_after or 0) * 1000 or NEVER_MS
    return config.poll_interval(m) * 1000, (m.no_data_after or 0) * 1000


def meter_settings(config: Config, wrap_at: Mapping[str, float | None]) -> list[MeterRuleSettings]:
    """Every enabled meter's rule settings; ``wrap_at`` is each meter's totalizer range (quality.py)."""
    return [
        MeterRuleSettings(
            id=m.id,
            interval_ms=_slots_ms(config, m)[0],
            max_flow=m.max_flow,
            one_directional=m.flow_direction == "forward",
            no_data_after_ms=_slots_ms(config, m)[1],
            wrap_at=wrap_at.get(m.id),
            calibrated=m.archive.calibrated,
            calibration_months=m.archive.calibration_months,
        )
        for m in config.enabled_meters
    ]


def intakes(config: Config) -> list[Intake]:
    """The configured intakes, each with the meters that name it (a return flow counted negative)."""
    return [
        Intake(
            id=i.id,
            permit=i.permit,
            source=i.source or "",
            annual_permit=i.annual_permit,
            annual_plan=i.annual_plan,
            daily_max=i.daily_max,
            expires=i.permit_expires,
            meters={m.id: -1.0 if m.return_flow else 1.0 for m in config.enabled_meters if m.intake == i.id},
        )
        for i in config.intakes
    ]


def anomaly_settings(config: Config) -> AnomalySettings:
    r = config.rules
    return AnomalySettings(
        zero_notice_days=r.zero_notice_days,
        zero_alarm_days=r.zero_alarm_days,
        large_factor=r.large_factor,
        report_rate_target=r.report_rate_target,
        clock_drift_s=r.clock_drift_s,
    )


def transmission(bus: BusConfig) -> str:
    """How a meter's data reach the gateway, for the archive when the config does not say."""
    protocol = "SZY206" if bus.protocol == "szy206" else "Modbus RTU" if bus.type == "serial" else "Modbus TCP"
    if bus.type == "serial":
        return f"RS-485 {protocol}, {bus.baudrate} {bus.bytesize}{bus.parity}{bus.stopbits}"
    return f"{protocol} over TCP/IP"


def archive_entry(config: Config, meter: MeterConfig) -> dict[str, Any]:
    fields = meter.archive.model_dump()
    fields["transmission"] = fields["transmission"] or (
        transmission(config.buses[meter.bus]) if meter.bus is not None else "manual reading, with photo evidence"
    )
    fields["intake"] = meter.intake
    return fields


def archive(config: Config) -> dict[str, Any]:
    """The meter archive the gateway publishes: every configured meter by id, the fields that are set."""
    document = archive_document(config.gateway.id, {m.id: archive_entry(config, m) for m in config.meters})
    meters: dict[str, Any] = document["meters"]
    return meters
