"""The OSDFace UNet LoRA: read any key layout the real tools write, load it, prove it applied.

Why this exists: diffusers' usual export (``convert_state_dict_to_diffusers(
get_peft_model_state_dict(unet))``) writes a *mixed* layout when more than the attention
projections carry LoRA (``to_q/to_k/to_v/to_out.0`` as ``lora.down/up``, ``proj_in``,
``ff.net.*``, ``conv1`` ... as ``lora_A/lora_B``), and diffusers (0.42) decides whether to
convert from the *first* key alone: when that is a ``lora_A`` key, every ``lora.down/up``
tensor is dropped with a logged warning and the restoration is silently wrong.

So before loading, every key is parsed into ``(module, down | up | alpha)`` and the pairs are
rewritten in one layout (peft's ``unet.<module>.lora_A.weight`` / ``lora_B.weight``). Accepted
spellings: ``lora_A/lora_B``, ``lora.down/up``, ``lora_linear_layer.down/up``,
``lora_layer.down/up``, the old attention-processor ``processor.to_q_lora.down``, and kohya's
``lora_unet_<module with _>.lora_down/lora_up`` (module names resolved against the UNet itself,
not guessed); each with or without the ``unet.`` prefix (or peft's own ``save_pretrained``
prefix, ``base_model.model.``), with or without ``.alpha`` entries. Any other key is an error,
and so is a file with no pair at all. After loading, every pair must sit, with its exact
tensors, on the module it names, and no module may carry an adapter without a pair in the file
(``LoraError``, naming the file and the fix).

Scale: a pair adds ``scale * B @ A`` (conv: per kernel tap) to its module's weight, with
``scale = alpha / rank`` when the file stores an alpha (a ``.alpha`` tensor per module, or
``lora_alpha`` / ``alpha_pattern`` of the peft ``LoraConfig`` that diffusers stores in the
safetensors metadata, or that peft's ``save_pretrained`` writes beside the file as
``adapter_config.json``), else 1: what the authors' merge does (their release: rank 16, alpha
16, so 1). A config with ``use_rslora`` gives ``alpha / sqrt(rank)``, as peft computes it. The
scale is folded into B before loading, so diffusers applies the pair with its own scale of 1.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from osdface.weights.hub import (
    DEFAULT_BASE_MODEL,
    DEFAULT_WEIGHTS_REPO,
    ENV_BASE_MODEL,
    ENV_WEIGHTS,
    LORA_WEIGHTS,
    WeightsUnavailableError,
)

ADAPTER_NAME = "osdface"
# What peft's ``PeftModel.save_pretrained`` writes: its keys start with this prefix, and the
# LoraConfig (lora_alpha, use_rslora...) goes to a JSON file beside the weights, not into them.
PEFT_PREFIX = "base_model.model."
PEFT_ADAPTER_CONFIG = "adapter_config.json"
# Cross-attention width of each family's UNet: a LoRA's attn2.to_k/to_v input says which
# base model it was trained on.
CROSS_ATTENTION_MODELS = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
SD21_CROSS_ATTENTION = 1024
OTHER_LORA_FIX = (
    f"use the OSDFace LoRA, made for SD 2.1 base: point {ENV_WEIGHTS} / --weights at the OSDFace "
    f"release ('{DEFAULT_WEIGHTS_REPO}'), or download its {LORA_WEIGHTS} again."
)
logger = logging.getLogger(__name__)

# (key suffix, which factor, layout name)
_SPELLINGS = (
    (".lora_A.weight", "down", "peft lora_A/lora_B"),
    (".lora_B.weight", "up", "peft lora_A/lora_B"),
    (".lora.down.weight", "down", "diffusers lora.down/up"),
    (".lora.up.weight", "up", "diffusers lora.down/up"),
    (".lora_linear_layer.down.weight", "down", "diffusers lora_linear_layer.down/up"),
    (".lora_linear_layer.up.weight", "up", "diffusers lora_linear_layer.down/up"),
    (".lora_layer.down.weight", "down", "diffusers lora_layer.down/up"),
    (".lora_layer.up.weight", "up", "diffusers lora_layer.down/up"),
    (".lora_down.weight", "down", "kohya lora_down/lora_up"),
    (".lora_up.weight", "up", "kohya lora_down/lora_up"),
    (".alpha", "alpha", None),
)
_OLD_PROCESSOR = re.compile(
    r"^(?P<base>.*)\.processor\.(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<side>down|up)\.weight$"
)
_KOHYA_PREFIX = "lora_unet_"


class LoraError(WeightsUnavailableError, ValueError):
    """The LoRA file has keys that cannot be applied, or loading did not apply all of it (the
    app shows it like any unusable weight file)."""


@dataclass
class LoraPair:
    module: str
    keys: list[str] = field(default_factory=list)
    down: torch.Tensor | None = None  # A: (r, in) or (r, in, kh, kw)
    up: torch.Tensor | None = None  # B: (out, r) or (out, r, 1, 1)
    alpha: float | None = None
    layout: str = ""
    rslora: bool = False  # the LoraConfig's use_rslora: peft scales by alpha / sqrt(rank)

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        if self.alpha is None:
            return 1.0
        return self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)


@dataclass
class LoraReport:
    """What was in the LoRA file and what was applied; printed by ``osdface doctor``."""

    file: str
    pairs_in_file: int
    pairs_applied: int
    layouts: dict[str, int]  # pairs per key spelling found in the file
    unet_prefix: bool  # keys started with "unet."
    ranks: list[int]
    scales: list[float]
    alpha_source: str  # ".alpha tensors", "safetensors metadata", "adapter_config.json" or "none (scale 1)"
    module_kinds: dict[str, int]  # pairs per target kind (to_q, proj_in, ff.net.0.proj, conv1, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"LoRA {Path(self.file).name}: {self.pairs_applied}/{self.pairs_in_file} pairs applied, "
            f"layout {self.layouts}, rank {self.ranks}, scale {self.scales}, alpha from {self.alpha_source}, "
            f"targets {self.module_kinds}"
        )


def _module_kind(module: str) -> str:
    match = re.search(r"(ff\.net\.\d+(\.proj)?|to_out\.\d+)$", module)
    return match.group(0) if match else module.rsplit(".", 1)[-1]


def _parse_key(key: str, kohya_names: dict[str, str]) -> tuple[str, str, str | None]:
    """key -> (module, 'down' | 'up' | 'alpha', layout or None for alpha)."""
    if key.startswith(_KOHYA_PREFIX):
        flat, _, rest = key[len(_KOHYA_PREFIX) :].partition(".")
        side = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}.get(rest)
        if side is None or flat not in kohya_names:
            raise LoraError(
                f"unknown LoRA key {key!r}: no UNet module is called {flat!r} (kohya spelling)",
                fix=OTHER_LORA_FIX,
            )
        return kohya_names[flat], side, None if side == "alpha" else "kohya lora_down/lora_up"
    if key.startswith(("text_encoder", "lora_te")):
        raise LoraError(
            f"unknown LoRA key {key!r}: a text-encoder LoRA; OSDFace's LoRA targets the UNet only",
            fix=OTHER_LORA_FIX,
        )
    name = key.removeprefix("unet.").removeprefix(PEFT_PREFIX)
    match = _OLD_PROCESSOR.match(name)
    if match:
        proj = "to_out.0" if match["proj"] == "to_out" else match["proj"]
        return f"{match['base']}.{proj}", match["side"], "diffusers processor.to_*_lora"
    for suffix, side, layout in _SPELLINGS:
        if name.endswith(suffix):
            return name[: -len(suffix)], side, layout
    raise LoraError(
        f"unknown LoRA key {key!r}: not a UNet LoRA factor (lora_A/lora_B, lora.down/up, "
        f"lora_linear_layer, lora_down/lora_up or .alpha). Text-encoder LoRA is not used by OSDFace.",
        fix=OTHER_LORA_FIX,
    )


def _metadata_alpha(metadata: dict | None, module: str) -> float | None:
    """diffusers' ``save_lora_weights(..., unet_lora_adapter_metadata=...)`` stores the LoraConfig."""
    if not metadata:
        return None
    for pattern, alpha in (metadata.get("unet.alpha_pattern") or {}).items():
        if re.fullmatch(rf"(.*\.)?{pattern.lstrip('^')}", module):
            return float(alpha)
    alpha = metadata.get("unet.lora_alpha")
    return None if alpha is None else float(alpha)


