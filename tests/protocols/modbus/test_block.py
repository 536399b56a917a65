"""A meter's values decoded from its one block at once equal each value's own decode."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meterlink.drivers.modbus import profiles
from meterlink.protocols.modbus.block import block_decoder
from meterlink.protocols.modbus.plan import ReadRequest, plan_reads
from meterlink.protocols.modbus.registers import DataType, RegisterError, WordOrder
from meterlink.protocols.modbus.values import Part, ValueSpec

BLOCK = ReadRequest(3, 100, 12)


def _each(specs: list[ValueSpec], words: list[int], address: int) -> tuple[str, object]:
    """What decoding value by value from an image gives: the values, or that it failed."""
    image = {address + i: w for i, w in enumerate(words)}
    try:
        return "values", [repr(spec.decode(image)) for spec in specs]
    except RegisterError:
        return "error", None


def _block(specs: list[ValueSpec], words: list[int], request: ReadRequest) -> tuple[str, object]:
    decode = block_decoder(specs, request)
    assert decode is not None
    try:
        return "values", [repr(v) for v in decode(words)]
    except RegisterError:
        return "error", None


values = st.builds(
    lambda offset, dtype, order: (offset, dtype, order),
    st.integers(0, 8),
    st.sampled_from(list(DataType)),
    st.sampled_from(list(WordOrder)),
)


@given(
    layout=st.lists(values, min_size=1, max_size=5),
    words=st.lists(st.integers(0, 0xFFFF), min_size=BLOCK.count, max_size=BLOCK.count),
)
@example(layout=[(0, DataType.FLOAT32, WordOrder.ABCD)], words=[0x8000] + [0] * 11)  # -0.0
@example(layout=[(2, DataType.FLOAT32, WordOrder.ABCD)], words=[0, 0, 0x7F80] + [0] * 9)  # inf
@example(layout=[(0, DataType.FLOAT64, WordOrder.DCBA)], words=[0, 0, 0, 0xF87F] + [0] * 8)  # NaN
def test_a_block_decodes_every_value_as_its_own_decode_does(
    layout: list[tuple[int, DataType, WordOrder]], words: list[int]
) -> None:
    # Values may overlap and come in any order: the block holds them to the same answers anyway.
    specs = [ValueSpec(f"q{i}", "", 3, (Part(BLOCK.address + o, t, w),)) for i, (o, t, w) in enumerate(layout)]
    assert _block(specs, words, BLOCK) == _each(specs, words, BLOCK.address)


@pytest.mark.parametrize("name", profiles.names())
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=125, max_size=125))
def test_every_built_in_profile_read_in_one_request_decodes_as_value_by_value(name: str, words: list[int]) -> None:
    specs = profiles.load(name).value_specs()
    requests = plan_reads(span for spec in specs for span in spec.spans())
    decode = block_decoder(specs, requests[0]) if len(requests) == 1 else None
    if name == "xintai_water_meter":
        assert decode is not None, "the water meter of the benchmarks reads and decodes in one block"
    if decode is None:
        return
    block = words[: requests[0].count]
    assert _block(specs, block, requests[0]) == _each(specs, block, requests[0].address)


def test_a_value_the_block_cannot_decode_as_is_leaves_the_meter_value_by_value() -> None:
    plain = Part(100, DataType.UINT16)
    assert block_decoder([ValueSpec("q", "", 3, (plain,))], BLOCK) is not None
    for spec in (
        ValueSpec("q", "", 3, (plain,), scale=0.1),
        ValueSpec("q", "", 3, (plain,), offset=1.0),
        ValueSpec("q", "", 3, (plain, Part(102, DataType.UINT16))),
        ValueSpec("q", "", 3, (plain,), decimals_address=104),
        ValueSpec("q", "", 3, (Part(100, DataType.UINT16, multiplier=10.0),)),
        ValueSpec("q", "", 4, (plain,)),  # another function than the block's
        ValueSpec("q", "", 3, (Part(99, DataType.UINT16),)),  # before the block
        ValueSpec("q", "", 3, (Part(111, DataType.FLOAT32),)),  # runs past its end
    ):
        assert block_decoder([spec], BLOCK) is None, spec


def test_a_bad_value_names_its_quantity_and_a_short_block_is_an_error() -> None:
    decode = block_decoder([ValueSpec("flow_rate", "m3/h", 3, (Part(100, DataType.FLOAT32),))], BLOCK)
    assert decode is not None
    with pytest.raises(RegisterError, match=r"^flow_rate decodes to inf$"):
        decode([0x7F80] + [0] * 11)
    with pytest.raises(RegisterError, match="not 12 16-bit words"):
        decode([0] * 11)
