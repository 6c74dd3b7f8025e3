"""Faces in whole photos: find them, align them to the FFHQ template, restore them with
OSDFace, paste them back.

- ``template``: the face geometry (512x512, the FFHQ five-point template, the border colour)
  and the one alignment every caller uses;
- ``detection``: ``DetectedFace``, the ``FaceDetector`` protocol, ``select_faces``;
- ``facexlib_models``: facexlib's RetinaFace and ParseNet, loaded safely;
- ``options``: ``RestoreOptions`` and the results;
- ``restorer``: ``FaceRestorer`` (``detect``, ``restore_faces``, ``restore``).
"""

from osdface.faces.detection import DetectedFace, FaceDetection, FaceDetector, select_faces
from osdface.faces.facexlib_models import PARSENET_WEIGHTS, PhotoHelper, RetinaFaceDetector, load_parsenet
from osdface.faces.options import RestoredFace, RestoreOptions, RestoreResult
from osdface.faces.restorer import FaceRestorer
from osdface.faces.template import BORDER_RGB, FACE_SIZE, FFHQ_TEMPLATE_512, align_face, square_face

__all__ = [
    "BORDER_RGB",
    "FACE_SIZE",
    "FFHQ_TEMPLATE_512",
    "PARSENET_WEIGHTS",
    "DetectedFace",
    "FaceDetection",
    "FaceDetector",
    "FaceRestorer",
    "PhotoHelper",
    "RestoreOptions",
    "RestoreResult",
    "RestoredFace",
    "RetinaFaceDetector",
    "align_face",
    "load_parsenet",
    "select_faces",
    "square_face",
]
