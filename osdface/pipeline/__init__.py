"""The one-step pipeline and its parts.

- ``pipeline_osdface``: ``OSDFacePipeline`` (VRE -> VAE encode -> UNet at t=399 -> VAE decode) and
  its output class;
- ``inputs``: what the pipeline accepts (checked, with the bad value) and returns;
- ``embedder``: the Visual Representation Embedder (VRE), the authors' VQ tokenizer as 77 tokens;
- ``lora``: the UNet LoRA in every layout peft and diffusers write, loaded and verified;
- ``color``: colour fix of a restoration against its input;
- ``without_vre``: one photo with the VRE and again without it (the ablation), sharing the work;
- ``stage_clock``: seconds per stage, when asked for;
- ``cpu_tuning``: per-module memory format and the checks that keep CPU runs out of known traps.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "pipeline_osdface": ["OSDFacePipeline", "OSDFacePipelineOutput"],
        "embedder": ["VisualRepresentationEmbedder", "VREConfig"],
        "without_vre": ["restore_with_and_without_vre"],
        "cpu_tuning": ["apply_memory_format", "check_cpu_dtype"],
    },
)
