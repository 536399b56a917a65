"""A simulated flowmeter (or level transmitter) behind a built-in register map, with fault switches.

Values are functions of *simulated* time, so a run is repeatable for a seed and a clock:

- flow follows a daily pattern in site time (morning and evening peaks, a midday plateau, a night
  minimum near 12 % of peak) with a few % of noise interpolated between pseudo-random knots;
- velocity is flow over the pipe's cross-section;
- the totalizer integrates the flow the meter shows (trapezoids of at most a few seconds), so
  "volume delta = mean flow x time" holds as it does on a real meter;
- level is a slow sine around a few metres, held with 2 decimals through the decimals register.

Simulated time runs ``speed`` times faster than the injected clock, from the moment the meter is
built. Wire faults (no answer, bad CRC, truncation, stray bytes, late replies) are decided here in
:meth:`SimMeter.answer` but carried out by the transport in :mod:`meterlink.sim.modbus_server`.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.registermap import Profile
from meterlink.protocols.modbus import rtu
from meterlink.protocols.modbus.registers import RegisterError, encode
from meterlink.protocols.modbus.values import ValueSpec

from .faults import FaultSwitches


class Fault(StrEnum):
    """Fault switches; several can be on at once."""

    NO_ANSWER = "no_answer"  # stay silent
    BAD_CRC = "bad_crc"  # RTU: corrupted CRC; TCP: corrupted transaction id
    EXCEPTION = "exception"  # exception 04, server device failure
    NEGATIVE = "negative"  # flow, velocity and totals shown negative
    STUCK_ZERO = "stuck_zero"  # flow 0, totalizer frozen
    TOTALIZER_RESET = "totalizer_reset"  # totals restart from 0 when switched on
    SHORT_ANSWER = "short_answer"  # the answer is cut short
    STRAY_BYTES = "stray_bytes"  # RTU: line noise before the answer
    LATE_REPLY = "late_reply"  # answer with the reply to an earlier request
    SLOW_ANSWER = "slow_answer"  # answer correctly, but after slow_answer_s: past a client's timeout


class ModbusError(Exception):
    """A request the meter refuses with a Modbus exception ``code``."""

    code = 4


class IllegalFunction(ModbusError):
    """Exception 01: a function code the meter does not serve."""

    code = 1


class IllegalDataAddress(ModbusError):
    """Exception 02: registers outside the meter's map."""

    code = 2


