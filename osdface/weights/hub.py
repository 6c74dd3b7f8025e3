"""Where the weights come from: every repo id, revision and file name in one place.

OSDFace needs two repos:

* the OSDFace weights (``weights``): the VRE checkpoint, the token projection and the UNet
  LoRA. Default: ``alecccdd/OSDFace``, an unofficial mirror of the authors' release.
* the Stable Diffusion 2.1 *base* model (``base_model``): VAE, UNet and scheduler, plus the
  text encoder and tokenizer for the "without VRE" ablation. The official repo was withdrawn
  in 2025; the default is the mirror ``Manojb/stable-diffusion-2-1-base``.

Each can be a Hub repo id or a local folder with the same layout, set by argument or by the
environment (``OSDFACE_WEIGHTS``, ``OSDFACE_BASE_MODEL``, ``OSDFACE_WEIGHTS_REVISION``,
``OSDFACE_BASE_REVISION``). Files are fetched one at a time with ``hf_hub_download`` so that
only what is needed is downloaded and every failure names its file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from osdface import lazy
from osdface.errors import OSDFaceError
from osdface.weights.reachability import HubProbe, hub_unreachable

# huggingface_hub loads when the Hub is reached: the app's start-up and `osdface --help` import
# this module for its names only.
huggingface_hub = lazy.module("huggingface_hub")
hub_constants = lazy.module("huggingface_hub.constants")
hub_errors = lazy.module("huggingface_hub.errors")
hub_utils = lazy.module("huggingface_hub.utils")

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS_REPO = "alecccdd/OSDFace"
DEFAULT_BASE_MODEL = "Manojb/stable-diffusion-2-1-base"

# Files of the OSDFace weights repo.
VRE_CHECKPOINT = "associate_2.ckpt"
PROJECTION_WEIGHTS = "embedding_change_weights.pth"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
# Written by ``osdface export``: the whole VRE in one safetensors file, preferred when present.
VRE_SAFETENSORS = "vre.safetensors"

# Files of the base repo, by component (diffusers / transformers folder layout).
BASE_FILES: dict[str, tuple[str, ...]] = {
    "vae": ("vae/config.json", "vae/diffusion_pytorch_model.safetensors"),
    "unet": ("unet/config.json", "unet/diffusion_pytorch_model.safetensors"),
    "scheduler": ("scheduler/scheduler_config.json",),
    "text_encoder": ("text_encoder/config.json", "text_encoder/model.safetensors"),
    "tokenizer": (
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
    ),
}

# OSDFace's UNet predicts noise (epsilon) at 512 px (latents 64): SD 2.1 *base*. The 768-px
# SD 2.1 has the same UNet shapes but predicts v, so loading it would give wrong faces silently.
BASE_PREDICTION_TYPE = "epsilon"
BASE_SAMPLE_SIZE = 64

ENV_WEIGHTS = "OSDFACE_WEIGHTS"
ENV_BASE_MODEL = "OSDFACE_BASE_MODEL"
ENV_WEIGHTS_REVISION = "OSDFACE_WEIGHTS_REVISION"
ENV_BASE_REVISION = "OSDFACE_BASE_REVISION"


class WeightsUnavailableError(OSDFaceError, RuntimeError):
    """A weight file could not be found, downloaded or read. The message names the repo,
    the file and the fix; the app shows it as is."""


@dataclass(frozen=True)
class ModelSources:
    """Where to load the OSDFace weights and the SD 2.1 base model from."""

    weights: str = DEFAULT_WEIGHTS_REPO
    revision: str | None = None
    base_model: str = DEFAULT_BASE_MODEL
    base_revision: str | None = None

    @classmethod
    def resolve(
        cls,
        weights: str | os.PathLike | None = None,
        base_model: str | os.PathLike | None = None,
        revision: str | None = None,
        base_revision: str | None = None,
    ) -> ModelSources:
        """Arguments win over the environment, which wins over the defaults."""
        return cls(
            weights=str(weights or os.environ.get(ENV_WEIGHTS) or DEFAULT_WEIGHTS_REPO),
            revision=revision or os.environ.get(ENV_WEIGHTS_REVISION) or None,
            base_model=str(base_model or os.environ.get(ENV_BASE_MODEL) or DEFAULT_BASE_MODEL),
            base_revision=base_revision or os.environ.get(ENV_BASE_REVISION) or None,
        )


def _fix_hint(source: str, env_var: str) -> str:
    return (
        "connect to the internet once so the file is cached, or download the repo "
        f"(`hf download {source} --local-dir DIR`) and pass that folder "
        f"(argument, or the {env_var} environment variable), or point {env_var} at another "
        f"repo id that has the file."
    )


def fetch(source: str, filename: str, revision: str | None = None, *, env_var: str = ENV_WEIGHTS) -> Path:
    """Return a local path to ``filename`` of ``source`` (a Hub repo id or a local folder).

    Raises ``WeightsUnavailableError`` whose message names the repo, the file and the fix.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            raise WeightsUnavailableError(
                f"File '{filename}' is missing from the local folder '{local}'",
                source=str(local),
                fix=f"copy it there from the Hub repo it came from, or set {env_var} to a Hub repo id.",
            )
        return path
    if not _is_repo_id(source):
        raise WeightsUnavailableError(
            f"'{source}' is neither an existing folder nor a valid Hub repo id (owner/name, of letters, "
            "digits, '-', '_' and '.')",
            fix=f"check the path (a relative one is looked up from {Path.cwd()}) or set {env_var} to a "
            f"repo id such as '{DEFAULT_WEIGHTS_REPO if env_var == ENV_WEIGHTS else DEFAULT_BASE_MODEL}'.",
        )

    where = f"'{filename}' from Hub repo '{source}'" + (f" at revision '{revision}'" if revision else "")
    unreachable = None if hub_constants.HF_HUB_OFFLINE else hub_unreachable()
    try:
        return _download(source, filename, revision, local_only=unreachable is not None)
    except hub_errors.RevisionNotFoundError as exc:
        raise WeightsUnavailableError(
            f"Revision '{revision}' does not exist in Hub repo '{source}' (needed for '{filename}')",
            fix="pass an existing branch, tag or commit, or leave the revision unset.",
        ) from exc
    except hub_errors.GatedRepoError as exc:
        raise WeightsUnavailableError(
            f"Hub repo '{source}' is gated: cannot download '{filename}'",
            fix="accept its terms on the Hub and log in (`hf auth login` or HF_TOKEN).",
        ) from exc
    except hub_errors.RepositoryNotFoundError as exc:
        raise WeightsUnavailableError(
            f"Hub repo '{source}' was not found (or is private), so '{filename}' cannot be downloaded",
            fix=_fix_hint(source, env_var),
        ) from exc
    except hub_errors.LocalEntryNotFoundError as exc:  # offline or unreachable, and not cached
        raise _offline_error(where, source, filename, revision, env_var, unreachable) from exc
    except hub_errors.EntryNotFoundError as exc:
        raise WeightsUnavailableError(
            f"File '{filename}' is missing from Hub repo '{source}'"
            + (f" at revision '{revision}'" if revision else ""),
            fix=_fix_hint(source, env_var),
        ) from exc
    except hub_errors.HfHubHTTPError as exc:
        raise WeightsUnavailableError(
            f"Downloading {where} failed: {exc}", fix=_fix_hint(source, env_var)
        ) from exc
    except OSError as exc:  # network down, disk full, permissions
        raise WeightsUnavailableError(
            f"Could not fetch {where}: {exc}", fix=_fix_hint(source, env_var)
        ) from exc


