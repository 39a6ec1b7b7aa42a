"""Emergency alerts: the `alert` command's params or an OASIS CAP 1.2 document, turned into one Alert.

CAP is parsed with defusedxml (no entity expansion, no external entities) after a size check. Mapping
(documented in docs/protocol.md):

| CAP                                                   | here                                        |
|-------------------------------------------------------|---------------------------------------------|
| status Actual                                         | plays                                       |
| status Exercise, Test                                 | a drill: distinct chime, "đây là tin thử    |
|                                                       | nghiệm", at priority, flagged in events     |
| status System, Draft                                  | not played (ack done, played: false)        |
| urgency Immediate/Expected and severity Extreme/Severe| level emergency                             |
| anything else                                         | level priority                              |
| msgType Update / Cancel                               | act on the alerts named in `references`     |
| info in vi / vi-VN                                    | preferred, else the first info              |
| area: geocode value in device.areas, or polygon/circle| "here"; areas none of which match: not_for_me|
|       containing device.location; no area            | everywhere                                  |
| parameter LOA_ANNOUNCEMENT (repeatable)               | recordings (config `announcements`) played  |
|                                                       | instead of speaking the text                |
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import Rejection

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
MAX_CAP_BYTES = 128 * 1024
ANNOUNCEMENT_PARAM = "LOA_ANNOUNCEMENT"
MAX_ANNOUNCEMENTS = 8
DRILL_NOTICE = "Đây là tin thử nghiệm."


@dataclass
class Alert:
    identifier: str
    status: str = "actual"  # actual | exercise | test | system | draft
    level: str = "emergency"
    headline: str = ""
    description: str = ""
    instruction: str = ""
    expires: float | None = None
    siren: bool = True
    repeat: int = 3
    audio: dict | None = None  # a source (file) to play instead of speaking the text
    audio_error: str | None = None
    msg_type: str = "alert"  # alert | update | cancel
    references: list[str] = field(default_factory=list)
    lang: str = "vi"
    announcements: list[str] = field(default_factory=list)  # names of pre-recorded announcements, in order

    @property
    def drill(self) -> bool:
        return self.status in ("exercise", "test")

    @property
    def plays(self) -> bool:
        return self.status in ("actual", "exercise", "test")

    def speech(self) -> str:
        parts = [DRILL_NOTICE] if self.drill else []
        parts += [p.strip() for p in (self.headline, self.description, self.instruction) if p and p.strip()]
        if self.drill:
            parts.append(DRILL_NOTICE)
        return " ".join(parts)

    def summary(self) -> dict:
        return {"identifier": self.identifier, "status": self.status, "level": self.level, "drill": self.drill,
                "headline": self.headline, "expires": self.expires}


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise Rejection("bad_schema", f"not an ISO date-time: {text!r}") from None


def from_params(params: dict, jti: str) -> Alert:
    return Alert(identifier=jti, status=params.get("status", "actual"), headline=params["headline"],
                 description=params.get("description", ""), instruction=params.get("instruction", ""),
                 expires=_ts(params.get("expires")), siren=params.get("siren", True), repeat=params.get("repeat", 3),
                 audio=params.get("audio"), announcements=params.get("announcements", []),
                 level="priority" if params.get("status") in ("test", "exercise")
                 else "emergency")


def from_cap(xml: str, *, areas: list[str], location: dict | None, repeat: int = 3, siren: bool = True) -> Alert:
    """Parse a CAP 1.2 <alert>; Rejection(not_for_me) when its areas are elsewhere."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    raw = xml.encode()
    if len(raw) > MAX_CAP_BYTES:
        raise Rejection("bad_payload", f"params.cap: larger than {MAX_CAP_BYTES} bytes")
    try:
        root = ElementTree.fromstring(raw, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError, LookupError) as e:  # LookupError: encoding
        raise Rejection("bad_schema", f"params.cap: not a well-formed CAP document ({e})") from None
    ns = {"c": CAP_NS}
    if root.tag != f"{{{CAP_NS}}}alert":
        raise Rejection("bad_schema", "params.cap: the root must be a CAP 1.2 <alert>")

    def text(el: Any, name: str) -> str:
        found = el.find(f"c:{name}", ns)
        return (found.text or "").strip() if found is not None else ""

    identifier = text(root, "identifier")
    if not identifier:
        raise Rejection("bad_schema", "params.cap: <identifier> is required")
    alert = Alert(identifier=identifier, status=text(root, "status").lower() or "actual",
                  msg_type=text(root, "msgType").lower() or "alert", repeat=repeat, siren=siren,
                  references=[r.split(",")[1] for r in text(root, "references").split() if r.count(",") >= 2])
    infos = root.findall("c:info", ns)
    info = next((i for i in infos if text(i, "language").lower() in ("vi", "vi-vn")), infos[0] if infos else None)
    if info is None:
        return alert  # a Cancel may carry no info
    alert.lang = "vi" if text(info, "language").lower().startswith("vi") or not text(info, "language") else "en"
    alert.headline, alert.description = text(info, "headline"), text(info, "description")
    alert.instruction = text(info, "instruction")
    alert.expires = _ts(text(info, "expires"))
    urgent = text(info, "urgency") in ("Immediate", "Expected")
    severe = text(info, "severity") in ("Extreme", "Severe")
    alert.level = "emergency" if urgent and severe and not alert.drill else "priority"
    _match_area(info, ns, areas, location)
    alert.announcements = [text(p, "value") for p in info.findall("c:parameter", ns)
                           if text(p, "valueName").upper() == ANNOUNCEMENT_PARAM and text(p, "value")]
    if len(alert.announcements) > MAX_ANNOUNCEMENTS:
        raise Rejection("bad_schema", f"params.cap: more than {MAX_ANNOUNCEMENTS} {ANNOUNCEMENT_PARAM} parameters")
    for res in info.findall("c:resource", ns):
        if not text(res, "mimeType").startswith("audio/"):
            continue
        alert.audio = {"uri": text(res, "uri"), "digest": text(res, "digest").lower(),
                       "deref": text(res, "derefUri"), "mime": text(res, "mimeType")}
        break
    return alert


