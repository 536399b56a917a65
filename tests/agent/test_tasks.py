"""Stopping tasks that lose a cancellation: Python 3.11's wait_for drops one that arrives with the
result it waits for, and a poller that lost its cancellation kept the agent from stopping."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.service import Agent
from meterlink.agent.tasks import cancel_and_wait, failures
from meterlink.drivers.modbus.driver import ModbusDriver
from meterlink.sim.meter_model import SimMeter
from meterlink.sim.modbus_server import ModbusSimServer


async def _loses_one_cancellation(started: asyncio.Event) -> str:
    started.set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        pass  # what wait_for does when the awaited result arrives with the cancellation
    await asyncio.sleep(60)
    return "not reached"


def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    async def main() -> asyncio.Task[str]:
        started = asyncio.Event()
        task = asyncio.create_task(_loses_one_cancellation(started))
        await started.wait()
        await asyncio.wait_for(cancel_and_wait([task], every=0.05), 5)
        return task

    assert asyncio.run(main()).cancelled()


def test_the_wait_for_race_itself_is_survived() -> None:
    """The real race: the awaited future completes in the loop turn the task is cancelled in."""

    async def worker(futures: list[asyncio.Future[int]]) -> None:
        while True:
            await asyncio.wait_for(futures[-1], 60)
            futures.append(asyncio.get_running_loop().create_future())

    async def main() -> asyncio.Task[None]:
        futures: list[asyncio.Future[int]] = [asyncio.get_running_loop().create_future()]
        task = asyncio.create_task(worker(futures))
        await asyncio.sleep(0.01)
        futures[-1].set_result(1)
        await asyncio.wait_for(cancel_and_wait([task], every=0.05), 5)
        return task

    assert asyncio.run(main()).cancelled()


def test_results_and_errors_are_left_to_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def main() -> list[asyncio.Task[Any]]:
        tasks = [
            asyncio.create_task(fails()),
            asyncio.create_task(asyncio.sleep(60)),
            asyncio.create_task(asyncio.sleep(0)),
        ]
        await asyncio.sleep(0.01)
        await cancel_and_wait(tasks)
        return tasks

    tasks = asyncio.run(main())
    failed, slept, _ = tasks
    assert slept.cancelled()
    assert [(t, type(e)) for t, e in failures(tasks)] == [(failed, ValueError)]


def test_a_parent_stopped_during_its_own_cleanup_still_stops_its_children() -> None:
    """The agent re-cancels a task that is itself stopping its children: it must finish that first."""

    async def parent(started: asyncio.Event, children: list[asyncio.Task[str]]) -> None:
        child = asyncio.create_task(_loses_one_cancellation(started))
        children.append(child)
        try:
            await asyncio.sleep(60)
        finally:
            await cancel_and_wait([child], every=0.3)

    async def main() -> tuple[bool, bool]:
        started = asyncio.Event()
        children: list[asyncio.Task[str]] = []
        task = asyncio.create_task(parent(started, children))
        await started.wait()
        await asyncio.wait_for(cancel_and_wait([task], every=0.05), 5)
        return task.cancelled(), children[0].done()  # now, before asyncio.run cancels what is left

    assert asyncio.run(main()) == (True, True)


def test_each_task_gets_its_grace_before_it_is_cancelled_again() -> None:
    """A publish awaiting its acknowledgement when the stop comes may finish within the grace, even
    while the parent is re-cancelled far more often."""
    finished: list[str] = []

    async def publish() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.3)  # the PUBACK is on its way
            finished.append("acknowledged")

    async def parent(started: asyncio.Event) -> None:
        child = asyncio.create_task(publish())
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await cancel_and_wait([child], every=2.0)

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(parent(started))
        await started.wait()
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([task], every=0.05), 5)

    asyncio.run(main())
    assert finished == ["acknowledged"]


SITE = """
[gateway]
id = "gw-stop"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 20
retries = 0

[[meters]]
id = "m1"
bus = "tcp"
unit_id = 1
profile = "tuf2000"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"

[clock]
sync_check = "assume_synced"
"""


def stop_agent_during_a_read(tmp_path: Path) -> Agent:
    """Run the agent against one simulated meter, make its next answer 30 s late, and stop the
    agent while that read is in flight. Returns the stopped agent; raises what its run raised."""

    async def main() -> Agent:
        sim = ModbusSimServer({1: SimMeter("tuf2000", 1, seed=1)})
        port = await sim.start_tcp()
        agent = Agent(cfgmod.load(write_site(tmp_path / "site", SITE.format(port=port))), backoff_max=0.5)
        task = asyncio.create_task(agent.run())
        await asyncio.sleep(2.2)
        sim.meters[1].slow_answer_s = 30  # the next read is in flight when the agent stops
        sim.meters[1].set_fault("slow_answer")
        await asyncio.sleep(1.2)
        agent.stop()
        try:
            await asyncio.wait_for(task, 10)
        finally:
            await sim.stop()
        return agent

    return asyncio.run(main())


@pytest.mark.slow
def test_the_agent_stops_when_a_poll_lost_its_cancellation(tmp_path: Path, mocker: Any) -> None:
    """A meter read that swallows the shutdown's cancellation (as pymodbus's wait_for can) must not
    keep the agent running: it stops, and what was polled is in the store."""
    real_read = ModbusDriver.read
    lost: list[bool] = []

    async def read_losing_one_cancellation(self: ModbusDriver, *args: Any, **kwargs: Any) -> Any:
        try:
            return await real_read(self, *args, **kwargs)
        except asyncio.CancelledError:
            if lost:
                raise
            lost.append(True)
            return []

    mocker.patch.object(ModbusDriver, "read", read_losing_one_cancellation)
    agent = stop_agent_during_a_read(tmp_path)
    assert lost, "the shutdown did not find a read in flight"
    assert agent.parts is not None and agent.parts.store.next_seq > 1


@pytest.mark.slow
def test_a_task_failing_while_the_agent_stops_is_not_quiet(
    tmp_path: Path, mocker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An error raised by a task as it is stopped is logged and ends the run with that error."""
    real_read = ModbusDriver.read

    async def read_failing_when_cancelled(self: ModbusDriver, *args: Any, **kwargs: Any) -> Any:
        try:
            return await real_read(self, *args, **kwargs)
        except asyncio.CancelledError:
            raise OSError("the bus adapter vanished") from None

    caplog.set_level(logging.INFO, logger="meterlink")
    mocker.patch.object(ModbusDriver, "read", read_failing_when_cancelled)
    with pytest.raises(OSError, match="vanished"):
        stop_agent_during_a_read(tmp_path)
    assert "event=task_failed_at_stop task=meterlink.poll.tcp" in caplog.text
    assert "event=agent_stopped" in caplog.text  # after closing everything, not instead of it
