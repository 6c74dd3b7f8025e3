"""OSDFace Studio: one-step diffusion face restoration (OSDFace, CVPR 2025).

The packages load on first use (``osdface.lazy``), so ``osdface --help`` and the app's page come
up before torch, diffusers or facexlib are imported.
"""

from osdface.lazy import attach

__version__ = "0.1.0"

_getattr, __dir__, _exports = attach(
    __name__,
    {
        "pipeline.pipeline_osdface": ["OSDFacePipeline", "OSDFacePipelineOutput"],
        "pipeline.embedder": ["VisualRepresentationEmbedder"],
    },
)
__all__ = [*_exports, "__version__"]
__getattr__ = _getattr
