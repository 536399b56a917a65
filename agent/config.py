"""The site configuration: one TOML file, validated by pydantic models that forbid unknown keys.

A technician misspells keys; a silently ignored key is a meter that never reports. So every model
forbids extra keys, and every error names its path (``meters[well-1].unit_id: ...``).

Relative paths in the file are relative to the file itself, so a site folder can be moved whole.
Secrets (the MQTT password) come from a file or an environment variable, never from this file, and
are held as ``SecretStr`` so they never appear in a repr, a log line or an error message.

This module holds the whole file's model (``Config``), the small sections, what checks one section
against another, and ``load``. The larger sections sit beside it: buses and meters in
config_meters.py, each uplink's in uplinks/<name>_config.py; the base they share in config_types.py,
the wording of errors in config_errors.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from . import addressing
from .config_errors import ConfigLines
from .config_meters import ARCHIVE_FIELDS, METER_KEYS, BusConfig

# The buses' and meters' models live in config_meters.py, each uplink's beside its uplink; the tests
# still name these through this module, the whole file's.
from .config_meters import ManualMeterConfig as ManualMeterConfig
from .config_meters import MeterConfig as MeterConfig
from .config_meters import ModbusMeterConfig as ModbusMeterConfig
from .config_meters import SerialBusConfig as SerialBusConfig
from .config_meters import Szy206MeterConfig as Szy206MeterConfig
from .config_meters import TcpBusConfig as TcpBusConfig
from .config_types import Day, FilePath, Ident, Strict
from .errors import ConfigError
from .osuser import effective_user
from .uplinks.mqtt_config import MqttConfig
from .uplinks.sl651_config import Sl651UplinkConfig
from .uplinks.szy206_config import Szy206UplinkConfig as Szy206UplinkConfig


class GatewayConfig(Strict):
    id: Ident
    poll_interval: Annotated[int, Field(ge=1, le=86400)] = 60
    # The site's time zone: days, months and quarters (daily volumes, report rates, permits) are local.
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'{v!r} is not a time zone name (IANA, e.g. "Asia/Shanghai")') from None
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# Room per configured meter in the default store cap: 400 days of hourly and 35 days of 5-minute
# readings of five quantities is about 98,000 readings, about 4 MB in the store (bench_store.py).
MB_PER_METER = 6
MIN_CAPACITY_MB = 32


class StoreConfig(Strict):
    path: FilePath = Path("meterlink.db")
    capacity_mb: Annotated[float, Field(ge=1, le=1_000_000)] | None = None  # default: sized per meter
    overflow: Literal["drop_oldest", "refuse"] = "drop_oldest"
    retention_days: Annotated[float, Field(ge=0, le=3650)] = 35


class IntakeConfig(Strict):
    """A permitted abstraction point: the meters that name it (``intake = ID``) make up its volume."""

    id: Ident
    permit: str = ""  # the abstraction permit's number (取水许可证号)
    source: Literal["surface", "ground"] | None = None
    annual_permit: Annotated[float, Field(gt=0)] | None = None  # m3 a year
    annual_plan: Annotated[float, Field(gt=0)] | None = None  # m3 this year
    daily_max: Annotated[float, Field(gt=0)] | None = None  # m3 a day
    permit_expires: Day | None = None


class RulesConfig(Strict):
    """The platform's rules at the meter: thresholds (defaults: ../meters rules, marked unverified there)."""

    zero_notice_days: Annotated[int, Field(ge=1, le=366)] = 7
    zero_alarm_days: Annotated[int, Field(ge=1, le=366)] = 30
    large_factor: Annotated[float, Field(ge=1, le=100)] = 1.2
    report_rate_target: Annotated[float, Field(gt=0, le=1)] = 0.95
    clock_drift_s: Annotated[float, Field(gt=0, le=86400)] = 60

    @model_validator(mode="after")
    def _alarm_after_notice(self) -> RulesConfig:
        if self.zero_alarm_days < self.zero_notice_days:
            raise ValueError("zero_alarm_days must not be less than zero_notice_days")
        return self


class SigningConfig(Strict):
    key: FilePath


