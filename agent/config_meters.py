"""The site file's ``[buses.*]`` and ``[[meters]]``: the lines meters hang on, and the meters themselves.

A bus is a serial line or a TCP endpoint, told apart by ``type``. A meter is one of three kinds:
polled over Modbus (a profile or an inline register map), polled over SZY206, or read by hand.
Which meter may sit on which bus, and clashing addresses, are checked by the whole file's model
(agent/config.py ``Config``), which sees both.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.registermap import RegisterMap, RegisterSpec
from meterlink.protocols.modbus.values import ValueSpec

from .config_types import Day, Ident, Strict

# Baud rates a UART on an RTU or a Raspberry Pi actually offers; anything else is a typo.
BAUDRATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)


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
    scale: dict[str, float] = Field(default_factory=dict)
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
