"""Scenario files: weeks of a site, written down, turned into the readings its meters would give.

A scenario is a TOML file a technician or tester can write (``replay/scenarios/`` holds examples):

- ``[site]``: ``zone`` (IANA), ``start`` (the first local day), ``days``, ``upload_interval`` (s: the
  gateway's upload slots, judged by ``report_rate_low``; omit it and they are not), ``tick`` (s of
  simulated time between two runs of the rules, default 60), ``acquire_ms`` (how long after its slot
  a reading is taken, default 300), ``description``;
- ``[rules]``: the thresholds, named as in the site config's ``[rules]`` (``zero_notice_days``, ...);
- ``[[meters]]``: ``id``, ``poll_interval`` (s), ``max_flow`` (m3/h), ``flow_direction``, ``flow``
  (its base flow, m3/h), ``pattern`` (24 multipliers of ``flow``, one per local hour), ``total`` (the
  totalizer at the start), ``wraps_at`` (the value at which its totalizer starts again from 0), the
  archive's ``calibrated`` and ``calibration_months``, ``no_data_after`` (s), and, as in the site
  config, ``intake`` and ``return_flow`` (a return flow is subtracted from its intake);
- ``[[intakes]]``: ``id``, ``permit``, ``annual_permit``, ``annual_plan``, ``daily_max`` (m3) and
  ``permit_expires`` (its last valid day), as in the site config;
- ``[[happenings]]``, with local times (``2026-12-12T10:00:00`` or ``"2026-12-12 10:00"``):

  ============== =============================== ==================================================
  kind           keys                            what the meter does
  ============== =============================== ==================================================
  outage         meter, from, to                 no answer to the polls of slots in [from, to)
  zero           meter, from, to                 answers, flow 0, totalizer still
  flow           meter, from, to, flow           its flow is ``flow`` m3/h instead of its pattern's
  negative_flow  meter, from, to, flow           shows ``flow`` (< 0); the forward totalizer is still
  negative_step  meter, at, by                   its totalizer drops by ``by`` m3 and goes on from there
  reset          meter, at                       its totalizer starts again from 0
  wrap           meter, at                       its totalizer passes ``wraps_at`` at ``at`` (this
                                                 sets the totalizer at the start)
  replacement    meter, at, total                a new meter, registered by a manual reading at
                                                 ``at`` (flags replacement and manual)
  large_step     meter, at, volume               its totalizer jumps by ``volume`` m3
  uplink_outage  from, to                        no upload confirmed in [from, to)
  clock_offset   from, to, offset_s              the clock is ``offset_s`` off its source
  ============== =============================== ==================================================

- the truth: ``[[expect]]`` entries, one per condition the rules must raise: ``kind``, ``subject``
  (what the condition is about: a meter, ``METER/flow``, an intake, ``INTAKE/day``,
  ``INTAKE/YEAR/PERCENT``, ``INTAKE/DAYS``, ``gateway``), ``raised``, optionally ``level``,
  ``escalated`` (when it became an alarm) and ``cleared`` (omitted: never). The rules run once a
  tick, so an event matches when it is recorded at the time stated or within one tick after it.
  ``[[expect_rate]]`` entries (``meter``, ``day``, ``rate``) pin a meter's report rate of one day;
  every day's rate is also known from the readings generated (:attr:`SiteRun.slots`).

replay/readings.py turns a scenario into the readings its meters give; replay/run.py replays them
through the agent's rules and compares what they raise with the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from meterlink.agent.config_errors import format_validation_error, read_toml
from meterlink.agent.errors import ConfigError
from meterlink.agent.rulebook import SETTLE_MS
from meterlink.agent.rules.calendar import midnight

FOLDER = Path(__file__).with_name("scenarios")
RULE_KINDS = (
    "volume_zero",
    "volume_large",
    "volume_negative",
    "no_data",
    "report_rate_low",
    "clock_drift",
    "permit_threshold",
    "plan_threshold",
    "permit_expiring",
    "permit_expired",
    "calibration_due",
    "calibration_overdue",
)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; one ``path.to.key: reason`` line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


# -- the file ---------------------------------------------------------------------------------------

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
Day = Annotated[date, Field(strict=False)]
# A TOML local date-time, or the same as a string ("2026-12-12 10:00"): site time unless it says.
Moment = Annotated[datetime, Field(strict=False)]
HappeningKind = Literal[
    "outage",
    "zero",
    "flow",
    "negative_flow",
    "negative_step",
    "reset",
    "wrap",
    "replacement",
    "large_step",
    "uplink_outage",
    "clock_offset",
]
# What each kind of happening needs besides its kind (and nothing else may be given).
NEEDS: dict[str, tuple[str, ...]] = {
    "outage": ("meter", "from_", "to"),
    "zero": ("meter", "from_", "to"),
    "flow": ("meter", "from_", "to", "flow"),
    "negative_flow": ("meter", "from_", "to", "flow"),
    "negative_step": ("meter", "at", "by"),
    "reset": ("meter", "at"),
    "wrap": ("meter", "at"),
    "replacement": ("meter", "at", "total"),
    "large_step": ("meter", "at", "volume"),
    "uplink_outage": ("from_", "to"),
    "clock_offset": ("from_", "to", "offset_s"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True)


class SiteSpec(_Strict):
    zone: str = "Asia/Shanghai"
    start: Day
    days: Annotated[int, Field(ge=1, le=400)]
    upload_interval: Annotated[int, Field(ge=1, le=86_400)] | None = None
    tick: Annotated[int, Field(ge=1, le=3600)] = 60
    acquire_ms: Annotated[int, Field(ge=0, le=59_000)] = 300
    description: str = ""

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'{v!r} is not a time zone name (IANA, e.g. "Asia/Shanghai")') from None
        return v


class RulesSpec(_Strict):
    zero_notice_days: Annotated[int, Field(ge=1, le=366)] = 7
    zero_alarm_days: Annotated[int, Field(ge=1, le=366)] = 30
    large_factor: Annotated[float, Field(ge=1, le=100)] = 1.2
    report_rate_target: Annotated[float, Field(gt=0, le=1)] = 0.95
    clock_drift_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0


class MeterSpec(_Strict):
    id: Ident
    poll_interval: Annotated[int, Field(ge=1, le=86_400)] = 300
    max_flow: Annotated[float, Field(gt=0)] | None = None
    flow_direction: Literal["forward", "both"] = "forward"
    flow: Annotated[float, Field(ge=0)] = 0.0
    pattern: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=24, max_length=24)] | None = None
    total: Annotated[float, Field(ge=0)] = 0.0
    wraps_at: Annotated[float, Field(gt=0)] | None = None
    intake: Ident | None = None
    return_flow: bool = False
    calibrated: Day | None = None
    calibration_months: Annotated[int, Field(ge=1, le=240)] | None = None
    no_data_after: Annotated[int, Field(ge=1, le=30 * 86_400)] | None = None


class IntakeSpec(_Strict):
    id: Ident
    permit: str = ""
    annual_permit: Annotated[float, Field(gt=0)] | None = None
    annual_plan: Annotated[float, Field(gt=0)] | None = None
    daily_max: Annotated[float, Field(gt=0)] | None = None
    permit_expires: Day | None = None


class Happening(_Strict):
    kind: HappeningKind
    meter: Ident | None = None
    from_: Moment | None = Field(None, alias="from")
    to: Moment | None = None
    at: Moment | None = None
    by: Annotated[float, Field(gt=0)] | None = None
    volume: Annotated[float, Field(gt=0)] | None = None
    total: Annotated[float, Field(ge=0)] | None = None
    flow: float | None = None
    offset_s: float | None = None

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> Happening:
        needed = NEEDS[self.kind]
        for name in ("meter", "from_", "to", "at", "by", "volume", "total", "flow", "offset_s"):
            given = getattr(self, name) is not None
            key = name.rstrip("_")
            takes = ", ".join(n.rstrip("_") for n in needed)
            if name in needed and not given:
                raise ValueError(f"{self.kind} needs {key!r} (it takes {takes})")
            if name not in needed and given:
                raise ValueError(f"{self.kind} takes no {key!r} (it takes {takes})")
        if self.from_ is not None and self.to is not None and self.to <= self.from_:
            raise ValueError("to must be later than from")
        if self.kind == "negative_flow" and self.flow is not None and self.flow >= 0:
            raise ValueError("a negative_flow's flow must be below 0")
        if self.kind == "flow" and self.flow is not None and self.flow < 0:
            raise ValueError("a flow's flow must not be below 0 (a negative one is a negative_flow)")
        return self


class Expectation(_Strict):
    kind: str
    subject: str
    raised: Moment
    level: Literal["notice", "warning", "alarm"] | None = None
    escalated: Moment | None = None
    cleared: Moment | None = None

    @field_validator("kind")
    @classmethod
    def _a_rule_kind(cls, v: str) -> str:
        if v not in RULE_KINDS:
            raise ValueError(f"{v!r} is not a rule's event (one of {', '.join(RULE_KINDS)})")
        return v


class RateExpectation(_Strict):
    meter: Ident
    day: Day
    rate: Annotated[float, Field(ge=0, le=1)]


class ScenarioSpec(_Strict):
    site: SiteSpec
    rules: RulesSpec = RulesSpec()
    meters: Annotated[list[MeterSpec], Field(min_length=1)]
    intakes: list[IntakeSpec] = []
    happenings: list[Happening] = []
    expect: list[Expectation] = []
    expect_rate: list[RateExpectation] = []

    @model_validator(mode="after")
    def _references(self) -> ScenarioSpec:
        meters = {m.id: m for m in self.meters}
        intakes = {i.id for i in self.intakes}
        if len(meters) != len(self.meters):
            raise ValueError("meters: an id is used twice")
        if len(intakes) != len(self.intakes):
            raise ValueError("intakes: an id is used twice")
        for m in self.meters:
            if m.intake is not None and m.intake not in intakes:
                raise ValueError(f"meters[{m.id}].intake: no intake named {m.intake!r}")
        first = datetime.combine(self.site.start, datetime.min.time())
        last = first + timedelta(days=self.site.days)
        wraps: set[str] = set()
        for n, h in enumerate(self.happenings, 1):
            where = f"happenings[#{n}]"
            if h.meter is not None and h.meter not in meters:
                raise ValueError(f"{where}.meter: no meter named {h.meter!r}")
            for name in ("from_", "to", "at"):
                moment = getattr(h, name)
                if moment is not None and not first <= moment.replace(tzinfo=None) <= last:
                    raise ValueError(
                        f"{where}.{name.rstrip('_')}: {moment} is outside the scenario ({first} to {last})"
                    )
            if h.kind == "wrap":
                assert h.meter is not None
                if meters[h.meter].wraps_at is None:
                    raise ValueError(f"{where}: meters[{h.meter}] has no wraps_at to wrap at")
                if h.meter in wraps:
                    raise ValueError(f"{where}: one wrap per meter")
                wraps.add(h.meter)
        for n, r in enumerate(self.expect_rate, 1):
            if r.meter not in meters:
                raise ValueError(f"expect_rate[#{n}].meter: no meter named {r.meter!r}")
        return self


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario as loaded: its spec and where it came from."""

    name: str
    spec: ScenarioSpec

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.spec.site.zone)

    @property
    def start_ms(self) -> int:
        return midnight(self.spec.site.start, self.zone)

    @property
    def end_ms(self) -> int:
        """Local midnight after the last day."""
        return midnight(self.spec.site.start + timedelta(days=self.spec.site.days), self.zone)

    @property
    def replay_end_ms(self) -> int:
        """The last day is judged at its end plus the rules' settle time: the replay runs until then."""
        return self.end_ms + SETTLE_MS

    @property
    def days(self) -> list[date]:
        return [self.spec.site.start + timedelta(days=n) for n in range(self.spec.site.days)]

    def ms(self, moment: datetime) -> int:
        """A scenario time (site time unless it names its offset) in ms since the epoch."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return int(moment.timestamp() * 1000)


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file.

    Raises:
        ScenarioError: one line per problem, naming the key.
    """
    file = Path(path)
    try:
        data = read_toml(file)
    except ConfigError as exc:
        raise ScenarioError(exc.lines) from None
    try:
        spec = ScenarioSpec.model_validate(data)
    except Exception as exc:  # pydantic.ValidationError, and errors raised inside validators
        raise ScenarioError([f"{file.name}: {line}" for line in format_validation_error(exc, data)]) from None
    return Scenario(file.stem, spec)


def builtin(name: str) -> Scenario:
    """A scenario shipped in ``replay/scenarios/``, by name (``month-of-anomalies``)."""
    return load(FOLDER / f"{name}.toml")
