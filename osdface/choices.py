"""Named choices that the command lines, the app and the pipeline share, importable without
torch (the app builds its page before torch is imported)."""

from __future__ import annotations

from enum import Enum


class ColorFix(str, Enum):
    """The colour corrections, by the names the CLI, the app and the pipeline take."""

    NONE = "none"
    ADAIN = "adain"
    WAVELET = "wavelet"

    @classmethod
    def parse(cls, value: str | ColorFix | None) -> ColorFix:
        """None, a name or a member -> the member; ``ValueError`` naming the bad value."""
        if value is None:
            return cls.NONE
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown colour fix {value!r}: use one of {', '.join(COLOR_FIX_NAMES)}"
            ) from None

    @classmethod
    def argument(cls, value: str | ColorFix | None) -> str | None:
        """The pipeline's ``color_fix`` argument for ``value``: None for no fix, else the name."""
        fix = cls.parse(value)
        return None if fix is cls.NONE else fix.value


COLOR_FIX_NAMES = tuple(member.value for member in ColorFix)  # for argparse choices and menus

# The one-step pipeline's stages, in order, by the names every report uses: the pipeline's
# timings, the progress messages, the app's timing table and the benchmarks. The first stage
# makes the prompt tokens: "vre" for OSDFace, TEXT_STAGE in its place for the without-VRE ablation.
PIPELINE_STAGES = ("vre", "vae_encode", "unet", "vae_decode")
TEXT_STAGE = "text_encoder"
