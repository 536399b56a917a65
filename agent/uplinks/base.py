"""What an uplink promises: ``deliver`` returns only when the far side confirmed, else it raises.

Both uplinks keep it: the MQTT link delivers a signed message (:class:`Publication`), the SZY206
site terminal one report slot's self-report. Neither queues anything: the store is the only queue,
and what was not confirmed stays pending there. Also how every uplink stays connected:
:func:`keep_connected`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

# A connection that ends sooner than this after it was made counts as a failed attempt: a far side
# that accepts and hangs up at once, or a second gateway with our MQTT client id, is not hammered.
STABLE_AFTER_S = 10.0


class UplinkError(Exception):
    """Root of delivery failures. The readings stay pending in the store and go out again."""


class NotConnected(UplinkError):
    """There is no connection to the far side right now: nothing was handed over."""


class Rejected(UplinkError):
    """The far side answered, and said no (an MQTT 5 reason code >= 0x80, a negative confirm)."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(f"rejected: {reason} (0x{code:02X})")
        self.reason = reason
        self.code = code


class TimedOut(UplinkError):
    """No confirmation within the time allowed: counted as a failure, never as a success."""


class ConnectFailed(UplinkError):
    """One connection attempt failed (refused, DNS, TLS verification, bad credentials)."""


Item = TypeVar("Item", contravariant=True)


class Uplink(Protocol[Item]):
    """A far side the agent hands what it stored to, over a connection :meth:`run` keeps up."""

    @property
    def connected(self) -> asyncio.Event:
        """Set while the far side can be delivered to."""
        ...

    async def run(self) -> None:
        """Connect, stay connected, reconnect after every loss, until cancelled."""

    async def deliver(self, item: Item) -> None:
        """Return once the far side confirmed ``item``; else raise :class:`UplinkError`."""

    async def close(self) -> None:
        """Say goodbye to the far side and drop the connection."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One signed message for the MQTT uplink, acknowledged within ``timeout`` seconds or failed."""

    topic: str
    payload: bytes
    retain: bool = False
    timeout: float = 10.0


async def keep_connected(
    connect: Callable[[], Awaitable[Any]],
    serve: Callable[[Any], Awaitable[None]],
    *,
    backoff_max: float,
    on_retry: Callable[[Any], None],
    closing: Callable[[], bool],
) -> None:
    """``connect`` then ``serve`` (until the link is lost), forever, until ``closing()``.

    Failed attempts, and connections lost within :data:`STABLE_AFTER_S`, are retried after a full-jitter
    exponential backoff up to ``backoff_max`` seconds (tenacity); ``on_retry`` logs each, before the wait.
    A connection that stayed up longer resets the backoff: the next attempt is immediate.
    """

    async def session() -> None:
        link = await connect()
        since = time.monotonic()
        await serve(link)
        lasted = time.monotonic() - since
        if not closing() and lasted < STABLE_AFTER_S:
            raise ConnectFailed(f"connection lost {lasted:.1f} s after it was made")

    while not closing():
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(ConnectFailed),
            wait=wait_random_exponential(multiplier=0.5, max=backoff_max),
            # Retry until closed. Checked after every failed attempt too: a cancellation can be lost
            # in asyncio.wait_for (Python 3.11) and would otherwise leave the retries going for ever.
            stop=lambda _: closing(),
            before_sleep=on_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await session()
        except ConnectFailed:
            if not closing():
                raise
