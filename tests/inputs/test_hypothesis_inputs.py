"""Random inputs never crash anything: each parser raises its own error class, or succeeds.

- config: random TOML documents (written by the tiny TOML writer below), random text and bytes,
  and random mutations of the valid base config, through ``config.load`` (only ConfigError), and
  a few of them through ``meterlink check-config`` as a process (exit 0 or 1, no traceback);
- Modbus: ``registers.decode`` and ``ValueSpec.decode`` on random registers and images
  (only RegisterError);
- SZY206: random bytes and random well-framed frames (good CRC, random insides) through
  ``decode``, ``Reassembler`` (random chunking) and ``describe.decode_report`` (only SZY206Error),
  and a few through ``meterlink decode szy206`` (exit 0 or 1, one stderr line when 1);
- JWS: random and mutated messages through ``Verifier.verify`` + ``check_message`` (only
  VerifyError / PayloadError), and every single-byte mutation of the base64url members of a small
  valid message, exhaustively.

Tests that pin a product bug this file found say ``Was a bug`` in their docstring; they fail if it comes back.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import math
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from support.configs import BASE, write_site
from support.procs import METERLINK

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError
from meterlink.agent.keys import generate_keypair, load_private_key
from meterlink.protocols.modbus.registers import DataType, RegisterError, WordOrder
from meterlink.protocols.modbus.registers import decode as decode_registers
from meterlink.protocols.modbus.values import Part, ValueSpec
from meterlink.protocols.szy206 import NEED_DATA, Reassembler, SZY206Error, crc8
from meterlink.protocols.szy206 import decode as decode_frame
from meterlink.protocols.szy206.describe import decode_report
from meterlink.wire.errors import PayloadError, VerifyError
from meterlink.wire.jws import Signer, Verifier, thumbprint
from meterlink.wire.payload import check_message

# No example database (nothing written outside this folder); processes are not shrunk (a failure
# would otherwise start dozens more of them).
FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PROCS = settings(
    max_examples=4,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


def many(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None)


TESTS = Path(__file__).resolve().parents[1]

# --- a tiny TOML writer ---------------------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(s: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's (\\b \\t \\n \\f \\r \\" \\\\ \\uXXXX) except that
    TOML also wants DEL escaped; non-ASCII stays raw (a JSON surrogate pair is no TOML escape)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(k: str) -> str:
    return k if _BARE.match(k) else toml_string(k)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level scalars and arrays first, then each table as a [header] with inline values in it."""
    plain = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    tables = [
        f"\n[{toml_key(k)}]\n" + "".join(f"{toml_key(kk)} = {toml_value(vv)}\n" for kk, vv in v.items())
        for k, v in doc.items()
        if isinstance(v, dict)
    ]
    return "\n".join(plain) + "\n" + "".join(tables)


