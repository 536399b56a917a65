"""Read planning: the fewest Modbus requests that cover a meter's registers.

A meter's map is a set of register spans (address, count) per function code. Spans that touch or
overlap are merged into one request as long as the request stays within the protocol's limit of
125 registers for function codes 03 and 04 (Modbus Application Protocol v1.1b3, 6.3 and 6.4).
Gaps are not bridged unless the caller allows it: many meters answer a read that covers an
unmapped register with exception 02 (illegal data address).

Sorting by start and extending the current request greedily is optimal for interval covering with
a length cap, so the result has the fewest requests. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_REGISTERS_PER_READ = 125


@dataclass(frozen=True, slots=True)
class Span:
    """Registers a value needs: ``count`` registers from wire address ``address``."""

    function: int
    address: int
    count: int

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One request on the wire: function code 3 or 4, start address, register count."""

    function: int
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def covers(self, span: Span) -> bool:
        return span.function == self.function and self.address <= span.address and span.end <= self.end


def plan_reads(
    spans: Iterable[Span], *, max_count: int = MAX_REGISTERS_PER_READ, max_gap: int = 0
) -> list[ReadRequest]:
    """Merge spans into the fewest requests of at most ``max_count`` registers.

    Args:
        spans: the registers each value needs; duplicates and overlaps are fine.
        max_count: the per-request register limit (125 for FC03/FC04).
        max_gap: unmapped registers that may be read to join two spans (0 = only touching spans).

    Raises:
        ValueError: a span longer than ``max_count``, or outside the 16-bit address space.
    """
    if not 1 <= max_count <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"max_count must be 1..{MAX_REGISTERS_PER_READ}")
    requests: list[ReadRequest] = []
    ordered = sorted(set(spans), key=lambda s: (s.function, s.address, s.count))
    current: ReadRequest | None = None
    for span in ordered:
        if span.count < 1 or span.count > max_count:
            raise ValueError(f"span of {span.count} registers at {span.address} cannot be read in one request")
        if span.address < 0 or span.end > 0x10000:
            raise ValueError(f"span at {span.address} is outside the 16-bit register space")
        if (
            current is not None
            and span.function == current.function
            and span.address <= current.end + max_gap
            and max(current.end, span.end) - current.address <= max_count
        ):
            current = ReadRequest(current.function, current.address, max(current.end, span.end) - current.address)
            continue
        if current is not None:
            requests.append(current)
        current = ReadRequest(span.function, span.address, span.count)
    if current is not None:
        requests.append(current)
    return requests
