"""The meter archive (GB/T 28714-2023 annex A: the ledger of metering devices) and calibration dates.

The platform keeps an electronic archive of every metering device. The gateway publishes its own,
from the config, so the two can be compared: every configured meter by its id, with the fields that
are set (make, model, serial number, measuring principle, accuracy class, nominal diameter, install
date, last calibration and period, transmission method, intake).

``calibration_due`` is raised 30 days before a meter's next calibration (last calibration plus its
period) and ``calibration_overdue`` from that day; recording a new calibration date clears both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from .conditions import Conditions, RuleEvent

DUE_AHEAD_DAYS = 30


def next_calibration(last: date, period_months: int) -> date:
    """``last`` plus ``period_months`` (the last day of a shorter month when the day does not exist)."""
    month = last.month - 1 + period_months
    year, month = last.year + month // 12, month % 12 + 1
    for day in (last.day, 30, 29, 28):
        try:
            return date(year, month, min(last.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def calibration_rules(
    conditions: Conditions,
    meter: str,
    last: date | None,
    period_months: int | None,
    today: date,
    ahead_days: int = DUE_AHEAD_DAYS,
) -> list[RuleEvent]:
    """``calibration_due`` and ``calibration_overdue`` of one meter on ``today``."""
    due = next_calibration(last, period_months) if last is not None and period_months else None
    left = (due - today).days if due is not None else None
    events = []
    soon = left is not None and 0 < left <= ahead_days
    event = conditions.update(
        "calibration_due",
        meter,
        soon,
        started=str(due),
        level="notice",
        detail={"meter": meter, "due": str(due), "days": ahead_days},
    )
    events += [event] if event is not None else []
    overdue = left is not None and left <= 0
    event = conditions.update(
        "calibration_overdue", meter, overdue, started=str(due), detail={"meter": meter, "due": str(due)}
    )
    events += [event] if event is not None else []
    return events


def archive_document(gateway: str, meters: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ``/archive`` payload body: every configured meter by id, only the fields that are set."""
    return {
        "gateway": gateway,
        "meters": {
            meter: {k: (v.isoformat() if isinstance(v, date) else v) for k, v in fields.items() if v is not None}
            for meter, fields in sorted(meters.items())
        },
    }


def archive_digest(document: Mapping[str, Any]) -> str:
    """A short digest that changes exactly when the archive does (it is published again then)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def missing_fields(fields: Mapping[str, Any], wanted: tuple[str, ...]) -> list[str]:
    return [name for name in wanted if fields.get(name) is None]
