"""agent/jws.py beside PyJWT: the same tokens, signed by the console, accepted or refused by both."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import jws
from loa_console.keys import generate_keypair, load_private_key, sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for kid in ("prov", "other"):
        private, public = generate_keypair(d, kid)
        out[kid] = (load_private_key(private), public.read_bytes())
    return out


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def pyjwt_verifies(token: bytes, public_pem: bytes) -> bool:
    try:
        jwt.decode(token, serialization.load_pem_public_key(public_pem), algorithms=["EdDSA"],
                   options={"verify_signature": True, "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError:
        return False
    return True


def ours_verifies(token: bytes, public_pem: bytes) -> bool:
    try:
        jws.verify(token, jws.load_public_key(public_pem))
    except (jws.InvalidSignature, jws.JWSError):
        return False
    return True


claims = st.dictionaries(st.text(min_size=1, max_size=12),
                         st.one_of(st.integers(-2**40, 2**40), st.text(max_size=40), st.booleans(), st.none()),
                         max_size=6)


@settings(max_examples=60, deadline=None)
@given(claims=claims, flip=st.integers(min_value=0, max_value=10_000))
def test_same_verdict_as_pyjwt_on_good_and_tampered_tokens(keys, claims, flip):
    private, public = keys["prov"]
    token = sign(claims, private, "prov").encode()
    assert jws.header(token) == {"alg": "EdDSA", "kid": "prov", "typ": "JWT"}
    assert jws.verify(token, jws.load_public_key(public)) == claims
    # One character of the signing input or the signature changed: both refuse (or both accept, if the change
    # only touched base64 padding bits that decode to the same bytes).
    i = flip % len(token)
    if token[i:i + 1] == b".":
        return
    alt = b"A" if token[i:i + 1] != b"A" else b"B"
    tampered = token[:i] + alt + token[i + 1:]
    assert ours_verifies(tampered, public) == pyjwt_verifies(tampered, public)


def test_another_provinces_key_does_not_verify(keys):
    token = sign({"jti": "x"}, keys["prov"][0], "prov").encode()
    with pytest.raises(jws.InvalidSignature):
        jws.verify(token, jws.load_public_key(keys["other"][1]))
    assert not pyjwt_verifies(token, keys["other"][1])


@pytest.mark.parametrize("token, error", [
    (b"a.b", "2 parts, not 3"),
    (b"a.b.c.d", "4 parts, not 3"),
    (b64(b"[1]") + b".e30.", "header is not a JSON object"),
    (b64(b"{nope") + b".e30.", "header is not JSON"),
    (b"A.e30.", "bad base64url"),
])
def test_malformed_tokens_are_jws_errors(token, error):
    with pytest.raises(jws.JWSError, match=error):
        jws.header(token)


def test_crit_header_is_refused_even_when_signed(keys):
    private, public = keys["prov"]
    token = jwt.encode({"jti": "x"}, private, algorithm="EdDSA", headers={"kid": "prov", "crit": ["exp"],
                                                                           "exp": 1}).encode()
    with pytest.raises(jws.JWSError, match="crit"):
        jws.verify(token, jws.load_public_key(public))


def test_signed_payload_that_is_not_an_object_is_refused(keys):
    private, public = keys["prov"]
    head = b64(json.dumps({"alg": "EdDSA", "kid": "prov"}).encode())
    payload = b64(b"[1, 2]")
    sig = b64(private.sign(head + b"." + payload))
    with pytest.raises(jws.JWSError, match="payload is not a JSON object"):
        jws.verify(head + b"." + payload + b"." + sig, jws.load_public_key(public))


def test_only_ed25519_public_keys_load(keys, tmp_path):
    private_pem = keys["prov"][0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    good = keys["prov"][1]
    for bad, why in [(private_pem, "not a PEM public key"), (ec_pem, "not an Ed25519 public key"),
                     (b"", "not a PEM public key"), (good + b"trailing", "not a PEM public key"),
                     (good.replace(b"MCow", b"MC*w"), "not a PEM public key")]:
        with pytest.raises(ValueError, match=why):
            jws.load_public_key(bad)
    # The console's PEM, with CRLF line ends (copied through Windows), loads as the same key.
    assert bytes(jws.load_public_key(good.replace(b"\n", b"\r\n"))) == bytes(jws.load_public_key(good))
