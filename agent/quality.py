"""Plausibility of what meters say, at the source: totalizer wraps, resets and replacements, jumps.

A platform reconciles volumes from successive totalizer readings, so a drop in a totalizer must be
explained, never passed on silently as a negative volume (../meters rules, section 3.4):

1. a rise within the jump limit is normal;
2. a drop from near the register's maximum to a small value is a **wrap** (flag ``wrapped``);
3. any other drop is a **reset or a meter replacement** (flag ``meter_reset``, and an event);
4. a rise larger than ``max_flow x elapsed x 1.2`` is **abnormal** (flag ``suspect``): kept and
   flagged, never clipped, so the platform decides;
5. a negative totalizer is flagged ``suspect`` too.

Readings are never dropped here. Only quantities named ``volume_*`` are totalizers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meterlink.drivers.base import Flag, Reading
from meterlink.protocols.modbus.registers import DataType
from meterlink.protocols.modbus.values import ValueSpec

WRAP_HIGH = 0.9  # the previous value was within the top 10 % of the register's range ...
WRAP_LOW = 0.1  # ... and the new one within its bottom 10 %
JUMP_FACTOR = 1.2

_DTYPE_MAX = {
    DataType.UINT16: 2**16 - 1,
    DataType.INT16: 2**15 - 1,
    DataType.UINT32: 2**32 - 1,
    DataType.INT32: 2**31 - 1,
}


def register_max(spec: ValueSpec) -> float | None:
    """The largest value a totalizer's registers can show (None: floats, which do not wrap)."""
    total = 0.0
    for part in spec.parts:
        if part.dtype.is_float:
            if part is spec.parts[0]:
                return None
            continue  # a fraction part adds less than one unit
        total += _DTYPE_MAX[part.dtype] * part.multiplier
    if spec.decimals_address is not None:
        return None  # the scale depends on the meter's own decimals register
    return float(total * abs(spec.scale) + spec.offset)


def register_step(spec: ValueSpec) -> float:
    """The smallest step the totalizer's integer registers show (one count of the lowest part)."""
    steps = [part.multiplier for part in spec.parts if not part.dtype.is_float]
    return float((min(steps) if steps else 1.0) * abs(spec.scale))


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "totalizer_wrapped", "totalizer_reset", "abnormal_jump", "negative_total"
    detail: dict[str, Any]


class QualityCheck:
    """One per meter: remembers the last totalizer values to judge the next ones."""

    def __init__(
        self,
        meter: str,
        specs: Sequence[ValueSpec] = (),
        max_flow_m3h: float | None = None,
        *,
        maxima: dict[str, float | None] | None = None,
    ) -> None:
        """``specs`` give a Modbus meter's totalizer ranges; ``maxima`` gives them directly (SZY206)."""
        self.meter = meter
        self.max_flow = max_flow_m3h
        self.maxima = {s.quantity: register_max(s) for s in specs if s.quantity.startswith("volume")}
        self.maxima.update(maxima or {})
        # Where each totalizer starts again from 0: its largest value plus one count (a uint16 showing
        # 0..65535 wraps at 65536), so a wrap's volume loses no count.
        steps = {s.quantity: register_step(s) for s in specs}
        self.moduli = {q: top + steps.get(q, 1.0) if top else None for q, top in self.maxima.items()}
        self._last: dict[str, tuple[float, int]] = {}

    def rebase(self, reading: Reading) -> None:
        """A registered meter change (a manual reading flagged replacement): the next reading is
        judged against this one, so the new meter's totalizer is not taken for a reset."""
        if reading.quantity in self.maxima:
            self._last[reading.quantity] = (reading.value, reading.ts)

    def check(self, readings: Sequence[Reading]) -> tuple[list[Reading], list[Finding]]:
        # Runs for every poll: only totalizers are judged, and a finding's details are built only
        # for a finding.
        out = list(readings)
        findings: list[Finding] = []
        maxima = self.maxima
        for i, r in enumerate(out):
            if r.quantity not in maxima:
                continue
            flag, finding = self._judge(r)
            if flag:
                out[i] = r._replace(flags=r.flags | flag)
            if finding:
                findings.append(finding)
        return out, findings

    def _judge(self, r: Reading) -> tuple[int, Finding | None]:
        """A totalizer's reading against the last one."""
        if r.value < 0:
            return Flag.SUSPECT, Finding(
                "negative_total", {"meter": self.meter, "quantity": r.quantity, "value": r.value}
            )
        last = self._last.get(r.quantity)
        self._last[r.quantity] = (r.value, r.ts)
        if last is None:
            return 0, None
        previous, previous_ts = last
        delta = r.value - previous
        if delta < 0:
            top = self.maxima[r.quantity]
            dropped = {"meter": self.meter, "quantity": r.quantity, "value": r.value, "previous": previous}
            if top and previous >= WRAP_HIGH * top and r.value <= WRAP_LOW * top:
                modulus = self.moduli[r.quantity] or top
                return Flag.WRAPPED, Finding(
                    "totalizer_wrapped", {**dropped, "register_max": top, "volume": modulus - previous + r.value}
                )
            return Flag.METER_RESET, Finding("totalizer_reset", dropped)
        if self.max_flow is not None:
            hours = max(r.ts - previous_ts, 1) / 3_600_000
            limit = self.max_flow * hours * JUMP_FACTOR
            if delta > limit:
                detail = {
                    "meter": self.meter,
                    "quantity": r.quantity,
                    "value": r.value,
                    "previous": previous,
                    "limit": round(limit, 3),
                }
                return Flag.SUSPECT, Finding("abnormal_jump", detail)
        return 0, None
