"""Broken configs through `meterlink check-config FILE`: exit 1, no traceback, `path.to.key: reason`.

Each case is a small mutation of the valid base config (tests/support/configs.py). They extend
tests/agent/test_config.py, which already covers 24+ kinds in-process; these run the real command
as a process, because what a technician sees is its exit code and its stderr.

All processes start at once from a module fixture (each is ~0.5 s of interpreter start-up), and
every case then checks its own result, so the file takes a few seconds rather than a minute.

Cases with ``bug=...`` name a product bug this file found (a comment above each says where it was):
they assert the right behaviour, so they fail if it comes back.

"A config check-config passes starts": every config here that check-config passes (the ACCEPTED
ones, with a warning at most) then runs as ``meterlink run`` for a few seconds, and every config it
refuses over a file, a folder or a port is refused by ``run`` too, with the same lines.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.configs import BASE, write_site
from support.procs import METERLINK
from support.runs import ABSENT_DEVICE, CLOSED_BROKER, Ran, quiet_env, run_briefly

# --- building the mutations ----------------------------------------------------------------------


def rep(old: str, new: str, text: str = BASE) -> str:
    """``text`` with the first ``old`` replaced; refuses a no-op (a base that changed under us)."""
    assert old in text, f"{old!r} is no longer in the base config"
    return text.replace(old, new, 1)


def under(anchor: str, *lines: str, text: str = BASE) -> str:
    """Lines added right after the line ``anchor`` (a table header or a key line)."""
    return rep(anchor + "\n", anchor + "\n" + "".join(f"{line}\n" for line in lines), text)


def m1(*lines: str) -> str:
    return under('id = "m1"', *lines)


def m2(*lines: str) -> str:
    return under('id = "m2"', *lines)


def tcp(*lines: str) -> str:
    return under("[buses.tcp1]", *lines)


def serial(*lines: str) -> str:
    return under("[buses.line1]", *lines)


def mqtt(*lines: str, text: str = BASE) -> str:
    return under("[uplink.mqtt]", *lines, text=text)


def store(*lines: str) -> str:
    return under("[store]", *lines)


def store_at(path: str) -> str:
    return rep('path = "state/meterlink.db"', f'path = "{path}"')


def without(*chunks: str) -> str:
    text: str = BASE
    for chunk in chunks:
        text = rep(chunk, "", text)
    return text


def inline(*registers: str, numbering: str = "wire") -> str:
    """Meter m2 with an inline map instead of its profile (m2 is the last meter in the file)."""
    head = f'numbering = "{numbering}"\n' if numbering else ""
    return rep('profile = "emf_generic"\n', head + "\n" + "\n".join(registers))


def reg(quantity: str = "flow_rate", address: int = 0, dtype: str = "float32", *extra: str) -> str:
    lines = [f'quantity = "{quantity}"', 'unit = "m3/h"', f"address = {address}", f'type = "{dtype}"', *extra]
    return "[[meters.registers]]\n" + "".join(f"{line}\n" for line in lines)


SZY206 = '[uplink.szy206]\nhost = "10.0.0.5"\nport = 5005\ndivision = "430100"\nstation = 7\n'
WITH_POSITION = m1("szy206_position = 1")


def szy206(*lines: str, drop: str = "") -> str:
    """An SZY206 uplink (meter m1 at position 1) plus ``lines``; ``drop`` removes a line of it."""
    section = SZY206 + "".join(f"{line}\n" for line in lines)
    if drop:
        section = rep(drop + "\n", "", section)
    return WITH_POSITION + "\n" + section


MQTTS = ('broker = "mqtt://127.0.0.1:1883"', 'broker = "mqtts://broker.example:8883"')
UNSET_ENV = "METERLINK_TEST_SURELY_UNSET_PW"


# --- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``text``: the file's content (str, or bytes written as is). ``setup`` prepares the folder and
    may return another path to check (a directory, a symlink). ``path`` is the exact text before
    ": " on the expected line ("{file}" stands for the config file); ``says`` must be in the reason.
    ``bug``: this case shows a product bug (see the comment where it is listed)."""

    name: str
    text: str | bytes
    path: str
    says: str
    setup: Callable[[Path], Path | None] | None = None
    bug: str = ""


def _mkdir(rel: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / rel).mkdir(parents=True, exist_ok=True)

    return make


def _write(rel: str, content: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / rel).write_text(content)

    return write


def _write_bytes(rel: str, content: bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / rel).write_bytes(content)

    return write


def _chmod(rel: str, mode: int) -> Callable[[Path], None]:
    def chmod(folder: Path) -> None:
        (folder / rel).chmod(mode)

    return chmod


def _config_is_a_directory(folder: Path) -> Path:
    target = folder / "site.toml"
    target.mkdir()
    return target


