"""`meterlink status`: the store, the uplinks, each meter's health, the intakes and open warnings.

Read-only and safe while the agent runs: the store through a read-only connection, each meter's
health from the state file the running agent keeps beside the store (``agent/state_file.py``).
Nothing asks a meter. When the agent is not running, it says so, and the meters' states are those
it last wrote.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as cfgmod
from .clock import now_ms
from .config import Config
from .report import build_report
from .report_view import status_lines
from .rules.calendar import Period, day_of
from .state_file import agent_running, read_state, state_path
from .store_readonly import has_table, read_store


@dataclass(frozen=True, slots=True)
class StoreFacts:
    gateway: str | None
    next_seq: int | None
    rows: int
    first_ts: int | None
    pending: int
    oldest_pending: int | None
    events_pending: int
    last_sent: int | None
    reports: tuple[int, int, int | None, int | None] | None  # confirmed, waiting, first waiting, last confirmed


def show_status(config_path: Path, *, as_json: bool = False) -> int:
    config = cfgmod.load(config_path)
    now = now_ms()
    today = day_of(now, config.gateway.zone)
    facts, rules = read_store(config.store.path, lambda db: _read(db, config, now, today))
    state = read_state(state_path(config.store.path))
    running = state is not None and agent_running(state.get("pid"))
    meters = _meters(config, state)
    if as_json:
        print(json.dumps(_as_json(config, facts, rules, state, running, meters), ensure_ascii=False, indent=1))
        return 0
    for line in _store_lines(config, facts):
        print(line)
    for line in _agent_lines(state, running, now):
        print(line)
    for line in _meter_lines(meters, now):
        print(line)
    for line in status_lines(rules):
        print(line)
    return 0


def _read(db: sqlite3.Connection, config: Config, now: int, today: Any) -> tuple[StoreFacts, Any]:
    meta = dict(db.execute("SELECT key, value FROM meta"))
    low = int(meta.get("pending_from", 1))
    pending, oldest = db.execute(
        "SELECT count(*), min(ts) FROM readings WHERE seq >= ? AND sent IS NULL", (low,)
    ).fetchone()
    rows, first_ts = db.execute("SELECT count(*), min(ts) FROM readings").fetchone()
    events = db.execute("SELECT count(*) FROM events WHERE sent IS NULL").fetchone()[0]
    reports = None
    if config.uplink.szy206 is not None:
        reports = (
            (0, 0, None, None)
            if not has_table(db, "szy206_reports")
            else db.execute(
                "SELECT count(confirmed), count(*) - count(confirmed),"
                " min(CASE WHEN confirmed IS NULL THEN slot END), max(confirmed) FROM szy206_reports"
            ).fetchone()
        )
    last_sent = meta.get("last_sent")
    facts = StoreFacts(
        gateway=meta.get("gateway"),
        next_seq=None if meta.get("next_seq") is None else int(meta["next_seq"]),
        rows=rows,
        first_ts=first_ts,
        pending=pending,
        oldest_pending=oldest,
        events_pending=events,
        last_sent=None if last_sent is None else int(last_sent),
        reports=reports,
    )
    # The intakes to today and the open warnings, as `meterlink report` finds them.
    rules = build_report(db, config, Period(today.isoformat(), today, today), None, now, with_meters=False)
    return facts, rules


def _meters(config: Config, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every configured meter with what the state file says of it; a meter the agent has not
    polled yet (or no state at all) is offline with nothing known."""
    known = {m.get("id"): m for m in (state or {}).get("meters", []) if isinstance(m, dict)}
    out = []
    for mc in config.meters:
        m = known.get(mc.id)
        if m is None:
            m = {"id": mc.id, "bus": mc.bus, "state": "offline", "last_ts": None, "consecutive_failures": 0}
        out.append(m)
    return out


