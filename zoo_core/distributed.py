"""Several processes: `torchrun` launches them, `torch.distributed` connects them, DDP trains.

`zoo train --nproc N` hands its own command line to torchrun's launcher (`torch.distributed.run`, in this
process; never a launcher of our own), and a plain `torchrun --nproc-per-node N -m zoo_core.cli train ...`
runs the same code. Every rank reads the same data and draws the same seeded few-label subset and the same
per-epoch order; each step's *global* batch (`train.batch_size`) is split into contiguous shards, one a rank,
and each rank's loss is normalised by the global batch, so DDP's gradient average is the gradient one process
computes on the whole batch: N processes train like one, apart from BatchNorm's per-rank batch statistics
(SyncBatchNorm on CUDA makes them global). Evaluation and the linear-probe feature cache are sharded the same
way and gathered, so every rank sees the metrics of the whole split and takes the same decisions (kept epoch,
early stopping, threshold); only rank 0 logs, writes the checkpoint and publishes.

A failure on one rank: that rank writes its message to torchrun's per-worker error file and exits; torchrun
stops the others; `zoo train --nproc` prints the first failure as one line (`error: rank 1: ...`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from zoo_core.errors import ZooError

LAUNCHED_BY_ZOO = "ZOO_DISTRIBUTED_LAUNCHER"  # set by `zoo train --nproc`: ranks leave the error line to it


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; `World()` is a process on its own (no process group). Under torchrun
    even one process joins a group and trains through DDP, so `--nproc 1` runs the same code as `--nproc 8`."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.backend is not None


def launched() -> bool:
    """True in a process that torchrun started (it sets RANK and WORLD_SIZE, the env:// rendezvous)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def current() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                 dist.get_backend())


def _wants_cuda(device: str) -> bool:
    if device == "auto":
        return torch.cuda.is_available()
    if device.startswith("cuda"):
        if device != "cuda":
            raise ZooError(f"train.device is '{device}' but torchrun started this run: use 'cuda' (or auto), and "
                           "each rank takes the local GPU of its LOCAL_RANK (CUDA_VISIBLE_DEVICES chooses them)")
        return True
    return False


@contextmanager
def session(device: str) -> Iterator[World]:
    """Join the process group when torchrun started this process (gloo on CPU, nccl on CUDA), leave it after."""
    if not launched() or dist.is_initialized():
        yield current()
        return
    cuda = _wants_cuda(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    yield current()
    # Left alone on failure: the other ranks may be inside a collective, where tearing the group down can hang or
    # abort (torchtitan#1342); a failed rank exits at once instead (the CLI's os._exit), and the OS closes it.
    dist.destroy_process_group()


def place(device: torch.device, world: World) -> torch.device:
    """One GPU a rank: `cuda` becomes `cuda:LOCAL_RANK` (session() already refused an explicit index)."""
    if world.active and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def shard(indices: np.ndarray, world: World) -> np.ndarray:
    """This rank's contiguous share (sizes differ by at most one; a share may be empty)."""
    if not world.active:
        return indices
    return np.array_split(indices, world.size)[world.rank]


def gather_rows(local: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's rows (CPU tensors), concatenated in rank order: the whole split, on every rank."""
    if not world.active:
        return local
    parts: list[torch.Tensor | None] = [None] * world.size
    dist.all_gather_object(parts, local.cpu())
    return torch.cat(parts)  # type: ignore[arg-type]


def all_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    if not world.active:
        return values
    # nccl reduces CUDA tensors only
    t = torch.tensor(values, dtype=torch.float64, device=device if world.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.cpu().tolist()


def sync_buffers(module: nn.Module, world: World) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, so that every rank evaluates, and keeps,
    the same model: DDP broadcasts them only at the start of each training forward."""
    if world.active:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


class Replicas:
    """The DDP wrapper of the module being trained, rebuilt whenever the set of parameters that train changes
    (a strategy freezing or unfreezing groups between epochs). DDP reduces exactly the parameters that require
    a gradient when it is built, so frozen groups need no `find_unused_parameters` graph walk every step
    (bench/distributed.py measures both); `find_unused=True` is there for a backbone whose forward skips a
    trainable parameter."""

    def __init__(self, module: nn.Module, world: World, find_unused: bool = False):
        self.module, self.world, self.find_unused = module, world, find_unused
        self._wrapped: nn.Module | None = None
        self._signature: tuple[bool, ...] | None = None
        self.builds = 0

    def get(self) -> nn.Module:
        if not self.world.active:
            return self.module
        signature = tuple(p.requires_grad for p in self.module.parameters())
        if signature != self._signature:
            from torch.nn.parallel import DistributedDataParallel

            device = next(self.module.parameters()).device
            self._wrapped = DistributedDataParallel(
                self.module, device_ids=[device] if device.type == "cuda" else None,
                find_unused_parameters=self.find_unused)
            self._signature, self.builds = signature, self.builds + 1
        return self._wrapped  # type: ignore[return-value]

    @contextmanager
    def no_sync(self, skip: bool) -> Iterator[None]:
        """Accumulate locally (no all-reduce) on the micro-batches before the last one of a step."""
        wrapped = self.get()
        if skip and self.world.active:
            with wrapped.no_sync():  # type: ignore[operator]
                yield
        else:
            yield


# -- failures --------------------------------------------------------------------------------------------------

def report_failure(exc: BaseException, message: str) -> None:
    """In a rank: record the failure in torchrun's error file (the launcher reads the first one), and say it."""
    world = World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        now = time.time()
        with open(path, "w") as fp:
            json.dump({"message": message, "timestamp": int(now),
                       "zoo": {"rank": world.rank, "time": now, "type": type(exc).__name__}}, fp)
    if not os.environ.get(LAUNCHED_BY_ZOO):
        print(f"error: rank {world.rank}: {message}", file=sys.stderr)


def first_failure(failures: dict) -> str:
    """The rank that failed first, with its message: later failures are the others losing their peer."""
    recorded = [(f.error_file_data.get("zoo", {}).get("time", float("inf")), rank, f) for rank, f in failures.items()]
    _, rank, failure = min(recorded, key=lambda item: (item[0], item[1]))
    message = failure.message if isinstance(failure.message, str) else json.dumps(failure.message)
    if "zoo" not in failure.error_file_data:
        message = f"exit code {failure.exitcode}" + (f" ({message})" if failure.exitcode < 0 else "")
    return f"rank {rank} failed: {message}"


# -- the launcher ----------------------------------------------------------------------------------------------

def torchrun_arguments(nproc: int, nnodes: str, rdzv_endpoint: str | None, rdzv_id: str,
                       child: list[str]) -> list[str]:
    """torchrun's command line for `zoo train --nproc ...`: one node alone (--standalone), or several meeting
    at a c10d rendezvous endpoint."""
    args = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes)]
    if rdzv_endpoint:
        args += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", rdzv_id]
    elif str(nnodes) not in ("1", "1:1"):
        raise ZooError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (the same on every node)")
    else:
        args.append("--standalone")
    return [*args, "--module", "zoo_core.cli", *child]


def launch(torchrun_args: list[str]) -> None:
    """Run torchrun's launcher in this process; a failed rank becomes one ZooError naming it."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun's agent narrates (rendezvous, SIGTERM to the survivors): the first failure is the news
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.run").setLevel(logging.CRITICAL)
    os.environ[LAUNCHED_BY_ZOO] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default for several workers, without its warning
    try:
        run(get_args_parser().parse_args(torchrun_args))
    except ChildFailedError as exc:
        raise ZooError(first_failure(exc.failures)) from None
    finally:
        os.environ.pop(LAUNCHED_BY_ZOO, None)
