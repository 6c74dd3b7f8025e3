"""Test set-up: every test runs offline against a temporary Hugging Face cache.

The environment is set here, at import, because huggingface_hub reads HF_HUB_CACHE and
HF_HUB_OFFLINE once when it is first imported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="osdface-tests-"))
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_SESSION_DIR / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["OSDFACE_CACHE"] = str(_SESSION_DIR / "osdface-cache")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
for name in ("OSDFACE_WEIGHTS", "OSDFACE_BASE_MODEL", "OSDFACE_WEIGHTS_REVISION", "OSDFACE_BASE_REVISION"):
    os.environ.pop(name, None)
# The quality metrics find no weights unless a test gives them: the app's tests then run (and are
# timed) without metrics whatever ran before them; tests of the metrics name their files.
NO_METRICS_REPO = "osdface-test/no-metric-weights"
os.environ["OSDFACE_METRICS_REPO"] = NO_METRICS_REPO
os.environ.pop("OSDFACE_METRICS_DIR", None)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def float32_cpu_default(monkeypatch):
    """The CPU's default dtype follows the processor (bfloat16 where it is native): every test
    sees a processor without it, so results do not depend on the machine; the tests of the
    choice patch ``native_bfloat16`` both ways themselves. (Subprocesses see the real answer.)"""
    from osdface.runtime import devices

    monkeypatch.setattr(devices, "native_bfloat16", lambda: False)


FIXTURES = Path(__file__).parent / "fixtures"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_hub():
    """Tiny random OSDFace + SD 2.1 base repos in the session's Hub cache (see
    ``osdface.testing.random_weights.TinyHub``: ``.weights_repo``, ``.base_repo``, ``.env``)."""
    from osdface.testing.random_weights import write_tiny_hub

    return write_tiny_hub(os.environ["HF_HUB_CACHE"])


def _read_only(pipe):
    """Turn the shared pipeline into a ``ReadOnlyPipeline``: every test sees the same object,
    so a test that moved it, swapped a component or set a public setting on it would change
    what the tests after it see (and results would depend on test order)."""
    from osdface import OSDFacePipeline

    class ReadOnlyPipeline(OSDFacePipeline):
        def __setattr__(self, name, value):
            # Private state (the CUDA streams, the lock) is the pipeline's own business.
            if not name.startswith("_"):
                raise AttributeError(
                    f"the session's tiny_pipeline is shared read-only; setting {name!r} on it would leak into "
                    "other tests: build your own with OSDFacePipeline.from_pretrained(tiny_hub.weights_repo, "
                    "base_model=tiny_hub.base_repo)"
                )
            super().__setattr__(name, value)

        def register_modules(self, **modules):
            raise AttributeError(
                f"the session's tiny_pipeline is shared read-only; cannot register {sorted(modules)}"
            )

        def to(self, *args, **kwargs):
            raise AttributeError(
                "the session's tiny_pipeline is shared read-only; .to() would move it for everyone"
            )

    pipe.__class__ = ReadOnlyPipeline
    return pipe


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_hub):
    """The tiny pipeline loaded through ``from_pretrained``, its text encoder already loaded (so
    no test's ``prompt=`` changes it for the others), shared read-only: setting a public
    attribute, registering a module or ``.to()`` raises ``AttributeError``."""
    from osdface import OSDFacePipeline

    pipe = OSDFacePipeline.from_pretrained(tiny_hub.weights_repo, base_model=tiny_hub.base_repo)
    pipe.load_text_encoder()
    return _read_only(pipe)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep files for people to look at (screenshots, plots)."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def metric_files(tmp_path_factory) -> Path:
    """The metrics' files with random weights where real use finds them: pyiqa's in the session's
    Hub cache (chaofengc/IQA-PyTorch-Weights), torchvision's in ``metric_files / "torchvision"``;
    every file in ``metric_files / "all"`` (a folder for ``--metrics-dir`` / OSDFACE_METRICS_DIR)."""
    from osdface.testing.hub_cache import add_to_hub_cache
    from osdface.testing.random_metrics import write_metric_files

    folder = write_metric_files(tmp_path_factory.mktemp("metric-files"), seed=0, with_ffhq_stats=True)
    from osdface.quality.weights import IQA_WEIGHTS_REPO

    add_to_hub_cache(Path(os.environ["HF_HUB_CACHE"]), IQA_WEIGHTS_REPO, folder / "iqa")
    (folder / "all").mkdir()
    for path in [*(folder / "iqa").iterdir(), *(folder / "torchvision").iterdir()]:
        (folder / "all" / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="session")
def metric_weights(metric_files, tmp_path_factory):
    from osdface.quality.weights import IQA_WEIGHTS_REPO, MetricWeights

    return MetricWeights.from_env(
        local_dir=metric_files / "torchvision",
        hub_repo=IQA_WEIGHTS_REPO,
        cache_dir=tmp_path_factory.mktemp("metrics-cache"),
        offline=True,
    )


@pytest.fixture(scope="session")
def clip_weights(tmp_path_factory):
    """OpenAI's ``RN50.pt`` with random weights (a traced TorchScript archive, 256 MB) in a local
    metrics folder, and settings that find it there (and nothing else: no torchvision files)."""
    from osdface.quality.weights import CLIP_RN50, MetricWeights
    from osdface.testing.random_metrics import write_clip_rn50

    folder = tmp_path_factory.mktemp("clip-files")
    write_clip_rn50(folder / CLIP_RN50, seed=0)
    return MetricWeights.from_env(
        local_dir=folder, cache_dir=tmp_path_factory.mktemp("clip-cache"), offline=True
    )


@pytest.fixture(scope="session")
def maniqa_files(metric_files, tmp_path_factory) -> Path:
    """MANIQA's two files with random weights where real use finds them: ``ckpt_koniq10k.pt``
    added to pyiqa's repo in the session's Hub cache (beside ``metric_files``' files), timm's
    ``model.safetensors`` (zeros, sparse) in its repo ``timm/vit_base_patch8_224.augreg2_in21k_ft_in1k``."""
    from osdface.quality.weights import IQA_WEIGHTS_REPO, TIMM_VIT_B8_REPO
    from osdface.testing.hub_cache import add_to_hub_cache
    from osdface.testing.random_metrics import write_maniqa_koniq, write_timm_vit_b8

    folder = tmp_path_factory.mktemp("maniqa-files")
    timm_file = write_timm_vit_b8(folder / "timm" / "model.safetensors")
    write_maniqa_koniq(folder / "iqa" / "ckpt_koniq10k.pt", timm_file, seed=0)
    cache = Path(os.environ["HF_HUB_CACHE"])
    add_to_hub_cache(cache, IQA_WEIGHTS_REPO, folder / "iqa", merge=True, link=True)
    add_to_hub_cache(cache, TIMM_VIT_B8_REPO, folder / "timm", link=True)
    return folder
