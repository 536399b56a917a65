"""Regenerate tests/data/szy206_own_vectors.json: one frame per supported message, built with the
encoder, with its JSON view. Run from the repository root:

    .venv/bin/python tests/protocols/szy206/make_szy206_vectors.py

Review the diff by hand before committing: the test treats this file as the expected output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meterlink.protocols.szy206 import (
    AFN,
    INVALID,
    Address,
    Clock,
    FlowUnit,
    Frame,
    LinkKind,
    TimeLabel,
    build_clock_answer,
    build_confirm,
    build_flow_report,
    build_link,
    build_link_reply,
    build_picture_frames,
    build_picture_query,
    build_read_clock,
    build_readings,
    build_realtime_query,
    build_set_clock,
    build_set_query_kinds,
    build_set_report_kinds,
    build_stored_query,
    decode_report,
    encode,
    encode_flow_data,
    make_pw,
)
from meterlink.protocols.szy206.frame import Direction

OUT = Path(__file__).resolve().parents[2] / "data" / "szy206_own_vectors.json"


def vectors() -> list[tuple[str, Frame, dict[str, Any]]]:
    site = Address(division="530381", station=13)
    relay = Address(division="440607", station=60001)
    tp5 = TimeLabel(second=0, minute=45, hour=8, day=9, delay_min=10)
    tp7 = TimeLabel(second=30, minute=15, hour=14, day=12, month=5, year=26, delay_min=5)
    clock = Clock(second=5, minute=4, hour=3, day=28, month=11, year=26, weekday=6)
    report = build_flow_report(
        site, [(5.9, 106182), (-12.345, 7), (None, 404000), (INVALID, None)], alarm=0x1001, status=0x0060, tp=tp5
    )
    login = build_link(site, LinkKind.LOGIN)
    picture = build_picture_frames(relay, bytes(range(256)) * 5, chunk=1024)
    return [
        ("link_login", login, {}),
        ("link_logout", build_link(site, LinkKind.LOGOUT), {}),
        ("link_keepalive_tp5", build_link(site, LinkKind.KEEPALIVE, tp=tp5), {}),
        ("link_reply_00", build_link_reply(login), {}),
        ("link_reply_echo", build_link_reply(login, echo=True), {}),
        ("c0_flow_4_meters_tp5", report, {}),
        (
            "c0_flow_sl427_units_tp7",
            build_flow_report(relay, [(1.5, 10), (-2.25, 20)], unit=FlowUnit.M3_PER_H, tp=tp7, fcb=2),
            {},
        ),
        ("c0_flow_no_tp", build_flow_report(site, [(None, 404000)], status=0x0101), {}),
        ("c0_confirm_data00_no_tp", build_confirm(report, tp=None), {}),
        ("c0_confirm_mode1_tp5", build_confirm(report, work_mode=1, tp=tp5), {}),
        ("c0_confirm_cmd0_tp7", build_confirm(report, work_mode=2, tp=tp7, function=0), {}),
        ("81_alarm_report_tp5", build_flow_report(site, [(0.0, 1)], alarm=0x0008, tp=tp5, afn=AFN.ALARM_REPORT), {}),
        ("c0_level_tp5", build_readings(site, 2, [12.345, -0.5], tp=tp5), {}),
        ("c0_pressure_tp7", build_readings(site, 15, [123.45], tp=tp7), {}),
        ("b0_query", build_realtime_query(site), {}),
        ("b0_answer", build_flow_report(site, [(3.0, 99)], afn=AFN.QUERY_REALTIME, fcb=3), {}),
        (
            "b1_query",
            build_stored_query(
                site,
                Clock(second=0, minute=0, hour=0, day=1, month=11, year=26),
                Clock(second=59, minute=59, hour=23, day=28, month=11, year=26),
            ),
            {},
        ),
        (
            "b1_answer_tp5",  # a site terminal's answer: one stored slot laid out as a C0H report
            Frame(
                direction=Direction.UP,
                function=3,
                address=site,
                afn=AFN.QUERY_STORED,
                data=encode_flow_data([(5.9, 106182)], 0, 0x0001),
                tp=tp5,
            ),
            {},
        ),
        ("11_set_clock_pw_tp5", build_set_clock(site, clock, pw=make_pw(3, 456), tp=tp5), {}),
        ("51_read_clock", build_read_clock(site), {}),
        ("51_clock_answer", build_clock_answer(site, clock), {}),
        ("a0_set_query_kinds", build_set_query_kinds(site, 0b1000, pw=make_pw(0, 0), tp=tp5), {}),
        ("a1_set_report_kinds", build_set_report_kinds(site, 0b1000, [10], pw=make_pw(1, 2), tp=tp7), {"tp_len": 7}),
        ("53_query", Frame(direction=Direction.DOWN, address=site, afn=0x53), {}),
        ("53_answer", Frame(direction=Direction.UP, address=site, afn=0x53, data=bytes.fromhex("080010006000")), {}),
        ("5e_answer", Frame(direction=Direction.UP, address=site, afn=0x5E, data=bytes.fromhex("01106000")), {}),
        ("61_picture_query", build_picture_query(relay, 3), {}),
        ("61_picture_1of2", picture[0], {}),
        ("61_picture_2of2", picture[1], {}),
        ("64_raw_answer", Frame(direction=Direction.UP, address=site, afn=0x64, data=bytes.fromhex("5634120000")), {}),
    ]


def main() -> None:
    frames = []
    for name, frame, options in vectors():
        raw = encode(frame)
        entry: dict[str, Any] = {"name": name, "hex": raw.hex().upper()}
        if options:
            entry["options"] = options
        entry["view"] = decode_report(raw, **options)
        frames.append(entry)
    doc = {
        "about": "Frames built with meterlink's SZY206 encoder and their JSON view (regression vectors).",
        "frames": frames,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(frames)} vectors to {OUT}")


if __name__ == "__main__":
    main()
