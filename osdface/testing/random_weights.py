"""Randomly initialised OSDFace components, at full size or tiny, in the published file layouts.

Two uses:

* benchmarks measure the real-size architecture without downloading anything
  (``random_pipeline(size="full")``);
* tests write tiny random weights into a Hugging Face cache in the exact layouts of the two
  Hub repos (``write_tiny_hub``) and then load them through the same ``from_pretrained`` code
  path as the real weights, offline.

The VRE always keeps its real structure (77 tokens of a 1024-entry, 512-d codebook, projected to
1024-d, the SD 2.1 cross-attention width); "tiny" shrinks its channel widths and depth only.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
from diffusers.utils.state_dict_utils import convert_state_dict
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

from osdface.pipeline.embedder import CHECKPOINT_PREFIX, VisualRepresentationEmbedder, VREConfig
from osdface.pipeline.pipeline_osdface import OSDFacePipeline
from osdface.testing.hub_cache import add_to_hub_cache
from osdface.weights import hub

# Stable Diffusion 2.1 base, as in its repo's config files.
SD21_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
SD21_VAE_CONFIG = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD21_UNET_CONFIG = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "norm_num_groups": 32,
}
# Tiny stand-ins: same block types and latent geometry (8x VAE downsampling, 4 latent channels,
# cross-attention width 1024), a few channels each.
TINY_VAE_CONFIG = {
    **SD21_VAE_CONFIG,
    "block_out_channels": [8, 16, 16, 16],
    "norm_num_groups": 8,
    "layers_per_block": 1,
}
TINY_UNET_CONFIG = {
    **SD21_UNET_CONFIG,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "attention_head_dim": [2, 4],
}
TINY_VRE_CONFIG = VREConfig(base_channels=32, channel_mult=(1, 1, 1, 1, 2, 2), num_res_blocks=1)
TINY_TEXT_CONFIG = {
    "hidden_size": 1024,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
# Attention, transformer projections, feed-forward and ResNet convs (3x3 and 1x1 shortcut):
# diffusers' export then writes a mixed lora.down/up + lora_A/lora_B layout, as the authors' may.
LORA_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
]
# How each real tool spells a UNet LoRA file (see ``write_lora_file``).
LORA_LAYOUTS = (
    "diffusers_mixed",
    "peft",
    "peft_no_prefix",
    "diffusers_mixed_no_prefix",
    "peft_metadata_alpha",
    "kohya",
    "lora_linear_layer_alpha",
)


@dataclass
class TinyHub:
    """Fake repos written into a Hugging Face cache folder."""

    cache_dir: Path
    weights_repo: str = "osdface-test/osdface"
    base_repo: str = "osdface-test/sd21-base"
    commits: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess (an app, the CLI) that should load these repos offline."""
        return {
            "HF_HUB_CACHE": str(self.cache_dir),
            "HF_HUB_OFFLINE": "1",
            hub.ENV_WEIGHTS: self.weights_repo,
            hub.ENV_BASE_MODEL: self.base_repo,
        }


def build_vre(config: VREConfig, seed: int = 0) -> VisualRepresentationEmbedder:
    torch.manual_seed(seed)
    vre = VisualRepresentationEmbedder(config)
    with torch.no_grad():
        # A spread-out codebook so that images pick many distinct tokens, as trained ones do.
        vre.quantize.embedding.weight.normal_(0.0, 0.3)
    return vre.eval().requires_grad_(False)


def build_base_components(size: str = "tiny", seed: int = 0):

    vae_config, unet_config = (
        (TINY_VAE_CONFIG, TINY_UNET_CONFIG) if size == "tiny" else (SD21_VAE_CONFIG, SD21_UNET_CONFIG)
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_config)
    unet = UNet2DConditionModel(**unet_config)
    scheduler = DDIMScheduler.from_config(SD21_SCHEDULER_CONFIG)
    return vae.eval(), unet.eval(), scheduler


def random_pipeline(size: str = "full", seed: int = 0):
    """An ``OSDFacePipeline`` with random weights (``size`` "full" = the real architecture)."""

    if size not in ("full", "tiny"):
        raise ValueError(f"size must be 'full' or 'tiny', got {size!r}")
    vae, unet, scheduler = build_base_components(size, seed)
    embedder = build_vre(VREConfig() if size == "full" else TINY_VRE_CONFIG, seed)
    return OSDFacePipeline(vae=vae, unet=unet, scheduler=scheduler, embedder=embedder)


# --------------------------------------------------------------------------- Hub layout


class DAEFRTrainingConfig:
    """A user class in a checkpoint's hyper-parameters, as Lightning pickles them: loading must
    neither need nor run it."""

    def __init__(self, **values):
        self.__dict__.update(values)