class UplinkConfig(Strict):
    mqtt: MqttConfig | None = None
    szy206: Szy206UplinkConfig | None = None
    sl651: Sl651UplinkConfig | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> UplinkConfig:
        if self.mqtt is None and self.szy206 is None and self.sl651 is None:
            raise ValueError("configure [uplink.mqtt], [uplink.szy206] or both, or [uplink.sl651] for an SL651 centre")
        return self


class ClockConfig(Strict):
    # "kernel": trust the kernel's NTP state (adjtimex). "assume_synced": a site with an RTC or GPS.
    sync_check: Literal["kernel", "assume_synced"] = "kernel"


LogLevel = Literal["debug", "info", "warning", "error"]


class LogConfig(Strict):
    level: LogLevel = "info"
    # Per area (agent/logsetup.py AREAS), each unset follows `level`: one bus debugged alone.
    modbus: LogLevel | None = None
    szy206: LogLevel | None = None
    mqtt: LogLevel | None = None
    store: LogLevel | None = None


class MetricsConfig(Strict):
    # Where /metrics is served for Prometheus: "127.0.0.1:9108" keeps it on the gateway itself,
    # "0.0.0.0:9108" opens it to the site network (it carries no secrets, but names the meters).
    listen: str

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'{value!r} is not HOST:PORT (e.g. "127.0.0.1:9108")')
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class Config(Strict):
    gateway: GatewayConfig
    buses: dict[Ident, BusConfig] = Field(default_factory=dict)  # none at a site whose meters are all read by hand
    meters: list[MeterConfig] = Field(min_length=1)
    store: StoreConfig = StoreConfig()
    signing: SigningConfig
    uplink: UplinkConfig
    clock: ClockConfig = ClockConfig()
    log: LogConfig = LogConfig()
    intakes: list[IntakeConfig] = Field(default_factory=list)
    rules: RulesConfig = RulesConfig()
    metrics: MetricsConfig | None = None  # no [metrics]: no endpoint

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        intakes = [i.id for i in self.intakes]
        if dupes := sorted({i for i in intakes if intakes.count(i) > 1}):
            raise ValueError(f"intakes: {', '.join(dupes)} named twice")
        for meter in self.meters:
            if meter.intake is not None and meter.intake not in intakes:
                raise ValueError(
                    f"meters[{meter.id}].intake: no intake named {meter.intake!r}"
                    + (f" (intakes: {', '.join(intakes)})" if intakes else " ([[intakes]] is empty)")
                )
        seen: set[str] = set()
        for meter in self.meters:
            if meter.id in seen:
                raise ValueError(f"meters[{meter.id}].id: {meter.id!r} is used twice")
            seen.add(meter.id)
            if isinstance(meter, ManualMeterConfig):
                continue  # read by hand
            bus = self.buses.get(meter.bus)
            if bus is None:
                known = (
                    f"buses: {', '.join(self.buses)}"
                    if self.buses
                    else ("there are no [buses]; a meter read by hand has no bus")
                )
                raise ValueError(f"meters[{meter.id}].bus: no bus named {meter.bus!r} ({known})")
            if (bus.protocol == "szy206") != isinstance(meter, Szy206MeterConfig):
                raise ValueError(
                    f"meters[{meter.id}]: bus {meter.bus} speaks {bus.protocol}; "
                    + (
                        "give this meter an address (SZY206)"
                        if bus.protocol == "szy206"
                        else 'an SZY206 meter (address) needs a bus with protocol = "szy206"'
                    )
                )
            if isinstance(meter, Szy206MeterConfig):
                continue
            if bus.type == "serial" and not 1 <= meter.unit_id <= 247:
                raise ValueError(f"meters[{meter.id}].unit_id: {meter.unit_id} is not a serial unit id (1..247)")
        if clashes := addressing.conflicts(self.buses, self.meters):
            raise ConfigLines(clashes)
        if self.uplink.szy206 is not None:
            positions: dict[int, str] = {}
            for meter in self.meters:
                p = meter.szy206_position
                if p is None:
                    continue
                if p in positions:
                    raise ValueError(f"meters[{meter.id}].szy206_position: {p} is already {positions[p]}'s")
                positions[p] = meter.id
            if not positions:
                raise ValueError("uplink.szy206: no meter has a szy206_position, so reports would be empty")
        if self.uplink.sl651 is not None and (unknown := sorted(set(self.uplink.sl651.meters) - seen)):
            raise ConfigLines([f"uplink.sl651.meters.{m}: no meter has the id {m!r}" for m in unknown])
        return self

    def store_capacity_bytes(self) -> int:
        mb = self.store.capacity_mb or max(MIN_CAPACITY_MB, MB_PER_METER * len(self.meters))
        return int(mb * 1024 * 1024)

    def poll_interval(self, meter: MeterConfig) -> int:
        return meter.poll_interval or self.gateway.poll_interval

    @property
    def enabled_meters(self) -> list[MeterConfig]:
        return [m for m in self.meters if m.enabled]


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file.

    Raises:
        ConfigError: with one ``path.to.key: reason`` line per problem.
    """
    from .config_errors import format_validation_error, read_toml

    file = Path(path)
    data = read_toml(file)
    try:
        return Config.model_validate(data, context={"base_dir": file.resolve().parent})
    except Exception as exc:  # pydantic.ValidationError, but also errors raised inside validators
        raise ConfigError(*format_validation_error(exc, data, METER_KEYS)) from None


def warnings(config: Config) -> list[str]:
    """What the file itself says that is not an error (ports, folders and files: agent/preflight.py)."""
    out = []
    for meter in config.meters:
        if not meter.enabled:
            out.append(f"meters[{meter.id}]: disabled, it will not be polled")
        if meter.archive.calibrated is not None and meter.archive.calibration_months is None:
            out.append(f"meters[{meter.id}].archive.calibration_months: not set, so no calibration is ever due")
    # One line for the whole archive: a site commissioned before its ledger is ready is not a fault.
    gaps = {
        m.id: [f for f in ARCHIVE_FIELDS if getattr(m.archive, f) is None and f != "transmission"]
        for m in config.meters
    }
    if incomplete := [m for m, fields in gaps.items() if fields]:
        fields = sorted({f for m in incomplete for f in gaps[m]}, key=ARCHIVE_FIELDS.index)
        out.append(
            f"meters.archive: {len(incomplete)} of {len(config.meters)} meters lack archive fields "
            f"({', '.join(fields)}; e.g. meters[{incomplete[0]}]): the platform's meter archive asks for them"
        )
    return out


def check_files(config: Config) -> list[str]:
    """Errors about files the config names (keys, certificates): these must exist to run. The store's
    file and folder are checked by agent/storecheck.py."""
    problems = []
    candidates: list[tuple[str, Path | None]] = [("signing.key", config.signing.key)]
    m = config.uplink.mqtt
    if m is not None:
        candidates += [
            ("uplink.mqtt.ca", m.ca),
            ("uplink.mqtt.client_cert", m.client_cert),
            ("uplink.mqtt.client_key", m.client_key),
            ("uplink.mqtt.password_file", m.password_file),
            ("uplink.mqtt.receipt_key", m.receipt_key),
        ]
    for key, path in candidates:
        if path is None:
            continue
        try:
            if not path.exists():
                problems.append(f"{key}: {path} does not exist")
            elif not path.is_file():
                problems.append(f"{key}: {path} is not a file")
            elif not os.access(path, os.R_OK):
                problems.append(f"{key}: {path} is not readable by user {effective_user()}")
        except OSError as exc:
            problems.append(f"{key}: {path}: {exc.strerror}")
    env = m.password_env if m is not None else None
    if env and env not in os.environ:
        problems.append(f"uplink.mqtt.password_env: environment variable {env} is not set")
    return problems


def describe(config: Config) -> str:
    """The ``OK`` line of check-config."""
    meters = len(config.enabled_meters)
    buses = len({m.bus for m in config.enabled_meters if m.bus is not None})
    return f"OK: {meters} meter{'s' if meters != 1 else ''} on {buses} bus{'es' if buses != 1 else ''}"
