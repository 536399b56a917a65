"""docs/wire-format.md stays true: its examples are what the code produces, its snippets work.

The doc marks each checked block with a line ``<!-- example: NAME -->`` right before the fenced
block. The worked example is signed with the RFC 8037 appendix A key, so every message can be
rebuilt here from the payload the doc shows, byte for byte (Ed25519 signatures are deterministic).
If the wire format changes, ``bench/make_wire_example.py --update-doc`` rewrites the examples.
"""

from __future__ import annotations

import ast
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
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc.errors import BadSignatureError

from meterlink.cli.main import main as cli_main
from meterlink.drivers.base import Flag
from meterlink.wire.jws import Signer, Verifier, b64url, b64url_decode, thumbprint
from meterlink.wire.payload import (
    StoredEvent,
    StoredReading,
    check_message,
    events_message,
    reading_dict,
    readings_message,
)

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
        rows.append(
            StoredReading(
                r["seq"], r["meter"], r["quantity"], float(r["value"]), r["unit"], r["ts"], r["slot"], int(flags)
            )
        )
    return rows


def test_the_doc_has_every_checked_example() -> None:
    expected = {
        "public-key-pem",
        "thumbprint-input",
        "kid",
        "readings-payload",
        "reading-with-flags",
        "events-payload",
        "python-joserfc",
        "python-cryptography",
        "node",
    }
    expected |= {name for pair in MESSAGES for name in pair[:2]}
    assert expected <= set(BLOCKS), f"missing example blocks: {sorted(expected - set(BLOCKS))}"


