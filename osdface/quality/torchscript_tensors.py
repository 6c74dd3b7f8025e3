"""The tensors of a TorchScript archive, read without running anything from the file.

OpenAI publishes CLIP (CLIP-IQA's backbone, ``RN50.pt``) only as TorchScript archives: traced
modules saved with ``torch.jit.save``. ``torch.jit.load`` compiles and runs the archive's code
(its ``code/`` folder and the classes' ``__setstate__``), and ``torch.load(weights_only=True)``
refuses TorchScript archives. Yet the weights are plain records: a zip holding ``PREFIX/data.pkl``
(the module tree, pickled by TorchScript's own pickler) and one raw record per storage,
``PREFIX/data/KEY``.

``read_tensors`` unpickles ``data.pkl`` with an unpickler that resolves exactly these names and
refuses every other:

- ``__torch__.*`` (the archive's module classes): a plain Python object that keeps its state;
- ``torch._utils._rebuild_tensor_v2``: a view (``as_strided``, bounds-checked) of a storage;
- ``torch.FloatStorage``, ``torch.HalfStorage``, ...: the storage's dtype;
- ``collections.OrderedDict`` (the tensors' empty hook dicts) and the list builders of
  ``torch.jit._pickle``;

and reads each storage from its record as bytes. The module tree's tensors (parameters and
buffers) come out under their ``state_dict`` names: for a traced module those are exactly
the tensors its objects hold.

``write_state_archive`` writes tensors back as a TorchScript archive that holds no code but
their declarations (a ``torch.jit.script``-ed tree of empty modules with the tensors as
buffers): the one kind of file pyiqa's ``clip_model.load`` takes by path (see
``osdface.quality.weights``).
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osdface import lazy

torch = lazy.module("torch")

if TYPE_CHECKING:
    import torch

# TorchScript's pickler names a storage's dtype by its legacy storage class.
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "DoubleStorage": "float64",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
# torch.jit._pickle's builders of typed lists: the list itself.
_LIST_BUILDERS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist")


class ArchiveError(ValueError):
    """The file is not a TorchScript archive this reader takes, or it names a global that is
    not on the list (the message names it)."""


class ScriptObject:
    """An object of one of the archive's classes: only its pickled state, no behaviour."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Dtype:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` with only its arithmetic: a view of ``storage``."""
    if not isinstance(storage, torch.Tensor):
        raise ArchiveError("a tensor whose storage is not a storage record")
    return storage.as_strided(tuple(size), tuple(stride), int(storage_offset))


def _restore_type_tag(value, type_name):
    return value


def _same_list(values):
    return list(values)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return ScriptObject
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Dtype(_STORAGE_DTYPES[name])
        if module == "torch.jit._pickle" and name in _LIST_BUILDERS:
            return _same_list
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return _restore_type_tag
        raise ArchiveError(
            f"refused to resolve {module}.{name} (not a name a TorchScript archive's weights use)"
        )

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ArchiveError(f"unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid  # the location (e.g. "cuda:0") is ignored: read on the CPU
        if not isinstance(dtype, _Dtype) or not isinstance(key, str) or not isinstance(numel, int):
            raise ArchiveError(f"unexpected storage reference {pid!r:.80}")
        if key not in self.storages:
            dtype_ = getattr(torch, dtype.name)
            record = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
            size = numel * dtype_.itemsize
            if len(record) < size:
                raise ArchiveError(f"storage record {key} holds {len(record)} bytes, not {size}")
            flat = (
                torch.frombuffer(record, dtype=dtype_, count=numel) if numel else torch.empty(0, dtype=dtype_)
            )
            self.storages[key] = flat
        return self.storages[key]


def _prefix(archive: zipfile.ZipFile) -> str:
    found = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
    if len(found) != 1:
        raise ArchiveError("not a TorchScript archive: no single PREFIX/data.pkl")
    prefix = found[0].split("/")[0]
    names = set(archive.namelist())
    if f"{prefix}/constants.pkl" not in names:
        raise ArchiveError("not a TorchScript archive: no constants.pkl (a torch.save file?)")
    byteorder = f"{prefix}/byteorder"
    order = archive.read(byteorder).decode().strip() if byteorder in names else "little"
    if order != sys.byteorder:
        raise ArchiveError(f"the archive's byte order is {order}, this machine's {sys.byteorder}")
    return prefix


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of the module tree in the TorchScript archive ``path``, by ``state_dict``
    name, on the CPU, in their stored dtypes. Raises ``ArchiveError`` (or ``zipfile.BadZipFile``
    for a damaged file) rather than resolving any name not listed in the module docstring."""
    with zipfile.ZipFile(path) as archive:
        prefix = _prefix(archive)
        root = _Unpickler(archive.read(f"{prefix}/data.pkl"), archive, prefix).load()
    if not isinstance(root, ScriptObject):
        raise ArchiveError("the archive's data.pkl does not hold a module")
    tensors: dict[str, torch.Tensor] = {}
    _collect(root, "", tensors)
    if not tensors:
        raise ArchiveError("the archive holds no tensors")
    return tensors


def _collect(node: ScriptObject, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
    if not isinstance(node.state, dict):
        raise ArchiveError(f"module {prefix.rstrip('.') or '(root)'} has a custom state, not attributes")
    for name, value in node.state.items():
        if isinstance(value, torch.Tensor):
            tensors[prefix + name] = value.detach()  # a fresh tensor: nothing the pickle set on it
        elif isinstance(value, ScriptObject):
            _collect(value, f"{prefix}{name}.", tensors)


def write_state_archive(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write ``tensors`` as a TorchScript archive of empty modules whose buffers they are: its
    ``state_dict()`` after ``torch.jit.load`` is ``tensors``; its code declares attributes only."""
    root = torch.nn.Module()
    for key, value in tensors.items():
        *modules, leaf = key.split(".")
        node = root
        for name in modules:
            if name not in node._modules:
                node.add_module(name, torch.nn.Module())
            node = node._modules[name]
        node.register_buffer(leaf, value)
    torch.jit.save(torch.jit.script(root), str(path))
