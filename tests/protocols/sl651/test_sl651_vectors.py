"""Every development frame decodes to its recorded contents (tests/data/sl651_dev_vectors.json).

The records' headers, CRC verdicts and element values are checked as recorded; where the recorded
element decoding is wrong, tests/data/sl651_corrections.json says why and gives what the frame
holds. Every frame also re-encodes to its own bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meterlink.protocols.sl651 import ChecksumError, decode, encode, encode_body, parse_body
from meterlink.protocols.sl651.describe import decode_input

DATA = Path(__file__).parents[2] / "data"
RECORDS: list[dict[str, Any]] = json.loads((DATA / "sl651_dev_vectors.json").read_text(encoding="utf-8"))
CORRECTIONS: dict[str, Any] = json.loads((DATA / "sl651_corrections.json").read_text(encoding="utf-8"))["records"]
CONFIG = ("40", "41")


def _iso(text: str) -> str:
    out = f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}"
    return out + (f":{text[12:14]}" if len(text) > 12 else "")


def _ids() -> list[str]:
    return [f"{i}-{r['function_code']}-{r['encoding']}" for i, r in enumerate(RECORDS)]


def test_the_vectors_are_all_there() -> None:
    """69 records, three of them with a CRC that does not verify."""
    assert len(RECORDS) == 69 and sum(not r["crc_ok"] for r in RECORDS) == 3


@pytest.mark.parametrize("index", range(len(RECORDS)), ids=_ids())
def test_header_and_crc_as_recorded(index: int) -> None:
    """Centre, station, password, function, length, start/end, serial and send time."""
    record = RECORDS[index]
    if not record["crc_ok"]:
        with pytest.raises(ChecksumError):
            decode_input(record["hex"])
        return
    view = decode_input(record["hex"])
    recorded = record["decoded"]
    center = recorded["center"]
    assert view["center"] == (int(center, 16) if isinstance(center, str) else center)
    assert (view["station"], view["password"]) == (recorded["station"], recorded["password"])
    assert view["function"] == record["function_code"]
    assert view["direction"] == record["direction"]
    assert view["encoding"] == ("ascii" if record["encoding"] == "ASCII" else "hex")
    if "body_len" in recorded:
        assert (view["length"], view["start"], view["end"]) == (
            recorded["body_len"],
            recorded["start"],
            recorded["end"],
        )
    if "serial" in recorded:
        assert view["serial"] == recorded["serial"]
        assert view["send_time"] == _iso(recorded["send_time"])


def _check_recorded_element(mine: dict[str, Any], recorded: dict[str, Any], function: str) -> None:
    assert mine["id"] == recorded["id"]
    if recorded["id"] == "F1F1":
        assert mine["value"] == recorded["value"]
    elif recorded["id"] == "F0F0":
        assert mine["value"] == _iso(recorded["value"])
    elif recorded["id"] == "F2F2":
        assert mine["raw"] == recorded["raw"].upper()
    elif recorded["id"] == "F3F3":
        assert mine["bytes"] == recorded["bytes"]
    elif "values" in recorded:
        assert mine["value"] == recorded["values"]
    else:
        assert mine["raw"] == recorded["raw"].upper()
        value = recorded["value"]
        if function in CONFIG:
            assert mine["value"] == recorded["raw"].upper()
        elif isinstance(value, str) and value.startswith("HEX:"):
            assert mine["value"] == value[4:]
        elif isinstance(value, str):  # "raw:..." - the recorder could not read it as a number
            assert mine["raw"] == value[4:]
        else:
            assert mine["value"] == value


@pytest.mark.parametrize("index", [i for i, r in enumerate(RECORDS) if r["crc_ok"]], ids=lambda i: str(i))
def test_elements_as_recorded_or_corrected(index: int) -> None:
    """Each element's identifier, raw digits and value; series as arrays."""
    record = RECORDS[index]
    view = decode_input(record["hex"])
    correction = CORRECTIONS.get(str(index))
    if correction is not None:
        assert [[e["id"], e["value"]] for e in view["elements"]] == correction["elements"]
        if "version" in correction:
            assert view["version"] == correction["version"]
        return
    recorded = [e for e in record["decoded"].get("elements", []) if "note" not in e and e["id"] != "raw"]
    assert len(view["elements"]) == len(recorded)
    for mine, theirs in zip(view["elements"], recorded, strict=True):
        _check_recorded_element(mine, theirs, record["function_code"])
        if theirs.get("station_type"):
            assert view["station_type"] == theirs["station_type"]
        # The recorder's names are abridged, and it named the configuration and parameter
        # entries (40H..43H) as elements: where it gives a mnemonic, the mnemonic must agree.
        name = theirs.get("name", "")
        if name[:1].isascii() and name and record["function_code"] not in ("40", "41", "42", "43"):
            assert mine["name"].split()[0] == name.split()[0]


@pytest.mark.parametrize("index", [i for i, r in enumerate(RECORDS) if r["crc_ok"]], ids=lambda i: str(i))
def test_every_frame_re_encodes_to_its_bytes(index: int) -> None:
    """decode -> encode and parse_body -> encode_body give back the bytes sent."""
    wire = bytes.fromhex(RECORDS[index]["hex"])
    frame = decode(wire)
    assert encode(frame) == wire
    assert encode_body(parse_body(frame), frame.encoding) == frame.body


def test_multi_packet_picture_numbers_its_packets() -> None:
    """The 13-packet picture: packet word count/number, SYN start, ETB then ETX at the end."""
    packets = [decode_input(r["hex"]) for r in RECORDS[49:62]]
    assert [p["packet"] for p in packets] == [{"count": 13, "number": n} for n in range(1, 14)]
    assert {p["start"] for p in packets} == {"16"}
    assert [p["end"] for p in packets] == ["17"] * 12 + ["03"]
    assert packets[0]["serial"] == 5 and all(p["serial"] is None for p in packets[1:])
