"""The Swagger UI page at /api/v1/docs/ loads everything from the control plane itself: Fjordgate runs
air-gapped, and with the Swagger UI's scripts on a CDN the page was blank there (`SwaggerUIBundle is not
defined`). The assets come from drf-spectacular-sidecar and are served like the admin's static files."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SRC_OR_HREF = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def _asset_urls(html: str) -> list[str]:
    return SRC_OR_HREF.findall(html)


def test_the_docs_page_references_only_local_static_urls(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200  # public, as drf-spectacular serves it (SERVE_PERMISSIONS: AllowAny)
    html = response.content.decode()
    urls = _asset_urls(html)
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
    }, urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
        assert parts.path.startswith("/static/"), url
    assert "cdn." not in html and "//" not in "".join(urls)


def test_every_asset_the_docs_page_names_is_served(client):
    html = client.get("/api/v1/docs/").content.decode()
    for url in _asset_urls(html):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content), url
