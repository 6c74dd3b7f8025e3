"""Face identity: ArcFace embeddings and the cosine similarity of two aligned faces.

The model is facexlib's ArcFace recognition network, ``recognition_arcface_ir_se50.pth``:
an IR-SE50 ResNet (``facexlib.recognition.arcface_arch.Backbone(50, 0.6, "ir_se")``) trained
with the ArcFace loss, from TreB1eN/InsightFace_Pytorch. Its weights come through
``osdface.weights.facexlib_files`` like the other facexlib files (a local folder, our cache, a Hub
repo when configured, facexlib's release URL) and load with ``weights_only=True``.

Input preprocessing, from a face aligned to the FFHQ template that OSDFace works on
(any square size; 512x512 in this project):

1. crop the square that maps the FFHQ five-point template onto ArcFace's 112x112 template
   (the one InsightFace and TreB1eN's MTCNN alignment use), by a least-squares scale and
   shift between the two templates (both are level: no rotation). On a 512x512 face that
   is about x 65..448, y 61..445 (a 383-pixel square); ArcFace crops tighter than FFHQ;
2. resize it to 112x112 (bicubic, Pillow's antialiased resampling);
3. reorder the channels RGB -> BGR: the network was trained on BGR-ordered pixels
   (TreB1eN's ``load_mx_rec`` keeps OpenCV's BGR order from MXNet records, and its
   evaluation data goes through ``cv2.cvtColor(..., RGB2BGR)``);
4. scale to [-1, 1] (``(x / 255 - 0.5) / 0.5``).

The network ends with an L2 normalisation, so the embeddings are unit vectors and their
dot product is the cosine similarity.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Union

import numpy as np
import torch
from facexlib.recognition.arcface_arch import Backbone
from PIL import Image

from osdface.faces import FFHQ_TEMPLATE_512
from osdface.images.conversion import to_uint8_rgb
from osdface.pipeline.inputs import check_image
from osdface.runtime.devices import resolve_device
from osdface.weights.facexlib_files import FacexlibWeights, FacexlibWeightsError, load_facexlib_state_dict
from osdface.weights.hub import WeightsUnavailableError

ARCFACE_WEIGHTS = "recognition_arcface_ir_se50.pth"
INPUT_SIZE = 112
EMBEDDING_DIM = 512

# InsightFace's 112x112 ArcFace template: five landmarks, (x, y) pixels, in facexlib's order
# (image-left eye, image-right eye, nose tip, left and right mouth corners).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)

# A reasonable "probably the same person" cut-off for this model on well-aligned faces.
# Why 0.3: TreB1eN's face-verification demo for this network accepts a match below a
# squared distance of 1.5 between unit embeddings (its config.py), i.e. a cosine above
# 0.25; a little higher errs towards "different". A rule of thumb, not a calibrated
# decision threshold (not measured here: no face data set is available offline): pose,
# blur, age and alignment errors all move the scores. eval-fr fits its own threshold.
SAME_PERSON_THRESHOLD = 0.3

SIMILARITY_LEGEND = (
    "Identity similarity: the cosine similarity of ArcFace (IR-SE50) embeddings of the two faces, "
    "from -1 to 1. 1.0 means the same picture; photos of the same person usually score above "
    f"{SAME_PERSON_THRESHOLD:.1f} (often 0.5 to 0.8), different people usually below 0.2. "
    "A restoration that keeps the identity scores close to 1 against its input; against a "
    "degraded input, higher than the input's own score means the restoration recovered identity. "
    "A rough guide only: pose, blur and alignment move the numbers."
)

FaceImage = Union[Image.Image, np.ndarray, "torch.Tensor"]


class IdentityUnavailableError(WeightsUnavailableError):
    """The ArcFace model cannot be loaded; the message names the file, the sources and the fix.

    A ``RuntimeError`` (through ``osdface.weights.hub.WeightsUnavailableError``), so code that already
    reports missing weights reports this one too."""


@functools.lru_cache(maxsize=16)
def _arcface_crop_box(size: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in pixels of a ``size``-pixel FFHQ-aligned face."""

    ffhq = FFHQ_TEMPLATE_512 * (size / 512.0)
    arc = ARCFACE_TEMPLATE_112
    ffhq_mean, arc_mean = ffhq.mean(axis=0), arc.mean(axis=0)
    # arc ~= scale * ffhq + shift, least squares over the five points
    scale = float(((ffhq - ffhq_mean) * (arc - arc_mean)).sum() / ((ffhq - ffhq_mean) ** 2).sum())
    shift = arc_mean - scale * ffhq_mean
    left, top = -shift / scale
    side = INPUT_SIZE / scale
    return float(left), float(top), float(left + side), float(top + side)


