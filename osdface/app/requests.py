"""The app's requests: what a press of Restore asks for, the limits it is checked against, and
the errors a request meets. Plain data and checks; nothing here loads a model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from osdface.choices import COLOR_FIX_NAMES
from osdface.commands.model_options import ModelOptions
from osdface.errors import OSDFaceError

MODE_PHOTO = "photo"
MODE_ALIGNED = "aligned"
MODES = (MODE_PHOTO, MODE_ALIGNED)
PROPAGATION_LENGTH_RANGE = (20_000.0, 40_000.0)
DEFAULT_PROPAGATION_LENGTH = 30_000.0
MAX_SEED = 2**31 - 1
MAX_PROMPT_CHARS = 1000
DEFAULT_MAX_MEGAPIXELS = 25.0
DEFAULT_MAX_FACES = 10
# The simulator works on 2H x 2W FFT grids: a 4-megapixel photo takes about 10 s and a few GB
# on a CPU; larger ones would hold a worker for minutes.
MAX_TURBULENCE_MEGAPIXELS = 4.0


class RequestError(OSDFaceError, ValueError):
    """The request cannot be served as asked. The message tells the user what to do."""


class ServiceUnavailableError(OSDFaceError, RuntimeError):
    """A model the request needs could not be loaded. The message names the reason and the fix."""


@dataclass(frozen=True)
class StudioSettings:
    """How the app loads its models and which inputs it accepts.

    model: where the weights come from and where the models run, as every command line
        takes them (``osdface.commands.model_options``; None fields: the documented defaults).
    max_megapixels: larger inputs are refused, from their header, before decoding.
    max_faces: whole photos with more faces get their largest ``max_faces`` restored.
    zero_gpu: on a ZeroGPU Space: the face detector stays on the CPU so faces can be counted
        before a GPU is requested.
    metrics: the quality metrics can be asked for (``--no-metrics`` turns them off for all).
    """

    model: ModelOptions = ModelOptions()
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    max_faces: int = DEFAULT_MAX_FACES
    zero_gpu: bool = False
    metrics: bool = True

    def __post_init__(self) -> None:
        if not self.max_megapixels > 0:
            raise ValueError(f"max_megapixels must be > 0, got {self.max_megapixels!r}")
        if int(self.max_faces) < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces!r}")

    @property
    def max_pixels(self) -> int:
        return round(self.max_megapixels * 1e6)


@dataclass(frozen=True)
class RestoreRequest:
    """One press of Restore. ``image``: path of the uploaded file (None: nothing uploaded).

    mode: "photo" (detect and align every face) or "aligned" (the image is one aligned face).
    turbulence, propagation_length: degrade the input with the turbulence simulator first.
    seed: seeds the turbulence and the VAE posterior sample (face i gets seed + i).
    ablation, prompt: also restore the same faces conditioned on the text prompt instead of
        the VRE ("" is the null prompt).
    color_fix: "none", "adain" or "wavelet".
    metrics: score the results with the quality metrics (``osdface.app.scores``).
    """

    image: str | os.PathLike | None
    mode: str = MODE_PHOTO
    turbulence: bool = False
    propagation_length: float = DEFAULT_PROPAGATION_LENGTH
    seed: int = 0
    ablation: bool = False
    prompt: str = ""
    color_fix: str = "none"
    metrics: bool = True

    def check(self) -> None:
        """Raise ``RequestError`` for a value the widgets would not produce (an API caller)."""
        if self.mode not in MODES:
            raise RequestError(f"Unknown mode {self.mode!r}: use one of {', '.join(MODES)}.")
        if self.color_fix not in COLOR_FIX_NAMES:
            raise RequestError(
                f"Unknown colour fix {self.color_fix!r}: use one of {', '.join(COLOR_FIX_NAMES)}."
            )
        check_turbulence_settings(self.propagation_length, self.seed)
        if not isinstance(self.prompt, str):
            raise RequestError(f"The prompt must be text, got {type(self.prompt).__name__}.")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise RequestError(
                f"The prompt has {len(self.prompt)} characters; use at most {MAX_PROMPT_CHARS} "
                "(SD 2.1's text encoder reads only the first 77 tokens anyway)."
            )


def check_turbulence_settings(propagation_length: float, seed: int) -> None:
    low, high = PROPAGATION_LENGTH_RANGE
    if not isinstance(propagation_length, int | float) or not low <= float(propagation_length) <= high:
        raise RequestError(
            f"Propagation length {propagation_length!r} m is outside the simulated range: "
            f"choose {low:,.0f} to {high:,.0f} m."
        )
    if (
        isinstance(seed, bool)
        or not isinstance(seed, int | float)
        or not math.isfinite(seed)  # int() of NaN or infinity raises
        or seed != int(seed)
        or not 0 <= seed <= MAX_SEED
    ):
        raise RequestError(f"Seed {seed!r} is not valid: use a whole number from 0 to {MAX_SEED}.")
