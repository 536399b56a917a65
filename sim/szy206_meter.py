"""A simulated SZY206 flowmeter (or multi-channel RTU): values, answers, reports and wire faults.

Each flow/volume pair follows the daily pattern of :class:`meterlink.sim.meter_model.SimMeter`
(morning and evening peaks, a night minimum, a few % of noise) in site time, UTC+8. The
totalizer integrates the *forward* flow the meter shows (trapezoids of a few seconds), so
"volume delta = mean flow x time" holds; volume is sent as whole m3, flow with 3 decimals.

Simulated time runs ``speed`` times faster than ``clock`` from the moment the meter is built.
Time labels (Tp) give simulated time in site local time; 0, 5 (SZY206-2016) or 7 bytes.

This module decides what to send; :mod:`meterlink.sim.szy206_meter_server` moves the bytes,
times the self-reports and waits for their confirms. A self-report in flight, its FCB countdown
and which confirm answers it follow the codec's conversation (protocols/szy206/conversation.py,
a terminal whose tries the server times). Wire faults are carried out by
:meth:`SimSzy206Meter.wire`, which turns one frame into timed pieces of bytes.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from enum import StrEnum
from itertools import pairwise

from meterlink.drivers.szy206 import SITE_UTC_OFFSET_H
from meterlink.drivers.szy206.meter import MAX_PAIRS
from meterlink.protocols.szy206 import (
    AFN,
    INVALID,
    Address,
    AlarmBit,
    Answered,
    Confirm,
    Conversation,
    Frame,
    Meter,
    Request,
    Role,
    StatusBit,
    TimeLabel,
    WorkMode,
    build_flow_report,
    encode,
    parse_confirm,
)
from meterlink.protocols.szy206.times import time_label_at

from .faults import FaultSwitches
from .meter_model import MAX_STEP_S, MAX_STEPS, SimMeter


class Fault(StrEnum):
    """Fault switches; several can be on at once."""

    NO_ANSWER = "no_answer"  # queries go unanswered (self-reports still go out)
    BAD_CRC = "bad_crc"  # every frame sent with a corrupted CS
    SPLIT_FRAMES = "split_frames"  # every frame written in 2-4 pieces with short pauses
    GARBAGE = "garbage"  # line noise before every frame, every other time with a fake 68 L 68 header
    NEGATIVE = "negative"  # reverse flow: flows negative, the forward totalizer stands still
    STUCK_ZERO = "stuck_zero"  # flow 0, totalizer frozen
    TOTALIZER_RESET = "totalizer_reset"  # totals restart from 0 when switched on
    INVALID = "invalid"  # flow and volume sent as FFH (invalid), flow-meter-fault alarm set
    NO_FLOW = "no_flow"  # flow AAH-filled: a meter that measures volume only
    NO_CONFIRM_NEEDED = "no_confirm_needed"  # self-reports sent once, no confirm awaited
    IGNORE_CONFIRM = "ignore_confirm"  # confirms not recognised: every report is sent 4 times


REPORT_DELAY_MIN = 10  # allowed transmission delay in the Tp of what the meter sends
SPLIT_PAUSE_S = (0.005, 0.03)  # pause before each further piece of a split frame
FRAMES_KEPT = 128
_DOOR_CLOSED = int(StatusBit.DOOR_CLOSED)


class SimSzy206Meter(FaultSwitches[Fault]):
    """One simulated SZY206 terminal with ``pairs`` flow/volume channels.

    Args:
        address: its division code and station number.
        pairs: flow/volume pairs (channels), 1..23.
        seed: makes values and wire faults repeatable.
        clock: seconds since the epoch (``time.time``; tests inject a fake one).
        speed: simulated seconds per clock second.
        tp_len: the Tp it sends: 0 (none), 5 (SZY206-2016) or 7 (SL/T 427).
        report_interval: seconds between self-reports (C0H), None for none.
        utc_offset_h: the site's time zone (daily pattern and time labels).

    Raises:
        ValueError: a field out of range.
    """

    def __init__(
        self,
        address: Address,
        *,
        pairs: int = 1,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
        tp_len: int = 5,
        report_interval: float | None = None,
        utc_offset_h: float = SITE_UTC_OFFSET_H,
    ) -> None:
        _check_settings(pairs, tp_len, speed, report_interval)
        self.address = address
        self.pairs = pairs
        self.tp_len = tp_len
        self.report_interval = report_interval
        self.speed = speed
        self.utc_offset_h = utc_offset_h
        self._clock = clock
        self._origin = clock()
        self._t = self._origin
        rng = random.Random(f"{seed}:{address.division}:{address.station}")
        # Composed SimMeters give each channel its own daily pattern and noise (flow_at only:
        # the totalizer is ours, because reverse flow must not count forward here).
        self._channels = [
            SimMeter(
                "emf_generic",
                pair,
                seed=seed * 65_536 + address.station,
                clock=clock,
                peak_flow=round(rng.uniform(15.0, 60.0), 1),
                utc_offset_h=utc_offset_h,
            )
            for pair in range(1, pairs + 1)
        ]
        self._totals = [rng.randint(10_000, 900_000) + rng.random() for _ in range(pairs)]
        self._rng = random.Random(rng.getrandbits(64))  # wire faults only
        self._faults: set[Fault] = set()
        self._noise_count = 0
        self._conversation = Conversation(Role.TERMINAL)  # the server times the tries
        self._request: Request | None = None
        self._report: Frame | None = None  # the try sent last
        self.queries_answered = 0
        self.queries_ignored = 0
        self.unsupported = 0
        self.reports_sent = 0  # distinct reports
        self.report_resends = 0
        self.reports_failed = 0  # never confirmed after the last resend
        self.confirms_received = 0
        self.confirms_ignored = 0
        self.confirms_unexpected = 0
        self.confirm_forms: Counter[str] = Counter()
        self.last_confirm: Confirm | None = None
        self.last_confirmed: Frame | None = None  # the report the last accepted confirm was for
        self.frames_seen: deque[Frame] = deque(maxlen=FRAMES_KEPT)  # downlink frames addressed here
        self.faults_applied: Counter[Fault] = Counter()
        self.last_values: tuple[Meter, ...] = ()  # what the last frame sent carried

    def __repr__(self) -> str:
        return f"SimSzy206Meter({self.name}, pairs={self.pairs})"

    @property
    def name(self) -> str:
        """``530381:13``."""
        return f"{self.address.division}:{self.address.station}"

    # --- faults ----------------------------------------------------------------------------------

    def _fault_kind(self) -> type[Fault]:
        return Fault

    def restart_totals(self) -> None:
        self._totals = [0.0] * self.pairs

    # --- values ----------------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated time, seconds since the epoch."""
        return self._origin + (self._clock() - self._origin) * self.speed

    def _forward(self, channel: SimMeter, t: float) -> float:
        if Fault.STUCK_ZERO in self._faults or Fault.NEGATIVE in self._faults:
            return 0.0
        return channel.flow_at(t)

    def update(self) -> None:
        """Advance the totalizers to the current simulated time (a clock going back is ignored)."""
        end = self.now()
        span = end - self._t
        if span <= 0:
            return
        steps = min(MAX_STEPS, max(1, math.ceil(span / MAX_STEP_S)))
        h = span / steps
        for i, channel in enumerate(self._channels):
            volume = 0.0
            previous = self._forward(channel, self._t)
            for step in range(1, steps + 1):
                current = self._forward(channel, self._t + step * h)
                volume += (previous + current) * h / 2.0
                previous = current
            self._totals[i] += volume / 3600.0
        self._t = end

    def values(self) -> tuple[Meter, ...]:
        """Each pair as the meter would send it now: flow (m3/h, 3 decimals) and volume (m3)."""
        self.update()
        faults = self._faults
        out = []
        for channel, total in zip(self._channels, self._totals, strict=True):
            if Fault.INVALID in faults:
                out.append(Meter(INVALID, INVALID))
                continue
            flow = 0.0 if Fault.STUCK_ZERO in faults else channel.flow_at(self._t)
            if Fault.NEGATIVE in faults and flow:
                flow = -flow
            out.append(Meter(None if Fault.NO_FLOW in faults else round(flow, 3), math.floor(total)))
        return tuple(out)

    def time_label(self) -> TimeLabel | None:
        """The Tp of a frame sent now (simulated time, site local), None when tp_len is 0."""
        if not self.tp_len:
            return None
        now = math.floor(self.now() * 1000)
        return time_label_at(now, tp_len=self.tp_len, utc_offset_h=self.utc_offset_h, delay_min=REPORT_DELAY_MIN)

    def _flow_frame(self, afn: int, fcb: int) -> Frame:
        meters = self.values()
        self.last_values = meters
        alarm = int(AlarmBit.FLOW_METER_FAULT) if Fault.INVALID in self._faults else 0
        mode = WorkMode.REPORT_AND_TELEMETRY if self.report_interval else WorkMode.TELEMETRY
        for fault in (Fault.NEGATIVE, Fault.STUCK_ZERO, Fault.INVALID, Fault.NO_FLOW):
            if fault in self._faults:
                self.faults_applied[fault] += 1
        return build_flow_report(
            self.address, meters, alarm=alarm, status=_DOOR_CLOSED | mode, tp=self.time_label(), fcb=fcb, afn=afn
        )

    # --- downlink frames -------------------------------------------------------------------------

    def answer(self, frame: Frame) -> Frame | None:
        """The answer to a downlink frame addressed here, or None (no answer, or not a query).

        A B0H query is answered with AFN B0H, its FCB echoed, the pairs, alarm, status and Tp.
        """
        self.frames_seen.append(frame)
        if frame.afn != AFN.QUERY_REALTIME:
            self.unsupported += 1
            return None
        if Fault.NO_ANSWER in self._faults:
            self.queries_ignored += 1
            self.faults_applied[Fault.NO_ANSWER] += 1
            return None
        self.queries_answered += 1
        return self._flow_frame(AFN.QUERY_REALTIME, frame.fcb)

    def accept_confirm(self, frame: Frame) -> bool:
        """Take a confirm frame addressed here; True when it confirms the report in flight.

        Every form is accepted: with or without the work-mode byte, with or without a Tp of
        either size, type code echoed or 0, any FCB. The forms seen are counted.
        """
        self.frames_seen.append(frame)
        tp = 0 if frame.tp is None else frame.tp.size
        self.confirm_forms[f"data={frame.data.hex().upper() or '-'} tp={tp} type={frame.function}"] += 1
        if Fault.IGNORE_CONFIRM in self._faults:
            self.confirms_ignored += 1
            self.faults_applied[Fault.IGNORE_CONFIRM] += 1
            return False
        self._conversation.receive_frame(frame, self._now_ms())
        event = self._conversation.next_event()
        if not isinstance(event, Answered):  # no report in flight, another AFN, not a confirm
            self.confirms_unexpected += 1
            return False
        self.last_confirmed = self._report
        self._report = self._request = None
        self.confirms_received += 1
        self.last_confirm = parse_confirm(frame)
        return True

    # --- self-reports ----------------------------------------------------------------------------

    @property
    def needs_confirm(self) -> bool:
        return Fault.NO_CONFIRM_NEEDED not in self._faults

    @property
    def report_in_flight(self) -> Frame | None:
        """The report sent last and not yet confirmed."""
        return self._report

    def start_report(self, afn: int = AFN.REPORT) -> Frame:
        """A new self-report (C0H by default, or 81H/82H) with FCB 3, now in flight."""
        if self._request is not None:
            self.reports_failed += 1  # a newer report replaces one never confirmed
            self._conversation.cancel(self._request)
        self._request = self._conversation.request(self._flow_frame(afn, 3), self._now_ms())
        self._report = self._request.frame
        self.reports_sent += 1
        if not self.needs_confirm:
            self.faults_applied[Fault.NO_CONFIRM_NEEDED] += 1
        return self._report

    def resend(self) -> Frame | None:
        """The confirm of the report in flight timed out: the report again with FCB one lower;
        None when FCB 0 was sent (it failed)."""
        if self._request is None:
            return None
        frame = self._conversation.retry(self._request)
        if frame is None:
            self._report = self._request = None
            self.reports_failed += 1
            return None
        self._report = frame
        self.report_resends += 1
        return frame

    def forget_report(self) -> None:
        """Stop waiting for a confirm (``no_confirm_needed``)."""
        if self._request is not None:
            self._conversation.cancel(self._request)
        self._report = self._request = None

    def _now_ms(self) -> int:
        return math.floor(self.now() * 1000)

    # --- bytes on the wire -----------------------------------------------------------------------

    def wire(self, frame: Frame) -> list[tuple[float, bytes]]:
        """The bytes of ``frame`` as (pause before, piece) pairs, wire faults applied."""
        raw = encode(frame)
        faults = self._faults
        if Fault.BAD_CRC in faults:
            raw = raw[:-2] + bytes((raw[-2] ^ 0xFF,)) + raw[-1:]
            self.faults_applied[Fault.BAD_CRC] += 1
        pieces = [(0.0, raw)]
        if Fault.SPLIT_FRAMES in faults:
            rng = self._rng
            cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 3)))
            bounds = [0, *cuts, len(raw)]
            pieces = [
                (rng.uniform(*SPLIT_PAUSE_S) if i else 0.0, raw[a:b]) for i, (a, b) in enumerate(pairwise(bounds))
            ]
            self.faults_applied[Fault.SPLIT_FRAMES] += 1
        if Fault.GARBAGE in faults:
            pieces.insert(0, (0.0, self._noise()))
            self.faults_applied[Fault.GARBAGE] += 1
        return pieces

    def _noise(self) -> bytes:
        rng = self._rng
        self._noise_count += 1
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        if self._noise_count % 2:
            # A fake header whose L claims more bytes than follow: the frame behind it is held up
            # until the receiver gives up on the candidate.
            noise = bytes((0x68, rng.randint(60, 250), 0x68)) + noise
        return noise


def _check_settings(pairs: int, tp_len: int, speed: float, report_interval: float | None) -> None:
    if not 1 <= pairs <= MAX_PAIRS:
        raise ValueError(f"pairs must be 1..{MAX_PAIRS}, got {pairs}")
    if tp_len not in (0, 5, 7):
        raise ValueError(f"tp_len must be 0, 5 or 7, got {tp_len}")
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be positive, got {speed}")
    if report_interval is not None and not (math.isfinite(report_interval) and report_interval > 0):
        raise ValueError(f"report_interval must be positive, got {report_interval}")
