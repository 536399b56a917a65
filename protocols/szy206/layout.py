"""What the data area of each AFN looks like: PW policy and the Tp inference rule.

A frame does not say whether it carries a password PW (2 bytes) or a time label Tp (0, 5 or 7
bytes) after its data; both sit at the end of the user data::

    C [DIVS] | A (5) | AFN | D ... | [PW (2)] | [Tp (5 SZY206-2016 / 7 SL/T 427-2021)]

PW: by default a frame carries PW when it is a downlink parameter-set or control frame (AFN 10H-34H,
90H-96H, A0H-A2H), as the SL/T 427 text says ("用于重要下行报文中"). Callers override per frame.

Tp: callers that know the device's edition pass ``tp_len`` (0, 5 or 7). Otherwise it is inferred
from the data-length rule of the AFN, direction and C type code: the D length must be
``fixed + k * item`` for one of the AFN's alternatives (a C0H flow report or a B1H answer is
10*N + 4, a confirm 0 or 1, a link frame 1, a B0H query 0, ...). The rule tries Tp lengths 5, 7, 0
in that order and keeps the first whose D length fits and, for 5 and 7, whose trailing bytes read as a valid time
(BCD digits, second < 60, minute < 60, hour < 24, day 1-31, month 1-12). With item sizes 3, 4
and 10 at most one Tp length can fit, so the order only matters for 2-byte items (5 wins, this
being an SZY206-2016 codec). AFNs without a rule, and lengths no alternative fits, get no Tp:
all the bytes stay in ``data``.
"""

from __future__ import annotations

from enum import IntEnum

from .elements import ITEM_SIZES
from .fields import TimeLabel, time_label_from_bytes


class AFN(IntEnum):
    """Application function codes used by meterlink (notes section 1, AFN list)."""

    LINK = 0x02
    SET_ADDRESS = 0x10
    SET_CLOCK = 0x11
    SET_WORK_MODE = 0x12
    READ_ADDRESS = 0x50
    READ_CLOCK = 0x51
    READ_WORK_MODE = 0x52
    READ_REPORT_KINDS = 0x53
    READ_QUERY_KINDS = 0x54
    READ_STATUS = 0x5E
    PICTURE = 0x61
    ALARM_REPORT = 0x81
    MANUAL_REPORT = 0x82
    PICTURE_REPORT = 0x83
    VOLTAGE_REPORT = 0x84
    SET_QUERY_KINDS = 0xA0
    SET_REPORT_KINDS = 0xA1
    QUERY_REALTIME = 0xB0
    QUERY_STORED = 0xB1
    REPORT = 0xC0


REPORT_AFNS = frozenset({0xC0, 0x81, 0x82})
"""Self-reports the centre confirms with a frame of the same AFN."""

PICTURE_AFNS = frozenset({0x61, 0x83})
"""Uplink AFNs whose frames may count L in KiB of image (SL/T 427 "图片数据流的字节总数为L×1K")."""

PARAMETER_QUERY_AFNS = frozenset(range(0x50, 0x65))
"""Queries answered with the same AFN (50H-64H)."""

_PW_AFNS = frozenset([*range(0x10, 0x35), *range(0x90, 0x97), 0xA0, 0xA1, 0xA2])


def carries_pw(up: bool, afn: int) -> bool:
    """Default PW policy: downlink parameter-set and control frames carry a 2-byte PW."""
    return not up and afn in _PW_AFNS


# (fixed, item): D is fixed + k*item bytes for some k >= 0 (item 0: exactly fixed).
Rule = tuple[tuple[int, int], ...]
_ONE: Rule = ((1, 0),)
_NONE: Rule = ((0, 0),)
_KINDS_AND_INTERVALS: Rule = ((2, 2),)

_UP_RULES: dict[int, Rule] = {
    0x02: _ONE,
    0x10: ((5, 0),),
    0x11: ((6, 0),),
    0x12: _ONE,
    0x50: ((5, 0),),
    0x51: ((6, 0),),
    0x52: _ONE,
    0x53: _KINDS_AND_INTERVALS,
    0x54: ((2, 0),),
    0x5E: ((4, 0),),
    0x84: ((6, 0),),
    0xA0: ((2, 0),),
    0xA1: _KINDS_AND_INTERVALS,
}
_DOWN_RULES: dict[int, Rule] = {
    0x02: ((0, 0), (1, 0)),
    0xC0: ((0, 0), (1, 0)),
    0x81: ((0, 0), (1, 0)),
    0x82: ((0, 0), (1, 0)),
    0x83: ((0, 0), (1, 0)),
    0x84: ((0, 0), (1, 0)),
    0x10: ((5, 0),),
    0x11: ((6, 0),),
    0x12: _ONE,
    0x61: ((0, 0), (1, 0)),
    0xA0: ((2, 0),),
    0xA1: _KINDS_AND_INTERVALS,
    0xB0: _NONE,
    0xB1: ((12, 0),),
} | {afn: _NONE for afn in PARAMETER_QUERY_AFNS if afn != 0x61}

# Real-time data areas (C0H, 81H, 82H reports, the B0H answer, and the B1H answer, which carries
# one stored slot as a C0H report would): items of the C type code + 4.
_ELEMENT_AFNS = frozenset({0xC0, 0x81, 0x82, 0xB0, 0xB1})
_ELEMENT_RULES: dict[int, Rule] = {code: ((4, size),) for code, size in ITEM_SIZES.items()}


def data_rule(up: bool, afn: int, function: int) -> Rule | None:
    """The D-length alternatives of a frame, or None when meterlink knows no rule for it."""
    if up:
        if afn in _ELEMENT_AFNS:
            return _ELEMENT_RULES.get(function)
        return _UP_RULES.get(afn)
    return _DOWN_RULES.get(afn)


def _fits(rule: Rule, length: int) -> bool:
    for fixed, item in rule:
        extra = length - fixed
        if extra == 0 or (extra > 0 and item and extra % item == 0):
            return True
    return False


def tp_candidates(up: bool, afn: int, function: int, size: int, pw_len: int) -> tuple[int, ...]:
    """Tp lengths, in the order to try, whose D length fits the rule for ``size`` bytes after AFN."""
    rule = data_rule(up, afn, function)
    if rule is None:
        return ()
    return tuple(n for n in (5, 7) if size - pw_len - n >= 0 and _fits(rule, size - pw_len - n))


def infer_tp(up: bool, afn: int, function: int, payload: bytes, pw_len: int) -> TimeLabel | None:
    """The Tp at the end of ``payload`` (the bytes after AFN) by the rule above, or None."""
    size = len(payload)
    for tp_len in tp_candidates(up, afn, function, size, pw_len):
        label = time_label_from_bytes(payload[size - tp_len :])
        if label is not None:
            return label
    return None


def infer_tp_len(up: bool, afn: int, function: int, payload: bytes, pw_len: int = 0) -> int:
    """The Tp length (0, 5 or 7) the rule above gives for ``payload`` (the bytes after AFN)."""
    label = infer_tp(up, afn, function, payload, pw_len)
    return 0 if label is None else label.size
