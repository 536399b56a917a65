"""A store.path naming a file meterlink did not make: refused by check-config and run, left as it is.

Only a store of ours that fails its check is moved aside (see test_store.py); anything else at that
path (the signing key, the config file, another program's database) is a config error and is
neither renamed nor written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.configs import BASE, write_site
from support.runs import ABSENT_DEVICE, CLOSED_BROKER, check_config, run_briefly

from meterlink.agent.errors import StoreError
from meterlink.agent.store import Store
from meterlink.drivers.base import Reading

T0 = 1_764_374_400_000


def site(folder: Path, store_path: str) -> Path:
    text = (
        BASE.replace('path = "state/meterlink.db"', f'path = "{store_path}"')
        .replace("/dev/null", ABSENT_DEVICE)
        .replace("mqtt://127.0.0.1:1883", CLOSED_BROKER)
    )
    return write_site(folder, text)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("victim", ["keys/gateway.key", "meterlink.toml"])
def test_a_file_that_is_not_a_store_is_a_config_error_and_stays_untouched(tmp_path: Path, victim: str) -> None:
    config = site(tmp_path, victim)
    before = snapshot(tmp_path)
    line = f"store.path: {tmp_path.resolve() / victim} is not a SQLite database"

    check = check_config(config)
    ran = run_briefly(config)

    assert check.returncode == 1 and any(x.startswith(line) for x in check.stderr.splitlines()), check.stderr
    assert ran.code == 1 and not ran.stopped, ran.output
    assert any(x.startswith(line) for x in ran.output.splitlines()), ran.output
    assert snapshot(tmp_path) == before  # no *.corrupt-*, no .seqmark, not a byte changed


def test_the_store_itself_refuses_a_file_it_did_not_make(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("pump 2 serviced on Monday\n")
    with pytest.raises(StoreError, match=r"notes\.txt is not a SQLite database"):
        Store(notes, "gw")
    assert snapshot(tmp_path) == {"notes.txt": b"pump 2 serviced on Monday\n"}


def test_another_programs_database_is_refused_and_stays_untouched(tmp_path: Path) -> None:
    other = tmp_path / "scada.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE tags (name TEXT)")
    db.commit()
    db.close()
    before = snapshot(tmp_path)
    with pytest.raises(StoreError, match=r"scada\.db is a SQLite database of another program"):
        Store(other, "gw")
    assert snapshot(tmp_path) == before


def test_an_empty_file_is_taken_as_a_new_store(tmp_path: Path) -> None:
    (tmp_path / "s.db").touch()
    store = Store(tmp_path / "s.db", "gw")
    assert store.append([Reading("m1", "flow_rate", 1.0, "m3/h", T0, T0)]) == (1, 1)
    store.close()


def test_a_store_of_ours_with_a_damaged_header_is_still_moved_aside(tmp_path: Path) -> None:
    """Its durable seq mark beside it says meterlink made it: a bad header there is damage, not a foreign file."""
    store = Store(tmp_path / "s.db", "gw")
    store.append([Reading("m1", "flow_rate", 1.0, "m3/h", T0, T0)])
    store.close()
    data = bytearray((tmp_path / "s.db").read_bytes())
    data[0:16] = bytes(16)
    (tmp_path / "s.db").write_bytes(bytes(data))
    store = Store(tmp_path / "s.db", "gw")
    assert store.moved_aside is not None and store.moved_aside[0].exists()
    store.close()
