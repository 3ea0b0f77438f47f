"""schemathesis over the server's own /openapi.json, bounded (bench/fuzz.py is the long run): every operation, a
few derandomized requests per mode (valid, and breaking the schema), anonymously and with a write token, against a
real uvicorn: no 5xx, and every request answered (no dropped connection)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from fuzz import fuzz, populate, serving  # noqa: E402

EXAMPLES = 3  # per operation and mode: about 230 requests a pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from registry_server.app import create_app

    app = create_app(tmp_path_factory.mktemp("fuzz"), max_upload=100_000)
    tokens = populate(app.state.service)
    with serving(app) as url:
        yield url, app.openapi(), tokens
    app.state.service.engine.dispose()


@pytest.mark.parametrize("who", ["anonymous", "writer"])
def test_no_request_the_schema_allows_or_breaks_is_a_5xx_or_dropped(server, who):
    url, schema, tokens = server
    headers = {"Authorization": f"Bearer {tokens['write']}"} if who == "writer" else None
    found = fuzz(url, schema, EXAMPLES, headers)
    assert found["operations"] >= 30 and found["requests"] >= 30 * EXAMPLES
    assert found["server_errors"] == [] and found["dropped"] == []
