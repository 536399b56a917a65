"""docs/wire-format.md stays true: its examples are what the code produces, its snippets work.

The doc marks each checked block with a line ``<!-- example: NAME -->`` right before the fenced
block. The worked example is signed with the RFC 8037 appendix A key, so every message can be
rebuilt here from the payload the doc shows, byte for byte (Ed25519 signatures are deterministic).
If the wire format changes, ``bench/make_wire_example.py --update-doc`` rewrites the examples.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from meterlink.agent import signing
from meterlink.agent.cli import main as cli_main
from meterlink.agent.payload import (
    StoredEvent,
    StoredReading,
    check_message,
    events_message,
    reading_dict,
    readings_message,
)
from meterlink.agent.signing import Signer, Verifier, b64url, b64url_decode
from meterlink.drivers.base import Flag

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "wire-format.md"
GENERATOR = ROOT / "bench" / "make_wire_example.py"

# RFC 8037 appendix A: the example Ed25519 key (public, never used on a gateway) and its thumbprint.
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

MESSAGES = [  # (message block, header block, compressed)
    ("readings-uncompressed", "header-uncompressed", False),
    ("readings-compressed", "header-compressed", True),
]


def _blocks(text: str) -> dict[str, str]:
    """Every fenced block that follows a ``<!-- example: NAME -->`` line, by NAME, de-indented."""
    lines = text.split("\n")
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        marker = re.fullmatch(r"\s*<!-- example: ([\w-]+) -->\s*", line)
        if not marker:
            continue
        j = i + 1
        while not lines[j].strip():
            j += 1
        fence = lines[j]
        assert fence.lstrip().startswith("```"), f"example {marker[1]}: no fenced block after the marker"
        indent = len(fence) - len(fence.lstrip())
        body = []
        j += 1
        while lines[j].strip() != "```":
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        assert marker[1] not in found, f"example {marker[1]} appears twice"
        found[marker[1]] = "\n".join(body)
    return found


DOC_TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = _blocks(DOC_TEXT)


def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC_D))


def rfc_public() -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(b64url_decode(RFC_X))


def rfc_pem() -> bytes:
    return rfc_public().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def message(name: str) -> bytes:
    return BLOCKS[name].encode("ascii")


def payload_bytes() -> bytes:
    return BLOCKS["readings-payload"].encode("utf-8")


def rows_from(payload: dict[str, Any]) -> list[StoredReading]:
    """The store rows a payload was built from (the inverse of ``reading_dict``)."""
    rows = []
    for r in payload["readings"]:
        flags = Flag.NONE
        for name in r.get("flags", []):
            flags |= Flag[name.upper()]
        rows.append(StoredReading(r["seq"], r["meter"], r["quantity"], float(r["value"]), r["unit"],
                                  r["ts"], r["slot"], int(flags)))
    return rows


def test_the_doc_has_every_checked_example() -> None:
    expected = {"public-key-pem", "thumbprint-input", "kid", "readings-payload", "reading-with-flags",
                "events-payload", "python-joserfc", "python-cryptography", "node"}
    expected |= {name for pair in MESSAGES for name in pair[:2]}
    assert expected <= set(BLOCKS), f"missing example blocks: {sorted(expected - set(BLOCKS))}"


def test_the_public_key_and_kid_shown_are_the_rfc_8037_key() -> None:
    assert BLOCKS["public-key-pem"].encode("ascii") + b"\n" == rfc_pem()
    shown = serialization.load_pem_public_key(BLOCKS["public-key-pem"].encode("ascii"))
    assert isinstance(shown, Ed25519PublicKey)
    assert BLOCKS["kid"] == signing.thumbprint(rfc_public()) == RFC_THUMBPRINT
    canonical = BLOCKS["thumbprint-input"]
    assert canonical == json.dumps({"crv": "Ed25519", "kty": "OKP", "x": RFC_X}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    assert b64url(digest) == BLOCKS["kid"]
    assert f"The thumbprint input is the {len(canonical)}-byte string" in DOC_TEXT
    assert f"Its SHA-256 is `{digest.hex()}` (hex)" in DOC_TEXT


@pytest.mark.parametrize(("name", "header_name", "compressed"), MESSAGES)
def test_each_message_verifies_and_carries_the_payload_shown(name: str, header_name: str, compressed: bool) -> None:
    verified = Verifier([rfc_public()]).verify(message(name))
    assert verified.payload == payload_bytes()
    check_message(verified.json())
    jws = json.loads(message(name))
    assert b64url_decode(jws["protected"]).decode("ascii") == BLOCKS[header_name]
    assert verified.header == json.loads(BLOCKS[header_name])
    assert verified.header["kid"] == BLOCKS["kid"] == signing.thumbprint(rfc_public())
    assert ("cty" in verified.header) == compressed


@pytest.mark.parametrize(("name", "header_name", "compressed"), MESSAGES)
def test_the_real_signer_rebuilds_each_message_byte_for_byte(name: str, header_name: str, compressed: bool) -> None:
    payload = json.loads(payload_bytes())
    rebuilt_payload = readings_message(payload["gateway"], payload["batch"], payload["sent_at"], rows_from(payload))
    assert rebuilt_payload == payload_bytes()
    assert Signer(rfc_key(), compress=compressed).sign(rebuilt_payload) == message(name)


def test_the_numbers_quoted_in_the_walk_through_match_the_messages() -> None:
    plain, packed = json.loads(message("readings-uncompressed")), json.loads(message("readings-compressed"))
    deflated = b64url_decode(packed["payload"])
    assert zlib.decompress(deflated, -15) == payload_bytes()
    signature = b64url_decode(plain["signature"])
    quoted = [
        f"one line, {len(message('readings-uncompressed'))} bytes",
        f"`protected` ({len(plain['protected'])} characters)",
        f"`payload` ({len(plain['payload'])} characters)",
        f"`signature` ({len(plain['signature'])} characters)",
        f"hex `{signature.hex()[:16]}...{signature.hex()[-8:]}`",
        f"{len(signature)} bytes",
    ]
    for jws in (plain, packed):
        p, q = len(jws["protected"]), len(jws["payload"])
        quoted.append(f"{p} + 1 + {q} = {p + 1 + q} bytes")
    quoted += [
        f"`...{plain['payload'][-32:]}`",
        f"`{plain['protected'][:20]}...`",
        f"{len(payload_bytes())} bytes of UTF-8 JSON",
        f"These are the {len(payload_bytes())} bytes the gateway signed",
        f"`payload` decodes to {len(deflated)} bytes of raw DEFLATE",
        f"exactly the {len(payload_bytes())} bytes",
        f"The whole message is {len(message('readings-compressed'))} bytes instead of "
        f"{len(message('readings-uncompressed'))}",
    ]
    missing = [q for q in quoted if q not in DOC_TEXT]
    assert not missing, f"docs/wire-format.md section 4 quotes other numbers; expected to find: {missing}"


def test_the_events_example_is_what_the_code_writes() -> None:
    shown = json.loads(BLOCKS["events-payload"])
    check_message(shown)
    events = [StoredEvent(e["seq"], e["ts"], e["kind"], {k: v for k, v in e.items() if k not in ("seq", "ts", "kind")})
              for e in shown["events"]]
    written = events_message(shown["gateway"], shown["batch"], shown["sent_at"], events)
    assert written == json.dumps(shown, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    kinds = {e["kind"] for e in shown["events"]}
    assert kinds <= {"agent_started", "store_replaced", "meter_offline", "meter_online"}


def test_the_flagged_reading_is_what_the_code_writes() -> None:
    shown = json.loads(BLOCKS["reading-with-flags"])
    (row,) = rows_from({"readings": [shown]})
    assert row.flags == Flag.CLOCK_UNSYNCED
    written = json.dumps(reading_dict(row), ensure_ascii=False, separators=(",", ":"))
    assert written == BLOCKS["reading-with-flags"]


def _snippet(name: str) -> Any:
    namespace: dict[str, Any] = {"__name__": f"wire_format_doc_{name.replace('-', '_')}"}
    exec(compile(BLOCKS[name], f"docs/wire-format.md:{name}", "exec"), namespace)
    return namespace["receive"]


def _tampered(name: str) -> bytes:
    jws = json.loads(message(name))
    payload = jws["payload"]
    jws["payload"] = payload[:40] + ("A" if payload[40] != "A" else "B") + payload[41:]
    return json.dumps(jws).encode("ascii")


@pytest.mark.parametrize("snippet", ["python-cryptography", "python-joserfc"])
@pytest.mark.parametrize("name", [m[0] for m in MESSAGES])
def test_the_python_snippets_receive_both_messages(snippet: str, name: str) -> None:
    receive = _snippet(snippet)
    other = Ed25519PrivateKey.generate().public_key()
    other_pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc: "EdDSA is deprecated via RFC 9864"
        assert receive(message(name), [rfc_pem()]) == json.loads(payload_bytes())
        assert receive(message(name), [other_pem, rfc_pem()]) == json.loads(payload_bytes())  # rotation
        with pytest.raises(Exception):  # noqa: B017 - each library raises its own error type
            receive(_tampered(name), [rfc_pem()])
        with pytest.raises(Exception):  # noqa: B017
            receive(message(name), [other_pem])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_snippet_receives_both_messages(tmp_path: Path) -> None:
    pem = tmp_path / "rfc8037.pub"
    pem.write_bytes(rfc_pem())
    files = []
    for name in [m[0] for m in MESSAGES]:
        files.append(tmp_path / f"{name}.jws")
        files[-1].write_bytes(message(name))
    files.append(tmp_path / "tampered.jws")
    files[-1].write_bytes(_tampered("readings-compressed"))
    script = tmp_path / "receive.js"
    script.write_text(BLOCKS["node"] + """
