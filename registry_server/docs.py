"""/docs, the API's interactive documentation, served from the installed swagger-ui-py package (Swagger UI 5, which
reads FastAPI's OpenAPI 3.1; swagger-ui-bundle's Swagger UI 4 cannot): FastAPI's own
page loads Swagger UI from a CDN, which would run a third party's script on the registry's origin (where tokens are
typed in). The page's only code is two script files from this server, so its Content-Security-Policy allows scripts
from 'self' alone (Swagger UI sets inline styles, hence 'unsafe-inline' for styles only)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                           "form-action 'self'")
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} – API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/start.js"></script>
</body>
</html>
"""
START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"
});
"""


def install(app: FastAPI) -> None:
    """Mount the page (the app must be made with docs_url=None and redoc_url=None)."""
    from pathlib import Path

    import swagger_ui

    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
    page = PAGE.format(title=app.title)
    app.mount("/docs/assets", StaticFiles(directory=Path(swagger_ui.__file__).parent / "static"), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    @app.get("/docs/start.js", include_in_schema=False)
    def start() -> Response:
        return Response(START, media_type="text/javascript", headers=headers)
