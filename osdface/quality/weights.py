"""Where the metrics' weight files come from, and how pyiqa reads them without running pickled code.

IQA-PyTorch (pyiqa) downloads its files on first use into ``torch.hub``'s folder and loads them
with ``torch.load(weights_only=False)``; torchvision does the same for the LPIPS and DISTS
backbones. We fetch every file ourselves first, each from its official source, and only then
let pyiqa build the network:

1. a local folder (``OSDFACE_METRICS_DIR`` or ``--metrics-dir``) holding files under their
   published names;
2. pyiqa's files from its Hub repo ``chaofengc/IQA-PyTorch-Weights`` (``OSDFACE_METRICS_REPO``
   for another repo with the same names, ``OSDFACE_METRICS_REVISION`` to pin a branch, tag or
   commit), kept in the standard Hugging Face cache; torchvision's backbones from
   ``download.pytorch.org`` into our cache (``$OSDFACE_CACHE/metrics``), through a temporary file
   renamed into place;
3. each file is opened once the safe way (``torch.load(weights_only=True)``, ``scipy.io.loadmat``,
   ``numpy.load(allow_pickle=False)``) and refused with its name if it does not open so;
4. links to the files are laid out as a ``torch.hub`` folder (``pyiqa/NAME``, ``checkpoints/NAME``),
   and pyiqa builds the network with that folder as its download folder and
   ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` set, so its own ``torch.load`` calls run weights-only
   too. Found files are not downloaded again; offline (``OSDFACE_OFFLINE=1`` or
   ``HF_HUB_OFFLINE=1``) only cached files are used.

facexlib's files (ArcFace for Deg., RetinaFace for LMD) come through ``osdface.weights.facexlib_files``.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import lazy
from osdface.files import download_atomic
from osdface.weights.hub import WeightsUnavailableError
from osdface.weights.sources import cache_dir_for, offline_from_env

huggingface_hub = lazy.module("huggingface_hub")
np = lazy.module("numpy")
scipy_io = lazy.module("scipy.io")
torch = lazy.module("torch")
pyiqa_download = lazy.module("pyiqa.utils.download_util")

if TYPE_CHECKING:
    import numpy as np
    import torch

ENV_LOCAL_DIR = "OSDFACE_METRICS_DIR"
ENV_REPO = "OSDFACE_METRICS_REPO"
ENV_REVISION = "OSDFACE_METRICS_REVISION"
ENV_FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"

IQA_WEIGHTS_REPO = "chaofengc/IQA-PyTorch-Weights"  # pyiqa's get_url_from_name (arch_util.py)
TORCHVISION_URL = "https://download.pytorch.org/models"
# The ImageNet backbones torchvision loads inside pyiqa's LPIPS (AlexNet) and DISTS (VGG16).
TORCHVISION_FILES = frozenset({"alexnet-owt-7be5be79.pth", "vgg16-397923af.pth"})
# FFHQ 512 statistics of clean-fid, published in pyiqa's repo: the usual FID reference for faces.
FFHQ_STATS = "ffhq_clean_trainval70k_512.npz"

# pyiqa and torchvision read process-wide settings (torch.hub's folder, an environment
# variable): one network is built at a time.
_BUILDING = threading.Lock()


class MetricWeightsError(WeightsUnavailableError):
    """A metric's weight file could not be found, fetched or opened safely (the message names
    the file, every place tried and the fix)."""


def default_cache_dir() -> Path:
    return cache_dir_for("metrics")


@dataclass(frozen=True)
class MetricWeights:
    """Settings: where to look for the metrics' files (see the module docstring)."""

    local_dir: Path | None = None
    hub_repo: str = IQA_WEIGHTS_REPO
    hub_revision: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    offline: bool = False

    @classmethod
    def from_env(cls, **overrides: object) -> MetricWeights:
        """Settings from the environment; keyword arguments that are not None win."""
        local_dir = os.environ.get(ENV_LOCAL_DIR)
        settings = cls(
            local_dir=Path(local_dir).expanduser() if local_dir else None,
            hub_repo=os.environ.get(ENV_REPO) or IQA_WEIGHTS_REPO,
            hub_revision=os.environ.get(ENV_REVISION) or None,
            cache_dir=default_cache_dir(),
            offline=offline_from_env(),
        )
        given = {key: value for key, value in overrides.items() if value is not None}
        for key in ("local_dir", "cache_dir"):
            if key in given:
                given[key] = Path(given[key]).expanduser()  # type: ignore[arg-type]
        return replace(settings, **given)  # type: ignore[arg-type]

    @property
    def hub_dir(self) -> Path:
        """The ``torch.hub``-shaped folder of links that pyiqa and torchvision read from."""
        return self.cache_dir / "torch-hub"

    def path(self, name: str) -> Path:
        """The local path of the file ``name``, fetched if needed and checked to open safely.
        Raises ``MetricWeightsError`` naming every place tried and the fix."""
        tried: list[str] = []
        found = self._find(name, tried)
        if found is None:
            raise MetricWeightsError(_missing_message(name, tried, self))
        check_opens_safely(found)
        return found

    def _find(self, name: str, tried: list[str]) -> Path | None:
        if self.local_dir is not None:
            candidate = self.local_dir / name
            if candidate.is_file():
                return candidate
            tried.append(f"local folder {self.local_dir}: no file {name}")
        if name in TORCHVISION_FILES:
            cached = self.cache_dir / name
            if cached.is_file():
                return cached
            tried.append(f"cache {self.cache_dir}: not there yet")
            url = f"{TORCHVISION_URL}/{name}"
            if self.offline:
                tried.append(f"{url}: not tried (offline: OSDFACE_OFFLINE or HF_HUB_OFFLINE is set)")
                return None
            try:
                return download_atomic(url, cached)
            except Exception as exc:  # noqa: BLE001 - recorded; raised with every source
                tried.append(f"{url}: {type(exc).__name__}: {exc}")
                return None
        where = f"Hub repo {self.hub_repo}" + (f"@{self.hub_revision}" if self.hub_revision else "")
        try:
            return Path(
                huggingface_hub.hf_hub_download(
                    self.hub_repo, name, revision=self.hub_revision, local_files_only=self.offline
                )
            )
        except Exception as exc:  # noqa: BLE001 - recorded; raised with every source
            reason = (
                "not in the Hugging Face cache (offline)" if self.offline else f"{type(exc).__name__}: {exc}"
            )
            tried.append(f"{where}: {reason}")
            return None

    def linked(self, names: tuple[str, ...] | list[str]) -> Path:
        """Fetch ``names`` and link them into ``hub_dir`` where pyiqa and torchvision look for
        them; return ``hub_dir``."""
        for name in names:
            source = self.path(name)
            target = self.hub_dir / ("checkpoints" if name in TORCHVISION_FILES else "pyiqa") / name
            _link(source, target)
        return self.hub_dir


