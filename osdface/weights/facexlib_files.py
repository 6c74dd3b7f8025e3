"""Where facexlib's weights come from, and how they are loaded safely.

facexlib downloads its weights into its own ``site-packages`` folder on first use and loads
them with a plain ``torch.load``. We resolve them ourselves instead, in this order:

1. a local folder (``OSDFACE_FACEXLIB_DIR`` or an argument, e.g. the CLI's ``--facexlib-dir``);
2. our own cache (``$OSDFACE_CACHE/facexlib``, default ``~/.cache/osdface/facexlib``);
3. a Hugging Face Hub repo holding the same file names, when one is configured
   (``OSDFACE_FACEXLIB_REPO``, ``OSDFACE_FACEXLIB_REVISION``); those files stay in the
   standard Hugging Face cache, so a Space can preload them;
4. facexlib's published release URL, downloaded to a temporary file in our cache and renamed
   into place atomically (so concurrent processes never read a half-written file).

Offline (``OSDFACE_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) steps 3 and 4 only look at what is
already cached. Files are loaded with ``torch.load(weights_only=True)``: no pickled code runs.

The identity metric reuses this module for ``recognition_arcface_ir_se50.pth``; keep the API
(``FacexlibWeights.from_env``, ``.path``, ``load_facexlib_state_dict``) stable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import lazy
from osdface.weights.hub import WeightsUnavailableError
from osdface.weights.reachability import hub_unreachable
from osdface.weights.sources import WeightSources, cache_dir_for, offline_from_env

huggingface_hub = lazy.module("huggingface_hub")
torch = lazy.module("torch")

if TYPE_CHECKING:
    import torch

ENV_LOCAL_DIR = "OSDFACE_FACEXLIB_DIR"
ENV_REPO = "OSDFACE_FACEXLIB_REPO"
ENV_REVISION = "OSDFACE_FACEXLIB_REVISION"

_RELEASES = "https://github.com/xinntao/facexlib/releases/download"

# File name -> facexlib's own download URL (facexlib 0.3.0: detection/, parsing/ and
# recognition/__init__.py). Note that BiSeNet lives under v0.2.0, ParseNet under v0.2.2.
FACEXLIB_URLS: dict[str, str] = {
    "detection_Resnet50_Final.pth": f"{_RELEASES}/v0.1.0/detection_Resnet50_Final.pth",
    "detection_mobilenet0.25_Final.pth": f"{_RELEASES}/v0.1.0/detection_mobilenet0.25_Final.pth",
    "parsing_parsenet.pth": f"{_RELEASES}/v0.2.2/parsing_parsenet.pth",
    "parsing_bisenet.pth": f"{_RELEASES}/v0.2.0/parsing_bisenet.pth",
    "recognition_arcface_ir_se50.pth": f"{_RELEASES}/v0.1.0/recognition_arcface_ir_se50.pth",
}


class FacexlibWeightsError(WeightsUnavailableError):
    """A facexlib weight file could not be found, downloaded or read.

    The message names the file, every source tried (with why it failed) and the fix.
    """


def default_cache_dir() -> Path:
    """``$OSDFACE_CACHE/facexlib``, else ``$XDG_CACHE_HOME/osdface/facexlib``, else
    ``~/.cache/osdface/facexlib``."""
    return cache_dir_for("facexlib")


@dataclass(frozen=True)
class FacexlibWeights(WeightSources):
    """Settings: where to look for facexlib's weight files (see the module docstring)."""

    cache_dir: Path = field(default_factory=default_cache_dir)

    @classmethod
    def from_env(cls, **overrides: object) -> FacexlibWeights:
        """Settings from the environment; keyword arguments that are not None win.

        Accepted keywords: ``local_dir``, ``hub_repo``, ``hub_revision``, ``cache_dir``,
        ``offline``.
        """
        local_dir = os.environ.get(ENV_LOCAL_DIR)
        settings = cls(
            local_dir=Path(local_dir).expanduser() if local_dir else None,
            hub_repo=os.environ.get(ENV_REPO) or None,
            hub_revision=os.environ.get(ENV_REVISION) or None,
            cache_dir=default_cache_dir(),
            offline=offline_from_env(),
        )
        given = {key: value for key, value in overrides.items() if value is not None}
        unknown = set(given) - {"local_dir", "hub_repo", "hub_revision", "cache_dir", "offline"}
        if unknown:
            raise TypeError(f"FacexlibWeights.from_env got unknown settings: {sorted(unknown)}")
        for key in ("local_dir", "cache_dir"):
            if key in given:
                given[key] = Path(given[key]).expanduser()  # type: ignore[arg-type]
        return replace(settings, **given)  # type: ignore[arg-type]

    def path(self, name: str) -> Path:
        """Local path of the weight file ``name``, fetching it if needed.

        Raises ``ValueError`` for a name facexlib does not publish and
        ``FacexlibWeightsError`` when no source has the file.
        """
        if name not in FACEXLIB_URLS:
            raise ValueError(f"unknown facexlib weight file {name!r}; known: {sorted(FACEXLIB_URLS)}")
        tried: list[str] = []
        found = self._local_or_cached(name, tried)
        if found is not None:
            return found

        if self.hub_repo:
            try:
                return self._from_hub(name)
            except Exception as exc:  # noqa: BLE001 - recorded and re-raised below with every source
                where = f"Hub repo {self.hub_repo}" + (f"@{self.hub_revision}" if self.hub_revision else "")
                tried.append(f"{where}: {type(exc).__name__}: {exc}")

        url = FACEXLIB_URLS[name]
        found = self._downloaded(name, url, tried)
        if found is not None:
            return found
        raise FacexlibWeightsError(_missing_message(name, url, tried, self.cache_dir))

    def _from_hub(self, name: str) -> Path:
        return Path(
            huggingface_hub.hf_hub_download(
                self.hub_repo,  # type: ignore[arg-type]
                name,
                revision=self.hub_revision,
                local_files_only=self.offline or hub_unreachable() is not None,
            )
        )


