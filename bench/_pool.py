"""Independent training runs of a benchmark in N worker processes of one thread each.

Spawned, not forked: the parent has usually run torch already (a source trained, candidates scored), and torch's
thread pools do not survive a fork. One thread each, so N workers use N cores and a run's result does not depend on
N (the same as a sequential run with ZOO_BENCH_THREADS=1). Yields each job with its outcome as it finishes; a job
that raised yields the exception instead, so one failed run does not throw away an hour of the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _one_thread(initializer: Callable | None, initargs: tuple) -> None:
    import torch

    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*initargs)


def in_workers(function: Callable[[Any], Any], jobs: Iterable[Any], workers: int, initializer: Callable | None = None,
               initargs: tuple = (), fresh: bool = False) -> Iterator[tuple[Any, Any]]:
    """(job, function(job)) for every job, in finishing order, from `workers` spawned one-thread processes;
    (job, exception) for a job that raised. `function` and `initializer` must be importable module-level names.
    `fresh`: each job in a process of its own (a few seconds more a job), for results that must not depend on which
    jobs a worker happened to run before (a recipe's initial weights can: README, `bench/rank.py` row)."""
    jobs = list(jobs)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_one_thread,
                             initargs=(initializer, initargs), max_tasks_per_child=1 if fresh else None) as pool:
        futures = {pool.submit(function, job): job for job in jobs}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()
