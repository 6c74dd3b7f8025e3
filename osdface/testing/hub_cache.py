"""Files placed into a Hugging Face cache as if downloaded from a Hub repo: how the tests and the
benchmarks serve random weights to the real loaders offline (``HF_HUB_OFFLINE=1``)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def add_to_hub_cache(
    cache_dir: Path,
    repo_id: str,
    source: Path,
    revision: str = "main",
    *,
    merge: bool = False,
    link: bool = False,
) -> str:
    """Place the files of ``source`` into ``cache_dir`` as a downloaded Hub snapshot
    (``models--owner--name/{blobs,snapshots/<commit>,refs/<revision>}``); return the commit.
    ``merge``: the snapshot also keeps the files ``revision`` pointed at so far (another set of
    files added to the same repo). ``link``: hard links instead of copies where the file system
    allows (large files, sparse ones included, take no second copy)."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    ref = repo_dir / "refs" / revision
    files = {
        path.relative_to(source).as_posix(): path for path in sorted(source.rglob("*")) if path.is_file()
    }
    if merge and ref.is_file():
        previous = repo_dir / "snapshots" / ref.read_text().strip()
        for path in sorted(previous.rglob("*")):
            if path.is_file():
                files.setdefault(path.relative_to(previous).as_posix(), path)
    digest = hashlib.sha1(repo_id.encode())
    for name, path in sorted(files.items()):
        digest.update(name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    commit = digest.hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    for name, path in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            continue
        if link:
            try:
                target.hardlink_to(path)
                continue
            except OSError:
                pass  # another file system, or no hard links there: a copy
        shutil.copyfile(path, target)
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return commit
