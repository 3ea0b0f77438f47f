"""The web catalog's search page: server time to render a page of 50 results, against the JSON API answering the
same query in the same run (the difference is the page's own cost: facets, template, escaping).

Seeds scripts/sample_catalog.py with --models generated models (default 1,000; --quick 200) into a fresh SQLite
registry, starts `zoo serve`, and requests pages of 50 with the filters and sorts a person uses. The server time is
the Server-Timing header every answer carries (measured inside the app, so the client's own HTTP time is left
out). Prints a table; --json adds {"models", "html_ms_median", "html_ms_p95", "json_ms_median", "json_ms_p95",
"target_ms"} on the last line. Target: a page of 50 results in under 100 ms.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time

import httpx
from _common import ROOT, emit, options, zoo_serve

TARGET_MS = 100
QUERIES = ["", "sort=name", "sort=accuracy", "family=resnet", "q=pneumonia", "modality=text&sort=accuracy",
           "tag=medical", "page=3", "strategy=finetune&page=2"]


def server_ms(response: httpx.Response) -> float:
    assert response.status_code == 200, response.text[:300]
    return float(response.headers["server-timing"].split("dur=")[1].split(",")[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = options(__doc__, "200 models, 3 rounds")
    parser.add_argument("--models", type=int, help="models in the registry (default 1,000; --quick 200)")
    args = parser.parse_args()
    quick = args.quick
    models = args.models or (200 if quick else 1000)
    rounds = 3 if quick else 10
    spec = importlib.util.spec_from_file_location("sample_catalog", ROOT / "scripts" / "sample_catalog.py")
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sample.seed(tmp, extra=models)
        print(f"seeded {models + 12} models in {time.perf_counter() - start:.0f} s")
        with zoo_serve(tmp) as (_, url), httpx.Client(base_url=url, timeout=30) as client:
            for query in QUERIES:  # warm-up: first-use imports and the database's caches
                client.get(f"/?per_page=50&{query}")
            html, json = [], []
            for _ in range(rounds):
                for query in QUERIES:
                    page = client.get(f"/?per_page=50&{query}", headers={"Accept": "text/html"})
                    assert page.text.count('class="card result"') == 50 or "page=3" in query or "q=" in query \
                        or "text" in query or "tag=" in query, query
                    html.append(server_ms(page))
                    json.append(server_ms(client.get(f"/api/search?per_page=50&{query}")))
    result = {"models": models + 12, "html_ms_median": round(statistics.median(html), 2),
              "html_ms_p95": round(percentile(html, 0.95), 2), "json_ms_median": round(statistics.median(json), 2),
              "json_ms_p95": round(percentile(json, 0.95), 2), "target_ms": TARGET_MS}
    print(f"\n{len(html)} requests of 50-result pages over {result['models']} models ({len(QUERIES)} queries x "
          f"{rounds}), server time from Server-Timing")
    print(f"{'':22}{'median ms':>10}{'p95 ms':>10}")
    print(f"{'HTML catalog page':22}{result['html_ms_median']:>10.1f}{result['html_ms_p95']:>10.1f}")
    print(f"{'JSON /api/search':22}{result['json_ms_median']:>10.1f}{result['json_ms_p95']:>10.1f}")
    verdict = "met" if result["html_ms_p95"] < TARGET_MS else "NOT met"
    print(f"target: a page of 50 results under {TARGET_MS} ms — {verdict} (p95 {result['html_ms_p95']:.1f} ms; "
          f"rendering adds {result['html_ms_median'] - result['json_ms_median']:+.1f} ms at the median)")
    emit(result)


if __name__ == "__main__":
    main()
