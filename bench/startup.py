"""How much plugin discovery adds to a `zoo` command: time to build the catalog and list every backbone
(with parameter counts) against the bare import of torch that any command pays, measured in this run.

Prints a table; with --json, one JSON object on its last line: {"baseline_s", "catalog_s", "listing_s", "ratio"}.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

RUNS = 3


def timed(code: str) -> float:
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    baseline = timed("import torch")
    catalog = timed("import zoo_core; zoo_core.get_catalog()")
    listing = timed("from zoo_core.plugins import summaries; summaries(\"backbone\")")
    result = {"baseline_s": round(baseline, 3), "catalog_s": round(catalog, 3), "listing_s": round(listing, 3),
              "ratio": round(listing / baseline, 2)}
    print(f"{'import torch (baseline)':<40}{baseline:8.2f} s")
    print(f"{'load plugins, build catalog':<40}{catalog:8.2f} s")
    print(f"{'list all backbones with param counts':<40}{listing:8.2f} s  ({result['ratio']}x baseline)")
    if "--json" in sys.argv:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
