"""``osdface export OUT_DIR [--push-to-hub REPO_ID]``: the release as safetensors only.

Writes into ``OUT_DIR``:

* ``vre.safetensors``: the whole VRE (encoder, ``quant_conv``, codebook, ``projection.*``) taken
  from ``associate_2.ckpt`` + ``embedding_change_weights.pth``; no pickle, a fraction of the
  checkpoint's size. ``OSDFacePipeline.from_pretrained`` prefers it when a repo or folder has it;
* ``pytorch_lora_weights.safetensors``: the LoRA, keys normalised to peft's
  ``unet.<module>.lora_A/lora_B.weight`` with each pair's scale (alpha / rank, or what the
  source's config says) folded into ``lora_B``, so the file holds no alpha and every loader,
  diffusers' own ``load_lora_weights`` included, applies every pair at the scale it was meant
  (diffusers refuses ``.alpha`` keys beside ``lora_A/lora_B``);
* ``README.md``: a model card naming the paper, the authors' repository, the licence, and the
  SHA-256 of each source and exported file.

``--push-to-hub`` uploads the folder with ``huggingface_hub`` (log in first: ``hf auth login``).
Exit status 0: exported (and pushed); 2: nothing exported (the sources could not be read, or
``OUT_DIR`` is their own folder); 3: exported, but the upload failed (the message says why and
how to upload the complete folder again).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

# torch, diffusers and the model modules load when the command runs (osdface.lazy): `osdface
# --help` imports this module to build its parser, and stays instant.
import osdface.pipeline
from osdface import lazy
from osdface.commands.doctor import file_info
from osdface.commands.model_options import add_model_arguments
from osdface.files import atomic_path, write_bytes_atomic
from osdface.weights import hub

accelerate = lazy.module("accelerate")
diffusers = lazy.module("diffusers")
huggingface_hub = lazy.module("huggingface_hub")
hub_errors = lazy.module("huggingface_hub.errors")
safetensors_torch = lazy.module("safetensors.torch")
lora = lazy.module("osdface.pipeline.lora")

PAPER = "https://arxiv.org/abs/2411.17163"
AUTHORS_REPO = "https://github.com/jkwang28/OSDFace"
# The authors' repository carries no licence file: the card says so rather than guess one.
LICENSE = "other"
EXIT_NOT_EXPORTED = 2
EXIT_PUSH_FAILED = 3


class ExportError(ValueError):
    """The export would destroy its own sources (``OUT_DIR`` is the folder they are read from)."""


@dataclass
class ExportResult:
    out_dir: Path
    sources: dict[str, dict] = field(default_factory=dict)  # source file -> size, sha256
    exported: dict[str, dict] = field(default_factory=dict)  # written file -> size, sha256
    lora_pairs: int = 0


def _base_unet_skeleton(sources):
    """The base UNet's module tree without weights (only its config is fetched): the LoRA's
    keys are resolved and shape-checked against it."""
    config_path = hub.fetch(
        sources.base_model, "unet/config.json", sources.base_revision, env_var=hub.ENV_BASE_MODEL
    )
    unet_class = diffusers.UNet2DConditionModel
    with accelerate.init_empty_weights():
        return unet_class.from_config(unet_class.load_config(config_path.parent))


def export_release(
    out_dir: str | Path,
    weights: str | None = None,
    revision: str | None = None,
    base_model: str | None = None,
    base_revision: str | None = None,
) -> ExportResult:
    """Raises ``ExportError`` when ``out_dir`` is the folder the sources are read from (the LoRA
    would be overwritten by its own conversion)."""
    sources = hub.ModelSources.resolve(weights, base_model, revision, base_revision)
    out = Path(out_dir)
    paths = {
        name: hub.fetch(sources.weights, name, sources.revision)
        for name in (hub.VRE_CHECKPOINT, hub.PROJECTION_WEIGHTS, hub.LORA_WEIGHTS)
    }
    _refuse_own_sources(out, paths)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out, sources={name: file_info(path, name) for name, path in paths.items()})

    embedder = osdface.pipeline.VisualRepresentationEmbedder.from_checkpoints(
        paths[hub.VRE_CHECKPOINT], paths[hub.PROJECTION_WEIGHTS]
    )
    state = {k: v.contiguous() for k, v in embedder.state_dict().items()}
    pairs, _ = lora.read_lora_file(paths[hub.LORA_WEIGHTS], _base_unet_skeleton(sources))
    result.lora_pairs = len(pairs)

    # Each file appears whole or not at all, and vre.safetensors (which from_pretrained prefers)
    # only after the LoRA: an interrupted export never leaves a VRE without its LoRA.
    with atomic_path(out / hub.LORA_WEIGHTS) as partial:
        safetensors_torch.save_file(
            lora.normalised_state_dict(pairs), str(partial), metadata={"format": "pt"}
        )
    with atomic_path(out / hub.VRE_SAFETENSORS) as partial:
        safetensors_torch.save_file(state, str(partial), metadata={"format": "pt", "source": sources.weights})

    for name in (hub.VRE_SAFETENSORS, hub.LORA_WEIGHTS):
        result.exported[name] = file_info(out / name, name)
    write_bytes_atomic(out / "README.md", model_card(sources, result).encode("utf-8"))
    return result


def _refuse_own_sources(out: Path, paths: dict[str, Path]) -> None:
    """``ExportError`` when an exported file would land on (or beside, in the same folder as) a
    source file: ``--weights OUT`` would overwrite the LoRA with its own conversion."""
    targets = {_resolved(out / name) for name in (hub.VRE_SAFETENSORS, hub.LORA_WEIGHTS, "README.md")}
    # A Hub cache's files are links into its blobs folder: both the link and its target count.
    folders = {_resolved(path.parent) for path in paths.values()} | {
        _resolved(path).parent for path in paths.values()
    }
    clashes = sorted(str(path) for path in paths.values() if {_resolved(path), path.absolute()} & targets)
    if clashes or _resolved(out) in folders:
        raise ExportError(
            f"refusing to export into {out}: it is the folder the release is read from "
            f"({', '.join(clashes) or paths[hub.LORA_WEIGHTS].parent}), and the export would overwrite "
            "its LoRA. Fix: choose another OUT_DIR (for example a new, empty folder)."
        )


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


def model_card(sources, result: ExportResult) -> str:
    def rows(files: dict[str, dict]) -> str:
        return "\n".join(
            f"| `{name}` | {info['size']:,} | `{info['sha256']}` |" for name, info in files.items()
        )

    revision = sources.revision or "default branch"
    return f"""---
