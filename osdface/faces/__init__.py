"""Faces in whole photos: find them, align them to the FFHQ template, restore them with
OSDFace, paste them back.

- ``template``: the face geometry (``FACE_SIZE``, the FFHQ five-point template, the border colour)
  and the one alignment every caller uses;
- ``detection``: ``DetectedFace``, the ``FaceDetector`` protocol, ``select_faces``;
- ``facexlib_models``: facexlib's RetinaFace and ParseNet, loaded safely;
- ``options``: ``RestoreOptions`` and the results;
- ``restorer``: ``FaceRestorer`` (``detect``, ``restore_faces``, ``restore``);
- ``paste``: restored faces pasted back, working on each face's box only;
- ``batch``: a list of image files restored into an output folder (``osdface restore``);
- ``output_names``: which output file each input writes, and the input each output records.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "detection": ["DetectedFace", "FaceDetection", "FaceDetector", "select_faces"],
        "facexlib_models": ["PARSENET_WEIGHTS", "PhotoHelper", "RetinaFaceDetector", "load_parsenet"],
        "options": ["RestoredFace", "RestoreOptions", "RestoreResult"],
        "restorer": ["FaceRestorer"],
        "template": [
            "BORDER_RGB",
            "FACE_SIZE",
            "FFHQ_TEMPLATE_512",
            "align_face",
            "square_face",
            "warp_to_template",
        ],
    },
)
