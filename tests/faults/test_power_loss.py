"""Fault test: power cuts, as a disk that keeps only what was made durable, and the loss of the store.

``test_a_power_cut_loses_no_acknowledged_reading``: the agent polls 24 simulated Modbus TCP meters
every second on four buses whose poll cycles end at different moments (silent meters delay three
of them), and uploads to a real mosquitto where a verifying platform checks every message. It runs
with the power-cut shim (``powercut/``, ``LD_PRELOAD``), which copies each file of the store's
folder when an fsync/fdatasync of it returns and records the folder's listing when the folder is
synced. 40 times the power is cut at a random moment (the first cuts while the store is being made;
then right after one of the first syncs of a life, right after a commit's fsync, or at any moment):
SIGKILL, the folder rebuilt from what was durable (unsynced writes, creates, renames and unlinks
are gone; the ``-shm`` comes back empty), and the agent restarted on it. After each cut the rebuilt
store must open cleanly (integrity_check, and the agent's own Store without moving it aside), hold
every reading acknowledged before the cut in any life (logged as committed, logged as PUBACKed
and marked, or held by the platform), with the platform's content; the seq mark must be above
every seq handed out; each life must number above every seq handed out before it.

``test_the_power_cut_model_keeps_only_what_was_synced``: the model itself, on a small process that
syncs some files and names and not others, renames over a file, and gets a freed inode back.

``test_the_power_cut_test_notices_an_agent_that_skips_a_sync``: the same cuts against the agent
started by a test-only launcher that runs the store with ``synchronous=OFF``, or writes the seq mark
without fsync: the checks must report lost readings, or a seq mark below a handed-out seq.

``test_seq_continues_above_a_lost_store``: the store files are moved away between two runs (after a
clean stop, and after a SIGKILL); the durable seq mark beside them stays. The new store must number
above every seq the old one used, say so with a ``store_replaced`` event, and the platform must see
no seq twice with different content.

Random moments come from a fixed seed, printed; ``METERLINK_FAULT_SEED=N`` runs another schedule.
Figures go to stdout (``pytest -s``) and to ``tests/faults/.results/power_*.json``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import SimProcess, start_agent, start_sim, wait_until

from meterlink.agent.keys import load_public_key
from meterlink.agent.seqmark import SeqMark
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

sys.path.insert(0, str(Path(__file__).parent))
import faultkit
from powercut import model
from powercut.harness import Cut, PowerCuts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DEFAULT_SEED = 20251129
CUTS = 40
UNSAFE_CUTS = 10  # an unsafe agent is caught at the first cut after it skipped a sync; 10 is a wide margin

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
LAYOUT = {f"b{n}": [*HEALTHY[6 * n : 6 * n + 6], *SILENT[n * (n - 1) // 2 : n * (n + 1) // 2]] for n in range(4)}


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    args = [a for u in HEALTHY for a in ("--meter", f"{PROFILES[u % 3]}:{u}")]
    args += [a for u in SILENT for a in ("--meter", f"tuf2000:{u}", "--fault", f"{u}:no_answer")]
    s = start_sim("--tcp", "0", *args)
    try:
        yield s
    finally:
        s.stop()


def site_text(gateway: str, port: int, broker: LocalBroker, layout: dict[str, list[int]], capacity_mb: int = 64) -> str:
    buses = "".join(BUS.format(name=name, port=port) for name in layout)
    meters = "".join(
        METER.format(unit=u, bus=name, profile="tuf2000" if u in SILENT else PROFILES[u % 3])
        for name, units in layout.items()
        for u in units
    )
    return SITE.format(gateway=gateway, buses=buses, meters=meters, broker=broker.url, capacity_mb=capacity_mb)


@pytest.fixture(scope="session")
def powercut_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim, compiled once per session (it is C: the test must not trust a stale binary)."""
    try:
        return model.build_shim(tmp_path_factory.mktemp("powercut"))
    except model.ShimUnavailable as exc:
        pytest.skip(f"the power-cut model needs a C compiler: {exc}")


# A process doing each kind of file operation the model must get right, under the shim.
MODEL_SCRIPT = r"""
import os, sys
folder = sys.argv[1]
def path(name): return os.path.join(folder, name)
def write(name, data, sync):
    fd = os.open(path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
    os.close(fd)
def sync_folder():
    fd = os.open(folder, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
write("synced", b"one", True)
sync_folder()
with open(path("synced"), "ab") as f:
    f.write(b" two")                       # never synced: lost
write("named", b"data", False)             # named durably below, content never synced
sync_folder()
write("mark.tmp", b"mark", True)
os.rename(path("mark.tmp"), path("mark"))  # rename over an older mark, folder synced below
for r in range(50):                        # until the filesystem hands a freed inode to a new file
    write(f"reused{r}", b"old", True)
    sync_folder()
    old = os.stat(path(f"reused{r}")).st_ino
    os.unlink(path(f"reused{r}"))
    sync_folder()
    write("new", b"new", False)            # on the freed inode: a new life of it, never synced
    if os.stat(path("new")).st_ino == old:
        print(old)
        break
    os.unlink(path("new"))
sync_folder()
os.unlink(path("named"))                   # unlinked, folder not synced: comes back
write("unnamed", b"data", True)            # synced, but its name never was: absent
"""


