"""Register maps as a technician writes them: one schema for built-in profiles and inline maps.

Numbering is always stated: ``numbering = "wire"`` means addresses as sent in the request (0-based
PDU addresses), ``numbering = "manual"`` means the 1-based register numbers Chinese manuals print
("REG0001" is wire address 0). Confusing the two is the most common Modbus commissioning fault,
so there is no default.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meterlink.protocols.modbus.plan import MAX_REGISTERS_PER_READ, Span, plan_reads
from meterlink.protocols.modbus.registers import DataType, WordOrder
from meterlink.protocols.modbus.values import Part, ValueSpec

Numbering = Literal["wire", "manual"]


# An enum's value arrives as a string (TOML, JSON): these two fields convert, everything else is strict.
TypeName = Annotated[DataType, Field(strict=False)]
OrderName = Annotated[WordOrder, Field(strict=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class PartSpec(_Strict):
    """Another register field added to a value: the fraction or the high part of a totalizer."""

    address: int = Field(ge=0, le=0xFFFF)
    type: TypeName = DataType.FLOAT32
    word_order: OrderName | None = None  # default: the value's own word order
    multiplier: float = 1.0


class RegisterSpec(_Strict):
    """One quantity of a meter: where it is, how it is encoded, how it is scaled."""

    quantity: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    unit: str = Field(default="", max_length=16)
    address: int = Field(ge=0, le=0xFFFF)
    type: TypeName
    word_order: OrderName = WordOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    fraction: PartSpec | None = None
    high: PartSpec | None = None
    decimals_register: int | None = Field(default=None, ge=0, le=0xFFFF)

    @model_validator(mode="after")
    def _parts_make_sense(self) -> RegisterSpec:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if (self.fraction or self.high) and self.type.is_float:
            raise ValueError("fraction/high parts go with an integer type (the integer part of a totalizer)")
        return self

    def to_value_spec(self, function: int, numbering: Numbering) -> ValueSpec:
        shift = 1 if numbering == "manual" else 0
        parts = [Part(self.address - shift, self.type, self.word_order)]
        for extra in (self.fraction, self.high):
            if extra is not None:
                parts.append(
                    Part(extra.address - shift, extra.type, extra.word_order or self.word_order, extra.multiplier)
                )
        decimals = None if self.decimals_register is None else self.decimals_register - shift
        return ValueSpec(self.quantity, self.unit, function, tuple(parts), self.scale, self.offset, decimals)


class RegisterMap(_Strict):
    """A complete map: function code, numbering convention and the values to report."""

    function: Literal[3, 4] = 3
    numbering: Numbering
    # Unmapped registers a request may read to join two values. 0 is safe for any meter; meters
    # whose manual reads the whole block in one request (most converters) allow more.
    max_gap: int = Field(default=0, ge=0, le=64)
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _addresses_fit(self) -> RegisterMap:
        seen: dict[str, int] = {}
        for i, reg in enumerate(self.registers):
            if reg.quantity in seen:
                raise ValueError(f"quantity {reg.quantity!r} appears twice (registers {seen[reg.quantity]} and {i})")
            seen[reg.quantity] = i
            if self.numbering == "manual":
                low = min(
                    [reg.address]
                    + [p.address for p in (reg.fraction, reg.high) if p]
                    + ([reg.decimals_register] if reg.decimals_register is not None else [])
                )
                if low < 1:
                    raise ValueError(f"{reg.quantity}: manual register numbers start at 1, got {low}")
        _check_overlaps(self.value_specs())
        return self

    def value_specs(self) -> list[ValueSpec]:
        return [r.to_value_spec(self.function, self.numbering) for r in self.registers]


def _check_overlaps(specs: list[ValueSpec]) -> None:
    """Two values that claim the same register are a typo in the map, not a feature."""
    owner: dict[int, str] = {}
    for spec in specs:
        for part in spec.parts:
            for addr in range(part.address, part.address + part.dtype.words):
                if addr > 0xFFFF:
                    raise ValueError(f"{spec.quantity}: registers run past address 65535")
                if addr in owner and owner[addr] != spec.quantity:
                    raise ValueError(f"{spec.quantity} overlaps {owner[addr]} at wire address {addr}")
                owner[addr] = spec.quantity


class SerialDefaults(_Strict):
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class WorkedExample(_Strict):
    """A register pair with its known value from a manual or a reference driver (checked by tests)."""

    address: int
    type: TypeName
    word_order: OrderName
    words: list[int]
    value: float
    tolerance: float = 0.0
    source: str


class Profile(RegisterMap):
    """A built-in meter profile: a register map plus what a technician should know about the meter."""

    name: str
    title: str
    notes: list[str] = []
    serial: SerialDefaults = SerialDefaults()
    examples: list[WorkedExample] = []


def request_count(specs: list[ValueSpec]) -> int:
    """How many requests a poll of these values needs (for commissioning output)."""
    spans: list[Span] = [s for spec in specs for s in spec.spans()]
    return len(plan_reads(spans, max_count=MAX_REGISTERS_PER_READ))
