"""What a `zoo` command costs to start, against a bare interpreter (`python -c pass`) measured in the same run:
the registry commands (`zoo --help`, `zoo search` on an embedded registry, `import zoo_core.registry.service`)
never import torch; plugin discovery (building the catalog, listing every backbone with parameter counts) does,
so those are compared with the bare `import torch` as well.

Prints a table (best of 3 fresh processes each); with --json, one JSON object on its last line: {"python_s",
"help_s", "search_s", "service_s", "torch_s", "catalog_s", "listing_s", "help_ratio", "search_ratio", "ratio"}
(ratios: over `python -c pass` for the registry rows, over `import torch` for the listing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

RUNS = 3


def timed(*args: str, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})})
        best = min(best, time.perf_counter() - start)
    return best


def zoo(*args: str) -> tuple[str, ...]:
    """Run the `zoo` command the way its console script does."""
    return ("-c", f"import sys; sys.argv = ['zoo', *{list(args)!r}]; from zoo_core.cli import main; main()")


def main() -> None:
    with tempfile.TemporaryDirectory() as registry:
        env = {"ZOO_REGISTRY": registry}
        subprocess.run([sys.executable, *zoo("search")], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **env})  # create the registry's tables outside the timing
        python = timed("-c", "pass")
        help_ = timed(*zoo("--help"))
        search = timed(*zoo("search"), env=env)
        service = timed("-c", "import zoo_core.registry.service")
    torch = timed("-c", "import torch")
    catalog = timed("-c", "import zoo_core; zoo_core.get_catalog()")
    listing = timed("-c", "from zoo_core.plugins import summaries; summaries(\"backbone\")")
    result = {"python_s": round(python, 3), "help_s": round(help_, 3), "search_s": round(search, 3),
              "service_s": round(service, 3), "torch_s": round(torch, 3), "catalog_s": round(catalog, 3),
              "listing_s": round(listing, 3), "help_ratio": round(help_ / python, 1),
              "search_ratio": round(search / python, 1), "ratio": round(listing / torch, 2)}
    rows = [("python -c pass (baseline)", python, ""),
            ("zoo --help", help_, f"{result['help_ratio']}x python"),
            ("zoo search (embedded registry)", search, f"{result['search_ratio']}x python"),
            ("import zoo_core.registry.service", service, f"{service / python:.1f}x python"),
            ("import torch (plugins' baseline)", torch, ""),
            ("load plugins, build catalog", catalog, f"{catalog / torch:.2f}x torch"),
            ("list all backbones with param counts", listing, f"{result['ratio']}x torch")]
    for name, seconds, ratio in rows:
        print(f"{name:<40}{seconds:8.2f} s  {ratio}")
    if "--json" in sys.argv:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
