"""The driver registry: a bus's protocol chooses the factory of its driver and meters."""

from __future__ import annotations

from typing import get_args

from meterlink.agent.buses import DRIVERS, build_bus
from meterlink.agent.config import ModbusMeterConfig, SerialBusConfig, Szy206MeterConfig, TcpBusConfig
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.szy206 import Szy206Driver, Szy206Meter


def test_every_protocol_a_bus_may_speak_has_a_driver() -> None:
    for model in (SerialBusConfig, TcpBusConfig):
        assert set(get_args(model.model_fields["protocol"].annotation)) == set(DRIVERS)


def test_the_bus_protocol_chooses_the_driver_and_its_meters() -> None:
    modbus = TcpBusConfig(type="tcp", host="127.0.0.1", port=5020)
    built = build_bus("tcp1", modbus, [ModbusMeterConfig(id="m1", bus="tcp1", unit_id=3, profile="tuf2000")])
    assert isinstance(built.driver, ModbusDriver)
    [(mc, meter)] = built.meters
    assert mc.id == "m1" and isinstance(meter, ModbusMeter) and meter.unit_id == 3 and meter.requests

    szy = TcpBusConfig(type="tcp", host="127.0.0.1", port=5021, protocol="szy206")
    driver, meters = build_bus("szy", szy, [Szy206MeterConfig(id="w1", bus="szy", address="430100:7", pairs=2)])
    assert isinstance(driver, Szy206Driver)
    [(_, smeter)] = meters
    assert isinstance(smeter, Szy206Meter) and smeter.address.station == 7 and smeter.pairs == 2
