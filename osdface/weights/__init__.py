"""Where every file the models load comes from: one lookup (a folder, the cache, the Hub, a
release URL) and one verifying download.

- ``hub``: OSDFace's own files (repo ids, revisions, file names) and the Stable Diffusion base;
- ``sources``: the shared lookup and download for the files that are not on the Hub
  (facexlib's and the other restorers');
- ``facexlib_files``: facexlib's weights (RetinaFace, ParseNet, ArcFace), loaded safely.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "hub": ["ModelSources", "WeightsUnavailableError"],
        "sources": ["WeightSources"],
        "facexlib_files": ["FacexlibWeights", "FacexlibWeightsError"],
    },
)
