"""keep_connected: a link lost right after it was made backs off like a failed attempt; a stable one does not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meterlink.agent.uplinks import base
from meterlink.agent.uplinks.base import ConnectFailed, keep_connected


def sessions(*, retries_to_stop: int = 0, sessions_to_stop: int = 0, refuse_first: int = 0) -> dict[str, Any]:
    """Run keep_connected against a far side that hangs up at once; returns what happened."""
    seen: dict[str, Any] = {"connects": 0, "serves": 0, "attempts": [], "errors": [], "closing": False}

    async def connect() -> str:
        seen["connects"] += 1
        if seen["connects"] <= refuse_first:
            raise ConnectFailed("refused")
        return "link"

    async def serve(link: str) -> None:
        assert link == "link"
        seen["serves"] += 1
        if sessions_to_stop and seen["serves"] >= sessions_to_stop:
            seen["closing"] = True

    def on_retry(state: Any) -> None:
        seen["attempts"].append(state.attempt_number)
        seen["errors"].append(str(state.outcome.exception()))
        if retries_to_stop and len(seen["attempts"]) >= retries_to_stop:
            seen["closing"] = True

    async def main() -> None:
        await asyncio.wait_for(
            keep_connected(connect, serve, backoff_max=0.01, on_retry=on_retry, closing=lambda: seen["closing"]), 10
        )

    asyncio.run(main())
    return seen


def test_a_link_lost_at_once_backs_off_and_the_backoff_keeps_growing() -> None:
    seen = sessions(retries_to_stop=5)
    assert seen["attempts"] == [1, 2, 3, 4, 5]  # one backoff, never reset by the short-lived connections
    assert all("connection lost" in e and "after it was made" in e for e in seen["errors"])


def test_failed_attempts_and_short_lived_links_share_one_backoff() -> None:
    seen = sessions(retries_to_stop=4, refuse_first=2)
    assert seen["attempts"] == [1, 2, 3, 4]
    assert seen["errors"][:2] == ["refused", "refused"] and "connection lost" in seen["errors"][2]


def test_a_link_that_stayed_up_reconnects_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "STABLE_AFTER_S", 0.0)  # every session counts as long-lived
    seen = sessions(sessions_to_stop=5)
    assert seen["serves"] == 5 and seen["attempts"] == []


def test_closing_ends_the_retries_even_while_every_attempt_fails() -> None:
    """close() while the far side keeps refusing: keep_connected returns by itself, no cancellation
    needed (one can be lost in asyncio.wait_for on Python 3.11)."""
    seen = sessions(retries_to_stop=3, refuse_first=100)
    assert seen["attempts"] == [1, 2, 3] and seen["connects"] == 4
