"""Where the app writes each request's files: one folder per request in Gradio's cache, made only
when the request writes its first file, and removed once everything in it has expired.

Gradio serves files from its cache, and its ``delete_cache`` removes old ones; but it removes only
the files it handed out as a component's value (its shutdown clean-up too), never a folder, nor a
file that a handler wrote without returning it. So the app writes only the files it returns, and
``RequestFolders`` removes the request folders that Gradio leaves behind: empty ones, and ones
holding files left by a request that failed half-way.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Every half hour, delete files over an hour old: Gradio's delete_cache (app.py) for the uploads
# and the files returned, and ``RequestFolders.sweep`` for the request folders.
CLEANUP_EVERY = 1800
KEEP_FOR = 3600
PREFIX = "osdface-"

logger = logging.getLogger(__name__)


class RequestFolders:
    """New request folders inside ``cache_dir`` (Gradio's cache), and their removal.

    ``new()`` names a folder without making it: whoever writes the request's files makes it (the
    studio's steps do, with ``mkdir(parents=True, exist_ok=True)``), so a request refused before
    writing leaves nothing behind. ``new()`` also sweeps the expired folders, at most every
    ``every`` seconds: the same cadence as Gradio's ``delete_cache``, driven by the requests
    themselves, so no thread is needed and a server that serves nobody has nothing to sweep.
    ``lease()`` keeps a long request's folder from the sweep until the request ends.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        every: float = CLEANUP_EVERY,
        keep_for: float = KEEP_FOR,
        clock: Callable[[], float] = time.time,
    ):
        self.cache_dir = Path(cache_dir)
        self.every = every
        self.keep_for = keep_for
        self._clock = clock
        self._last_sweep: float | None = None
        self._live: set[Path] = set()
        self._lock = threading.Lock()

    def new(self) -> Path:
        """A folder name that no other request uses (not made yet)."""
        now = self._clock()
        with self._lock:
            due = self._last_sweep is None or now - self._last_sweep >= self.every
            if due:
                self._last_sweep = now
        if due:
            self.sweep(now)
        return self.cache_dir / f"{PREFIX}{uuid.uuid4().hex}"

    @contextmanager
    def lease(self) -> Iterator[Path]:
        """``new()``, kept from the sweep while the block runs: for a request that may write
        nothing into its folder for longer than ``keep_for`` (a clip restored on a CPU takes
        hours, and its encoder may hold back the first frames)."""
        folder = self.new()
        with self._lock:
            self._live.add(folder)
        try:
            yield folder
        finally:
            with self._lock:
                self._live.discard(folder)

    def sweep(self, now: float | None = None) -> list[Path]:
        """Remove every request folder whose newest entry (itself included) is over ``keep_for``
        seconds old, except the leased ones; returns those removed. A file that a live request
        may still read is newer than that: Gradio deletes the files it handed out at the same
        age, and refreshes the time of one it hands out again."""
        now = self._clock() if now is None else now
        with self._lock:
            live = set(self._live)
        removed = []
        for folder in [path for path in self.cache_dir.glob(f"{PREFIX}*") if path.is_dir()]:
            if folder in live:
                continue
            newest = newest_time(folder)
            if newest is not None and now - newest > self.keep_for:
                try:
                    shutil.rmtree(folder)
                except OSError as exc:  # another app sharing the cache removed it first
                    logger.debug("request folder %s not removed: %s", folder, exc)
                    continue
                removed.append(folder)
        return removed


def newest_time(folder: Path) -> float | None:
    """The newest modification or change time of ``folder`` and everything in it (change: Gradio
    refreshes a file it hands out again with ``os.utime``); None when it vanished meanwhile."""
    newest = None
    for root, _dirs, files in os.walk(folder):
        for path in (root, *(os.path.join(root, name) for name in files)):
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                continue
            stamp = max(status.st_mtime, status.st_ctime)
            newest = stamp if newest is None else max(newest, stamp)
    return newest
