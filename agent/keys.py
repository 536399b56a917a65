"""The gateway's key files: ``gateway.key`` (PKCS#8 PEM, mode 0600) and ``gateway.pub`` (SPKI PEM).

What the keys sign and how is the wire format's (meterlink.wire.jws); this module makes, reads and
guards the files, and says in one line what is wrong with one: missing, unreadable by the user the
agent runs as, readable by group or others, not an Ed25519 key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import KeyFileError
from .osuser import effective_user


def generate_keypair(out_dir: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``gateway.key`` (PKCS#8 PEM, mode 0600) and ``gateway.pub`` (SubjectPublicKeyInfo PEM).

    Raises:
        KeyFileError: one line naming the path, when the folder or a file cannot be written.
    """
    _make_folder(out_dir)
    key_path, pub_path = out_dir / "gateway.key", out_dir / "gateway.pub"
    try:
        if key_path.exists() and not force:
            raise KeyFileError(f"{key_path} already exists; keep it, or pass --force to replace the gateway's identity")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
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
    """Load a public key (``gateway.pub``, or the platform's receipt key).

    Raises:
        KeyFileError: one line naming the file and what is wrong.
    """
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
