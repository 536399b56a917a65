"""``[uplink.sl651]``: the agent as an SL651-2014 telemetry station reporting to a centre over TCP.

Kept beside the uplink, as the other uplinks' sections are: the section is large (a per-meter
element map) and speaks the protocol's own vocabulary (identifiers, data definitions,
station types). Unknown keys are errors, as everywhere in the site file.

Every config is read with this model, so it imports nothing of the SL651 codec at module level: an
agent that does not report to an SL651 centre never loads it (tests/packaging/test_agent_modules.py).
Its validators, which run only when the section is there, import the standard's element table.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..config_types import Strict

# The station type byte is an ASCII letter (SL651-2014 table 4, protocols/sl651/codes.py STATION_TYPES):
# P rain, H river, K reservoir, Z sluice, D pumping station, T tide, M soil moisture, G groundwater,
# Q water quality, I abstraction point (取水口), O outfall.
TYPE_LETTERS = {letter: ord(letter) for letter in "PHKZDTMGQIO"}
# Units a reading can be converted to: factors from the agent's own units (m3/h, m3).
FLOW_UNITS = {"m3/s": 1 / 3600, "m3/h": 1.0, "L/s": 1000 / 3600}
VOLUME_UNITS = {"m3": 1.0}
READING_UNITS = {"flow_rate": "m3/h", "volume_total": "m3"}


class ElementMap(Strict):
    """One quantity of a meter as an SL651 element: identifier, data definition, unit."""

    id: Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}|[Ff]{2}[0-9A-Fa-f]{2})$")]  # "27", "FF09"
    definition: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{2}$")] | None = None  # "2B": 5 bytes, 3 decimals
    unit: str | None = None  # flow: m3/s (the standard's), m3/h, L/s; volume: m3

    @property
    def ident(self) -> int:
        return int(self.id, 16)

    @property
    def definition_byte(self) -> int:
        from meterlink.protocols.sl651.identifiers import default_definition

        if self.definition is not None:
            return int(self.definition, 16)
        standard = default_definition(self.ident)
        assert standard is not None  # checked by _needs_a_definition
        return standard

    @model_validator(mode="after")
    def _needs_a_definition(self) -> ElementMap:
        from meterlink.protocols.sl651.identifiers import default_definition

        ident = self.ident
        if ident <= 0xFF and (ident >= 0xF0 or ident == 0x04):
            raise ValueError(f"id: {self.id} is reserved by the standard (address, times, series, guide, step)")
        if self.definition is None and default_definition(ident) is None:
            raise ValueError(f"definition: {self.id.upper()} has no standard type, give its data definition (e.g. 2B)")
        size = self.definition_byte >> 3  # the high five bits: bytes (the low three: decimals)
        if not 1 <= size <= 8:
            raise ValueError(f"definition: {self.definition_byte:02X} is {size} bytes; 1 to 8 carry a number")
        return self


class MeterElements(Strict):
    """What one meter reports: its instantaneous flow and its accumulated volume, each optional."""

    flow: ElementMap | None = None
    volume: ElementMap | None = None

    @field_validator("flow")
    @classmethod
    def _flow_unit(cls, value: ElementMap | None) -> ElementMap | None:
        if value is not None and value.unit is not None and value.unit not in FLOW_UNITS:
            raise ValueError(f"unit: {value.unit!r} is not a flow unit ({', '.join(FLOW_UNITS)})")
        return value

    @field_validator("volume")
    @classmethod
    def _volume_unit(cls, value: ElementMap | None) -> ElementMap | None:
        if value is not None and value.unit is not None and value.unit not in VOLUME_UNITS:
            raise ValueError(f"unit: {value.unit!r} is not a volume unit ({', '.join(VOLUME_UNITS)})")
        return value

    @model_validator(mode="after")
    def _something(self) -> MeterElements:
        if self.flow is None and self.volume is None:
            raise ValueError('map flow, volume or both (e.g. flow = { id = "27" })')
        return self


class Sl651UplinkConfig(Strict):
    """The agent as an SL651 telemetry station (遥测站) reporting to a centre over TCP."""

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)]
    center: Annotated[int, Field(ge=1, le=255)]  # the centre's address
    station: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{10}$")]  # this site's 5-byte address, 10 hex digits
    password: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{4}$")] = "0000"
    station_type: Annotated[str, Field(pattern=r"^[A-Z]$")] = "I"  # I: 取水口, an abstraction point
    utc_offset_hours: Annotated[float, Field(ge=-12, le=14)] = 8.0  # the frames' times are local
    report_interval: Annotated[int, Field(ge=0, le=86400)] = 300  # scheduled reports (32H); 0: none
    hourly: bool = True  # hourly reports (34H) at every full hour
    added: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(default_factory=list)  # as 33H
    keepalive: Annotated[int, Field(ge=0, le=3600)] = 60  # 2FH every N s; 0: none
    ack_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    retries: Annotated[int, Field(ge=0, le=5)] = 2  # resends of a report before it is kept for later
    backfill: bool = True  # send missed reports after a reconnection, oldest first
    backfill_pace: Annotated[float, Field(ge=0, le=3600)] = 1.0  # seconds between backfilled reports
    trust_center_time: bool = False  # 4AH sets the agent's clock offset (never the system clock)
    meters: dict[str, MeterElements] = Field(min_length=1)

    @field_validator("station_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TYPE_LETTERS:
            raise ValueError(f"{value!r} is no station type of the standard ({', '.join(sorted(TYPE_LETTERS))})")
        return value

    @model_validator(mode="after")
    def _one_meter_per_element(self) -> Sl651UplinkConfig:
        seen: dict[int, str] = {}
        for meter, elements in self.meters.items():
            for name, element in (("flow", elements.flow), ("volume", elements.volume)):
                if element is None:
                    continue
                if element.ident in seen:
                    raise ValueError(
                        f"meters.{meter}.{name}.id: {element.id.upper()} is already {seen[element.ident]}'s "
                        "(the centre could not tell them apart)"
                    )
                seen[element.ident] = f"meters.{meter}"
        if self.report_interval == 0 and not self.hourly and not self.added:
            raise ValueError("report_interval = 0, hourly = false and no added kinds: nothing would be reported")
        return self

    @property
    def station_bytes(self) -> bytes:
        return bytes.fromhex(self.station)

    @property
    def password_word(self) -> int:
        return int(self.password, 16)

    @property
    def type_byte(self) -> int:
        return TYPE_LETTERS[self.station_type]


def unit_of(element: ElementMap, quantity: Literal["flow_rate", "volume_total"]) -> str:
    """The unit ``element`` is sent in: the configured one, else the standard's, else m3/s or m3."""
    if element.unit is not None:
        return element.unit
    from meterlink.protocols.sl651.identifiers import ELEMENTS

    table = FLOW_UNITS if quantity == "flow_rate" else VOLUME_UNITS
    info = ELEMENTS.get(element.ident)
    if info is not None and info.unit in table:
        return info.unit
    return "m3/s" if quantity == "flow_rate" else "m3"
