"""The `scene` object of PROTOCOL.md: what an e-board shows, checked by kind."""

from __future__ import annotations

from typing import Any

from ..audio.sources import URL
from ..schema import Int, Kinds, Obj, Str

MEDIA = {"kind": Str(), "url": URL, "sha256": Str(pattern=r"[0-9a-f]{64}"), "size": Int(min=0, optional=True),
         "title": Str(max_len=200, optional=True)}
KINDS: dict[str, Obj] = {
    "text": Obj({"kind": Str(), "title": Str(max_len=300, default=""), "body": Str(max_len=5000, default="")},
                validate=lambda v, p: None if (v["title"] or v["body"]) else _empty(p)),
    "image": Obj(MEDIA),
    "video": Obj(MEDIA),
    "ticker": Obj({"kind": Str(), "text": Str(min_len=1, max_len=2000)}),
}


def _empty(path: str) -> None:
    from ..errors import SchemaError

    raise SchemaError(path or "scene", "a text scene needs a title or a body")


def Scene(**kw: Any) -> Kinds:  # noqa: N802 (reads as a field type where schemas are declared)
    return Kinds(KINDS, **kw)
