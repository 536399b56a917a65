"""JWS signatures: Ed25519 (RFC 8037) in the flattened JSON serialization (RFC 7515).

Every message a gateway publishes is ``{"protected", "payload", "signature"}`` where

- ``protected`` is base64url of ``{"alg":"EdDSA","kid":KID}``, ``kid`` being the RFC 7638 thumbprint
  of the gateway's public key, plus ``"cty":"json+deflate"`` when the payload is compressed
  (compression.py);
- ``payload`` is base64url of the payload bytes: UTF-8 JSON (payload.py), or its raw DEFLATE;
- ``signature`` is base64url of Ed25519 over ``protected + "." + payload`` (RFC 7515 section 5.1).

Verifiers accept ``alg`` ``EdDSA`` and ``Ed25519`` (RFC 9864) and nothing else: no "none", no HMAC,
no key taken from the message itself. The parser is meterlink's own, not a JOSE library's:
docs/wire-format.md section 2 says why and walks through one message by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .compression import DEFLATED, InflateError, deflate, inflate
from .errors import VerifyError

ACCEPTED_ALGS = frozenset({"EdDSA", "Ed25519"})


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (RFC 7515 section 2): its alphabet only, no padding, canonical trailing bits.

    A lenient decoder would accept several spellings of one signature (unused low bits of the last
    character, '+' for '-'): a message must have exactly one valid form.

    Raises:
        VerifyError: ``text`` is not canonical base64url.
    """
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise VerifyError("base64url field is not canonical base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise VerifyError("base64url field is not canonical base64url")
    return data


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of an OKP key: SHA-256 of its required members in lexicographic order."""
    x = b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an OKP JWK, with its thumbprint as ``kid``."""
    x = b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint(public_key)}


class Signer:
    """Signs payloads with one key. The protected header is encoded once."""

    def __init__(self, key: Ed25519PrivateKey, *, compress: bool = True) -> None:
        self._key = key
        self.kid = thumbprint(key.public_key())
        self.compress = compress
        header: dict[str, str] = {"alg": "EdDSA", "kid": self.kid}
        if compress:
            header["cty"] = DEFLATED
        self._protected = b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))
        self._protected_dot = (self._protected + ".").encode("ascii")

    def sign(self, payload: bytes) -> bytes:
        """The JWS (flattened JSON serialization) carrying ``payload``, as bytes ready to publish."""
        if self.compress:
            payload = deflate(payload)
        encoded = b64url(payload)
        signature = self._key.sign(self._protected_dot + encoded.encode("ascii"))
        return b'{"protected":"%s","payload":"%s","signature":"%s"}' % (
            self._protected.encode("ascii"),
            encoded.encode("ascii"),
            b64url(signature).encode("ascii"),
        )


@dataclass(frozen=True, slots=True)
class Verified:
    """A message whose signature checked out: its protected header and payload."""

    header: dict[str, Any]
    payload: bytes  # after inflating, when the header says so

    def json(self) -> Any:
        """The payload parsed as JSON.

        Raises:
            VerifyError: the payload is not JSON.
        """
        try:
            return json.loads(self.payload)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise VerifyError("signed payload is not JSON") from exc


class Verifier:
    """Checks messages against a set of gateway public keys (old and new ones during a rotation)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self.keys = {thumbprint(k): k for k in keys}
        if not self.keys:
            raise ValueError("a verifier needs at least one public key")

    def verify(self, message: bytes | bytearray | str) -> Verified:
        """The header and payload of ``message`` once its signature is checked.

        Raises:
            VerifyError: anything docs/wire-format.md section 2 says a verifier refuses.
        """
        try:
            jws = json.loads(message)
        except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
            raise VerifyError("message is not JSON (or absurdly nested or long)") from None
        if not isinstance(jws, dict) or set(jws) != {"protected", "payload", "signature"}:
            raise VerifyError("message is not a flattened JWS {protected, payload, signature}")
        protected, payload, signature = jws["protected"], jws["payload"], jws["signature"]
        if not all(isinstance(v, str) for v in (protected, payload, signature)):
            raise VerifyError("JWS members must be strings")
        header = self._header(protected)
        key = self.keys.get(header.get("kid", ""))
        if key is None:
            if len(self.keys) == 1 and "kid" not in header:
                key = next(iter(self.keys.values()))
            else:
                raise VerifyError(f"unknown key id {header.get('kid')!r}")
        try:
            key.verify(b64url_decode(signature), f"{protected}.{payload}".encode("ascii"))
        except InvalidSignature:
            raise VerifyError("bad signature") from None
        except UnicodeEncodeError:
            raise VerifyError("JWS members must be ASCII base64url") from None
        body = b64url_decode(payload)
        if header.get("cty") == DEFLATED:
            try:
                body = inflate(body)
            except InflateError as exc:
                raise VerifyError(str(exc)) from None
        return Verified(header, body)

    @staticmethod
    def _header(protected: str) -> dict[str, Any]:
        try:
            header = json.loads(b64url_decode(protected))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise VerifyError("protected header is not JSON") from None
        if not isinstance(header, dict):
            raise VerifyError("protected header is not a JSON object")
        if header.get("alg") not in ACCEPTED_ALGS:
            raise VerifyError(f"algorithm {header.get('alg')!r} is not accepted (EdDSA or Ed25519 only)")
        if "crit" in header:
            # meterlink defines no extension parameters, so none can be understood (RFC 7515 4.1.11).
            raise VerifyError(f"critical header parameters {header['crit']!r} are not understood")
        if "zip" in header:
            raise VerifyError("the zip header is for JWE only; a compressed payload says cty json+deflate")
        return header
