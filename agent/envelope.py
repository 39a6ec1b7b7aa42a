"""The message envelope of PROTOCOL.md: size limit, JWS (EdDSA, agent/jws.py) or plain JSON, claims, time.

Pure checks with no state: the replay guard (seen `jti`) and the trusted time
floor come from the store and are applied by the intake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import jws
from .errors import Rejection, SchemaError
from .schema import Int, List, Obj, OneOf, Str

if TYPE_CHECKING:
    from .runtime import Result

JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

CLAIMS = Obj({
    "jti": Str(min_len=1, max_len=128),
    "iat": Int(min=0, max=2**40),
    "exp": Int(min=0, max=2**40, optional=True),
    "type": Str(min_len=1, max_len=64),
    "aud": OneOf(Str(max_len=128), List(Str(max_len=128), max_len=256), what="a string or a list of strings",
                 optional=True),
    "params": Obj({}, extra=True, default=dict),
}, extra=True)


@dataclass
class Message:
    """A verified command or schedule."""

    jti: str
    type: str
    iat: int
    exp: int | None
    params: dict
    claims: dict
    kid: str | None = None
    topic: str = ""
    extra: dict = field(default_factory=dict)
    # A local operation (the `loa` CLI): its final result goes to this callable, never to the province.
    reply: Callable[[Result], None] | None = None


@dataclass
class Policy:
    require_signed: bool
    keys: dict[str, Path]
    max_clock_skew_s: int
    max_lifetime_s: int
    max_payload_bytes: int

    @classmethod
    def from_config(cls, sec: dict) -> Policy:
        return cls(sec["require_signed"], {k: Path(v) for k, v in sec["keys"].items()},
                   sec["max_clock_skew_s"], sec["max_lifetime_s"], sec["max_payload_bytes"])


class Envelope:
    def __init__(self, policy: Policy, device_id: str):
        self.policy = policy
        self.device_id = device_id
        self._keys: dict[str, jws.VerifyKey] | None = None

    def warm_up(self) -> None:
        """Parse the keys ahead of the first message, which may be an alert: its siren must not wait for them."""
        self._public_keys()

    def _public_keys(self) -> dict[str, jws.VerifyKey]:
        if self._keys is None:
            self._keys = {kid: jws.load_public_key(path.read_bytes()) for kid, path in self.policy.keys.items()}
        return self._keys

    def open(self, payload: bytes, *, now: float, floor: int, areas: list[str], schedule: bool = False) -> Message:
        """Verify one message; raise Rejection with the ack code of PROTOCOL.md."""
        if len(payload) > self.policy.max_payload_bytes:
            raise Rejection("bad_payload", f"payload of {len(payload)} bytes exceeds security.max_payload_bytes "
                                           f"({self.policy.max_payload_bytes})")
        body = payload.strip()
        kid = None
        if body.startswith(b"{"):
            claims = _json_object(body)
            if self.policy.require_signed:
                raise Rejection("unsigned", "unsigned message refused: security.require_signed is true",
                                **_ids(claims))
        elif JWS.fullmatch(body):
            claims, kid = self._verify(body)
        else:
            raise Rejection("bad_payload", "payload is neither a JSON object nor a JWS compact serialization")
        ids = _ids(claims)
        try:
            claims = CLAIMS.check(claims, "")
        except SchemaError as e:
            raise Rejection("bad_schema", str(e), **ids) from None
        msg = Message(jti=claims["jti"], type=claims["type"], iat=claims["iat"], exp=claims.get("exp"),
                      params=claims["params"], claims=claims, kid=kid)
        self._check_audience(claims.get("aud"), areas, ids)
        self._check_time(msg, now=now, floor=floor, schedule=schedule, ids=ids)
        return msg

    def _verify(self, token: bytes) -> tuple[dict, str]:
        try:
            header = jws.header(token)
        except jws.JWSError as e:
            raise Rejection("bad_payload", f"malformed JWS header: {e}") from None
        kid = header.get("kid")
        if header.get("alg") != "EdDSA":
            raise Rejection("bad_signature", f"alg {header.get('alg')!r} refused: only EdDSA is accepted")
        key = self._public_keys().get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Rejection("unknown_key", f"kid {kid!r} is not one of the provincial keys "
                                           f"({', '.join(self.policy.keys) or 'none configured'})")
        # Time, audience and claim types are checked by the caller with our own clock and codes.
        try:
            return jws.verify(token, key), kid
        except jws.InvalidSignature:
            raise Rejection("bad_signature", f"signature does not verify with key {kid!r}") from None
        except jws.JWSError as e:
            raise Rejection("bad_payload", f"malformed JWS: {e}") from None

    def _check_audience(self, aud: Any, areas: list[str], ids: dict) -> None:
        if aud is None:
            return
        names = [aud] if isinstance(aud, str) else aud
        if not {"*", self.device_id, *areas} & set(names):
            raise Rejection("not_for_me", f"aud {names} names neither this device nor its areas", **ids)

    def _check_time(self, msg: Message, *, now: float, floor: int, schedule: bool, ids: dict) -> None:
        p = self.policy
        # A clock behind the trusted floor (power cut, no RTC) cannot judge "future"; the floor judges "past".
        clock_trusted = now >= floor
        if clock_trusted and msg.iat > now + p.max_clock_skew_s:
            raise Rejection("not_yet_valid", f"iat {msg.iat} is more than {p.max_clock_skew_s} s in the future",
                            **ids)
        if msg.exp is None:
            if not schedule:
                raise Rejection("bad_schema", "exp: is required on commands", **ids)
            return
        if msg.exp - msg.iat > p.max_lifetime_s:
            raise Rejection("bad_schema", f"exp: more than security.max_lifetime_s ({p.max_lifetime_s}) after iat",
                            **ids)
        if msg.exp < max(now, floor):
            raise Rejection("expired", f"exp {msg.exp} is in the past", **ids)


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise Rejection("bad_payload", f"malformed JSON: {e}") from None
    if not isinstance(value, dict):
        raise Rejection("bad_payload", "payload is not a JSON object")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _ids(claims: Any) -> dict:
    """Best-effort id and type to echo in a rejection ack (the server correlates by them)."""
    if not isinstance(claims, dict):
        return {"jti": None, "type_": None}
    jti, type_ = claims.get("jti"), claims.get("type")
    return {"jti": jti if isinstance(jti, str) and 0 < len(jti) <= 128 else None,
            "type_": type_ if isinstance(type_, str) and len(type_) <= 64 else None}
