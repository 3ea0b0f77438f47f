"""What the installed plugins contribute, as one JSON document: `python -m zoo_core.plugin_report`.

Listing backbones builds each on the meta device, so it imports torch, torchvision and transformers (~800 MiB).
The server's /plugins page must not pay that in the serving process: it calls `from_subprocess()`, which runs this
module in a short-lived interpreter (the server's own, with its environment) and reads the JSON it prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from zoo_core.errors import ZooError


def report() -> dict[str, Any]:
    """Plugins (with load errors), backbones, strategies, readers and sources: what `zoo plugins`, `zoo backbones`,
    ... show, as plain sorted data."""
    from zoo_core.plugins import get_catalog, summaries

    catalog = get_catalog()
    return {"plugins": [info.as_dict() for info in catalog.plugins.values()],
            "backbones": summaries("backbone"), "strategies": summaries("strategy"),
            "readers": summaries("reader"), "sources": summaries("source")}


def from_subprocess(timeout: float = 300) -> dict[str, Any]:
    """`report()` computed in a child interpreter; ZooError saying why when it fails."""
    try:
        done = subprocess.run([sys.executable, "-m", "zoo_core.plugin_report"], capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZooError(f"listing the plugins failed: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ZooError(f"listing the plugins failed (exit status {done.returncode}): {last}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ZooError("listing the plugins failed: the report was not JSON") from None


def main() -> None:
    print(json.dumps(report(), default=str))


if __name__ == "__main__":
    main()
