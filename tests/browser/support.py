"""What the browser tests share beyond fixtures: signing in to the portal as a seeded user."""

from __future__ import annotations

from typing import Any

__all__ = ["portal_login"]


def portal_login(page: Any, base: str, next_path: str = "/portal/", user: str = "alice") -> None:
    """Sign in on the portal's login page as `user` (seeded with the password `pw-<user>-123456`) and wait until
    the portal has sent the browser on to `next_path`."""
    suffix = "" if next_path == "/portal/" else f"?next={next_path}"
    page.goto(f"{base}/portal/login/{suffix}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"pw-{user}-123456")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")