def _missing_message(name: str, url: str, tried: list[str], cache_dir: Path) -> str:
    # One item a line (places tried, then fixes): the app's toast and the CLI keep the lines.
    # Placeholders are plain words (FOLDER), not <folder>, which a browser would take for a tag.
    lines = "\n".join(f"  - {entry}" for entry in tried)
    return (
        f"facexlib weight file {name!r} is not available. Places tried:\n{lines}\n"
        f"Fix, any one of:\n"
        f"  - download {url} on a machine with internet access into a folder, then pass "
        f"--facexlib-dir FOLDER (the app and the osdface CLI) or set {ENV_LOCAL_DIR}=FOLDER\n"
        f"  - copy it to {cache_dir / name}\n"
        f"  - set {ENV_REPO} to a Hugging Face Hub repo that holds {name}"
    )


def load_facexlib_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a facexlib ``.pth`` state dict on the CPU without running pickled code.

    Strips the ``module.`` prefix that ``DataParallel`` left in some of facexlib's files.
    Raises ``FacexlibWeightsError`` naming the file if it is unreadable or not a state dict.
    """
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the fix
        raise FacexlibWeightsError(
            f"cannot load facexlib weights from {path}: {type(exc).__name__}: {exc}. "
            f"The file may be truncated or not a facexlib state dict: delete it and let it be "
            f"fetched again, or replace it with the file from {FACEXLIB_URLS.get(path.name, 'facexlib')}."
        ) from exc
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise FacexlibWeightsError(
            f"{path} does not hold a state dict of tensors (found {type(loaded).__name__}); "
            f"replace it with the file from {FACEXLIB_URLS.get(path.name, 'facexlib')}."
        )
    return {
        (key[len("module.") :] if key.startswith("module.") else key): value for key, value in loaded.items()
    }
