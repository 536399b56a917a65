"""Fault test: power loss, as crash images, and the loss of the store itself.

``test_every_crash_image_opens_and_holds_every_committed_reading``: the agent polls 24 simulated
Modbus TCP meters every second on four buses whose poll cycles end at different moments (silent
meters delay three of them), so it commits several times a second, besides marking uploads sent.
At random moments it is frozen (SIGSTOP); while it cannot move, the highest seq its log reports as
captured (logged only after the commit returned) is read, and ``meterlink.db`` with its ``-wal``
(not the ``-shm``: shared memory does not survive a power cut) is copied into a fresh folder: the
disk as a power cut would leave it, since a commit is on disk when it returns (WAL,
synchronous=FULL). Then it goes on (SIGCONT). Every image must open cleanly (integrity_check ok, in
sqlite3 and in the agent's own Store), hold every reading logged as captured before the freeze,
seqs contiguous from 1, and the same content for each seq as the final store.

``test_seq_continues_above_a_lost_store``: the store files are moved away between two runs (after a
clean stop, and after a SIGKILL); the durable seq mark beside them stays. The new store must number
above every seq the old one used, say so with a ``store_replaced`` event, and the platform must see
no seq twice with different content.

Random moments come from a fixed seed, printed; ``METERLINK_FAULT_SEED=N`` runs another schedule.
Figures go to stdout (``pytest -s``) and to ``tests/faults/.results/power_loss*.json``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import SimProcess, start_agent, start_sim, wait_until

from meterlink.agent import signing
from meterlink.agent.seqmark import SeqMark
from meterlink.agent.store import Store
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform

sys.path.insert(0, str(Path(__file__).parent))
import faultkit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DEFAULT_SEED = 20251129
IMAGES = 40  # half at random moments, half the instant the store or its -wal is written to

SITE = """
[gateway]
id = "{gateway}"
poll_interval = 1
{buses}{meters}
[store]
path = "state/meterlink.db"
# A small cap (a small SD card) keeps the -wal small: a checkpoint every 64 pages, the -wal cut back
# to 512 KiB, so freezes also land in checkpoints and in a -wal that starts over.
capacity_mb = {capacity_mb}

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1
batch_size = 50

[clock]
sync_check = "assume_synced"