def when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _ago(now: int, ms: int | None) -> str:
    if ms is None:
        return "never"
    s = max(0, now - ms) // 1000
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def _store_lines(config: Config, f: StoreFacts) -> list[str]:
    lines = [
        f"store          {config.store.path}",
        f"gateway        {f.gateway}",
        f"next seq       {f.next_seq}",
        f"readings held  {f.rows} (oldest {when(f.first_ts)})",
    ]
    if config.uplink.mqtt is not None:
        lines += [
            f"mqtt pending   {f.pending} readings (oldest {when(f.oldest_pending)})",
            f"mqtt confirmed last at {when(f.last_sent)}",
            f"events pending {f.events_pending}",
        ]
    else:
        # Without MQTT nothing marks readings delivered: they are kept for retention, then purged.
        lines.append(f"readings kept  {config.store.retention_days:g} days (no [uplink.mqtt]: none wait for delivery)")
    if f.reports is not None:
        confirmed, waiting, first_waiting, last_confirmed = f.reports
        lines.append(
            f"szy206 reports {waiting} waiting (oldest slot {when(first_waiting)}), "
            f"{confirmed} confirmed (last at {when(last_confirmed)})"
        )
    return lines


def _agent_lines(state: dict[str, Any] | None, running: bool, now: int) -> list[str]:
    if state is None:
        return ["agent          no state file: the agent has not run on this store yet"]
    if not running:
        return [f"agent          NOT RUNNING (meters as it last saw them, {_ago(now, state.get('written_ms'))})"]
    return [
        f"agent          running, pid {state.get('pid')}, up {_duration(int(state.get('uptime_s') or 0))}",
        f"last upload    {when(state.get('last_upload_ms'))} ({_ago(now, state.get('last_upload_ms'))}), "
        f"next slot {when(state.get('next_upload_ms'))}",
    ]


def _duration(s: int) -> str:
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def _meter_lines(meters: list[dict[str, Any]], now: int) -> list[str]:
    lines = [f"meters         {sum(m['state'] == 'ok' for m in meters)} of {len(meters)} ok"]
    for m in meters:
        state = str(m["state"]).upper() if m["state"] != "ok" else "ok"
        line = f"  {m['id']:<16} {state:<8} last reading {_ago(now, m.get('last_ts'))}"
        values = m.get("values") or {}
        if values:
            line += ": " + ", ".join(f"{q} {v:g}" for q, v in sorted(values.items()))
        lines.append(line)
        if m["state"] != "ok" and m.get("failing_since_ms") is not None:
            lines.append(
                f"  {'':<16} failing since {when(m['failing_since_ms'])}, "
                f"{m['consecutive_failures']} polls in a row: {m.get('last_error')}"
            )
        hour, day = m.get("polls_last_hour"), m.get("polls_last_day")
        if hour and day:
            lines.append(
                f"  {'':<16} polls ok/failed: last hour {hour['ok']}/{hour['failed']}, "
                f"last day {day['ok']}/{day['failed']}"
                + (f"; flags today: {', '.join(m['flags_today'])}" if m.get("flags_today") else "")
            )
    return lines


def _as_json(
    config: Config,
    f: StoreFacts,
    rules: Any,
    state: dict[str, Any] | None,
    running: bool,
    meters: list[dict[str, Any]],
) -> dict[str, Any]:
    agent: dict[str, Any] = {"running": running}
    if state is not None:
        for key in ("pid", "started_ms", "uptime_s", "last_upload_ms", "next_upload_ms", "written_ms"):
            agent[key] = state.get(key)
    return {
        "gateway": f.gateway,
        "agent": agent,
        "store": {
            "path": str(config.store.path),
            "next_seq": f.next_seq,
            "readings": f.rows,
            "pending": f.pending if config.uplink.mqtt is not None else None,
            "oldest_pending_ts": f.oldest_pending,
            "events_pending": f.events_pending,
            "last_confirmed_ms": f.last_sent,
        },
        "meters": meters,
        "warnings": [w.to_dict() for w in rules.warnings],
    }
