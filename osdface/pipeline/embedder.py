"""The Visual Representation Embedder (VRE): the low-quality face as 77 prompt tokens.

OSDFace replaces SD 2.1's text prompt by tokens read off the face itself:

1. a VQ-GAN style encoder (``VREEncoder``) maps the face to a 512 x 16 x 16 feature map;
2. each of the 256 positions is matched to its nearest codebook entry (1024 x 512);
3. positions are ranked by that distance, and the first 77 *distinct* codebook entries in
   that order become the tokens (zero rows when fewer than 77 distinct entries exist);
4. a two-layer 1x1 Conv1d projection (512 -> 256 -> 1024, SiLU after each) maps them into
   SD 2.1's 1024-d cross-attention space.

Weights come from the authors' files: ``associate_2.ckpt`` (a training checkpoint; the encoder,
``quant_conv`` and codebook live under ``state_dict`` with the prefix ``vqvae_LQ.``) and
``embedding_change_weights.pth`` (the projection). Both are pickles: they are read with
``torch.load(weights_only=True)`` so no code inside them runs (``osdface.pipeline.pickles``).
A file that does not fit raises ``WeightFileError`` naming that file.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from osdface.pipeline.pickles import WeightFileError, load_pickled_state_dict

NUM_TOKENS = 77
CODEBOOK_SIZE = 1024
CODEBOOK_DIM = 512
PROMPT_DIM = 1024
CHECKPOINT_PREFIX = "vqvae_LQ."
# The sub-modules of vqvae_LQ that the VRE is made of; its decoder, post_quant_conv etc. are not.
VRE_CHECKPOINT_PARTS = ("encoder.", "quant_conv.", "quantize.")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VREConfig:
    """Architecture of the VRE encoder. The defaults are the released model's."""

    in_channels: int = 3
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 2, 4, 8)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    resolution: int = 512
    z_channels: int = 512
    codebook_size: int = CODEBOOK_SIZE
    num_tokens: int = NUM_TOKENS
    prompt_dim: int = PROMPT_DIM

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> VREConfig:
        """Read the widths and depths off a checkpoint (prefix stripped), so that a smaller
        VRE in the same layout (the test weights) loads too. The full key and shape check
        against the resulting architecture still runs afterwards."""
        try:
            base = state["encoder.conv_in.weight"].shape[0]
            levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.down.")})
            mult = tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // base for i in levels)
            blocks = len({k.split(".")[4] for k in state if k.startswith("encoder.down.0.block.")})
            return cls(
                in_channels=state["encoder.conv_in.weight"].shape[1],
                base_channels=base,
                channel_mult=mult,
                num_res_blocks=blocks,
                z_channels=state["quant_conv.weight"].shape[0],
                codebook_size=state["quantize.embedding.weight"].shape[0],
            )
        except (KeyError, IndexError, ValueError, ZeroDivisionError):
            return cls()  # not the expected layout: the key check reports what differs


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 conv projections and a residual.

    ``norm2`` exists in the checkpoint (the authors' block can cross-attend) but
    self-attention never uses it; it is kept so the key set matches."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = _group_norm(channels)
        self.norm2 = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm1(x)
        q = self.q(normed).flatten(2).transpose(1, 2)  # (B, HW, C)
        k = self.k(normed).flatten(2).transpose(1, 2)
        v = self.v(normed).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(c))
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 conv with the asymmetric (right/bottom) zero padding of the original."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class VREEncoder(nn.Module):
    """The VQ encoder; parameter names follow the checkpoint (``encoder.down.0.block.0...``)."""

    def __init__(self, config: VREConfig):
        super().__init__()
        ch = config.base_channels
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        resolution = config.resolution
        block_in = ch
        in_mult = (1, *config.channel_mult)
        for level, mult in enumerate(config.channel_mult):
            level_module = nn.Module()
            level_module.block = nn.ModuleList()
            level_module.attn = nn.ModuleList()
            block_in = ch * in_mult[level]
            block_out = ch * mult
            for _ in range(config.num_res_blocks):
                level_module.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if resolution in config.attn_resolutions:
                    level_module.attn.append(AttnBlock(block_in))
            if level != len(config.channel_mult) - 1:
                level_module.downsample = Downsample(block_in)
                resolution //= 2
            self.down.append(level_module)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Codebook(nn.Module):
    """Holds the codebook as ``embedding.weight`` (the checkpoint's ``quantize.embedding.weight``)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(size, dim)


class TokenProjection(nn.Module):
    """Tokens (B, 77, 512) -> prompt embeddings (B, 77, 1024); keys ``conv1.*``, ``conv2.*``."""

    def __init__(self, in_dim: int = CODEBOOK_DIM, out_dim: int = PROMPT_DIM):
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, in_dim // 2, 1)
        self.conv2 = nn.Conv1d(in_dim // 2, out_dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens.transpose(1, 2)
        x = F.silu(self.conv2(F.silu(self.conv1(x))))
        return x.transpose(1, 2)


def select_tokens(features: torch.Tensor, codebook: torch.Tensor, num_tokens: int = NUM_TOKENS):
    """Pick up to ``num_tokens`` distinct codebook entries per image, nearest first.

    features: (B, C, H, W) encoder output (after ``quant_conv``); codebook: (K, C).
    Returns ``(tokens (B, num_tokens, C), indices (B, num_tokens) int64, -1 for zero rows)``.

    Equal to the authors' per-image loop (rank positions by their nearest-entry distance,
    keep each codebook index the first time it appears) but vectorised over the batch, with
    no host synchronisation: a position is kept when it is the earliest-ranked position of
    its codebook index, and the kept positions are compacted in rank order.
    """
    b, c, h, w = features.shape
    z = features.flatten(2).transpose(1, 2)  # (B, HW, C)
    distances = (
        z.pow(2).sum(-1, keepdim=True) + codebook.pow(2).sum(-1) - 2 * torch.matmul(z, codebook.t())
    )  # (B, HW, K), the same expansion as the original so near-ties break alike
    nearest_distance, nearest_index = distances.min(dim=-1)  # (B, HW)
    order = torch.sort(nearest_distance, dim=-1, stable=True).indices
    ranked_index = torch.gather(nearest_index, 1, order)  # codebook index of each rank
    positions = h * w
    rank = torch.arange(positions, device=features.device).expand(b, positions)
    first_rank = torch.full((b, codebook.shape[0]), positions, device=features.device, dtype=torch.long)
    first_rank = first_rank.scatter_reduce(1, ranked_index, rank, reduce="amin")
    keep = torch.gather(first_rank, 1, ranked_index) == rank  # (B, HW) first occurrence
    slot = keep.cumsum(dim=1) - 1  # where each kept position lands among the tokens
    keep &= slot < num_tokens
    # Dropped positions write to a scratch column num_tokens, cut off afterwards.
    slot = torch.where(keep, slot, torch.full_like(slot, num_tokens))
    indices = torch.full((b, num_tokens + 1), -1, device=features.device, dtype=torch.long)
    indices = indices.scatter(1, slot, torch.where(keep, ranked_index, -1))[:, :num_tokens]
    tokens = codebook[indices.clamp(min=0)] * (indices >= 0).unsqueeze(-1).to(codebook.dtype)
    return tokens, indices


@dataclass
class VREOutput:
    prompt_embeds: torch.Tensor  # (B, 77, 1024)
    token_indices: torch.Tensor  # (B, 77) int64, -1 for zero-padded rows
    tokens: torch.Tensor  # (B, 77, 512)
    features: torch.Tensor  # (B, 512, 16, 16), after quant_conv


class VisualRepresentationEmbedder(nn.Module):
    """LQ face (B, 3, H, W) in [-1, 1] -> prompt embeddings (B, 77, 1024)."""

    def __init__(self, config: VREConfig | None = None):
        super().__init__()
        self.config = config or VREConfig()
        cfg = self.config
        self.encoder = VREEncoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)
        self.quantize = Codebook(cfg.codebook_size, cfg.z_channels)
        self.projection = TokenProjection(cfg.z_channels, cfg.prompt_dim)

    @property
    def device(self) -> torch.device:
        return self.quant_conv.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.quant_conv.weight.dtype

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 512, 16, 16) features after ``quant_conv``."""
        size = self.config.resolution
        x = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        # The released code maps [-1, 1] once more to [-3, 1]; the trained weights expect it.
        x = (x - 0.5) / 0.5
        return self.quant_conv(self.encoder(x))

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> VREOutput:
        features = self.encode(image)
        tokens, indices = select_tokens(features, self.quantize.embedding.weight, self.config.num_tokens)
        return VREOutput(self.projection(tokens), indices, tokens, features)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoints(
        cls,
        vre_checkpoint: str | os.PathLike,
        projection: str | os.PathLike,
        config: VREConfig | None = None,
    ) -> VisualRepresentationEmbedder:
        """Build from ``associate_2.ckpt`` and ``embedding_change_weights.pth`` (CPU, float32).

        ``associate_2.ckpt`` is DAEFR's association-stage Lightning checkpoint: two VQ
        autoencoders (``vqvae.*`` HQ, ``vqvae_LQ.*`` LQ) with decoders, losses, optimizer state
        and more. Exactly the keys the VRE needs are taken from ``vqvae_LQ.`` (encoder,
        ``quant_conv``, codebook); each must be present with the right shape (``ValueError``
        listing missing and mis-shaped keys); everything else is ignored and counted in
        ``model.load_report`` (and logged). ``config=None`` reads the widths off the checkpoint
        (the released file gives ``VREConfig()``)."""
        checkpoint = load_pickled_state_dict(vre_checkpoint)
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise WeightFileError(
                vre_checkpoint, f"expected a checkpoint dict with a 'state_dict', got {type(state)}"
            )
        candidates = {
            key[len(CHECKPOINT_PREFIX) :]: value
            for key, value in state.items()
            if key.startswith(tuple(CHECKPOINT_PREFIX + part for part in VRE_CHECKPOINT_PARTS))
        }
        if not candidates:
            raise WeightFileError(
                vre_checkpoint,
                f"no key starts with '{CHECKPOINT_PREFIX}encoder.'; is this the VRE "
                f"checkpoint (associate_2.ckpt)? First keys: {sorted(state)[:5]}",
            )
        model = cls(config or VREConfig.from_state_dict(candidates))
        needed = [k for k in model.state_dict() if not k.startswith("projection.")]
        vre_state = {k: candidates[k] for k in needed if k in candidates}
        _load_exact(model, vre_state, exclude_prefix="projection.", source=str(vre_checkpoint))
        projection_state = load_pickled_state_dict(projection)
        if not isinstance(projection_state, dict):
            raise WeightFileError(projection, f"expected a state dict, got {type(projection_state)}")
        _load_exact(model.projection, projection_state, exclude_prefix=None, source=str(projection))
        used = {CHECKPOINT_PREFIX + k for k in vre_state}
        model.load_report = VRELoadReport.build(checkpoint, state, used, len(projection_state))
        model.load_report.log(str(vre_checkpoint))
        return model.eval().requires_grad_(False)

    @classmethod
    def from_safetensors(cls, path: str | os.PathLike) -> VisualRepresentationEmbedder:
        """Build from ``vre.safetensors`` (written by ``osdface export``): the whole VRE, encoder,
        ``quant_conv``, codebook and ``projection.*``, in one file with no pickle. Key set and
        shapes must match exactly."""
        state = load_file(str(path), device="cpu")
        model = cls(VREConfig.from_state_dict(state))
        _load_exact(model, state, exclude_prefix=None, source=str(path))
        model.load_report = VRELoadReport(len(state), {}, [], source_format="safetensors")
        return model.eval().requires_grad_(False)

    def to(self, *args, **kwargs):
        """Moves device and memory format, never dtype: the codebook search flips tokens in half
        precision (float16: 2 of 77 on the parity fixtures, bfloat16: most), so the VRE stays float32."""
        device, _, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if device is None and memory_format is None:
            return self
        keep = {"memory_format": memory_format} if memory_format is not None else {}
        return super().to(device=device, non_blocking=non_blocking, **keep)


