"""What each library the agent loads adds to the RSS of a bare interpreter.

    .venv/bin/python bench/bench_imports.py

Most of the running agent's RSS (bench_agent.py) is its import footprint. The steps follow the
order in which ``meterlink run`` first imports them, each in the same fresh interpreter, so a step
counts only what the steps before it have not loaded (asyncio brings ssl, and with it the
system's libssl and libcrypto). Each figure is the least of three interpreters. pyserial and
pymodbus are loaded only by a site with a serial bus, the SZY206 stack only by a site with an
SZY206 bus or uplink, so the totals give the three agents. The last
lines weigh what the agent does not load: joserfc, and Ed25519 signing through the libcrypto that
ssl has already loaded (ctypes) next to the ``cryptography`` package.
"""

from __future__ import annotations

import subprocess
import sys
from textwrap import dedent

from _common import figure, header

TARGET_MB = 45  # the running agent, 32 meters x 4 values every 10 s (bench_agent.py)

FIRST_MODEL = "!import pydantic\nclass _First(pydantic.BaseModel):\n    a: int = 1\n_First(a=2)"
LIBRARIES_END = "pydantic (its core, with a first model built)"  # the last step that is a library only
SERIAL_STEP = "(a site with a serial bus only) pyserial, pymodbus's client"
SZY206_STEP = "(an SZY206 site only) meterlink: the SZY206 stack"

# (what, modules) in the order `meterlink run` first imports them.
STEPS = [
    ("asyncio (and ssl, which it imports)", "asyncio"),
    ("argparse, logging, json, zlib", "argparse,logging,json,zlib"),
    ("sqlite3", "sqlite3"),
    ("zoneinfo, tomllib", "zoneinfo,tomllib"),
    ("paho-mqtt", "paho.mqtt.client"),
    ("tenacity", "tenacity"),
    (
        "cryptography (Ed25519, PEM keys)",
        "cryptography.hazmat.primitives.asymmetric.ed25519,cryptography.hazmat.primitives.serialization",
    ),
    ("pydantic (the package)", "pydantic"),
    # pydantic loads its core and schema builder when the first model is made: a library's cost,
    # not the config's. A step starting with "!" is code run instead of modules imported.
    ("pydantic (its core, with a first model built)", FIRST_MODEL),
    ("meterlink: config models, meter profiles", "meterlink.agent.config"),
    ("meterlink: wire format, key files", "meterlink.wire.jws,meterlink.wire.payload,meterlink.agent.keys"),
    (
        "meterlink: the rest of the agent but SZY206",
        ",".join(
            f"meterlink.{m}"
            for m in (
                "agent.store",
                "agent.rulebook",
                "agent.uploader",
                "agent.uplinks.mqtt",
                "agent.preflight",
                "drivers.modbus.driver",
            )
        ),
    ),
    ("meterlink: service, command line", "meterlink.agent.service,meterlink.cli.main"),
    # Loaded only where a site has a serial bus: a Modbus TCP agent's imports end above.
    (SERIAL_STEP, "serial,pymodbus.client"),
    # Loaded only where a site has an SZY206 bus or uplink.
    (
        SZY206_STEP,
        ",".join(f"meterlink.{m}" for m in ("protocols.szy206", "drivers.szy206", "agent.uplinks.szy206")),
    ),
    ("(not loaded) joserfc, to parse inbound JWS", "joserfc.jws,joserfc.jwk"),
]

MEASURE = dedent("""
    import gc, importlib, sys
    def rss():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
    print(rss())
    for step in sys.argv[1:]:
        for name in [step] if step.startswith("!") else step.split(","):
            exec(name[1:]) if name.startswith("!") else importlib.import_module(name)
        gc.collect()
        print(rss())
""")

# Ed25519 through the libcrypto that `ssl` maps already, then the cryptography package on top.
CTYPES_ED25519 = dedent("""
    import asyncio, ctypes, gc, ssl
    def rss():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
    before = rss()
    lib = ctypes.CDLL(next(l.split()[-1] for l in open("/proc/self/maps") if "libcrypto.so" in l))
    lib.EVP_PKEY_new_raw_private_key.restype = ctypes.c_void_p
    lib.EVP_PKEY_new_raw_private_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.EVP_MD_CTX_new.restype = ctypes.c_void_p
    lib.EVP_DigestSignInit.argtypes = [ctypes.c_void_p] * 5
    lib.EVP_DigestSign.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
                                   ctypes.c_char_p, ctypes.c_size_t]
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")  # RFC 8032 7.1 test 1
    key = lib.EVP_PKEY_new_raw_private_key(1087, None, seed, 32)  # NID_ED25519
    ctx = lib.EVP_MD_CTX_new()
    assert lib.EVP_DigestSignInit(ctx, None, None, None, key) == 1
    sig, size = ctypes.create_string_buffer(64), ctypes.c_size_t(64)
    assert lib.EVP_DigestSign(ctx, sig, ctypes.byref(size), b"", 0) == 1
    assert sig.raw.hex().startswith("e5564300c360ac729086e2cc806e828a"), "not RFC 8032's signature"
    gc.collect()
    with_ctypes = rss()
    import cryptography.hazmat.primitives.asymmetric.ed25519, cryptography.hazmat.primitives.serialization
    gc.collect()
    print(with_ctypes - before, rss() - with_ctypes)
""")


def least_of_three(script: str, *args: str) -> list[int]:
    """The numbers ``script`` prints, each the least of three fresh interpreters."""
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
        runs.append([int(v) for v in out.stdout.split()])
    return [min(r[i] for r in runs) for i in range(len(runs[0]))]


def main() -> None:
    header("RSS each library of the agent adds to a bare interpreter (least of 3 interpreters)")
    kb = least_of_three(MEASURE, *(m for _, m in STEPS))
    figure("bare interpreter", kb[0] / 1024, "MB")
    for i, (what, _) in enumerate(STEPS, 1):
        figure(f"+ {what}", (kb[i] - kb[i - 1]) / 1024, "MB")
    libraries = kb[[what for what, _ in STEPS].index(LIBRARIES_END) + 1]
    figure(
        "the interpreter and a Modbus TCP agent's libraries", libraries / 1024, "MB", TARGET_MB, higher_is_better=False
    )
    names = [what for what, _ in STEPS]
    tcp_only = kb[names.index(SERIAL_STEP)]  # every step before the serial libraries
    figure("what a Modbus TCP agent imports", tcp_only / 1024, "MB", TARGET_MB, higher_is_better=False)
    serial = kb[names.index(SERIAL_STEP) + 1]
    figure("what an agent with a serial bus imports", serial / 1024, "MB", TARGET_MB, higher_is_better=False)
    with_szy206 = kb[names.index(SZY206_STEP) + 1]
    figure("what an agent with SZY206 too imports", with_szy206 / 1024, "MB", TARGET_MB, higher_is_better=False)
    ctypes_kb, cryptography_kb = least_of_three(CTYPES_ED25519)
    figure("(not loaded) Ed25519 via ssl's libcrypto and ctypes", ctypes_kb / 1024, "MB")
    figure("  ... against the cryptography package after it", cryptography_kb / 1024, "MB")


if __name__ == "__main__":
    main()
