"""Register decoding for every type and word order, against the profiles' worked examples."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.drivers.modbus import profiles
from meterlink.protocols.modbus.registers import DataType, RegisterError, WordOrder, decode, encode

ALL_TYPES = list(DataType)
ALL_ORDERS = list(WordOrder)


def test_worked_examples_of_every_profile() -> None:
    checked = 0
    for name in profiles.names():
        for ex in profiles.load(name).examples:
            value = decode(ex.words, ex.type, ex.word_order)
            assert value == pytest.approx(ex.value, abs=ex.tolerance), (name, ex.source)
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    ("order", "words"),
    [
        # 0x41200000 = 10.0 as float32, bytes A=41 B=20 C=00 D=00
        (WordOrder.ABCD, [0x4120, 0x0000]),
        (WordOrder.CDAB, [0x0000, 0x4120]),
        (WordOrder.BADC, [0x2041, 0x0000]),
        (WordOrder.DCBA, [0x0000, 0x2041]),
    ],
)
def test_float32_in_each_word_order(order: WordOrder, words: list[int]) -> None:
    assert decode(words, DataType.FLOAT32, order) == 10.0
    assert list(encode(10.0, DataType.FLOAT32, order)) == words


@pytest.mark.parametrize(
    ("order", "words"),
    [
        (WordOrder.ABCD, [0x0102, 0x0304]),
        (WordOrder.CDAB, [0x0304, 0x0102]),
        (WordOrder.BADC, [0x0201, 0x0403]),
        (WordOrder.DCBA, [0x0403, 0x0201]),
    ],
)
def test_uint32_in_each_word_order(order: WordOrder, words: list[int]) -> None:
    assert decode(words, DataType.UINT32, order) == 0x01020304


def test_signed_and_unsigned_16_bit() -> None:
    assert decode([0xFFFF], DataType.UINT16) == 65535
    assert decode([0xFFFF], DataType.INT16) == -1
    assert decode([0x8000], DataType.INT16) == -32768
    assert decode([0x3412], DataType.UINT16, WordOrder.BADC) == 0x1234
    assert decode([0x1234], DataType.UINT16, WordOrder.CDAB) == 0x1234


def test_int32_negative_low_word_first() -> None:
    # TUF-2000 LONG: signed, low word first. -2 = 0xFFFFFFFE -> words [FFFE, FFFF]
    assert decode([0xFFFE, 0xFFFF], DataType.INT32, WordOrder.CDAB) == -2


def test_float64_word_orders() -> None:
    raw = struct.pack(">d", 1234.5678)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 8, 2)]
    assert decode(words, DataType.FLOAT64, WordOrder.ABCD) == 1234.5678
    assert decode(words[::-1], DataType.FLOAT64, WordOrder.CDAB) == 1234.5678


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(RegisterError):
        decode([1], DataType.FLOAT32)
    with pytest.raises(RegisterError):
        decode([1, 2, 3], DataType.UINT32)
    with pytest.raises(RegisterError):
        decode([70000], DataType.UINT16)


def test_encode_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(RegisterError):
        encode(70000, DataType.UINT16)
    with pytest.raises(RegisterError):
        encode(-1, DataType.UINT32)
    with pytest.raises(RegisterError):
        encode(1.5, DataType.INT16)


def test_decode_does_not_mutate_the_callers_registers() -> None:
    words = [0x0000, 0x4120]
    decode(words, DataType.FLOAT32, WordOrder.DCBA)
    assert words == [0x0000, 0x4120]


@given(
    dtype=st.sampled_from(ALL_TYPES),
    order=st.sampled_from(ALL_ORDERS),
    data=st.data(),
)
def test_round_trip_every_type_and_order(dtype: DataType, order: WordOrder, data: st.DataObject) -> None:
    bits = 16 * dtype.words
    if dtype.is_float:
        value = data.draw(st.floats(allow_nan=False, width=32 if dtype is DataType.FLOAT32 else 64))
    elif dtype.name.startswith("U"):
        value = data.draw(st.integers(0, 2**bits - 1))
    else:
        value = data.draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    words = encode(value, dtype, order)
    assert len(words) == dtype.words
    assert decode(words, dtype, order) == value


@given(
    words=st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=5),
    dtype=st.sampled_from(ALL_TYPES),
    order=st.sampled_from(ALL_ORDERS),
)
def test_any_registers_decode_or_raise_register_error(words: list[int], dtype: DataType, order: WordOrder) -> None:
    try:
        value = decode(words, dtype, order)
    except RegisterError:
        assert len(words) != dtype.words
        return
    assert isinstance(value, int) or math.isnan(value) or isinstance(value, float)


@given(
    dtype=st.sampled_from(ALL_TYPES),
    order=st.sampled_from(ALL_ORDERS),
    words=st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
)
def test_the_compiled_part_reader_equals_decode(dtype: DataType, order: WordOrder, words: list[int]) -> None:
    from meterlink.protocols.modbus.values import Part

    words = words[: dtype.words]
    image = {100 + i: w for i, w in enumerate(words)}
    expected = decode(words, dtype, order)
    got = Part(100, dtype, order).read(image)
    assert got == expected or (math.isnan(got) and math.isnan(expected))
