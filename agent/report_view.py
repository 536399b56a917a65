"""How ``meterlink report`` shows a report: a meter's period as one row, the JSON records, the
technician's table, the lines ``meterlink status`` borrows, and the command itself. The figures
come from agent/report.py."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from . import config as cfgmod
from .clock import now_ms
from .report import DAY_KEYS, IntakeFigures, Report, SiteWarning, build_report
from .report_days import MeterDay
from .rules.calendar import Period, day_of
from .store_readonly import read_store

# -- a meter's period ------------------------------------------------------------------------------


def period_row(meter: str, period: Period, days: Sequence[MeterDay], unit: str | None) -> dict[str, Any]:
    """A meter's days of ``period`` added up (its JSON row for a month or a quarter)."""
    volumes = [v for d in days if (v := d.figures.get("volume")) is not None]
    expected = sum(int(d.figures.get("slots_expected") or 0) for d in days)
    filled = sum(int(d.figures.get("slots_filled") or 0) for d in days)
    mins = [v for d in days if (v := d.figures.get("flow_min")) is not None]
    maxes = [v for d in days if (v := d.figures.get("flow_max")) is not None]
    starts = [v for d in days if (v := d.figures.get("start_total")) is not None]
    ends = [v for d in days if (v := d.figures.get("end_total")) is not None]
    return {
        "record": "meter",
        "meter": meter,
        "period": period.name,
        "first": period.first.isoformat(),
        "last": period.last.isoformat(),
        "unit": unit,
        "volume": round(math.fsum(volumes), 6) if volumes else None,
        "start_total": starts[0] if starts else None,
        "end_total": ends[-1] if ends else None,
        "flow_min": min(mins) if mins else None,
        "flow_max": max(maxes) if maxes else None,
        "slots_expected": expected,
        "slots_filled": filled,
        "report_rate": round(min(1.0, filled / expected), 4) if expected else None,
        "readings": sum(int(d.figures.get("readings") or 0) for d in days),
        "negative_steps": sum(int(d.figures.get("negative_steps") or 0) for d in days),
        "flags": sorted({f for d in days for f in d.figures.get("flags", ())}),
        "days": len(days),
        "days_kept": sum(1 for d in days if d.kept),
        "days_computed": sum(1 for d in days if not d.kept),
        "partial": any(d.partial for d in days),
    }


def day_row(meter: str, day: date, found: MeterDay | None, unit: str | None) -> dict[str, Any]:
    """A meter's day as a JSON row (a meter with no figures that day: nulls and source null)."""
    figures = found.figures if found is not None else {}
    row: dict[str, Any] = {"record": "meter", "meter": meter, "day": day.isoformat(), "unit": unit}
    row.update({k: figures.get(k) for k in DAY_KEYS})
    if found is None:
        row.update(slots_expected=0, slots_filled=0, readings=0, negative_steps=0, flags=[])
    row["source"] = None if found is None else "kept" if found.kept else "computed"
    row["version"] = None if found is None else found.version
    row["partial"] = found is not None and found.partial
    return row


def json_records(report: Report, per_day: bool) -> list[dict[str, Any]]:
    """The report as ``--json`` prints it: meter rows, then intakes, then warnings."""
    out: list[dict[str, Any]] = []
    single = report.period.first == report.period.last
    for meter in report.meters:
        unit = report.units.get(meter)
        if single or per_day:
            out += [
                day_row(meter, d, report.days.get((meter, d)), unit)
                for d in report.period.days()
                if single or (meter, d) in report.days
            ]
        if not single:
            out.append(period_row(meter, report.period, report.meter_days(meter), unit))
    out += [i.to_dict() for i in report.intakes]
    out += [w.to_dict() for w in report.warnings]
    return out


# -- the table -------------------------------------------------------------------------------------


def _num(value: Any, places: int = 3) -> str:
    return "-" if value is None else f"{float(value):,.{places}f}"


def _rate(row: Mapping[str, Any]) -> str:
    rate = row.get("report_rate")
    return "-" if rate is None else f"{rate * 100:.2f}%"


def _source(row: Mapping[str, Any]) -> str:
    if row["source"] is None:
        return "no readings"
    text = f"kept v{row['version']}" if row["source"] == "kept" else "computed"
    return text + (", so far" if row["partial"] else "")


COLUMNS = f"{'meter':<14} {'volume':>14} {'unit':<5} {'start total':>16} {'end total':>16} {'slots':>15} {'rate':>8}"


def _line(label: str, row: Mapping[str, Any], tail: str) -> str:
    slots = f"{row['slots_filled']}/{row['slots_expected']}"
    flags = ",".join(row["flags"]) or "-"
    return (
        f"{label:<14} {_num(row['volume']):>14} {row['unit'] or '':<5} {_num(row['start_total']):>16} "
        f"{_num(row['end_total']):>16} {slots:>15} {_rate(row):>8}  {flags:<10} {tail}"
    ).rstrip()


