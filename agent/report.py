"""``meterlink report``: a period's daily volumes, report rates and warnings, from the store alone.

The figures are the ones the platform reconciles a site by. Each meter's day comes from the store:
as the agent kept it after midnight, else computed now from the readings the same way
(agent/report_days.py). For a month or a quarter, a meter's days add up to one row: volumes summed,
the first day's opening total and the last day's closing one, slots summed (so the report rate is
filled over expected for the whole period), flags united. Then each intake: the period's volume
(its meters' volumes, a return flow subtracted), its volume since 1 January against its annual
permit and plan, the date each is reached at this year's pace, the permit's expiry. Then the
conditions the agent holds open: the site's current warnings.

The store is opened read-only (agent/store_readonly.py): safe while the agent runs, and no file is
created or changed.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import config as cfgmod
from . import rules_config
from .clock import now_ms
from .config import Config
from .daybook import DayReader
from .errors import MeterlinkError
from .report_days import DayFigures, MeterDay, kept_days
from .rulebook import MeterRuleSettings
from .rules.calendar import Period, day_of, day_range, parse_period
from .rules.daily import VOLUME
from .rules.permits import Intake, YearToDate, year_to_date
from .store_readonly import has_table, read_store

LEVELS = ("alarm", "warning", "notice")  # most urgent first
PERIOD_KINDS = {"day": "a day (YYYY-MM-DD)", "month": "a month (YYYY-MM)", "quarter": "a quarter (YYYYQN)"}

# The figures of a meter's day a JSON row always carries (None where there are none).
DAY_KEYS = (
    "volume",
    "start_total",
    "end_total",
    "flow_min",
    "flow_mean",
    "flow_max",
    "slots_expected",
    "slots_filled",
    "report_rate",
    "readings",
    "negative_steps",
    "flags",
)


def period_of(kind: str, text: str) -> Period:
    """``--day``, ``--month`` or ``--quarter`` ``text`` as a period.

    Raises:
        ValueError: one line naming the option and what it takes.
    """
    try:
        period = parse_period(text)
    except ValueError as exc:
        raise ValueError(f"--{kind} {exc}") from None
    length = "day" if period.first == period.last else "quarter" if "Q" in period.name else "month"
    if length != kind:
        raise ValueError(f"--{kind} {text!r} is not {PERIOD_KINDS[kind]}")
    return period


# -- what the report holds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteWarning:
    """An open condition: raised by the agent, not cleared yet."""

    kind: str
    subject: str
    level: str
    id: str
    since: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": "warning",
            "kind": self.kind,
            "subject": self.subject,
            "level": self.level,
            "id": self.id,
            "since": self.since,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class IntakeFigures:
    """An intake over the period and since 1 January, against its permit and plan."""

    intake: Intake
    period: Period
    volume: float | None  # the period's, None: no meter of it has a figure
    ytd: YearToDate
    ytd_days: int  # days since 1 January with a figure
    today: date
    cumulative: list[tuple[date, float]] = field(default_factory=list)  # the year's running volume

    def reached_on(self, limit: float | None) -> date | None:
        """The day the year's volume reached ``limit`` (None: not reached)."""
        if not limit:
            return None
        return next((d for d, total in self.cumulative if total >= limit), None)

    def projected(self, limit: float | None) -> date | None:
        return self.ytd.projected(limit) if limit else None

    @property
    def expires_in(self) -> int | None:
        expires = self.intake.expires
        return None if expires is None else (expires - self.today).days

    def to_dict(self) -> dict[str, Any]:
        i = self.intake
        out: dict[str, Any] = {
            "record": "intake",
            "intake": i.id,
            "permit": i.permit,
            "source": i.source or None,
            "meters": dict(i.meters),
            "period": self.period.name,
            "volume": _r3(self.volume),
            "ytd": _r3(self.ytd.volume),
            "ytd_through": self.ytd.day.isoformat(),
            "ytd_days": self.ytd_days,
            "year_days": self.ytd.days,
        }
        for name, limit in (("permit", i.annual_permit), ("plan", i.annual_plan)):
            share = self.ytd.share(limit)
            reached, projected = self.reached_on(limit), self.projected(limit)
            out[f"annual_{name}"] = limit
            out[f"{name}_share"] = None if share is None else round(share, 4)
            out[f"{name}_reached_on"] = reached.isoformat() if reached else None
            out[f"{name}_projected"] = projected.isoformat() if projected else None
        out["daily_max"] = i.daily_max
        out["permit_expires"] = i.expires.isoformat() if i.expires else None
        out["expires_in_days"] = self.expires_in
        return out