def test_the_power_cut_model_keeps_only_what_was_synced(tmp_path: Path, powercut_shim: Path) -> None:
    folder, out = tmp_path / "folder", tmp_path / "out"
    folder.mkdir()
    (folder / "mark").write_text("older mark")  # there before the process: durable
    model.record_start(folder, out)
    env = {**os.environ, "LD_PRELOAD": str(powercut_shim), "POWERCUT_DIR": str(folder), "POWERCUT_OUT": str(out)}
    done = subprocess.run(
        [sys.executable, "-c", MODEL_SCRIPT, str(folder)], env=env, capture_output=True, text=True, check=True
    )
    reused = done.stdout.strip()  # the inode "new" took over, if the filesystem reused one
    files = model.reconstruct(out, tmp_path / "disk")
    disk = {name: (tmp_path / "disk" / name).read_bytes() for name in files}
    print(f"\n[power_cut model] left after the cut: {disk}; inode reused: {reused or 'never'}")
    expected = {"synced": b"one", "named": b"", "mark": b"mark"}
    if reused:
        expected["new"] = b""  # not "old", the content its inode had in an earlier life
    assert disk == expected
    journal = model.read_journal(out)
    if reused:
        assert journal.listings[-1].entries["new"][1] > 0, "the inode's earlier life was not counted"
    assert journal.syncs_of("synced") == 1 and journal.syncs_of("unnamed") == 1


def power_cuts(
    tmp_path: Path, broker: LocalBroker, sim: SimProcess, shim: Path, gateway: str, variant: str | None, seed: int
) -> tuple[PowerCuts, Platform]:
    assert sim.tcp_port is not None
    site = write_site(tmp_path / "site", site_text(gateway, sim.tcp_port, broker, LAYOUT, capacity_mb=2))
    state = site.parent / "state"
    state.mkdir()  # the store's folder exists, empty, when the power is first switched on
    platform = lost_store_platform(site, broker, gateway, f"platform-{gateway}")
    cuts = PowerCuts(
        site=site,
        state=state,
        shim=shim,
        work=tmp_path / "lives",
        platform=platform,
        gateway=gateway,
        rng=random.Random(seed),
        variant=variant,
    )
    return cuts, platform


def cut_figures(cuts: PowerCuts) -> dict[str, object]:
    return {
        "cuts": len(cuts.cuts),
        "cut_moments": dict(Counter(c.mode for c in cuts.cuts)),
        "acknowledged_committed_logged": len(cuts.ack.captured),
        "acknowledged_uploaded_logged": len(cuts.ack.uploaded),
        "received_by_platform": len(cuts.ack.received),
        "acknowledged": len(cuts.ack.seqs()),
        "lost": len(set().union(*(c.lost for c in cuts.cuts))),
        "seqmark_violations": sum(1 for c in cuts.cuts if c.seqmark_behind),
        "restarts_below_a_handed_out_seq": len(cuts.restarts_below),
        "images_with_problems": sum(1 for c in cuts.cuts if c.problems),
        "uploaded_then_pending_again": len(set().union(*(c.marks_lost for c in cuts.cuts))),
        "wal_syncs_seen": sum(c.wal_syncs for c in cuts.cuts),
        "cuts_that_left_no_store": sum(1 for c in cuts.cuts if not c.files.get("meterlink.db")),
    }


def print_cut(cut: Cut) -> None:
    print(
        f"    cut {cut.n:2d} {cut.mode:19s} after {cut.life_seconds:4.1f} s: holds {cut.held:5d}, "
        f"lost {len(cut.lost)}, seqmark {cut.seqmark} vs {cut.handed_out} handed out, {cut.problems or 'ok'}"
    )


