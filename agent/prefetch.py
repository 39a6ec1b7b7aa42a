"""Keeps the media cache ready for the schedule and for alerts: fetches the recorded announcements and
what is due within `cache.prefetch_hours` (two downloads at a time, on worker threads, with backoff), evicts
least recently used media over `cache.max_mb` but never those, and reports what cannot be had."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .audio.loudness import measure_cached
from .i18n import Msg
from .media import Downloader, MediaError
from .messages import Call
from .runtime import Runtime

if TYPE_CHECKING:
    from .media import MediaCache
    from .schedule import Schedule

log = logging.getLogger("agent.prefetch")

PERIOD_S = 900.0
SLOTS = 2  # downloads at once: one that trickles (until cache.download_deadline_s) does not hold up the rest


class Prefetcher:
    def __init__(self, rt: Runtime, cache: MediaCache, schedule: Schedule):
        self.rt = rt
        self.cache = cache
        self.schedule = schedule
        self.downloader = Downloader(cache)
        self.missing: dict[str, dict] = {}  # digest -> {url, error, failures, retry_at}
        self.fetching: set[str] = set()

    def start(self) -> None:
        self.rt.every(lambda: PERIOD_S, self.run)
        self.rt.call_later(1.0, self.run)

    def schedule_changed(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.run()  # fetch the new media now, not in 15 minutes

    def needed(self) -> dict[str, dict]:
        """The announcements an alert may name (always, first), then media of file items due within the prefetch
        horizon: digest -> source (earliest first)."""
        now = self.rt.clock()
        out: dict[str, dict] = {e["sha256"]: {**e, "due": None} for e in self.rt.cfg["announcements"].values()}
        horizon = self.rt.cfg["cache"]["prefetch_hours"] * 3600
        for occ in self.schedule.firsts(now, now + horizon):  # one per item: 2,000 items at one a minute is 5.8 M
            src = occ.item.get("source") or {}
            if src.get("kind") == "file":
                out.setdefault(src["sha256"], {**src, "due": occ.at})
        from .display import playlist

        for digest, scene in playlist.media_between(playlist.display_items(self.schedule), now,
                                                    now + horizon).items():
            out.setdefault(digest, scene)
        return out

    def run(self) -> None:
        needed = self.needed()
        removed = self.cache.evict(self.rt.cfg["cache"]["max_mb"] * 2**20, keep=set(needed))
        if removed:
            log.info("cache: evicted %d least recently used file(s)", len(removed))
        todo = [(d, s) for d, s in needed.items() if not (self.cache.dir / d).exists()]
        for digest in list(self.missing):
            if digest not in needed:
                del self.missing[digest]
        if not any(d in self.missing for d, _ in todo):
            self.rt.faults.clear("cache_missing")
        now = self.rt.clock()
        for digest, src in todo:
            if len(self.fetching) >= SLOTS:
                break
            if digest not in self.fetching and self.missing.get(digest, {}).get("retry_at", 0) <= now:
                self._start(digest, src)

    @property
    def busy(self) -> str | None:
        """One of the downloads under way (the status shows one)."""
        return min(self.fetching) if self.fetching else None

    def _start(self, digest: str, src: dict) -> None:
        self.fetching.add(digest)

        def work() -> None:
            try:
                path = self.downloader.fetch(src["url"], digest, src.get("size"))
                error = None
                if src.get("kind", "file") == "file":  # sound (not a board's picture): measured once, now, as
                    measure_cached(path)  # it is cached, while nothing waits for it
            except MediaError as e:
                error = (e.code, str(e))
            except OSError as e:
                error = ("media_unavailable", f"{type(e).__name__}: {e}")
            self.rt.post(Call(lambda: self._done(digest, src, error)))

        threading.Thread(target=work, name="prefetch", daemon=True).start()

    def _done(self, digest: str, src: dict, error: tuple[str, str] | None) -> None:
        self.fetching.discard(digest)
        if error is None:
            log.info("cache: fetched %s…", digest[:12])
            self.missing.pop(digest, None)
            self.rt.faults.clear("disk_low")
        else:
            code, message = error
            entry = self.missing.setdefault(digest, {"failures": 0})
            entry.update(url=src["url"], error=message, failures=entry["failures"] + 1)
            entry["retry_at"] = self.rt.clock() + min(3600.0, 30.0 * 2 ** (entry["failures"] - 1))
            log.warning("cache: cannot fetch %s: %s (retry in %.0f s)", src["url"], message,
                        entry["retry_at"] - self.rt.clock())
            if code == "disk_full":
                self.rt.faults.raise_("disk_low", Msg("no space left to cache media (%(error)s)", error=message))
            if entry["failures"] == 1:
                self.rt.emit_event("media.missing", {"sha256": digest, "url": src["url"], "due": src.get("due"),
                                                       "error": message})
                self.rt.faults.raise_("cache_missing", Msg("media due soon cannot be fetched: %(error)s",
                                                           error=message))
        self.rt.call_later(0, self.run)  # next in line

    def stats(self) -> dict:
        return {**self.cache.stats(), "missing": len(self.missing)}
