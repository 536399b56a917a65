"""The built-in meter profiles, one JSON file each; read through ``meterlink.drivers.modbus.profiles``."""