def same(a: Any, b: Any) -> bool:
    """Equality where nan equals nan (the writer's round trip)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --- strategies for configs -----------------------------------------------------------------------

# Real key names and values make random documents reach deeper validation than random text would.
KEYS = sorted(
    {
        "gateway",
        "id",
        "poll_interval",
        "buses",
        "type",
        "device",
        "baudrate",
        "parity",
        "stopbits",
        "bytesize",
        "host",
        "port",
        "timeout",
        "retries",
        "meters",
        "bus",
        "unit_id",
        "profile",
        "function",
        "numbering",
        "registers",
        "max_gap",
        "scale",
        "enabled",
        "szy206_position",
        "quantity",
        "unit",
        "address",
        "word_order",
        "offset",
        "fraction",
        "high",
        "multiplier",
        "decimals_register",
        "store",
        "path",
        "capacity_mb",
        "overflow",
        "retention_days",
        "signing",
        "key",
        "uplink",
        "mqtt",
        "szy206",
        "broker",
        "ca",
        "client_cert",
        "client_key",
        "username",
        "password_file",
        "password_env",
        "protocol",
        "topic_prefix",
        "upload_interval",
        "batch_size",
        "keepalive",
        "publish_timeout",
        "compression",
        "division",
        "station",
        "time_label",
        "clock",
        "sync_check",
        "log",
        "level",
        "line1",
        "tcp1",
    }
)
WORDS = [
    "serial",
    "tcp",
    "wire",
    "manual",
    "tuf2000",
    "emf_generic",
    "float32",
    "uint32",
    "CDAB",
    "N",
    "E",
    "mqtt://127.0.0.1:1883",
    "mqtts://h",
    "http://x",
    "line1",
    "tcp1",
    "/dev/null",
    "keys/gateway.key",
    "430100",
    "kernel",
    "debug",
    "deflate",
    "5",
    "3.1.1",
    "",
    "~",
    "..",
    "/",
    "a\x00b",
    "#",
    "é",
]
# Key names and strings without line breaks or other control characters, and keys never empty:
# those hit a known bug (test_a_key_or_id_that_breaks_the_line_...) that would hide everything else.
printable = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
texts = st.text(printable, max_size=12)
keys = st.one_of(st.sampled_from(KEYS), st.text(printable, min_size=1, max_size=8))
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 60, 247, 248, 255, 502, 9600, 65535, 65536, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    texts,
    st.datetimes(),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=8)

BASE_DATA = tomllib.loads(BASE)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in the document (dict keys and list indices)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


BASE_PATHS = list(_paths(BASE_DATA))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        node = node[k]
    return node


CONTAINERS = [(), *[p for p in BASE_PATHS if isinstance(_get(BASE_DATA, p), dict | list)]]


@st.composite
def base_mutations(draw: st.DrawFn) -> dict[str, Any]:
    """The base config with 1 to 3 random edits: replace a value, delete a key or item, add a key."""
    doc: dict[str, Any] = json.loads(json.dumps(BASE_DATA))  # a deep copy (the base holds only JSON types)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "add":
            path = draw(st.sampled_from(CONTAINERS))
            try:
                target = _get(doc, path)
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(target, dict):
                target[draw(keys)] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
            continue
        path = draw(st.sampled_from(BASE_PATHS))
        try:
            parent = _get(doc, path[:-1])
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        if op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(values)
    return doc


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder with keys; the tests overwrite its meterlink.toml."""
    path: Path = write_site(tmp_path_factory.mktemp("site"))
    return path


def load_or_config_error(path: Path) -> None:
    """What check-config does in-process: only ConfigError may come out of any step."""
    try:
        config = cfgmod.load(path)
    except ConfigError as exc:
        assert exc.lines and all(isinstance(line, str) and line.strip() for line in exc.lines), exc.lines
        assert all("\n" not in line for line in exc.lines), exc.lines
        return
    # A config that loads must survive everything check-config and the agent ask of it next.
    assert isinstance(cfgmod.warnings(config), list)
    assert isinstance(cfgmod.check_files(config), list)
    assert cfgmod.describe(config).startswith("OK: ")
    assert config.store_capacity_bytes() > 0
    for meter in config.meters:
        if isinstance(meter, cfgmod.ModbusMeterConfig):
            assert meter.value_specs()
        assert config.poll_interval(meter) >= 1


# --- config loading -------------------------------------------------------------------------------


@FAST
@given(doc=documents)
def test_random_toml_documents_load_or_raise_config_error(site: Path, doc: dict[str, Any]) -> None:
    text = toml_document(doc)
    assert same(tomllib.loads(text), doc), text  # the writer is right, so load() sees exactly `doc`
    site.write_text(text, encoding="utf-8")
    load_or_config_error(site)


@FAST
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8")),
        st.text(alphabet="[]{}=\"'.,#\n \tabc123-_:", max_size=200).map(str.encode),
    )
)
@example(raw=b"\xef\xbb\xbf" + BASE.encode())  # a byte order mark
@example(raw=BASE.encode("utf-16"))
def test_random_text_and_bytes_load_or_raise_config_error(site: Path, raw: bytes) -> None:
    site.write_bytes(raw)
    load_or_config_error(site)


