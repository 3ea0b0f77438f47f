"""The Transfer Zoo registry server (FastAPI): JSON API, web catalog and Hub-compatible read API."""