[log]
level = "debug"
"""

BUS = """
[buses.{name}]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.2
retries = 0
"""

METER = """
[[meters]]
id = "m{unit}"
bus = "{bus}"
unit_id = {unit}
profile = "{profile}"
"""

PROFILES = ["tuf2000", "emf_generic", "mfe600h"]
HEALTHY = range(1, 25)  # units 1-24 answer
SILENT = range(25, 31)  # units 25-30 never answer: each costs its bus one timeout per cycle
# Bus bN: six healthy meters and N silent ones, so its cycle ends about N x 0.2 s after the slot.
LAYOUT = {f"b{n}": [*HEALTHY[6 * n: 6 * n + 6], *SILENT[n * (n - 1) // 2: n * (n + 1) // 2]] for n in range(4)}


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    args = [a for u in HEALTHY for a in ("--meter", f"{PROFILES[u % 3]}:{u}")]
    args += [a for u in SILENT for a in ("--meter", f"tuf2000:{u}", "--fault", f"{u}:no_answer")]
    s = start_sim("--tcp", "0", *args)
    try:
        yield s
    finally:
        s.stop()


def site_text(gateway: str, port: int, broker: LocalBroker, layout: dict[str, list[int]],
              capacity_mb: int = 64) -> str:
    buses = "".join(BUS.format(name=name, port=port) for name in layout)
    meters = "".join(
        METER.format(unit=u, bus=name, profile="tuf2000" if u in SILENT else PROFILES[u % 3])
        for name, units in layout.items()
        for u in units
    )
    return SITE.format(gateway=gateway, buses=buses, meters=meters, broker=broker.url, capacity_mb=capacity_mb)


def wait_for_write(db: Path, limit: float, then: float) -> bool:
    """Spin until the store or its -wal is written to (size or mtime), then busy-wait ``then``
    seconds: a freeze right after lands inside a commit (frames written, the commit frame or its
    fsync not yet done) or inside a checkpoint. False if nothing was written within ``limit`` s."""
    files = (db, db.with_name(db.name + "-wal"))

    def signature() -> list[tuple[int, int] | None]:
        out: list[tuple[int, int] | None] = []
        for f in files:
            try:
                st = os.stat(f)
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_size, st.st_mtime_ns))
        return out

    before = signature()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if signature() != before:
            until = time.monotonic() + then
            while time.monotonic() < until:
                pass
            return True
    return False


def image_problems(image: Path, logged: int, final: faultkit.StoreView, gateway: str) -> tuple[list[str], int]:
    """Everything wrong with one crash image ([] when it is good), and the highest seq it holds."""
    db = image / "meterlink.db"
    # A second copy, untouched by sqlite3 below (closing the last connection checkpoints the -wal),
    # for the agent's own way in.
    again = image.parent / f"{image.name}-opened-by-store"
    faultkit.copy_crash_image(db, again)
    try:
        view = faultkit.read_store(db, readonly=False)
    except Exception as exc:  # sqlite3.DatabaseError and friends: it does not even open
        return [f"does not open: {type(exc).__name__}: {exc}"], -1
    problems = []
    if view.integrity != "ok":
        problems.append(f"integrity_check: {view.integrity}")
    if view.journal_mode != "wal":
        problems.append(f"journal_mode {view.journal_mode}")
    seqs = view.seqs
    if not faultkit.contiguous(seqs):
        problems.append(f"seqs not 1..N: gaps at {faultkit.missing_between(set(seqs), 1, seqs[-1])}")
    held = seqs[-1] if seqs else 0
    if held < logged:
        problems.append(f"holds seqs up to {held}, but {logged} was logged as captured before the freeze")
    # next_seq is committed with the readings that use it: an image holds both or neither.
    if int(view.meta.get("next_seq", -1)) != held + 1:
        problems.append(f"meta next_seq {view.meta.get('next_seq')} with readings up to {held}")
    differing = [s for s, row in view.readings.items() if final.readings.get(s) != row]
    if differing:
        s = differing[0]
        problems.append(f"{len(differing)} readings differ from the final store, e.g. seq {s}: "
                        f"{view.readings[s]} vs {final.readings.get(s)}")
    # The agent's own way in: the Store opens the image as it is, without moving it aside as corrupt.
    try:
        store = Store(again / "meterlink.db", gateway)
        try:
            if store.moved_aside is not None:
                problems.append(f"the agent's Store moved it aside: {store.moved_aside[1]}")
            elif store.next_seq != held + 1:
                problems.append(f"the agent's Store would continue at {store.next_seq}, not {held + 1}")
        finally:
            store.close()
    except Exception as exc:
        problems.append(f"the agent's Store does not open it: {type(exc).__name__}: {exc}")
    return problems, held


def test_every_crash_image_opens_and_holds_every_committed_reading(
    tmp_path: Path, broker: LocalBroker, sim: SimProcess
) -> None:
    seed = faultkit.seed_from_env(DEFAULT_SEED)
    rng = random.Random(seed)
    print(f"\n[power_loss] seed={seed} (rerun with METERLINK_FAULT_SEED={seed})")
    started = time.monotonic()
    gateway = "gw-power"
    assert sim.tcp_port is not None
    site = write_site(tmp_path / "site", site_text(gateway, sim.tcp_port, broker, LAYOUT, capacity_mb=2))
    db = site.parent / "state" / "meterlink.db"
    log = faultkit.AgentLog(tmp_path / "agent.log")
    images: list[tuple[Path, int, list[str]]] = []  # (folder, highest seq logged as captured, files)
    modes = {"random": 0, "on_write": 0, "no_write_seen": 0}
    agent = start_agent(site, log.path)
    try:
        assert wait_until(lambda: log.count("event=captured") >= 3 or agent.poll() is not None, 30), log.tail()
        assert agent.poll() is None, log.tail()
        for n in range(1, IMAGES + 1):
            on_write = rng.random() < 0.5
            time.sleep(rng.uniform(0.02, 0.7 if not on_write else 0.3))
            if on_write:
                seen = wait_for_write(db, 1.5, rng.choice([0.0, rng.uniform(0.0, 0.004)]))
                modes["on_write" if seen else "no_write_seen"] += 1
            else:
                modes["random"] += 1
            faultkit.freeze(agent.pid)
            try:
                logged = log.highest_captured()
                files = faultkit.copy_crash_image(db, tmp_path / "images" / f"{n:02d}")
            finally:
                faultkit.thaw(agent.pid)
            images.append((tmp_path / "images" / f"{n:02d}", logged, files))
        frozen_s = time.monotonic() - started
        code = faultkit.terminate(agent)
        assert code == 0, log.tail()
    finally:
        if agent.poll() is None:
            faultkit.thaw(agent.pid)  # a SIGKILL is delivered to a stopped process too, but be plain
            faultkit.kill9(agent)

    final = faultkit.read_store(db)
    assert final.integrity == "ok"
    assert faultkit.contiguous(final.seqs), "the final store has gaps"
    # Before anything opens an image (opening recovers and checkpoints its -wal).
    tails = [faultkit.wal_tail(folder / "meterlink.db-wal") for folder, _, _ in images]
    generations = [faultkit.wal_generation(folder / "meterlink.db-wal") for folder, _, _ in images]
    problems = {}
    held = []
    for folder, logged, _ in images:
        found, holds = image_problems(folder, logged, final, gateway)
        if found:
            problems[folder.name] = found
        held.append((logged, holds))
    figures = {
        "seed": seed,
        "images": len(images),
        "images_with_wal": sum(1 for *_, files in images if "meterlink.db-wal" in files),
        "freeze_moments": modes,
        "wal_generations_seen": len(set(generations)),
        "images_with_a_half_written_transaction": sum(1 for t in tails if t[1]),
        "images_bad": len(problems),
        "commits_logged": log.count("event=captured"),
        "mark_sent_commits_logged": log.count("event=uploaded"),
        "commits_per_second": round(log.count("event=captured") / frozen_s, 1),
        "final_readings": len(final.seqs),
        "highest_logged_per_image": [logged for logged, _ in held],
        "held_beyond_logged_per_image": [h - logged for logged, h in held],  # committed, log line not yet out
        "seconds": round(time.monotonic() - started, 1),
    }
    where = faultkit.write_results("power_loss", figures)
    print(f"[power_loss] {json.dumps(figures, sort_keys=True)}")
    print(f"[power_loss] figures written to {where}")
    assert not problems, problems
    assert len(images) >= 20
    assert log.count("event=captured") >= 20, "fewer commits than planned: the images mean less"
    assert "Traceback" not in log.text(), log.tail()


def move_store_aside(db: Path, into: Path) -> list[str]:
    """The store is lost: ``meterlink.db`` and its ``-wal``/``-shm`` go; ``meterlink.db.seqmark`` stays."""
    into.mkdir(parents=True)
    moved = []
    for f in sorted(db.parent.iterdir()):
        if f.name == db.name or f.name.startswith(db.name + "-"):
            os.replace(f, into / f.name)
            moved.append(f.name)
    return moved


def lost_store_platform(site: Path, broker: LocalBroker, gateway: str, client_id: str) -> Platform:
    verifier = signing.Verifier([signing.load_public_key(site.parent / "keys" / "gateway.pub")])
    platform = Platform(broker.host, broker.port, verifier, gateway=gateway, client_id=client_id)
    platform.start()
    return platform


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_seq_continues_above_a_lost_store(tmp_path: Path, broker: LocalBroker, sim: SimProcess, stop: str) -> None:
    started = time.monotonic()
    gateway = "gw-lost"
    assert sim.tcp_port is not None
    site = write_site(tmp_path / "site", site_text(gateway, sim.tcp_port, broker, {"b0": [1, 2, 3, 4]}))
    db = site.parent / "state" / "meterlink.db"
    mark = db.with_name(db.name + ".seqmark")
    log = faultkit.AgentLog(tmp_path / "agent.log")
    platform = lost_store_platform(site, broker, gateway, f"platform-lost-{stop}")
    agent: subprocess.Popen[bytes] | None = None
    try:
        # -- first life: some readings, some of them delivered ------------------------------------
        agent = start_agent(site, log.path)
        assert wait_until(lambda: log.highest_captured() >= 60 and log.has("event=uploaded"), 30), log.tail()
        code = faultkit.terminate(agent) if stop == "sigterm" else faultkit.kill9(agent)
        assert code in (0, None), log.tail()
        agent = None

        # -- the store is lost; its durable mark is not -------------------------------------------
        moved = move_store_aside(db, tmp_path / "lost")
        assert db.name in moved and mark.exists()
        old = faultkit.read_store(tmp_path / "lost" / db.name)
        reserved = SeqMark(mark).reserved
        assert old.integrity == "ok" and old.seqs and reserved > old.seqs[-1]
        first_life_batches = list(platform.received.batches)
        assert first_life_batches, "the first life delivered no message"

        # -- second life -------------------------------------------------------------------------
        watch = log.watch()
        agent = start_agent(site, log.path)
        assert wait_until(lambda: watch.has("event=captured") and watch.has("event=uploaded")
                          and platform.wait_for(lambda r: any(e["kind"] == "store_replaced" for e in r.events), 0),
                          30), watch.poll()[-3000:]
        second_log = watch.poll()
        code = faultkit.terminate(agent)
        agent = None
        assert code == 0, second_log[-3000:]
    finally:
        if agent is not None:
            faultkit.kill9(agent)
        platform.stop()

    new = faultkit.read_store(db)
    got = platform.received
    replaced = [d for _, kind, d in new.events if kind == "store_replaced"]
    received = {seq for _, seq in got.readings}
    figures = {
        "stop": stop,
        "old_last_seq": old.seqs[-1],
        "seqmark": reserved,
        "new_first_seq": new.seqs[0] if new.seqs else None,
        "new_readings": len(new.seqs),
        "files_moved_aside": moved,
        "store_replaced_events": replaced,
        "platform_conflicts": got.conflicts,
        "platform_duplicates": got.duplicates,
        "seconds": round(time.monotonic() - started, 1),
    }
    where = faultkit.write_results(f"power_loss_lost_store_{stop}", figures)
    print(f"\n[power_loss lost store, {stop}] {json.dumps(figures, sort_keys=True)} -> {where}")

    assert new.integrity == "ok"
    assert new.seqs, "the new store captured nothing"
    assert new.seqs[0] > old.seqs[-1], "a seq of the lost store was given out again"
    assert new.seqs[0] == reserved, "the new store should continue exactly at the durable mark"
    assert faultkit.contiguous(new.seqs, start=new.seqs[0])
    assert replaced == [{"seq_continues_at": reserved}], new.events
    assert "event=store_replaced" in second_log
    assert any(e["kind"] == "store_replaced" for e in got.events)
    assert got.conflicts == 0 and got.rejected == 0
    assert received <= set(old.seqs) | set(new.seqs), "the platform got a seq neither store ever held"
    assert not set(old.seqs) & set(new.seqs)
    # Nor does any other counter start again: event seq and message batch go on above the lost store's.
    assert min(seq for seq, _, _ in new.events) > max(seq for seq, _, _ in old.events), new.events
    second_life_batches = got.batches[len(first_life_batches):]
    assert second_life_batches and min(second_life_batches) > max(first_life_batches), got.batches
    # What the platform has is what one of the two stores held under that seq (no number reused).
    for (_, seq), r in got.readings.items():
        row = old.readings.get(seq) or new.readings[seq]
        assert (r["meter"], r["quantity"], r["unit"], r["value"], r["ts"], r["slot"]) == row[:6], seq


def kill_after_wal_commits(agent: subprocess.Popen[bytes], wal: Path, target: int, limit: float = 20.0) -> int:
    """SIGKILL the agent as soon as its -wal holds ``target`` committed transactions (watched by
    reading the file in a tight loop: the next commit, an fsync away, rarely makes it). Returns how
    many the -wal held when it died."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and agent.poll() is None:
        if faultkit.wal_tail(wal)[0] >= target:
            break
    faultkit.kill9(agent)
    return faultkit.wal_tail(wal)[0]


