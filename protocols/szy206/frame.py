"""SZY206-2016 / SL/T 427-2021 frames: one whole frame <-> :class:`Frame`.

Frame (notes section 1; SL/T 427 "帧格式", table 3)::

    68H | L | 68H | C | [DIVS] | A (5) | AFN | D ... | [PW (2)] | [Tp (5|7)] | CS | 16H
                    \\____________________ user data, L bytes ___________________/

    C   D7 DIR (0 down, 1 up) | D6 DIV | D5-D4 FCB | D3-D0 command/type code
    CS  CRC-8/E5 over the user data (crc.py); total length L + 5

Picture frames are the exception: in uplink AFN 61H/83H frames L counts the image stream in KiB
(SL/T 427 "图片数据流的字节总数为L×1K"). Their data is a 2-byte image byte count n, low byte
first, then n image bytes, with no PW or Tp; a 1 KiB chunk has L = 01H and 1034 bytes of user
data (C, DIVS, A, AFN, n, image)::

    68H | 01H | 68H | C=F0H | DIVS | A (5) | 61H | 00 04 | 1024 image bytes | CS | 16H

The decoder accepts a picture frame whose L is n // 1024 or ceil(n / 1024) and also one with an
ordinary L (user data length); the encoder writes ceil(n / 1024).

Strategy: check start bytes, length, end byte and CRC in that order, so each failure raises its
own error class; then split the user data. PW and Tp are split off the end of the payload by the
caller's choice or by the rules in layout.py. Decoded frames are built without re-running the
constructor's checks (the wire bytes already satisfy them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .crc import crc8
from .errors import (
    ChecksumError,
    DataError,
    EncodeError,
    EndByteError,
    LengthError,
    StartByteError,
    UnsupportedError,
)
from .fields import Address, TimeLabel, address_cache, address_from_bytes, time_label_from_bytes
from .layout import PICTURE_AFNS, carries_pw, tp_candidates

START = 0x68
END = 0x16
PICTURE_UNIT = 1024
MIN_USER_LEN = 7  # C, A (5), AFN


class Direction(IntEnum):
    """C bit D7."""

    DOWN = 0  # centre -> terminal
    UP = 1  # terminal -> centre


_DIRECTIONS = (Direction.DOWN, Direction.UP)


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One SZY206 frame. ``data`` is D without PW and Tp; ``divs`` is set exactly when ``div``."""

    direction: Direction
    div: bool = False
    divs: int | None = None
    fcb: int = 3
    function: int = 0
    address: Address
    afn: int
    data: bytes = b""
    pw: bytes | None = None
    tp: TimeLabel | None = None

    def __post_init__(self) -> None:
        if self.direction not in (0, 1):
            raise EncodeError(f"direction must be Direction.UP or DOWN, got {self.direction!r}")
        if not 0 <= self.afn <= 255:
            raise EncodeError(f"afn must be 0..255, got {self.afn}")
        # Plain ints (1, AFN.REPORT) are accepted; store the types decode() produces.
        object.__setattr__(self, "direction", _DIRECTIONS[self.direction])
        object.__setattr__(self, "afn", int(self.afn))
        if self.div != (self.divs is not None):
            raise EncodeError("divs is given exactly when div is set")
        if self.divs is not None and not 0 <= self.divs <= 255:
            raise EncodeError(f"divs must be 0..255, got {self.divs}")
        if not 0 <= self.fcb <= 3:
            raise EncodeError(f"fcb must be 0..3, got {self.fcb}")
        if not 0 <= self.function <= 15:
            raise EncodeError(f"function (type code) must be 0..15, got {self.function}")
        if not isinstance(self.data, bytes):
            raise EncodeError("data must be bytes")
        if self.pw is not None and (not isinstance(self.pw, bytes) or len(self.pw) != 2):
            raise EncodeError("pw must be 2 bytes or None")

    @property
    def up(self) -> bool:
        return self.direction == 1

    @property
    def control(self) -> int:
        """The C byte."""
        return (self.direction << 7) | (0x40 if self.div else 0) | (self.fcb << 4) | self.function

    @property
    def is_picture(self) -> bool:
        """An uplink 61H/83H frame whose data is a 2-byte count and that many image bytes."""
        data = self.data
        return (
            self.direction == 1
            and self.afn in PICTURE_AFNS
            and self.pw is None
            and self.tp is None
            and len(data) > 2
            and data[0] | (data[1] << 8) == len(data) - 2
        )


