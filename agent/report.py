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
from typing import Any
from zoneinfo import ZoneInfo

from . import rules_config
from .config import Config
from .daybook import DayReader
from .errors import MeterlinkError
from .report_days import DayFigures, MeterDay, kept_days
from .rulebook import MeterRuleSettings
from .rules.calendar import Period, day_of, day_range, parse_period
from .rules.daily import VOLUME
from .rules.permits import Intake, YearToDate, year_to_date
from .store_readonly import has_table

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
    from .buses import build_bus, quality_check  # the drivers, only when a day is computed

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


def _r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
