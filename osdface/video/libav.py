"""PyAV's ``av.open`` with FFmpeg's log messages kept away from Python.

Importing torchvision (``torchvision.io``) sets ``av.logging``'s level to ERROR, which installs
PyAV's log callback: an FFmpeg decoder thread that logs then waits for the GIL. Freeing a
frame-threaded decoder (a clip read part-way, its generator dropped; a damaged VP9 WebM logs on
every frame) joins those threads while holding the GIL: the process hangs for good (PyAV issues
909 and 367; seen here in the tests and so possible in the app's Video tab). Level None puts
back PyAV's callback that drops the messages without Python. It is set at every open, as any
import (torchvision is imported lazily) may set it again; the errors keep FFmpeg's reason
(``strerror``), which is what the messages quote.
"""

from __future__ import annotations

import av


def open_av(file, mode: str = "r", **kwargs):
    """``av.open(file, mode, **kwargs)`` with FFmpeg's logging off Python (see the module docstring)."""
    av.logging.set_level(None)
    return av.open(file, mode, **kwargs)
