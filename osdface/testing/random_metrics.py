"""The metrics' weight files with random values, in their published layouts (file names, keys,
shapes, formats), for tests and benchmarks that cannot download the real ones.

``write_metric_files(folder)`` writes the pyiqa files into ``folder/iqa`` (to be placed into a
Hugging Face cache as ``chaofengc/IQA-PyTorch-Weights`` with
``osdface.testing.random_weights.add_to_hub_cache``) and torchvision's backbones into
``folder/torchvision`` (a local metrics folder, ``OSDFACE_METRICS_DIR``). The layouts:

- pyiqa's ``.pth`` files are state dicts of pyiqa's own modules (LPIPS: the linear layers
  ``lin0..lin4`` only, as in the LPIPS authors' release; DISTS: ``alpha`` and ``beta``; MUSIQ:
  the whole KonIQ model; the FID Inception: the whole network of ``fid_inception_v3``);
- ``niqe_modelparameters.mat``: MATLAB arrays ``mu_prisparam`` (1, 36) and ``cov_prisparam``
  (36, 36), a valid covariance;
- torchvision's ``alexnet-owt-7be5be79.pth`` and ``vgg16-397923af.pth``: whole state dicts. The
  classifier layers, which the metrics never run, hold one shared value (a zero-stride tensor)
  so that the files stay small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch
import torchvision
from pyiqa.archs import inception as pyiqa_inception
from pyiqa.archs.musiq_arch import MUSIQ

from osdface.quality.weights import FFHQ_STATS

NIQE_FEATURES = 36  # 18 features at each of two scales
LPIPS_ALEX_WIDTHS = (64, 192, 384, 256, 256)
DISTS_CHANNELS = 3 + 64 + 128 + 256 + 512 + 512  # the image and VGG16's five stages


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
    """Write every metric file (see the module docstring); return ``folder``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    iqa, vision = folder / "iqa", folder / "torchvision"
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
    return folder
