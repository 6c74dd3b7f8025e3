"""The app's request folders (``osdface.app.request_folders``): named without being made, and
swept once everything in them has expired, at Gradio's ``delete_cache`` cadence. What the
endpoints write into them is checked on the running app in test_app.py."""

from __future__ import annotations

import os
import time

from osdface.app.request_folders import PREFIX, RequestFolders


def test_a_new_folder_is_named_not_made_and_never_shared(tmp_path):
    folders = RequestFolders(tmp_path / "cache")
    first, second = folders.new(), folders.new()
    assert first != second and first.parent == second.parent == tmp_path / "cache"
    assert first.name.startswith(PREFIX) and not first.exists() and not second.exists()


def test_the_sweep_removes_only_expired_request_folders(tmp_path):
    folders = RequestFolders(tmp_path, keep_for=3600)
    now = time.time()
    empty = tmp_path / f"{PREFIX}empty"  # e.g. Gradio deleted the files it handed out
    empty.mkdir()
    leftovers = tmp_path / f"{PREFIX}failed-half-way"
    (leftovers / "sub").mkdir(parents=True)
    (leftovers / "sub" / "input.png").write_bytes(b"png")
    # A file written, or handed out again by Gradio (which refreshes its time), 50 minutes later.
    refreshed = tmp_path / f"{PREFIX}refreshed"
    refreshed.mkdir()
    (refreshed / "osdface.png").write_bytes(b"png")
    os.utime(refreshed / "osdface.png", (now + 3000, now + 3000))
    not_ours = tmp_path / "0123abcd"  # one of Gradio's upload folders: Gradio's to remove
    not_ours.mkdir()
    assert folders.sweep(now) == [] and folders.sweep(now + 3000) == []
    removed = folders.sweep(now + 3601)
    assert sorted(path.name for path in removed) == sorted([empty.name, leftovers.name])
    assert not empty.exists() and not leftovers.exists()
    assert refreshed.is_dir() and not_ours.is_dir()
    assert folders.sweep(now + 6601) == [refreshed] and not refreshed.exists() and not_ours.is_dir()


def test_new_sweeps_at_most_once_per_period(tmp_path):
    clock = [1_000_000.0]
    folders = RequestFolders(tmp_path, every=1800, keep_for=3600, clock=lambda: clock[0])
    swept = []
    folders.sweep = lambda now=None: swept.append(now) or []
    folders.new()
    clock[0] += 1799
    folders.new()
    clock[0] += 1
    folders.new()
    assert swept == [1_000_000.0, 1_001_800.0]


def test_a_leased_folder_is_kept_while_its_request_runs(tmp_path):
    """A clip restored on a CPU may write nothing into its folder for over an hour."""
    folders = RequestFolders(tmp_path, keep_for=3600)
    with folders.lease() as folder:
        folder.mkdir()
        (folder / "restored.mp4").write_bytes(b"header")
        assert folders.sweep(time.time() + 7200) == [] and folder.is_dir()
    assert folders.sweep(time.time() + 7200) == [folder] and not folder.exists()