@dataclass
class VRELoadReport:
    """What ``from_checkpoints`` took from the checkpoint and what it ignored."""

    used: int  # tensors loaded into the encoder, quant_conv and codebook
    ignored: dict[str, int]  # ignored state_dict tensors, counted by top-level prefix
    ignored_entries: list[str]  # other top-level checkpoint entries (optimizer_states, ...)
    projection: int = 0  # tensors of embedding_change_weights.pth
    source_format: str = "checkpoint"

    @classmethod
    def build(cls, checkpoint: dict, state: dict, used: set[str], projection: int) -> VRELoadReport:
        ignored: dict[str, int] = {}
        for key in state:
            if key not in used:
                parts = key.split(".")
                # Inside vqvae_LQ the second level says what was left (decoder, post_quant_conv).
                prefix = ".".join(parts[:2]) if parts[0] + "." == CHECKPOINT_PREFIX else parts[0]
                ignored[prefix] = ignored.get(prefix, 0) + 1
        entries = sorted(str(k) for k in checkpoint if k != "state_dict") if state is not checkpoint else []
        return cls(len(used), dict(sorted(ignored.items())), entries, projection)

    def log(self, source: str) -> None:
        logger.info(
            "VRE from %s: %d tensors used, ignored %s; other entries ignored: %s",
            source,
            self.used,
            self.ignored or "nothing",
            self.ignored_entries or "none",
        )
        suspicious = {k: n for k, n in self.ignored.items() if k.split(".")[-1] + "." in VRE_CHECKPOINT_PARTS}
        if suspicious:
            logger.warning(
                "VRE checkpoint %s has extra keys inside the VRE's own modules: %s", source, suspicious
            )


def _load_exact(module: nn.Module, state: dict, exclude_prefix: str | None, source: str) -> None:
    """load_state_dict, after checking that key sets and shapes match exactly."""
    expected = {
        k: v.shape
        for k, v in module.state_dict().items()
        if not (exclude_prefix and k.startswith(exclude_prefix))
    }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k])}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{label} ({len(items)}): {items[:20]}"
            + (f" and {len(items) - 20} more" if len(items) > 20 else "")
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatched),
            )
            if items
        ]
        raise WeightFileError(source, "does not match the VRE architecture: " + "; ".join(parts))
    module.load_state_dict(state, strict=False)