def _link(source: Path, target: Path) -> None:
    """Point ``target`` at ``source`` (a symbolic link, or a copy where links are not allowed),
    replaced atomically so that a concurrent reader sees the old link or the new one."""
    source = source.resolve()
    if target.is_file() and target.resolve() == source:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.link")
    try:
        try:
            partial.symlink_to(source)
        except OSError:
            partial.write_bytes(source.read_bytes())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def check_opens_safely(path: Path) -> None:
    """Open ``path`` the way that runs no code from the file, or raise ``MetricWeightsError``."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".pth", ".pt", ".ckpt", ".bin"):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(loaded, Mapping):
                raise TypeError(f"holds a {type(loaded).__name__}, not a state dict")
        elif suffix == ".mat":
            scipy_io.loadmat(path)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                data.files  # noqa: B018 - reads the archive's index
        else:
            raise TypeError(f"unknown kind of weight file {suffix!r}")
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the fix
        raise MetricWeightsError(
            f"cannot open {path.name} safely: {type(exc).__name__}: {exc}",
            source=str(path),
            fix="the file may be truncated or not the published one: delete it and let it be fetched again.",
        ) from exc


def _missing_message(name: str, tried: list[str], settings: MetricWeights) -> str:
    lines = "\n".join(f"  - {entry}" for entry in tried)
    origin = (
        f"{TORCHVISION_URL}/{name}"
        if name in TORCHVISION_FILES
        else f"https://huggingface.co/{IQA_WEIGHTS_REPO}/resolve/main/{name}"
    )
    return (
        f"metric weight file {name!r} is not available. Places tried:\n{lines}\n"
        f"Fix, any one of:\n"
        f"  - connect to the internet once, so that it is fetched and cached\n"
        f"  - download {origin} into a folder and pass --metrics-dir FOLDER or set {ENV_LOCAL_DIR}=FOLDER\n"
        f"  - set {ENV_REPO} to a Hugging Face Hub repo that holds {name}"
    )


@contextlib.contextmanager
def pyiqa_reading_from(hub_dir: Path) -> Iterator[None]:
    """While pyiqa builds a network: its download folder and torch.hub's are ``hub_dir`` (files
    are found there, nothing is downloaded) and every ``torch.load`` is weights-only. pyiqa's
    "Loading pretrained model" lines are kept out of the output."""
    with _BUILDING:
        previous_hub = torch.hub.get_dir()
        previous_pyiqa = pyiqa_download.DEFAULT_CACHE_DIR
        previous_env = os.environ.get(ENV_FORCE_WEIGHTS_ONLY)
        torch.hub.set_dir(str(hub_dir))
        pyiqa_download.DEFAULT_CACHE_DIR = str(hub_dir / "pyiqa")
        os.environ[ENV_FORCE_WEIGHTS_ONLY] = "1"
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            torch.hub.set_dir(previous_hub)
            pyiqa_download.DEFAULT_CACHE_DIR = previous_pyiqa
            if previous_env is None:
                os.environ.pop(ENV_FORCE_WEIGHTS_ONLY, None)
            else:
                os.environ[ENV_FORCE_WEIGHTS_ONLY] = previous_env
