"""Images at the package's boundaries: ``reading`` turns any file or in-memory image into
``(H, W, 3) RGB uint8`` (with limits and errors that name the file); ``conversion`` holds every
conversion between that format, PIL images, the pipeline's batches and the degradations' frames.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "reading": [
            "DEFAULT_MAX_PIXELS",
            "ImageSource",
            "ImageTooLargeError",
            "UnreadableImageError",
            "describe_source",
            "load_image",
        ],
        "conversion": [
            "ImageFormat",
            "fields_like",
            "from_frames",
            "postprocess",
            "tensor_to_pil",
            "to_batch",
            "to_frames",
            "to_pil",
            "to_uint8_rgb",
        ],
    },
)
