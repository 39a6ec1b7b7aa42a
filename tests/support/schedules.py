"""Schedule documents as the province sends them: signed, retained, with items at local wall-clock times."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agent.topics import target
from loa_console.keys import make_claims, sign

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).replace(tzinfo=None, microsecond=0).isoformat()


def publish_schedule(province, version: int, items: list[dict], *, to: str = "dev:GL-0001", **extra) -> str:
    claims = make_claims("schedule", None, lifetime_s=None, version=version, tz="Asia/Ho_Chi_Minh",
                                 items=items, **extra)
    province.publish(target("ttcs/v1", to, "schedule"), sign(claims, province.key, "prov-1"),
                     retain=True)
    return claims["jti"]


def tone_item(item_id: str, at: float, **kw) -> dict:
    return {"id": item_id, "title": f"Bản tin {item_id}", "source": {"kind": "tone", "name": "test",
                                                                   "duration_s": kw.pop("tone_s", 1)},
            "start": local(at), **kw}
