"""Run by tests/test_opencv.py in a mount namespace where libGL.so.1 reads as an empty file (a host
without libGL, simulated): `import cv2`, the app's turbulence preview and a whole-photo restore
with the tiny random models, reported as one JSON object on the last line of stdout.

    python tests/helpers/without_libgl.py OUT_DIR FACEXLIB_DIR WEIGHTS_REPO BASE_REPO
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
EXAMPLES = TESTS.parent / "examples"


def main(out: Path, facexlib_dir: Path, weights: str, base_model: str) -> dict:
    try:
        ctypes.CDLL("libGL.so.1")
        libgl = "loaded"
    except OSError as exc:  # what the simulation is for
        libgl = str(exc)

    import cv2

    from osdface.app.models import LoadedModels, Part
    from osdface.app.service import Studio

    # The turbulence preview, as the app's /degrade endpoint runs it (no model weights needed).
    studio = Studio(LoadedModels(missing={Part.PIPELINE: "not loaded in this test"}))
    preview, _ = studio.degrade(str(EXAMPLES / "astronaut_aligned.jpg"), 25_000, 2, out / "preview")

    # A whole photo through `osdface restore`: RetinaFace (random weights) from --facexlib-dir.
    from osdface.cli import main as cli_main

    args = ["restore", str(EXAMPLES / "astronaut.jpg"), "-o", str(out / "restored"), "--max-faces", "1"]
    args += ["--facexlib-dir", str(facexlib_dir), "--weights", weights, "--base-model", base_model]
    status = cli_main([*args, "--device", "cpu"])

    # The same restorer with the face's measured landmarks, so that a face surely goes through the
    # crop, the tiny pipeline and the paste-back (OpenCV's warps).
    sys.path.insert(0, str(TESTS))
    from helpers.faces import FixedDetector, measured_face, portrait
    from osdface import OSDFacePipeline
    from osdface.faces import FaceRestorer

    pipe = OSDFacePipeline.from_pretrained(weights, base_model=base_model)
    photo = portrait("grace_hopper")
    result = FaceRestorer(pipe, FixedDetector([measured_face("grace_hopper")])).restore(photo, seed=0)
    return {
        "libgl": libgl,
        "cv2": cv2.__file__,
        "preview": str(preview),
        "cli_status": status,
        "cli_outputs": sorted(p.name for p in (out / "restored").glob("*")),
        "faces": len(result.faces),
        "changed": float(np.abs(np.asarray(result.image, dtype=int) - photo).mean()),
    }


if __name__ == "__main__":
    out_dir, facexlib, weights_repo, base_repo = sys.argv[1:5]
    print(json.dumps(main(Path(out_dir), Path(facexlib), weights_repo, base_repo)))
