"""Fault switches, shared by the simulated Modbus and SZY206 meters."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from typing import Generic, TypeVar

E = TypeVar("E", bound=Enum)


class FaultSwitches(Generic[E]):
    """Fault switches of a simulated meter: several can be on at once, and each is counted when it acts.

    The meter gives its fault enum, integrates its totals up to now before a switch (``update``), and
    restarts them when ``totalizer_reset`` goes on (``restart_totals``).
    """

    _faults: set[E]
    faults_applied: Counter[E]

    def _fault_kind(self) -> type[E]:
        raise NotImplementedError

    def update(self) -> None:
        raise NotImplementedError

    def restart_totals(self) -> None:
        raise NotImplementedError

    @property
    def faults(self) -> frozenset[E]:
        return frozenset(self._faults)

    def set_fault(self, fault: E | str, on: bool = True) -> None:
        """Switch one fault on or off. ``totalizer_reset`` zeroes the totals each time it goes on.

        Raises:
            ValueError: an unknown fault name.
        """
        switch = self._fault_kind()(fault)
        self.update()  # integrate up to now under the old faults
        if on and switch.value == "totalizer_reset" and switch not in self._faults:
            self.restart_totals()
            self.faults_applied[switch] += 1
        if on:
            self._faults.add(switch)
        else:
            self._faults.discard(switch)

    def clear_faults(self) -> None:
        """Switch every fault off."""
        for fault in list(self._faults):
            self.set_fault(fault, False)
