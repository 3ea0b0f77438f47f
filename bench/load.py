"""Mixed load against one `zoo serve`: 32 concurrent clients for 60 s (--quick: 10 s) doing what a team's registry
sees at once: reads (model list, a model with its versions, a version, an alias lookup, search, a file download),
pushes of small real checkpoints (four files uploaded, then published) and alias moves. Prints errors (must be 0),
ops/s, p50/p99 per operation and the server's RSS before and after.

The client is Python (asyncio + httpx, one process): it has a ceiling of its own. To tell whether it is the
bottleneck, the same run measures one read (the alias lookup) both from this client alone and from wrk (C), at the
same concurrency, against the same server.

Baseline (the issue's measurement before the speed work, same shape of load): 0 errors, 39.6 ops/s, p50 391 ms,
p99 3.5 s, server RSS 876 MB.

Options: --duration S (60; --quick 10), --concurrency C (32), --models N (20), --pg (PostgreSQL: the server's
tables in a fresh database on ZOO_TEST_POSTGRES_URL, or on scripts/pg-test-server.sh's server), --json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Sampler, emit, postgres_database, rss_mib, zoo_serve
from registry import NAMESPACE, ensure_wrk, load_zoo, version_files, wrk

BASELINE = {"errors": 0, "ops_s": 39.6, "p50_ms": 391, "p99_ms": 3500, "rss_mib": 876 * 1e6 / 2**20}
# the mix: reads dominate, as on any catalog; every push is 5 requests (4 uploads, 1 publish)
MIX = {"model list": 10, "model": 10, "version": 15, "alias lookup": 20, "search": 10, "download": 15, "push": 10,
       "alias move": 10}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Load:
    def __init__(self, url: str, token: str, models: int):
        self.url, self.models = url, models
        self.auth = {"Authorization": f"Bearer {token}"}
        self.latencies: dict[str, list[float]] = {op: [] for op in MIX}
        self.errors: dict[str, int] = dict.fromkeys(MIX, 0)
        self.first_error: str | None = None
        self.pushed = {i: 3 for i in range(models)}  # versions per model, as far as this client knows

    async def op(self, client, name: str, rng: random.Random) -> None:
        i = rng.randrange(self.models)
        model = f"/api/models/{NAMESPACE}/model-{i}"
        if name == "model list":
            await self.get(client, "/api/models", params={"limit": 20})
        elif name == "model":
            await self.get(client, model)
        elif name == "version":
            await self.get(client, f"{model}/versions/{rng.randint(1, 3)}")
        elif name == "alias lookup":
            await self.get(client, f"{model}/versions/production")
        elif name == "search":
            await self.get(client, "/api/search", params={"q": rng.choice(("pneumonia", "retina", "skin"))})
        elif name == "download":
            await self.get(client, f"{model}/versions/production/files/model.safetensors")
        elif name == "push":
            files = version_files(i, rng.randrange(10**6))
            specs = []
            for path, data in files.items():
                sha = hashlib.sha256(data).hexdigest()
                await self.check(await client.put(f"/api/blobs/{sha}", params={"path": path}, content=data,
                                                  headers=self.auth))
                specs.append({"path": path, "sha256": sha, "size": len(data)})
            answer = await self.check(await client.post(f"{model}/versions", json={"files": specs},
                                                        headers=self.auth))
            self.pushed[i] = max(self.pushed[i], answer.json()["number"])
        else:  # alias move
            await self.check(await client.post(f"{model}/aliases", headers=self.auth,
                                               json={"alias": "staging", "version": rng.randint(1, self.pushed[i])}))

    async def get(self, client, path: str, **kwargs):
        return await self.check(await client.get(path, **kwargs))

    @staticmethod
    async def check(response):
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                               f"{response.text[:200]}")
        return response

    async def worker(self, client, k: int, stop: float, ops: tuple[str, ...], weights: tuple[int, ...]) -> None:
        rng = random.Random(k)
        while time.perf_counter() < stop:
            name = rng.choices(ops, weights)[0]
            begin = time.perf_counter()
            try:
                await self.op(client, name, rng)
                self.latencies[name].append(time.perf_counter() - begin)
            except Exception as exc:  # noqa: BLE001 (every failure is counted and the first one shown)
                self.errors[name] += 1
                self.first_error = self.first_error or f"{name}: {type(exc).__name__}: {exc}"

    async def run(self, duration: float, concurrency: int, mix: dict[str, int]) -> float:
        import httpx

        # idle connections dropped before uvicorn's keep-alive timeout (5 s, as httpx's default): else a POST can go
        # out on one the server is closing (a ReadError, seen on a loaded machine), and POSTs are not retried
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                              keepalive_expiry=2.0)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=60) as client:
            begin = time.perf_counter()
            stop = begin + duration
            await asyncio.gather(*(self.worker(client, k, stop, tuple(mix), tuple(mix.values()))
                                   for k in range(concurrency)))
            return time.perf_counter() - begin


def table(load: Load, seconds: float) -> dict:
    rows = {}
    for name in MIX:
        lat = load.latencies[name]
        if lat or load.errors[name]:
            rows[name] = {"ops": len(lat), "errors": load.errors[name], "p50_ms": round(percentile(lat, 0.5) * 1000, 1),
                          "p99_ms": round(percentile(lat, 0.99) * 1000, 1)}
    every = [x for lat in load.latencies.values() for x in lat]
    total = {"ops": len(every), "errors": sum(load.errors.values()), "ops_s": round(len(every) / seconds, 1),
             "p50_ms": round(percentile(every, 0.5) * 1000, 1), "p99_ms": round(percentile(every, 0.99) * 1000, 1)}
    return {"operations": rows, "total": total}


def postgres_url() -> tuple[str, callable]:
    """A new database on the test PostgreSQL server (started by scripts/pg-test-server.sh when not running)."""
    server = os.environ.get("ZOO_TEST_POSTGRES_URL") or subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg-test-server.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    return postgres_database(server, "zoo_load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    duration = 10.0 if args.quick else args.duration
    work = Path(tempfile.mkdtemp(prefix="zoo-load-"))
    drop = None
    if args.pg:
        os.environ["ZOO_DATABASE_URL"], drop = postgres_url()  # the seed and the server both read it
    try:
        token = load_zoo(work / "registry", args.models, 3, os.environ.get("ZOO_DATABASE_URL"))
        with zoo_serve(work / "registry", log=work / "server.log") as (server, url):
            load = Load(url, token, args.models)
            with Sampler(server.pid) as memory:
                seconds = asyncio.run(load.run(duration, args.concurrency, MIX))
            result = table(load, seconds)
            # the client's own ceiling on one read, against wrk on the same read
            alone = Load(url, token, args.models)
            short = max(3.0, duration / 6)
            alone_s = asyncio.run(alone.run(short, args.concurrency, {"alias lookup": 1}))
            python_rps = round(len(alone.latencies["alias lookup"]) / alone_s, 1)
            paths = [f"/api/models/{NAMESPACE}/model-{i}/versions/production" for i in range(args.models)]
            wrk_row = wrk(ensure_wrk(), url, paths, short, args.concurrency, work)
            rss_after = rss_mib(server.pid)
        if result["total"]["errors"]:  # what the server said about them
            print((work / "server.log").read_text()[-6000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if drop:
            drop()
    report(args, duration, result, memory, rss_after, python_rps, wrk_row, load.first_error)
    emit({**result, "rss_before_mib": round(memory.before, 1), "rss_peak_mib": round(memory.peak, 1),
          "rss_after_mib": round(rss_after, 1), "python_alias_rps": python_rps, "wrk_alias": wrk_row,
          "first_error": load.first_error})
    sys.exit(1 if result["total"]["errors"] else 0)


def report(args, duration, result, memory, rss_after, python_rps, wrk_row, first_error) -> None:
    db = "PostgreSQL" if args.pg else "SQLite"
    print(f"mixed load on one zoo serve ({db}), concurrency {args.concurrency}, {duration:.0f} s, "
          f"{args.models} models x 3 versions to start")
    print(f"{'operation':<14} {'ops':>6} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in result["operations"].items():
        print(f"{name:<14} {row['ops']:>6} {row['errors']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8}")
    t, b = result["total"], BASELINE
    print(f"{'all':<14} {t['ops']:>6} {t['errors']:>6} {t['p50_ms']:>8} {t['p99_ms']:>8}")
    print(f"ops/s {t['ops_s']} (baseline {b['ops_s']}: x{t['ops_s'] / b['ops_s']:.1f}); p50 {t['p50_ms']} ms "
          f"(baseline {b['p50_ms']}); p99 {t['p99_ms']} ms (baseline {b['p99_ms']}); errors {t['errors']}")
    print(f"server RSS: before {memory.before:.0f} MiB, peak {memory.peak:.0f} MiB, after {rss_after:.0f} MiB "
          f"(baseline {b['rss_mib']:.0f} MiB)")
    # a push is 5 requests (4 uploads, 1 publish): the mixed run's requests/s against this client's ceiling
    requests_s = (t["ops"] + 4 * result["operations"].get("push", {}).get("ops", 0)) / (t["ops"] / t["ops_s"])
    print(f"alias lookup alone: this client {python_rps} req/s, wrk {wrk_row['rps']} req/s (p50 "
          f"{wrk_row['p50_ms']} ms); the mixed run made {requests_s:.0f} req/s, "
          + ("near this client's ceiling: the client limits it" if requests_s > 0.8 * python_rps
             else f"{requests_s / python_rps:.0%} of this client's ceiling: the server sets the pace"))
    if result["total"]["errors"]:
        print(f"FIRST ERROR: {json.dumps(first_error)}")


if __name__ == "__main__":
    main()
