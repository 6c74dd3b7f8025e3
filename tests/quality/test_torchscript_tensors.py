"""TorchScript archives read as tensors without running them, on small archives traced here
(``torch.jit.load`` of our own files is the reference), and archives that try to run code."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch

from osdface.quality.torchscript_tensors import ArchiveError, read_tensors, write_state_archive
from osdface.quality.weights import CLIP_RN50, MetricWeightsError, check_opens_safely


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3).half()
        self.norm = torch.nn.BatchNorm2d(4)  # float32 buffers and an int64 counter
        self.register_buffer("table", torch.arange(12.0).reshape(3, 4).t())  # not contiguous

    def forward(self, x):
        return self.norm(self.conv(x.half()).float()) + self.table.sum()


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.second = torch.nn.Linear(4, 4)
        self.third = torch.nn.Linear(4, 4)
        self.third.weight = self.second.weight  # one storage under two names

    def forward(self, x):
        y = self.first(x).mean((2, 3))
        return self.third(self.second(y))


def traced_archive(path):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(Tied().eval(), torch.rand(1, 3, 8, 8), check_trace=False), str(path))
    return path


def test_the_tensors_are_torch_jit_loads_state_dict(tmp_path):
    path = traced_archive(tmp_path / "tied.pt")
    expected = torch.jit.load(str(path)).state_dict()  # our own archive: safe to run
    tensors = read_tensors(path)
    assert list(tensors) == list(expected)
    for name, value in expected.items():
        assert tensors[name].dtype == value.dtype and torch.equal(tensors[name], value), name
    assert tensors["first.conv.weight"].dtype == torch.float16
    assert tensors["first.norm.num_batches_tracked"].dtype == torch.int64
    assert not tensors["first.table"].is_contiguous()
    assert tensors["second.weight"].data_ptr() == tensors["third.weight"].data_ptr()


def test_the_written_archive_holds_the_tensors_and_no_code(tmp_path):
    tensors = read_tensors(traced_archive(tmp_path / "tied.pt"))
    write_state_archive(tensors, tmp_path / "state.pt")
    loaded = torch.jit.load(str(tmp_path / "state.pt")).state_dict()
    assert list(loaded) == list(tensors)
    assert all(torch.equal(loaded[name], value) for name, value in tensors.items())
    with zipfile.ZipFile(tmp_path / "state.pt") as archive:
        code = [archive.read(name).decode() for name in archive.namelist() if name.endswith(".py")]
    assert code and not any("def " in text for text in code)  # declarations only


def _archive_with(path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("RN50/data.pkl", payload)
        archive.writestr("RN50/constants.pkl", pickle.dumps(()))
        archive.writestr("RN50/version", "3\n")


def test_an_archive_that_names_other_code_is_refused_before_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "ran"),))

    _archive_with(tmp_path / CLIP_RN50, pickle.dumps({"weight": Payload()}, protocol=2))
    with pytest.raises(ArchiveError, match=r"refused to resolve (posix|os|nt)\.mkdir"):
        read_tensors(tmp_path / CLIP_RN50)
    assert not (tmp_path / "ran").exists()
    with pytest.raises(MetricWeightsError, match="cannot open RN50.pt safely"):
        check_opens_safely(tmp_path / CLIP_RN50)


def test_a_torch_save_file_is_not_taken_for_an_archive(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "state.pt")
    with pytest.raises(ArchiveError, match="constants.pkl"):
        read_tensors(tmp_path / "state.pt")
    with pytest.raises(zipfile.BadZipFile):
        (tmp_path / "junk.pt").write_bytes(b"not a zip")
        read_tensors(tmp_path / "junk.pt")
