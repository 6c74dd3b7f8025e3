"""facexlib's models, built and loaded safely: RetinaFace (detection) and ParseNet (the
optional paste mask), and ``PhotoHelper``, facexlib's own ``FaceRestoreHelper`` set up without
its weight loading, which the tests and ``benchmarks.bench_paste`` use as the reference paste-back.

The weights come through ``osdface.weights.facexlib_files`` (no pickled code runs).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import cv2
import numpy as np
import torch
from facexlib.detection.retinaface import RetinaFace
from facexlib.parsing.parsenet import ParseNet
from facexlib.utils.face_restoration_helper import FaceRestoreHelper

from osdface.faces.detection import DetectedFace
from osdface.faces.template import FACE_SIZE, FFHQ_TEMPLATE_512
from osdface.weights.facexlib_files import FacexlibWeights, FacexlibWeightsError, load_facexlib_state_dict

_DETECTOR_WEIGHTS = {
    "resnet50": "detection_Resnet50_Final.pth",
    "mobile0.25": "detection_mobilenet0.25_Final.pth",
}
PARSENET_WEIGHTS = "parsing_parsenet.pth"


class RetinaFaceDetector:
    """facexlib's RetinaFace as a ``FaceDetector``.

    ``threshold`` 0.97 is what FaceRestoreHelper uses. Photos larger than ``max_side`` pixels
    (longer side) are downscaled for detection only, which bounds its memory and time; faces
    smaller than about 16 pixels in the downscaled image are then missed.
    """

    def __init__(self, model: torch.nn.Module, *, threshold: float = 0.97, max_side: int | None = 1600):
        self.model = model.eval()
        self.threshold = float(threshold)
        self.max_side = max_side
        # RetinaFace.detect_faces stores the input scale on the module between two steps of
        # one call: two threads detecting at once would mix their scales.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        network: str = "resnet50",
        *,
        weights: FacexlibWeights | None = None,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> RetinaFaceDetector:
        """Build RetinaFace (``network`` "resnet50" or "mobile0.25") and load its weights
        through ``osdface.weights.facexlib_files`` (no pickled code runs)."""
        if network not in _DETECTOR_WEIGHTS:
            raise ValueError(
                f"unknown RetinaFace network {network!r}; expected one of {sorted(_DETECTOR_WEIGHTS)}"
            )
        weights = weights or FacexlibWeights.from_env()
        path = weights.path(_DETECTOR_WEIGHTS[network])
        with warnings.catch_warnings():
            # facexlib builds its backbone with torchvision's deprecated resnet50(pretrained=False).
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            model = RetinaFace(network_name=network, half=False, device=torch.device(device))
        _load_into(model, path)
        return cls(model, **options)

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        """``image``: (H, W, 3) RGB uint8 -> faces, most confident first."""
        height, width = image.shape[:2]
        scale_x = scale_y = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            factor = self.max_side / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # RetinaFace expects OpenCV's BGR order
        with self._lock, torch.inference_mode():
            rows = self.model.detect_faces(bgr, conf_threshold=self.threshold)
        scale = np.array([scale_x, scale_y])
        faces = []
        for row in np.asarray(rows, dtype=np.float64):
            # Back to the photo's pixels (OpenCV's resize maps pixel centres: x' + 0.5 = s (x + 0.5)).
            corners = (row[0:4].reshape(2, 2) + 0.5) / scale - 0.5
            landmarks = (row[5:15].reshape(5, 2) + 0.5) / scale - 0.5
            faces.append(
                DetectedFace(
                    box=tuple(float(v) for v in corners.ravel()), landmarks=landmarks, score=float(row[4])
                )
            )
        return faces


def load_parsenet(
    weights: FacexlibWeights | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """facexlib's ParseNet face parser (the optional paste mask), loaded safely."""
    weights = weights or FacexlibWeights.from_env()
    model = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    _load_into(model, weights.path(PARSENET_WEIGHTS))
    return model.eval().to(torch.device(device))


def _load_into(model: torch.nn.Module, path) -> None:
    state = load_facexlib_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FacexlibWeightsError(
            f"{path} does not match facexlib's {type(model).__name__}: {exc}. "
            "Replace it with the file facexlib publishes under that name."
        ) from exc
    model.eval()


class PhotoHelper(FaceRestoreHelper):
    """A ``FaceRestoreHelper`` for one photo, around models loaded once elsewhere.

    ``FaceRestoreHelper.__init__`` builds RetinaFace and ParseNet and loads their weights from
    ``model_rootpath`` every time, downloading into site-packages when absent and unpickling
    with a plain ``torch.load``; it loads both even when neither is used (a custom detector,
    no parse mask). But the helper also holds one photo's state (crops, matrices), so we need
    a fresh one per photo. This subclass therefore sets exactly the attributes facexlib 0.3.0's
    ``__init__`` sets (for 512x512 crops, five-point template, no pad blur) and takes the
    parser, if any, from the caller; detection is ours (``get_face_landmarks_5`` is unused).
    ``tests/test_faces.py`` checks the attributes against a real ``FaceRestoreHelper``.
    """

    def __init__(self, *, upscale_factor: float, face_parse: torch.nn.Module | None, device: torch.device):
        # Deliberately no super().__init__(): see the class docstring.
        self.template_3points = False
        self.upscale_factor = upscale_factor
        self.crop_ratio = (1, 1)
        self.face_size = (FACE_SIZE, FACE_SIZE)
        self.face_template = FFHQ_TEMPLATE_512.copy()
        self.save_ext = "png"
        self.pad_blur = False
        self.device = device
        self.face_det = None
        self.use_parse = face_parse is not None
        self.face_parse = face_parse
        self.clean_all()
