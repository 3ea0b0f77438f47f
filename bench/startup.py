"""What a `zoo` command costs to start, against a bare interpreter (`python -c pass`) measured in the same run:
the registry commands (`zoo --help`, `zoo search` and `zoo show` on an embedded registry,
`import zoo_core.registry.service`)
never import torch; plugin discovery (building the catalog, listing every backbone with parameter counts) does,
so those are compared with the bare `import torch` as well.

Prints a table (best of 3 fresh processes each; wall and, for the registry rows, CPU time, which load does not
inflate); with --json, one JSON object on its last line: {"python_s", "help_s", "search_s", "show_s",
"service_s", "torch_s", "catalog_s", "listing_s", "help_ratio", "search_ratio", "show_ratio", "ratio", "cpu_s",
"load_average"} (ratios: over `python -c pass` for the registry rows, over `import torch` for the listing).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from _common import options

RUNS = 3


CPU: dict[tuple[str, ...], float] = {}  # best CPU seconds (user + system) of each command, beside its wall time


def timed(*args: str, env: dict[str, str] | None = None) -> float:
    """Best wall time of RUNS fresh processes; their best CPU time goes to CPU[args] (on a machine shared with
    other work, the figure that load does not inflate)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})})
        best = min(best, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best_cpu = min(best_cpu, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    CPU[args] = best_cpu
    return best


def zoo(*args: str) -> tuple[str, ...]:
    """Run the `zoo` command the way its console script does."""
    return ("-c", f"import sys; sys.argv = ['zoo', *{list(args)!r}]; from zoo_core.cli import main; main()")


def main() -> None:
    as_json = options(__doc__).parse_args().json
    with tempfile.TemporaryDirectory() as registry:
        env = {"ZOO_REGISTRY": registry}
        subprocess.run([sys.executable, *zoo("search")], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **env})  # create the registry's tables outside the timing
        folder = os.path.join(registry, "checkpoint")  # and a version for `zoo show`
        os.mkdir(folder)
        with open(os.path.join(folder, "README.md"), "w") as card:
            card.write("---\nlicense: mit\n---\n# m\n")
        with open(os.path.join(folder, "model.safetensors"), "wb") as weights:
            weights.write(b"weights")
        subprocess.run([sys.executable, *zoo("push", folder, "bench/m")], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **env})
        python = timed("-c", "pass")
        help_ = timed(*zoo("--help"))
        search = timed(*zoo("search"), env=env)
        show = timed(*zoo("show", "bench/m"), env=env)
        service = timed("-c", "import zoo_core.registry.service")
        cpu = [CPU[("-c", "pass")], CPU[zoo("--help")], CPU[zoo("search")], CPU[zoo("show", "bench/m")],
               CPU[("-c", "import zoo_core.registry.service")]]
    torch = timed("-c", "import torch")
    catalog = timed("-c", "import zoo_core; zoo_core.get_catalog()")
    listing = timed("-c", "from zoo_core.plugins import summaries; summaries(\"backbone\")")
    result = {"python_s": round(python, 3), "help_s": round(help_, 3), "search_s": round(search, 3),
              "show_s": round(show, 3), "service_s": round(service, 3), "torch_s": round(torch, 3),
              "catalog_s": round(catalog, 3),
              "listing_s": round(listing, 3), "help_ratio": round(help_ / python, 1),
              "search_ratio": round(search / python, 1), "show_ratio": round(show / python, 1),
              "ratio": round(listing / torch, 2),
              "cpu_s": dict(zip(("python", "help", "search", "show", "service"), (round(c, 3) for c in cpu),
                                strict=True)),
              "load_average": round(os.getloadavg()[0], 2)}
    rows = [("python -c pass (baseline)", python, ""),
            ("zoo --help", help_, f"{result['help_ratio']}x python"),
            ("zoo search (embedded registry)", search, f"{result['search_ratio']}x python"),
            ("zoo show (embedded registry)", show, f"{result['show_ratio']}x python"),
            ("import zoo_core.registry.service", service, f"{service / python:.1f}x python"),
            ("import torch (plugins' baseline)", torch, ""),
            ("load plugins, build catalog", catalog, f"{catalog / torch:.2f}x torch"),
            ("list all backbones with param counts", listing, f"{result['ratio']}x torch")]
    print(f"{'command (best of 3 fresh processes)':<40}{'wall':>8}    {'CPU':>6}")
    for i, (name, seconds, ratio) in enumerate(rows):
        used = f"{cpu[i]:6.2f} s" if i < len(cpu) else " " * 8
        print(f"{name:<40}{seconds:8.2f} s  {used}  {ratio}")
    print(f"load average {result['load_average']} (CPU time: what load does not inflate)")
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
