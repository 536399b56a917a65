"""ValueSpec.decode: the shortcut for plain one-part values equals the general decode, bit for bit."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meterlink.protocols.modbus.registers import DataType, RegisterError, WordOrder
from meterlink.protocols.modbus.values import Part, ValueSpec


def _same(a: float, b: float) -> bool:
    """Equal as floats and as JSON would print them (0.0 and -0.0 differ there)."""
    return repr(a) == repr(b)


def _outcome(spec: ValueSpec, image: dict[int, int], general: bool) -> tuple[str, str]:
    try:
        value = spec._decode_general(image) if general else spec.decode(image)
    except RegisterError as exc:
        return "error", str(exc)
    return "value", repr(value)


@given(
    dtype=st.sampled_from(list(DataType)),
    order=st.sampled_from(list(WordOrder)),
    words=st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
)
@example(dtype=DataType.FLOAT32, order=WordOrder.ABCD, words=[0x8000, 0, 0, 0])  # -0.0
@example(dtype=DataType.FLOAT32, order=WordOrder.ABCD, words=[0x7F80, 0, 0, 0])  # inf
@example(dtype=DataType.FLOAT64, order=WordOrder.ABCD, words=[0x8000, 0, 0, 0])  # -0.0
@example(dtype=DataType.FLOAT32, order=WordOrder.DCBA, words=[0x851E, 0x3F0B, 0, 0])  # 0.545
def test_a_plain_value_decodes_as_the_general_decode_does(dtype: DataType, order: WordOrder, words: list[int]) -> None:
    spec = ValueSpec("q", "", 3, (Part(10, dtype, order),))
    image = {10 + i: w for i, w in enumerate(words)}
    assert spec._decoder != spec._decode_general, "a plain value takes the shortcut"
    assert _outcome(spec, image, general=False) == _outcome(spec, image, general=True)


@pytest.mark.parametrize("dtype", list(DataType))
def test_a_plain_value_missing_a_register_is_a_register_error(dtype: DataType) -> None:
    spec = ValueSpec("q", "", 3, (Part(10, dtype),))
    with pytest.raises(RegisterError, match="register 10 was not read"):
        spec.decode({})
    with pytest.raises(RegisterError, match="not 16-bit words"):
        spec.decode({10 + i: 0x10000 for i in range(4)})


def test_a_value_with_scaling_parts_or_decimals_takes_the_general_decode() -> None:
    plain = Part(0, DataType.UINT16)
    for spec in (
        ValueSpec("q", "", 3, (plain,), scale=0.1),
        ValueSpec("q", "", 3, (plain,), offset=1.0),
        ValueSpec("q", "", 3, (plain,), decimals_address=1),
        ValueSpec("q", "", 3, (Part(0, DataType.UINT16, multiplier=10.0),)),
        ValueSpec("q", "", 3, (plain, Part(1, DataType.FLOAT32))),
    ):
        assert spec._decoder == spec._decode_general
    assert ValueSpec("q", "", 3, (plain,), scale=0.1).decode({0: 3}) == 0.3


def test_a_float32_keeps_seven_significant_digits() -> None:
    words = struct.unpack(">2H", struct.pack(">f", 36.62541))
    value = ValueSpec("flow", "m3/h", 3, (Part(0, DataType.FLOAT32),)).decode(dict(enumerate(words)))
    assert repr(value) == "36.62541" and not math.isnan(value)
