"""The `source` object of PROTOCOL.md, checked by kind, naming the bad field."""

from __future__ import annotations

from typing import Any

from ..schema import Int, Kinds, List, Num, Obj, Str
from .tones import NAMES

URL = Str(min_len=1, max_len=2048, pattern=r"(?i)(https?|rtsp|rtmp|mms|icyx?|file)://\S+")
KINDS: dict[str, Obj] = {
    "file": Obj({"kind": Str(), "url": URL, "sha256": Str(pattern=r"[0-9a-f]{64}"),
                 "size": Int(min=0, optional=True)}),
    "stream": Obj({"kind": Str(), "urls": List(URL, min_len=1, max_len=10)}),
    "tts": Obj({"kind": Str(), "text": Str(min_len=1, max_len=5000), "lang": Str(max_len=16, default="vi")}),
    "tone": Obj({"kind": Str(), "name": Str(choices=NAMES), "duration_s": Num(min=0.1, max=3600, optional=True)}),
}


def Source(**kw: Any) -> Kinds:  # noqa: N802 (reads as a field type where schemas are declared)
    return Kinds(KINDS, **kw)