def _config_is_a_symlink_loop(folder: Path) -> Path:
    target = folder / "loop.toml"
    target.symlink_to(folder / "loop.toml")
    return target


INT = "Input should be a valid integer"
NUM = "Input should be a valid number"
STR = "Input should be a valid string"
UNKNOWN = "unknown key"
MISSING = "required, missing"
GE = "greater than or equal to"
LE = "less than or equal to"
PATTERN = "String should match pattern"

CASES: list[Case] = [
    # -- wrong types -----------------------------------------------------------------------------
    Case(
        "table given as a string",
        rep('[gateway]\nid = "gw-test"\npoll_interval = 60\n', 'gateway = "gw-test"\n'),
        "gateway",
        "valid dictionary",
    ),
    Case(
        "buses given as a list",
        'buses = ["line1", "tcp1"]\n'
        + without(
            '[buses.line1]\ntype = "serial"\ndevice = "/dev/null"\nbaudrate = 9600\n',
            '[buses.tcp1]\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5020\n',
        ),
        "buses",
        "valid dictionary",
    ),
    Case("string for an int (retries)", tcp('retries = "two"'), "buses.tcp1.retries", INT),
    Case("int for a string (device)", rep('device = "/dev/null"', "device = 0"), "buses.line1.device", STR),
    Case("bool for a string (profile)", rep('profile = "tuf2000"', "profile = true"), "meters[m1].profile", STR),
    Case(
        "float with a fraction for an int",
        rep("poll_interval = 60", "poll_interval = 60.5"),
        "gateway.poll_interval",
        INT,
    ),
    # TOML values carry their type, so nothing is coerced: "3" or true where a count belongs is a
    # mistake to show, not a value to guess.
    Case("bool for an int (retries = true)", tcp("retries = true"), "buses.tcp1.retries", INT),
    Case("float for an int (unit_id = 1.0)", rep("unit_id = 1", "unit_id = 1.0"), "meters[m1].unit_id", INT),
    Case("digits in a string for an int", tcp('retries = "3"'), "buses.tcp1.retries", INT),
    Case("number in a string for a float", tcp('timeout = "1.5"'), "buses.tcp1.timeout", NUM),
    Case("string true for a bool", m1('enabled = "true"'), "meters[m1].enabled", "valid boolean"),
    Case("1 for a bool", m1("enabled = 1"), "meters[m1].enabled", "valid boolean"),
    Case("number for a table (meter scale)", m1("scale = 2"), "meters[m1].scale", "valid dictionary"),
    Case("word for a bool (enabled)", m1('enabled = "maybe"'), "meters[m1].enabled", "valid boolean"),
    Case("int for a string literal (mqtt protocol 5)", mqtt("protocol = 5"), "uplink.mqtt.protocol", "'5' or '3.1.1'"),
    # -- unknown keys at every level -------------------------------------------------------------
    Case("unknown top-level table", BASE + '\n[gatway]\nid = "x"\n', "gatway", UNKNOWN),
    Case("unknown key in a serial bus", serial("baud = 19200"), "buses.line1.baud", UNKNOWN),
    Case("unknown key in a meter", m1("unit = 3"), "meters[m1].unit", UNKNOWN),
    Case(
        "unknown key in a register",
        inline(reg("flow_rate", 0, "float32", "signed = true")),
        "meters[m2].registers[#1].signed",
        UNKNOWN,
    ),
    Case("unknown key in store", store("max_size_mb = 64"), "store.max_size_mb", UNKNOWN),
    Case(
        "misspelt signing key",
        rep('key = "keys/gateway.key"', 'key_file = "keys/gateway.key"'),
        "signing.key_file",
        UNKNOWN,
    ),
    Case(
        "password written in the file", mqtt('username = "gw"', 'password = "hunter2"'), "uplink.mqtt.password", UNKNOWN
    ),
    Case("unknown key in uplink.szy206", szy206('address = "430100-7"'), "uplink.szy206.address", UNKNOWN),
    Case("unknown key in clock", BASE + "\n[clock]\nntp = true\n", "clock.ntp", UNKNOWN),
    Case("unknown key in log", BASE + '\n[log]\nfile = "/var/log/meterlink.log"\n', "log.file", UNKNOWN),
    # -- missing sections and keys ---------------------------------------------------------------
    Case("no [gateway]", without('[gateway]\nid = "gw-test"\npoll_interval = 60\n'), "gateway", MISSING),
    Case(
        "no [buses]",
        without(
            '[buses.line1]\ntype = "serial"\ndevice = "/dev/null"\nbaudrate = 9600\n',
            '[buses.tcp1]\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5020\n',
        ),
        "meters[m1].bus",
        "no bus named 'line1' (there are no [buses]",
    ),
    Case(
        "no [[meters]]",
        without(
            '[[meters]]\nid = "m1"\nbus = "line1"\nunit_id = 1\nprofile = "tuf2000"\n',
            '[[meters]]\nid = "m2"\nbus = "tcp1"\nunit_id = 1\nprofile = "emf_generic"\n',
        ),
        "meters",
        MISSING,
    ),
    Case("no [uplink] at all", without('[uplink.mqtt]\nbroker = "mqtt://127.0.0.1:1883"\n'), "uplink", MISSING),
    Case("meter without id", without('id = "m2"\n'), "meters[#2].id", MISSING),
    # -- serial and tcp buses --------------------------------------------------------------------
    Case(
        "baud rate 250000",
        rep("baudrate = 9600", "baudrate = 250000"),
        "buses.line1.baudrate",
        "not a standard baud rate",
    ),
    Case("parity in lower case", serial('parity = "e"'), "buses.line1.parity", "'N', 'E' or 'O'"),
    Case("stopbits 1.5", serial("stopbits = 1.5"), "buses.line1.stopbits", "1 or 2"),
    Case("bytesize 9", serial("bytesize = 9"), "buses.line1.bytesize", "7 or 8"),
    Case("timeout 0", tcp("timeout = 0"), "buses.tcp1.timeout", "greater than 0"),
    Case("timeout absurd (3600 s)", tcp("timeout = 3600"), "buses.tcp1.timeout", LE),
    Case("retries 6", serial("retries = 6"), "buses.line1.retries", LE),
    Case("tcp port 0", rep("port = 5020", "port = 0"), "buses.tcp1.port", GE),
    Case("tcp port 65536", rep("port = 5020", "port = 65536"), "buses.tcp1.port", LE),
    Case("tcp port as a name", rep("port = 5020", 'port = "modbus"'), "buses.tcp1.port", INT),
    Case(
        "bus name with a space",
        rep("[buses.tcp1]", '[buses."tcp 1"]').replace('bus = "tcp1"', 'bus = "tcp 1"'),
        "buses.tcp 1.[key]",
        PATTERN,
    ),
    # -- meters ----------------------------------------------------------------------------------
    Case(
        "duplicate meter ids on different buses",
        rep('id = "m2"', 'id = "m1"'),
        "meters[m1].id",
        "twice",
        # Was a bug (agent/config.py Config._cross_references): the line is "meter id 'm1' is used twice", the
        # only cross-reference error that names no key (compare "meters[m3].unit_id: 1 is already used
        # by m1"); every check-config line is documented as `path.to.key: reason`.
        bug="duplicate meter id: the line names no key",
    ),
    Case(
        "duplicate unit ids on one serial bus",
        rep("[store]", '[[meters]]\nid = "m3"\nbus = "line1"\nunit_id = 1\nprofile = "mfe600h"\n\n[store]'),
        "meters[m3].unit_id",
        "1 is already used by m1 on bus line1",
    ),
    # Was a bug (agent/config.py Config._cross_references): unit ids were unique on serial buses only, so
    # two meters on one TCP bus read one device and stored its values twice under two names.
    Case(
        "duplicate unit ids on one tcp bus",
        rep("[store]", '[[meters]]\nid = "m3"\nbus = "tcp1"\nunit_id = 1\nprofile = "mfe600h"\n\n[store]'),
        "meters[m3].unit_id",
        "1 is already used by m2 on bus tcp1",
        bug="unit ids unique on serial buses only",
    ),
    # Was a bug (same place): a second bus on one serial device passed, and never opened under run.
    Case(
        "two buses on one serial device",
        rep(
            "[[meters]]",
            '[buses.line2]\ntype = "serial"\ndevice = "/dev/null"\n\n[[meters]]\nid = "m3"\n'
            'bus = "line2"\nunit_id = 2\nprofile = "mfe600h"\n\n[[meters]]',
        ),
        "buses.line2.device",
        "is already the device of bus line1",
        bug="two buses on one serial device",
    ),
    Case(
        "unit id 0 on a serial bus",
        rep('unit_id = 1\nprofile = "tuf2000"', 'unit_id = 0\nprofile = "tuf2000"'),
        "meters[m1].unit_id",
        "0 is not a serial unit id (1..247)",
    ),
    Case("meter id with a space", rep('id = "m1"', 'id = "well 1"'), "meters[well 1].id", PATTERN),
    Case(
        "profile plus an inline map",
        rep(
            'profile = "emf_generic"\n',
            'profile = "emf_generic"\nnumbering = "wire"\n' + reg("flow_rate", 0, "float32"),
        ),
        "meters[m2]",
        "not both",
    ),
    Case(
        "scale naming an unknown quantity",
        m1("scale = { flow = 2.0 }"),
        "meters[m1]",
        "scale names quantities this meter does not read: flow",
    ),
    # -- inline register maps --------------------------------------------------------------------
    Case(
        "a fraction part overlapping another value",
        inline(
            reg("flow_rate", 0, "float32"),
            reg("volume_total", 4, "uint32", 'fraction = { address = 1, type = "float32" }'),
        ),
        "meters[m2]",
        "overlaps flow_rate at wire address 1",
    ),
    Case(
        "fraction part on a float",
        inline(reg("volume_total", 0, "float32", 'fraction = { address = 2, type = "float32" }')),
        "meters[m2].registers[#1]",
        "fraction/high parts go with an integer type",
    ),
    Case(
        "manual numbering, address 0",
        inline(reg("flow_rate", 0, "float32"), numbering="manual"),
        "meters[m2]",
        "manual register numbers start at 1, got 0",
    ),
    Case(
        "decimals register 65536",
        inline(reg("level", 0, "int16", "decimals_register = 65536")),
        "meters[m2].registers[#1].decimals_register",
        LE,
    ),
    Case(
        "scale 0",
        inline(reg("flow_rate", 0, "float32", "scale = 0")),
        "meters[m2].registers[#1]",
        "scale must not be 0",
    ),
    Case("quantity with a space", inline(reg("flow rate", 0, "float32")), "meters[m2].registers[#1].quantity", PATTERN),
    Case(
        "quantity in upper case", inline(reg("Flow_Rate", 0, "float32")), "meters[m2].registers[#1].quantity", PATTERN
    ),
    Case(
        "unknown register type",
        inline(reg("flow_rate", 0, "float16")),
        "meters[m2].registers[#1].type",
        "'uint16', 'int16', 'uint32', 'int32', 'float32' or 'float64'",
    ),
    Case(
        "value running past register 65535",
        inline(reg("flow_rate", 65533, "float64")),
        "meters[m2]",
        "flow_rate: registers run past address 65535",
    ),
    Case(
        "the same quantity twice",
        inline(reg("flow_rate", 0, "float32"), reg("flow_rate", 10, "float32")),
        "meters[m2]",
        "quantity 'flow_rate' appears twice",
    ),
    Case(
        "an empty inline map",
        rep('profile = "emf_generic"', 'numbering = "wire"\nregisters = []'),
        "meters[m2].registers",
        "at least 1 item",
        # Was a bug (agent/config.py MeterConfig._profile_or_map): RegisterMap's errors are flattened onto the
        # meter, so the line is "meters[m2]: List should have at least 1 item after validation, not 0",
        # which does not say which list (registers).
        bug="empty registers list: the line does not name registers",
    ),
    # A NaN or infinite scale/offset makes every reading of that value fail at run time
    # ("flow_rate decodes to nan"): a meter that never reports, which is what config errors prevent.
    # Was a bug (agent/config.py via drivers/modbus/registermap.py RegisterSpec: scale/offset/multiplier
    # accepted nan and inf): these cases fail if finite values stop being required.
    Case(
        "scale nan",
        inline(reg("flow_rate", 0, "float32", "scale = nan")),
        "meters[m2].registers[#1].scale",
        "finite",
        bug="RegisterSpec.scale accepts nan",
    ),
    Case(
        "per-meter scale nan",
        m1("scale = { flow_rate = nan }"),
        "meters[m1].scale.flow_rate",
        "finite",
        bug="MeterConfig.scale values accept nan",
    ),
    # -- store -----------------------------------------------------------------------------------
    Case("store capacity 0", store("capacity_mb = 0"), "store.capacity_mb", GE),
    Case("store overflow unknown", store('overflow = "block"'), "store.overflow", "'drop_oldest' or 'refuse'"),
    Case("retention 4000 days", store("retention_days = 4000"), "store.retention_days", LE),
    # Were bugs (agent/preflight.py): check-config passed these, then run ended in "unexpected error",
    # exit 70 (a store path without a file name, a folder that cannot be made), or took the file for a
    # corrupt store, renamed it *.corrupt-<stamp> and wrote a database in its place (the key, the config).
    Case(
        "store path is the root folder",
        store_at("/"),
        "store.path",
        "/ is a directory, not a store file",
        bug="run: ValueError, exit 70",
    ),
    Case(
        "store folder under /proc",
        store_at("/proc/meterlink/meterlink.db"),
        "store.path",
        "folder /proc/meterlink cannot be created",
        bug="run: FileNotFoundError, exit 70",
    ),
    Case(
        "store folder under /sys",
        store_at("/sys/meterlink/meterlink.db"),
        "store.path",
        "folder /sys/meterlink cannot be created",
    ),
    Case(
        "store folder under a file",
        store_at("keys/gateway.pub/meterlink.db"),
        "store.path",
        "is not a folder",
        bug="run: NotADirectoryError, exit 70",
    ),
    Case("store path is an existing folder", store_at("keys"), "store.path", "is a directory, not a store file"),
    Case(
        "store path is the signing key",
        store_at("keys/gateway.key"),
        "store.path",
        "is not a SQLite database",
        bug="run renamed the key *.corrupt-<stamp>",
    ),
    Case(
        "store path is the config file",
        store_at("meterlink.toml"),
        "store.path",
        "is not a SQLite database",
        bug="run renamed the config *.corrupt-<stamp>",
    ),
    # -- serial ports ----------------------------------------------------------------------------
    Case(
        "serial device is a plain file",
        rep('device = "/dev/null"', 'device = "/etc/hostname"'),
        "buses.line1.device",
        "/etc/hostname is not a serial port: a regular file, not a tty",
    ),
    Case(
        "serial device that is not a tty",
        rep('device = "/dev/null"', 'device = "/dev/zero"'),
        "buses.line1.device",
        "/dev/zero is not a serial port: a character device that is not a tty",
    ),
    # -- signing key and other files -------------------------------------------------------------
    Case("signing key is a directory", rep('key = "keys/gateway.key"', 'key = "keys"'), "signing.key", "is not a file"),
    Case(
        "signing key in an unknown user's home",
        rep('key = "keys/gateway.key"', 'key = "~no-such-user-ml/gateway.key"'),
        "signing.key",
        "no-such-user-ml",
        # Was a bug (agent/config.py _resolve): Path.expanduser() raises RuntimeError for an unknown user;
        # load() turns it into "config: Could not determine home directory." which names no key.
        bug="~user path gives a line without the key",
    ),
    # Was a bug (agent/config.py check_files): Path.exists() re-raises OSError ENAMETOOLONG (pathlib ignores
    # only ENOENT/ENOTDIR/EBADF/ELOOP), so a path component over 255 bytes ends in "meterlink:
    # unexpected error: OSError: [Errno 36] File name too long" and exit 70.
    Case(
        "signing key name too long",
        rep('key = "keys/gateway.key"', 'key = "keys/' + "k" * 300 + '.key"'),
        "signing.key",
        "",
        bug="check_files: OSError ENAMETOOLONG escapes",
    ),
    Case(
        "store folder name too long",
        rep('path = "state/meterlink.db"', 'path = "' + "d" * 300 + '/meterlink.db"'),
        "store.path",
        "",
        bug="check_files: OSError ENAMETOOLONG escapes",
    ),
    Case(
        "password file missing",
        mqtt('username = "gw"', 'password_file = "mqtt.password"'),
        "uplink.mqtt.password_file",
        "does not exist",
    ),
    Case(
        "password file is a directory",
        mqtt('username = "gw"', 'password_file = "secrets"'),
        "uplink.mqtt.password_file",
        "is not a file",
        setup=_mkdir("secrets"),
    ),
    # run reads the password as UTF-8: check-config must refuse what run would crash on.
    Case(
        "password file not UTF-8",
        mqtt('username = "gw"', 'password_file = "mqtt.password"'),
        "uplink.mqtt.password_file",
        "is not UTF-8 text",
        setup=_write_bytes("mqtt.password", b"\xff\xfe"),
    ),
    Case("ca file missing", mqtt('ca = "platform-ca.pem"', text=rep(*MQTTS)), "uplink.mqtt.ca", "does not exist"),
    # What check-config passes must start: the key and certificates are opened, not only found.
    Case(
        "signing key readable by others",
        BASE,
        "signing.key",
        "accessible by group or others",
        setup=_chmod("keys/gateway.key", 0o644),
    ),
    Case(
        "signing key that is not a key",
        BASE,
        "signing.key",
        "is not a PEM private key",
        setup=_write("keys/gateway.key", "not a key\n"),
    ),
    Case(
        "ca file that is not a certificate",
        mqtt('ca = "keys/gateway.pub"', text=rep(*MQTTS)),
        "uplink.mqtt.ca",
        "cannot be used for TLS",
    ),
    Case(
        "client certificate that is not one",
        mqtt('client_cert = "keys/gateway.pub"', 'client_key = "keys/gateway.key"', text=rep(*MQTTS)),
        "uplink.mqtt.client_cert",
        "cannot be used for TLS",
    ),
    Case(
        "receipt key that is a private key",
        mqtt("receipts = true", 'receipt_key = "keys/gateway.key"'),
        "uplink.mqtt.receipt_key",
        "is not a PEM public key",
    ),
    # -- uplink.mqtt -----------------------------------------------------------------------------
    Case(
        "broker without a scheme",
        rep('broker = "mqtt://127.0.0.1:1883"', 'broker = "127.0.0.1:1883"'),
        "uplink.mqtt.broker",
        "must start with mqtt:// or mqtts://",
    ),
    Case(
        "broker with no host",
        rep('broker = "mqtt://127.0.0.1:1883"', 'broker = "mqtt://:1883"'),
        "uplink.mqtt.broker",
        "has no host name",
    ),
    Case(
        "broker port 99999",
        rep('broker = "mqtt://127.0.0.1:1883"', 'broker = "mqtt://127.0.0.1:99999"'),
        "uplink.mqtt.broker",
        "has an invalid port",
    ),
    Case(
        "client_cert without client_key",
        mqtt('client_cert = "keys/gateway.pub"', text=rep(*MQTTS)),
        "uplink.mqtt",
        "client_cert and client_key go together",
    ),
    Case(
        "password_file and password_env together",
        mqtt('username = "gw"', 'password_file = "pw"', 'password_env = "PW"'),
        "uplink.mqtt",
        "give password_file or password_env, not both",
    ),
    Case(
        "password_env naming an unset variable",
        mqtt('username = "gw"', f'password_env = "{UNSET_ENV}"'),
        "uplink.mqtt.password_env",
        f"environment variable {UNSET_ENV} is not set",
    ),
    Case("topic prefix with #", mqtt('topic_prefix = "water/#"'), "uplink.mqtt.topic_prefix", PATTERN),
    Case("upload_interval 0", mqtt("upload_interval = 0"), "uplink.mqtt.upload_interval", GE),
    Case("batch_size 100000", mqtt("batch_size = 100000"), "uplink.mqtt.batch_size", LE),
    Case("compression gzip", mqtt('compression = "gzip"'), "uplink.mqtt.compression", "'deflate' or 'none'"),
    Case("protocol 4", mqtt('protocol = "4"'), "uplink.mqtt.protocol", "'5' or '3.1.1'"),
    Case(
        "receipt_key without receipts",
        mqtt('receipt_key = "keys/gateway.pub"'),
        "uplink.mqtt",
        "receipt_key is set but receipts = false",
    ),
    # -- uplink.szy206 ---------------------------------------------------------------------------
    Case("szy206 division of 7 digits", szy206().replace('"430100"', '"4301000"'), "uplink.szy206.division", PATTERN),
    Case(
        "szy206 division in non-ASCII digits",
        szy206().replace('"430100"', '"\u0664\u0663\u0660\u0661\u0660\u0660"'),
        "uplink.szy206.division",
        PATTERN,
        # Was a bug (agent/config.py Szy206UplinkConfig.division): pattern ^\d{6}$ is checked by pydantic's
        # Rust regex, where \d is any Unicode digit, so "٤٣٠١٠٠" passes; only ASCII digits are BCD.
        bug="division accepts Unicode digits",
    ),
    Case("szy206 station 0", szy206().replace("station = 7", "station = 0"), "uplink.szy206.station", GE),
    Case(
        "szy206 backfill without a time label",
        szy206('time_label = "none"'),
        "uplink.szy206",
        "backfill needs a time label",
    ),
    Case(
        "szy206 time_label in upper case",
        szy206('time_label = "SZY206"'),
        "uplink.szy206.time_label",
        "'szy206', 'sl427' or 'none'",
    ),
    Case(
        "szy206 uplink, the only one, with no positions",
        rep('[uplink.mqtt]\nbroker = "mqtt://127.0.0.1:1883"\n', SZY206),
        "uplink.szy206",
        "no meter has a szy206_position",
    ),
    # -- clock and log ---------------------------------------------------------------------------
    Case(
        "clock sync_check unknown",
        BASE + '\n[clock]\nsync_check = "ntp"\n',
        "clock.sync_check",
        "'kernel' or 'assume_synced'",
    ),
    Case(
        "log level unknown", BASE + '\n[log]\nlevel = "trace"\n', "log.level", "'debug', 'info', 'warning' or 'error'"
    ),
    # -- the file itself -------------------------------------------------------------------------
    Case("TOML: unterminated string", rep('id = "gw-test"', 'id = "gw-test'), "{file}", "invalid TOML"),
    Case(
        "TOML: duplicate key",
        rep("poll_interval = 60", "poll_interval = 60\npoll_interval = 30"),
        "{file}",
        "invalid TOML",
    ),
    Case("TOML: bad table header", rep("[store]", "[store"), "{file}", "invalid TOML"),
    Case(
        "TOML: a 5000-digit integer",
        rep("poll_interval = 60", "poll_interval = " + "9" * 5000),
        "{file}",
        "",
        # Was a bug (agent/config_errors.py read_toml): tomllib raises ValueError (int max str digits) which
        # read_toml does not catch: "meterlink: unexpected error: ValueError: Exceeds the limit..." exit 70.
        bug="a huge integer literal escapes read_toml as ValueError",
    ),
    Case(
        "TOML: arrays nested 3000 deep",
        rep("poll_interval = 60", "poll_interval = " + "[" * 3000 + "]" * 3000),
        "{file}",
        "",
        # Was a bug (agent/config_errors.py read_toml): tomllib recurses and raises RecursionError, not
        # TOMLDecodeError: "meterlink: unexpected error: RecursionError: ..." exit 70.
        bug="deep nesting escapes read_toml as RecursionError",
    ),
    Case(
        "not UTF-8 (Latin-1 text)",
        rep('id = "gw-test"', 'id = "gw-t\u00e9st"').encode("latin-1"),
        "{file}",
        "not UTF-8 text (byte",
    ),
    Case("an empty file", "", "gateway", MISSING),
    Case("a directory instead of a file", BASE, "{target}", "is a directory", setup=_config_is_a_directory),
    Case("a symlink loop instead of a file", BASE, "{target}", "cannot read", setup=_config_is_a_symlink_loop),
]

