"""Write wheels/opencv_python-V+headless-py3-none-any.whl: a distribution named opencv-python that
holds no code, only a requirement on opencv-python-headless==V, which provides cv2.

    python tools/opencv_shim.py            # (re)write it for the installed opencv-python-headless
    python tools/opencv_shim.py --version 5.0.0.93
    python tools/opencv_shim.py --check    # exit 1 unless wheels/ holds exactly the wheel for the
                                           # headless version requirements.txt pins, byte for byte

Why: facexlib requires `opencv-python` by name (the GUI build, whose cv2 links libGL.so.1), pyiqa and
this project `opencv-python-headless`. Installed together, both write the same cv2/ package and the
last one installed wins; OpenCV's maintainers support one of their packages at a time. With this
wheel, `opencv-python` is satisfied without a second OpenCV: requirements.txt's
`--find-links wheels` offers it, and pip takes it over PyPI's opencv-python of the same release
because V+headless is a newer version than V that still satisfies `opencv-python==V` (PEP 440: a
local label matches a pin without one, as torch 2.8.0+cpu matches torch==2.8.0).

The wheel is reproducible (fixed timestamps and order), so --check can compare bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import sys
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "wheels"
NAME = "opencv-python"
PROVIDER = "opencv-python-headless"
LOCAL_LABEL = "headless"
# The option line requirements.txt carries (tools/pin_requirements.py writes it); pip reads a
# relative --find-links path relative to the requirements file when that path exists there.
FIND_LINKS = "--find-links wheels"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

DESCRIPTION = """\
This is not OpenCV. It stands in for opencv-python so that packages asking for it by name (facexlib)
are satisfied by opencv-python-headless {version}, its requirement, which provides the cv2 module
without GUI support (no libGL.so.1 needed). Only one of OpenCV's packages may be installed at a time.
Built by OSDFace Studio's tools/opencv_shim.py.
"""


def wheel_name(version: str) -> str:
    return f"opencv_python-{version}+{LOCAL_LABEL}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_bytes(version: str) -> bytes:
    """The shim's wheel for opencv-python-headless ``version``."""
    dist_info = f"opencv_python-{version}+{LOCAL_LABEL}.dist-info"
    files = {
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {NAME}\n"
            f"Version: {version}+{LOCAL_LABEL}\n"
            f"Summary: Stand-in for opencv-python: installs {PROVIDER} {version}, which provides cv2\n"
            "License: Apache-2.0\n"
            f"Requires-Dist: {PROVIDER}=={version}\n"
            "Description-Content-Type: text/plain\n"
            "\n" + DESCRIPTION.format(version=version)
        ),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\n"
            "Generator: osdface-studio tools/opencv_shim.py\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{path},{_record_hash(text.encode())},{len(text.encode())}\n" for path, text in files.items()
    )
    files[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            info = zipfile.ZipInfo(path, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()


def pinned_provider_version(requirements: Path) -> set[str]:
    """The opencv-python-headless versions requirements.txt pins (one expected)."""
    pattern = re.compile(rf"^{re.escape(PROVIDER)}==([^\s;]+)", re.MULTILINE)
    return set(pattern.findall(requirements.read_text()))


def problems(folder: Path, requirements: Path) -> list[str]:
    """What --check reports: wheels/ must hold one shim, for the pinned headless version, as written."""
    versions = pinned_provider_version(requirements)
    if len(versions) != 1:
        return [f"{requirements.name} pins {PROVIDER} at {sorted(versions) or 'no version'}: expected one"]
    (version,) = versions
    found = sorted(path.name for path in folder.glob("*.whl")) if folder.is_dir() else []
    if found != [wheel_name(version)]:
        return [f"{folder.name}/ holds {found or 'nothing'}; expected [{wheel_name(version)!r}]"]
    if (folder / wheel_name(version)).read_bytes() != wheel_bytes(version):
        return [f"{folder.name}/{wheel_name(version)} differs from what this tool writes"]
    return []


def write(version: str, folder: Path = FOLDER) -> Path:
    """Write the shim for ``version`` and remove the shims of other versions."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("opencv_python-*.whl"):
        if old.name != wheel_name(version):
            old.unlink()
    path = folder / wheel_name(version)
    path.write_bytes(wheel_bytes(version))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--version", help=f"the {PROVIDER} version (default: the installed one)")
    parser.add_argument("--check", action="store_true", help="compare with requirements.txt's pin")
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    args = parser.parse_args(argv)
    if args.check:
        found = problems(args.folder, args.requirements)
        print("\n".join(found) if found else f"{args.folder.name}/ holds the shim requirements.txt needs")
        return 1 if found else 0
    try:
        version = args.version or metadata.version(PROVIDER)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{PROVIDER} is not installed here: pass --version") from None
    print(f"wrote {write(version, args.folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