@FAST
@given(doc=base_mutations())
def test_random_mutations_of_the_base_config_load_or_raise_config_error(site: Path, doc: dict[str, Any]) -> None:
    text = toml_document(doc)
    assert same(tomllib.loads(text), doc), text
    site.write_text(text, encoding="utf-8")
    load_or_config_error(site)


def test_the_writer_round_trips_the_base_config(site: Path) -> None:
    text = toml_document(BASE_DATA)
    assert tomllib.loads(text) == BASE_DATA
    site.write_text(text, encoding="utf-8")
    assert cfgmod.describe(cfgmod.load(site)) == "OK: 2 meters on 2 buses"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('"" = 1\n' + BASE, "unknown key"),
        ('"gate\\nway" = 1\n' + BASE, "unknown key"),
        (BASE.replace('id = "m1"', 'id = "m\\n1"'), "String should match pattern"),
    ],
    ids=["empty key", "key with a newline", "meter id with a newline"],
)
def test_a_key_or_id_that_breaks_the_line_still_gives_one_named_line(site: Path, text: str, says: str) -> None:
    """Was a bug (agent/config_errors.py _path): key names and meter ids went into the path unescaped,
    so ``"gate\\nway" = 1`` printed "gate" and "way: unknown key ..." on two lines, a meter id "m\\n1"
    split its line the same way, and an empty key ``"" = 1`` printed "unknown key (...)" with no path
    at all. Paths now quote or escape such names."""
    site.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        cfgmod.load(site)
    lines = [line for line in info.value.lines if says in line]
    assert len(lines) == 1, info.value.lines
    assert "\n" not in lines[0] and re.match(r"^\S.*?: \S", lines[0]), lines


def check_config_process(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "METERLINK_DEBUG"}
    return subprocess.run(
        [*METERLINK, "check-config", str(path)], capture_output=True, text=True, timeout=120, env=env, errors="replace"
    )


def assert_clean_exit(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    if proc.returncode == 1:
        lines = proc.stderr.splitlines()
        assert lines and all(": " in line for line in lines), lines
        assert "unexpected error" not in proc.stderr, proc.stderr


@PROCS
@given(doc=st.one_of(documents, base_mutations()))
def test_check_config_on_random_documents_exits_0_or_1(site: Path, doc: dict[str, Any]) -> None:
    site.write_text(toml_document(doc), encoding="utf-8")
    assert_clean_exit(check_config_process(site))


# --- Modbus register decoding -----------------------------------------------------------------------

words = st.integers(min_value=-(2**20), max_value=2**20) | st.integers(min_value=0, max_value=0xFFFF)
dtypes = st.sampled_from(list(DataType))
orders = st.sampled_from(list(WordOrder))


@many(250)
@given(registers=st.lists(words, max_size=6), dtype=dtypes, order=orders)
def test_register_decode_raises_only_register_error(registers: list[int], dtype: DataType, order: WordOrder) -> None:
    try:
        value = decode_registers(registers, dtype, order)
    except RegisterError:
        return
    assert len(registers) == dtype.words and all(0 <= w <= 0xFFFF for w in registers)
    assert isinstance(value, int | float)


factors = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, 1e9, -1.0, 1e308])
addresses = st.integers(min_value=0, max_value=40)  # small, so that images often hold them
parts = st.builds(Part, address=addresses, dtype=dtypes, order=orders, multiplier=factors)
value_specs = st.builds(
    ValueSpec,
    quantity=st.just("q"),
    unit=st.just("u"),
    function=st.sampled_from([3, 4]),
    parts=st.lists(parts, min_size=1, max_size=3).map(tuple),
    scale=factors,
    offset=factors,
    decimals_address=st.none() | addresses,
)
# Images as a meter's registers (16-bit words) and as anything a caller could hand in.
images = st.dictionaries(addresses, st.integers(0, 0xFFFF), max_size=48) | st.dictionaries(
    addresses, words, max_size=48
)


