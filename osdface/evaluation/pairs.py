"""Pair lists for face verification: LFW's ``pairs.txt`` and a simple CSV.

A pair names two images by *key*: a path relative to the faces folder (POSIX
separators), or an absolute path as written in a CSV. Keys identify images in the
embedding cache and seed each image's degradation, so they must be stable.

LFW ``pairs.txt`` (also ``pairsDevTrain.txt`` / ``pairsDevTest.txt``):

- first line: ``<sets> <pairs_per_set>`` (``10 300`` in ``pairs.txt``: 10 folds of 300
  same-person then 300 different-person pairs) or a single ``<pairs_per_set>``
  (the dev files: one set);
- ``name n1 n2``: two images of the same person;
- ``name1 n1 name2 n2``: two different people;
- image ``n`` of ``name`` is ``<root>/<name>/<name>_<nnnn>.jpg`` (4 digits, zero-padded).

CSV: ``path_a,path_b,same`` per line, an optional header line with exactly those
names; ``same`` is one of 1/0, true/false, yes/no, same/different.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_TRUE = {"1", "true", "yes", "same"}
_FALSE = {"0", "false", "no", "different"}


@dataclass(frozen=True)
class Pair:
    """Two images (by key, see the module docstring) and whether they show the same person."""

    a: str
    b: str
    same: bool


def lfw_key(name: str, number: int, extension: str = "jpg") -> str:
    """Key of LFW image ``number`` of ``name``: ``name/name_0001.jpg``."""
    return f"{name}/{name}_{number:04d}.{extension}"


def _lfw_number(token: str, where: str) -> int:
    try:
        number = int(token)
    except ValueError:
        raise ValueError(f"{where}: expected an image number, got {token!r}") from None
    if number < 1:
        raise ValueError(f"{where}: image numbers start at 1, got {number}")
    return number


def parse_lfw_pairs(text: str, *, source: str = "pairs.txt", extension: str = "jpg") -> list[Pair]:
    """Pairs from the text of an LFW pairs file (see the module docstring)."""
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{source}: empty pairs file")
    header_no, header = lines[0]
    try:
        counts = [int(token) for token in header]
    except ValueError:
        raise ValueError(
            f"{source}:{header_no}: the first line must be '<sets> <pairs_per_set>' or '<pairs_per_set>', "
            f"got {' '.join(header)!r}"
        ) from None
    if len(counts) == 1:
        expected = 2 * counts[0]
    elif len(counts) == 2:
        expected = 2 * counts[0] * counts[1]
    else:
        raise ValueError(f"{source}:{header_no}: header has {len(counts)} numbers, expected 1 or 2")

    pairs = []
    for line_no, tokens in lines[1:]:
        where = f"{source}:{line_no}"
        if len(tokens) == 3:
            name, n1, n2 = tokens
            pairs.append(
                Pair(
                    lfw_key(name, _lfw_number(n1, where), extension),
                    lfw_key(name, _lfw_number(n2, where), extension),
                    True,
                )
            )
        elif len(tokens) == 4:
            name1, n1, name2, n2 = tokens
            pairs.append(
                Pair(
                    lfw_key(name1, _lfw_number(n1, where), extension),
                    lfw_key(name2, _lfw_number(n2, where), extension),
                    False,
                )
            )
        else:
            raise ValueError(
                f"{where}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {len(tokens)} fields: "
                f"{' '.join(tokens)!r}"
            )
    if len(pairs) != expected:
        raise ValueError(
            f"{source}: header {' '.join(header)!r} promises {expected} pairs, found {len(pairs)}"
        )
    return pairs


def _csv_key(path: str, where: str) -> str:
    path = path.strip()
    if not path:
        raise ValueError(f"{where}: empty image path")
    if Path(path).is_absolute():
        return path
    return PurePosixPath(path.replace("\\", "/")).as_posix()


def parse_csv_pairs(text: str, *, source: str = "pairs.csv") -> list[Pair]:
    """Pairs from CSV text ``path_a,path_b,same`` (see the module docstring)."""
    rows = [
        (n, row)
        for n, row in enumerate(csv.reader(text.splitlines()), start=1)
        if any(c.strip() for c in row)
    ]
    if rows and [c.strip().lower() for c in rows[0][1]] == ["path_a", "path_b", "same"]:
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{source}: no pairs")
    pairs = []
    for line_no, row in rows:
        where = f"{source}:{line_no}"
        if len(row) != 3:
            raise ValueError(f"{where}: expected 3 columns path_a,path_b,same, got {len(row)}: {row!r}")
        flag = row[2].strip().lower()
        if flag in _TRUE:
            same = True
        elif flag in _FALSE:
            same = False
        else:
            raise ValueError(
                f"{where}: 'same' must be 1/0, true/false, yes/no or same/different, got {row[2]!r}"
            )
        pairs.append(Pair(_csv_key(row[0], where), _csv_key(row[1], where), same))
    return pairs


def read_pairs(pairs_file: Path | str, *, extension: str = "jpg") -> list[Pair]:
    """Pairs from a file: CSV when it ends in ``.csv``, else LFW's format.

    ``extension`` is the image file extension LFW keys get (LFW ships ``jpg``).
    """
    path = Path(pairs_file)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return parse_csv_pairs(text, source=str(path))
    return parse_lfw_pairs(text, source=str(path), extension=extension)


def resolve(root: Path, key: str) -> Path:
    """The file a key names: ``root / key``, or the key itself when absolute."""
    path = Path(key)
    return path if path.is_absolute() else root / path


def unique_images(pairs: list[Pair]) -> list[str]:
    """Every image key of the pairs once, in order of first appearance."""
    return list(dict.fromkeys(key for pair in pairs for key in (pair.a, pair.b)))