# Slot setters, to build decoded frames without __post_init__ (a frozen dataclass's __init__ goes
# through object.__setattr__ and re-checks what the wire bytes already guarantee).
_new = object.__new__
_SETTERS = tuple(
    Frame.__dict__[name].__set__
    for name in ("direction", "div", "divs", "fcb", "function", "address", "afn", "data", "pw", "tp")
)
(
    _set_direction,
    _set_div,
    _set_divs,
    _set_fcb,
    _set_function,
    _set_address,
    _set_afn,
    _set_data,
    _set_pw,
    _set_tp,
) = _SETTERS


def make_frame(
    direction: Direction,
    div: bool,
    divs: int | None,
    fcb: int,
    function: int,
    address: Address,
    afn: int,
    data: bytes,
    pw: bytes | None,
    tp: TimeLabel | None,
) -> Frame:
    """Build a Frame from values already known to be valid (decoded bytes), skipping the checks."""
    frame = _new(Frame)
    _set_direction(frame, direction)
    _set_div(frame, div)
    _set_divs(frame, divs)
    _set_fcb(frame, fcb)
    _set_function(frame, function)
    _set_address(frame, address)
    _set_afn(frame, afn)
    _set_data(frame, data)
    _set_pw(frame, pw)
    _set_tp(frame, tp)
    return frame


def user_data(frame: Frame) -> bytes:
    """C [DIVS] A AFN D [PW] [Tp]: the bytes that L counts and the CRC covers."""
    head = bytes((frame.control, frame.divs)) if frame.divs is not None else bytes((frame.control,))
    user = head + frame.address.to_bytes() + bytes((frame.afn,)) + frame.data
    if frame.pw is not None:
        user += frame.pw
    if frame.tp is not None:
        user += frame.tp.to_bytes()
    return user


