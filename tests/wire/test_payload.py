"""The payload: documented shape, compact numbers, and the fast encoder equal to json.dumps."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.wire.errors import PayloadError
from meterlink.wire.payload import (
    StoredReading,
    check_message,
    reading_dict,
    readings_message,
)

names = st.text(min_size=1, max_size=12)
readings = st.builds(
    StoredReading,
    seq=st.integers(1, 2**53),
    meter=names,
    quantity=names,
    value=st.floats(allow_nan=False, allow_infinity=False),
    unit=st.text(max_size=6),
    ts=st.integers(0, 2**45),
    slot=st.integers(0, 2**45),
    flags=st.sampled_from([0, 1]),
)


@given(st.lists(readings, max_size=20), names, st.integers(1, 2**40), st.integers(0, 2**45))
def test_fast_encoder_equals_json_dumps(rows: list[StoredReading], gateway: str, batch: int, sent_at: int) -> None:
    expected = json.dumps(
        {"gateway": gateway, "batch": batch, "sent_at": sent_at, "readings": [reading_dict(r) for r in rows]},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    assert readings_message(gateway, batch, sent_at, rows) == expected


def test_shape_and_types() -> None:
    r = StoredReading(17, "well-1", "flow_rate", 36.62541, "m3/h", 1_764_374_400_381, 1_764_374_400_000, 1)
    body = json.loads(
        readings_message(
            "gw-1", 3, 1_764_374_402_000, [r, StoredReading(18, "well-1", "volume_total", 106182.0, "m3", 5, 0, 0)]
        )
    )
    assert check_message(body) is body
    first, second = body["readings"]
    assert first == {
        "seq": 17,
        "meter": "well-1",
        "quantity": "flow_rate",
        "value": 36.62541,
        "unit": "m3/h",
        "ts": 1_764_374_400_381,
        "slot": 1_764_374_400_000,
        "flags": ["clock_unsynced"],
    }
    assert second["value"] == 106182 and isinstance(second["value"], int)  # the same number, shorter
    assert "flags" not in second


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError):
        readings_message("gw", 1, 1, [StoredReading(1, "m", "q", math.inf, "", 0, 0, 0)])


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"gateway": "g"},
        {"gateway": 1, "batch": 1, "sent_at": 1, "readings": []},
        {"gateway": "g", "batch": "1", "sent_at": 1, "readings": []},
        {"gateway": "g", "batch": 1, "sent_at": 1},
        {"gateway": "g", "batch": 1, "sent_at": 1, "readings": [{"seq": "1"}]},
        {
            "gateway": "g",
            "batch": 1,
            "sent_at": 1,
            "readings": [{"seq": 1, "ts": 1, "meter": "m", "quantity": "q", "unit": "u", "value": True}],
        },
    ],
)
def test_check_message_rejects_wrong_shapes(body: object) -> None:
    with pytest.raises(PayloadError):
        check_message(body)