@many(250)
@given(spec=value_specs, image=images)
def test_value_spec_decode_raises_only_register_error(spec: ValueSpec, image: dict[int, int]) -> None:
    try:
        value = spec.decode(image)
    except RegisterError:
        return
    assert math.isfinite(value)


@pytest.mark.parametrize("dp", [-1, -400, 70000])
def test_a_decimals_register_outside_0_to_9_is_a_register_error(dp: int) -> None:
    """Was a bug (protocols/modbus/values.py ValueSpec.decode): the decimals register was not checked
    to be a 16-bit word like every other register (Part.read does that): a negative word passed the
    ``dp > 9`` test, so -1 silently multiplied the value by 10, and -400 made ``10**dp`` 0.0 and
    raised ZeroDivisionError instead of RegisterError."""
    spec = ValueSpec("level", "m", 3, (Part(0, DataType.UINT16),), decimals_address=1)
    with pytest.raises(RegisterError):
        spec.decode({0: 1234, 1: dp})


# --- SZY206 -----------------------------------------------------------------------------------------


def _hex_frames(node: Any) -> Iterator[str]:
    if isinstance(node, str) and re.fullmatch(r"(?:68[0-9A-Fa-f]{2}68)(?:[0-9A-Fa-f]{2})+16", node):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _hex_frames(v)
    elif isinstance(node, list):
        for v in node:
            yield from _hex_frames(v)


KNOWN_FRAMES = sorted(
    {
        bytes.fromhex(h)
        for name in ("szy206_own_vectors.json", "szy206_public_frames.json", "vectors_szy206_dev.json")
        for h in _hex_frames(json.loads((TESTS / "data" / name).read_text(encoding="utf-8")))
    }
)
AFNS = [
    0x02,
    0x10,
    0x11,
    0x12,
    0x50,
    0x51,
    0x52,
    0x53,
    0x54,
    0x5E,
    0x61,
    0x81,
    0x82,
    0x83,
    0x84,
    0xA0,
    0xA1,
    0xB0,
    0xB1,
    0xC0,
]


