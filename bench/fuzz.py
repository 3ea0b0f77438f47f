"""Fuzz the registry server over its own OpenAPI schema (schemathesis, on Hypothesis): every operation, with
requests generated from the schema (valid ones, `positive`, and ones that break it, `negative`), once anonymously
and once with a write token, against a real uvicorn over a registry holding a published, a draft and a private
model. Prints operations x examples, the 5xx answers and dropped connections (both must be 0), and the time.

    python bench/fuzz.py                 # 100 examples per operation and mode, SQLite
    python bench/fuzz.py --quick         # 10
    python bench/fuzz.py --database-url postgresql+psycopg://...   # an empty database

`fuzz()` is also the bounded run in make test (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# path parameters that reach the models the registry holds, as well as the generated (mostly unknown) ones
KNOWN = {"namespace": "acme", "name": "m", "revision": "1", "sha256": hashlib.sha256(b"weights").hexdigest(),
         "path": "model.safetensors"}


def populate(service) -> dict[str, str]:
    """acme/m@1 (published, with a card and metrics), acme/d@1 (a draft), other/priv@1 (private); the tokens."""
    card = b"---\nlicense: mit\npipeline_tag: image-classification\n---\n# m\n\nA model to fuzz.\n"
    files = [service.store_file([card], "README.md"), service.store_file([b"weights"], "model.safetensors"),
             service.store_file([json.dumps({"accuracy": 0.9}).encode()], "metrics.json")]
    service.publish("acme/m", files)
    service.publish("acme/d", [service.store_file([b"draft"], "model.safetensors")], status="draft")
    service.publish("other/priv", [service.store_file([b"private"], "model.safetensors")], visibility="private")
    return {"write": service.create_token("acme"), "other": service.create_token("other")}


@contextlib.contextmanager
def serving(app):
    """`app` on a real uvicorn in a thread, on a free loopback port; yields its URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def fuzz(url: str, schema: dict[str, Any], examples: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Every operation of `schema`, `examples` generated requests per mode (positive with the known models' path
    parameters, positive, negative), derandomized (the same requests every run). Returns the counts and each 5xx
    or dropped connection as (operation, status or error, request)."""
    import hypothesis
    import hypothesis.errors
    import requests
    import schemathesis
    from schemathesis import GenerationMode

    api = schemathesis.openapi.from_dict(schema)
    session = requests.Session()
    found: dict[str, Any] = {"operations": 0, "requests": 0, "server_errors": [], "dropped": []}
    settings = hypothesis.settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                                   suppress_health_check=list(hypothesis.HealthCheck),
                                   phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    for result in api.get_all_operations():
        operation = result.ok()
        found["operations"] += 1
        names = {p.name for p in operation.path_parameters}
        known = {k: v for k, v in KNOWN.items() if k in names}
        for mode, fixed in ((GenerationMode.POSITIVE, known), (GenerationMode.POSITIVE, None),
                            (GenerationMode.NEGATIVE, None)):
            if mode is GenerationMode.POSITIVE and fixed is not None and not known:
                continue

            @settings
            @hypothesis.given(operation.as_strategy(mode, path_parameters=fixed or None))
            def call(case):
                found["requests"] += 1
                label = f"{case.method} {case.formatted_path}"
                try:  # a connection per request: a reused one the server closed while idle (its keep-alive timeout,
                    # while Hypothesis generates the next case) would read as a drop
                    response = case.call(base_url=url, session=session, headers={**(headers or {}),
                                                                                 "Connection": "close"}, timeout=60)
                except requests.ConnectionError as exc:  # the server closed the connection without an answer
                    found["dropped"].append((case.operation.label, repr(exc)[:120], case.as_curl_command()[:300]))
                    return
                if response.status_code >= 500:
                    found["server_errors"].append((case.operation.label, response.status_code,
                                                   f"{label} -> {response.text[:200]}"))

            try:
                call()
            except hypothesis.errors.Unsatisfiable:  # nothing in this operation can be made invalid
                continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 examples per operation and mode")
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temp folder)")
    args = parser.parse_args()
    examples = 10 if args.quick else args.examples
    sys.path.insert(0, str(ROOT))
    from registry_server.app import create_app

    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-") as root:
        app = create_app(root, database_url=args.database_url, max_upload=1_000_000)
        tokens = populate(app.state.service)
        with serving(app) as url:
            print(f"{'as':<10} {'operations':>10} {'requests':>9} {'5xx':>5} {'dropped':>8} {'seconds':>8}")
            total = []
            for who, headers in (("anonymous", None), ("writer", {"Authorization": f"Bearer {tokens['write']}"})):
                start = time.perf_counter()
                found = fuzz(url, app.openapi(), examples, headers)
                seconds = time.perf_counter() - start
                print(f"{who:<10} {found['operations']:>10} {found['requests']:>9} {len(found['server_errors']):>5} "
                      f"{len(found['dropped']):>8} {seconds:>8.1f}")
                total += found["server_errors"] + found["dropped"]
            for problem in total[:20]:
                print("  ", *problem)
        app.state.service.engine.dispose()
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
