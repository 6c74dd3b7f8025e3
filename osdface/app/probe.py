"""The first step of the app's start: is the Hugging Face Hub reachable, and which weights are
missing (before any model is loaded; ``osdface.app.models`` loads them, ``osdface.app.service``
builds the ``Studio`` from them).

When the Hub cannot be reached, ``huggingface_hub`` retries every file five times (1+2+4+8+8 s)
before it falls back to the local cache; the app would take over a minute to show its page.
``hub_offline_if_unreachable`` probes the Hub once, with a short timeout, and when it cannot be
reached loads with the semantics of ``HF_HUB_OFFLINE=1`` (the local cache only), so the page
and its banner come up at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from osdface import lazy
from osdface.weights import hub
from osdface.weights.reachability import HubProbe, hub_unreachable

# huggingface_hub reads its settings when it is imported: not before the app's are in place.
hub_constants = lazy.module("huggingface_hub.constants")

# (what, app flag, environment variable) for each source the banner may name.
WEIGHTS_FLAGS = ("OSDFace weights", "--weights", "OSDFACE_WEIGHTS")
BASE_FLAGS = ("Stable Diffusion 2.1 base model", "--base-model", "OSDFACE_BASE_MODEL")


def needs_hub(*sources: str | os.PathLike | None) -> bool:
    """Whether any source (resolved like ``osdface.weights.hub.ModelSources``) is a Hub repo id."""
    resolved = hub.ModelSources.resolve(*sources[:2])
    return any(not Path(source).expanduser().is_dir() for source in (resolved.weights, resolved.base_model))


@contextmanager
def hub_offline_if_unreachable(
    weights: str | os.PathLike | None, base_model: str | os.PathLike | None
) -> Iterator[HubProbe | None]:
    """Inside: huggingface_hub is offline when the Hub was found unreachable. Yields the failed
    probe, or None (reachable, offline already, or only local folders)."""
    if hub_constants.HF_HUB_OFFLINE or not needs_hub(weights, base_model):
        yield None
        return
    probe = hub_unreachable()  # the same answer ``hub.fetch`` reads, remembered for a minute
    if probe is None:
        yield None
        return
    # huggingface_hub reads its offline flag at each request, so setting it here is enough.
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield probe
    finally:
        hub_constants.HF_HUB_OFFLINE = False


def unreachable_note(probe: HubProbe | None) -> str | None:
    """One line for the banner and the log when the probe failed."""
    if probe is None or probe.reachable:
        return None
    return (
        f"The Hugging Face Hub ({probe.endpoint}) could not be reached at start-up ({probe.reason}), "
        "so the app looked only in the local cache (as with HF_HUB_OFFLINE=1)."
    )


def missing_sources(
    weights: str | os.PathLike | None, base_model: str | os.PathLike | None
) -> list[tuple[tuple[str, str, str], str]]:
    """Each missing source as ((what, app flag, environment variable), error). The OSDFace
    weights and the SD 2.1 base model are checked separately: the weight files (online, the
    loading needs them anyway) and the base model's config files. From the cache or a folder
    this takes no time."""
    sources = hub.ModelSources.resolve(weights, base_model)
    weight_files = (hub.VRE_CHECKPOINT, hub.PROJECTION_WEIGHTS, hub.LORA_WEIGHTS)
    # Only the base model's small config files: online, a check must not download gigabytes.
    base_configs = [
        files[0] for part, files in hub.BASE_FILES.items() if part in ("vae", "unet", "scheduler")
    ]
    base = {"revision": sources.base_revision, "env_var": hub.ENV_BASE_MODEL}
    problems = []
    for flags, check in (
        (
            WEIGHTS_FLAGS,
            lambda: [hub.fetch(sources.weights, name, sources.revision) for name in weight_files],
        ),
        (
            BASE_FLAGS,
            lambda: [hub.fetch(sources.base_model, name, **base) for name in base_configs],
        ),
    ):
        try:
            check()
        except hub.WeightsUnavailableError as exc:
            problems.append((flags, str(exc)))
    return problems


def missing_sources_message(
    weights: str | os.PathLike | None, base_model: str | os.PathLike | None, first_error: str | None = None
) -> str | None:
    """Every missing source at once, each named with the app's flag and environment variable;
    None when none is missing and there is no ``first_error`` (what stopped the loading)."""
    problems = missing_sources(weights, base_model)
    if not problems:  # something else failed (a corrupt file): say that
        return first_error
    lines = [f"{len(problems)} of 2 model sources could not be loaded:"]
    for (what, flag, env), error in problems:
        lines.append(f"  - {what} (app flag {flag}, or {env}): {error}")
    lines.append(
        "Fix: start the app with --weights FOLDER_OR_REPO and --base-model FOLDER_OR_REPO (or set "
        "OSDFACE_WEIGHTS and OSDFACE_BASE_MODEL); facexlib's files: --facexlib-dir FOLDER (or "
        "OSDFACE_FACEXLIB_DIR)."
    )
    return "\n".join(lines)