# Configs check-config passes, each with the warning it prints ("" for none): run must start them.
ACCEPTED: list[Case] = [
    Case("serial adapter unplugged", BASE, "buses.line1.device", "does not exist right now"),
    Case("a disabled meter", m1("enabled = false"), "meters[m1]", "disabled, it will not be polled"),
    Case(
        "a poll interval the serial bus cannot keep",
        serial("timeout = 10", "retries = 5"),
        "buses.line1",
        "one poll cycle can take up to",
    ),
    # Was a bug (agent/config_errors.py read_toml): "invalid TOML ... (at line 1, column 1)"; older Windows
    # Notepad starts every UTF-8 file with one.
    Case("a byte order mark", "\ufeff" + BASE, "", "", bug="a byte order mark was invalid TOML"),
]

# Keys whose problems preflight finds (files, folders, ports), not the config model: run must say them too.
PREFLIGHT_KEYS = (
    "store.path",
    "signing.key",
    "uplink.mqtt.ca",
    "uplink.mqtt.client_cert",
    "uplink.mqtt.password_file",
    "uplink.mqtt.password_env",
    "uplink.mqtt.receipt_key",
    "buses.line1.device",
)

# --- running them -------------------------------------------------------------------------------

LINE = re.compile(r"^\S.*?: \S")  # "path.to.key: reason" (a path may hold spaces inside [ ])


