"""replay/scenario.py, replay/readings.py and the replay command: a scenario file read with one
line per mistake, the readings it makes (flags set by the agent's quality check), and the verdict."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from meterlink.drivers.base import Flag, Reading
from meterlink.replay.readings import generate
from meterlink.replay.run import main
from meterlink.replay.scenario import FOLDER, ScenarioError, builtin, load

SMALL = """
[site]
zone = "Asia/Shanghai"
start = 2026-11-02
days = 2

[[meters]]
id = "well-1"
poll_interval = 300
max_flow = 60.0
flow = 40.0
total = 1200.0
"""


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_lines(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load(path)
    return caught.value.lines


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ('[[meters]]\nid = "well-2"\nflw = 3.0\n', "meters[well-2].flw: unknown key"),
        (
            '[[happenings]]\nkind = "outage"\nmeter = "well-1"\nfrom = 2026-11-02T10:00:00\n',
            "happenings[#1]: outage needs 'to' (it takes meter, from, to)",
        ),
        (
            '[[happenings]]\nkind = "reset"\nmeter = "well-1"\nat = 2026-11-02T10:00:00\nby = 3.0\n',
            "happenings[#1]: reset takes no 'by' (it takes meter, at)",
        ),
        (
            '[[happenings]]\nkind = "reset"\nmeter = "well-9"\nat = 2026-11-02T10:00:00\n',
            "happenings[#1].meter: no meter named 'well-9'",
        ),
        (
            '[[happenings]]\nkind = "reset"\nmeter = "well-1"\nat = 2026-11-09T10:00:00\n',
            "happenings[#1].at: 2026-11-09 10:00:00 is outside the scenario",
        ),
        ('[[happenings]]\nkind = "wrap"\nmeter = "well-1"\nat = 2026-11-02T10:00:00\n', "has no wraps_at"),
        ('[[happenings]]\nkind = "flood"\n', "happenings[#1].kind: Input should be 'outage'"),
        ('[[expect]]\nkind = "no_date"\nsubject = "well-1"\nraised = 2026-11-02T10:00:00\n', "'no_date' is not"),
        ('[[meters]]\nid = "well-1"\n', "meters: an id is used twice"),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(tmp_path: Path, extra: str, line: str) -> None:
    [found] = error_lines(write(tmp_path, SMALL + extra))
    assert found.startswith("site.toml: ") and line in found


def test_unreadable_files_are_one_line_too(tmp_path: Path) -> None:
    assert error_lines(tmp_path / "none.toml") == [f"{tmp_path / 'none.toml'}: no such file"]
    [line] = error_lines(write(tmp_path, "[site\n"))
    assert "invalid TOML" in line
    [line] = error_lines(write(tmp_path, SMALL.replace("Asia/Shanghai", "Mars/Olympus")))
    assert line == "site.toml: site.zone: 'Mars/Olympus' is not a time zone name (IANA, e.g. \"Asia/Shanghai\")"


def test_times_may_be_toml_local_times_or_strings_in_site_time(tmp_path: Path) -> None:
    text = (
        SMALL
        + '[[happenings]]\nkind = "outage"\nmeter = "well-1"\nfrom = "2026-11-02 10:00"\nto = 2026-11-02T11:00:00\n'
    )
    scenario = load(write(tmp_path, text))
    outage = scenario.spec.happenings[0]
    assert outage.from_ is not None and outage.to is not None
    assert scenario.ms(outage.to) - scenario.ms(outage.from_) == 3_600_000
    assert scenario.ms(outage.from_) == int(datetime(2026, 11, 2, 2, tzinfo=UTC).timestamp() * 1000)  # UTC+8


def test_the_readings_poll_aligned_slots_and_skip_an_outage(tmp_path: Path) -> None:
    text = (
        SMALL
        + '[[happenings]]\nkind = "outage"\nmeter = "well-1"\nfrom = "2026-11-02 10:00"\nto = "2026-11-02 11:00"\n'
    )
    scenario = load(write(tmp_path, text))
    run = generate(scenario)
    totals = [r for _, rs in run.batches for r in rs if r.quantity == "volume_total"]
    assert all(r.slot % 300_000 == 0 and r.ts == r.slot + 300 for r in totals)
    assert run.slots[("well-1", date(2026, 11, 2))] == (288 - 12, 288)
    assert run.flowed[("well-1", date(2026, 11, 2))] == pytest.approx(960.0)
    assert totals[0].value == 1200.0 + round(40 * 0.3 / 3600, 3)  # counted until the reading, 300 ms in
    assert len(totals) == 2 * 288 + 1 - 12 and totals[-1].slot == scenario.end_ms  # the reading closing the last day


def flagged(readings: list[tuple[int, list[Reading]]]) -> list[tuple[float, Flag]]:
    return [(r.value, Flag(r.flags)) for _, rs in readings for r in rs if r.flags]


def test_the_agents_quality_check_flags_the_totalizers_steps() -> None:
    run = generate(builtin("totalizer-drops"))
    assert flagged(run.batches) == [
        (1.67, Flag.WRAPPED),  # passed 100,000 m3 2.5 min before the 18:05 poll
        (481.67, Flag.METER_RESET),  # a drop of 120 m3
        (1.67, Flag.METER_RESET),  # a reset to 0
        (500.0, Flag.MANUAL | Flag.REPLACEMENT),  # the registered replacement: the next poll is judged against it
    ]
    assert all(v == pytest.approx(960.0) for v in run.flowed.values())


def test_a_large_step_is_flagged_suspect() -> None:
    run = generate(builtin("large-step"))
    [(value, flag)] = flagged(run.batches)
    assert flag == Flag.SUSPECT and value == pytest.approx(1200 + 40 * (34 + 5 / 60 + 0.3 / 3600) + 50, abs=0.002)


def test_replay_command_says_whether_the_rules_matched_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(FOLDER / "clock-drift.toml")]) == 0
    out = capsys.readouterr().out
    assert "events expected 2, raised 2, misses 0, false alarms 0" in out

    wrong = (FOLDER / "clock-drift.toml").read_text().replace("cleared = 2026-11-03T14:00:00", "")
    assert main([str(write(tmp_path, wrong, "drift.toml"))]) == 1
    out = capsys.readouterr().out
    assert "misses 0, false alarms 1" in out
    assert "false alarm: clock_drift gateway cleared at 2026-11-03 14:00:00" in out


def test_replay_command_on_a_bad_file_says_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(write(tmp_path, "oops = 1\n" + SMALL))]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: site.toml: oops: unknown key (misspelt? it would be ignored, so it is an error)\n"
    assert captured.out == ""


def test_a_meters_pattern_shapes_its_flow_by_local_hour() -> None:
    scenario = builtin("month-of-anomalies")
    [well3] = [m for m in scenario.spec.meters if m.id == "well-3"]
    assert well3.pattern is not None
    run = generate(scenario)
    assert run.flowed[("well-3", date(2026, 12, 11))] == pytest.approx(25 * sum(well3.pattern))
    seven = scenario.ms(datetime(2026, 12, 11, 7, 0))  # 07:00 site time: 1.4 x 25 m3/h
    [flow] = [
        r for t, rs in run.batches if t == seven + 300 for r in rs if r.meter == "well-3" and r.quantity == "flow_rate"
    ]
    assert flow.value == 35.0