def parse_lora(
    state: dict[str, torch.Tensor], unet: nn.Module, metadata: dict | None = None
) -> dict[str, LoraPair]:
    """Group the file's keys into one ``LoraPair`` per UNet module; raise ``LoraError`` naming
    every key that is unknown, incomplete, aimed at no module or of the wrong shape, and when
    the file holds no pair at all (the UNet would run without its LoRA)."""
    if not state:
        raise LoraError(
            "the LoRA file holds no UNet LoRA tensors (0 pairs): OSDFace would run as plain SD 2.1",
            fix=f"download {LORA_WEIGHTS} again, or point {ENV_WEIGHTS} / --weights at the OSDFace "
            f"release ('{DEFAULT_WEIGHTS_REPO}').",
        )
    modules = dict(unet.named_modules())
    kohya_names = {name.replace(".", "_"): name for name in modules if name}
    rslora = bool((metadata or {}).get("unet.use_rslora"))
    pairs: dict[str, LoraPair] = {}
    for key, tensor in state.items():
        module, side, layout = _parse_key(key, kohya_names)
        pair = pairs.setdefault(module, LoraPair(module, rslora=rslora))
        pair.keys.append(key)
        if side == "alpha":
            pair.alpha = float(tensor.item())
        else:
            if getattr(pair, side) is not None:
                raise LoraError(f"LoRA module {module!r} has two '{side}' tensors: {pair.keys}")
            setattr(pair, side, tensor)
            pair.layout = layout
    problems, misfits = [], []
    for module, pair in pairs.items():
        if pair.down is None or pair.up is None:
            problems.append(f"incomplete pair for {module!r} (keys {pair.keys})")
        elif not isinstance(modules.get(module), nn.Linear | nn.Conv2d):
            problems.append(
                f"pair targets no Linear/Conv2d module of the UNet: {module!r} (keys {pair.keys})"
            )
        elif not _shapes_fit(pair, modules[module]):
            weight = tuple(modules[module].weight.shape)
            misfits.append(pair)
            problems.append(
                f"pair {pair.keys} has shapes {tuple(pair.down.shape)} / {tuple(pair.up.shape)}, "
                f"which do not fit {module!r} of shape {weight}"
            )
        if pair.alpha is None and pair.down is not None:
            pair.alpha = _metadata_alpha(metadata, module)
    if problems:
        reason, fix = _diagnose_misfit(misfits, unet)
        raise LoraError(f"{len(problems)} LoRA problem(s){reason}: " + "; ".join(problems[:10]), fix=fix)
    return pairs