def fetch_optional(source: str, filename: str, revision: str | None = None) -> Path | None:
    """Like ``fetch``, but ``None`` when the file is not in the repo or folder (or, offline, not
    in the cache): for files that replace others when present (``vre.safetensors``)."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local / filename if (local / filename).is_file() else None
    if not _is_repo_id(source):
        return None  # ``fetch`` of the required files reports the bad source

    try:
        return _download(source, filename, revision, local_only=offline_or_unreachable())
    except (hub_errors.EntryNotFoundError, hub_errors.LocalEntryNotFoundError):
        return None
    except (hub_errors.HfHubHTTPError, OSError):
        return None  # the required files' ``fetch`` raises the full, actionable error


def _is_repo_id(source: str) -> bool:
    """Whether ``source`` is spelled as a Hub repo id: owner/name, characters the Hub allows
    (huggingface_hub's own check, which would otherwise raise from inside the download)."""
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        return False
    try:
        hub_utils.validate_repo_id(source)
    except hub_errors.HFValidationError:
        return False
    return True


def _download(source: str, filename: str, revision: str | None, *, local_only: bool) -> Path:
    return Path(
        huggingface_hub.hf_hub_download(
            repo_id=source, filename=filename, revision=revision, local_files_only=local_only
        )
    )


def offline_or_unreachable() -> bool:
    """Only the local cache can answer: offline by setting, or the Hub found unreachable."""
    return bool(hub_constants.HF_HUB_OFFLINE) or hub_unreachable() is not None


def resolved_revision(path: Path) -> str | None:
    """The commit SHA of a file fetched from the Hub (its snapshot folder), else None."""
    parts = Path(path).parts
    if "snapshots" in parts and parts.index("snapshots") + 1 < len(parts):
        return parts[parts.index("snapshots") + 1]
    return None


def _offline_error(
    where: str,
    source: str,
    filename: str,
    revision: str | None,
    env_var: str,
    unreachable: HubProbe | None = None,
) -> WeightsUnavailableError:
    """Offline (or the Hub unreachable) and the file is not in the cache: say which case."""
    cached_revisions: set[str] = set()
    try:
        for repo in huggingface_hub.scan_cache_dir().repos:
            if repo.repo_id == source:
                cached_revisions = {r.commit_hash for r in repo.revisions} | {
                    ref for r in repo.revisions for ref in r.refs
                }
    except hub_errors.CacheNotFound:
        pass  # no cache folder at all: reported below as 'nothing in the cache'
    if hub_constants.HF_HUB_OFFLINE:
        state = "offline (HF_HUB_OFFLINE=1)"
    elif unreachable is not None:
        state = f"the Hub could not be reached ({unreachable.endpoint}: {unreachable.reason})"
    else:
        state = "the Hub could not be reached"
    if not cached_revisions:
        detail = f"nothing of Hub repo '{source}' is in the local cache ({hub_constants.HF_HUB_CACHE})"
    elif revision and revision not in cached_revisions:
        detail = f"revision '{revision}' of '{source}' is not in the local cache (cached: {sorted(cached_revisions)})"
    else:
        detail = f"the cached copy of '{source}' does not contain '{filename}'"
    return WeightsUnavailableError(
        f"Cannot load {where}: {state} and {detail}", fix=_fix_hint(source, env_var)
    )


def fetch_base_component(sources: ModelSources, component: str) -> Path:
    """Fetch the files of one base-model component; return the folder that holds it
    (the repo root of a local folder or of the Hub snapshot), for ``from_pretrained(..., subfolder=component)``."""
    paths = [
        fetch(sources.base_model, name, sources.base_revision, env_var=ENV_BASE_MODEL)
        for name in BASE_FILES[component]
    ]
    return paths[0].parent.parent


def corrupt_file_error(
    path: Path, source: str, filename: str, exc: BaseException | str
) -> WeightsUnavailableError:
    """A file that was fetched but cannot be read (truncated download, wrong format). The fix
    depends on where it lives: a local folder's file is never downloaded again."""
    if Path(source).expanduser().is_dir():
        fix = (
            f"replace '{path}' with a good copy of '{filename}' (a local folder's files are read as they "
            "are, never fetched), or load from the Hub repo id instead."
        )
    else:
        fix = (
            f"remove the cached copy (`hf cache rm model/{source}`, or delete '{Path(path).resolve()}') "
            "so it is downloaded again, or replace it with a good copy."
        )
    return WeightsUnavailableError(
        f"File '{filename}' from '{source}' is corrupt or not the expected format ({path}): {exc}", fix=fix
    )


def check_base_model(sources: ModelSources, scheduler_config, unet_config) -> None:
    """Refuse a base model that is not SD 2.1 *base*: a scheduler that predicts anything but
    noise (the 768-px SD 2.1 predicts v) would be read as epsilon and every face come out wrong.
    A UNet made for another size is only logged: its shapes fit, and it may have been meant."""
    prediction = scheduler_config.get("prediction_type", BASE_PREDICTION_TYPE)
    if prediction != BASE_PREDICTION_TYPE:
        raise WeightsUnavailableError(
            f"the base model '{sources.base_model}' predicts '{prediction}' (scheduler/scheduler_config.json), "
            f"but OSDFace needs Stable Diffusion 2.1 base (512 px, prediction_type '{BASE_PREDICTION_TYPE}'); "
            "the 768-px SD 2.1 is a different model",
            fix=f"point --base-model / {ENV_BASE_MODEL} at SD 2.1 base, e.g. '{DEFAULT_BASE_MODEL}'.",
        )
    if unet_config.get("sample_size", BASE_SAMPLE_SIZE) != BASE_SAMPLE_SIZE:
        logger.warning(
            "the base model %s has a UNet of sample_size %s, not SD 2.1 base's %d (512 px): "
            "OSDFace was trained on SD 2.1 base (%s)",
            sources.base_model,
            unet_config.get("sample_size"),
            BASE_SAMPLE_SIZE,
            DEFAULT_BASE_MODEL,
        )
