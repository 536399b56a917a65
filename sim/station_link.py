"""One terminal connection of the simulated central station: its conversation, its waiting queries.

Each TCP connection carries one :class:`~meterlink.protocols.szy206.Conversation` in the centre's
role: it reassembles what the terminal sends (sticky, split and garbled segments survived and
counted), tells reports, link checks and answers apart, and builds confirms. The station times
its queries itself (``asyncio.timeout``), so requests have no deadline here: the only thing the
conversation's clock does is give up a partial frame after the link went idle.

Answers are handed to the queries waiting for their (address, AFN), every one of them: a B1H
query collects several answer frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from meterlink.drivers.szy206.pump import loop_ms
from meterlink.protocols.szy206 import Address, Conversation, Frame, Role, encode


class StationConnection:
    """A terminal's TCP connection to the station.

    Args:
        reader: the connection's stream.
        writer: its writer.
        peer: ``host:port`` of the terminal, for records and logs.
        tp_len: Tp length of the terminal's frames, None to infer it per frame.
        confirm_mode: work-mode byte of the station's confirms, None for none.
        resync_after_s: idle seconds after which a partial frame is given up.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        *,
        tp_len: int | None,
        confirm_mode: int | None,
        resync_after_s: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.conversation = Conversation(
            Role.CENTRE,
            tries=1,
            resync_after_ms=max(1, round(resync_after_s * 1000)),
            tp_len=tp_len,
            confirm_work_mode=confirm_mode,
        )
        self.addresses: set[Address] = set()
        self.closed = False
        self._waiters: dict[tuple[Address, int], list[asyncio.Queue[Frame | None]]] = {}
        self._locks: dict[Address, asyncio.Lock] = {}

    async def read(self, size: int) -> bytes | None:
        """Bytes from the terminal (``b""``: it closed), or None when the conversation had
        something to do first (an idle partial frame given up: read its events)."""
        conversation = self.conversation
        deadline = conversation.next_deadline()
        if deadline is None:
            return await self.reader.read(size)
        try:
            async with asyncio.timeout_at(deadline / 1000):
                return await self.reader.read(size)
        except TimeoutError:
            conversation.tick(max(loop_ms(), deadline))
            return None

    def lock(self, address: Address) -> asyncio.Lock:
        """One query at a time per terminal: answers carry no sequence number to match them by."""
        return self._locks.setdefault(address, asyncio.Lock())

    @contextlib.contextmanager
    def waiting(self, address: Address, afn: int) -> Iterator[asyncio.Queue[Frame | None]]:
        """A queue that receives this terminal's uplink frames of ``afn`` (None: connection closed)."""
        queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        queues = self._waiters.setdefault((address, afn), [])
        queues.append(queue)
        try:
            yield queue
        finally:
            queues.remove(queue)
            if not queues:
                del self._waiters[(address, afn)]

    def hand_over(self, frame: Frame) -> bool:
        """Give an uplink answer to the queries waiting for it; True when one was."""
        queues = self._waiters.get((frame.address, frame.afn), [])
        for queue in queues:
            queue.put_nowait(frame)
        return bool(queues)

    def write(self, frame: Frame) -> None:
        """Write one frame.

        Raises:
            ConnectionError: the connection is closed or closing.
        """
        if self.closed or self.writer.is_closing():
            raise ConnectionError(f"connection to {self.peer} is closed")
        self.writer.write(encode(frame))

    def close(self) -> None:
        """Close the connection; the queries waiting on it get None."""
        self.closed = True
        self.writer.close()
        for queues in self._waiters.values():
            for queue in queues:
                queue.put_nowait(None)
