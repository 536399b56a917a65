"""CRC-8/E5 and the data elements (BCD values, fills, signs, alarm/status words)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.protocols.szy206 import (
    INVALID,
    AlarmBit,
    DataError,
    EncodeError,
    FlowUnit,
    StatusBit,
    WorkMode,
    crc8,
    decode_flow,
    decode_level,
    decode_pressure,
    decode_velocity,
    decode_volume,
    encode_flow,
    encode_flow_data,
    encode_level,
    encode_pressure,
    encode_velocity,
    encode_volume,
)
from meterlink.protocols.szy206.crc import crc8_reference
from meterlink.protocols.szy206.elements import (
    ELEMENTS,
    Count,
    Value,
    bit_names,
    decode_flow_data,
    decode_values,
    encode_values,
    flow_unit,
    work_mode,
)

# -- CRC -----------------------------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc8(b"123456789") == 0xF7


def test_crc_worked_example_from_the_notes() -> None:
    assert crc8(bytes.fromhex("B05303810D0002F2")) == 0x3C


def test_crc_of_nothing_is_zero() -> None:
    assert crc8(b"") == 0


@given(st.binary(max_size=3000))
def test_crc_table_and_fold_match_the_bitwise_definition(data: bytes) -> None:
    assert crc8(data) == crc8_reference(data)


@pytest.mark.parametrize("size", [62, 63, 64, 95, 96, 97, 126, 127, 1034, 65_550])
def test_crc_fold_boundaries(size: int) -> None:
    data = bytes((i * 37 + 11) & 0xFF for i in range(size))
    assert crc8(data) == crc8_reference(data)
    assert crc8(bytearray(data)) == crc8(memoryview(data)) == crc8(data)


# -- values --------------------------------------------------------------------------------------

flows = st.integers(-999_999_999, 999_999_999).map(lambda n: n / 1000)
volumes = st.integers(0, 9_999_999_999)
fills = st.sampled_from([None, INVALID])


def test_flow_example_from_the_notes() -> None:
    assert encode_flow(5.9) == bytes.fromhex("0059000000")
    assert decode_flow(bytes.fromhex("0059000000")) == 5.9


def test_volume_example_from_the_notes() -> None:
    assert encode_volume(106182) == bytes.fromhex("8261100000")
    assert decode_volume(bytes.fromhex("8261100000")) == 106182


@given(st.one_of(flows, fills))
def test_flow_round_trip_szy206(value: Value) -> None:
    raw = encode_flow(value)
    assert len(raw) == 5
    assert decode_flow(raw) == value if value is not INVALID else decode_flow(raw) is INVALID


@given(flows, st.sampled_from(list(FlowUnit)))
def test_flow_round_trip_sl427_with_unit(value: float, unit: FlowUnit) -> None:
    raw = encode_flow(value, unit=unit)
    assert decode_flow(raw) == value
    assert flow_unit(raw) is unit
    assert raw[4] >> 6 == (0b11 if value < 0 else 0)


def test_flow_sign_readings() -> None:
    # SZY206 F nibble and SL/T 427 sign bits 11 (unit m3/s) are both negative.
    assert decode_flow(bytes.fromhex("00590000F0")) == -5.9
    assert decode_flow(bytes.fromhex("00590000C1")) == -100_005.9
    assert decode_flow(bytes.fromhex("0059000030")) == 5.9  # SL/T 427: positive, m3/h
    assert flow_unit(bytes.fromhex("0059000030")) is FlowUnit.M3_PER_H
    assert flow_unit(bytes.fromhex("0059000001")) is FlowUnit.M3_PER_S
    assert flow_unit(bytes.fromhex("0059000011")) is None  # unit bits 01: not defined
    assert flow_unit(b"\xaa" * 5) is None


@given(st.one_of(volumes, fills))
def test_volume_round_trip(value: Count) -> None:
    assert decode_volume(encode_volume(value)) == value if value is not INVALID else True
    if value is INVALID:
        assert decode_volume(encode_volume(value)) is INVALID


@given(st.integers(-9_999_999, 9_999_999).map(lambda n: n / 1000))
def test_level_round_trip(value: float) -> None:
    raw = encode_level(value)
    assert len(raw) == 4 and decode_level(raw) == value
    assert raw[3] >> 4 == (0xF if value < 0 else 0)


@given(st.integers(0, 99_999_999).map(lambda n: n / 100))
def test_pressure_round_trip(value: float) -> None:
    raw = encode_pressure(value)
    assert len(raw) == 4 and decode_pressure(raw) == value


@given(st.integers(-99_999, 99_999).map(lambda n: n / 1000))
def test_velocity_round_trip(value: float) -> None:
    raw = encode_velocity(value)
    assert len(raw) == 3 and decode_velocity(raw) == value


def test_fills_absent_and_invalid() -> None:
    for decoder, size in (
        (decode_flow, 5),
        (decode_volume, 5),
        (decode_level, 4),
        (decode_pressure, 4),
        (decode_velocity, 3),
    ):
        assert decoder(b"\xaa" * size) is None
        assert decoder(b"\xff" * size) is INVALID
    assert decode_volume(bytes.fromhex("8261A00000")) is INVALID  # a non-BCD digit
    assert encode_level(None) == b"\xaa" * 4 and encode_pressure(INVALID) == b"\xff" * 4


@pytest.mark.parametrize(
    ("encoder", "value"),
    [
        (encode_flow, 1_000_000.0),
        (encode_flow, -1_000_000.0),
        (encode_volume, 10_000_000_000),
        (encode_volume, -1),
        (encode_level, 10_000.0),
        (encode_pressure, -0.01),
        (encode_pressure, 1_000_000.0),
        (encode_velocity, 100.0),
    ],
)
def test_out_of_range_values_do_not_encode(encoder: object, value: float) -> None:
    with pytest.raises(EncodeError):
        encoder(value)  # type: ignore[operator]


def test_wrong_sized_value_is_a_data_error() -> None:
    with pytest.raises(DataError):
        decode_flow(b"\x00" * 4)
    with pytest.raises(DataError):
        decode_volume(b"\x00" * 6)


# -- data areas ----------------------------------------------------------------------------------

meters = st.lists(st.tuples(st.one_of(flows, fills), st.one_of(volumes, fills)), max_size=8)
words = st.integers(0, 0xFFFF)


@given(meters, words, words)
def test_flow_data_round_trip(pairs: list[tuple[object, object]], alarm: int, status: int) -> None:
    data = encode_flow_data(pairs, alarm, status)  # type: ignore[arg-type]
    assert len(data) == 10 * len(pairs) + 4
    got, got_alarm, got_status = decode_flow_data(data)
    assert [tuple(m) for m in got] == pairs
    assert (got_alarm, got_status) == (alarm, status)


value_bytes = st.one_of(
    st.binary(min_size=5, max_size=5),
    st.sampled_from([b"\xaa" * 5, b"\xff" * 5]),
    st.integers(0, 10**10 - 1).map(lambda n: bytes.fromhex(f"{n:010d}")[::-1]),
)


@given(st.lists(value_bytes, max_size=12).filter(lambda v: len(v) % 2 == 0), st.binary(min_size=4, max_size=4))
def test_flow_data_unrolled_decoder_matches_the_value_decoders(values: list[bytes], state: bytes) -> None:
    data = b"".join(values) + state
    got, _, _ = decode_flow_data(data)
    expect = [(decode_flow(data[i : i + 5]), decode_volume(data[i + 5 : i + 10])) for i in range(0, len(data) - 4, 10)]
    assert [tuple(m) for m in got] == expect


def test_flow_data_with_a_wrong_size_is_a_data_error() -> None:
    with pytest.raises(DataError):
        decode_flow_data(b"\x00" * 13)


@pytest.mark.parametrize("function", sorted(ELEMENTS))
def test_single_value_areas_round_trip(function: int) -> None:
    element = ELEMENTS[function]
    values = [element.maximum(), 0.0, None, INVALID] + ([-element.maximum()] if element.signed else [])
    data = encode_values(function, values, 0x1234, 0x0061)
    assert decode_values(function, data) == (values, 0x1234, 0x0061)


def test_alarm_and_status_words_low_byte_first() -> None:
    data = encode_flow_data([], 0x1001, 0x0060)
    assert data == bytes.fromhex("01106000")
    assert AlarmBit(0x1001) == AlarmBit.AC_POWER_OFF | AlarmBit.REMAINING_WATER_LOW
    assert bit_names(0x1001, AlarmBit) == ["AC_POWER_OFF", "REMAINING_WATER_LOW"]
    assert bit_names(0xC000, AlarmBit) == ["D14", "D15"]
    assert bit_names(0x0061, StatusBit) == ["DOOR_CLOSED", "ON_BATTERY"]
    assert bit_names(0x8000, StatusBit) == ["D15"]
    assert work_mode(0x0061) is WorkMode.REPORT_WITH_CONFIRM
    with pytest.raises(EncodeError):
        encode_flow_data([], 0x10000, 0)