def test_a_power_cut_loses_no_acknowledged_reading(
    tmp_path: Path, broker: LocalBroker, sim: SimProcess, powercut_shim: Path
) -> None:
    seed = faultkit.seed_from_env(DEFAULT_SEED)
    print(f"\n[power_cut] seed={seed} (rerun with METERLINK_FAULT_SEED={seed})")
    started = time.monotonic()
    cuts, platform = power_cuts(tmp_path, broker, sim, powercut_shim, "gw-power", None, seed)
    try:
        for n in range(1, CUTS + 1):
            # The first cuts land while the store is being made (then again, if it was not made yet).
            print_cut(cuts.cut_once("opening" if n <= 3 else None))
        # One more life on the last disk: it must go on above every seq handed out, and deliver.
        code, text = cuts.final_life(lambda t: t.count("event=uploaded") >= 2 and "event=captured" in t)
        # Everything the broker acknowledged reaches the platform (a persistent QoS 1 session).
        platform.wait_for(lambda r: cuts.ack.uploaded <= set(r.seqs("gw-power")), 15)
        cuts.ack.received.update({seq: r for (gw, seq), r in platform.received.readings.items() if gw == "gw-power"})
    finally:
        platform.stop()
    final = faultkit.read_store(cuts.state / "meterlink.db")
    figures = {
        "seed": seed,
        **cut_figures(cuts),
        "final_readings": len(final.seqs),
        "platform_conflicts": platform.received.conflicts,
        "platform_rejected": platform.received.rejected,
        "seconds": round(time.monotonic() - started, 1),
    }
    where = faultkit.write_results("power_cut", figures)
    print(f"[power_cut] {json.dumps(figures, sort_keys=True)}")
    print(f"[power_cut] figures written to {where}")

    bad = {c.n: c.problems for c in cuts.cuts if c.problems}
    assert not bad, bad
    lost = {c.n: c.lost[:20] for c in cuts.cuts if c.lost}
    assert not lost, f"acknowledged readings missing after a cut: {lost}"
    behind = {c.n: (c.seqmark, c.handed_out) for c in cuts.cuts if c.seqmark_behind}
    assert not behind, f"seqmark at or below a seq handed out (mark, highest handed out): {behind}"
    assert not cuts.restarts_below, cuts.restarts_below
    # The model saw the store's syncs: the shim really sits between SQLite and the disk.
    wal_syncs = sum(c.wal_syncs for c in cuts.cuts)
    assert wal_syncs > CUTS, "the shim saw (almost) no -wal syncs: is SQLite linked statically?"
    assert len(cuts.ack.captured) >= 20 * CUTS, "too few readings acknowledged for the cuts to mean much"
    assert code == 0, text[-3000:]
    assert final.integrity == "ok"
    assert faultkit.contiguous(final.seqs), "seqs are not 1..N: a store was lost or replaced"
    assert cuts.ack.seqs() <= set(final.seqs)
    assert cuts.ack.uploaded <= set(cuts.ack.received), "PUBACKed readings that never reached the platform"
    assert platform.received.conflicts == 0 and platform.received.rejected == 0
    assert "Traceback" not in text


@pytest.mark.parametrize("variant", ["sync-off", "seqmark-no-fsync"])
def test_the_power_cut_test_notices_an_agent_that_skips_a_sync(
    tmp_path: Path, broker: LocalBroker, sim: SimProcess, powercut_shim: Path, variant: str
) -> None:
    """The same cuts against the agent with one sync removed (test-only launcher): the checks above
    must report lost readings (store not synced) or a seq mark below a handed-out seq."""
    seed = faultkit.seed_from_env(DEFAULT_SEED)
    started = time.monotonic()
    cuts, platform = power_cuts(tmp_path, broker, sim, powercut_shim, f"gw-{variant}", variant, seed)
    try:
        for _ in range(UNSAFE_CUTS):
            cut = cuts.cut_once()
            print_cut(cut)
            if cut.lost or cut.seqmark_behind:
                break
    finally:
        platform.stop()
    detected = next((c for c in cuts.cuts if c.lost or c.seqmark_behind), None)
    figures = {
        "variant": variant,
        "seed": seed,
        **cut_figures(cuts),
        "cuts_to_detect": detected.n if detected else None,
        "readings_lost_at_detection": len(detected.lost) if detected else 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    where = faultkit.write_results(f"power_cut_unsafe_{variant}", figures)
    print(f"\n[power_cut unsafe {variant}] {json.dumps(figures, sort_keys=True)} -> {where}")
    assert detected is not None, f"{UNSAFE_CUTS} cuts did not notice the agent running {variant}"
    if variant == "sync-off":
        assert detected.lost, "the store without fsync lost nothing?"
    else:
        assert detected.seqmark_behind and not detected.lost, detected


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
    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
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
        assert wait_until(
            lambda: (
                watch.has("event=captured")
                and watch.has("event=uploaded")
                and platform.wait_for(lambda r: any(e["kind"] == "store_replaced" for e in r.events), 0)
            ),
            30,
        ), watch.poll()[-3000:]
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
    second_life_batches = got.batches[len(first_life_batches) :]
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
            wait_until(
                lambda w=watch, a=agent: (w.has("event=captured") and w.has("event=uploaded")) or a.poll() is not None,
                30,
            )
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

    figures = {
        "rounds": rounds,
        "conflicts": platform.received.conflicts,
        "seconds": round(time.monotonic() - started, 1),
    }
    where = faultkit.write_results("power_loss_lost_store_killed_in_init", figures)
    print(f"\n[power_loss lost store, killed while making the new one] -> {where}")
    for r in rounds:
        print(f"    {r}")
    bad = [
        r
        for r in rounds
        if r["restart_exit_code"] != 0 or not r["seq_above_every_used"] or not r["store_replaced_event"]
    ]
    assert not bad and platform.received.conflicts == 0, (
        f"{len(bad)} of {len(rounds)} kills while making the new store broke the promise "
        f"(conflicts at the platform: {platform.received.conflicts}): {bad}"
    )
