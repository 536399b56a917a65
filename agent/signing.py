"""Gateway keys and JWS signatures: Ed25519 (RFC 8037) in flattened JSON serialization (RFC 7515).

Every message the agent publishes is ``{"protected", "payload", "signature"}`` where

- ``protected`` is base64url of ``{"alg":"EdDSA","kid":KID}``, ``kid`` being the RFC 7638 thumbprint
  of the gateway's public key, plus ``"cty":"json+deflate"`` when the payload is compressed;
- ``payload`` is base64url of the payload bytes: UTF-8 JSON, or its raw DEFLATE (RFC 1951) when
  ``cty`` says so. ``cty`` is a registered JWS header (RFC 7515 4.1.10), so strict JOSE libraries
  accept it, where the JWE-only ``zip`` header would be refused;
- ``signature`` is base64url of Ed25519 over ``protected + "." + payload`` (RFC 7515 section 5.1).

Verifiers accept ``alg`` ``EdDSA`` and ``Ed25519`` (RFC 9864) and nothing else: no "none", no HMAC,
no key taken from the message itself. ``docs/wire-format.md`` walks through one message by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import KeyFileError, MeterlinkError
from .osuser import effective_user

ACCEPTED_ALGS = frozenset({"EdDSA", "Ed25519"})
DEFLATED = "json+deflate"  # the cty of a compressed payload
MAX_INFLATED = 16 * 1024 * 1024  # a verifier never inflates a message past this (zip bombs)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (RFC 7515 section 2): its alphabet only, no padding, canonical trailing bits.

    A lenient decoder would accept several spellings of one signature (unused low bits of the last
    character, '+' for '-'): a message must have exactly one valid form.
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
    x = b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint(public_key)}


# -- key files ---------------------------------------------------------------------------------


def generate_keypair(out_dir: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``gateway.key`` (PKCS#8 PEM, mode 0600) and ``gateway.pub`` (SubjectPublicKeyInfo PEM).

    Raises:
        KeyFileError: one line naming the path, when the folder or a file cannot be written.
    """
    _make_folder(out_dir)
    key_path, pub_path = out_dir / "gateway.key", out_dir / "gateway.pub"
    try:
        if key_path.exists() and not force:
            raise KeyFileError(
                f"{key_path} already exists; keep it, or pass --force to replace the gateway's identity"
            )
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_private(key_path, pem)
        pub_path.write_bytes(pub)
    except OSError as exc:
        raise KeyFileError(f"{exc.filename or out_dir}: {exc.strerror or exc}") from None
    return key_path, pub_path


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KeyFileError(f"{out_dir}: exists and is not a folder") from None
    except OSError as exc:
        raise KeyFileError(f"{out_dir}: cannot create the folder ({exc.strerror or exc})") from None


def _write_private(key_path: Path, pem: bytes) -> None:
    """Write the key through a fresh 0600 file, then rename it over ``key_path``."""
    tmp = key_path.with_suffix(".key.tmp")
    # A leftover tmp would keep its own mode, and a symlink there would be followed: remove it and
    # create anew (O_EXCL, O_NOFOLLOW), so no one else can ever read the key, not even briefly.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # exactly 0600 whatever the umask took away
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, key_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_private_key(path: Path, *, check_mode: bool = True) -> Ed25519PrivateKey:
    """Load the gateway key, refusing one that group or others may read.

    Raises:
        KeyFileError: one line naming the file, the user and what is wrong.
    """
    try:
        st = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"signing key {path} does not exist (create one with: meterlink keygen --out DIR)") from None
    except PermissionError:
        raise KeyFileError(f"signing key {path} is not readable by user {effective_user()}") from None
    except OSError as exc:
        raise KeyFileError(f"signing key {path}: {exc.strerror}") from None
    if check_mode and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"signing key {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"signing key {path} is not a PEM private key without password ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyFileError(f"public key {path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"public key {path} is not an Ed25519 key")
    return key


# -- signing -----------------------------------------------------------------------------------


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
            # Level 6: within 8 % of level 9's size at a third of its CPU time.
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = packer.compress(payload) + packer.flush()
        encoded = b64url(payload)
        signature = self._key.sign(self._protected_dot + encoded.encode("ascii"))
        return b'{"protected":"%s","payload":"%s","signature":"%s"}' % (
            self._protected.encode("ascii"),
            encoded.encode("ascii"),
            b64url(signature).encode("ascii"),
        )


# -- verifying ---------------------------------------------------------------------------------


class VerifyError(MeterlinkError):
    """A message that is not a valid JWS from a known gateway key."""


@dataclass(frozen=True, slots=True)
class Verified:
    header: dict[str, Any]
    payload: bytes  # after inflating, when the header says so

    def json(self) -> Any:
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

    def verify(self, message: bytes | str) -> Verified:
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
            body = _inflate(body)
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


def _inflate(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15)
    try:
        out = unpacker.decompress(data, MAX_INFLATED)
    except zlib.error:
        raise VerifyError("payload does not inflate (cty json+deflate)") from None
    if unpacker.unconsumed_tail or not unpacker.eof:
        raise VerifyError("compressed payload is truncated or too large")
    return out
