"""bench/_pool.py: the benchmarks' worker processes return every job's result, or its exception, once each."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_every_job_comes_back_once_with_its_result_or_its_error():
    from _pool import in_workers

    outcomes = dict(in_workers(int, ["3", "x", "-7", "12"], 2))
    assert set(outcomes) == {"3", "x", "-7", "12"}
    assert (outcomes["3"], outcomes["-7"], outcomes["12"]) == (3, -7, 12)
    assert isinstance(outcomes["x"], ValueError)  # one failed job does not lose the others


def test_workers_run_one_torch_thread_each():
    from _pool import in_workers

    assert [n for _, n in in_workers(_threads, [None, None], 2)] == [1, 1]


def _threads(_):
    import torch

    return torch.get_num_threads()
