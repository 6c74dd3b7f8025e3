"""Benchmark: pasting restored faces back into a 12-megapixel photo, facexlib's whole-frame
paste-back vs ``osdface.faces.paste`` (the same maths on each face's box).

    python -m benchmarks.bench_paste                 # 4000x3000 photo, 3 faces, 3 alternating repeats
    python -m benchmarks.bench_paste --faces 1 --upscale 2

Times both on the same affine matrices, alternating (so that load on the machine falls on
both), and prints the median seconds per photo and per face, the speed-up and the largest
differences inside the faces and elsewhere. No model runs: the "restored" faces are the
inverted crops. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from osdface.faces import FFHQ_TEMPLATE_512
from osdface.faces import PhotoHelper as _PhotoHelper
from osdface.faces.paste import paste_faces


def _helper(width: int, height: int, faces: int, upscale: float, seed: int = 0) -> _PhotoHelper:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 32, width // 32, 3), dtype=np.uint8)
    photo = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)  # (H, W, 3) BGR uint8
    helper = _PhotoHelper(upscale_factor=upscale, face_parse=None, device=torch.device("cpu"))
    helper.input_img = photo
    face_width = min(width, height) // 4
    for index in range(faces):
        left = (index + 0.5) * width / (faces + 1)
        top = height / 3 + rng.uniform(-0.1, 0.1) * height
        angle = np.deg2rad(rng.uniform(-15, 15))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        landmarks = (FFHQ_TEMPLATE_512 - 256) @ rotation.T * face_width / 512 + [left + face_width / 2, top]
        helper.all_landmarks_5.append(landmarks)
        helper.det_faces.append(np.array([left, top, left + face_width, top + face_width, 0.99]))
    helper.align_warp_face()
    helper.get_inverse_affine()
    for crop in helper.cropped_faces:
        helper.add_restored_face(np.ascontiguousarray(255 - crop))
    return helper


def run(width: int, height: int, faces: int, upscale: float, repeats: int) -> dict[str, float]:
    helper = _helper(width, height, faces, upscale)
    inverses = [m.copy() for m in helper.inverse_affine_matrices]
    times: dict[str, list[float]] = {"facexlib": [], "box": []}
    outputs = {}
    for _ in range(repeats):
        start = time.perf_counter()
        helper.inverse_affine_matrices = [m.copy() for m in inverses]  # facexlib edits them in place
        outputs["facexlib"] = helper.paste_faces_to_input_image()
        times["facexlib"].append(time.perf_counter() - start)
        start = time.perf_counter()
        outputs["box"] = paste_faces(helper.input_img, helper.restored_faces, inverses, upscale=upscale)
        times["box"].append(time.perf_counter() - start)
    out_h, out_w = outputs["box"].shape[:2]
    inside = np.zeros((out_h, out_w), bool)
    for inverse in inverses:
        matrix = inverse.copy()
        matrix[:, 2] += 0.5 * upscale if upscale > 1 else 0.0
        inside |= cv2.warpAffine(np.ones((512, 512), np.float32), matrix, (out_w, out_h)) > 0
    diff = np.abs(outputs["box"].astype(np.int16) - outputs["facexlib"].astype(np.int16)).max(axis=2)
    figures = {name: statistics.median(values) for name, values in times.items()}
    figures.update(
        ratio=figures["facexlib"] / figures["box"],
        max_inside=float(diff[inside].max()),
        max_outside=float(diff[~inside].max()),
        changed_outside=float((diff[~inside] > 0).sum()),
    )
    print(
        f"photo {width}x{height} ({width * height / 1e6:.1f} MP), {faces} face(s) of {min(width, height) // 4} px, "
        f"upscale {upscale:g}; median of {repeats} alternating run(s)"
    )
    print(
        f"facexlib whole-frame paste: {figures['facexlib']:.3f} s ({figures['facexlib'] / faces:.3f} s per face)"
    )
    print(f"box-local paste:            {figures['box']:.3f} s ({figures['box'] / faces:.3f} s per face)")
    print(
        f"speed-up {figures['ratio']:.1f}x; max difference {figures['max_inside']:.0f} levels inside the faces, "
        f"{figures['max_outside']:.0f} outside ({figures['changed_outside']:.0f} pixels outside differ: "
        "rounding instead of truncation)"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--faces", type=int, default=3)
    parser.add_argument("--upscale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.width, args.height, args.faces, args.upscale, args.repeats)


if __name__ == "__main__":
    main()
