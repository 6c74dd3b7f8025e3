"""Benchmarks: scripts that print figures (nothing is asserted), kept apart from the model code.

    python -m osdface.bench              # the pipeline: VRE cost, per-stage latency (pipeline.py)
    python -m osdface.bench.faces        # a photo's faces: one batched call vs one at a time
    python -m osdface.bench.comparison   # with + without VRE: two restores vs one shared encoding
    python -m osdface.bench.paste        # 12 MP paste-back: facexlib's whole frame vs each face's box
    python -m osdface.bench.turbulence   # the degradations per 512x512 RGB frame
    python -m osdface.bench.peers        # other restorers per face next to OSDFace
    python -m osdface.bench.threads      # CPU threads per pipeline stage (1 vs torch's default)

``osdface.bench.cpu`` holds what the pipeline benchmark adds on CPU (GFLOP/s, memory formats).
The GPU check is ``benchmarks/gpu_check.sh``.
"""
