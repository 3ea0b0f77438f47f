"""The fault suite, long: the trials of tests/test_faults.py (bench/_faults.py) run many times with random kill
moments and seeds, summed into one table per database.

- kill -9 server: 3 processes push over HTTP to a real `zoo serve`; the server is killed with SIGKILL at a random
  moment after uploads began and restarted on the same port; the pushers retry until each has 4 acknowledged.
- kill -9 pusher: 3 processes push embedded into one registry folder; one is killed with SIGKILL mid-run.
- gc loop (http, embedded): gc --grace 0 back to back (in a process of its own, and `zoo gc` processes beside it)
  while 3 processes push 4 versions each; aged orphans give it work.

Columns: trials; pushes acknowledged; lost (acknowledged but missing or changed); versions listed; partial (a file
missing or not matching its sha256 when pulled); failed pushes (for kills: refused during the outage and retried;
for gc loops: must be 0); orphan MiB (unreferenced blobs and temporary files) once the pushers are done, after
`zoo gc --grace 0`, and after the upload leases run out (simulated: leases moved into the past), which must be 0.

Options: --trials N (default 5; --quick 1), --pg (PostgreSQL too: ZOO_TEST_POSTGRES_URL, or
scripts/pg-test-server.sh is started), --json.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _faults
from _common import ROOT, emit, postgres_database

SCENARIOS = {
    "kill -9 server": lambda work, db, seed, rng: _faults.kill_server_trial(
        work, db, seed=seed, kill_after=rng.uniform(0, 1.5)),
    "kill -9 pusher": lambda work, db, seed, rng: _faults.kill_pusher_trial(
        work, db, seed=seed, kill_after=rng.uniform(0, 1.5)),
    "gc loop, http": lambda work, db, seed, rng: _faults.gc_loop_trial(work, db, http=True, grace=0, seed=seed),
    "gc loop, embedded": lambda work, db, seed, rng: _faults.gc_loop_trial(work, db, http=False, grace=0, seed=seed),
}
SUMMED = ("acknowledged", "lost", "versions", "partial", "failed_pushes", "orphan_bytes", "orphans_after_gc",
          "orphans_after_lease", "gc_runs", "gc_removed")


def run(trials: int, databases: dict[str, str | None]) -> list[dict]:
    rows = []
    rng = random.Random(0)
    for db_name, server in databases.items():
        for scenario, trial in SCENARIOS.items():
            total = dict.fromkeys(SUMMED, 0)
            failures = []
            for seed in range(trials):
                work = Path(tempfile.mkdtemp(prefix="zoo-faults-"))
                url, drop = postgres_database(server, "zoo_faults") if server else (None, lambda: None)
                try:
                    result = trial(work, url, seed, rng)
                finally:
                    drop()
                    shutil.rmtree(work, ignore_errors=True)
                for key in SUMMED:
                    total[key] += result.get(key, 0)
                if "first_failure" in result:
                    failures.append(result["first_failure"])
            row = {"database": db_name, "scenario": scenario, "trials": trials, **total}
            rows.append(row)
            print_row(row)
            for failure in failures[:3]:
                print(f"    failure: {failure}", flush=True)
    return rows


HEADER = (f"{'database':<10} {'scenario':<18} {'trials':>6} {'acked':>6} {'lost':>5} {'versions':>8} {'partial':>7} "
          f"{'failed':>6} {'MiB orph':>8} {'MiB gc':>7} {'MiB lease':>9} {'gc runs':>7} {'gc rm':>6}")


def print_row(row: dict) -> None:
    mib = [row[k] / 2**20 for k in ("orphan_bytes", "orphans_after_gc", "orphans_after_lease")]
    print(f"{row['database']:<10} {row['scenario']:<18} {row['trials']:>6} {row['acknowledged']:>6} {row['lost']:>5} "
          f"{row['versions']:>8} {row['partial']:>7} {row['failed_pushes']:>6} {mib[0]:>8.1f} {mib[1]:>7.1f} "
          f"{mib[2]:>9.1f} {row['gc_runs']:>7} {row['gc_removed']:>6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    databases: dict[str, str | None] = {"sqlite": None}
    if args.pg:
        databases["postgres"] = os.environ.get("ZOO_TEST_POSTGRES_URL") or subprocess.run(
            ["bash", str(ROOT / "scripts" / "pg-test-server.sh")], capture_output=True, text=True,
            check=True).stdout.strip()
    print(HEADER, flush=True)
    rows = run(1 if args.quick else args.trials, databases)
    bad = [r for r in rows if r["lost"] or r["partial"] or r["orphans_after_lease"]
           or (r["scenario"].startswith("gc") and r["failed_pushes"])]
    print("all trials held: nothing lost, nothing partial, orphans collected" if not bad
          else f"FAILED: {len(bad)} scenario(s) broke a guarantee", flush=True)
    emit({"rows": rows})
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
