"""The SL651 station's pieces: its config section, its tables in the store, its elements, its answers."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from meterlink.agent import clock as agent_clock
from meterlink.agent.latest import LatestValues
from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store
from meterlink.agent.store_sl651 import KeptReport, Sl651Book
from meterlink.agent.uplinks.sl651_answers import Answers, local_time, ms_of, values_at_steps
from meterlink.agent.uplinks.sl651_config import Sl651UplinkConfig
from meterlink.agent.uplinks.sl651_data import ReportElements
from meterlink.drivers.base import Reading
from meterlink.protocols.sl651 import Frame, decode, describe, encode, parse_body
from meterlink.protocols.sl651.messages import build_period_query, build_query, number_element, step_element

SECTION: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5051,
    "center": 1,
    "station": "0012345678",
    "password": "1234",
    "meters": {
        "intake": {"flow": {"id": "27"}, "volume": {"id": "FF09", "definition": "32"}},
        "outlet": {"flow": {"id": "28", "unit": "m3/h"}},
    },
}


def section(**changes: Any) -> Sl651UplinkConfig:
    return Sl651UplinkConfig.model_validate({**SECTION, **changes})


def problems(**changes: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        section(**changes)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors()]


# -- the config section ----------------------------------------------------------------------------


def test_the_section_reads_with_its_defaults() -> None:
    cfg = section()
    assert cfg.station_bytes == bytes.fromhex("0012345678") and cfg.password_word == 0x1234
    assert cfg.type_byte == ord("I") and cfg.report_interval == 300 and cfg.hourly
    assert cfg.meters["intake"].flow is not None and cfg.meters["intake"].flow.definition_byte == 0x2B  # N(9,3)
    assert cfg.meters["intake"].volume is not None and cfg.meters["intake"].volume.definition_byte == 0x32


@pytest.mark.parametrize(
    ("changes", "wanted"),
    [
        ({"station": "12345"}, "station: String should match pattern"),
        ({"station_type": "X"}, "'X' is no station type of the standard"),
        ({"meters": {"m": {"flow": {"id": "FF10"}}}}, "FF10 has no standard type, give its data definition"),
        ({"meters": {"m": {"flow": {"id": "F1"}}}}, "F1 is reserved by the standard"),
        ({"meters": {"m": {"flow": {"id": "27", "unit": "m3"}}}}, "'m3' is not a flow unit"),
        ({"meters": {"m": {}}}, "map flow, volume or both"),
        ({"meters": {"a": {"flow": {"id": "27"}}, "b": {"flow": {"id": "27"}}}}, "27 is already meters.a's"),
        ({"report_interval": 0, "hourly": False}, "nothing would be reported"),
        ({"meters": {"m": {"flow": {"id": "27", "definition": "00"}}}}, "is 0 bytes"),
        ({"keepalive_s": 5}, "keepalive_s: Extra inputs are not permitted"),
    ],
)
def test_each_mistake_is_one_line_naming_it(changes: dict[str, Any], wanted: str) -> None:
    lines = problems(**changes)
    assert len(lines) == 1 and wanted in lines[0], lines


# -- the store's tables ----------------------------------------------------------------------------


def open_book(path: Path, retention_ms: int = 35 * 86_400_000) -> tuple[Store, Sl651Book]:
    store = Store(path, "gw", retention_ms=retention_ms)
    return store, Sl651Book(store)


ELEMENTS = (number_element(0x27, 1.25, 0x2B),)


def test_serial_numbers_continue_across_a_restart_and_wrap_to_one(tmp_path: Path) -> None:
    store, book = open_book(tmp_path / "s.db")
    assert [book.take_serial() for _ in range(3)] == [1, 2, 3]
    store.close()
    store, book = open_book(tmp_path / "s.db")
    assert book.take_serial() == 4
    book.db.execute("UPDATE sl651_state SET value = 65535 WHERE name = 'serial'")
    assert book.take_serial() == 1


def test_a_report_keeps_its_first_serial_and_send_time_until_acknowledged(tmp_path: Path) -> None:
    _, book = open_book(tmp_path / "s.db")
    assert book.keep(0x32, 60_000, ELEMENTS, 1) and not book.keep(0x32, 60_000, ELEMENTS, 2)
    book.keep(0x32, 0, ELEMENTS, 1)
    book.take_serial()  # a keep-alive between
    assert book.attempt(0x32, 60_000, 70_000) == (2, 70_000)
    assert book.attempt(0x32, 60_000, 99_000) == (2, 70_000)  # the same frame again
    assert [(r.slot, r.serial) for r in book.unconfirmed(10)] == [(0, None), (60_000, 2)]  # oldest first
    assert book.unconfirmed(10, before=60_000)[0].elements == ELEMENTS
    book.confirm(0x32, 60_000, 100_000)
    assert book.attempt(0x32, 60_000, 101_000) is None  # acknowledged meanwhile: nothing to send
    assert book.counts() == (1, 1)


def test_purge_drops_only_acknowledged_reports_past_retention(tmp_path: Path) -> None:
    _, book = open_book(tmp_path / "s.db", retention_ms=1000)
    for slot in (0, 1000, 5000):
        book.keep(0x32, slot, ELEMENTS, slot)
    book.confirm(0x32, 0, 1)
    book.confirm(0x32, 5000, 1)
    assert book.purge(5500) == 1
    assert [r.slot for r in book.between(0, 10_000)] == [1000, 5000]


def test_added_reports_come_from_the_configured_events_once(tmp_path: Path) -> None:
    store, book = open_book(tmp_path / "s.db")
    store.add_event("old", 1, {})
    book.start_events_at(10)  # events before 10 ms are history
    store.add_event("meter_offline", 20, {"meter": "intake"})
    store.add_event("other", 30, {})
    new = book.new_events(["meter_offline", "old"])
    assert [(kind, ts) for _, ts, kind, _ in new] == [("meter_offline", 20)]
    assert book.keep_added(new[0][0], 20, ELEMENTS, 40)
    assert book.new_events(["meter_offline"]) == []
    assert [(r.function, r.slot) for r in book.unconfirmed(10)] == [(0x33, 20)]


# -- elements --------------------------------------------------------------------------------------


def reading(meter: str, quantity: str, value: float, slot: int, unit: str = "") -> Reading:
    unit = unit or {"flow_rate": "m3/h", "volume_total": "m3"}[quantity]
    return Reading(meter, quantity, value, unit, slot + 5, slot)


def test_elements_convert_units_and_send_what_cannot_be_held_as_invalid() -> None:
    latest = LatestValues()
    latest.observe(
        [
            reading("intake", "flow_rate", 360.0, 1000),
            reading("intake", "volume_total", 12345.678, 1000),
            reading("outlet", "flow_rate", 12.3456, 1000),
        ]
    )
    data = ReportElements(section().meters, latest)
    got = {e.ident: e for e in data.elements(1000, 1000)}
    assert got[0x27] == number_element(0x27, 0.1, 0x2B)  # 360 m3/h = 0.1 m3/s
    assert got[0xFF09] == number_element(0xFF09, 12345.68, 0x32)
    assert got[0x28] == number_element(0x28, 12.346, 0x2B)  # configured m3/h: as read
    # A later slot has no poll of its own: every element invalid (all FFH), none left out.
    assert all(set(e.data) == {0xFF} for e in data.elements(3000, 1000))
    latest.observe([reading("outlet", "flow_rate", 1e9, 4000)])
    assert set(data.elements(None)[2].data) == {0xFF}  # does not fit N(9,3): invalid, not wrong


# -- answers ---------------------------------------------------------------------------------------


def test_values_at_steps_take_the_newest_report_of_each_step() -> None:
    reports = [
        KeptReport(0x32, 60_000, (number_element(0x27, 1.0, 0x2B),)),
        KeptReport(0x32, 90_000, (number_element(0x27, 2.0, 0x2B),)),
        KeptReport(0x32, 200_000, (number_element(0x28, 9.0, 0x2B),)),
    ]
    assert values_at_steps(reports, 0x27, 0, 240_000, 60_000) == [None, 1.0, 2.0, None, None]


def test_local_time_round_trip() -> None:
    when = datetime(2026, 3, 1, 8, 30, 15)
    assert local_time(ms_of(when, 8.0), 8.0) == when
    assert ms_of(datetime(1970, 1, 1, 8, 0), 8.0) == 0


class Sent:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def __call__(self, frame: Frame) -> None:
        self.frames.append(decode(encode(frame)))  # through the wire format, as a centre reads it


async def answer(tmp_path: Path, query: Frame, cfg: Sl651UplinkConfig, clock_ms: int) -> tuple[bool, Sent]:
    store = Store(tmp_path / "a.db", "gw")
    outbox = Outbox(store)
    try:
        book = await outbox.call(Sl651Book, store)
        for minute, flow in ((0, 1.5), (1, 2.5), (3, 3.5)):
            slot = ms_of(datetime(2026, 3, 1, 8, minute), 8.0)
            await outbox.call(book.keep, 0x32, slot, [number_element(0x27, flow, 0x2B)], slot)
        latest = LatestValues()
        latest.observe([reading("intake", "flow_rate", 36.0, clock_ms)])
        answers = Answers(cfg, outbox, book, ReportElements(cfg.meters, latest), lambda: clock_ms)
        sent = Sent()
        done = await answers.answer(query, parse_body(query), sent)
        return done, sent
    finally:
        await outbox.close()


NOW = ms_of(datetime(2026, 3, 1, 8, 5, 30), 8.0)
HEAD: dict[str, Any] = {"center": 1, "station": bytes.fromhex("0012345678"), "password": 0x1234, "serial": 9}


def test_a_period_query_is_answered_from_the_kept_reports(tmp_path: Path) -> None:
    query = build_period_query(
        **HEAD,
        send_time=datetime(2026, 3, 1, 8, 6),
        start=datetime(2026, 3, 1, 8),
        end=datetime(2026, 3, 1, 9),
        step=step_element(minutes=1),
        ident=0x27,
        definition=0x2B,
    )
    done, sent = asyncio.run(answer(tmp_path, query, section(), NOW))
    assert done and len(sent.frames) == 1
    view = describe(sent.frames[0])
    assert view["function"] == "38" and view["direction"] == "up" and view["observation_time"] == "2026-03-01T08:00"
    series = next(e["value"] for e in view["elements"] if e["id"] == "27")
    assert series[:5] == [1.5, 2.5, None, 3.5, None] and len(series) == 61


def test_real_time_and_clock_queries_and_a_trusted_clock_set(tmp_path: Path) -> None:
    realtime = build_query(0x37, **HEAD, send_time=datetime(2026, 3, 1, 8, 6))
    done, sent = asyncio.run(answer(tmp_path / "r", realtime, section(), NOW))
    view = describe(sent.frames[0])
    assert done and view["send_time"] == "2026-03-01T08:05:30" and view["station_type"] == "49"
    assert next(e["value"] for e in view["elements"] if e["id"] == "27") == 0.01  # 36 m3/h

    clock = build_query(0x51, **HEAD, send_time=datetime(2026, 3, 1, 8, 6))
    done, sent = asyncio.run(answer(tmp_path / "c", clock, section(), NOW))
    assert done and describe(sent.frames[0])["send_time"] == "2026-03-01T08:05:30"

    set_clock = build_query(0x4A, **HEAD, send_time=datetime(2026, 3, 1, 8, 10, 30))
    before = agent_clock.offset_ms()
    asyncio.run(answer(tmp_path / "u", set_clock, section(), NOW))
    assert agent_clock.offset_ms() == before  # not trusted: logged only
    asyncio.run(answer(tmp_path / "w", set_clock._replace(password=0x4321), section(trust_center_time=True), NOW))
    assert agent_clock.offset_ms() == before  # wrong password: refused
    done, sent = asyncio.run(answer(tmp_path / "t", set_clock, section(trust_center_time=True), NOW))
    assert done and agent_clock.offset_ms() - before == 300_000
    assert describe(sent.frames[0])["function"] == "4A"


def test_an_unsupported_query_is_not_answered(tmp_path: Path) -> None:
    done, sent = asyncio.run(
        answer(tmp_path, build_query(0x45, **HEAD, send_time=datetime(2026, 3, 1)), section(), NOW)
    )
    assert not done and sent.frames == []
