"""The JSON inside a signed message: what the platform receives.

Readings message::

    {"gateway": "site-0001", "batch": 42, "sent_at": 1764374402113,
     "readings": [{"seq": 1017, "meter": "well-1", "quantity": "flow_rate", "value": 36.62541,
                   "unit": "m3/h", "ts": 1764374400381, "slot": 1764374400000}, ...]}

``seq``, ``batch``, ``sent_at``, ``ts`` and ``slot`` are JSON integers (ms since the Unix epoch, UTC
for times); ``value`` a JSON number. Optional per reading: ``flags`` (list of names) when a quality
flag is set. Optional per message: ``"backfill": true`` when its readings are sent after their own
upload slot (补报). Events messages carry ``"events"`` instead of ``"readings"``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from .errors import PayloadError
from .flags import Flag

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_float_repr = float.__repr__  # what json uses for floats: the shortest repr that round-trips


class StoredReading(NamedTuple):
    """A reading as the store keeps it and the payload carries it; ``flags`` are Flag bits.

    A named tuple for the same reason as the driver's Reading: the uploader makes one per row.
    """

    seq: int
    meter: str
    quantity: str
    value: float
    unit: str
    ts: int
    slot: int
    flags: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the store keeps it; ``detail`` becomes the event's other members."""

    seq: int
    ts: int
    kind: str
    detail: dict[str, Any]


def _number(value: float) -> float | int:
    # 106182.0 -> 106182: the same JSON number, two bytes shorter.
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def reading_dict(r: StoredReading) -> dict[str, Any]:
    """One reading of a readings payload, as a dict (the reference the fast encoder must equal)."""
    d: dict[str, Any] = {
        "seq": r.seq,
        "meter": r.meter,
        "quantity": r.quantity,
        "value": _number(r.value),
        "unit": r.unit,
        "ts": r.ts,
        "slot": r.slot,
    }
    if r.flags:
        d["flags"] = Flag(r.flags).names()
    return d


@lru_cache(maxsize=4096)
def _series_prefix(meter: str, quantity: str) -> str:
    return f',"meter":{_dumps(meter)},"quantity":{_dumps(quantity)},"value":'


@lru_cache(maxsize=256)
def _unit_part(unit: str) -> str:
    return f',"unit":{_dumps(unit)},"ts":'


def _readings_json(rows: Iterable[StoredReading]) -> str:
    # Hand-assembled for speed (a backlog drain encodes 100,000s of readings per second, and every
    # reading of every upload passes here); the result is byte-identical to json.dumps of each
    # reading's reading_dict, which a test checks. The readings of one poll share their ts and
    # the readings of one cycle their slot: each is turned into text once per run of equal values.
    out: list[str] = []
    isfinite, series, unit_part = math.isfinite, _series_prefix, _unit_part
    last_ts = last_slot = None
    ts_text = slot_text = ""
    for seq, meter, quantity, v, unit, ts, slot, flags in rows:
        if not isfinite(v):
            raise ValueError(f"reading {seq} has a non-finite value")
        value = str(int(v)) if v.is_integer() and abs(v) < 2**53 else _float_repr(v)
        if ts != last_ts:
            last_ts, ts_text = ts, f'{ts},"slot":'
        if slot != last_slot:
            last_slot, slot_text = slot, str(slot)
        names = f',"flags":{_dumps(Flag(flags).names())}}}' if flags else "}"
        out.append(f'{{"seq":{seq}{series(meter, quantity)}{value}{unit_part(unit)}{ts_text}{slot_text}{names}')
    return ",".join(out)


def readings_message(
    gateway: str, batch: int, sent_at: int, rows: Iterable[StoredReading], *, backfill: bool = False
) -> bytes:
    """``backfill``: every reading of this message is sent after the upload slot that should have
    carried it (补报). It is said once per message, not per reading, so that a reading sent again
    after a crash carries exactly the content of its first copy."""
    readings = _readings_json(rows)
    flag = ',"backfill":true' if backfill else ""
    head = f'{{"gateway":{_dumps(gateway)},"batch":{int(batch)},"sent_at":{int(sent_at)}{flag},"readings":['
    return (head + readings + "]}").encode("utf-8")