def render_table(report: Report, per_day: bool) -> str:
    """The report as a technician reads it on a terminal."""
    p = report.period
    span = p.name if p.first == p.last else f"{p.name} ({p.first}..{p.last})"
    lines = [f"gateway {report.gateway}, {span}, local days in {report.zone}"]
    single = p.first == p.last
    lines.append(f"{COLUMNS}  {'flags':<10} {'source' if single else 'days'}")
    kept = computed = 0
    for meter in report.meters:
        unit = report.units.get(meter)
        if single:
            row = day_row(meter, p.first, report.days.get((meter, p.first)), unit)
            lines.append(_line(meter, row, _source(row)))
            kept += row["source"] == "kept"
            computed += row["source"] == "computed"
            continue
        if per_day:
            for d in report.meter_days(meter):
                row = day_row(meter, d.day, d, unit)
                lines.append(_line(f"  {d.day.isoformat()}", row, _source(row)))
        row = period_row(meter, p, report.meter_days(meter), unit)
        kept += row["days_kept"]
        computed += row["days_computed"]
        tail = f"{row['days']} of {len(p.days())}" + (", so far" if row["partial"] else "")
        lines.append(_line(meter, row, tail))
    if not report.meters:
        lines.append("(no meters)")
    lines.append(f"meter days: {kept} as the agent kept them, {computed} computed now from the readings")
    for figures in report.intakes:
        lines += _intake_lines(figures)
    lines += warning_lines(report.warnings)
    return "\n".join(lines)


def _limit_text(figures: IntakeFigures, name: str, limit: float | None) -> str:
    if not limit:
        return f"{name}: not set"
    share = figures.ytd.share(limit) or 0.0
    reached, projected = figures.reached_on(limit), figures.projected(limit)
    when = (
        f"reached on {reached}"
        if reached
        else f"reached about {projected} at this pace"
        if projected
        else "not reached this year at this pace"
    )
    return f"{name} {limit:,.0f} m3: {share * 100:.1f} %, {when}"


def _intake_lines(f: IntakeFigures) -> list[str]:
    i = f.intake
    meters = ", ".join(("-" if sign < 0 else "") + m for m, sign in i.meters.items()) or "none"
    lines = [f"intake {i.id}" + (f" (permit {i.permit})" if i.permit else "") + f", meters {meters}"]
    lines.append(f"  {f.period.name} volume {_num(f.volume)} m3")
    lines.append(
        f"  year to date {_num(f.ytd.volume)} m3 to {f.ytd.day} ({f.ytd_days} of {f.ytd.days} days with figures)"
    )
    lines.append(f"  {_limit_text(f, 'annual permit', i.annual_permit)}")
    lines.append(f"  {_limit_text(f, 'annual plan', i.annual_plan)}")
    if i.daily_max:
        lines.append(f"  daily maximum {i.daily_max:,.0f} m3")
    if i.expires is not None:
        left = f.expires_in or 0
        lines.append(f"  permit expires {i.expires}, " + (f"in {left} days" if left > 0 else "EXPIRED"))
    return lines


def status_lines(report: Report) -> list[str]:
    """The intakes to today and the open warnings, as ``meterlink status`` shows them."""
    pad = " " * 15
    lines = []
    for f in report.intakes:
        i = f.intake
        so_far = ", today so far" if f.ytd.day == report.today else ""
        lines.append(
            f"{'intake ' + i.id:<14} year to date {_num(f.ytd.volume)} m3 to {f.ytd.day}{so_far} "
            f"({f.ytd_days} of {f.ytd.days} days with figures)"
        )
        lines.append(f"{pad}{_limit_text(f, 'permit', i.annual_permit)}")
        lines.append(f"{pad}{_limit_text(f, 'plan', i.annual_plan)}")
        if i.expires is not None:
            left = f.expires_in or 0
            lines.append(f"{pad}permit expires {i.expires}, " + (f"in {left} days" if left > 0 else "EXPIRED"))
    if not report.warnings:
        return [*lines, "warnings       none open"]
    lines.append(f"warnings       {len(report.warnings)} open")
    return lines + [f"{pad}{_warning(w)}" for w in report.warnings]


def _warning(w: SiteWarning) -> str:
    return f"{w.level:<8} {w.kind:<18} {w.subject:<24} since {w.since or '?'}"


def warning_lines(warnings: Sequence[SiteWarning]) -> list[str]:
    """The open conditions, one line each."""
    if not warnings:
        return ["warnings: none open"]
    return [f"warnings: {len(warnings)} open", *(f"  {_warning(w)}" for w in warnings)]


# -- the command -----------------------------------------------------------------------------------


def run_report(
    config_path: Path, period: Period | None, meters: Sequence[str] | None, *, as_json: bool, per_day: bool
) -> int:
    """Print the report of ``period`` (default: yesterday, local time). Exit 0."""
    config = cfgmod.load(config_path)
    now = now_ms()
    if period is None:
        yesterday = day_of(now, config.gateway.zone) - timedelta(days=1)
        period = Period(yesterday.isoformat(), yesterday, yesterday)
    chosen = period
    report = read_store(config.store.path, lambda db: build_report(db, config, chosen, meters, now))
    if as_json:
        print(json.dumps(json_records(report, per_day), ensure_ascii=False))
    else:
        print(render_table(report, per_day))
    return 0
