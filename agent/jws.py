"""Compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037), verified with PyNaCl (libsodium).

Why not PyJWT in the daemon: `import jwt` loads all of cryptography (its Rust core) and, for its JWKS
client, urllib, http.client and email: about 12 MB resident, a third of the idle agent on a 512 MB box, to
verify the one JWS form the agent receives. PyNaCl is PyCA's libsodium binding (1.8 MB). PyJWT still
verifies release bundles (agent/bundle.py, imported when an update arrives) and the console signs with it;
tests/unit/test_jws.py checks this verifier against PyJWT on the same tokens, good and tampered.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

# The DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410) is this fixed prefix and the 32-byte key.
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----\s+([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----\s*")


class JWSError(ValueError):
    """Malformed token: not three base64url parts, or a header or payload that is not a JSON object."""


class InvalidSignature(Exception):
    """Well-formed, but the signature does not verify with the key."""


def load_public_key(pem: bytes) -> VerifyKey:
    """An Ed25519 public key from its SubjectPublicKeyInfo PEM (as the console writes it); ValueError if the
    file holds anything else (another algorithm, a certificate, a private key, trailing data)."""
    m = PEM.fullmatch(pem)
    if not m:
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
    except binascii.Error as e:
        raise ValueError(f"bad base64 in the PEM block: {e}") from None
    if len(der) != len(SPKI_PREFIX) + 32 or not der.startswith(SPKI_PREFIX):
        raise ValueError("not an Ed25519 public key")
    return VerifyKey(der[len(SPKI_PREFIX):])


def header(token: bytes) -> dict:
    """The protected header, unverified (it names the key that verifies the token)."""
    return _json(_part(token, 0), "header")


def verify(token: bytes, key: VerifyKey) -> dict:
    """The payload of a compact JWS whose EdDSA signature verifies with `key`. The caller has checked the
    header's alg and kid; a `crit` header is refused, since this verifier implements no extension."""
    if "crit" in header(token):
        raise JWSError("crit header: no JWS extension is supported")
    head, payload, signature = token.split(b".")
    try:
        key.verify(head + b"." + payload, _b64url(signature))
    except (BadSignatureError, ValueError):  # ValueError: a signature that is not 64 bytes
        raise InvalidSignature from None
    return _json(payload, "payload")


def _part(token: bytes, i: int) -> bytes:
    parts = token.split(b".")
    if len(parts) != 3:
        raise JWSError(f"{len(parts)} parts, not 3")
    return parts[i]


def _b64url(part: bytes) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
    except binascii.Error as e:
        raise JWSError(f"bad base64url: {e}") from None


def _json(part: bytes, what: str) -> dict:
    try:
        value = json.loads(_b64url(part))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise JWSError(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise JWSError(f"{what} is not a JSON object")
    return value
