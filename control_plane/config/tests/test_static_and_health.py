from __future__ import annotations


def test_admin_static_files_are_served_by_the_app(client):
    """Under uvicorn there is no separate static server: WhiteNoise serves the admin's CSS from the app itself."""
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"body" in b"".join(response.streaming_content)


def test_health_is_public(client):
    assert client.get("/health").json() == {"status": "ok"}
