"""Thumbprints and JWS: RFC 8037 test vectors, an independent JOSE library, tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import OKPKey

from meterlink.agent.keys import load_private_key
from meterlink.wire.compression import inflate
from meterlink.wire.errors import VerifyError
from meterlink.wire.jws import Signer, Verifier, b64url, thumbprint

# RFC 8037 appendix A: the Ed25519 example key, its thumbprint and a signed JWS.
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(RFC_D + "="))


def test_thumbprint_matches_rfc_8037() -> None:
    assert thumbprint(rfc_key().public_key()) == RFC_THUMBPRINT


def test_signature_matches_rfc_8037_and_verifies() -> None:
    protected, payload, signature = RFC_JWS.split(".")
    produced = rfc_key().sign(f"{protected}.{payload}".encode())
    assert b64url(produced) == signature
    flattened = json.dumps({"protected": protected, "payload": payload, "signature": signature})
    verified = Verifier([rfc_key().public_key()]).verify(flattened)
    assert verified.payload == b"Example of Ed25519 signing"


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_and_header(compress: bool) -> None:
    key = Ed25519PrivateKey.generate()
    message = Signer(key, compress=compress).sign(b'{"gateway":"g","batch":1}')
    jws_obj = json.loads(message)
    assert set(jws_obj) == {"protected", "payload", "signature"}
    header = json.loads(base64.urlsafe_b64decode(jws_obj["protected"] + "=="))
    assert header["alg"] == "EdDSA"
    assert header["kid"] == thumbprint(key.public_key())
    assert ("cty" in header) == compress
    assert Verifier([key.public_key()]).verify(message).json() == {"gateway": "g", "batch": 1}


@pytest.mark.parametrize("compress", [False, True])
def test_an_independent_jose_library_verifies_our_messages(compress: bool, keys: tuple[Path, Path]) -> None:
    key_path, pub_path = keys
    message = Signer(load_private_key(key_path), compress=compress).sign(b'{"x":1}')
    public = OKPKey.import_key(pub_path.read_bytes())
    obj = jws.deserialize_json(json.loads(message), public, algorithms=["EdDSA"])
    assert obj.headers()["kid"] == public.thumbprint()
    body = inflate(obj.payload) if compress else obj.payload
    assert json.loads(body) == {"x": 1}


def test_ed25519_alg_name_of_rfc_9864_is_accepted() -> None:
    key = Ed25519PrivateKey.generate()
    protected = b64url(json.dumps({"alg": "Ed25519", "kid": thumbprint(key.public_key())}).encode())
    payload = b64url(b"{}")
    sig = b64url(key.sign(f"{protected}.{payload}".encode()))
    msg = json.dumps({"protected": protected, "payload": payload, "signature": sig})
    assert Verifier([key.public_key()]).verify(msg).payload == b"{}"


def _tamper(message: bytes, member: str, new: str) -> bytes:
    obj = json.loads(message)
    obj[member] = new
    return json.dumps(obj).encode()


def test_altered_payload_header_or_signature_is_rejected() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = Verifier([key.public_key()])
    message = Signer(key, compress=False).sign(b'{"readings":[{"seq":1,"value":5}]}')
    obj = json.loads(message)
    forged_payload = b64url(b'{"readings":[{"seq":1,"value":6}]}')
    forged_header = b64url(json.dumps({"alg": "EdDSA", "kid": thumbprint(key.public_key()), "typ": "x"}).encode())
    for bad in (
        _tamper(message, "payload", forged_payload),
        _tamper(message, "protected", forged_header),
        _tamper(message, "signature", b64url(b"\x00" * 64)),
    ):
        with pytest.raises(VerifyError):
            verifier.verify(bad)
    assert obj  # the original still verifies
    verifier.verify(message)


def test_alg_none_hmac_and_unknown_keys_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = Verifier([key.public_key()])
    for header in (
        {"alg": "none"},
        {"alg": "HS256", "kid": "x"},
        {"alg": "EdDSA", "kid": "someone-else"},
        {"alg": "EdDSA", "crit": ["b64"], "b64": False},
        {"alg": "EdDSA", "zip": "DEF"},
    ):
        protected = b64url(json.dumps(header).encode())
        payload = b64url(b"{}")
        sig = b64url(key.sign(f"{protected}.{payload}".encode()))
        with pytest.raises(VerifyError):
            verifier.verify(json.dumps({"protected": protected, "payload": payload, "signature": sig}))


def test_key_rotation_old_and_new_keys_both_verify() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = Verifier([old.public_key(), new.public_key()])
    assert verifier.verify(Signer(old).sign(b"{}")).payload == b"{}"
    assert verifier.verify(Signer(new).sign(b"{}")).payload == b"{}"
    with pytest.raises(VerifyError, match="unknown key id"):
        Verifier([new.public_key()]).verify(Signer(old).sign(b"{}"))


def test_a_zip_bomb_is_not_inflated() -> None:
    import zlib

    key = Ed25519PrivateKey.generate()
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = packer.compress(b"0" * (64 * 1024 * 1024)) + packer.flush()
    protected = b64url(json.dumps({"alg": "EdDSA", "cty": "json+deflate"}).encode())
    payload = b64url(bomb)
    sig = b64url(key.sign(f"{protected}.{payload}".encode()))
    with pytest.raises(VerifyError, match="too large"):
        Verifier([key.public_key()]).verify(json.dumps({"protected": protected, "payload": payload, "signature": sig}))


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_input_only_ever_raises_verify_error(data: bytes) -> None:
    verifier = Verifier([Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(VerifyError):
        verifier.verify(data)


@settings(max_examples=200)
@given(protected=st.text(max_size=60), payload=st.text(max_size=60), signature=st.text(max_size=100))
def test_random_jws_members_only_ever_raise_verify_error(protected: str, payload: str, signature: str) -> None:
    verifier = Verifier([Ed25519PrivateKey.generate().public_key()])
    msg = json.dumps({"protected": protected, "payload": payload, "signature": signature})
    with pytest.raises(VerifyError):
        verifier.verify(msg)