# Commits a fresh store makes before the agent runs: 1 schema, 2 meta rows, 3 the SZY206 table,
# 4 next_seq raised to the durable mark, 5 pending_from, 6 the store_replaced event, 7 agent_started.
REPLACEMENT_KILL_POINTS = [1, 2, 3, 4, 5, 6]


def test_seq_continues_above_a_lost_store_when_killed_while_making_the_new_one(
    tmp_path: Path, broker: LocalBroker, sim: SimProcess
) -> None:
    """The store is lost, and the first start that makes the new one dies (SIGKILL, the same as a
    power cut here) right after its k-th commit, for each k. The next start must still number above
    every seq ever used, say store_replaced, and the platform must see no seq with two contents."""
    started = time.monotonic()
    gateway = "gw-lost-init"
    assert sim.tcp_port is not None
    site = write_site(tmp_path / "site", site_text(gateway, sim.tcp_port, broker, {"b0": [1, 2]}))
    db = site.parent / "state" / "meterlink.db"
    wal = db.with_name(db.name + "-wal")
    log = faultkit.AgentLog(tmp_path / "agent.log")
    platform = lost_store_platform(site, broker, gateway, "platform-lost-init")
    rounds: list[dict[str, object]] = []
    used = 0  # the highest seq any store has given out so far
    agent: subprocess.Popen[bytes] | None = None
    try:
        agent = start_agent(site, log.path)
        assert wait_until(lambda: log.highest_captured() >= 20 and log.has("event=uploaded"), 30), log.tail()
        assert faultkit.terminate(agent) == 0
        agent = None
        used = faultkit.read_store(db).seqs[-1]
        for n, target in enumerate(REPLACEMENT_KILL_POINTS, 1):
            move_store_aside(db, tmp_path / f"lost-{n}")
            agent = start_agent(site, log.path)
            died_after = kill_after_wal_commits(agent, wal, target)
            agent = None
            watch = log.watch()
            agent = start_agent(site, log.path)
            wait_until(lambda w=watch, a=agent: (w.has("event=captured") and w.has("event=uploaded"))
                       or a.poll() is not None, 30)
            text = watch.poll()
            code = faultkit.terminate(agent)
            agent = None
            view = faultkit.read_store(db)
            outcome: dict[str, object] = {
                "killed_after_commit": died_after,
                "restart_exit_code": code,
                "first_seq": view.seqs[0] if view.seqs else None,
                "seq_above_every_used": bool(view.seqs) and view.seqs[0] > used,
                "store_replaced_event": any(kind == "store_replaced" for _, kind, _ in view.events),
                "platform_conflicts_so_far": platform.received.conflicts,
            }
            if code != 0:
                lines = [ln for ln in text.splitlines() if "meterlink:" in ln or "ERROR" in ln]
                outcome["restart_error"] = lines[-1] if lines else text[-300:]
            rounds.append(outcome)
            used = max(used, view.seqs[-1] if view.seqs else 0)
    finally:
        if agent is not None:
            faultkit.kill9(agent)
        platform.stop()

    figures = {"rounds": rounds, "conflicts": platform.received.conflicts,
               "seconds": round(time.monotonic() - started, 1)}
    where = faultkit.write_results("power_loss_lost_store_killed_in_init", figures)
    print(f"\n[power_loss lost store, killed while making the new one] -> {where}")
    for r in rounds:
        print(f"    {r}")
    bad = [r for r in rounds if r["restart_exit_code"] != 0 or not r["seq_above_every_used"]
           or not r["store_replaced_event"]]
    assert not bad and platform.received.conflicts == 0, (
        f"{len(bad)} of {len(rounds)} kills while making the new store broke the promise "
        f"(conflicts at the platform: {platform.received.conflicts}): {bad}"
    )
