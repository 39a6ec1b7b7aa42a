"""Signing keys and tokens: the province's Ed25519 key pairs, and commands and schedules as compact JWS
(docs/protocol.md, "Commands and schedules: the envelope")."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def generate_keypair(directory: Path, kid: str) -> tuple[Path, Path]:
    """Write KID.key (Ed25519 private key, PKCS8 PEM, 0600) and KID.pub (SubjectPublicKeyInfo PEM, 0644).

    Refuses to overwrite an existing private key (FileExistsError). Returns (private, public).
    """
    if not KID.fullmatch(kid):
        raise ValueError(f"bad key id {kid!r}: use 1-64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{kid}.key", directory / f"{kid}.pub"
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    # O_EXCL: the check and the creation are one step, so a key is never silently replaced.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, private_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, public_pem)
    finally:
        os.close(fd)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (as written by generate_keypair)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def make_claims(type_: str, params: dict | None = None, *, jti: str | None = None, iat: int | None = None,
                lifetime_s: int | None = 600, aud: str | list[str] | None = None, now: float | None = None,
                **extra: Any) -> dict:
    """The claims of a command or schedule: jti, iat, exp (iat + lifetime_s; none when lifetime_s is None),
    type, aud and params when given, then any extra claims (version=, tz=, items= for schedules)."""
    if iat is None:
        iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"jti": jti if jti is not None else uuid.uuid4().hex, "iat": iat}
    if lifetime_s is not None:
        claims["exp"] = iat + int(lifetime_s)
    claims["type"] = type_
    if aud is not None:
        claims["aud"] = aud
    if params is not None:
        claims["params"] = params
    claims.update(extra)
    return claims


def sign(claims: dict, private_key: Any, kid: str) -> str:
    """The claims as a compact JWS with header {"alg": "EdDSA", "kid": kid} (PyJWT also adds "typ")."""
    return jwt.encode(claims, private_key, algorithm="EdDSA", headers={"kid": kid})
