"""Where the metrics' weight files come from, and how pyiqa reads them without running pickled code.

IQA-PyTorch (pyiqa) downloads its files on first use into ``torch.hub``'s folder and loads them
with full unpickling (``weights_only`` off); torchvision, timm and OpenAI's CLIP loader fetch their
own files too. We fetch every file ourselves first, each from its official source, and only then
let pyiqa build the network:

1. a local folder (``OSDFACE_METRICS_DIR`` or ``--metrics-dir``) holding files under their
   published names;
2. pyiqa's files from its Hub repo ``chaofengc/IQA-PyTorch-Weights`` (``OSDFACE_METRICS_REPO``
   for another repo with the same names, ``OSDFACE_METRICS_REVISION`` to pin a branch, tag or
   commit) and timm's from timm's Hub repo, kept in the standard Hugging Face cache;
   torchvision's backbones from ``download.pytorch.org`` and OpenAI's CLIP from
   ``openaipublic.azureedge.net`` into our cache (``$OSDFACE_CACHE/metrics``), through a
   temporary file renamed into place (``SOURCES``);
3. each file is opened once the safe way (``torch.load(weights_only=True)``, ``safetensors``,
   ``scipy.io.loadmat``, ``numpy.load(allow_pickle=False)``, ``torchscript_tensors``) and
   refused with its name if it does not open so;
4. links to pyiqa's and torchvision's files are laid out as a ``torch.hub`` folder
   (``pyiqa/NAME``, ``checkpoints/NAME``), and pyiqa builds the network with that folder as its
   download folder and ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` set, so its own ``torch.load`` calls
   run weights-only too. Found files are not downloaded again; offline (``OSDFACE_OFFLINE=1``
   or ``HF_HUB_OFFLINE=1``) only cached files are used.

The two networks of the paper's Table 2 that pyiqa does not load from its own repo get their
files by path instead:

- CLIP-IQA's backbone is OpenAI's CLIP ResNet-50, ``RN50.pt``, from the URL in pyiqa's
  ``clip_model._MODELS`` (as in OpenAI's ``clip`` package); the URL's folder is the file's
  SHA-256, and a download that does not match it is refused. OpenAI publishes it only as a
  TorchScript archive: ``torch.jit.load`` (what pyiqa calls) compiles and runs the archive's
  code, and ``torch.load(weights_only=True)`` refuses TorchScript archives. So
  ``osdface.quality.torchscript_tensors`` reads the tensors out of the zip with an unpickler
  that resolves only tensor, storage and plain-object names, and ``clip_archive`` writes them to
  ``CACHE/clip/RN50-<sha256>.pt`` as a TorchScript archive whose code only declares them.
  pyiqa gets that path as ``backbone=``: its ``clip_model.load`` takes a path, ``torch.jit.load``s
  it and builds its ``CLIP`` from the ``state_dict()``. A plain state-dict file would not do:
  pyiqa 0.1.16's fallback for one fails (``torch.jit.load`` reads the open file to its end,
  then ``torch.load`` reads from there: ``EOFError``); and the name "RN50" would make pyiqa
  ``torch.jit.load`` OpenAI's archive itself. open_clip's ``timm/resnet50_clip.openai`` holds
  the same network as safetensors, but it is a third party's conversion whose values could not
  be compared with OpenAI's file where this was written, and pyiqa names OpenAI's URL.
- MANIQA: pyiqa's ``MANIQA`` calls ``timm.create_model("vit_base_patch8_224", pretrained=True)``,
  which timm 1.0 resolves to ``model.safetensors`` of the Hub repo
  ``timm/vit_base_patch8_224.augreg2_in21k_ft_in1k`` (the architecture's default pretrained
  tag), then loads pyiqa's ``ckpt_koniq10k.pt`` strictly over the whole network, ViT included.
  We fetch the timm file (``--metrics-dir`` names it
  ``vit_base_patch8_224.augreg2_in21k_ft_in1k.safetensors``), and while pyiqa builds the network
  timm's pretrained config of the architecture names that file, so timm reads it (safetensors)
  and fetches nothing. The checkpoint overwrites all its values; timm needs it to build the
  network the way pyiqa asks.

facexlib's files (ArcFace for Deg., RetinaFace for LMD) come through ``osdface.weights.facexlib_files``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from osdface import lazy
from osdface.files import atomic_path, download_atomic
from osdface.quality import torchscript_tensors
from osdface.weights.hub import WeightsUnavailableError
from osdface.weights.reachability import hub_unreachable
from osdface.weights.sources import cache_dir_for, offline_from_env

huggingface_hub = lazy.module("huggingface_hub")
np = lazy.module("numpy")
safetensors = lazy.module("safetensors")
scipy_io = lazy.module("scipy.io")
torch = lazy.module("torch")
pyiqa_download = lazy.module("pyiqa.utils.download_util")
# timm's registry of pretrained configs (a private module: timm has no public way to point an
# architecture's default weights at a file; see pyiqa_reading_from)
timm_registry = lazy.module("timm.models._registry")

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

# CLIP-IQA's backbone: pyiqa's clip_model._MODELS["RN50"]; the folder is the file's SHA-256.
CLIP_RN50 = "RN50.pt"
CLIP_RN50_URL = (
    "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
)
# MANIQA's ViT-B/8: what timm.create_model("vit_base_patch8_224", pretrained=True) loads
# (timm 1.0's default tag for the architecture), under a name that says which it is.
TIMM_VIT_B8_ARCH = "vit_base_patch8_224"
TIMM_VIT_B8_REPO = "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k"
TIMM_VIT_B8 = "vit_base_patch8_224.augreg2_in21k_ft_in1k.safetensors"


@dataclass(frozen=True)
class Source:
    """Where a file that is not in pyiqa's Hub repo comes from: ``url``, downloaded into our
    cache (refused unless its SHA-256 is ``sha256``, when given), or ``filename`` in the Hub
    repo ``repo`` (kept in the Hugging Face cache)."""

    url: str | None = None
    sha256: str | None = None
    repo: str | None = None
    filename: str | None = None

    @property
    def address(self) -> str:
        return self.url or f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


SOURCES: dict[str, Source] = {
    **{name: Source(url=f"{TORCHVISION_URL}/{name}") for name in sorted(TORCHVISION_FILES)},
    CLIP_RN50: Source(url=CLIP_RN50_URL, sha256=CLIP_RN50_URL.split("/")[-2]),
    TIMM_VIT_B8: Source(repo=TIMM_VIT_B8_REPO, filename="model.safetensors"),
}
# Read with osdface.quality.torchscript_tensors, never with torch.jit.load.
TORCHSCRIPT_FILES = frozenset({CLIP_RN50})

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
        source = SOURCES.get(name)
        if source is not None and source.url is not None:
            return self._download(name, source, tried)
        if source is not None:
            repo, filename, revision = source.repo, source.filename, None
        else:
            repo, filename, revision = self.hub_repo, name, self.hub_revision
        where = f"Hub repo {repo}" + (f"@{revision}" if revision else "")
        where += f", file {filename}" if filename != name else ""
        try:
            return Path(
                huggingface_hub.hf_hub_download(
                    repo,
                    filename,
                    revision=revision,
                    local_files_only=self.offline or hub_unreachable() is not None,
                )
            )
        except Exception as exc:  # noqa: BLE001 - recorded; raised with every source
            reason = (
                "not in the Hugging Face cache (offline)" if self.offline else f"{type(exc).__name__}: {exc}"
            )
            tried.append(f"{where}: {reason}")
            return None

    def _download(self, name: str, source: Source, tried: list[str]) -> Path | None:
        cached = self.cache_dir / name
        if cached.is_file():
            return cached
        tried.append(f"cache {self.cache_dir}: not there yet")
        if self.offline:
            tried.append(f"{source.url}: not tried (offline: OSDFACE_OFFLINE or HF_HUB_OFFLINE is set)")
            return None
        try:
            return download_atomic(source.url, cached, sha256=source.sha256)
        except Exception as exc:  # noqa: BLE001 - recorded; raised with every source
            tried.append(f"{source.url}: {type(exc).__name__}: {exc}")
            return None

    def linked(self, names: tuple[str, ...] | list[str]) -> Path:
        """Fetch ``names`` and link them into ``hub_dir`` where pyiqa and torchvision look for
        them; return ``hub_dir``. (CLIP's and timm's files are handed over by path: ``prepare``.)"""
        for name in names:
            if name in TORCHSCRIPT_FILES or name == TIMM_VIT_B8:
                raise ValueError(f"{name} is handed to its loader by path, not through torch.hub: prepare()")
            source = self.path(name)
            target = self.hub_dir / ("checkpoints" if name in TORCHVISION_FILES else "pyiqa") / name
            _link(source, target)
        return self.hub_dir

    def prepare(self, names: tuple[str, ...] | list[str]) -> Prepared:
        """Fetch ``names`` in order (the first one that cannot be had raises) and lay them out
        for pyiqa (see ``Prepared``)."""
        options: dict[str, str] = {}
        timm_files: dict[str, Path] = {}
        for name in names:
            if name == CLIP_RN50:
                options["backbone"] = str(self.clip_archive(name))
            elif name == TIMM_VIT_B8:
                timm_files[TIMM_VIT_B8_ARCH] = self.path(name)
            else:
                self.linked([name])
        return Prepared(self.hub_dir, options, timm_files)

    def clip_archive(self, name: str = CLIP_RN50) -> Path:
        """OpenAI's CLIP archive ``name``, fetched and read without running it, rewritten as an
        archive of its tensors only (``torchscript_tensors.write_state_archive``): the path
        pyiqa's ``clip_model.load`` is given. Kept in the cache under the source's SHA-256."""
        source = self.path(name)
        digest = hashlib.sha256()
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
        derived = self.cache_dir / "clip" / f"{Path(name).stem}-{digest.hexdigest()[:16]}.pt"
        if not derived.is_file():
            with atomic_path(derived) as partial:
                torchscript_tensors.write_state_archive(torchscript_tensors.read_tensors(source), partial)
        return derived


@dataclass(frozen=True)
class Prepared:
    """A metric's files laid out for pyiqa: ``hub_dir``, the ``torch.hub`` folder of links;
    ``options``, keyword arguments of ``pyiqa.create_metric`` that hand it a file by path (CLIP-IQA's
    ``backbone``); ``timm_files``, timm architectures and the pretrained file each is to read."""

    hub_dir: Path
    options: dict[str, str]
    timm_files: dict[str, Path]


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


def check_opens_safely(path: Path, name: str | None = None) -> None:
    """Open ``path`` (the file ``name``, by default its own name) the way that runs no code from
    the file, or raise ``MetricWeightsError``."""
    name = name or path.name
    suffix = Path(name).suffix.lower()
    try:
        if name in TORCHSCRIPT_FILES:
            torchscript_tensors.read_tensors(path)
        elif suffix in (".pth", ".pt", ".ckpt", ".bin"):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(loaded, Mapping):
                raise TypeError(f"holds a {type(loaded).__name__}, not a state dict")
        elif suffix == ".safetensors":
            with safetensors.safe_open(str(path), framework="pt") as opened:
                opened.keys()
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
    source = SOURCES.get(name)
    origin = source.address if source else f"https://huggingface.co/{IQA_WEIGHTS_REPO}/resolve/main/{name}"
    saved_as = f" (saved as {name})" if not origin.endswith(f"/{name}") else ""
    fixes = [
        "connect to the internet once, so that it is fetched and cached",
        f"download {origin} into a folder{saved_as} and pass --metrics-dir FOLDER or set {ENV_LOCAL_DIR}=FOLDER",
    ]
    if source is None:
        fixes.append(f"set {ENV_REPO} to a Hugging Face Hub repo that holds {name}")
    fix_lines = "\n".join(f"  - {fix}" for fix in fixes)
    return (
        f"metric weight file {name!r} is not available. Places tried:\n{lines}\nFix, any one of:\n{fix_lines}"
    )


@contextlib.contextmanager
def pyiqa_reading_from(hub_dir: Path, *, timm_files: Mapping[str, Path] | None = None) -> Iterator[None]:
    """While pyiqa builds a network: its download folder and torch.hub's are ``hub_dir`` (files
    are found there, nothing is downloaded), every ``torch.load`` is weights-only, and timm's
    pretrained config of each architecture in ``timm_files`` names that file (timm reads it and
    downloads nothing). pyiqa's "Loading pretrained model" lines are kept out of the output."""
    with _BUILDING:
        previous_hub = torch.hub.get_dir()
        previous_pyiqa = pyiqa_download.DEFAULT_CACHE_DIR
        previous_env = os.environ.get(ENV_FORCE_WEIGHTS_ONLY)
        torch.hub.set_dir(str(hub_dir))
        pyiqa_download.DEFAULT_CACHE_DIR = str(hub_dir / "pyiqa")
        os.environ[ENV_FORCE_WEIGHTS_ONLY] = "1"
        try:
            with _timm_pretrained_files(timm_files or {}), contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            torch.hub.set_dir(previous_hub)
            pyiqa_download.DEFAULT_CACHE_DIR = previous_pyiqa
            if previous_env is None:
                os.environ.pop(ENV_FORCE_WEIGHTS_ONLY, None)
            else:
                os.environ[ENV_FORCE_WEIGHTS_ONLY] = previous_env


@contextlib.contextmanager
def _timm_pretrained_files(files: Mapping[str, Path]) -> Iterator[None]:
    """timm resolves ``create_model(arch, pretrained=True)`` through its registry of pretrained
    configs; a config with ``file`` set (and no ``source``) loads that file. The entries are put
    back afterwards. Called with ``_BUILDING`` held."""
    if not files:
        yield
        return
    configs = timm_registry._model_pretrained_cfgs
    previous = {}
    try:
        for arch, path in files.items():
            if arch not in configs:
                raise ImportError(f"timm {timm_registry.__name__} has no pretrained config for {arch}")
            previous[arch] = configs[arch]
            configs[arch] = replace(configs[arch], file=str(path), source=None)
        yield
    finally:
        configs.update(previous)