license: {LICENSE}
license_name: osdface-authors-terms
license_link: {AUTHORS_REPO}
library_name: diffusers
tags:
- face-restoration
- osdface
base_model: {sources.base_model}
---

# OSDFace weights (safetensors)

Weights of **OSDFace: One-Step Diffusion Model for Face Restoration** (Wang et al., CVPR 2025,
[paper]({PAPER}), authors' code: [{AUTHORS_REPO}]({AUTHORS_REPO})), converted from the release
`{sources.weights}` ({revision}) by `osdface export` (OSDFace Studio). Licence: the authors'
terms; their repository published no licence file when this was written, so ask them before
redistributing.

* `vre.safetensors`: the Visual Representation Embedder (VQ encoder, `quant_conv`, 1024 x 512
  codebook, 512 -> 256 -> 1024 token projection) in one file; no pickle.
* `pytorch_lora_weights.safetensors`: the UNet LoRA for Stable Diffusion 2.1 base
  ({result.lora_pairs} pairs), keys in peft's `unet.<module>.lora_A/lora_B.weight` layout, each
  pair's scale folded into `lora_B` (apply it at scale 1).

Load: `OSDFacePipeline.from_pretrained("<this repo>")` (OSDFace Studio); the LoRA alone also
loads with diffusers' `pipe.load_lora_weights("<this repo>")` on SD 2.1 base.

## Source files

| file | bytes | SHA-256 |
| --- | --- | --- |
{rows(result.sources)}

## Exported files

| file | bytes | SHA-256 |
| --- | --- | --- |
{rows(result.exported)}
"""


def push_to_hub(out_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Create ``repo_id`` if needed and upload the exported folder; returns the commit URL."""
    api = huggingface_hub.HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(out_dir), commit_message="osdface export")
    return str(getattr(commit, "commit_url", commit))


def run(args: argparse.Namespace) -> int:
    try:
        result = export_release(
            args.out_dir, args.weights, args.revision, args.base_model, args.base_revision
        )
    except (hub.WeightsUnavailableError, ExportError) as exc:
        print(f"export failed: {exc}")
        return EXIT_NOT_EXPORTED
    print(json.dumps({"out_dir": str(result.out_dir), **result.exported}, indent=2))
    if args.push_to_hub:
        try:
            url = push_to_hub(result.out_dir, args.push_to_hub, args.private)
        # HTTPError: the Hub's own answers (401, 403...) and, with httpx, the network's; OSError:
        # the network's with requests, a missing token; HFValidationError: a bad repo id.
        except (hub_errors.HTTPError, hub_errors.HFValidationError, OSError) as exc:
            print(push_failed_message(result.out_dir, args.push_to_hub, args.private, exc), file=sys.stderr)
            return EXIT_PUSH_FAILED
        print(f"pushed: {url}")
    return 0


def push_failed_message(out_dir: Path, repo_id: str, private: bool, exc: BaseException) -> str:
    """What failed, that the export on disk is whole, and the command that uploads it again."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
    private_flag = " --private" if private else ""
    return (
        f"export written to {out_dir} (complete); upload to Hub repo '{repo_id}' failed: "
        f"{type(exc).__name__}: {reason}. Fix: check the network, log in with a token that can "
        f"write to '{repo_id}' (`hf auth login`), then upload the folder again: "
        f"`hf upload {repo_id} {out_dir}{private_flag} --commit-message 'osdface export'`."
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="convert the release to safetensors (optionally push it to the Hub)",
        description=__doc__,
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the exported folder to this Hub repo"
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    # Only the base model's unet/config.json is read; nothing runs, so no device or dtype.
    add_model_arguments(parser, device=False, dtype=False, facexlib=False)
    parser.set_defaults(func=run)