def arcface_input(faces: FaceImage | Sequence[FaceImage]) -> torch.Tensor:
    """FFHQ-aligned faces -> ArcFace's (N, 3, 112, 112) float32 input, BGR in [-1, 1].

    ``faces``: one or a list of square faces aligned like OSDFace's input: PIL RGB, (H, W, 3)
    RGB uint8 (or float in [0, 1]) arrays, (3, H, W) float tensors in [0, 1], or one
    (N, 3, H, W) float tensor in [0, 1].
    """

    if isinstance(faces, torch.Tensor) and faces.ndim == 4:
        items: list = list(faces)
    elif isinstance(faces, (list, tuple)):
        items = list(faces)
    else:
        items = [faces]
    if not items:
        raise ValueError("no faces given")
    crops = []
    for i, face in enumerate(items):
        check_image(face, f"face[{i}]")
        array = to_uint8_rgb(face, f"face[{i}]")
        box = _arcface_crop_box(array.shape[0])
        crop = Image.fromarray(array).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=box)
        crops.append(np.asarray(crop)[:, :, ::-1])  # RGB -> BGR, see the module docstring
    # contiguous NCHW: facexlib flattens with .view, which fails on channels-last tensors
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().contiguous()
    return batch / 127.5 - 1.0


def build_arcface_backbone() -> torch.nn.Module:
    """facexlib's IR-SE50 ArcFace network, randomly initialised, in eval mode."""

    return Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se").eval()


class ArcFaceEmbedder:
    """ArcFace identity embeddings of aligned faces.

    Build with :meth:`from_pretrained` (the real weights), :meth:`from_state_dict` or
    :meth:`random` (tests). Safe to share between threads: inference only reads the model.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def from_pretrained(cls, weights: FacexlibWeights | None = None) -> ArcFaceEmbedder:
        """Load ``recognition_arcface_ir_se50.pth`` through ``osdface.weights.facexlib_files``.

        Raises :class:`IdentityUnavailableError` naming the file, the sources tried and the fix.
        """

        settings = weights or FacexlibWeights.from_env()
        try:
            path = settings.path(ARCFACE_WEIGHTS)
            state_dict = load_facexlib_state_dict(path)
        except FacexlibWeightsError as exc:
            raise IdentityUnavailableError(f"the identity model (ArcFace) cannot be loaded: {exc}") from exc
        try:
            return cls.from_state_dict(state_dict)
        except IdentityUnavailableError as exc:
            raise IdentityUnavailableError(
                f"{path}: {exc} Delete the file and let it be fetched again, or replace it with "
                f"facexlib's {ARCFACE_WEIGHTS}."
            ) from exc

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> ArcFaceEmbedder:
        """Build from a facexlib-format state dict (keys of ``Backbone(50, 0.6, "ir_se")``)."""
        model = build_arcface_backbone()
        try:
            model.load_state_dict(dict(state_dict), strict=True)
        except RuntimeError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise IdentityUnavailableError(
                f"the weights do not match facexlib's IR-SE50 ArcFace network ({first_line})."
            ) from exc
        return cls(model)

    @classmethod
    def random(cls, seed: int = 0) -> ArcFaceEmbedder:
        """Randomly initialised weights (for tests; its similarities mean nothing)."""

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_arcface_backbone()
        return cls(model)

    def to(self, device: str | torch.device) -> ArcFaceEmbedder:
        """Move to ``device``; returns self. The model stays float32 (it is small)."""
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the weights: it keys cached embeddings to the model that made them."""
        digest = hashlib.sha256()
        for key, value in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def embed(self, faces: FaceImage | Sequence[FaceImage]) -> torch.Tensor:
        """(N, 512) float32 unit-length embeddings, on CPU, of FFHQ-aligned faces
        (see :func:`arcface_input` for the accepted inputs)."""

        batch = arcface_input(faces).to(self.device)
        with torch.inference_mode():
            embeddings = self.model(batch).float()
        # facexlib's Backbone already L2-normalises; once more keeps rounding from drifting
        return torch.nn.functional.normalize(embeddings, dim=1).cpu()

    def similarity(self, a: FaceImage, b: FaceImage) -> float:
        """Cosine similarity of the identities of two aligned faces, in [-1, 1]."""
        return self.similarities(a, [b])[0]

    def similarities(self, reference: FaceImage, faces: Sequence[FaceImage]) -> list[float]:
        """Cosine similarity of each of ``faces`` to ``reference``, in one batch."""
        if not faces:
            return []
        embeddings = self.embed([reference, *faces])
        return [cosine_similarity(embeddings[0], other) for other in embeddings[1:]]


@functools.lru_cache(maxsize=1)
def default_embedder() -> ArcFaceEmbedder:
    """The real ArcFace model, loaded once per process (from ``FacexlibWeights.from_env()``),
    on CUDA when available. A failed load raises :class:`IdentityUnavailableError` and is
    retried on the next call."""
    return ArcFaceEmbedder.from_pretrained().to(resolve_device())


def similarity(a: FaceImage, b: FaceImage, embedder: ArcFaceEmbedder | None = None) -> float:
    """Cosine similarity of the identities of two FFHQ-aligned faces, in [-1, 1]
    (``embedder``: default :func:`default_embedder`)."""
    return (embedder or default_embedder()).similarity(a, b)


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two embedding vectors (tensors or arrays)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape} and {b.shape}")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        raise ValueError("cannot compare a zero embedding")
    return float(np.clip(a @ b / denom, -1.0, 1.0))
