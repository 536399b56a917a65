"""The site configuration: one TOML file, validated by pydantic models that forbid unknown keys.

A technician misspells keys; a silently ignored key is a meter that never reports. So every model
forbids extra keys, and every error names its path (``meters[well-1].unit_id: ...``).

Relative paths in the file are relative to the file itself, so a site folder can be moved whole.
Secrets (the MQTT password) come from a file or an environment variable, never from this file, and
are held as ``SecretStr`` so they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.registermap import RegisterMap, RegisterSpec
from meterlink.protocols.modbus.values import ValueSpec

from . import addressing
from .config_errors import ConfigLines
from .errors import ConfigError
from .osuser import effective_user
from .uplinks.sl651_config import Sl651UplinkConfig

# Baud rates a UART on an RTU or a Raspberry Pi actually offers; anything else is a typo.
BAUDRATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# ASCII digits only: \d would also match other scripts' digits, which no frame can carry.
Ident = Annotated[str, Field(pattern=ID_PATTERN)]
# TOML has no path type: a path is a string, so these fields alone convert (everything else is strict),
# relative to the config file's folder.
FilePath = Annotated[Path, Field(strict=False), BeforeValidator(lambda v, info: _resolve(v, info))]
Seconds = Annotated[float, Field(gt=0)]
# A TOML date (2026-11-03), or the same written as a string.
Day = Annotated[date, Field(strict=False)]


class Strict(BaseModel):
    # NaN and infinity are typos in a config: a scale of nan would silence a meter for ever.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False, strict=True)


def _resolve(value: Any, info: ValidationInfo) -> Any:
    """A path relative to the config file's folder (passed in the validation context)."""
    if not isinstance(value, str):
        return value  # not a path: leave the type error to pydantic
    base = (info.context or {}).get("base_dir", Path.cwd())
    try:
        path = Path(value).expanduser()
    except RuntimeError:
        raise ValueError(f"{value!r}: cannot expand the ~ (no such user)") from None
    return path if path.is_absolute() else (base / path)


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


class _Bus(Strict):
    """What every bus has: the protocol its meters speak, and how long and how often to ask."""

    protocol: Literal["modbus", "szy206"] = "modbus"  # one protocol per line: their framings differ
    timeout: Annotated[float, Field(gt=0, le=30)] = 1.0
    retries: Annotated[int, Field(ge=0, le=5)] = 2


class SerialBusConfig(_Bus):
    """An RS-485 line on a serial port."""

    type: Literal["serial"]
    device: Annotated[str, Field(min_length=1)]
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8

    @field_validator("baudrate")
    @classmethod
    def _known_baudrate(cls, v: int) -> int:
        if v not in BAUDRATES:
            raise ValueError(f"{v} is not a standard baud rate ({', '.join(map(str, BAUDRATES))})")
        return v


