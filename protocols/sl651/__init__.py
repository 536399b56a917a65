"""SL651-2014 hydrological telemetry protocol (水文监测数据通信规约): a pure (sans-I/O) codec.

Modules: ``frame`` (one frame <-> :class:`Frame`, HEX/BCD and ASCII), ``body`` (serial number,
send time, elements), ``values`` (BCD numbers, data definitions, times), ``identifiers``
(element table and names, configuration tables), ``codes`` (control characters, function
codes, station types), ``crc`` (CRC-16/MODBUS, high byte first), ``stream`` (reassembly from a
byte stream), ``messages`` (builders), ``conversation`` and ``events`` (the link's state
machine: acknowledgements, serial numbers, resends), ``describe`` (the JSON view), ``errors``.
Stdlib only: no I/O, no clock, no logging.
"""

from .body import Body, Element, encode_body, parse_body
from .codes import REPORTS, Function
from .conversation import Conversation, Role
from .crc import crc16
from .describe import decode_input, describe
from .errors import (
    BodyError,
    BufferFullError,
    ChecksumError,
    EncodeError,
    EndCharError,
    HeaderError,
    LengthError,
    LocalProtocolError,
    SL651Error,
    StartError,
)
from .frame import Direction, Encoding, Frame, decode, encode
from .stream import NEED_DATA, Reassembler

__all__ = [
    "NEED_DATA",
    "REPORTS",
    "Body",
    "BodyError",
    "BufferFullError",
    "ChecksumError",
    "Conversation",
    "Direction",
    "Element",
    "EncodeError",
    "Encoding",
    "EndCharError",
    "Frame",
    "Function",
    "HeaderError",
    "LengthError",
    "LocalProtocolError",
    "Reassembler",
    "Role",
    "SL651Error",
    "StartError",
    "crc16",
    "decode",
    "decode_input",
    "describe",
    "encode",
    "encode_body",
    "parse_body",
]