class IllegalDataValue(ModbusError):
    """Exception 03: a register count outside 1..125."""

    code = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send for one request. ``pdu`` None means stay silent; the flags are wire faults."""

    pdu: bytes | None
    bad_crc: bool = False
    short: bool = False
    stray: bytes = b""
    delay: float = 0.0  # seconds before the answer leaves (slow_answer)


SLOW_ANSWER_S = 1.5  # slow_answer: later than the usual 1 s timeout of a poller
ADDRESS_MARGIN = 4  # registers readable just outside the map (many meters pad their blocks)
NOISE = 0.03  # relative flow noise
NOISE_KNOT_S = 30.0  # noise is interpolated between knots this far apart (simulated seconds)
MAX_STEP_S = 5.0  # longest trapezoid when integrating flow
MAX_STEPS = 5000  # per update; a long jump in time uses longer steps instead
LATE_HISTORY = 8

# Peak flow (m3/h) and inner pipe diameter (m) of a typical installation of each built-in meter.
_SIZING: dict[str, tuple[float, float]] = {
    "tuf2000": (120.0, 0.15),  # clamp-on ultrasonic, usually on a larger main
    "emf_generic": (40.0, 0.10),
    "mfe600h": (25.0, 0.08),
    "xintai_water_meter": (6.0, 0.05),
}
_DEFAULT_SIZING = (40.0, 0.10)
_STATUS = frozenset({"error_bits", "empty_pipe_alarm", "pipe_status"})  # 0 = OK, full pipe
_SIGNED = frozenset({"flow_rate", "velocity", "volume_total", "volume_net", "volume_reverse"})
_MASK64 = (1 << 64) - 1


def _bump(hour: float, centre: float, width: float) -> float:
    d = abs(hour - centre) % 24.0
    d = min(d, 24.0 - d)
    return math.exp(-0.5 * (d / width) ** 2)


def daily_shape(hour: float) -> float:
    """Share of peak flow at a local hour of day (0..24): about 1.0 at 07:30, 0.12 at night."""
    return 0.12 + 0.82 * _bump(hour, 7.5, 1.3) + 0.72 * _bump(hour, 19.0, 1.8) + 0.3 * _bump(hour, 13.0, 3.0)


def _unit_noise(key: int, knot: int) -> float:
    """A pseudo-random number in [-1, 1] for one knot (splitmix64 of key and knot)."""
    z = (key + (knot & _MASK64) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z / _MASK64 * 2.0 - 1.0


class SimMeter(FaultSwitches[Fault]):
    """One simulated meter at one unit id.

    Args:
        profile: a built-in profile name or a :class:`Profile`.
        unit: the Modbus unit id, 1..247.
        seed: makes values and noise repeatable.
        clock: seconds since the epoch (``time.time`` by default; tests inject a fake one).
        speed: simulated seconds per clock second.
        peak_flow: m3/h at the morning peak; default by profile.
        pipe_diameter: inner diameter in m, for velocity; default by profile.
        utc_offset_h: site time zone, for the daily pattern (China: +8).

    Raises:
        KeyError: unknown profile name.
        ValueError: unit outside 1..247, or a speed or size that is not positive.
    """

    def __init__(
        self,
        profile: str | Profile,
        unit: int,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
        peak_flow: float | None = None,
        pipe_diameter: float | None = None,
        utc_offset_h: float = 8.0,
    ) -> None:
        self.profile = profiles.load(profile) if isinstance(profile, str) else profile
        if not 1 <= unit <= 247:
            raise ValueError(f"unit {unit} is outside 1..247")
        sizing = _SIZING.get(self.profile.name, _DEFAULT_SIZING)
        self.peak_flow = sizing[0] if peak_flow is None else peak_flow
        diameter = sizing[1] if pipe_diameter is None else pipe_diameter
        if speed <= 0 or self.peak_flow <= 0 or diameter <= 0:
            raise ValueError("speed, peak flow and pipe diameter must be positive")
        self.unit = unit
        self.specs: list[ValueSpec] = self.profile.value_specs()
        self.speed = speed
        self._area = math.pi * diameter**2 / 4.0
        self._clock = clock
        self._utc_offset_s = utc_offset_h * 3600.0
        rng = random.Random(f"{seed}:{unit}:{self.profile.name}")
        self._noise_key = rng.getrandbits(64)
        self._rng = random.Random(rng.getrandbits(64))  # stray bytes only
        self._origin = clock()
        self._t = self._origin
        self._total = round(rng.uniform(1_000.0, 90_000.0), 3)
        self._reverse = round(rng.uniform(0.5, 30.0), 3)
        self._low, self._high = self._extent()
        self._faults: set[Fault] = set()
        self._history: deque[tuple[int, int, int, bytes]] = deque(maxlen=LATE_HISTORY)
        self.requests = 0
        # Requests answered with register values, by (function, address, count): what a poller got.
        self.answered: Counter[tuple[int, int, int]] = Counter()
        self.faults_applied: Counter[Fault] = Counter()
        self.slow_answer_s = SLOW_ANSWER_S

    def __repr__(self) -> str:
        return f"SimMeter({self.profile.name!r}, unit={self.unit})"

    def _extent(self) -> tuple[int, int]:
        addresses = [a for spec in self.specs for p in spec.parts for a in range(p.address, p.address + p.dtype.words)]
        addresses += [s.decimals_address for s in self.specs if s.decimals_address is not None]
        return max(0, min(addresses) - ADDRESS_MARGIN), min(0x10000, max(addresses) + 1 + ADDRESS_MARGIN)

    # --- faults ----------------------------------------------------------------------------------

    def _fault_kind(self) -> type[Fault]:
        return Fault

    def restart_totals(self) -> None:
        self._total = 0.0
        self._reverse = 0.0

    def note_fault(self, fault: Fault) -> None:
        """Count a fault the transport carried out."""
        self.faults_applied[fault] += 1

    # --- values ----------------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated time, seconds since the epoch."""
        return self._origin + (self._clock() - self._origin) * self.speed

    def flow_at(self, t: float) -> float:
        """The flow (m3/h) the pattern gives at simulated time ``t``, before faults."""
        hour = ((t + self._utc_offset_s) / 3600.0) % 24.0
        pos = t / NOISE_KNOT_S
        knot = math.floor(pos)
        frac = pos - knot
        noise = _unit_noise(self._noise_key, knot) * (1 - frac) + _unit_noise(self._noise_key, knot + 1) * frac
        return self.peak_flow * daily_shape(hour) * (1.0 + NOISE * noise)

    def level_at(self, t: float) -> float:
        """Water level (m) at simulated time ``t``, with 2 decimals: a 6-hour sine around 3.2 m."""
        wobble = 0.01 * _unit_noise(self._noise_key ^ 0x5A5A, math.floor(t / 60.0))
        return round(3.2 + 0.6 * math.sin(2 * math.pi * t / 21_600.0) + wobble, 2)

    def _shown_flow(self, t: float) -> float:
        return 0.0 if Fault.STUCK_ZERO in self._faults else self.flow_at(t)

    def update(self) -> None:
        """Advance the totalizer to the current simulated time (a clock going back is ignored)."""
        end = self.now()
        span = end - self._t
        if span <= 0:
            return
        steps = min(MAX_STEPS, max(1, math.ceil(span / MAX_STEP_S)))
        h = span / steps
        volume = 0.0
        previous = self._shown_flow(self._t)
        for i in range(1, steps + 1):
            current = self._shown_flow(self._t + i * h)
            volume += (previous + current) * h / 2.0
            previous = current
        self._total += volume / 3600.0
        self._t = end

    def values(self) -> dict[str, float]:
        """Every quantity of the profile as the registers hold it now (faults applied)."""
        self.update()
        flow = self._shown_flow(self._t)
        sign = -1.0 if Fault.NEGATIVE in self._faults else 1.0
        known = {
            "flow_rate": flow,
            "velocity": flow / 3600.0 / self._area,
            "volume_total": self._total,
            "volume_reverse": self._reverse,
            "volume_net": self._total - self._reverse,
            "level": self.level_at(self._t),
        }
        out = {}
        for spec in self.specs:
            value = 0.0 if spec.quantity in _STATUS else known.get(spec.quantity, 0.0)
            out[spec.quantity] = sign * value if spec.quantity in _SIGNED else value
        return out

    def image(self) -> dict[int, int]:
        """The register image now: wire address -> register value, mapped registers only."""
        values = self.values()
        image: dict[int, int] = {}
        for spec in self.specs:
            decimals = 2 if spec.decimals_address is not None else 0
            image.update(_encode(spec, values[spec.quantity], decimals))
        return image

    def registers(self, function: int, address: int, count: int) -> list[int]:
        """The registers a read of ``count`` from ``address`` returns now.

        Unmapped registers between mapped ones read as 0.

        Raises:
            IllegalFunction: a function other than the profile's read function.
            IllegalDataValue: a count outside 1..125.
            IllegalDataAddress: registers outside the map (plus a small margin).
        """
        if function != self.profile.function:
            raise IllegalFunction(f"function {function} (this meter reads with {self.profile.function})")
        if not 1 <= count <= rtu.MAX_READ_COUNT:
            raise IllegalDataValue(f"count {count}")
        if address < self._low or address + count > self._high:
            raise IllegalDataAddress(f"registers {address}..{address + count - 1} are outside the map")
        image = self.image()
        return [image.get(a, 0) for a in range(address, address + count)]

    # --- one request -----------------------------------------------------------------------------

    def answer(self, function: int, address: int, count: int) -> Answer:
        """Serve one request: registers or an exception PDU, with the wire faults to apply.

        Counts the request, an answer carrying register values (in :attr:`answered`), and the
        faults decided here (no_answer, exception, negative, stuck_zero, late_reply). The transport
        counts the wire faults it carries out.
        """
        self.requests += 1
        faults = self._faults
        if Fault.NO_ANSWER in faults:
            self.note_fault(Fault.NO_ANSWER)
            return Answer(None)
        if Fault.EXCEPTION in faults:
            self.note_fault(Fault.EXCEPTION)
            return self._wire(rtu.exception_pdu(function, 4))
        try:
            registers = self.registers(function, address, count)
        except ModbusError as exc:
            return self._wire(rtu.exception_pdu(function, exc.code))
        for fault in (Fault.NEGATIVE, Fault.STUCK_ZERO):
            if fault in faults:
                self.note_fault(fault)
        pdu = rtu.read_response_pdu(function, registers)
        late = self._late_pdu(function, address, count) if Fault.LATE_REPLY in faults else pdu
        self._history.append((function, address, count, pdu))
        if Fault.LATE_REPLY in faults:
            self.note_fault(Fault.LATE_REPLY)
        if late is None:
            return Answer(None)  # nothing earlier to send: this reply is the one that comes late
        self.answered[(function, address, count)] += 1
        return self._wire(late)

    def _late_pdu(self, function: int, address: int, count: int) -> bytes | None:
        """The most recent earlier reply with another count (a client can tell), else another address."""
        earlier = [h for h in reversed(self._history) if h[0] == function]
        other_count = [pdu for _, _, n, pdu in earlier if n != count]
        other_address = [pdu for _, a, _, pdu in earlier if a != address]
        for candidates in (other_count, other_address):
            if candidates:
                return candidates[0]
        return None

    def _wire(self, pdu: bytes) -> Answer:
        faults = self._faults
        stray = b""
        if Fault.STRAY_BYTES in faults:
            # Bus-turnaround noise reads as 0x00/0xFF; random bytes could pass as a frame's start.
            stray = bytes(self._rng.choice((0x00, 0xFF)) for _ in range(self._rng.randint(1, 4)))
        delay = 0.0
        if Fault.SLOW_ANSWER in faults:
            self.note_fault(Fault.SLOW_ANSWER)
            delay = self.slow_answer_s
        return Answer(
            pdu, bad_crc=Fault.BAD_CRC in faults, short=Fault.SHORT_ANSWER in faults, stray=stray, delay=delay
        )


def _encode(spec: ValueSpec, value: float, decimals: int) -> dict[int, int]:
    """Registers for ``value``; a negative value in an unsigned integer part goes to the float part."""
    try:
        return spec.encode(value, decimals)
    except RegisterError:
        floats = [p for p in spec.parts if p.dtype.is_float]
        if value >= 0 or not floats:
            raise
    image = spec.encode(0.0, decimals)
    part = floats[0]
    raw = (value - spec.offset) / spec.scale * 10**decimals
    for i, word in enumerate(encode(raw / part.multiplier, part.dtype, part.order)):
        image[part.address + i] = word
    return image
