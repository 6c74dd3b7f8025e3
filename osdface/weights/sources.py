"""What facexlib's weights (``osdface.weights.facexlib_files``) and the other restorers' weights
(``osdface.restorers.weight_files``) share: the settings of where to look, the local folder and the
cache steps, the offline switch and the download into the cache.

Each subclass adds its Hub step and its error message; the order is the same for both:
local folder, our cache, a Hub repo when one is configured, the release URL (not offline).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from osdface.files import download_atomic

ENV_CACHE = "OSDFACE_CACHE"
ENV_OFFLINE = "OSDFACE_OFFLINE"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline_from_env() -> bool:
    return env_flag(ENV_OFFLINE) or env_flag("HF_HUB_OFFLINE")


def cache_dir_for(kind: str) -> Path:
    """``$OSDFACE_CACHE/<kind>``, else ``$XDG_CACHE_HOME/osdface/<kind>``, else
    ``~/.cache/osdface/<kind>``."""
    root = os.environ.get(ENV_CACHE)
    if root:
        return Path(root).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "osdface" / kind


@dataclass(frozen=True)
class WeightSources:
    """Settings: where to look for release files. Subclasses give ``cache_dir`` its default."""

    local_dir: Path | None = None
    hub_repo: str | None = None
    hub_revision: str | None = None
    cache_dir: Path = Path()
    offline: bool = False

    def _local_or_cached(self, filename: str, tried: list[str]) -> Path | None:
        """The file from the local folder, else from our cache; each miss is added to ``tried``."""
        if self.local_dir is not None:
            candidate = self.local_dir / filename
            if candidate.is_file():
                return candidate
            tried.append(f"local folder {self.local_dir}: no file {filename}")
        cached = self.cache_dir / filename
        if cached.is_file():
            return cached
        tried.append(f"cache {self.cache_dir}: not there yet")
        return None

    def _downloaded(self, filename: str, url: str, tried: list[str]) -> Path | None:
        """The file downloaded from ``url`` into our cache (not offline); a failure is added to
        ``tried`` (the caller raises one error naming every source)."""
        if self.offline:
            tried.append(f"{url}: not tried (offline: {ENV_OFFLINE} or HF_HUB_OFFLINE is set)")
            return None
        try:
            return download_atomic(url, self.cache_dir / filename)
        except Exception as exc:  # noqa: BLE001 - recorded; the caller raises with every source
            tried.append(f"{url}: {type(exc).__name__}: {exc}")
            return None
