"""Randomly initialised models in the exact published file layouts, at full size or tiny: the
tests and the benchmarks load them through the real loaders (nothing here is used to restore).

- ``random_weights``: OSDFace's components, the tiny Hub repos (``write_tiny_hub``), LoRA files;
- ``hub_cache``: files placed into a Hugging Face cache as a downloaded snapshot;
- ``random_metrics``: the quality metrics' files;
- ``random_restorers``: the other restorers' and Real-ESRGAN's architectures with random weights;
- ``clips``: small real video clips (audio, variable frame rate, rotation, odd sizes).
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "random_weights": ["TinyHub", "write_tiny_hub", "random_pipeline"],
        "random_restorers": ["build_face_model", "build_rrdbnet"],
        "hub_cache": ["add_to_hub_cache"],
        "clips": ["make_clip", "make_audio_file", "replace_codec_tag"],
    },
)