def length_field(frame: Frame, user_len: int) -> int:
    """L as the encoder writes it: KiB of image for picture frames, else the user data length."""
    if frame.is_picture:
        return -(-(len(frame.data) - 2) // PICTURE_UNIT)  # at most 64: the count is 2 bytes
    if user_len > 255:
        raise EncodeError(f"user data of {user_len} bytes does not fit L (max 255)")
    return user_len


def encode(frame: Frame) -> bytes:
    """Frame -> wire bytes."""
    user = user_data(frame)
    size = len(user)
    length = size if size <= 255 and frame.afn not in PICTURE_AFNS else length_field(frame, size)
    return bytes((START, length, START)) + user + bytes((crc8(user), END))


def picture_total(buf: bytes | bytearray, start: int = 0) -> int:
    """Total bytes of the picture frame at ``buf[start]``: > 0 if the header reads as one,
    -1 if it cannot be one, 0 if more bytes are needed to tell."""
    if len(buf) - start < 4:
        return 0
    control = buf[start + 3]
    if not control & 0x80:
        return -1
    at = start + (11 if control & 0x40 else 10)  # index of the image count
    if len(buf) < at + 2:
        return 0
    if buf[at - 1] not in PICTURE_AFNS:
        return -1
    count = buf[at] | (buf[at + 1] << 8)
    length = buf[start + 1]
    if count == 0 or not count // PICTURE_UNIT <= length <= -(-count // PICTURE_UNIT):
        return -1
    return at - start + 2 + count + 2


def decode(buf: bytes | bytearray | memoryview, *, tp_len: int | None = None, pw: bool | None = None) -> Frame:
    """One whole frame -> Frame.

    ``tp_len``: 0, 5 or 7 when the device's edition is known, None to infer it (layout.py).
    ``pw``: True/False to say whether PW is present, None for the default policy (layout.py).

    Raises StartByteError, LengthError, EndByteError, ChecksumError (checked in that order), or
    DataError when PW/Tp do not fit the data area.
    """
    if tp_len not in (None, 0, 5, 7):
        raise UnsupportedError(f"tp_len must be None, 0, 5 or 7, got {tp_len}")
    raw = bytes(buf)
    size = len(raw)
    if (size and raw[0] != START) or (size > 2 and raw[2] != START):
        raise StartByteError("frame does not start with 68H L 68H")
    if size < MIN_USER_LEN + 5:
        raise LengthError(f"{size} bytes cannot hold a frame (at least {MIN_USER_LEN + 5})")
    length = raw[1]
    minimum = MIN_USER_LEN + (1 if size > 3 and raw[3] & 0x40 else 0)
    if size == length + 5 and length >= minimum:
        picture = False
    elif picture_total(raw) == size:
        picture = True
    else:
        raise LengthError(f"L = {length} gives a frame of {length + 5} bytes, got {size}")
    if raw[-1] != END:
        raise EndByteError(f"frame ends with {raw[-1]:02X}H, not 16H")
    check = crc8(raw[3:-2])
    if check != raw[-2]:
        raise ChecksumError(
            f"CS is {raw[-2]:02X}H, CRC-8 of the user data is {check:02X}H", expected=check, found=raw[-2]
        )
    return parse_checked(raw, 0, size, picture, tp_len, pw)


# How to split the bytes after AFN, by (C & 8FH, AFN, their count, tp_len, pw): PW length, Tp
# lengths to try, and whether a Tp is required (the caller gave tp_len). A gateway sees few shapes.
_Plan = tuple[int, tuple[int, ...], bool]
_plans: dict[tuple[int, int, int, int | None, bool | None], _Plan] = {}


def _plan(control: int, afn: int, size: int, tp_len: int | None, pw: bool | None) -> _Plan:
    up = bool(control & 0x80)
    # The default PW policy is a guess: a frame too short for PW has none.
    with_pw = carries_pw(up, afn) and size >= 2 if pw is None else pw
    pw_len = 2 if with_pw else 0
    if tp_len is None:
        return pw_len, tp_candidates(up, afn, control & 0x0F, size, pw_len), False
    if size < pw_len + tp_len:
        raise DataError(f"{size} bytes after AFN cannot hold PW ({pw_len}) and Tp ({tp_len})")
    return pw_len, (tp_len,) if tp_len else (), True


def parse_checked(raw: bytes, start: int, end: int, picture: bool, tp_len: int | None, pw: bool | None) -> Frame:
    """Split the frame ``raw[start:end]`` whose framing, length and CRC are already checked
    (and ``tp_len`` too). Works in place so the reassembler need not copy the frame out."""
    control = raw[start + 3]
    if control & 0x40:
        divs: int | None = raw[start + 4]
        at = start + 5
    else:
        divs = None
        at = start + 4
    address_bytes = raw[at : at + 5]
    address = address_cache.get(address_bytes) or address_from_bytes(address_bytes)
    afn = raw[at + 5]
    first = at + 6  # D starts here; D, PW and Tp end at `stop`
    stop = end - 2
    pw_bytes = tp = None
    if not picture:
        size = stop - first
        key = (control & 0x8F, afn, size, tp_len, pw)
        plan = _plans.get(key)
        if plan is None:
            plan = _plan(control, afn, size, tp_len, pw)
            if len(_plans) >= 4096:
                _plans.clear()
            _plans[key] = plan
        pw_len, candidates, required = plan
        for length in candidates:
            tp = time_label_from_bytes(raw[stop - length : stop])
            if tp is not None:
                stop -= length
                break
        else:
            if required and candidates:
                label = raw[stop - candidates[0] : stop].hex().upper()
                raise DataError(f"Tp {label} is not a valid time label")
        if pw_len:
            pw_bytes = raw[stop - 2 : stop]
            stop -= 2
    payload = raw[first:stop]
    # make_frame(), inlined: this is the hot path of decode() and of the reassembler.
    frame = _new(Frame)
    _set_direction(frame, _DIRECTIONS[control >> 7])
    _set_div(frame, divs is not None)
    _set_divs(frame, divs)
    _set_fcb(frame, (control >> 4) & 0x03)
    _set_function(frame, control & 0x0F)
    _set_address(frame, address)
    _set_afn(frame, afn)
    _set_data(frame, payload)
    _set_pw(frame, pw_bytes)
    _set_tp(frame, tp)
    return frame


def frame_length(frame: Frame) -> int:
    """L of the frame as encode() writes it."""
    return length_field(frame, len(user_data(frame)))