def test_the_public_key_and_kid_shown_are_the_rfc_8037_key() -> None:
    assert BLOCKS["public-key-pem"].encode("ascii") + b"\n" == rfc_pem()
    shown = serialization.load_pem_public_key(BLOCKS["public-key-pem"].encode("ascii"))
    assert isinstance(shown, Ed25519PublicKey)
    assert BLOCKS["kid"] == thumbprint(rfc_public()) == RFC_THUMBPRINT
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
    assert verified.header["kid"] == BLOCKS["kid"] == thumbprint(rfc_public())
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
    events = [
        StoredEvent(e["seq"], e["ts"], e["kind"], {k: v for k, v in e.items() if k not in ("seq", "ts", "kind")})
        for e in shown["events"]
    ]
    written = events_message(shown["gateway"], shown["batch"], shown["sent_at"], events)
    assert written == json.dumps(shown, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    documented = documented_events()
    for event in shown["events"]:
        assert event["kind"] in documented
        assert set(event) - {"seq", "ts", "kind"} == documented[event["kind"]], event


# -- the events table of section 3.2 against the code that creates events --------------------------

AGENT = ROOT / "agent"
# Store.add_event, Agent._event, the pollers' and the uplinks' sinks, upkeep's report_opening(event)
EVENT_SINKS = {"add_event", "_event", "events", "event"}
EVENTS_SQL = re.compile(r"INSERT INTO events \(ts, kind, detail\) VALUES \(\?, (?:'(\w+)'|\?), \?\)")


def documented_events() -> dict[str, set[str]]:
    """Section 3.2's table: kind -> member names (each written `name`, values only inside parentheses)."""
    section = DOC_TEXT[DOC_TEXT.index("### 3.2 Events") : DOC_TEXT.index("### 3.3")]
    table = section[section.index("| `kind` | Other members | When |") :]
    found: dict[str, set[str]] = {}
    for line in table.split("\n")[2:]:
        if not line.startswith("|"):
            break
        kind, members = (cell.strip() for cell in line.strip("|").split("|")[:2])
        names = re.sub(r"\([^()]*\)", "", members)
        found[kind.strip("`")] = set(re.findall(r"`([a-z_][a-z0-9_]*)`", names))
    return found


def _keys(node: ast.expr, scope: dict[str, ast.expr], where: str) -> set[str]:
    """The keys of a dict literal, following ``**name`` to a dict literal assigned in the same function."""
    if isinstance(node, ast.Name) and node.id in scope:
        return _keys(scope[node.id], scope, where)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dumps":
        return _keys(node.args[0], scope, where)  # json.dumps({...}) in the store's own INSERTs
    assert isinstance(node, ast.Dict), f"{where}: event detail is not a dict literal: {ast.unparse(node)}"
    keys: set[str] = set()
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            keys |= _keys(value, scope, where)
        else:
            assert isinstance(key, ast.Constant) and isinstance(key.value, str), where
            keys.add(key.value)
    return keys


def _literal_kinds(node: ast.expr, function: ast.AST, where: str) -> list[str]:
    """An event kind written as a literal, or a name bound by a ``for`` over a tuple of literal rows."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    assert isinstance(node, ast.Name), f"{where}: event kind is not a literal string: {ast.unparse(node)}"
    for loop in (n for n in ast.walk(function) if isinstance(n, ast.For)):
        targets = loop.target.elts if isinstance(loop.target, ast.Tuple) else [loop.target]
        names = [t.id if isinstance(t, ast.Name) else "" for t in targets]
        if node.id in names and isinstance(loop.iter, ast.Tuple):
            at = names.index(node.id)
            rows = [row.elts[at] if isinstance(row, ast.Tuple) else row for row in loop.iter.elts]
            assert all(isinstance(r, ast.Constant) and isinstance(r.value, str) for r in rows), where
            return [r.value for r in rows]  # type: ignore[attr-defined]
    raise AssertionError(f"{where}: event kind {node.id} is not bound to literal strings")


def events_in_code() -> dict[str, set[str]]:
    """Every event kind the agent creates, with the members it writes, read from the source.

    Events are made by a call to an event sink (``store.add_event``, ``Agent._event``, the pollers'
    and the SZY206 terminal's ``events``), by ``quality.Finding`` (passed on by the poller), or by an
    ``INSERT INTO events`` of the store itself. A call whose kind is not a literal string fails the
    test, except the poller passing a finding on and a sink passing on the kind it was given, so a new
    way of making events cannot slip past.
    """
    found: dict[str, set[str]] = {}

    def record(kind: str, keys: set[str], where: str) -> None:
        assert found.setdefault(kind, keys) == keys, f"{where}: {kind} written with members {keys} and {found[kind]}"

    for path in sorted(AGENT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for function in functions:
            scope = {
                t.id: n.value
                for n in ast.walk(function)
                if isinstance(n, ast.Assign)
                for t in n.targets
                if isinstance(t, ast.Name)
            }
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
                first = call.args[0] if call.args else None
                sql = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
                if "INSERT INTO events" in sql:
                    match = EVENTS_SQL.search(sql)
                    assert match, f"{where}: an events INSERT of unknown form"
                    if match[1] is None:
                        assert function.name == "add_event", f"{where}: events INSERT with a kind parameter"
                        continue
                    (params,) = call.args[1:2]
                    assert isinstance(params, ast.Tuple), where
                    record(match[1], _keys(params.elts[-1], scope, where), where)
                elif name == "update" and ast.unparse(call.func).endswith("conditions.update"):
                    # A rule's condition (agent/rules): its members, and the id, cleared and level of every
                    # condition event. A call without members only clears (with the members of its raise).
                    detail = next((k.value for k in call.keywords if k.arg == "detail"), None)
                    if detail is None:
                        continue
                    assert first is not None, where
                    for kind in _literal_kinds(first, function, where):
                        record(kind, _keys(detail, scope, where) | {"id", "cleared", "level"}, where)
                elif name in EVENT_SINKS and call.args and not (name == "events" and len(call.args) != 2):
                    assert first is not None, where
                    if ast.unparse(first) in ("finding.kind", "event.kind"):
                        continue  # quality findings (collected as Finding(...)), rule events (as update(...))
                    if isinstance(first, ast.Name) and first.id in {a.arg for a in function.args.args}:
                        continue  # a sink passing on the kind it was given (Agent._event to the outbox)
                    assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                        f"{where}: event kind is not a literal string: {ast.unparse(call)}"
                    )
                    given = call.args[2:3] if name == "add_event" else call.args[1:2]  # add_event(kind, ts, detail)
                    record(first.value, _keys(given[0], scope, where) if given else set(), where)
                elif name == "Finding":
                    assert isinstance(first, ast.Constant) and isinstance(first.value, str), where
                    record(first.value, _keys(call.args[1], scope, where), where)
    return found


def test_the_events_table_lists_every_event_the_agent_writes_with_its_members() -> None:
    code = events_in_code()
    # The extractor must see each way events are made; if one of these disappears, fix the extractor.
    assert {
        "store_replaced",
        "readings_dropped",
        "agent_started",
        "meter_offline",
        "totalizer_reset",
        "szy206_connected",
    } <= set(code), sorted(code)
    assert documented_events() == code


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


# What each snippet raises for a tampered message, and for one signed by a key it does not hold.
REFUSALS: dict[str, tuple[type[Exception], type[Exception], str]] = {
    "python-cryptography": (InvalidSignature, ValueError, "unknown kid"),
    "python-joserfc": (BadSignatureError, KeyError, ""),  # key_for: "KeyError if none"
}


@pytest.mark.parametrize("snippet", list(REFUSALS))
@pytest.mark.parametrize("name", [m[0] for m in MESSAGES])
def test_the_python_snippets_receive_both_messages(snippet: str, name: str) -> None:
    receive = _snippet(snippet)
    tampered, unknown_key, unknown_key_says = REFUSALS[snippet]
    other = Ed25519PrivateKey.generate().public_key()
    other_pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc: "EdDSA is deprecated via RFC 9864"
        assert receive(message(name), [rfc_pem()]) == json.loads(payload_bytes())
        assert receive(message(name), [other_pem, rfc_pem()]) == json.loads(payload_bytes())  # rotation
        with pytest.raises(tampered):
            receive(_tampered(name), [rfc_pem()])
        with pytest.raises(unknown_key, match=unknown_key_says):
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
    script.write_text(
        BLOCKS["node"]
        + """
const fs = require("node:fs");
const [pemFile, ...files] = process.argv.slice(2);
for (const f of files) {
  try {
    console.log(JSON.stringify(receive(fs.readFileSync(f), [fs.readFileSync(pemFile, "utf8")])));
  } catch (e) {
    console.log(JSON.stringify({ error: String(e.message) }));
  }
}
"""
    )
    done = subprocess.run(
        ["node", str(script), str(pem), *map(str, files)], capture_output=True, text=True, timeout=60, check=True
    )
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
        jws.deserialize_json(
            {"protected": protected, "payload": payload, "signature": signature},
            OKPKey.import_key(rfc_pem()),
            algorithms=["EdDSA"],
        )


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


def test_the_readme_quotes_the_size_table_of_the_doc() -> None:
    """README's bytes-per-reading figures are the doc's row for 100 readings per message, rounded."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    quoted = re.search(
        r"about (\d+) bytes per reading on the wire at (\d+) readings per message, instead of about (\d+)", readme
    )
    assert quoted, "README no longer quotes the compressed size per reading"
    rows = {
        int(b): (float(n), float(d))
        for b, n, d in re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", DOC_TEXT, flags=re.MULTILINE)
    }
    none, deflate = rows[int(quoted[2])]
    assert (int(quoted[1]), int(quoted[3])) == (round(deflate), round(none))
    assert "docs/wire-format.md` section 3.4" in readme