class TcpBusConfig(_Bus):
    """A Modbus TCP (or SZY206 over TCP) endpoint."""

    type: Literal["tcp"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 502


# ``type`` decides which keys apply; config_errors.py words a missing or stray key as before.
BusConfig = Annotated[SerialBusConfig | TcpBusConfig, Field(discriminator="type")]


class ArchiveConfig(Strict):
    """A meter's entry in the platform's archive of metering devices (GB/T 28714-2023, annex A)."""

    make: str | None = None
    model: str | None = None
    serial: str | None = None
    principle: str | None = None  # measuring principle: electromagnetic, ultrasonic, mechanical, ...
    accuracy_class: str | None = None
    diameter_mm: Annotated[int, Field(ge=1, le=10_000)] | None = None  # nominal diameter, DN
    installed: Day | None = None
    calibrated: Day | None = None  # the last calibration (检定/校准)
    calibration_months: Annotated[int, Field(ge=1, le=240)] | None = None  # its period
    transmission: str | None = None  # default: the bus it is read over


ARCHIVE_FIELDS = tuple(ArchiveConfig.model_fields)


# A meter is one of three kinds, told apart by the keys its entry has always had (meter_kind): no
# bus, read by hand; an address, SZY206; otherwise Modbus. Each kind forbids the others' keys, and
# config_errors.py words such a key as "only for ..." (METER_KEYS). Fields keep the order of the one
# model meters once were, so errors come out in that order: a kind's keys sit in a base class, and
# pydantic puts a base's fields before those of the classes that derive from it.
PollInterval = Annotated[int, Field(ge=1, le=86400)]
# Place of the meter's flow/volume pair in SZY206 self-reports: fixed per meter, so reordering the
# file never relabels meters at the central station.
Szy206Position = Annotated[int, Field(ge=1, le=64)]


class _MeterId(Strict):
    id: Ident


class _ModbusKeys(_MeterId):
    bus: str  # the bus it is read over
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    poll_interval: PollInterval | None = None
    profile: str | None = None
    function: Literal[3, 4] | None = None
    numbering: Literal["wire", "manual"] | None = None
    registers: Annotated[list[RegisterSpec], Field(min_length=1)] | None = None
    max_gap: Annotated[int, Field(ge=0, le=64)] | None = None
    # Per-meter adjustments on top of a profile (a totalizer multiplier, a unit id on a TCP gateway).
    scale: dict[str, float] = {}
    enabled: bool = True
    szy206_position: Szy206Position | None = None


class _Szy206Keys(_MeterId):
    bus: str  # one whose protocol is "szy206"
    address: Annotated[str, Field(pattern=r"^[0-9]{6}:[0-9]{1,5}$")]  # division code and station number
    pairs: Annotated[int, Field(ge=1, le=23)] = 1
    time_label: Literal["szy206", "sl427", "none"] | None = None  # None: whatever each frame carries
    flow_unit: Literal["m3/h", "m3/s"] = "m3/h"
    poll_interval: PollInterval | None = None
    enabled: bool = True
    szy206_position: Szy206Position | None = None


class _ManualKeys(_MeterId):
    flow_unit: Literal["m3/h", "m3/s"] = "m3/h"  # of a flow read off its display
    poll_interval: PollInterval | None = None  # accepted, though nothing polls it
    enabled: bool = True


class _MeterShared(Strict):
    """What the platform's rules and archive know of every meter, whatever reads it."""

    # The meter's (or the permit's) largest flow in m3/h: a totalizer rising faster than 1.2 x this
    # is flagged "suspect" (abnormally large). Unset: no jump check.
    max_flow: Annotated[float, Field(gt=0)] | None = None
    # The intake (permit) this meter's volume counts towards; a return flow is subtracted.
    intake: Ident | None = None
    return_flow: bool = False
    # "forward": water only flows one way here, so a negative flow is an anomaly (volume_negative).
    flow_direction: Literal["forward", "both"] = "forward"
    # Seconds without a reading before no_data is raised (default: twice the poll interval).
    no_data_after: Annotated[int, Field(ge=1, le=30 * 86400)] | None = None
    archive: ArchiveConfig = ArchiveConfig()


class ModbusMeterConfig(_MeterShared, _ModbusKeys):
    """A meter polled over Modbus: a built-in profile or an inline register map."""

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str | None) -> str | None:
        if v is not None and v not in profiles.names():
            raise ValueError(f"unknown profile {v!r}; built-in profiles: {', '.join(profiles.names())}")
        return v

    @model_validator(mode="after")
    def _profile_or_map(self) -> ModbusMeterConfig:
        if (self.profile is None) == (self.registers is None):
            raise ValueError("give either profile = NAME or an inline [[meters.registers]] map, not both")
        if self.registers is not None and self.numbering is None:
            raise ValueError('an inline map must state numbering = "wire" (0-based) or "manual" (1-based)')
        if self.profile is not None and (self.numbering is not None or self.function is not None):
            raise ValueError("numbering and function come from the profile; use an inline map to change them")
        try:  # overlapping registers and duplicate quantities are errors now, not at run time
            self.register_map()
        except ValidationError as exc:
            raise ValueError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None
        known = {r.quantity for r in self.register_map().registers}
        if unknown := set(self.scale) - known:
            raise ValueError(f"scale names quantities this meter does not read: {', '.join(sorted(unknown))}")
        return self

    def register_map(self) -> RegisterMap:
        """The meter's map: its profile's, or the inline one."""
        if self.profile is not None:
            profile = profiles.load(self.profile)
            if self.max_gap is None:
                return profile
            return RegisterMap(
                function=profile.function,
                numbering=profile.numbering,
                max_gap=self.max_gap,
                registers=profile.registers,
            )
        assert self.registers is not None and self.numbering is not None
        return RegisterMap(
            function=self.function or 3, numbering=self.numbering, max_gap=self.max_gap or 0, registers=self.registers
        )

    def value_specs(self) -> list[ValueSpec]:
        """The meter's values with wire addresses, scaled by any per-meter ``scale``."""
        specs = self.register_map().value_specs()
        return [replace(s, scale=s.scale * self.scale.get(s.quantity, 1.0)) for s in specs]