def _match_area(info: Any, ns: dict, areas: list[str], location: dict | None) -> None:
    blocks = info.findall("c:area", ns)
    if not blocks:
        return  # no <area>: everywhere
    for area in blocks:
        for gc in area.findall("c:geocode", ns):
            value = gc.find("c:value", ns)
            if value is not None and (value.text or "").strip() in areas:
                return
        if location:
            point = (location["lat"], location["lon"])
            try:
                for poly in area.findall("c:polygon", ns):
                    if _in_polygon(point, _points(poly.text or "")):
                        return
                for circle in area.findall("c:circle", ns):
                    centre, _, radius = (circle.text or "").strip().partition(" ")
                    if radius and _distance_km(point, _points(centre)[0]) <= float(radius):
                        return
            except (ValueError, IndexError):
                raise Rejection("bad_schema", "params.cap: <polygon> must be \"lat,lon lat,lon ...\" and <circle> "
                                              "\"lat,lon radius_km\"") from None
    raise Rejection("not_for_me", "the alert's areas (geocode, polygon, circle) do not include this device")


def _points(text: str) -> list[tuple[float, float]]:
    out = []
    for pair in text.split():
        lat, _, lon = pair.partition(",")
        out.append((float(lat), float(lon)))
    return out


def _in_polygon(p: tuple[float, float], poly: list[tuple[float, float]]) -> bool:
    """Ray casting on lat/lon (fine at a commune's scale)."""
    lat, lon = p
    inside = False
    for (a_lat, a_lon), (b_lat, b_lon) in zip(poly, poly[1:] + poly[:1], strict=True):
        if (a_lon > lon) != (b_lon > lon):
            cross = a_lat + (lon - a_lon) * (b_lat - a_lat) / (b_lon - a_lon)
            if lat < cross:
                inside = not inside
    return inside


def _distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    from math import asin, cos, radians, sin, sqrt

    la1, lo1, la2, lo2 = map(radians, (*a, *b))
    h = sin((la2 - la1) / 2) ** 2 + cos(la1) * cos(la2) * sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * asin(sqrt(h))


def resource_bytes(audio: dict) -> bytes:
    """Inline (derefUri, base64) resource bytes, checked against CAP's SHA-1 digest when given."""
    data = base64.b64decode(audio["deref"], validate=False)
    check_digest(data, audio.get("digest"))
    return data


def check_digest(data: bytes, digest: str | None) -> None:
    if digest and hashlib.sha1(data).hexdigest() != digest:  # noqa: S324 - CAP 1.2 mandates SHA-1
        raise ValueError("the resource's bytes do not match its CAP digest (SHA-1)")
