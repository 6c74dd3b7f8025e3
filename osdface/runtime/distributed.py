"""Split a command's work between processes launched by Hugging Face Accelerate.

``accelerate launch -m osdface.cli <command> ...`` starts one process per GPU (or several
CPU processes); each calls :func:`process_group`, takes its :meth:`ProcessGroup.shard` of
the work items, and the results come back together with :meth:`ProcessGroup.gather`, in
the original item order, so that the main process writes the same outputs as a
single-process run.

Not launched (no ``WORLD_SIZE`` above 1 in the environment) this is one process and
Accelerate is never imported: the plain CLI pays nothing for it.

On a machine without CUDA, or with ``ACCELERATE_USE_CPU=1``, the processes talk over
CPU (gloo). Accelerate's own ``--cpu`` flag starts a single process unless MPI is set up,
so launch several CPU processes with ``--multi_gpu --num_processes N`` on a CPU-only
machine (the name is historical: it means "torchrun-style multi-process").

Every command runs through :func:`run_command` (once, in ``osdface.cli.main``): each
process leaves the same way, on success and on failure (see its docstring for why).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from osdface import lazy

# accelerate and torch.distributed load when a command runs: `osdface --help` does not pay for
# them, and a single process never needs them.
accelerate = lazy.module("accelerate")
accelerate_utils = lazy.module("accelerate.utils")
dist = lazy.module("torch.distributed")
torch = lazy.module("torch")

T = TypeVar("T")

# A process that finishes its share waits for the slowest one at the final gather; with
# torch's default (10 minutes on NCCL) a long study could time out there. The wait cannot
# outlive a crash: the launcher stops every process when one of them fails.
PROCESS_GROUP_TIMEOUT = timedelta(hours=24)
# After a failure, how long destroying the process group may take before the process leaves
# without it (see run_command).
FAILED_SHUTDOWN_TIMEOUT_S = 60.0


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def launched_world_size() -> int:
    """Number of processes the launcher started (1 when not launched)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the launched ones.

    ``device`` is the device the launcher assigned to this process (``cuda:<local rank>``
    or ``cpu``), or ``None`` for a single, unlaunched process: the command then uses its
    own ``--device`` choice.
    """

    index: int = 0
    count: int = 1
    device: str | None = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def is_distributed(self) -> bool:
        return self.count > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of ``items`` (sizes differ by at most one).

        The same split as Accelerate's ``split_between_processes``: the first
        ``len % count`` processes get one extra item, so concatenating the shards in
        process order gives ``items`` back.
        """
        base, extra = divmod(len(items), self.count)
        start = self.index * base + min(self.index, extra)
        stop = start + base + (1 if self.index < extra else 0)
        return list(items[start:stop])

    def gather(self, local: Sequence[T]) -> list[T]:
        """Every process's ``local`` list, concatenated in process order, on every process.

        Items must be picklable. With one process this returns ``list(local)``.
        """
        if not self.is_distributed:
            return list(local)

        return list(accelerate_utils.gather_object(list(local)))

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.is_distributed:
            accelerate.PartialState().wait_for_everyone()


def process_group() -> ProcessGroup:
    """The current process's :class:`ProcessGroup`, initialising Accelerate when launched."""
    if launched_world_size() <= 1:
        return ProcessGroup()

    # PartialState only picks the CPU backend when told to; without CUDA there is no
    # other choice, and ACCELERATE_USE_CPU=1 asks for it explicitly.
    cpu = _env_flag("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    state = accelerate.PartialState(cpu=cpu, timeout=PROCESS_GROUP_TIMEOUT)
    return ProcessGroup(index=state.process_index, count=state.num_processes, device=str(state.device))


def run_command(command: Callable[[], int | None]) -> int:
    """``command()`` as an exit status, then one orderly shutdown, also when it fails.

    Why: with torch 2.14.1 (gloo) and accelerate 1.15.0 nothing destroys the process group
    when a process ends without ``destroy_process_group``: a debugger shows that the
    ``ProcessGroupGloo``, gloo's TCP device and its loop are never destructed, and their
    threads (``gloo_tcp_loop``, two ``pt_gloo_runloop``), with tqdm's daemon monitor, run on
    through Python's finalisation and the C++ static destructors of ``exit()``. Now and then,
    more often under load, a process that finished its work then dies there with
    ``terminate called without an active exception`` (SIGABRT): a thread touching the
    finalising interpreter or torch's torn-down state. Upstream: pytorch/pytorch#65513 (a
    ``ProcessGroupGloo`` whose destructor had not run before exit aborts the process; fixed
    there by calling ``destroy_process_group``), pytorch/pytorch#190489 (the same message
    from a gloo job missing that call; open), pytorch/pytorch#179291 (gloo work objects
    released by those threads during finalisation abort with SIGABRT; an atexit
    ``destroy_process_group`` in torch itself, abandoned). So the group is destroyed here,
    while the interpreter is fully alive (which joins gloo's threads), and tqdm's monitor
    threads are joined.

    Success (status 0): wait for every process, so none closes its connections while
    another still talks to it, then destroy the group. Failure (an exception, or a non-zero
    status, which a single process may return alone): no barrier, since the others may be
    anywhere (inside a gather, say) and a collective would pair with theirs; destroy the
    group right away, so the others see the connection close instead of waiting for the
    timeout, and name this process in the error. The launcher then stops the rest. Should
    that destruction wait on a collective another process is still inside, this process
    leaves without it after ``FAILED_SHUTDOWN_TIMEOUT_S`` rather than hang.
    """
    try:
        status = int(command() or 0)
    except BaseException as exc:
        _report_failure(exc)
        _shutdown(failed_status=1)
        raise
    if status:
        _report_failure(f"exit status {status}")
    _shutdown(failed_status=status)
    return status


def _distributed_initialised() -> bool:
    # a plain command may never import torch: look it up instead of importing it
    loaded = sys.modules.get("torch.distributed")
    return loaded is not None and loaded.is_available() and loaded.is_initialized()


def _report_failure(error: BaseException | str) -> None:
    """Name this process in the launcher's combined output (a single process says nothing
    more: its own error message is enough)."""
    if _distributed_initialised():
        what = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        where = f"process {dist.get_rank()} of {dist.get_world_size()}"
        print(f"osdface: {where} failed: {what}", file=sys.stderr, flush=True)


def _shutdown(failed_status: int) -> None:
    """``failed_status`` 0: the command succeeded; otherwise the status to leave with."""
    if _distributed_initialised():
        if failed_status == 0:
            dist.barrier()
            dist.destroy_process_group()
        else:
            _destroy_within(FAILED_SHUTDOWN_TIMEOUT_S, failed_status)
    _join_tqdm_monitors()


def _destroy_within(seconds: float, status: int) -> None:
    def leave() -> None:
        print(
            f"osdface: the process group did not shut down within {seconds:g} s of the failure; "
            "leaving without it",
            file=sys.stderr,
            flush=True,
        )
        os._exit(status)  # the main thread is stuck in C++: only this ends the process

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()
    try:
        dist.destroy_process_group()
    finally:
        timer.cancel()
        timer.join()


def _join_tqdm_monitors() -> None:
    """Stop and join tqdm's monitor threads (one per tqdm class used, daemon threads that
    tqdm otherwise leaves running into interpreter finalisation)."""
    monitor_module = sys.modules.get("tqdm._monitor")
    if monitor_module is None:
        return
    for thread in threading.enumerate():
        if isinstance(thread, monitor_module.TMonitor) and thread is not threading.current_thread():
            thread.exit()  # sets its event and joins; tqdm starts a new one when needed
