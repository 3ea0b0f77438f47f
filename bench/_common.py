"""Shared pieces of the benchmarks: where the data lives, running a recipe quietly, and a `zoo serve` to measure."""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PNEUMONIA = SHARED / "pneumoniamnist" / "pneumoniamnist.npz"
MNIST = {"images": str(SHARED / "mnist-test" / "t10k-images-idx3-ubyte.gz"),
         "labels": str(SHARED / "mnist-test" / "t10k-labels-idx1-ubyte.gz")}


def options(doc: str | None, quick: str | None = None) -> argparse.ArgumentParser:
    """A benchmark's command line. `--help` prints its docstring and options and exits; a mistyped option is an
    error. (Read by hand from sys.argv, `fewshot.py --help` started the hour-long run, and `--seed 1` for
    `--seeds 1` was silently ignored; abbreviations are off, so it stays an error.)
    `quick`: what --quick makes smaller, for its help line."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object, last line")
    if quick:
        parser.add_argument("--quick", action="store_true", help=f"a small version: {quick}")
    return parser


def set_threads() -> None:
    """Two threads (this project's 2-core machine) unless ZOO_BENCH_THREADS says otherwise, e.g. 1 when another
    job holds the other core: oversubscribed torch threads slow both sides of a comparison unevenly."""
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("ZOO_BENCH_THREADS", "2")))


@contextlib.contextmanager
def zoo_serve(registry: str | Path, log: Path | None = None):
    """`zoo serve` (real uvicorn) over `registry` on a free loopback port, answering; yields
    (process, url) and stops the server on the way out. `log`: a file for the server's output."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    zoo = Path(sys.executable).parent / "zoo"
    out = log.open("w") if log else subprocess.DEVNULL
    server = subprocess.Popen([str(zoo), "serve", "--registry", str(registry), "--port", str(port)],
                              stdout=out, stderr=subprocess.STDOUT)
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


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and all its descendants (MLflow's server runs in a child)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    family, total, grown = {pid}, 0.0, True
    while grown:
        grown = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                grown = True
    for member in family:
        total += stats.get(member, (0, 0.0))[1]
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """Peak RSS of a process while a block runs."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> Sampler:
        self.before = rss_mib(self.pid)
        self.samples, self.done = [self.before], threading.Event()
        self.thread = threading.Thread(target=self._watch)
        self.thread.start()
        self.start = time.perf_counter()
        return self

    def _watch(self) -> None:
        while not self.done.is_set():
            self.samples.append(rss_mib(self.pid))
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.done.set()
        self.thread.join()
        time.sleep(0.5)  # let the server settle before reading what it keeps
        self.after = rss_mib(self.pid)
        self.peak = max(self.samples + [self.after])

    def row(self, size_mib: int) -> dict:
        return {"before_mib": round(self.before, 1), "peak_mib": round(self.peak, 1), "after_mib": round(self.after, 1),
                "growth_mib": round(self.peak - self.before, 1), "mib_s": round(size_mib / self.seconds, 1)}


def postgres_database(server: str, prefix: str = "zoo_bench") -> tuple[str, Callable[[], None]]:
    """A new, empty database on the PostgreSQL `server` (a URL); returns its URL and a function that drops it."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server.rsplit("/", 1)[0] + f"/{name}", drop