def _diagnose_misfit(misfits: list[LoraPair], unet: nn.Module) -> tuple[str, str]:
    """(what the mis-shaped pairs say about the base model the LoRA was made for, the fix).
    The cross-attention keys and values (``attn2.to_k/to_v``) take the text width as input,
    which differs between model families while the block names stay the same."""
    if not misfits:
        return "", OTHER_LORA_FIX
    unet_width = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
    widths = {int(p.down.shape[1]) for p in misfits if p.module.endswith(("attn2.to_k", "attn2.to_v"))}
    if len(widths) != 1 or unet_width is None or widths == {unet_width}:
        return " (the LoRA was made for another base model)", OTHER_LORA_FIX
    (width,) = widths
    family = CROSS_ATTENTION_MODELS.get(width, "an unknown model")
    if width == SD21_CROSS_ATTENTION:  # an SD 2.x LoRA: the base model is the wrong one
        unet_family = CROSS_ATTENTION_MODELS.get(unet_width, "an unknown model")
        return (
            f" (the base model's UNet has cross-attention {unet_width}, {unet_family}: it is not SD 2.1 base)",
            f"point {ENV_BASE_MODEL} / --base-model at SD 2.1 base, e.g. '{DEFAULT_BASE_MODEL}'.",
        )
    return (
        f" (this LoRA is for another base model: cross-attention {width} = {family}, "
        f"not SD 2.1 base's {SD21_CROSS_ATTENTION})",
        OTHER_LORA_FIX,
    )


def _shapes_fit(pair: LoraPair, module: nn.Module) -> bool:
    out_features, in_features = module.weight.shape[:2]
    rank = pair.down.shape[0]
    if isinstance(module, nn.Conv2d):
        return tuple(pair.down.shape) == (rank, in_features, *module.weight.shape[2:]) and tuple(
            pair.up.shape
        ) == (out_features, rank, 1, 1)
    return tuple(pair.down.shape) == (rank, in_features) and tuple(pair.up.shape) == (out_features, rank)


def normalised_state_dict(pairs: dict[str, LoraPair]) -> dict[str, torch.Tensor]:
    """One layout: ``unet.<module>.lora_A.weight`` / ``lora_B.weight``, B times the pair's scale.
    With no alpha left to read, every loader (OSDFace's, diffusers' ``load_lora_weights``, peft)
    applies each pair at scale 1, which is the scale the file meant."""
    state: dict[str, torch.Tensor] = {}
    for module, pair in sorted(pairs.items()):
        state[f"unet.{module}.lora_A.weight"] = pair.down.contiguous()
        state[f"unet.{module}.lora_B.weight"] = (pair.up * pair.scale).to(pair.up.dtype).contiguous()
    return state


