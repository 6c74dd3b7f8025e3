"""Names, release files, sources and licences of the other restorers (``osdface.restorers.loading``) and
of the Real-ESRGAN backgrounds (``osdface.restorers.backgrounds``); no torch import, so the CLI's ``--help``
stays quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from osdface.restorers.weight_files import WeightFile


@dataclass(frozen=True)
class RestorerSpec:
    """A restorer spandrel can load: its release file, spandrel's architecture id, where it
    comes from and its licence (shown wherever it can be chosen)."""

    key: str
    label: str
    architecture: str
    weights: WeightFile
    source: str
    licence: str
    commercial_use: bool = True
    extra_arches: bool = False

    @property
    def choice_label(self) -> str:
        """The name in lists of choices, with the licence."""
        note = "" if self.commercial_use else ", non-commercial only"
        return f"{self.label} ({self.licence}{note})"


_GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download"
RESTORERS: dict[str, RestorerSpec] = {
    "gfpgan": RestorerSpec(
        key="gfpgan",
        label="GFPGAN v1.4",
        architecture="GFPGAN",
        weights=WeightFile("gfpgan", "GFPGANv1.4.pth", f"{_GFPGAN_RELEASES}/v1.3.0/GFPGANv1.4.pth"),
        source="https://github.com/TencentARC/GFPGAN",
        licence="Apache-2.0",
    ),
    "restoreformer": RestorerSpec(
        key="restoreformer",
        label="RestoreFormer",
        architecture="RestoreFormer",
        weights=WeightFile(
            "restoreformer", "RestoreFormer.pth", f"{_GFPGAN_RELEASES}/v1.3.4/RestoreFormer.pth"
        ),
        source="https://github.com/wzhouxiff/RestoreFormer",
        licence="Apache-2.0",
    ),
    "codeformer": RestorerSpec(
        key="codeformer",
        label="CodeFormer",
        architecture="CodeFormer",
        weights=WeightFile(
            "codeformer",
            "codeformer.pth",
            "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
        ),
        source="https://github.com/sczhou/CodeFormer",
        licence="NTU S-Lab License 1.0",
        commercial_use=False,
        extra_arches=True,
    ),
}


def parse_restorers(
    text: str | Sequence[str], *, allowed: Sequence[str] = tuple(RESTORERS)
) -> tuple[str, ...]:
    """``"gfpgan, codeformer"`` -> ``("gfpgan", "codeformer")``: known names, each once, in order."""
    names = [part.strip().lower() for part in (text.split(",") if isinstance(text, str) else text)]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(names))


_REALESRGAN_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
REALESRGAN_FILES: dict[str, WeightFile] = {
    "realesrgan-x2": WeightFile(
        "realesrgan_x2", "RealESRGAN_x2plus.pth", f"{_REALESRGAN_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth"
    ),
    "realesrgan-x4": WeightFile(
        "realesrgan_x4", "RealESRGAN_x4plus.pth", f"{_REALESRGAN_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth"
    ),
}
BACKGROUNDS = ("none", "lanczos", *REALESRGAN_FILES)
BACKGROUND_LICENCES = {"realesrgan-x2": "BSD-3-Clause", "realesrgan-x4": "BSD-3-Clause"}