def daefr_checkpoint(vre_lq_state: dict[str, torch.Tensor]) -> dict:
    """A checkpoint laid out like DAEFR's association-stage Lightning file (``associate_2.ckpt``)
    around the given ``vqvae_LQ.encoder/quant_conv/quantize`` tensors: both VQ autoencoders with
    decoders and ``post_quant_conv``, ``loss.*`` and ``loss_LQ.*``, ``logit_scale``, and the
    Lightning entries (optimizer and scheduler states, callbacks, hyper-parameters holding
    non-tensor objects). The extra tensors are small: only their keys matter."""

    generator = torch.Generator().manual_seed(1)

    def small(*shape):
        return torch.randn(*shape, generator=generator)

    state = dict(vre_lq_state)
    for branch in ("vqvae_LQ.", "vqvae."):
        state.update(
            {
                branch + "post_quant_conv.weight": small(8, 8, 1, 1),
                branch + "post_quant_conv.bias": small(8),
                branch + "decoder.conv_in.weight": small(8, 8, 3, 3),
                branch + "decoder.mid.block_1.norm1.weight": small(8),
                branch + "decoder.up.0.block.0.conv1.weight": small(8, 8, 3, 3),
                branch + "decoder.conv_out.bias": small(3),
            }
        )
    for key in (
        "encoder.conv_in.weight",
        "encoder.conv_out.bias",
        "quant_conv.weight",
        "quantize.embedding.weight",
    ):
        state["vqvae." + key] = small(4, 4)  # the HQ branch: other weights, never used
    for loss in ("loss.", "loss_LQ."):
        state[loss + "discriminator.main.0.weight"] = small(8, 3, 4, 4)
        state[loss + "perceptual_loss.net.slice1.0.weight"] = small(8, 3, 3, 3)
        state[loss + "logvar"] = torch.zeros(())
    state["logit_scale"] = torch.tensor(2.6593)
    return {
        "epoch": 41,
        "global_step": 120000,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"current": {"completed": 41}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/rec_loss', 'mode': 'min'}": {
                "best_model_score": torch.tensor(0.125),
                "best_model_path": "logs/associate/checkpoints/last.ckpt",
                "dirpath": pathlib.PurePosixPath("logs/associate/checkpoints"),
                "kth_value": np.float64(0.25),
            }
        },
        "optimizer_states": [
            {
                "state": {0: {"step": torch.tensor(3.0), "exp_avg": small(4), "exp_avg_sq": small(4)}},
                "param_groups": [{"lr": 4.5e-6, "betas": (0.5, 0.9), "eps": 1e-8, "params": [0]}],
            }
        ],
        "lr_schedulers": [{"base_lrs": [4.5e-6], "last_epoch": 41, "_step_count": 42, "lr_lambdas": [None]}],
        "hyper_parameters": {
            "ddconfig": argparse.Namespace(z_channels=512, resolution=512, ch_mult=[1, 2, 2, 2, 4, 8]),
            "lossconfig": DAEFRTrainingConfig(target="taming.modules.losses.VQLPIPSWithDiscriminator"),
            "n_embed": 1024,
        },
    }


def save_vre_files(embedder: VisualRepresentationEmbedder, folder: Path) -> None:
    """Write the VRE as the authors' two pickles: DAEFR's full association-stage training
    checkpoint (``daefr_checkpoint``) and a plain state dict for the projection."""
    state = embedder.state_dict()
    vre_state = {CHECKPOINT_PREFIX + k: v for k, v in state.items() if not k.startswith("projection.")}
    torch.save(daefr_checkpoint(vre_state), folder / hub.VRE_CHECKPOINT)
    projection = {k[len("projection.") :]: v for k, v in state.items() if k.startswith("projection.")}
    torch.save(projection, folder / hub.PROJECTION_WEIGHTS)


