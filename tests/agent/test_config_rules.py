"""Config of the platform's rules: the site's zone, intakes, the meter archive, thresholds."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from support.configs import BASE, write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError
from meterlink.cli.main import main

INTAKES = """
[[intakes]]
id = "river-1"
permit = "取水(湘)字[2024]第0042号"
source = "surface"
annual_permit = 500000
annual_plan = 420000
daily_max = 2000
permit_expires = 2027-06-30

[rules]
zero_notice_days = 5
report_rate_target = 0.9
"""


def with_rules(tmp_path: Path, meter_extra: str = "", tail: str = INTAKES) -> Path:
    text = BASE.replace('profile = "tuf2000"\n', f'profile = "tuf2000"\n{meter_extra}', 1) + tail
    return write_site(tmp_path, text)


def test_intakes_the_archive_and_thresholds_are_read(tmp_path: Path) -> None:
    extra = (
        'intake = "river-1"\nflow_direction = "both"\nno_data_after = 600\n'
        '[meters.archive]\nmake = "Hipeak"\nmodel = "TUF-2000M"\ninstalled = 2024-05-01\n'
        'calibrated = "2025-11-20"\ncalibration_months = 24\n'
    )
    config = cfgmod.load(with_rules(tmp_path, extra))
    meter = config.meters[0]
    assert (meter.intake, meter.flow_direction, meter.no_data_after) == ("river-1", "both", 600)
    assert meter.archive.installed == date(2024, 5, 1) and meter.archive.calibrated == date(2025, 11, 20)
    (intake,) = config.intakes
    assert intake.permit_expires == date(2027, 6, 30) and intake.source == "surface"
    assert config.rules.zero_notice_days == 5 and config.rules.zero_alarm_days == 30
    assert str(config.gateway.zone) == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("extra", "tail", "says"),
    [
        ('intake = "lake"\n', INTAKES, "meters[m1].intake: no intake named 'lake' (intakes: river-1)"),
        ("", INTAKES + '\n[[intakes]]\nid = "river-1"\n', "intakes: river-1 named twice"),
        ("", "[rules]\nzero_notice_days = 40\n", "zero_alarm_days must not be less than zero_notice_days"),
        ("", "[rules]\nreport_rate_target = 95\n", "rules.report_rate_target"),
        ('[meters.archive]\ninstalled = "yesterday"\n', "", "meters[m1].archive.installed"),
    ],
)
def test_mistakes_are_one_line_each(tmp_path: Path, extra: str, tail: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfgmod.load(with_rules(tmp_path, extra, tail))
    assert any(says in line for line in info.value.lines), info.value.lines


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = write_site(tmp_path, BASE.replace("poll_interval = 60", 'poll_interval = 60\ntimezone = "Asia/Changsha"'))
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path)
    assert info.value.lines == [
        "gateway.timezone: 'Asia/Changsha' is not a time zone name (IANA, e.g. \"Asia/Shanghai\")"
    ]


def test_check_config_warns_once_about_missing_archive_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_rules(tmp_path, '[meters.archive]\nmake = "Hipeak"\ncalibrated = 2025-01-01\n')
    main(["check-config", str(path)])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "archive" in line]
    assert warnings == [
        "warning: meters[m1].archive.calibration_months: not set, so no calibration is ever due",
        "warning: meters.archive: 2 of 2 meters lack archive fields (make, model, serial, principle, accuracy_class, "
        "diameter_mm, installed, calibrated, calibration_months; e.g. meters[m1]): the platform's meter archive asks "
        "for them",
    ]