class Szy206MeterConfig(_MeterShared, _Szy206Keys):
    """A meter that speaks SZY206 (a water-resource terminal) on a bus whose protocol is "szy206"."""

    @model_validator(mode="after")
    def _station_in_range(self) -> Szy206MeterConfig:
        station = int(self.address.split(":")[1])
        if not 1 <= station <= 60000:
            raise ValueError(f"address: station number {station} is outside 1..60000")
        return self


class ManualMeterConfig(_MeterShared, _ManualKeys):
    """A meter without a bus: never polled, its readings come from ``meterlink manual-reading``."""

    @property
    def bus(self) -> None:
        return None

    @property
    def szy206_position(self) -> None:
        return None  # a reading by hand now and then fills no slot of a periodic self-report


def meter_kind(entry: Any) -> str | None:
    """An entry's kind: no bus, read by hand; an address, SZY206; else Modbus. None: not a table."""
    if isinstance(entry, dict):
        if entry.get("bus") is None:
            return "manual"
        return "szy206" if entry.get("address") is not None else "modbus"
    return next((kind for kind, model in METER_KINDS.items() if isinstance(entry, model)), None)


METER_KINDS: dict[str, type[Strict]] = {
    "modbus": ModbusMeterConfig,
    "szy206": Szy206MeterConfig,
    "manual": ManualMeterConfig,
}
METER_KEYS = {kind: frozenset(model.model_fields) for kind, model in METER_KINDS.items()}
MeterConfig = Annotated[
    Annotated[ModbusMeterConfig, Tag("modbus")]
    | Annotated[Szy206MeterConfig, Tag("szy206")]
    | Annotated[ManualMeterConfig, Tag("manual")],
    # An entry that is no table gets the line it had when meters were one model.
    Discriminator(
        meter_kind,
        custom_error_type="meter_not_a_table",
        custom_error_message="Input should be a valid dictionary or instance of MeterConfig",
    ),
]
PolledMeterConfig = ModbusMeterConfig | Szy206MeterConfig


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