@dataclass(slots=True)
class Report:
    """Everything the command prints."""

    gateway: str
    zone: str
    period: Period
    today: date
    meters: list[str]
    days: dict[tuple[str, date], MeterDay]
    units: dict[str, str]
    intakes: list[IntakeFigures]
    warnings: list[SiteWarning]

    def meter_days(self, meter: str) -> list[MeterDay]:
        return [d for day in self.period.days() if (d := self.days.get((meter, day))) is not None]


# -- reading the store -------------------------------------------------------------------------------


def wrap_limits(config: Config) -> dict[str, float | None]:
    """Each enabled meter's totalizer range, found as the agent finds it (agent/service.py)."""
    from .service import build_bus, quality_check  # the drivers, only when a day is computed

    limits: dict[str, float | None] = {}
    for name, bus in config.buses.items():
        configured = [mc for mc in config.enabled_meters if mc.bus == name]
        if configured:
            for mc, meter in build_bus(name, bus, configured)[1]:
                limits[mc.id] = quality_check(mc, meter).maxima.get(VOLUME)
    return limits


class _Settings(Mapping[str, MeterRuleSettings]):
    """The enabled meters' rule settings, built on first use: a meter's totalizer range needs its
    register map (the drivers), which a report made of kept days never does."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.ids = [m.id for m in config.enabled_meters]
        self.built: dict[str, MeterRuleSettings] | None = None

    def __getitem__(self, meter: str) -> MeterRuleSettings:
        if self.built is None:
            settings = rules_config.meter_settings(self.config, wrap_limits(self.config))
            self.built = {s.id: s for s in settings}
        return self.built[meter]

    def __contains__(self, meter: object) -> bool:
        return meter in self.ids

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def open_warnings(db: sqlite3.Connection, zone: ZoneInfo) -> list[SiteWarning]:
    """The conditions the agent holds open, most urgent first."""
    if not has_table(db, "conditions"):
        return []
    out = []
    for kind, subject, ident, level, detail in db.execute("SELECT kind, subject, id, level, detail FROM conditions"):
        prefix = f"{kind}/{subject}/"
        started = ident[len(prefix) :] if ident.startswith(prefix) else ""
        out.append(SiteWarning(kind, subject, level, ident, _since(started, zone), json.loads(detail)))
    rank = {level: n for n, level in enumerate(LEVELS)}
    return sorted(out, key=lambda w: (rank.get(w.level, len(LEVELS)), w.kind, w.subject))


def _since(started: str, zone: ZoneInfo) -> str:
    """When a condition started, from its id: a day as it is, a moment (ms) as local time."""
    if not started.isdigit():
        return started
    return datetime.fromtimestamp(int(started) / 1000, zone).isoformat(timespec="seconds")


def _meters_seen(db: sqlite3.Connection) -> dict[str, int]:
    if not has_table(db, "meters_seen"):
        return {}
    return {str(m): int(ts) for m, ts in db.execute("SELECT meter, first_ts FROM meters_seen")}


def _volume_units(db: sqlite3.Connection) -> dict[str, str]:
    return {str(m): str(u) for m, u in db.execute("SELECT meter, unit FROM series WHERE quantity = ?", (VOLUME,))}


def _kept_meters(db: sqlite3.Connection) -> set[str]:
    if not has_table(db, "daily"):
        return set()
    return {str(m) for (m,) in db.execute("SELECT DISTINCT meter FROM daily")}


def _kept_days(db: sqlite3.Connection, first: date, last: date) -> dict[tuple[str, date], MeterDay]:
    return kept_days(DayReader(db), first, last) if has_table(db, "daily") else {}


def build_report(
    db: sqlite3.Connection,
    config: Config,
    period: Period,
    only: Sequence[str] | None,
    now: int,
    *,
    with_meters: bool = True,
) -> Report:
    """The report of ``period`` from the store's connection ``db`` (read-only will do); without
    ``with_meters``, only its intakes and warnings (``meterlink status``)."""
    zone = config.gateway.zone
    today = day_of(now, zone)
    configured = [m.id for m in config.enabled_meters]
    kept_meters = _kept_meters(db)
    if only:
        unknown = [m for m in only if m not in configured and m not in kept_meters]
        if unknown:
            raise MeterlinkError(f"no meter {', '.join(unknown)} in the config or the store's day summaries")
    reader = DayReader(db)
    intakes = [i for i in rules_config.intakes(config) if _shows(i, only)]
    through = min(period.last, today)
    year_first = date(through.year, 1, 1)
    first = min(period.first, year_first) if intakes else period.first
    kept = _kept_days(db, first - timedelta(days=1), max(period.last, through))
    shown = [m for m in configured if not only or m in only] if with_meters else []
    if only:
        shown += [m for m in only if m not in configured]  # known from the store's day summaries
    elif with_meters:
        shown += sorted({m for m, d in kept if period.first <= d <= period.last} - set(configured))
    begun = [d for d in period.days() if day_range(d, zone)[0] < now]
    wanted: dict[str, set[date]] = {m: set(begun) for m in shown}
    year = [year_first + timedelta(days=n) for n in range((through - year_first).days + 1)]
    for intake in intakes:
        for meter in intake.meters:
            wanted.setdefault(meter, set()).update(year)
    figures = DayFigures(reader, _Settings(config), zone, now, _meters_seen(db), kept)
    days = figures.collect(wanted)
    return Report(
        gateway=config.gateway.id,
        zone=config.gateway.timezone,
        period=period,
        today=today,
        meters=shown,
        days=days,
        units=_volume_units(db),
        intakes=[intake_figures(i, period, days, through, today) for i in intakes],
        warnings=open_warnings(db, zone),
    )


def _shows(intake: Intake, only: Sequence[str] | None) -> bool:
    return not only or any(m in intake.meters for m in only)


def intake_figures(
    intake: Intake, period: Period, days: Mapping[tuple[str, date], MeterDay], through: date, today: date
) -> IntakeFigures:
    """``intake`` over ``period``, and from 1 January to ``through``, from its meters' days."""

    def volumes(day: date) -> dict[str, float | None]:
        return {m: d.figures.get("volume") if (d := days.get((m, day))) is not None else None for m in intake.meters}

    per_day = {d: volumes(d) for d in _dates(date(through.year, 1, 1), through)}
    ytd = year_to_date(intake, through, per_day)
    running, known = 0.0, 0
    cumulative: list[tuple[date, float]] = []
    for d, by_meter in sorted(per_day.items()):
        day_volume = intake.day_volume(by_meter)
        if day_volume is not None:
            known += 1
            running += day_volume
        cumulative.append((d, running))
    period_volumes = [v for d in period.days() if (v := intake.day_volume(volumes(d))) is not None]
    return IntakeFigures(
        intake, period, math.fsum(period_volumes) if period_volumes else None, ytd, known, today, cumulative
    )


def _dates(first: date, last: date) -> Iterable[date]:
    return (first + timedelta(days=n) for n in range((last - first).days + 1))


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


def _r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


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
