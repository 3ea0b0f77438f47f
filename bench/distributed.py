"""Several processes, measured: training samples/s of one `zoo` recipe run by torchrun on 1 vs N processes (and
fp32 vs bf16), each run's test accuracy beside it (what per-rank BatchNorm statistics cost), and DDP's two ways of
living with frozen groups: a wrapper rebuilt when the trainable set changes (the engine's) vs
`find_unused_parameters=True`.

Each row is one `python -m torch.distributed.run --standalone --nproc-per-node P` of this file's worker, which runs
the recipe (ResNet-18 from scratch on PneumoniaMNIST; `finetune` trains everything with BatchNorm statistics per
rank; `gradual-unfreeze` changes its trainable groups every epoch) and reports rank 0's samples/s of the training
epochs (global samples, the engine's own clock) and test accuracy. The baseline is the 1-process row of the same
run. On CPU: 1 process with 1 thread vs 2 processes with 1 thread each (ZOO_BENCH_THREADS=2 adds 1 process with
2 threads: the same two cores), and bf16 autocast; with CUDA: 1 GPU vs all visible GPUs, fp32 vs bf16. --quick:
small sizes. --json: last line {"rows": [...]}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import PNEUMONIA, emit, options, require_shared_data


def recipe(strategy: str, size: int, epochs: int, batch: int, image_size: int, device: str, precision: str,
           threads: int | None, find_unused: bool = False) -> dict:
    params = {"name": "gradual-unfreeze", "every": 1} if strategy == "gradual-unfreeze" else {"name": strategy}
    return {
        "base": "scratch", "backbone": "resnet18", "strategy": params,
        "data": {"reader": "npz", "args": {"path": str(PNEUMONIA), "classes": ["normal", "pneumonia"]},
                 "image_size": image_size, "val": None, "limit": {"train": size, "test": 468}},
        "train": {"epochs": epochs, "batch_size": batch, "lr": 0.002, "seed": 0, "device": device,
                  "precision": precision, "num_threads": threads, "find_unused_parameters": find_unused},
    }


def worker(recipe_path: str, out_path: str) -> None:
    """One rank: run the recipe; rank 0 writes what it measured."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import run

    result = run(json.loads(Path(recipe_path).read_text()))
    if os.environ.get("RANK", "0") == "0":
        Path(out_path).write_text(json.dumps({"samples_s": result.train_samples_per_second,
                                              "accuracy": result.metrics["accuracy"]}))


def measure(tmp: Path, nproc: int, spec: dict, threads: int = 1) -> dict:
    name = f"run{len(list(tmp.iterdir()))}"
    (tmp / f"{name}.json").write_text(json.dumps(spec))
    out = tmp / f"{name}.out"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               __file__, "--worker", str(tmp / f"{name}.json"), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"run failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    require_shared_data()
    import torch

    quick = options(__doc__, "fewer images and steps").parse_args().quick
    cuda = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if cuda else 0
    if cuda:
        size, epochs, batch, image_size = (2048, 2, 128, 64) if quick else (4096, 3, 256, 128)
        plans = [(n, "finetune", p, None) for p in ("fp32", "bf16") for n in sorted({1, gpus})]
    else:
        size, epochs, batch, image_size = (256, 2, 64, 32) if quick else (1024, 2, 64, 32)
        threads = int(os.environ.get("ZOO_BENCH_THREADS", "1"))
        plans = [(1, "finetune", "fp32", 1), *([(1, "finetune", "fp32", threads)] if threads > 1 else []),
                 (2, "finetune", "fp32", 1), (1, "finetune", "bf16", 1)]
    device = "cuda" if cuda else "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for nproc, strategy, precision, threads in plans:
            got = measure(tmp, nproc, recipe(strategy, size, epochs, batch, image_size, device, precision, threads),
                          threads or 1)
            rows.append({"processes": nproc, "threads_each": threads, "device": device, "precision": precision,
                         "strategy": strategy, "samples_s": round(got["samples_s"], 1),
                         "test_accuracy": round(got["accuracy"], 4)})
            print(rows[-1], flush=True)
        # frozen groups under DDP: rebuilt wrapper (default) vs find_unused_parameters, at the top world size
        top = max(gpus, 1) if cuda else 2
        for find_unused in (False, True):
            got = measure(tmp, top, recipe("gradual-unfreeze", size, epochs, batch, image_size, device, "fp32",
                                           None if cuda else 1, find_unused))
            rows.append({"processes": top, "threads_each": None if cuda else 1, "device": device,
                         "precision": "fp32", "strategy": "gradual-unfreeze",
                         "ddp": "find_unused_parameters" if find_unused else "rebuilt wrapper",
                         "samples_s": round(got["samples_s"], 1), "test_accuracy": round(got["accuracy"], 4)})
            print(rows[-1], flush=True)
    baseline = rows[0]["samples_s"]
    print(f"\nResNet-18 from scratch on PneumoniaMNIST at {image_size}x{image_size}, {size} training images, "
          f"{epochs} epochs, global batch {batch}; samples/s of the training epochs (rank 0's clock), ratio to the "
          f"first row; test accuracy on 468 images")
    print(f"{'procs':>5} {'threads':>7} {'prec':>5} {'strategy':<17} {'ddp':<23} {'samples/s':>9} {'ratio':>6} "
          f"{'test acc':>8}")
    for row in rows:
        print(f"{row['processes']:>5} {str(row['threads_each'] or '-'):>7} {row['precision']:>5} "
              f"{row['strategy']:<17} {row.get('ddp', ''):<23} {row['samples_s']:>9.1f} "
              f"{row['samples_s'] / baseline:>6.2f} {row['test_accuracy']:>8.4f}")
    emit({"rows": rows})


if __name__ == "__main__":
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        worker(sys.argv[i + 1], sys.argv[i + 2])
    else:
        main()
