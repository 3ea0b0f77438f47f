"""Shared pieces of the benchmarks: where the data lives, running a recipe quietly, and a `zoo serve` to measure."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PNEUMONIA = SHARED / "pneumoniamnist" / "pneumoniamnist.npz"
MNIST = {"images": str(SHARED / "mnist-test" / "t10k-images-idx3-ubyte.gz"),
         "labels": str(SHARED / "mnist-test" / "t10k-labels-idx1-ubyte.gz")}


def set_threads() -> None:
    """Two threads (this project's 2-core machine) unless ZOO_BENCH_THREADS says otherwise, e.g. 1 when another
    job holds the other core: oversubscribed torch threads slow both sides of a comparison unevenly."""
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("ZOO_BENCH_THREADS", "2")))


@contextlib.contextmanager
def zoo_serve(registry: str | Path):
    """`zoo serve` (real uvicorn) over `registry` on a free loopback port, answering; yields
    (process, url) and stops the server on the way out."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    zoo = Path(sys.executable).parent / "zoo"
    server = subprocess.Popen([str(zoo), "serve", "--registry", str(registry), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/api/models?limit=1", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=20)


def require_shared_data() -> None:
    if not PNEUMONIA.is_file():
        sys.exit(f"benchmarks read ../shared/data ({PNEUMONIA} is missing)")


def run(recipe: dict):
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.run import run_recipe

    return run_recipe(recipe_from_dict(copy.deepcopy(recipe)), progress=False, log=lambda message: None)


def emit(result: dict) -> None:
    """With --json, the last line is one JSON object."""
    if "--json" in sys.argv:
        print(json.dumps(result))
