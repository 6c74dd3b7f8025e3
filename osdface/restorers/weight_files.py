"""Where the weights of the other restorers (``osdface.restorers.loading``) and of Real-ESRGAN
(``osdface.restorers.backgrounds``) come from, and how they are read without running pickled code.

Each model is one release file (``WeightFile``). It is looked up in this order:

1. a local folder (``OSDFACE_RESTORERS_DIR`` or an argument) holding the file under its release name;
2. our own cache (``$OSDFACE_CACHE/restorers``, default ``~/.cache/osdface/restorers``);
3. a Hugging Face Hub repo holding the file under the same name, when one is configured: by
   argument, or per model ``OSDFACE_<KEY>_REPO`` (revision pinned by ``OSDFACE_<KEY>_REVISION``),
   e.g. ``OSDFACE_GFPGAN_REPO``; it stays in the standard Hub cache (``osdface.weights.hub.fetch``);
4. the model's official release URL, downloaded into our cache through a temporary file
   renamed into place (concurrent processes never read half a file).

Offline (``OSDFACE_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) step 4 is not tried. ``.pth`` files are
read with ``torch.load(weights_only=True)``, ``.safetensors`` with safetensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import lazy
from osdface.weights.hub import WeightsUnavailableError, fetch
from osdface.weights.sources import WeightSources, cache_dir_for, offline_from_env

# torch, safetensors and spandrel load with the first file: the app's page does not need them.
safetensors_torch = lazy.module("safetensors.torch")
spandrel = lazy.module("spandrel")
torch = lazy.module("torch")

if TYPE_CHECKING:
    import torch

ENV_LOCAL_DIR = "OSDFACE_RESTORERS_DIR"
# The variable's name before 0.3, read when the new one is unset (for one release).
ENV_LOCAL_DIR_OLD = "OSDFACE_PEERS_DIR"


@dataclass(frozen=True)
class WeightFile:
    """One release file. ``key`` names the environment variables (``OSDFACE_<KEY>_REPO``)."""

    key: str
    filename: str
    url: str

    @property
    def env_repo(self) -> str:
        return f"OSDFACE_{self.key.upper()}_REPO"

    @property
    def env_revision(self) -> str:
        return f"OSDFACE_{self.key.upper()}_REVISION"


def default_cache_dir() -> Path:
    """``$OSDFACE_CACHE/restorers``, else ``$XDG_CACHE_HOME/osdface/restorers``, else ``~/.cache/osdface/restorers``."""
    return cache_dir_for("restorers")


@dataclass(frozen=True)
class RestorerWeights(WeightSources):
    """Settings: where to look for release files (see the module docstring). ``hub_repo`` and
    ``hub_revision`` given here apply to every file; else each file's environment variables."""

    cache_dir: Path = field(default_factory=default_cache_dir)

    @classmethod
    def from_env(
        cls,
        local_dir: str | os.PathLike | None = None,
        hub_repo: str | None = None,
        hub_revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> RestorerWeights:
        """Arguments that are not None win over the environment."""
        local = local_dir or os.environ.get(ENV_LOCAL_DIR) or os.environ.get(ENV_LOCAL_DIR_OLD) or None
        return cls(
            local_dir=Path(local).expanduser() if local else None,
            hub_repo=hub_repo,
            hub_revision=hub_revision,
            cache_dir=Path(cache_dir).expanduser() if cache_dir else default_cache_dir(),
            offline=offline_from_env(),
        )

    def path(self, file: WeightFile) -> Path:
        """Local path of ``file``, fetching it if needed; ``WeightsUnavailableError`` naming
        every source tried (and why it failed) and the fix when none has it."""
        tried: list[str] = []
        found = self._local_or_cached(file.filename, tried)
        if found is not None:
            return found
        repo = self.hub_repo or os.environ.get(file.env_repo) or None
        if repo:
            revision = self.hub_revision or os.environ.get(file.env_revision) or None
            try:
                return fetch(repo, file.filename, revision, env_var=file.env_repo)
            except WeightsUnavailableError as exc:
                tried.append(f"Hub repo {repo}" + (f"@{revision}" if revision else "") + f": {exc}")
        found = self._downloaded(file.filename, file.url, tried)
        if found is not None:
            return found
        lines = "\n".join(f"  - {entry}" for entry in tried)
        raise WeightsUnavailableError(
            f"{file.key} weights {file.filename!r} are not available. Tried:\n{lines}\n"
            f"Fix: download {file.url} and put it in a folder named by {ENV_LOCAL_DIR}, or copy it to "
            f"{self.cache_dir / file.filename}; or set {file.env_repo} to a Hugging Face Hub repo that holds {file.filename}."
        )


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A release file's state dict on the CPU, without running pickled code, unwrapped the way
    spandrel expects (``params_ema``, ``params``, ``state_dict``... and ``module.`` prefixes)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            loaded = safetensors_torch.load_file(path)
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the fix
        raise WeightsUnavailableError(
            f"cannot read {path}: {type(exc).__name__}: {exc}. The file may be truncated or not a "
            "state dict: delete it so it is fetched again, or replace it with the release file."
        ) from exc
    if not isinstance(loaded, dict):
        raise WeightsUnavailableError(f"{path} does not hold a state dict (found {type(loaded).__name__}).")
    return spandrel.canonicalize_state_dict(loaded)
