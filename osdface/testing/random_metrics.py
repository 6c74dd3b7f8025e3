"""The metrics' weight files with random values, in their published layouts (file names, keys,
shapes, formats), for tests and benchmarks that cannot download the real ones.

``write_metric_files(folder)`` writes the pyiqa files into ``folder/iqa`` (to be placed into a
Hugging Face cache as ``chaofengc/IQA-PyTorch-Weights`` with
``osdface.testing.hub_cache.add_to_hub_cache``) and torchvision's backbones into
``folder/torchvision`` (a local metrics folder, ``OSDFACE_METRICS_DIR``). The layouts:

- pyiqa's ``.pth`` files are state dicts of pyiqa's own modules (LPIPS: the linear layers
  ``lin0..lin4`` only, as in the LPIPS authors' release; DISTS: ``alpha`` and ``beta``; MUSIQ:
  the whole KonIQ model; the FID Inception: the whole network of ``fid_inception_v3``);
- ``niqe_modelparameters.mat``: MATLAB arrays ``mu_prisparam`` (1, 36) and ``cov_prisparam``
  (36, 36), a valid covariance;
- torchvision's ``alexnet-owt-7be5be79.pth`` and ``vgg16-397923af.pth``: whole state dicts. The
  classifier layers, which the metrics never run, hold one shared value (a zero-stride tensor)
  so that the files stay small.

CLIP-IQA's and MANIQA's files are large (256 MB, 241 MB once written, 346 MB that take no disk)
and have their own writers, for the tests and benchmarks that need them:

- ``write_clip_rn50``: OpenAI's ``RN50.pt``, a traced TorchScript archive of CLIP ResNet-50 in
  OpenAI's dtypes;
- ``write_timm_vit_b8``: timm's ``model.safetensors`` of ``vit_base_patch8_224``, zeros;
- ``write_maniqa_koniq``: pyiqa's ``ckpt_koniq10k.pt``, the whole MANIQA state dict.

``write_metrics_dir(folder)`` writes every file, each under its published name, into one
folder: a local metrics folder (``--metrics-dir``, and ``--facexlib-dir`` for facexlib's ArcFace
and RetinaFace ResNet-50, whole random state dicts) for the benchmarks.
"""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import scipy.io
import timm
import torch
import torchvision
from facexlib.detection.retinaface import RetinaFace
from pyiqa.archs import clip_model
from pyiqa.archs import inception as pyiqa_inception
from pyiqa.archs.maniqa_arch import MANIQA
from pyiqa.archs.musiq_arch import MUSIQ

from osdface.evaluation.identity import ARCFACE_WEIGHTS, build_arcface_backbone
from osdface.quality.catalog import METRICS
from osdface.quality.weights import (
    CLIP_RN50,
    FFHQ_STATS,
    TIMM_VIT_B8,
    TIMM_VIT_B8_ARCH,
    pyiqa_reading_from,
)

NIQE_FEATURES = 36  # 18 features at each of two scales
LPIPS_ALEX_WIDTHS = (64, 192, 384, 256, 256)
DISTS_CHANNELS = 3 + 64 + 128 + 256 + 512 + 512  # the image and VGG16's five stages
# CLIP ResNet-50's sizes, as pyiqa's clip_model.build_model reads them off OpenAI's RN50.pt
CLIP_RN50_SIZES = {
    "embed_dim": 1024,
    "image_resolution": 224,
    "vision_layers": (3, 4, 6, 3),
    "vision_width": 64,
    "vision_patch_size": None,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 512,
    "transformer_heads": 8,
    "transformer_layers": 12,
}
# pyiqa's default "maniqa" options (default_model_configs.py)
MANIQA_KONIQ = {"train_dataset": "koniq", "scale": 0.8}
# MANIQA reads the outputs of ViT blocks 6 to 9; what comes after them never reaches its score.
MANIQA_UNUSED = ("vit.blocks.10.", "vit.blocks.11.", "vit.norm.", "vit.head.")
RETINAFACE_WEIGHTS = "detection_Resnet50_Final.pth"  # the "lmd" metric's detector
# written together by _write_small_files
_SMALL_FILES = frozenset(
    {
        "alexnet-owt-7be5be79.pth",
        "vgg16-397923af.pth",
        "LPIPS_v0.1_alex-df73285e.pth",
        "DISTS_weights-f5e65c96.pth",
        "musiq_koniq_ckpt-e95806b9.pth",
        "pt_inception-2015-12-05-6726825d.pth",
        "niqe_modelparameters.mat",
    }
)


