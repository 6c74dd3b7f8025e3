"""OSDFace Studio: one-step diffusion face restoration (OSDFace, CVPR 2025).

Heavy modules (diffusers, transformers, facexlib) load on first use, so that
``osdface.degradations`` or the CLI's ``--help`` stay quick to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "OSDFacePipeline": "osdface.pipeline.pipeline_osdface",
    "OSDFacePipelineOutput": "osdface.pipeline.pipeline_osdface",
    "VisualRepresentationEmbedder": "osdface.pipeline.embedder",
}

if TYPE_CHECKING:
    from osdface.pipeline.embedder import VisualRepresentationEmbedder
    from osdface.pipeline.pipeline_osdface import OSDFacePipeline, OSDFacePipelineOutput

__all__ = ["OSDFacePipeline", "OSDFacePipelineOutput", "VisualRepresentationEmbedder", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'osdface' has no attribute {name!r}")