@dataclass
class Outcome:
    file: Path
    target: Path
    code: int
    stdout: str
    stderr: str


def runnable(text: str) -> str:
    """The base names /dev/null, now a "not a tty" error, and the default broker port, where another
    mosquitto may listen: an absent device (a warning) and a closed port instead."""
    return text.replace('"/dev/null"', f'"{ABSENT_DEVICE}"').replace("mqtt://127.0.0.1:1883", CLOSED_BROKER)


def _run(case: Case, folder: Path) -> Outcome:
    file = folder / "meterlink.toml"
    write_site(folder)  # keys/gateway.key and keys/gateway.pub
    if isinstance(case.text, bytes):
        file.write_bytes(case.text)
    else:
        file.write_text(runnable(case.text), encoding="utf-8")
    target = (case.setup(folder) if case.setup else None) or file
    env = {k: v for k, v in quiet_env().items() if k != UNSET_ENV}
    proc = subprocess.run(
        [*METERLINK, "check-config", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        errors="replace",
    )
    return Outcome(file, target, proc.returncode, proc.stdout, proc.stderr)


def _check_all(cases: list[Case], root: Path) -> dict[str, Outcome]:
    folders = {case.name: root / f"case{i:03d}" for i, case in enumerate(cases)}
    with ThreadPoolExecutor(max_workers=max(2, 2 * (os.cpu_count() or 1))) as pool:
        futures = {case.name: pool.submit(_run, case, folders[case.name]) for case in cases}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return _check_all(CASES, tmp_path_factory.mktemp("broken"))


@pytest.fixture(scope="module")
def accepted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return _check_all(ACCEPTED, tmp_path_factory.mktemp("accepted"))


def _preflight_refused(case: Case, r: Outcome) -> bool:
    return r.code == 1 and case.path in PREFLIGHT_KEYS


@pytest.fixture(scope="module")
def runs(outcomes: dict[str, Outcome], accepted: dict[str, Outcome]) -> dict[str, Ran]:
    """``meterlink run`` on what check-config passed (for 2 s once started, then SIGTERM) and on what
    preflight refused."""
    everything = {**outcomes, **accepted}
    chosen = [
        c for c in [*CASES, *ACCEPTED] if everything[c.name].code == 0 or _preflight_refused(c, everything[c.name])
    ]
    env = {k: v for k, v in quiet_env().items() if k != UNSET_ENV}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {c.name: pool.submit(run_briefly, everything[c.name].target, env=env) for c in chosen}
        return {name: f.result() for name, f in futures.items()}


def test_no_broken_config_crashes(outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    """The figure to quote. Fails while any case ends in a traceback or the exit-70 "unexpected error"
    fallback."""
    crashed = {
        name: r.stderr.strip().splitlines()[-1:]
        for name, r in outcomes.items()
        if r.code not in (0, 1) or "Traceback" in r.stderr
    }
    with capsys.disabled():
        print(f"\n{len(CASES)} broken configs tried, {len(crashed)} crashed")
    assert not crashed, crashed


def test_the_cases_are_distinct() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
    texts = [(c.text, c.setup) for c in CASES]
    assert len(set(texts)) == len(texts), "two cases write the same file"
    assert len(CASES) >= 80


def test_the_base_config_itself_passes(tmp_path: Path) -> None:
    path = write_site(tmp_path, runnable(BASE))
    proc = subprocess.run([*METERLINK, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("OK:"), proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_broken_config_is_one_clear_line_per_problem(case: Case, outcomes: dict[str, Outcome]) -> None:
    r = outcomes[case.name]
    lines = r.stderr.splitlines()
    # Never a traceback, never the "unexpected error" fallback (exit 70): a user error is exit 1.
    assert "Traceback" not in r.stderr, r.stderr
    assert "unexpected error" not in r.stderr, r.stderr
    assert r.code == 1, (r.code, r.stdout, r.stderr)
    assert not r.stdout.startswith("OK"), r.stdout
    assert lines and all(LINE.match(line) for line in lines if not line.startswith("warning: ")), lines
    errors = [line for line in lines if not line.startswith("warning: ")]
    path = case.path.replace("{file}", str(r.file)).replace("{target}", str(r.target))
    hits = [line for line in errors if line.startswith(path + ": ")]
    assert hits, f"no line starts with {path + ': '!r}: {errors}"
    assert any(case.says in line[len(path) + 2 :] for line in hits), f"{case.says!r} not in {hits}"
    if path in (str(r.file), str(r.target)):
        assert len(errors) == 1, errors  # a file that cannot be read or parsed is exactly one line


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.name for c in ACCEPTED])
def test_an_accepted_config_passes_with_its_warning(case: Case, accepted: dict[str, Outcome]) -> None:
    r = accepted[case.name]
    assert r.code == 0 and r.stdout.startswith("OK: "), (r.code, r.stdout, r.stderr)
    if case.path:
        assert any(
            line.startswith(f"warning: {case.path}: ") and case.says in line for line in r.stderr.splitlines()
        ), r.stderr


def test_what_check_config_passes_starts(
    outcomes: dict[str, Outcome], accepted: dict[str, Outcome], runs: dict[str, Ran], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every config check-config passed ran until it was stopped, then exited 0: none ended in the
    exit-70 "unexpected error" fallback, none refused to start."""
    passed = [name for name, r in {**outcomes, **accepted}.items() if r.code == 0]
    bad = {
        name: runs[name]
        for name in passed
        if runs[name].code != 0
        or not runs[name].stopped
        or "unexpected error" in runs[name].output
        or "Traceback" in runs[name].output
    }
    exit70 = sum(1 for name in passed if runs[name].code == 70)
    with capsys.disabled():
        print(
            f"\n{len(passed)} configs passed check-config and ran under run: {exit70} exit 70, "
            f"{len(bad)} did not start and stop cleanly"
        )
    assert passed, "no config passed check-config: nothing was tried under run"
    assert not bad, {name: (r.code, r.output[-600:]) for name, r in bad.items()}


def test_run_refuses_what_check_config_refused_with_the_same_lines(
    outcomes: dict[str, Outcome], runs: dict[str, Ran], capsys: pytest.CaptureFixture[str]
) -> None:
    refused = [c for c in CASES if _preflight_refused(c, outcomes[c.name])]
    with capsys.disabled():
        print(f"\n{len(refused)} configs refused over a file, a folder or a port went through run too")
    assert len(refused) >= 15
    for case in refused:
        errors = [line for line in outcomes[case.name].stderr.splitlines() if not line.startswith("warning: ")]
        ran = runs[case.name]
        assert ran.code == 1 and not ran.stopped, (case.name, ran.code, ran.output)
        assert set(errors) <= set(ran.output.splitlines()), (case.name, errors, ran.output)
