"""The registry at scale: search over 10,000 and 100,000 models, and lineage of a 1,000-version chain, on SQLite
and (with ZOO_TEST_POSTGRES_URL, e.g. `$(bash scripts/pg-test-server.sh)`) PostgreSQL.

The rows are generated directly into the database (a push per model would take hours): the schema comes from the
registry's own migrations, then models, versions, `latest` aliases, metrics and lineage edges are inserted in
bulk and the search index is built by the registry's own `reindex`. A real `zoo serve` answers; one client asks
each query in turn (latency, not throughput: the targets are p95s) and reads the server's `Server-Timing`.

Queries (each over several words, so the cache of one answer does not help the next):
- text: /api/search?q=WORD (full-text, ranked)
- text+facets: the same with facet filters (task=..., tag=...) and metric filter accuracy>=0.9
- text+counts: the same with facets=true (each facet value's count among the matches)
- home page: / (every model, with facet counts, which are kept per value of the registry's change counter), and
  the same with the counter moved before each request (as by a write elsewhere: every model counted each time)
- lineage: /api/models/bench/chain/lineage/1000?direction=ancestors (server db time) and the lineage page
  /bench/chain/v/1000/lineage of the 1,000-version family

The server's CPU time per request (from /proc) is printed too: on a machine shared with other work it is the
figure load does not inflate.

Targets (issue 13): search p95 <= 100 ms at 100,000 models; ancestors of depth 1,000 <= 20 ms of db time; the
lineage page <= 300 ms.

The lineage page is measured against a baseline in the same run: the same page of a one-version family, in
alternating blocks, each with the server's time (`Server-Timing` app phase) and CPU per request.

Options: --models 10000,100000 (--quick: 10000), --chain 1000, --samples N (per query kind, default 30),
--backend sqlite|postgres|both (default: both when ZOO_TEST_POSTGRES_URL is set), --lineage-only (only the
lineage rows; default --models 1000), --json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import postgres_database  # noqa: E402

WORDS = ("pneumonia", "retina", "skin", "blood", "organ", "xray", "histology", "dermoscopy", "fundus", "tumour",
         "fracture", "covid", "malaria", "sepsis", "cardiac", "lung", "liver", "kidney", "brain", "breast",
         "colon", "prostate", "thyroid", "bone", "dental", "ultrasound", "mri", "ct", "pet", "ecg", "eeg",
         "sentiment", "spam", "toxicity", "topic", "intent", "language", "news", "review", "legal",
         "satellite", "crop", "forest", "urban", "flood", "wildlife", "bird", "insect", "plant", "fish")
TASKS = ("image-classification", "text-classification", "feature-extraction")
BACKBONES = (("resnet18", "resnet"), ("resnet50", "resnet"), ("vit_b_16", "vit"), ("efficientnet_b0", "efficientnet"),
             ("convnext_tiny", "convnext"), ("minilm", "bert"), ("mobilenet_v3", "mobilenet"))
STRATEGIES = ("linear_probe", "finetune", "lora", "partial")
LICENSES = ("mit", "apache-2.0", "cc-by-4.0", "bsd-3-clause")
NAMESPACES = 50


def card(rng: random.Random, words: list[str], accuracy: float) -> str:
    return (f"---\nlicense: mit\ntags: [{', '.join(words)}]\n---\n# {' '.join(words)} classifier\n\n"
            f"A {words[0]} model fine-tuned for {words[1]} screening, checked on {rng.choice(WORDS)} data.\n\n"
            f"## Evaluation\n\n| accuracy | {accuracy} |\n")


# -- generating ------------------------------------------------------------------------------------------------------
def generate(url: str, blobs: Path, models: int, chain: int, seed: int = 0) -> None:
    """`models` models in NAMESPACES namespaces (one version each, with `latest`, metrics and tags) and one
    model `bench/chain` whose `chain` versions each fine-tune the one before."""
    from sqlalchemy import insert

    from zoo_core.registry.models import Alias, LineageEdge, Model, Namespace, Version, VersionMetric
    from zoo_core.registry.search_index import reindex
    from zoo_core.registry.service import RegistryService

    service = RegistryService(url, blobs)  # the schema, through the migrations
    engine, rng = service.engine, random.Random(seed)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(Namespace), [{"id": i + 1, "name": "bench" if i == 0 else f"team-{i}", "kind": "org",
                                          "created_at": now} for i in range(NAMESPACES)])
        model_rows, version_rows, alias_rows, metric_rows = [], [], [], []
        for i in range(models):
            words = rng.sample(WORDS, 3)
            accuracy = round(rng.uniform(0.5, 1.0), 4)
            backbone, family = rng.choice(BACKBONES)
            at = now - timedelta(seconds=models - i)
            model_rows.append({"id": i + 1, "namespace_id": i % NAMESPACES + 1, "name": f"{words[0]}-{family}-{i}",
                               "task": rng.choice(TASKS), "modality": "text" if family == "bert" else "image",
                               "description": f"{words[0]} and {words[1]} ({backbone})", "tags": words,
                               "license": rng.choice(LICENSES), "visibility": "public", "created_at": at,
                               "updated_at": at})
            text = card(rng, words, accuracy)
            version_rows.append(_version(i + 1, i + 1, 1, text, backbone, family, rng.choice(STRATEGIES), at))
            alias_rows.append({"model_id": i + 1, "name": "latest", "version_id": i + 1})
            metric_rows += [{"version_id": i + 1, "name": "accuracy", "value": accuracy},
                            {"version_id": i + 1, "name": "f1", "value": round(accuracy - 0.05, 4)}]
        # the chain: model id models+1, versions models+1 .. models+chain, each the parent of the next
        chain_model = models + 1
        model_rows.append({"id": chain_model, "namespace_id": 1, "name": "chain", "task": "image-classification",
                           "modality": "image", "description": "a 1,000-generation fine-tuning chain",
                           "tags": ["chain"], "license": "mit", "visibility": "public", "created_at": now,
                           "updated_at": now})
        edges = [{"child_id": models + 1, "parent_id": None, "parent_external": "torchvision:resnet18.IMAGENET1K_V1",
                  "relation": "finetune"}]
        for n in range(1, chain + 1):
            version_rows.append(_version(models + n, chain_model, n, card(rng, ["chain", "resnet", "skin"], 0.9),
                                         "resnet18", "resnet", "finetune", now))
            if n > 1:
                edges.append({"child_id": models + n, "parent_id": models + n - 1, "parent_external": None,
                              "relation": "finetune"})
        alias_rows.append({"model_id": chain_model, "name": "latest", "version_id": models + chain})
        for table, rows in ((Model, model_rows), (Version, version_rows), (Alias, alias_rows),
                            (VersionMetric, metric_rows), (LineageEdge, edges)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start:start + 5000])
        reindex(conn, [])
        if conn.dialect.name == "postgresql":  # ids were given explicitly: move the sequences past them
            for table in ("namespace", "model", "version", "lineageedge"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT MAX(id) FROM {table}))")
    if engine.dialect.name == "postgresql":
        # VACUUM ANALYZE, as autovacuum soon would after so many inserts (a SQLite registry never runs ANALYZE):
        # before it, the GIN index's pending entries and the unset visibility map made the planner read all
        # 100,000 documents for a text query's matches (125 ms) where the GIN index finds them in 15
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def _version(id_: int, model_id: int, number: int, text: str, backbone: str, family: str, strategy: str,
             at: datetime) -> dict:
    return {"id": id_, "model_id": model_id, "number": number, "status": "published",
            "commit": hashlib.sha1(f"{model_id}@{number}".encode()).hexdigest(), "created_by": "bench",
            "created_at": at, "card": text, "card_data": {}, "config": {}, "backbone": backbone, "family": family,
            "strategy": strategy, "library": "zoo", "status_reason": None, "card_complete": True,
            "card_missing": None, "message": None}


# -- measuring -------------------------------------------------------------------------------------------------------
TIMING = re.compile(r"(\w+);dur=([0-9.]+)")


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in ms: on a machine shared with other work, the
    figure that load does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def measure(host: str, paths: list[str], pid: int | None = None, before=None, raw: bool = False) -> dict:
    """Each path once, in turn, on one keep-alive connection: p50/p95 of the wall time and of the server's
    `app` and `db` phases (ms), and the server's CPU time per request. `before()` runs before each request."""
    conn = http.client.HTTPConnection(host, timeout=120)
    cpu = cpu_ms(pid) if pid else 0.0
    wall, app, db = [], [], []
    for path in paths:
        if before:
            before()
        begin = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        wall.append((time.perf_counter() - begin) * 1000)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        phases = dict(TIMING.findall(response.getheader("server-timing") or ""))
        app.append(float(phases.get("app", 0)))
        db.append(float(phases.get("db", 0)))
    conn.close()
    cpu = round((cpu_ms(pid) - cpu) / len(paths), 1) if pid else None
    if raw:  # the samples themselves, for callers that pool several runs
        return {"wall": wall, "app": app, "db": db, "cpu_ms": cpu}
    return {"p50_ms": _pct(wall, 50), "p95_ms": _pct(wall, 95), "app_p50_ms": _pct(app, 50),
            "app_p95_ms": _pct(app, 95), "cpu_ms": cpu,
            "db_p50_ms": _pct(db, 50), "db_p95_ms": _pct(db, 95), "n": len(paths)}


