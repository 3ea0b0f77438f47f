"""The ceiling of bench/registry.py: a trivial FastAPI endpoint answering the same small JSON as the zoo's alias
lookup (read once at start from the file ZOO_BENCH_CEILING names), under one uvicorn worker like `zoo serve`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import FastAPI

app = FastAPI()
ANSWER = json.loads(Path(os.environ["ZOO_BENCH_CEILING"]).read_text())


@app.get("/answer")
def answer() -> dict:
    return ANSWER
