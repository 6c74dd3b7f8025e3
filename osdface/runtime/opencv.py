"""Which OpenCV is installed and whether its ``cv2`` needs libGL, found without importing cv2
(which is what fails on a host without libGL.so.1).

OpenCV publishes four packages that all write the same ``cv2/`` folder; its maintainers support one
at a time. This project wants exactly one, ``opencv-python-headless``: facexlib's requirement on
``opencv-python`` is met by a stand-in of that name with no files, which only requires the
headless package (``wheels/`` in the repository, see ``tools/opencv_shim.py``). Two of them
installed (``pip install`` of PyPI's ``opencv-python``, a Space's build) leave whichever was
installed last; the GUI builds' extension links libGL.so.1, which slim containers and many
servers lack. ``osdface doctor`` and the app's start report it with the fix.
"""

from __future__ import annotations

import importlib.util
import logging
import struct
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)
WANTED = "opencv-python-headless"
# The GUI builds' Qt/OpenGL highgui needs it; the headless builds link no OpenGL at all.
GL_PREFIX = "libGL."
SHT_DYNAMIC = 6
DT_NEEDED, DT_RPATH, DT_RUNPATH = 1, 15, 29


def dynamic_entries(path: Path) -> tuple[list[str], list[str]]:
    """(DT_NEEDED: the libraries it links directly, DT_RPATH and DT_RUNPATH: where it looks for
    them) of an ELF shared object, read from its section headers; ``ValueError`` when the file
    is not ELF (macOS, Windows)."""
    with open(path, "rb") as handle:
        ident = handle.read(16)
        if ident[:4] != b"\x7fELF":
            raise ValueError(f"{path} is not an ELF file")
        wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        header_format = order + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH")
        header = struct.unpack(header_format, handle.read(struct.calcsize(header_format)))
        offset, entry_size, count = header[5], header[10], header[11]
        handle.seek(offset)
        table = handle.read(entry_size * count)
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        section = order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
        sections = [struct.unpack_from(section, table, i * entry_size) for i in range(count)]
        found: dict[int, list[str]] = {DT_NEEDED: [], DT_RPATH: [], DT_RUNPATH: []}
        for dynamic in (s for s in sections if s[1] == SHT_DYNAMIC):
            strings_at = sections[dynamic[6]]
            handle.seek(strings_at[4])
            strings = handle.read(strings_at[5])
            handle.seek(dynamic[4])
            for tag, value in struct.iter_unpack(order + ("qQ" if wide else "iI"), handle.read(dynamic[5])):
                if tag == 0:
                    break
                if tag in found:
                    found[tag].append(strings[value : strings.index(b"\0", value)].decode())
    paths = [part for text in found[DT_RPATH] + found[DT_RUNPATH] for part in text.split(":") if part]
    return found[DT_NEEDED], paths


def linked_libraries(path: Path) -> dict[str, str]:
    """Every library ``path`` needs, directly or through the libraries bundled beside it (those
    its RPATH/RUNPATH finds, as auditwheel places them in ``<dist>.libs/``): name -> the file
    that needs it. System libraries are named, not followed."""
    linked: dict[str, str] = {}
    todo = [path]
    while todo:
        current = todo.pop()
        needed, search = dynamic_entries(current)
        folders = [Path(entry.replace("$ORIGIN", str(current.parent))) for entry in search]
        for name in needed:
            if name in linked:
                continue
            linked[name] = current.name
            bundled = next((folder / name for folder in folders if (folder / name).is_file()), None)
            if bundled is not None:
                todo.append(bundled)
    return linked


def _ships_cv2(dist: metadata.Distribution) -> bool:
    return any(str(path).startswith("cv2/") for path in dist.files or ())


def cv2_extension() -> Path | None:
    """cv2's compiled module (``cv2/cv2.abi3.so`` and the like), found without importing cv2."""
    spec = importlib.util.find_spec("cv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(p for p in Path(folder).glob("cv2*") if p.suffix in (".so", ".pyd"))
        if found:
            return found[0]
    return None


@dataclass(frozen=True)
class OpenCVInstall:
    providers: dict[str, str]  # distribution -> version, for those that ship cv2/
    stand_ins: dict[str, str]  # OpenCV names that ship no cv2 (the opencv-python stand-in)
    extension: Path | None
    # every library the extension needs -> the file that needs it ({} when not ELF)
    linked: dict[str, str] = field(default_factory=dict)

    @property
    def gl_libraries(self) -> list[str]:
        """libGL.so.1 and the like, each with the library that needs it."""
        return [f"{name} (through {by})" for name, by in self.linked.items() if name.startswith(GL_PREFIX)]

    def problem(self) -> str | None:
        """What is wrong, in one sentence (None: one OpenCV, no libGL)."""
        if not self.providers:
            return "no OpenCV is installed (nothing provides cv2)"
        if len(self.providers) > 1:
            named = ", ".join(f"{name} {version}" for name, version in self.providers.items())
            return (
                f"{len(self.providers)} OpenCV distributions are installed ({named}); they write the same cv2/ "
                "folder, so the one installed last won"
                + (f", and its cv2 links {', '.join(self.gl_libraries)}" if self.gl_libraries else "")
            )
        if self.gl_libraries:
            (name,) = self.providers
            return (
                f"cv2 comes from {name}, a GUI build: {self.extension.name} links "
                f"{', '.join(self.gl_libraries)}, so `import cv2` fails where that library is missing"
            )
        return None

    def fix(self) -> str:
        unwanted = sorted(set(self.providers) | {"opencv-python", WANTED})
        return f"pip uninstall -y {' '.join(unwanted)} && pip install -r requirements.txt"

    def summary(self) -> str:
        parts = [f"{name} {version} provides cv2" for name, version in self.providers.items()]
        parts += [f"{name} {version} (a stand-in without cv2)" for name, version in self.stand_ins.items()]
        if self.extension is not None:
            links = ", ".join(self.gl_libraries) if self.gl_libraries else "no libGL"
            parts.append(f"{self.extension.name} links {links}")
        return "; ".join(parts) or "no OpenCV"


def inspect_opencv() -> OpenCVInstall:
    providers, stand_ins = {}, {}
    for name in DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        (providers if _ships_cv2(dist) else stand_ins)[name] = dist.version
    extension = cv2_extension()
    linked = {}
    if extension is not None:
        try:
            linked = linked_libraries(extension)
        except (ValueError, OSError, struct.error):
            linked = {}  # not ELF (macOS, Windows): no libGL question there
    return OpenCVInstall(providers, stand_ins, extension, linked)


def log_opencv_problem(logger: logging.Logger) -> str | None:
    """Warn (at the app's start) when OpenCV is not the one headless distribution; returns the
    warning. A Space's build installs PyPI's opencv-python beside it (the README, "One OpenCV"):
    cv2 then works where libGL.so.1 is present, and this names why it would not elsewhere."""
    install = inspect_opencv()
    problem = install.problem()
    if problem is None:
        return None
    message = f'OpenCV: {problem}. Fix: {install.fix()} (see the README, "One OpenCV")'
    logger.warning(message)
    return message
