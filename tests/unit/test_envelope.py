"""The envelope's checks, one per ack code, on crafted messages (no broker needed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.envelope import Envelope, Policy
from agent.errors import Rejection
from loa_console.keys import load_private_key, make_claims, sign

NOW = 1_800_000_000


@pytest.fixture
def env(keys: dict[str, Path]) -> Envelope:
    pub = {kid: p.with_suffix(".pub") for kid, p in keys.items() if kid == "prov-1"}
    return Envelope(Policy(True, pub, 300, 86400, 256 * 1024), "GL-0001")


@pytest.fixture
def key(keys: dict[str, Path]):
    return load_private_key(keys["prov-1"])


def signed(key, type_="status.get", kid="prov-1", **kw) -> bytes:
    kw.setdefault("now", NOW)
    return sign(make_claims(type_, **kw), key, kid).encode()


def code_of(env: Envelope, payload: bytes, **kw) -> str:
    with pytest.raises(Rejection) as e:
        env.open(payload, now=kw.pop("now", NOW), floor=kw.pop("floor", 0), areas=["64"], **kw)
    return e.value.code


def test_valid_signed_message_opens(env, key):
    msg = env.open(signed(key, params={"lines": 3}), now=NOW, floor=0, areas=["64"])
    assert msg.type == "status.get" and msg.params == {"lines": 3} and msg.kid == "prov-1"


@pytest.mark.parametrize("payload", [b"", b"not json", b"{\"jti\": ", b"[1, 2]", b"a.b", b"\xff\xfe{}"])
def test_unparseable_is_bad_payload(env, payload):
    assert code_of(env, payload) == "bad_payload"


def test_oversize_is_rejected_unparsed(env):
    assert code_of(env, b"{" + b" " * (300 * 1024) + b"}") == "bad_payload"


def test_unsigned_refused_when_required(env):
    claims = make_claims("status.get", now=NOW)
    with pytest.raises(Rejection) as e:
        env.open(json.dumps(claims).encode(), now=NOW, floor=0, areas=[])
    assert e.value.code == "unsigned" and e.value.jti == claims["jti"]


def test_unknown_kid(env, keys):
    other = load_private_key(keys["prov-2"])
    assert code_of(env, signed(other, kid="prov-2")) == "unknown_key"


def test_signature_by_wrong_key_is_bad_signature(env, keys):
    other = load_private_key(keys["prov-2"])
    assert code_of(env, signed(other, kid="prov-1")) == "bad_signature"


def test_tampered_payload_is_bad_signature(env, key):
    head, body, sig = signed(key).split(b".")
    import base64
    claims = json.loads(base64.urlsafe_b64decode(body + b"=="))
    claims["type"] = "restart"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    assert code_of(env, b".".join([head, forged, sig])) == "bad_signature"


def test_hs256_token_is_refused(env):
    import jwt
    secret = "an-hmac-secret-of-thirty-two-bytes!"
    token = jwt.encode(make_claims("status.get", now=NOW), secret, algorithm="HS256", headers={"kid": "prov-1"})
    assert code_of(env, token.encode()) == "bad_signature"


@pytest.mark.parametrize("drop,field", [("jti", "jti"), ("iat", "iat"), ("type", "type")])
def test_missing_claim_names_the_field(env, key, drop, field):
    claims = make_claims("status.get", now=NOW)
    del claims[drop]
    with pytest.raises(Rejection) as e:
        env.open(sign(claims, key, "prov-1").encode(), now=NOW, floor=0, areas=[])
    assert e.value.code == "bad_schema" and field in e.value.message


def test_wrong_types_name_the_field(env, key):
    claims = make_claims("status.get", now=NOW)
    claims["iat"] = "yesterday"
    with pytest.raises(Rejection) as e:
        env.open(sign(claims, key, "prov-1").encode(), now=NOW, floor=0, areas=[])
    assert e.value.code == "bad_schema" and "iat" in e.value.message


def test_command_without_exp(env, key):
    assert code_of(env, signed(key, lifetime_s=None)) == "bad_schema"


def test_schedule_without_exp_is_fine(env, key):
    env.open(signed(key, "schedule", lifetime_s=None), now=NOW, floor=0, areas=[], schedule=True)


def test_expired(env, key):
    assert code_of(env, signed(key, now=NOW - 1000, lifetime_s=60)) == "expired"


def test_far_future_iat(env, key):
    assert code_of(env, signed(key, now=NOW + 3600)) == "not_yet_valid"


def test_lifetime_over_the_limit(env, key):
    assert code_of(env, signed(key, lifetime_s=2 * 86400)) == "bad_schema"


def test_time_floor_expires_old_messages_even_with_a_clock_reset_to_1970(env, key):
    old = signed(key, now=NOW - 3600, lifetime_s=600)  # valid until NOW - 3000
    # The clock says 1970 (power cut, no RTC) but the floor remembers NOW.
    assert code_of(env, old, now=0, floor=NOW) == "expired"
    # A fresh message still opens although the clock is wrong.
    env.open(signed(key, now=NOW + 60), now=0, floor=NOW, areas=[])


@pytest.mark.parametrize("aud,ok", [("GL-0001", True), ("64", True), ("*", True), (["x", "64"], True),
                                    ("GL-0002", False), (["65"], False)])
def test_audience(env, key, aud, ok):
    payload = signed(key, aud=aud)
    if ok:
        env.open(payload, now=NOW, floor=0, areas=["64"])
    else:
        assert code_of(env, payload) == "not_for_me"
