"""Stopping tasks that lose a cancellation: Python 3.11's wait_for drops one that arrives with the
result it waits for, and a poller that lost its cancellation kept the agent from stopping."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.service import Agent
from meterlink.agent.tasks import cancel_and_wait
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
        tasks = [asyncio.create_task(fails()), asyncio.create_task(asyncio.sleep(60))]
        await asyncio.sleep(0)
        await cancel_and_wait(tasks)
        return tasks

    failed, slept = asyncio.run(main())
    assert isinstance(failed.exception(), ValueError)
    assert slept.cancelled()


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
        await asyncio.wait_for(task, 10)
        await sim.stop()
        return agent

    mocker.patch.object(ModbusDriver, "read", read_losing_one_cancellation)
    agent = asyncio.run(main())
    assert lost, "the shutdown did not find a read in flight"
    assert agent.parts is not None and agent.parts.store.next_seq > 1
