"""Scale-out with Accelerate: work split between processes, results gathered in order.

The end-to-end test launches ``accelerate launch`` with 2 CPU processes (gloo) and checks
that ``eval-fr`` writes exactly what a single process writes. Both runs use one thread per
process (``OMP_NUM_THREADS=1``, as torchrun sets for several processes): floating-point
results then do not depend on the thread count, so the outputs can be compared bit for bit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers.evaluation import (
    COMMAND_TIMEOUT_S,
    ROOT,
    accelerate_command,
    launch_env,
    run,
    write_face_set,
    write_random_arcface,
)
from PIL import Image

from osdface.runtime.distributed import ProcessGroup, process_group, run_command


def test_shards_cover_the_items_in_order():
    for count in range(1, 5):
        for length in range(0, 10):
            items = list(range(length))
            shards = [ProcessGroup(index=i, count=count).shard(items) for i in range(count)]
            assert [x for shard in shards for x in shard] == items
            sizes = [len(shard) for shard in shards]
            assert max(sizes) - min(sizes) <= 1
            assert sizes == sorted(sizes, reverse=True)  # the extra items go to the first processes
    assert ProcessGroup(index=1, count=2).shard(["a", "b", "c", "d", "e"]) == ["d", "e"]


def test_single_process_needs_no_accelerate():
    group = ProcessGroup()
    assert (group.is_main, group.is_distributed, group.device) == (True, False, None)
    assert group.gather([1, 2]) == [1, 2]
    group.barrier()
    # not launched: accelerate is not even imported
    code = (
        "import sys; from osdface.runtime.distributed import process_group; g = process_group(); "
        "print(g.index, g.count, g.device, 'accelerate' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "1", "None", "False"]


def test_bad_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        process_group()


def test_run_command_returns_the_status_and_joins_tqdm_monitors():
    import threading

    from tqdm import tqdm
    from tqdm._monitor import TMonitor

    def command():
        for _ in tqdm(range(2), disable=True):  # a disabled bar starts the monitor thread too
            pass
        assert any(isinstance(t, TMonitor) for t in threading.enumerate())
        return 3

    assert run_command(command) == 3
    assert not any(isinstance(t, TMonitor) for t in threading.enumerate())
    assert run_command(lambda: None) == 0

    def failing():
        raise OSError("broken")

    with pytest.raises(OSError, match="broken"):
        run_command(failing)
    for _ in tqdm(range(2), disable=True):  # tqdm starts a new monitor after the join
        pass


@pytest.mark.slow
def test_a_failed_process_does_not_wait_for_a_stuck_shutdown():
    """After a failure, destroying the group may wait on a collective another process is
    still in: the process leaves with its status once FAILED_SHUTDOWN_TIMEOUT_S is over."""
    code = (
        "import time, torch.distributed as dist, osdface.runtime.distributed as d\n"
        "d._distributed_initialised = lambda: True\n"
        "dist.get_rank, dist.get_world_size = (lambda: 1), (lambda: 2)\n"
        "dist.destroy_process_group = lambda: time.sleep(120)\n"
        "d.FAILED_SHUTDOWN_TIMEOUT_S = 0.5\n"
        "print(time.monotonic(), flush=True)\n"
        "d.run_command(lambda: 3)\n"
        "print('not reached')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert out.returncode == 3, out.stderr
    assert time.monotonic() - float(out.stdout.split()[0]) < 60  # not the 120 s of the stuck destroy
    assert "osdface: process 1 of 2 failed: exit status 3" in out.stderr
    assert "did not shut down within 0.5 s of the failure" in out.stderr
    assert "not reached" not in out.stdout


@pytest.mark.slow
def test_eval_fr_on_two_cpu_processes_equals_one(tmp_path, tiny_hub):
    faces_dir, pairs_file = write_face_set(tmp_path)
    facexlib_dir = tmp_path / "facexlib"
    write_random_arcface(facexlib_dir)
    args = [
        "eval-fr", str(faces_dir), str(pairs_file), "--aligned", "--extension", "png",
        "--lengths", "30000", "--degrade", "one", "--without-restoration", "--save-images", "--no-progress",
        "--facexlib-dir", str(facexlib_dir),
    ]  # fmt: skip
    env = launch_env(tiny_hub)
    single, multi = tmp_path / "single", tmp_path / "multi"
    run([sys.executable, "-m", "osdface.cli", *args, "-o", str(single)], env)
    launched = run([*accelerate_command(2), *args, "-o", str(multi)], env)
    assert "4 images to process on 2 processes" in launched.stderr
    assert "images processed per process: [2, 2]" in launched.stderr
    assert launched.stdout.count("wrote ") == 4  # only the main process reports

    assert (multi / "scores.csv").read_text() == (single / "scores.csv").read_text()
    reports = [json.loads((folder / "metrics.json").read_text()) for folder in (single, multi)]
    for report in reports:
        del report["config"]["output_dir"]
    assert reports[0] == reports[1]
    assert [c["name"] for c in reports[0]["conditions"]] == ["clean", "turbulent_30000", "osdface_30000"]

    images = sorted(p.relative_to(single).as_posix() for p in (single / "images").rglob("*.png"))
    assert len(images) == 4 + 2 * 3  # clean faces, and the 3 second images under 2 conditions
    assert images == sorted(p.relative_to(multi).as_posix() for p in (multi / "images").rglob("*.png"))
    for name in images:
        np.testing.assert_array_equal(
            np.asarray(Image.open(single / name)), np.asarray(Image.open(multi / name))
        )

    # the cache holds the same embeddings, merged into one file per condition
    for condition in ("clean", "turbulent_30000", "osdface_30000"):
        parts = [sorted((folder / "cache" / condition).rglob("part-*.npz")) for folder in (single, multi)]
        assert [len(p) for p in parts] == [1, 1]
        loaded = [np.load(p[0]) for p in parts]
        order = [np.argsort(data["keys"]) for data in loaded]
        np.testing.assert_array_equal(loaded[0]["keys"][order[0]], loaded[1]["keys"][order[1]])
        np.testing.assert_array_equal(loaded[0]["embeddings"][order[0]], loaded[1]["embeddings"][order[1]])


@pytest.mark.slow
def test_one_failing_process_stops_both_with_its_error(tmp_path, tiny_hub):
    """A broken image in the second process's share: that process raises, both exit non-zero
    with its error in the output, and nothing waits for the 24-hour collective timeout."""
    faces_dir, pairs_file = write_face_set(tmp_path)
    # the 4 images are split in pair order: process 1 gets Grace_Hopper_0001 and _0002
    broken = faces_dir / "Grace_Hopper" / "Grace_Hopper_0002.png"
    broken.write_bytes(b"not a png")
    facexlib_dir = tmp_path / "facexlib"
    write_random_arcface(facexlib_dir)
    args = [
        "eval-fr", str(faces_dir), str(pairs_file), "--aligned", "--extension", "png",
        "--lengths", "30000", "--degrade", "one", "--without-restoration", "--no-progress",
        "--facexlib-dir", str(facexlib_dir), "-o", str(tmp_path / "out"),
    ]  # fmt: skip
    result = subprocess.run(
        [*accelerate_command(2), *args], env=launch_env(tiny_hub), cwd=ROOT, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S,  # a hang would last the 24-hour collective timeout
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # eval-fr reports an unreadable image and stops with status 2; the shutdown names the process
    assert f"error: {broken}: not an image" in output, output[-4000:]
    assert "osdface: process 1 of 2 failed: exit status 2" in output
    assert "terminate called" not in output
    # the launcher's summary: each process exited non-zero on its own (process 1 with its
    # status 2, process 0 on seeing the connection close: an uncaught error, status 1), or was
    # stopped by the launcher (SIGTERM, -15) once the other had exited; under load either may
    # exit first (process 1 leaves through the interpreter's exit after closing the group)
    exits = {
        int(rank): int(code)
        for rank, code in re.findall(r"local_rank: (\d+)\).*\n\s+exitcode\s+: (-?\d+)", output)
    }
    # torch 2.8's launcher leaves out of its summary a process that it stopped itself: its log
    # line "Sending process PID closing signal SIGTERM", for a PID the summary does not list,
    # stands for the -15 of the other process
    listed = set(re.findall(r"exitcode\s+: -?\d+ \(pid: (\d+)\)", output))
    stopped = set(re.findall(r"Sending process (\d+) closing signal SIGTERM", output)) - listed
    if len(exits) == 1 and stopped:
        exits[1 - next(iter(exits))] = -15
    assert exits.get(1) in (2, -15), output[-4000:]
    assert exits.get(0) in (1, -15), output[-4000:]
    assert (exits[0], exits[1]) != (-15, -15), output[-4000:]  # one of them left on its own
    assert not (tmp_path / "out" / "metrics.json").exists()
