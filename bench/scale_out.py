"""How a team outgrows one machine: one `zoo serve` against two independent ones (as on two hosts, each its own
local folder) over one PostgreSQL database and one S3-compatible store (moto's server), measured in the same run.

Reads: alias lookups by wrk (c connections in all, split across the servers); writes: bench/registry.py's write (a
64 KiB weights blob uploaded and verified, a version with card/config/metrics/weights, alias `production` moved)
from c Python threads, alternating servers. After the writes, the registry must hold exactly the versions that
were acknowledged: none lost, none doubled.

Needs ZOO_TEST_POSTGRES_URL (`export ZOO_TEST_POSTGRES_URL=$(bash scripts/pg-test-server.sh)`) and moto_server
(installed with the project's test extras). Options: --duration S (default 8; --quick 3), --connections C (16),
--models N (20), --json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from registry import NAMESPACE, ZooWrite, drive_writes, ensure_wrk, free_port, load_zoo, start, wrk

ROOT = Path(__file__).resolve().parents[1]
MOTO = Path(sys.executable).parent / "moto_server"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server_url = os.environ.get("ZOO_TEST_POSTGRES_URL") or sys.exit(
        "needs PostgreSQL: export ZOO_TEST_POSTGRES_URL=$(bash scripts/pg-test-server.sh)")
    if not MOTO.exists():
        sys.exit(f"needs moto's server ({MOTO}): pip install 'moto[server]'")
    duration = args.duration or (3 if args.quick else 8)
    tool = ensure_wrk()
    results = {}
    with tempfile.TemporaryDirectory(prefix="zoo-scale-out-") as tmp:
        tmp = Path(tmp)
        for hosts in (1, 2):
            results[hosts] = run(hosts, server_url, tool, duration, args, tmp / f"hosts-{hosts}")
    print(f"\nload average {os.getloadavg()[0]:.2f}; PostgreSQL + moto S3, c={args.connections}, "
          f"{duration} s per figure")
    print(f"{'servers':<10}{'alias lookups':<40}{'writes':<40}{'versions: acknowledged / stored':>32}")
    for hosts, r in results.items():
        print(f"{hosts:<10}{fmt(r['alias']):<40}{fmt(r['writes']):<40}"
              f"{r['acknowledged']:>20} / {r['stored']}")
    if args.json:
        print(json.dumps(results))


def fmt(figure: dict) -> str:
    return (f"{figure['rps']:,.1f}/s p50 {figure['p50_ms']} ms p99 {figure['p99_ms']} ms"
            + (f" ({figure['errors']} errors)" if figure["errors"] else ""))


def run(hosts: int, server_url: str, tool: str, duration: float, args, tmp: Path) -> dict:
    from sqlalchemy import create_engine, text

    tmp.mkdir(parents=True)
    name = f"zoo_scale_out_{os.getpid()}_{hosts}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = server_url.rsplit("/", 1)[0] + f"/{name}"
    port = free_port()
    moto = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    s3 = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
          "ZOO_S3_ENDPOINT_URL": endpoint}
    os.environ.update(s3)
    servers = [moto]
    try:
        import boto3
        import httpx

        for _ in range(300):  # moto's server takes a few seconds to answer on a busy machine
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="zoo")
        blob_url = "s3://zoo/registry"
        token = load_zoo(tmp / "loader", args.models, 2, database, blob_url)
        env = {**s3, "ZOO_DATABASE_URL": database, "ZOO_BLOB_URL": blob_url,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        urls = []
        for i in range(hosts):
            url = f"http://127.0.0.1:{free_port()}"
            servers.append(start([sys.executable, "-c", "from zoo_core.cli import main; main()", "serve",
                                  "--registry", str(tmp / f"host-{i}"), "--port", url.rsplit(":", 1)[1]],
                                 f"{url}/api/search?per_page=1", env, tmp / f"host-{i}.log"))
            urls.append(url)
        paths = [f"/api/models/{NAMESPACE}/model-{i}/versions/production" for i in range(args.models)]
        alias = parallel_wrk(tool, urls, paths, duration, args.connections, tmp)
        before = stored_versions(database)
        writers = [ZooWrite(url, token, args.models) for url in urls]
        writes = drive_writes(Alternating(writers), duration, args.connections)
        acknowledged = writes["count"]
        stored = stored_versions(database) - before
        return {"alias": alias, "writes": writes, "acknowledged": acknowledged, "stored": stored}
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=20)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stored_versions(database: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM version")).scalar_one()
    engine.dispose()
    return count


def parallel_wrk(tool: str, urls: list[str], paths: list[str], duration: float, connections: int,
                 tmp: Path) -> dict:
    """wrk against every server at once (connections split between them): summed req/s, worst p50/p99."""
    out: list[dict] = [{} for _ in urls]

    def one(i: int) -> None:
        folder = tmp / f"wrk-{i}"
        folder.mkdir(exist_ok=True)
        out[i] = wrk(tool, urls[i], paths, duration, max(1, connections // len(urls)), folder)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rps": round(sum(r["rps"] for r in out), 1), "p50_ms": max(r["p50_ms"] for r in out),
            "p99_ms": max(r["p99_ms"] for r in out), "errors": sum(r["errors"] for r in out)}


class Alternating:
    """bench/registry.py's write through several servers in turn: write k goes to server k mod n."""

    def __init__(self, writers: list[ZooWrite]):
        self.writers = writers
        self.turn = 0
        self.lock = threading.Lock()

    def connect(self):
        with self.lock:
            writer = self.writers[self.turn % len(self.writers)]
            self.turn += 1
        conn = writer.connect()
        conn.zoo_writer = writer
        return conn

    def __call__(self, conn, i: int) -> None:
        conn.zoo_writer(conn, i)


if __name__ == "__main__":
    main()
