"""Write a run's chunks with one or several local processes (`num_workers`).

Why processes and not threads: the procedural augmenters spend their time in Python and
small OpenCV calls, so threads serialise on the GIL. Why `fork`: the fitted generator, the
plan and the writer are inherited by the workers as they are, nothing is pickled, and a
worker starts in milliseconds instead of re-importing torch.

Output does not depend on `num_workers`: a chunk's bytes depend only on (generator, seed,
chunk's sample indices), every chunk commits itself through its own manifest part, and
the final manifest is merged in chunk order. So 1 or N workers, in any completion order,
give byte-identical datasets.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from generators.base import Generator
from synth.errors import ConfigError
from synth.seeding import sample_seeds
from synth.writer import DatasetWriter, Plan


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to produce any chunk of the run."""

    generator: Generator
    writer: DatasetWriter
    plan: Plan
    seed: int

    def write(self, chunk: int) -> int:
        """Sample one whole chunk and commit it; returns the number of images written."""
        start, stop = self.plan.chunk_range(chunk)
        samples = self.generator.sample(labels=self.plan.labels[start:stop], seed=self.seed, start_index=start)
        self.writer.write_chunk(chunk, start, samples, sample_seeds(self.seed, np.arange(start, stop)))
        return stop - start


#: The job inherited by forked workers (set just before the pool forks, cleared after).
_JOB: ChunkJob | None = None


def write_chunks(job: ChunkJob, todo: list[int], *, num_workers: int = 1, progress: bool = True) -> int:
    """Write every chunk in `todo`, in this process or in `num_workers` forked ones."""
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    total = sum(job.plan.chunk_range(c)[1] - job.plan.chunk_range(c)[0] for c in todo)
    with tqdm(total=total, desc="generate", unit="img", disable=not progress) as bar:
        if num_workers == 1 or len(todo) <= 1:
            for chunk in todo:
                bar.update(job.write(chunk))
        else:
            _write_parallel(job, todo, min(num_workers, len(todo)), bar)
    return total


def _write_parallel(job: ChunkJob, todo: list[int], workers: int, bar: tqdm) -> None:
    if "fork" not in mp.get_all_start_methods():
        raise ConfigError(f"num_workers={workers} needs the 'fork' start method, unavailable on {sys.platform}; use num_workers=1")
    global _JOB
    _JOB = job
    cv2_threads = _pause_opencv_pool()
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_init_worker, initargs=(os.getpid(),))
    try:
        pending = {pool.submit(_write_inherited, c) for c in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                bar.update(fut.result())  # re-raises a worker's error here
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOB = None
        _resume_opencv_pool(cv2_threads)


def _write_inherited(chunk: int) -> int:
    assert _JOB is not None, "worker forked without a job"
    return _JOB.write(chunk)


def _pause_opencv_pool() -> int | None:
    """Shut OpenCV's thread pool down in the parent before forking; returns its size.

    A child forked while the pool exists inherits its locks but not its threads, and then
    hangs in the first call that touches the pool (seen: `cv2.setNumThreads` in the child
    blocking forever in pthread_cond_destroy). With one thread OpenCV runs serially, which
    is also what each worker should do: the workers are the parallelism.
    """
    cv2 = sys.modules.get("cv2")
    if cv2 is None:
        return None
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    return threads


def _resume_opencv_pool(threads: int | None) -> None:
    if threads is not None:
        sys.modules["cv2"].setNumThreads(threads)


def _init_worker(parent_pid: int) -> None:
    """One compute thread per worker (workers are the parallelism), and die with the parent.

    Without the death signal, a SIGKILLed run would leave workers writing on; their bytes
    would be identical to the rerun's, but a user expects kill -9 to stop the job.
    """
    _die_with_parent(parent_pid)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _die_with_parent(parent_pid: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