def frame_of(user: bytes) -> bytes:
    """68H L 68H user CS 16H with a right CRC."""
    return bytes((0x68, len(user), 0x68)) + user + bytes((crc8(user), 0x16))


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """A frame that passes start, length, end and CRC checks, with random control, address, AFN,
    data, PW and time label; sometimes a picture frame (L in KiB)."""
    control = draw(st.integers(0, 255))
    head = bytes((control,)) + (bytes((draw(st.integers(0, 255)),)) if control & 0x40 else b"")
    address = draw(st.binary(min_size=5, max_size=5))
    afn = draw(st.sampled_from(AFNS) | st.integers(0, 255))
    if draw(st.integers(0, 9)) == 0:  # a picture frame: count (2 bytes, low first) and the image
        image = draw(st.binary(min_size=1, max_size=2100))
        n = len(image)
        user = bytes((control | 0x80,)) + head[1:] + address + bytes((draw(st.sampled_from([0x61, 0x83])),))
        user += n.to_bytes(2, "little") + image
        length = draw(st.sampled_from(sorted({n // 1024, -(-n // 1024)})))
        return bytes((0x68, length, 0x68)) + user + bytes((crc8(user), 0x16))
    room = 255 - len(head) - 6
    data = draw(st.binary(max_size=min(room, 60)))
    # Often a real time label at the end (BCD second, minute, hour, day, delay), sometimes 7 bytes.
    if draw(st.booleans()):
        bcd = [draw(st.integers(0, 59)), draw(st.integers(0, 59)), draw(st.integers(0, 23)), draw(st.integers(1, 31))]
        tp = bytes(int(str(v), 16) for v in bcd) + bytes((draw(st.integers(0, 255)),))
        data = (data + tp)[-room:]
    return frame_of(head + address + bytes((afn,)) + data)


frames_or_noise = st.one_of(
    framed(),
    st.binary(max_size=80),
    st.sampled_from(KNOWN_FRAMES) if KNOWN_FRAMES else st.nothing(),
)


@st.composite
def mutated_known(draw: st.DrawFn) -> bytes:
    """A known good frame with one byte changed, inserted or dropped, or cut short."""
    frame = bytearray(draw(st.sampled_from(KNOWN_FRAMES)))
    i = draw(st.integers(0, len(frame) - 1))
    op = draw(st.sampled_from(["flip", "insert", "drop", "cut"]))
    if op == "flip":
        frame[i] ^= draw(st.integers(1, 255))
    elif op == "insert":
        frame.insert(i, draw(st.integers(0, 255)))
    elif op == "drop":
        del frame[i]
    else:
        del frame[i:]
    return bytes(frame)


any_frame = st.one_of(frames_or_noise, mutated_known())
tp_lens = st.sampled_from([None, 0, 5, 7])
pws = st.sampled_from([None, True, False])


def test_the_known_frames_were_found() -> None:
    assert len(KNOWN_FRAMES) >= 10


@many(250)
@given(raw=any_frame, tp_len=tp_lens, pw=pws)
def test_szy206_decode_and_decode_report_raise_only_szy206_errors(
    raw: bytes, tp_len: int | None, pw: bool | None
) -> None:
    try:
        decode_frame(raw, tp_len=tp_len, pw=pw)
    except SZY206Error:
        pass
    try:
        view = decode_report(raw, tp_len=tp_len, pw=pw)
    except SZY206Error:
        return
    json.dumps(view)  # the view is JSON, as documented
    assert view["crc_ok"] is True


@many(150)
@given(text=st.one_of(st.text(max_size=40), any_frame.map(lambda b: " ".join(f"{x:02x}" for x in b))))
def test_szy206_decode_report_of_text_raises_only_szy206_errors(text: str) -> None:
    try:
        json.dumps(decode_report(text))
    except SZY206Error:
        pass


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@many(150)
@given(
    pieces=st.lists(any_frame, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    tp_len=tp_lens,
    pw=pws,
    resync=st.lists(st.booleans(), min_size=1),
)
def test_reassembler_raises_only_szy206_errors(
    pieces: list[bytes], cuts: list[int], tp_len: int | None, pw: bool | None, resync: list[bool]
) -> None:
    r = Reassembler(tp_len=tp_len, pw=pw)
    got = 0
    for i, chunk in enumerate([*_chunks(b"".join(pieces), cuts), b""]):
        r.feed(chunk)
        if resync[i % len(resync)]:
            r.resync()
        while (frame := r.next_frame()) is not NEED_DATA:
            got += 1
            assert frame is not None
    assert r.bytes_discarded >= 0 and r.frames_decoded == got and r.buffered >= 0


@many(150)
@given(frames=st.lists(framed(), min_size=1, max_size=6), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_reassembler_finds_every_frame_of_a_clean_stream_however_it_is_cut(
    frames: list[bytes], cuts: list[int]
) -> None:
    r = Reassembler()
    got = []
    for chunk in _chunks(b"".join(frames), cuts):
        r.feed(chunk)
        while (frame := r.next_frame()) is not NEED_DATA:
            got.append(frame)
    assert len(got) == len(frames)
    assert [(f.afn, f.address.to_bytes()) for f in got] == [
        (decode_frame(b).afn, decode_frame(b).address.to_bytes()) for b in frames
    ]
    assert r.bytes_discarded == 0 and r.frames_rejected == 0 and r.buffered == 0


def decode_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "METERLINK_DEBUG"}
    return subprocess.run([*METERLINK, "decode", "szy206", *args], capture_output=True, text=True, timeout=60, env=env)


@PROCS
@given(raw=any_frame)
def test_meterlink_decode_szy206_on_random_hex_exits_0_or_1(raw: bytes) -> None:
    assume(raw)
    proc = decode_process(raw.hex())
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    if proc.returncode == 0:
        assert proc.stderr == "" and json.loads(proc.stdout)["crc_ok"] is True
    else:
        assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "unexpected error" not in proc.stderr


# --- JWS ----------------------------------------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
VERIFIER = Verifier([KEY.public_key()])
SMALL = b'{"gateway":"g","batch":1,"sent_at":2,"events":[]}'
READINGS = (
    b'{"gateway":"gw-1","batch":7,"sent_at":1764374402113,"readings":[{"seq":1,"meter":"m1",'
    b'"quantity":"flow_rate","value":36.6,"unit":"m3/h","ts":1764374400381,"slot":1764374400000}]}'
)
VALID = [Signer(KEY, compress=c).sign(p) for c in (False, True) for p in (SMALL, READINGS)]


def verify_and_check(message: bytes | str) -> bool:
    """True if accepted; False if rejected the documented way; anything else propagates."""
    try:
        check_message(VERIFIER.verify(message).json())
    except (VerifyError, PayloadError):
        return False
    return True


def test_the_valid_messages_are_accepted() -> None:
    assert all(verify_and_check(m) for m in VALID)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
headers = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["EdDSA", "Ed25519", "none", "HS256", ""])},
        optional={
            "kid": st.text(max_size=44) | st.just(thumbprint(KEY.public_key())),
            "cty": st.sampled_from(["json+deflate", "json"]) | st.text(max_size=5),
            "crit": json_values,
            "zip": st.just("DEF"),
        },
    ),
)
members = st.one_of(st.text(max_size=60), st.binary(max_size=60).map(b64), json_values)


@st.composite
def forged(draw: st.DrawFn) -> bytes:
    """A JWS-shaped message: a random or plausible header, random payload, a random or real signature."""
    header = draw(headers)
    protected = draw(members | st.just(b64(json.dumps(header).encode())))
    payload = draw(members | json_values.map(lambda v: b64(json.dumps(v).encode())))
    if (
        draw(st.booleans())
        and isinstance(protected, str)
        and isinstance(payload, str)
        and protected.isascii()
        and payload.isascii()
    ):
        signature: Any = b64(draw(st.sampled_from([KEY, OTHER])).sign(f"{protected}.{payload}".encode()))
    else:
        signature = draw(members)
    body: dict[str, Any] = {"protected": protected, "payload": payload, "signature": signature}
    if draw(st.integers(0, 5)) == 0:
        body[draw(st.text(max_size=5))] = draw(json_values)
    return json.dumps(body).encode()


@st.composite
def byte_mutations(draw: st.DrawFn) -> bytes:
    """A valid message with one to three bytes flipped, inserted or dropped anywhere."""
    message = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(message) - 1))
        op = draw(st.sampled_from(["flip", "insert", "drop"]))
        if op == "flip":
            message[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            message.insert(i, draw(st.integers(0, 255)))
        else:
            del message[i]
    return bytes(message)


@many(150)
@given(
    message=st.one_of(
        st.binary(max_size=200), st.text(max_size=200), forged(), byte_mutations(), json_values.map(json.dumps)
    )
)
def test_verify_and_check_message_raise_only_their_errors(message: bytes | str) -> None:
    verify_and_check(message)


@many(150)
@given(message=byte_mutations())
def test_a_mutated_message_is_never_accepted_with_a_changed_payload(message: bytes) -> None:
    """A mutation that still verifies must be one that changed nothing the signature covers (a JSON
    detail outside the members), never the payload."""
    try:
        verified = VERIFIER.verify(message)
    except VerifyError:
        return
    assert verified.payload in (SMALL, READINGS)


@many(150)
@given(obj=json_values)
def test_check_message_raises_only_payload_error(obj: Any) -> None:
    try:
        check_message(obj)
    except PayloadError:
        pass


def _member_span(message: bytes, member: str) -> range:
    m = re.search(rb'"%s":"([A-Za-z0-9_-]*)"' % member.encode(), message)
    assert m is not None
    return range(m.start(1), m.end(1))


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_every_single_byte_mutation_of_a_member_is_rejected(member: str) -> None:
    """Exhaustive: every position of the member in the raw message, every other byte value (255 per
    position; ~20,000 messages per member). Must raise only VerifyError/PayloadError, and reject.

    For "signature" this needs a strict base64url decoder (wire/jws.py b64url_decode): a lenient
    one accepts the 15 other last characters that differ only in the 4 unused bits, and "+" or "/"
    for "-" or "_", so one signature would have several spellings (a malleable JWS, which RFC 7515's
    base64url rules out). protected and payload are safe anyway: the signing input is their text.
    """
    message = VALID[0]  # uncompressed, about 250 bytes of base64url
    accepted = []
    for i in _member_span(message, member):
        for b in range(256):
            if b == message[i]:
                continue
            mutated = message[:i] + bytes((b,)) + message[i + 1 :]
            if verify_and_check(mutated):
                accepted.append((i, chr(b)))
    assert not accepted, f"{len(accepted)} mutations of {member} verify, e.g. {accepted[:8]}"


def test_every_bit_flip_anywhere_in_a_message_is_rejected_the_documented_way() -> None:
    """Exhaustive over the whole message (JSON punctuation, member names, base64url): every single
    bit flip raises only VerifyError/PayloadError, and none outside the signature member verifies
    (the signature's own malleability is pinned by the test above)."""
    message = VALID[0]
    signature = _member_span(message, "signature")
    for i in range(len(message)):
        for bit in range(8):
            mutated = message[:i] + bytes((message[i] ^ (1 << bit),)) + message[i + 1 :]
            assert not verify_and_check(mutated) or i in signature, (i, bit)


# Crafted, unauthenticated messages that make the JSON parser raise something other than
# JSONDecodeError: a platform or `meterlink verify` must reject them like any other bad message.
HOSTILE = {
    "a 5000-digit integer": b'{"protected":' + b"9" * 5000 + b"}",
    "arrays nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a header nested 100000 deep": json.dumps(
        {"protected": b64(b"[" * 100_000), "payload": "e30", "signature": "AA"}
    ).encode(),
    "a header with a 5000-digit integer": json.dumps(
        {"protected": b64(b'{"alg":' + b"9" * 5000 + b"}"), "payload": "e30", "signature": "AA"}
    ).encode(),
}


@pytest.mark.parametrize("message", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_json_is_rejected_not_raised(message: bytes) -> None:
    """Was a bug (wire/jws.py Verifier.verify and Verifier._header): json.loads raises ValueError
    ("Exceeds the limit (4300 digits) for integer string conversion") for a long integer and
    RecursionError for deep nesting; these escaped verify() before any signature check, so anyone
    who could publish on the topic could make a receiver raise. verify() turns them into VerifyError."""
    assert verify_and_check(message) is False


def test_meterlink_verify_rejects_a_hostile_message_and_goes_on(tmp_path: Path) -> None:
    """Was a bug (same cause, cli/verify.py): `meterlink verify` stopped at the hostile message
    with "meterlink: unexpected error: ValueError: ..." and exit 70 instead of "message 1: REJECTED:
    ..." and going on to verify the next message."""
    _, pub = generate_keypair(tmp_path / "keys")
    key = load_private_key(tmp_path / "keys" / "gateway.key")
    good = Signer(key).sign(READINGS)
    (tmp_path / "messages").write_bytes(HOSTILE["a 5000-digit integer"] + b"\n" + good + b"\n")
    proc = subprocess.run(
        [*METERLINK, "verify", "--pubkey", str(pub), str(tmp_path / "messages")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "message 1: REJECTED" in proc.stderr and "1 verified, 1 rejected" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["batch"] == 7