def _small(state: dict[str, torch.Tensor], unused_prefix: str = "classifier.") -> dict[str, torch.Tensor]:
    return {
        key: torch.zeros(1, dtype=value.dtype).expand(value.shape) if key.startswith(unused_prefix) else value
        for key, value in state.items()
    }


def fid_inception() -> torch.nn.Module:
    """pyiqa's FID Inception architecture (``fid_inception_v3``) without loading its weights."""
    net = pyiqa_inception._inception_v3(num_classes=1008, aux_logits=False, pretrained=False)
    net.Mixed_5b = pyiqa_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pyiqa_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pyiqa_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pyiqa_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pyiqa_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pyiqa_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pyiqa_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pyiqa_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = pyiqa_inception.FIDInceptionE_2(2048)
    return net


def write_metric_files(folder: Path, seed: int = 0, *, with_ffhq_stats: bool = False) -> Path:
    """Write every pyiqa and torchvision metric file (see the module docstring); return ``folder``."""
    _write_small_files(folder / "iqa", folder / "torchvision", seed, with_ffhq_stats)
    return folder


def write_metrics_dir(folder: Path, seed: int = 0, metrics: Iterable[str] | None = None) -> Path:
    """The files of ``metrics`` (default: every metric), each under its published name, in
    ``folder`` (a local metrics and facexlib folder); return ``folder``."""
    names = {file for name in (METRICS if metrics is None else metrics) for file in METRICS[name].files}
    folder.mkdir(parents=True, exist_ok=True)
    if names & _SMALL_FILES:
        _write_small_files(folder, folder, seed, with_ffhq_stats=False)
    if CLIP_RN50 in names:
        write_clip_rn50(folder / CLIP_RN50, seed)
    if "ckpt_koniq10k.pt" in names:
        write_timm_vit_b8(folder / TIMM_VIT_B8)
        write_maniqa_koniq(folder / "ckpt_koniq10k.pt", folder / TIMM_VIT_B8, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if ARCFACE_WEIGHTS in names:
            torch.save(build_arcface_backbone().state_dict(), folder / ARCFACE_WEIGHTS)
        if RETINAFACE_WEIGHTS in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # facexlib builds torchvision's resnet50(pretrained=False)
                detector = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
            torch.save(detector.state_dict(), folder / RETINAFACE_WEIGHTS)
    return folder


def _write_small_files(iqa: Path, vision: Path, seed: int, with_ffhq_stats: bool) -> None:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    iqa.mkdir(parents=True, exist_ok=True)
    vision.mkdir(parents=True, exist_ok=True)

    torch.save(_small(torchvision.models.alexnet().state_dict()), vision / "alexnet-owt-7be5be79.pth")
    torch.save(_small(torchvision.models.vgg16().state_dict()), vision / "vgg16-397923af.pth")

    # LPIPS' 1x1 convolutions over AlexNet's five feature maps (no bias; weights are non-negative)
    lin = {f"lin{k}.model.1.weight": torch.rand(1, width, 1, 1) for k, width in enumerate(LPIPS_ALEX_WIDTHS)}
    torch.save(lin, iqa / "LPIPS_v0.1_alex-df73285e.pth")

    alpha_beta = {"alpha": torch.rand(1, DISTS_CHANNELS, 1, 1), "beta": torch.rand(1, DISTS_CHANNELS, 1, 1)}
    torch.save(alpha_beta, iqa / "DISTS_weights-f5e65c96.pth")

    torch.save(MUSIQ(pretrained=False, num_class=1).state_dict(), iqa / "musiq_koniq_ckpt-e95806b9.pth")
    torch.save(fid_inception().state_dict(), iqa / "pt_inception-2015-12-05-6726825d.pth")

    factor = rng.normal(size=(NIQE_FEATURES, NIQE_FEATURES))
    scipy.io.savemat(
        iqa / "niqe_modelparameters.mat",
        {
            "mu_prisparam": rng.normal(size=(1, NIQE_FEATURES)),
            "cov_prisparam": factor @ factor.T / NIQE_FEATURES + np.eye(NIQE_FEATURES),
        },
    )
    if with_ffhq_stats:
        features = rng.normal(size=(4096, 2048)).astype(np.float32)
        np.savez(iqa / FFHQ_STATS, mu=features.mean(0), sigma=np.cov(features, rowvar=False))


def write_clip_rn50(path: Path, seed: int = 0) -> Path:
    """OpenAI's ``RN50.pt`` layout: pyiqa's ``CLIP`` (the same modules and names as OpenAI's)
    at ResNet-50's sizes, in OpenAI's dtypes (``convert_weights``: convolutions, linear layers,
    attention and projections float16; norms and embeddings float32), traced and saved with
    ``torch.jit.save``, with the integer tensors ``input_resolution``, ``context_length`` and
    ``vocab_size`` that OpenAI's archives hold beside the weights (pyiqa's ``build_model``
    drops them). 256 MB, like the real one."""
    torch.manual_seed(seed)
    model = clip_model.CLIP(**CLIP_RN50_SIZES)
    clip_model.convert_weights(model)
    for name in ("context_length", "vocab_size"):  # plain ints on pyiqa's CLIP
        delattr(model, name)
    for name in ("input_resolution", "context_length", "vocab_size"):
        key = "image_resolution" if name == "input_resolution" else name
        model.register_buffer(name, torch.tensor(CLIP_RN50_SIZES[key]))
    image = torch.rand(1, 3, 224, 224, dtype=torch.float16)
    text = torch.randint(0, CLIP_RN50_SIZES["vocab_size"], (2, CLIP_RN50_SIZES["context_length"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        traced = torch.jit.trace(model.eval(), (image, text), check_trace=False)
    torch.jit.save(traced, str(path))
    return path


def write_timm_vit_b8(path: Path) -> Path:
    """timm's ``model.safetensors`` of ``vit_base_patch8_224``: every tensor's name, shape and
    float32 dtype, all values zero, written as a sparse file (346 MB that take no disk where the
    file system allows). MANIQA's checkpoint overwrites every value timm loads from it."""
    with torch.device("meta"):
        shapes = {
            key: tuple(value.shape) for key, value in timm.create_model(TIMM_VIT_B8_ARCH).state_dict().items()
        }
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key, shape in shapes.items():
        size = 4 * int(np.prod(shape, dtype=np.int64))
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        handle.truncate(8 + len(encoded) + offset)
    return path


def write_maniqa_koniq(path: Path, timm_file: Path, seed: int = 0) -> Path:
    """pyiqa's ``ckpt_koniq10k.pt`` layout: the state dict of pyiqa's ``MANIQA`` with its
    default "maniqa" options, ViT included (timm builds it from ``timm_file``, as in real use;
    its values are then replaced by random ones). Floating-point tensors are stored as float16
    (``load_state_dict`` copies them into the float32 network) and the ViT parts after block 9,
    whose outputs MANIQA never reads, as one shared zero: 241 MB instead of the real 543 MB."""
    torch.manual_seed(seed)
    with pyiqa_reading_from(path.parent / ".torch-hub", timm_files={TIMM_VIT_B8_ARCH: timm_file}):
        network = MANIQA(pretrained=False, **MANIQA_KONIQ)
    network.vit.load_state_dict(timm.create_model(TIMM_VIT_B8_ARCH).state_dict())
    state = {}
    for key, value in network.state_dict().items():
        if not value.is_floating_point():
            state[key] = value  # Swin's relative position indices
        elif key.startswith(MANIQA_UNUSED):
            state[key] = torch.zeros(1, dtype=torch.float16).expand(value.shape)
        else:
            state[key] = value.half()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