def saved_by_peft(path: str | os.PathLike) -> bool:
    """Whether the file's keys are peft's ``save_pretrained`` ones (``base_model.model.``): its
    alpha is then in ``adapter_config.json`` beside it."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return any(key.startswith(PEFT_PREFIX) for key in handle.keys())


def read_lora_file(
    path: str | os.PathLike, unet: nn.Module, adapter_config: str | os.PathLike | None = None
) -> tuple[dict[str, LoraPair], dict | None]:
    """A ``.safetensors`` LoRA file -> its pairs (checked against ``unet``) and its LoraConfig as
    diffusers' metadata spells it (``unet.lora_alpha``...): from the file's metadata, else from
    ``adapter_config`` (peft's ``adapter_config.json``). A ``LoraError`` names the file."""
    state = load_file(str(path), device="cpu")
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        raw = (handle.metadata() or {}).get("lora_adapter_metadata")
    metadata = json.loads(raw) if raw else None
    if metadata is None and adapter_config is not None:
        config = json.loads(Path(adapter_config).read_text(encoding="utf-8"))
        metadata = {f"unet.{key}": value for key, value in config.items()}
    try:
        return parse_lora(state, unet, metadata), metadata
    except LoraError as exc:
        raise LoraError(exc.reason, source=str(path), fix=exc.fix) from exc


def load_lora(
    pipe,
    path: str | os.PathLike,
    adapter_name: str = ADAPTER_NAME,
    adapter_config: str | os.PathLike | None = None,
) -> LoraReport:
    """Normalise ``path``'s keys, load them as adapter ``adapter_name`` into ``pipe.unet``
    (through diffusers' own ``load_lora_into_unet``), verify, and report. ``adapter_config``:
    peft's ``adapter_config.json`` for a file written by ``save_pretrained``."""
    pairs, metadata = read_lora_file(path, pipe.unet, adapter_config)
    state = normalised_state_dict(pairs)
    pipe.load_lora_into_unet(
        state, network_alphas=None, unet=pipe.unet, adapter_name=adapter_name, _pipeline=pipe
    )
    applied = verify_lora(pipe.unet, pairs, adapter_name)
    report = LoraReport(
        file=str(path),
        pairs_in_file=len(pairs),
        pairs_applied=applied,
        layouts=dict(Counter(p.layout for p in pairs.values())),
        unet_prefix=all(k.startswith("unet.") for p in pairs.values() for k in p.keys),
        ranks=sorted({p.rank for p in pairs.values()}),
        scales=sorted({round(p.scale, 6) for p in pairs.values()}),
        alpha_source=_alpha_source(pairs, metadata, adapter_config),
        module_kinds=dict(sorted(Counter(_module_kind(m) for m in pairs).items())),
    )
    logger.info(report.summary())
    return report


def _alpha_source(pairs: dict[str, LoraPair], metadata: dict | None, adapter_config) -> str:
    keys = [k for p in pairs.values() for k in p.keys]
    rslora = " (use_rslora: alpha / sqrt(rank))" if any(p.rslora for p in pairs.values()) else ""
    if any(k.endswith(".alpha") for k in keys):
        return ".alpha tensors"
    if _metadata_alpha(metadata, "") is not None:
        where = PEFT_ADAPTER_CONFIG if adapter_config is not None else "safetensors metadata"
        return where + rslora
    if any(k.startswith(PEFT_PREFIX) for k in keys):
        # peft keeps lora_alpha beside the weights; without that file alpha is unknown.
        logger.warning(
            "the LoRA was written by peft's save_pretrained, but its %s is not beside it: scale 1 "
            "(alpha = rank) assumed; put the file next to the LoRA if it was trained with another alpha",
            PEFT_ADAPTER_CONFIG,
        )
        return f"none (scale 1; peft's {PEFT_ADAPTER_CONFIG} not found)"
    return "none (scale 1)"


def verify_lora(unet: nn.Module, pairs: dict[str, LoraPair], adapter_name: str) -> int:
    """Every pair on its module with its exact (scale-folded) tensors, and no adapter module
    without a pair. Returns the number of pairs applied; raises ``LoraError`` naming keys."""
    missing, wrong = [], []
    for module_name, pair in pairs.items():
        module = unet.get_submodule(module_name)
        lora_a, lora_b = getattr(module, "lora_A", {}), getattr(module, "lora_B", {})
        if adapter_name not in lora_a or adapter_name not in lora_b:
            missing.append(pair.keys)
            continue
        a, b = lora_a[adapter_name].weight, lora_b[adapter_name].weight
        expected_b = (pair.up * pair.scale).to(pair.up.dtype).to(b.dtype)
        scaling = module.scaling[adapter_name]
        if not (torch.equal(a, pair.down.to(a.dtype)) and torch.equal(b, expected_b) and scaling == 1.0):
            wrong.append(pair.keys)
    extra = [
        name
        for name, module in unet.named_modules()
        if adapter_name in getattr(module, "lora_A", {}) and name not in pairs
    ]
    if missing or wrong or extra:
        raise LoraError(
            f"the LoRA was not applied as written: {len(missing)} pair(s) not loaded {missing[:5]}; "
            f"{len(wrong)} loaded with other values {wrong[:5]}; {len(extra)} module(s) with an adapter "
            f"but no pair in the file {extra[:5]}. Fix: report this with the file's key list."
        )
    return len(pairs)