const fs = require("node:fs");
const [pemFile, ...files] = process.argv.slice(2);
for (const f of files) {
  try {
    console.log(JSON.stringify(receive(fs.readFileSync(f), [fs.readFileSync(pemFile, "utf8")])));
  } catch (e) {
    console.log(JSON.stringify({ error: String(e.message) }));
  }
}
""")
    done = subprocess.run(["node", str(script), str(pem), *map(str, files)], capture_output=True, text=True,
                          timeout=60, check=True)
    plain, packed, tampered = (json.loads(line) for line in done.stdout.splitlines())
    assert plain == packed == json.loads(payload_bytes())
    assert tampered == {"error": "bad signature"}


def test_joserfc_refuses_zip_in_a_jws_as_the_doc_says() -> None:
    from joserfc import jws
    from joserfc.errors import UnsupportedHeaderError
    from joserfc.jwk import OKPKey

    protected = b64url(json.dumps({"alg": "EdDSA", "zip": "DEF"}).encode())
    payload = b64url(zlib.compress(b"{}")[2:-4])
    signature = b64url(rfc_key().sign(f"{protected}.{payload}".encode()))
    with warnings.catch_warnings(), pytest.raises(UnsupportedHeaderError, match="zip"):
        warnings.simplefilter("ignore")
        jws.deserialize_json({"protected": protected, "payload": payload, "signature": signature},
                             OKPKey.import_key(rfc_pem()), algorithms=["EdDSA"])


def test_meterlink_verify_prints_the_payload_of_each_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "rfc8037.pub"
    pem.write_bytes(rfc_pem())
    source = tmp_path / "example.jws"
    source.write_bytes(b"\n".join(message(m[0]) for m in MESSAGES) + b"\n")
    assert cli_main(["verify", "--pubkey", str(pem), str(source)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [BLOCKS["readings-payload"]] * 2
    assert err.strip() == "2 verified, 0 rejected"
    assert "1 verified, 0 rejected" in DOC_TEXT


def test_the_quoted_sizes_are_near_what_the_generator_measures() -> None:
    """The bytes-per-reading table, within 10 %: a change of format shows, a change of simulated values not."""
    if not GENERATOR.exists():
        pytest.skip("bench/make_wire_example.py is not in this tree")
    spec = importlib.util.spec_from_file_location("make_wire_example_for_doc_test", GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", DOC_TEXT, flags=re.MULTILINE)
    assert [int(r[0]) for r in rows] == [20, 100, 500]
    import asyncio

    for batch, none, deflate in rows:
        for compress, quoted in ((False, float(none)), (True, float(deflate))):
            measured, _ = asyncio.run(generator.sizes(int(batch), compress=compress))
            assert measured == pytest.approx(quoted, rel=0.10), (batch, compress, measured)