def events_message(gateway: str, batch: int, sent_at: int, events: Sequence[StoredEvent]) -> bytes:
    """An events payload: each event's ``seq``, ``ts`` and ``kind``, then its detail's members."""
    body = {
        "gateway": gateway,
        "batch": batch,
        "sent_at": sent_at,
        "events": [{"seq": e.seq, "ts": e.ts, "kind": e.kind, **e.detail} for e in events],
    }
    return _dumps(body).encode("utf-8")


def daily_message(gateway: str, batch: int, sent_at: int, days: Sequence[dict[str, Any]]) -> bytes:
    """Day summaries (agent/rules/daily.py), each with its ``version`` and ``correction``."""
    return _dumps({"gateway": gateway, "batch": batch, "sent_at": sent_at, "daily": list(days)}).encode("utf-8")


def archive_message(gateway: str, batch: int, sent_at: int, meters: dict[str, Any]) -> bytes:
    """The meter archive (agent/rules/archive.py): every configured meter by id."""
    return _dumps({"gateway": gateway, "batch": batch, "sent_at": sent_at, "archive": meters}).encode("utf-8")


def evidence_message(gateway: str, batch: int, sent_at: int, sha256: str, media_type: str, data: bytes) -> bytes:
    """A manual reading's photo: its digest, type, size and the bytes in base64."""
    body = {"sha256": sha256, "media_type": media_type, "size": len(data), "data": base64.b64encode(data).decode()}
    return _dumps({"gateway": gateway, "batch": batch, "sent_at": sent_at, "evidence": body}).encode("utf-8")


def check_message(obj: Any) -> dict[str, Any]:
    """Validate a decoded payload's shape (receivers use this after verifying the signature).

    Returns:
        ``obj`` itself, once its shape is the documented one.

    Raises:
        PayloadError: the first member that is missing or of the wrong type.
    """
    if not isinstance(obj, dict):
        raise PayloadError("payload is not a JSON object")
    for key in ("gateway", "batch", "sent_at"):
        if key not in obj:
            raise PayloadError(f"payload has no {key}")
    if not isinstance(obj["gateway"], str):
        raise PayloadError("gateway is not a string")
    for key in ("batch", "sent_at"):
        if not _is_int(obj[key]):
            raise PayloadError(f"{key} is not an integer")
    if "backfill" in obj and not isinstance(obj["backfill"], bool):
        raise PayloadError("backfill is not true or false")
    if "readings" in obj:
        if not isinstance(obj["readings"], list):
            raise PayloadError("readings is not a list")
        for i, r in enumerate(obj["readings"]):
            _check_reading(i, r)
    elif "daily" in obj:
        if not isinstance(obj["daily"], list) or not all(isinstance(d, dict) for d in obj["daily"]):
            raise PayloadError("daily is not a list of objects")
    elif "archive" in obj:
        if not isinstance(obj["archive"], dict):
            raise PayloadError("archive is not an object")
    elif "evidence" in obj:
        if not isinstance(obj["evidence"], dict) or not isinstance(obj["evidence"].get("sha256"), str):
            raise PayloadError("evidence is not an object with a sha256")
    elif "events" not in obj or not isinstance(obj["events"], list):
        raise PayloadError("payload has no readings, events, daily, archive or evidence")
    return obj


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_reading(i: int, r: Any) -> None:
    if not isinstance(r, dict):
        raise PayloadError(f"readings[{i}] is not an object")
    for key in ("seq", "ts"):
        if not _is_int(r.get(key)):
            raise PayloadError(f"readings[{i}].{key} is not an integer")
    for key in ("meter", "quantity", "unit"):
        if not isinstance(r.get(key), str):
            raise PayloadError(f"readings[{i}].{key} is not a string")
    v = r.get("value")
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise PayloadError(f"readings[{i}].value is not a number")
