"""Merging a meter's registers into the fewest requests (a pure function)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.drivers.modbus import profiles
from meterlink.protocols.modbus.plan import ReadRequest, Span, plan_reads


def test_touching_spans_merge_into_one_request() -> None:
    spans = [Span(3, 0, 2), Span(3, 2, 2), Span(3, 4, 1)]
    assert plan_reads(spans) == [ReadRequest(3, 0, 5)]


def test_gaps_are_not_bridged_by_default_but_can_be() -> None:
    spans = [Span(3, 0, 2), Span(3, 5, 2)]
    assert plan_reads(spans) == [ReadRequest(3, 0, 2), ReadRequest(3, 5, 2)]
    assert plan_reads(spans, max_gap=3) == [ReadRequest(3, 0, 7)]


def test_overlaps_and_duplicates() -> None:
    spans = [Span(3, 10, 4), Span(3, 12, 2), Span(3, 10, 4), Span(3, 13, 2)]
    assert plan_reads(spans) == [ReadRequest(3, 10, 5)]


def test_function_codes_never_mix() -> None:
    spans = [Span(3, 0, 2), Span(4, 2, 2)]
    assert plan_reads(spans) == [ReadRequest(3, 0, 2), ReadRequest(4, 2, 2)]


def test_requests_stay_within_125_registers() -> None:
    spans = [Span(3, a, 2) for a in range(0, 300, 2)]
    plan = plan_reads(spans)
    assert [r.count for r in plan] == [124, 124, 52]
    assert all(r.count <= 125 for r in plan)


def test_bad_spans_raise() -> None:
    with pytest.raises(ValueError):
        plan_reads([Span(3, 0, 126)])
    with pytest.raises(ValueError):
        plan_reads([Span(3, 65535, 2)])


def test_built_in_profiles_read_in_few_requests() -> None:
    counts = {}
    for name in profiles.names():
        profile = profiles.load(name)
        spans = [s for spec in profile.value_specs() for s in spec.spans()]
        counts[name] = len(plan_reads(spans, max_gap=profile.max_gap))
    # The converter's manual reads its whole block at once; TUF-2000 needs its error word apart.
    assert counts["emf_generic"] == 1
    assert counts["tuf2000"] == 2
    assert counts["xintai_water_meter"] == 1
    assert counts["qdy30a_level"] == 1


@given(
    st.lists(st.builds(Span, st.just(3), st.integers(0, 2000), st.integers(1, 4)), min_size=1, max_size=60),
    st.integers(1, 125),
)
def test_plan_covers_every_span_with_no_request_too_long(spans: list[Span], max_count: int) -> None:
    if any(s.count > max_count for s in spans):
        return
    plan = plan_reads(spans, max_count=max_count)
    for span in spans:
        assert any(r.covers(span) for r in plan)
    assert all(1 <= r.count <= max_count for r in plan)
    # No request reads a register that no span asked for (gaps are not bridged).
    wanted = {a for s in spans for a in range(s.address, s.end)}
    assert all(a in wanted for r in plan for a in range(r.address, r.end))
    # Requests are sorted; they overlap only where the spans themselves overlap and cannot share one
    # request (a config never has such spans: values that overlap are refused).
    assert all(a.address < b.address for a, b in itertools.pairwise(plan))
    ordered = sorted(set(spans), key=lambda s: s.address)
    if all(a.end <= b.address for a, b in itertools.pairwise(ordered)):
        assert all(a.end <= b.address for a, b in itertools.pairwise(plan))