def lora_unet(unet, rank: int = 8, alpha: int | None = None, seed: int = 0):
    """A copy of ``unet`` with a random peft LoRA (adapter "default") on ``LORA_TARGETS``."""

    unet = copy.deepcopy(unet)
    config = LoraConfig(
        r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS
    )
    unet.add_adapter(config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:  # peft starts B at zero; a LoRA that does nothing proves nothing
                param.normal_(0.0, 0.02)
    return unet


def write_lora_file(peft_unet, path: Path, layout: str = "diffusers_mixed") -> None:
    """Save the LoRA of ``peft_unet`` (from ``lora_unet``) at ``path`` with the tools that write
    each layout: diffusers' ``save_lora_weights`` (adds ``unet.``), ``convert_state_dict_to_diffusers``
    (mixed lora.down/up + lora_A/lora_B), plain safetensors (no prefix), diffusers' adapter
    metadata (``lora_alpha``), ``convert_state_dict_to_kohya`` (with ``.alpha``), and the
    ``lora_linear_layer`` spelling with ``.alpha`` via diffusers' ``convert_state_dict``."""

    peft_state = get_peft_model_state_dict(peft_unet)
    config = peft_unet.peft_config["default"]

    def diffusers_save(layers, **kwargs):
        StableDiffusionPipeline.save_lora_weights(
            path.parent, unet_lora_layers=layers, weight_name=path.name, **kwargs
        )

    if layout == "diffusers_mixed":
        diffusers_save(convert_state_dict_to_diffusers(peft_state))
    elif layout == "peft":
        diffusers_save(peft_state)
    elif layout == "peft_no_prefix":
        save_file(peft_state, str(path))
    elif layout == "diffusers_mixed_no_prefix":
        save_file(convert_state_dict_to_diffusers(peft_state), str(path))
    elif layout == "peft_metadata_alpha":
        diffusers_save(peft_state, unet_lora_adapter_metadata=config.to_dict())
    elif layout == "kohya":
        save_file(convert_state_dict_to_kohya({"unet." + k: v for k, v in peft_state.items()}), str(path))
    elif layout == "lora_linear_layer_alpha":
        renamed = convert_state_dict(
            peft_state, {".lora_A": ".lora_linear_layer.down", ".lora_B": ".lora_linear_layer.up"}
        )
        for key in [k for k in renamed if k.endswith(".lora_linear_layer.down.weight")]:
            renamed[key.replace(".lora_linear_layer.down.weight", ".alpha")] = torch.tensor(
                float(config.lora_alpha)
            )
        diffusers_save(renamed)
    else:
        raise ValueError(f"layout must be one of {LORA_LAYOUTS}, got {layout!r}")


def save_lora(unet, folder: Path, rank: int = 8, seed: int = 0, layout: str = "diffusers_mixed") -> None:
    """A random UNet LoRA saved the way diffusers' training scripts save one."""
    write_lora_file(lora_unet(unet, rank, seed=seed), folder / hub.LORA_WEIGHTS, layout)


def write_tiny_tokenizer(folder: Path) -> None:
    """A byte-level CLIP BPE vocabulary without merges: every byte is one token."""
    # GPT-2/CLIP byte-to-character table: printable bytes map to themselves, the rest above 255.
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "!",
                "unk_token": "<|endoftext|>",
            }
        )
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "!",
                "unk_token": "<|endoftext|>",
                "do_lower_case": True,
            }
        )
    )


def write_base_repo(folder: Path, size: str = "tiny", seed: int = 0):
    """The SD 2.1 base layout: vae/, unet/, scheduler/, text_encoder/, tokenizer/."""

    vae, unet, _ = build_base_components(size, seed)
    vae.save_pretrained(folder / "vae")
    unet.save_pretrained(folder / "unet")
    DDIMScheduler.from_config(SD21_SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    write_tiny_tokenizer(folder / "tokenizer")
    vocab_size = len(json.loads((folder / "tokenizer" / "vocab.json").read_text()))
    torch.manual_seed(seed)
    text_config = CLIPTextConfig(
        vocab_size=vocab_size, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, **TINY_TEXT_CONFIG
    )
    CLIPTextModel(text_config).save_pretrained(folder / "text_encoder")
    return unet


def write_weights_repo(folder: Path, unet, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_vre_files(build_vre(TINY_VRE_CONFIG, seed), folder)
    save_lora(unet, folder, seed=seed)


def write_tiny_hub(cache_dir: str | Path, seed: int = 0) -> TinyHub:
    """Write both tiny repos into the Hugging Face cache ``cache_dir``."""
    tiny = TinyHub(cache_dir=Path(cache_dir))
    with tempfile.TemporaryDirectory() as tmp:
        base_dir, weights_dir = Path(tmp) / "base", Path(tmp) / "weights"
        unet = write_base_repo(base_dir, "tiny", seed)
        write_weights_repo(weights_dir, unet, seed)
        tiny.commits[tiny.base_repo] = add_to_hub_cache(tiny.cache_dir, tiny.base_repo, base_dir)
        tiny.commits[tiny.weights_repo] = add_to_hub_cache(tiny.cache_dir, tiny.weights_repo, weights_dir)
    return tiny


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write tiny random OSDFace repos into a Hugging Face cache folder."
    )
    parser.add_argument("cache_dir", help="folder to use as HF_HUB_CACHE")
    tiny = write_tiny_hub(parser.parse_args().cache_dir)
    print("\n".join(f"export {k}={v}" for k, v in tiny.env.items()))


if __name__ == "__main__":
    main()
