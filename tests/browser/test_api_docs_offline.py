"""The API docs page works without the internet: real headless Chromium opens /api/v1/docs/ on the control plane
(live server) with every request to another host blocked, as on an air-gapped machine, and the Swagger UI shows
the API's operations. With the Swagger UI on a CDN the page stayed blank (`SwaggerUIBundle is not defined`)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_the_swagger_ui_renders_the_api_with_no_other_host_reachable(page, screenshot, live_server):
    local = urlsplit(live_server.url).netloc
    blocked: list[str] = []
    errors: list[str] = []

    def only_local(route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.locator(".opblock", has=page.locator("[data-path='/api/v1/apps/']")).first.wait_for()
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("Fjordgate control plane API")
    screenshot("docs")
    assert blocked == [] and errors == [], (blocked, errors)