class MqttConfig(Strict):
    broker: str
    client_id: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    ca: FilePath | None = None
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    username: str | None = None
    password_file: FilePath | None = None
    password_env: str | None = None
    topic_prefix: Annotated[str, Field(pattern=r"^[^#+\s]+$")] = "meterlink"
    upload_interval: Annotated[int, Field(ge=1, le=86400)] = 60
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60
    publish_timeout: Annotated[float, Field(gt=0, le=300)] = 10
    compression: Literal["deflate", "none"] = "deflate"
    # After an outage the backlog drains oldest first at this many readings per second (0: as
    # fast as the link allows); live readings go out at every upload slot regardless.
    backfill_rate: Annotated[float, Field(ge=0, le=1_000_000)] = 2000
    # Application-level receipts: a batch counts as delivered only when the platform's receipt
    # arrives on <prefix>/<gateway>/receipts (signed with receipt_key, or trusted by broker ACL).
    receipts: bool = False
    receipt_key: FilePath | None = None
    receipt_timeout: Annotated[float, Field(gt=0, le=86400)] = 300
    # Photos of manual readings go out on <prefix>/<gateway>/evidence/<sha256> (off: only their digest).
    evidence: bool = False
    evidence_max_kb: Annotated[int, Field(ge=1, le=65_536)] = 4096

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("has no host name")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use username and password_file or password_env")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return v

    @model_validator(mode="after")
    def _tls_and_secrets(self) -> MqttConfig:
        tls = self.tls
        if not tls and (self.ca or self.client_cert or self.client_key):
            raise ValueError("ca/client_cert/client_key need an mqtts:// broker (TLS is never optional once set)")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        if self.password_file and self.password_env:
            raise ValueError("give password_file or password_env, not both")
        if (self.password_file or self.password_env) and not self.username:
            raise ValueError("a password needs a username")
        if self.receipt_key is not None and not self.receipts:
            raise ValueError("receipt_key is set but receipts = false")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.broker).port or (8883 if self.tls else 1883)

    def password(self) -> SecretStr | None:
        """Read the password now (a file can be rotated between restarts)."""
        if self.password_file is not None:
            return SecretStr(_read_password(self.password_file))
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"uplink.mqtt.password_env: environment variable {self.password_env} is not set")
            return SecretStr(value)
        return None


def _read_password(path: Path) -> str:
    """The file's text without its line ending; one ConfigError line when it cannot be used."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"uplink.mqtt.password_file: {path} is not UTF-8 text") from None
    except OSError as exc:  # removed or made unreadable since check-config
        raise ConfigError(f"uplink.mqtt.password_file: {path}: {exc.strerror or exc}") from None


class Szy206UplinkConfig(Strict):
    """The agent as an SZY206 site terminal reporting to a central station over TCP."""

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)]
    division: Annotated[str, Field(pattern=r"^[0-9]{6}$")]  # administrative division code, GB/T 2260
    station: Annotated[int, Field(ge=1, le=60000)]  # this site's station number
    password: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None  # PW key1 + key2, checked on 11H
    time_label: Literal["szy206", "sl427", "none"] = "szy206"  # 5 bytes, 7 bytes, or none
    utc_offset_hours: Annotated[float, Field(ge=-12, le=14)] = 8.0
    report_interval: Annotated[int, Field(ge=1, le=86400)] = 300
    keepalive: Annotated[int, Field(ge=0, le=3600)] = 60  # 0: no keep-alive frames
    confirm_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    retries: Annotated[int, Field(ge=0, le=3)] = 3
    tp_delay_min: Annotated[int, Field(ge=0, le=255)] = 10
    backfill: bool = True  # self-report missed slots after a reconnection, oldest first
    backfill_pace: Annotated[float, Field(ge=0, le=3600)] = 1.0  # seconds between backfilled reports
    trust_station_time: bool = False

    @property
    def tp_len(self) -> int:
        return {"szy206": 5, "sl427": 7, "none": 0}[self.time_label]

    @model_validator(mode="after")
    def _backfill_needs_a_time_label(self) -> Szy206UplinkConfig:
        if self.backfill and self.time_label == "none":
            # Without a time label a backfilled report looks exactly like a live one to the station.
            raise ValueError(
                "backfill needs a time label to say which slot a late report is for: set "
                "time_label, or backfill = false"
            )
        return self


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
    buses: dict[Ident, BusConfig] = {}  # none at a site whose meters are all read by hand
    meters: list[MeterConfig] = Field(min_length=1)
    store: StoreConfig = StoreConfig()
    signing: SigningConfig
    uplink: UplinkConfig
    clock: ClockConfig = ClockConfig()
    log: LogConfig = LogConfig()
    intakes: list[IntakeConfig] = []
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
