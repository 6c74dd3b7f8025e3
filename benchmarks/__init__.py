"""Benchmarks: scripts that print figures (nothing is asserted), kept apart from the model code.

    python -m benchmarks.bench_pipeline              # the pipeline: VRE cost, per-stage latency (pipeline.py)
    python -m benchmarks.bench_dtype        # CPU: float32 vs bfloat16, which the default picks and why
    python -m benchmarks.bench_faces        # a photo's faces: one batched call vs one at a time
    python -m benchmarks.bench_without_vre   # with + without VRE: two restores vs one shared encoding
    python -m benchmarks.bench_paste        # 12 MP paste-back: facexlib's whole frame vs each face's box
    python -m benchmarks.bench_turbulence   # the degradations per 512x512 RGB frame
    python -m benchmarks.bench_restorers        # other restorers per face next to OSDFace
    python -m benchmarks.bench_threads      # CPU threads per pipeline stage (1 vs torch's default)

``benchmarks.cpu_figures`` holds what the pipeline benchmark adds on CPU (GFLOP/s, the peak, memory formats).
The GPU check is ``benchmarks/gpu_check.sh``.
"""
