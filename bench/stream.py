"""Uploads and downloads stream: push and pull a large file through `zoo serve` and measure the server's peak
memory against its resident memory before the transfer, in the same run.

Default 2 GiB (--quick: 256 MiB). Prints a table; --json adds {"file_mib", "server_rss_before_mib",
"server_peak_mib", "growth_mib", "upload_mib_s", "download_mib_s"} on the last line. Bounded memory means the
growth stays far below the file size.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _common import Sampler, emit, zoo_serve

import zoo_core
from zoo_core.registry.files import file_sha256

CARD = """---
license: mit
---
# big

## Intended use

Benchmarks.

## Training data

None.

## Evaluation

| accuracy | 0.0 |

## Limitations

Not a model.
"""


def main() -> None:
    size_mib = 256 if "--quick" in sys.argv else 2048
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "big"
        folder.mkdir()
        chunk = os.urandom(1024 * 1024)
        with (folder / "model.safetensors").open("wb") as handle:
            for _ in range(size_mib):
                handle.write(chunk)
        (folder / "README.md").write_text(CARD)
        registry = tmp / "registry"
        with zoo_serve(registry) as (server, url):
            token = zoo_core.open_registry(str(registry)).create_token("bench")
            with Sampler(server.pid) as memory:
                start = time.perf_counter()
                zoo_core.open_registry(url, token=token).push(folder, "bench/big")
                upload_s = time.perf_counter() - start
                start = time.perf_counter()
                os.environ["ZOO_CACHE"] = str(tmp / "cache")
                pulled = zoo_core.open_registry(url).pull("bench/big@1")
                download_s = time.perf_counter() - start
        same = file_sha256(pulled / "model.safetensors") == file_sha256(folder / "model.safetensors")
    before, peak = memory.before, memory.peak
    result = {"file_mib": size_mib, "server_rss_before_mib": round(before, 1), "server_peak_mib": round(peak, 1),
              "growth_mib": round(peak - before, 1), "upload_mib_s": round(size_mib / upload_s, 1),
              "download_mib_s": round(size_mib / download_s, 1), "identical": same}
    print(f"file {size_mib} MiB through zoo serve (push, then pull), server memory sampled every 50 ms")
    print(f"server RSS before {before:8.1f} MiB   peak {peak:8.1f} MiB   growth {result['growth_mib']:.1f} MiB "
          f"({100 * result['growth_mib'] / size_mib:.1f}% of the file)")
    print(f"upload {result['upload_mib_s']} MiB/s, download {result['download_mib_s']} MiB/s, bytes identical: {same}")
    emit(result)


if __name__ == "__main__":
    main()
