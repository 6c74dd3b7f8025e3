"""Other face restorers next to OSDFace (GFPGAN, RestoreFormer, CodeFormer) and the background
upscalers (Real-ESRGAN), through spandrel: a registry in spandrel's spirit, where spandrel holds the
authors' architectures and this package what each restorer needs around them.

- ``specs``: each restorer's name, release file, source and licence (the registry);
- ``weight_files``: where their files come from (``OSDFACE_RESTORERS_DIR``, the cache, a Hub repo,
  the release URL);
- ``loading``: the ``FaceModel`` protocol, loading through spandrel, OSDFace as one of them;
- ``comparison``: several restorers on the same detected faces, written side by side;
- ``backgrounds``: the photo behind the faces for ``--upscale``.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "specs": ["RestorerSpec", "RESTORERS", "BACKGROUNDS", "parse_restorers"],
        "loading": ["FaceModel", "FaceModelPipeline", "RestorerSet"],
        "backgrounds": ["load_background"],
        "comparison": ["BesideWriter"],
    },
)