def _pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 1)


def query_paths(samples: int, seed: int = 1) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(samples)]
    facets = [{"task": rng.choice(TASKS), "tag": rng.choice(WORDS)} for _ in range(samples)]
    return {
        "text": [f"/api/search?{urlencode({'q': w})}" for w in words],
        "text+filters+metric": [f"/api/search?{urlencode({'q': w, **f, 'metric': 'accuracy>=0.9'})}"
                                for w, f in zip(words, facets, strict=True)],
        "text+facet counts": [f"/api/search?{urlencode({'q': w, 'facets': 'true', 'metric': 'accuracy>=0.9'})}"
                              for w in words],
        "home page (all, facet counts)": ["/?" + urlencode({"page": p}) if p > 1 else "/"
                                          for p in (rng.randint(1, 5) for _ in range(samples))],
    }


def serve(registry: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    process = subprocess.Popen([sys.executable, "-c", "from zoo_core.cli import main; main()", "serve",
                                "--registry", str(registry), "--port", str(port)],
                               stdout=log.open("w"), stderr=subprocess.STDOUT,
                               env={**os.environ, **env, "PYTHONPATH": path})
    host = f"127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"zoo serve exited ({process.returncode}); see {log}")
        try:
            conn = http.client.HTTPConnection(host, timeout=5)
            conn.request("GET", "/api/search?per_page=1")
            if conn.getresponse().status == 200:
                return process, host
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    sys.exit("zoo serve did not answer")


def run_one(backend: str, models: int, chain: int, samples: int, tmp: Path, lineage_only: bool = False
            ) -> dict:
    registry = tmp / f"{backend}-{models}"
    registry.mkdir()
    env, drop = {}, None
    if backend == "sqlite":
        url = f"sqlite:///{registry / 'registry.db'}"
    else:
        url, drop = postgres_database(os.environ["ZOO_TEST_POSTGRES_URL"], "zoo_scale")
        env["ZOO_DATABASE_URL"] = url
    try:
        begin = time.perf_counter()
        generate(url, registry / "blobs", models, chain)
        generated = time.perf_counter() - begin
        server, host = serve(registry, env, tmp / f"{backend}-{models}.log")
        try:
            rows = {}
            if not lineage_only:
                paths = query_paths(samples)
                for group in paths.values():  # warm the caches and the plans once
                    measure(host, group[:2])
                rows = {name: measure(host, group, server.pid) for name, group in paths.items()}
                # the counts without words are kept per value of the registry's change counter: moved before each
                # request, as by a write elsewhere, they are counted afresh every time (the worst case)
                rows["home page, recounted"] = measure(host, paths["home page (all, facet counts)"], server.pid,
                                                       before=lambda: _registry_changed(url))
            top = f"/api/models/bench/chain/lineage/{chain}?direction=ancestors"
            rows["lineage ancestors (API)"] = measure(host, [top] * max(5, samples // 3), server.pid)
            rows.update(lineage_pages(host, chain, samples if lineage_only else max(5, samples // 3), server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rows["ancestors query alone"] = ancestors_alone(url, models + chain, max(5, samples // 3))
    finally:
        if drop:
            drop()
    return {"backend": backend, "models": models, "chain": chain, "generate_s": round(generated, 1), "rows": rows}


def lineage_pages(host: str, chain: int, samples: int, pid: int) -> dict[str, dict]:
    """The lineage page of the `chain`-version family against its baseline, the same page of a one-version family
    (same route, template and queries: what is left is the family's size), in alternating blocks of a few requests
    so that load on the machine falls on both alike; the ratio of their p50s is the figure load inflates least."""
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.request("GET", "/api/search?per_page=2&sort=name")
    single = next(r["id"] for r in json.loads(conn.getresponse().read())["results"] if r["id"] != "bench/chain")
    conn.close()
    paths = {"lineage page, 1-version family (baseline)": f"/{single}/v/1/lineage",
             f"lineage page, {chain:,}-version family": f"/bench/chain/v/{chain}/lineage"}
    for path in paths.values():  # warm the caches and the template once
        measure(host, [path] * 2)
    blocks: dict[str, list[dict]] = {name: [] for name in paths}
    for _ in range(max(1, samples // 5)):
        for name, path in paths.items():
            blocks[name].append(measure(host, [path] * 5, pid, raw=True))
    rows = {}
    for name, measured in blocks.items():
        wall = [w for m in measured for w in m["wall"]]
        app = [a for m in measured for a in m["app"]]
        cpu = round(sum(m["cpu_ms"] * len(m["wall"]) for m in measured) / len(wall), 1)
        rows[name] = {"p50_ms": _pct(wall, 50), "p95_ms": _pct(wall, 95), "app_p95_ms": _pct(app, 95),
                      "app_p50_ms": _pct(app, 50), "cpu_ms": cpu, "db_p50_ms": None, "db_p95_ms": None,
                      "n": len(wall)}
    base, big = rows.values()
    big["vs_baseline"] = round(big["p50_ms"] / base["p50_ms"], 1) if base["p50_ms"] else None
    return rows


def _registry_changed(url: str) -> None:
    from sqlalchemy import create_engine

    from zoo_core.registry.changes import bump

    engine = create_engine(url)
    with engine.begin() as conn:
        bump(conn)
    engine.dispose()


def ancestors_alone(url: str, start: int, repeat: int) -> dict:
    """The recursive ancestors query by itself (the one query the target is about), timed in-process."""
    from sqlalchemy import create_engine, text

    from zoo_core.registry.queries import QueriesMixin

    engine = create_engine(url)
    times, count = [], 0
    with engine.connect() as conn:
        for _ in range(repeat + 1):
            begin = time.perf_counter()
            sql = QueriesMixin.lineage_sql("ancestors", conn.dialect.name)
            count = len(conn.execute(text(sql), {"start": start}).all())
            times.append((time.perf_counter() - begin) * 1000)
    engine.dispose()
    times = times[1:]
    return {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "app_p50_ms": None, "app_p95_ms": None,
            "cpu_ms": None, "db_p50_ms": None,
            "db_p95_ms": None, "n": repeat, "versions_found": count}


def report(result: dict) -> None:
    print(f"\n{result['backend']}: {result['models']:,} models + a {result['chain']}-version chain "
          f"(generated in {result['generate_s']} s); load average {os.getloadavg()[0]:.2f}")
    print(f"{'query':<44}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'server p50':>12}{'server p95':>12}{'db p50':>9}"
          f"{'db p95':>9}{'CPU ms/req':>12}")
    for name, row in result["rows"].items():
        cells = "".join(f"{row[k]:>{w}}" if row.get(k) is not None else f"{'-':>{w}}" for k, w in (
            ("p50_ms", 9), ("p95_ms", 9), ("app_p50_ms", 12), ("app_p95_ms", 12), ("db_p50_ms", 9),
            ("db_p95_ms", 9), ("cpu_ms", 12)))
        ratio = f"  ({row['vs_baseline']}x the baseline's p50)" if row.get("vs_baseline") else ""
        print(f"{name:<44}{row['n']:>4}{cells}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None)
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lineage-only", action="store_true",
                        help="only the lineage rows (default --models 1000: the chain, and families of one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    default = "1000" if args.lineage_only else "10000" if args.quick else "10000,100000"
    sizes = [int(n) for n in (args.models or default).split(",")]
    backend = args.backend or ("both" if os.environ.get("ZOO_TEST_POSTGRES_URL") else "sqlite")
    if backend != "sqlite" and not os.environ.get("ZOO_TEST_POSTGRES_URL"):
        sys.exit("PostgreSQL needs ZOO_TEST_POSTGRES_URL (export ZOO_TEST_POSTGRES_URL=$(bash "
                 "scripts/pg-test-server.sh))")
    results = []
    with tempfile.TemporaryDirectory(prefix="zoo-scale-") as tmp:
        for models in sizes:
            for one in (("sqlite", "postgres") if backend == "both" else (backend,)):
                results.append(run_one(one, models, args.chain, args.samples, Path(tmp), args.lineage_only))
                report(results[-1])
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
