"""The uplink contract both uplinks keep: ``deliver`` returns once the far side confirmed, else raises."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from meterlink.agent.config import Szy206UplinkConfig
from meterlink.agent.latest import LatestValues
from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store
from meterlink.agent.uplinks.base import NotConnected, Publication, Uplink
from meterlink.agent.uplinks.mqtt import MqttLink, MqttSettings
from meterlink.agent.uplinks.szy206 import SiteTerminal, SlotReport


async def _no_event(kind: str, detail: dict[str, Any]) -> None:
    return None


def test_neither_uplink_delivers_without_a_connection(tmp_path: Path) -> None:
    """Nothing is handed over while not connected: NotConnected, and the report slot is not touched."""

    async def main() -> None:
        outbox = Outbox(Store(tmp_path / "s.db", "gw"))
        cfg = Szy206UplinkConfig(host="127.0.0.1", port=1, division="430100", station=7)
        terminal = SiteTerminal(cfg, {1: "m1"}, outbox, LatestValues(), _no_event)
        link = MqttLink(MqttSettings(host="127.0.0.1", port=1, client_id="c", status_topic="t/status"))
        uplinks: list[Uplink[Any]] = [link, terminal]
        try:
            assert not any(u.connected.is_set() for u in uplinks)
            with pytest.raises(NotConnected):
                await link.deliver(Publication("t/gw/readings", b"x", timeout=0.5))
            await outbox.keep_report(60_000, b"\x01", 1)
            with pytest.raises(NotConnected):
                await terminal.deliver(SlotReport(60_000, b"\x01", live=False))
            attempts = await outbox.with_store(
                lambda store: store.db.execute("SELECT attempts FROM szy206_reports").fetchone()[0]
            )
            assert attempts == 0
            assert await outbox.unconfirmed_reports(10) == [(60_000, b"\x01")]
        finally:
            await outbox.close()

    asyncio.run(main())
